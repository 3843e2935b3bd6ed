//! Before/after comparison of two captures (post-deploy check): per endpoint and in total, calls,
//! errors by status, error rate, peak in-flight per caller and latency p95, with deltas.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Serialize;

use crate::capture::Capture;
use crate::concurrency::peak_inflight;
use crate::stats::{Counts, StatsTable};

/// A value before and after.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Pair<T> {
    /// In the before capture.
    pub before: T,
    /// In the after capture.
    pub after: T,
}

/// One row of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct DiffRow {
    /// `METHOD template`, or `total`.
    pub endpoint: String,
    /// Host (empty for the total).
    pub host: String,
    /// Calls.
    pub calls: Pair<u64>,
    /// Errors (status ≥ 400 and transport errors).
    pub errors: Pair<u64>,
    /// Errors by status (`"429"`, transport errors by kind).
    pub errors_by_status: BTreeMap<String, Pair<u64>>,
    /// `errors / calls`.
    pub error_rate: Pair<f64>,
    /// Peak in flight for one caller (maximum over callers).
    pub peak_inflight_per_caller: Pair<u64>,
    /// Latency p95 in ms, when durations were known.
    pub latency_p95_ms: Pair<Option<f64>>,
}

/// The comparison.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Diff {
    /// Per endpoint, ordered by calls after, then before.
    pub endpoints: Vec<DiffRow>,
    /// All endpoints.
    pub totals: DiffRow,
}

fn errors_by_status(c: &Counts) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = c
        .status
        .iter()
        .filter(|(k, _)| k.parse::<u16>().is_ok_and(|s| s >= 400))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    m.extend(c.transport_errors.iter().map(|(k, v)| (k.clone(), *v)));
    m
}

fn zero() -> Counts {
    Counts {
        calls: 0,
        status: BTreeMap::new(),
        transport_errors: BTreeMap::new(),
        incomplete: 0,
        errors: 0,
        error_rate: 0.0,
        latency_ms: crate::stats::Latency {
            samples: 0,
            p50: None,
            p95: None,
            p99: None,
            max: None,
        },
        first: None,
        last: None,
    }
}

/// Peak in flight per caller for calls selected by `keep` (max over callers).
fn peak_per_caller(cap: &Capture, keep: impl Fn(u32) -> bool) -> u64 {
    let mut by: BTreeMap<u32, Vec<(i64, i64)>> = BTreeMap::new();
    for c in cap.calls.iter().filter(|c| keep(c.endpoint)) {
        by.entry(c.caller).or_default().push((c.start, c.end));
    }
    by.into_values().map(peak_inflight).max().unwrap_or(0)
}

fn row(endpoint: String, host: String, b: &Counts, a: &Counts, peaks: (u64, u64)) -> DiffRow {
    let (eb, ea) = (errors_by_status(b), errors_by_status(a));
    let keys: BTreeSet<&String> = eb.keys().chain(ea.keys()).collect();
    DiffRow {
        endpoint,
        host,
        calls: Pair { before: b.calls, after: a.calls },
        errors: Pair { before: b.errors, after: a.errors },
        errors_by_status: keys
            .into_iter()
            .map(|k| {
                (
                    k.clone(),
                    Pair {
                        before: eb.get(k).copied().unwrap_or(0),
                        after: ea.get(k).copied().unwrap_or(0),
                    },
                )
            })
            .collect(),
        error_rate: Pair { before: b.error_rate, after: a.error_rate },
        peak_inflight_per_caller: Pair { before: peaks.0, after: peaks.1 },
        latency_p95_ms: Pair { before: b.latency_ms.p95, after: a.latency_ms.p95 },
    }
}

/// Compares two captures' tables (grouped by endpoint) and captures.
pub fn diff(before: (&StatsTable, &Capture), after: (&StatsTable, &Capture)) -> Diff {
    let key = |e: &crate::stats::EndpointStats| (e.endpoint.clone(), e.host.clone());
    let b: BTreeMap<_, _> = before.0.endpoints.iter().map(|e| (key(e), &e.counts)).collect();
    let a: BTreeMap<_, _> = after.0.endpoints.iter().map(|e| (key(e), &e.counts)).collect();
    let keys: BTreeSet<&(String, String)> = b.keys().chain(a.keys()).collect();
    let z = zero();
    let ep_peak = |cap: &Capture, ep: &(String, String)| {
        peak_per_caller(cap, |i| {
            let e = &cap.endpoints[i as usize];
            e.key() == ep.0 && e.host == ep.1
        })
    };
    let mut endpoints: Vec<DiffRow> = keys
        .into_iter()
        .map(|k| {
            let peaks = (ep_peak(before.1, k), ep_peak(after.1, k));
            row(
                k.0.clone(),
                k.1.clone(),
                b.get(k).copied().unwrap_or(&z),
                a.get(k).copied().unwrap_or(&z),
                peaks,
            )
        })
        .collect();
    endpoints.sort_by(|x, y| {
        (y.calls.after, y.calls.before)
            .cmp(&(x.calls.after, x.calls.before))
            .then_with(|| x.endpoint.cmp(&y.endpoint))
    });
    let peaks = (peak_per_caller(before.1, |_| true), peak_per_caller(after.1, |_| true));
    let totals = row("total".into(), String::new(), &before.0.totals, &after.0.totals, peaks);
    Diff { endpoints, totals }
}
