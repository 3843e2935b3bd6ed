//! `af plan`, `af work`, `af fix`: the builtin engine's loop, and the reports it writes.

use std::path::Path;
use std::time::Instant;

use af_agent::plan::fmt_values;
use af_agent::{Decision, Plan, PlanOptions, WorkOptions, WorkResult};
use af_measure::Echo;
use anyhow::Context;

use crate::args::{FixArgs, LlmArgs, PlanArgs, WorkArgs};
use crate::exit::{self, UsageError};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn options(a: &PlanArgs) -> anyhow::Result<PlanOptions> {
    let issue = match (&a.issue, &a.title, &a.body) {
        (Some(f), _, _) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?)
        }
        (None, None, None) => None,
        (None, t, b) => {
            Some(format!("{}\n\n{}", t.as_deref().unwrap_or(""), b.as_deref().unwrap_or("")))
        }
    };
    Ok(PlanOptions {
        snapshot: a.snapshot.clone(),
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

fn map_plan_err(e: af_agent::PlanError) -> anyhow::Error {
    match e {
        af_agent::PlanError::Input(m) => UsageError(m).into(),
        af_agent::PlanError::Internal(m) => anyhow::anyhow!(m),
    }
}

fn map_work_err(e: af_agent::WorkError) -> anyhow::Error {
    match e {
        af_agent::WorkError::Input(m) => UsageError(m).into(),
        af_agent::WorkError::Internal(m) => anyhow::anyhow!(m),
    }
}

/// Prints the plan for a person.
pub fn print_plan(p: &Plan) {
    println!("plan {} ({})", p.id, p.run_dir);
    if let Some(f) = &p.finding {
        println!("  finding   {} [{}] {}: {}", f.id, f.severity, f.detector, f.summary);
        println!("            chosen because {}", f.why);
    }
    if let Some(m) = &p.metric {
        println!("  metric    {m}");
    }
    for (i, s) in p.sites.iter().take(3).enumerate() {
        println!(
            "  site {}    {}:{} {} (score {:.1})",
            i + 1,
            s.site.file,
            s.site.line,
            s.site.pattern,
            s.score
        );
        for r in &s.reasons {
            println!("              - {r}");
        }
    }
    if let Some(b) = &p.baseline {
        for m in &b.metrics {
            println!(
                "  baseline  {} = [{}]{}",
                m.metric,
                fmt_values(m),
                m.expect.as_ref().map(|e| format!(" (expect {e})")).unwrap_or_default()
            );
        }
        println!("  harness   {}", p.harness_hash.as_deref().unwrap_or(""));
        if let Some(d) = p.harness_inputs.as_ref().and_then(|h| h.driver.as_ref()) {
            println!(
                "  driver    {} (written by the Planner; its digest is in the hash)",
                d.display()
            );
        }
    }
    let what = match p.decision {
        Decision::Proceed => "proceed",
        Decision::Abstain => "ABSTAIN",
        Decision::NoSite => "NO SITE",
    };
    println!("  decision  {what}: {}", p.reason);
    for s in &p.skipped {
        println!("  passed    {} ({}): {}", s.id, s.detector, s.reason);
    }
    if let Some(u) = p.usage {
        let cost = u
            .cost_usd
            .map_or_else(|| "cost not known (--price IN/OUT)".to_owned(), |c| format!("${c:.4}"));
        println!("  model     {} in / {} out tokens · {cost}", u.input_tokens, u.output_tokens);
    }
}

/// Writes report.md and report.html next to result.json; returns their paths.
pub fn write_reports(
    r: &WorkResult,
    dir: &Path,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let md = dir.join("report.md");
    let html = dir.join("report.html");
    std::fs::write(&md, af_report::markdown(r)).with_context(|| md.display().to_string())?;
    let charts = af_report::charts(r);
    std::fs::write(&html, af_report::html(r, &charts))
        .with_context(|| html.display().to_string())?;
    Ok((md, html))
}

/// Prints the result for a person.
pub fn print_result(r: &WorkResult, md: &Path, html: &Path) {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["metric", "expect", "baseline runs", "confirm runs"]);
    let confirm = r.shown_attempt().and_then(|a| a.confirm.as_ref());
    if let Some(b) = &r.plan.baseline {
        for (i, m) in b.metrics.iter().enumerate() {
            t.add_row([
                m.metric.clone(),
                m.expect.clone().unwrap_or_else(|| "—".into()),
                fmt_values(m),
                confirm
                    .and_then(|c| c.metrics.get(i))
                    .map(fmt_values)
                    .unwrap_or_else(|| "—".into()),
            ]);
        }
    }
    println!("{t}");
    if let Some(ev) = r.shown_attempt().and_then(|a| a.evaluation.as_ref()) {
        for c in &ev.checks {
            let mark = match c.passed {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "n/a ",
            };
            println!("  [{mark}] {}: {}", c.name, c.detail);
        }
    }
    println!("{}", r.verdict);
    let total: f64 = r.timings.iter().map(|p| p.ms).sum();
    println!(
        "phases: {} — total {:.1} s",
        r.timings
            .iter()
            .map(|p| format!("{} {:.1} s", p.name, p.ms / 1000.0))
            .collect::<Vec<_>>()
            .join(", "),
        total / 1000.0
    );
    if let Some(u) = af_report::usage(r) {
        println!("model: {u}");
    }
    println!("report: {}\n        {}", md.display(), html.display());
    if r.confirmed {
        println!("branch: {} in {}", r.branch, r.worktree);
    }
}

/// `af plan`.
pub fn plan(a: &PlanArgs) -> anyhow::Result<i32> {
    let opts = options(a)?;
    let p = run_planner(&runtime()?, &opts, &a.engine, &a.llm)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print_plan(&p);
    }
    Ok(if p.decision == Decision::Proceed { exit::OK } else { exit::CHECK_FAILED })
}

/// `af work`.
pub fn work(a: &WorkArgs) -> anyhow::Result<i32> {
    let opts = WorkOptions {
        run_dir: a.run_dir.clone(),
        max_attempts: a.max_attempts,
        echo: if a.quiet { Echo::Quiet } else { Echo::Prefixed },
    };
    let rt = runtime()?;
    let r = run_worker(&rt, &opts, &a.engine, &a.llm)?;
    let (md, html) = write_reports(&r, &a.run_dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_result(&r, &md, &html);
    }
    Ok(if r.confirmed { exit::OK } else { exit::CHECK_FAILED })
}

/// The Worker for `engine`: the builtin codemods, or an LLM editing through tools.
fn run_worker(
    rt: &tokio::runtime::Runtime,
    opts: &WorkOptions,
    engine: &str,
    llm: &LlmArgs,
) -> anyhow::Result<WorkResult> {
    if engine == "builtin" {
        return rt.block_on(af_agent::work(opts)).map_err(map_work_err);
    }
    let (e, budget) = llm_engine(engine, llm)?;
    rt.block_on(af_agent::llm::worker::work(&opts.run_dir, &e, budget, opts.echo))
        .map_err(map_work_err)
}

/// An LLM engine and its budget from the flags.
fn llm_engine(
    engine: &str,
    llm: &LlmArgs,
) -> anyhow::Result<(af_agent::llm::Engine, af_agent::llm::worker::Budget)> {
    let mut e = af_agent::llm::Engine::from_spec(engine, llm.base_url.as_deref())
        .map_err(|e| UsageError(e.to_string()))?;
    e.price = llm
        .price
        .as_deref()
        .map(str::parse::<af_agent::llm::Price>)
        .transpose()
        .map_err(|m| UsageError(format!("--price: {m}")))?;
    let wall = af_measure::parse_timeout_ms(&llm.max_wall).map_err(UsageError)?;
    let budget = af_agent::llm::worker::Budget {
        steps: llm.max_steps,
        tokens: llm.max_tokens,
        wall: std::time::Duration::from_millis(wall),
    };
    Ok((e, budget))
}

/// The Planner for `engine`.
fn run_planner(
    rt: &tokio::runtime::Runtime,
    opts: &PlanOptions,
    engine: &str,
    llm: &LlmArgs,
) -> anyhow::Result<Plan> {
    if engine == "builtin" {
        return rt.block_on(af_agent::plan(opts)).map_err(map_plan_err);
    }
    let (e, budget) = llm_engine(engine, llm)?;
    rt.block_on(af_agent::llm::planner::plan(opts, &e, budget)).map_err(map_plan_err)
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
    af_agent::run_dir::write_json(&Path::new(&p.run_dir).join("result.json"), &r)?;
    Ok((p, Some(r)))
}

/// `af fix`.
pub fn fix(a: &FixArgs) -> anyhow::Result<i32> {
    let (p, r) = run_fix(&a.plan, a.max_attempts)?;
    let Some(r) = r else {
        if a.plan.json {
            println!("{}", serde_json::to_string_pretty(&p)?);
        } else {
            print_plan(&p);
        }
        return Ok(exit::CHECK_FAILED);
    };
    let (md, html) = write_reports(&r, Path::new(&p.run_dir))?;
    if a.plan.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_plan(&p);
        println!();
        print_result(&r, &md, &html);
    }
    Ok(if r.confirmed { exit::OK } else { exit::CHECK_FAILED })
}
