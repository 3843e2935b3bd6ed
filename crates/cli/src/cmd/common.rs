//! What several verbs share: reading captures into tables and analysis input (inspect, diff,
//! record), the mock's options (mock, measure), the local CA (ca, mock, record), the lenient
//! read's warning. Nothing here knows a verb.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use af_analyze::{CaptureBuilder, Filter, GroupBy, Stats, StatsConfig};
use af_ca::Ca;
use af_mock::{Failures, LimitRule, MockConfig};
use af_snapshot::{Bodies, Exchange, PathSet, ReadOptions, Templater, fold_paths, read_path};

use crate::args::{AnalysisArgs, By, FailuresMode, MockOptions};
use crate::exit::UsageError;

/// Lenient-mode report on stderr: how many records were skipped and the first reasons.
pub fn warn_skipped(summary: &af_snapshot::ReadSummary) {
    if summary.skipped == 0 {
        return;
    }
    eprintln!(
        "warning: skipped {} bad record{} (--lenient); first:",
        summary.skipped,
        if summary.skipped == 1 { "" } else { "s" }
    );
    for e in summary.errors.iter().take(5) {
        eprintln!("  {e}");
    }
    if summary.skipped > 5 {
        eprintln!("  … and {} more", summary.skipped - 5);
    }
}

/// Loads (or creates) the CA in `dir`, saying so on stderr when it is new.
pub fn load_ca(dir: Option<&Path>) -> anyhow::Result<Arc<Ca>> {
    let dir = dir.map_or_else(af_ca::default_dir, Path::to_owned);
    let (ca, created) = Ca::load_or_create(&dir)?;
    if created {
        eprintln!(
            "af: created a local CA in {} (key {} is mode 0600)",
            dir.display(),
            ca.key_path().display()
        );
    }
    Ok(Arc::new(ca))
}

/// Validated configuration from the arguments.
pub fn config(a: &AnalysisArgs, by: By, filter: Filter) -> Result<StatsConfig, UsageError> {
    Ok(StatsConfig {
        templater: Templater::new(a.explicit_templates()?),
        caller: a.caller_key.clone(),
        group_by: match by {
            By::Endpoint => GroupBy::Endpoint,
            By::Caller => GroupBy::Caller,
        },
        filter,
    })
}

/// With `AF_TIMINGS=1`, how long a phase took, on stderr (for benchmarks and profiling).
pub fn timing(phase: &str, since: std::time::Instant) {
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
pub struct Read {
    stats: Stats,
    capture: CaptureBuilder,
    /// The capture's paths: learn templates from them (with another capture's, for a diff).
    pub paths: PathSet,
    pub summary: af_snapshot::ReadSummary,
}

/// A capture read once into its table and (when wanted) its analysis input.
pub struct Loaded {
    pub table: af_analyze::StatsTable,
    pub capture: af_analyze::Capture,
    pub summary: af_snapshot::ReadSummary,
}

/// Reads `paths` in parallel into per-key counts and calls.
pub fn read(
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
    pub fn finish(self, cfg: &StatsConfig) -> Loaded {
        let capture = self
            .capture
            .finish()
            .retemplate(&cfg.templater, |e| cfg.filter.keeps_endpoint(&e.method, &e.template));
        Loaded { table: self.stats.table(cfg), capture, summary: self.summary }
    }
}

/// `cfg` with the templates learned from `paths` added.
pub fn learned(cfg: &StatsConfig, paths: &PathSet) -> StatsConfig {
    StatsConfig { templater: cfg.templater.clone().with_learned(paths.learn()), ..cfg.clone() }
}

/// Reads `paths` and templates them by what they teach.
pub fn load(
    paths: &[std::path::PathBuf],
    cfg: &StatsConfig,
    a: &AnalysisArgs,
    capture: bool,
) -> anyhow::Result<Loaded> {
    let r = read(paths, cfg, a, capture)?;
    let cfg = learned(cfg, &r.paths);
    Ok(r.finish(&cfg))
}

/// The mock configuration the options describe; `measuring` picks the measuring defaults.
pub fn mock_config(
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
    // `--template`s and an OpenAPI document's, written out: the harness holds every template
    // it used, so its hash changes when the document does.
    let templates =
        o.analysis.explicit_templates()?.iter().map(|p| p.as_str().to_owned()).collect();
    Ok(MockConfig {
        unmatched: o.unmatched.into(),
        failures: match (o.failures, measuring) {
            (Some(FailuresMode::Replay), _) | (None, false) => Failures::Replay,
            (Some(FailuresMode::Skip), _) | (None, true) => Failures::Skip,
        },
        latency: o.latency,
        limits,
        // The harness keeps the spec as text (its hash is over what was written).
        caller_key: o.analysis.caller_key.to_string(),
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
    let caller = o.analysis.caller_key.clone();
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
pub fn serve_options(o: &MockOptions, tls: bool) -> anyhow::Result<af_mock::ServeOptions> {
    if !tls && !o.proxy {
        return Ok(af_mock::ServeOptions::default());
    }
    let ca = load_ca(o.ca_dir.as_deref())?;
    let cfg = std::sync::Arc::new(ca.server_config(&[b"h2", b"http/1.1"])?);
    Ok(af_mock::ServeOptions { tls: tls.then(|| cfg.clone()), intercept: o.proxy.then_some(cfg) })
}

/// Reads the snapshots with bodies (the mock serves them).
pub fn load_recorded(paths: &[PathBuf], lenient: bool) -> anyhow::Result<Vec<Exchange>> {
    let mut v = Vec::new();
    for p in paths {
        let s =
            read_path(p, ReadOptions { lenient, ..ReadOptions::default() }, &mut |e| v.push(e))?;
        eprint!("{}", crate::render::read_notes(&s));
        warn_skipped(&s);
    }
    Ok(v)
}
