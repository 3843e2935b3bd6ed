//! A native snapshot written by a dedicated thread: request paths (the mock's arrival journal,
//! the recorder) hand finished exchanges over a channel and never wait for the disk. The writer
//! flushes whenever its queue is empty, so a reader — or a killed process — sees every exchange
//! handed over before the last idle moment.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::error::SnapshotError;
use crate::formats::native::NativeWriter;
use crate::model::Exchange;

/// A snapshot being written in the background.
#[derive(Debug)]
pub struct BackgroundWriter {
    tx: mpsc::Sender<Exchange>,
    handle: JoinHandle<Result<u64, SnapshotError>>,
    path: PathBuf,
}

impl BackgroundWriter {
    /// Creates `path` (a native snapshot) and starts the writer thread.
    pub fn create(path: &Path) -> Result<Self, SnapshotError> {
        let mut w = NativeWriter::create(path, false, false)?;
        let (tx, rx) = mpsc::channel::<Exchange>();
        let handle = std::thread::Builder::new()
            .name("af-snapshot-writer".into())
            .spawn(move || {
                let mut n = 0u64;
                // Block for the next record, drain what is queued, flush when idle: a reader
                // (or a killed mock) sees every answered request within one idle moment.
                while let Ok(ex) = rx.recv() {
                    w.write(&ex)?;
                    n += 1;
                    loop {
                        match rx.try_recv() {
                            Ok(ex) => {
                                w.write(&ex)?;
                                n += 1;
                            }
                            Err(mpsc::TryRecvError::Empty) => {
                                w.flush()?;
                                break;
                            }
                            Err(mpsc::TryRecvError::Disconnected) => break,
                        }
                    }
                }
                w.finish()?;
                Ok(n)
            })
            .map_err(|e| SnapshotError::io(path, e))?;
        Ok(Self { tx, handle, path: path.to_owned() })
    }

    /// Queues one record; never blocks.
    pub fn record(&self, ex: Exchange) {
        // The writer only stops on a write error, which `finish` reports.
        let _ = self.tx.send(ex);
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for every queued record to be written; returns how many were.
    pub fn finish(self) -> Result<u64, SnapshotError> {
        drop(self.tx);
        self.handle.join().map_err(|_| {
            SnapshotError::io(&self.path, std::io::Error::other("snapshot writer panicked"))
        })?
    }
}
