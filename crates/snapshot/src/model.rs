//! The data model of captured traffic: one [`Exchange`] per HTTP request and its outcome.
//!
//! A transport failure (refused, reset, timeout, TLS) is a [`TransportError`], never a fake
//! HTTP status: analysis must be able to tell "the upstream said 502" from "we never reached it".

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::id::ExchangeId;
use crate::time::Timestamp;

/// Ordered, repeatable header list: `[["Accept", "*/*"], ...]` on disk.
pub type Headers = Vec<(String, String)>;

/// Free-form labels carried with an exchange (HAR `_custom` fields, proxymock tags, ...).
pub type Tags = BTreeMap<String, serde_json::Value>;

/// Which way the call went, seen from the program being studied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The program called an upstream (the usual case: the upstream's limits are the story).
    #[default]
    Outbound,
    /// Something called the program.
    Inbound,
}

/// One HTTP request, its response or transport error, and when it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// Stable id, citable by a short unique prefix (`ex:3f2a`).
    pub id: ExchangeId,
    /// The logical service this exchange belongs to, when the capture knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Outbound (the program called out) or inbound.
    #[serde(default)]
    pub direction: Direction,
    /// Connection identifier: exchanges sharing it used one TCP/TLS connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_id: Option<String>,
    /// Who the upstream counts limits for, when the capture recorded it explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The request as sent.
    pub request: Request,
    /// The response, when one arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// Why no (complete) response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TransportError>,
    /// Start, end and time to first byte.
    pub timing: Timing,
    /// Labels kept from the source format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: Tags,
}

/// The request line, headers and body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute URL (`https://host/path?query`).
    pub url: String,
    /// `HTTP/1.1`, `HTTP/2`, ... when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// Headers in wire order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Headers,
    /// The body, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// The status line, headers and body of a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// HTTP status code (100-999).
    pub status: u16,
    /// Reason phrase, when the source kept one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`, ... when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// Headers in wire order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Headers,
    /// The body, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// What kind of transport failure ended an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// Connection refused.
    Refused,
    /// Connection reset or closed early.
    Reset,
    /// No answer in time.
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// Malformed HTTP on the wire.
    Protocol,
    /// The host name did not resolve.
    Dns,
    /// No route: the network or host was unreachable, or the machine was offline.
    Unreachable,
    /// The client gave up or cancelled (a browser's `net::ERR_ABORTED`), not the upstream.
    Aborted,
    /// The source said it failed but not how.
    Other,
}

impl ErrorKind {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Protocol => "protocol",
            Self::Dns => "dns",
            Self::Unreachable => "unreachable",
            Self::Aborted => "aborted",
            Self::Other => "other",
        }
    }

    /// Best guess from a free-text error, as browsers (`net::ERR_CONNECTION_REFUSED`,
    /// `NS_ERROR_UNKNOWN_HOST`), Node (`ECONNRESET`, `ENOTFOUND`), Python (`[Errno 111] Connect
    /// call failed`) and proxies write them.
    pub fn classify(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
        // Specific names first: `ERR_NAME_NOT_RESOLVED` must not read as a generic failure.
        if has(&[
            "name_not_resolved",
            "name_resolution",
            "unknown_host",
            "enotfound",
            "eai_again",
            "getaddrinfo",
            "nodename nor servname",
            "name or service not known",
            "temporary failure in name resolution",
            "no such host",
            "dns",
        ]) {
            return Self::Dns;
        }
        if has(&[
            "internet_disconnected",
            "address_unreachable",
            "network_unreachable",
            "ehostunreach",
            "enetunreach",
            "no route to host",
            "network is unreachable",
            "host is unreachable",
            "network_changed",
            "net_offline",
            "offline",
        ]) {
            return Self::Unreachable;
        }
        if has(&["cert", "ssl", "tls", "handshake"]) {
            return Self::Tls;
        }
        if has(&["refused"]) {
            return Self::Refused;
        }
        if has(&["timeout", "timed out", "timed_out", "etimedout"]) {
            return Self::Timeout;
        }
        // Python's socket errors name only the errno: Linux and macOS numbers never collide
        // for the errors a connect can return.
        if let Some(errno) = errno_of(&m) {
            match errno {
                111 | 61 => return Self::Refused,
                110 | 60 => return Self::Timeout,
                104 | 54 | 32 => return Self::Reset,
                113 | 65 | 101 | 51 => return Self::Unreachable,
                _ => {}
            }
        }
        // mitmproxy writes "Client disconnected." when the client gave up first.
        if has(&[
            "err_aborted",
            "binding_aborted",
            "cancel",
            "client disconnected",
            "client closed",
        ]) {
            return Self::Aborted;
        }
        if has(&[
            "reset",
            "closed",
            "aborted",
            "epipe",
            "broken pipe",
            "empty_response",
            "socket hang up",
            "eof",
        ]) {
            return Self::Reset;
        }
        if has(&["protocol", "parse", "invalid", "malformed"]) {
            return Self::Protocol;
        }
        Self::Other
    }
}

/// The number in `[Errno 111]` / `errno 111` / `os error 111`, when a message carries one.
fn errno_of(m: &str) -> Option<u32> {
    ["[errno ", "errno ", "os error "].iter().find_map(|k| {
        let rest = &m[m.find(k)? + k.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// A transport-level failure: there is no HTTP status to report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportError {
    /// Classified kind.
    pub kind: ErrorKind,
    /// The message as the source gave it.
    #[serde(default)]
    pub message: String,
}

/// When the exchange happened. Durations are nanoseconds after `start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Request start (UTC).
    pub start: Timestamp,
    /// Time from start to the end of the response (or of the failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    /// Time from start to the first response byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ns: Option<u64>,
    /// HAR-style phase breakdown, when the source had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
}

impl Timing {
    /// Timing that starts at `start` and lasts `duration_ns`.
    pub fn new(start: Timestamp, duration_ns: Option<u64>) -> Self {
        Self { start, duration_ns, ttfb_ns: None, phases: None }
    }

    /// The end of the exchange, when known.
    pub fn end(&self) -> Option<Timestamp> {
        self.duration_ns.map(|d| self.start.add_nanos(i64::try_from(d).unwrap_or(i64::MAX)))
    }
}

/// HAR 1.2 `timings`, in nanoseconds; `None` where HAR says `-1` (not applicable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // the fields are HAR's, with HAR's meaning
pub struct Phases {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_ns: Option<u64>,
}

/// A message body as captured: the bytes as they went over the wire (still content-encoded
/// when the message had a `Content-Encoding`), unless `decoded` says the source kept the decoded
/// content instead (HAR and proxymock do).
///
/// On disk: `{"text": "...", "size": N}` for UTF-8, `{"base64": "...", "size": N}` otherwise;
/// `size` is the full size, `truncated` marks a body cut by a size cap (or not stored at all)
/// and `"decoded": true` a body whose message's `Content-Encoding` was undone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// The stored bytes.
    pub data: BodyData,
    /// Size of the whole body in bytes, even if only a prefix was stored.
    pub size: u64,
    /// True when only a prefix of the body was kept.
    pub truncated: bool,
    /// True when the bytes are the content after undoing the message's `Content-Encoding`
    /// (a server replaying them must encode them again, or drop the header).
    pub decoded: bool,
}

/// Stored body bytes: text when valid UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyData {
    /// Valid UTF-8.
    Text(String),
    /// Anything else.
    Binary(Vec<u8>),
    /// Not loaded: the reader was asked to skip bodies ([`crate::Bodies::Elide`]). Only `size`,
    /// `truncated` and the digest are known. Writing such a body is an error, so nothing is lost
    /// silently.
    Elided {
        /// [`Body::digest`] of the body that was skipped.
        digest: u64,
    },
}

thread_local! {
    /// Set while a reader in [`crate::Bodies::Elide`] mode deserializes one record.
    static ELIDE_BODIES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with body deserialization switched to eliding (skip the bytes, keep the size).
pub(crate) fn eliding_bodies<R>(on: bool, f: impl FnOnce() -> R) -> R {
    if !on {
        return f();
    }
    ELIDE_BODIES.with(|c| c.set(true));
    let r = f();
    ELIDE_BODIES.with(|c| c.set(false));
    r
}

impl Body {
    /// A complete body from raw bytes: text when they are UTF-8.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let size = bytes.len() as u64;
        let data = match String::from_utf8(bytes) {
            Ok(s) => BodyData::Text(s),
            Err(e) => BodyData::Binary(e.into_bytes()),
        };
        Self { data, size, truncated: false, decoded: false }
    }

    /// A complete text body.
    pub fn text(s: impl Into<String>) -> Self {
        let s = s.into();
        Self { size: s.len() as u64, data: BodyData::Text(s), truncated: false, decoded: false }
    }

    /// The stored bytes (empty when elided).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            BodyData::Text(s) => s.as_bytes(),
            BodyData::Binary(b) => b,
            BodyData::Elided { .. } => &[],
        }
    }

    /// This body with its bytes dropped, as an eliding reader returns it.
    pub fn elide(&mut self) {
        self.data = BodyData::Elided { digest: self.digest() };
    }

    /// A stable 64-bit digest of the stored content, the same whether the body was kept or
    /// elided: the hash of its JSON literal as the native format stores it (`text` or `base64`).
    /// Equal bodies have equal digests; used to recognise repeated requests.
    pub fn digest(&self) -> u64 {
        match &self.data {
            BodyData::Text(t) => {
                digest_literal(b't', &serde_json::to_string(t).unwrap_or_default())
            }
            BodyData::Binary(b) => digest_literal(
                b'b',
                &serde_json::to_string(&base64::engine::general_purpose::STANDARD.encode(b))
                    .unwrap_or_default(),
            ),
            BodyData::Elided { digest } => *digest,
        }
    }

    /// The text, when the body is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        match &self.data {
            BodyData::Text(s) => Some(s),
            BodyData::Binary(_) | BodyData::Elided { .. } => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    decoded: bool,
}

/// A body read without decoding: its literals are borrowed from the input and only hashed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodySkim<'a> {
    #[serde(default, borrow)]
    text: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    base64: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    decoded: bool,
}

fn digest_literal(kind: u8, literal: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: stable across runs and processes.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    literal.hash(&mut h);
    h.finish()
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (text, base64) = match &self.data {
            BodyData::Text(t) => (Some(t.clone()), None),
            BodyData::Binary(b) => {
                (None, Some(base64::engine::general_purpose::STANDARD.encode(b)))
            }
            BodyData::Elided { .. } => {
                return Err(serde::ser::Error::custom(
                    "body was not loaded (read with bodies elided); re-read the snapshot with bodies kept",
                ));
            }
        };
        BodyRepr {
            text,
            base64,
            size: Some(self.size),
            truncated: self.truncated,
            decoded: self.decoded,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if ELIDE_BODIES.with(std::cell::Cell::get) {
            // Skipping the bytes (no unescaping, no allocation) is most of a statistics pass's
            // parsing time saved.
            let r = BodySkim::deserialize(d)?;
            let digest = match (r.text, r.base64) {
                (Some(t), _) => digest_literal(b't', t.get()),
                (None, Some(b)) => digest_literal(b'b', b.get()),
                (None, None) => digest_literal(b't', "\"\""),
            };
            return Ok(Body {
                data: BodyData::Elided { digest },
                size: r.size.unwrap_or(0),
                truncated: r.truncated,
                decoded: r.decoded,
            });
        }
        let r = BodyRepr::deserialize(d)?;
        let data = match (r.text, r.base64) {
            (Some(t), None) => BodyData::Text(t),
            (None, Some(b)) => BodyData::Binary(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| D::Error::custom(format!("invalid base64 body: {e}")))?,
            ),
            (None, None) => BodyData::Text(String::new()),
            (Some(_), Some(_)) => {
                return Err(D::Error::custom("body has both `text` and `base64`; keep one"));
            }
        };
        let stored = match &data {
            BodyData::Text(t) => t.len(),
            BodyData::Binary(b) => b.len(),
            BodyData::Elided { .. } => 0,
        } as u64;
        let size = r.size.unwrap_or(stored);
        if size < stored {
            return Err(D::Error::custom(format!(
                "body `size` {size} is smaller than the {stored} bytes stored"
            )));
        }
        Ok(Body { data, size, truncated: r.truncated, decoded: r.decoded })
    }
}

/// Case-insensitive header lookup: the first value of `name`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The parts of an absolute or origin-form URL, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `https`, `http`, or empty for origin-form.
    pub scheme: &'a str,
    /// `host[:port]`, or empty for origin-form.
    pub authority: &'a str,
    /// Path, always starting with `/`.
    pub path: &'a str,
    /// Query without `?`, when present.
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Splits `url` without allocating. Fragments are dropped.
    pub fn split(url: &'a str) -> Self {
        let url = url.split_once('#').map_or(url, |(u, _)| u);
        let (scheme, rest) = match url.find("://") {
            Some(i) if url[..i].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+') => {
                (&url[..i], &url[i + 3..])
            }
            _ => ("", url),
        };
        let (authority, path_query) = if scheme.is_empty() {
            ("", rest)
        } else {
            match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Self { scheme, authority, path, query }
    }

    /// The host without a default port (`:80` for http, `:443` for https).
    pub fn host(&self) -> &'a str {
        let a = self.authority.rsplit_once('@').map_or(self.authority, |(_, h)| h);
        match (self.scheme, a.rsplit_once(':')) {
            ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h,
            _ => a,
        }
    }
}

impl Exchange {
    /// The response status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    /// True when a body was elided by the reader (see [`crate::Bodies`]).
    pub fn has_elided_body(&self) -> bool {
        let elided = |b: &Option<Body>| {
            b.as_ref().is_some_and(|b| matches!(b.data, BodyData::Elided { .. }))
        };
        elided(&self.request.body) || self.response.as_ref().is_some_and(|r| elided(&r.body))
    }

    /// Drops both bodies' bytes, keeping sizes.
    pub fn elide_bodies(&mut self) {
        if let Some(b) = self.request.body.as_mut() {
            b.elide();
        }
        if let Some(b) = self.response.as_mut().and_then(|r| r.body.as_mut()) {
            b.elide();
        }
    }

    /// The request URL's parts.
    pub fn url_parts(&self) -> UrlParts<'_> {
        UrlParts::split(&self.request.url)
    }

    /// Checks the invariants the formats cannot express. Returns the offending field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.request.method.is_empty()
            || !self.request.method.bytes().all(|c| c.is_ascii_graphic())
        {
            return Err(("request.method", format!("invalid method {:?}", self.request.method)));
        }
        if self.request.url.is_empty() {
            return Err(("request.url", "empty URL".into()));
        }
        if let Some(r) = &self.response
            && !(100..=999).contains(&r.status)
        {
            return Err(("response.status", format!("{} is not an HTTP status", r.status)));
        }
        if let (Some(ttfb), Some(d)) = (self.timing.ttfb_ns, self.timing.duration_ns)
            && ttfb > d
        {
            return Err((
                "timing.ttfb_ns",
                format!("time to first byte {ttfb} ns exceeds duration {d} ns"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_cover_absolute_and_origin_forms() {
        let p = UrlParts::split("https://gmail.googleapis.com:443/gmail/v1/users/me?x=1#frag");
        assert_eq!(p.scheme, "https");
        assert_eq!(p.host(), "gmail.googleapis.com");
        assert_eq!(p.path, "/gmail/v1/users/me");
        assert_eq!(p.query, Some("x=1"));
        let p = UrlParts::split("/a/b?c");
        assert_eq!((p.authority, p.path, p.query), ("", "/a/b", Some("c")));
        let p = UrlParts::split("http://h:8080");
        assert_eq!((p.host(), p.path), ("h:8080", "/"));
    }

    #[test]
    fn body_serializes_text_or_base64_and_checks_size() {
        let b = Body::from_bytes(vec![0xff, 0x00]);
        let j = serde_json::to_string(&b).expect("serializes");
        assert_eq!(j, r#"{"base64":"/wA=","size":2}"#);
        assert_eq!(serde_json::from_str::<Body>(&j).expect("parses"), b);
        let err = serde_json::from_str::<Body>(r#"{"text":"abc","size":1}"#).unwrap_err();
        assert!(err.to_string().contains("smaller"), "{err}");
        let err = serde_json::from_str::<Body>(r#"{"text":"a","base64":"YQ=="}"#).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }

    #[test]
    fn error_kinds_classify_common_messages() {
        assert_eq!(ErrorKind::classify("net::ERR_CONNECTION_REFUSED"), ErrorKind::Refused);
        assert_eq!(ErrorKind::classify("ECONNRESET"), ErrorKind::Reset);
        assert_eq!(ErrorKind::classify("request timed out"), ErrorKind::Timeout);
        assert_eq!(ErrorKind::classify("TLS handshake failed"), ErrorKind::Tls);
        // As real captures write them (mitmproxy's Chrome and error-log HARs among them).
        assert_eq!(ErrorKind::classify("net::ERR_INTERNET_DISCONNECTED"), ErrorKind::Unreachable);
        assert_eq!(ErrorKind::classify("net::ERR_NAME_NOT_RESOLVED"), ErrorKind::Dns);
        assert_eq!(ErrorKind::classify("net::ERR_CERT_AUTHORITY_INVALID"), ErrorKind::Tls);
        assert_eq!(ErrorKind::classify("net::ERR_ABORTED"), ErrorKind::Aborted);
        assert_eq!(ErrorKind::classify("net::ERR_CONNECTION_CLOSED"), ErrorKind::Reset);
        assert_eq!(ErrorKind::classify("getaddrinfo ENOTFOUND api.test"), ErrorKind::Dns);
        assert_eq!(ErrorKind::classify("NS_ERROR_UNKNOWN_HOST"), ErrorKind::Dns);
        assert_eq!(
            ErrorKind::classify(
                "Multiple exceptions: [Errno 60] Connect call failed ('123.58.180.8', 80)"
            ),
            ErrorKind::Timeout
        );
        assert_eq!(ErrorKind::classify("[Errno 111] Connect call failed"), ErrorKind::Refused);
        assert_eq!(ErrorKind::classify("Client disconnected."), ErrorKind::Aborted);
        assert_eq!(ErrorKind::classify("something odd"), ErrorKind::Other);
    }
}
