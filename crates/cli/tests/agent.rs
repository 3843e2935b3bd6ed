//! The loop end to end with real programs: `af fix` on the bundled Radar example (Node, a
//! real git worktree, the mock on loopback), and the Planner abstaining when there is nothing a
//! bound would fix.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("root")
}

#[test]
fn af_fix_confirms_the_radar_fix_on_the_identical_harness() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("radar");
    af_agent::work::copy_tree(&repo_root().join("examples/radar"), &src).expect("copy");
    let original = std::fs::read_to_string(src.join("src/sync.js")).expect("sync.js");
    let out = Command::cargo_bin("af")
        .expect("af")
        .args(["fix", "--quiet", "--json", "--snapshot"])
        .arg(src.join("snapshots/before.jsonl"))
        .arg("--source")
        .arg(&src)
        .output()
        .expect("run af fix");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("result JSON");
    assert_eq!(r["confirmed"], true);
    let plan = &r["plan"];
    assert_eq!(plan["decision"], "proceed");
    assert_eq!(plan["sites"][0]["file"], "src/sync.js", "{:#}", plan["sites"]);
    let bound = plan["bound"].as_f64().expect("bound");
    let base = &plan["baseline"]["metrics"][0];
    let chosen = r["chosen"].as_u64().expect("chosen") as usize;
    let attempt = &r["attempts"][chosen];
    let confirm = &attempt["confirm"]["metrics"][0];
    assert!(base["max"].as_f64().expect("max") > bound, "baseline must violate: {base}");
    assert!(confirm["max"].as_f64().expect("max") <= bound, "confirm must meet: {confirm}");
    // Same harness, same workload, every Evaluator check that applies passed.
    assert_eq!(plan["harness_hash"], attempt["confirm"]["harness_hash"]);
    let calls = |m: &Value| m["metrics"][2]["values"].clone();
    assert_eq!(calls(&plan["baseline"]), calls(&attempt["confirm"]));
    for c in attempt["evaluation"]["checks"].as_array().expect("checks") {
        assert_ne!(c["passed"], false, "{c}");
    }
    // The user's copy is untouched; the fix is a commit on the branch in the worktree.
    assert_eq!(std::fs::read_to_string(src.join("src/sync.js")).expect("sync.js"), original);
    let wt = PathBuf::from(r["worktree"].as_str().expect("worktree"));
    let fixed = std::fs::read_to_string(wt.join("src/sync.js")).expect("fixed");
    assert!(fixed.contains("mapWithConcurrency(refs, MAX_IN_FLIGHT,"), "{fixed}");
    let run_dir = PathBuf::from(plan["run_dir"].as_str().expect("run_dir"));
    let patch = std::fs::read_to_string(run_dir.join("patch.diff")).expect("patch");
    assert!(
        patch.contains("+const MAX_IN_FLIGHT = 10;") || patch.contains("+const MAX_IN_FLIGHT ="),
        "{patch}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("html");
    assert!(
        html.matches("<svg").count() >= 3 && !html.contains("<script"),
        "charts inline, no scripts"
    );
    let md = std::fs::read_to_string(run_dir.join("report.md")).expect("md");
    assert!(md.contains("| **Confirm result** |") && md.contains("```diff"), "{md}");
    for f in [
        "plan.json",
        "harness.json",
        "result.json",
        "baseline/measure.json",
        "baseline/run-1.journal.jsonl",
    ] {
        assert!(run_dir.join(f).exists(), "{f} missing");
    }
}

/// `af plan --quiet --runs 1` of `fixtures/programs/fanout.js` against `snapshot`.
fn plan_fanout(snapshot: &Path, runs_dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::cargo_bin("af")
        .expect("af")
        .envs(env.iter().copied())
        .args(["plan", "--quiet", "--runs", "1", "--snapshot"])
        .arg(snapshot)
        .arg("--source")
        .arg(repo_root().join("fixtures/programs"))
        .args(["--run", "node fanout.js", "--url-env", "API_URL", "--runs-dir"])
        .arg(runs_dir)
        .output()
        .expect("run")
}

#[test]
fn plan_abstains_when_errors_are_spread_and_load_independent() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("spread.jsonl");
    let mut w = af_snapshot::NativeWriter::create(&snap, false, false).expect("writer");
    for e in af_testkit::scenarios::spread_5xx(7) {
        w.write(&e).expect("write");
    }
    w.finish().expect("finish");
    let out = plan_fanout(&snap, &tmp.path().join("runs"), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ABSTAIN") && stdout.contains("not load-related"), "{stdout}");
}

#[test]
fn plan_abstains_when_the_baseline_already_meets_the_threshold() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = repo_root().join("fixtures/gmail/capture.har");
    let out = plan_fanout(&snap, &tmp.path().join("runs"), &[("POOL", "4"), ("N", "40")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("already meets"), "{stdout}");
    // The evidence is kept: the plan and the baseline's journal.
    let run = std::fs::read_dir(tmp.path().join("runs"))
        .expect("runs")
        .next()
        .expect("a run")
        .expect("entry")
        .path();
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("plan.json")).expect("plan"))
            .expect("json");
    assert_eq!(plan["decision"], "abstain");
    assert!(plan["baseline"]["metrics"][0]["max"].as_f64().expect("max") <= 4.0);
}

#[test]
fn an_unknown_engine_is_a_usage_error() {
    let out = Command::cargo_bin("af")
        .expect("af")
        .args(["plan", "--engine", "gpt4", "--snapshot", "x.har"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("openai:MODEL"));
}

#[test]
fn a_plan_without_a_program_is_a_usage_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::cargo_bin("af")
        .expect("af")
        .args(["plan", "--snapshot"])
        .arg(repo_root().join("fixtures/gmail/capture.har"))
        .arg("--source")
        .arg(tmp.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--run") && err.contains("af.toml"), "{err}");
    assert!(!tmp.path().join(".af").exists(), "nothing is written before the inputs are checked");
}

/// A scripted model: OpenAI Chat Completions responses, one per turn, replayed in order by
/// `af mock` on loopback. Returns (base URL, stop, server task).
async fn scripted_model(
    turns: Vec<Value>,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let exchanges: Vec<af_snapshot::Exchange> = turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            af_testkit::ex("POST", "http://model.test/v1/chat/completions")
                .at_ms(i as i64)
                .status(200)
                .response_header("content-type", "application/json")
                .response_body(&t.to_string())
                .build()
        })
        .collect();
    let cfg = af_mock::MockConfig {
        failures: af_mock::Failures::Replay,
        latency: af_mock::Latency::None,
        ..af_mock::MockConfig::default()
    };
    let mock = af_mock::Mock::new(&exchanges, cfg, None).expect("mock");
    let listener = af_mock::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = af_mock::serve(listener, mock, async {
            let _ = rx.await;
        })
        .await;
    });
    (base, tx, task)
}

fn call(id: &str, name: &str, args: &Value) -> Value {
    serde_json::json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60}
    })
}

/// `af fix --engine openai:scripted` on `src` (its `snapshots/before.jsonl`), the model's
/// turns served over loopback.
async fn scripted_fix(turns: Vec<Value>, src: &Path, extra: &[&str]) -> std::process::Output {
    let (base, stop, server) = scripted_model(turns).await;
    let snapshot = src.join("snapshots/before.jsonl");
    let source = src.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("af")
            .expect("af")
            .env_remove("OPENAI_API_KEY")
            .args(["fix", "--quiet", "--json", "--engine", "openai:scripted", "--base-url", &base])
            .arg("--snapshot")
            .arg(&snapshot)
            .arg("--source")
            .arg(&source)
            .args(&extra)
            .output()
            .expect("fix")
    })
    .await
    .expect("join");
    let _ = stop.send(());
    let _ = server.await;
    out
}

/// The scripted Planner's reason for its choice.
const RATIONALE: &str =
    "fetchMessage is mapped over the whole page at once: 100 calls in flight per user.";

/// The Worker's and the review's turns of a scripted fix of Radar: read, a pool of 10, a
/// refused edit that would break the syntax, the helper, confirm, submit; then the review.
fn radar_fix_turns() -> Vec<Value> {
    let helper = "// At most `limit` calls in flight; results keep the input order.\n\
                  async function mapPool(items, limit, fn) {\n  const results = new Array(items.length);\n  let next = 0;\n\
                  \x20 const worker = async () => {\n    while (next < items.length) {\n      const i = next++;\n      results[i] = await fn(items[i], i);\n    }\n  };\n\
                  \x20 await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));\n  return results;\n}\n\n";
    vec![
        call("c1", "read_file", &serde_json::json!({"path": "src/sync.js"})),
        call(
            "c2",
            "str_replace",
            &serde_json::json!({"path": "src/sync.js",
            "old": "await Promise.all(refs.map((ref) => fetchMessage(gmail, ref)))",
            "new": "await mapPool(refs, 10, (ref) => fetchMessage(gmail, ref))"}),
        ),
        // A replacement that would break the syntax is refused; the model gets the error back.
        call(
            "c3",
            "str_replace",
            &serde_json::json!({"path": "src/sync.js", "old": "module.exports = {", "new": "module.exports = {{"}),
        ),
        call(
            "c4",
            "str_replace",
            &serde_json::json!({"path": "src/sync.js",
            "old": "module.exports = { syncUser, fetchMessage };",
            "new": format!("{helper}module.exports = {{ syncUser, fetchMessage }};")}),
        ),
        call("c5", "run_confirm", &serde_json::json!({})),
        call(
            "c6",
            "submit_result",
            &serde_json::json!({"summary": "Bound the per-page fetch to 10 in flight with a small worker pool."}),
        ),
        // Evaluator's review.
        call(
            "r1",
            "submit_review",
            &serde_json::json!({"covered": true, "notes": "The page fetch is bounded; every message is still fetched."}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_model_drives_planner_worker_and_evaluator_to_a_confirmed_fix() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("radar");
    af_agent::work::copy_tree(&repo_root().join("examples/radar"), &src).expect("copy");
    let mut turns = vec![
        // Planner.
        call("p1", "query_traffic", &serde_json::json!({})),
        call("p2", "list_sites", &serde_json::json!({})),
        call(
            "p3",
            "submit_plan",
            &serde_json::json!({"file": "src/sync.js", "line": 26, "rationale": RATIONALE}),
        ),
    ];
    turns.extend(radar_fix_turns());
    let out = scripted_fix(turns, &src, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("result");
    assert_eq!(r["confirmed"], true);
    let plan = &r["plan"];
    let run_dir = PathBuf::from(plan["run_dir"].as_str().expect("run_dir"));
    assert_eq!(plan["engine"], "openai:scripted");
    // Usage as the provider reported it, per phase (900 + 60 tokens per scripted turn).
    assert_eq!(plan["usage"], serde_json::json!({"input_tokens": 2700, "output_tokens": 180}));
    assert_eq!(r["usage"], serde_json::json!({"input_tokens": 6300, "output_tokens": 420}));
    assert_eq!(plan["sites"][0]["file"], "src/sync.js");
    assert!(plan["sites"][0]["reasons"][0].as_str().expect("reason").contains(RATIONALE));
    let attempt = &r["attempts"][0];
    assert!(attempt["confirm"]["metrics"][0]["max"].as_f64().expect("max") <= 10.0, "{attempt}");
    assert_eq!(attempt["confirm"]["harness_hash"], plan["harness_hash"]);
    for c in attempt["evaluation"]["checks"].as_array().expect("checks") {
        assert_ne!(c["passed"], false, "{c}");
    }
    assert!(r["patch"].as_str().expect("patch").contains("+async function mapPool"));
    // The trajectory: every model exchange and tool call, including the refused edit.
    let traj = std::fs::read_to_string(run_dir.join("trajectory.jsonl")).expect("trajectory");
    let lines: Vec<Value> =
        traj.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(
        lines.iter().filter(|l| l["kind"] == "model").count(),
        10,
        "3 planner + 6 worker turns + 1 review"
    );
    let review = attempt["evaluation"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "LLM review (requirement coverage)")
        .expect("the review is a check");
    assert_eq!(review["passed"], true, "{review}");
    assert_eq!(lines.iter().filter(|l| l["phase"] == "plan").count(), 6);
    let refused =
        lines.iter().find(|l| l["kind"] == "tool" && l["ok"] == false).expect("a refused edit");
    assert!(refused["result"].as_str().expect("text").contains("no longer parse"), "{refused}");
}

/// A project with no program of its own: the scripted Planner writes a harness driver, the
/// tool measures it, and the driver's digest is part of the harness the Worker confirms on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_planner_writes_a_harness_driver_when_there_is_no_run_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("radar");
    af_agent::work::copy_tree(&repo_root().join("examples/radar"), &src).expect("copy");
    std::fs::write(src.join("af.toml"), "[test]\ncommand = \"node --test test/\"\n")
        .expect("af.toml without [run]");
    let driver = "'use strict';\n// One sync pass per configured user, against the mock.\n\
        const path = require('node:path');\n\
        process.env.GMAIL_API_URL = process.env.AF_MOCK_URL;\n\
        const { syncUser } = require(path.resolve('src/sync.js'));\n\
        const { buildIndex } = require(path.resolve('src/match.js'));\n\
        const config = require(path.resolve('config/users.json'));\n\
        (async () => {\n  const index = buildIndex(config);\n  for (const user of config.users) await syncUser(user, index);\n})()\n\
        \x20 .catch((e) => { console.error(e); process.exit(1); });\n";
    let status_429 = "calls{status=\"429\"}";
    let mut turns = vec![
        call("p1", "query_traffic", &serde_json::json!({})),
        call("p2", "find_symbol", &serde_json::json!({"name": "fetchMessage"})),
        call("p3", "compute_metric", &serde_json::json!({"metric": status_429})),
        // Refused: nothing has been measured yet.
        call(
            "p4",
            "submit_plan",
            &serde_json::json!({"file": "src/sync.js", "line": 26, "rationale": RATIONALE}),
        ),
        call("p5", "write_driver", &serde_json::json!({"file": "driver.js", "code": driver})),
        call("p6", "run_harness", &serde_json::json!({})),
        call(
            "p7",
            "compute_metric",
            &serde_json::json!({"metric": "peak_inflight{per=\"caller\"}", "over": "baseline"}),
        ),
        call("p8", "list_files", &serde_json::json!({"under": "config"})),
        call(
            "p9",
            "submit_plan",
            &serde_json::json!({"file": "src/sync.js", "line": 26, "rationale": RATIONALE}),
        ),
    ];
    turns.extend(radar_fix_turns());
    let out = scripted_fix(turns, &src, &["--price", "3/15"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("result");
    assert_eq!(r["confirmed"], true);
    let plan = &r["plan"];
    // Cost from --price (USD per million tokens): 9 planner turns, 6 worker turns + review,
    // each 900 in / 60 out.
    let cost = |u: &Value, turns: f64| {
        let c = u["cost_usd"].as_f64().expect("cost");
        let want = turns * (900.0 * 3.0 + 60.0 * 15.0) / 1e6;
        assert!((c - want).abs() < 1e-9, "{c} vs {want}");
    };
    cost(&plan["usage"], 9.0);
    cost(&r["usage"], 7.0);
    let run_dir = PathBuf::from(plan["run_dir"].as_str().expect("run_dir"));
    let report = std::fs::read_to_string(run_dir.join("report.md")).expect("report");
    assert!(
        report.contains("plan 8100 in / 540 out tokens") && report.contains("$0.0576"),
        "{report}"
    );
    let driver_path = run_dir.join("driver/driver.js");
    assert_eq!(std::fs::read_to_string(&driver_path).expect("driver"), driver);
    // Reviewers see the workload: the driver's code is in the report.
    assert!(
        report.contains("### Harness driver")
            && report.contains("for (const user of config.users) await syncUser"),
        "{report}"
    );
    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("html");
    assert!(html.contains("Harness driver") && html.contains("syncUser(user, index)"));
    // The harness runs the driver and carries its digest.
    let harness = &plan["harness"];
    assert_eq!(harness["command"], serde_json::json!(["node", driver_path.display().to_string()]));
    assert_eq!(
        harness["driver"]["sha256"].as_str().expect("digest"),
        af_measure::digest_files(&[driver_path.as_path()]).expect("digest")
    );
    assert!(
        harness["url_env"].as_array().expect("env").contains(&serde_json::json!("AF_MOCK_URL"))
    );
    let baseline = plan["baseline"]["metrics"][0]["max"].as_f64().expect("baseline");
    assert!(baseline > 10.0, "the driver reproduces the fan-out: {baseline}");
    let attempt = &r["attempts"][0];
    assert!(attempt["confirm"]["metrics"][0]["max"].as_f64().expect("max") <= 10.0, "{attempt}");
    assert_eq!(attempt["confirm"]["harness_hash"], plan["harness_hash"]);

    let traj = std::fs::read_to_string(run_dir.join("trajectory.jsonl")).expect("trajectory");
    let tools: Vec<Value> = traj
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|l| l["kind"] == "tool" && l["phase"] == "plan")
        .collect();
    let result = |i: usize| tools[i]["result"].as_str().unwrap_or_default().to_owned();
    assert!(
        result(1).contains("src/sync.js:8:") && result(1).contains("function_declaration"),
        "{}",
        result(1)
    );
    // compute_metric over the snapshot agrees with a count of the snapshot's 429s.
    let snapshot = std::fs::read_to_string(src.join("snapshots/before.jsonl")).expect("snapshot");
    let count = snapshot.lines().filter(|l| l.contains("\"status\":429")).count();
    assert!(count > 0);
    assert!(result(2).ends_with(&format!("= {count}")), "{} vs {count}", result(2));
    assert_eq!(tools[3]["ok"], false, "a plan without a baseline is refused");
    assert!(result(3).contains("no baseline"), "{}", result(3));
    assert!(result(5).contains("run 1: exited 0,"), "{}", result(5));
    assert!(result(6).contains("run 1: "), "{}", result(6));
    assert!(result(7).contains("config/users.json ("), "{}", result(7));
    assert!(!result(7).contains("src/"), "only under config/: {}", result(7));
    assert_eq!(tools[8]["ok"], true);

    // The driver is part of the harness: edited after planning, the Worker refuses it.
    std::fs::write(&driver_path, format!("{driver}// edited\n")).expect("edit");
    let out = Command::cargo_bin("af")
        .expect("af")
        .args(["work", "--quiet"])
        .arg(&run_dir)
        .output()
        .expect("work");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hash") && err.contains("driver.js changed"), "{err}");
}
