//! The Planner (builtin engine): snapshot → finding → metric + threshold → ranked code sites →
//! measured baseline → plan, or an abstention with the evidence.

use std::path::{Path, PathBuf};
use std::time::Instant;

use af_analyze::Remedy;
use af_analyze::{Capture, Check, Finding, analyze, default_detectors};
use af_measure::{
    Echo, HarnessSpec, MeasureResult, MetricSummary, RunResult, digest_files, measure_in,
    parse_timeout_ms,
};
use af_mock::{Failures, MockConfig};
use af_snapshot::{Bodies, CallerSpec, Exchange, ReadOptions, Templater, read_all};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{TargetConfig, split_command};
use crate::format::{fmt_num, fmt_opt, fmt_values};
use crate::localize::{Ranked, rank};
use crate::patterns::{FixKind, builtin_patterns, find_all};
use crate::repo::Repo;
use crate::run_dir;

/// The LLM engine's Planner: the same phase, a model deciding through tools.
pub mod llm;

/// Plan schema id.
pub const PLAN_SCHEMA: &str = "af.plan/1";

/// What the Planner decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The baseline violates the threshold and a site is localized: the Worker can proceed.
    Proceed,
    /// Nothing to fix the builtin way: the finding is not load-related, or the baseline already
    /// meets the threshold. The reason says which, with the numbers.
    Abstain,
    /// The baseline violates the threshold, but no builtin pattern matches the code (an LLM
    /// engine could take it from here).
    NoSite,
}

/// Wall time of one phase.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Phase {
    /// `analyze`, `localize`, `baseline`, …
    pub name: String,
    /// Milliseconds.
    pub ms: f64,
}

/// The finding the plan works on, as the report shows it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ChosenFinding {
    /// `F2`.
    pub id: String,
    /// Detector.
    pub detector: String,
    /// Severity.
    pub severity: String,
    /// `METHOD template`.
    pub endpoint: Option<String>,
    /// Status.
    pub status: Option<u16>,
    /// Plain words, with numbers.
    pub summary: String,
    /// Exchange ids.
    pub evidence: Vec<String>,
    /// Why this finding was chosen.
    pub why: String,
}

/// How the harness is built: stored in the plan so the Worker rebuilds the identical harness
/// (and proves it by hash) instead of trusting a copy.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct HarnessInputs {
    /// The snapshot the mock serves (absolute).
    pub snapshot: PathBuf,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Variables set to the mock's base URL.
    pub url_env: Vec<String>,
    /// Reproduce the upstream's failures (retry storms) instead of serving successes.
    pub replay_failures: bool,
    /// Limits the mock enforces (`GET /a/{id}: rate<=10/s per caller`): the upstream's limit as
    /// the snapshot shows it, so a retry fix is measured against a server that rejects and says
    /// when to come back, as the real one did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Per-run time-out.
    pub timeout_ms: u64,
    /// Runs.
    pub runs: u32,
    /// Metrics (the first is the one the fix must meet).
    pub metrics: Vec<String>,
    /// Expectations, one per metric (empty string: reported only).
    pub expect: Vec<String>,
    /// Who limits are counted for (`auto`, `header:NAME`, `query:NAME`): the same key for the
    /// analysis and the mock.
    #[serde(default = "auto")]
    pub caller_key: String,
    /// Runs at the same time (each with its own mock): the default, since runs share nothing
    /// and the loop's wall time is mostly the program waiting on the mock's latency.
    #[serde(default)]
    pub parallel: bool,
    /// A harness driver in the run directory (written by the LLM Planner when the project has
    /// no program of its own); its digest is part of the harness hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<PathBuf>,
}

fn auto() -> String {
    "auto".into()
}

impl HarnessInputs {
    /// The harness spec these inputs make.
    pub fn spec(&self) -> std::io::Result<HarnessSpec> {
        let limits = self
            .limits
            .iter()
            .map(|l| {
                l.parse().map_err(|e: String| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("limit {l:?}: {e}"),
                    )
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let mock = MockConfig {
            failures: if self.replay_failures { Failures::Replay } else { Failures::Skip },
            caller_key: self.caller_key.clone(),
            limits,
            ..MockConfig::default()
        };
        Ok(HarnessSpec {
            format: af_measure::HARNESS_FORMAT.into(),
            snapshot_digest: digest_files(&[self.snapshot.as_path()])?,
            mock,
            command: self.command.clone(),
            url_env: self.url_env.clone(),
            timeout_ms: self.timeout_ms,
            runs: self.runs,
            metrics: self.metrics.clone(),
            expect: self.expect.clone(),
            keep_env: false,
            proxy: false,
            parallel: self.parallel,
            driver: self.driver.as_deref().map(af_measure::Driver::at).transpose()?,
        })
    }
}

/// A measurement as plans and results keep it: the measure crate's per-metric and per-run
/// records, without the harness spec (the plan keeps that once).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Measured {
    /// Harness hash the runs used.
    pub harness_hash: String,
    /// Every check passed on every run.
    pub passed: bool,
    /// What went wrong in runs.
    pub problems: Vec<String>,
    /// Per metric: every run's value, min/median/max, check.
    pub metrics: Vec<MetricSummary>,
    /// Per run: exit, wall time, requests, journal.
    pub runs: Vec<RunResult>,
    /// Directory with the journals and `result.json`.
    pub dir: String,
    /// What a reader should know that is not a problem (a run measured again alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Measured {
    /// From a measurement written to `dir`.
    pub fn from_result(r: &MeasureResult, dir: &Path) -> Self {
        Self {
            harness_hash: r.harness_hash.clone(),
            passed: r.passed,
            problems: r.problems.clone(),
            metrics: r.metrics.clone(),
            runs: r.runs.clone(),
            dir: dir.display().to_string(),
            notes: r.notes.clone(),
        }
    }

    /// The first (checked) metric.
    pub fn primary(&self) -> Option<&MetricSummary> {
        self.metrics.first()
    }

    /// The first metric's worst-run value, as text (`100`).
    pub fn worst_text(&self) -> String {
        self.primary().map(|m| fmt_opt(m.checked.or(m.max))).unwrap_or_default()
    }
}

/// `plan.json`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Always `af.plan/1`.
    pub schema: String,
    /// Run id.
    pub id: String,
    /// The run directory.
    pub run_dir: String,
    /// `builtin`.
    pub engine: String,
    /// When the plan was made (RFC 3339).
    pub created: String,
    /// Source directory (absolute).
    pub source: String,
    /// The issue text the user gave, if any.
    pub issue: Option<String>,
    /// What the Planner decided.
    pub decision: Decision,
    /// Why, in plain words with the numbers.
    pub reason: String,
    /// The finding worked on.
    pub finding: Option<ChosenFinding>,
    /// Findings tried before it and passed over, with why (no code site matched their fix).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// All findings, one line each (`F1 [high] error-burst: …`).
    pub findings: Vec<String>,
    /// The check a fix must meet: `peak_inflight{…} <= 10`.
    pub metric: Option<String>,
    /// What to bound.
    pub fix_kind: Option<FixKind>,
    /// The threshold as a number.
    pub bound: Option<u32>,
    /// Code sites, best first, with reasons.
    pub sites: Vec<Ranked>,
    /// Files that could not be read (path, reason).
    pub skipped_files: Vec<(String, String)>,
    /// The harness inputs.
    pub harness_inputs: Option<HarnessInputs>,
    /// The harness spec the baseline ran (the confirm must rebuild the identical one).
    pub harness: Option<af_measure::HarnessSpec>,
    /// SHA-256 of the canonical harness spec.
    pub harness_hash: Option<String>,
    /// The baseline measurement.
    pub baseline: Option<Measured>,
    /// Phase timings.
    pub timings: Vec<Phase>,
    /// Test command from `af.toml`.
    pub test_command: Option<Vec<String>>,
    /// Test time-out.
    pub test_timeout_ms: u64,
    /// Tokens the LLM Planner used (as the provider reported them); cost is not computed.
    #[serde(default)]
    pub usage: Option<crate::llm::Usage>,
}

/// Planner inputs.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// The snapshot.
    pub snapshot: PathBuf,
    /// The code.
    pub source: PathBuf,
    /// Program command line (overrides `af.toml`).
    pub run: Option<String>,
    /// URL variable (overrides `af.toml`).
    pub url_env: Option<String>,
    /// Issue text (title and body) naming what to work on.
    pub issue: Option<String>,
    /// Harness runs.
    pub runs: u32,
    /// Where run directories go (default `SOURCE/.af/runs`).
    pub runs_root: Option<PathBuf>,
    /// Copy the program's output to stderr.
    pub echo: Echo,
    /// Run the harness's runs one after another instead of at the same time.
    pub serial: bool,
}

/// What can stop the Planner: [`AgentError`](crate::AgentError).
pub type PlanError = crate::AgentError;

impl Phase {
    /// A phase that started at `t` and ends now.
    pub fn since(name: impl Into<String>, t: Instant) -> Self {
        Self { name: name.into(), ms: t.elapsed().as_secs_f64() * 1000.0 }
    }
}

/// The findings a fix can be measured against (they have a suggested metric), in the order the
/// Planner tries them: the one the issue text names first, then the analysis' ranking (which
/// puts a load before the throttling errors it causes, and those before their retries).
fn candidates<'f>(findings: &'f [Finding], issue: Option<&str>) -> Vec<(&'f Finding, String)> {
    let fixable: Vec<&Finding> = findings.iter().filter(|f| f.suggested_metric.is_some()).collect();
    let mut out: Vec<(&Finding, String)> = Vec::new();
    if let Some(text) = issue {
        let text = text.to_ascii_lowercase();
        let score = |f: &Finding| {
            let mut s = 0;
            if let Some(ep) = &f.endpoint {
                let (_, segs) = crate::localize::endpoint_parts(ep);
                s += segs.iter().filter(|g| text.contains(&g.to_ascii_lowercase())).count();
            }
            if f.status.is_some_and(|st| text.contains(&st.to_string())) {
                s += 2;
            }
            if text.contains(&f.detector) || text.contains(&f.detector.replace('-', " ")) {
                s += 2;
            }
            s
        };
        if let Some(f) = fixable
            .iter()
            .copied()
            .max_by_key(|f| (score(f), std::cmp::Reverse(f.id.clone())))
            .filter(|f| score(f) > 0)
        {
            out.push((f, format!("the issue text names it ({} of its words match)", score(f))));
        }
    }
    for f in fixable {
        if !out.iter().any(|(o, _)| o.id == f.id) {
            let why = if out.is_empty() {
                "the highest-ranked finding with a metric a fix can be measured against".into()
            } else {
                "the next-ranked finding with a metric".into()
            };
            out.push((f, why));
        }
    }
    out
}

/// What a plan that proceeds proposes, all of it: the harness (inputs and hash), the baseline
/// it measured, the metric, the fix kind and its bound. [`Plan::proposal`] has it exactly when
/// the decision is to proceed and every part was recorded.
#[derive(Clone, Copy, Debug)]
pub struct Proposal<'a> {
    /// What rebuilds the harness.
    pub inputs: &'a HarnessInputs,
    /// The hash the baseline ran under.
    pub harness_hash: &'a str,
    /// The baseline measurement.
    pub baseline: &'a Measured,
    /// The check a fix must meet.
    pub metric: &'a str,
    /// What to bound.
    pub fix: FixKind,
    /// The bound.
    pub bound: u32,
}

impl Plan {
    /// The proposal, when the plan proceeds (`None` for an abstention, a plan with no site, or
    /// one missing a part).
    pub fn proposal(&self) -> Option<Proposal<'_>> {
        (self.decision == Decision::Proceed).then_some(())?;
        Some(Proposal {
            inputs: self.harness_inputs.as_ref()?,
            harness_hash: self.harness_hash.as_deref()?,
            baseline: self.baseline.as_ref()?,
            metric: self.metric.as_deref()?,
            fix: self.fix_kind?,
            bound: self.bound?,
        })
    }
}

/// A finding the Planner passed over, and why.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Skipped {
    /// `F1`.
    pub id: String,
    /// Detector.
    pub detector: String,
    /// Why it was not the one worked on.
    pub reason: String,
}

/// The limit the snapshot shows on `endpoint`, as a rule for the mock: what a retry fix is
/// measured against (none when the limit model named none).
fn emulated_limits(findings: &[Finding], endpoint: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.detector == "limit-model" && f.endpoint.as_deref() == Some(endpoint))
        .filter_map(|f| {
            let per = |p: bool| if p { " per caller" } else { "" };
            let est = |v: f64| v.round().max(1.0);
            match f.remedy? {
                Remedy::Rate { per_second: Some(r), per_caller } => {
                    Some(format!("{endpoint}: rate<={}/s{}", est(r), per(per_caller)))
                }
                Remedy::Concurrency { limit: Some(l), per_caller } => {
                    Some(format!("{endpoint}: inflight<={}{}", est(l), per(per_caller)))
                }
                _ => None,
            }
        })
        .take(1)
        .collect()
}

/// The fix kind a finding calls for.
fn kind_of(f: &Finding) -> FixKind {
    match f.remedy {
        Some(Remedy::Retry) => FixKind::Retry,
        Some(Remedy::Rate { .. }) => FixKind::Rate,
        _ => FixKind::Concurrency,
    }
}

fn read_snapshot(path: &Path) -> Result<Vec<Exchange>, PlanError> {
    let (ex, _) = read_all(path, ReadOptions { lenient: false, bodies: Bodies::Keep })
        .map_err(|e| PlanError::Input(e.to_string()))?;
    if ex.is_empty() {
        return Err(PlanError::Input(format!("{}: no exchanges", path.display())));
    }
    Ok(ex)
}

/// What the Planner knows before it measures anything: the inputs, checked; the finding and
/// its metric; the ranked code sites. The plan in it is not written yet.
pub(crate) struct Prepared {
    /// The plan so far.
    pub plan: Plan,
    /// Its run directory (created).
    pub dir: PathBuf,
    /// The snapshot's exchanges.
    pub exchanges: Vec<Exchange>,
    /// The snapshot's templates, learned from it as the harness's mock learns them (the
    /// harness names no explicit ones): one endpoint selector means the same calls in the
    /// snapshot and in every journal.
    pub templater: Templater,
    /// The snapshot (absolute).
    pub snapshot: PathBuf,
    /// The code (absolute).
    pub source: PathBuf,
    /// The program from `--run` / `af.toml`, if there is one.
    pub command: Option<Vec<String>>,
    /// Variables set to the mock's URL.
    pub url_env: Vec<String>,
    timeout_ms: u64,
    caller_key: String,
    check: Check,
    kind: FixKind,
    endpoint: String,
    limits: Vec<String>,
    runs: u32,
    serial: bool,
    echo: Echo,
}

/// How far preparing got.
pub(crate) enum Stage {
    /// Nothing to measure (no finding a fix could be measured against): the plan abstains.
    Done(Box<Plan>, PathBuf),
    /// Ready to measure a baseline.
    Ready(Box<Prepared>),
}

/// Runs the Planner. The plan is written to its run directory whatever the decision.
pub async fn plan(opts: &PlanOptions) -> Result<Plan, PlanError> {
    match prepare(opts, true).await? {
        Stage::Done(plan, dir) => write_plan(*plan, &dir),
        Stage::Ready(mut prep) => {
            let command = prep.command.clone().unwrap_or_default();
            let inputs = prep.inputs(command, None);
            prep.baseline(inputs).await?;
            write_plan(prep.plan, &prep.dir)
        }
    }
}

/// Checks the inputs, analyzes the snapshot, picks the finding and its metric, and ranks the
/// code sites. Without `need_command`, a project with no program of its own is accepted (the
/// LLM Planner writes a harness driver for it).
pub(crate) async fn prepare(opts: &PlanOptions, need_command: bool) -> Result<Stage, PlanError> {
    // The builtin engine can only fix where one of its patterns matches; an LLM engine picks
    // its own site (and writes its own driver when there is no program).
    let sites_required = need_command;
    let source = opts
        .source
        .canonicalize()
        .map_err(|e| PlanError::Input(format!("{}: {e}", opts.source.display())))?;
    let snapshot = opts
        .snapshot
        .canonicalize()
        .map_err(|e| PlanError::Input(format!("{}: {e}", opts.snapshot.display())))?;
    let cfg = TargetConfig::load(&source).map_err(PlanError::Input)?;
    let url_env: Vec<String> =
        opts.url_env.clone().or(cfg.run.url_env.clone()).into_iter().collect();
    // The harness's program: checked before anything is written.
    let command = opts
        .run
        .clone()
        .or(cfg.run.command.clone())
        .map(|c| split_command(&c))
        .transpose()
        .map_err(PlanError::Input)?;
    if need_command && command.is_none() {
        return Err(PlanError::Input(format!(
            "no program to run: pass --run 'CMD' or set [run] command in {} (an LLM engine can write a harness driver instead)",
            source.join("af.toml").display()
        )));
    }
    if command.is_some() && url_env.is_empty() {
        return Err(PlanError::Input(format!(
            "no URL variable: pass --url-env NAME or set [run] url_env in {}",
            source.join("af.toml").display()
        )));
    }
    let timeout_ms = cfg
        .run
        .timeout
        .as_deref()
        .map(parse_timeout_ms)
        .transpose()
        .map_err(PlanError::Input)?
        .unwrap_or(60_000);
    let id = run_dir::new_id();
    let root = opts.runs_root.clone().unwrap_or_else(|| source.join(".af").join("runs"));
    let mut timings = Vec::new();

    // 1. analyze.
    let t = Instant::now();
    let exchanges = read_snapshot(&snapshot)?;
    let caller_key = cfg.run.caller_key.clone().unwrap_or_else(auto);
    let callers: CallerSpec = caller_key.parse().map_err(|e: String| {
        PlanError::Input(format!("{}: [run] caller_key: {e}", source.join("af.toml").display()))
    })?;
    let templater = Templater::default().learning_from(&exchanges);
    let cap = Capture::from_exchanges(&exchanges, &templater, &callers);
    let findings = analyze(&cap, &default_detectors());
    timings.push(Phase::since("analyze", t));
    let lines: Vec<String> = findings
        .iter()
        .map(|f| format!("{} [{}] {}: {}", f.id, f.severity.as_str(), f.detector, f.summary))
        .collect();
    let test_command =
        cfg.test.command.as_deref().map(split_command).transpose().map_err(PlanError::Input)?;
    let test_timeout_ms = cfg
        .test
        .timeout
        .as_deref()
        .map(parse_timeout_ms)
        .transpose()
        .map_err(PlanError::Input)?
        .unwrap_or(120_000);
    // Inputs read and checked: only now is anything written.
    let dir = run_dir::create(&root, &id).map_err(PlanError::io("create", root.join(&id)))?;
    let mut plan = Plan {
        schema: PLAN_SCHEMA.into(),
        id,
        run_dir: dir.display().to_string(),
        engine: "builtin".into(),
        created: jiff::Timestamp::now().to_string(),
        source: source.display().to_string(),
        issue: opts.issue.clone(),
        decision: Decision::Abstain,
        reason: String::new(),
        finding: None,
        skipped: Vec::new(),
        findings: lines,
        metric: None,
        fix_kind: None,
        bound: None,
        sites: Vec::new(),
        skipped_files: Vec::new(),
        harness_inputs: None,
        harness: None,
        harness_hash: None,
        baseline: None,
        timings,
        test_command,
        test_timeout_ms,
        usage: None,
    };

    // 2. the finding and its metric: down the ranking, until one has a code site its fix
    // applies to (the builtin engine) — the first, for an engine that picks its own site.
    let candidates = candidates(&findings, opts.issue.as_deref());
    if candidates.is_empty() {
        let load_free = findings.iter().find(|f| f.remedy == Some(Remedy::NotLoadRelated));
        plan.reason = match load_free {
            Some(f) => format!(
                "abstaining: {} — the errors are not load-related, so bounding concurrency or rate would not remove them (evidence {})",
                f.summary,
                f.evidence.join(" ")
            ),
            None if findings.is_empty() => {
                "abstaining: the snapshot shows no problem to fix".into()
            }
            None => {
                "abstaining: no finding comes with a metric a code change could be measured against"
                    .into()
            }
        };
        return Ok(Stage::Done(Box::new(plan), dir));
    }
    let t = Instant::now();
    let repo =
        Repo::load(&source).map_err(|e| PlanError::Input(format!("{}: {e}", source.display())))?;
    plan.skipped_files = repo.skipped.clone();
    let patterns = builtin_patterns();
    let all_sites = find_all(&repo, &patterns);
    let sites_for = |finding: &Finding| -> Result<(Check, FixKind, Vec<_>), PlanError> {
        let metric = finding.suggested_metric.clone().unwrap_or_default();
        let check: Check = metric.parse().map_err(|e: String| PlanError::Internal(e))?;
        let kind = kind_of(finding);
        let bound = check.threshold.max(1.0) as u32;
        let sites: Vec<_> = all_sites
            .iter()
            .filter(|s| s.fixes.contains(&kind))
            // A pool already at or below the bound is not the problem.
            .filter(|s| s.current_bound.is_none_or(|b| b > u64::from(bound)))
            .cloned()
            .collect();
        Ok((check, kind, sites))
    };
    let mut chosen = None;
    for (finding, why) in &candidates {
        let (check, kind, sites) = sites_for(finding)?;
        if !sites.is_empty() || !sites_required {
            chosen = Some((*finding, why.clone(), check, kind, sites));
            break;
        }
        plan.skipped.push(Skipped {
            id: finding.id.clone(),
            detector: finding.detector.clone(),
            reason: format!(
                "no builtin pattern for a {} fix matches the code in {}",
                kind.as_str(),
                source.display()
            ),
        });
    }
    // None has a site: the first one's baseline still says what an LLM engine would face.
    let (finding, why, check, kind, sites) = match chosen {
        Some(c) => c,
        None => {
            plan.skipped.clear();
            let (f, why) = &candidates[0];
            let (check, kind, sites) = sites_for(f)?;
            (*f, why.clone(), check, kind, sites)
        }
    };
    let why = if plan.skipped.is_empty() {
        why
    } else {
        let passed: Vec<String> =
            plan.skipped.iter().map(|s| format!("{} ({})", s.id, s.detector)).collect();
        format!("{why}; passed over {}: no code site for their fix", passed.join(", "))
    };
    let metric = finding.suggested_metric.clone().unwrap_or_default();
    let bound = check.threshold.max(1.0) as u32;
    plan.finding = Some(ChosenFinding {
        id: finding.id.clone(),
        detector: finding.detector.clone(),
        severity: finding.severity.as_str().into(),
        endpoint: finding.endpoint.clone(),
        status: finding.status,
        summary: finding.summary.clone(),
        evidence: finding.evidence.clone(),
        why,
    });
    plan.metric = Some(metric);
    plan.fix_kind = Some(kind);
    plan.bound = Some(bound);

    // 3. localize.
    let endpoint = finding.endpoint.clone().unwrap_or_default();
    plan.sites = rank(&repo, &sites, &endpoint, &url_env);
    plan.timings.push(Phase::since("localize", t));
    Ok(Stage::Ready(Box::new(Prepared {
        plan,
        dir,
        exchanges,
        templater,
        snapshot,
        source,
        command,
        url_env,
        timeout_ms,
        caller_key,
        check,
        kind,
        limits: if kind == FixKind::Retry {
            emulated_limits(&findings, &endpoint)
        } else {
            Vec::new()
        },
        endpoint,
        runs: opts.runs.max(1),
        serial: opts.serial,
        echo: opts.echo,
    })))
}

/// The variable a harness driver reads the mock's URL from.
pub const DRIVER_URL_ENV: &str = "AF_MOCK_URL";

impl Prepared {
    /// Who limits are counted for (`auto`, `header:NAME`, `query:NAME`).
    pub fn caller_key(&self) -> &str {
        &self.caller_key
    }

    /// The harness inputs for a program (the project's own, or a driver in the run directory).
    pub fn inputs(&self, command: Vec<String>, driver: Option<PathBuf>) -> HarnessInputs {
        let ep_label = format!("endpoint=\"{}\"", self.endpoint);
        let mut url_env = self.url_env.clone();
        if driver.is_some() && !url_env.iter().any(|v| v == DRIVER_URL_ENV) {
            url_env.push(DRIVER_URL_ENV.into());
        }
        HarnessInputs {
            snapshot: self.snapshot.clone(),
            command,
            url_env,
            replay_failures: self.kind == FixKind::Retry && self.limits.is_empty(),
            limits: self.limits.clone(),
            timeout_ms: self.timeout_ms,
            runs: self.runs,
            metrics: vec![
                self.check.metric.to_string(),
                format!("max_arrivals{{{ep_label}}}"),
                // The work done, for the Evaluator's same-workload check: a retry fix sends
                // fewer calls for the same requests.
                if self.kind == FixKind::Retry {
                    format!("distinct_calls{{{ep_label}}}")
                } else {
                    format!("calls{{{ep_label}}}")
                },
            ],
            expect: vec![
                format!("{} {}", self.check.op.as_str(), fmt_num(self.check.threshold)),
                String::new(),
                String::new(),
            ],
            caller_key: self.caller_key.clone(),
            parallel: !self.serial,
            driver,
        }
    }

    /// Measures the baseline on today's code with `inputs` (replacing an earlier one) and
    /// decides: proceed, no site, or abstain with the numbers.
    pub async fn baseline(&mut self, inputs: HarnessInputs) -> Result<(), PlanError> {
        let spec = inputs
            .spec()
            .map_err(|e| PlanError::Input(format!("{}: {e}", self.snapshot.display())))?;
        let plan = &mut self.plan;
        plan.harness = Some(spec.clone());
        plan.harness_hash = Some(spec.hash());
        plan.harness_inputs = Some(inputs);
        let t = Instant::now();
        let bdir = self.dir.join("baseline");
        if bdir.exists() {
            std::fs::remove_dir_all(&bdir).map_err(PlanError::io("remove", &bdir))?;
        }
        let result = measure_in(&spec, &self.exchanges, &bdir, self.echo, None, Some(&self.source))
            .await
            .map_err(|source| PlanError::Measure { what: "baseline", source })?;
        run_dir::write_json(&bdir.join("measure.json"), &result)
            .map_err(PlanError::io("write", bdir.join("measure.json")))?;
        plan.timings.push(Phase::since("baseline", t));
        let measured = Measured::from_result(&result, &bdir);
        let primary = measured.primary().cloned();
        plan.baseline = Some(measured);

        // Decide.
        let metric = plan.metric.clone().unwrap_or_default();
        // A program that fails *because of the bug* (items rejected → exit 1) is evidence; one
        // that timed out or made no request did not run the workload.
        let program_failed = result.runs.iter().any(|r| r.timed_out || r.requests == 0);
        let values = primary.as_ref().map(fmt_values).unwrap_or_default();
        let exits = exit_note(&result.runs);
        plan.decision = Decision::Abstain;
        if program_failed {
            plan.reason = format!(
                "abstaining: the baseline runs did not run the workload ({}) — a harness that does not run cannot confirm a fix",
                result.problems.join("; ")
            );
        } else if primary.as_ref().is_none_or(|p| p.values.iter().any(Option::is_none)) {
            plan.reason = format!(
                "abstaining: {metric} selected no call in the baseline journals (values {values}): the program does not call the finding's endpoint, so nothing could confirm a fix ({})",
                result.problems.join("; ")
            );
        } else if primary.as_ref().and_then(|p| p.passed) == Some(true) {
            plan.reason = format!(
                "abstaining: today's code already meets {metric} on every baseline run (values {values}); the finding is not reproduced by this program, so there is nothing to confirm"
            );
        } else if plan.sites.is_empty() {
            plan.decision = Decision::NoSite;
            plan.reason = format!(
                "the baseline violates {metric} (values {values}), but no builtin pattern for a {} fix matches the code in {}; an LLM engine could take it from here",
                self.kind.as_str(),
                self.source.display()
            );
        } else {
            plan.decision = Decision::Proceed;
            let top = &plan.sites[0];
            plan.reason = format!(
                "the baseline violates {metric} (values {values}); the most likely cause is {} at {}:{} ({}){exits}",
                top.site.description,
                top.site.file,
                top.site.line,
                top.reasons.first().map_or("", String::as_str)
            );
        }
        Ok(())
    }
}

/// What the baseline's exit codes say, for the plan's reason: nothing when every run exited 0.
fn exit_note(runs: &[af_measure::RunResult]) -> String {
    let codes: Vec<String> = runs
        .iter()
        .filter(|r| r.exit_code != Some(0))
        .map(|r| r.exit_code.map_or_else(|| "a signal".to_owned(), |c| c.to_string()))
        .collect();
    if codes.is_empty() {
        return String::new();
    }
    format!(
        "; {} of {} baseline runs exited non-zero ({}) with the workload done: the program reporting the bug's failures, so the confirm runs must exit 0 or no worse",
        codes.len(),
        runs.len(),
        codes.join(", ")
    )
}

/// Writes `plan.json` (and `harness.json` when there is a harness).
pub(crate) fn write_plan(plan: Plan, dir: &Path) -> Result<Plan, PlanError> {
    run_dir::write_json(&dir.join("plan.json"), &plan)
        .map_err(PlanError::io("write", dir.join("plan.json")))?;
    if let Some(h) = &plan.harness {
        run_dir::write_json(&dir.join("harness.json"), h)
            .map_err(PlanError::io("write", dir.join("harness.json")))?;
    }
    Ok(plan)
}
