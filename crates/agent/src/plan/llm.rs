//! The LLM Planner. The tool does every computation the builtin Planner does — analysis, the
//! metric and threshold, ranked sites, the measured baseline — and the model *decides*: which
//! code to blame (a ranked site, or any `file:line` it found by reading and searching, which
//! is how bugs outside the builtin patterns get a plan), or to abstain. It cannot change a
//! number: an abstention the measurement made (errors not load-related, baseline already
//! meeting the threshold) stands.
//!
//! When the project has no program of its own to run (no `--run`, no `[run] command`), the
//! model writes a harness **driver** into the run directory — a small program that calls the
//! suspect code against the mock — and runs it; the tool measures. The driver's digest is part
//! of the harness hash, so the Worker's confirm runs the identical driver or nothing.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::llm::client::Engine;
use crate::llm::model::{Message, Role};
use crate::llm::tool_loop::Budget;
use crate::llm::tool_loop::{ReadsProject, Tool, ToolFuture, done, project_tools};
use crate::llm::tools::{Trajectory, parse};
use crate::localize::Ranked;
use crate::plan::{Decision, Phase, Plan, PlanError, PlanOptions, Prepared, Stage, write_plan};
use crate::repo::{Lang, parses_cleanly};
use serde_json::Value;

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
struct SubmitPlan {
    /// File of the code that causes the finding, relative to the project.
    file: String,
    /// Its 1-based line.
    line: usize,
    /// Why this code, in two or three sentences.
    rationale: String,
}

#[derive(Deserialize, JsonSchema)]
struct Abstain {
    /// Why no code change should be made.
    reason: String,
}

#[derive(Deserialize, JsonSchema)]
struct ComputeMetric {
    /// A metric: calls, errors, error_rate, peak_inflight, max_arrivals, max_rate_1s,
    /// retry_amplification, latency_p50/p95/p99, with optional labels, e.g.
    /// `peak_inflight{endpoint="GET /v1/items/{id}",per="caller"}`, `calls{status="429"}`.
    metric: String,
    /// `snapshot` (the captured traffic, default) or `baseline` (each run of the last
    /// measured baseline).
    over: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct WriteDriver {
    /// File name: `driver.js`, `driver.mjs`, `driver.cjs` (run with node) or `driver.py`
    /// (run with python3).
    file: String,
    /// The program.
    code: String,
}

/// The Planner's tools, the only list of them: the traffic and the ranked sites, the project
/// tools, metrics, the driver tools when the project has no command, and the terminal
/// `submit_plan` / `abstain`.
pub(crate) fn planner_tools<'p>(driver: bool) -> Vec<Tool<PlannerHost<'p>>> {
    let mut v = vec![
        Tool::new::<NoArgs>(
            "query_traffic",
            "The snapshot's findings (aggregated, redacted), the chosen metric and the measured baseline.",
            query_traffic,
        ),
        Tool::new::<NoArgs>(
            "list_sites",
            "Code sites the builtin detectors ranked for this finding, with reasons.",
            list_sites,
        ),
    ];
    v.extend(project_tools());
    v.push(Tool::new::<ComputeMetric>(
        "compute_metric",
        "Compute a metric over the captured traffic or the baseline runs' arrival journals.",
        compute_metric,
    ));
    if driver {
        v.push(Tool::new::<WriteDriver>(
            "write_driver",
            "Write the harness driver: a program that calls the suspect code against the mock, reproducing the workload the snapshot shows, and exits 0. It runs with the project as its working directory (the fix's worktree at confirm time), so import the code by a path relative to it (Node: require(require('path').resolve('src/x.js')); Python: sys.path.insert(0, os.getcwd())). The mock's base URL is in the AF_MOCK_URL environment variable. Rewriting it invalidates the last baseline.",
            write_driver,
        ));
        v.push(Tool::new::<NoArgs>(
            "run_harness",
            "Measure the baseline: run the driver against a fresh mock of the upstream for every harness run and compute the metrics. Returns the values, the decision they imply and the driver's output.",
            run_harness,
        ));
    }
    v.push(Tool::new::<SubmitPlan>(
        "submit_plan",
        "Finish: the code to fix (file and line) and why.",
        submit_plan,
    ));
    v.push(Tool::new::<Abstain>(
        "abstain",
        "Finish: no code change should be made, and why.",
        abstain,
    ));
    v
}

type Host<'p> = PlannerHost<'p>;

fn query_traffic<'a>(h: &'a mut Host<'_>, _: &'a Value) -> ToolFuture<'a> {
    done(Ok(traffic(&h.prep.plan)))
}

fn list_sites<'a>(h: &'a mut Host<'_>, _: &'a Value) -> ToolFuture<'a> {
    done(Ok(sites(&h.prep.plan)))
}

fn compute_metric<'a>(h: &'a mut Host<'_>, a: &'a Value) -> ToolFuture<'a> {
    done(parse("compute_metric", a).and_then(|a| h.compute_metric(&a)))
}

fn write_driver<'a>(h: &'a mut Host<'_>, a: &'a Value) -> ToolFuture<'a> {
    done(parse("write_driver", a).and_then(|a| h.write_driver(&a)))
}

fn run_harness<'a>(h: &'a mut Host<'_>, _: &'a Value) -> ToolFuture<'a> {
    Box::pin(h.run_harness())
}

fn submit_plan<'a>(h: &'a mut Host<'_>, a: &'a Value) -> ToolFuture<'a> {
    done(h.submit_plan(a))
}

fn abstain<'a>(h: &'a mut Host<'_>, a: &'a Value) -> ToolFuture<'a> {
    done(parse::<Abstain>("abstain", a).map(|a| {
        h.outcome = Some(Err(format!("the model abstained: {}", a.reason)));
        "abstained".to_owned()
    }))
}

fn traffic(p: &Plan) -> String {
    let mut t = String::from("findings:\n");
    for f in &p.findings {
        t.push_str(&format!("- {f}\n"));
    }
    if let Some(f) = &p.finding {
        t.push_str(&format!("chosen finding: {} ({})\n", f.id, f.why));
    }
    if let Some(m) = &p.metric {
        t.push_str(&format!("metric a fix must meet: {m}\n"));
    }
    match &p.baseline {
        Some(b) => {
            for m in &b.metrics {
                t.push_str(&format!("baseline {} = {:?}\n", m.metric, m.values));
            }
        }
        None => t.push_str("baseline: not measured yet (write_driver, then run_harness)\n"),
    }
    t
}

fn sites(p: &Plan) -> String {
    if p.sites.is_empty() {
        return "no builtin pattern matched; read and search the code".into();
    }
    p.sites
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "{}. {}:{} {} — {} (score {:.1}: {})",
                i + 1,
                r.site.file,
                r.site.line,
                r.site.pattern,
                r.site.description,
                r.score,
                r.reasons.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the LLM Planner: the builtin computation, then the model's decision.
pub async fn plan(opts: &PlanOptions, engine: &Engine, budget: Budget) -> Result<Plan, PlanError> {
    let label = format!("{}:{}", engine_kind(engine), engine.model);
    let mut prep = match crate::plan::prepare(opts, false).await? {
        Stage::Done(mut p, dir) => {
            p.engine = label;
            return write_plan(*p, &dir);
        }
        Stage::Ready(prep) => prep,
    };
    prep.plan.engine = label;
    let driver = prep.command.is_none();
    if let Some(command) = prep.command.clone() {
        let inputs = prep.inputs(command, None);
        prep.baseline(inputs).await?;
        // What the measurement decided, the model cannot undo.
        if prep.plan.decision == Decision::Abstain {
            return write_plan(prep.plan, &prep.dir);
        }
    }
    let mut traj = Trajectory::open(&prep.dir);
    let tools = planner_tools(driver);
    let start = if driver {
        "The project has no program to run against the mock: read the code, write a harness driver that reproduces the snapshot's workload with the suspect code (write_driver), measure it (run_harness), then decide."
    } else {
        "Start with query_traffic and list_sites."
    };
    let mut messages = vec![
        Message::text(
            Role::System,
            "You are the Planner of Agent Factory. A finding in captured traffic is to be measured against today's code. Decide which code causes it, or abstain. The tools compute; you decide.",
        ),
        Message::text(Role::User, format!("{}\n{start}", prep.plan.reason)),
    ];
    if prep.plan.reason.is_empty() {
        let f = prep.plan.finding.as_ref().map(|f| f.summary.clone()).unwrap_or_default();
        messages[1] = Message::text(Role::User, format!("Finding: {f}\n{start}"));
    }
    let mut host = PlannerHost { prep: &mut prep, driver: None, outcome: None };
    let end = crate::llm::tool_loop::drive(
        engine,
        &tools,
        &mut messages,
        budget,
        "plan",
        &mut traj,
        &mut host,
    )
    .await;
    let outcome = host.outcome.or(end.stopped.map(Err));
    let p = &mut prep.plan;
    p.usage = Some(end.usage);
    match outcome {
        Some(Ok((a, snippet))) => {
            // The model's site first: a ranked one when it names one, else a new site.
            let pos = p.sites.iter().position(|r| r.site.file == a.file && r.site.line == a.line);
            let mut chosen = match pos {
                Some(i) => p.sites.remove(i),
                None => model_site(p, &a, snippet),
            };
            chosen.reasons.insert(0, format!("{}: {}", p.engine, a.rationale));
            p.sites.insert(0, chosen);
            p.decision = Decision::Proceed;
            p.reason = format!("{} chose {}:{}: {}", p.engine, a.file, a.line, a.rationale);
        }
        Some(Err(why)) => {
            p.decision = Decision::Abstain;
            p.reason = format!("abstaining: {why}");
        }
        None => {
            p.decision = Decision::Abstain;
            p.reason = "abstaining: the model did not decide".into();
        }
    }
    write_plan(prep.plan, &prep.dir)
}

/// A site the model found outside the builtin patterns.
fn model_site(p: &Plan, a: &SubmitPlan, snippet: String) -> Ranked {
    Ranked {
        site: crate::patterns::Site::chosen(
            "llm-site",
            &a.file,
            a.line,
            snippet,
            "chosen by the model",
            p.fix_kind.into_iter().collect(),
        ),
        score: 0.0,
        reasons: Vec::new(),
    }
}

/// The Planner's tools.
pub(crate) struct PlannerHost<'a> {
    prep: &'a mut Prepared,
    /// The driver written so far (path, interpreter).
    driver: Option<(PathBuf, &'static str)>,
    /// The submitted plan and the chosen line's text, or why the model abstained.
    outcome: Option<Result<(SubmitPlan, String), String>>,
}

impl PlannerHost<'_> {
    fn compute_metric(&self, a: &ComputeMetric) -> Result<String, String> {
        let metric: af_analyze::Metric =
            a.metric.parse().map_err(|e| format!("metric {:?}: {e}", a.metric))?;
        match a.over.as_deref().unwrap_or("snapshot") {
            "snapshot" => {
                let callers: af_snapshot::CallerSpec =
                    self.prep.caller_key().parse().map_err(|e: String| e)?;
                let cap = af_analyze::Capture::from_exchanges(
                    &self.prep.exchanges,
                    &self.prep.templater,
                    &callers,
                );
                let v = metric.measure(&cap).map_err(|e| e.to_string())?;
                Ok(format!("{metric} over the snapshot = {}", crate::format::fmt_num(v)))
            }
            "baseline" => {
                let b =
                    self.prep.plan.baseline.as_ref().ok_or("no baseline has been measured yet")?;
                let mut out = Vec::new();
                for r in &b.runs {
                    let (journal, _) = af_snapshot::read_all(
                        Path::new(&r.journal),
                        af_snapshot::ReadOptions {
                            lenient: false,
                            bodies: af_snapshot::Bodies::Elide,
                        },
                    )
                    .map_err(|e| e.to_string())?;
                    let v = af_measure::metric_values(
                        &journal,
                        &self.prep.templater,
                        std::slice::from_ref(&metric),
                    );
                    out.push(format!(
                        "run {}: {}",
                        r.run,
                        crate::format::fmt_opt(v.first().copied().flatten())
                    ));
                }
                Ok(format!("{metric} over the baseline runs: {}", out.join(", ")))
            }
            other => Err(format!("over {other:?}: use snapshot or baseline")),
        }
    }

    fn write_driver(&mut self, a: &WriteDriver) -> Result<String, String> {
        let interpreter = match Path::new(&a.file).extension().and_then(|e| e.to_str()) {
            Some("js" | "mjs" | "cjs") => "node",
            Some("py") => "python3",
            _ => {
                return Err(format!(
                    "{}: name it driver.js, driver.mjs, driver.cjs or driver.py",
                    a.file
                ));
            }
        };
        if a.file.contains('/') || a.file.contains('\\') || a.file.starts_with('.') {
            return Err(format!("{}: a plain file name, no directories", a.file));
        }
        let lang = Lang::from_path(Path::new(&a.file)).ok_or("unknown language")?;
        if !parses_cleanly(lang, &a.code) {
            return Err(format!("{}: the program does not parse; nothing was written", a.file));
        }
        let dir = self.prep.dir.join("driver");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some((old, _)) = self.driver.take() {
            let _ = std::fs::remove_file(old);
        }
        let path = dir.join(&a.file);
        std::fs::write(&path, &a.code).map_err(|e| format!("{}: {e}", path.display()))?;
        self.driver = Some((path.clone(), interpreter));
        // A baseline measured with another driver no longer describes this harness.
        let p = &mut self.prep.plan;
        p.baseline = None;
        p.harness = None;
        p.harness_hash = None;
        p.harness_inputs = None;
        p.decision = Decision::Abstain;
        Ok(format!("wrote {} ({} bytes); run_harness measures it", path.display(), a.code.len()))
    }

    async fn run_harness(&mut self) -> Result<String, String> {
        let (path, interpreter) = self.driver.clone().ok_or("write_driver first")?;
        let command = vec![interpreter.to_owned(), path.display().to_string()];
        let inputs = self.prep.inputs(command, Some(path));
        self.prep.baseline(inputs).await.map_err(|e| e.to_string())?;
        let p = &self.prep.plan;
        let mut out = format!("harness {}\n", p.harness_hash.as_deref().unwrap_or(""));
        if let Some(b) = &p.baseline {
            for m in &b.metrics {
                out.push_str(&format!("{} = {:?}\n", m.metric, m.values));
            }
            for r in &b.runs {
                out.push_str(&format!(
                    "run {}: {}, {} requests, {} unmatched\n",
                    r.run,
                    r.ended(),
                    r.requests,
                    r.misses
                ));
            }
            // The first run's output, so a driver that fails can be mended.
            for stream in ["stdout", "stderr"] {
                let text =
                    std::fs::read_to_string(Path::new(&b.dir).join(format!("run-1.{stream}")))
                        .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let tail = &lines[lines.len().saturating_sub(30)..];
                    out.push_str(&format!(
                        "run 1 {stream} (last {} lines):\n{}\n",
                        tail.len(),
                        tail.join("\n")
                    ));
                }
            }
        }
        out.push_str(&format!("decision so far: {:?} — {}", p.decision, p.reason));
        Ok(out)
    }
}

impl PlannerHost<'_> {
    /// `submit_plan`: refused until a baseline supports a fix; the line must be in the file.
    fn submit_plan(&mut self, args: &serde_json::Value) -> Result<String, String> {
        let root = self.prep.source.clone();
        let a: SubmitPlan = parse("submit_plan", args)?;
        let p = &self.prep.plan;
        if p.baseline.is_none() {
            return Err("no baseline: write_driver and run_harness first, so the fix can be confirmed against it".into());
        }
        if p.decision == Decision::Abstain {
            return Err(format!(
                "the baseline does not support a fix: {} — mend the driver and run_harness again, or abstain",
                p.reason
            ));
        }
        let path = crate::llm::tools::inside(&root, &a.file)?;
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", a.file))?;
        let lines = text.lines().count();
        if a.line == 0 || a.line > lines {
            return Err(format!("{}: line {} is outside the file (1–{lines})", a.file, a.line));
        }
        let snippet = text.lines().nth(a.line - 1).unwrap_or("").trim().to_owned();
        self.outcome = Some(Ok((a, snippet)));
        Ok("plan submitted".into())
    }
}

impl ReadsProject for PlannerHost<'_> {
    fn project(&self) -> &Path {
        &self.prep.source
    }
}

impl crate::llm::tool_loop::ToolHost for PlannerHost<'_> {
    fn finished(&self) -> bool {
        self.outcome.is_some()
    }

    fn timings(&mut self) -> &mut Vec<Phase> {
        &mut self.prep.plan.timings
    }
}

fn engine_kind(e: &Engine) -> &'static str {
    match e.provider {
        crate::llm::client::Provider::OpenAi { .. } => "openai",
        crate::llm::client::Provider::Anthropic { .. } => "anthropic",
    }
}
