//! `af mock` (serve a capture) and the mock options shared with `af measure`.

use std::path::PathBuf;

use af_mock::{Failures, Journal, LimitRule, Mock, MockConfig, Unmatched};
use af_snapshot::{Exchange, ReadOptions, read_path};

use crate::args::{MockArgs, MockOptions};
use crate::exit::{self, UsageError};

/// The mock configuration the options describe; `measuring` picks the measuring defaults.
pub(super) fn mock_config(
    o: &MockOptions,
    measuring: bool,
    recorded: &[Exchange],
) -> Result<MockConfig, UsageError> {
    let mut limits = Vec::new();
    for l in &o.limits {
        if l == "auto" {
            limits.extend(auto_limits(recorded, o)?);
        } else {
            limits.push(l.parse::<LimitRule>().map_err(|e| UsageError(format!("--limit: {e}")))?);
        }
    }
    o.analysis
        .caller_key
        .parse::<af_snapshot::CallerSpec>()
        .map_err(|e| UsageError(format!("--caller-key: {e}")))?;
    // `--template`s and an OpenAPI document's, written out: the harness holds every template
    // it used, so its hash changes when the document does.
    let templates =
        o.analysis.explicit_templates()?.iter().map(|p| p.as_str().to_owned()).collect();
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
        templates,
        max_body: o.max_body,
    })
}

/// `--limit auto`: the limits the analysis' limit model infers from the capture — a concurrency
/// or rate bound per endpoint (and per caller when callers are known), at the inferred bound.
fn auto_limits(recorded: &[Exchange], o: &MockOptions) -> Result<Vec<LimitRule>, UsageError> {
    use af_analyze::{Capture, Detector, detectors::LimitModel};
    let templater =
        af_snapshot::Templater::new(o.analysis.explicit_templates()?).learning_from(recorded);
    let caller: af_snapshot::CallerSpec = o.analysis.caller_key.parse().map_err(UsageError)?;
    let cap = Capture::from_exchanges(recorded, &templater, &caller);
    let mut rules = Vec::new();
    for f in LimitModel.detect(&cap) {
        let (Some(endpoint), Some(bound)) =
            (f.endpoint.as_deref(), f.details.get("bound").filter(|b| !b.is_null()))
        else {
            continue;
        };
        let per = if f.details["per"] == "caller" { " per caller" } else { "" };
        let low = bound["low"].as_u64().unwrap_or(1).max(1);
        let text = match bound["kind"].as_str() {
            Some("concurrency") => format!("{endpoint}: inflight<={low}{per}"),
            Some("rate") => format!("{endpoint}: rate<={low}/s{per}"),
            _ => continue,
        };
        eprintln!(
            "af: --limit auto → '{text}' ({})",
            f.details["confidence_label"].as_str().unwrap_or("?")
        );
        rules.push(text.parse::<LimitRule>().map_err(UsageError)?);
    }
    if rules.is_empty() {
        return Err(UsageError(
            "--limit auto: the capture shows no load-related limit to emulate (see `af inspect`)"
                .into(),
        ));
    }
    Ok(rules)
}

/// TLS for `--tls` and CONNECT interception for `--proxy`, from the local CA.
pub(super) fn serve_options(o: &MockOptions, tls: bool) -> anyhow::Result<af_mock::ServeOptions> {
    if !tls && !o.proxy {
        return Ok(af_mock::ServeOptions::default());
    }
    let ca = super::ca::load(o.ca_dir.as_deref())?;
    let cfg = std::sync::Arc::new(ca.server_config(&[b"h2", b"http/1.1"])?);
    Ok(af_mock::ServeOptions { tls: tls.then(|| cfg.clone()), intercept: o.proxy.then_some(cfg) })
}

/// Reads the snapshots with bodies (the mock serves them).
pub(super) fn load_recorded(paths: &[PathBuf], lenient: bool) -> anyhow::Result<Vec<Exchange>> {
    let mut v = Vec::new();
    for p in paths {
        let s =
            read_path(p, ReadOptions { lenient, ..ReadOptions::default() }, &mut |e| v.push(e))?;
        eprint!("{}", crate::render::read_notes(&s));
        super::warn_skipped(&s);
    }
    Ok(v)
}

pub fn run(a: &MockArgs) -> anyhow::Result<i32> {
    let recorded = load_recorded(&a.snapshots, a.mock.analysis.read.lenient)?;
    let cfg = mock_config(&a.mock, false, &recorded)?;
    let journal = a.journal.as_deref().map(Journal::create).transpose()?;
    let mock = Mock::new(&recorded, cfg, journal).map_err(|e| UsageError(e.to_string()))?;
    if mock.catalog().is_empty() {
        return Err(
            UsageError("the snapshot has no exchange with a response to serve".into()).into()
        );
    }
    let tls = serve_options(&a.mock, a.tls)?;
    let scheme = if a.tls { "https" } else { "http" };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let ip: std::net::IpAddr = a.host.parse().map_err(|_| UsageError(format!("--host {:?}: not an IP address", a.host)))?;
        let listener = af_mock::bind((ip, a.port).into())?;
        let addr = listener.local_addr()?;
        eprintln!(
            "af mock: serving {} recorded responses on {scheme}://{addr} (metrics: {scheme}://{addr}/__af/metrics{}{}); Ctrl-C stops",
            mock.catalog().len(),
            if a.mock.proxy { "; forward proxy with CONNECT interception" } else { "" },
            a.journal.as_ref().map(|j| format!(", journal: {}", j.display())).unwrap_or_default()
        );
        if mock.catalog().incomplete_bodies > 0 {
            eprintln!(
                "af mock: {} recorded response bodies were not kept whole by the capture; they are served as kept (journal tag af.body_incomplete)",
                mock.catalog().incomplete_bodies
            );
        }
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
        af_mock::serve_with(listener, mock.clone(), tls, shutdown).await?;
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
    if let (Some(dir), Some(journal)) = (&a.report_dir, &a.journal) {
        let n = write_report_dir(journal, dir)?;
        eprintln!("af mock: wrote {n} proxymock-style files to {}", dir.display());
    }
    Ok(exit::OK)
}

/// One proxymock markdown file per journaled request.
fn write_report_dir(journal: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<usize> {
    use af_snapshot::formats::proxymock::{markdown_file_name, write_markdown};
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    let mut failed = None;
    read_path(journal, ReadOptions::default(), &mut |ex| {
        if failed.is_none()
            && let Err(e) = std::fs::write(dir.join(markdown_file_name(&ex)), write_markdown(&ex))
        {
            failed = Some(e);
        }
        n += 1;
    })?;
    match failed {
        Some(e) => Err(anyhow::Error::new(e).context(format!("cannot write to {}", dir.display()))),
        None => Ok(n),
    }
}
