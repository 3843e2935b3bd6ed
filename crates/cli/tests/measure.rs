//! `af measure` and `af mock` with real programs (Node 20, Python 3) over real loopback sockets.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn af() -> Command {
    let mut c = Command::cargo_bin("af").expect("af binary");
    c.current_dir(root());
    c
}

const GETS: &str = "GET /gmail/v1/users/{userId}/messages/{id}";

/// Measurements run one at a time: they time real programs, and tests running in parallel on a
/// 2-core machine would stretch a burst past the latency that keeps it in flight.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `af measure --json` with `args` before `--` and `program` after; returns (exit, result).
fn measure(args: &[&str], program: &[&str]) -> (i32, serde_json::Value) {
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = af()
        .args([
            "measure",
            "--json",
            "--quiet",
            "--snapshot",
            "fixtures/gmail/capture.har",
            "--url-env",
            "API_URL",
        ])
        .args(args)
        .arg("--")
        .args(program)
        .output()
        .expect("runs");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn values(doc: &serde_json::Value, metric: usize) -> Vec<f64> {
    doc["metrics"][metric]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

#[test]
fn node_unbounded_fan_out_measures_exactly_100_and_a_pool_exactly_10() {
    let peak = format!("peak_inflight{{endpoint=\"{GETS}\",per=\"caller\"}}");
    let (code, doc) = measure(
        &["--latency", "fixed:500ms", "--metric", &peak, "--expect", "<= 10", "--runs", "2"],
        &["node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 1, "100 in flight violates <= 10");
    assert_eq!(values(&doc, 0), [100.0, 100.0]);
    assert_eq!(doc["passed"], false);
    assert_eq!(doc["runs"][0]["requests"], 100);

    let (code, doc) = measure(
        &["--latency", "fixed:50ms", "--metric", &peak, "--expect", "<= 10", "--runs", "2"],
        &["env", "POOL=10", "node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 0, "{doc}");
    assert_eq!(values(&doc, 0), [10.0, 10.0]);
    assert_eq!(doc["metrics"][0]["passed"], true);
}

/// The selector spelled as the program calls it (`users/me`), as the API documents it
/// (`users/{userId}`), misspelled, or naming an endpoint this program never calls: a metric over
/// nothing never prints 0 and PASSED.
#[test]
fn no_metric_passes_on_nothing() {
    for spelled in ["GET /gmail/v1/users/me/messages/{id}", GETS] {
        let peak = format!("peak_inflight{{endpoint=\"{spelled}\",per=\"caller\"}}");
        let (code, doc) = measure(
            &["--latency", "fixed:500ms", "--metric", &peak, "--expect", "<= 10", "--runs", "1"],
            &["node", "fixtures/programs/fanout.js"],
        );
        assert_eq!((code, values(&doc, 0)), (1, vec![100.0]), "{spelled}: {doc}");
    }
    // A typo: refused before anything runs, with the endpoints it may have meant.
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = af()
        .args(["measure", "--snapshot", "fixtures/gmail/capture.har", "--url-env", "API_URL"])
        .args(["--metric", "peak_inflight{endpoint=\"GET /gmail/v1/users/me/mesages/{id}\"}"])
        .args(["--expect", "<= 10", "--", "node", "fixtures/programs/fanout.js"])
        .output()
        .expect("runs");
    drop(_one);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("GET /gmail/v1/users/me/mesages/{id}")
            && err.contains("matches no exchange")
            && err.contains("nearest endpoints: GET /gmail/v1/users/me/messages/{id}"),
        "{err}"
    );
    // In the snapshot, but the program never calls it: not measured, and the check fails.
    let (code, doc) = measure(
        &[
            "--latency",
            "none",
            "--metric",
            "peak_inflight{endpoint=\"GET /gmail/v1/users/me/messages\"}",
            "--expect",
            "<= 10",
            "--runs",
            "1",
        ],
        &["node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["metrics"][0]["values"], serde_json::json!([null]));
    assert!(doc["problems"].to_string().contains("selected no call"), "{doc}");
}

#[test]
fn parallel_runs_overlap_keep_their_own_mocks_and_measure_the_same() {
    let peak = format!("peak_inflight{{endpoint=\"{GETS}\",per=\"caller\"}}");
    let (code, doc) = measure(
        &["--parallel", "--latency", "fixed:1s", "--metric", &peak, "--runs", "3"],
        &["node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 0, "{doc}");
    assert_eq!(values(&doc, 0), [100.0, 100.0, 100.0], "each run's journal is its own");
    assert_eq!(doc["harness"]["parallel"], true);
    let runs = doc["runs"].as_array().expect("runs");
    let journals: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r["journal"].as_str().expect("journal")).collect();
    assert_eq!(journals.len(), 3);
    for r in runs {
        assert_eq!(r["requests"], 100);
    }
    // They overlapped: every run's first arrival came within 0.5 s of the others' last (back to
    // back, with 1 s of latency per call, the next run would start over 1 s later).
    let spans: Vec<(i64, i64)> = journals
        .iter()
        .map(|j| {
            let (ex, _) = af_snapshot::read_all(Path::new(j), af_snapshot::ReadOptions::default())
                .expect("journal");
            let starts: Vec<i64> = ex.iter().map(|e| e.timing.start.as_nanos()).collect();
            (*starts.iter().min().expect("arrivals"), *starts.iter().max().expect("arrivals"))
        })
        .collect();
    let latest_first = spans.iter().map(|s| s.0).max().expect("spans");
    let earliest_last = spans.iter().map(|s| s.1).min().expect("spans");
    assert!(latest_first < earliest_last + 500_000_000, "runs did not overlap: {spans:?}");
}

/// Runs started together that get in each other's way — here a lock only one run can hold, as
/// a build step writing the same output would — are measured again alone; a run that ran the
/// workload is never re-run, and runs that all fail alike stay failed.
#[test]
fn parallel_runs_that_interfere_are_measured_again_alone() {
    let peak = format!("peak_inflight{{endpoint=\"{GETS}\",per=\"caller\"}}");
    let tmp = tempfile::tempdir().expect("tmp");
    let lock = tmp.path().join("lock");
    let script = format!(
        "mkdir {l} 2>/dev/null || exit 7; node fixtures/programs/fanout.js; rc=$?; rmdir {l}; exit $rc",
        l = lock.display()
    );
    let (code, doc) = measure(
        &["--parallel", "--latency", "fixed:1s", "--metric", &peak, "--runs", "3"],
        &["sh", "-c", &script],
    );
    assert_eq!(code, 0, "{doc}");
    assert_eq!(values(&doc, 0), [100.0, 100.0, 100.0], "{doc}");
    let runs = doc["runs"].as_array().expect("runs");
    let again: Vec<&serde_json::Value> =
        runs.iter().filter(|r| r.get("rerun_alone").is_some()).collect();
    assert_eq!(again.len(), 2, "one run held the lock, two were locked out: {doc}");
    for r in &again {
        assert_eq!(r["exit_code"], 0);
        let why = r["rerun_alone"].as_str().expect("why");
        assert!(why.contains("exited 7 without a request while another made 100"), "{why}");
        let n = r["run"].as_u64().expect("n");
        let dir =
            Path::new(r["journal"].as_str().expect("journal")).parent().expect("dir").to_owned();
        assert!(dir.join(format!("run-{n}.together.journal.jsonl")).is_file(), "first try kept");
    }
    assert_eq!(doc["notes"].as_array().map(Vec::len), Some(2), "{doc}");

    // Every run fails before a request: nothing ran the workload, nothing is re-run.
    let (code, doc) = measure(
        &["--parallel", "--latency", "none", "--metric", &peak, "--expect", "<= 10", "--runs", "2"],
        &["sh", "-c", "exit 7"],
    );
    assert_eq!(code, 1, "{doc}");
    assert!(doc["runs"].as_array().expect("runs").iter().all(|r| r.get("rerun_alone").is_none()));
    assert!(doc.get("notes").is_none(), "{doc}");
}

#[test]
fn python_threads_measure_exactly_their_worker_count() {
    for (workers, want) in [("100", 100.0), ("10", 10.0)] {
        let (code, doc) = measure(
            &[
                "--latency",
                "fixed:500ms",
                "--metric",
                "peak_inflight{per=\"caller\"}",
                "--runs",
                "1",
            ],
            &["env", &format!("WORKERS={workers}"), "python3", "fixtures/programs/fanout.py"],
        );
        assert_eq!(code, 0, "{doc}");
        assert_eq!(values(&doc, 0), [want], "WORKERS={workers}");
    }
}

#[test]
fn max_arrivals_matches_a_brute_force_count_over_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, doc) = measure(
        &[
            "--latency",
            "fixed:20ms",
            "--metric",
            "max_arrivals{50ms}",
            "--runs",
            "1",
            "--out-dir",
            dir.path().to_str().expect("utf-8"),
        ],
        &["env", "N=200", "node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 0, "{doc}");
    let journal = std::fs::read_to_string(dir.path().join("run-1.journal.jsonl")).expect("journal");
    let starts: Vec<i64> = journal
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("line")["tags"]["af.arrival_mono_ns"].as_i64().expect("arrival"))
        .collect();
    assert_eq!(starts.len(), 200);
    let brute = starts
        .iter()
        .map(|&t| starts.iter().filter(|&&s| s >= t && s < t + 50_000_000).count())
        .max()
        .expect("some");
    assert_eq!(values(&doc, 0), [brute as f64]);
    // The journal is a snapshot: af inspect reads it.
    af().args(["inspect", "--no-findings"])
        .arg(dir.path().join("run-1.journal.jsonl"))
        .assert()
        .success();
}

#[test]
fn emulated_inflight_limit_rejects_exactly_the_excess_per_caller() {
    let limit = format!("{GETS}: inflight<=20 per caller");
    let (code, doc) = measure(
        &[
            "--latency",
            "fixed:1s",
            "--limit",
            &limit,
            "--metric",
            "errors{status=\"429\"}",
            "--runs",
            "1",
        ],
        &["node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 0, "{doc}");
    assert_eq!(values(&doc, 0), [80.0], "100 at once, 20 admitted");
    assert_eq!(doc["runs"][0]["limited"], 80);
    // Two callers, 50 each: limited independently.
    let (_, doc) = measure(
        &[
            "--latency",
            "fixed:1s",
            "--limit",
            &limit,
            "--metric",
            "errors{status=\"429\"}",
            "--runs",
            "1",
        ],
        &["env", "USER_TOKENS=a,b", "node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(values(&doc, 0), [60.0], "30 rejected per caller");
}

#[test]
fn a_hanging_program_is_killed_with_its_whole_process_group() {
    let started = Instant::now();
    // A distinctive duration marks the background child in `ps`.
    let secs = 3000 + std::process::id() % 997;
    let marker = format!("sleep {secs}");
    let (code, doc) = measure(
        &["--metric", "calls", "--runs", "1", "--timeout", "1s"],
        &["sh", "-c", &format!("{marker} & sleep 31; echo done")],
    );
    assert!(started.elapsed() < Duration::from_secs(15), "timeout not enforced");
    assert_eq!(code, 0, "no expectation: the run is reported, not failed");
    assert_eq!(doc["runs"][0]["timed_out"], true);
    assert!(doc["problems"].to_string().contains("timed out"), "{doc}");
    assert!(doc["problems"].to_string().contains("no request"), "{doc}");
    // The background `sleep 30` was in the same group: nothing of the run survives.
    std::thread::sleep(Duration::from_millis(200));
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().expect("ps");
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(&marker),
        "a child of the program outlived the run"
    );
}

#[test]
fn a_failing_program_is_reported_and_still_measured() {
    let (code, doc) =
        measure(&["--metric", "calls", "--runs", "1"], &["node", "-e", "process.exit(3)"]);
    assert_eq!(code, 0);
    assert_eq!(doc["runs"][0]["exit_code"], 3);
    assert!(doc["problems"].to_string().contains("the program exited 3"), "{doc}");
    // No request, nothing measured: `null`, never a 0 that an expectation could pass on.
    assert_eq!(doc["metrics"][0]["values"], serde_json::json!([null]));
    assert!(doc["problems"].to_string().contains("not measured"), "{doc}");
    let (code, doc) = measure(
        &["--metric", "peak_inflight", "--expect", "<= 10", "--runs", "1"],
        &["node", "-e", "process.exit(0)"],
    );
    assert_eq!(code, 1, "an expectation on nothing fails: {doc}");
    assert_eq!(doc["metrics"][0]["passed"], false);
}

#[test]
fn unmatched_requests_are_loud_and_can_fail_the_run() {
    let program = [
        "node",
        "-e",
        "fetch(process.env.API_URL + '/nowhere').then(r => r.text()).then(t => console.log(t))",
    ];
    let (code, doc) = measure(&["--metric", "calls", "--runs", "1"], &program);
    assert_eq!(code, 0);
    assert_eq!(doc["runs"][0]["misses"], 1);
    assert!(doc["problems"].to_string().contains("matched no recording"), "{doc}");
    let (code, doc) =
        measure(&["--metric", "calls", "--runs", "1", "--unmatched", "fail"], &program);
    assert_eq!(code, 1, "{doc}");
}

#[test]
fn harness_hash_is_stable_and_tracks_the_spec() {
    let args = ["--metric", "calls", "--runs", "1"];
    let (_, a) = measure(&args, &["node", "-e", "0"]);
    let (_, b) = measure(&args, &["node", "-e", "0"]);
    assert_eq!(a["harness_hash"], b["harness_hash"]);
    let (_, c) = measure(&["--metric", "calls", "--runs", "2"], &["node", "-e", "0"]);
    assert_ne!(a["harness_hash"], c["harness_hash"]);
    // Equivalent metric spellings are one harness.
    let (_, d) = measure(&["--metric", "max_arrivals{50ms}", "--runs", "1"], &["node", "-e", "0"]);
    let (_, e) = measure(
        &["--metric", "max_arrivals{window=\"50ms\"}", "--runs", "1"],
        &["node", "-e", "0"],
    );
    assert_eq!(d["harness_hash"], e["harness_hash"]);
}

#[test]
fn credentials_are_stripped_from_the_program_environment() {
    let out = af()
        .env("SERVICE_API_KEY", "SECRET-should-not-pass")
        .args([
            "measure",
            "--json",
            "--snapshot",
            "fixtures/gmail/capture.har",
            "--metric",
            "calls",
            "--runs",
            "1",
            "--",
        ])
        .args(["node", "-e", "console.log('key=' + (process.env.SERVICE_API_KEY || 'absent'))"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key=absent"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["stripped_env"].as_array().expect("list").iter().any(|v| v == "SERVICE_API_KEY"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SECRET-should-not-pass"));
}

#[test]
fn measure_result_validates_against_the_committed_schema() {
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("schemas/measure.schema.json")).expect("schema"),
    )
    .expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let (_, doc) =
        measure(&["--metric", "calls", "--expect", ">= 0", "--runs", "1"], &["node", "-e", "0"]);
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn bad_measure_arguments_are_usage_errors() {
    af().args([
        "measure",
        "--snapshot",
        "fixtures/gmail/capture.har",
        "--metric",
        "bogus",
        "--",
        "true",
    ])
    .assert()
    .code(2);
    af().args([
        "measure",
        "--snapshot",
        "fixtures/gmail/capture.har",
        "--metric",
        "calls",
        "--expect",
        "<= 1",
        "--expect",
        "<= 2",
        "--",
        "true",
    ])
    .assert()
    .code(2);
    af().args([
        "measure",
        "--snapshot",
        "fixtures/gmail/capture.har",
        "--metric",
        "calls",
        "--limit",
        "nonsense",
        "--",
        "true",
    ])
    .assert()
    .code(2);
    af().args([
        "measure",
        "--snapshot",
        "fixtures/gmail/capture.har",
        "--metric",
        "calls",
        "--",
        "/no/such/program",
    ])
    .assert()
    .code(2);
}

/// `af mock` as a server: metrics endpoint, journal, clean stop on SIGTERM.
#[test]
fn af_mock_serves_reports_metrics_and_journals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("journal.jsonl");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("af"))
        .current_dir(root())
        .args(["mock", "fixtures/gmail/capture.har", "--latency", "none", "--journal"])
        .arg(&journal)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("banner");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address")
        .to_owned();
    let http = |req: &str| {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    };
    let r = http(
        "GET /gmail/v1/users/me/messages/abc123def4567890?format=metadata HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = http("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404") && r.contains("nearest_recorded"), "{r}");
    let r = http("GET /__af/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.contains("\"requests\": 2") && r.contains("\"misses\": 1"), "{r}");
    let r = http(
        "GET /__af/metrics?format=prometheus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.contains("af_mock_requests_total 2"), "{r}");
    let r = http("garbage\r\n\r\n");
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 400"), "{r}");
    nix_term(child.id());
    let status = child.wait().expect("wait");
    assert!(status.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("rest");
    assert!(rest.contains("2 requests") && rest.contains("2 journaled"), "{rest}");
    let out =
        af().args(["inspect", "--json", "--no-findings"]).arg(&journal).output().expect("inspect");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["totals"]["calls"], 2);
    assert_eq!(doc["totals"]["status"]["404"], 1);
}

fn nix_term(pid: u32) {
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
}

#[test]
fn limit_auto_emulates_what_the_capture_shows() {
    // The Gmail capture's limit model: ≈ 30 accepted in flight per caller.
    let (code, doc) = measure(
        &[
            "--latency",
            "fixed:1s",
            "--limit",
            "auto",
            "--metric",
            "errors{status=\"429\"}",
            "--runs",
            "1",
        ],
        &["node", "fixtures/programs/fanout.js"],
    );
    assert_eq!(code, 0, "{doc}");
    assert_eq!(values(&doc, 0), [70.0]);
    assert!(
        doc["harness"]["mock"]["limits"][0]["endpoint"]
            .as_str()
            .is_some_and(|e| e.ends_with("/messages/{id}")),
        "{doc}"
    );
}

#[test]
fn proxy_mode_reaches_the_mock_from_a_hard_coded_https_host() {
    // No --url-env: the program calls https://gmail.googleapis.com itself; HTTPS_PROXY and the
    // local CA bring it to the mock.
    let ca = tempfile::tempdir().expect("tempdir");
    let _one = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = af()
        .env("AF_CA_DIR", ca.path())
        .args([
            "measure",
            "--json",
            "--quiet",
            "--proxy",
            "--snapshot",
            "fixtures/gmail/capture.har",
            "--latency",
            "fixed:500ms",
        ])
        .args([
            "--metric",
            "peak_inflight{per=\"caller\"}",
            "--metric",
            "calls",
            "--runs",
            "1",
            "--",
        ])
        .args(["env", "WORKERS=20", "N=40", "python3", "fixtures/programs/fanout.py"])
        .output()
        .expect("runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert_eq!(doc["runs"][0]["exit_code"], 0, "{doc}");
    assert_eq!(values(&doc, 0), [20.0]);
    assert_eq!(values(&doc, 1), [40.0]);
    assert_eq!(doc["harness"]["proxy"], true);
    let journal = std::fs::read_to_string(doc["runs"][0]["journal"].as_str().expect("path"))
        .expect("journal");
    assert!(
        journal.contains("https://gmail.googleapis.com/gmail/v1/users/me/messages/"),
        "requests kept their host"
    );
}

#[test]
fn af_mock_tls_and_connect_interception_with_curl_and_python() {
    let ca = tempfile::tempdir().expect("tempdir");
    for (flag, url_for) in [("--tls", "tls"), ("--proxy", "proxy")] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("af"))
            .current_dir(root())
            .env("AF_CA_DIR", ca.path())
            .args(["mock", "fixtures/gmail/capture.har", "--latency", "none", flag])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        while !line.contains("serving") {
            line.clear();
            stderr.read_line(&mut line).expect("banner");
        }
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("address")
            .to_owned();
        let port = addr.rsplit(':').next().expect("port").to_owned();
        let cacert = ca.path().join("ca.pem");
        let curl = |args: &[&str]| {
            let out = std::process::Command::new("curl")
                .args(["-sS", "--max-time", "10", "--cacert"])
                .arg(&cacert)
                .args(args)
                .output()
                .expect("curl");
            assert!(
                out.status.success(),
                "curl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let body = if url_for == "tls" {
            curl(&[&format!(
                "https://localhost:{port}/gmail/v1/users/me/messages/abc?format=metadata"
            )])
        } else {
            curl(&[
                "--proxy",
                &format!("http://127.0.0.1:{port}"),
                "https://gmail.googleapis.com/gmail/v1/users/me/messages/abc?format=metadata",
            ])
        };
        assert!(body.contains("\"snippet\""), "{flag}: {body}");
        if url_for == "proxy" {
            let py = std::process::Command::new("python3")
                .env("HTTPS_PROXY", format!("http://127.0.0.1:{port}"))
                .env("SSL_CERT_FILE", &cacert)
                .args(["-c", "import urllib.request as u; print(u.urlopen('https://gmail.googleapis.com/gmail/v1/users/me/messages?maxResults=3').status)"])
                .output()
                .expect("python3");
            assert_eq!(
                String::from_utf8_lossy(&py.stdout).trim(),
                "200",
                "{}",
                String::from_utf8_lossy(&py.stderr)
            );
        }
        nix_term(child.id());
        assert!(child.wait().expect("wait").success());
    }
}
