//! A worker: takes deliveries from apalis (leased to this process, the lease renewed by its
//! heartbeat), claims the run in `af_runs`, runs it under its limits and budget, and records the
//! outcome. A transient failure is retried after a back-off that is itself a delayed delivery
//! (so it survives the worker); a run whose worker dies is redelivered by apalis once the lease
//! lapses and taken over by whichever worker gets it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use serde_json::{Value, json};

use crate::JobsError;
pub use crate::ctx::{Ctx, WorkerOptions};
use crate::db::Db;
use crate::events::emit;
use crate::outcome::{Failure, Spent};
use crate::runs::{Delivery, QUEUE, RunRow, now_ms};

impl Ctx {
    /// Runs one delivery of a run to the end of its attempt.
    pub(crate) async fn run_delivery(self: &Arc<Self>, run: &str) -> Result<(), JobsError> {
        let Some(r) = self.queue.claim(run, &self.opts.name).await? else {
            return Ok(()); // finished, cancelled, or another delivery of it is running here
        };
        let budget = &self.policy.jobs;
        if r.attempts > r.max_attempts {
            let msg = format!("{} attempts started; giving up", r.attempts - 1);
            self.dead(&r, &msg, &Spent::default()).await?;
            return Ok(());
        }
        // Limits are shared by every worker on the database: wait for a slot of each.
        let lease_ms = budget.lease.as_millis() as i64;
        let limits = self.limits(&r);
        // The holder is the run on this worker: a worker that lost the run frees only its own.
        let holder = format!("{}@{}", r.id, self.opts.name);
        loop {
            let mut all = true;
            for (key, n) in &limits {
                all &= self.queue.take_slot(key, *n, &holder, lease_ms).await?;
            }
            if all {
                break;
            }
            self.queue.release_slots(&holder).await?;
            if !self.queue.still_mine(&r.id, &self.opts.name).await? {
                return Ok(()); // cancelled while waiting
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let t = Instant::now();
        let job = crate::handlers::run(self.clone(), r.clone());
        let watch = self.watch_cancel(&r.id, (!limits.is_empty()).then_some(holder.as_str()));
        let result = tokio::select! {
            res = tokio::time::timeout(budget.wall, job) => match res {
                Ok(res) => res,
                Err(_) => Err(Failure::permanent(format!("over its wall-time budget of {}s", budget.wall.as_secs()))),
            },
            reason = watch => Err(Failure::permanent(reason)),
        };
        let wall = t.elapsed().as_millis() as i64;
        match result {
            Ok(done) => {
                let spent = Spent { wall_ms: Some(wall), ..done.spent };
                let over = over_budget(budget, &spent);
                let status = if over.is_some() { "failed" } else { done.status };
                let mut outcome = done.outcome;
                if let (Some(o), Value::Object(m)) = (&over, &mut outcome) {
                    m.insert("over_budget".into(), json!(o));
                }
                // A run that wrote anything (an outbox in dry-run, a fix's files) has a directory.
                let dir = self.opts.data_dir.join("runs").join(&r.id);
                let run_dir =
                    done.run_dir.or_else(|| dir.is_dir().then(|| dir.display().to_string()));
                let mine = self
                    .queue
                    .finish(
                        &r.id,
                        &self.opts.name,
                        status,
                        Some(&outcome),
                        over.as_deref(),
                        run_dir.as_deref(),
                        &spent,
                    )
                    .await?;
                if mine {
                    for (event, extra) in done.events {
                        emit(
                            &self.queue,
                            &self.policy,
                            event,
                            &r.fingerprint,
                            &r.service,
                            &severity_of(&r),
                            extra,
                            &r.id,
                        )
                        .await?;
                    }
                }
            }
            Err(f) => {
                let spent = Spent { wall_ms: Some(wall), ..Spent::default() };
                match f.retry_after {
                    Some(after) if r.attempts < r.max_attempts => {
                        let backoff = backoff(budget.backoff, r.attempts).max(after);
                        let msg = format!(
                            "{} (attempt {} of {}; retrying in {}s)",
                            f.message,
                            r.attempts,
                            r.max_attempts,
                            backoff.as_secs()
                        );
                        if self
                            .queue
                            .finish(
                                &r.id,
                                &self.opts.name,
                                "retrying",
                                None,
                                Some(&msg),
                                None,
                                &spent,
                            )
                            .await?
                        {
                            self.queue
                                .deliver(&r.id, r.deliveries + 1, r.priority, backoff)
                                .await?;
                        }
                    }
                    Some(_) => {
                        let msg = format!(
                            "{} (attempt {} of {}; no attempts left)",
                            f.message, r.attempts, r.max_attempts
                        );
                        self.dead(&r, &msg, &spent).await?;
                    }
                    None => {
                        if !f.message.starts_with("cancelled") {
                            self.dead(&r, &f.message, &spent).await?;
                        }
                    }
                }
            }
        }
        // Held until the outcome is written: the next run of the repository starts after it.
        if !limits.is_empty() {
            self.queue.release_slots(&holder).await?;
        }
        Ok(())
    }

    /// The dead-letter state: retrying cannot help, or the attempts ran out.
    async fn dead(&self, r: &RunRow, why: &str, spent: &Spent) -> Result<bool, JobsError> {
        self.queue.finish(&r.id, &self.opts.name, "dead", None, Some(why), None, spent).await
    }

    /// Resolves when the run stops being this worker's (cancelled, or taken over after a lost
    /// lease); checked every second, renewing the run's slots meanwhile.
    async fn watch_cancel(&self, run: &str, slots: Option<&str>) -> String {
        let lease_ms = self.policy.jobs.lease.as_millis() as i64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(holder) = slots {
                let _ = self.queue.renew_slots(holder, lease_ms).await;
            }
            match self.queue.still_mine(run, &self.opts.name).await {
                Ok(true) | Err(_) => {}
                Ok(false) => return "cancelled (or taken over by another worker)".into(),
            }
        }
    }
}

fn severity_of(r: &RunRow) -> String {
    r.input().get("severity").and_then(Value::as_str).unwrap_or("high").to_owned()
}

fn over_budget(b: &crate::policy::JobsConfig, s: &Spent) -> Option<String> {
    if let (Some(max), Some(used)) = (b.tokens, s.tokens)
        && used > max
    {
        return Some(format!("used {used} tokens, over the budget of {max}"));
    }
    if let (Some(max), Some(used)) = (b.dollars, s.dollars_micros)
        && used as f64 / 1e6 > max
    {
        return Some(format!("cost ${:.2}, over the budget of ${max:.2}", used as f64 / 1e6));
    }
    None
}

/// `base × 2^(attempt-1)`, capped at 10 minutes.
pub fn backoff(base: Duration, attempt: i64) -> Duration {
    let exp = attempt.clamp(1, 20) as u32 - 1;
    base.saturating_mul(1u32 << exp.min(16)).min(Duration::from_secs(600))
}

async fn handle(d: Delivery, ctx: Data<Arc<Ctx>>) -> Result<(), BoxDynError> {
    ctx.0.run_delivery(&d.run).await.map_err(|e| Box::new(e) as BoxDynError)
}

/// Runs a worker until `shutdown` resolves: `concurrency` runs at once, a heartbeat every
/// lease/3, and other workers' runs taken over when their heartbeat is 3 beats late.
pub async fn run<F>(ctx: Arc<Ctx>, shutdown: F) -> Result<(), JobsError>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Some(every) = ctx.policy.jobs.poll {
        let c = ctx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = match c.ledger().await {
                    Ok(l) => crate::merged::poll_once(&c.queue, &c.policy, l, c.live()).await,
                    Err(f) => Err(JobsError::Db(f.message)),
                } {
                    eprintln!("af worker: polling the forges: {e}");
                }
            }
        });
    }
    let lease = ctx.policy.jobs.lease.max(Duration::from_secs(3));
    let beat = lease / 3;
    let n = ctx.opts.concurrency.max(1);
    let name = ctx.opts.name.clone();
    let signal = async move {
        shutdown.await;
        Ok::<(), std::io::Error>(())
    };
    // The same worker on either backend (their storage and config types differ).
    macro_rules! run_on {
        ($storage:ty, $config:ty, $pool:expr) => {{
            let cfg = <$config>::default()
                .queue(QUEUE)
                .heartbeat_interval(beat)
                .missed_heartbeats(3)
                .batch_size(n);
            let backend = <$storage>::new(&$pool).with_config(cfg);
            WorkerBuilder::new(name)
                .backend(backend)
                .data(ctx)
                .concurrency(n)
                .build(handle)
                .run_until(signal)
                .await
        }};
    }
    let r = match ctx.queue.db().clone() {
        Db::Sqlite(p) => run_on!(apalis_sqlite::SqliteStorage<Delivery>, apalis_sqlite::Config, p),
        Db::Pg(p) => {
            run_on!(apalis_postgres::PostgresStorage<Delivery>, apalis_postgres::Config, p)
        }
    };
    r.map_err(|e| JobsError::Queue(format!("worker: {e}")))
}

/// A unique worker name: host, pid and the start time.
pub fn worker_name(prefix: &str) -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    format!("{prefix}-{}-{}-{}", host.trim(), std::process::id(), now_ms() % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_secs(5);
        assert_eq!(backoff(b, 1), Duration::from_secs(5));
        assert_eq!(backoff(b, 3), Duration::from_secs(20));
        assert_eq!(backoff(b, 15), Duration::from_secs(600));
    }
}
