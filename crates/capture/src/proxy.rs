//! The recording proxy: a hyper service per route, an upstream client (HTTP/1.1 and h2, TLS
//! verified against the system roots), and the record of each exchange.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use af_snapshot::{
    BackgroundWriter, Body as SnapBody, CallerSpec, ErrorKind, Exchange, ExchangeId,
    Request as SnapRequest, Response as SnapResponse, SnapshotError, Timestamp, Timing,
    TransportError,
};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::tee::{Captured, Tee};

/// How the recorder behaves.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Bytes of each body kept in the snapshot (the rest streams through, counted).
    pub max_body: usize,
    /// Header names (lower case) whose values are replaced by `[redacted]` in the snapshot.
    pub redact: Vec<String>,
    /// Keep `Authorization`, `Cookie`, `Set-Cookie`, `Proxy-Authorization` values.
    pub keep_secrets: bool,
    /// Do not verify upstream TLS certificates.
    pub insecure_upstream: bool,
    /// How the caller of each exchange is identified (hashed before redaction).
    pub caller: CallerSpec,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            redact: Vec::new(),
            keep_secrets: false,
            insecure_upstream: false,
            caller: CallerSpec::Auto,
        }
    }
}

/// Where a listener sends requests.
#[derive(Clone, Debug)]
pub enum Route {
    /// In front of one upstream (`http://host:port` or `https://…`, optionally with a base path).
    Reverse(Uri),
    /// A forward proxy: absolute-URI requests, and `CONNECT` tunnels intercepted with the CA.
    Forward,
}

enum Target {
    Reverse(Uri),
    Absolute,
    Tunnel(String),
}

type Out = UnsyncBoxBody<Bytes, hyper::Error>;
type Answer = Pin<Box<dyn Future<Output = Result<Response<Out>, Infallible>> + Send>>;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
const SECRET: &[&str] =
    &["authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key", "api-key"];

/// The recorder: upstream client, CA for interception, and the snapshot being written.
pub struct Recorder {
    cfg: RecorderConfig,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Tee<Incoming>>,
    intercept: Option<Arc<rustls::ServerConfig>>,
    writer: Mutex<Option<BackgroundWriter>>,
    conns: AtomicU64,
    seq: AtomicU64,
    recorded: AtomicU64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration for upstreams: ring, the system roots (honouring
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`), or no verification when `insecure`. Shared with every
/// outbound HTTPS client af makes (the LLM providers too).
pub fn client_tls(insecure: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let cfg = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        // The system roots; rustls-native-certs also honours SSL_CERT_FILE / SSL_CERT_DIR.
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // ALPN (h2, http/1.1) is set by the connector from the enabled HTTP versions.
    Ok(cfg)
}

fn redacted(headers: &HeaderMap, cfg: &RecorderConfig) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str();
            let secret = (!cfg.keep_secrets && SECRET.contains(&name))
                || cfg.redact.iter().any(|r| r == name);
            let value = if secret {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (name.to_owned(), value)
        })
        .collect()
}

/// The stored body; takes the captured bytes (the exchange is recorded once).
fn snap_body(c: &mut Captured) -> Option<SnapBody> {
    if c.size == 0 {
        return None;
    }
    let mut b = SnapBody::from_bytes(std::mem::take(&mut c.bytes));
    b.size = c.size;
    b.truncated = c.truncated || !c.complete;
    Some(b)
}

fn error_kind(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut text = String::new();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return ErrorKind::Refused,
                std::io::ErrorKind::TimedOut => return ErrorKind::Timeout,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof => {
                    return ErrorKind::Reset;
                }
                _ => {}
            }
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        text.push_str(&err.to_string());
        text.push(' ');
        cur = err.source();
    }
    ErrorKind::classify(&text)
}

fn full(status: StatusCode, body: String) -> Response<Out> {
    let mut r =
        Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

impl Recorder {
    /// A recorder writing to `writer`; `ca` enables `CONNECT` interception.
    pub fn new(
        cfg: RecorderConfig,
        writer: BackgroundWriter,
        ca: Option<&Arc<af_ca::Ca>>,
    ) -> Result<Arc<Self>, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_tls(cfg.insecure_upstream)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let intercept = match ca {
            Some(ca) => {
                Some(Arc::new(ca.server_config(&[b"h2", b"http/1.1"]).map_err(|e| e.to_string())?))
            }
            None => None,
        };
        Ok(Arc::new(Self {
            cfg,
            client,
            intercept,
            writer: Mutex::new(Some(writer)),
            conns: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
        }))
    }

    /// Exchanges recorded so far.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Stops recording and waits for the file to be complete; returns how many were written.
    pub fn finish(&self) -> Result<Option<u64>, SnapshotError> {
        let w = self.writer.lock().ok().and_then(|mut w| w.take());
        w.map(BackgroundWriter::finish).transpose()
    }

    fn write(&self, ex: Exchange) {
        if let Ok(w) = self.writer.lock()
            && let Some(w) = w.as_ref()
        {
            self.recorded.fetch_add(1, Ordering::Relaxed);
            w.record(ex);
        }
    }

    fn service(
        self: &Arc<Self>,
        route: Route,
        conn: u64,
        tunnel: Option<String>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Out>,
        Error = Infallible,
        Future = Answer,
    > + Clone
    + use<> {
        let rec = self.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let rec = rec.clone();
            let route = route.clone();
            let tunnel = tunnel.clone();
            Box::pin(async move {
                let target = match (&tunnel, &route) {
                    (Some(authority), _) => Target::Tunnel(authority.clone()),
                    (None, Route::Reverse(base)) => Target::Reverse(base.clone()),
                    (None, Route::Forward) if req.method() == http::Method::CONNECT => {
                        return Ok(rec.connect(req, conn));
                    }
                    (None, Route::Forward) => Target::Absolute,
                };
                Ok(rec.forward(req, target, conn).await)
            }) as Answer
        })
    }

    /// `CONNECT host:port`: 200, then — when the client starts TLS (first byte 0x16) — TLS with a
    /// leaf for the host and HTTP inside, recorded per exchange; anything else is tunnelled to
    /// the host untouched and recorded as one tunnel event (bytes each way).
    fn connect(self: &Arc<Self>, req: Request<Incoming>, conn: u64) -> Response<Out> {
        let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
            return full(
                StatusCode::BAD_REQUEST,
                r#"{"error":"CONNECT without host:port"}"#.into(),
            );
        };
        let rec = self.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let start = Timestamp::now();
            let t0 = Instant::now();
            let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
            let mut client = TokioIo::new(upgraded);
            let mut first = [0u8; 1];
            let Ok(n) = client.read(&mut first).await else { return };
            let stream = crate::prefixed::Prefixed::new(first[..n].to_vec(), client);
            match (&rec.intercept, first[0]) {
                (Some(cfg), 0x16) if n == 1 => {
                    let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg.clone()).accept(stream).await
                    else {
                        return;
                    };
                    let svc = rec.service(Route::Forward, conn, Some(authority));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                }
                _ => rec.raw_tunnel(stream, authority, conn, start, t0).await,
            }
        });
        Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())
    }

    /// Copies bytes both ways between the client and `authority`, then records the tunnel.
    async fn raw_tunnel<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        &self,
        mut client: S,
        authority: String,
        conn: u64,
        start: Timestamp,
        t0: Instant,
    ) {
        let mut ex = Exchange {
            id: ExchangeId::new(format!(
                "{:016x}",
                (start.as_nanos() as u64) ^ (self.seq.fetch_add(1, Ordering::Relaxed) << 48)
            )),
            service: None,
            direction: af_snapshot::Direction::Outbound,
            conn_id: Some(format!("c{conn}")),
            caller: None,
            request: SnapRequest {
                method: "CONNECT".into(),
                url: format!("tcp://{authority}"),
                http_version: None,
                headers: Vec::new(),
                body: None,
            },
            response: None,
            error: None,
            timing: Timing::new(start, None),
            tags: [("af.record".to_owned(), serde_json::json!("tunnel-raw"))].into_iter().collect(),
        };
        match tokio::net::TcpStream::connect(&authority).await {
            Ok(mut upstream) => {
                let (up, down) = tokio::io::copy_bidirectional(&mut client, &mut upstream)
                    .await
                    .unwrap_or((0, 0));
                ex.response = Some(SnapResponse {
                    status: 200,
                    status_text: Some("Connection Established".into()),
                    http_version: None,
                    headers: Vec::new(),
                    body: None,
                });
                ex.tags.insert("af.bytes_up".into(), serde_json::json!(up));
                ex.tags.insert("af.bytes_down".into(), serde_json::json!(down));
            }
            Err(e) => {
                ex.error = Some(TransportError { kind: error_kind(&e), message: e.to_string() });
            }
        }
        ex.timing.duration_ns = Some(t0.elapsed().as_nanos() as u64);
        self.write(ex);
    }

    async fn forward(
        self: Arc<Self>,
        req: Request<Incoming>,
        target: Target,
        conn: u64,
    ) -> Response<Out> {
        let start = Timestamp::now();
        let t0 = Instant::now();
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let (mode, url) = match &target {
            Target::Reverse(base) => {
                let prefix = base.path().trim_end_matches('/');
                (
                    "reverse",
                    format!(
                        "{}://{}{prefix}{path}",
                        base.scheme_str().unwrap_or("http"),
                        base.authority().map_or("", |a| a.as_str())
                    ),
                )
            }
            Target::Absolute => {
                if parts.uri.scheme().is_none() || parts.uri.authority().is_none() {
                    return full(
                        StatusCode::BAD_REQUEST,
                        r#"{"error":"a forward proxy needs absolute URIs (or CONNECT)"}"#.into(),
                    );
                }
                ("forward", parts.uri.to_string())
            }
            Target::Tunnel(authority) => {
                let host = authority.strip_suffix(":443").unwrap_or(authority);
                ("tunnel", format!("https://{host}{path}"))
            }
        };
        let Ok(uri) = url.parse::<Uri>() else {
            return full(
                StatusCode::BAD_REQUEST,
                format!(r#"{{"error":"bad target URL {url:?}"}}"#),
            );
        };
        // The record sees the request as the client sent it, secrets redacted; the caller is
        // derived before redaction.
        let mut shown = redacted(&parts.headers, &self.cfg);
        let probe = Exchange {
            id: ExchangeId::new(String::new()),
            service: None,
            direction: af_snapshot::Direction::Outbound,
            conn_id: None,
            caller: None,
            request: SnapRequest {
                method: parts.method.to_string(),
                url: url.clone(),
                http_version: None,
                // Only what can identify a caller: no need to copy every header twice.
                headers: parts
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        af_snapshot::KEY_HEADERS.contains(&k.as_str())
                            || matches!(&self.cfg.caller, CallerSpec::Header(h) if h.eq_ignore_ascii_case(k.as_str()))
                    })
                    .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
                body: None,
            },
            response: None,
            error: None,
            timing: Timing::new(start, None),
            tags: Default::default(),
        };
        let caller = self.cfg.caller.caller_of(&probe);
        shown.retain(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()));
        let version = format!("{:?}", parts.version);
        for h in HOP_BY_HOP {
            parts.headers.remove(*h);
        }
        if let (Target::Reverse(_), Some(a)) = (&target, uri.authority())
            && let Ok(v) = http::HeaderValue::from_str(a.as_str())
        {
            parts.headers.insert(http::header::HOST, v);
        }
        parts.uri = uri;
        // The client's HTTP version is its own business; the upstream connection negotiates.
        parts.version = http::Version::HTTP_11;
        let req_seen = Arc::new(Mutex::new(Captured::default()));
        let method = parts.method.to_string();
        // The parts move into the upstream request: no per-request copy of the header map.
        let upstream =
            Request::from_parts(parts, Tee::new(body, self.cfg.max_body, req_seen.clone(), None));
        let id = ExchangeId::new(format!(
            "{:016x}",
            (start.as_nanos() as u64) ^ (self.seq.fetch_add(1, Ordering::Relaxed) << 48)
        ));
        let base = Exchange {
            id,
            service: None,
            direction: af_snapshot::Direction::Outbound,
            conn_id: Some(format!("c{conn}")),
            caller,
            request: SnapRequest {
                method,
                url,
                http_version: Some(version),
                headers: shown,
                body: None,
            },
            response: None,
            error: None,
            timing: Timing::new(start, None),
            tags: [("af.record".to_owned(), serde_json::json!(mode))].into_iter().collect(),
        };
        // If the client goes away before the upstream answers, hyper drops this future: the
        // guard still records the exchange, as the client gave up (nothing is lost silently).
        let mut pending =
            Pending { rec: Some(self.clone()), ex: Some(base), t0, req_seen: req_seen.clone() };
        match self.client.request(upstream).await {
            Ok(resp) => {
                let base = pending.take();
                let ttfb = t0.elapsed().as_nanos() as u64;
                let (mut rparts, rbody) = resp.into_parts();
                let rshown: Vec<(String, String)> = redacted(&rparts.headers, &self.cfg)
                    .into_iter()
                    .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
                    .collect();
                for h in HOP_BY_HOP {
                    rparts.headers.remove(*h);
                }
                let status = rparts.status.as_u16();
                let resp_version = format!("{:?}", rparts.version);
                let resp_seen = Arc::new(Mutex::new(Captured::default()));
                let rec = self.clone();
                let seen = resp_seen.clone();
                let done = Box::new(move |complete: bool| {
                    let mut ex = base;
                    ex.timing.duration_ns = Some(t0.elapsed().as_nanos() as u64);
                    ex.timing.ttfb_ns = Some(ttfb);
                    ex.request.body = req_seen.lock().ok().and_then(|mut c| snap_body(&mut c));
                    ex.response = Some(SnapResponse {
                        status,
                        status_text: StatusCode::from_u16(status)
                            .ok()
                            .and_then(|s| s.canonical_reason())
                            .map(str::to_owned),
                        http_version: Some(resp_version),
                        headers: rshown,
                        body: seen.lock().ok().and_then(|mut c| snap_body(&mut c)),
                    });
                    if !complete {
                        ex.tags.insert("af.aborted".into(), serde_json::json!(true));
                    }
                    rec.write(ex);
                });
                let body = Tee::new(rbody, self.cfg.max_body, resp_seen, Some(done)).boxed_unsync();
                Response::from_parts(rparts, body)
            }
            Err(e) => {
                let kind = error_kind(&e);
                let mut ex = pending.take();
                ex.timing.duration_ns = Some(t0.elapsed().as_nanos() as u64);
                ex.request.body = req_seen.lock().ok().and_then(|mut c| snap_body(&mut c));
                let message = format!(
                    "{e:#}: {}",
                    std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default()
                );
                ex.error = Some(TransportError { kind, message: message.clone() });
                self.write(ex);
                full(StatusCode::BAD_GATEWAY, serde_json::json!({"error": "upstream failed", "kind": kind.as_str(), "detail": message}).to_string())
            }
        }
    }
}

/// An exchange waiting for the upstream's answer. Dropped with it still inside (the client
/// disconnected, hyper cancelled the request), it is recorded as aborted by the client.
struct Pending {
    rec: Option<Arc<Recorder>>,
    ex: Option<Exchange>,
    t0: Instant,
    req_seen: Arc<Mutex<Captured>>,
}

impl Pending {
    /// The exchange, now that the upstream answered (or failed): nothing left to record here.
    fn take(&mut self) -> Exchange {
        self.rec = None;
        // Always `Some` until taken, and taken once.
        self.ex.take().unwrap_or_else(|| unreachable!("exchange taken twice"))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let (Some(rec), Some(mut ex)) = (self.rec.take(), self.ex.take()) else { return };
        ex.timing.duration_ns = Some(self.t0.elapsed().as_nanos() as u64);
        ex.request.body = self.req_seen.lock().ok().and_then(|mut c| snap_body(&mut c));
        ex.error = Some(TransportError {
            kind: af_snapshot::ErrorKind::Aborted,
            message: "the client disconnected before the upstream answered".into(),
        });
        rec.write(ex);
    }
}

/// Serves `route` on `listener` until `shutdown`, recording into `rec`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rec: Arc<Recorder>,
    route: Route,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    af_net::serve(listener, None, shutdown, || {
        let conn = rec.conns.fetch_add(1, Ordering::Relaxed) + 1;
        rec.service(route.clone(), conn, None)
    })
    .await
}
