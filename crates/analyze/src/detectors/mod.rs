//! The detectors: each a small [`Detector`] in its own file; [`default_detectors`] is the one
//! place that lists them. Adding a detector means adding a file and a line.

mod burst;
mod fanout;
mod limit;
pub(crate) mod retry;

pub use burst::ErrorBursts;
pub use fanout::FanOut;
pub use limit::LimitModel;
pub use retry::RetryStorms;

use crate::capture::Capture;
use crate::finding::Finding;

/// Finds one kind of problem in a capture.
pub trait Detector: Sync {
    /// Stable name, used in `Finding::detector`.
    fn name(&self) -> &'static str;
    /// Findings (ids are assigned by [`analyze`]).
    fn detect(&self, cap: &Capture) -> Vec<Finding>;
}

/// Every detector, in reporting order.
pub fn default_detectors() -> Vec<Box<dyn Detector>> {
    vec![Box::new(ErrorBursts), Box::new(LimitModel), Box::new(RetryStorms), Box::new(FanOut)]
}

/// Runs `detectors` over `cap`; findings sorted by severity (highest first, stable otherwise)
/// and numbered `F1`, `F2`, ...
pub fn analyze(cap: &Capture, detectors: &[Box<dyn Detector>]) -> Vec<Finding> {
    rank(detectors.iter().flat_map(|d| d.detect(cap)).collect())
}

/// Where a finding sits in the chain *load → throttling errors → retries of those errors*:
/// the lower, the closer to the cause. Fixing a cause removes its symptoms, not the other way
/// round (a retry storm is what a client does about throttling; throttling is what an upstream
/// does about load).
fn causal_order(f: &Finding) -> u8 {
    use crate::finding::Remedy;
    match (f.detector.as_str(), f.remedy) {
        ("limit-model", Some(Remedy::Concurrency { .. } | Remedy::Rate { .. })) => 0, // the load, measured against a limit
        ("fan-out", _) => 1,     // the load's shape in the traffic
        ("retry-storm", _) => 3, // the errors' retries
        _ => 2,                  // the errors themselves
    }
}

/// Orders findings and numbers them `F1`, `F2`, ...: incidents (the findings about one
/// endpoint) by their most severe finding, highest first; within an incident, cause before
/// symptom ([`causal_order`]), then by severity.
pub fn rank(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by_key(|f| std::cmp::Reverse(f.severity));
    // Incidents in order of first appearance (= most severe first).
    let mut incidents: Vec<(Option<String>, Option<String>)> = Vec::new();
    let incident = |f: &Finding| (f.host.clone(), f.endpoint.clone());
    for f in &all {
        let k = incident(f);
        if k.1.is_none() || !incidents.contains(&k) {
            incidents.push(k);
        }
    }
    let pos = |f: &Finding| {
        let k = incident(f);
        incidents.iter().position(|i| *i == k && k.1.is_some()).unwrap_or(incidents.len())
    };
    all.sort_by_key(|f| (pos(f), causal_order(f), std::cmp::Reverse(f.severity)));
    for (i, f) in all.iter_mut().enumerate() {
        f.id = format!("F{}", i + 1);
    }
    all
}

/// Calls grouped by (endpoint, status) for error statuses: `(endpoint, status, call indices)`.
/// Transport errors are status 0.
pub(crate) fn error_groups(cap: &Capture) -> Vec<(u32, u16, Vec<usize>)> {
    let mut groups: std::collections::BTreeMap<(u32, u16), Vec<usize>> = Default::default();
    for (i, c) in cap.calls.iter().enumerate() {
        if c.is_error() {
            groups.entry((c.endpoint, c.status)).or_default().push(i);
        }
    }
    groups.into_iter().map(|((e, s), v)| (e, s, v)).collect()
}

/// `429` or `transport errors` for summaries.
pub(crate) fn status_text(status: u16) -> String {
    if status == 0 { "transport errors".into() } else { status.to_string() }
}
