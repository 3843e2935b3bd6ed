//! Fan-out and N+1: one call to an endpoint followed, by the same caller, by many calls to
//! another (a list, then a get per item). Concurrent followers are a fan-out burst; sequential
//! ones an N+1 loop. Reported as the shape that produced the load.

use std::collections::BTreeMap;

use serde_json::json;

use super::Detector;
use crate::capture::Capture;
use crate::concurrency::peak_inflight;
use crate::finding::{Finding, Severity, span_text};

/// The fan-out detector.
pub struct FanOut;

/// Followers must start within this gap of the previous one (or of the parent's end).
const CHAIN_GAP_NS: i64 = 250_000_000;
const MIN_FOLLOWERS: usize = 10;

#[derive(Default)]
struct Shape {
    occurrences: usize,
    sizes: Vec<usize>,
    peak: u64,
    widest_ns: i64,
    parents: Vec<usize>,
}

impl Detector for FanOut {
    fn name(&self) -> &'static str {
        "fan-out"
    }

    fn detect(&self, cap: &Capture) -> Vec<Finding> {
        let mut by_caller: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, c) in cap.calls.iter().enumerate() {
            by_caller.entry(c.caller).or_default().push(i);
        }
        let mut shapes: BTreeMap<(u32, u32), Shape> = BTreeMap::new();
        for idx in by_caller.values() {
            let mut j = 0;
            while j < idx.len() {
                let parent = &cap.calls[idx[j]];
                // The first call starting at or after the parent's end, to another endpoint.
                let mut k = j + 1;
                while k < idx.len() && cap.calls[idx[k]].start < parent.end {
                    k += 1;
                }
                let Some(&first) = idx.get(k) else { break };
                let child_ep = cap.calls[first].endpoint;
                if child_ep == parent.endpoint || cap.calls[first].start - parent.end > CHAIN_GAP_NS
                {
                    j += 1;
                    continue;
                }
                let mut chain = vec![first];
                let mut prev = cap.calls[first].start;
                let mut m = k + 1;
                while m < idx.len() {
                    let c = &cap.calls[idx[m]];
                    if c.start - prev > CHAIN_GAP_NS {
                        break;
                    }
                    if c.endpoint == child_ep {
                        chain.push(idx[m]);
                        prev = c.start;
                    }
                    m += 1;
                }
                if chain.len() >= MIN_FOLLOWERS {
                    let s = shapes.entry((parent.endpoint, child_ep)).or_default();
                    s.occurrences += 1;
                    s.sizes.push(chain.len());
                    s.peak = s.peak.max(peak_inflight(
                        chain.iter().map(|&i| (cap.calls[i].start, cap.calls[i].end)),
                    ));
                    let width =
                        cap.calls[*chain.last().unwrap_or(&first)].start - cap.calls[first].start;
                    s.widest_ns = s.widest_ns.max(width);
                    s.parents.push(idx[j]);
                    j = m; // continue after the chain
                } else {
                    j += 1;
                }
            }
        }
        shapes
            .into_iter()
            .map(|((p, ch), s)| {
                let (pk, ck) = (cap.endpoints[p as usize].key(), cap.endpoints[ch as usize].key());
                let (lo, hi) = (s.sizes.iter().min().copied().unwrap_or(0), s.sizes.iter().max().copied().unwrap_or(0));
                let n = if lo == hi { lo.to_string() } else { format!("{lo}–{hi}") };
                let concurrent = s.peak > 2;
                let summary = if concurrent {
                    format!(
                        "{pk} was followed {} time{} by a fan-out of {n} concurrent {ck} within {} (peak {} in flight): \
                         the list-then-get shape that produced the load",
                        s.occurrences,
                        if s.occurrences == 1 { "" } else { "s" },
                        span_text(s.widest_ns),
                        s.peak
                    )
                } else {
                    format!(
                        "{pk} was followed {} time{} by {n} sequential {ck} (N+1): one call per item, one after another",
                        s.occurrences,
                        if s.occurrences == 1 { "" } else { "s" }
                    )
                };
                Finding {
                    id: String::new(),
                    detector: "fan-out".into(),
                    severity: if concurrent && s.peak >= 20 { Severity::Medium } else { Severity::Info },
                    endpoint: Some(ck),
                    host: Some(cap.endpoints[ch as usize].host.clone()),
                    status: None,
                    summary,
                    evidence: s.parents.iter().take(5).map(|&i| cap.id(&cap.calls[i]).to_string()).collect(),
                    suggested_metric: None,
                    remedy: concurrent
                        .then_some(crate::finding::Remedy::Concurrency { limit: None, per_caller: false }),
                    details: json!({
                        "parent": pk,
                        "shape": if concurrent { "fan-out" } else { "n+1" },
                        "occurrences": s.occurrences,
                        "followers_min": lo,
                        "followers_max": hi,
                        "peak_inflight": s.peak,
                        "widest_s": s.widest_ns as f64 / 1e9,
                    }),
                }
            })
            .collect()
    }
}
