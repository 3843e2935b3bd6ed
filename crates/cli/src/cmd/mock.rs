//! `af mock` (serve a capture) and the mock options shared with `af measure`.

use std::path::PathBuf;

use af_mock::{Failures, Journal, LimitRule, Mock, MockConfig, Unmatched};
use af_snapshot::{Exchange, ReadOptions, read_path};

use crate::args::{MockArgs, MockOptions};
use crate::exit::{self, UsageError};

/// The mock configuration the options describe; `measuring` picks the measuring defaults.
pub(super) fn mock_config(o: &MockOptions, measuring: bool) -> Result<MockConfig, UsageError> {
    let limits = o
        .limits
        .iter()
        .map(|l| l.parse::<LimitRule>().map_err(|e| UsageError(format!("--limit: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    o.analysis
        .caller_key
        .parse::<af_snapshot::CallerSpec>()
        .map_err(|e| UsageError(format!("--caller-key: {e}")))?;
    for t in &o.analysis.templates {
        af_snapshot::PathPattern::parse(t).map_err(|e| UsageError(format!("--template: {e}")))?;
    }
    Ok(MockConfig {
        unmatched: match o.unmatched.as_str() {
            "nearest" => Unmatched::Nearest,
            "fail" => Unmatched::Fail,
            _ => Unmatched::NotFound,
        },
        failures: match (o.failures.as_deref(), measuring) {
            (Some("replay"), _) | (None, false) => Failures::Replay,
            _ => Failures::Skip,
        },
        latency: o.latency.parse().map_err(|e| UsageError(format!("--latency: {e}")))?,
        limits,
        caller_key: o.analysis.caller_key.clone(),
        templates: o.analysis.templates.clone(),
        max_body: o.max_body,
    })
}

/// Reads the snapshots with bodies (the mock serves them).
pub(super) fn load_recorded(paths: &[PathBuf], lenient: bool) -> anyhow::Result<Vec<Exchange>> {
    let mut v = Vec::new();
    for p in paths {
        let s =
            read_path(p, ReadOptions { lenient, ..ReadOptions::default() }, &mut |e| v.push(e))?;
        super::warn_skipped(&s);
    }
    Ok(v)
}

pub fn run(a: &MockArgs) -> anyhow::Result<i32> {
    let cfg = mock_config(&a.mock, false)?;
    let recorded = load_recorded(&a.snapshots, a.mock.analysis.read.lenient)?;
    let journal = a.journal.as_deref().map(Journal::create).transpose()?;
    let mock = Mock::new(&recorded, cfg, journal).map_err(|e| UsageError(e.to_string()))?;
    if mock.catalog().is_empty() {
        return Err(
            UsageError("the snapshot has no exchange with a response to serve".into()).into()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let ip: std::net::IpAddr = a.host.parse().map_err(|_| UsageError(format!("--host {:?}: not an IP address", a.host)))?;
        let listener = af_mock::bind((ip, a.port).into()).await?;
        let addr = listener.local_addr()?;
        eprintln!(
            "af mock: serving {} recorded responses on http://{addr} (metrics: http://{addr}/__af/metrics{}); Ctrl-C stops",
            mock.catalog().len(),
            a.journal.as_ref().map(|j| format!(", journal: {}", j.display())).unwrap_or_default()
        );
        if mock.catalog().unservable > 0 {
            eprintln!("af mock: {} exchanges without a response (transport errors) cannot be replayed", mock.catalog().unservable);
        }
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        };
        af_mock::serve(listener, mock.clone(), shutdown).await?;
        let s = mock.live().snapshot();
        let written = mock.finish_journal()?;
        eprintln!(
            "af mock: {} requests, peak {} in flight, {} unmatched, {} limited{}",
            s.requests,
            s.peak_inflight,
            s.misses,
            s.limited,
            written.map(|n| format!("; {n} journaled")).unwrap_or_default()
        );
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
