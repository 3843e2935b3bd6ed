//! The Evaluator's deterministic checks: the evidence a reviewer would ask for before
//! believing "fixed".

pub mod review;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::{fmt_num, fmt_values};
use crate::plan::Measured;

/// How one of the Evaluator's checks came out (the metric check itself is `af_analyze::Check`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CheckOutcome {
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
    pub checks: Vec<CheckOutcome>,
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

impl TestRun {
    /// How the tests ended, in words: `exited 0`, `timed out`, `was killed by a signal`.
    pub fn ended(&self) -> String {
        match (self.timed_out, self.exit_code) {
            (true, _) => "timed out".into(),
            (false, Some(c)) => format!("exited {c}"),
            (false, None) => "was killed by a signal".into(),
        }
    }
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

/// Runs the checks, in the order the report lists them: every applicable one must pass.
pub fn evaluate(e: &Evidence<'_>) -> Evaluation {
    let checks: Vec<CheckOutcome> = [
        Some(identical_harness(e.planned_hash, e.baseline, e.confirm)),
        Some(ran(e.baseline, e.confirm)),
        metric_met(e.baseline, e.confirm),
        Some(same_workload(e.baseline, e.confirm)),
        Some(tests_pass(e.tests)),
        Some(diff_limited(e.changed, e.allowed)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let passed = checks.iter().all(|c| c.passed != Some(false));
    Evaluation { passed, checks }
}

/// Baseline and confirm ran the harness the plan measured (same hash).
fn identical_harness(planned: &str, baseline: &Measured, confirm: &Measured) -> CheckOutcome {
    let same = confirm.harness_hash == planned && baseline.harness_hash == planned;
    CheckOutcome {
        name: "identical harness".into(),
        passed: Some(same),
        detail: format!(
            "baseline {} · confirm {} · plan {}",
            short(&baseline.harness_hash),
            short(&confirm.harness_hash),
            short(planned)
        ),
    }
}

/// The checked metric held on every confirm run (absent when either side has no metric).
fn metric_met(baseline: &Measured, confirm: &Measured) -> Option<CheckOutcome> {
    let (b, c) = (baseline.primary()?, confirm.primary()?);
    Some(CheckOutcome {
        name: "metric met on every run".into(),
        passed: Some(c.passed == Some(true)),
        detail: format!(
            "{} {}: baseline [{}] → confirm [{}]",
            c.metric,
            c.expect.clone().unwrap_or_default(),
            fmt_values(b),
            fmt_values(c)
        ),
    })
}

/// The same work: a "fix" that drops calls would pass any load metric. A retry fix sends
/// fewer calls for the same requests, so its harness counts distinct requests instead.
/// A harness that counts no calls says so (not applicable) rather than dropping the check.
fn same_workload(baseline: &Measured, confirm: &Measured) -> CheckOutcome {
    let calls = |m: &Measured| {
        m.metrics
            .iter()
            .find(|x| x.metric.starts_with("calls{") || x.metric.starts_with("distinct_calls{"))
            .and_then(|x| x.median)
    };
    let (Some(b), Some(c)) = (calls(baseline), calls(confirm)) else {
        return CheckOutcome {
            name: "same workload".into(),
            passed: None,
            detail: "the harness counts no calls to the endpoint on both sides: not compared"
                .into(),
        };
    };
    CheckOutcome {
        name: "same workload".into(),
        passed: Some((b - c).abs() < 0.5),
        detail: format!(
            "{} per run: baseline {} · confirm {}",
            if confirm.metrics.iter().any(|x| x.metric.starts_with("distinct_calls{")) {
                "distinct requests to the endpoint"
            } else {
                "calls to the endpoint"
            },
            fmt_num(b),
            fmt_num(c)
        ),
    }
}

/// The program's own tests exited 0 in time (not applicable without a test command).
fn tests_pass(tests: Option<&TestRun>) -> CheckOutcome {
    match tests {
        Some(t) => CheckOutcome {
            name: "tests pass".into(),
            passed: Some(t.exit_code == Some(0) && !t.timed_out),
            detail: format!("`{}` {} in {:.1} s", t.command.join(" "), t.ended(), t.ms / 1000.0),
        },
        None => CheckOutcome {
            name: "tests pass".into(),
            passed: None,
            detail: "no test command configured ([test] command in af.toml)".into(),
        },
    }
}

/// The patch changed something, and only the files the localized site may change.
fn diff_limited(changed: &[String], allowed: &[String]) -> CheckOutcome {
    let outside: Vec<&String> = changed.iter().filter(|f| !allowed.contains(f)).collect();
    CheckOutcome {
        name: "diff limited to the localized code".into(),
        passed: Some(outside.is_empty() && !changed.is_empty()),
        detail: if outside.is_empty() {
            format!("changed: {}", changed.join(", "))
        } else {
            format!(
                "also changed: {}",
                outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
    }
}

/// The confirm runs ran the workload and exited 0 — or no worse than the baseline: with the
/// same non-zero code every baseline run exited with (a program that reports failures it has
/// for reasons of its own). A run that timed out or made no request fails.
fn ran(baseline: &Measured, confirm: &Measured) -> CheckOutcome {
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
    CheckOutcome { name: "program ran cleanly".into(), passed: Some(passed), detail }
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

    fn with(hash: &str, metric: &str, values: &[f64], passed: Option<bool>) -> Measured {
        let mut m = measured(&[Some(0)], 10);
        m.harness_hash = hash.into();
        let median = values.get(values.len() / 2).copied();
        m.metrics.push(af_measure::MetricSummary {
            metric: metric.into(),
            values: values.iter().map(|v| Some(*v)).collect(),
            min: values.iter().copied().reduce(f64::min),
            median,
            max: values.iter().copied().reduce(f64::max),
            expect: passed.map(|_| "<= 10".into()),
            checked: values.iter().copied().reduce(f64::max),
            passed,
        });
        m
    }

    #[test]
    fn identical_harness_needs_all_three_hashes_equal() {
        for (b, c, want) in [("h", "h", true), ("h", "x", false), ("x", "h", false)] {
            let got =
                identical_harness("h", &with(b, "m", &[1.0], None), &with(c, "m", &[1.0], None));
            assert_eq!(got.passed, Some(want), "{b} {c}: {}", got.detail);
        }
    }

    #[test]
    fn metric_met_reads_the_confirms_check_and_needs_both_sides() {
        let base = with("h", "peak_inflight{}", &[100.0], Some(false));
        for (confirm, want) in
            [(Some(true), Some(true)), (Some(false), Some(false)), (None, Some(false))]
        {
            let c = with("h", "peak_inflight{}", &[10.0], confirm);
            assert_eq!(metric_met(&base, &c).map(|x| x.passed), Some(want), "{confirm:?}");
        }
        assert!(metric_met(&measured(&[Some(0)], 1), &base).is_none(), "no metric: not applicable");
    }

    #[test]
    fn same_workload_compares_calls_or_distinct_requests() {
        for (metric, b, c, want, says) in [
            ("calls{endpoint=\"GET /a\"}", 450.0, 450.0, true, "calls to the endpoint"),
            ("calls{endpoint=\"GET /a\"}", 450.0, 300.0, false, "calls to the endpoint"),
            ("distinct_calls{endpoint=\"GET /a\"}", 40.0, 40.0, true, "distinct requests"),
        ] {
            let got = same_workload(&with("h", metric, &[b], None), &with("h", metric, &[c], None));
            assert_eq!(got.passed, Some(want), "{metric} {b} {c}");
            assert!(got.detail.contains(says), "{}", got.detail);
        }
        let none = with("h", "peak_inflight{}", &[1.0], None);
        let na = same_workload(&none, &none);
        assert_eq!(na.passed, None, "no call count: not applicable, and shown: {}", na.detail);
    }

    #[test]
    fn tests_pass_on_exit_zero_in_time_and_are_not_applicable_without_a_command() {
        let run = |exit_code, timed_out| TestRun {
            command: vec!["npm".into(), "test".into()],
            exit_code,
            timed_out,
            ms: 1200.0,
            tail: String::new(),
        };
        for (t, want, says) in [
            (run(Some(0), false), Some(true), "exited 0"),
            (run(Some(1), false), Some(false), "exited 1"),
            (run(None, true), Some(false), "timed out"),
            (run(None, false), Some(false), "killed by a signal"),
        ] {
            let got = tests_pass(Some(&t));
            assert_eq!(got.passed, want, "{}", got.detail);
            assert!(got.detail.contains(says), "{}", got.detail);
        }
        assert_eq!(tests_pass(None).passed, None);
    }

    #[test]
    fn the_diff_must_change_something_and_only_the_localized_files() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let allowed = s(&["src/sync.js", "src/settings.js"]);
        for (changed, want) in [
            (s(&["src/sync.js"]), true),
            (s(&["src/sync.js", "src/settings.js"]), true),
            (s(&["src/sync.js", "test/sync.test.js"]), false),
            (s(&[]), false),
        ] {
            assert_eq!(diff_limited(&changed, &allowed).passed, Some(want), "{changed:?}");
        }
    }
}
