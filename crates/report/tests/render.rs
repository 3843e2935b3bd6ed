//! The report renders what it is given: Markdown and HTML of a committed run
//! (`fixtures/runs/radar/result.json`, an `af demo` run of the bundled example) as insta
//! snapshots, and charts computed by the analysis code, so they agree with the metric.

use std::path::{Path, PathBuf};

use af_agent::WorkResult;
use af_analyze::Capture;
use af_report::{Inputs, charts, html, markdown};
use af_snapshot::{CallerSpec, ReadOptions, Templater, read_all};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("root")
}

fn result() -> WorkResult {
    let text = std::fs::read_to_string(root().join("fixtures/runs/radar/result.json"))
        .expect("committed run");
    serde_json::from_str(&text).expect("result.json reads back into WorkResult")
}

#[test]
fn markdown_of_a_committed_run() {
    insta::assert_snapshot!(markdown(&result()));
}

#[test]
fn html_of_a_committed_run_without_chart_inputs_says_so() {
    let r = result();
    let mut inputs = Inputs::default();
    inputs.notes.push("baseline journal: not kept with the fixture".into());
    let page = html(&r, &charts(&r, &inputs));
    assert!(page.contains("baseline journal: not kept with the fixture"));
    insta::assert_snapshot!(page);
}

/// The in-flight chart's peak is the `peak_inflight{per="caller"}` metric over the same calls.
#[test]
fn the_inflight_chart_peaks_where_the_metric_does() {
    let snap = root().join("examples/radar/snapshots/before.jsonl");
    let (ex, _) = read_all(&snap, ReadOptions::default()).expect("snapshot");
    let templater = Templater::default().learning_from(&ex);
    let cap = Capture::from_exchanges(&ex, &templater, &CallerSpec::Auto);
    let r = result();
    let ep = r.plan.finding.as_ref().and_then(|f| f.endpoint.clone()).expect("endpoint");
    let metric: af_analyze::Metric =
        format!("peak_inflight{{endpoint=\"{ep}\",per=\"caller\"}}").parse().expect("metric");
    let want = metric.measure(&cap).expect("measured");
    let mut only = Capture::from_exchanges(&ex, &templater, &CallerSpec::Auto);
    let keep: Vec<u32> = only
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| af_snapshot::endpoint_matches(&ep, &e.method, &e.template))
        .map(|(i, _)| i as u32)
        .collect();
    only.calls.retain(|c| keep.contains(&c.endpoint));
    let inputs = Inputs { baseline: Some(only), ..Inputs::default() };
    let c = charts(&r, &inputs);
    let peak = c.inflight[0].points.iter().map(|p| p.1).fold(0.0, f64::max);
    assert!(want > 1.0, "the snapshot has concurrency to draw: {want}");
    assert_eq!(peak, want);
}
