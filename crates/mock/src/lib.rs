//! `af-mock`: the instrumented replay server.
//!
//! Main types: [`Mock`] (catalog of recorded responses, emulated limits, live counters, arrival
//! [`Journal`]), configured by [`MockConfig`]; [`serve`] binds it to a listener. The service is a
//! plain async function ([`Mock::handle`]), so tests can call it without a socket.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use af_mock::{Mock, MockConfig};
//! use http_body_util::{BodyExt, Full};
//! let recorded = vec![af_testkit::ex("GET", "https://api.test/users/7").status(200).build()];
//! let mock = Mock::new(&recorded, MockConfig::default(), None).unwrap();
//! let req = http::Request::get("/users/8").header("host", "api.test").body(Full::new(bytes::Bytes::new())).unwrap();
//! let resp = mock.clone().handle(req).await.unwrap();
//! assert_eq!(resp.status(), 200); // same template, /users/{id}
//! # });
//! ```

#![warn(missing_docs)]

mod catalog;
mod config;
mod limits;
mod live;
mod server;

/// The arrival journal: a native snapshot written in the background.
pub use af_snapshot::BackgroundWriter as Journal;
pub use catalog::{Catalog, Match, Recorded, signature};
pub use config::{Failures, Latency, LimitKind, LimitRule, MockConfig, Unmatched};
pub use live::{Live, LiveSnapshot};
pub use server::{Mock, MockError, ServeOptions, Tracked, bind, serve, serve_with};
