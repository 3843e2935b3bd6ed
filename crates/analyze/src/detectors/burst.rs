//! Error bursts: are an endpoint's errors of one status clustered in time, or spread over the
//! capture?
//!
//! Errors are clustered by gaps: a gap longer than both the mean gap expected if the errors were
//! spread evenly (`span / n`) and a twentieth of the capture (at least 1 s) starts a new cluster,
//! so the sub-bursts of one incident stay one burst. The largest cluster is judged by three
//! statistics: its density relative to the group's average density over the capture, a
//! scan-statistic p-value (Poisson, Bonferroni over `span / width` windows) of that many errors in
//! so short a window by chance, and the error *rate* inside the cluster against outside it — when
//! traffic itself surges, errors at a constant rate crowd into the surge too, and that is not a
//! burst. Clustered needs all three (≥ 3×, p < 0.01, rate ≥ 2× outside).
//!
//! Judged against the traffic, not only the capture's span: when the errors' window holds most
//! of the endpoint's calls (≥ 80 %) and a large share of them failed (≥ 20 %), the capture *is*
//! the incident — the verdict is `sustained`, not "spread": comparing the errors' density with
//! their own average says nothing when they fill the whole capture.

use serde_json::json;

use super::{Detector, error_groups, status_text};
use crate::capture::Capture;
use crate::finding::{Finding, Severity, clock, span_text};

/// The error-burst detector.
pub struct ErrorBursts;

/// Smallest group worth judging.
const MIN_ERRORS: usize = 3;

/// `P(X ≥ k)` for `X ~ Poisson(λ)`. Far in the tail it sums the tail terms directly (in log
/// space for the first), so tiny p-values keep their precision instead of cancelling to 0.
pub(crate) fn poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    if (k as f64) <= lambda {
        let mut term = (-lambda).exp();
        let mut cdf = term;
        for i in 1..k {
            term *= lambda / i as f64;
            cdf += term;
        }
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    let ln_fact: f64 = (2..=k).map(|i| (i as f64).ln()).sum();
    let mut term = (-lambda + k as f64 * lambda.ln() - ln_fact).exp();
    let mut sum = 0.0;
    let mut i = k;
    while term > sum * 1e-17 && term > 0.0 {
        sum += term;
        i += 1;
        term *= lambda / i as f64;
    }
    sum.min(1.0)
}

impl Detector for ErrorBursts {
    fn name(&self) -> &'static str {
        "error-burst"
    }

    fn detect(&self, cap: &Capture) -> Vec<Finding> {
        let Some((first, last)) = cap.span() else { return Vec::new() };
        let span = (last - first).max(1_000_000_000);
        let by_endpoint = cap.by_endpoint();
        let mut out = Vec::new();
        for (ep, status, idx) in error_groups(cap) {
            let n = idx.len();
            if n < MIN_ERRORS {
                continue;
            }
            let endpoint = &cap.endpoints[ep as usize];
            let ep_calls = &by_endpoint[ep as usize];
            let calls_to_ep = ep_calls.len();
            let times: Vec<i64> = idx.iter().map(|&i| cap.calls[i].start).collect();
            let gap = (span / n as i64).max(span / 20).max(1_000_000_000);
            // Largest cluster by count (first of equals).
            let (mut best, mut cur) = ((0usize, 0usize), 0usize);
            for i in 1..=n {
                if i == n || times[i] - times[i - 1] > gap {
                    if i - cur > best.1 - best.0 {
                        best = (cur, i);
                    }
                    cur = i;
                }
            }
            let k = best.1 - best.0;
            let (t0, t1) = (times[best.0], times[best.1 - 1]);
            let width = (t1 - t0).max(1_000_000); // at least 1 ms
            let ratio = (k as f64 / width as f64) / (n as f64 / span as f64);
            let lambda = n as f64 * width as f64 / span as f64;
            let p =
                (poisson_tail(k as u64, lambda) * (span as f64 / width as f64).max(1.0)).min(1.0);
            // Error rate inside the cluster's window vs outside it, over calls to the endpoint.
            // The endpoint's calls are in start order: two binary searches.
            let lo = ep_calls.partition_point(|&i| cap.calls[i].start < t0);
            let hi = ep_calls.partition_point(|&i| cap.calls[i].start <= t1);
            let calls_in = hi - lo;
            let calls_out = calls_to_ep - calls_in;
            let errors_out = n - k;
            let rate_in = k as f64 / calls_in.max(1) as f64;
            let rate_out = errors_out as f64 / calls_out.max(1) as f64;
            let rate_ratio = rate_in / rate_out.max(1.0 / (calls_out as f64 + 1.0));
            let clustered = k >= MIN_ERRORS && ratio >= 3.0 && p < 0.01 && rate_ratio >= 2.0;
            let traffic_in = calls_in as f64 / calls_to_ep.max(1) as f64;
            let sustained = !clustered && traffic_in >= 0.8 && rate_in >= 0.2;
            let rate = n as f64 / calls_to_ep.max(1) as f64;
            let share = k as f64 / n as f64;
            let what = status_text(status);
            let key = endpoint.key();
            let summary = if sustained {
                format!(
                    "{n} of {calls_to_ep} calls to {key} returned {what}; {k} of them within {} ({}–{} UTC), \
                     the window of {:.0}% of the endpoint's calls, at an error rate of {:.0}% — sustained: the \
                     capture is the incident, not a quiet stretch with a burst in it",
                    span_text(t1 - t0),
                    clock(t0),
                    clock(t1),
                    traffic_in * 100.0,
                    rate_in * 100.0,
                )
            } else if clustered {
                format!(
                    "{n} of {calls_to_ep} calls to {key} returned {what}; {k} of them ({:.0}%) within {} ({}–{} UTC): \
                     {ratio:.0}× the average density of these errors over the capture (p = {p:.1e}), error rate {:.0}% \
                     inside vs {:.0}% outside — clustered",
                    share * 100.0,
                    span_text(t1 - t0),
                    clock(t0),
                    clock(t1),
                    rate_in * 100.0,
                    rate_out * 100.0,
                )
            } else {
                let contrast = if calls_out == 0 {
                    "and spans the whole capture".to_owned()
                } else {
                    format!(
                        "with error rate {:.1}% inside vs {:.1}% outside",
                        rate_in * 100.0,
                        rate_out * 100.0
                    )
                };
                format!(
                    "{n} of {calls_to_ep} calls to {key} returned {what} ({:.1}%), spread over the capture: \
                     the densest cluster ({k} in {}) is {ratio:.1}× the average density {contrast} — not a burst",
                    rate * 100.0,
                    span_text(t1 - t0),
                )
            };
            let severity = match (clustered || sustained, k) {
                (true, k) if k >= 10 => Severity::High,
                (true, _) => Severity::Medium,
                (false, _) if rate >= 0.05 => Severity::Medium,
                (false, _) if rate >= 0.01 => Severity::Low,
                _ => Severity::Info,
            };
            let mut evidence: Vec<String> = idx[best.0..best.1]
                .iter()
                .take(5)
                .map(|&i| cap.id(&cap.calls[i]).to_string())
                .collect();
            if k > 5 {
                evidence.push(cap.id(&cap.calls[idx[best.1 - 1]]).to_string());
            }
            out.push(Finding {
                id: String::new(),
                detector: self.name().into(),
                severity,
                endpoint: Some(key),
                host: Some(endpoint.host.clone()),
                status: Some(status),
                summary,
                evidence,
                suggested_metric: None,
                remedy: None,
                details: json!({
                    "verdict": if clustered { "clustered" } else if sustained { "sustained" } else { "spread" },
                    "traffic_share_inside": traffic_in,
                    "errors": n,
                    "calls": calls_to_ep,
                    "cluster": {
                        "count": k,
                        "share_of_errors": share,
                        "first": af_snapshot::Timestamp::from_nanos(t0),
                        "last": af_snapshot::Timestamp::from_nanos(t1),
                        "seconds": (t1 - t0) as f64 / 1e9,
                    },
                    "gap_threshold_s": gap as f64 / 1e9,
                    "density_ratio": ratio,
                    "error_rate_inside": rate_in,
                    "error_rate_outside": rate_out,
                    "p_value": p,
                }),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_known_values() {
        assert!((poisson_tail(1, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert!((poisson_tail(3, 2.0) - 0.323_323_583_816_936_5).abs() < 1e-9);
        assert_eq!(poisson_tail(0, 5.0), 1.0);
        assert!(poisson_tail(28, 1.4) < 1e-20);
    }
}
