//! `af-intake`: what `af serve` takes in, turned into [`Record`]s (a service and one
//! [`af_snapshot::Exchange`]), and the [`segment`] log that makes an acknowledged record durable.
//!
//! Sources, all decoded with the maintained OTLP bindings (`opentelemetry-proto` on `prost`):
//! - OTLP **logs** ([`otlp::logs_from_proto`], [`otlp::logs_from_json`]) whose records each
//!   carry one request/response pair in their body: Speedscale's RRPair as its forwarder
//!   exports it (the RRPair's protojson as a key-value list; `service`/`namespace` as record
//!   attributes), or af's native exchange JSON (a key-value list or a string);
//! - OTLP **traces** ([`otlp::traces_from_proto`], [`otlp::traces_from_json`]): HTTP *client*
//!   spans become exchanges without bodies, so a service with OpenTelemetry needs no proxy;
//! - native exchange JSON Lines ([`native_lines`]), what `af record --push` sends.
//!
//! Nothing is dropped in silence: every record is a [`Record`], a [`Rejected`] (with its index,
//! the field at fault and why) or counted as not HTTP ([`Decoded::not_http`]).

#![warn(missing_docs)]

pub mod otlp;
pub mod segment;

use af_snapshot::Exchange;
use serde::{Deserialize, Serialize};

/// One exchange and the service it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `namespace/name`, or `name` without a namespace; `unknown` when no source said.
    pub service: String,
    /// The exchange.
    pub exchange: Exchange,
}

impl Record {
    /// What the record holds in memory, roughly: the structs, every string and body, and a
    /// collection node per header and tag. `af serve`'s buffers are bounded by this (the
    /// frame on disk is two to four times smaller than the parsed exchange).
    pub fn heap_size(&self) -> usize {
        use af_snapshot::BodyData;
        let ex = &self.exchange;
        let body = |b: &Option<af_snapshot::Body>| match b.as_ref().map(|b| &b.data) {
            Some(BodyData::Text(t)) => t.capacity(),
            Some(BodyData::Binary(v)) => v.capacity(),
            _ => 0,
        };
        let headers = |h: &af_snapshot::Headers| {
            h.iter().map(|(k, v)| 48 + k.capacity() + v.capacity()).sum::<usize>()
        };
        std::mem::size_of::<Record>()
            + self.service.capacity()
            + ex.id.as_str().len()
            + ex.request.method.capacity()
            + ex.request.url.capacity()
            + headers(&ex.request.headers)
            + body(&ex.request.body)
            + ex.response.as_ref().map_or(0, |r| {
                std::mem::size_of::<af_snapshot::Response>() + headers(&r.headers) + body(&r.body)
            })
            // A tag's value is a small JSON value (a string or a number): a node and its text.
            + ex.tags.iter().map(|(k, v)| 96 + k.capacity() + v.as_str().map_or(16, str::len)).sum::<usize>()
    }
}

/// A record that could not be taken, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    /// Its position in the request (0-based, across resources and scopes).
    pub index: usize,
    /// The field at fault, when one is (`body.http.req.method`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "record {}: {field}: {}", self.index, self.message),
            None => write!(f, "record {}: {}", self.index, self.message),
        }
    }
}

/// What one request to the intake held.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The exchanges taken.
    pub records: Vec<Record>,
    /// Records refused, each with its reason.
    pub rejected: Vec<Rejected>,
    /// Records that are fine but not HTTP exchanges (a span of a database call, an RRPair of
    /// Postgres), by kind: counted, not refused.
    pub not_http: std::collections::BTreeMap<String, u64>,
}

/// A one-line summary of the first few rejections, for an OTLP `error_message`.
pub fn rejection_message(rejected: &[Rejected]) -> String {
    let mut s = String::new();
    for (i, r) in rejected.iter().take(3).enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(&r.to_string());
    }
    if rejected.len() > 3 {
        s.push_str(&format!("; and {} more", rejected.len() - 3));
    }
    s
}

impl Decoded {
    fn not_http(&mut self, kind: &str) {
        *self.not_http.entry(kind.to_owned()).or_default() += 1;
    }
}

/// Why a whole request was refused (before any record was looked at).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The protobuf did not decode (truncated, or not this message).
    #[error("the body is not a valid OTLP {what} protobuf message: {source}")]
    Protobuf {
        /// `ExportLogsServiceRequest`, ...
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// The JSON did not parse as the message.
    #[error("the body is not a valid OTLP {what} JSON message: {message}")]
    Json {
        /// `ExportLogsServiceRequest`, ...
        what: &'static str,
        /// Where and what.
        message: String,
    },
}

/// Reads native exchange JSON Lines (one exchange per line, blank lines and an `af-snapshot`
/// header line skipped), as `af record --push` sends them. `service` is the default for
/// exchanges that do not name one.
pub fn native_lines(body: &[u8], service: &str) -> Decoded {
    let mut out = Decoded::default();
    let mut index = 0;
    for line in body.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if index == 0 && is_snapshot_header(line) {
            continue;
        }
        // The snapshot reader's own line parser: the same validation, the field at fault named.
        match af_snapshot::formats::native::exchange_line(
            std::path::Path::new("request"),
            index as u64 + 1,
            line,
        ) {
            Ok(ex) => out.records.push(Record {
                service: ex.service.clone().unwrap_or_else(|| service.to_owned()),
                exchange: ex,
            }),
            Err(e) => out.rejected.push(Rejected { index, field: e.field, message: e.message }),
        }
        index += 1;
    }
    out
}

fn is_snapshot_header(line: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .is_some_and(|v| v.get("format").and_then(|f| f.as_str()) == Some("af-snapshot"))
}

/// One native exchange from parsed JSON (an OTLP log record's body), validated as a snapshot
/// line is; the field at fault named.
pub(crate) fn native_exchange(v: serde_json::Value) -> Result<Exchange, (Option<String>, String)> {
    let ex: Exchange = serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        ((field != ".").then_some(field), format!("not an af exchange: {}", e.inner()))
    })?;
    ex.validate().map_err(|(field, msg)| (Some(field.to_owned()), msg))?;
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id":"a1","request":{"method":"GET","url":"http://api.test/x","headers":[]},"response":{"status":429,"headers":[]},"timing":{"start":"2026-01-01T00:00:00Z","duration_ns":1000}}"#;

    #[test]
    fn native_lines_take_exchanges_and_name_what_is_wrong() {
        let body = format!(
            "{{\"format\":\"af-snapshot\",\"version\":2}}\n{LINE}\n\n{{\"id\":\"b\"}}\nnot json\n"
        );
        let d = native_lines(body.as_bytes(), "radar");
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.records[0].service, "radar");
        assert_eq!(d.rejected.len(), 2, "{:?}", d.rejected);
        assert_eq!(d.rejected[0].index, 1);
        assert!(d.rejected[0].message.contains("missing field"), "{}", d.rejected[0].message);
        assert!(d.rejected[1].message.contains("expected"), "{}", d.rejected[1].message);
        assert!(rejection_message(&d.rejected).contains("record 2"));
    }
}
