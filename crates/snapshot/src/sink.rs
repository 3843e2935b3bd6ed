//! What every format's parser writes into, and what a read reports: the options (strict or
//! lenient, bodies kept or elided), the summary (counts, warnings, the first errors), the
//! [`Sink`] that applies them to each record, and [`peek`] for detection by content. Below both
//! `read` (the entry points) and `formats` (the parsers), so neither reaches back into the other.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use crate::error::{Location, RecordError, SnapshotError};
use crate::formats::kind::Format;
use crate::model::Exchange;

/// How to treat bad records, and what to load.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Skip and count bad records instead of failing on the first.
    pub lenient: bool,
    /// Load bodies, or only their sizes.
    pub bodies: Bodies,
}

/// Whether readers load body bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bodies {
    /// Load them (conversion, replay).
    #[default]
    Keep,
    /// Skip the bytes, keep `size` and `truncated` ([`crate::BodyData::Elided`]). Statistics
    /// never look at bodies, and not unescaping and copying them is most of the parse time.
    Elide,
}

/// How many first errors a lenient read keeps for display.
pub const KEPT_ERRORS: usize = 20;

/// What a read saw, besides the exchanges.
#[derive(Clone, Debug, Default)]
pub struct ReadSummary {
    /// Files read, with the format each was detected as.
    pub files: Vec<(PathBuf, Format)>,
    /// Exchanges delivered.
    pub exchanges: u64,
    /// Bad records skipped (lenient mode).
    pub skipped: u64,
    /// The first [`KEPT_ERRORS`] skipped records' errors.
    pub errors: Vec<RecordError>,
    /// Files with an incomplete last line, typical of an interrupted writer; the partial line
    /// is not an exchange and is reported here rather than as an error.
    pub truncated_tails: Vec<Location>,
    /// Hidden files (dot-files) in directories, not read.
    pub hidden_skipped: Vec<PathBuf>,
    /// Files in directories that are no capture at all (a recorder's `proxymock.log`, a
    /// config file), with what they looked like: not read, not errors, listed.
    pub not_captures: Vec<(PathBuf, String)>,
    /// Records of a protocol other than HTTP (proxymock's Postgres, AMQP, ...), by protocol:
    /// neither exchanges nor errors, counted.
    pub non_http: BTreeMap<String, u64>,
    /// Benign deviations from a format that were read anyway (a `null` where HAR allows the
    /// field to be absent), grouped by field and message.
    pub warnings: Vec<Warning>,
}

/// A deviation from a format that `af` read past, with how often it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The field, without record indices (`request.headersSize`).
    pub field: String,
    /// What was read instead (`null, read as absent`).
    pub message: String,
    /// The first place it happened.
    pub first: Location,
    /// How many times.
    pub count: u64,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: field `{}`: {}", self.first, self.field, self.message)?;
        if self.count > 1 {
            write!(f, " ({} times in all)", self.count)?;
        }
        Ok(())
    }
}

impl ReadSummary {
    /// Adds another read's summary to this one (the first [`KEPT_ERRORS`] errors are kept).
    pub fn merge(&mut self, other: ReadSummary) {
        self.files.extend(other.files);
        self.exchanges += other.exchanges;
        self.skipped += other.skipped;
        for e in other.errors {
            if self.errors.len() < KEPT_ERRORS {
                self.errors.push(e);
            }
        }
        self.truncated_tails.extend(other.truncated_tails);
        self.hidden_skipped.extend(other.hidden_skipped);
        self.not_captures.extend(other.not_captures);
        for (k, v) in other.non_http {
            *self.non_http.entry(k).or_default() += v;
        }
        for w in other.warnings {
            self.warn(w);
        }
    }

    /// Adds a warning, folding it into an earlier one of the same field and message.
    pub fn warn(&mut self, w: Warning) {
        match self.warnings.iter_mut().find(|o| o.field == w.field && o.message == w.message) {
            Some(o) => o.count += w.count,
            None => self.warnings.push(w),
        }
    }

    /// Records of other protocols, in all.
    pub fn non_http_total(&self) -> u64 {
        self.non_http.values().sum()
    }
}

/// Receives parsed records; applies the strict/lenient policy. Parsers push into it.
pub(crate) struct Sink<'a> {
    lenient: bool,
    elide: bool,
    pub(crate) summary: ReadSummary,
    out: &'a mut dyn FnMut(Exchange),
    failed: Option<RecordError>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(opts: ReadOptions, out: &'a mut dyn FnMut(Exchange)) -> Self {
        Self {
            lenient: opts.lenient,
            elide: opts.bodies == Bodies::Elide,
            summary: ReadSummary::default(),
            out,
            failed: None,
        }
    }

    /// Takes one record. Returns false when reading must stop (strict mode, bad record).
    pub(crate) fn push(
        &mut self,
        rec: Result<Exchange, RecordError>,
        location: impl FnOnce() -> Location,
    ) -> bool {
        let rec = rec.and_then(|ex| match ex.validate() {
            Ok(()) => Ok(ex),
            Err((field, msg)) => Err(RecordError::new(location(), Some(field.to_owned()), msg)),
        });
        match rec {
            Ok(mut ex) => {
                if self.elide {
                    ex.elide_bodies();
                }
                self.summary.exchanges += 1;
                (self.out)(ex);
                true
            }
            Err(e) => self.bad(e),
        }
    }

    /// Notes a benign deviation that was read past (see [`Warning`]).
    pub(crate) fn warn(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        at: Location,
    ) {
        self.summary.warn(Warning {
            field: field.into(),
            message: message.into(),
            first: at,
            count: 1,
        });
    }

    /// Counts a record of another protocol (not an exchange, not an error).
    pub(crate) fn non_http(&mut self, protocol: &str) {
        *self.summary.non_http.entry(protocol.to_ascii_lowercase()).or_default() += 1;
    }

    /// The body mode records are read in.
    pub(crate) fn bodies(&self) -> Bodies {
        if self.elide { Bodies::Elide } else { Bodies::Keep }
    }

    /// Counts a bad record. Returns false when reading must stop.
    pub(crate) fn bad(&mut self, e: RecordError) -> bool {
        if !self.lenient {
            self.failed = Some(e);
            return false;
        }
        self.summary.skipped += 1;
        if self.summary.errors.len() < KEPT_ERRORS {
            self.summary.errors.push(e);
        }
        true
    }

    pub(crate) fn finish(self) -> Result<ReadSummary, SnapshotError> {
        match self.failed {
            Some(e) => Err(SnapshotError::Record(e)),
            None => Ok(self.summary),
        }
    }
}

/// Reads up to `n` bytes from the start of `r` without losing them: returns them and a reader
/// that yields them again followed by the rest.
///
/// A read error after some bytes arrived (a truncated zstd frame) is not lost: the returned
/// reader yields the bytes, then the error.
pub(crate) fn peek(mut r: Box<dyn Read + Send>, n: usize) -> (Vec<u8>, Box<dyn Read + Send>) {
    let mut head = Vec::with_capacity(n);
    match (&mut r).take(n as u64).read_to_end(&mut head) {
        Ok(_) => {
            let again = std::io::Cursor::new(head.clone()).chain(r);
            (head, Box::new(again))
        }
        Err(e) => {
            let again = std::io::Cursor::new(head.clone()).chain(Failing(Some(e)));
            (head, Box::new(again))
        }
    }
}

/// A reader that fails once with a stored error, then reports end of stream.
struct Failing(Option<std::io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}
