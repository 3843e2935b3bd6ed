//! `af-measure`: run a program against the mock and measure what it does to the upstream.
//!
//! Main types: [`HarnessSpec`] (what ran; its [`HarnessSpec::hash`] proves a confirm run used the
//! identical harness), [`measure`] (the runs), [`MeasureResult`] (values, min/median/max, checks).
//! Metrics are computed from each run's arrival journal with `af-analyze`'s definitions, the same
//! code that measures snapshots.

#![warn(missing_docs)]

pub mod child;
mod result;
mod run;
mod spec;

pub use result::{MeasureResult, MetricSummary, RunResult};
pub use run::{
    Echo, MeasureError, Proxy, is_credential, measure, measure_in, metric_values, parse_timeout_ms,
};
pub use spec::{Driver, HARNESS_FORMAT, HarnessSpec, digest_files};
