//! OTLP logs and traces → [`Record`]s.
//!
//! Logs: each log record carries one exchange in its body. Speedscale's forwarder turns an
//! RRPair into protojson, then into an OTLP key-value list, and names the service and namespace
//! in the record's attributes (`service`, `namespace`, `tag.*`); af's own exchange JSON comes as
//! a key-value list or as a JSON string. The service falls back to the resource's
//! `service.name` (and `service.namespace`).
//!
//! Traces: a span of kind CLIENT with an HTTP method (semantic conventions 1.2x:
//! `http.request.method`, `url.full` or `server.address` + `server.port` + `url.path` +
//! `url.query`, `http.response.status_code`; the older `http.method`, `http.url`,
//! `http.status_code`, `net.peer.name` too) becomes an exchange without bodies.

use af_snapshot::formats::proxymock::{RRPairValue, rrpair_from_value};
use af_snapshot::{
    Direction, ErrorKind, Exchange, ExchangeId, Request, Response, Timestamp, Timing,
    TransportError,
};
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::Value;

use crate::{DecodeError, Decoded, Record, Rejected};

/// Decodes an OTLP/HTTP or OTLP/gRPC logs export (protobuf).
pub fn logs_from_proto(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req = ExportLogsServiceRequest::decode(body)
        .map_err(|source| DecodeError::Protobuf { what: "ExportLogsServiceRequest", source })?;
    Ok(logs(&req))
}

/// Decodes an OTLP/HTTP logs export in JSON.
pub fn logs_from_json(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req: ExportLogsServiceRequest = serde_json::from_slice(body).map_err(|e| {
        DecodeError::Json { what: "ExportLogsServiceRequest", message: e.to_string() }
    })?;
    Ok(logs(&req))
}

/// Decodes an OTLP/HTTP or OTLP/gRPC traces export (protobuf).
pub fn traces_from_proto(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req = ExportTraceServiceRequest::decode(body)
        .map_err(|source| DecodeError::Protobuf { what: "ExportTraceServiceRequest", source })?;
    Ok(traces(&req))
}

/// Decodes an OTLP/HTTP traces export in JSON.
pub fn traces_from_json(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req: ExportTraceServiceRequest = serde_json::from_slice(body).map_err(|e| {
        DecodeError::Json { what: "ExportTraceServiceRequest", message: e.to_string() }
    })?;
    Ok(traces(&req))
}

/// The records of a decoded logs export.
pub fn logs(req: &ExportLogsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let mut index = 0;
    for rl in &req.resource_logs {
        let resource = rl.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let default_service = service_of(resource, "service.name", "service.namespace");
        for sl in &rl.scope_logs {
            for lr in &sl.log_records {
                match classify(lr, index) {
                    Ok(Body::Exchange(exchange)) => {
                        let service = service_of(&lr.attributes, "service", "namespace")
                            .or_else(|| exchange.service.clone())
                            .or_else(|| default_service.clone())
                            .unwrap_or_else(|| "unknown".to_owned());
                        out.records.push(Record { service, exchange: *exchange });
                    }
                    Ok(Body::Other(kind)) => out.not_http(&kind),
                    Err(r) => out.rejected.push(r),
                }
                index += 1;
            }
        }
    }
    out
}

enum Body {
    Exchange(Box<Exchange>),
    Other(String),
}

/// What a log record's body holds.
fn classify(lr: &LogRecord, index: usize) -> Result<Body, Rejected> {
    let reject = |field: Option<String>, message: String| Rejected { index, field, message };
    let body = lr
        .body
        .as_ref()
        .ok_or_else(|| reject(Some("body".into()), "no body: expected an exchange".into()))?;
    let value = match &body.value {
        Some(any_value::Value::StringValue(s)) => {
            serde_json::from_str::<Value>(s).map_err(|e| {
                reject(Some("body".into()), format!("a string that is not exchange JSON: {e}"))
            })?
        }
        Some(v @ any_value::Value::KvlistValue(_)) => to_json(Some(v)),
        Some(_) => {
            return Err(reject(
                Some("body".into()),
                "neither a key-value list nor a string: expected an RRPair or an af exchange"
                    .into(),
            ));
        }
        None => return Err(reject(Some("body".into()), "empty value".into())),
    };
    let Value::Object(map) = &value else {
        return Err(reject(Some("body".into()), "not an object".into()));
    };
    if map.contains_key("request") {
        let seed_service = service_of(&lr.attributes, "service", "namespace");
        let mut ex =
            crate::native_exchange(value).map_err(|(f, m)| reject(Some(prefixed(f)), m))?;
        if ex.service.is_none() {
            ex.service = seed_service;
        }
        return Ok(Body::Exchange(Box::new(ex)));
    }
    if map.contains_key("http") || map.contains_key("l7protocol") || map.contains_key("tech") {
        let seed = seed_of(lr, index);
        return match rrpair_from_value(value, &seed) {
            Ok(RRPairValue::Http(mut ex)) => {
                tags_into(&lr.attributes, &mut ex);
                Ok(Body::Exchange(ex))
            }
            Ok(RRPairValue::Other(kind)) => Ok(Body::Other(kind)),
            Err((field, message)) => Err(reject(
                Some(if field.is_empty() { "body".into() } else { format!("body.{field}") }),
                message,
            )),
        };
    }
    Err(reject(
        Some("body".into()),
        "not an exchange: expected an RRPair (with `http`) or an af exchange (with `request`)"
            .into(),
    ))
}

fn prefixed(field: Option<String>) -> String {
    match field {
        Some(f) => format!("body.{f}"),
        None => "body".into(),
    }
}

/// A stable seed for an RRPair without a `uuid`: its time and position.
fn seed_of(lr: &LogRecord, index: usize) -> Vec<u8> {
    let mut s = lr.time_unix_nano.to_le_bytes().to_vec();
    s.extend_from_slice(&lr.observed_time_unix_nano.to_le_bytes());
    s.extend_from_slice(&(index as u64).to_le_bytes());
    s
}

/// The forwarder's `tag.*` record attributes kept as exchange tags.
fn tags_into(attrs: &[KeyValue], ex: &mut Exchange) {
    for kv in attrs {
        if let Some(name) = kv.key.strip_prefix("tag.") {
            ex.tags
                .insert(name.to_owned(), to_json(kv.value.as_ref().and_then(|v| v.value.as_ref())));
        }
    }
}

/// `namespace/name` from the attributes called `name_key` and `ns_key`.
fn service_of(attrs: &[KeyValue], name_key: &str, ns_key: &str) -> Option<String> {
    let name = str_attr(attrs, name_key).filter(|s| !s.is_empty())?;
    Some(match str_attr(attrs, ns_key).filter(|s| !s.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    })
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        any_value::Value::IntValue(i) => Some(*i),
        any_value::Value::StringValue(s) => s.trim().parse().ok(),
        any_value::Value::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

fn first_str(attrs: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| str_attr(attrs, k).filter(|s| !s.is_empty()))
}

/// An OTLP value as JSON: key-value lists become objects, arrays arrays, bytes base64
/// (RRPair bodies are base64 in protojson already, so bytes rarely occur).
fn to_json(v: Option<&any_value::Value>) -> Value {
    match v {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map(Value::Number).unwrap_or(Value::Null)
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v: &AnyValue| to_json(v.value.as_ref())).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(
            l.values
                .iter()
                .map(|kv| {
                    (kv.key.clone(), to_json(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                })
                .collect(),
        ),
        // An index into a profile's string table: meaningless outside a profile.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

/// The records of a decoded traces export: HTTP client spans.
pub fn traces(req: &ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let mut index = 0;
    for rs in &req.resource_spans {
        let resource = rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let service = service_of(resource, "service.name", "service.namespace")
            .unwrap_or_else(|| "unknown".to_owned());
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                match client_span(span, index, &service) {
                    Ok(Some(exchange)) => {
                        out.records.push(Record { service: service.clone(), exchange });
                    }
                    Ok(None) => out.not_http("span (not an HTTP client span)"),
                    Err(r) => out.rejected.push(r),
                }
                index += 1;
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An HTTP client span as an exchange; `Ok(None)` for any other span.
fn client_span(span: &Span, index: usize, service: &str) -> Result<Option<Exchange>, Rejected> {
    let a = &span.attributes;
    let Some(method) = first_str(a, &["http.request.method", "http.method"]) else {
        return Ok(None);
    };
    if span.kind != SpanKind::Client as i32 {
        return Ok(None);
    }
    let reject =
        |field: &str, message: String| Rejected { index, field: Some(field.to_owned()), message };
    let url = match first_str(a, &["url.full", "http.url"]) {
        Some(u) => u,
        None => {
            let host = first_str(a, &["server.address", "net.peer.name", "http.host"]).ok_or_else(
                || {
                    reject(
                        "attributes",
                        "an HTTP client span without `url.full` or `server.address`".into(),
                    )
                },
            )?;
            let scheme =
                first_str(a, &["url.scheme", "http.scheme"]).unwrap_or_else(|| "http".into());
            let port = int_attr(a, "server.port").or_else(|| int_attr(a, "net.peer.port"));
            let default = if scheme == "https" { 443 } else { 80 };
            let authority = match port {
                Some(p) if p != default && !host.contains(':') => format!("{host}:{p}"),
                _ => host,
            };
            let path = first_str(a, &["url.path", "http.target"]).unwrap_or_else(|| "/".into());
            let path = if path.starts_with('/') { path } else { format!("/{path}") };
            match first_str(a, &["url.query"]) {
                Some(q) if !path.contains('?') => format!("{scheme}://{authority}{path}?{q}"),
                _ => format!("{scheme}://{authority}{path}"),
            }
        }
    };
    if span.start_time_unix_nano == 0 {
        return Err(reject("startTimeUnixNano", "missing start time".into()));
    }
    let start = i64::try_from(span.start_time_unix_nano)
        .map_err(|_| reject("startTimeUnixNano", "out of range".into()))?;
    let duration = span
        .end_time_unix_nano
        .checked_sub(span.start_time_unix_nano)
        .filter(|_| span.end_time_unix_nano != 0);
    let status =
        int_attr(a, "http.response.status_code").or_else(|| int_attr(a, "http.status_code"));
    let response = match status {
        Some(s) => Some(Response {
            status: u16::try_from(s).ok().filter(|s| (100..=999).contains(s)).ok_or_else(|| {
                reject("http.response.status_code", format!("{s} is not an HTTP status"))
            })?,
            status_text: None,
            http_version: None,
            headers: Vec::new(),
            body: None,
        }),
        None => None,
    };
    // No status and an error status on the span: the call failed before a response.
    let failed = span.status.as_ref().is_some_and(|s| s.code == 2);
    let error = (response.is_none() && failed).then(|| {
        let message = first_str(a, &["error.type", "exception.message"])
            .or_else(|| span.status.as_ref().map(|s| s.message.clone()).filter(|m| !m.is_empty()))
            .unwrap_or_default();
        TransportError { kind: transport_kind(&message), message }
    });
    let mut tags = af_snapshot::Tags::new();
    if !span.trace_id.is_empty() {
        tags.insert("trace_id".into(), Value::String(hex(&span.trace_id)));
    }
    tags.insert("source".into(), Value::String("otlp-trace".into()));
    let id = if span.span_id.is_empty() {
        ExchangeId::new(format!("{:016x}{index:04x}", span.start_time_unix_nano))
    } else {
        ExchangeId::new(hex(&span.span_id))
    };
    let ex = Exchange {
        id,
        service: Some(service.to_owned()),
        direction: Direction::Outbound,
        conn_id: None,
        caller: None,
        request: Request {
            method: method.to_ascii_uppercase(),
            url,
            http_version: first_str(a, &["network.protocol.version", "http.flavor"])
                .map(|v| format!("HTTP/{v}")),
            headers: Vec::new(),
            body: None,
        },
        response,
        error,
        timing: Timing::new(Timestamp::from_nanos(start), duration),
        tags,
    };
    ex.validate().map_err(|(field, msg)| reject(field, msg))?;
    Ok(Some(ex))
}

/// A transport error's kind from `error.type` (semantic conventions) or a message.
fn transport_kind(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    let has = |s: &str| m.contains(s);
    if has("timeout") || has("timedout") || has("deadline") {
        ErrorKind::Timeout
    } else if has("refused") {
        ErrorKind::Refused
    } else if has("reset") || has("closed") || has("eof") {
        ErrorKind::Reset
    } else if has("dns") || has("enotfound") || has("name resolution") {
        ErrorKind::Dns
    } else if has("tls") || has("certificate") || has("ssl") {
        ErrorKind::Tls
    } else if has("abort") || has("cancel") {
        ErrorKind::Aborted
    } else {
        ErrorKind::Other
    }
}
