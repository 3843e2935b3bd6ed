//! What a measurement found: every run's values and, per metric, min/median/max and the check on
//! the worst run. Serialized as `result.json` (schema: `af schema measure`).

use af_analyze::{Check, Op};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::HarnessSpec;

/// One run of the program.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    /// 1-based.
    pub run: u32,
    /// The program's exit code (none when killed by a signal).
    pub exit_code: Option<i32>,
    /// True when the timeout killed it.
    pub timed_out: bool,
    /// Wall time of the program, ms.
    pub wall_ms: f64,
    /// Requests the mock answered.
    pub requests: u64,
    /// Requests no recording matched.
    pub misses: u64,
    /// Requests answered 429 by an emulated limit.
    pub limited: u64,
    /// Metric values, in spec order; `null` for a metric that selected no call on this run
    /// (it was not measured: never a 0).
    pub values: Vec<Option<f64>>,
    /// The run's arrival journal (a native snapshot).
    pub journal: String,
    /// Why this run was measured again on its own: started together with the others, it made
    /// no request and failed while they ran the workload (the runs interfered: a build step
    /// writing the same files, a lock, a port). What the first try did, and where its output
    /// is kept. Absent when the run was measured once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_alone: Option<String>,
}

impl RunResult {
    /// How the program ended, in words: `exited 0`, `timed out`, `was killed by a signal`.
    pub fn ended(&self) -> String {
        match (self.timed_out, self.exit_code) {
            (true, _) => "timed out".into(),
            (false, Some(c)) => format!("exited {c}"),
            (false, None) => "was killed by a signal".into(),
        }
    }
}

/// One metric over all runs.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct MetricSummary {
    /// The metric, canonical form.
    pub metric: String,
    /// Every run's value (`null` where the metric selected no call).
    pub values: Vec<Option<f64>>,
    /// Minimum over the runs that measured it.
    pub min: Option<f64>,
    /// Median over the runs that measured it.
    pub median: Option<f64>,
    /// Maximum over the runs that measured it.
    pub max: Option<f64>,
    /// The expectation (`<= 10`), if any.
    pub expect: Option<String>,
    /// The value the expectation was checked on: the worst run for it.
    pub checked: Option<f64>,
    /// Whether the expectation held.
    pub passed: Option<bool>,
}

/// The measurement.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct MeasureResult {
    /// Always `af.measure/1`.
    pub schema: String,
    /// What ran.
    pub harness: HarnessSpec,
    /// SHA-256 of the harness spec's canonical JSON.
    pub harness_hash: String,
    /// Each run.
    pub runs: Vec<RunResult>,
    /// Each metric.
    pub metrics: Vec<MetricSummary>,
    /// Every expectation held on every run.
    pub passed: bool,
    /// Things a reader must know (non-zero exits, timeouts, unmatched requests, no requests).
    pub problems: Vec<String>,
    /// Environment variables removed from the program's environment.
    pub stripped_env: Vec<String>,
    /// What the reader should know that is not a problem (a run measured again on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl MeasureResult {
    /// Summarises runs against the metrics and their checks.
    pub fn new(
        spec: &HarnessSpec,
        runs: Vec<RunResult>,
        checks: &[(String, Option<Check>)],
        stripped_env: Vec<String>,
    ) -> Self {
        let metrics: Vec<MetricSummary> = checks
            .iter()
            .enumerate()
            .map(|(i, (name, check))| {
                let values: Vec<Option<f64>> =
                    runs.iter().map(|r| r.values.get(i).copied().flatten()).collect();
                let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let (min, max) = (sorted.first().copied(), sorted.last().copied());
                let median = match sorted.len() {
                    0 => None,
                    n if n % 2 == 1 => Some(sorted[n / 2]),
                    n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
                };
                let all_measured = !values.is_empty() && values.iter().all(Option::is_some);
                let (checked, passed) = match check {
                    Some(c) => {
                        // The worst run for this comparison; == and != must hold on every run.
                        let worst = match c.op {
                            Op::Le | Op::Lt => max,
                            Op::Ge | Op::Gt => min,
                            Op::Eq | Op::Ne => sorted
                                .iter()
                                .copied()
                                .find(|v| !c.op.holds(*v, c.threshold))
                                .or(max),
                        };
                        // A run that measured nothing fails the check: nothing is not a pass.
                        (
                            worst,
                            Some(
                                all_measured && sorted.iter().all(|v| c.op.holds(*v, c.threshold)),
                            ),
                        )
                    }
                    None => (None, None),
                };
                MetricSummary {
                    metric: name.clone(),
                    values,
                    min,
                    median,
                    max,
                    expect: spec.expect.get(i).filter(|e| !is_report_only(e)).cloned(),
                    checked,
                    passed,
                }
            })
            .collect();
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        for r in &runs {
            for (i, v) in r.values.iter().enumerate() {
                if v.is_none() {
                    let m = checks.get(i).map_or("?", |c| c.0.as_str());
                    problems.push(format!(
                        "run {}: `{m}` selected no call in the journal: not measured (see {})",
                        r.run, r.journal
                    ));
                }
            }
            if let Some(why) = &r.rerun_alone {
                notes.push(format!("run {}: {why}", r.run));
            }
            if r.timed_out {
                problems.push(format!(
                    "run {}: timed out after {} ms; its process group was killed",
                    r.run, spec.timeout_ms
                ));
            } else if r.exit_code != Some(0) {
                problems.push(match r.exit_code {
                    Some(c) => format!("run {}: the program exited {c}", r.run),
                    None => format!("run {}: the program was killed by a signal", r.run),
                });
            }
            if r.requests == 0 {
                problems.push(format!(
                    "run {}: the program made no request to the mock (is the URL variable right?)",
                    r.run
                ));
            }
            if r.misses > 0 {
                problems.push(format!(
                    "run {}: {} request(s) matched no recording (see {})",
                    r.run, r.misses, r.journal
                ));
            }
        }
        let fail_on_miss =
            spec.mock.unmatched == af_mock::Unmatched::Fail && runs.iter().any(|r| r.misses > 0);
        // A run that measured nothing fails every expectation on it (see `checked`); a metric
        // without one is reported as not measured, like a timeout.
        let passed =
            metrics.iter().all(|m| m.passed != Some(false)) && !fail_on_miss && !runs.is_empty();
        MeasureResult {
            schema: "af.measure/1".into(),
            harness_hash: spec.hash(),
            harness: spec.clone(),
            runs,
            metrics,
            passed,
            problems,
            stripped_env,
            notes,
        }
    }
}

/// An empty expectation (or `-`): the metric is reported, not checked.
pub(crate) fn is_report_only(expect: &str) -> bool {
    let e = expect.trim();
    e.is_empty() || e == "-"
}
