//! Runs: what a job is (kind, finding, input), its idempotency key, and every state it goes
//! through. apalis carries deliveries (a task holding only the run's id: leased to one worker,
//! renewed by its heartbeat, handed to another when the heartbeat stops); `af_runs` holds the
//! job and its outcome, so a redelivery of a finished run is recognised and does nothing.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::JobsError;
use crate::db::{Db, exec, fetch};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `af plan --finding`: the plan only.
    Plan,
    /// `af fix --finding`: plan, work, evaluate on the finding's evidence.
    Fix,
    /// `af verify` after a deploy; closes or reopens the ticket.
    Verify,
    /// The finding's issue: create/update, comment on recurrence, close, reopen.
    Ticket,
    /// Push the fix branch and open the pull/merge request with the report as its body.
    Pr,
    /// A test and benchmark job: sleeps, then (optionally) comments once on an issue.
    Stub,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Fix => "fix",
            Self::Verify => "verify",
            Self::Ticket => "ticket",
            Self::Pr => "pr",
            Self::Stub => "stub",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "plan" => Self::Plan,
            "fix" => Self::Fix,
            "verify" => Self::Verify,
            "ticket" => Self::Ticket,
            "pr" => Self::Pr,
            "stub" => Self::Stub,
            _ => return None,
        })
    }
}

/// A run's state.
///
/// `queued` → `running` → `succeeded` | `failed` (its job said no: a fix not confirmed, a
/// verify regressed) | `dead` (retries exhausted, or an error retrying cannot fix) |
/// `cancelled`; `retrying` between attempts.
pub const STATES: &[&str] =
    &["queued", "running", "retrying", "succeeded", "failed", "dead", "cancelled"];

/// The apalis payload: only the run's id; the job is in `af_runs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// `af_runs.id`.
    pub run: String,
}

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// Kind.
    pub kind: Kind,
    /// The finding (`v1:…`), or a label for stub runs.
    pub fingerprint: String,
    /// Service.
    pub service: String,
    /// Kind-specific input; part of the idempotency key.
    pub input: serde_json::Value,
    /// Higher runs first.
    pub priority: i64,
    /// Not before this delay.
    pub delay: Duration,
    /// What made it (`rule finding.opened → fix`, `af runs requeue`, …).
    pub cause: String,
}

/// The idempotency key: kind, fingerprint and a digest of the input (canonical JSON: serde_json
/// keeps object keys sorted).
pub fn idempotency_key(kind: Kind, fingerprint: &str, input: &serde_json::Value) -> String {
    let digest = Sha256::digest(input.to_string().as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{}:{fingerprint}:{hex}", kind.as_str())
}

/// A run as stored.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct RunRow {
    /// Id (derived from the key: the same job is the same run).
    pub id: String,
    /// Idempotency key.
    pub idem_key: String,
    /// Kind.
    pub kind: String,
    /// Finding.
    pub fingerprint: String,
    /// Service.
    pub service: String,
    /// Input JSON.
    pub input: String,
    /// Priority.
    pub priority: i64,
    /// State (see [`STATES`]).
    pub status: String,
    /// Attempts started (a redelivery after a lost lease counts).
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Deliveries by the queue (apalis tasks pushed for this run).
    pub deliveries: i64,
    /// The worker running or last running it.
    pub worker: Option<String>,
    /// The latest apalis task id.
    pub task_id: Option<String>,
    /// What made it.
    pub cause: String,
    /// Created (ms since the epoch).
    pub created_ms: i64,
    /// Not before (ms).
    pub not_before_ms: i64,
    /// Latest start (ms).
    pub started_ms: Option<i64>,
    /// Finished (ms).
    pub finished_ms: Option<i64>,
    /// Outcome JSON.
    pub outcome: Option<String>,
    /// The latest error.
    pub error: Option<String>,
    /// Run directory (fix/plan/pr).
    pub run_dir: Option<String>,
    /// Wall time of the latest attempt.
    pub wall_ms: Option<i64>,
    /// LLM tokens used.
    pub tokens: Option<i64>,
    /// Dollars × 10⁶.
    pub dollars_micros: Option<i64>,
}

impl RunRow {
    /// The kind.
    pub fn kind(&self) -> Option<Kind> {
        Kind::parse(&self.kind)
    }

    /// The input.
    pub fn input(&self) -> serde_json::Value {
        serde_json::from_str(&self.input).unwrap_or(serde_json::Value::Null)
    }

    /// Whether nothing more will happen to it (until requeued).
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "dead" | "cancelled")
    }
}

/// An external effect already made.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct EffectRow {
    /// What makes it the same effect.
    pub effect_key: String,
    /// The run that made it.
    pub run_id: String,
    /// `issue`, `pr`, `comment`, `push`, `webhook`.
    pub kind: String,
    /// Finding.
    pub fingerprint: String,
    /// e.g. `github:acme/radar#12`.
    pub target: String,
    /// Its page.
    pub url: String,
    /// When.
    pub created_ms: i64,
}

/// The queue: the database plus apalis's storage on it.
#[derive(Clone, Debug)]
pub struct Queue {
    db: Db,
    sink: Sink,
    /// Attempts per run unless the policy says otherwise.
    pub max_attempts: i64,
}

#[derive(Clone)]
enum Sink {
    Sqlite(apalis_sqlite::SqliteStorage<Delivery>),
    Pg(apalis_postgres::PostgresStorage<Delivery>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Sink::Sqlite",
            Self::Pg(_) => "Sink::Pg",
        })
    }
}

/// The apalis queue name.
pub const QUEUE: &str = "af-runs";

pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

macro_rules! columns {
    () => {
        "id, idem_key, kind, fingerprint, service, input, priority, status, attempts, max_attempts, \
         deliveries, worker, task_id, cause, created_ms, not_before_ms, started_ms, finished_ms, outcome, error, \
         run_dir, wall_ms, tokens, dollars_micros"
    };
}

impl Queue {
    /// On an open database.
    pub fn new(db: Db) -> Self {
        let sink = match &db {
            Db::Sqlite(p) => Sink::Sqlite(
                apalis_sqlite::SqliteStorage::new(p)
                    .with_config(apalis_sqlite::Config::default().queue(QUEUE)),
            ),
            Db::Pg(p) => Sink::Pg(
                apalis_postgres::PostgresStorage::new(p)
                    .with_config(apalis_postgres::Config::default().queue(QUEUE)),
            ),
        };
        Self { db, sink, max_attempts: 5 }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Enqueues a job once: the same key is the same run, and a second enqueue returns the
    /// first run (`false`: nothing new). Final runs are not revived here; see [`requeue`](Self::requeue).
    pub async fn enqueue(&self, r: &NewRun) -> Result<(RunRow, bool), JobsError> {
        let key = idempotency_key(r.kind, &r.fingerprint, &r.input);
        let id = run_id(&key);
        let now = now_ms();
        let not_before = now + r.delay.as_millis() as i64;
        let inserted = exec!(
            &self.db,
            "INSERT INTO af_runs (id, idem_key, kind, fingerprint, service, input, priority, status, attempts,
                max_attempts, deliveries, cause, created_ms, not_before_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, 0, $9, $10, $11)
             ON CONFLICT (idem_key) DO NOTHING",
            &id,
            &key,
            r.kind.as_str(),
            &r.fingerprint,
            &r.service,
            r.input.to_string(),
            r.priority,
            self.max_attempts,
            &r.cause,
            now,
            not_before,
        )?;
        if inserted == 1 {
            self.deliver(&id, 1, r.priority, r.delay).await?;
        }
        Ok((self.show(&id).await?, inserted == 1))
    }

    /// Pushes one apalis task for attempt `n` of a run (its own idempotency key, so a retry
    /// pushed twice is one delivery).
    pub(crate) async fn deliver(
        &self,
        run: &str,
        n: i64,
        priority: i64,
        delay: Duration,
    ) -> Result<(), JobsError> {
        let task = TaskBuilder::new(Delivery { run: run.to_owned() })
            .priority(priority.clamp(0, 1_000) as usize)
            .max_attempts(1_000)
            .run_after(delay)
            .idempotency_key(format!("{run}#{n}"))
            .build();
        let task_id = task.ctx().task_id().map(ToString::to_string);
        match &self.sink {
            Sink::Sqlite(s) => {
                s.clone().push_task(task).await.map_err(|e| JobsError::Queue(e.to_string()))?
            }
            Sink::Pg(s) => {
                s.clone().push_task(task).await.map_err(|e| JobsError::Queue(e.to_string()))?
            }
        }
        exec!(
            &self.db,
            "UPDATE af_runs SET deliveries = deliveries + 1, task_id = COALESCE($2, task_id) WHERE id = $1",
            run,
            task_id
        )?;
        Ok(())
    }

    /// One run by id or unique id prefix.
    pub async fn show(&self, id: &str) -> Result<RunRow, JobsError> {
        let pat = format!("{}%", id.replace(['%', '_'], ""));
        let rows = fetch!(
            &self.db,
            RunRow,
            concat!("SELECT ", columns!(), " FROM af_runs WHERE id LIKE $1 LIMIT 2"),
            &pat
        )?;
        match rows.len() {
            0 => Err(JobsError::NotFound(format!("no run {id:?}"))),
            1 => Ok(rows.into_iter().next().ok_or_else(|| JobsError::NotFound(id.to_owned()))?),
            _ => {
                Err(JobsError::NotFound(format!("run prefix {id:?} is ambiguous; give more of it")))
            }
        }
    }

    /// Runs, newest first, optionally of one state and/or finding.
    pub async fn list(
        &self,
        status: Option<&str>,
        fingerprint: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, JobsError> {
        Ok(fetch!(
            &self.db,
            RunRow,
            concat!(
                "SELECT ",
                columns!(),
                " FROM af_runs WHERE ($1 = '' OR status = $1) AND ($2 = '' OR fingerprint = $2)
                 ORDER BY created_ms DESC, id LIMIT $3"
            ),
            status.unwrap_or(""),
            fingerprint.unwrap_or(""),
            limit
        )?)
    }

    /// Counts by state.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, JobsError> {
        #[derive(sqlx::FromRow)]
        struct C {
            status: String,
            n: i64,
        }
        let rows = fetch!(
            &self.db,
            C,
            "SELECT status, COUNT(*) AS n FROM af_runs GROUP BY status ORDER BY status"
        )?;
        Ok(rows.into_iter().map(|c| (c.status, c.n)).collect())
    }

    /// Cancels a run that has not finished: a queued one is never started, a running one is
    /// stopped by its worker at its next check (within a second). `false` if it had finished.
    pub async fn cancel(&self, id: &str) -> Result<bool, JobsError> {
        let r = self.show(id).await?;
        let n = exec!(
            &self.db,
            "UPDATE af_runs SET status = 'cancelled', finished_ms = $2, error = 'cancelled by af runs cancel'
             WHERE id = $1 AND status IN ('queued', 'running', 'retrying')",
            &r.id,
            now_ms()
        )?;
        Ok(n == 1)
    }

    /// Puts a finished (dead, failed, cancelled, even succeeded) run back in the queue with its
    /// attempts reset; its effects stay recorded, so a requeued `pr` finds its pull request.
    pub async fn requeue(&self, id: &str) -> Result<RunRow, JobsError> {
        let r = self.show(id).await?;
        if !r.is_final() {
            return Err(JobsError::Conflict(format!(
                "run {} is {}; only a finished run can be requeued",
                r.id, r.status
            )));
        }
        exec!(
            &self.db,
            "UPDATE af_runs SET status = 'queued', attempts = 0, error = NULL, finished_ms = NULL,
                cause = cause || ' (requeued)', not_before_ms = $2 WHERE id = $1",
            &r.id,
            now_ms()
        )?;
        self.deliver(&r.id, r.deliveries + 1, r.priority, Duration::ZERO).await?;
        self.show(&r.id).await
    }

    /// Effects of a finding's runs.
    pub async fn effects(&self, fingerprint: Option<&str>) -> Result<Vec<EffectRow>, JobsError> {
        Ok(fetch!(
            &self.db,
            EffectRow,
            "SELECT effect_key, run_id, kind, fingerprint, target, url, created_ms FROM af_effects
             WHERE ($1 = '' OR fingerprint = $1) ORDER BY created_ms, effect_key",
            fingerprint.unwrap_or("")
        )?)
    }

    /// The effects of one kind on one target (`github:acme/radar!12`).
    pub async fn effects_on(&self, kind: &str, target: &str) -> Result<Vec<EffectRow>, JobsError> {
        Ok(fetch!(
            &self.db,
            EffectRow,
            "SELECT effect_key, run_id, kind, fingerprint, target, url, created_ms FROM af_effects
             WHERE kind = $1 AND target = $2 ORDER BY created_ms, effect_key",
            kind,
            target
        )?)
    }

    pub(crate) async fn effect(&self, key: &str) -> Result<Option<EffectRow>, JobsError> {
        Ok(fetch!(
            &self.db,
            EffectRow,
            "SELECT effect_key, run_id, kind, fingerprint, target, url, created_ms FROM af_effects WHERE effect_key = $1",
            key
        )?
        .into_iter()
        .next())
    }

    pub(crate) async fn record_effect(&self, e: &EffectRow) -> Result<(), JobsError> {
        exec!(
            &self.db,
            "INSERT INTO af_effects (effect_key, run_id, kind, fingerprint, target, url, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (effect_key) DO NOTHING",
            &e.effect_key,
            &e.run_id,
            &e.kind,
            &e.fingerprint,
            &e.target,
            &e.url,
            e.created_ms
        )?;
        Ok(())
    }

    /// Takes a short lease on making one effect (`claim:` + its key), so that two runs about
    /// to make the same effect on different machines do not both make it: `true` when this run
    /// holds it (newly, again, or taken over from a holder silent for `lease_ms`).
    pub(crate) async fn lease_effect(
        &self,
        key: &str,
        run: &str,
        lease_ms: i64,
    ) -> Result<bool, JobsError> {
        let claim = format!("claim:{key}");
        let now = now_ms();
        exec!(
            &self.db,
            "INSERT INTO af_effects (effect_key, run_id, kind, fingerprint, target, url, created_ms)
             VALUES ($1, $2, 'claim', '', '', '', $3)
             ON CONFLICT (effect_key) DO UPDATE SET run_id = $2, created_ms = $3
             WHERE af_effects.run_id = $2 OR af_effects.created_ms < $4",
            &claim,
            run,
            now,
            now - lease_ms
        )?;
        Ok(self.effect(&claim).await?.is_some_and(|e| e.run_id == run))
    }

    /// Ends a lease taken with [`lease_effect`](Self::lease_effect).
    pub(crate) async fn release_effect(&self, key: &str, run: &str) -> Result<(), JobsError> {
        exec!(
            &self.db,
            "DELETE FROM af_effects WHERE effect_key = $1 AND run_id = $2",
            format!("claim:{key}"),
            run
        )?;
        Ok(())
    }

    /// Takes one of the `n` slots of `key` for `run` (the holder: `run@worker`) until
    /// `lease_ms` from now (a slot whose holder let its lease lapse is free). `true` when held.
    pub(crate) async fn take_slot(
        &self,
        key: &str,
        n: usize,
        run: &str,
        lease_ms: i64,
    ) -> Result<bool, JobsError> {
        let now = now_ms();
        for i in 0..n.max(1) {
            let slot = format!("{key}#{i}");
            exec!(
                &self.db,
                "INSERT INTO af_slots (slot, run_id, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (slot) DO UPDATE SET run_id = $2, expires_ms = $3
                 WHERE af_slots.run_id = $2 OR af_slots.expires_ms < $4",
                &slot,
                run,
                now + lease_ms,
                now
            )?;
            #[derive(sqlx::FromRow)]
            struct Holder {
                run_id: String,
            }
            let h = fetch!(&self.db, Holder, "SELECT run_id FROM af_slots WHERE slot = $1", &slot)?;
            if h.first().is_some_and(|h| h.run_id == run) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Renews every slot the holder `run` (`run@worker`) holds.
    pub(crate) async fn renew_slots(&self, run: &str, lease_ms: i64) -> Result<(), JobsError> {
        exec!(
            &self.db,
            "UPDATE af_slots SET expires_ms = $2 WHERE run_id = $1",
            run,
            now_ms() + lease_ms
        )?;
        Ok(())
    }

    /// Frees every slot the holder `run` (`run@worker`) holds.
    pub(crate) async fn release_slots(&self, run: &str) -> Result<(), JobsError> {
        exec!(&self.db, "DELETE FROM af_slots WHERE run_id = $1", run)?;
        Ok(())
    }

    /// Claims a delivery: the run becomes `running` on `worker` unless it is final (then `None`:
    /// the delivery is a duplicate, or the run was cancelled) — one statement, so two workers
    /// holding two deliveries of one run never both run it.
    pub(crate) async fn claim(&self, run: &str, worker: &str) -> Result<Option<RunRow>, JobsError> {
        let n = exec!(
            &self.db,
            "UPDATE af_runs SET status = 'running', attempts = attempts + 1, worker = $2, started_ms = $3
             WHERE id = $1 AND (status IN ('queued', 'retrying')
                OR (status = 'running' AND (worker IS NULL OR worker <> $2)))",
            run,
            worker,
            now_ms()
        )?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.show(run).await?))
    }

    /// Whether the run is still this worker's and not cancelled.
    pub(crate) async fn still_mine(&self, run: &str, worker: &str) -> Result<bool, JobsError> {
        #[derive(sqlx::FromRow)]
        struct Mine {
            n: i64,
        }
        let rows = fetch!(
            &self.db,
            Mine,
            "SELECT COUNT(*) AS n FROM af_runs WHERE id = $1 AND status = 'running' AND worker = $2",
            run,
            worker
        )?;
        Ok(rows.first().is_some_and(|m| m.n == 1))
    }

    /// Records the end of an attempt. Only the worker holding the run may (a worker that lost
    /// its lease and finishes late changes nothing).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish(
        &self,
        run: &str,
        worker: &str,
        status: &str,
        outcome: Option<&serde_json::Value>,
        error: Option<&str>,
        run_dir: Option<&str>,
        budget: &crate::outcome::Spent,
    ) -> Result<bool, JobsError> {
        let n = exec!(
            &self.db,
            "UPDATE af_runs SET status = $3, outcome = COALESCE($4, outcome), error = $5, run_dir = COALESCE($6, run_dir),
                finished_ms = CASE WHEN $3 = 'retrying' THEN NULL ELSE $7 END, wall_ms = $8,
                tokens = COALESCE($9, tokens), dollars_micros = COALESCE($10, dollars_micros)
             WHERE id = $1 AND worker = $2 AND status = 'running'",
            run,
            worker,
            status,
            outcome.map(ToString::to_string),
            error,
            run_dir,
            now_ms(),
            budget.wall_ms,
            budget.tokens,
            budget.dollars_micros
        )?;
        Ok(n == 1)
    }
}

fn run_id(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_kind_fingerprint_and_input_digest() {
        let a =
            idempotency_key(Kind::Pr, "v1:abc", &serde_json::json!({"commit": "1", "branch": "b"}));
        let b =
            idempotency_key(Kind::Pr, "v1:abc", &serde_json::json!({"branch": "b", "commit": "1"}));
        let c =
            idempotency_key(Kind::Pr, "v1:abc", &serde_json::json!({"branch": "b", "commit": "2"}));
        assert_eq!(a, b, "key order in the input does not matter");
        assert_ne!(a, c);
        assert!(a.starts_with("pr:v1:abc:"), "{a}");
        assert_ne!(run_id(&a), run_id(&c));
    }
}
