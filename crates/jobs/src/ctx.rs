//! What every run of a worker shares: the queue, the policy, the worker's options and the
//! per-repository and per-provider limits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

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
}

/// Everything a handler needs.
pub struct Ctx {
    pub(crate) queue: Queue,
    pub(crate) policy: Arc<Policy>,
    pub(crate) opts: WorkerOptions,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("worker", &self.opts.name).finish_non_exhaustive()
    }
}

impl Ctx {
    /// For a worker (or for enqueuing from `af serve`).
    pub fn new(queue: Queue, policy: Arc<Policy>, opts: WorkerOptions) -> Arc<Self> {
        Arc::new(Self { queue, policy, opts, limits: Mutex::new(HashMap::new()) })
    }

    /// Dry-run unless the flag or the policy says live.
    pub fn live(&self) -> bool {
        self.opts.live || self.policy.jobs.live
    }

    fn semaphore(&self, key: &str, n: usize) -> Arc<Semaphore> {
        let mut m = self.limits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(key.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(n.max(1)))).clone()
    }

    /// Limits for a run: its repository (fix, plan, pr) and its engine's provider (fix, plan).
    pub(crate) async fn permits(&self, r: &RunRow) -> Vec<tokio::sync::OwnedSemaphorePermit> {
        let mut keys = Vec::new();
        let kind = r.kind();
        if matches!(kind, Some(Kind::Fix | Kind::Plan | Kind::Pr))
            && let Some(s) = self.policy.service(&r.service)
        {
            keys.push((format!("repo:{}", s.repo), self.policy.jobs.per_repo));
            if kind != Some(Kind::Pr) {
                let provider = s.engine.split(':').next().unwrap_or("builtin").to_owned();
                if let Some(n) = self.policy.jobs.per_provider.get(&provider) {
                    keys.push((format!("provider:{provider}"), *n));
                }
            }
        }
        let mut out = Vec::new();
        for (k, n) in keys {
            if let Ok(p) = self.semaphore(&k, n).acquire_owned().await {
                out.push(p);
            }
        }
        out
    }
}
