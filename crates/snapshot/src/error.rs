//! Errors of reading and writing snapshots, each naming the file and where in it.

use std::fmt;
use std::path::PathBuf;

/// Where in a source a record sits. Printed as `path:line` or `path: byte N` plus the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, for line-oriented and pretty-printed JSON sources.
    pub line: Option<u64>,
    /// 1-based column on that line.
    pub column: Option<u64>,
    /// Byte offset (of the decompressed stream for `.zst`), when no line applies.
    pub offset: Option<u64>,
    /// Record label, e.g. `entry 3` in a HAR file.
    pub record: Option<String>,
}

impl Location {
    /// The start of `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), ..Self::default() }
    }

    /// This location at `line`.
    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        match (self.line, self.column, self.offset) {
            (Some(l), Some(c), _) => write!(f, ":{l}:{c}")?,
            (Some(l), None, _) => write!(f, ":{l}")?,
            (None, _, Some(o)) => write!(f, ": byte {o}")?,
            _ => {}
        }
        if let Some(r) = &self.record {
            write!(f, ": {r}")?;
        }
        Ok(())
    }
}

/// One unusable record: where, which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct RecordError {
    /// Where the record is (boxed: errors travel in `Result`s on hot paths).
    pub location: Box<Location>,
    /// The offending field (`log.entries[3].response`), when one is to blame.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl RecordError {
    /// A record error at `location`.
    pub fn new(location: Location, field: Option<String>, message: impl Into<String>) -> Self {
        Self { location: Box::new(location), field, message: message.into() }
    }
}

/// Failure to read or write a snapshot as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file or directory could not be opened, read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The content is no format `af` knows.
    #[error("{}: not a snapshot `af` can read ({why})", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What was seen instead.
        why: String,
    },
    /// The file is empty.
    #[error("{}: file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A native snapshot of a version this build cannot read.
    #[error("{}:1: snapshot format version {found} is newer than this `af` reads (up to {supported}); upgrade af", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the header.
        found: u64,
        /// Highest version this build reads.
        supported: u64,
    },
    /// A record could not be used (strict mode stops at the first).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The output path's extension names no format `af` writes.
    #[error("{}: cannot tell which format to write (use .jsonl, .jsonl.zst or .har)", path.display())]
    UnknownOutputFormat {
        /// The path.
        path: PathBuf,
    },
    /// Lenient reading found no usable record at all.
    #[error("{}: no usable exchange ({skipped} bad record(s) skipped; first: {first})", path.display())]
    NothingUsable {
        /// The source.
        path: PathBuf,
        /// How many were skipped.
        skipped: u64,
        /// The first error.
        first: Box<RecordError>,
    },
}

impl SnapshotError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_line_and_field() {
        let e = RecordError::new(
            Location { record: Some("entry 3".into()), ..Location::file("c.har").at_line(45) },
            Some("log.entries[3].response".into()),
            "missing",
        );
        assert_eq!(e.to_string(), "c.har:45: entry 3: field `log.entries[3].response`: missing");
        let e = RecordError::new(
            Location { offset: Some(12), ..Location::file("c.jsonl.zst") },
            None,
            "truncated",
        );
        assert_eq!(e.to_string(), "c.jsonl.zst: byte 12: truncated");
    }
}
