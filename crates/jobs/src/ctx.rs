//! What every run of a worker shares: the queue, the policy, the worker's options and the
//! limits it is under.

use std::path::PathBuf;
use std::sync::Arc;

use crate::policy::Policy;
use crate::runs::{Kind, Queue, RunRow};

/// Where and how a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Unique per process (`host-pid-…`); it is the lease holder's name.
    pub name: String,
    /// Runs at once in this process.
    pub concurrency: usize,
    /// `af serve`'s data directory: the ledger, evidence, and `runs/` for run directories.
    pub data_dir: PathBuf,
    /// The `af` binary fix and plan runs execute.
    pub af_exe: PathBuf,
    /// Push and post for real (else the policy's `live`).
    pub live: bool,
    /// The ledger's database when it is shared (`postgres://…`, the same as the queue's);
    /// none: `ledger.db` in the data directory.
    pub ledger_url: Option<String>,
}

/// Everything a handler needs.
pub struct Ctx {
    pub(crate) queue: Queue,
    pub(crate) policy: Arc<Policy>,
    pub(crate) opts: WorkerOptions,
    ledger: tokio::sync::OnceCell<af_ledger::Ledger>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("worker", &self.opts.name).finish_non_exhaustive()
    }
}

impl Ctx {
    /// For a worker (or for enqueuing from `af serve`).
    pub fn new(queue: Queue, policy: Arc<Policy>, opts: WorkerOptions) -> Arc<Self> {
        Arc::new(Self { queue, policy, opts, ledger: tokio::sync::OnceCell::new() })
    }

    /// Dry-run unless the flag or the policy says live.
    pub fn live(&self) -> bool {
        self.opts.live || self.policy.jobs.live
    }

    /// The ledger (shared, or the data directory's), opened (and migrated) once per worker,
    /// not once per run.
    pub(crate) async fn ledger(&self) -> Result<&af_ledger::Ledger, crate::outcome::Failure> {
        let url = self.opts.ledger_url.as_deref();
        self.ledger
            .get_or_try_init(|| af_ledger::Ledger::connect(url, &self.opts.data_dir))
            .await
            .map_err(|e| {
                crate::outcome::Failure::transient(e.to_string(), std::time::Duration::from_secs(1))
            })
    }

    /// The limits a run is under: its repository (fix, plan, pr, and stub runs, which stand in
    /// for them in tests) and its engine's provider (fix, plan), as `(key, n)`.
    pub(crate) fn limits(&self, r: &RunRow) -> Vec<(String, usize)> {
        let mut keys = Vec::new();
        let kind = r.kind();
        if matches!(kind, Some(Kind::Fix | Kind::Plan | Kind::Pr | Kind::Stub))
            && let Some(s) = self.policy.service(&r.service)
        {
            keys.push((format!("repo:{}", s.repo), self.policy.jobs.per_repo));
            if matches!(kind, Some(Kind::Fix | Kind::Plan)) {
                let provider = s.engine.split(':').next().unwrap_or("builtin").to_owned();
                if let Some(n) = self.policy.jobs.per_provider.get(&provider) {
                    keys.push((format!("provider:{provider}"), *n));
                }
            }
        }
        keys
    }
}
