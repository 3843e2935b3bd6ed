//! `af plan`, `af work`, `af fix`: the verbs of the loop (running an engine is `engine`'s).

use std::path::Path;

use af_agent::{Decision, WorkOptions};
use af_measure::Echo;

use super::engine::{options, run_fix, run_planner, run_worker, runtime, write_reports};
use crate::args::{FixArgs, PlanArgs, WorkArgs};
use crate::exit;

/// `af plan`.
pub fn plan(a: &PlanArgs) -> anyhow::Result<i32> {
    let opts = options(a)?;
    let p = run_planner(&runtime()?, &opts, &a.engine, &a.llm)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", crate::render::plan(&p));
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
    af_agent::write_result(&a.run_dir, &r)?;
    let (md, html) = write_reports(&r, &a.run_dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", crate::render::work_result(&r, &md, &html));
    }
    Ok(if r.confirmed { exit::OK } else { exit::CHECK_FAILED })
}

/// `af fix`.
pub fn fix(a: &FixArgs) -> anyhow::Result<i32> {
    let (p, r) = run_fix(&a.plan, a.max_attempts)?;
    let Some(r) = r else {
        if a.plan.json {
            println!("{}", serde_json::to_string_pretty(&p)?);
        } else {
            print!("{}", crate::render::plan(&p));
        }
        return Ok(exit::CHECK_FAILED);
    };
    let (md, html) = write_reports(&r, Path::new(&p.run_dir))?;
    if a.plan.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", crate::render::plan(&p));
        println!();
        print!("{}", crate::render::work_result(&r, &md, &html));
    }
    Ok(if r.confirmed { exit::OK } else { exit::CHECK_FAILED })
}
