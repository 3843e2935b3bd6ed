//! Shared windows: how several `af serve` replicas on one PostgreSQL ledger analyse each
//! window once, with every record any of them took.
//!
//! A replica stores what it acknowledges in `pending` (one row per record, in the
//! transaction that acknowledges it) and touches its window's row in `pending_windows` (the
//! latest request start and arrival time). Any replica may find a window due — by the same
//! rules as one server: the service's watermark, over every replica's records, passed the
//! window's end plus the grace, or nothing arrived for the grace — and then *claims* it; the
//! claimant reads the window's records, analyses them, and in the transaction that writes the
//! window's row marks the claim done and deletes the records.
//!
//! Why this holds:
//! - **No record is lost or counted twice.** Taking a record upserts its window's row, which
//!   locks that row until the record is committed; a claim updates the same row, so it waits
//!   for every taking in progress, and a taking after the claim sees it and counts its
//!   records *late* (on the window's row, as one server does) instead of storing them.
//! - **One analysis per window, one at a time per service.** A claim is a conditional update
//!   (unclaimed, or its lease expired), taken under a per-service advisory lock that also
//!   refuses a second window of a service while one is being analysed: baselines are read,
//!   updated and written back per window, so two at once would lose an update.
//! - **A replica that dies mid-analysis** leaves a claim whose lease expires ([`CLAIM_LEASE_NS`]);
//!   another replica takes it. A claimant that lost its claim cannot write the window: the
//!   final transaction checks it still holds it.
//!
//! On the embedded SQLite ledger, one server holds its windows in memory and its records in
//! its segment log; these tables stay empty.

use crate::{Engine, Ledger, LedgerError, Result, WindowRow, now_ns};

/// How long a claim holds without its holder finishing: far above an analysis (a 60 s window
/// of 100 000 records analyses in about a second), short enough that a window of a replica
/// that died is analysed within minutes.
pub const CLAIM_LEASE_NS: i64 = 300_000_000_000;

/// Done windows' rows are kept this long (a record of a window older than the latest claimed
/// one is late by their evidence), then pruned.
const KEEP_DONE_NS: i64 = 86_400_000_000_000;

/// One record to store: its service, request start (ns) and encoded bytes.
pub struct PendingRecord<'a> {
    /// The service.
    pub service: &'a str,
    /// The request's start, ns.
    pub start_ns: i64,
    /// The record, encoded by the caller.
    pub bytes: &'a [u8],
}

/// A window some replica may claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueWindow {
    /// The service.
    pub service: String,
    /// The window's start, ns.
    pub window_ns: i64,
}

fn service_lock(service: &str) -> i64 {
    let h = blake3::hash(service.as_bytes());
    let b = h.as_bytes();
    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl Ledger {
    /// Whether this ledger's windows are shared (PostgreSQL).
    pub fn shared_windows(&self) -> bool {
        self.engine == Engine::Postgres
    }

    /// Stores records in their windows (`window_len` ns long), in one transaction: when it
    /// returns they are durable and will be analysed by some replica. Records whose window is
    /// already claimed or closed are counted late on the window's row, not stored; returns
    /// how many were.
    pub async fn pend(&self, window_len: i64, records: &[PendingRecord<'_>]) -> Result<usize> {
        use std::collections::BTreeMap;
        let mut groups: BTreeMap<(&str, i64), Vec<&PendingRecord<'_>>> = BTreeMap::new();
        for r in records {
            groups
                .entry((r.service, r.start_ns.div_euclid(window_len) * window_len))
                .or_default()
                .push(r);
        }
        let now = now_ns();
        let mut tx = self.begin(None).await?;
        let mut late = 0;
        let mut closed_before: BTreeMap<&str, Option<i64>> = BTreeMap::new();
        // In (service, window) order: two takings lock rows in one order, never a cycle.
        for ((service, window), rs) in groups {
            let before = match closed_before.get(service) {
                Some(b) => *b,
                None => {
                    let b: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(window_ns) FROM pending_windows
                         WHERE service = $1 AND claimed_by IS NOT NULL",
                    )
                    .bind(service)
                    .fetch_one(&mut *tx)
                    .await?;
                    let b = b.map(|w| w + window_len);
                    closed_before.insert(service, b);
                    b
                }
            };
            let max_start = rs.iter().map(|r| r.start_ns).max().unwrap_or(window);
            let claimed = if before.is_some_and(|b| window < b) {
                true
            } else {
                let claimed_by: Option<String> = sqlx::query_scalar(
                    "INSERT INTO pending_windows (service, window_ns, max_start, last_arrival)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (service, window_ns) DO UPDATE SET
                       max_start = CASE WHEN pending_windows.max_start >= excluded.max_start
                         THEN pending_windows.max_start ELSE excluded.max_start END,
                       last_arrival = excluded.last_arrival
                     RETURNING claimed_by",
                )
                .bind(service)
                .bind(window)
                .bind(max_start)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                claimed_by.is_some()
            };
            if claimed {
                late += rs.len();
                sqlx::query(
                    "INSERT INTO windows (service, start_ns, end_ns, records, findings, analysed_at, late)
                     VALUES ($1, $2, $3, 0, 0, $4, $5)
                     ON CONFLICT (service, start_ns) DO UPDATE SET late = windows.late + excluded.late",
                )
                .bind(service)
                .bind(window)
                .bind(window + window_len)
                .bind(now)
                .bind(rs.len() as i64)
                .execute(&mut *tx)
                .await?;
                continue;
            }
            // Many rows per statement: one round trip per 256 records, not per record.
            for chunk in rs.chunks(256) {
                let mut sql =
                    String::from("INSERT INTO pending (service, window_ns, record) VALUES ");
                for i in 0..chunk.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("($1, $2, ${})", i + 3));
                }
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(service).bind(window);
                for r in chunk {
                    q = q.bind(r.bytes);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(late)
    }

    /// Windows due for analysis: unclaimed (or their claim's lease expired), and the service's
    /// watermark passed their end plus `grace` or nothing arrived for `grace` (every window
    /// with `all`). Oldest first per service.
    pub async fn due_windows(
        &self,
        window_len: i64,
        grace: i64,
        all: bool,
    ) -> Result<Vec<DueWindow>> {
        let now = now_ns();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT p.service, p.window_ns FROM pending_windows p
             JOIN (SELECT service, MAX(max_start) AS watermark, MAX(last_arrival) AS arrival
                   FROM pending_windows GROUP BY service) s ON s.service = p.service
             WHERE p.done = 0 AND (p.claimed_by IS NULL OR p.claimed_until < $3)
               AND ($4 OR p.window_ns + $1 + $2 <= s.watermark OR s.arrival + $2 <= $3)
             ORDER BY p.service, p.window_ns",
        )
        .bind(window_len)
        .bind(grace)
        .bind(now)
        .bind(all)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(service, window_ns)| DueWindow { service, window_ns }).collect())
    }

    /// Claims a due window for `holder`; its records (in the order taken) when the claim is
    /// ours, none when another replica has it or is analysing another window of the service.
    pub async fn claim_window(&self, w: &DueWindow, holder: &str) -> Result<Option<Vec<Vec<u8>>>> {
        let now = now_ns();
        let mut tx = self.begin(Some(service_lock(&w.service))).await?;
        let busy: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pending_windows WHERE service = $1 AND window_ns <> $2
             AND done = 0 AND claimed_by IS NOT NULL AND claimed_until >= $3",
        )
        .bind(&w.service)
        .bind(w.window_ns)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if busy > 0 {
            return Ok(None);
        }
        let taken = sqlx::query(
            "UPDATE pending_windows SET claimed_by = $3, claimed_until = $4
             WHERE service = $1 AND window_ns = $2 AND done = 0
               AND (claimed_by IS NULL OR claimed_until < $5)",
        )
        .bind(&w.service)
        .bind(w.window_ns)
        .bind(holder)
        .bind(now + CLAIM_LEASE_NS)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        // Claimed and committed: no taking adds to it any more.
        let records: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT record FROM pending WHERE service = $1 AND window_ns = $2 ORDER BY id",
        )
        .bind(&w.service)
        .bind(w.window_ns)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(records))
    }

    /// Gives a claim back after a failed analysis: the window is due again in `retry_in` ns
    /// (to this replica or another), not on the next tick.
    pub async fn release_window(&self, w: &DueWindow, holder: &str, retry_in: i64) -> Result<()> {
        sqlx::query(
            "UPDATE pending_windows SET claimed_until = $4
             WHERE service = $1 AND window_ns = $2 AND claimed_by = $3 AND done = 0",
        )
        .bind(&w.service)
        .bind(w.window_ns)
        .bind(holder)
        .bind(now_ns() + retry_in)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes a claimed window's row and endpoints, marks the claim done and deletes its
    /// records, in one transaction — refused (nothing written) if `holder` no longer holds it.
    pub async fn record_claimed_window(
        &self,
        w: &WindowRow,
        endpoints: &[crate::EndpointWindow],
        holder: &str,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        // The claim's row first, then the window's: the order a taking locks them in.
        let mine = sqlx::query(
            "UPDATE pending_windows SET done = 1
             WHERE service = $1 AND window_ns = $2 AND claimed_by = $3 AND done = 0",
        )
        .bind(&w.service)
        .bind(w.start_ns)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if mine == 0 {
            return Err(LedgerError::NotFound(format!(
                "window {} of {} was claimed by another replica (this one's lease expired)",
                w.start_ns, w.service
            )));
        }
        self.write_window(&mut tx, w, endpoints).await?;
        sqlx::query("DELETE FROM pending WHERE service = $1 AND window_ns = $2")
            .bind(&w.service)
            .bind(w.start_ns)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM pending_windows WHERE service = $1 AND done = 1 AND window_ns < $2",
        )
        .bind(&w.service)
        .bind(w.start_ns - KEEP_DONE_NS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records waiting for their window's analysis, over every replica.
    pub async fn pending_records(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM pending").fetch_one(&self.pool).await?)
    }
}
