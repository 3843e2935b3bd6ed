//! `af-analyze`: what captured traffic says, as plain functions over [`af_snapshot::Exchange`]s.
//!
//! Main types: [`Stats`] accumulates the per-endpoint table ([`StatsTable`]) that `af inspect`
//! prints; [`Filter`] selects exchanges. Accumulators are per thread and merge, so a capture of
//! millions of exchanges is read in parallel with memory bounded by the number of rows.
//!
//! ```
//! use af_analyze::{Stats, StatsConfig, GroupBy};
//! # use af_snapshot::*;
//! # let ex = Exchange { id: ExchangeId::new("a1"), service: None, direction: Direction::Outbound,
//! #   conn_id: None, caller: None,
//! #   request: Request { method: "GET".into(), url: "https://api.test/users/7".into(),
//! #     http_version: None, headers: vec![], body: None },
//! #   response: Some(Response { status: 429, status_text: None, http_version: None,
//! #     headers: vec![], body: None }),
//! #   error: None, timing: Timing::new(Timestamp::from_nanos(0), Some(2_000_000)), tags: Tags::new() };
//! let cfg = StatsConfig::default();
//! let mut stats = Stats::default();
//! stats.add(&cfg, &ex);
//! let table = stats.table(&cfg);
//! assert_eq!(table.group_by, GroupBy::Endpoint);
//! assert_eq!(table.endpoints[0].endpoint, "GET /users/{id}");
//! assert_eq!(table.totals.errors, 1);
//! ```

#![warn(missing_docs)]

mod capture;
pub mod concurrency;
pub mod detectors;
mod diff;
mod filter;
mod finding;
mod metric;
mod stats;

pub use capture::{Call, Capture, CaptureBuilder, Endpoint, Outcome};
pub use detectors::{Detector, analyze, default_detectors, rank};
pub use diff::{Diff, DiffRow, Pair, diff};
pub use filter::{Filter, StatusSel, parse_status_list};
pub use finding::{Finding, Remedy, Severity};
pub use metric::{Check, Metric, MetricName, NoCalls, Op, Per, parse_duration_ns};
pub use stats::{Counts, EndpointStats, GroupBy, Latency, Span, Stats, StatsConfig, StatsTable};
