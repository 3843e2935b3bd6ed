//! Evidence: when a finding opens, the whole window's traffic for its service is kept as a
//! native snapshot (`.jsonl.zst`), named by the SHA-256 of its exchange lines — the same traffic
//! is stored once, however many findings it opened — so that `af fix --finding FP` runs the
//! loop on it. A window, not three example exchanges: a rate or concurrency problem cannot be
//! reproduced from three.

use std::path::PathBuf;

use af_snapshot::{Exchange, NativeWriter};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row as _;

use crate::{Ledger, LedgerError, Result, now_ns};

/// One stored evidence snapshot.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Evidence {
    /// `sha256:` + hex of the exchange lines.
    pub digest: String,
    /// The service.
    pub service: String,
    /// Window start, ns.
    pub window_ns: i64,
    /// The file.
    #[sqlx(try_from = "String")]
    pub path: PathBuf,
    /// Its size.
    pub bytes: i64,
    /// Exchanges in it.
    pub exchanges: i64,
    /// Deleted by retention (ns), when it was.
    pub deleted: Option<i64>,
}

/// How long and how much evidence is kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Evidence older than this is deleted (ns).
    pub max_age_ns: i64,
    /// Past this many bytes in all, the oldest is deleted first.
    pub max_bytes: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_age_ns: 14 * 86_400 * 1_000_000_000, max_bytes: 10 << 30 }
    }
}

impl Ledger {
    /// Stores `exchanges` (one service's window) as evidence, once per content.
    pub async fn put_evidence(
        &self,
        service: &str,
        window_ns: i64,
        exchanges: &[Exchange],
    ) -> Result<Evidence> {
        let mut h = Sha256::new();
        for ex in exchanges {
            let line = serde_json::to_vec(ex).map_err(|e| LedgerError::Io {
                path: self.evidence_dir.clone(),
                source: e.into(),
            })?;
            h.update(&line);
            h.update(b"\n");
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let digest = format!("sha256:{hex}");
        if let Some(e) = self.evidence(&digest).await?
            && e.deleted.is_none()
            && e.path.exists()
        {
            return Ok(e);
        }
        let path = self.local_evidence(&hex)?;
        let tmp = path.with_file_name(format!(".{hex}.tmp"));
        let mut w = NativeWriter::create(&tmp, true, false)?;
        for ex in exchanges {
            w.write(ex)?;
        }
        w.finish()?;
        std::fs::rename(&tmp, &path)
            .map_err(|source| LedgerError::Io { path: path.clone(), source })?;
        let bytes = std::fs::metadata(&path).map(|m| m.len() as i64).unwrap_or(0);
        // Shared (PostgreSQL): the bytes go in the database too, for the machines that do not
        // have this file — a replica that did not analyse the window, a worker elsewhere.
        let content = match self.engine {
            crate::Engine::Postgres => Some(
                std::fs::read(&path)
                    .map_err(|source| LedgerError::Io { path: path.clone(), source })?,
            ),
            crate::Engine::Sqlite => None,
        };
        sqlx::query(
            "INSERT INTO evidence (digest, service, window_ns, path, bytes, exchanges, created, deleted, content)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)
             ON CONFLICT (digest) DO UPDATE SET path = excluded.path, deleted = NULL,
               created = excluded.created, content = excluded.content",
        )
        .bind(&digest)
        .bind(service)
        .bind(window_ns)
        .bind(path.display().to_string())
        .bind(bytes)
        .bind(exchanges.len() as i64)
        .bind(now_ns())
        .bind(content)
        .execute(self.pool())
        .await?;
        Ok(Evidence {
            digest,
            service: service.into(),
            window_ns,
            path,
            bytes,
            exchanges: exchanges.len() as i64,
            deleted: None,
        })
    }

    /// Where evidence `hex` lives on this machine.
    fn local_path(&self, hex: &str) -> PathBuf {
        self.evidence_dir.join(hex.get(..2).unwrap_or("xx")).join(format!("{hex}.jsonl.zst"))
    }

    /// [`local_path`](Self::local_path), its directory created.
    fn local_evidence(&self, hex: &str) -> Result<PathBuf> {
        let path = self.local_path(hex);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| LedgerError::Io { path: dir.to_owned(), source })?;
        }
        Ok(path)
    }

    /// The evidence with `digest`. On a shared (PostgreSQL) ledger its path is on this
    /// machine: a file another machine stored is written here from the database first.
    pub async fn evidence(&self, digest: &str) -> Result<Option<Evidence>> {
        let found = sqlx::query_as::<_, Evidence>(
            "SELECT digest, service, window_ns, path, bytes, exchanges, deleted FROM evidence WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(self.pool())
        .await?;
        let Some(mut e) = found else { return Ok(None) };
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        if self.engine == crate::Engine::Postgres
            && e.deleted.is_none()
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let local = self.local_evidence(hex)?;
            if !local.exists() {
                let content: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT content FROM evidence WHERE digest = $1")
                        .bind(digest)
                        .fetch_one(self.pool())
                        .await?;
                if let Some(bytes) = content {
                    let tmp = local.with_file_name(format!(".{hex}.{}.tmp", std::process::id()));
                    std::fs::write(&tmp, &bytes)
                        .and_then(|()| std::fs::rename(&tmp, &local))
                        .map_err(|source| LedgerError::Io { path: local.clone(), source })?;
                }
            }
            e.path = local;
        }
        Ok(Some(e))
    }

    /// A finding's evidence (fingerprint or a unique prefix) as this machine has it, or why
    /// there is none: what a fix run works on.
    pub async fn finding_evidence(&self, prefix: &str) -> Result<(crate::FindingRow, Evidence)> {
        let (f, _) = self.finding(prefix).await?;
        let Some(digest) = &f.evidence else {
            return Err(LedgerError::NotFound(format!("{} has no evidence stored", f.fingerprint)));
        };
        match self.evidence(digest).await? {
            Some(e) if e.deleted.is_none() && e.path.exists() => Ok((f, e)),
            _ => Err(LedgerError::NotFound(format!(
                "{}: its evidence {digest} was deleted by retention",
                f.fingerprint
            ))),
        }
    }

    /// Deletes evidence past `r`'s age, then the oldest until the total fits; returns how many
    /// files were deleted. The rows stay (marked deleted) so a finding says its evidence expired.
    pub async fn enforce_retention(&self, r: Retention) -> Result<usize> {
        let rows = sqlx::query("SELECT digest, path, bytes, created FROM evidence WHERE deleted IS NULL ORDER BY created DESC")
            .fetch_all(self.pool())
            .await?;
        let now = now_ns();
        let mut total = 0i64;
        let mut deleted = 0;
        for row in rows {
            let bytes: i64 = row.try_get("bytes")?;
            let created: i64 = row.try_get("created")?;
            total += bytes;
            if now - created <= r.max_age_ns && total <= r.max_bytes {
                continue;
            }
            let digest: String = row.try_get("digest")?;
            // Shared: this machine's copy (the row's path is the writer's).
            let path: PathBuf = match self.engine {
                crate::Engine::Postgres => {
                    self.local_path(digest.strip_prefix("sha256:").unwrap_or(&digest))
                }
                crate::Engine::Sqlite => row.try_get::<String, _>("path")?.into(),
            };
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LedgerError::Io { path, source: e });
                }
                _ => {}
            }
            sqlx::query("UPDATE evidence SET deleted = $2, content = NULL WHERE digest = $1")
                .bind(&digest)
                .bind(now)
                .execute(self.pool())
                .await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}
