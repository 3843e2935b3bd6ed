//! CLI tests: the real `af` binary on committed fixtures.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// `af` run from the workspace root, so fixture paths in output are relative and stable.
fn af() -> Command {
    let mut c = Command::cargo_bin("af").expect("af binary");
    c.current_dir(root());
    c
}

fn stdout(args: &[&str]) -> String {
    let out = af().args(args).output().expect("runs");
    assert!(out.status.success(), "af {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout(args)).expect("valid JSON")
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_gmail_table() {
    insta::assert_snapshot!(stdout(&["inspect", "fixtures/gmail/capture.har"]));
}

#[test]
fn inspect_gmail_by_caller_only_429s() {
    insta::assert_snapshot!(stdout(&[
        "inspect",
        "fixtures/gmail/capture.har",
        "--by",
        "caller",
        "--status",
        "429"
    ]));
}

#[test]
fn inspect_proxymock_directories() {
    insta::assert_snapshot!(stdout(&[
        "inspect",
        "fixtures/proxymock/json",
        "fixtures/proxymock/jsonl",
        "fixtures/proxymock/markdown"
    ]));
}

#[test]
fn inspect_json_validates_against_the_committed_schema() {
    let validator = validator("inspect");
    for args in [
        vec!["inspect", "--json", "fixtures/gmail/capture.har"],
        vec![
            "inspect",
            "--json",
            "--by",
            "caller",
            "fixtures/gmail/capture.har",
            "fixtures/formats/native-v1.jsonl",
        ],
        vec!["inspect", "--json", "--status", "599", "fixtures/har/browser.har"],
    ] {
        let doc = json(&args);
        let errors: Vec<String> =
            validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{args:?}: {errors:#?}");
    }
}

#[test]
fn committed_schemas_are_up_to_date() {
    for name in ["inspect", "diff", "measure", "plan", "result", "demo"] {
        let committed = std::fs::read_to_string(root().join(format!("schemas/{name}.schema.json")))
            .expect("schema");
        assert_eq!(
            stdout(&["schema", name]),
            committed,
            "run: cargo run -q -- schema {name} > schemas/{name}.schema.json"
        );
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join(format!("schemas/{name}.schema.json"))).expect("schema"),
    )
    .expect("JSON");
    jsonschema::validator_for(&schema).expect("valid schema")
}

// ---------------------------------------------------------------- diff

#[test]
fn diff_before_and_after_the_fix() {
    insta::assert_snapshot!(stdout(&[
        "diff",
        "fixtures/gmail/capture.har",
        "fixtures/gmail/after.har",
        "--fail-if",
        "errors{status=\"429\"} > 0",
        "--fail-if",
        "peak_inflight{endpoint=\"GET /gmail/v1/users/{userId}/messages/{id}\",per=\"caller\"} > 10",
    ]));
}

#[test]
fn diff_gate_fails_with_exit_1_and_json_says_why() {
    let out = af()
        .args([
            "diff",
            "--json",
            "fixtures/gmail/after.har",
            "fixtures/gmail/capture.har",
            "--fail-if",
            "errors{status=\"429\"} > 0",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "the regression direction must fail the gate");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let errors: Vec<String> = validator("diff").iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(doc["failed"], true);
    assert_eq!(doc["gates"][0]["after"], 28.0);
    assert_eq!(doc["gates"][0]["before"], 0.0);
    assert_eq!(doc["totals"]["calls"]["before"], 406);
    assert_eq!(doc["totals"]["calls"]["after"], 183);
    assert_eq!(doc["totals"]["errors_by_status"]["429"]["after"], 28);
}

#[test]
fn diff_rejects_bad_gates_as_usage_errors() {
    af().args([
        "diff",
        "fixtures/gmail/capture.har",
        "fixtures/gmail/after.har",
        "--fail-if",
        "errorz > 0",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("--fail-if").and(predicate::str::contains("unknown metric")));
    af().args(["diff", "fixtures/gmail/capture.har", "nope.har"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.har"));
    // A gate whose selector selects nothing after is an error, not a pass.
    af().args([
        "diff",
        "fixtures/gmail/capture.har",
        "fixtures/gmail/after.har",
        "--fail-if",
        "errors{endpoint=\"GET /gmail/v1/users/me/mesages/{id}\",status=\"429\"} > 0",
    ])
    .assert()
    .code(2)
    .stderr(
        predicate::str::contains("matches no exchange")
            .and(predicate::str::contains("GET /gmail/v1/users/me/messages/{id}")),
    );
}

#[test]
fn inspect_json_numbers_for_the_gmail_capture() {
    let doc = json(&["inspect", "--json", "fixtures/gmail/capture.har"]);
    let f = &doc["findings"];
    assert_eq!(f[0]["severity"], "high");
    let limit = f
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["detector"] == "limit-model")
        .expect("limit model");
    assert_eq!(limit["details"]["verdict"], "concurrency");
    assert!(limit["suggested_metric"].as_str().is_some_and(|m| m.starts_with("peak_inflight{")));
    let conc = &doc["concurrency"]["endpoints"][0];
    assert_eq!(conc["endpoint"], "GET /gmail/v1/users/me/messages/{id}");
    assert!(
        conc["peak_inflight_per_caller"].as_u64().is_some_and(|p| (38..=40).contains(&p)),
        "{conc}"
    );
    assert!(conc["max_arrivals_50ms"].as_u64().is_some_and(|p| p >= 38), "{conc}");
    let none = json(&["inspect", "--json", "--no-findings", "fixtures/gmail/capture.har"]);
    assert_eq!(none["concurrency"], serde_json::Value::Null);
    assert_eq!(none["findings"], serde_json::json!([]));
    assert_eq!(doc["totals"]["calls"], 183);
    assert_eq!(doc["totals"]["status"]["429"], 28);
    let gets = &doc["endpoints"][0];
    assert_eq!(gets["endpoint"], "GET /gmail/v1/users/me/messages/{id}");
    assert_eq!(gets["host"], "gmail.googleapis.com");
    assert_eq!(gets["calls"], 170);
    assert_eq!(doc["sources"][0]["format"], "har");
    let p50 = gets["latency_ms"]["p50"].as_f64().expect("p50");
    let p99 = gets["latency_ms"]["p99"].as_f64().expect("p99");
    assert!(p50 > 0.0 && p50 <= p99, "{p50} {p99}");
}

#[test]
fn filters_select_endpoint_status_and_time() {
    let doc = json(&[
        "inspect",
        "--json",
        "fixtures/gmail/capture.har",
        "--endpoint",
        "GET */messages/{id}",
        "--status",
        "4xx",
        "--since",
        "2026-11-20T11:15:10Z",
        "--until",
        "2026-11-20T11:15:30Z",
    ]);
    let calls = doc["totals"]["calls"].as_u64().expect("calls");
    assert!(calls > 0 && calls < 28, "only the later bursts' 429s: {calls}");
    assert_eq!(
        doc["totals"]["status"].as_object().expect("map").keys().collect::<Vec<_>>(),
        ["429"]
    );
    assert_eq!(doc["filtered_out"].as_u64(), Some(183 - calls));
    let none = json(&["inspect", "--json", "fixtures/gmail/capture.har", "--endpoint", "DELETE *"]);
    assert_eq!(none["totals"]["calls"], 0);
    assert_eq!(none["span"]["start"], serde_json::Value::Null);
}

#[test]
fn by_caller_separates_credentials_without_printing_them() {
    let doc = json(&["inspect", "--json", "--by", "caller", "fixtures/gmail/capture.har"]);
    let callers: std::collections::BTreeSet<&str> = doc["endpoints"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["caller"].as_str())
        .collect();
    assert_eq!(callers.len(), 2, "{callers:?}");
}

#[test]
fn no_secret_from_any_fixture_reaches_the_output() {
    for args in [
        vec![
            "inspect",
            "fixtures/gmail/capture.har",
            "fixtures/har",
            "fixtures/formats",
            "fixtures/proxymock",
            "--by",
            "caller",
        ],
        vec![
            "inspect",
            "--json",
            "fixtures/gmail/capture.har",
            "fixtures/har",
            "fixtures/formats",
            "fixtures/proxymock",
            "--by",
            "caller",
        ],
    ] {
        let out = af().args(&args).output().expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let all = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains("SECRET"), "a credential leaked:\n{text}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    af().args(["inspect", "fixtures/gmail/capture.har", "--status", "42"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--status"));
    af().args(["inspect", "fixtures/gmail/capture.har", "--since", "noon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--since"));
    af().args(["inspect", "fixtures/gmail/capture.har", "--caller-key", "cookie"]).assert().code(2);
    af().args(["inspect", "fixtures/gmail/capture.har", "--template", "no-slash"]).assert().code(2);
    af().args(["inspect"]).assert().code(2);
    af().args(["inspect", "does/not/exist.har"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does/not/exist.har"));
}

// ---------------------------------------------------------------- bad input

fn temp_file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).expect("write");
    p
}

#[test]
fn bad_records_fail_with_one_line_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = temp_file(
        &dir,
        "bad.jsonl",
        b"{\"format\":\"af-snapshot\",\"version\":1}\n{\"id\":\"a\",\"request\":{\"method\":\"GET\",\"url\":\"/x\"},\"timing\":{\"start\":\"2026-11-20T11:15:04Z\"}}\n{\"id\":\"b\",\"request\":{\"method\":\"GET\",\"url\":\"/x\"},\"response\":{\"status\":\"ok\"},\"timing\":{\"start\":\"2026-11-20T11:15:04Z\"}}\n",
    );
    let out = af().arg("inspect").arg(&p).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:3:") && err.contains("field `response.status`"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line per error: {err}");
    assert!(out.stdout.is_empty(), "no partial table on strict failure");

    // --lenient: the table of what was usable, and the count of what was not.
    let out = af().args(["inspect", "--lenient"]).arg(&p).output().expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 bad record skipped (--lenient)"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:3"));
    let out = af().args(["inspect", "--lenient", "--json"]).arg(&p).output().expect("runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (doc["read"]["skipped"].as_u64(), doc["totals"]["calls"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn nothing_usable_exits_2_even_when_lenient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = temp_file(&dir, "junk.bin", &[0x00, 0xff, 0x13, 0x37]);
    af().args(["inspect", "--lenient"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("junk.bin").and(predicate::str::contains("binary")));
    let p = temp_file(&dir, "empty.har", b"");
    af().arg("inspect")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("empty.har: file is empty"));
}

// ---------------------------------------------------------------- convert / import

#[test]
fn convert_har_to_native_to_har_and_back_gives_the_same_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let native = dir.path().join("gmail.jsonl.zst");
    let har = dir.path().join("gmail.har");
    af().args(["convert", "fixtures/gmail/capture.har"])
        .arg(&native)
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote 183 exchanges"));
    af().arg("convert").arg(&native).arg(&har).assert().success();
    let a = json(&["inspect", "--json", "fixtures/gmail/capture.har"]);
    let mut b: serde_json::Value = serde_json::from_slice(
        &af().args(["inspect", "--json"]).arg(&har).output().expect("runs").stdout,
    )
    .expect("JSON");
    b["sources"] = a["sources"].clone();
    assert_eq!(a, b);
}

#[test]
fn convert_refuses_to_overwrite_and_names_unknown_extensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x.jsonl");
    std::fs::write(&out, "keep me").expect("write");
    af().args(["convert", "fixtures/har/browser.har"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "keep me");
    af().args(["convert", "fixtures/har/browser.har", "--force"]).arg(&out).assert().success();
    af().args(["convert", "fixtures/har/browser.har"])
        .arg(dir.path().join("x.txt"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(".har"));
}

#[test]
fn failed_convert_leaves_no_partial_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = temp_file(&dir, "bad.har", br#"{"log":{"entries":[{"startedDateTime":"2026-11-20T11:15:04Z","request":{"method":"GET","url":"https://a/"},"response":{"status":200}},{"startedDateTime":"never","request":{"method":"GET","url":"https://a/"},"response":{"status":200}}]}}"#);
    let out = dir.path().join("out.jsonl");
    af().arg("convert")
        .arg(&bad)
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("startedDateTime"));
    assert!(!out.exists());
    af().args(["convert", "--lenient"])
        .arg(&bad)
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("skipped 1 bad record"));
    assert!(out.exists());
}

#[test]
fn import_proxymock_directories_into_one_native_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pm.jsonl");
    af().args([
        "import",
        "fixtures/proxymock/markdown",
        "fixtures/proxymock/json",
        "fixtures/proxymock/jsonl",
        "-o",
    ])
    .arg(&out)
    .assert()
    .success()
    .stderr(predicate::str::contains("wrote 9 exchanges from 6 files"));
    let first = std::fs::read_to_string(&out).expect("read");
    assert!(first.starts_with("{\"format\":\"af-snapshot\",\"version\":2"), "{first}");
    let doc: serde_json::Value = serde_json::from_slice(
        &af().args(["inspect", "--json"]).arg(&out).output().expect("runs").stdout,
    )
    .expect("JSON");
    assert_eq!(doc["totals"]["calls"], 9);
    assert_eq!(doc["sources"][0]["format"], "af-snapshot");
    af().args(["import", "fixtures/har/browser.har", "-o"])
        .arg(dir.path().join("x.har"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("af convert"));
}

#[test]
fn help_lists_the_verbs() {
    af().arg("--help").assert().success().stdout(
        predicate::str::contains("inspect")
            .and(predicate::str::contains("convert"))
            .and(predicate::str::contains("import")),
    );
}

#[test]
fn closed_stdout_is_not_an_error() {
    // `af inspect … | head -1`: the pipe closes early; af must exit 0 quietly.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("af"))
        .current_dir(root())
        .args(["inspect", "--json", "fixtures/gmail/capture.har", "fixtures/har", "--by", "caller"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn lenient_report_snapshot_with_redacted_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = temp_file(
        &dir,
        "mixed.jsonl",
        b"{\"format\":\"af-snapshot\",\"version\":1}\n{\"id\":\"a\",\"request\":{\"method\":\"GET\",\"url\":\"https://api.test/users/7\"},\"response\":{\"status\":503},\"timing\":{\"start\":\"2026-11-20T11:15:04Z\",\"duration_ns\":2500000}}\n{\"id\":\"b\",\"request\":{\"method\":\"GET\"},\"timing\":{\"start\":\"2026-11-20T11:15:05Z\"}}\nnot json at all\n{\"id\":\"c\",\"request\":{\"method\":\"GET\",\"url\":\"https://api.test/users/8\"},\"response\":{\"status\":200},\"timing\":{\"start\":\"2026-11-20T11:15:06Z\",\"duration_ns\":1500000}}\n{\"id\":\"d\",\"request\":{\"meth",
    );
    let out = af().args(["inspect", "--lenient", "--threads", "1"]).arg(&p).output().expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp = dir.path().display().to_string();
    insta::with_settings!({filters => vec![(regex_escape(&tmp).as_str(), "[TMP]")]}, {
        insta::assert_snapshot!(text);
    });
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn hidden_files_in_a_directory_are_named_not_silently_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(root().join("fixtures/har/mitmproxy.har"), dir.path().join("capture.har"))
        .expect("copy");
    std::fs::write(dir.path().join(".DS_Store"), [0u8, 1, 2]).expect("write");
    let out = af().args(["inspect", "--no-findings"]).arg(dir.path()).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(".DS_Store: hidden file not read"));
}
