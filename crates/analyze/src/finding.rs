//! What a detector reports: a [`Finding`] with severity, a plain-language summary, evidence
//! (exchange ids) and, where the finding is something code can fix, a suggested metric and
//! threshold in DESIGN.md §4 syntax — the Planner's starting point.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How much a finding matters. Ordered: `Info < Low < Medium < High`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// A small problem.
    Low,
    /// A real problem.
    Medium,
    /// The problem to fix first.
    High,
}

impl Severity {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// `F1`, `F2`, ... in order of severity.
    pub id: String,
    /// Which detector (`error-burst`, `limit-model`, `retry-storm`, `fan-out`).
    pub detector: String,
    /// How much it matters.
    pub severity: Severity,
    /// `METHOD template` it is about, when one.
    pub endpoint: Option<String>,
    /// Host of that endpoint.
    pub host: Option<String>,
    /// HTTP status it is about (0 for transport errors), when one.
    pub status: Option<u16>,
    /// What is wrong, in plain words, with the numbers.
    pub summary: String,
    /// Exchange ids that show it (a sample; cite by unique prefix).
    pub evidence: Vec<String>,
    /// The metric and threshold a fix should meet, e.g.
    /// `peak_inflight{endpoint="GET /a/{id}",per="caller"} <= 10`.
    pub suggested_metric: Option<String>,
    /// Detector-specific numbers.
    pub details: serde_json::Value,
    /// What a fix should bound, typed: the Planner reads this, never `details`. Absent when a
    /// finding calls for no particular fix (an error burst is a symptom to explain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<Remedy>,
}

/// The fix a finding calls for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Remedy {
    /// Bound the calls in flight — at the upstream's limit estimate when one was inferred.
    Concurrency {
        /// The limit the upstream enforces, when inferred.
        limit: Option<f64>,
        /// The limit is per caller.
        per_caller: bool,
    },
    /// Pace the calls — below the upstream's rate when one was inferred.
    Rate {
        /// Calls per second the upstream admits, when inferred.
        per_second: Option<f64>,
        /// The limit is per caller.
        per_caller: bool,
    },
    /// Wait before retrying, honouring `Retry-After`.
    Retry,
    /// The errors are not load-related: no bound on the client's load would remove them.
    NotLoadRelated,
}

/// Short human time of day, `11:15:04.155`, from ns since the epoch.
pub(crate) fn clock(ns: i64) -> String {
    let s = af_snapshot::Timestamp::from_nanos(ns).to_rfc3339();
    s.get(11..23).unwrap_or(&s).to_owned()
}

/// `16.0 s`, `35 ms`.
pub(crate) fn span_text(ns: i64) -> String {
    let s = ns as f64 / 1e9;
    if s >= 1.0 { format!("{s:.1} s") } else { format!("{:.0} ms", s * 1000.0) }
}
