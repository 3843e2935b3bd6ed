//! The limit model: do an endpoint's throttling errors track how many calls were in flight
//! (a concurrency limit), how fast calls arrived (a rate limit), or neither (not load-related)?
//!
//! For every call to the endpoint two load features are computed within its (host, caller):
//! in-flight at arrival (itself included) and arrivals in the preceding second. For each feature
//! the best threshold rule "error ⇔ feature ≥ t" is found and scored by balanced accuracy (the
//! mean of the error and success recall, so a rare error class cannot win by default). The
//! better-separating feature decides; below 0.75 for both, the errors are not load-related. When
//! both separate equally (a burst where everything arrives at once raises both), the calls where
//! the features disagree decide; if there are none, concurrency is reported with that caveat.

use serde_json::json;

use super::{Detector, error_groups, status_text};
use crate::capture::{Capture, Outcome};
use crate::concurrency::{arrivals_before, inflight_at_arrival};
use crate::finding::{Finding, Severity};

/// The limit-model detector.
pub struct LimitModel;

const MIN_ERRORS: usize = 3;
const LOAD_RELATED: f64 = 0.75;
const TIE: f64 = 0.02;

/// Load features of every call, within its (host, caller).
pub(crate) struct Load {
    /// Accepted calls in flight at arrival, plus itself. Rejected calls (429, 503, transport
    /// errors) are left out of the count: an upstream limits the requests it is working on, and a
    /// rejection leaves at once.
    pub inflight: Vec<u32>,
    /// Arrivals in the preceding 1 s, itself included.
    pub rate: Vec<u32>,
}

/// Retries are left out of the arrival rate and the population: they are caused by the errors,
/// so counting them would make any outage look like a rate limit.
pub(crate) fn load(cap: &Capture, retry: &[bool]) -> Load {
    let mut groups: std::collections::HashMap<(&str, u32), Vec<usize>> = Default::default();
    for (i, c) in cap.calls.iter().enumerate() {
        groups
            .entry((cap.endpoints[c.endpoint as usize].host.as_str(), c.caller))
            .or_default()
            .push(i);
    }
    let mut inflight = vec![0; cap.calls.len()];
    let mut rate = vec![0; cap.calls.len()];
    for idx in groups.values() {
        let iv: Vec<(i64, i64)> =
            idx.iter().map(|&i| (cap.calls[i].start, cap.calls[i].end)).collect();
        let accepted = |k: usize| {
            let c = &cap.calls[idx[k]];
            !(c.status == 429 || c.status == 503 || c.outcome == Outcome::Transport)
        };
        for (&i, n) in idx.iter().zip(inflight_at_arrival(&iv, accepted)) {
            inflight[i] = n;
        }
        let first: Vec<usize> = idx.iter().copied().filter(|&i| !retry[i]).collect();
        let starts: Vec<i64> = first.iter().map(|&i| cap.calls[i].start).collect();
        for (&i, r) in first.iter().zip(arrivals_before(&starts, 1_000_000_000)) {
            rate[i] = r;
        }
    }
    Load { inflight, rate }
}

/// The best rule "error ⇔ x ≥ t": `(balanced accuracy, t)`.
fn best_threshold(points: &[(u32, bool)]) -> (f64, u32) {
    let errors = points.iter().filter(|p| p.1).count() as f64;
    let oks = points.len() as f64 - errors;
    if errors == 0.0 || oks == 0.0 {
        return (0.5, 0);
    }
    let mut v = points.to_vec();
    v.sort_unstable();
    // Threshold just above everything: predicts no errors.
    let (mut tp, mut tn) = (errors, 0.0);
    let mut best = (0.5, v[0].0);
    let mut i = 0;
    while i < v.len() {
        let t = v[i].0;
        let ba = (tp / errors + tn / oks) / 2.0;
        if ba > best.0 {
            best = (ba, t);
        }
        while i < v.len() && v[i].0 == t {
            if v[i].1 {
                tp -= 1.0
            } else {
                tn += 1.0
            }
            i += 1;
        }
    }
    best
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Concurrency,
    Rate,
    NotLoadRelated,
}

impl Detector for LimitModel {
    fn name(&self) -> &'static str {
        "limit-model"
    }

    fn detect(&self, cap: &Capture) -> Vec<Finding> {
        let groups: Vec<_> = error_groups(cap)
            .into_iter()
            .filter(|(_, s, idx)| (*s == 429 || *s >= 500 || *s == 0) && idx.len() >= MIN_ERRORS)
            .collect();
        if groups.is_empty() {
            return Vec::new();
        }
        let retry = super::retry::retries(cap);
        let load = load(cap, &retry);
        let per_caller = !(cap.callers.len() == 1 && cap.callers[0] == "(none)");
        let by_endpoint = cap.by_endpoint();
        let mut out = Vec::new();
        for (ep, status, idx) in groups {
            let is_err = |i: usize| {
                let c = &cap.calls[i];
                c.endpoint == ep && c.status == status && c.is_error()
            };
            let pop: Vec<usize> = by_endpoint[ep as usize]
                .iter()
                .copied()
                .filter(|&i| !retry[i] && (is_err(i) || cap.calls[i].outcome == Outcome::Ok))
                .collect();
            let errors_first = pop.iter().filter(|&&i| is_err(i)).count();
            if errors_first < MIN_ERRORS {
                continue;
            }
            let oks = pop.len() - errors_first;
            if oks == 0 {
                continue; // every call failed: nothing to relate the errors to
            }
            let feat = |f: &Vec<u32>| pop.iter().map(|&i| (f[i], is_err(i))).collect::<Vec<_>>();
            let (fc, fr) = (feat(&load.inflight), feat(&load.rate));
            let ((ba_c, t_c), (ba_r, t_r)) = (best_threshold(&fc), best_threshold(&fr));
            let mut caveat = None;
            let verdict = if ba_c.max(ba_r) < LOAD_RELATED {
                Verdict::NotLoadRelated
            } else if ba_c - ba_r > TIE {
                Verdict::Concurrency
            } else if ba_r - ba_c > TIE {
                Verdict::Rate
            } else {
                // Calls where the two features disagree decide.
                let (mut conc, mut rate) = (0usize, 0usize);
                for &i in &pop {
                    let (hc, hr) = (load.inflight[i] >= t_c, load.rate[i] >= t_r);
                    match (hc, hr, is_err(i)) {
                        (true, false, true) | (false, true, false) => conc += 1,
                        (false, true, true) | (true, false, false) => rate += 1,
                        _ => {}
                    }
                }
                if rate > conc {
                    Verdict::Rate
                } else {
                    if conc == rate {
                        caveat = Some(
                            "in-flight and arrival rate rose together here, so a rate limit fits the capture as well",
                        );
                    }
                    Verdict::Concurrency
                }
            };
            let endpoint = &cap.endpoints[ep as usize];
            let key = endpoint.key();
            let what = status_text(status);
            let range = |f: &[(u32, bool)], want: bool| {
                let v: Vec<u32> = f.iter().filter(|p| p.1 == want).map(|p| p.0).collect();
                (v.iter().min().copied().unwrap_or(0), v.iter().max().copied().unwrap_or(0))
            };
            let (best_ba, other_ba) = match verdict {
                Verdict::Rate => (ba_r, ba_c),
                _ => (ba_c, ba_r),
            };
            let confidence = match verdict {
                Verdict::NotLoadRelated => 1.0 - ba_c.max(ba_r) + 0.5,
                _ if caveat.is_some() => best_ba.min(0.9),
                _ => best_ba,
            }
            .clamp(0.0, 1.0);
            let label = if confidence >= 0.95 && idx.len() >= 5 {
                "high"
            } else if confidence >= 0.85 {
                "medium"
            } else {
                "low"
            };
            let who = if per_caller { " for one caller" } else { "" };
            let per = if per_caller { ",per=\"caller\"" } else { "" };
            let (summary, metric, bound) = match verdict {
                Verdict::NotLoadRelated => {
                    let (c0, c1) = range(&fc, true);
                    let (r0, r1) = range(&fr, true);
                    (
                        format!(
                            "{what} on {key} came at every load level (in flight {c0}–{c1}, {r0}–{r1} calls/s at arrival) \
                             and track neither (balanced accuracy {ba_c:.2} for in-flight, {ba_r:.2} for rate): \
                             not load-related — limiting concurrency or rate would not remove them"
                        ),
                        None,
                        None,
                    )
                }
                Verdict::Concurrency | Verdict::Rate => {
                    let (f, noun, unit) = if verdict == Verdict::Concurrency {
                        (&fc, "calls were in flight", "")
                    } else {
                        (&fr, "calls arrived per second", "/s")
                    };
                    // The rule's threshold, not the extremes: a proxy in the path reorders a
                    // burst's arrivals a little, and one early-looking error must not drag the
                    // estimate down (nor one late-looking success push it up). Calls on the
                    // wrong side of the rule are counted and reported.
                    let t = if verdict == Verdict::Concurrency { t_c } else { t_r };
                    let (raw_min_err, _) = range(f, true);
                    let exceptions = f.iter().filter(|p| p.1 != (p.0 >= t)).count();
                    // Up to 5 % of calls may sit on the wrong side of the rule.
                    let robust = exceptions * 20 <= f.len();
                    let min_err = if robust { t.max(1) } else { raw_min_err };
                    let max_ok = range(f, false).1;
                    let exceptions_text = if exceptions == 0 || raw_min_err >= min_err {
                        String::new()
                    } else {
                        format!(
                            " ({exceptions} of {} calls on the other side of that line, e.g. reordered arrivals)",
                            f.len()
                        )
                    };
                    // Peak as the client saw it: every call in flight, rejected ones too.
                    let peak = if verdict == Verdict::Concurrency {
                        let mut by: std::collections::HashMap<u32, Vec<(i64, i64)>> =
                            Default::default();
                        for &i in &pop {
                            by.entry(cap.calls[i].caller)
                                .or_default()
                                .push((cap.calls[i].start, cap.calls[i].end));
                        }
                        by.into_values().map(crate::concurrency::peak_inflight).max().unwrap_or(0)
                            as u32
                    } else {
                        f.iter().map(|p| p.0).max().unwrap_or(0)
                    };
                    let lo = if robust {
                        min_err.saturating_sub(1).max(1)
                    } else {
                        max_ok.min(min_err.saturating_sub(1)).max(1)
                    };
                    let hi = max_ok.max(min_err.saturating_sub(1)).max(lo);
                    let bound = if lo == hi {
                        format!("≈ {lo}{unit}")
                    } else {
                        format!("between {lo} and {hi}{unit}")
                    };
                    let (kind, metric) = if verdict == Verdict::Concurrency {
                        (
                            "concurrency",
                            format!(
                                "peak_inflight{{endpoint=\"{key}\"{per}}} <= {}",
                                (lo / 2).max(1)
                            ),
                        )
                    } else {
                        (
                            "rate",
                            format!(
                                "max_rate_1s{{endpoint=\"{key}\"{per}}} <= {}",
                                ((f64::from(lo) * 0.8) as u32).max(1)
                            ),
                        )
                    };
                    let feature =
                        if verdict == Verdict::Concurrency { "in-flight" } else { "arrival rate" };
                    let other =
                        if verdict == Verdict::Concurrency { "arrival rate" } else { "in-flight" };
                    let mut s = format!(
                        "{what} on {key} happened {} while ≥ {min_err} {noun}{who} (peak {peak}{unit}); \
                         at ≤ {} {}{exceptions_text} → {kind} limit {bound}{} (confidence {label}: {feature} separates errors from \
                         successes with balanced accuracy {best_ba:.2}, {other} {other_ba:.2})",
                        if exceptions_text.is_empty() { "only" } else { "mostly" },
                        min_err.saturating_sub(1),
                        if exceptions_text.is_empty() {
                            "none failed"
                        } else {
                            "almost none failed"
                        },
                        if per_caller { " per caller" } else { "" },
                    );
                    if let Some(c) = caveat {
                        s.push_str(&format!("; {c}"));
                    }
                    s.push_str(&format!(". Suggested metric: {metric}"));
                    (s, Some(metric), Some((kind, lo, hi, min_err, max_ok, peak)))
                }
            };
            let severity = match (verdict, label) {
                (Verdict::NotLoadRelated, _) => Severity::Low,
                (_, "high") => Severity::High,
                (_, "medium") => Severity::Medium,
                _ => Severity::Low,
            };
            out.push(Finding {
                id: String::new(),
                detector: self.name().into(),
                severity,
                endpoint: Some(key),
                host: Some(endpoint.host.clone()),
                status: Some(status),
                summary,
                evidence: idx.iter().take(5).map(|&i| cap.id(&cap.calls[i]).to_string()).collect(),
                suggested_metric: metric,
                details: json!({
                    "verdict": match verdict {
                        Verdict::Concurrency => "concurrency",
                        Verdict::Rate => "rate",
                        Verdict::NotLoadRelated => "not-load-related",
                    },
                    "confidence": confidence,
                    "confidence_label": label,
                    "balanced_accuracy": {"inflight": ba_c, "rate": ba_r},
                    "thresholds": {"inflight": t_c, "rate_per_s": t_r},
                    "bound": bound.map(|(kind, lo, hi, min_err, max_ok, peak)| json!({
                        "kind": kind, "low": lo, "high": hi,
                        "min_at_error": min_err, "max_at_success": max_ok, "peak": peak,
                    })),
                    "per": if per_caller { "caller" } else { "all" },
                    "ambiguous": caveat.is_some(),
                    "errors": idx.len(),
                    "successes": oks,
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
    fn best_threshold_separates_perfectly_when_it_can() {
        let pts: Vec<(u32, bool)> = (1..=40).map(|x| (x, x > 30)).collect();
        assert_eq!(best_threshold(&pts), (1.0, 31));
        let noisy: Vec<(u32, bool)> = (1..=40).map(|x| (x, x % 2 == 0)).collect();
        assert!(best_threshold(&noisy).0 < 0.6);
    }
}
