//! Reading any supported source: detection by content, strict or lenient record handling, and
//! a parallel fold for native snapshots.
//!
//! Strict (the default) stops at the first bad record with an error naming file, line and field.
//! Lenient skips bad records, counts them and keeps the first few messages; the caller must say
//! how many were skipped. Either way nothing is dropped silently.

use std::path::{Path, PathBuf};

use crate::error::{Location, RecordError, SnapshotError};
use crate::formats;
use crate::model::Exchange;
use crate::sink::{ReadOptions, ReadSummary, Sink};

/// Reads every exchange of `path` (a file in any supported format, or a directory of them) in
/// source order, handing each to `out`.
pub fn read_path(
    path: &Path,
    opts: ReadOptions,
    out: &mut dyn FnMut(Exchange),
) -> Result<ReadSummary, SnapshotError> {
    let meta = std::fs::metadata(path).map_err(|e| SnapshotError::io(path, e))?;
    let summary = if meta.is_dir() {
        let mut files = Vec::new();
        let mut hidden = Vec::new();
        walk(path, &mut files, &mut hidden)?;
        files.sort();
        let mut total = ReadSummary { hidden_skipped: hidden, ..ReadSummary::default() };
        if files.is_empty() {
            return Err(SnapshotError::UnknownFormat {
                path: path.to_owned(),
                why: "directory holds no files".into(),
            });
        }
        for f in &files {
            match read_file(f, opts, out) {
                Ok(s) => total.merge(s),
                // A recorder's log or a config file beside the captures is plainly not one:
                // listed, not read, never an error (a capture that is broken still is one).
                Err(SnapshotError::UnknownFormat { why, .. }) => {
                    total.not_captures.push((f.clone(), why));
                }
                Err(SnapshotError::Empty { .. }) => {
                    total.not_captures.push((f.clone(), "empty file".into()));
                }
                Err(e) => return Err(e),
            }
        }
        if total.files.is_empty()
            && let Some((first, why)) = total.not_captures.first()
        {
            return Err(SnapshotError::UnknownFormat {
                path: path.to_owned(),
                why: format!(
                    "directory holds no capture: {} file{}, none in a format af reads (first: {}: {why})",
                    total.not_captures.len(),
                    if total.not_captures.len() == 1 { "" } else { "s" },
                    first.display()
                ),
            });
        }
        total
    } else {
        read_file(path, opts, out)?
    };
    if summary.exchanges == 0 && summary.skipped > 0 {
        let first = summary.errors.first().cloned().unwrap_or_else(|| {
            RecordError::new(Location::file(path), None, "every record was bad")
        });
        return Err(SnapshotError::NothingUsable {
            path: path.to_owned(),
            skipped: summary.skipped,
            first: Box::new(first),
        });
    }
    Ok(summary)
}

/// Reads all of `path` into memory. Convenient for tests and small captures.
pub fn read_all(
    path: &Path,
    opts: ReadOptions,
) -> Result<(Vec<Exchange>, ReadSummary), SnapshotError> {
    let mut v = Vec::new();
    let s = read_path(path, opts, &mut |e| v.push(e))?;
    Ok((v, s))
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    hidden: &mut Vec<PathBuf>,
) -> Result<(), SnapshotError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| SnapshotError::io(dir, e))?;
        let p = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            hidden.push(p);
            continue;
        }
        let ft = entry.file_type().map_err(|e| SnapshotError::io(&p, e))?;
        if ft.is_dir() {
            walk(&p, files, hidden)?;
        } else {
            files.push(p);
        }
    }
    Ok(())
}

fn read_file(
    path: &Path,
    opts: ReadOptions,
    out: &mut dyn FnMut(Exchange),
) -> Result<ReadSummary, SnapshotError> {
    let (format, reader) = formats::open(path)?;
    let mut sink = Sink::new(opts, out);
    sink.summary.files.push((path.to_owned(), format));
    formats::parse(format, path, reader, &mut sink)?;
    sink.finish()
}

/// Folds every exchange of `paths` into per-thread accumulators, in parallel where the format
/// allows (native snapshots parse line chunks on `threads` workers). Returns one accumulator per
/// worker, to be merged by the caller, and the summary of all sources.
///
/// Order of delivery is not source order; use [`read_path`] when order matters.
pub fn fold_paths<A: Send>(
    paths: &[PathBuf],
    opts: ReadOptions,
    threads: usize,
    init: &(dyn Fn() -> A + Sync),
    fold: &(dyn Fn(&mut A, Exchange) + Sync),
) -> Result<(Vec<A>, ReadSummary), SnapshotError> {
    let mut accs = vec![init()];
    let mut total = ReadSummary::default();
    for path in paths {
        let is_file = std::fs::metadata(path).map_err(|e| SnapshotError::io(path, e))?.is_file();
        let summary = if is_file && threads > 1 {
            let (format, reader) = formats::open(path)?;
            if format.is_native() {
                let (more, s) = formats::native::fold_parallel(
                    path, format, reader, opts, threads, init, fold,
                )?;
                accs.extend(more);
                s
            } else {
                drop(reader);
                let acc = &mut accs[0];
                read_path(path, opts, &mut |e| fold(acc, e))?
            }
        } else {
            let acc = &mut accs[0];
            read_path(path, opts, &mut |e| fold(acc, e))?
        };
        total.merge(summary);
    }
    Ok((accs, total))
}
