//! `af-snapshot`: the data model of captured HTTP traffic and the file formats that carry it.
//!
//! Main types: [`Exchange`] (one request and its outcome), [`Timestamp`], [`ExchangeId`];
//! reading with [`read_path`] / [`fold_paths`] (any format, detected by content); writing with
//! [`Writer`]. Path templates ([`Templater`]) and callers ([`CallerSpec`]) are part of the model
//! because every later stage groups traffic by them.
//!
//! This crate does no network and no async: it is plain data and files.
//!
//! ```
//! use af_snapshot::{read_all, ReadOptions, Templater};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("capture.jsonl");
//! # std::fs::write(&path, concat!(
//! #   "{\"format\":\"af-snapshot\",\"version\":1}\n",
//! #   "{\"id\":\"a1\",\"request\":{\"method\":\"GET\",\"url\":\"https://api.example.com/users/42\"},",
//! #   "\"response\":{\"status\":429},\"timing\":{\"start\":\"2026-11-20T11:15:04.120Z\",\"duration_ns\":5000000}}\n"
//! # )).unwrap();
//! let (exchanges, summary) = read_all(&path, ReadOptions::default())?;
//! assert_eq!(summary.exchanges, 1);
//! let ex = &exchanges[0];
//! assert_eq!(ex.status(), Some(429));
//! assert_eq!(Templater::default().template(ex.url_parts().path), "/users/{id}");
//! # Ok::<(), af_snapshot::SnapshotError>(())
//! ```

#![warn(missing_docs)]

mod background;
mod caller;
pub mod coding;
mod error;
pub mod formats;
mod id;
mod model;
mod read;
mod sink;
mod template;
mod time;

pub use background::BackgroundWriter;
pub use caller::{CallerSpec, KEY_HEADERS};
pub use error::{Location, RecordError, SnapshotError};
pub use formats::native::NativeWriter;
pub use formats::{Format, FormatKind, OutputFormat, Writer};
pub use id::{ExchangeId, PrefixError, resolve_prefix};
pub use model::{
    Body, BodyData, Direction, ErrorKind, Exchange, Headers, Phases, Request, Response, Tags,
    Timing, TransportError, UrlParts, header,
};
pub use read::{fold_paths, read_all, read_path};
pub use sink::{Bodies, KEPT_ERRORS, ReadOptions, ReadSummary, Warning};
pub use template::{
    Learned, MIN_DISTINCT, OVERFLOW, OpenApiError, PathPattern, PathSet, Templater,
    endpoint_matches, nearest_endpoints, provisional, templates_from_openapi,
};
pub use time::Timestamp;
