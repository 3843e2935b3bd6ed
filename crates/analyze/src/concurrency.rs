//! Concurrency reconstruction: in-flight counts from start/end (a sweep line) and arrivals in
//! sliding windows. One implementation for snapshots and for measured runs (DESIGN.md §4).
//!
//! An exchange is in flight at `t` when `start ≤ t < end`: one that ends exactly when another
//! starts does not overlap it. An exchange with no known end is in flight only at its start.

/// `(start, end)` in ns; `end < start` is treated as `end = start`.
pub type Interval = (i64, i64);

/// Start (+1) and end (-1) events in time order; ends sort before starts at the same instant
/// (-1 < 1), and a zero-length interval still counts at its start.
fn events(intervals: impl IntoIterator<Item = Interval>) -> Vec<(i64, i8)> {
    let mut events: Vec<(i64, i8)> = Vec::new();
    for (s, e) in intervals {
        events.push((s, 1));
        events.push((if e > s { e } else { s.saturating_add(1) }, -1));
    }
    events.sort_unstable();
    events
}

/// The maximum number of intervals in flight at any instant (0 for none).
pub fn peak_inflight(intervals: impl IntoIterator<Item = Interval>) -> u64 {
    let events = events(intervals);
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        cur += i64::from(d);
        peak = peak.max(cur);
    }
    peak as u64
}

/// For intervals sorted by start: how many were in flight at each one's arrival, itself
/// included (so the first is 1). Only intervals for which `occupies(index)` holds stay in flight
/// for others (the limit model leaves out requests the upstream rejected at once).
pub fn inflight_at_arrival(sorted: &[Interval], occupies: impl Fn(usize) -> bool) -> Vec<u32> {
    let mut ends = std::collections::BinaryHeap::new();
    sorted
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| {
            while ends.peek().is_some_and(|&std::cmp::Reverse(end)| end <= s) {
                ends.pop();
            }
            let n = ends.len() as u32 + 1;
            if occupies(i) {
                ends.push(std::cmp::Reverse(if e > s { e } else { s.saturating_add(1) }));
            }
            n
        })
        .collect()
}

/// For sorted starts: how many arrivals fell in the `window` ns ending at each one (itself
/// included): the arrival rate that call saw.
pub fn arrivals_before(sorted_starts: &[i64], window: i64) -> Vec<u32> {
    let mut lo = 0;
    sorted_starts
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            while sorted_starts[lo] <= t - window {
                lo += 1;
            }
            (i - lo + 1) as u32
        })
        .collect()
}

/// The maximum number of starts in any window of `window` ns (`[t, t + window)`), for starts in
/// any order.
pub fn max_arrivals(starts: impl IntoIterator<Item = i64>, window: i64) -> u64 {
    let mut v: Vec<i64> = starts.into_iter().collect();
    v.sort_unstable();
    max_arrivals_sorted(&v, window)
}

/// [`max_arrivals`] for sorted starts.
pub fn max_arrivals_sorted(sorted: &[i64], window: i64) -> u64 {
    let (mut lo, mut best) = (0usize, 0usize);
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as u64
}

/// In-flight count over time as `(t, count)` steps, for charts: the count holds from `t` until
/// the next step.
pub fn inflight_steps(intervals: impl IntoIterator<Item = Interval>) -> Vec<(i64, u64)> {
    let events = events(intervals);
    let mut out: Vec<(i64, u64)> = Vec::new();
    let mut cur = 0i64;
    for (t, d) in events {
        cur += i64::from(d);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 = cur as u64,
            _ => out.push((t, cur as u64)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_peak(iv: &[Interval]) -> u64 {
        // Maximum over every start instant of intervals covering it.
        iv.iter()
            .map(|&(t, _)| {
                iv.iter().filter(|&&(s, e)| s <= t && t < if e > s { e } else { s + 1 }).count()
                    as u64
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        assert_eq!(peak_inflight([(0, 10), (10, 20)]), 1);
        assert_eq!(peak_inflight([(0, 10), (9, 20)]), 2);
        assert_eq!(peak_inflight([(5, 5), (5, 5)]), 2);
        assert_eq!(peak_inflight([]), 0);
    }

    #[test]
    fn windows_are_half_open() {
        let ms = 1_000_000;
        assert_eq!(max_arrivals([0, 49 * ms, 50 * ms], 50 * ms), 2);
        assert_eq!(max_arrivals([0, 10, 20, 1_000_000_000], 50 * ms), 3);
        assert_eq!(arrivals_before(&[0, 10, 20, 100], 15), vec![1, 2, 2, 1]);
    }

    proptest! {
        #[test]
        fn sweep_equals_brute_force(raw in prop::collection::vec((0i64..1000, 0i64..200), 0..60)) {
            let iv: Vec<Interval> = raw.iter().map(|&(s, d)| (s, s + d)).collect();
            prop_assert_eq!(peak_inflight(iv.iter().copied()), brute_peak(&iv));
            let mut sorted = iv.clone();
            sorted.sort_unstable();
            let at = inflight_at_arrival(&sorted, |_| true);
            for (i, &(t, _)) in sorted.iter().enumerate() {
                // Everything started before or with it (in sort order) and still in flight.
                let n = sorted[..=i].iter().filter(|&&(s, e)| s <= t && t < if e > s { e } else { s + 1 }).count();
                prop_assert_eq!(at[i] as usize, n);
            }
            let steps_peak = inflight_steps(iv.iter().copied()).iter().map(|s| s.1).max().unwrap_or(0);
            prop_assert_eq!(steps_peak, brute_peak(&iv));
        }

        #[test]
        fn max_arrivals_equals_brute_force(starts in prop::collection::vec(0i64..1000, 0..60), w in 1i64..300) {
            let brute = starts.iter().map(|&t| starts.iter().filter(|&&s| s >= t && s < t + w).count() as u64).max().unwrap_or(0);
            prop_assert_eq!(max_arrivals(starts.iter().copied(), w), brute);
        }
    }
}

/// Concurrency of one endpoint (or of everything, for the total).
#[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ConcurrencyRow {
    /// `METHOD template`, or `total`.
    pub endpoint: String,
    /// Host (empty for the total).
    pub host: String,
    /// Peak in flight, all callers together.
    pub peak_inflight: u64,
    /// Peak in flight for one caller (maximum over callers).
    pub peak_inflight_per_caller: u64,
    /// Most request starts in any 50 ms window.
    pub max_arrivals_50ms: u64,
    /// Most request starts in any 1 s window.
    pub max_rate_1s: u64,
}

fn row(endpoint: String, host: String, calls: &[&crate::capture::Call]) -> ConcurrencyRow {
    let mut by_caller: std::collections::BTreeMap<u32, Vec<Interval>> = Default::default();
    for c in calls {
        by_caller.entry(c.caller).or_default().push((c.start, c.end));
    }
    let starts: Vec<i64> = calls.iter().map(|c| c.start).collect(); // calls are in start order
    ConcurrencyRow {
        endpoint,
        host,
        peak_inflight: peak_inflight(calls.iter().map(|c| (c.start, c.end))),
        peak_inflight_per_caller: by_caller.into_values().map(peak_inflight).max().unwrap_or(0),
        max_arrivals_50ms: max_arrivals_sorted(&starts, 50_000_000),
        max_rate_1s: max_arrivals_sorted(&starts, 1_000_000_000),
    }
}

/// Per endpoint (most concurrent first) and in total.
pub fn concurrency_table(cap: &crate::capture::Capture) -> (Vec<ConcurrencyRow>, ConcurrencyRow) {
    let mut rows: Vec<ConcurrencyRow> = cap
        .by_endpoint()
        .iter()
        .enumerate()
        .map(|(ep, idx)| {
            let e = &cap.endpoints[ep];
            let calls: Vec<&crate::capture::Call> = idx.iter().map(|&i| &cap.calls[i]).collect();
            row(e.key(), e.host.clone(), &calls)
        })
        .collect();
    rows.sort_by(|a, b| {
        b.peak_inflight
            .cmp(&a.peak_inflight)
            .then_with(|| (&a.endpoint, &a.host).cmp(&(&b.endpoint, &b.host)))
    });
    let all: Vec<&crate::capture::Call> = cap.calls.iter().collect();
    (rows, row("total".into(), String::new(), &all))
}
