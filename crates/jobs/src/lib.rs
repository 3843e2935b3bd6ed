//! Agent Factory's durable jobs: what happens after `af serve` opens a finding, without a
//! person in the middle.
//!
//! - [`runs`]: the job record (`af_runs`), its idempotency key (kind + fingerprint + input
//!   digest) and its states; apalis carries the deliveries (leases renewed by a heartbeat,
//!   priorities, delays), on SQLite embedded or on a PostgreSQL every process shares ([`db`]).
//! - [`policy`]: `af.toml` — services, repositories, forges, rules, limits, budgets; dry-run
//!   unless live.
//! - [`worker`]: runs deliveries under per-repository and per-provider limits and budgets,
//!   retries with back-off, dead-letters, and turns outcomes into the next events.
//! - `handlers`: plan, fix, verify, ticket, pr (and a stub for tests and benchmarks).

mod ctx;
pub mod db;
mod events;
mod handlers;
pub mod merged;
pub mod outcome;
pub mod policy;
pub mod runs;
pub mod ticket;
pub mod worker;

pub use ctx::{Ctx, WorkerOptions};
pub use db::Db;
pub use events::emit;
pub use policy::Policy;
pub use runs::{Kind, NewRun, Queue, RunRow};
pub use ticket::redact_remote;

/// What can go wrong outside a job (a job's own failures are in its run record).
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The database.
    #[error("jobs database: {0}")]
    Db(String),
    /// apalis.
    #[error("job queue: {0}")]
    Queue(String),
    /// No such run.
    #[error("{0}")]
    NotFound(String),
    /// The run is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
}

impl From<sqlx::Error> for JobsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.to_string())
    }
}
