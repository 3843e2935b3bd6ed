//! Durable jobs with real processes: `af serve` replicas queue runs through their API, `af
//! worker`s take them from one database (SQLite embedded, and a real PostgreSQL from Debian's
//! packages started by `scripts/postgres-temp.sh`), and the effects land on a GitHub-shaped
//! server on loopback. The same suite runs on both engines.
//!
//! PostgreSQL: the tests start their own throwaway cluster (installing the package when it is
//! missing); when that cannot be done they fail and say why — never pass on nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use af_testkit::forge::{FakeForge, Fault, Issue};
use common::{Server, af_bin, get, json, post, root, sleep_past_window, wait_for};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_PLANTEDsecretTOKEN_9f3a1c";

struct Pg {
    dir: tempfile::TempDir,
    url: String,
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/postgres-temp.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

fn postgres() -> Pg {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(root().join("scripts/postgres-temp.sh"))
        .arg("start")
        .arg(dir.path())
        .output()
        .expect("scripts/postgres-temp.sh");
    assert!(
        out.status.success(),
        "could not start a PostgreSQL (scripts/postgres-temp.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(url.starts_with("postgres://"), "{url}");
    Pg { dir, url }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn policy(dir: &Path, forge: &FakeForge, extra: &str) -> PathBuf {
    let p = dir.join("af.toml");
    std::fs::write(
        &p,
        format!(
            "[jobs]\nlive = true\nlease = \"3s\"\nbackoff = \"1s\"\nmax_attempts = 4\n{extra}\n\n\
             [[service]]\nname = \"stub\"\nrepo = \".\"\nforge = {{ kind = \"github\", api = \"{}\", project = \"acme/radar\", token_env = \"AF_TEST_FORGE_TOKEN\" }}\n\n\
             [[service]]\nname = \"badtoken\"\nrepo = \".\"\nforge = {{ kind = \"github\", api = \"{}\", project = \"acme/radar\", token_env = \"AF_TEST_WRONG_TOKEN\" }}\n",
            forge.base, forge.base
        ),
    )
    .expect("policy");
    p
}

fn worker(name: &str, db: &str, data: &Path, policy: &Path, concurrency: usize) -> Proc {
    let log = std::fs::File::create(data.join(format!("{name}.log"))).expect("log");
    Proc(
        Command::new(af_bin())
            .args([
                "worker",
                "--name",
                name,
                "--concurrency",
                &concurrency.to_string(),
                "--database",
                db,
                "--data-dir",
            ])
            .arg(data)
            .arg("--config")
            .arg(policy)
            .env("AF_TEST_FORGE_TOKEN", TOKEN)
            .env("AF_TEST_WRONG_TOKEN", "not-the-token")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("af worker"),
    )
}

/// A replica on `db`, with `extra` flags (a policy, window lengths).
fn replica(db: &str, data: &Path, extra: &[&str]) -> Server {
    let data = data.to_str().expect("utf-8");
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--database",
        db,
    ];
    args.extend_from_slice(extra);
    Server::start(&args, &[], 1)
}

/// A replica that queues runs under `policy`.
fn policy_replica(db: &str, data: &Path, policy: &Path) -> Server {
    replica(db, data, &["--config", policy.to_str().expect("utf-8")])
}

fn enqueue(
    base: &str,
    kind: &str,
    fp: &str,
    service: &str,
    input: &Value,
    priority: i64,
) -> (u16, Value) {
    let body = json!({"kind": kind, "fingerprint": fp, "service": service, "input": input, "priority": priority});
    let (code, _, b) =
        post(&format!("http://{base}/api/runs"), "application/json", body.to_string().as_bytes());
    (code, json(&b))
}

fn runs(base: &str) -> Vec<Value> {
    let (_, b) = get(&format!("http://{base}/api/runs?limit=1000"));
    json(&b).as_array().cloned().unwrap_or_default()
}

fn run(base: &str, id: &str) -> Value {
    let (_, b) = get(&format!("http://{base}/api/runs/{id}"));
    json(&b)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git").current_dir(dir).args(args).output().expect("git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A repository with a fix branch's commit and a report, and the bare remote it is pushed to.
fn fix_branch(tmp: &Path) -> (PathBuf, PathBuf, String, PathBuf) {
    let bare = tmp.join("remote.git");
    git(tmp, &["init", "-q", "--bare", bare.to_str().expect("utf-8")]);
    let work = tmp.join("svc");
    std::fs::create_dir_all(&work).expect("dir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("sync.js"), "await Promise.all(refs.map(get))\n").expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "base"]);
    git(&work, &["remote", "add", "origin", bare.to_str().expect("utf-8")]);
    git(&work, &["push", "-q", "origin", "main"]);
    git(&work, &["checkout", "-q", "-b", "af/fix-kill"]);
    std::fs::write(work.join("sync.js"), "await pool(refs, 10, get)\n").expect("write");
    git(&work, &["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qam", "fix"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let report = tmp.join("report.md");
    std::fs::write(
        &report,
        "# Cap the fan-out at 10\n\nPeak in-flight 100 → 10 on the identical harness.\n",
    )
    .expect("report");
    (work, bare, commit, report)
}

/// Two replicas queue 200 runs (199 stub runs that each comment once on issue #1, and one pr
/// run); three workers take them; the worker holding the pr run is killed with SIGKILL while
/// the provider is answering. Every run completes, the pr run is taken over after its lease,
/// and in effect everything happened once: one pull request, one comment per run.
fn two_replicas_three_workers_200_runs_and_a_kill_9(db: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (work, bare, commit, report) = fix_branch(tmp.path());
    let forge = FakeForge::start("acme/radar", TOKEN, Some(bare.clone()));
    forge.state.lock().expect("state").issues.push(Issue {
        number: 1,
        title: "af finding".into(),
        body: "x".into(),
        open: true,
        labels: vec!["af-finding".into()],
        comments: Vec::new(),
    });
    // The provider creates the pull request, then takes 6 s to say so: long enough to kill the
    // worker waiting for the answer.
    forge.fault(Fault {
        method: "POST".into(),
        path_contains: "/pulls".into(),
        status: 502,
        headers: Vec::new(),
        body: "slow".into(),
        times: 1,
        after_effect: true,
        delay_ms: 6_000,
    });
    let pol = policy(tmp.path(), &forge, "");
    let (d1, d2, dw) = (tmp.path().join("r1"), tmp.path().join("r2"), tmp.path().join("w"));
    for d in [&d1, &d2, &dw] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let r1 = policy_replica(db, &d1, &pol);
    let r2 = policy_replica(db, &d2, &pol);
    let (a, b) = (r1.addrs[0].clone(), r2.addrs[0].clone());

    let pr_input =
        json!({"branch": "af/fix-kill", "commit": commit, "worktree": work, "report": report});
    let (code, pr) = enqueue(&a, "pr", "v1:killtest", "stub", &pr_input, 10);
    assert_eq!(code, 201, "{pr}");
    let pr_id = pr["run"]["id"].as_str().expect("id").to_owned();
    // The same job through the other replica is the same run.
    let (code, again) = enqueue(&b, "pr", "v1:killtest", "stub", &pr_input, 10);
    assert_eq!((code, again["created"].as_bool()), (200, Some(false)), "{again}");
    assert_eq!(again["run"]["id"], pr["run"]["id"]);

    for i in 0..199 {
        let base = if i % 2 == 0 { &a } else { &b };
        let (code, r) =
            enqueue(base, "stub", "v1:stub", "stub", &json!({"ms": 30, "comment": 1, "i": i}), 0);
        assert_eq!(code, 201, "{r}");
    }
    // Redelivered enqueues (a retried POST, the other replica): no new runs.
    for i in 0..20 {
        let (code, r) =
            enqueue(&b, "stub", "v1:stub", "stub", &json!({"ms": 30, "comment": 1, "i": i}), 0);
        assert_eq!((code, r["created"].as_bool()), (200, Some(false)), "{r}");
    }

    let mut workers: Vec<(String, Option<Proc>)> = (1..=3)
        .map(|i| {
            let n = format!("w{i}");
            let p = worker(&n, db, &dw, &pol, 2);
            (n, Some(p))
        })
        .collect();
    // Kill the pr run's worker once the provider has the request.
    let holder = wait_for("the pr run to be running with its request at the provider", 60, || {
        let r = run(&a, &pr_id);
        let at_provider =
            forge.seen().iter().any(|s| s.method == "POST" && s.uri.contains("/pulls"));
        (r["run"]["status"] == "running" && at_provider).then(|| r["run"]["worker"].clone())
    });
    let holder = holder.as_str().expect("worker").to_owned();
    let slot = workers.iter_mut().find(|(n, _)| *n == holder).expect("a known worker");
    let mut victim = slot.1.take().expect("alive");
    Command::new("kill").args(["-9", &victim.0.id().to_string()]).status().expect("kill");
    let _ = victim.0.wait();
    let killed_at = Instant::now();

    let all = wait_for("all 200 runs to finish", 180, || {
        let rs = runs(&a);
        (rs.len() == 200
            && rs.iter().all(|r| {
                matches!(r["status"].as_str(), Some("succeeded" | "failed" | "dead" | "cancelled"))
            }))
        .then_some(Value::Array(rs))
    });
    let all = all.as_array().expect("runs");
    let bad: Vec<_> = all.iter().filter(|r| r["status"] != "succeeded").collect();
    assert!(bad.is_empty(), "every run succeeds: {bad:#?}");
    let prr = run(&a, &pr_id);
    assert_ne!(prr["run"]["worker"].as_str(), Some(holder.as_str()), "taken over: {prr}");
    assert!(prr["run"]["attempts"].as_i64().unwrap_or(0) >= 2, "{prr}");
    assert!(
        killed_at.elapsed() > Duration::from_secs(3) || prr["run"]["attempts"].as_i64() >= Some(2)
    );
    let by_worker: std::collections::BTreeSet<_> =
        all.iter().filter_map(|r| r["worker"].as_str()).collect();
    assert!(by_worker.len() >= 2, "the runs were shared: {by_worker:?}");

    // In effect, once: one pull request from the branch, pushed to the bare remote; one
    // comment per stub run, each with its own marker.
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].head, "af/fix-kill");
    assert!(pulls[0].body.contains("Peak in-flight 100 → 10"), "{}", pulls[0].body);
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/af/fix-kill"]), commit);
    let comments = forge.issues()[0].comments.clone();
    assert_eq!(comments.len(), 199, "one comment per run");
    let markers: std::collections::BTreeSet<_> =
        comments.iter().filter_map(|c| c.split("<!-- af:comment ").nth(1)).collect();
    assert_eq!(markers.len(), 199);
    // The effect ledger agrees with the provider.
    let effects = run(&a, &pr_id)["effects"].as_array().cloned().unwrap_or_default();
    assert!(effects.iter().any(|e| e["kind"] == "pr"), "{effects:?}");

    no_token_anywhere(tmp.path(), &forge);
    drop(workers);
    r1.stop();
    r2.stop();
}

/// Retries with back-off, dead letters, a 401 not retried, a 403 rate limit retried after its
/// `retry-after`, cancel and requeue, and priorities.
fn retries_dead_letters_cancel_requeue_and_priorities(db: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let forge = FakeForge::start("acme/radar", TOKEN, None);
    forge.state.lock().expect("state").issues.push(Issue {
        number: 1,
        title: "t".into(),
        body: "b".into(),
        open: true,
        labels: vec!["af-finding".into()],
        comments: Vec::new(),
    });
    let pol = policy(tmp.path(), &forge, "");
    let data = tmp.path().join("d");
    std::fs::create_dir_all(&data).expect("dir");
    let r = policy_replica(db, &data, &pol);
    let a = r.addrs[0].clone();
    // Priorities: queued before any worker runs, the high one starts first.
    let mut low = Vec::new();
    for i in 0..4 {
        low.push(
            enqueue(&a, "stub", "v1:prio", "stub", &json!({"ms": 100, "i": i}), 0).1["run"]["id"]
                .clone(),
        );
    }
    let high =
        enqueue(&a, "stub", "v1:prio", "stub", &json!({"ms": 100, "high": true}), 9).1["run"]["id"]
            .clone();
    let flaky =
        enqueue(&a, "stub", "v1:flaky", "stub", &json!({"fail_first": 2}), 0).1["run"]["id"]
            .clone();
    let hopeless =
        enqueue(&a, "stub", "v1:dead", "stub", &json!({"fail_first": 99}), 0).1["run"]["id"]
            .clone();
    let unauthorized =
        enqueue(&a, "stub", "v1:401", "badtoken", &json!({"comment": 1}), 0).1["run"]["id"].clone();
    forge.fault(Fault {
        method: "GET".into(),
        path_contains: "/comments".into(),
        status: 403,
        headers: vec![
            ("x-ratelimit-remaining".into(), "0".into()),
            ("retry-after".into(), "2".into()),
        ],
        body: "{\"message\":\"API rate limit exceeded\"}".into(),
        times: 1,
        after_effect: false,
        delay_ms: 0,
    });
    let limited =
        enqueue(&a, "stub", "v1:403", "stub", &json!({"comment": 1}), 0).1["run"]["id"].clone();
    let (code, _, c) = post(&format!("http://{a}/api/runs"), "application/json", br#"{"kind":"stub","fingerprint":"v1:cancel","service":"stub","input":{},"delay_ms":600000}"#);
    assert_eq!(code, 201, "{c}");
    let cancelled = json(&c)["run"]["id"].as_str().expect("id").to_owned();
    let (code, _, body) =
        post(&format!("http://{a}/api/runs/{cancelled}/cancel"), "application/json", b"");
    assert_eq!(code, 200, "{body}");

    let _w = worker("solo", db, &data, &pol, 1);
    let id = |v: &Value| v.as_str().expect("id").to_owned();
    let done = |rid: &str| {
        let rid = rid.to_owned();
        let a = a.clone();
        move || {
            let r = run(&a, &rid);
            matches!(r["run"]["status"].as_str(), Some("succeeded" | "failed" | "dead"))
                .then_some(r)
        }
    };
    // Upper bounds, not timings: CI runs this beside two end-to-end fix runs on 2 cores.
    let f = wait_for("the flaky run", 180, done(&id(&flaky)));
    assert_eq!(f["run"]["status"], "succeeded", "{f}");
    assert_eq!(f["run"]["attempts"], 3, "two failures, then success: {f}");
    let h = wait_for("the hopeless run", 180, done(&id(&hopeless)));
    assert_eq!(h["run"]["status"], "dead", "{h}");
    assert_eq!(h["run"]["attempts"], 4, "{h}");
    assert!(h["run"]["error"].as_str().unwrap_or("").contains("no attempts left"), "{h}");
    let u = wait_for("the unauthorized run", 180, done(&id(&unauthorized)));
    assert_eq!(u["run"]["status"], "dead", "{u}");
    assert_eq!(u["run"]["attempts"], 1, "a 401 is not retried: {u}");
    let err = u["run"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("401")
            && err.contains("$AF_TEST_WRONG_TOKEN")
            && !err.contains("not-the-token"),
        "{err}"
    );
    let l = wait_for("the rate-limited run", 180, done(&id(&limited)));
    assert_eq!(l["run"]["status"], "succeeded", "{l}");
    assert_eq!(l["run"]["attempts"], 2, "retried once after the limit: {l}");
    let started = |v: &Value| {
        run(&a, v.as_str().expect("id"))["run"]["started_ms"].as_i64().expect("started")
    };
    let hs = started(&high);
    for lo in &low {
        wait_for("a low-priority run", 30, done(&id(lo)));
        assert!(hs <= started(lo), "the priority-9 run started first");
    }
    // Cancelled: never ran. Requeued: runs.
    let c = run(&a, &cancelled);
    assert_eq!(c["run"]["status"], "cancelled", "{c}");
    assert_eq!(c["run"]["attempts"], 0, "{c}");
    let out = Command::new(af_bin())
        .args(["runs", "requeue", &cancelled[..8], "--database", db, "--data-dir"])
        .arg(&data)
        .output()
        .expect("af runs requeue");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = wait_for("the requeued run", 30, done(&cancelled));
    assert_eq!(c["run"]["status"], "succeeded", "{c}");
    // A running run cannot be requeued; an unknown one is a usage error.
    let out = Command::new(af_bin())
        .args(["runs", "show", "ffffffff", "--database", db, "--data-dir"])
        .arg(&data)
        .output()
        .expect("show");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let ls = Command::new(af_bin())
        .args(["runs", "ls", "--status", "dead", "--database", db, "--data-dir"])
        .arg(&data)
        .output()
        .expect("ls");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        text.contains("v1:dead") && text.contains("v1:401") && !text.contains("v1:flaky"),
        "{text}"
    );
    no_token_anywhere(tmp.path(), &forge);
    r.stop();
}

/// `per_repo = 1` holds across worker processes: runs of one repository never overlap, even
/// when two workers hold deliveries of them at once.
fn the_repository_limit_holds_across_workers(db: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let forge = FakeForge::start("acme/radar", TOKEN, None);
    let pol = policy(tmp.path(), &forge, "per_repo = 1");
    let data = tmp.path().join("d");
    std::fs::create_dir_all(&data).expect("dir");
    let r = policy_replica(db, &data, &pol);
    let a = r.addrs[0].clone();
    for i in 0..6 {
        let (code, b) = enqueue(&a, "stub", "v1:limit", "stub", &json!({"ms": 400, "i": i}), 0);
        assert_eq!(code, 201, "{b}");
    }
    let _w1 = worker("l1", db, &data, &pol, 3);
    let _w2 = worker("l2", db, &data, &pol, 3);
    let all = wait_for("the six runs", 90, || {
        let rs = runs(&a);
        (rs.len() == 6 && rs.iter().all(|r| r["status"] == "succeeded")).then_some(Value::Array(rs))
    });
    // Each run's own wall time (its slot is held for it), from its finish back.
    let mut spans: Vec<(i64, i64, String)> = all
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            let end = r["finished_ms"].as_i64().expect("finished");
            (
                end - r["wall_ms"].as_i64().expect("wall"),
                end,
                r["worker"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0 + 5, "two runs of one repository overlapped: {spans:?}");
    }
    let workers: std::collections::BTreeSet<_> = spans.iter().map(|s| s.2.clone()).collect();
    assert_eq!(workers.len(), 2, "both workers ran some: {spans:?}");
    r.stop();
}

#[test]
fn sqlite_the_repository_limit_holds_across_workers() {
    let tmp = tempfile::tempdir().expect("tmp");
    the_repository_limit_holds_across_workers(&format!(
        "sqlite://{}",
        tmp.path().join("jobs.db").display()
    ));
}

#[test]
fn postgres_the_repository_limit_holds_across_workers() {
    let pg = postgres();
    the_repository_limit_holds_across_workers(&pg.url);
}

/// The planted token is nowhere but in the requests to the provider's own API (its
/// `authorization` header): not in any file under the run's directories, not in any other
/// request part.
pub fn no_token_anywhere(dir: &Path, forge: &FakeForge) {
    no_token_in_files(dir);
    let seen = forge.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert!(!s.uri.contains(TOKEN) && !s.body.contains(TOKEN), "{s:?}");
        for (k, v) in &s.headers {
            assert!(k == "authorization" || k == "private-token" || !v.contains(TOKEN), "{k}: {v}");
        }
    }
}

/// No file under `dir` holds the planted token.
pub fn no_token_in_files(dir: &Path) {
    let files = walk(dir);
    assert!(!files.is_empty(), "no files searched");
    for p in files {
        if let Ok(bytes) = std::fs::read(&p) {
            let hit = bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
            assert!(!hit, "the token is in {}", p.display());
        }
    }
}

#[test]
fn sqlite_two_replicas_three_workers_200_runs_and_a_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", tmp.path().join("jobs.db").display());
    two_replicas_three_workers_200_runs_and_a_kill_9(&db);
    no_token_in_files(tmp.path());
}

#[test]
fn postgres_two_replicas_three_workers_200_runs_and_a_kill_9() {
    let pg = postgres();
    two_replicas_three_workers_200_runs_and_a_kill_9(&pg.url);
}

#[test]
fn sqlite_retries_dead_letters_cancel_requeue_and_priorities() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}", tmp.path().join("jobs.db").display());
    retries_dead_letters_cancel_requeue_and_priorities(&db);
    no_token_in_files(tmp.path());
}

#[test]
fn postgres_retries_dead_letters_cancel_requeue_and_priorities() {
    let pg = postgres();
    retries_dead_letters_cancel_requeue_and_priorities(&pg.url);
}

/// The bundled example end to end, offline, with the jobs doing the work: its traffic into `af
/// serve --workers 2 --config af.toml` → a finding → the policy queues a ticket and a fix → the
/// fix is confirmed → a pr run pushes the branch to the bare remote and opens the pull request
/// with the report as its body → the provider's "merged" webhook → a verify run after a delay
/// → verified → the ticket run closes the issue.
fn bundled_example_end_to_end(gitlab: bool, pg: Option<&Pg>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = tmp.path().join("radar.git");
    git(tmp.path(), &["init", "-q", "--bare", bare.to_str().expect("utf-8")]);
    let src = tmp.path().join("radar");
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(root().join("examples/radar"))
            .arg(&src)
            .status()
            .expect("cp")
            .success()
    );
    let _ = std::fs::remove_dir_all(src.join("node_modules"));
    git(&src, &["init", "-q", "-b", "main"]);
    git(&src, &["add", "-A"]);
    git(&src, &["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "radar"]);
    git(&src, &["remote", "add", "origin", bare.to_str().expect("utf-8")]);
    git(&src, &["push", "-q", "origin", "main"]);

    let forge = FakeForge::start("acme/radar", TOKEN, Some(bare.clone()));
    let (kind, api) =
        if gitlab { ("gitlab", forge.gitlab_api()) } else { ("github", forge.base.clone()) };
    let pol = tmp.path().join("af.toml");
    std::fs::write(
        &pol,
        format!(
            r#"[jobs]
live = true
lease = "30s"
backoff = "2s"
max_attempts = 12
{poll}

[[service]]
name = "radar"
repo = "radar"
branch = "main"
remote = "origin"
# The program the harness runs also dumps its environment: the token search below then proves
# the forge token and the webhook secret never reach it.
run = "sh -c 'env > \"$AF_TEST_DUMP_DIR/env-$$.txt\" && exec node src/cli.js sync'"
forge = {{ kind = "{kind}", api = "{api}", project = "acme/radar", token_env = "AF_TEST_FORGE_TOKEN", webhook_secret_env = "AF_TEST_HOOK_SECRET" }}

[[rule]]
on = "finding.opened"
min_severity = "high"
do = ["ticket", "fix"]

[[rule]]
on = "fix.confirmed"
do = ["pr"]

[[rule]]
on = "pr.opened"
do = ["ticket"]

[[rule]]
on = "pr.merged"
do = ["verify"]
delay = "20s"

[[rule]]
on = "verify.verified"
do = ["ticket"]

[[rule]]
on = "verify.regressed"
do = ["ticket"]
"#,
            poll = if gitlab { "poll = \"1s\"" } else { "" }
        ),
    )
    .expect("policy");
    let data = tmp.path().join("data");
    let dumps_dir = tmp.path().join("env-dumps");
    std::fs::create_dir_all(&dumps_dir).expect("dir");
    let hook_secret = "whsec-e2e-test";
    let mut child = Command::new(af_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--window",
            "10s",
            "--grace",
            "1s",
            "--workers",
            "2",
            "--config",
        ])
        .arg(&pol)
        .arg("--data-dir")
        .arg(&data)
        .args(pg.map(|p| ["--database", p.url.as_str()]).into_iter().flatten())
        .env("AF_TEST_FORGE_TOKEN", TOKEN)
        .env("AF_TEST_HOOK_SECRET", hook_secret)
        .env("AF_TEST_DUMP_DIR", &dumps_dir)
        .env_remove("AF_SERVE_TOKEN")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("af serve");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).expect("line");
    let engine = if pg.is_some() { "postgres" } else { "sqlite" };
    assert!(line.contains(&format!("jobs on {engine}, 2 here, live")), "{line}");
    let log_path = tmp.path().join("serve.log");
    let mut log = std::fs::File::create(&log_path).expect("log");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut err, &mut log);
    });
    let _serve = Proc(child);
    let http = common::http_of(&line);
    let base = format!("http://{http}");

    // Traffic in: the incident, as native lines.
    let before = std::fs::read_to_string(root().join("examples/radar/snapshots/before.jsonl"))
        .expect("before");
    let lines: Vec<&str> = before.lines().skip(1).collect();
    let (code, _, b) = post(
        &format!("{base}/v1/exchanges?service=radar"),
        "application/x-ndjson",
        lines.join("\n").as_bytes(),
    );
    assert_eq!(code, 200, "{b}");

    // → finding → ticket + fix → confirmed → pr: the pull request, with the report as its body.
    let pull = wait_for("the pull request", 240, || {
        forge
            .pulls()
            .into_iter()
            .next()
            .map(|p| json!({"n": p.number, "head": p.head, "body": p.body}))
    });
    let body = pull["body"].as_str().expect("body");
    let head = pull["head"].as_str().expect("head").to_owned();
    // The body is the fix run's report, as written (both numbers, the harness and its hash,
    // the patch, the timings), plus the hidden marker.
    let fixes = runs(&http);
    let fix = fixes
        .iter()
        .filter(|r| r["kind"] == "fix")
        .map(|r| json(r["outcome"].as_str().unwrap_or("null")))
        .find(|o| o["branch"] == head.as_str())
        .expect("the fix run whose branch the pull request is from");
    let report =
        std::fs::read_to_string(fix["report"].as_str().expect("report")).expect("report.md");
    assert!(body.starts_with(report.trim_end()), "the body is the report:\n{body}\n---\n{report}");
    for needed in ["went from", "on the identical harness", "(harness ", "Phase timings", "```diff"]
    {
        assert!(report.contains(needed), "the report has {needed:?}: {report}");
    }
    let (_, f) = get(&format!("{base}/api/findings?service=radar"));
    let fp = json(&f)
        .as_array()
        .and_then(|a| a.iter().find(|f| f["kind"] == "limit-model").cloned())
        .expect("a limit-model finding")["fingerprint"]
        .as_str()
        .expect("fp")
        .to_owned();
    assert!(body.contains(&format!("<!-- af:fingerprint {fp} -->")), "{body}");
    let pushed = git(&bare, &["rev-parse", &format!("refs/heads/{head}")]);
    // The ledger shows the work: fixing while a fix runs or waits for its merge.
    let (_, f) = get(&format!("{base}/api/findings/{fp}"));
    assert_eq!(json(&f)["finding"]["state"], "fixing", "{f}");
    // The issue: one per fingerprint, with its numbers, a redacted example and the commands.
    let issue = wait_for("the issue with the PR's comment", 60, || {
        let i = forge.issues().into_iter().find(|i| i.body.contains(&fp))?;
        (!i.comments.is_empty())
            .then(|| json!({"n": i.number, "body": i.body, "comments": i.comments, "open": i.open}))
    });
    let ib = issue["body"].as_str().expect("issue body");
    assert!(
        ib.contains("An example request")
            && ib.contains("GET ")
            && ib.contains(&format!("af fix --finding {fp}")),
        "{ib}"
    );
    assert!(
        !ib.to_ascii_lowercase().contains("bearer ya29") && !ib.contains("Bearer e"),
        "credentials are redacted: {ib}"
    );
    assert!(issue["comments"][0].as_str().unwrap_or("").contains("Fix proposed"), "{issue}");

    // "Merged". GitHub tells af by its webhook, signed (a wrong signature is refused); the
    // GitLab run finds it by polling (`poll = "1s"`), as a forge that cannot reach af would.
    let payload = forge.merge(pull["n"].as_u64().expect("n"), &pushed, gitlab).to_string();
    let url = format!("{base}/api/hooks/{kind}");
    let bad = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
        ])
        .args(if gitlab {
            ["-H", "x-gitlab-event: Merge Request Hook", "-H", "x-gitlab-token: wrong"]
        } else {
            ["-H", "x-github-event: pull_request", "-H", "x-hub-signature-256: sha256=00"]
        })
        .args(["--data-binary", &payload, &url])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "401");
    if !gitlab {
        let auth = format!(
            "x-hub-signature-256: {}",
            af_sinks::signature(hook_secret.as_bytes(), payload.as_bytes())
        );
        let ok = Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-H",
                "x-github-event: pull_request",
                "-H",
                &auth,
            ])
            .args(["--data-binary", &payload, &url])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&ok.stdout).to_string();
        assert!(text.ends_with("202"), "{text}");
        assert!(text.contains(&fp), "{text}");
    }
    wait_for("the verify run queued by the merge", 30, || {
        runs(&http).into_iter().find(|r| r["kind"] == "verify" && r["fingerprint"] == fp.as_str())
    });
    let (_, f) = get(&format!("{base}/api/findings/{fp}"));
    assert_eq!(json(&f)["finding"]["state"], "fixed", "merged is fixed, not yet verified: {f}");
    let (_, deploys) = get(&format!("{base}/api/deploys?service=radar"));
    let marked = json(&deploys)
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| d["sha"] == pushed.as_str()).count());
    assert_eq!(marked, 1, "one deploy marker for the merge: {deploys}");

    // The deployed (fixed) code's traffic, after the marker's window.
    sleep_past_window(10);
    // The pull request's fix run (`fix`, above) left the worktree that is "deployed".
    assert_eq!(fix["confirmed"], true, "{fix}");
    let worktree = PathBuf::from(fix["worktree"].as_str().expect("worktree"));
    common::push_fixed_traffic(&worktree, &base, &tmp.path().join("after.jsonl"));

    // → verify (after its delay) → verified → the ticket run closes the issue.
    let closed = wait_for("every issue closed and every run finished", 180, || {
        let issues = forge.issues();
        let rs = runs(&http);
        let finished = rs.iter().all(|r| {
            matches!(r["status"].as_str(), Some("succeeded" | "failed" | "dead" | "cancelled"))
        });
        (finished && issues.iter().all(|i| !i.open))
            .then(|| {
                issues
                    .into_iter()
                    .find(|i| i.body.contains(&fp))
                    .map(|i| json!({"comments": i.comments}))
            })
            .flatten()
    });
    assert!(
        closed["comments"]
            .as_array()
            .expect("comments")
            .iter()
            .any(|c| c.as_str().unwrap_or("").contains("Verified after the deploy")),
        "{closed}"
    );
    let (_, f) = get(&format!("{base}/api/findings/{fp}"));
    assert_eq!(json(&f)["finding"]["state"], "verified", "{f}");
    let all = runs(&http);
    for k in ["ticket", "fix", "pr", "verify"] {
        assert!(
            all.iter().any(|r| r["kind"] == k && r["status"] == "succeeded"),
            "a {k} run succeeded: {all:#?}"
        );
    }
    let not_ok: Vec<_> = all
        .iter()
        .filter(|r| r["status"] != "succeeded")
        .map(|r| {
            (
                r["kind"].clone(),
                r["fingerprint"].clone(),
                r["status"].clone(),
                r["error"].clone(),
                r["outcome"].clone(),
            )
        })
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(
        forge.pulls().len(),
        1,
        "one change, one pull request, whatever number of findings it fixes"
    );
    // One issue per fingerprint (the incident may have more than one high finding), never two.
    let markers: Vec<String> = forge
        .issues()
        .iter()
        .filter_map(|i| {
            i.body
                .split("<!-- af:fingerprint ")
                .nth(1)
                .map(|m| m.split(' ').next().unwrap_or("").to_owned())
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = markers.iter().collect();
    assert_eq!(markers.len(), distinct.len(), "{markers:?}");
    assert_eq!(markers.len(), forge.issues().len(), "every issue has its marker");
    let ticketed: std::collections::BTreeSet<_> = all
        .iter()
        .filter(|r| r["kind"] == "ticket")
        .filter_map(|r| r["fingerprint"].as_str())
        .collect();
    assert_eq!(ticketed.len(), markers.len(), "{ticketed:?} vs {markers:?}");
    // The page shows the runs and what they made.
    let (_, page) = get(&format!("{base}/findings/{fp}"));
    assert!(
        page.contains("id=\"runs\"") && page.contains("succeeded") && page.contains(">pr "),
        "{page}"
    );
    let dumps = walk(&dumps_dir);
    assert!(!dumps.is_empty(), "the harness ran the program that dumps its environment");
    for d in &dumps {
        let env = std::fs::read_to_string(d).expect("env dump");
        assert!(env.contains("GMAIL_API_URL="), "{}", d.display());
        assert!(
            !env.contains("AF_TEST_HOOK_SECRET") && !env.contains("AF_TEST_FORGE_TOKEN"),
            "{env}"
        );
    }
    no_token_anywhere(tmp.path(), &forge);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn github_end_to_end_on_the_bundled_example() {
    bundled_example_end_to_end(false, None);
}

/// GitLab, with the ledger and the jobs on PostgreSQL: the windows go through the shared
/// tables, the fix run's evidence comes out of the database.
#[test]
fn gitlab_end_to_end_on_the_bundled_example_on_postgres() {
    let pg = postgres();
    bundled_example_end_to_end(true, Some(&pg));
}

/// A replica on the shared ledger, with 10 s windows (the bundled incident's 1.5 s fits one)
/// and a 1 s grace.
fn ledger_replica(db: &str, data: &Path) -> Server {
    replica(db, data, &["--window", "10s", "--grace", "1s"])
}

fn received(base: &str) -> u64 {
    let (_, m) = get(&format!("http://{base}/metrics"));
    m.lines()
        .filter(|l| l.starts_with("af_records_received_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn postgres_replicas_share_windows_findings_and_evidence() {
    let pg = postgres();
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let ra = ledger_replica(&pg.url, &a);
    let rb = ledger_replica(&pg.url, &b);
    let rc = ledger_replica(&pg.url, &c);
    // The bundled incident, its lines dealt to two replicas in turn, in several requests each
    // (a load balancer's round robin): neither has the whole window.
    let text = std::fs::read_to_string(root().join("examples/radar/snapshots/before.jsonl"))
        .expect("before");
    let lines: Vec<&str> =
        text.lines().filter(|l| !l.trim().is_empty() && !l.contains("\"af-snapshot\"")).collect();
    assert_eq!(lines.len(), 456, "the bundled incident");
    let mut halves = [Vec::new(), Vec::new()];
    for (i, l) in lines.iter().enumerate() {
        halves[i % 2].push(*l);
    }
    for (half, r) in halves.iter().zip([&ra, &rb]) {
        for chunk in half.chunks(40) {
            let body = chunk.join("\n");
            let (code, _, ack) = post(
                &format!("http://{}/v1/exchanges?service=radar", r.addrs[0]),
                "application/x-ndjson",
                body.as_bytes(),
            );
            assert_eq!(code, 200, "{ack}");
            assert_eq!(json(&ack)["accepted"], chunk.len(), "{ack}");
        }
    }
    assert_eq!(received(&ra.addrs[0]) + received(&rb.addrs[0]), 456);
    // The replica that took half of the window dies before it closes: its records were
    // acknowledged, so they are the others' to analyse.
    let mut ra = ra;
    ra.child.kill().expect("kill -9");
    ra.child.wait().expect("reaped");
    let found = wait_for("one limit-model finding on the shared ledger", 60, || {
        let (_, body) = get(&format!("http://{}/api/findings?service=radar", rb.addrs[0]));
        let all = json(&body).as_array()?.clone();
        all.iter().any(|f| f["kind"] == "limit-model").then_some(Value::Array(all))
    });
    let found = found.as_array().cloned().unwrap_or_default();
    let limit: Vec<&Value> = found.iter().filter(|f| f["kind"] == "limit-model").collect();
    assert_eq!(limit.len(), 1, "{found:?}");
    let fp = limit[0]["fingerprint"].as_str().expect("fp").to_owned();
    assert_eq!(limit[0]["occurrences"], 1, "analysed once: {found:?}");
    // One window, with every record of both replicas.
    let windows = wait_for("the window row", 30, || {
        let (_, body) = get(&format!("http://{}/api/windows?service=radar", rc.addrs[0]));
        let w = json(&body).as_array()?.clone();
        (!w.is_empty()).then_some(Value::Array(w))
    });
    let windows = windows.as_array().cloned().unwrap_or_default();
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!((windows[0]["records"].as_i64(), windows[0]["late"].as_i64()), (Some(456), Some(0)));
    // The same answers from a replica that took nothing and did not analyse: the finding, its
    // evidence (all 456 exchanges), and the evidence's bytes, written to its own disk from the
    // database.
    let detail = |base: &str| {
        let (code, body) = get(&format!("http://{base}/api/findings/{fp}"));
        assert_eq!(code, 200, "{body}");
        json(&body)
    };
    let (db_, dc) = (detail(&rb.addrs[0]), detail(&rc.addrs[0]));
    assert_eq!(db_["finding"], dc["finding"]);
    assert_eq!(db_["occurrences"], dc["occurrences"]);
    assert_eq!(dc["evidence"]["exchanges"], 456, "{dc}");
    assert_eq!(db_["evidence"]["digest"], dc["evidence"]["digest"]);
    let path_c = PathBuf::from(dc["evidence"]["path"].as_str().expect("path"));
    assert!(path_c.starts_with(&c) && path_c.exists(), "{}", path_c.display());
    let (code, snap) = get(&format!("http://{}/api/findings/{fp}/evidence", rc.addrs[0]));
    assert_eq!(code, 200);
    assert!(!snap.is_empty());
    // The CLI reads the shared ledger too, from a directory that has none of it.
    let out = Command::new(af_bin())
        .args(["findings", "ls", "--json", "--database", &pg.url, "--data-dir"])
        .arg(tmp.path().join("elsewhere"))
        .output()
        .expect("af findings");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&fp));
    // One analysis over all replicas: nothing was counted twice.
    let (_, m) = get(&format!("http://{}/metrics", rb.addrs[0]));
    let (_, mc) = get(&format!("http://{}/metrics", rc.addrs[0]));
    let processed = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("af_windows_processed_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(processed(&m) + processed(&mc), 1, "{m}\n{mc}");
    // And nothing is left waiting in the shared tables.
    assert!(mc.lines().any(|l| l == "af_records_pending 0"), "{mc}");
}
