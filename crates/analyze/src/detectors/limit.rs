//! The limit model: are an endpoint's rejections a limit on how many calls of one caller may be
//! in progress (concurrency), on how fast they may come (a token bucket: a rate and a burst), or
//! neither (not load-related)?
//!
//! A limiter rejects *while it admits*, so the evidence is in the admitted calls, not in the
//! offered ones: a proxy between the client and the limiter reorders a burst's arrivals, and a
//! fast-failing outage raises the offered rate with no limit anywhere. Calls are taken as the
//! upstream saw them (`Call::upstream`: a proxy's own connect and queueing left out). Per
//! (host, caller), over every call of that caller:
//! - **concurrency**: at each call's arrival, the admitted calls (status < 400) still in flight.
//!   Under a limit L a call is rejected when L are in flight and admitted when fewer are, so the
//!   best rule "rejected ⇔ admitted in flight ≥ t" (by balanced accuracy: the mean of the
//!   rejection and admission recall, so neither class wins by default) gives L = t;
//! - **rate**: for a candidate rate R, the occupancy of a bucket the admitted calls fill and R
//!   drains (Lindley's recursion). Under a token bucket (R, burst B) a call is rejected when the
//!   occupancy has reached B. R is searched on a grid; the best rule gives (R, B).
//!
//! A fit counts only if its limit was seen at work: rejections interleave with admissions (an
//! outage admits nothing while it rejects), the admitted calls never exceed the fitted limit by
//! more than proxy skew explains, and a bucket drains within the capture (else any slow "rate"
//! separates before from after). The better valid fit decides (the bucket, with its extra
//! parameter, must win by [`RATE_MARGIN`]); neither reaching [`LOAD_RELATED`] means not
//! load-related. The interval of a concurrency limit runs from where most rejections came to
//! where most admissions did (25th and 90th percentiles); of a rate, every rate whose bucket
//! scores within [`INTERVAL`] of the best. The suggested metric keeps a fix well inside the
//! limit: half the concurrency estimate, or the lower of 0.8 × the rate estimate and the
//! interval's low end. Only errors a limiter gives count: a client that
//! gave up (aborted, timed out) was not rejected, and says so.

use serde_json::json;

use super::{Detector, error_groups, status_text};
use crate::capture::{Capture, Outcome};
use crate::concurrency::inflight_at_arrival;
use crate::finding::{Finding, Severity};

/// The typed remedy of a limit-model finding, from its verdict and bound.
fn remedy(details: &serde_json::Value) -> Option<crate::finding::Remedy> {
    use crate::finding::Remedy;
    let per_caller = details.get("per").and_then(|v| v.as_str()) == Some("caller");
    let estimate = details.pointer("/bound/estimate").and_then(serde_json::Value::as_f64);
    match details.get("verdict")?.as_str()? {
        "concurrency" => Some(Remedy::Concurrency { limit: estimate, per_caller }),
        "rate" => Some(Remedy::Rate { per_second: estimate, per_caller }),
        "not-load-related" => Some(Remedy::NotLoadRelated),
        _ => None,
    }
}

/// The limit-model detector.
pub struct LimitModel;

const MIN_ERRORS: usize = 3;
/// Balanced accuracy a limit's rule must reach: random errors score 0.5; the real limiters of
/// the scenario corpus (nginx `limit_conn`, `limit_req`) 0.79–1.00 through a proxy.
const LOAD_RELATED: f64 = 0.75;
/// What the bucket must beat the concurrency rule by to be chosen: it has two parameters and
/// a grid of rates to pick from, against one, and with constant latency a concurrency limit L
/// is also a rate limit of L/latency.
const RATE_MARGIN: f64 = 0.05;
/// Rates whose bucket scores within this of the best form the reported interval: about the
/// sampling noise of a balanced accuracy over the 100–500 calls of a capture.
const INTERVAL: f64 = 0.03;
/// Candidate rates, calls/s.
const RATES: &[f64] = &[
    0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0,
    22.0, 25.0, 28.0, 30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 120.0, 150.0,
    200.0, 250.0, 300.0, 400.0, 500.0,
];

/// The best rule "error ⇔ x ≥ t" over `points` and every threshold's score: `(best balanced
/// accuracy, t, [(threshold, score)])`.
fn thresholds(points: &[(u32, bool)]) -> (f64, u32, Vec<(u32, f64)>) {
    let errors = points.iter().filter(|p| p.1).count() as f64;
    let oks = points.len() as f64 - errors;
    if errors == 0.0 || oks == 0.0 {
        return (0.5, 0, Vec::new());
    }
    let mut v = points.to_vec();
    v.sort_unstable();
    // Threshold at the smallest value: predicts every call rejected.
    let (mut tp, mut tn) = (errors, 0.0);
    let mut best = (0.5, v[0].0);
    let mut all = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let t = v[i].0;
        let ba = (tp / errors + tn / oks) / 2.0;
        all.push((t, ba));
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
    (best.0, best.1, all)
}

/// The best rule's balanced accuracy and threshold (tests and the other detectors).
#[cfg(test)]
fn best_threshold(points: &[(u32, bool)]) -> (f64, u32) {
    let (ba, t, _) = thresholds(points);
    (ba, t)
}

/// One caller's calls on one host, in start order: the indices into the capture.
type Group = Vec<usize>;

/// The callers' groups, each in the order the upstream got the calls.
fn groups(cap: &Capture) -> Vec<Group> {
    let mut by: std::collections::BTreeMap<(&str, u32), Group> = Default::default();
    for (i, c) in cap.calls.iter().enumerate() {
        by.entry((cap.endpoints[c.endpoint as usize].host.as_str(), c.caller)).or_default().push(i);
    }
    let mut groups: Vec<Group> = by.into_values().collect();
    for g in &mut groups {
        g.sort_by_key(|&i| cap.calls[i].upstream());
    }
    groups
}

fn admitted(cap: &Capture, i: usize) -> bool {
    let c = &cap.calls[i];
    c.outcome == Outcome::Ok
}

/// Admitted calls of the same caller in flight at each call's arrival (itself not counted).
fn admitted_in_flight(cap: &Capture, groups: &[Group]) -> Vec<u32> {
    let mut out = vec![0; cap.calls.len()];
    for g in groups {
        let iv: Vec<(i64, i64)> = g.iter().map(|&i| cap.calls[i].upstream()).collect();
        for (&i, n) in g.iter().zip(inflight_at_arrival(&iv, |k| admitted(cap, g[k]))) {
            out[i] = n - 1;
        }
    }
    out
}

/// The occupancy (× 10, rounded down) of a bucket drained at `rate` per second and filled by
/// each admitted call, just before each call's arrival.
fn occupancy(cap: &Capture, groups: &[Group], rate: f64) -> Vec<u32> {
    let mut out = vec![0; cap.calls.len()];
    for g in groups {
        let mut level = 0.0f64;
        let mut last: Option<i64> = None;
        for &i in g {
            let t = cap.calls[i].upstream().0;
            if let Some(l) = last {
                level = (level - rate * (t - l) as f64 / 1e9).max(0.0);
            }
            last = Some(t);
            out[i] = (level * 10.0).floor() as u32;
            if admitted(cap, i) {
                level += 1.0;
            }
        }
    }
    out
}

/// Whether an error could be a limiter's rejection: an HTTP error status, or a transport
/// failure the other side caused. A client that gave up first was rejected by nobody.
fn rejection_shaped(cap: &Capture, status: u16, idx: &[usize]) -> Result<(), &'static str> {
    if status != 0 {
        return Ok(());
    }
    let gave_up = idx.iter().filter(|&&i| {
        cap.calls[i].transport_kind.is_some_and(|k| {
            matches!(k, af_snapshot::ErrorKind::Aborted | af_snapshot::ErrorKind::Timeout)
        })
    });
    if gave_up.count() * 2 > idx.len() {
        Err(
            "the client gave up on them (aborted or timed out) — a slow answer, not a limit's rejection",
        )
    } else {
        Ok(())
    }
}

/// A fitted limit.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fit {
    Concurrency { limit: u32, low: u32, high: u32 },
    Rate { rate: f64, burst: f64, low: f64, high: f64 },
}

#[derive(Clone, Copy, Debug)]
struct Scored {
    fit: Fit,
    ba: f64,
    /// Why the fit does not stand, when it does not.
    refuted: Option<&'static str>,
}

/// How many calls were in flight when the admitted ones were admitted (themselves included), at
/// the 90th percentile: a limit L admits a call only below L, and proxy skew moves a few of them.
fn admitted_peak(cap: &Capture, in_flight: &[u32], members: &[usize]) -> u32 {
    let mut v: Vec<u32> =
        members.iter().filter(|&&i| admitted(cap, i)).map(|&i| in_flight[i] + 1).collect();
    v.sort_unstable();
    v.get((v.len() * 9 / 10).min(v.len().saturating_sub(1))).copied().unwrap_or(0)
}

impl Detector for LimitModel {
    fn name(&self) -> &'static str {
        "limit-model"
    }

    fn detect(&self, cap: &Capture) -> Vec<Finding> {
        let error_groups: Vec<_> = error_groups(cap)
            .into_iter()
            .filter(|(_, s, idx)| (*s == 429 || *s >= 500 || *s == 0) && idx.len() >= MIN_ERRORS)
            .collect();
        if error_groups.is_empty() {
            return Vec::new();
        }
        let retry = super::retry::retries(cap);
        let groups = groups(cap);
        let caller_of: Vec<usize> = {
            let mut v = vec![0; cap.calls.len()];
            for (g, members) in groups.iter().enumerate() {
                for &i in members {
                    v[i] = g;
                }
            }
            v
        };
        let in_flight = admitted_in_flight(cap, &groups);
        let per_caller = !(cap.callers.len() == 1 && cap.callers[0] == "(none)");
        let by_endpoint = cap.by_endpoint();
        let mut out = Vec::new();
        for (ep, status, idx) in error_groups {
            let is_err = |i: usize| {
                let c = &cap.calls[i];
                c.endpoint == ep && c.status == status && c.is_error()
            };
            // First attempts only: a retry is caused by the error before it.
            let pop: Vec<usize> = by_endpoint[ep as usize]
                .iter()
                .copied()
                .filter(|&i| !retry[i] && (is_err(i) || admitted(cap, i)))
                .collect();
            let errors_first = pop.iter().filter(|&&i| is_err(i)).count();
            let oks = pop.len() - errors_first;
            if errors_first < MIN_ERRORS || oks == 0 {
                continue; // too few, or every call failed: nothing to relate the errors to
            }
            let endpoint = &cap.endpoints[ep as usize];
            let key = endpoint.key();
            let what = status_text(status);
            let mk = |severity, summary: String, metric: Option<String>, details| Finding {
                id: String::new(),
                detector: self.name().into(),
                severity,
                endpoint: Some(key.clone()),
                host: Some(endpoint.host.clone()),
                status: Some(status),
                summary,
                evidence: idx.iter().take(5).map(|&i| cap.id(&cap.calls[i]).to_string()).collect(),
                suggested_metric: metric,
                remedy: remedy(&details),
                details,
            };
            if let Err(why) = rejection_shaped(cap, status, &idx) {
                out.push(mk(
                    Severity::Low,
                    format!("{what} on {key}: {why}: not load-related"),
                    None,
                    json!({"verdict": "not-load-related", "reason": "client-gave-up",
                           "errors": idx.len(), "successes": oks, "per": if per_caller { "caller" } else { "all" }}),
                ));
                continue;
            }
            let callers: Vec<usize> = {
                let mut c: Vec<usize> = pop.iter().map(|&i| caller_of[i]).collect();
                c.sort_unstable();
                c.dedup();
                c
            };
            let members: Vec<usize> =
                callers.iter().flat_map(|&g| groups[g].iter().copied()).collect();
            // Did the limit admit while it rejected? Admissions inside the span of each
            // caller's rejections.
            let (mut inside, mut rejections) = (0usize, 0usize);
            for &g in &callers {
                let errs: Vec<i64> = groups[g]
                    .iter()
                    .filter(|&&i| is_err(i) && !retry[i])
                    .map(|&i| cap.calls[i].start)
                    .collect();
                let (Some(&lo), Some(&hi)) = (errs.first(), errs.last()) else { continue };
                rejections += errs.len();
                inside += groups[g]
                    .iter()
                    .filter(|&&i| admitted(cap, i) && (lo..=hi).contains(&cap.calls[i].start))
                    .count();
            }
            // An outage admits nothing while it rejects; a limiter keeps admitting (a few a
            // second, under heavy overload: 2 % of the rejections is plenty).
            let interleaved = inside >= 3 && inside * 50 >= rejections;
            let span_s = {
                let (lo, hi) = members.iter().fold((i64::MAX, i64::MIN), |(a, b), &i| {
                    (a.min(cap.calls[i].start), b.max(cap.calls[i].end))
                });
                (hi - lo).max(0) as f64 / 1e9
            };

            // Concurrency.
            let feat = |f: &[u32]| pop.iter().map(|&i| (f[i], is_err(i))).collect::<Vec<_>>();
            let (ba_c, t_c, _) = thresholds(&feat(&in_flight));
            let limit = t_c.max(1);
            // Where the limit may lie, proxy skew allowing: from where most rejections came
            // (their 25th percentile) to where most admissions did (the 90th).
            let quantile = |mut v: Vec<u32>, q: usize| {
                v.sort_unstable();
                v.get((v.len() * q / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(limit)
            };
            let c_lo =
                quantile(pop.iter().filter(|&&i| is_err(i)).map(|&i| in_flight[i]).collect(), 25);
            let c_hi = quantile(
                pop.iter().filter(|&&i| !is_err(i)).map(|&i| in_flight[i] + 1).collect(),
                90,
            );
            let peak_admitted = admitted_peak(cap, &in_flight, &members);
            let conc = Scored {
                fit: Fit::Concurrency { limit, low: c_lo.min(limit).max(1), high: c_hi.max(limit) },
                ba: ba_c,
                refuted: if !interleaved {
                    Some("nothing was admitted while it rejected")
                } else if f64::from(peak_admitted) > f64::from(limit) * 1.5 + 2.0 {
                    Some("more calls than that were admitted at once")
                } else {
                    None
                },
            };

            // Rate: the grid.
            let fits: Vec<(f64, f64, f64)> = RATES
                .iter()
                .map(|&r| {
                    let (ba, t, _) = thresholds(&feat(&occupancy(cap, &groups, r)));
                    (r, ba, f64::from(t) / 10.0)
                })
                .collect();
            let &(rate, ba_r, burst) = fits
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)))
                .unwrap_or(&(1.0, 0.5, 0.0));
            let near_r: Vec<f64> =
                fits.iter().filter(|f| f.1 >= ba_r - INTERVAL).map(|f| f.0).collect();
            let (r_lo, r_hi) = (
                near_r.iter().copied().fold(rate, f64::min),
                near_r.iter().copied().fold(rate, f64::max),
            );
            // The most calls one caller got admitted in any second.
            let busiest_second = callers
                .iter()
                .map(|&g| {
                    let starts: Vec<i64> = groups[g]
                        .iter()
                        .filter(|&&i| admitted(cap, i))
                        .map(|&i| cap.calls[i].start)
                        .collect();
                    crate::concurrency::max_arrivals_sorted(&starts, 1_000_000_000)
                })
                .max()
                .unwrap_or(0) as f64;
            let rate_fit = Scored {
                fit: Fit::Rate { rate, burst: burst.max(1.0), low: r_lo, high: r_hi },
                ba: ba_r,
                refuted: if !interleaved {
                    Some("nothing was admitted while it rejected")
                } else if burst / rate > span_s {
                    Some("its bucket would not drain within the capture")
                } else if busiest_second > (rate + burst) * 1.5 + 2.0 {
                    Some("more calls than that were admitted in one second")
                } else {
                    None
                },
            };

            let valid = |s: &Scored| s.refuted.is_none() && s.ba >= LOAD_RELATED;
            let chosen = match (valid(&conc), valid(&rate_fit)) {
                (true, true) if rate_fit.ba - conc.ba > RATE_MARGIN => Some((rate_fit, conc)),
                (true, _) => Some((conc, rate_fit)),
                (false, true) => Some((rate_fit, conc)),
                (false, false) => None,
            };
            let per = if per_caller { ",per=\"caller\"" } else { "" };
            let who = if per_caller { " per caller" } else { "" };
            let peak_offered = {
                let mut by: std::collections::HashMap<u32, Vec<(i64, i64)>> = Default::default();
                for &i in &pop {
                    by.entry(cap.calls[i].caller)
                        .or_default()
                        .push((cap.calls[i].start, cap.calls[i].end));
                }
                by.into_values().map(crate::concurrency::peak_inflight).max().unwrap_or(0)
            };
            let Some((best, other)) = chosen else {
                let why = [conc, rate_fit]
                    .iter()
                    .filter_map(|s| s.refuted.filter(|_| s.ba >= LOAD_RELATED))
                    .next()
                    .map(|r| format!("; the best fits are refuted: {r}"))
                    .unwrap_or_default();
                out.push(mk(
                    Severity::Low,
                    format!(
                        "{what} on {key} track neither the calls admitted in flight (balanced accuracy \
                         {ba_c:.2}) nor a token bucket's fill (best {ba_r:.2} at {rate}/s){why}: not \
                         load-related — limiting concurrency or rate would not remove them"
                    ),
                    None,
                    json!({
                        "verdict": "not-load-related",
                        "reason": if why.is_empty() { "no-fit" } else { "refuted" },
                        "balanced_accuracy": {"inflight": ba_c, "rate": ba_r},
                        "per": if per_caller { "caller" } else { "all" },
                        "errors": idx.len(),
                        "successes": oks,
                    }),
                ));
                continue;
            };
            let margin = best.ba - other.ba.max(0.5);
            let ambiguous = valid(&other) && margin <= RATE_MARGIN;
            let label = if best.ba >= 0.9 && errors_first >= 20 && !ambiguous {
                "high"
            } else if best.ba >= 0.8 {
                "medium"
            } else {
                "low"
            };
            let confidence = if ambiguous { best.ba.min(0.9) } else { best.ba };
            let (summary, metric, bound) = match best.fit {
                Fit::Concurrency { limit, low, high } => {
                    let interval = if low == high {
                        format!("≈ {limit}")
                    } else {
                        format!("{limit} (between {low} and {high})")
                    };
                    let metric = format!(
                        "peak_inflight{{endpoint=\"{key}\"{per}}} <= {}",
                        (limit / 2).max(1)
                    );
                    (
                        format!(
                            "{what} on {key} came when {limit} calls{who} were already admitted and in flight \
                             (the offered load went up to {peak_offered}), and calls were admitted below that \
                             → concurrency limit {interval}{who} (confidence {label}: admitted calls in flight \
                             separate rejections from admissions with balanced accuracy {:.2}; a token bucket fits \
                             {:.2}){}. Suggested metric: {metric}",
                            best.ba,
                            other.ba,
                            if ambiguous {
                                format!("; a rate limit of {:.0}/s fits as well", rate)
                            } else {
                                String::new()
                            },
                        ),
                        metric,
                        json!({"kind": "concurrency", "low": low, "high": high, "estimate": limit,
                               "peak_admitted": peak_admitted, "peak_offered": peak_offered}),
                    )
                }
                Fit::Rate { rate, burst, low, high } => {
                    let interval = if (high - low).abs() < f64::EPSILON {
                        format!("≈ {rate}/s")
                    } else {
                        format!("{rate}/s (between {low} and {high}/s)")
                    };
                    let metric = format!(
                        "max_rate_1s{{endpoint=\"{key}\"{per}}} <= {}",
                        ((rate * 0.8).min(low) as u32).max(1)
                    );
                    (
                        format!(
                            "{what} on {key} came when the calls admitted{who} had used up a bucket of {burst:.0} \
                             refilled at {rate}/s, while calls kept being admitted at that pace (up to \
                             {busiest_second:.0} in one second) → rate limit {interval}{who}, burst ≈ {burst:.0} \
                             (confidence {label}: the bucket separates rejections from admissions with balanced \
                             accuracy {:.2}; admitted calls in flight {:.2}){}. Suggested metric: {metric}",
                            best.ba,
                            other.ba,
                            if ambiguous {
                                format!("; a concurrency limit of {} fits as well", t_c.max(1))
                            } else {
                                String::new()
                            },
                        ),
                        metric,
                        json!({"kind": "rate", "low": low.floor() as u64, "high": high.ceil() as u64,
                               "estimate": rate, "burst": burst, "busiest_second": busiest_second}),
                    )
                }
            };
            // How much it matters: a limit that clearly explains many rejections is the problem
            // to fix, whichever kind it is; the label says how sure the kind is.
            let severity = if best.ba >= 0.9 && errors_first >= 20 {
                Severity::High
            } else if best.ba >= 0.8 {
                Severity::Medium
            } else {
                Severity::Low
            };
            out.push(mk(
                severity,
                summary,
                Some(metric),
                json!({
                    "verdict": match best.fit { Fit::Concurrency { .. } => "concurrency", Fit::Rate { .. } => "rate" },
                    "confidence": confidence,
                    "confidence_label": label,
                    "balanced_accuracy": {"inflight": ba_c, "rate": ba_r},
                    "bound": bound,
                    "per": if per_caller { "caller" } else { "all" },
                    "ambiguous": ambiguous,
                    "errors": idx.len(),
                    "successes": oks,
                }),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remedy_is_the_verdict_typed() {
        use crate::finding::Remedy;
        let r = |v: serde_json::Value| remedy(&v);
        assert_eq!(
            r(json!({"verdict": "concurrency", "per": "caller", "bound": {"estimate": 10.0}})),
            Some(Remedy::Concurrency { limit: Some(10.0), per_caller: true })
        );
        assert_eq!(
            r(json!({"verdict": "rate", "bound": {"estimate": 20.0}})),
            Some(Remedy::Rate { per_second: Some(20.0), per_caller: false })
        );
        assert_eq!(r(json!({"verdict": "not-load-related"})), Some(Remedy::NotLoadRelated));
        assert_eq!(r(json!({"verdict": "clustered"})), None);
    }

    #[test]
    fn best_threshold_separates_perfectly_when_it_can() {
        let pts: Vec<(u32, bool)> = (1..=40).map(|x| (x, x > 30)).collect();
        assert_eq!(best_threshold(&pts), (1.0, 31));
        let noisy: Vec<(u32, bool)> = (1..=40).map(|x| (x, x % 2 == 0)).collect();
        assert!(best_threshold(&noisy).0 < 0.6);
    }
}
