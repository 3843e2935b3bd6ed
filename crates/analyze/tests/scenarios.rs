//! The detectors on simulated captures with known answers (af-testkit's scenarios), read back
//! through HAR files as a user's capture would be, with browser (ms) and µs timing precision.

use af_analyze::{Capture, Finding, Severity, analyze, default_detectors};
use af_snapshot::{CallerSpec, Exchange, OutputFormat, ReadOptions, Templater, Writer, read_all};
use af_testkit::scenarios;

/// Writes the scenario as HAR, reads it back, analyzes it.
fn findings_via_har(exchanges: &[Exchange]) -> Vec<Finding> {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("capture.har");
    let mut w = Writer::create(&p, OutputFormat::Har, false).expect("create");
    for e in exchanges {
        w.write(e).expect("write");
    }
    w.finish().expect("finish");
    let (back, _) = read_all(&p, ReadOptions::default()).expect("read");
    let cap = Capture::from_exchanges(&back, &Templater::default(), &CallerSpec::default());
    analyze(&cap, &default_detectors())
}

fn one<'a>(fs: &'a [Finding], detector: &str, status: Option<u16>) -> &'a Finding {
    let hits: Vec<&Finding> = fs
        .iter()
        .filter(|f| f.detector == detector && (status.is_none() || f.status == status))
        .collect();
    assert_eq!(hits.len(), 1, "expected one {detector} finding, got {}:\n{}", hits.len(), dump(fs));
    hits[0]
}

fn dump(fs: &[Finding]) -> String {
    fs.iter()
        .map(|f| format!("{} [{}] {}: {}", f.id, f.severity.as_str(), f.detector, f.summary))
        .collect::<Vec<_>>()
        .join("\n")
}

fn detail<'a>(f: &'a Finding, path: &[&str]) -> &'a serde_json::Value {
    path.iter().fold(&f.details, |v, k| &v[*k])
}

#[test]
fn concurrency_limit_burst() {
    let ex = scenarios::concurrency_limit(7);
    let fs = findings_via_har(&ex);
    let burst = one(&fs, "error-burst", Some(429));
    assert_eq!(detail(burst, &["verdict"]), "clustered", "{}", dump(&fs));
    assert_eq!(
        detail(burst, &["cluster", "share_of_errors"]),
        1.0,
        "all three sub-bursts are one incident"
    );
    let limit = one(&fs, "limit-model", Some(429));
    assert_eq!(detail(limit, &["verdict"]), "concurrency", "{}", limit.summary);
    assert_eq!(detail(limit, &["bound", "low"]), 20, "{}", limit.summary);
    assert_eq!(detail(limit, &["bound", "high"]), 20, "{}", limit.summary);
    assert_eq!(limit.severity, Severity::High);
    assert_eq!(
        limit.suggested_metric.as_deref(),
        Some("peak_inflight{endpoint=\"GET /v1/items/{id}\",per=\"caller\"} <= 10")
    );
    let fan = one(&fs, "fan-out", None);
    assert_eq!(detail(fan, &["occurrences"]), 3);
    assert_eq!(detail(fan, &["followers_max"]), 50);
    assert_eq!(detail(fan, &["parent"]), "GET /v1/items");
    // The evidence cites real exchanges.
    for id in &limit.evidence {
        assert!(ex.iter().any(|e| e.id.as_str() == id && e.status() == Some(429)), "{id}");
    }
}

#[test]
fn token_bucket_is_a_rate_limit() {
    let fs = findings_via_har(&scenarios::browser_precision(scenarios::token_bucket(7)));
    let limit = one(&fs, "limit-model", Some(429));
    assert_eq!(detail(limit, &["verdict"]), "rate", "{}", limit.summary);
    let low = detail(limit, &["bound", "low"]).as_u64().expect("bound");
    assert!((10..=20).contains(&low), "bucket refills at 10/s with 10 stored: {}", limit.summary);
    assert!(
        limit.suggested_metric.as_deref().is_some_and(|m| m.starts_with("max_rate_1s{")),
        "{limit:?}"
    );
    assert_eq!(detail(one(&fs, "error-burst", Some(429)), &["verdict"]), "clustered");
}

#[test]
fn random_500s_are_spread_and_not_load_related() {
    let fs = findings_via_har(&scenarios::spread_5xx(7));
    let burst = one(&fs, "error-burst", Some(500));
    assert_eq!(detail(burst, &["verdict"]), "spread", "{}", burst.summary);
    let limit = one(&fs, "limit-model", Some(500));
    assert_eq!(detail(limit, &["verdict"]), "not-load-related", "{}", limit.summary);
    assert_eq!(limit.suggested_metric, None, "nothing to measure a fix against");
    assert!(fs.iter().all(|f| f.severity <= Severity::Low), "{}", dump(&fs));
}

#[test]
fn retry_storm_ignoring_retry_after() {
    let fs = findings_via_har(&scenarios::browser_precision(scenarios::retry_storm(7)));
    let storm = one(&fs, "retry-storm", None);
    let amp = detail(storm, &["retry_amplification"]).as_f64().expect("amp");
    assert!(amp > 1.2, "{}", storm.summary);
    assert_eq!(detail(storm, &["retry_after_honoured"]), 0, "the client ignores Retry-After: 5");
    assert_eq!(storm.severity, Severity::High);
    // The property a fix restores when the server said how long to wait: no retry sooner.
    assert!(
        storm.suggested_metric.as_deref().is_some_and(|m| m.starts_with("early_retries{")),
        "{:?}",
        storm.suggested_metric
    );
    // An outage is not a rate limit, even though retries raise the request rate.
    assert_eq!(detail(one(&fs, "limit-model", Some(503)), &["verdict"]), "not-load-related");
}

#[test]
fn clean_capture_has_nothing_above_info() {
    for seed in 1..=3 {
        let fs = findings_via_har(&scenarios::clean(seed));
        assert!(fs.iter().all(|f| f.severity <= Severity::Info), "seed {seed}:\n{}", dump(&fs));
    }
}

#[test]
fn verdicts_hold_across_seeds() {
    for seed in 11..=14 {
        let c = findings_via_har(&scenarios::concurrency_limit(seed));
        assert_eq!(
            detail(one(&c, "limit-model", Some(429)), &["verdict"]),
            "concurrency",
            "seed {seed}"
        );
        let r = findings_via_har(&scenarios::token_bucket(seed));
        assert_eq!(detail(one(&r, "limit-model", Some(429)), &["verdict"]), "rate", "seed {seed}");
        let s = findings_via_har(&scenarios::spread_5xx(seed));
        assert_eq!(
            detail(one(&s, "limit-model", Some(500)), &["verdict"]),
            "not-load-related",
            "seed {seed}"
        );
    }
}

/// The committed Gmail capture (fixtures/gen/gmail_burst.py): limit 30 accepted calls in flight
/// per user, three unbounded fan-outs of 38–40 gets for one user.
#[test]
fn gmail_fixture_tells_the_story() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/gmail/capture.har");
    let (ex, _) = read_all(&path, ReadOptions::default()).expect("fixture");
    let templater = Templater::default().learning_from(&ex);
    let cap = Capture::from_exchanges(&ex, &templater, &CallerSpec::default());
    let fs = analyze(&cap, &default_detectors());
    let burst = one(&fs, "error-burst", Some(429));
    assert_eq!(detail(burst, &["errors"]), 28);
    assert_eq!(detail(burst, &["verdict"]), "clustered");
    let secs = detail(burst, &["cluster", "seconds"]).as_f64().expect("seconds");
    assert!((15.0..17.0).contains(&secs), "{secs}");
    let limit = one(&fs, "limit-model", Some(429));
    assert_eq!(detail(limit, &["verdict"]), "concurrency", "{}", limit.summary);
    assert_eq!(detail(limit, &["bound", "low"]), 30, "{}", limit.summary);
    assert_eq!(
        limit.suggested_metric.as_deref(),
        Some(
            "peak_inflight{endpoint=\"GET /gmail/v1/users/me/messages/{id}\",per=\"caller\"} <= 15"
        )
    );
    let fan = one(&fs, "fan-out", None);
    assert_eq!(detail(fan, &["occurrences"]), 3);
    assert_eq!(fs[0].severity, Severity::High);

    // The metrics the Planner would measure, evaluated on the capture itself. The capture calls
    // `users/me`: a selector written with the API's `{userId}` unifies with it.
    let m = |e: &str| e.parse::<af_analyze::Metric>().expect(e).measure(&cap).expect(e);
    let gets = "endpoint=\"GET /gmail/v1/users/{userId}/messages/{id}\"";
    assert_eq!(m(&format!("errors{{{gets},status=\"429\"}}")), 28.0);
    assert_eq!(m(&format!("calls{{{gets}}}")), 170.0);
    let peak = m(&format!("peak_inflight{{{gets},per=\"caller\"}}"));
    assert!((38.0..=40.0).contains(&peak), "{peak}");
    assert!(m(&format!("max_arrivals{{{gets},window=\"50ms\"}}")) >= 38.0);
    let (v, holds) =
        "errors{status=\"429\"} > 0".parse::<af_analyze::Check>().expect("check").evaluate(&cap);
    assert!(holds && v == 28.0);
}

#[test]
fn identical_polling_with_random_errors_is_not_a_retry_storm() {
    // A client polls one URL every 500 ms; 10 % of polls fail at random. Every failure is followed
    // by the identical request — but so is every success: that is polling, not retrying.
    let mut rng = af_testkit::Rng::new(3);
    let polls: Vec<Exchange> = (0..600)
        .map(|i| {
            let status = if rng.chance(0.1) { 503 } else { 200 };
            af_testkit::ex("GET", "https://api.test/v1/status")
                .at_ms(i * 500)
                .lasting_ms(20)
                .token("svc")
                .status(status)
                .build()
        })
        .collect();
    let fs = findings_via_har(&af_testkit::number(polls));
    assert!(fs.iter().all(|f| f.detector != "retry-storm"), "{}", dump(&fs));
}

#[test]
fn short_ids_are_unique_prefixes() {
    let ex: Vec<Exchange> = ["3f2a0001", "3f2a0002", "9b00ffff", "9c00ffff"]
        .iter()
        .enumerate()
        .map(|(i, id)| af_testkit::ex("GET", "https://api.test/a").at_ms(i as i64).id(*id).build())
        .collect();
    let cap = Capture::from_exchanges(&ex, &Templater::default(), &CallerSpec::default());
    assert_eq!(cap.short_ids(&["3f2a0001", "9b00ffff", "9c00ffff"]), ["3f2a0001", "9b00", "9c00"]);
}
