//! The LLM Planner. The tool does every computation the builtin Planner does — analysis, the
//! metric and threshold, ranked sites, the measured baseline — and the model *decides*: which
//! code to blame (a ranked site, or any `file:line` it found by reading and searching, which
//! is how bugs outside the builtin patterns get a plan), or to abstain. It cannot change a
//! number: an abstention the measurement made (errors not load-related, baseline already
//! meeting the threshold) stands.

use schemars::JsonSchema;
use serde::Deserialize;

use super::client::Engine;
use super::model::{Message, Role};
use super::tools::{ReadFile, Search, Trajectory, parse, read_file, search, tool};
use super::worker::Budget;
use crate::localize::Ranked;
use crate::plan::{Decision, Phase, Plan, PlanError, PlanOptions};
use crate::run_dir;

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

fn tools() -> Vec<super::model::ToolSpec> {
    vec![
        tool::<NoArgs>(
            "query_traffic",
            "The snapshot's findings (aggregated, redacted), the chosen metric and the measured baseline.",
        ),
        tool::<NoArgs>(
            "list_sites",
            "Code sites the builtin detectors ranked for this finding, with reasons.",
        ),
        tool::<ReadFile>("read_file", "Read a file of the project, with line numbers."),
        tool::<Search>("search", "Find a text in the project's source files."),
        tool::<SubmitPlan>("submit_plan", "Finish: the code to fix (file and line) and why."),
        tool::<Abstain>("abstain", "Finish: no code change should be made, and why."),
    ]
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
    if let Some(b) = &p.baseline {
        for m in &b.metrics {
            t.push_str(&format!("baseline {} = {:?}\n", m.metric, m.values));
        }
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
    let mut p = crate::plan::plan(opts).await?;
    p.engine = format!("{}:{}", engine_kind(engine), engine.model);
    // What the measurement decided, the model cannot undo.
    if p.decision == Decision::Abstain {
        return write(p);
    }
    let dir = std::path::PathBuf::from(&p.run_dir);
    let root = std::path::PathBuf::from(&p.source);
    let mut traj = Trajectory::open(&dir);
    let specs = tools();
    let mut messages = vec![
        Message::text(
            Role::System,
            "You are the Planner of Agent Factory. A finding in captured traffic has been measured against today's code. Decide which code causes it, or abstain. The tools compute; you decide.",
        ),
        Message::text(
            Role::User,
            format!("{}\nStart with query_traffic and list_sites.", p.reason),
        ),
    ];
    let mut host = PlannerHost { p: &mut p, root: &root, outcome: None };
    let end =
        super::tools::drive(engine, &specs, &mut messages, budget, "plan", &mut traj, &mut host)
            .await;
    let outcome = host.outcome.or(end.stopped.map(Err));
    p.usage = Some(end.usage);
    match outcome {
        Some(Ok(a)) => {
            // The model's site first: a ranked one when it names one, else a new site.
            let pos = p.sites.iter().position(|r| r.site.file == a.file && r.site.line == a.line);
            let chosen = match pos {
                Some(i) => p.sites.remove(i),
                None => Ranked {
                    site: crate::patterns::Site {
                        pattern: "llm-site".into(),
                        file: a.file.clone(),
                        line: a.line,
                        start: 0,
                        end: 0,
                        snippet: std::fs::read_to_string(root.join(&a.file))
                            .ok()
                            .and_then(|t| t.lines().nth(a.line - 1).map(|l| l.trim().to_owned()))
                            .unwrap_or_default(),
                        description: "chosen by the model".into(),
                        fixes: p.fix_kind.into_iter().collect(),
                        callees: Vec::new(),
                        bound_at: None,
                        current_bound: None,
                    },
                    score: 0.0,
                    reasons: Vec::new(),
                },
            };
            let mut chosen = chosen;
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
    write(p)
}

/// The Planner's tools.
struct PlannerHost<'a> {
    p: &'a mut Plan,
    root: &'a std::path::Path,
    outcome: Option<Result<SubmitPlan, String>>,
}

impl super::tools::ToolHost for PlannerHost<'_> {
    async fn call(&mut self, name: &str, args: &serde_json::Value) -> Result<String, String> {
        match name {
            "query_traffic" => Ok(traffic(self.p)),
            "list_sites" => Ok(sites(self.p)),
            "read_file" => parse(name, args).and_then(|a| read_file(self.root, &a)),
            "search" => parse(name, args).and_then(|a| search(self.root, &a)),
            "submit_plan" => {
                let a: SubmitPlan = parse(name, args)?;
                let path = super::tools::inside(self.root, &a.file)?;
                let lines = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", a.file))?
                    .lines()
                    .count();
                if a.line == 0 || a.line > lines {
                    return Err(format!(
                        "{}: line {} is outside the file (1–{lines})",
                        a.file, a.line
                    ));
                }
                self.outcome = Some(Ok(a));
                Ok("plan submitted".into())
            }
            "abstain" => {
                let a: Abstain = parse(name, args)?;
                self.outcome = Some(Err(format!("the model abstained: {}", a.reason)));
                Ok("abstained".into())
            }
            other => Err(format!("unknown tool {other:?}")),
        }
    }

    fn finished(&self) -> bool {
        self.outcome.is_some()
    }

    fn timings(&mut self) -> &mut Vec<Phase> {
        &mut self.p.timings
    }
}

fn engine_kind(e: &Engine) -> &'static str {
    match e.provider {
        super::client::Provider::OpenAi { .. } => "openai",
        super::client::Provider::Anthropic { .. } => "anthropic",
    }
}

fn write(p: Plan) -> Result<Plan, PlanError> {
    let dir = std::path::PathBuf::from(&p.run_dir);
    run_dir::write_json(&dir.join("plan.json"), &p)
        .map_err(|e| PlanError::Internal(format!("{}: {e}", dir.display())))?;
    Ok(p)
}
