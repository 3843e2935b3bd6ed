//! The detectors: each a small [`Detector`] in its own file; [`default_detectors`] is the one
//! place that lists them. Adding a detector means adding a file and a line.

mod burst;
mod fanout;
mod limit;
mod retry;

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

/// Sorts findings by severity (highest first, stable otherwise) and numbers them `F1`, `F2`, ...
pub fn rank(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by_key(|f| std::cmp::Reverse(f.severity));
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
