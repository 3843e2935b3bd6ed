//! `af demo --json` on the bundled example (Node 20, the Gmail simulator, a git worktree): the
//! whole loop, offline, read back from the JSON it prints and checked against its schema.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// `<= 10` → 10.
fn bound(expect: &str) -> f64 {
    expect.trim_start_matches("<=").trim().parse().expect("a <= bound")
}

#[test]
fn demo_json_reports_the_confirmed_loop_and_matches_its_schema() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::cargo_bin("af")
        .expect("af")
        .current_dir(root())
        .args(["demo", "--json", "--out"])
        .arg(tmp.path())
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}); stderr: {err}"));
    // The steps' text went to stderr, not into the JSON.
    assert!(err.contains("== 5. post-deploy comparison"), "{err}");

    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("schemas/demo.schema.json")).expect("schema"),
    )
    .expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let problems: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");

    assert_eq!(doc["schema"], "af.demo/1");
    assert_eq!(doc["confirmed"], true, "{}", doc["verdict"]);
    let h = &doc["headline"];
    let limit = bound(h["expect"].as_str().expect("expect"));
    let values = |k: &str| -> Vec<f64> {
        h[k].as_array().expect(k).iter().map(|v| v.as_f64().expect("measured")).collect()
    };
    let (base, confirm) = (values("baseline"), values("confirm"));
    assert_eq!((base.len(), confirm.len()), (3, 3), "{h}");
    assert!(base.iter().all(|v| *v > limit), "the baseline violates {limit}: {base:?}");
    assert!(confirm.iter().all(|v| *v <= limit), "the confirm meets {limit}: {confirm:?}");
    assert_eq!(h["harness"], doc["plan"]["harness_hash"]);
    for k in ["markdown", "html"] {
        let p = doc["reports"][k].as_str().expect("report path");
        assert!(Path::new(p).is_file(), "{p}");
    }
    assert!(Path::new(doc["after_capture"].as_str().expect("after")).is_file());
    let by_status = &doc["diff"]["totals"]["errors_by_status"]["429"];
    assert!(by_status["before"].as_u64().expect("before") > 0, "{by_status}");
    assert_eq!(by_status["after"], 0, "no 429 after the fix: {by_status}");
}
