//! Live counters for `GET /__af/metrics`: JSON, or Prometheus text exposition.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters updated on the request path (atomics, one short lock per request).
#[derive(Debug, Default)]
pub struct Live {
    requests: AtomicU64,
    inflight: AtomicU64,
    peak: AtomicU64,
    misses: AtomicU64,
    limited: AtomicU64,
    too_large: AtomicU64,
    per_endpoint: Mutex<BTreeMap<String, EndpointCounts>>,
}

/// Counts for one endpoint.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EndpointCounts {
    /// Requests answered.
    pub requests: u64,
    /// By status sent.
    pub status: BTreeMap<u16, u64>,
}

/// A snapshot of the counters.
#[derive(Debug, Serialize)]
pub struct LiveSnapshot {
    /// Requests received.
    pub requests: u64,
    /// In flight now.
    pub inflight: u64,
    /// Peak in flight.
    pub peak_inflight: u64,
    /// Requests no recording matched.
    pub misses: u64,
    /// Requests answered 429 by an emulated limit.
    pub limited: u64,
    /// Requests whose body exceeded the cap (413).
    pub too_large: u64,
    /// Per endpoint (`METHOD template`).
    pub endpoints: BTreeMap<String, EndpointCounts>,
}

impl Live {
    /// A request arrived: returns the number in flight including it.
    pub fn arrive(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let now = self.inflight.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(now, Ordering::AcqRel);
        now
    }

    /// A request finished.
    pub fn leave(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts the answer.
    pub fn answered(
        &self,
        endpoint: &str,
        status: u16,
        miss: bool,
        limited: bool,
        too_large: bool,
    ) {
        if miss {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        if limited {
            self.limited.fetch_add(1, Ordering::Relaxed);
        }
        if too_large {
            self.too_large.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut m) = self.per_endpoint.lock() {
            let e = m.entry(endpoint.to_owned()).or_default();
            e.requests += 1;
            *e.status.entry(status).or_default() += 1;
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            inflight: self.inflight.load(Ordering::Relaxed),
            peak_inflight: self.peak.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
            endpoints: self.per_endpoint.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

impl LiveSnapshot {
    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        for (name, help, v) in [
            ("af_mock_requests_total", "Requests received.", self.requests),
            ("af_mock_inflight", "Requests in flight now.", self.inflight),
            ("af_mock_peak_inflight", "Peak requests in flight.", self.peak_inflight),
            ("af_mock_misses_total", "Requests no recording matched.", self.misses),
            ("af_mock_limited_total", "Requests answered 429 by an emulated limit.", self.limited),
            ("af_mock_too_large_total", "Requests whose body exceeded the cap.", self.too_large),
        ] {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
        }
        s.push_str("# HELP af_mock_endpoint_responses_total Responses by endpoint and status.\n# TYPE af_mock_endpoint_responses_total counter\n");
        for (ep, c) in &self.endpoints {
            let ep = ep.replace('\\', "\\\\").replace('"', "\\\"");
            for (status, n) in &c.status {
                s.push_str(&format!("af_mock_endpoint_responses_total{{endpoint=\"{ep}\",status=\"{status}\"}} {n}\n"));
            }
        }
        s
    }
}
