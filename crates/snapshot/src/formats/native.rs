//! The native snapshot: JSON Lines with a versioned header line, optionally zstd-compressed.
//!
//! ```text
//! {"format":"af-snapshot","version":2,"created":"2026-11-20T11:20:00Z","tool":"af 0.1.0"}
//! {"id":"3f2a…","request":{"method":"GET","url":"https://…"},"response":{"status":200},"timing":{…}}
//! ```
//!
//! One exchange per line, written and flushed as each completes, so a killed recorder leaves a
//! file that reads up to its last complete exchange. Readers stream; the parallel reader cuts the
//! file into line-aligned blocks and parses them on worker threads.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use serde::{Deserialize, Serialize};

use super::Format;
use crate::error::{Location, RecordError, SnapshotError};
use crate::model::Exchange;
use crate::sink::{Bodies, KEPT_ERRORS, ReadOptions, ReadSummary, Sink};
use crate::time::Timestamp;

/// The format name in the header line.
pub const FORMAT_NAME: &str = "af-snapshot";
/// The newest format version this build writes and reads.
///
/// 2 added `decoded` on bodies and the transport error kinds `dns`, `unreachable` and
/// `aborted`; a version-1 file is a version-2 file that uses none of them.
pub const FORMAT_VERSION: u64 = 2;

/// The first line of a native snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always `af-snapshot`.
    pub format: String,
    /// Format version, independent of the tool's version.
    pub version: u64,
    /// When the file was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// The tool that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// Upgrades an exchange of an older format version to the current model.
///
/// The migration chain: each released version gets one step here and one committed fixture under
/// `fixtures/formats/native-vN.jsonl` that a test loads. Version 2 only added optional fields
/// and enum values, so version 1 reads as it is.
fn migrate(version: u64, line: &[u8]) -> Result<Exchange, serde_json::Error> {
    debug_assert!((1..=FORMAT_VERSION).contains(&version));
    serde_json::from_slice(line)
}

fn parse_header(path: &Path, line_no: u64, line: &[u8]) -> Result<Header, SnapshotError> {
    let loc = || Location::file(path).at_line(line_no);
    // A byte-order mark is not part of the JSON (an editor on Windows may add one).
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    let h: Header = serde_json::from_slice(line).map_err(|e| {
        RecordError::new(
            loc(),
            Some("header".into()),
            format!("invalid header line: {}", json_message(&e)),
        )
    })?;
    if h.format != FORMAT_NAME {
        return Err(RecordError::new(
            loc(),
            Some("format".into()),
            format!("expected \"{FORMAT_NAME}\", found {:?}", h.format),
        )
        .into());
    }
    if h.version == 0 || h.version > FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.to_owned(),
            found: h.version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(h)
}

/// serde_json's message without its " at line L column C" suffix (we say where ourselves).
pub(crate) fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    };
    match e.classify() {
        serde_json::error::Category::Syntax => format!("invalid JSON: {s}"),
        serde_json::error::Category::Eof => format!("incomplete JSON: {s}"),
        _ => s,
    }
}

/// serde reports a missing field at its parent; name the field itself (`request.url`).
pub(crate) fn missing_field_path(parent: Option<String>, message: &str) -> Option<String> {
    match message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        Some(name) => Some(match parent {
            Some(p) => format!("{p}.{name}"),
            None => name.to_owned(),
        }),
        None => parent,
    }
}

/// One exchange line of the current format, read and validated as a snapshot's lines are;
/// `what` and `line_no` say where it came from in the error (the field at fault named).
pub fn exchange_line(what: &Path, line_no: u64, line: &[u8]) -> Result<Exchange, RecordError> {
    parse_line(what, FORMAT_VERSION, line_no, line, Bodies::Keep)
}

/// Parses one exchange line; on failure names the field (`request.method`) and column.
pub(crate) fn parse_line(
    path: &Path,
    version: u64,
    line_no: u64,
    line: &[u8],
    bodies: Bodies,
) -> Result<Exchange, RecordError> {
    let ex = crate::model::eliding_bodies(bodies == Bodies::Elide, || migrate(version, line))
        .map_err(|e| {
            // Re-parse only on the error path to learn which field was at fault.
            let mut de = serde_json::Deserializer::from_slice(line);
            let field = match serde_path_to_error::deserialize::<_, Exchange>(&mut de) {
                Err(pe) if pe.path().to_string() != "." => Some(pe.path().to_string()),
                _ => None,
            };
            let loc = Location {
                column: Some(e.column() as u64),
                ..Location::file(path).at_line(line_no)
            };
            let message = json_message(&e);
            RecordError::new(loc, missing_field_path(field, &message), message)
        })?;
    ex.validate().map_err(|(field, msg)| {
        RecordError::new(Location::file(path).at_line(line_no), Some(field.to_owned()), msg)
    })?;
    Ok(ex)
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Reads the header, skipping leading blank lines. Returns it with the lines and bytes consumed.
fn read_header(path: &Path, r: &mut impl BufRead) -> Result<(Header, u64, u64), SnapshotError> {
    let mut buf = Vec::new();
    let (mut line_no, mut offset) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(|e| stream_error(path, offset, &e))?;
        if n == 0 {
            return Err(SnapshotError::Empty { path: path.to_owned() });
        }
        line_no += 1;
        offset += n as u64;
        if !is_blank(&buf) {
            let start = if buf.starts_with(b"\xef\xbb\xbf") { 3 } else { 0 };
            return Ok((parse_header(path, line_no, &buf[start..])?, line_no, offset));
        }
    }
}

fn stream_error(path: &Path, offset: u64, e: &std::io::Error) -> SnapshotError {
    RecordError::new(
        Location { offset: Some(offset), ..Location::file(path) },
        None,
        format!("stream is truncated or corrupt after {offset} bytes: {e}"),
    )
    .into()
}

pub(crate) fn parse(
    path: &Path,
    format: Format,
    reader: Box<dyn Read + Send>,
    sink: &mut Sink<'_>,
) -> Result<(), SnapshotError> {
    debug_assert!(format.is_native());
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let (header, mut line_no, mut offset) = read_header(path, &mut r)?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let n = match r.read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let SnapshotError::Record(re) = stream_error(path, offset, &e) else {
                    unreachable!()
                };
                sink.bad(re);
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        offset += n as u64;
        if is_blank(&buf) {
            continue;
        }
        let complete = buf.ends_with(b"\n");
        match parse_line(path, header.version, line_no, &buf, sink.bodies()) {
            Ok(ex) => {
                sink.push(Ok(ex), || Location::file(path).at_line(line_no));
            }
            Err(_) if !complete => {
                sink.summary.truncated_tails.push(Location::file(path).at_line(line_no));
            }
            Err(e) => {
                if !sink.bad(e) {
                    return Ok(());
                }
            }
        }
    }
}

struct Block {
    data: Vec<u8>,
    first_line: u64,
    /// True when the block ends the stream without a final newline.
    unterminated_tail: bool,
}

struct WorkerOut<A> {
    acc: A,
    exchanges: u64,
    errors: Vec<RecordError>,
    skipped: u64,
    tail: Option<Location>,
}

/// Folds a native snapshot in parallel (see [`crate::fold_paths`]).
pub(crate) fn fold_parallel<A: Send>(
    path: &Path,
    format: Format,
    reader: Box<dyn Read + Send>,
    opts: ReadOptions,
    threads: usize,
    init: &(dyn Fn() -> A + Sync),
    fold: &(dyn Fn(&mut A, Exchange) + Sync),
) -> Result<(Vec<A>, ReadSummary), SnapshotError> {
    const BLOCK: usize = 1 << 20;
    let mut r = BufReader::with_capacity(BLOCK, reader);
    let (header, header_lines, header_bytes) = read_header(path, &mut r)?;
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<Block>(threads * 2);
    let rx = Mutex::new(rx);
    let path_buf: PathBuf = path.to_owned();

    let (outs, stream_err) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let rx = &rx;
                let stop = &stop;
                let path = &path_buf;
                s.spawn(move || {
                    let mut out = WorkerOut {
                        acc: init(),
                        exchanges: 0,
                        errors: Vec::new(),
                        skipped: 0,
                        tail: None,
                    };
                    loop {
                        let block = {
                            let Ok(guard) = rx.lock() else { break };
                            match guard.recv() {
                                Ok(b) => b,
                                Err(_) => break,
                            }
                        };
                        if stop.load(Ordering::Relaxed) {
                            continue;
                        }
                        let mut line_no = block.first_line;
                        let mut lines = block.data.split(|&b| b == b'\n').peekable();
                        while let Some(line) = lines.next() {
                            let last = lines.peek().is_none();
                            if last && line.is_empty() {
                                break;
                            }
                            if !is_blank(line) {
                                match parse_line(path, header.version, line_no, line, opts.bodies) {
                                    Ok(ex) => {
                                        out.exchanges += 1;
                                        fold(&mut out.acc, ex);
                                    }
                                    Err(_) if last && block.unterminated_tail => {
                                        out.tail = Some(Location::file(path).at_line(line_no));
                                    }
                                    Err(e) => {
                                        out.skipped += 1;
                                        if out.errors.len() < KEPT_ERRORS {
                                            out.errors.push(e);
                                        }
                                        if !opts.lenient {
                                            stop.store(true, Ordering::Relaxed);
                                            break;
                                        }
                                    }
                                }
                            }
                            line_no += 1;
                        }
                    }
                    out
                })
            })
            .collect();

        // This thread reads and cuts line-aligned blocks.
        let mut line_no = header_lines + 1;
        let mut offset = header_bytes;
        let mut carry: Vec<u8> = Vec::new();
        let mut stream_err = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut data = std::mem::take(&mut carry);
            data.reserve(BLOCK);
            let start = data.len();
            data.resize(start + BLOCK, 0);
            let n = match read_full(&mut r, &mut data[start..]) {
                Ok(n) => n,
                Err(e) => {
                    data.truncate(start);
                    stream_err = Some((offset + start as u64, e));
                    0
                }
            };
            data.truncate(start + n);
            let eof = n == 0;
            if data.is_empty() {
                break;
            }
            let cut =
                if eof { data.len() } else { memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1) };
            if cut == 0 {
                // A line longer than a block: keep reading into it.
                carry = data;
                continue;
            }
            carry = data.split_off(cut);
            let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
            offset += data.len() as u64;
            let unterminated_tail = eof && !data.ends_with(b"\n");
            let first_line = line_no;
            line_no += lines;
            if tx.send(Block { data, first_line, unterminated_tail }).is_err() || eof {
                break;
            }
        }
        drop(tx);
        let outs: Vec<WorkerOut<A>> = workers.into_iter().filter_map(|w| w.join().ok()).collect();
        (outs, stream_err)
    });

    let mut summary =
        ReadSummary { files: vec![(path.to_owned(), format)], ..ReadSummary::default() };
    let mut accs = Vec::with_capacity(outs.len());
    let mut errors: Vec<RecordError> = Vec::new();
    for o in outs {
        summary.exchanges += o.exchanges;
        summary.skipped += o.skipped;
        errors.extend(o.errors);
        summary.truncated_tails.extend(o.tail);
        accs.push(o.acc);
    }
    if let Some((off, e)) = stream_err {
        let SnapshotError::Record(re) = stream_error(path, off, &e) else { unreachable!() };
        summary.skipped += 1;
        errors.push(re);
    }
    errors.sort_by_key(|e| (e.location.line.unwrap_or(u64::MAX), e.location.offset));
    if !opts.lenient && !errors.is_empty() {
        return Err(SnapshotError::Record(errors.swap_remove(0)));
    }
    errors.truncate(KEPT_ERRORS);
    summary.errors = errors;
    Ok((accs, summary))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum OutputFile {
    Plain(BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl OutputFile {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Plain(w) => w,
            Self::Zstd(w) => w,
        }
    }
}

/// Writes a native snapshot, one exchange per line.
pub struct NativeWriter {
    path: PathBuf,
    out: OutputFile,
    flush_each: bool,
    line: Vec<u8>,
}

impl NativeWriter {
    /// Creates `path` and writes the header line.
    pub fn create(path: &Path, zstd: bool, flush_each: bool) -> Result<Self, SnapshotError> {
        let io = |e| SnapshotError::io(path, e);
        let file = BufWriter::with_capacity(256 * 1024, File::create(path).map_err(io)?);
        let out = if zstd {
            OutputFile::Zstd(zstd::stream::write::Encoder::new(file, 3).map_err(io)?)
        } else {
            OutputFile::Plain(file)
        };
        let mut w = Self { path: path.to_owned(), out, flush_each, line: Vec::with_capacity(4096) };
        let header = Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            created: Some(Timestamp::now()),
            tool: Some(concat!("af ", env!("CARGO_PKG_VERSION")).into()),
        };
        serde_json::to_writer(&mut w.line, &header).map_err(|e| io(e.into()))?;
        w.emit()?;
        Ok(w)
    }

    fn emit(&mut self) -> Result<(), SnapshotError> {
        self.line.push(b'\n');
        let res = self.out.writer().write_all(&self.line);
        self.line.clear();
        res.map_err(|e| SnapshotError::io(&self.path, e))?;
        if self.flush_each {
            self.out.writer().flush().map_err(|e| SnapshotError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Appends one exchange (one line; flushed when the writer was made with `flush_each`).
    pub fn write(&mut self, ex: &Exchange) -> Result<(), SnapshotError> {
        serde_json::to_writer(&mut self.line, ex)
            .map_err(|e| SnapshotError::io(&self.path, e.into()))?;
        self.emit()
    }

    /// Pushes everything written so far to the file (a zstd block boundary when compressed).
    pub fn flush(&mut self) -> Result<(), SnapshotError> {
        self.out.writer().flush().map_err(|e| SnapshotError::io(&self.path, e))
    }

    /// Ends the zstd frame and flushes.
    pub fn finish(self) -> Result<(), SnapshotError> {
        let path = self.path;
        let io = |e| SnapshotError::io(&path, e);
        match self.out {
            OutputFile::Plain(mut w) => w.flush().map_err(io),
            OutputFile::Zstd(w) => w.finish().map_err(io)?.flush().map_err(io),
        }
    }
}
