//! Running an engine's Planner and Worker, shared by `af plan`, `af work`, `af fix` and
//! `af demo`: the options from the flags, the builtin engine or an LLM one with its budget,
//! the reports written beside `result.json`.

use std::path::Path;
use std::time::Instant;

use af_agent::{Decision, Plan, PlanOptions, WorkOptions, WorkResult};
use af_measure::Echo;
use anyhow::Context;

use crate::args::{EngineSpec, LlmArgs, PlanArgs};
use crate::exit::UsageError;

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub fn options(a: &PlanArgs) -> anyhow::Result<PlanOptions> {
    // `--finding FP`: the snapshot is the finding's evidence, and its summary the issue text
    // unless one is given.
    let (snapshot, finding_issue) = match (&a.snapshot, &a.finding) {
        (Some(s), _) => (s.clone(), None),
        (None, Some(fp)) => {
            let (path, summary) =
                super::serve::finding_snapshot(&a.data_dir, a.database.as_deref(), fp)?;
            (path, Some(summary))
        }
        (None, None) => {
            return Err(UsageError("give --snapshot FILE or --finding FP".into()).into());
        }
    };
    let issue = match (&a.issue, &a.title, &a.body) {
        (Some(f), _, _) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?)
        }
        (None, None, None) => finding_issue,
        (None, t, b) => {
            Some(format!("{}\n\n{}", t.as_deref().unwrap_or(""), b.as_deref().unwrap_or("")))
        }
    };
    Ok(PlanOptions {
        snapshot,
        source: a.source.clone(),
        run: a.run.clone(),
        url_env: a.url_env.clone(),
        issue,
        runs: a.runs,
        runs_root: a.runs_dir.clone(),
        echo: if a.quiet { Echo::Quiet } else { Echo::Prefixed },
        serial: a.serial,
    })
}

/// Writes report.md and report.html next to result.json; returns their paths.
pub fn write_reports(
    r: &WorkResult,
    dir: &Path,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let md = dir.join("report.md");
    let html = dir.join("report.html");
    std::fs::write(&md, af_report::markdown(r)).with_context(|| md.display().to_string())?;
    let charts = af_report::charts(r, &af_report::Inputs::load(r));
    std::fs::write(&html, af_report::html(r, &charts))
        .with_context(|| html.display().to_string())?;
    Ok((md, html))
}

/// The Worker for `engine`: the builtin codemods, or an LLM editing through tools.
pub fn run_worker(
    rt: &tokio::runtime::Runtime,
    opts: &WorkOptions,
    engine: &EngineSpec,
    llm: &LlmArgs,
) -> anyhow::Result<WorkResult> {
    let EngineSpec::Llm(engine) = engine else {
        return Ok(rt.block_on(af_agent::work(opts))?);
    };
    let (e, budget) = llm_engine(engine, llm)?;
    Ok(rt.block_on(af_agent::work::llm::work(&opts.run_dir, &e, budget, opts.echo))?)
}

/// An LLM engine and its budget from the flags.
fn llm_engine(
    engine: &str,
    llm: &LlmArgs,
) -> anyhow::Result<(af_agent::llm::Engine, af_agent::llm::Budget)> {
    let mut e = af_agent::llm::Engine::from_spec(engine, llm.base_url.as_deref())
        .map_err(|e| UsageError(e.to_string()))?;
    e.price = llm.price;
    let budget =
        af_agent::llm::Budget { steps: llm.max_steps, tokens: llm.max_tokens, wall: llm.max_wall };
    Ok((e, budget))
}

/// The Planner for `engine`.
pub fn run_planner(
    rt: &tokio::runtime::Runtime,
    opts: &PlanOptions,
    engine: &EngineSpec,
    llm: &LlmArgs,
) -> anyhow::Result<Plan> {
    let EngineSpec::Llm(engine) = engine else {
        return Ok(rt.block_on(af_agent::plan(opts))?);
    };
    let (e, budget) = llm_engine(engine, llm)?;
    Ok(rt.block_on(af_agent::plan::llm::plan(opts, &e, budget))?)
}

/// Runs plan then work; `None` when the plan did not proceed.
pub fn run_fix(a: &PlanArgs, max_attempts: usize) -> anyhow::Result<(Plan, Option<WorkResult>)> {
    let t = Instant::now();
    let opts = options(a)?;
    let rt = runtime()?;
    let p = run_planner(&rt, &opts, &a.engine, &a.llm)?;
    if p.decision != Decision::Proceed {
        return Ok((p, None));
    }
    let wopts = WorkOptions { run_dir: p.run_dir.clone().into(), max_attempts, echo: opts.echo };
    let mut r = run_worker(&rt, &wopts, &a.engine, &a.llm)?;
    let accounted: f64 = r.timings.iter().map(|x| x.ms).sum();
    let total = t.elapsed().as_secs_f64() * 1000.0;
    if total > accounted {
        r.timings.push(af_agent::Phase {
            name: "other (reading, git, writing)".into(),
            ms: total - accounted,
        });
    }
    af_agent::write_result(Path::new(&p.run_dir), &r)?;
    Ok((p, Some(r)))
}
