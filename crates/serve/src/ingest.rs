//! From a request's body to acknowledged records: decode, admit, append and sync, then hand
//! the records to their windows.
//!
//! The segment log has one writer thread doing group commit: requests queue their encoded
//! frames, the thread writes everything queued and syncs once, then answers each request. One
//! `fdatasync` then covers many requests, which is what lets a synced-before-acknowledged log
//! keep up with tens of thousands of records a second.

use std::io;
use std::path::Path;
use std::sync::mpsc;

use af_intake::segment::{Replay, SegmentLog, encode_into};
use af_intake::{Decoded, Rejected};
use serde::Serialize;

use crate::Shared;

enum Msg {
    Append(Vec<u8>, tokio::sync::oneshot::Sender<io::Result<u64>>),
    Remove(u64),
}

/// The segment log's writer thread.
pub struct LogWriter {
    tx: mpsc::Sender<Msg>,
}

impl LogWriter {
    /// Opens the log in `dir`, replays it and starts the writer.
    pub fn open(dir: &Path) -> io::Result<(Self, Replay)> {
        let (mut log, replay) = SegmentLog::open(dir)?;
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new().name("af-segment-log".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut frames = Vec::new();
                let mut waiting = Vec::new();
                let mut removals = Vec::new();
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    match m {
                        Msg::Append(f, done) => {
                            frames.extend_from_slice(&f);
                            waiting.push(done);
                        }
                        Msg::Remove(id) => removals.push(id),
                    }
                    if frames.len() < 32 << 20 {
                        next = rx.try_recv().ok();
                    }
                }
                if !waiting.is_empty() {
                    let res = log.append_encoded(&frames);
                    for done in waiting {
                        let _ = done.send(match &res {
                            Ok(id) => Ok(*id),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
                for id in removals {
                    if let Err(e) = log.remove(id) {
                        log!("af serve: cannot delete analysed segment {id}: {e}");
                    }
                }
            }
        })?;
        Ok((Self { tx }, replay))
    }

    /// Appends frames and waits until they are on disk; returns their segment.
    pub async fn append(&self, frames: Vec<u8>) -> io::Result<u64> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Append(frames, done))
            .map_err(|_| io::Error::other("segment log writer stopped"))?;
        wait.await.map_err(|_| io::Error::other("segment log writer stopped"))?
    }

    /// Deletes a segment whose records are all analysed.
    pub fn remove(&self, id: u64) {
        let _ = self.tx.send(Msg::Remove(id));
    }
}

/// What the intake answers for an accepted request.
#[derive(Debug, Default, Serialize)]
pub struct Ack {
    /// Records stored (and so acknowledged).
    pub accepted: usize,
    /// Records refused, each with why.
    pub rejected: Vec<Rejected>,
    /// Records that were not HTTP exchanges (counted, not refused).
    pub not_http: u64,
}

/// Why a whole request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// A service's buffer is full: retry after this many seconds.
    Full {
        /// Which service.
        service: String,
        /// Seconds.
        retry_after_s: u64,
    },
    /// The log could not be written.
    Io(String),
}

/// Takes a decoded request: admits it whole or not at all (a client told to retry resends the
/// whole request, so a part taken would be counted twice), stores it, then windows it.
pub async fn ingest(
    shared: &Shared,
    source: &'static str,
    decoded: Decoded,
) -> Result<Ack, Refusal> {
    let m = &shared.metrics;
    let mut ack = Ack {
        rejected: decoded.rejected,
        not_http: decoded.not_http.values().sum(),
        ..Ack::default()
    };
    m.reject("invalid_record", ack.rejected.len() as u64);
    let mut frames = Vec::with_capacity(decoded.records.len() * 400);
    let mut records = Vec::with_capacity(decoded.records.len());
    for (i, r) in decoded.records.into_iter().enumerate() {
        let at = frames.len();
        match encode_into(&r, &mut frames) {
            Ok(n) if n <= shared.cfg.max_record => {
                // Buffers bound memory: count what the record holds in memory, not on disk.
                let held = n.max(r.heap_size());
                records.push((r, held));
            }
            Ok(n) => {
                frames.truncate(at);
                ack.rejected.push(Rejected {
                    index: i,
                    field: None,
                    message: format!(
                        "record of {n} bytes is over the limit of {} (--max-record)",
                        shared.cfg.max_record
                    ),
                });
                m.reject("too_large", 1);
            }
            Err(e) => {
                frames.truncate(at);
                ack.rejected.push(Rejected { index: i, field: None, message: e.to_string() });
                m.reject("unencodable", 1);
            }
        }
    }
    m.not_http(ack.not_http);
    if records.is_empty() {
        return Ok(ack);
    }
    if shared.ledger.shared_windows() {
        return pend(shared, source, records, &frames, ack).await;
    }
    if let Err(service) = shared.windows.reserve(&records) {
        m.reject("buffer_full", records.len() as u64);
        return Err(Refusal::Full { service, retry_after_s: shared.windows.retry_after_s() });
    }
    let segment = match shared.log.append(frames).await {
        Ok(id) => id,
        Err(e) => {
            shared.windows.release(&records);
            m.reject("storage", records.len() as u64);
            return Err(Refusal::Io(format!("the segment log could not be written: {e}")));
        }
    };
    ack.accepted = records.len();
    m.received(source, records.len() as u64);
    crate::windows::insert(shared, segment, records);
    Ok(ack)
}

/// Shared windows (a PostgreSQL ledger): the records are stored in the ledger — the frames'
/// payloads, encoded once above — durable when its transaction commits, and analysed by
/// whichever replica claims their window.
async fn pend(
    shared: &Shared,
    source: &'static str,
    records: Vec<(af_intake::Record, usize)>,
    frames: &[u8],
    mut ack: Ack,
) -> Result<Ack, Refusal> {
    let m = &shared.metrics;
    let rows: Vec<af_ledger::pending::PendingRecord<'_>> = records
        .iter()
        .zip(af_intake::segment::payloads(frames))
        .map(|((r, _), bytes)| af_ledger::pending::PendingRecord {
            service: &r.service,
            start_ns: r.exchange.timing.start.as_nanos(),
            bytes,
        })
        .collect();
    if rows.len() != records.len() {
        m.reject("unencodable", records.len() as u64);
        return Err(Refusal::Io(format!(
            "{} records but {} encoded frames: nothing stored",
            records.len(),
            rows.len()
        )));
    }
    match shared.ledger.pend(shared.cfg.window_ns, &rows).await {
        Ok(late) => {
            ack.accepted = records.len();
            m.received(source, records.len() as u64);
            m.late(late as u64);
            Ok(ack)
        }
        Err(e) => {
            m.reject("storage", records.len() as u64);
            Err(Refusal::Io(format!("the ledger could not store the records: {e}")))
        }
    }
}
