//! `af measure`: the harness as a one-liner for any program.

use std::io::{IsTerminal, Write};

use af_measure::{Echo, HarnessSpec, digest_files, measure, parse_timeout_ms};

use super::common::{load_recorded, mock_config};
use crate::args::MeasureArgs;
use crate::exit::{self, UsageError};

pub fn run(a: &MeasureArgs) -> anyhow::Result<i32> {
    if a.runs == 0 {
        return Err(UsageError("--runs must be at least 1".into()).into());
    }
    let timeout_ms =
        parse_timeout_ms(&a.timeout).map_err(|e| UsageError(format!("--timeout: {e}")))?;
    let recorded = load_recorded(std::slice::from_ref(&a.snapshot), a.mock.analysis.read.lenient)?;
    let cfg = mock_config(&a.mock, true, &recorded)?;
    // Canonical metric text, so equivalent spellings give the same harness hash.
    let metrics = a
        .metrics
        .iter()
        .map(|m| {
            m.parse::<af_analyze::Metric>()
                .map(|m| m.to_string())
                .map_err(|e| UsageError(format!("--metric {m:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = HarnessSpec {
        format: af_measure::HARNESS_FORMAT.into(),
        snapshot_digest: digest_files(&[a.snapshot.as_path()])
            .map_err(|e| UsageError(format!("{}: {e}", a.snapshot.display())))?,
        mock: cfg,
        command: a.command.clone(),
        url_env: a.url_env.clone(),
        timeout_ms,
        runs: a.runs,
        metrics,
        expect: a.expect.iter().map(|e| e.trim().to_owned()).collect(),
        keep_env: a.keep_env,
        proxy: a.mock.proxy,
        parallel: a.parallel,
        driver: None,
    };
    let proxy = if a.mock.proxy {
        let ca = super::common::load_ca(a.mock.ca_dir.as_deref())?;
        Some(af_measure::Proxy {
            intercept: std::sync::Arc::new(ca.server_config(&[b"h2", b"http/1.1"])?),
            ca_env: ca.client_env(),
        })
    } else {
        None
    };
    let temp;
    let out_dir = match &a.out_dir {
        Some(d) => d.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("af-measure-{}", std::process::id()));
            temp
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let echo = if a.quiet { Echo::Quiet } else { Echo::Prefixed };
    let result = rt.block_on(measure(&spec, &recorded, &out_dir, echo, proxy.as_ref())).map_err(
        |e| match e {
            af_measure::MeasureError::Spec(m) => anyhow::Error::new(UsageError(m)),
            other => anyhow::Error::new(other),
        },
    )?;
    let json = serde_json::to_vec_pretty(&result)?;
    if let Some(p) = &a.result {
        std::fs::write(p, [json.as_slice(), b"\n"].concat())?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        out.write_all(&json)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(crate::render::measure(&result, std::io::stdout().is_terminal()).as_bytes())?;
    }
    out.flush()?;
    Ok(if result.passed { exit::OK } else { exit::CHECK_FAILED })
}
