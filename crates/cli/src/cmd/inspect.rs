//! `af inspect`: read captures, count per endpoint, print a table or JSON.

use std::io::{IsTerminal, Write};

use af_analyze::{
    CaptureBuilder, Filter, GroupBy, Stats, StatsConfig, analyze, default_detectors,
    parse_status_list,
};
use af_snapshot::{Bodies, CallerSpec, PathSet, ReadOptions, Templater, Timestamp, fold_paths};

use crate::args::{AnalysisArgs, By, InspectArgs};
use crate::exit::{self, UsageError};
use crate::output::{Filters, INSPECT_SCHEMA, InspectOutput, ReadInfo, Source};

fn time_arg(flag: &str, v: Option<&String>) -> Result<Option<Timestamp>, UsageError> {
    v.map(|s| {
        Timestamp::parse(s).map_err(|e| UsageError(format!("{flag}: invalid RFC 3339 time {e}")))
    })
    .transpose()
}

/// Validated configuration from the arguments.
pub(super) fn config(a: &AnalysisArgs, by: By, filter: Filter) -> Result<StatsConfig, UsageError> {
    Ok(StatsConfig {
        templater: Templater::new(a.explicit_templates()?),
        caller: a
            .caller_key
            .parse::<CallerSpec>()
            .map_err(|e| UsageError(format!("--caller-key: {e}")))?,
        group_by: match by {
            By::Endpoint => GroupBy::Endpoint,
            By::Caller => GroupBy::Caller,
        },
        filter,
    })
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

/// With `AF_TIMINGS=1`, how long a phase took, on stderr (for benchmarks and profiling).
fn timing(phase: &str, since: std::time::Instant) {
    if std::env::var_os("AF_TIMINGS").is_some() {
        eprintln!("timing: {phase} {:.3} s", since.elapsed().as_secs_f64());
    }
}

/// What each reader thread accumulates: rows and calls under provisional keys, and the paths
/// that decide the templates.
#[derive(Default)]
struct Acc {
    stats: Stats,
    capture: CaptureBuilder,
    paths: PathSet,
}

/// A capture read once, before its templates are known.
pub(super) struct Read {
    stats: Stats,
    capture: CaptureBuilder,
    /// The capture's paths: learn templates from them (with another capture's, for a diff).
    pub paths: PathSet,
    pub summary: af_snapshot::ReadSummary,
}

/// A capture read once into its table and (when wanted) its analysis input.
pub(super) struct Loaded {
    pub table: af_analyze::StatsTable,
    pub capture: af_analyze::Capture,
    pub summary: af_snapshot::ReadSummary,
}

/// Reads `paths` in parallel into per-key counts and calls.
pub(super) fn read(
    paths: &[std::path::PathBuf],
    cfg: &StatsConfig,
    a: &AnalysisArgs,
    capture: bool,
) -> anyhow::Result<Read> {
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Statistics never look at bodies: skip their bytes (a digest is kept for retry detection).
    let opts = ReadOptions { lenient: a.read.lenient, bodies: Bodies::Elide };
    let (parts, summary) =
        fold_paths(paths, opts, threads, &Acc::default, &|acc: &mut Acc, ex| {
            let url = ex.url_parts();
            // Every exchange teaches the templates, whatever the filters select.
            let key = acc.paths.key(url.host(), url.path);
            if acc.stats.add_keyed(cfg, &ex, &key) && capture {
                acc.capture.add_keyed(&ex, &key, &cfg.caller);
            }
        })?;
    let mut read = Read {
        stats: Stats::default(),
        capture: CaptureBuilder::default(),
        paths: PathSet::default(),
        summary,
    };
    for p in parts {
        read.stats.merge(p.stats);
        read.capture.merge(p.capture);
        read.paths.merge(p.paths);
    }
    Ok(read)
}

impl Read {
    /// The table and capture under the templates `cfg.templater` knows (explicit and learned);
    /// the endpoint filter applies to both, so findings look at what the table shows.
    pub(super) fn finish(self, cfg: &StatsConfig) -> Loaded {
        let capture = self
            .capture
            .finish()
            .retemplate(&cfg.templater, |e| cfg.filter.keeps_endpoint(&e.method, &e.template));
        Loaded { table: self.stats.table(cfg), capture, summary: self.summary }
    }
}

/// `cfg` with the templates learned from `paths` added.
pub(super) fn learned(cfg: &StatsConfig, paths: &PathSet) -> StatsConfig {
    StatsConfig { templater: cfg.templater.clone().with_learned(paths.learn()), ..cfg.clone() }
}

/// Reads `paths` and templates them by what they teach.
pub(super) fn load(
    paths: &[std::path::PathBuf],
    cfg: &StatsConfig,
    a: &AnalysisArgs,
    capture: bool,
) -> anyhow::Result<Loaded> {
    let r = read(paths, cfg, a, capture)?;
    let cfg = learned(cfg, &r.paths);
    Ok(r.finish(&cfg))
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
    super::warn_skipped(&summary);
    Ok(exit::OK)
}
