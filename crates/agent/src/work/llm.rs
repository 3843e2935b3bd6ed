//! The LLM Worker: the model edits code through tools; the tool measures. It reads and searches
//! the worktree, edits with exact, unique `str_replace` (refused when the file stops parsing),
//! creates files, runs the tests, runs the confirm harness (the plan's, by hash — the model
//! cannot pass another) and ends with `submit_result`. The Evaluator's checks decide, not the
//! model's summary. Budgets (steps, tokens, wall time) stop a model that never finishes, with
//! a partial result. Every request, response, tool call and tool result goes to
//! `trajectory.jsonl` (large results by digest).

use std::path::Path;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::llm::client::Engine;
use crate::llm::model::{Message, Role};
use crate::llm::tool_loop::Budget;
use crate::llm::tool_loop::{ReadsProject, Tool, ToolFuture, done, project_tools};
use crate::llm::tools::{Trajectory, inside, parse};
use crate::repo::{Lang, parses_cleanly};
use crate::work::{Attempt, Session, WorkError, WorkResult};

#[derive(Deserialize, JsonSchema)]
struct StrReplace {
    /// Path relative to the project.
    path: String,
    /// Text that occurs exactly once in the file.
    old: String,
    /// Its replacement.
    new: String,
}

#[derive(Deserialize, JsonSchema)]
struct CreateFile {
    /// Path relative to the project (must not exist).
    path: String,
    /// Content.
    content: String,
}

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
struct SubmitResult {
    /// What was changed and why, in a few sentences.
    summary: String,
}

/// The Worker's tools, the only list of them: the project tools, edits, tests, the confirm on
/// the plan's harness, the diff, and the terminal `submit_result`.
fn worker_tools<'s>() -> Vec<Tool<WorkerHost<'s>>> {
    let mut v = project_tools();
    v.extend([
        Tool::new::<StrReplace>(
            "str_replace",
            "Replace text that occurs exactly once in a file. Refused if the file no longer parses.",
            str_replace,
        ),
        Tool::new::<CreateFile>("create_file", "Create a new file.", create_file),
        Tool::new::<NoArgs>("run_tests", "Run the project's tests (af.toml [test] command).", run_tests),
        Tool::new::<NoArgs>(
            "run_confirm",
            "Run the plan's harness on the current code and the Evaluator's checks.",
            run_confirm,
        ),
        Tool::new::<NoArgs>("git_diff", "The diff of the worktree against the base.", git_diff),
        Tool::new::<SubmitResult>(
            "submit_result",
            "Finish: the last confirm's evidence decides the outcome.",
            submit_result,
        ),
    ]);
    v
}

fn prompt(s: &Session) -> String {
    let p = &s.plan;
    let mut t = format!(
        "You are fixing a bug found in captured HTTP traffic. The fix must make this check pass on the plan's harness:\n  {}\n\
         Baseline (today's code): {} on every run.\n",
        s.metric,
        s.baseline.primary().map(crate::format::fmt_values).unwrap_or_default()
    );
    if let Some(f) = &p.finding {
        t.push_str(&format!("Finding {}: {}\n", f.id, f.summary));
    }
    t.push_str("Likely code sites:\n");
    for r in p.sites.iter().take(3) {
        t.push_str(&format!(
            "- {}:{} {} ({})\n",
            r.site.file,
            r.site.line,
            r.site.description,
            r.reasons.join("; ")
        ));
    }
    t.push_str(
        "Change as little as possible, keep the file's style, do not drop any work the program does. \
         Use the tools; run_confirm measures; then submit_result.",
    );
    t
}

/// Runs the LLM Worker on a plan's run directory.
pub async fn work(
    dir: &std::path::Path,
    engine: &Engine,
    budget: Budget,
    echo: af_measure::Echo,
) -> Result<WorkResult, WorkError> {
    let mut s = Session::open(dir, echo)?;
    let mut traj = Trajectory::open(dir);
    let tools = worker_tools();
    let allowed: Vec<String> = {
        let sites: Vec<&crate::patterns::Site> = s.plan.sites.iter().map(|r| &r.site).collect();
        s.allowed_files(&sites)
    };
    let mut messages = vec![
        Message::text(
            Role::System,
            "You are the Worker of Agent Factory. You edit code with tools; the tools measure.",
        ),
        Message::text(Role::User, prompt(&s)),
    ];
    let mut host =
        WorkerHost { s: &mut s, allowed: &allowed, last: None, edited: false, summary: None };
    let end = crate::llm::tool_loop::drive(
        engine,
        &tools,
        &mut messages,
        budget,
        "work",
        &mut traj,
        &mut host,
    )
    .await;
    let WorkerHost { mut last, edited: edited_since_confirm, summary, .. } = host;
    let stopped = end.stopped.map(|why| format!("stopped: {why}"));
    let mut usage = end.usage;
    let seen = engine.exchanged().len();
    // The evidence decides: a confirm after the last edit, every check passed.
    if edited_since_confirm || last.is_none() {
        let (m, t, e) = s.confirm(&allowed).await?;
        last = Some((m, t, e));
    }
    let (confirm, tests, mut evaluation) =
        last.ok_or_else(|| WorkError::Internal("no confirm".into()))?;
    let files = s.changed_files()?;
    // The LLM review, when the deterministic checks pass (it can only make the verdict stricter).
    if evaluation.passed {
        let t = Instant::now();
        let diff = s.diff()?;
        usage.add(crate::evaluate::review::review(engine, &s.plan, &diff, &mut evaluation).await);
        s.timings.push(crate::plan::Phase::since("review", t));
        for x in engine.exchanged().into_iter().skip(seen) {
            traj.log(&json!({"phase": "review", "kind": "model", "attempt": x.attempt, "status": x.status, "request": x.request, "response": x.response}));
        }
    }
    let mut site = s.plan.sites.first().map(|r| r.site.clone()).unwrap_or_else(|| {
        let file = files.first().map_or("", String::as_str);
        crate::patterns::Site::chosen(
            "llm-edit",
            file,
            1,
            String::new(),
            "edited by the model",
            Vec::new(),
        )
    });
    site.pattern = format!("llm-edit ({})", engine.model);
    let ok = evaluation.passed && !files.is_empty();
    let mut attempt =
        Attempt { site, files, error: None, confirm: None, tests, evaluation: Some(evaluation) };
    let (chosen, commit) = if ok {
        let what = summary.clone().unwrap_or_else(|| "Fix by the model".into());
        let what = what.lines().next().unwrap_or("Fix").chars().take(72).collect::<String>();
        let c = s.commit(&what, &confirm)?;
        (Some(0), Some(c))
    } else {
        attempt.error = Some(
            stopped.clone().unwrap_or_else(|| "the Evaluator did not accept the evidence".into()),
        );
        (None, None)
    };
    attempt.confirm = Some(confirm);
    let not_confirmed = stopped.map(|why| format!("Not confirmed: {why}; the last measurement is kept as a partial result. Nothing was committed."));
    let mut result = s.into_result(vec![attempt], chosen, commit, not_confirmed)?;
    result.usage = Some(usage);
    Ok(result)
}

type Confirmed =
    (crate::plan::Measured, Option<crate::evaluate::TestRun>, crate::evaluate::Evaluation);

/// The Worker's tools over a session.
struct WorkerHost<'a> {
    s: &'a mut Session,
    allowed: &'a [String],
    last: Option<Confirmed>,
    edited: bool,
    summary: Option<String>,
}

impl crate::llm::tool_loop::ToolHost for WorkerHost<'_> {
    fn finished(&self) -> bool {
        self.summary.is_some()
    }

    fn timings(&mut self) -> &mut Vec<crate::plan::Phase> {
        &mut self.s.timings
    }
}

impl ReadsProject for WorkerHost<'_> {
    fn project(&self) -> &Path {
        &self.s.project
    }
}

fn str_replace<'a>(h: &'a mut WorkerHost<'_>, args: &'a Value) -> ToolFuture<'a> {
    done((|| {
        let a: StrReplace = parse("str_replace", args)?;
        let path = inside(&h.s.project, &a.path)?;
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", a.path))?;
        let n = text.matches(&a.old).count();
        if n != 1 {
            return Err(format!("{}: `old` occurs {n} times; it must occur exactly once", a.path));
        }
        let new = text.replacen(&a.old, &a.new, 1);
        if let Some(lang) = Lang::from_path(&path)
            && !parses_cleanly(lang, &new)
        {
            return Err(format!("{}: refused, the file would no longer parse", a.path));
        }
        std::fs::write(&path, new).map_err(|e| e.to_string())?;
        h.edited = true;
        Ok(format!("{}: replaced", a.path))
    })())
}

fn create_file<'a>(h: &'a mut WorkerHost<'_>, args: &'a Value) -> ToolFuture<'a> {
    done((|| {
        let a: CreateFile = parse("create_file", args)?;
        let path = inside(&h.s.project, &a.path)?;
        if path.exists() {
            return Err(format!("{}: exists; use str_replace", a.path));
        }
        if let Some(lang) = Lang::from_path(&path)
            && !parses_cleanly(lang, &a.content)
        {
            return Err(format!("{}: refused, the content does not parse", a.path));
        }
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, a.content).map_err(|e| e.to_string())?;
        h.edited = true;
        Ok(format!("{}: created", a.path))
    })())
}

fn run_tests<'a>(h: &'a mut WorkerHost<'_>, _: &'a Value) -> ToolFuture<'a> {
    Box::pin(async move {
        let Some(c) = h.s.plan.test_command.clone() else {
            return Ok("no test command is configured".into());
        };
        let r = crate::work::run_tests(&h.s.project, &c, h.s.plan.test_timeout_ms).await;
        Ok(format!("{}\n{}", r.ended(), r.tail))
    })
}

fn run_confirm<'a>(h: &'a mut WorkerHost<'_>, _: &'a Value) -> ToolFuture<'a> {
    Box::pin(async move {
        let (m, t, e) = h.s.confirm(h.allowed).await.map_err(|e| e.to_string())?;
        h.edited = false;
        let mut out = String::new();
        for x in &m.metrics {
            out.push_str(&format!(
                "{} = {:?}{}\n",
                x.metric,
                x.values,
                x.expect.as_ref().map(|e| format!(" (expect {e})")).unwrap_or_default()
            ));
        }
        for c in &e.checks {
            out.push_str(&format!(
                "[{}] {}: {}\n",
                match c.passed {
                    Some(true) => "pass",
                    Some(false) => "FAIL",
                    None => "n/a",
                },
                c.name,
                c.detail
            ));
        }
        h.last = Some((m, t, e));
        Ok(out)
    })
}

fn git_diff<'a>(h: &'a mut WorkerHost<'_>, _: &'a Value) -> ToolFuture<'a> {
    done(h.s.diff().map_err(|e| e.to_string()))
}

fn submit_result<'a>(h: &'a mut WorkerHost<'_>, args: &'a Value) -> ToolFuture<'a> {
    done(parse::<SubmitResult>("submit_result", args).map(|a| {
        h.summary = Some(a.summary);
        "submitted".to_owned()
    }))
}

#[cfg(test)]
mod tests {
    /// Each phase's tools are one list: no name twice, the project tools once, a terminal tool.
    #[test]
    fn each_phase_has_one_list_of_tools() {
        let names = |v: Vec<String>| {
            let mut u = v.clone();
            u.sort();
            u.dedup();
            assert_eq!(u.len(), v.len(), "a name twice: {v:?}");
            v
        };
        let worker = names(super::worker_tools().into_iter().map(|t| t.spec.name).collect());
        assert_eq!(&worker[..4], ["list_files", "read_file", "search", "find_symbol"]);
        assert_eq!(worker.last().map(String::as_str), Some("submit_result"));
        for driver in [false, true] {
            let planner = names(
                crate::plan::llm::planner_tools(driver).into_iter().map(|t| t.spec.name).collect(),
            );
            assert!(
                planner.iter().any(|n| n == "submit_plan")
                    && planner.iter().any(|n| n == "abstain")
            );
            assert_eq!(planner.iter().any(|n| n == "write_driver"), driver, "{planner:?}");
            assert_eq!(planner.iter().filter(|n| *n == "read_file").count(), 1);
        }
    }
}
