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
    checks.push(ran(e.baseline, e.confirm));
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
    // The same work: a "fix" that drops calls would pass any load metric. A retry fix sends
    // fewer calls for the same requests, so its harness counts distinct requests instead.
    let calls = |m: &Measured| {
        m.metrics
            .iter()
            .find(|x| x.metric.starts_with("calls{") || x.metric.starts_with("distinct_calls{"))
            .and_then(|x| x.median)
    };
    if let (Some(b), Some(c)) = (calls(e.baseline), calls(e.confirm)) {
        checks.push(Check {
            name: "same workload".into(),
            passed: Some((b - c).abs() < 0.5),
            detail: format!(
                "{} per run: baseline {} · confirm {}",
                if e.confirm.metrics.iter().any(|x| x.metric.starts_with("distinct_calls{")) {
                    "distinct requests to the endpoint"
                } else {
                    "calls to the endpoint"
                },
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
                "`{}` {} in {:.1} s",
                t.command.join(" "),
                match (t.timed_out, t.exit_code) {
                    (true, _) => "timed out".to_owned(),
                    (false, Some(c)) => format!("exited {c}"),
                    (false, None) => "was killed by a signal".to_owned(),
                },
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

/// The confirm runs ran the workload and exited 0 — or no worse than the baseline: with the
/// same non-zero code every baseline run exited with (a program that reports failures it has
/// for reasons of its own). A run that timed out or made no request fails.
fn ran(baseline: &Measured, confirm: &Measured) -> Check {
    let n = confirm.runs.len();
    let worked = confirm.runs.iter().all(|r| !r.timed_out && r.requests > 0);
    let clean = confirm.runs.iter().all(|r| r.exit_code == Some(0));
    let base_code = baseline.runs.first().and_then(|r| r.exit_code).filter(|&c| c != 0);
    let same_as_base = base_code.is_some()
        && baseline.runs.iter().all(|r| r.exit_code == base_code)
        && confirm.runs.iter().all(|r| r.exit_code == Some(0) || r.exit_code == base_code);
    let base_failed = baseline.runs.iter().filter(|r| r.exit_code != Some(0)).count();
    let (passed, detail) = if !worked {
        (false, confirm.problems.join("; "))
    } else if clean && base_failed > 0 {
        (
            true,
            format!(
                "{n} confirm runs exited 0 ({base_failed} of {} baseline runs had exited non-zero: the failures the fix removed)",
                baseline.runs.len()
            ),
        )
    } else if clean {
        (true, format!("{n} confirm runs exited 0"))
    } else if same_as_base {
        let c = base_code.unwrap_or_default();
        (
            true,
            format!(
                "confirm runs exited 0 or {c}, no worse than every baseline run (exit {c}): the program fails for a reason the fix did not touch"
            ),
        )
    } else {
        (false, confirm.problems.join("; "))
    };
    let detail = if confirm.notes.is_empty() {
        detail
    } else {
        format!("{detail}; {}", confirm.notes.join("; "))
    };
    Check { name: "program ran cleanly".into(), passed: Some(passed), detail }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_measure::RunResult;

    fn measured(codes: &[Option<i32>], requests: u64) -> Measured {
        Measured {
            harness_hash: "h".into(),
            passed: true,
            problems: codes
                .iter()
                .enumerate()
                .filter(|(_, c)| **c != Some(0))
                .map(|(i, c)| format!("run {}: the program exited {c:?}", i + 1))
                .collect(),
            metrics: Vec::new(),
            runs: codes
                .iter()
                .enumerate()
                .map(|(i, &exit_code)| RunResult {
                    run: i as u32 + 1,
                    exit_code,
                    timed_out: false,
                    wall_ms: 1.0,
                    requests,
                    misses: 0,
                    limited: 0,
                    values: Vec::new(),
                    journal: String::new(),
                    rerun_alone: None,
                })
                .collect(),
            dir: String::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_confirm_must_exit_zero_or_no_worse_than_the_baseline() {
        let ok = |b: &[Option<i32>], c: &[Option<i32>]| {
            ran(&measured(b, 10), &measured(c, 10)).passed == Some(true)
        };
        // The bug made the job fail; the fix made it pass.
        assert!(ok(&[Some(1), Some(1)], &[Some(0), Some(0)]));
        assert!(
            ran(&measured(&[Some(1)], 10), &measured(&[Some(0)], 10))
                .detail
                .contains("the failures the fix removed")
        );
        // Failing as before for a reason of its own: no worse.
        assert!(ok(&[Some(2), Some(2)], &[Some(2), Some(0)]));
        // Worse: a clean baseline and a failing confirm, or a new exit code.
        assert!(!ok(&[Some(0), Some(0)], &[Some(1), Some(0)]));
        assert!(!ok(&[Some(1), Some(1)], &[Some(3), Some(0)]));
        assert!(!ok(&[Some(1), Some(0)], &[Some(1), Some(1)]));
        // Killed by a signal is never no worse.
        assert!(!ok(&[None], &[None]));
        // A run that made no request did not run the workload, whatever its exit.
        assert_eq!(ran(&measured(&[Some(0)], 10), &measured(&[Some(0)], 0)).passed, Some(false));
    }
}
