//! The HTTP side: OTLP/HTTP (`/v1/logs`, `/v1/traces`), native JSON Lines (`/v1/exchanges`,
//! what `af record --push` sends), the JSON API under `/api` (described by `/openapi.json`,
//! committed as `schemas/serve.openapi.json`), `/metrics` and the page.

// Handlers answer early with a ready `Response`; boxing it in every `Err` would only add noise.
#![allow(clippy::result_large_err)]

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::ingest::{Refusal, ingest};
use crate::reply::{check, error};

async fn authorise(
    State(shared): S,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Webhooks carry their provider's signature instead (checked by their handler).
    let path = req.uri().path();
    if path != "/healthz"
        && !path.starts_with("/api/hooks/")
        && let Err(r) = check(&shared, req.headers())
    {
        return r;
    }
    next.run(req).await
}

/// The committed OpenAPI document.
pub const OPENAPI: &str = include_str!("../../../schemas/serve.openapi.json");

type S = State<Arc<Shared>>;

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.cfg.max_body;
    Router::new()
        .route("/v1/logs", post(otlp_logs))
        .route("/v1/traces", post(otlp_traces))
        .route("/v1/exchanges", post(exchanges))
        .route("/api/services", get(services))
        .route("/api/findings", get(findings))
        .route("/api/findings/{fp}", get(finding))
        .route("/api/findings/{fp}/evidence", get(evidence))
        .route("/api/findings/{fp}/suppress", post(suppress))
        .route("/api/findings/{fp}/verify", post(verify))
        .route("/api/windows", get(windows))
        .route("/api/deploys", get(deploys).post(add_deploy))
        .route("/api/verifications", get(verifications))
        .route("/api/runs", get(crate::hooks::runs).post(crate::hooks::enqueue))
        .route("/api/runs/{id}", get(crate::hooks::run))
        .route("/api/runs/{id}/{verb}", post(crate::hooks::steer))
        .route("/api/hooks/{provider}", post(crate::hooks::forge_hook))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(crate::page::index))
        .route("/findings/{fp}", get(crate::page::finding))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route (see /openapi.json)") })
        // Every route but /healthz needs the token: one layer, so no handler can forget it.
        .layer(axum::middleware::from_fn_with_state(shared.clone(), authorise))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// The body, un-gzipped (bounded by the body limit), and whether it is protobuf or JSON.
fn body_of(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Encoding, Vec<u8>), Response> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let enc = match ct.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            shared.metrics.refuse_request("content_type");
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type `{ct}` is not OTLP: use application/x-protobuf or application/json"
                ),
            ));
        }
    };
    let coding =
        headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let bytes = match coding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => body.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            let limit = shared.cfg.max_body as u64;
            let r = flate2::read::GzDecoder::new(&body[..]).take(limit + 1).read_to_end(&mut out);
            match r {
                Ok(_) if out.len() as u64 > limit => {
                    shared.metrics.refuse_request("too_large");
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the body inflates past {limit} bytes"),
                    ));
                }
                Ok(_) => out,
                Err(e) => {
                    shared.metrics.refuse_request("bad_encoding");
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!("the body is not valid gzip: {e}"),
                    ));
                }
            }
        }
        other => {
            shared.metrics.refuse_request("bad_encoding");
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding `{other}` is not supported (gzip or none)"),
            ));
        }
    };
    Ok((enc, bytes))
}

fn refusal(shared: &Shared, r: Refusal) -> Response {
    match r {
        Refusal::Full { service, retry_after_s } => {
            shared.metrics.refuse_request("buffer_full");
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the buffer of service `{service}` is full: nothing of this request was stored; retry after {retry_after_s} s"
                ),
            );
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            resp
        }
        Refusal::Io(m) => error(StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

async fn otlp_logs(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    otlp(shared, headers, body, true).await
}

async fn otlp_traces(State(shared): S, headers: HeaderMap, body: Bytes) -> Response {
    otlp(shared, headers, body, false).await
}

async fn otlp(shared: Arc<Shared>, headers: HeaderMap, body: Bytes, logs: bool) -> Response {
    let (enc, bytes) = match body_of(&shared, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let decoded = tokio::task::spawn_blocking(move || match (logs, enc) {
        (true, Encoding::Protobuf) => af_intake::otlp::logs_from_proto(&bytes),
        (true, Encoding::Json) => af_intake::otlp::logs_from_json(&bytes),
        (false, Encoding::Protobuf) => af_intake::otlp::traces_from_proto(&bytes),
        (false, Encoding::Json) => af_intake::otlp::traces_from_json(&bytes),
    })
    .await;
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            shared.metrics.refuse_request("malformed");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        Err(e) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, format!("decoder task failed: {e}"));
        }
    };
    let source = match (logs, enc) {
        (true, Encoding::Protobuf) => "otlp-http-logs-protobuf",
        (true, Encoding::Json) => "otlp-http-logs-json",
        (false, Encoding::Protobuf) => "otlp-http-traces-protobuf",
        (false, Encoding::Json) => "otlp-http-traces-json",
    };
    let ack = match ingest(&shared, source, decoded).await {
        Ok(a) => a,
        Err(r) => return refusal(&shared, r),
    };
    let n = ack.rejected.len() as i64;
    let msg = af_intake::rejection_message(&ack.rejected);
    match (logs, enc) {
        (true, _) => {
            let resp = ExportLogsServiceResponse {
                partial_success: (n > 0).then_some(ExportLogsPartialSuccess {
                    rejected_log_records: n,
                    error_message: msg,
                }),
            };
            otlp_response(enc, resp.encode_to_vec(), || serde_json::to_vec(&resp))
        }
        (false, _) => {
            let resp = ExportTraceServiceResponse {
                partial_success: (n > 0)
                    .then_some(ExportTracePartialSuccess { rejected_spans: n, error_message: msg }),
            };
            otlp_response(enc, resp.encode_to_vec(), || serde_json::to_vec(&resp))
        }
    }
}

fn otlp_response(
    enc: Encoding,
    proto: Vec<u8>,
    json: impl FnOnce() -> serde_json::Result<Vec<u8>>,
) -> Response {
    match enc {
        Encoding::Protobuf => {
            ([(header::CONTENT_TYPE, "application/x-protobuf")], proto).into_response()
        }
        Encoding::Json => match json() {
            Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    }
}

#[derive(Deserialize)]
struct ServiceQuery {
    service: Option<String>,
}

async fn exchanges(State(shared): S, Query(q): Query<ServiceQuery>, body: Bytes) -> Response {
    let service = q.service.unwrap_or_else(|| "unknown".into());
    let decoded = match tokio::task::spawn_blocking(move || {
        af_intake::native_lines(&body, &service)
    })
    .await
    {
        Ok(d) => d,
        Err(e) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, format!("decoder task failed: {e}"));
        }
    };
    match ingest(&shared, "native", decoded).await {
        Ok(ack) => {
            let status = if ack.accepted == 0 && !ack.rejected.is_empty() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, axum::Json(ack)).into_response()
        }
        Err(r) => refusal(&shared, r),
    }
}

fn ledger_error(e: af_ledger::LedgerError) -> Response {
    match e {
        af_ledger::LedgerError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn services(State(shared): S) -> Response {
    let mut out = Vec::new();
    let names = match shared.ledger.services().await {
        Ok(n) => n,
        Err(e) => return ledger_error(e),
    };
    for s in names {
        let series = shared.ledger.endpoint_series(&s, 2000).await.unwrap_or_default();
        let windows: std::collections::BTreeSet<i64> = series.iter().map(|(w, _)| *w).collect();
        out.push(json!({ "service": s, "windows": windows.len(), "endpoints": series.iter().map(|(w, e)| json!({"window_ns": w, "row": e})).collect::<Vec<_>>() }));
    }
    axum::Json(out).into_response()
}

#[derive(Deserialize)]
struct FindingsQuery {
    state: Option<String>,
    service: Option<String>,
}

async fn findings(State(shared): S, Query(q): Query<FindingsQuery>) -> Response {
    let state = match q.state.as_deref().map(str::parse::<af_ledger::State>).transpose() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match shared.ledger.findings(state, q.service.as_deref()).await {
        Ok(f) => axum::Json(f).into_response(),
        Err(e) => ledger_error(e),
    }
}

async fn finding(State(shared): S, Path(fp): Path<String>) -> Response {
    match shared.ledger.finding_detail(&fp).await {
        Ok(d) => axum::Json(d).into_response(),
        Err(e) => ledger_error(e),
    }
}

async fn evidence(State(shared): S, Path(fp): Path<String>) -> Response {
    let (f, _) = match shared.ledger.finding(&fp).await {
        Ok(x) => x,
        Err(e) => return ledger_error(e),
    };
    let Some(digest) = f.evidence else {
        return error(StatusCode::NOT_FOUND, "this finding has no evidence stored");
    };
    let e = match shared.ledger.evidence(&digest).await {
        Ok(Some(e)) if e.deleted.is_none() => e,
        Ok(_) => {
            return error(StatusCode::GONE, format!("evidence {digest} was deleted by retention"));
        }
        Err(e) => return ledger_error(e),
    };
    match tokio::fs::read(&e.path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/zstd".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}.jsonl.zst\"",
                        digest.trim_start_matches("sha256:")
                    ),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(err) => error(StatusCode::GONE, format!("{}: {err}", e.path.display())),
    }
}

#[derive(Deserialize)]
struct SuppressBody {
    reason: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

async fn suppress(State(shared): S, Path(fp): Path<String>, body: Bytes) -> Response {
    let b: SuppressBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    if b.reason.trim().is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "reason: must not be empty");
    }
    let until = match b.until.as_deref().map(af_snapshot::Timestamp::parse).transpose() {
        Ok(u) => u.map(af_snapshot::Timestamp::as_nanos),
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("until: not an RFC 3339 time: {e}"),
            );
        }
    };
    match shared.ledger.suppress(&fp, &b.reason, b.owner.as_deref().unwrap_or(""), until).await {
        Ok(f) => axum::Json(f).into_response(),
        Err(e) => ledger_error(e),
    }
}

#[derive(Deserialize, Default)]
struct VerifyBody {
    #[serde(default)]
    since: Option<String>,
}

async fn verify(State(shared): S, Path(fp): Path<String>, body: Bytes) -> Response {
    let b: VerifyBody = if body.is_empty() {
        VerifyBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    match shared.ledger.verify_finding(&fp, b.since.as_deref()).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => ledger_error(e),
    }
}

#[derive(Deserialize)]
struct WindowsQuery {
    service: Option<String>,
    limit: Option<i64>,
}

async fn windows(State(shared): S, Query(q): Query<WindowsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    match shared.ledger.windows(q.service.as_deref(), limit).await {
        Ok(w) => axum::Json(w).into_response(),
        Err(e) => ledger_error(e),
    }
}

async fn deploys(State(shared): S, Query(q): Query<ServiceQuery>) -> Response {
    match shared.ledger.deploys(q.service.as_deref()).await {
        Ok(d) => axum::Json(d).into_response(),
        Err(e) => ledger_error(e),
    }
}

#[derive(Deserialize)]
struct DeployBody {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

async fn add_deploy(State(shared): S, body: Bytes) -> Response {
    let b: DeployBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let at = match b.at.as_deref().map(af_snapshot::Timestamp::parse).transpose() {
        Ok(t) => t.unwrap_or_else(af_snapshot::Timestamp::now).as_nanos(),
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("at: not an RFC 3339 time: {e}"),
            );
        }
    };
    match shared.ledger.add_deploy(b.service.as_deref(), at, b.sha.as_deref()).await {
        Ok(d) => (StatusCode::CREATED, axum::Json(d)).into_response(),
        Err(e) => ledger_error(e),
    }
}

async fn verifications(State(shared): S) -> Response {
    match shared.ledger.verifications(200).await {
        Ok(v) => axum::Json(
            v.into_iter()
                .map(|(fp, at, outcome, report)| json!({"fingerprint": fp, "at_ns": at, "outcome": outcome, "report": report}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => ledger_error(e),
    }
}

async fn metrics(State(shared): S) -> Response {
    let counts = shared.ledger.finding_counts().await.unwrap_or_default();
    let mut body = shared.metrics.render(&counts);
    // Shared windows: what every replica has stored and no replica has analysed yet.
    if shared.ledger.shared_windows()
        && let Ok(n) = shared.ledger.pending_records().await
    {
        body.push_str(&format!(
            "# HELP af_records_pending Records stored in the shared ledger whose window is not yet analysed (all replicas).\n# TYPE af_records_pending gauge\naf_records_pending {n}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
