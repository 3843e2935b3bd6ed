//! The replay server: a hyper service built in a function ([`Mock::handle`]) and bound at the
//! edge ([`serve`]). Every request is answered from the catalog (or by an emulated limit), after
//! a non-blocking delay, and journaled when its response has been written.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use af_snapshot::{
    Body as SnapBody, BodyData, CallerSpec, Exchange, ExchangeId, Request as SnapRequest,
    Response as SnapResponse, Timestamp, Timing,
};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;

use crate::catalog::{Catalog, Match, Wanted};
use crate::config::{MockConfig, Unmatched};
use crate::limits::{Held, Limiter};
use crate::live::Live;
use af_snapshot::BackgroundWriter as Journal;

/// Request bodies kept in the journal, at most (the size is always recorded).
const JOURNAL_BODY_CAP: usize = 64 * 1024;

/// The mock: catalog, configuration, limit state, counters and journal.
#[derive(Debug)]
pub struct Mock {
    catalog: Catalog,
    cfg: MockConfig,
    caller: CallerSpec,
    limiter: Limiter,
    live: Live,
    journal: std::sync::Mutex<Option<Journal>>,
    t0: Instant,
    t0_utc_ns: i64,
    seq: AtomicU64,
}

/// Why a mock could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A configuration value was invalid.
    #[error("{0}")]
    Config(String),
}

impl Mock {
    /// A mock serving `exchanges` (bodies kept) with `cfg`, journaling to `journal` if given.
    pub fn new(
        exchanges: &[Exchange],
        cfg: MockConfig,
        journal: Option<Journal>,
    ) -> Result<Arc<Self>, MockError> {
        let templater = cfg.templater(exchanges).map_err(MockError::Config)?;
        let caller = cfg.caller_key.parse::<CallerSpec>().map_err(MockError::Config)?;
        Ok(Arc::new(Self {
            // The capture's own templates, so the journal's endpoints are the snapshot's.
            catalog: Catalog::new(exchanges, templater),
            limiter: Limiter::new(cfg.limits.clone()),
            cfg,
            caller,
            live: Live::default(),
            journal: std::sync::Mutex::new(journal),
            t0: Instant::now(),
            t0_utc_ns: Timestamp::now().as_nanos(),
            seq: AtomicU64::new(0),
        }))
    }

    /// The catalog (for summaries).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Live counters.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Stops journaling and waits for every record queued so far to be written; returns how
    /// many were. Call after the server stopped: requests finishing later are not journaled.
    pub fn finish_journal(&self) -> Result<Option<u64>, af_snapshot::SnapshotError> {
        let journal = self.journal.lock().ok().and_then(|mut j| j.take());
        journal.map(Journal::finish).transpose()
    }

    fn utc(&self, t: Instant) -> Timestamp {
        Timestamp::from_nanos(self.t0_utc_ns + t.duration_since(self.t0).as_nanos() as i64)
    }

    fn mono(&self, t: Instant) -> u64 {
        t.duration_since(self.t0).as_nanos() as u64
    }

    /// Answers one request. Generic over the body so tests can call it without a socket.
    ///
    /// The request is accounted for from its arrival by a guard: if the client goes away while
    /// the body is read or the response is delayed, the future is dropped, and the guard still
    /// ends the request (in-flight count, limit slots) and journals it as aborted.
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
    ) -> Result<Response<Tracked>, Infallible>
    where
        B: Body<Data = Bytes> + Send + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let arrival = Instant::now();
        if req.uri().path() == "/__af/metrics" {
            return Ok(self.metrics_response(&req));
        }
        let inflight_at_arrival = self.live.arrive();
        let mut guard =
            Guard { mock: self.clone(), ex: None, arrival, response_start: None, held: None };
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let method = parts.method.as_str().to_owned();
        let host_header = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()));
        let host = host_header.clone().unwrap_or_else(|| "mock".into());
        let accept_encoding = parts
            .headers
            .get(http::header::ACCEPT_ENCODING)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect();
        let mut ex = Exchange {
            id: ExchangeId::new(format!("{:016x}", self.seq.fetch_add(1, Ordering::Relaxed))),
            service: None,
            direction: af_snapshot::Direction::Inbound,
            conn_id: None,
            caller: None,
            request: SnapRequest {
                method: method.clone(),
                url: format!(
                    "{}://{host}{}",
                    if parts.extensions.get::<Https>().is_some() { "https" } else { "http" },
                    parts.uri.path_and_query().map_or("/", |p| p.as_str())
                ),
                http_version: Some(format!("{:?}", parts.version)),
                headers,
                body: None,
            },
            response: None,
            error: None,
            timing: Timing::new(self.utc(arrival), None),
            tags: Default::default(),
        };
        let caller = self.caller.caller_of(&ex).unwrap_or_else(|| "(none)".into());
        ex.caller = Some(caller.clone());
        let template = self.catalog.template(&path);
        let endpoint = format!("{method} {template}");
        ex.tags.insert("af.endpoint".into(), json!(endpoint));
        ex.tags.insert("af.inflight_at_arrival".into(), json!(inflight_at_arrival));
        ex.tags.insert("af.arrival_mono_ns".into(), json!(self.mono(arrival)));
        guard.ex = Some(ex);

        let (body, body_error) = match Limited::new(body, self.cfg.max_body.max(1)).collect().await
        {
            Ok(c) => (c.to_bytes(), None),
            Err(e) => (Bytes::new(), Some(e.to_string())),
        };
        if let Some(ex) = guard.ex.as_mut()
            && !body.is_empty()
        {
            let mut b = SnapBody::from_bytes(body[..body.len().min(JOURNAL_BODY_CAP)].to_vec());
            b.size = body.len() as u64;
            b.truncated = body.len() > JOURNAL_BODY_CAP;
            ex.request.body = Some(b);
        }
        let mut tags: Vec<(&str, serde_json::Value)> = Vec::new();
        let json_ct = || vec![("content-type".to_owned(), "application/json".to_owned())];
        let (status, resp_headers, resp_body, delay, how) = if let Some(err) = body_error {
            let b = json!({"error": "request body too large or unreadable", "detail": err, "cap_bytes": self.cfg.max_body});
            (413, json_ct(), Bytes::from(b.to_string()), std::time::Duration::ZERO, "too-large")
        } else {
            match self.limiter.admit(&method, &template, &caller, arrival) {
                Err(rule) => {
                    let (headers, body) = match self.catalog.throttle(&endpoint) {
                        Some(r) => r.representation(accept_encoding.as_deref()),
                        None => (json_ct(), Bytes::from(json!({"error": {"code": 429, "message": "rate limited (emulated by af mock)"}}).to_string())),
                    };
                    let mut headers: Vec<(String, String)> = headers
                        .into_iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case("retry-after"))
                        .collect();
                    headers.push(("retry-after".into(), "1".into()));
                    tags.push((
                        "af.limit",
                        json!(format!(
                            "{}: {:?}{}",
                            rule.endpoint,
                            rule.limit,
                            if rule.per_caller { " per caller" } else { "" }
                        )),
                    ));
                    (429, headers, body, std::time::Duration::ZERO, "limited")
                }
                Ok(h) => {
                    guard.held = Some(h);
                    let nearest = self.cfg.unmatched == Unmatched::Nearest;
                    let wanted = Wanted {
                        host: host_header.as_deref(),
                        method: &method,
                        path: &path,
                        query: query.as_deref(),
                        body: &body,
                    };
                    let served =
                        |r: &crate::catalog::Recorded,
                         tags: &mut Vec<(&str, serde_json::Value)>| {
                            tags.push(("af.matched_id", json!(r.id.as_str())));
                            if r.incomplete {
                                tags.push(("af.body_incomplete", json!(true)));
                            }
                            let (h, b) = r.representation(accept_encoding.as_deref());
                            (h, b, self.cfg.latency.delay(r.duration_ns))
                        };
                    match self.catalog.lookup(wanted, self.cfg.failures, nearest) {
                        Match::Exact(r) => {
                            let (h, b, d) = served(r, &mut tags);
                            (r.status, h, b, d, "exact")
                        }
                        Match::Template(r) => {
                            let (h, b, d) = served(r, &mut tags);
                            (r.status, h, b, d, "template")
                        }
                        Match::Nearest(r, which) => {
                            tags.push(("af.nearest", json!(which)));
                            let (h, b, d) = served(r, &mut tags);
                            (r.status, h, b, d, "nearest")
                        }
                        Match::Miss(near) => {
                            let fail = self.cfg.unmatched == Unmatched::Fail;
                            let b = json!({
                                "error": "no recorded exchange matches this request",
                                "request": format!("{method} {path}{}", query.as_deref().map(|q| format!("?{q}")).unwrap_or_default()),
                                "nearest_recorded": near,
                            });
                            let mut h = json_ct();
                            if fail {
                                h.push(("x-af-unmatched".into(), "fail".into()));
                            }
                            (
                                if fail { 502 } else { 404 },
                                h,
                                Bytes::from(b.to_string()),
                                std::time::Duration::ZERO,
                                "miss",
                            )
                        }
                    }
                }
            }
        };
        // The delay counts from arrival, as the recorded duration did: reading the body and
        // matching are part of it, not added to it.
        //
        // tokio's timer fires on the first 1 ms tick at or after a deadline, so a plain deadline
        // lands 0–1 ms late (0.8 ms at p50 in the peer benchmark). Aiming half a tick early
        // centres the error on the requested delay instead.
        if !delay.is_zero() {
            let aim = (arrival + delay)
                .checked_sub(std::time::Duration::from_micros(500))
                .unwrap_or(arrival)
                .max(arrival);
            tokio::time::sleep_until(aim.into()).await;
        }
        let response_start = Instant::now();
        guard.response_start = Some(response_start);
        self.live.answered(&endpoint, status, how == "miss", how == "limited", how == "too-large");
        if let Some(ex) = guard.ex.as_mut() {
            ex.tags.insert("af.match".into(), json!(how));
            for (k, v) in tags {
                ex.tags.insert(k.into(), v);
            }
            ex.tags.insert("af.response_mono_ns".into(), json!(self.mono(response_start)));
            ex.response = Some(SnapResponse {
                status,
                status_text: None,
                http_version: None,
                headers: resp_headers.clone(),
                // Sizes only: the bytes are the recording's, already in the snapshot.
                body: (!resp_body.is_empty()).then(|| SnapBody {
                    data: BodyData::Text(String::new()),
                    size: resp_body.len() as u64,
                    truncated: true,
                    decoded: false,
                }),
            });
        }
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
        for (k, v) in &resp_headers {
            if let (Ok(name), Ok(value)) =
                (http::header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v))
            {
                builder = builder.header(name, value);
            }
        }
        let body = Tracked { inner: Full::new(resp_body), guard: Some(guard) };
        Ok(builder.body(body).unwrap_or_else(|_| {
            Response::new(Tracked::plain(Bytes::from_static(b"bad recorded headers")))
        }))
    }

    fn metrics_response<B>(&self, req: &Request<B>) -> Response<Tracked> {
        let snap = self.live.snapshot();
        let prometheus = req.uri().query().is_some_and(|q| q.contains("format=prometheus"))
            || req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/plain"));
        let (ct, body) = if prometheus {
            ("text/plain; version=0.0.4", snap.prometheus())
        } else {
            ("application/json", serde_json::to_string_pretty(&snap).unwrap_or_default())
        };
        let mut r = Response::new(Tracked::plain(Bytes::from(body)));
        r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    }
}

/// Finishes a request's bookkeeping when its response body is done (or dropped: a client that
/// disconnects mid-response still ends its request and is journaled with `af.aborted`).
struct Guard {
    mock: Arc<Mock>,
    ex: Option<Exchange>,
    arrival: Instant,
    response_start: Option<Instant>,
    held: Option<Held>,
}

impl Guard {
    fn done(&mut self, complete: bool) {
        if let Some(h) = self.held.take() {
            self.mock.limiter.release(h);
        }
        let Some(mut ex) = self.ex.take() else { return };
        self.mock.live.leave();
        let end = Instant::now();
        ex.timing.duration_ns = Some(end.duration_since(self.arrival).as_nanos() as u64);
        ex.timing.ttfb_ns =
            self.response_start.map(|t| t.duration_since(self.arrival).as_nanos() as u64);
        ex.tags.insert("af.end_mono_ns".into(), json!(self.mock.mono(end)));
        if !complete {
            ex.tags.insert("af.aborted".into(), json!(true));
            if self.response_start.is_none() {
                // The client went away before we answered: there is no response to record.
                ex.response = None;
                ex.error = Some(af_snapshot::TransportError {
                    kind: af_snapshot::ErrorKind::Reset,
                    message: "client disconnected before the response".into(),
                });
                ex.tags.insert("af.match".into(), json!("aborted"));
            }
        }
        if let Ok(j) = self.mock.journal.lock()
            && let Some(j) = j.as_ref()
        {
            j.record(ex);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.done(false);
    }
}

/// A response body that reports when it has been written.
pub struct Tracked {
    inner: Full<Bytes>,
    guard: Option<Guard>,
}

impl Tracked {
    fn plain(b: Bytes) -> Self {
        Self { inner: Full::new(b), guard: None }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r
            && let Some(mut g) = self.guard.take()
        {
            g.done(true);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Binds `addr` with a deep accept queue (4096), so a burst of thousands of connections does
/// not overflow the kernel's SYN backlog while the accept loop catches up. Call it inside a
/// tokio runtime.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// How the listener talks.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Serve HTTPS with this configuration (ALPN h2 and http/1.1).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Act as a forward proxy: answer `CONNECT host:port` and serve the tunnel as HTTPS with this
    /// configuration (a leaf for the requested host), so a program whose SDK has a hard-coded
    /// `https://` host reaches the mock through `HTTPS_PROXY`. Plain `http://` proxy requests
    /// (absolute URIs) are served whether or not this is set.
    pub intercept: Option<Arc<rustls::ServerConfig>>,
}

/// Serves `mock` on `listener` until `shutdown` resolves, then lets open requests finish
/// (at most 5 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    mock: Arc<Mock>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, mock, ServeOptions::default(), shutdown).await
}

/// Marks requests that arrived over TLS (the journal records `https://` URLs for them).
#[derive(Clone, Copy, Debug)]
struct Https;

/// The response future of [`service`].
type Answer = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

fn service(
    mock: Arc<Mock>,
    intercept: Option<Arc<rustls::ServerConfig>>,
    https: bool,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future = Answer,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        if https {
            req.extensions_mut().insert(Https);
        }
        let mock = mock.clone();
        let intercept = intercept.clone();
        Box::pin(async move {
            match intercept {
                Some(cfg) if req.method() == http::Method::CONNECT => Ok(tunnel(req, mock, cfg)),
                _ => mock.handle(req).await,
            }
        }) as Answer
    })
}

/// Accepts a CONNECT: 200, then TLS with a leaf for the requested host, then HTTP inside.
fn tunnel(
    req: Request<hyper::body::Incoming>,
    mock: Arc<Mock>,
    cfg: Arc<rustls::ServerConfig>,
) -> Response<Tracked> {
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let Ok(tls) = acceptor.accept(hyper_util::rt::TokioIo::new(upgraded)).await else { return };
        let builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        let _ = builder
            .serve_connection(hyper_util::rt::TokioIo::new(tls), service(mock, None, true))
            .await;
    });
    Response::new(Tracked::plain(Bytes::new()))
}

/// [`serve`] with TLS and/or forward-proxy interception.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    mock: Arc<Mock>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = opts.tls.map(tokio_rustls::TlsAcceptor::from);
    let on_tls = tls.is_some();
    af_net::serve(listener, tls, shutdown, || service(mock.clone(), opts.intercept.clone(), on_tls))
        .await
}
