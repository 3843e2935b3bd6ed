//! `af inspect`: read captures, count per endpoint, print a table or JSON.

use std::io::{IsTerminal, Write};

use af_analyze::{Filter, analyze, default_detectors, parse_status_list};
use af_snapshot::Timestamp;

use super::common::{Loaded, config, load, timing};
use crate::args::{By, InspectArgs};
use crate::exit::{self, UsageError};
use crate::output::{Filters, INSPECT_SCHEMA, InspectOutput, ReadInfo, Source};

fn time_arg(flag: &str, v: Option<&String>) -> Result<Option<Timestamp>, UsageError> {
    v.map(|s| {
        Timestamp::parse(s).map_err(|e| UsageError(format!("{flag}: invalid RFC 3339 time {e}")))
    })
    .transpose()
}

fn filter(a: &InspectArgs) -> Result<Filter, UsageError> {
    let status = match &a.status {
        Some(s) => parse_status_list(s).map_err(|e| UsageError(format!("--status: {e}")))?,
        None => Vec::new(),
    };
    Ok(Filter {
        endpoint: a.endpoint.clone(),
        status,
        since: time_arg("--since", a.since.as_ref())?,
        until: time_arg("--until", a.until.as_ref())?,
    })
}

pub fn run(a: &InspectArgs) -> anyhow::Result<i32> {
    let cfg = config(&a.analysis, a.by, filter(a)?)?;
    let findings_on = !a.no_findings;
    let t0 = std::time::Instant::now();
    let Loaded { table, capture, summary } = load(&a.snapshots, &cfg, &a.analysis, findings_on)?;
    timing("read", t0);
    let mut findings = Vec::new();
    if findings_on {
        for d in default_detectors() {
            let t = std::time::Instant::now();
            findings.extend(analyze(&capture, std::slice::from_ref(&d)));
            timing(d.name(), t);
        }
        findings = af_analyze::rank(findings);
    }
    let concurrency = findings_on.then(|| {
        let (endpoints, total) = af_analyze::concurrency::concurrency_table(&capture);
        crate::output::Concurrency { endpoints, total }
    });
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = InspectOutput {
            schema: INSPECT_SCHEMA.into(),
            sources: summary
                .files
                .iter()
                .map(|(p, f)| Source { path: p.display().to_string(), format: f.to_string() })
                .collect(),
            read: ReadInfo::of(&summary),
            filters: Filters {
                endpoint: a.endpoint.clone(),
                status: a.status.clone(),
                since: a.since.clone(),
                until: a.until.clone(),
            },
            table,
            concurrency,
            findings,
        };
        // Serialize first: a write error (closed pipe) then stays an io::Error.
        let mut text = serde_json::to_vec_pretty(&doc)?;
        text.push(b'\n');
        out.write_all(&text)?;
    } else {
        let mut text = crate::render::inspect(
            &table,
            &summary,
            a.by == By::Caller,
            std::io::stdout().is_terminal(),
        );
        if let Some(c) = &concurrency {
            text.push_str(&crate::render::concurrency(c, std::io::stdout().is_terminal()));
        }
        text.push_str(&crate::render::findings(&findings, findings_on, &|ids| {
            capture.short_ids(ids)
        }));
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    super::common::warn_skipped(&summary);
    Ok(exit::OK)
}
