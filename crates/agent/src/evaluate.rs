//! The Evaluator's deterministic checks: the evidence a reviewer would ask for before
//! believing "fixed".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::{Measured, fmt_num, fmt_values};

/// One check.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// Short name.
    pub name: String,
    /// `None`: not applicable (and said why in `detail`).
    pub passed: Option<bool>,
    /// The evidence.
    pub detail: String,
}

/// All checks.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Evaluation {
    /// Every applicable check passed.
    pub passed: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

/// Test command outcome.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TestRun {
    /// The command.
    pub command: Vec<String>,
    /// Exit code (`None`: killed or timed out).
    pub exit_code: Option<i32>,
    /// Killed on time-out.
    pub timed_out: bool,
    /// Wall time.
    pub ms: f64,
    /// The last lines of output.
    pub tail: String,
}

/// What the Evaluator looks at.
pub struct Evidence<'a> {
    /// The plan's harness hash.
    pub planned_hash: &'a str,
    /// Baseline.
    pub baseline: &'a Measured,
    /// Confirm.
    pub confirm: &'a Measured,
    /// Tests, when configured.
    pub tests: Option<&'a TestRun>,
    /// Files the patch changes.
    pub changed: &'a [String],
    /// Files the localized site may change (its file and where its bound is defined).
    pub allowed: &'a [String],
}

/// Runs the checks.
pub fn evaluate(e: &Evidence<'_>) -> Evaluation {
    let mut checks = Vec::new();
    let same =
        e.confirm.harness_hash == e.planned_hash && e.baseline.harness_hash == e.planned_hash;
    checks.push(Check {
        name: "identical harness".into(),
        passed: Some(same),
        detail: format!(
            "baseline {} · confirm {} · plan {}",
            short(&e.baseline.harness_hash),
            short(&e.confirm.harness_hash),
            short(e.planned_hash)
        ),
    });
    let runs_ok =
        e.confirm.runs.iter().all(|r| !r.timed_out && r.exit_code == Some(0) && r.requests > 0);
    checks.push(Check {
        name: "program ran cleanly".into(),
        passed: Some(runs_ok),
        detail: if runs_ok {
            format!("{} confirm runs exited 0", e.confirm.runs.len())
        } else {
            e.confirm.problems.join("; ")
        },
    });
    if let (Some(b), Some(c)) = (e.baseline.primary(), e.confirm.primary()) {
        checks.push(Check {
            name: "metric met on every run".into(),
            passed: Some(c.passed == Some(true)),
            detail: format!(
                "{} {}: baseline [{}] → confirm [{}]",
                c.metric,
                c.expect.clone().unwrap_or_default(),
                fmt_values(b),
                fmt_values(c)
            ),
        });
    }
    // The same work: a "fix" that drops calls would pass any load metric.
    let calls = |m: &Measured| {
        m.metrics.iter().find(|x| x.metric.starts_with("calls")).and_then(|x| x.median)
    };
    if let (Some(b), Some(c)) = (calls(e.baseline), calls(e.confirm)) {
        checks.push(Check {
            name: "same workload".into(),
            passed: Some((b - c).abs() < 0.5),
            detail: format!(
                "calls to the endpoint per run: baseline {} · confirm {}",
                fmt_num(b),
                fmt_num(c)
            ),
        });
    }
    checks.push(match e.tests {
        Some(t) => Check {
            name: "tests pass".into(),
            passed: Some(t.exit_code == Some(0) && !t.timed_out),
            detail: format!(
                "`{}` exited {:?} in {:.1} s",
                t.command.join(" "),
                t.exit_code,
                t.ms / 1000.0
            ),
        },
        None => Check {
            name: "tests pass".into(),
            passed: None,
            detail: "no test command configured ([test] command in af.toml)".into(),
        },
    });
    let outside: Vec<&String> = e.changed.iter().filter(|f| !e.allowed.contains(f)).collect();
    checks.push(Check {
        name: "diff limited to the localized code".into(),
        passed: Some(outside.is_empty() && !e.changed.is_empty()),
        detail: if outside.is_empty() {
            format!("changed: {}", e.changed.join(", "))
        } else {
            format!(
                "also changed: {}",
                outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
    });
    let passed = checks.iter().all(|c| c.passed != Some(false));
    Evaluation { passed, checks }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}
