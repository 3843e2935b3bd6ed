//! `af verify`: did the fix work in production? Never a false "fixed".
//!
//! The inputs are one finding's per-window [`CheckRow`]s (its own metric, its endpoint's calls
//! and errors) split at a deploy marker. The after side is judged by its *worst* window (a fix
//! that holds in nine windows and fails in the tenth has not held), and only with enough
//! traffic behind it:
//! - to call zero errors after the fix real when the error share before was p, the after side
//!   needs n ≥ 3/p calls (the rule of three: no error in n calls bounds the rate below 3/n at
//!   95 % confidence);
//! - a bound on a count (`peak_inflight <= 10`, `max_arrivals <= 10`) can only be broken by
//!   more calls than the bound, so the after side needs more calls than it.
//!
//! Fewer calls than that is **inconclusive** — no traffic looks exactly like a fix.

use std::collections::BTreeMap;

use af_analyze::{Check, MetricName, Op};
use serde::{Deserialize, Serialize};

use crate::CheckRow;

/// The `schema` of `af verify --json`.
pub const SCHEMA: &str = "af.verify/v1";

/// What verification concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The metric is on the right side in every window after, with enough traffic.
    Verified,
    /// The metric is still violated after, with enough traffic (exit 1).
    Regressed,
    /// Too little traffic after to say (exit 4).
    Inconclusive,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Regressed => "regressed",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// One side of the comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Side {
    /// Windows (or snapshots) on this side.
    pub windows: usize,
    /// Calls to the finding's endpoint.
    pub calls: i64,
    /// Of them, errors of the finding's status (all errors when it has none).
    pub errors: i64,
    /// Calls by status.
    pub statuses: BTreeMap<String, i64>,
    /// The metric in the worst window (none: no window selected a call).
    pub value: Option<f64>,
    /// Earliest window start, ns.
    pub from_ns: Option<i64>,
    /// Latest window start, ns.
    pub to_ns: Option<i64>,
}

impl Side {
    fn of<'a>(rows: impl Iterator<Item = &'a CheckRow>, op: Op) -> Self {
        let mut s = Side::default();
        for r in rows {
            s.windows += 1;
            s.calls += r.calls;
            s.errors += r.errors;
            for (k, v) in &r.statuses {
                *s.statuses.entry(k.clone()).or_default() += v;
            }
            s.from_ns = Some(s.from_ns.map_or(r.window_ns, |f| f.min(r.window_ns)));
            s.to_ns = Some(s.to_ns.map_or(r.window_ns, |t| t.max(r.window_ns)));
            if let Some(v) = r.value {
                s.value = Some(match (s.value, op) {
                    (None, _) => v,
                    (Some(w), Op::Le | Op::Lt) => w.max(v),
                    (Some(w), Op::Ge | Op::Gt) => w.min(v),
                    (Some(w), _) => {
                        // `==`/`!=`: the window farthest from holding is the one that breaks it.
                        if op.holds(w, v) { v } else { w }
                    }
                });
            }
        }
        s
    }

    /// Errors ÷ calls.
    pub fn error_share(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.errors as f64 / self.calls as f64)
    }
}

/// The verdict and what it rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    /// [`SCHEMA`].
    pub schema: String,
    /// The finding.
    pub fingerprint: String,
    /// The check weighed (the finding's own metric).
    pub metric: String,
    /// The deploy marker, ns.
    pub since_ns: i64,
    /// Before the marker.
    pub before: Side,
    /// After it.
    pub after: Side,
    /// Windows that straddle the marker (started before it, ended after): on neither side.
    pub straddling: usize,
    /// Calls the after side needed for a verdict.
    pub required_calls: i64,
    /// What it concluded.
    pub outcome: Outcome,
    /// Why, in one sentence with the numbers.
    pub reason: String,
}

/// Calls the after side needs: `3/p` for an error share `p` before (rule of three), and more
/// calls than a bound on a count.
pub fn required_calls(check: &Check, before_share: Option<f64>) -> i64 {
    let by_errors = match before_share {
        Some(p) if p > 0.0 => (3.0 / p).ceil() as i64,
        _ => 1,
    };
    let counts = matches!(
        check.metric.name,
        MetricName::PeakInflight
            | MetricName::MaxArrivals
            | MetricName::MaxRate1s
            | MetricName::Calls
    );
    let by_bound = if counts && matches!(check.op, Op::Le | Op::Lt) {
        check.threshold.floor() as i64 + 1
    } else {
        1
    };
    by_errors.max(by_bound)
}

/// Weighs `rows` split at `since_ns` against `check`.
pub fn verify(fingerprint: &str, check: &Check, rows: &[CheckRow], since_ns: i64) -> Verification {
    let is_before = |r: &&CheckRow| r.end_ns.map_or(r.window_ns < since_ns, |e| e <= since_ns);
    let is_after = |r: &&CheckRow| r.window_ns >= since_ns;
    let before = Side::of(rows.iter().filter(is_before), check.op);
    let after = Side::of(rows.iter().filter(is_after), check.op);
    let straddling = rows.iter().filter(|r| !is_before(r) && !is_after(r)).count();
    let required = required_calls(check, before.error_share());
    let metric = check.to_string();
    let (outcome, reason) = match after.value {
        _ if after.calls < required => (
            Outcome::Inconclusive,
            format!(
                "{} call(s) after the marker, {required} needed{}: too little traffic to tell a fix from silence",
                after.calls,
                match before.error_share() {
                    Some(p) if p > 0.0 => format!(
                        " (the error share before was {:.1}%, so no error in fewer than 3/p calls proves nothing)",
                        100.0 * p
                    ),
                    _ => String::new(),
                }
            ),
        ),
        None => {
            (Outcome::Inconclusive, "no call after the marker selected by the metric".to_owned())
        }
        Some(v) if !check.op.holds(v, check.threshold) => (
            Outcome::Regressed,
            format!(
                "{metric} is still violated: {} in the worst of {} window(s) after, over {} calls",
                fmt_value(v),
                after.windows,
                after.calls
            ),
        ),
        Some(v) => (
            Outcome::Verified,
            format!(
                "{metric} holds in every window after ({} at worst, over {} calls in {} window(s); before: {}); errors {} → {}",
                fmt_value(v),
                after.calls,
                after.windows,
                before.value.map_or("not measured".to_owned(), fmt_value),
                before.errors,
                after.errors
            ),
        ),
    };
    Verification {
        schema: SCHEMA.into(),
        fingerprint: fingerprint.into(),
        metric,
        since_ns,
        before,
        after,
        straddling,
        required_calls: required,
        outcome,
        reason,
    }
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// One finding's metric on a window's capture.
pub fn check_row(
    check: &Check,
    status: Option<u16>,
    cap: &af_analyze::Capture,
    window_ns: i64,
) -> CheckRow {
    let value = check.metric.measure(cap).ok();
    let mut statuses = BTreeMap::new();
    let mut calls = 0;
    let mut errors = 0;
    let want = check.metric.endpoint.as_deref();
    for c in &cap.calls {
        let e = &cap.endpoints[c.endpoint as usize];
        if want.is_some_and(|w| !af_snapshot::endpoint_matches(w, &e.method, &e.template)) {
            continue;
        }
        calls += 1;
        let name = match c.outcome {
            af_analyze::Outcome::Incomplete => "-".to_owned(),
            _ => c.status.to_string(),
        };
        *statuses.entry(name).or_insert(0) += 1;
        let hit = match status {
            Some(s) => c.status == s,
            None => c.is_error(),
        };
        if hit {
            errors += 1;
        }
    }
    CheckRow { window_ns, end_ns: None, value, calls, errors, statuses }
}

/// The check a finding is verified by: its own metric, or — for a finding without one — no
/// errors of its status on its endpoint (with the rule of three deciding how many calls prove it).
pub fn check_of(f: &crate::FindingRow) -> Result<Check, String> {
    if let Some(m) = &f.metric {
        return m
            .parse::<Check>()
            .map_err(|e| format!("the finding's metric `{m}` does not parse: {e}"));
    }
    let endpoint =
        if f.method == "-" { f.template.clone() } else { format!("{} {}", f.method, f.template) };
    let status = f.status.map_or(String::new(), |s| format!(",status=\"{s}\""));
    format!("errors{{endpoint=\"{endpoint}\"{status}}} <= 0").parse::<Check>()
}

impl crate::Ledger {
    /// The deploy marker `since` names for `service`: an RFC 3339 time, a commit (a prefix of a
    /// deploy's `sha`), or — when none is given — the latest deploy.
    pub async fn resolve_since(&self, service: &str, since: Option<&str>) -> crate::Result<i64> {
        if let Some(s) = since
            && let Ok(t) = af_snapshot::Timestamp::parse(s)
        {
            return Ok(t.as_nanos());
        }
        let deploys = self.deploys(Some(service)).await?;
        let found = match since {
            Some(sha) => deploys
                .iter()
                .find(|d| d.sha.as_deref().is_some_and(|x| !sha.is_empty() && x.starts_with(sha))),
            None => deploys.first(),
        };
        found.map(|d| d.at_ns).ok_or_else(|| {
            crate::LedgerError::NotFound(match since {
                Some(s) => format!("`{s}` is neither an RFC 3339 time nor the commit of a deploy of {service} (POST /api/deploys)"),
                None => format!("no deploy of {service} is recorded: give --since TIME|GIT_SHA or POST /api/deploys"),
            })
        })
    }

    /// Verifies a finding from the ledger's windows around `since`, and records the outcome.
    pub async fn verify_finding(
        &self,
        fingerprint: &str,
        since: Option<&str>,
    ) -> crate::Result<Verification> {
        let (f, _) = self.finding(fingerprint).await?;
        let since_ns = self.resolve_since(&f.service, since).await?;
        let check = check_of(&f).map_err(crate::LedgerError::NotFound)?;
        let rows = self.checks(&f.fingerprint).await?;
        let v = verify(&f.fingerprint, &check, &rows, since_ns);
        self.record_verification(&v).await?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(w: i64, value: f64, calls: i64, errors: i64) -> CheckRow {
        CheckRow {
            window_ns: w,
            end_ns: Some(w + 5),
            value: Some(value),
            calls,
            errors,
            statuses: BTreeMap::new(),
        }
    }

    #[test]
    fn verified_needs_the_metric_in_every_window_and_enough_calls() {
        let check: Check =
            "peak_inflight{endpoint=\"GET /m/{id}\",per=\"caller\"} <= 10".parse().expect("check");
        // Before: 100 in flight, 321 of 450 failed → p = 0.71, 3/p = 5 calls; the bound needs 11.
        let before = row(0, 100.0, 450, 321);
        let v = verify("v1:x", &check, &[before.clone(), row(10, 10.0, 450, 0)], 5);
        assert_eq!(v.outcome, Outcome::Verified, "{}", v.reason);
        assert_eq!(v.required_calls, 11);
        // One bad window after is a regression, whatever the others say.
        let v = verify(
            "v1:x",
            &check,
            &[before.clone(), row(10, 8.0, 300, 0), row(20, 40.0, 300, 30)],
            5,
        );
        assert_eq!(v.outcome, Outcome::Regressed, "{}", v.reason);
        // Five calls after cannot break a bound of ten: inconclusive, not fixed.
        let v = verify("v1:x", &check, &[before, row(10, 5.0, 5, 0)], 5);
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        // Nothing after at all.
        let v = verify("v1:x", &check, &[row(0, 100.0, 450, 321)], 5);
        assert_eq!(v.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn a_rare_error_needs_three_over_p_calls() {
        let check: Check =
            "errors{endpoint=\"GET /m/{id}\",status=\"429\"} <= 0".parse().expect("check");
        // 1 % failed before: 300 calls after are needed to call zero errors a fix.
        let rows = [row(0, 10.0, 1000, 10), row(10, 0.0, 200, 0)];
        let v = verify("v1:x", &check, &rows, 5);
        assert_eq!(v.required_calls, 300);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        let rows = [row(0, 10.0, 1000, 10), row(10, 0.0, 200, 0), row(20, 0.0, 200, 0)];
        assert_eq!(verify("v1:x", &check, &rows, 5).outcome, Outcome::Verified);
    }
}
