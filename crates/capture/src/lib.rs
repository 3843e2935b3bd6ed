//! `af-capture`: the recording proxy behind `af record`.
//!
//! A [`Recorder`] forwards requests — as a reverse proxy in front of one upstream, or as a
//! forward proxy (`HTTP_PROXY`/`HTTPS_PROXY`) with `CONNECT` tunnels intercepted by the local CA —
//! streaming both bodies through while keeping up to `max_body` bytes of each, and hands every
//! finished exchange to a [`af_snapshot::BackgroundWriter`] (one flushed line each). Upstream
//! failures are recorded as transport errors and answered 502; credentials are redacted before
//! anything is stored unless asked otherwise.

#![warn(missing_docs)]

mod prefixed;
mod proxy;
mod tee;

pub use proxy::{Recorder, RecorderConfig, Route, client_tls, serve};
pub use tee::{Captured, Tee};
