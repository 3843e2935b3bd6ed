//! Metric expressions (DESIGN.md §4) and their evaluation over a [`Capture`]:
//! `peak_inflight{endpoint="GET /users/{userId}/messages/{id}",per="caller"} <= 10`.
//!
//! The same expressions gate `af diff --fail-if`, become a plan's target and are what
//! `af measure` checks, so there is one parser and one definition of every metric.

use std::fmt;

use af_snapshot::endpoint_matches;
use hdrhistogram::Histogram;

use crate::capture::{Call, Capture, Outcome};
use crate::concurrency::{max_arrivals_sorted, peak_inflight};
use crate::filter::{StatusSel, parse_status_list};

/// The metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricName {
    /// Number of exchanges.
    Calls,
    /// Exchanges with status ≥ 400 or a transport error (or the `status` given).
    Errors,
    /// `errors / calls`.
    ErrorRate,
    /// Maximum exchanges in flight at once.
    PeakInflight,
    /// Maximum starts in any sliding window (default 50 ms).
    MaxArrivals,
    /// `max_arrivals{1s}`.
    MaxRate1s,
    /// Requests ÷ distinct (method, path, query, body, caller).
    RetryAmplification,
    /// Distinct requests (method, path, query, body, caller): the work asked for, however
    /// often each was retried.
    DistinctCalls,
    /// Retries sent sooner than the `Retry-After` of the failure they repeat (the same request
    /// again after a failure, within a minute; sooner = under 90% of the time asked).
    EarlyRetries,
    /// Latency percentile in ms.
    LatencyP50,
    /// Latency percentile in ms.
    LatencyP95,
    /// Latency percentile in ms.
    LatencyP99,
}

impl MetricName {
    const ALL: &[(&'static str, MetricName)] = &[
        ("calls", Self::Calls),
        ("errors", Self::Errors),
        ("error_rate", Self::ErrorRate),
        ("peak_inflight", Self::PeakInflight),
        ("max_arrivals", Self::MaxArrivals),
        ("max_rate_1s", Self::MaxRate1s),
        ("retry_amplification", Self::RetryAmplification),
        ("early_retries", Self::EarlyRetries),
        ("distinct_calls", Self::DistinctCalls),
        ("latency_p50", Self::LatencyP50),
        ("latency_p95", Self::LatencyP95),
        ("latency_p99", Self::LatencyP99),
    ];

    /// The name in expressions.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }
}

/// Over whom a metric is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Per {
    /// All selected exchanges together.
    #[default]
    All,
    /// Each caller separately; the metric is the maximum over callers.
    Caller,
}

/// A metric with its selectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Which metric.
    pub name: MetricName,
    /// Endpoint filter (`GET /a/{id}`, a template, `*` wildcards).
    pub endpoint: Option<String>,
    /// Status filter (`errors{status="429"}`); for other metrics it selects exchanges.
    pub status: Option<String>,
    /// All, or maximum over callers.
    pub per: Per,
    /// Window for `max_arrivals`, ns.
    pub window_ns: i64,
}

/// A metric that selected no call: it has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NoCalls {
    /// The metric, canonical form.
    pub metric: String,
    /// Its endpoint selector, when it had one.
    pub endpoint: Option<String>,
    /// The endpoints most like the selector, best first.
    pub nearest: Vec<String>,
}

impl NoCalls {
    fn describe(&self) -> String {
        match &self.endpoint {
            Some(e) if self.nearest.is_empty() => {
                format!(
                    "`{}`: the selector {e:?} matches no exchange (there are none)",
                    self.metric
                )
            }
            Some(e) => format!(
                "`{}`: the selector {e:?} matches no exchange; nearest endpoints: {}",
                self.metric,
                self.nearest.join(", ")
            ),
            None => format!("`{}`: there is no exchange to measure", self.metric),
        }
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<=`
    Le,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// `value OP threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Le => value <= threshold,
            Self::Lt => value < threshold,
            Self::Ge => value >= threshold,
            Self::Gt => value > threshold,
            Self::Eq => (value - threshold).abs() < 1e-9,
            Self::Ne => (value - threshold).abs() >= 1e-9,
        }
    }

    /// The operator as written: `<=`, `<`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Le => "<=",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Gt => ">",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }
}

/// `METRIC OP NUMBER`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Left side.
    pub metric: Metric,
    /// Comparison.
    pub op: Op,
    /// Right side.
    pub threshold: f64,
}

const DEFAULT_WINDOW_NS: i64 = 50_000_000;

/// Parses `50ms`, `1s`, `250us`, `2m`.
pub fn parse_duration_ns(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let i = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(i);
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 50ms or 1s"))?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ns, us, ms, s, m)")),
    };
    let ns = v * scale;
    if ns < 1.0 {
        return Err(format!("{s:?}: a window must be positive"));
    }
    Ok(ns as i64)
}

fn fmt_duration(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        format!("{}s", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}us", ns / 1_000)
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, rest) = match s.find('{') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let name =
            MetricName::ALL.iter().find(|(n, _)| *n == name.trim()).map(|(_, m)| *m).ok_or_else(
                || {
                    let names: Vec<&str> = MetricName::ALL.iter().map(|(n, _)| *n).collect();
                    format!("unknown metric {:?} (known: {})", name.trim(), names.join(", "))
                },
            )?;
        let mut m = Metric {
            name,
            endpoint: None,
            status: None,
            per: Per::All,
            window_ns: DEFAULT_WINDOW_NS,
        };
        if name == MetricName::MaxRate1s {
            m.window_ns = 1_000_000_000;
        }
        if let Some(rest) = rest {
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| format!("{s:?}: labels must be enclosed in {{...}}"))?;
            for label in split_labels(inner)? {
                let (k, v) = match label.split_once('=') {
                    Some((k, v)) => (k.trim(), unquote(v.trim())?),
                    // `max_arrivals{50ms}`: the window, positionally.
                    None if name == MetricName::MaxArrivals => ("window", label.trim().to_owned()),
                    None => return Err(format!("{s:?}: label {label:?} is not key=\"value\"")),
                };
                match k {
                    "endpoint" => m.endpoint = Some(v),
                    "status" => {
                        parse_status_list(&v)?;
                        m.status = Some(v);
                    }
                    "per" => {
                        m.per = match v.as_str() {
                            "caller" => Per::Caller,
                            "all" => Per::All,
                            other => {
                                return Err(format!("per={other:?}: use \"caller\" or \"all\""));
                            }
                        }
                    }
                    "window" if name == MetricName::MaxArrivals => {
                        m.window_ns = parse_duration_ns(&v)?
                    }
                    other => {
                        return Err(format!(
                            "{s:?}: unknown label {other:?} (endpoint, status, per, window)"
                        ));
                    }
                }
            }
        }
        Ok(m)
    }
}

fn split_labels(inner: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in inner.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in {{{inner}}}"));
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    Ok(out.into_iter().filter(|l| !l.trim().is_empty()).collect())
}

fn unquote(v: &str) -> Result<String, String> {
    match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => Ok(inner.to_owned()),
        None if !v.contains('"') => Ok(v.to_owned()),
        None => Err(format!("badly quoted value {v}")),
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_str())?;
        let mut labels = Vec::new();
        if let Some(e) = &self.endpoint {
            labels.push(format!("endpoint=\"{e}\""));
        }
        if let Some(s) = &self.status {
            labels.push(format!("status=\"{s}\""));
        }
        if self.name == MetricName::MaxArrivals {
            labels.push(format!("window=\"{}\"", fmt_duration(self.window_ns)));
        }
        if self.per == Per::Caller {
            labels.push("per=\"caller\"".into());
        }
        if !labels.is_empty() {
            write!(f, "{{{}}}", labels.join(","))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Check {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The operator is outside the braces: find it after the closing `}` (or the name).
        let after = s.rfind('}').map_or(0, |i| i + 1);
        let (i, op) = ["<=", ">=", "==", "!=", "<", ">"]
            .iter()
            .filter_map(|op| s[after..].find(op).map(|i| (after + i, *op)))
            .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
            .ok_or_else(|| {
                format!("{s:?}: expected `METRIC OP NUMBER`, e.g. 'errors{{status=\"429\"}} > 0'")
            })?;
        let metric: Metric = s[..i].parse()?;
        let op = match op {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            _ => Op::Gt,
        };
        let num = s[i + op.as_str().len()..].trim();
        let threshold =
            num.parse::<f64>().map_err(|_| format!("{s:?}: {num:?} is not a number"))?;
        Ok(Check { metric, op, threshold })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.as_str(), self.threshold)
    }
}

impl Metric {
    /// Does this metric count `c` at all?
    fn selects(&self, cap: &Capture, c: &Call, status: &[StatusSel]) -> bool {
        if let Some(p) = &self.endpoint {
            let e = &cap.endpoints[c.endpoint as usize];
            if !endpoint_matches(p, &e.method, &e.template) {
                return false;
            }
        }
        // For `errors`, `status` narrows the errors counted, not the calls selected.
        if self.name != MetricName::Errors && !status.is_empty() {
            return status.iter().any(|s| matches_status(s, c));
        }
        true
    }

    /// Calls of `cap` on the endpoints the metric selects (all calls without an endpoint
    /// selector), before any status selector narrows them.
    pub fn endpoint_calls(&self, cap: &Capture) -> usize {
        match &self.endpoint {
            None => cap.calls.len(),
            Some(p) => {
                let selected: Vec<bool> = cap
                    .endpoints
                    .iter()
                    .map(|e| endpoint_matches(p, &e.method, &e.template))
                    .collect();
                cap.calls.iter().filter(|c| selected[c.endpoint as usize]).count()
            }
        }
    }

    /// An error naming the selector and the nearest endpoints `cap` has, when the metric
    /// selects no call at all: a metric over nothing is not 0, it was not measured.
    pub fn check_selects(&self, cap: &Capture) -> Result<(), NoCalls> {
        if self.endpoint_calls(cap) > 0 {
            return Ok(());
        }
        let keys: Vec<String> = cap.endpoints.iter().map(super::capture::Endpoint::key).collect();
        let nearest = match &self.endpoint {
            Some(p) => af_snapshot::nearest_endpoints(p, keys.iter().map(String::as_str), 3),
            None => Vec::new(),
        };
        Err(NoCalls { metric: self.to_string(), endpoint: self.endpoint.clone(), nearest })
    }

    /// The metric's value over `cap`, or [`NoCalls`] when it selects no call.
    pub fn measure(&self, cap: &Capture) -> Result<f64, NoCalls> {
        self.check_selects(cap)?;
        Ok(self.evaluate(cap))
    }

    /// The metric's value over `cap` (0 for counts over nothing; see [`Metric::measure`]).
    pub fn evaluate(&self, cap: &Capture) -> f64 {
        let status = self
            .status
            .as_deref()
            .map(|s| parse_status_list(s).unwrap_or_default())
            .unwrap_or_default();
        let selected: Vec<&Call> =
            cap.calls.iter().filter(|c| self.selects(cap, c, &status)).collect();
        match self.per {
            Per::All => self.value(&selected, &status),
            Per::Caller => {
                let mut by: std::collections::BTreeMap<u32, Vec<&Call>> = Default::default();
                for c in selected {
                    by.entry(c.caller).or_default().push(c);
                }
                by.values().map(|v| self.value(v, &status)).fold(0.0, f64::max)
            }
        }
    }

    fn value(&self, calls: &[&Call], status: &[StatusSel]) -> f64 {
        let errors = || {
            calls
                .iter()
                .filter(|c| {
                    if status.is_empty() {
                        c.is_error()
                    } else {
                        status.iter().any(|s| matches_status(s, c))
                    }
                })
                .count()
        };
        match self.name {
            MetricName::Calls => calls.len() as f64,
            MetricName::Errors => errors() as f64,
            MetricName::ErrorRate => {
                if calls.is_empty() {
                    0.0
                } else {
                    calls.iter().filter(|c| c.is_error()).count() as f64 / calls.len() as f64
                }
            }
            MetricName::PeakInflight => {
                peak_inflight(calls.iter().map(|c| (c.start, c.end))) as f64
            }
            MetricName::MaxArrivals | MetricName::MaxRate1s => {
                let starts: Vec<i64> = calls.iter().map(|c| c.start).collect(); // calls are sorted
                max_arrivals_sorted(&starts, self.window_ns) as f64
            }
            MetricName::RetryAmplification => {
                let distinct: std::collections::HashSet<u64> =
                    calls.iter().map(|c| c.sig).collect();
                if distinct.is_empty() { 0.0 } else { calls.len() as f64 / distinct.len() as f64 }
            }
            MetricName::DistinctCalls => {
                calls.iter().map(|c| c.sig).collect::<std::collections::HashSet<u64>>().len() as f64
            }
            MetricName::EarlyRetries => crate::detectors::retry::early_retries(calls) as f64,
            MetricName::LatencyP50 | MetricName::LatencyP95 | MetricName::LatencyP99 => {
                let q = match self.name {
                    MetricName::LatencyP50 => 0.50,
                    MetricName::LatencyP95 => 0.95,
                    _ => 0.99,
                };
                let Ok(mut h) = Histogram::<u64>::new(3) else { return 0.0 };
                for c in calls.iter().filter(|c| c.end > c.start) {
                    let _ = h.record((c.duration() / 1_000).max(1) as u64);
                }
                if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 }
            }
        }
    }
}

fn matches_status(s: &StatusSel, c: &Call) -> bool {
    match s {
        StatusSel::Code(code) => c.status == *code,
        StatusSel::Class(k) => c.status != 0 && c.status / 100 == *k,
        StatusSel::Transport => c.outcome == Outcome::Transport,
    }
}

impl Check {
    /// Evaluates the metric and the comparison: `(value, holds)`.
    pub fn evaluate(&self, cap: &Capture) -> (f64, bool) {
        let v = self.metric.evaluate(cap);
        (v, self.op.holds(v, self.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let c: Check = "peak_inflight{endpoint=\"GET /gmail/v1/users/{userId}/messages/{id}\",per=\"caller\"} <= 10".parse().expect("parses");
        assert_eq!(c.metric.name, MetricName::PeakInflight);
        assert_eq!(c.metric.per, Per::Caller);
        assert_eq!(
            c.metric.endpoint.as_deref(),
            Some("GET /gmail/v1/users/{userId}/messages/{id}")
        );
        assert_eq!((c.op, c.threshold), (Op::Le, 10.0));
        assert_eq!(c.to_string().parse::<Check>(), Ok(c));

        let c: Check = "errors{status=429} > 0".parse().expect("parses");
        assert_eq!(c.metric.status.as_deref(), Some("429"));
        assert_eq!(c.to_string(), "errors{status=\"429\"} > 0");
        let m: Metric = "max_arrivals{50ms}".parse().expect("parses");
        assert_eq!(m.window_ns, 50_000_000);
        let m: Metric =
            "max_arrivals{window=\"1s\",endpoint=\"/a, b\"}".parse().expect("commas in quotes");
        assert_eq!((m.window_ns, m.endpoint.as_deref()), (1_000_000_000, Some("/a, b")));
        assert_eq!("max_rate_1s".parse::<Metric>().map(|m| m.window_ns), Ok(1_000_000_000));
    }

    #[test]
    fn rejects_bad_expressions_with_reasons() {
        for (bad, why) in [
            ("peak_concurrency <= 1", "unknown metric"),
            ("errors{status=42} > 0", "status"),
            ("errors{colour=\"red\"} > 0", "unknown label"),
            ("errors > many", "not a number"),
            ("errors", "expected"),
            ("peak_inflight{per=\"host\"} < 3", "per="),
            ("max_arrivals{window=\"5 parsecs\"} < 3", "unit"),
        ] {
            let err = bad.parse::<Check>().expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn capture(exchanges: &[af_snapshot::Exchange]) -> Capture {
        let t = af_snapshot::Templater::default().learning_from(exchanges);
        Capture::from_exchanges(exchanges, &t, &af_snapshot::CallerSpec::default())
    }

    #[test]
    fn early_retries_count_retries_sooner_than_retry_after_and_distinct_calls_the_work() {
        let get = |id: &str, at: i64, status: u16| {
            af_testkit::ex("GET", &format!("https://api.test/items/{id}"))
                .id(format!("{id}-{at}"))
                .at_ms(at)
                .lasting_ms(10)
                .status(status)
        };
        let exchanges = vec![
            // a: 429 asking for 1 s, retried after 0.2 s (early), then after 1.5 s (in time).
            get("a", 0, 429).response_header("Retry-After", "1").build(),
            get("a", 210, 429).response_header("Retry-After", "1").build(),
            get("a", 1720, 200).build(),
            // b: a 429 with no Retry-After retried at once: a retry, but not an early one.
            get("b", 0, 429).build(),
            get("b", 15, 200).build(),
            // c: asked twice after a success: not a retry at all.
            get("c", 0, 200).build(),
            get("c", 20, 200).build(),
        ];
        let cap = capture(&exchanges);
        let v = |m: &str| m.parse::<Metric>().expect("parses").measure(&cap).expect("measured");
        assert_eq!(v("early_retries"), 1.0);
        assert_eq!(v("distinct_calls"), 3.0);
        assert_eq!(v("calls"), 7.0);
        // Over nothing it is not 0: it was not measured.
        let none: Metric = "early_retries{endpoint=\"GET /nothing/{id}\"}".parse().expect("parses");
        assert!(none.measure(&cap).is_err());
    }
}
