//! A watched directory: HAR, JSONL and proxymock drops (files or directories) are read with the
//! snapshot readers, taken in like any other intake, then moved to `DIR/.af-done/` — or, when
//! they cannot be read, to `DIR/.af-failed/` beside a `NAME.error` file saying why. A drop is
//! taken once it has not changed for two seconds (a copy still in progress is left alone).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use af_intake::{Decoded, Record};
use af_snapshot::ReadOptions;

use crate::Shared;
use crate::ingest::{Refusal, ingest};

fn newest_mtime(p: &Path) -> Option<SystemTime> {
    let m = std::fs::metadata(p).ok()?;
    let mut t = m.modified().ok()?;
    if m.is_dir() {
        for e in std::fs::read_dir(p).ok()?.flatten() {
            if let Some(u) = newest_mtime(&e.path()) {
                t = t.max(u);
            }
        }
    }
    Some(t)
}

fn settle(dir: &Path, name: &str, sub: &str) -> std::io::Result<PathBuf> {
    let to = dir.join(sub);
    std::fs::create_dir_all(&to)?;
    Ok(to.join(name))
}

/// Watches `dir` for drops of `service`'s traffic; runs for the life of the server.
pub async fn watch(shared: Arc<Shared>, dir: PathBuf, service: String) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let stable = newest_mtime(&path)
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= Duration::from_secs(2));
            if !stable {
                continue;
            }
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || {
                af_snapshot::read_all(&p, ReadOptions::default())
            })
            .await;
            let outcome = match read {
                Ok(Ok((exchanges, _))) => take(&shared, &service, exchanges).await,
                Ok(Err(err)) => Err(err.to_string()),
                Err(err) => Err(format!("reader task failed: {err}")),
            };
            let (sub, note) = match outcome {
                Ok(n) => (".af-done", format!("{n} exchanges taken")),
                Err(why) => (".af-failed", why),
            };
            match settle(&dir, &name, sub).and_then(|to| std::fs::rename(&path, &to).map(|()| to)) {
                Ok(to) if sub == ".af-failed" => {
                    let _ = std::fs::write(
                        to.with_file_name(format!("{name}.error")),
                        format!("{note}\n"),
                    );
                    log!("af serve: {}: {note}", path.display());
                }
                Ok(_) => {}
                Err(err) => log!("af serve: cannot move {}: {err}", path.display()),
            }
        }
    }
}

/// Takes exchanges in batches, waiting out a full buffer (a drop is never partly lost).
pub(crate) async fn take(
    shared: &Shared,
    service: &str,
    exchanges: Vec<af_snapshot::Exchange>,
) -> Result<usize, String> {
    let n = exchanges.len();
    let mut it = exchanges.into_iter().peekable();
    while it.peek().is_some() {
        let batch: Vec<Record> = it
            .by_ref()
            .take(1000)
            .map(|exchange| Record {
                service: exchange.service.clone().unwrap_or_else(|| service.to_owned()),
                exchange,
            })
            .collect();
        loop {
            let d = Decoded { records: batch.clone(), ..Decoded::default() };
            match ingest(shared, "watch", d).await {
                Ok(_) => break,
                Err(Refusal::Full { retry_after_s, .. }) => {
                    tokio::time::sleep(Duration::from_secs(retry_after_s)).await
                }
                Err(Refusal::Io(m)) => return Err(m),
            }
        }
    }
    Ok(n)
}

/// Seeds the ledger from snapshots at start: their traffic is taken in like any other (windows,
/// baselines from the clean ones, findings from the others).
pub async fn seed(shared: Arc<Shared>, files: Vec<(PathBuf, String)>) {
    for (path, service) in files {
        let p = path.clone();
        match tokio::task::spawn_blocking(move || af_snapshot::read_all(&p, ReadOptions::default()))
            .await
        {
            Ok(Ok((exchanges, _))) => match take(&shared, &service, exchanges).await {
                Ok(n) => {
                    log!("af serve: seeded {n} exchanges of {service} from {}", path.display())
                }
                Err(e) => log!("af serve: seeding from {}: {e}", path.display()),
            },
            Ok(Err(e)) => log!("af serve: seeding: {e}"),
            Err(e) => log!("af serve: seeding task failed: {e}"),
        }
    }
}
