//! Retry storms: the same request (method, path, query, body, caller) sent again within a short
//! gap after it failed. Reports `retry_amplification` (requests ÷ distinct requests) and whether
//! the client waited as long as `Retry-After` asked.
//!
//! Some clients repeat identical requests anyway (polling, idempotent writes with the same body),
//! so a repeat after a failure is only evidence of retrying when failures are followed by a
//! repeat clearly more often (≥ 2×) than successes are.

use std::collections::HashMap;

use serde_json::json;

use super::Detector;
use crate::capture::Capture;
use crate::finding::{Finding, Severity};

/// The retry-storm detector.
pub struct RetryStorms;

/// A repeat later than this after the failure is a new request, not a retry.
pub(crate) const MAX_GAP_NS: i64 = 60_000_000_000;
/// A retry waited as long as `Retry-After` asked when its gap is at least this share of it:
/// `Retry-After` has whole seconds and the two ends of the gap are stamped by different clocks
/// (client and server, or a proxy between), so an exact comparison would call a client that
/// waited exactly one second early by a millisecond.
pub(crate) const HONOURED_SHARE: f64 = 0.9;

/// Retries among `calls` (sorted by start) sent sooner than the `Retry-After` of the failure
/// they repeat: the `early_retries` metric.
pub(crate) fn early_retries(calls: &[&crate::capture::Call]) -> usize {
    let mut last: HashMap<u64, usize> = HashMap::new();
    let mut early = 0;
    for (i, c) in calls.iter().enumerate() {
        if let Some(&prev) = last.get(&c.sig) {
            let p = calls[prev];
            let delay = c.start - p.end;
            if p.is_error()
                && (0..=MAX_GAP_NS).contains(&delay)
                && p.retry_after_ms
                    .is_some_and(|ra| (delay as f64 / 1e6) < f64::from(ra) * HONOURED_SHARE)
            {
                early += 1;
            }
        }
        last.insert(c.sig, i);
    }
    early
}
const MIN_RETRIES: usize = 3;

#[derive(Default)]
struct PerEndpoint {
    calls: usize,
    errors: usize,
    oks: usize,
    oks_repeated: usize,
    distinct: std::collections::HashSet<u64>,
    retries: Vec<(usize, usize)>, // (failed call, retry)
    with_retry_after: usize,
    honoured: usize,
    delays_ms: Vec<f64>,
}

/// For every call: is it a retry, i.e. the same request as an earlier call that failed and
/// ended at most a minute before it started?
pub(crate) fn retries(cap: &Capture) -> Vec<bool> {
    let mut last: HashMap<u64, usize> = HashMap::new();
    cap.calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let retry = last.get(&c.sig).is_some_and(|&prev| {
                let p = &cap.calls[prev];
                p.is_error() && (0..=MAX_GAP_NS).contains(&(c.start - p.end))
            });
            last.insert(c.sig, i);
            retry
        })
        .collect()
}

impl Detector for RetryStorms {
    fn name(&self) -> &'static str {
        "retry-storm"
    }

    fn detect(&self, cap: &Capture) -> Vec<Finding> {
        let mut last: HashMap<u64, usize> = HashMap::new();
        let mut per: HashMap<u32, PerEndpoint> = HashMap::new();
        for (i, c) in cap.calls.iter().enumerate() {
            let e = per.entry(c.endpoint).or_default();
            e.calls += 1;
            e.distinct.insert(c.sig);
            if c.is_error() {
                e.errors += 1;
            } else {
                e.oks += 1;
            }
            if let Some(&prev) = last.get(&c.sig) {
                let p = &cap.calls[prev];
                let delay = c.start - p.end;
                if !p.is_error() && (0..=MAX_GAP_NS).contains(&delay) {
                    e.oks_repeated += 1;
                }
                if p.is_error() && (0..=MAX_GAP_NS).contains(&delay) {
                    e.retries.push((prev, i));
                    e.delays_ms.push(delay as f64 / 1e6);
                    if let Some(ra) = p.retry_after_ms {
                        e.with_retry_after += 1;
                        if delay as f64 / 1e6 >= f64::from(ra) * HONOURED_SHARE {
                            e.honoured += 1;
                        }
                    }
                }
            }
            last.insert(c.sig, i);
        }
        let mut out = Vec::new();
        let mut eps: Vec<_> = per.into_iter().collect();
        eps.sort_by_key(|(ep, _)| *ep);
        for (ep, e) in eps {
            let after_error = e.retries.len() as f64 / e.errors.max(1) as f64;
            let after_ok = e.oks_repeated as f64 / e.oks.max(1) as f64;
            if e.retries.len() < MIN_RETRIES || after_error < 2.0 * after_ok {
                continue;
            }
            let amp = e.calls as f64 / e.distinct.len().max(1) as f64;
            let mut d = e.delays_ms.clone();
            d.sort_by(f64::total_cmp);
            let median = d[d.len() / 2];
            let endpoint = &cap.endpoints[ep as usize];
            let key = endpoint.key();
            let ignored = e.with_retry_after - e.honoured;
            let honour = if e.with_retry_after == 0 {
                "the failures carried no Retry-After".to_owned()
            } else {
                format!(
                    "{} of {} retries after a Retry-After came sooner than it asked",
                    ignored, e.with_retry_after
                )
            };
            let summary = format!(
                "{} retries of failed calls to {key} (median {median:.0} ms after the failure; {:.0}% of failures were \
                 repeated, {:.0}% of successes); {honour}; retry_amplification {amp:.2} ({} requests for {} distinct)",
                e.retries.len(),
                after_error * 100.0,
                after_ok * 100.0,
                e.calls,
                e.distinct.len()
            );
            let severity =
                if amp >= 2.0 || (e.with_retry_after > 0 && ignored * 2 > e.with_retry_after) {
                    Severity::High
                } else if amp >= 1.2 {
                    Severity::Medium
                } else {
                    Severity::Low
                };
            // The property a fix restores: when the upstream said how long to wait, no retry
            // comes sooner (measurable on any harness that answers with Retry-After); without
            // one, fewer repeats per request.
            let suggested = if ignored > 0 {
                format!("early_retries{{endpoint=\"{key}\"}} <= 0")
            } else {
                let target = ((amp.min(1.1) * 100.0).round() / 100.0).max(1.0);
                format!("retry_amplification{{endpoint=\"{key}\"}} <= {target}")
            };
            out.push(Finding {
                id: String::new(),
                detector: self.name().into(),
                severity,
                endpoint: Some(key.clone()),
                host: Some(endpoint.host.clone()),
                status: None,
                summary,
                evidence: e
                    .retries
                    .iter()
                    .take(3)
                    .flat_map(|&(a, b)| {
                        [cap.id(&cap.calls[a]).to_string(), cap.id(&cap.calls[b]).to_string()]
                    })
                    .collect(),
                suggested_metric: Some(suggested),
                remedy: Some(crate::finding::Remedy::Retry),
                details: json!({
                    "retries": e.retries.len(),
                    "calls": e.calls,
                    "distinct_requests": e.distinct.len(),
                    "retry_amplification": amp,
                    "median_delay_ms": median,
                    "min_delay_ms": d[0],
                    "after_retry_after": e.with_retry_after,
                    "retry_after_honoured": e.honoured,
                "repeat_rate_after_failure": after_error,
                "repeat_rate_after_success": after_ok,
                }),
            });
        }
        out
    }
}
