//! `af demo`: the whole loop on the bundled example, offline — inspect the before-snapshot,
//! plan (baseline), work (fix, confirm, evaluate), record a post-fix capture against the
//! Gmail simulator with `af record`, and diff before/after. Exit 0 only when the fix is
//! confirmed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use crate::args::{DemoArgs, PlanArgs};
use crate::exit::{self, UsageError};
use crate::output::{DEMO_SCHEMA, DemoOutput, Headline, Reports};

/// The simulator's port in the committed snapshots.
const SIM_PORT: u16 = 4191;

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/radar");

/// The simulator, killed on drop.
struct Sim(Child, u16);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sim(dir: &Path) -> anyhow::Result<Sim> {
    let mut child = Command::new("node")
        .arg(dir.join("gmail-sim/server.js"))
        // The committed snapshots were recorded against the simulator on this port, so the
        // before/after diff lines up by host; any free port when it is taken.
        .arg(
            if std::net::TcpListener::bind(("127.0.0.1", SIM_PORT)).is_ok() { SIM_PORT } else { 0 }
                .to_string(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context(
            "starting the Gmail simulator (node gmail-sim/server.js) — is Node 20 installed?",
        )?;
    let out = child.stdout.take().context("simulator stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let port = line
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("simulator said {line:?}"))?;
    Ok(Sim(child, port))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the steps' text goes: stdout, or stderr when stdout carries the JSON.
struct Say {
    json: bool,
}

impl Say {
    fn text(&self, t: &str) {
        if self.json {
            eprint!("{t}");
        } else {
            print!("{t}");
        }
    }
    fn line(&self, t: &str) {
        self.text(&format!("{t}\n"));
    }
    fn step(&self, n: u32, what: &str) {
        self.line(&format!("\n== {n}. {what}"));
    }
    /// A child's stdout: ours, or stderr.
    fn child_stdout(&self) -> Stdio {
        if self.json { Stdio::from(std::io::stderr()) } else { Stdio::inherit() }
    }
}

/// The checked metric's values before and after.
fn headline(plan: &af_agent::Plan, result: Option<&af_agent::WorkResult>) -> Option<Headline> {
    let base = plan.baseline.as_ref()?.primary()?;
    let confirm = result
        .and_then(|r| r.shown_attempt())
        .and_then(|a| a.confirm.as_ref())
        .and_then(|c| c.primary())
        .map(|m| m.values.clone())
        .unwrap_or_default();
    Some(Headline {
        metric: base.metric.clone(),
        expect: base.expect.clone(),
        baseline: base.values.clone(),
        confirm,
        harness: plan.harness_hash.clone(),
    })
}

/// `af demo`.
pub fn run(a: &DemoArgs) -> anyhow::Result<i32> {
    let say = Say { json: a.json };
    let example = a.example.clone().unwrap_or_else(|| PathBuf::from(BUNDLED));
    if !example.join("snapshots/before.jsonl").exists() {
        return Err(UsageError(format!(
            "{}: not an example directory (no snapshots/before.jsonl); pass --example DIR",
            example.display()
        ))
        .into());
    }
    let work = match &a.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("af-demo-{}", af_agent::run_dir::new_id())),
    };
    let src = work.join("radar");
    if src.exists() {
        bail!("{} already exists; pass another --out", src.display());
    }
    af_agent::work::copy_tree(&example, &src)
        .with_context(|| format!("copying {} to {}", example.display(), src.display()))?;
    let before = src.join("snapshots/before.jsonl");
    let af = std::env::current_exe()?;
    say.line(
        "af demo: Radar syncs sent Gmail messages for 3 sales users; a snapshot recorded with `af record` shows 429s.",
    );
    say.line(&format!("working copy: {}", src.display()));

    say.step(1, "inspect the snapshot (af inspect snapshots/before.jsonl)");
    let st = Command::new(&af).arg("inspect").arg(&before).stdout(say.child_stdout()).status()?;
    if !st.success() {
        bail!("af inspect failed on {}", before.display());
    }

    say.step(2, "plan: finding → metric → code site → baseline (af plan)");
    let pa = PlanArgs {
        snapshot: Some(before.clone()),
        finding: None,
        data_dir: std::path::PathBuf::from(".af/serve"),
        database: None,
        source: src.clone(),
        run: None,
        url_env: None,
        issue: None,
        title: None,
        body: None,
        runs: 3,
        runs_dir: None,
        engine: crate::args::EngineSpec::Builtin,
        llm: crate::args::LlmArgs {
            base_url: None,
            max_steps: 40,
            max_tokens: 400_000,
            max_wall: std::time::Duration::from_secs(15 * 60),
            price: None,
        },
        serial: false,
        quiet: !a.verbose,
        json: false,
    };
    let (plan, result) = super::engine::run_fix(&pa, 3)?;
    say.text(&crate::render::plan(&plan));
    let mut out = DemoOutput {
        schema: DEMO_SCHEMA.into(),
        confirmed: false,
        verdict: String::new(),
        working_copy: src.display().to_string(),
        headline: headline(&plan, result.as_ref()),
        plan: plan.clone(),
        result: None,
        reports: None,
        after_capture: None,
        diff: None,
    };
    let Some(result) = result else {
        say.line("\nthe planner did not proceed; nothing to fix (exit 1)");
        out.verdict = format!("the Planner did not proceed: {}", plan.reason);
        return finish(&say, &out, exit::CHECK_FAILED);
    };

    say.step(
        3,
        "work: codemod in a git worktree → confirm on the identical harness → evaluate (af work)",
    );
    let (md, html) = super::engine::write_reports(&result, Path::new(&plan.run_dir))?;
    say.text(&crate::render::work_result(&result, &md, &html));
    out.reports =
        Some(Reports { markdown: md.display().to_string(), html: html.display().to_string() });
    out.verdict = result.verdict.clone();
    out.confirmed = result.confirmed;
    let worktree = result.worktree.clone();
    out.result = Some(result);
    if !out.confirmed {
        return finish(&say, &out, exit::CHECK_FAILED);
    }

    say.step(4, "post-fix capture: the fixed code against the Gmail simulator, through af record");
    let sim = start_sim(&src)?;
    let port = free_port()?;
    let after = work.join("after.jsonl");
    let rec = Command::new(&af)
        .current_dir(&worktree)
        .env("GMAIL_API_URL", format!("http://127.0.0.1:{port}"))
        .args(["record", "--force", "-o"])
        .arg(&after)
        .arg("--reverse")
        .arg(format!("127.0.0.1:{port}=http://127.0.0.1:{}", sim.1))
        .args(["--", "node", "src/cli.js", "sync"])
        .output()?;
    drop(sim);
    say.text(
        &String::from_utf8_lossy(&rec.stdout)
            .lines()
            .take_while(|l| !l.starts_with('┌'))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    if !rec.status.success() {
        bail!("recording the fixed program failed: {}", String::from_utf8_lossy(&rec.stderr));
    }
    out.after_capture = Some(after.display().to_string());

    say.step(5, "post-deploy comparison (af diff before after)");
    if a.json {
        let d = Command::new(&af).args(["diff", "--json"]).arg(&before).arg(&after).output()?;
        if !d.status.success() {
            bail!("af diff failed: {}", String::from_utf8_lossy(&d.stderr));
        }
        out.diff = Some(serde_json::from_slice(&d.stdout).context("af diff --json output")?);
    } else {
        let st = Command::new(&af).arg("diff").arg(&before).arg(&after).status()?;
        if !st.success() {
            bail!("af diff failed");
        }
    }
    say.line(&format!(
        "\nconfirmed. reports: {}\n                  {}",
        md.display(),
        html.display()
    ));
    finish(&say, &out, exit::OK)
}

/// Prints the JSON (with `--json`) and returns the exit code.
fn finish(say: &Say, out: &DemoOutput, code: i32) -> anyhow::Result<i32> {
    if say.json {
        println!("{}", serde_json::to_string_pretty(out)?);
    }
    Ok(code)
}
