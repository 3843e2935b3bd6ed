//! proxymock RRPair import: the JSON form (one object per file, or JSON Lines as in
//! `proxymock export`) and the markdown form (one `.md` file per exchange).
//!
//! Quirks handled, all seen in public recordings:
//! - markdown sections (`### REQUEST ###`, `### RESPONSE ###` or `### RESPONSE (MOCK) ###`,
//!   `### SIGNATURE ###`, `### METADATA ###`, `### INTERNAL - DO NOT MODIFY ###`) come in any
//!   order, fenced in ```` ``` ```` blocks (newer versions) or bare (older);
//! - some versions write no status line in RESPONSE: the status then comes from the trailing JSON
//!   (`http.res.statusCode`, else top-level `status`);
//! - header values escape commas as `\,`;
//! - `uuid` is base64 in JSON and dashed hex in markdown (both become the same exchange id);
//! - `ts` lives in METADATA (else the JSON, else the file name `2025-08-12_01-37-18.830172Z.md`).

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::native::json_message;
use crate::error::{Location, RecordError, SnapshotError};
use crate::id::ExchangeId;
use crate::model::{Body, Direction, Exchange, Headers, Request, Response, Tags, Timing};

use crate::sink::Sink;
use crate::time::Timestamp;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RRPair {
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    tags: serde_json::Map<String, Value>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    l7protocol: Option<String>,
    /// The protocol by name (`Postgres`), beside `l7protocol`.
    #[serde(default)]
    tech: Option<String>,
    #[serde(default, rename = "network_address")]
    network_address: Option<String>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    http: Option<Http>,
}

#[derive(Deserialize, Default)]
struct Http {
    #[serde(default)]
    req: Option<HttpReq>,
    #[serde(default)]
    res: Option<HttpRes>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HttpReq {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default, deserialize_with = "ordered_headers")]
    headers: Headers,
    #[serde(default)]
    body_base64: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HttpRes {
    #[serde(default)]
    status_code: Option<Value>,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default, deserialize_with = "ordered_headers")]
    headers: Headers,
    #[serde(default)]
    body_base64: Option<String>,
}

/// `{"Name": ["v1", "v2"]}` in file order, as repeated headers.
fn ordered_headers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Headers;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of header names to lists of values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Headers, A::Error> {
            let mut out = Headers::new();
            while let Some((k, v)) = m.next_entry::<String, OneOrMany>()? {
                match v {
                    OneOrMany::One(s) => out.push((k, s)),
                    OneOrMany::Many(vs) => out.extend(vs.into_iter().map(|s| (k.clone(), s))),
                }
            }
            Ok(out)
        }
        fn visit_unit<E>(self) -> Result<Headers, E> {
            Ok(Headers::new())
        }
    }
    d.deserialize_any(V)
}

/// Header values are lists in proxymock; a bare string is accepted too.
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self::One(s)),
            Value::Array(a) => Ok(Self::Many(
                a.into_iter()
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
            )),
            other => Ok(Self::One(other.to_string())),
        }
    }
}

fn b64(s: &str, field: &'static str) -> Result<Vec<u8>, (String, String)> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim().as_bytes())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s.trim().as_bytes()))
        .map_err(|e| (field.to_owned(), format!("invalid base64: {e}")))
}

/// The exchange id from a proxymock uuid, base64 or dashed hex.
fn id_from_uuid(uuid: &str) -> Option<ExchangeId> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    // A dashed uuid, or an id `af` wrote (hex of any even length).
    if hex.len() >= 8 && hex.len().is_multiple_of(2) && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Some(ExchangeId::new(hex.to_ascii_lowercase()));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(uuid.as_bytes()).ok()?;
    (!bytes.is_empty()).then(|| ExchangeId::from_bytes(&bytes))
}

fn status_from(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.split_whitespace().next()?.parse().ok(),
        _ => None,
    }
}

fn build_url(
    scheme: Option<&str>,
    host: Option<&str>,
    network_address: Option<&str>,
    uri: &str,
) -> String {
    if uri.contains("://") {
        return uri.to_owned();
    }
    let scheme = match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("http") => {
            s.to_ascii_lowercase()
        }
        _ if network_address.is_some_and(|a| a.ends_with(":443")) => "https".into(),
        _ => "http".into(),
    };
    let port = network_address
        .and_then(|a| a.rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !matches!((*p, scheme.as_str()), ("0", _) | ("80", "http") | ("443", "https")));
    let host = host
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .or_else(|| network_address.map(|a| a.rsplit_once(':').map_or(a, |(h, _)| h).to_owned()))
        .unwrap_or_else(|| "localhost".into());
    let authority = match port {
        Some(p) if !host.contains(':') => format!("{host}:{p}"),
        _ => host,
    };
    let path = if uri.starts_with('/') { uri.to_owned() } else { format!("/{uri}") };
    format!("{scheme}://{authority}{path}")
}

/// The protocol of a record that is not HTTP (proxymock also records Postgres, AMQP, MySQL,
/// Redis, ... as RRPairs): such a record has no `http` part and says what it is instead.
fn other_protocol(rr: &RRPair) -> Option<String> {
    if rr.http.is_some() {
        return None;
    }
    match (rr.l7protocol.as_deref(), rr.tech.as_deref()) {
        (Some(p), _) if !p.is_empty() && !p.to_ascii_lowercase().starts_with("http") => {
            Some(p.to_owned())
        }
        (None | Some(""), Some(t)) if !t.is_empty() => Some(t.to_owned()),
        _ => None,
    }
}

/// Whether a proxymock body is the decoded content: proxymock says so in its `decoded` tag;
/// without the tag, bytes that do not decode as the declared coding are taken as decoded.
fn body_decoded(tags: &serde_json::Map<String, Value>, headers: &Headers, bytes: &[u8]) -> bool {
    let Some(ce) = crate::model::header(headers, "content-encoding") else { return false };
    let Ok(codings) = crate::coding::codings(ce) else { return true };
    if codings.is_empty() {
        return false;
    }
    match tags.get("decoded") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => crate::coding::decode(&codings, bytes).is_err(),
    }
}

/// Turns the JSON RRPair into an exchange. `fallback_ts` comes from the file name.
fn from_rrpair(
    rr: RRPair,
    fallback_ts: Option<Timestamp>,
    seed: &[u8],
) -> Result<Exchange, (String, String)> {
    let http = rr.http.unwrap_or_default();
    let req = http.req.ok_or(("http.req".to_owned(), "missing request".to_owned()))?;
    let method = req
        .method
        .filter(|m| !m.is_empty())
        .ok_or(("http.req.method".to_owned(), "missing method".to_owned()))?;
    let uri = req.uri.or(req.url).unwrap_or_else(|| "/".into());
    let url = build_url(
        rr.l7protocol.as_deref(),
        req.host.as_deref(),
        rr.network_address.as_deref(),
        &uri,
    );
    let start = match rr.ts.as_deref() {
        Some(ts) => {
            Timestamp::parse(ts).map_err(|m| ("ts".to_owned(), format!("invalid timestamp {m}")))?
        }
        None => fallback_ts.ok_or((
            "ts".to_owned(),
            "no timestamp (`ts`) in the record or the file name".to_owned(),
        ))?,
    };
    let res = http.res;
    let status = res
        .as_ref()
        .and_then(|r| r.status_code.as_ref())
        .and_then(status_from)
        .or_else(|| rr.status.as_ref().and_then(status_from))
        .filter(|s| (100..=999).contains(s))
        .ok_or((
            "http.res.statusCode".to_owned(),
            "no HTTP status (neither `http.res.statusCode` nor top-level `status`)".to_owned(),
        ))?;
    let req_body = req
        .body_base64
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| b64(b, "http.req.bodyBase64"))
        .transpose()?;
    let res = res.unwrap_or_default();
    let res_body = res
        .body_base64
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| b64(b, "http.res.bodyBase64"))
        .transpose()?;
    let id = rr.uuid.as_deref().and_then(id_from_uuid).unwrap_or_else(|| {
        ExchangeId::derive(&[
            b"proxymock",
            start.as_nanos().to_le_bytes().as_slice(),
            method.as_bytes(),
            url.as_bytes(),
            seed,
        ])
    });
    let res_body = res_body.map(|b| {
        let mut body = Body::from_bytes(b);
        body.decoded = body_decoded(&rr.tags, &res.headers, body.bytes());
        body
    });
    let tags: Tags = rr.tags.into_iter().collect();
    Ok(Exchange {
        id,
        service: rr.service.filter(|s| !s.is_empty() && s != "undefined"),
        direction: match rr.direction.as_deref() {
            Some(d) if d.eq_ignore_ascii_case("in") => Direction::Inbound,
            _ => Direction::Outbound,
        },
        conn_id: None,
        caller: None,
        request: Request {
            method,
            url,
            http_version: req
                .version
                .map(|v| if v.starts_with("HTTP/") { v } else { format!("HTTP/{v}") }),
            headers: req.headers,
            body: req_body.map(Body::from_bytes),
        },
        response: Some(Response {
            status,
            status_text: res
                .status_message
                .map(|m| {
                    m.strip_prefix(&status.to_string()).map_or(m.clone(), |r| r.trim().to_owned())
                })
                .filter(|m| !m.is_empty()),
            http_version: None,
            headers: res.headers,
            body: res_body,
        }),
        error: None,
        timing: Timing::new(
            start,
            rr.duration.filter(|d| *d >= 0.0).map(|ms| (ms * 1e6).round() as u64),
        ),
        tags,
    })
}

/// What one RRPair value (as Speedscale's forwarder sends it in an OTLP log record's body, or
/// as one line of `proxymock export`) is.
#[derive(Debug)]
pub enum RRPairValue {
    /// An HTTP exchange.
    Http(Box<Exchange>),
    /// A record of another protocol (Postgres, AMQP, ...), by name: counted, not an exchange.
    Other(String),
}

/// Reads one RRPair from a JSON value. `seed` names the record when the RRPair carries no
/// `uuid` (the same seed gives the same id). On failure: the field at fault and what is wrong.
pub fn rrpair_from_value(v: Value, seed: &[u8]) -> Result<RRPairValue, (String, String)> {
    let rr = serde_path_to_error::deserialize::<_, RRPair>(v).map_err(|e| {
        let field = e.path().to_string();
        (if field == "." { String::new() } else { field }, e.inner().to_string())
    })?;
    if let Some(p) = other_protocol(&rr) {
        return Ok(RRPairValue::Other(p));
    }
    if rr.http.is_none() {
        return Err(("http".into(), "no `http` part: not an HTTP RRPair".into()));
    }
    from_rrpair(rr, None, seed).map(|e| RRPairValue::Http(Box::new(e)))
}

fn ts_from_file_name(path: &Path) -> Option<Timestamp> {
    // `2025-08-12_01-37-18.830172Z.md` → `2025-08-12T01:37:18.830172Z`
    let stem = path.file_name()?.to_str()?;
    let stem = stem.split_once(".md").map_or(stem, |(s, _)| s);
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    let (date, time) = stem.split_once('_')?;
    let time = time.replacen('-', ":", 2);
    Timestamp::parse(&format!("{date}T{time}")).ok()
}

pub(crate) fn parse_json(
    path: &Path,
    reader: Box<dyn Read + Send>,
    sink: &mut Sink<'_>,
) -> Result<(), SnapshotError> {
    let whole = super::read_whole(path, reader)?;
    let bytes = whole.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&whole);
    let fallback = ts_from_file_name(path);
    // One (possibly pretty-printed) object per file, or JSON Lines.
    let single = serde_json::from_slice::<Value>(bytes).is_ok();
    let records: Vec<(u64, &[u8])> = if single {
        vec![(1, bytes)]
    } else {
        bytes
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, l))
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .collect()
    };
    for (line, text) in records {
        let loc = |column: Option<u64>| Location { column, ..Location::file(path).at_line(line) };
        let mut de = serde_json::Deserializer::from_slice(text);
        let rec = match serde_path_to_error::deserialize::<_, RRPair>(&mut de) {
            Ok(rr) if other_protocol(&rr).is_some() => {
                sink.non_http(&other_protocol(&rr).unwrap_or_default());
                continue;
            }
            Ok(rr) => from_rrpair(rr, fallback, &line.to_le_bytes())
                .map_err(|(f, m)| RecordError::new(loc(None), Some(f), m)),
            Err(e) => {
                let field = e.path().to_string();
                let col = Some(e.inner().column() as u64);
                Err(RecordError::new(
                    loc(col),
                    (field != ".").then_some(field),
                    json_message(e.inner()),
                ))
            }
        };
        if !sink.push(rec, || loc(None)) {
            return Ok(());
        }
    }
    Ok(())
}

/// One `### NAME ###` section of a markdown RRPair: its name, first line number, and lines.
struct Section<'a> {
    name: String,
    line: u64,
    lines: Vec<&'a str>,
}

fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if let Some(name) = t.strip_prefix("### ").and_then(|r| r.strip_suffix(" ###")) {
            out.push(Section {
                name: name.trim().to_ascii_uppercase(),
                line: i as u64 + 1,
                lines: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.lines.push(line);
        }
    }
    out
}

/// Splits a section into (head lines, body): fenced blocks in newer versions, else a blank line.
fn head_and_body<'a>(lines: &[&'a str]) -> (Vec<&'a str>, Option<String>) {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for l in lines {
        if l.trim_end().starts_with("```") {
            match cur.take() {
                Some(b) => blocks.push(b),
                None => cur = Some(Vec::new()),
            }
        } else if let Some(b) = cur.as_mut() {
            b.push(l);
        }
    }
    if let Some(b) = cur {
        blocks.push(b); // unterminated fence: keep what is there
    }
    if !blocks.is_empty() {
        let mut it = blocks.into_iter();
        let head = it.next().unwrap_or_default();
        let body = it.next().map(|b| b.join("\n")).filter(|b| !b.is_empty());
        return (head, body);
    }
    // Bare form: head up to the first blank line, then the body.
    let trimmed: Vec<&str> = lines.iter().copied().skip_while(|l| l.trim().is_empty()).collect();
    match trimmed.iter().position(|l| l.trim().is_empty()) {
        Some(i) => {
            let body = trimmed[i + 1..].join("\n");
            let body = body.trim_end_matches('\n').to_owned();
            (trimmed[..i].to_vec(), Some(body).filter(|b| !b.trim().is_empty()))
        }
        None => (trimmed, None),
    }
}

fn header_line(l: &str) -> Option<(String, String)> {
    let (k, v) = l.split_once(':')?;
    let k = k.trim();
    if k.is_empty() || k.contains(' ') {
        return None;
    }
    Some((k.to_owned(), v.trim().replace("\\,", ",")))
}

fn parse_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) =
        s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "ms"), |i| (&s[..i], &s[i..]));
    let v: f64 = num.trim().parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => return None,
    };
    (v >= 0.0).then(|| (v * scale).round() as u64)
}

pub(crate) fn parse_markdown(
    path: &Path,
    reader: Box<dyn Read + Send>,
    sink: &mut Sink<'_>,
) -> Result<(), SnapshotError> {
    let bytes = super::read_whole(path, reader)?;
    let rec = match String::from_utf8(bytes) {
        Ok(text) => markdown_exchange(path, text.strip_prefix('\u{feff}').unwrap_or(&text)),
        Err(e) => Err(RecordError::new(
            Location { offset: Some(e.utf8_error().valid_up_to() as u64), ..Location::file(path) },
            None,
            "markdown RRPair is not UTF-8",
        )),
    };
    sink.push(rec, || Location::file(path));
    Ok(())
}

fn markdown_exchange(path: &Path, text: &str) -> Result<Exchange, RecordError> {
    let secs = sections(text);
    let at = |line: u64| Location::file(path).at_line(line);
    let find = |name: &str| {
        secs.iter().find(|s| s.name == name || s.name.starts_with(&format!("{name} ")))
    };
    let req = find("REQUEST").ok_or_else(|| {
        RecordError::new(
            Location::file(path),
            Some("REQUEST".into()),
            "no `### REQUEST ###` section",
        )
    })?;

    // The trailing JSON (INTERNAL section): fallback for everything the sections lack.
    let mut internal = RRPair::default();
    if let Some(s) = find("INTERNAL") {
        let (head, _) = head_and_body(&s.lines);
        if let Some(json) = head.iter().find_map(|l| l.trim_start().strip_prefix("json:")) {
            internal = serde_json::from_str(json.trim()).map_err(|e| {
                RecordError::new(at(s.line), Some("INTERNAL.json".into()), json_message(&e))
            })?;
        }
    }
    let mut meta: Vec<(String, String)> = Vec::new();
    if let Some(s) = find("METADATA") {
        let (head, _) = head_and_body(&s.lines);
        meta = head
            .iter()
            .filter_map(|l| {
                l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
    }
    let meta_get = |k: &str| meta.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());

    let (head, body) = head_and_body(&req.lines);
    let first = head.first().copied().unwrap_or("");
    let mut parts = first.split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target)) = (method, target) else {
        return Err(RecordError::new(
            at(req.line + 1),
            Some("REQUEST".into()),
            format!("expected `METHOD URL HTTP/x` request line, found {first:?}"),
        ));
    };
    let headers: Headers = head.iter().skip(1).filter_map(|l| header_line(l)).collect();
    let host = crate::model::header(&headers, "host").map(str::to_owned);
    let internal_http = internal.http.take().unwrap_or_default();
    let url = build_url(
        internal.l7protocol.as_deref(),
        host.as_deref().or(internal_http.req.as_ref().and_then(|r| r.host.as_deref())),
        internal.network_address.as_deref(),
        target,
    );

    let mut status = None;
    let mut status_text = None;
    let mut http_version = None;
    let mut res_headers = Headers::new();
    let mut res_body = None;
    if let Some(s) = find("RESPONSE") {
        let (head, body) = head_and_body(&s.lines);
        let mut lines = head.iter().peekable();
        if let Some(l) = lines.peek().filter(|l| l.starts_with("HTTP/")) {
            let mut p = l.splitn(3, ' ');
            http_version = p.next().map(str::to_owned);
            status = p.next().and_then(|c| c.parse::<u16>().ok());
            status_text = p.next().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
            lines.next();
        }
        res_headers = lines.filter_map(|l| header_line(l)).collect();
        res_body = body;
    }
    let status = status
        .or_else(|| internal_http.res.as_ref().and_then(|r| r.status_code.as_ref()).and_then(status_from))
        .or_else(|| internal.status.as_ref().and_then(status_from))
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| {
            RecordError::new(
                at(find("RESPONSE").map_or(1, |s| s.line)),
                Some("RESPONSE".into()),
                "no HTTP status: no status line in RESPONSE and no `http.res.statusCode` or `status` in the trailing JSON",
            )
        })?;
    let status_text =
        status_text.or_else(|| {
            internal_http.res.as_ref().and_then(|r| r.status_message.clone()).map(|m| {
                m.strip_prefix(&status.to_string()).map_or(m.clone(), |r| r.trim().to_owned())
            })
        });

    let start = match meta_get("ts").or(internal.ts.as_deref()) {
        Some(ts) => Timestamp::parse(ts).map_err(|m| {
            RecordError::new(
                Location::file(path),
                Some("METADATA.ts".into()),
                format!("invalid timestamp {m}"),
            )
        })?,
        None => ts_from_file_name(path).ok_or_else(|| {
            RecordError::new(
                Location::file(path),
                Some("METADATA.ts".into()),
                "no timestamp in METADATA, the trailing JSON or the file name",
            )
        })?,
    };
    let duration_ns = meta_get("duration")
        .and_then(parse_duration_ns)
        .or(internal.duration.map(|ms| (ms * 1e6).round() as u64));
    let uuid = meta_get("uuid").map(str::to_owned).or(internal.uuid.clone());
    let id = uuid.as_deref().and_then(id_from_uuid).unwrap_or_else(|| {
        ExchangeId::derive(&[
            b"proxymock-md",
            path.to_string_lossy().as_bytes(),
            start.as_nanos().to_le_bytes().as_slice(),
        ])
    });
    let mut tags: Tags = internal.tags.into_iter().collect();
    if let Some(t) = meta_get("tags") {
        for kv in t.split(", ") {
            if let Some((k, v)) = kv.split_once('=') {
                tags.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
            }
        }
    }
    let direction = match meta_get("direction").or(internal.direction.as_deref()) {
        Some(d) if d.eq_ignore_ascii_case("in") => Direction::Inbound,
        _ => Direction::Outbound,
    };
    Ok(Exchange {
        id,
        service: internal.service.filter(|s| !s.is_empty() && s != "undefined"),
        direction,
        conn_id: None,
        caller: None,
        request: Request {
            method: method.to_owned(),
            url,
            http_version: version.map(str::to_owned),
            headers,
            body: body.map(Body::text),
        },
        response: Some(Response {
            status,
            status_text,
            http_version,
            // A markdown body is text: the decoded content, whatever the header says.
            body: res_body.map(|t| {
                let mut b = Body::text(t);
                b.decoded = crate::model::header(&res_headers, "content-encoding")
                    .is_some_and(|ce| crate::coding::codings(ce).map_or(true, |c| !c.is_empty()));
                b
            }),
            headers: res_headers,
        }),
        error: None,
        timing: Timing::new(start, duration_ns),
        tags,
    })
}

/// Writes one exchange as a proxymock markdown RRPair (the newer, fenced form, with a status
/// line), named like proxymock's own files. Binary bodies are written as a placeholder
/// `(N bytes, binary)`; the file is for people and for proxymock, the native snapshot keeps bytes.
pub fn write_markdown(ex: &Exchange) -> String {
    use std::fmt::Write;
    let esc = |v: &str| v.replace(',', "\\,");
    let body = |b: Option<&Body>| match b {
        None => String::new(),
        Some(b) => match b.as_text() {
            Some(t) if !b.truncated => t.to_owned(),
            Some(t) => format!("{t}\n(truncated: {} bytes in all)", b.size),
            None => format!("({} bytes, binary or not stored)", b.size),
        },
    };
    let mut s = String::new();
    let version = ex.request.http_version.as_deref().unwrap_or("HTTP/1.1");
    let _ = writeln!(s, "### REQUEST ###\n```\n{} {} {version}", ex.request.method, ex.request.url);
    for (k, v) in &ex.request.headers {
        let _ = writeln!(s, "{k}: {}", esc(v));
    }
    let _ = writeln!(s, "```\n\n```\n{}\n```\n", body(ex.request.body.as_ref()));
    let _ = writeln!(s, "### RESPONSE ###\n```");
    if let Some(r) = &ex.response {
        let _ = writeln!(s, "HTTP/1.1 {} {}", r.status, r.status_text.as_deref().unwrap_or(""));
        for (k, v) in &r.headers {
            let _ = writeln!(s, "{k}: {}", esc(v));
        }
        let _ = writeln!(s, "```\n\n```\n{}\n```\n", body(r.body.as_ref()));
    } else {
        let _ = writeln!(s, "```\n");
    }
    let _ = writeln!(s, "### METADATA ###\n```");
    let _ =
        writeln!(s, "direction: {}", if ex.direction == Direction::Inbound { "IN" } else { "OUT" });
    let _ = writeln!(s, "uuid: {}", ex.id);
    let _ = writeln!(s, "ts: {}", ex.timing.start);
    if let Some(d) = ex.timing.duration_ns {
        let _ = writeln!(s, "duration: {}ms", d as f64 / 1e6);
    }
    if let Some(e) = &ex.error {
        let _ = writeln!(s, "error: {}: {}", e.kind.as_str(), e.message);
    }
    let tags: Vec<String> = ex
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    if !tags.is_empty() {
        let _ = writeln!(s, "tags: {}", tags.join(", "));
    }
    let _ = writeln!(s, "```");
    s
}

/// A proxymock-style file name for an exchange: `2025-08-12_01-37-18.830172Z.md`, made unique
/// by the exchange id.
pub fn markdown_file_name(ex: &Exchange) -> String {
    let t = ex.timing.start.to_rfc3339();
    let (date, time) = t.split_once('T').unwrap_or((&t, ""));
    format!("{date}_{}_{}.md", time.replacen(':', "-", 2).trim_end_matches('Z'), ex.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_forms_agree() {
        // The same uuid, base64 (JSON form) and dashed (markdown form).
        let b64 = "yIcFMySzQxKFZs0J/g4V4w==";
        let dashed = "c8870533-24b3-4312-8566-cd09fe0e15e3";
        assert_eq!(id_from_uuid(b64), id_from_uuid(dashed));
    }

    #[test]
    fn durations_and_file_names() {
        assert_eq!(parse_duration_ns("23ms"), Some(23_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("0ms"), Some(0));
        assert_eq!(
            ts_from_file_name(Path::new("/x/2025-08-12_01-37-18.830172Z.md")),
            Timestamp::parse("2025-08-12T01:37:18.830172Z").ok()
        );
    }

    #[test]
    fn urls_from_parts() {
        assert_eq!(
            build_url(Some("https"), Some("api.openai.com"), Some("api.openai.com:443"), "/v1/x"),
            "https://api.openai.com/v1/x"
        );
        assert_eq!(
            build_url(Some("http"), None, Some("localhost:8080"), "/a?b=1"),
            "http://localhost:8080/a?b=1"
        );
        assert_eq!(
            build_url(Some("https"), Some("d.amazonaws.com"), Some("d.amazonaws.com:0"), "/"),
            "https://d.amazonaws.com/"
        );
    }
}
