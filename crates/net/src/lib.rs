//! The accept loop the mock and the recorder share: accept on a bound listener, serve each
//! connection with hyper (HTTP/1.1 or h2, upgrades for `CONNECT`), optionally after a TLS
//! handshake, until `shutdown`; then give open connections up to 5 s to finish.
//!
//! Sockets are bound by the callers (synchronously, with the backlog they need); this crate
//! only serves them.

use std::future::Future;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves connections from `listener` with a service from `make` per connection until
/// `shutdown` resolves. With `tls`, each connection is a TLS handshake first; a failed
/// handshake ends that connection only.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    mut make: F,
) -> std::io::Result<()>
where
    F: FnMut() -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: keep serving the connections we have.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = make();
                match &tls {
                    None => {
                        let conn = graceful.watch(
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned(),
                        );
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Some(acceptor) => {
                        let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(stream).await else { return };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}
