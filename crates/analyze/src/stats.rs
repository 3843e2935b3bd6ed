//! Per-endpoint statistics: calls, status histogram, error rate, latency percentiles, first and
//! last time. One accumulator per worker thread; accumulators merge.
//!
//! Rows are counted per *provisional key* (the path with id-shaped segments replaced, see
//! [`af_snapshot::PathSet`]) because which positions are parameters is only known once the
//! whole capture was read; [`Stats::table`] then maps every key to its template and merges.
//!
//! Definitions (DESIGN.md §4): an *error* is a response with status ≥ 400 or a transport error;
//! `error_rate` = errors ÷ calls; latency is the exchange's duration, in an HdrHistogram with 3
//! significant digits (so p99 is exact to 0.1 %).

use std::collections::{BTreeMap, HashMap};

use af_snapshot::{CallerSpec, Exchange, Templater, Timestamp, provisional};
use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::Serialize;

use crate::filter::Filter;

/// How rows are keyed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// Method, host and path template.
    #[default]
    Endpoint,
    /// Endpoint and caller.
    Caller,
}

/// What to count and how to key it.
#[derive(Clone, Debug, Default)]
pub struct StatsConfig {
    /// Path templating.
    pub templater: Templater,
    /// How callers are identified.
    pub caller: CallerSpec,
    /// Row key.
    pub group_by: GroupBy,
    /// Which exchanges count.
    pub filter: Filter,
}

/// Running totals for one row.
#[derive(Clone, Debug)]
pub struct Acc {
    calls: u64,
    statuses: BTreeMap<u16, u64>,
    transport: BTreeMap<&'static str, u64>,
    incomplete: u64,
    errors: u64,
    latency_us: Durations,
    first: Timestamp,
    last: Timestamp,
    end: Timestamp,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            calls: 0,
            statuses: BTreeMap::new(),
            transport: BTreeMap::new(),
            incomplete: 0,
            errors: 0,
            latency_us: Durations::default(),
            first: Timestamp::from_nanos(i64::MAX),
            last: Timestamp::from_nanos(i64::MIN),
            end: Timestamp::from_nanos(i64::MIN),
        }
    }
}

/// Durations of one row, µs: kept as values while there are few (a capture with thousands of
/// rows of a few calls each must not hold thousands of histograms), as an HdrHistogram beyond.
#[derive(Clone, Debug)]
enum Durations {
    Few(Vec<u64>),
    Many(Box<Histogram<u64>>),
}

impl Default for Durations {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

/// Values kept before switching to a histogram: 8 KiB, far below one histogram's size.
const FEW: usize = 1024;

impl Durations {
    fn record(&mut self, us: u64) {
        match self {
            Self::Few(v) if v.len() < FEW => v.push(us),
            Self::Few(v) => {
                let mut h = new_histogram();
                for x in v.iter() {
                    let _ = h.record(*x);
                }
                let _ = h.record(us);
                *self = Self::Many(Box::new(h));
            }
            Self::Many(h) => {
                let _ = h.record(us);
            }
        }
    }

    fn merge(&mut self, o: &Durations) {
        match o {
            Self::Few(v) => v.iter().for_each(|x| self.record(*x)),
            Self::Many(oh) => {
                let mut h = match std::mem::take(self) {
                    Self::Many(h) => h,
                    Self::Few(v) => {
                        let mut h = Box::new(new_histogram());
                        v.iter().for_each(|x| {
                            let _ = h.record(*x);
                        });
                        h
                    }
                };
                let _ = h.add(oh.as_ref());
                *self = Self::Many(h);
            }
        }
    }

    /// As a histogram (the percentiles are HdrHistogram's either way).
    fn histogram(&self) -> std::borrow::Cow<'_, Histogram<u64>> {
        match self {
            Self::Many(h) => std::borrow::Cow::Borrowed(h.as_ref()),
            Self::Few(v) => {
                let mut h = new_histogram();
                v.iter().for_each(|x| {
                    let _ = h.record(*x);
                });
                std::borrow::Cow::Owned(h)
            }
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; larger values resize the histogram.
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
    h.auto(true);
    h
}

impl Acc {
    fn add(&mut self, ex: &Exchange) {
        self.calls += 1;
        match (&ex.response, &ex.error) {
            (Some(r), _) => {
                *self.statuses.entry(r.status).or_default() += 1;
                if r.status >= 400 {
                    self.errors += 1;
                }
            }
            (None, Some(e)) => {
                *self.transport.entry(e.kind.as_str()).or_default() += 1;
                self.errors += 1;
            }
            (None, None) => self.incomplete += 1,
        }
        if let Some(d) = ex.timing.duration_ns {
            self.latency_us.record((d / 1_000).max(1));
        }
        let start = ex.timing.start;
        self.first = self.first.min(start);
        self.last = self.last.max(start);
        self.end = self.end.max(ex.timing.end().unwrap_or(start));
    }

    fn merge(&mut self, o: &Acc) {
        self.calls += o.calls;
        for (k, v) in &o.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &o.transport {
            *self.transport.entry(k).or_default() += v;
        }
        self.incomplete += o.incomplete;
        self.errors += o.errors;
        self.latency_us.merge(&o.latency_us);
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.end = self.end.max(o.end);
    }

    fn finish(&self) -> Counts {
        let h = self.latency_us.histogram();
        let q = |p: f64| (!h.is_empty()).then(|| h.value_at_quantile(p) as f64 / 1000.0);
        Counts {
            calls: self.calls,
            status: self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            transport_errors: self.transport.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            incomplete: self.incomplete,
            errors: self.errors,
            error_rate: if self.calls == 0 { 0.0 } else { self.errors as f64 / self.calls as f64 },
            latency_ms: Latency {
                samples: h.len(),
                p50: q(0.50),
                p95: q(0.95),
                p99: q(0.99),
                max: (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
            },
            first: (self.calls > 0).then_some(self.first),
            last: (self.calls > 0).then_some(self.last),
        }
    }
}

/// Counts for one row or the total.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Counts {
    /// Exchanges.
    pub calls: u64,
    /// Responses by status code (`"200": 155`).
    pub status: BTreeMap<String, u64>,
    /// Transport errors by kind (`"refused": 2`).
    pub transport_errors: BTreeMap<String, u64>,
    /// Exchanges with neither response nor error (capture ended first).
    pub incomplete: u64,
    /// Responses ≥ 400 plus transport errors.
    pub errors: u64,
    /// `errors / calls`, 0..1.
    pub error_rate: f64,
    /// Duration percentiles.
    pub latency_ms: Latency,
    /// Start of the first request.
    pub first: Option<Timestamp>,
    /// Start of the last request.
    pub last: Option<Timestamp>,
}

/// Latency percentiles in milliseconds (µs precision); absent when no exchange had a duration.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Latency {
    /// Exchanges with a known duration.
    pub samples: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// One row: an endpoint (and caller, when grouped by caller).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct EndpointStats {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Host (without default port); empty when the capture had origin-form URLs.
    pub host: String,
    /// Path template (`/users/{userId}/messages/{id}`).
    pub template: String,
    /// `METHOD template`: the key metrics and filters use.
    pub endpoint: String,
    /// The caller, when grouped by caller (`null` when the request carried no credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The whole table.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StatsTable {
    /// How rows are keyed.
    pub group_by: GroupBy,
    /// Rows, most calls first.
    pub endpoints: Vec<EndpointStats>,
    /// All selected exchanges.
    pub totals: Counts,
    /// Start of the first request to end of the last response.
    pub span: Span,
    /// Exchanges read but not selected by the filters.
    pub filtered_out: u64,
}

/// The capture's time span.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Span {
    /// First request start.
    pub start: Option<Timestamp>,
    /// Last response end (or request start, when no end is known).
    pub end: Option<Timestamp>,
    /// `end - start` in seconds.
    pub seconds: f64,
}

/// Accumulates [`StatsTable`] rows. Feed exchanges with [`Stats::add`]; merge worker copies with
/// [`Stats::merge`]; finish with [`Stats::table`].
#[derive(Clone, Debug, Default)]
pub struct Stats {
    rows: HashMap<String, Acc>,
    filtered_out: u64,
    key: String,
}

const SEP: char = '\u{1f}';

impl Stats {
    /// Counts one exchange (or notes that the filter dropped it).
    pub fn add(&mut self, cfg: &StatsConfig, ex: &Exchange) {
        let key = provisional(ex.url_parts().path);
        self.add_keyed(cfg, ex, &key);
    }

    /// [`Stats::add`] for an exchange whose provisional key (see [`af_snapshot::PathSet::key`])
    /// the caller already computed. Returns whether the time and status filters selected it (so
    /// callers need not evaluate them again); the endpoint filter applies in
    /// [`Stats::table`].
    pub fn add_keyed(&mut self, cfg: &StatsConfig, ex: &Exchange, key: &str) -> bool {
        let parts = ex.url_parts();
        if !cfg.filter.keeps_exchange(ex) {
            self.filtered_out += 1;
            return false;
        }
        self.key.clear();
        self.key.push_str(&ex.request.method);
        self.key.push(SEP);
        self.key.push_str(parts.host());
        self.key.push(SEP);
        self.key.push_str(key);
        if cfg.group_by == GroupBy::Caller {
            self.key.push(SEP);
            if let Some(c) = cfg.caller.caller_of(ex) {
                self.key.push_str(&c);
            }
        }
        match self.rows.get_mut(self.key.as_str()) {
            Some(acc) => acc.add(ex),
            None => {
                let mut acc = Acc::default();
                acc.add(ex);
                self.rows.insert(self.key.clone(), acc);
            }
        }
        true
    }

    /// Adds another accumulator's counts to this one.
    pub fn merge(&mut self, other: Stats) {
        for (k, v) in other.rows {
            match self.rows.get_mut(&k) {
                Some(acc) => acc.merge(&v),
                None => {
                    self.rows.insert(k, v);
                }
            }
        }
        self.filtered_out += other.filtered_out;
    }

    /// The finished table: every row's key mapped to its template by `cfg.templater` (with
    /// what it learned from the capture), rows of one template merged, the endpoint filter
    /// applied; rows sorted by calls (descending), then endpoint.
    pub fn table(&self, cfg: &StatsConfig) -> StatsTable {
        let mut merged: BTreeMap<(String, String, String, Option<String>), Acc> = BTreeMap::new();
        let mut filtered_out = self.filtered_out;
        for (k, acc) in &self.rows {
            let mut it = k.split(SEP);
            let method = it.next().unwrap_or("");
            let host = it.next().unwrap_or("");
            let template = cfg.templater.template_on(host, it.next().unwrap_or(""));
            if !cfg.filter.keeps_endpoint(method, &template) {
                filtered_out += acc.calls;
                continue;
            }
            let caller =
                it.next().map(|c| if c.is_empty() { "(none)".to_owned() } else { c.to_owned() });
            merged
                .entry((method.to_owned(), host.to_owned(), template.into_owned(), caller))
                .or_default()
                .merge(acc);
        }
        let mut total = Acc::default();
        for acc in merged.values() {
            total.merge(acc);
        }
        let mut endpoints: Vec<EndpointStats> = merged
            .into_iter()
            .map(|((method, host, template, caller), acc)| EndpointStats {
                endpoint: format!("{method} {template}"),
                method,
                host,
                template,
                caller,
                counts: acc.finish(),
            })
            .collect();
        endpoints.sort_by(|a, b| {
            b.counts.calls.cmp(&a.counts.calls).then_with(|| {
                (&a.endpoint, &a.host, &a.caller).cmp(&(&b.endpoint, &b.host, &b.caller))
            })
        });
        let totals = total.finish();
        let span = if total.calls == 0 {
            Span { start: None, end: None, seconds: 0.0 }
        } else {
            let (s, e) = (total.first, total.end.max(total.last));
            Span {
                start: Some(s),
                end: Some(e),
                seconds: (e.as_nanos() - s.as_nanos()) as f64 / 1e9,
            }
        };
        StatsTable { group_by: cfg.group_by, endpoints, totals, span, filtered_out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_snapshot::ErrorKind;

    fn ex(i: i64, path: &str, status: Option<u16>, ms: u64) -> Exchange {
        let b = af_testkit::ex("GET", &format!("https://api.test{path}"))
            .id(format!("{i:04}"))
            .at_ms(i * 1000)
            .lasting_ms(ms);
        match status {
            Some(s) => b.status(s),
            None => b.transport_error(ErrorKind::Reset),
        }
        .build()
    }

    #[test]
    fn counts_statuses_errors_and_percentiles() {
        let cfg = StatsConfig::default();
        let mut s = Stats::default();
        for i in 0..100 {
            let status = if i % 10 == 0 { Some(429) } else { Some(200) };
            s.add(&cfg, &ex(i, &format!("/users/{i}"), status, (i + 1) as u64));
        }
        s.add(&cfg, &ex(100, "/other", None, 5));
        let t = s.table(&cfg);
        assert_eq!(t.endpoints.len(), 2);
        let users = &t.endpoints[0];
        assert_eq!(users.endpoint, "GET /users/{id}");
        assert_eq!(users.counts.calls, 100);
        assert_eq!(users.counts.status.get("429"), Some(&10));
        assert_eq!(users.counts.errors, 10);
        assert!((users.counts.error_rate - 0.1).abs() < 1e-9);
        // HdrHistogram at 3 significant digits: within 0.1 % of the exact order statistic.
        let close =
            |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() <= want * 1e-3);
        assert!(close(users.counts.latency_ms.p50, 50.0), "{:?}", users.counts.latency_ms);
        assert!(close(users.counts.latency_ms.p99, 99.0), "{:?}", users.counts.latency_ms);
        assert_eq!(t.endpoints[1].counts.transport_errors.get("reset"), Some(&1));
        assert_eq!(t.totals.calls, 101);
        assert_eq!(t.span.seconds, 100.005);
    }

    #[test]
    fn merging_equals_single_pass() {
        let cfg = StatsConfig::default();
        let all: Vec<Exchange> = (0..50)
            .map(|i| ex(i, &format!("/a/{}", i % 3), Some(200 + (i % 2) as u16 * 300), i as u64))
            .collect();
        let mut one = Stats::default();
        all.iter().for_each(|e| one.add(&cfg, e));
        let (mut a, mut b) = (Stats::default(), Stats::default());
        all.iter()
            .enumerate()
            .for_each(|(i, e)| if i % 2 == 0 { a.add(&cfg, e) } else { b.add(&cfg, e) });
        a.merge(b);
        assert_eq!(a.table(&cfg), one.table(&cfg));
    }
}
