//! Prometheus `/metrics`: records received and rejected by reason, windows processed and the
//! backlog, findings by kind and state, processing latency. The text exposition format is
//! written directly: a dozen series do not need a registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the processing-latency histogram, seconds.
const BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The counters.
#[derive(Default)]
pub struct Metrics {
    received: Mutex<BTreeMap<&'static str, u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    requests_refused: Mutex<BTreeMap<&'static str, u64>>,
    not_http: AtomicU64,
    late: AtomicU64,
    /// Windows analysed.
    pub windows: AtomicU64,
    /// Windows closed and not yet analysed.
    pub backlog: AtomicU64,
    /// Analyses that failed (the window stays in the log and is retried on restart).
    pub analysis_errors: AtomicU64,
    latency: Mutex<(Vec<u64>, f64, u64)>,
}

fn add(m: &Mutex<BTreeMap<&'static str, u64>>, k: &'static str, n: u64) {
    if n > 0 {
        *m.lock().unwrap_or_else(|e| e.into_inner()).entry(k).or_default() += n;
    }
}

impl Metrics {
    /// `n` records taken from `source`.
    pub fn received(&self, source: &'static str, n: u64) {
        add(&self.received, source, n);
    }
    /// `n` records refused for `reason`.
    pub fn reject(&self, reason: &'static str, n: u64) {
        add(&self.rejected, reason, n);
    }
    /// A whole request refused for `reason` (bad body, wrong type, unauthorised, too large).
    pub fn refuse_request(&self, reason: &'static str) {
        add(&self.requests_refused, reason, 1);
    }
    /// Records that were not HTTP.
    pub fn not_http(&self, n: u64) {
        self.not_http.fetch_add(n, Ordering::Relaxed);
    }
    /// Records that came after their window closed.
    pub fn late(&self, n: u64) {
        self.late.fetch_add(n, Ordering::Relaxed);
    }
    /// One window's analysis took `secs`.
    pub fn processed(&self, secs: f64) {
        self.windows.fetch_add(1, Ordering::Relaxed);
        let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        if l.0.is_empty() {
            l.0 = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                l.0[i] += 1;
            }
        }
        l.1 += secs;
        l.2 += 1;
    }

    /// Records received from all sources.
    pub fn received_total(&self) -> u64 {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    /// The exposition text; `findings` are `(kind, state, count)` from the ledger.
    pub fn render(&self, findings: &[(String, String, i64)]) -> String {
        let mut s = String::new();
        let counter = |s: &mut String,
                       name: &str,
                       help: &str,
                       label: &str,
                       m: &Mutex<BTreeMap<&'static str, u64>>| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, v) in m.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(s, "{name}{{{label}=\"{k}\"}} {v}");
            }
        };
        counter(
            &mut s,
            "af_records_received_total",
            "Records acknowledged, by source.",
            "source",
            &self.received,
        );
        counter(
            &mut s,
            "af_records_rejected_total",
            "Records refused, by reason.",
            "reason",
            &self.rejected,
        );
        counter(
            &mut s,
            "af_requests_refused_total",
            "Whole requests refused, by reason.",
            "reason",
            &self.requests_refused,
        );
        let _ = writeln!(
            s,
            "# HELP af_records_not_http_total Records that were not HTTP exchanges (counted, not refused).\n# TYPE af_records_not_http_total counter\naf_records_not_http_total {}",
            self.not_http.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP af_records_late_total Records that arrived after their window closed (stored, not analysed).\n# TYPE af_records_late_total counter\naf_records_late_total {}",
            self.late.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP af_windows_processed_total Windows analysed.\n# TYPE af_windows_processed_total counter\naf_windows_processed_total {}",
            self.windows.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP af_windows_backlog Windows closed and not yet analysed.\n# TYPE af_windows_backlog gauge\naf_windows_backlog {}",
            self.backlog.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP af_window_analysis_errors_total Window analyses that failed.\n# TYPE af_window_analysis_errors_total counter\naf_window_analysis_errors_total {}",
            self.analysis_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP af_findings Findings in the ledger, by kind and state.\n# TYPE af_findings gauge"
        );
        for (kind, state, n) in findings {
            let _ = writeln!(s, "af_findings{{kind=\"{kind}\",state=\"{state}\"}} {n}");
        }
        let l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            s,
            "# HELP af_window_processing_seconds Time to analyse a closed window.\n# TYPE af_window_processing_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "af_window_processing_seconds_bucket{{le=\"{b}\"}} {}",
                l.0.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            s,
            "af_window_processing_seconds_bucket{{le=\"+Inf\"}} {}\naf_window_processing_seconds_sum {}\naf_window_processing_seconds_count {}",
            l.2, l.1, l.2
        );
        s
    }
}
