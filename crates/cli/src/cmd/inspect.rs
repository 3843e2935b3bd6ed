//! `af inspect`: read captures, count per endpoint, print a table or JSON.

use std::io::{IsTerminal, Write};

use af_analyze::{Filter, GroupBy, Stats, StatsConfig, parse_status_list};
use af_snapshot::{Bodies, CallerSpec, PathPattern, ReadOptions, Templater, Timestamp, fold_paths};

use crate::args::{By, InspectArgs};
use crate::exit::{self, UsageError};
use crate::output::{Filters, INSPECT_SCHEMA, InspectOutput, ReadInfo, Source};

fn time_arg(flag: &str, v: Option<&String>) -> Result<Option<Timestamp>, UsageError> {
    v.map(|s| {
        Timestamp::parse(s).map_err(|e| UsageError(format!("{flag}: invalid RFC 3339 time {e}")))
    })
    .transpose()
}

/// Validated configuration from the arguments.
fn config(a: &InspectArgs) -> Result<StatsConfig, UsageError> {
    let patterns = a
        .templates
        .iter()
        .map(|t| PathPattern::parse(t).map_err(|e| UsageError(format!("--template: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let status = match &a.status {
        Some(s) => parse_status_list(s).map_err(|e| UsageError(format!("--status: {e}")))?,
        None => Vec::new(),
    };
    Ok(StatsConfig {
        templater: Templater::new(patterns),
        caller: a
            .caller_key
            .parse::<CallerSpec>()
            .map_err(|e| UsageError(format!("--caller-key: {e}")))?,
        group_by: match a.by {
            By::Endpoint => GroupBy::Endpoint,
            By::Caller => GroupBy::Caller,
        },
        filter: Filter {
            endpoint: a.endpoint.clone(),
            status,
            since: time_arg("--since", a.since.as_ref())?,
            until: time_arg("--until", a.until.as_ref())?,
        },
    })
}

pub fn run(a: &InspectArgs) -> anyhow::Result<i32> {
    let cfg = config(a)?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Statistics never look at bodies: skip their bytes.
    let opts = ReadOptions { lenient: a.read.lenient, bodies: Bodies::Elide };
    let (parts, summary) =
        fold_paths(&a.snapshots, opts, threads, &Stats::default, &|s: &mut Stats, ex| {
            s.add(&cfg, &ex)
        })?;
    let mut stats = Stats::default();
    for p in parts {
        stats.merge(p);
    }
    let table = stats.table(cfg.group_by);
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = InspectOutput {
            schema: INSPECT_SCHEMA.into(),
            sources: summary
                .files
                .iter()
                .map(|(p, f)| Source { path: p.display().to_string(), format: f.to_string() })
                .collect(),
            read: ReadInfo {
                exchanges: summary.exchanges,
                skipped: summary.skipped,
                errors: summary.errors.iter().map(ToString::to_string).collect(),
                truncated_tails: summary.truncated_tails.iter().map(ToString::to_string).collect(),
            },
            filters: Filters {
                endpoint: a.endpoint.clone(),
                status: a.status.clone(),
                since: a.since.clone(),
                until: a.until.clone(),
            },
            table,
        };
        // Serialize first: a write error (closed pipe) then stays an io::Error.
        let mut text = serde_json::to_vec_pretty(&doc)?;
        text.push(b'\n');
        out.write_all(&text)?;
    } else {
        let text = crate::render::inspect(
            &table,
            &summary,
            a.by == By::Caller,
            std::io::stdout().is_terminal(),
        );
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    super::warn_skipped(&summary);
    Ok(exit::OK)
}
