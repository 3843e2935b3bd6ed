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
use crate::sink::Sink;
use crate::time::Timestamp;

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    log: &'a RawValue,
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
    value: Values,
}

/// A header or query value: a string in HAR 1.2; Polly.js 1.x writes a list for a header it saw
/// more than once (read as repeated headers), and some tools write numbers.
#[derive(Serialize)]
#[serde(untagged)]
enum Values {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let scalar = |v: Value| match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(D::Error::custom(format!(
                "expected a string or a list of strings, found {}",
                kind_of(&other)
            ))),
        };
        match Value::deserialize(d)? {
            Value::Array(a) => Ok(Self::Many(a.into_iter().map(scalar).collect::<Result<_, _>>()?)),
            v => Ok(Self::One(scalar(v)?)),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
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
    /// Playwright's `recordHar` with `content: "attach"`: the body is in this file beside the
    /// HAR, not in `text`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "_file")]
    file: Option<String>,
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
    /// As in [`PostData`]: the body in a file beside the HAR.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "_file")]
    file: Option<String>,
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
    /// The text is the body as it went over the wire, still content-encoded (an export that
    /// could not decode it); HAR's own meaning is decoded content.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    wire: bool,
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

/// The UTF-8 byte-order mark: HAR 1.2 says readers ignore it (Windows tools write one).
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Why an entry could not be read: the field, the message, and where (line and column inside
/// the entry when the parser knew them).
struct EntryError {
    field: String,
    message: String,
    at: Option<(u64, u64)>,
}

/// Reads one entry. HAR 1.2 fields written as `null` by real tools (Firefox's
/// `request.headersSize`, Charles's `response.redirectURL`) are read as absent, and returned so
/// that the caller can warn; only entries that fail to parse strictly pay for the second pass.
fn parse_entry(text: &str) -> Result<(Entry, Vec<String>), EntryError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let first = match serde_path_to_error::deserialize::<_, Entry>(&mut de) {
        Ok(e) => return Ok((e, Vec::new())),
        Err(e) => e,
    };
    let strict = || {
        let inner = first.inner();
        let message = json_message(inner);
        let (field, missing) = field_of(first.path().to_string(), &message);
        // serde reports a missing field at the end of its parent: point at the entry instead.
        let at = (!missing).then(|| (inner.line() as u64, inner.column() as u64));
        EntryError { field, message, at }
    };
    let Ok(mut v) = serde_json::from_str::<Value>(text) else { return Err(strict()) };
    let mut nulls = Vec::new();
    strip_nulls(&mut v, &mut String::new(), &mut nulls);
    if nulls.is_empty() {
        return Err(strict());
    }
    match serde_path_to_error::deserialize::<_, Entry>(v) {
        Ok(e) => Ok((e, nulls)),
        Err(e) => {
            let message = e.inner().to_string();
            let (field, missing) = field_of(e.path().to_string(), &message);
            let message = if missing && nulls.iter().any(|n| *n == strip_indices(&field)) {
                "is null, and HAR 1.2 requires a value here".to_owned()
            } else {
                message
            };
            Err(EntryError { field, message, at: None })
        }
    }
}

/// The field a serde error names (`request.url`), with a missing field's own name appended;
/// and whether it was missing.
fn field_of(path: String, message: &str) -> (String, bool) {
    let path = if path == "." { String::new() } else { path };
    match message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        Some(name) if path.is_empty() => (name.to_owned(), true),
        Some(name) => (format!("{path}.{name}"), true),
        None => (path, false),
    }
}

/// `request.headers[2].value` → `request.headers[].value`: the field, whatever the record.
fn strip_indices(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Removes object members whose value is `null` (recording their paths, indices stripped),
/// except inside `_`-prefixed custom fields, whose values are kept as the tool wrote them.
fn strip_nulls(v: &mut Value, path: &mut String, found: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| {
                if v.is_null() && !k.starts_with('_') {
                    let mut p = path.clone();
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                    found.push(p);
                    false
                } else {
                    true
                }
            });
            for (k, v) in m.iter_mut() {
                if k.starts_with('_') {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                strip_nulls(v, path, found);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for v in a.iter_mut() {
                let len = path.len();
                path.push_str("[]");
                strip_nulls(v, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

pub(crate) fn parse(
    path: &Path,
    reader: Box<dyn Read + Send>,
    sink: &mut Sink<'_>,
) -> Result<(), SnapshotError> {
    let whole = super::read_whole(path, reader)?;
    let bytes = whole.strip_prefix(BOM).unwrap_or(&whole);
    let at = |line: u64, column: u64| Location {
        column: Some(column),
        ..Location::file(path).at_line(line)
    };
    let not_har = |loc: Location, field: Option<String>, why: String| {
        SnapshotError::Record(RecordError::new(
            loc,
            field,
            format!("not a HAR 1.2 document: {why}"),
        ))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let doc: Doc<'_> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        // After a syntax error the path is `?`: no field is to blame.
        let field = e.path().to_string();
        not_har(
            at(inner.line() as u64, inner.column() as u64),
            (field != "." && field != "?").then_some(field),
            json_message(inner),
        )
    })?;
    let base = bytes.as_ptr() as usize;
    let offset = |raw: &RawValue| raw.get().as_ptr() as usize - base;
    // `log` must be an object: serde would also read a struct from an array, and then blame
    // the array's first element for not being `entries`.
    let log_line = line_of(bytes, offset(doc.log));
    let log_text = doc.log.get();
    if !log_text.starts_with('{') {
        let kind = serde_json::from_str::<Value>(log_text).map_or("not an object", |v| kind_of(&v));
        return Err(not_har(
            Location::file(path).at_line(log_line),
            Some("log".into()),
            format!("`log` is {kind}; expected an object with `entries`"),
        ));
    }
    let log: Log<'_> =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(log_text))
            .map_err(|e| {
                let inner = e.inner();
                let message = json_message(inner);
                let (field, missing) = field_of(e.path().to_string(), &message);
                let field =
                    if field.is_empty() { "log".to_owned() } else { format!("log.{field}") };
                let loc = if missing {
                    Location::file(path).at_line(log_line)
                } else {
                    at(log_line + inner.line() as u64 - 1, inner.column() as u64)
                };
                not_har(loc, Some(field), message)
            })?;
    let dir = path.parent();
    for (i, raw) in log.entries.iter().enumerate() {
        let first_line = line_of(bytes, offset(raw));
        let loc = |line: u64, column: Option<u64>| Location {
            column,
            record: Some(format!("entry {i}")),
            ..Location::file(path).at_line(line)
        };
        let (entry, nulls) = match parse_entry(raw.get()) {
            Ok(parsed) => parsed,
            Err(e) => {
                let field = if e.field.is_empty() {
                    format!("log.entries[{i}]")
                } else {
                    format!("log.entries[{i}].{}", e.field)
                };
                let (line, column) = match e.at {
                    Some((l, c)) => (first_line + l - 1, Some(c)),
                    None => (first_line, None),
                };
                if !sink.bad(RecordError::new(loc(line, column), Some(field), e.message)) {
                    return Ok(());
                }
                continue;
            }
        };
        for n in nulls {
            sink.warn(n, "null, read as absent", loc(first_line, None));
        }
        let mut notes = Vec::new();
        let rec = to_exchange(entry, i, dir, &mut notes).map_err(|(field, msg)| {
            RecordError::new(loc(first_line, None), Some(format!("log.entries[{i}].{field}")), msg)
        });
        for (field, message) in notes {
            sink.warn(field, message, loc(first_line, None));
        }
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
    let mut out = Headers::with_capacity(v.len());
    for h in v {
        match h.value {
            Values::One(s) => out.push((h.name, s)),
            Values::Many(vs) => out.extend(vs.into_iter().map(|s| (h.name.clone(), s))),
        }
    }
    out
}

fn headers_out(h: &Headers) -> Vec<NameValue> {
    h.iter().map(|(n, v)| NameValue { name: n.clone(), value: Values::One(v.clone()) }).collect()
}

/// The body Playwright kept in a file beside the HAR (`_file`). Only a plain file name under
/// the HAR's directory is read: a capture must not make `af` read (and the mock serve) any
/// other file on the machine.
fn sidecar(dir: Option<&Path>, name: &str) -> Result<Vec<u8>, String> {
    let rel = Path::new(name);
    let plain =
        !name.is_empty() && rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return Err(format!(
            "body file {name:?} is not a file name beside the HAR; not read, body missing"
        ));
    }
    let file = dir.unwrap_or(Path::new(".")).join(rel);
    std::fs::read(&file)
        .map_err(|e| format!("body file {} not read ({e}); body missing", file.display()))
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
    Some(Body {
        data: data.unwrap_or(BodyData::Text(String::new())),
        size,
        truncated,
        decoded: false,
    })
}

/// The stored bytes of a HAR body, `(text, encoding, _file)`: the text (base64 when `encoding`
/// says so), else the file beside the HAR; a file that cannot be read is a note (`fields` name
/// the text and the file field) and no bytes.
fn stored(
    (text, encoding, file): (Option<String>, Option<&str>, Option<String>),
    fields: (&'static str, &'static str),
    dir: Option<&Path>,
    notes: &mut Vec<(String, String)>,
) -> Result<Option<BodyData>, (&'static str, String)> {
    Ok(match (text, file) {
        (Some(t), _) => Some(decode_text(t, encoding, fields.0)?),
        (None, Some(f)) => match sidecar(dir, &f) {
            Ok(bytes) => Some(Body::from_bytes(bytes).data),
            Err(why) => {
                notes.push((fields.1.to_owned(), why));
                None
            }
        },
        (None, None) => None,
    })
}

/// True when the headers name a content coding other than `identity`.
fn content_encoded(headers: &[NameValue]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-encoding")
            && match &h.value {
                Values::One(v) => {
                    !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("identity")
                }
                Values::Many(vs) => vs.iter().any(|v| !v.trim().eq_ignore_ascii_case("identity")),
            }
    })
}

fn to_exchange(
    e: Entry,
    index: usize,
    dir: Option<&Path>,
    notes: &mut Vec<(String, String)>,
) -> Result<Exchange, (&'static str, String)> {
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
    let req_wire = af.request_body.as_ref().is_some_and(|m| m.wire);
    let req_body = match req.post_data {
        Some(pd) => {
            let data = stored(
                (pd.text, pd.encoding.as_deref(), pd.file),
                ("request.postData.text", "request.postData._file"),
                dir,
                notes,
            )?;
            body_in(data, req.body_size, af.request_body)
        }
        None => body_in(None, req.body_size.max(0), af.request_body),
    };
    let req_body = req_body.map(|mut b| {
        b.decoded = !req_wire && content_encoded(&req.headers);
        b
    });
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
        let data = stored(
            (res.content.text, res.content.encoding.as_deref(), res.content.file),
            ("response.content.text", "response.content._file"),
            dir,
            notes,
        )?;
        let wire = af.response_body.as_ref().is_some_and(|m| m.wire);
        let mut body = body_in(data, res.content.size.max(res.body_size), af.response_body);
        // HAR's `content.text` is the decoded content, whatever `Content-Encoding` the
        // response went over the wire with; an export of ours says when it could not decode.
        if let Some(b) = body.as_mut() {
            b.decoded = !wire && content_encoded(&res.headers);
        }
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

/// A body as HAR writes it: `(text, encoding, size, what _af must add)`. HAR's text is the
/// decoded content, so a body kept as it went over the wire is decoded when af can; when it
/// cannot (an unknown coding, a truncated stream), the wire bytes are written and `_af` says so.
fn body_out(
    body: Option<&Body>,
    headers: &Headers,
) -> (Option<String>, Option<String>, i64, Option<BodyMeta>) {
    let Some(b) = body else { return (None, None, 0, None) };
    if let BodyData::Elided { .. } = b.data {
        // HarWriter::write refuses elided bodies before getting here.
        return (None, None, i64::try_from(b.size).unwrap_or(i64::MAX), None);
    }
    let coding = crate::model::header(headers, "content-encoding")
        .map(crate::coding::codings)
        .filter(|c| c.as_ref().map_or(true, |c| !c.is_empty()));
    let (bytes, size, truncated, wire) = match coding {
        Some(Ok(codings)) if !b.decoded && !b.truncated => {
            match crate::coding::decode(&codings, b.bytes()) {
                Ok(plain) => {
                    let n = plain.len() as u64;
                    (std::borrow::Cow::Owned(plain), n, false, false)
                }
                Err(_) => (std::borrow::Cow::Borrowed(b.bytes()), b.size, b.truncated, true),
            }
        }
        Some(_) if !b.decoded => (std::borrow::Cow::Borrowed(b.bytes()), b.size, b.truncated, true),
        _ => (std::borrow::Cow::Borrowed(b.bytes()), b.size, b.truncated, false),
    };
    let (text, enc) = match std::str::from_utf8(&bytes) {
        Ok(t) => (t.to_owned(), None),
        Err(_) => {
            (base64::engine::general_purpose::STANDARD.encode(&bytes), Some("base64".to_owned()))
        }
    };
    let meta = (truncated || wire || size != bytes.len() as u64).then_some(BodyMeta {
        size,
        truncated,
        wire,
    });
    (Some(text), enc, i64::try_from(size).unwrap_or(i64::MAX), meta)
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
    let (req_text, req_enc, req_size, req_meta) =
        body_out(ex.request.body.as_ref(), &ex.request.headers);
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
                    NameValue { name: n.to_owned(), value: Values::One(v.to_owned()) }
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
            file: None,
        }),
        headers_size: -1,
        body_size: req_size,
    };
    let response = match &ex.response {
        Some(r) => {
            let (text, encoding, size, meta) = body_out(r.body.as_ref(), &r.headers);
            af.response_body = meta;
            HarResponse {
                status: i64::from(r.status),
                status_text: r.status_text.clone().unwrap_or_default(),
                http_version: r.http_version.clone().unwrap_or_default(),
                headers: headers_out(&r.headers),
                cookies: Vec::new(),
                content: Content { size, mime_type: mime(&r.headers), text, encoding, file: None },
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
