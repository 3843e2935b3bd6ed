//! `af mock`: serve a capture.

use af_mock::{Journal, Mock};
use af_snapshot::{ReadOptions, read_path};

use super::common::{load_recorded, mock_config, serve_options};
use crate::args::MockArgs;
use crate::exit::{self, UsageError};

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
