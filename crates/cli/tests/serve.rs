//! `af serve` end to end with real components: the OpenTelemetry SDK for Python exporting over
//! OTLP/HTTP and OTLP/gRPC, the bundled Radar example and its Gmail simulator (Node), `af fix
//! --finding` on the stored evidence, `af record --push` of the fixed code, `af verify`.
//! Plus the fault tests: `kill -9` while ingesting, a full buffer, bad records.
//!
//! Needs Node 20 and the scenarios' venv with the OpenTelemetry packages
//! (`fixtures/scenarios/common/setup.sh`, which `.ci/run` sources); without them the tests fail
//! and say so — they never pass on nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{get, json, post, sleep_past_window, wait_for};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn af() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_af"))
}

fn python() -> PathBuf {
    let p = root().join("fixtures/scenarios/.venv/bin/python");
    let ok = Command::new(&p)
        .args(["-c", "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{}: no OpenTelemetry SDK; run `. fixtures/scenarios/common/setup.sh && setup_tools`",
        p.display()
    );
    p
}

struct Serve {
    child: Child,
    http: String,
    grpc: String,
    dir: PathBuf,
    line: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Serve {
    let mut child = Command::new(af())
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env_remove("AF_SERVE_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .expect("af serve starts");
    let mut line = String::new();
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    err.read_line(&mut line).expect("first line");
    // Keep reading (and showing) what it says, so its stderr never fills or closes.
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("{l}");
        }
    });
    let http = common::http_of(&line);
    let grpc = line
        .split("gRPC on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect(&line)
        .to_owned();
    Serve { child, http, grpc, dir: dir.to_owned(), line }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

#[test]
fn otlp_traffic_opens_a_finding_whose_evidence_fixes_it_and_verify_says_so() {
    let py = python();
    let tmp = tempfile::tempdir().expect("tmp");
    // 10 s windows hold the 1.5 s incident whole (23:52:43.7–45.2).
    let s = serve(&tmp.path().join("data"), &["--window", "10s", "--grace", "1s"]);
    let base = format!("http://{}", s.http);
    // The incident's traffic, through the SDK's exporters: half OTLP/HTTP, half OTLP/gRPC.
    let before = root().join("examples/radar/snapshots/before.jsonl");
    let st = Command::new(&py)
        .arg(root().join("fixtures/serve/otlp_export.py"))
        .arg(&before)
        .arg("radar")
        .args(["--http", &base, "--grpc", &s.grpc])
        .status()
        .expect("exporter");
    assert!(st.success());
    let finding = wait_for("a limit-model finding", 30, || {
        let (_, b) = get(&format!("{base}/api/findings?service=radar"));
        json(&b).as_array()?.iter().find(|f| f["kind"] == "limit-model").cloned()
    });
    let fp = finding["fingerprint"].as_str().expect("fp").to_owned();
    assert!(fp.starts_with("v1:") && fp.len() == 35, "{fp}");
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert!(
        metrics.contains("af_records_received_total{source=\"otlp-grpc-logs\"} 228"),
        "{metrics}"
    );
    assert!(
        metrics.contains("af_records_received_total{source=\"otlp-http-logs-protobuf\"} 228"),
        "{metrics}"
    );
    // Its evidence is the whole window: all 456 exchanges, not three examples.
    let (_, detail) = get(&format!("{base}/api/findings/{fp}"));
    let detail = json(&detail);
    assert_eq!(detail["evidence"]["exchanges"], 456, "{detail}");

    // af fix on that evidence, in a checkout of the example.
    let src = tmp.path().join("radar");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(root().join("examples/radar"))
        .arg(&src)
        .status()
        .expect("cp");
    assert!(cp.success());
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "radar"],
    ] {
        assert!(Command::new("git").current_dir(&src).args(args).status().expect("git").success());
    }
    let fix = Command::new(af())
        .current_dir(&src)
        .args(["fix", "--quiet", "--source", ".", "--finding", &fp[..12], "--data-dir"])
        .arg(&s.dir)
        .output()
        .expect("af fix");
    let out = String::from_utf8_lossy(&fix.stdout);
    assert_eq!(fix.status.code(), Some(0), "{out}\n{}", String::from_utf8_lossy(&fix.stderr));
    assert!(out.contains("Confirmed:"), "{out}");
    let worktree = out
        .lines()
        .find_map(|l| l.strip_prefix("branch: "))
        .and_then(|l| l.split(" in ").nth(1))
        .expect("worktree");
    let worktree = PathBuf::from(worktree.trim().trim_end_matches('/'));

    // The deploy, then the fixed code's traffic against the simulator, pushed by af record.
    let (code, _, _) = post(
        &format!("{base}/api/deploys"),
        "application/json",
        br#"{"service":"radar","sha":"f1x0001"}"#,
    );
    assert_eq!(code, 201);
    sleep_past_window(10); // the window the marker falls in straddles it: on neither side
    common::push_fixed_traffic(&worktree, &base, &tmp.path().join("after.jsonl"));
    wait_for("the fixed traffic's windows", 30, || {
        let (_, b) = get(&format!("{base}/api/findings/{fp}"));
        let v = json(&b);
        (v["checks"].as_array()?.len() >= 2).then_some(v)
    });
    std::thread::sleep(Duration::from_secs(12)); // every window of the run closed and analysed
    let v = Command::new(af())
        .args(["verify", &fp, "--since", "f1x0001", "--json", "--data-dir"])
        .arg(&s.dir)
        .output()
        .expect("verify");
    let doc = json(&String::from_utf8_lossy(&v.stdout));
    assert_eq!(v.status.code(), Some(0), "{doc}");
    assert_eq!(doc["outcome"], "verified", "{doc}");
    assert!(
        doc["after"]["calls"].as_i64().unwrap_or(0)
            >= doc["required_calls"].as_i64().unwrap_or(i64::MAX),
        "{doc}"
    );
    assert!(doc["before"]["value"].as_f64().unwrap_or(0.0) > 10.0, "{doc}");
    let (_, f) = get(&format!("{base}/api/findings/{fp}"));
    assert_eq!(json(&f)["finding"]["state"], "verified");

    // A second deploy with too little traffic after it: inconclusive, never "fixed".
    let (code, _, _) = post(
        &format!("{base}/api/deploys"),
        "application/json",
        br#"{"service":"radar","sha":"f1x0002"}"#,
    );
    assert_eq!(code, 201);
    sleep_past_window(10);
    let after = std::fs::read_to_string(tmp.path().join("after.jsonl")).expect("after");
    let now = now_rfc3339();
    let few: Vec<String> = after
        .lines()
        .filter(|l| l.contains("/messages/"))
        .take(5)
        .map(|l| {
            let mut v = json(l);
            v["timing"]["start"] = serde_json::Value::String(now.clone());
            v.to_string()
        })
        .collect();
    let (code, _, body) = post(
        &format!("{base}/v1/exchanges?service=radar"),
        "application/x-ndjson",
        few.join("\n").as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    let checks_before =
        json(&get(&format!("{base}/api/findings/{fp}")).1)["checks"].as_array().map_or(0, Vec::len);
    wait_for("the small window", 30, || {
        let v = json(&get(&format!("{base}/api/findings/{fp}")).1);
        (v["checks"].as_array()?.len() > checks_before).then_some(v)
    });
    let v = Command::new(af())
        .args(["verify", &fp, "--since", "f1x0002", "--data-dir"])
        .arg(&s.dir)
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(4), "{text}");
    assert!(text.starts_with("inconclusive: 5 call(s) after the marker"), "{text}");
}

fn exchange_line(i: usize, start: &str) -> String {
    format!(
        r#"{{"id":"x{i:06}","request":{{"method":"GET","url":"http://api.test/items/{i}","headers":[]}},"response":{{"status":200,"headers":[]}},"timing":{{"start":"{start}","duration_ns":1000000}}}}"#
    )
}

#[test]
fn kill_9_while_ingesting_loses_no_acknowledged_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    // Windows that cannot close during the test: everything acknowledged stays in the log.
    let mut s = serve(&data, &["--window", "10m", "--grace", "10m"]);
    let url = format!("http://{}/v1/exchanges?service=svc", s.http);
    let start = now_rfc3339();
    let mut acked = 0;
    let writer = std::thread::spawn({
        move || {
            let mut acked = 0usize;
            for batch in 0..400 {
                let body: Vec<String> =
                    (0..50).map(|i| exchange_line(batch * 50 + i, &start)).collect();
                let (code, _, _) = post(&url, "application/x-ndjson", body.join("\n").as_bytes());
                if code != 200 {
                    break;
                }
                acked += 50;
            }
            acked
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    s.child.kill().expect("kill -9"); // SIGKILL: no shutdown, no flush
    let _ = s.child.wait();
    acked += writer.join().expect("writer");
    assert!(acked > 0, "nothing was acknowledged before the kill");
    drop(s);
    // The restart replays the log: every acknowledged record is back (more may be: a request
    // stored but killed before its answer).
    let s = serve(&data, &["--window", "10m", "--grace", "10m"]);
    let n: usize = s
        .line
        .split(" records replayed")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no replay count in {:?}", s.line));
    assert!(n >= acked, "replayed {n} of {acked} acknowledged records");
}

#[test]
fn a_full_buffer_answers_429_and_drops_nothing_silently() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = serve(
        &tmp.path().join("data"),
        &["--window", "10m", "--grace", "10m", "--buffer", "20000"],
    );
    let url = format!("http://{}/v1/exchanges?service=svc", s.http);
    let start = now_rfc3339();
    let mut accepted = 0u64;
    let mut refused = None;
    for batch in 0..20 {
        let body: Vec<String> = (0..20).map(|i| exchange_line(batch * 20 + i, &start)).collect();
        let (code, headers, body) = post(&url, "application/x-ndjson", body.join("\n").as_bytes());
        match code {
            200 => accepted += json(&body)["accepted"].as_u64().expect("accepted"),
            429 => {
                refused = Some((headers, body));
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let (headers, body) = refused.expect("the buffer never filled");
    assert!(headers.contains("retry-after: 600"), "{headers}"); // the grace: when a window can close
    assert!(body.contains("nothing of this request was stored"), "{body}");
    let (_, m) = get(&format!("http://{}/metrics", s.http));
    assert!(
        m.contains(&format!("af_records_received_total{{source=\"native\"}} {accepted}")),
        "{m}"
    );
    assert!(m.contains("af_records_rejected_total{reason=\"buffer_full\"} 20"), "{m}");
    assert!(m.contains("af_requests_refused_total{reason=\"buffer_full\"} 1"), "{m}");
}

#[test]
fn bad_input_gets_a_clear_4xx_and_a_counter() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = serve(&tmp.path().join("data"), &["--max-body", "100000", "--max-record", "2000"]);
    let base = format!("http://{}", s.http);
    // A truncated protobuf.
    let (code, _, body) =
        post(&format!("{base}/v1/logs"), "application/x-protobuf", &[0x0a, 0xff, 0x01, 0x02]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a valid OTLP ExportLogsServiceRequest protobuf"), "{body}");
    // A wrong content type.
    let (code, _, body) = post(&format!("{base}/v1/traces"), "text/plain", b"hello");
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("text/plain"), "{body}");
    // A body that is not an exchange: OTLP JSON whose record body is a plain string.
    let logs = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"GET /x 200"}},{"body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"hi"}}]}}}]}]}]}"#;
    let (code, _, body) = post(&format!("{base}/v1/logs"), "application/json", logs.as_bytes());
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], 2, "{v}");
    assert!(
        v["partialSuccess"]["errorMessage"].as_str().unwrap_or("").contains("not an exchange"),
        "{v}"
    );
    // A gigantic record, and a body past the limit.
    let big = format!(
        r#"{{"id":"big","request":{{"method":"GET","url":"http://api.test/{}","headers":[]}},"timing":{{"start":"2026-01-01T00:00:00Z"}}}}"#,
        "a".repeat(5000)
    );
    let (code, _, body) =
        post(&format!("{base}/v1/exchanges"), "application/x-ndjson", big.as_bytes());
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("over the limit of 2000"), "{body}");
    let (code, _, _) =
        post(&format!("{base}/v1/exchanges"), "application/x-ndjson", &vec![b'x'; 200_000]);
    assert_eq!(code, 413);
    let (_, m) = get(&format!("{base}/metrics"));
    for needle in [
        "af_requests_refused_total{reason=\"malformed\"} 1",
        "af_requests_refused_total{reason=\"content_type\"} 1",
        "af_records_rejected_total{reason=\"invalid_record\"} 2",
        "af_records_rejected_total{reason=\"too_large\"} 1",
    ] {
        assert!(m.contains(needle), "{needle} not in\n{m}");
    }
    // The intake still works afterwards.
    let (code, _, body) = post(
        &format!("{base}/v1/exchanges?service=svc"),
        "application/x-ndjson",
        exchange_line(1, &now_rfc3339()).as_bytes(),
    );
    assert_eq!((code, json(&body)["accepted"].as_u64()), (200, Some(1)), "{body}");
}

#[test]
fn a_watched_directory_takes_drops_and_sets_bad_ones_aside_with_why() {
    let tmp = tempfile::tempdir().expect("tmp");
    let drops = tmp.path().join("drops");
    std::fs::create_dir_all(&drops).expect("drops");
    let s = serve(
        &tmp.path().join("data"),
        &["--watch", drops.to_str().expect("utf-8"), "--watch-service", "radar", "--grace", "1s"],
    );
    std::fs::copy(root().join("examples/radar/snapshots/before.jsonl"), drops.join("before.jsonl"))
        .expect("copy");
    std::fs::write(drops.join("junk.har"), b"{\"log\": {\"entries\": 7}}").expect("junk");
    let base = format!("http://{}", s.http);
    wait_for("both drops settled", 30, || {
        (drops.join(".af-done/before.jsonl").exists()
            && drops.join(".af-failed/junk.har.error").exists())
        .then_some(serde_json::Value::Null)
    });
    let why = std::fs::read_to_string(drops.join(".af-failed/junk.har.error")).expect("error file");
    assert!(why.contains("junk.har"), "{why}");
    let (_, m) = get(&format!("{base}/metrics"));
    assert!(m.contains("af_records_received_total{source=\"watch\"} 456"), "{m}");
    wait_for("the drop's finding", 30, || {
        let (_, b) = get(&format!("{base}/api/findings?service=radar"));
        json(&b).as_array()?.iter().find(|f| f["kind"] == "limit-model").cloned()
    });
}

/// Native lines of one endpoint: `n` calls starting at `t0` s, `errors` of them 500s, each
/// `ms` long.
fn window_lines(t0: i64, n: usize, errors: usize, ms: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let start = jiff::Timestamp::from_nanosecond(i128::from(t0) * 1_000_000_000 + i as i128 * 50_000_000).expect("time");
            let status = if i < errors { 500 } else { 200 };
            format!(
                r#"{{"id":"w{t0}-{i}","request":{{"method":"GET","url":"http://api.test/v1/orders/{i}","headers":[]}},"response":{{"status":{status},"headers":[]}},"timing":{{"start":"{start}","duration_ns":{}}}}}"#,
                ms * 1_000_000
            )
        })
        .collect()
}

#[test]
fn a_seeded_baseline_makes_an_error_rate_far_above_normal_a_finding() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Six clean 10 s windows of normal traffic (1 error in 100), as an imported snapshot.
    let seed = tmp.path().join("normal.jsonl");
    let t0 = 1_800_000_000; // a multiple of 10 s
    let mut lines = vec![r#"{"format":"af-snapshot","version":2}"#.to_owned()];
    for w in 0..6 {
        lines.extend(window_lines(t0 + w * 10, 100, 1, 20));
    }
    std::fs::write(&seed, lines.join("\n")).expect("seed");
    let arg = format!("{}=orders", seed.display());
    let s = serve(&tmp.path().join("data"), &["--window", "10s", "--grace", "1s", "--seed", &arg]);
    let base = format!("http://{}", s.http);
    let t = Instant::now();
    loop {
        let (_, b) = get(&format!("{base}/api/windows?service=orders"));
        if json(&b).as_array().map_or(0, Vec::len) >= 6 {
            break;
        }
        let (_, m) = get(&format!("{base}/metrics"));
        assert!(t.elapsed() < Duration::from_secs(30), "the seeded windows: {b}\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, b) = get(&format!("{base}/api/findings?service=orders"));
    assert_eq!(json(&b).as_array().map(Vec::len), Some(0), "normal traffic opened findings: {b}");
    // Then a window where 30 of 100 calls fail: far above this endpoint's own normal.
    let bad = window_lines(t0 + 100, 100, 30, 20).join("\n");
    let (code, _, body) = post(
        &format!("{base}/v1/exchanges?service=orders"),
        "application/x-ndjson",
        bad.as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    let f = wait_for("an error-rate-above-baseline finding", 30, || {
        let (_, b) = get(&format!("{base}/api/findings?service=orders"));
        json(&b).as_array()?.iter().find(|f| f["kind"] == "error-rate-above-baseline").cloned()
    });
    assert!(f["summary"].as_str().unwrap_or("").contains("30 of 100 calls failed"), "{f}");
}

#[test]
fn with_a_token_every_route_but_healthz_wants_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = serve(&tmp.path().join("data"), &["--token", "s3cret-t0ken"]);
    assert!(!s.line.contains("s3cret"), "the token is printed: {}", s.line);
    let base = format!("http://{}", s.http);
    let code = |path: &str, auth: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(a) = auth {
            c.args(["-H", &format!("authorization: Bearer {a}")]);
        }
        let out = c.arg(format!("{base}{path}")).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for path in ["/", "/api/findings", "/metrics", "/openapi.json", "/api/windows"] {
        assert_eq!(code(path, None), "401", "{path} without a token");
        assert_eq!(code(path, Some("s3cret-t0kem")), "401", "{path} with a wrong token");
        assert_eq!(code(path, Some("s3cret-t0ken")), "200", "{path} with the token");
    }
    assert_eq!(code("/healthz", None), "200");
    let (status, _, _) = post(
        &format!("{base}/v1/exchanges"),
        "application/x-ndjson",
        exchange_line(1, &now_rfc3339()).as_bytes(),
    );
    assert_eq!(status, 401, "the intake wants the token too");
}

#[test]
fn without_a_token_it_refuses_to_listen_beyond_loopback() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(af())
        .args(["serve", "--listen", "0.0.0.0:0", "--grpc-listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env_remove("AF_SERVE_TOKEN")
        .output()
        .expect("af serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without a token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn verify_on_two_snapshots_weighs_the_metric_and_refuses_one_that_selects_nothing() {
    let snaps = root().join("examples/radar/snapshots");
    let run = |metric: &str| {
        Command::new(af())
            .arg("verify")
            .arg("--before")
            .arg(snaps.join("before.jsonl"))
            .arg("--after")
            .arg(snaps.join("after.jsonl"))
            .args(["--metric", metric])
            .output()
            .expect("af verify")
    };
    let ok = run(
        "peak_inflight{endpoint=\"GET /gmail/v1/users/me/messages/{id}\",per=\"caller\"} <= 10",
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.starts_with("verified:"), "{text}");
    let typo =
        run("peak_inflight{endpoint=\"GET /gmail/v1/users/me/mesages/{id}\",per=\"caller\"} <= 10");
    assert_eq!(typo.status.code(), Some(2), "{}", String::from_utf8_lossy(&typo.stdout));
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("GET /gmail/v1/users/me/messages/{id}"),
        "names the nearest endpoint"
    );
}
