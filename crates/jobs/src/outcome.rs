//! What a run produced: its outcome and what it spent, or why it failed and whether retrying
//! can help.

use std::time::Duration;

use serde_json::Value;

use crate::JobsError;

/// What a run cost.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Spent {
    /// Wall time.
    pub wall_ms: Option<i64>,
    /// LLM tokens.
    pub tokens: Option<i64>,
    /// Dollars × 10⁶ (when the engine's price is known).
    pub dollars_micros: Option<i64>,
}

/// How a run ended (an `Err` from a handler is a failure to run; this is what it found).
pub struct Done {
    /// `succeeded` or `failed` (the job ran and said no: not confirmed, regressed).
    pub status: &'static str,
    /// What it found (JSON, kind-specific).
    pub outcome: Value,
    /// Its directory, when it wrote one.
    pub run_dir: Option<String>,
    /// What it spent.
    pub spent: Spent,
    /// Events for the policy, with what the next job needs.
    pub events: Vec<(&'static str, Value)>,
}

/// A handler's failure.
#[derive(Debug)]
pub struct Failure {
    /// Why.
    pub message: String,
    /// `Some`: worth retrying after at least this long.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// Not worth retrying.
    pub fn permanent(m: impl Into<String>) -> Self {
        Self { message: m.into(), retry_after: None }
    }
    /// Worth retrying after at least `after`.
    pub fn transient(m: impl Into<String>, after: Duration) -> Self {
        Self { message: m.into(), retry_after: Some(after) }
    }
}

impl From<af_sinks::SinkError> for Failure {
    fn from(e: af_sinks::SinkError) -> Self {
        Self { retry_after: e.retry_after(), message: e.to_string() }
    }
}

impl From<JobsError> for Failure {
    fn from(e: JobsError) -> Self {
        // The database is shared; losing it for a moment is worth a retry.
        Self::transient(e.to_string(), Duration::from_secs(1))
    }
}
