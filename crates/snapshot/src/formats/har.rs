//! HAR 1.2 import and export (browsers' "Save all as HAR", mitmproxy's `hardump`, Charles, ...).
//!
//! Import keeps `startedDateTime`, `time`, `timings`, `request`, `response`, `connection`,
//! `serverIPAddress`, `pageref` and every `_`-prefixed custom field (as tags). A response with
//! status 0 is the browsers' way of saying "no response": it becomes a transport error, never a
//! status. Export writes one `_af` object per entry for what HAR cannot say (id, caller,
//! direction, error kind, exact time to first byte, non-`_` tags), so native → HAR → native is
//! lossless.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::native::json_message;
use crate::error::{Location, RecordError, SnapshotError};
use crate::id::ExchangeId;
use crate::model::{
    Body, BodyData, Direction, ErrorKind, Exchange, Headers, Phases, Request, Response, Tags,
    Timing, TransportError, UrlParts,
};
use crate::read::Sink;
use crate::time::Timestamp;

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    log: Log<'a>,
}

#[derive(Deserialize)]
struct Log<'a> {
    #[serde(borrow)]
    entries: Vec<&'a RawValue>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    started_date_time: String,
    #[serde(default)]
    time: Option<f64>,
    request: HarRequest,
    response: HarResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timings: Option<HarTimings>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "serverIPAddress")]
    server_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pageref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "_af")]
    af: Option<AfExtra>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarRequest {
    method: String,
    url: String,
    #[serde(default)]
    http_version: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    query_string: Vec<NameValue>,
    #[serde(default)]
    cookies: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    post_data: Option<PostData>,
    #[serde(default = "minus_one")]
    headers_size: i64,
    #[serde(default = "minus_one")]
    body_size: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    #[serde(default)]
    mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    params: Vec<Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarResponse {
    status: i64,
    #[serde(default)]
    status_text: String,
    #[serde(default)]
    http_version: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    cookies: Vec<Value>,
    #[serde(default)]
    content: Content,
    #[serde(default, rename = "redirectURL")]
    redirect_url: String,
    #[serde(default = "minus_one")]
    headers_size: i64,
    #[serde(default = "minus_one")]
    body_size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "_error")]
    error: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Content {
    #[serde(default)]
    size: i64,
    #[serde(default)]
    mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct HarTimings {
    #[serde(default = "minus_one_f")]
    blocked: f64,
    #[serde(default = "minus_one_f")]
    dns: f64,
    #[serde(default = "minus_one_f")]
    connect: f64,
    #[serde(default = "minus_one_f")]
    ssl: f64,
    #[serde(default)]
    send: f64,
    #[serde(default)]
    wait: f64,
    #[serde(default)]
    receive: f64,
}

/// What HAR cannot carry, written by `af` and read back.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AfExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<ExchangeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<TransportError>,
    /// The capture ended before a response or error: HAR's status 0 without `_error`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    incomplete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    no_duration: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttfb_ns: Option<u64>,
    /// `timings` was made up for HAR's sake; the exchange had no phase breakdown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    synthetic_timings: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_body: Option<BodyMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_body: Option<BodyMeta>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tags: Tags,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyMeta {
    size: u64,
    #[serde(default)]
    truncated: bool,
}

fn minus_one() -> i64 {
    -1
}
fn minus_one_f() -> f64 {
    -1.0
}

/// Line number (1-based) of byte `offset` in `text`.
fn line_of(text: &[u8], offset: usize) -> u64 {
    memchr::memchr_iter(b'\n', &text[..offset.min(text.len())]).count() as u64 + 1
}

pub(crate) fn parse(
    path: &Path,
    reader: Box<dyn Read + Send>,
    sink: &mut Sink<'_>,
) -> Result<(), SnapshotError> {
    let bytes = super::read_whole(path, reader)?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let doc: Doc<'_> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        let loc = Location {
            column: Some(inner.column() as u64),
            ..Location::file(path).at_line(inner.line() as u64)
        };
        let field = e.path().to_string();
        SnapshotError::Record(RecordError::new(
            loc,
            (field != ".").then_some(field),
            format!("not a HAR 1.2 document: {}", json_message(inner)),
        ))
    })?;
    let base = bytes.as_ptr() as usize;
    for (i, raw) in doc.log.entries.iter().enumerate() {
        let start = raw.get().as_ptr() as usize - base;
        let first_line = line_of(&bytes, start);
        let loc = |line: u64, column: Option<u64>| Location {
            column,
            record: Some(format!("entry {i}")),
            ..Location::file(path).at_line(line)
        };
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let entry: Entry = match serde_path_to_error::deserialize(&mut de) {
            Ok(e) => e,
            Err(e) => {
                let inner = e.inner();
                let message = json_message(inner);
                let mut field = match e.path().to_string().as_str() {
                    "." => format!("log.entries[{i}]"),
                    p => format!("log.entries[{i}].{p}"),
                };
                // serde reports a missing field at the end of its parent; name the field itself
                // and point at the start of the entry instead.
                let (line, column) =
                    match message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`'))
                    {
                        Some(name) => {
                            field = format!("{field}.{name}");
                            (first_line, None)
                        }
                        None => (first_line + inner.line() as u64 - 1, Some(inner.column() as u64)),
                    };
                if !sink.bad(RecordError::new(loc(line, column), Some(field), message)) {
                    return Ok(());
                }
                continue;
            }
        };
        let rec = to_exchange(entry, i).map_err(|(field, msg)| {
            RecordError::new(loc(first_line, None), Some(format!("log.entries[{i}].{field}")), msg)
        });
        if !sink.push(rec, || loc(first_line, None)) {
            return Ok(());
        }
    }
    Ok(())
}

fn ms_to_ns(ms: f64) -> Option<u64> {
    (ms >= 0.0 && ms.is_finite()).then(|| (ms * 1e6).round() as u64)
}

fn ns_to_ms(ns: Option<u64>) -> f64 {
    ns.map_or(-1.0, |n| n as f64 / 1e6)
}

fn headers_in(v: Vec<NameValue>) -> Headers {
    v.into_iter().map(|h| (h.name, h.value)).collect()
}

fn headers_out(h: &Headers) -> Vec<NameValue> {
    h.iter().map(|(n, v)| NameValue { name: n.clone(), value: v.clone() }).collect()
}

fn decode_text(
    text: String,
    encoding: Option<&str>,
    field: &'static str,
) -> Result<BodyData, (&'static str, String)> {
    match encoding {
        Some(e) if e.eq_ignore_ascii_case("base64") => base64::engine::general_purpose::STANDARD
            .decode(text.trim().as_bytes())
            .map(|b| Body::from_bytes(b).data)
            .map_err(|err| (field, format!("invalid base64: {err}"))),
        _ => Ok(BodyData::Text(text)),
    }
}

fn body_in(data: Option<BodyData>, declared: i64, meta: Option<BodyMeta>) -> Option<Body> {
    let stored = data.as_ref().map_or(0, |d| match d {
        BodyData::Text(t) => t.len(),
        BodyData::Binary(b) => b.len(),
        BodyData::Elided { .. } => 0,
    }) as u64;
    let (size, truncated) = match meta {
        Some(m) => (m.size.max(stored), m.truncated),
        None => {
            let declared = u64::try_from(declared).unwrap_or(0);
            // A declared size with no stored text: the tool did not keep the body.
            (declared.max(stored), declared > stored && data.is_none())
        }
    };
    if size == 0 && data.is_none() {
        return None;
    }
    Some(Body { data: data.unwrap_or(BodyData::Text(String::new())), size, truncated })
}

fn to_exchange(e: Entry, index: usize) -> Result<Exchange, (&'static str, String)> {
    let start = Timestamp::parse(&e.started_date_time)
        .map_err(|m| ("startedDateTime", format!("invalid timestamp {m}")))?;
    let af = e.af.unwrap_or_default();
    let phases = match (&e.timings, af.synthetic_timings) {
        (Some(t), false) => Some(Phases {
            blocked_ns: ms_to_ns(t.blocked),
            dns_ns: ms_to_ns(t.dns),
            connect_ns: ms_to_ns(t.connect),
            ssl_ns: ms_to_ns(t.ssl),
            send_ns: ms_to_ns(t.send),
            wait_ns: ms_to_ns(t.wait),
            receive_ns: ms_to_ns(t.receive),
        }),
        _ => None,
    };
    let ttfb_ns = af.ttfb_ns.or_else(|| {
        if af.synthetic_timings {
            return None; // our own export said: no time to first byte was known
        }
        let t = e.timings.as_ref()?;
        // `ssl` is included in `connect` per HAR 1.2.
        let before =
            [t.blocked, t.dns, t.connect, t.send, t.wait].iter().filter(|v| **v > 0.0).sum::<f64>();
        ms_to_ns(before)
    });
    let duration_ns =
        if af.no_duration { None } else { af.duration_ns.or_else(|| e.time.and_then(ms_to_ns)) };
    let ttfb_ns = match (ttfb_ns, duration_ns) {
        (Some(t), Some(d)) => Some(t.min(d)),
        (t, _) => t,
    };

    let req = e.request;
    let req_body = match req.post_data {
        Some(pd) => {
            let data = pd
                .text
                .map(|t| decode_text(t, pd.encoding.as_deref(), "request.postData.text"))
                .transpose()?;
            body_in(data, req.body_size, af.request_body)
        }
        None => body_in(None, req.body_size.max(0), af.request_body),
    };
    let request = Request {
        method: req.method,
        url: req.url,
        http_version: Some(req.http_version).filter(|v| !v.is_empty()),
        headers: headers_in(req.headers),
        body: req_body,
    };

    let res = e.response;
    let mut tags = af.tags;
    let (response, error) = if res.status == 0 {
        let error = af.error.or_else(|| {
            res.error
                .as_ref()
                .or(match e.extra.get("_error") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                })
                .map(|m| TransportError { kind: ErrorKind::classify(m), message: m.clone() })
        });
        let error = match (error, af.incomplete) {
            (Some(err), _) => Some(err),
            (None, true) => None,
            (None, false) => Some(TransportError {
                kind: ErrorKind::Other,
                message: "no response (HAR status 0)".into(),
            }),
        };
        (None, error)
    } else {
        let status = u16::try_from(res.status)
            .ok()
            .filter(|s| (100..=999).contains(s))
            .ok_or(("response.status", format!("{} is not an HTTP status", res.status)))?;
        let data = res
            .content
            .text
            .map(|t| decode_text(t, res.content.encoding.as_deref(), "response.content.text"))
            .transpose()?;
        let body = body_in(data, res.content.size.max(res.body_size), af.response_body);
        if let Some(err) = res.error {
            tags.insert("_error".into(), Value::String(err));
        }
        let response = Response {
            status,
            status_text: Some(res.status_text).filter(|s| !s.is_empty()),
            http_version: Some(res.http_version).filter(|v| !v.is_empty()),
            headers: headers_in(res.headers),
            body,
        };
        (Some(response), af.error)
    };

    for (k, v) in e.extra {
        if k.starts_with('_') && !(response.is_none() && k == "_error") {
            tags.insert(k, v);
        }
    }
    if let Some(ip) = e.server_ip_address {
        tags.insert("serverIPAddress".into(), Value::String(ip));
    }
    if let Some(p) = e.pageref {
        tags.insert("pageref".into(), Value::String(p));
    }
    let id = af.id.unwrap_or_else(|| {
        ExchangeId::derive(&[
            b"har",
            e.started_date_time.as_bytes(),
            request.method.as_bytes(),
            request.url.as_bytes(),
            &(index as u64).to_le_bytes(),
        ])
    });
    Ok(Exchange {
        id,
        service: af.service,
        direction: af.direction.unwrap_or_default(),
        conn_id: e.connection,
        caller: af.caller,
        request,
        response,
        error,
        timing: Timing { start, duration_ns, ttfb_ns, phases },
        tags,
    })
}

fn body_out(body: Option<&Body>) -> (Option<String>, Option<String>, i64, Option<BodyMeta>) {
    match body {
        None => (None, None, 0, None),
        Some(b) => {
            let (text, enc) = match &b.data {
                // HarWriter::write refuses elided bodies before getting here.
                BodyData::Elided { .. } => {
                    return (None, None, i64::try_from(b.size).unwrap_or(i64::MAX), None);
                }
                BodyData::Text(t) => (t.clone(), None),
                BodyData::Binary(bytes) => (
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                    Some("base64".to_owned()),
                ),
            };
            let meta = (b.truncated || b.size != b.bytes().len() as u64)
                .then_some(BodyMeta { size: b.size, truncated: b.truncated });
            (Some(text), enc, i64::try_from(b.size).unwrap_or(i64::MAX), meta)
        }
    }
}

fn to_entry(ex: &Exchange) -> Entry {
    let mut af = AfExtra {
        id: Some(ex.id.clone()),
        service: ex.service.clone(),
        direction: (ex.direction != Direction::Outbound).then_some(ex.direction),
        caller: ex.caller.clone(),
        error: ex.error.clone(),
        incomplete: ex.response.is_none() && ex.error.is_none(),
        no_duration: ex.timing.duration_ns.is_none(),
        ttfb_ns: ex.timing.ttfb_ns,
        synthetic_timings: ex.timing.phases.is_none(),
        ..AfExtra::default()
    };
    let mut extra = BTreeMap::new();
    let mut server_ip = None;
    let mut pageref = None;
    for (k, v) in &ex.tags {
        match (k.as_str(), v) {
            ("serverIPAddress", Value::String(s)) => server_ip = Some(s.clone()),
            ("pageref", Value::String(s)) => pageref = Some(s.clone()),
            ("_error", _) if ex.response.is_none() => {
                af.tags.insert(k.clone(), v.clone());
            }
            (k, _) if k.starts_with('_') && k != "_af" => {
                extra.insert(k.to_owned(), v.clone());
            }
            _ => {
                af.tags.insert(k.clone(), v.clone());
            }
        }
    }
    let (req_text, req_enc, req_size, req_meta) = body_out(ex.request.body.as_ref());
    af.request_body = req_meta;
    let mime = |h: &Headers| crate::model::header(h, "content-type").unwrap_or("").to_owned();
    let parts = UrlParts::split(&ex.request.url);
    let query_string = parts
        .query
        .map(|q| {
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (n, v) = kv.split_once('=').unwrap_or((kv, ""));
                    NameValue { name: n.to_owned(), value: v.to_owned() }
                })
                .collect()
        })
        .unwrap_or_default();
    let request = HarRequest {
        method: ex.request.method.clone(),
        url: ex.request.url.clone(),
        http_version: ex.request.http_version.clone().unwrap_or_default(),
        headers: headers_out(&ex.request.headers),
        query_string,
        cookies: Vec::new(),
        post_data: req_text.map(|text| PostData {
            mime_type: mime(&ex.request.headers),
            text: Some(text),
            encoding: req_enc,
            params: Vec::new(),
        }),
        headers_size: -1,
        body_size: req_size,
    };
    let response = match &ex.response {
        Some(r) => {
            let (text, encoding, size, meta) = body_out(r.body.as_ref());
            af.response_body = meta;
            HarResponse {
                status: i64::from(r.status),
                status_text: r.status_text.clone().unwrap_or_default(),
                http_version: r.http_version.clone().unwrap_or_default(),
                headers: headers_out(&r.headers),
                cookies: Vec::new(),
                content: Content { size, mime_type: mime(&r.headers), text, encoding },
                redirect_url: crate::model::header(&r.headers, "location").unwrap_or("").to_owned(),
                headers_size: -1,
                body_size: size,
                error: None,
            }
        }
        None => HarResponse {
            status: 0,
            status_text: String::new(),
            http_version: String::new(),
            headers: Vec::new(),
            cookies: Vec::new(),
            content: Content::default(),
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
            error: ex.error.as_ref().map(|e| e.message.clone()),
        },
    };
    let timings = match &ex.timing.phases {
        Some(p) => HarTimings {
            blocked: ns_to_ms(p.blocked_ns),
            dns: ns_to_ms(p.dns_ns),
            connect: ns_to_ms(p.connect_ns),
            ssl: ns_to_ms(p.ssl_ns),
            send: ns_to_ms(p.send_ns).max(0.0),
            wait: ns_to_ms(p.wait_ns).max(0.0),
            receive: ns_to_ms(p.receive_ns).max(0.0),
        },
        None => {
            let d = ex.timing.duration_ns.unwrap_or(0);
            let w = ex.timing.ttfb_ns.unwrap_or(d).min(d);
            HarTimings {
                blocked: -1.0,
                dns: -1.0,
                connect: -1.0,
                ssl: -1.0,
                send: 0.0,
                wait: ns_to_ms(Some(w)),
                receive: ns_to_ms(Some(d - w)),
            }
        }
    };
    let time = ex.timing.duration_ns.map_or(0.0, |d| d as f64 / 1e6);
    // `time` in ms loses nothing below 2^53 ns, but say it exactly anyway when it would not round-trip.
    if ex.timing.duration_ns.is_some_and(|d| ms_to_ns(d as f64 / 1e6) != Some(d)) {
        af.duration_ns = ex.timing.duration_ns;
    }
    Entry {
        started_date_time: ex.timing.start.to_rfc3339(),
        time: Some(time),
        request,
        response,
        timings: Some(timings),
        server_ip_address: server_ip,
        connection: ex.conn_id.clone(),
        pageref,
        af: Some(af),
        extra,
    }
}

/// Writes a HAR 1.2 file entry by entry (never the whole log in memory).
pub struct HarWriter {
    path: PathBuf,
    out: BufWriter<File>,
    first: bool,
}

impl HarWriter {
    /// Creates `path` and writes the log's opening.
    pub fn create(path: &Path) -> Result<Self, SnapshotError> {
        let file = File::create(path).map_err(|e| SnapshotError::io(path, e))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let head = concat!(
            "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"af\",\"version\":\"",
            env!("CARGO_PKG_VERSION"),
            "\"},\"pages\":[],\"entries\":[\n"
        );
        out.write_all(head.as_bytes()).map_err(|e| SnapshotError::io(path, e))?;
        Ok(Self { path: path.to_owned(), out, first: true })
    }

    /// Appends one entry.
    pub fn write(&mut self, ex: &Exchange) -> Result<(), SnapshotError> {
        if ex.has_elided_body() {
            return Err(SnapshotError::io(
                &self.path,
                std::io::Error::other(
                    "body was not loaded (read with bodies elided); re-read the snapshot with bodies kept",
                ),
            ));
        }
        let io = |e| SnapshotError::io(&self.path, e);
        if !self.first {
            self.out.write_all(b",\n").map_err(io)?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, &to_entry(ex))
            .map_err(|e| SnapshotError::io(&self.path, e.into()))
    }

    /// Closes the log and flushes.
    pub fn finish(mut self) -> Result<(), SnapshotError> {
        let io = |e| SnapshotError::io(&self.path, e);
        self.out.write_all(b"\n]}}\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}
