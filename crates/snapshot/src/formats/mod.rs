//! The file formats: detection by content, and dispatch to one module per format.
//!
//! | format | read | write | detected by |
//! |---|---|---|---|
//! | native JSON Lines (`.jsonl`, `.zst`) | streaming, parallel | line-flushed | header line `{"format":"af-snapshot",...}` |
//! | HAR 1.2 | yes | streaming | first key `log` |
//! | proxymock RRPair JSON (one object or JSON Lines) | yes | – | `msgType`/`http` keys |
//! | proxymock RRPair markdown | yes | – | `### REQUEST ###` section |
//!
//! zstd compression is recognised by its magic number, whatever the extension.

pub mod har;
pub(crate) mod kind;
pub mod native;
pub mod proxymock;

pub use kind::{Format, FormatKind};

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::SnapshotError;
use crate::model::Exchange;
use crate::sink::{Sink, peek};

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const SNIFF: usize = 16 * 1024;

/// Opens `path` and detects its format from its content.
pub fn open(path: &Path) -> Result<(Format, Box<dyn Read + Send>), SnapshotError> {
    let file = File::open(path).map_err(|e| SnapshotError::io(path, e))?;
    let r: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(256 * 1024, file));
    let (head, r) = peek(r, SNIFF);
    if head.is_empty() {
        // Either empty, or unreadable from the first byte: the reader says which.
        let mut r = r;
        return Err(match r.read(&mut [0u8; 1]) {
            Err(e) => SnapshotError::io(path, e),
            Ok(_) => SnapshotError::Empty { path: path.to_owned() },
        });
    }
    let (zstd, head, r) = if head.starts_with(&ZSTD_MAGIC) {
        let dec = zstd::stream::read::Decoder::new(r).map_err(|e| SnapshotError::io(path, e))?;
        let (head, mut r) = peek(Box::new(dec), SNIFF);
        if head.is_empty() {
            return Err(match r.read(&mut [0u8; 1]) {
                Err(e) => SnapshotError::Record(crate::error::RecordError::new(
                    crate::error::Location {
                        offset: Some(0),
                        ..crate::error::Location::file(path)
                    },
                    None,
                    format!("zstd stream is truncated or corrupt before any data: {e}"),
                )),
                Ok(_) => SnapshotError::Empty { path: path.to_owned() },
            });
        }
        (true, head, r)
    } else {
        (false, head, r)
    };
    let kind =
        detect(&head).map_err(|why| SnapshotError::UnknownFormat { path: path.to_owned(), why })?;
    Ok((Format { kind, zstd }, r))
}

/// Decides the format from the first bytes of the (decompressed) content.
pub fn detect(head: &[u8]) -> Result<FormatKind, String> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // The sniffed prefix may end inside a multi-byte character.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(e) => {
            let at = e.valid_up_to();
            let sample: Vec<String> =
                head[at..].iter().take(4).map(|b| format!("{b:02x}")).collect();
            return Err(format!("binary data: byte {at} is not UTF-8 (0x{})", sample.join(" 0x")));
        }
    };
    if let Some(at) = text.bytes().position(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) {
        return Err(format!(
            "binary data: control byte 0x{:02x} at byte {at}",
            text.as_bytes()[at]
        ));
    }
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.is_empty() {
        return Err("only whitespace".into());
    }
    if trimmed.starts_with('{') {
        return match first_key(trimmed).as_deref() {
            Some("format") => Ok(FormatKind::Native),
            Some("log") => Ok(FormatKind::Har),
            Some(_) if looks_like_rrpair(trimmed) => Ok(FormatKind::ProxymockJson),
            Some(k) => Err(format!(
                "a JSON object whose first key is `{k}`; expected an af-snapshot header, a HAR `log` or a proxymock RRPair"
            )),
            None => Err("starts with `{` but is not a JSON object".into()),
        };
    }
    if trimmed.starts_with("### ") && text.contains("### REQUEST") || text.contains("\n### REQUEST")
    {
        return Ok(FormatKind::ProxymockMarkdown);
    }
    let first_line: String = trimmed.lines().next().unwrap_or("").chars().take(40).collect();
    Err(format!("text starting {first_line:?}"))
}

/// The first key of a JSON object, read without parsing the rest.
fn first_key(s: &str) -> Option<String> {
    let rest = s.strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_owned())
}

fn looks_like_rrpair(s: &str) -> bool {
    let line = s.lines().next().unwrap_or(s);
    let probe = if line.len() > 20 { line } else { s };
    probe.contains("\"msgType\"") || probe.contains("\"http\"") && probe.contains("\"uuid\"")
}

/// The whole (decompressed) content: HAR and proxymock records are parsed from memory.
pub(crate) fn read_whole(
    path: &Path,
    mut reader: Box<dyn Read + Send>,
) -> Result<Vec<u8>, SnapshotError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| SnapshotError::io(path, e))?;
    Ok(bytes)
}

pub(crate) fn parse(
    format: Format,
    path: &Path,
    reader: Box<dyn Read + Send>,
    sink: &mut Sink<'_>,
) -> Result<(), SnapshotError> {
    match format.kind {
        FormatKind::Native => native::parse(path, format, reader, sink),
        FormatKind::Har => har::parse(path, reader, sink),
        FormatKind::ProxymockJson => proxymock::parse_json(path, reader, sink),
        FormatKind::ProxymockMarkdown => proxymock::parse_markdown(path, reader, sink),
    }
}

/// Output formats `af` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Native JSON Lines, zstd-compressed when `zstd`.
    Native {
        /// Compress with zstd.
        zstd: bool,
    },
    /// HAR 1.2.
    Har,
}

impl OutputFormat {
    /// Chooses by extension: `.har`, `.zst`, anything JSON-lines-like.
    pub fn for_path(path: &Path) -> Result<Self, SnapshotError> {
        let name =
            path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if name.ends_with(".har") || name.ends_with(".har.json") {
            Ok(Self::Har)
        } else if name.ends_with(".zst") {
            Ok(Self::Native { zstd: true })
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".afsnap")
        {
            Ok(Self::Native { zstd: false })
        } else {
            Err(SnapshotError::UnknownOutputFormat { path: path.to_owned() })
        }
    }
}

/// Writes exchanges to a file in any output format.
pub enum Writer {
    /// Native JSON Lines.
    Native(native::NativeWriter),
    /// HAR 1.2.
    Har(har::HarWriter),
}

impl Writer {
    /// Creates `path` in `format`. `flush_each` flushes every exchange as it is written (for
    /// recorders: a killed process leaves a readable file); batch conversion leaves it off.
    pub fn create(
        path: &Path,
        format: OutputFormat,
        flush_each: bool,
    ) -> Result<Self, SnapshotError> {
        Ok(match format {
            OutputFormat::Native { zstd } => {
                Self::Native(native::NativeWriter::create(path, zstd, flush_each)?)
            }
            OutputFormat::Har => Self::Har(har::HarWriter::create(path)?),
        })
    }

    /// Appends one exchange.
    pub fn write(&mut self, ex: &Exchange) -> Result<(), SnapshotError> {
        match self {
            Self::Native(w) => w.write(ex),
            Self::Har(w) => w.write(ex),
        }
    }

    /// Completes the file (HAR's closing brackets, zstd's end frame) and flushes it.
    pub fn finish(self) -> Result<(), SnapshotError> {
        match self {
            Self::Native(w) => w.finish(),
            Self::Har(w) => w.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format_by_content() {
        assert_eq!(detect(b"{\"format\":\"af-snapshot\",\"version\":1}\n"), Ok(FormatKind::Native));
        assert_eq!(detect(b"\xef\xbb\xbf{\n  \"log\": {"), Ok(FormatKind::Har));
        assert_eq!(
            detect(b"{\"msgType\":\"rrpair\", \"ts\":\"2025\", \"http\":{}}"),
            Ok(FormatKind::ProxymockJson)
        );
        assert_eq!(
            detect(b"### REQUEST ###\n```\nGET http://x/ HTTP/1.1"),
            Ok(FormatKind::ProxymockMarkdown)
        );
        assert!(detect(b"\x00\x01\x02garbage").unwrap_err().contains("binary"));
        assert!(detect(b"{\"name\": 1}").unwrap_err().contains("first key is `name`"));
        assert!(detect(b"hello world").unwrap_err().contains("hello world"));
    }

    #[test]
    fn output_format_follows_extension() {
        assert_eq!(OutputFormat::for_path(Path::new("a.HAR")).ok(), Some(OutputFormat::Har));
        assert_eq!(
            OutputFormat::for_path(Path::new("a.jsonl.zst")).ok(),
            Some(OutputFormat::Native { zstd: true })
        );
        assert!(OutputFormat::for_path(Path::new("a.txt")).is_err());
    }
}
