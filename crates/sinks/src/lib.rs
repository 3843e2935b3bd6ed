//! Agent Factory's sinks: where a job's outcome goes beyond the ledger.
//!
//! - [`Forge`]: GitHub and GitLab through their REST APIs — an issue per fingerprint (found again
//!   by a hidden marker), a pull/merge request per fix branch (found again by its branch),
//!   comments once per key, close and reopen.
//! - [`Webhook`]: a JSON event signed with HMAC-SHA256 for everything else.
//!
//! Every failure is a [`SinkError`] saying whether a retry can help and after how long; tokens
//! are read from the environment and never appear in an error, a log line or a file.

mod forge;
mod http;
mod webhook;

pub use forge::{Effect, Forge, ForgeKind, IssueRef, LABEL, PullRef, comment_marker, issue_marker};
pub use http::SinkError;
pub use webhook::{Webhook, signature, verify_signature};
