//! Simulated captures with known answers: an upstream with a known limit, clients with a known
//! shape, replayed event by event in time order (the upstream decides each request as it arrives,
//! like a real one). Every scenario is seeded and deterministic.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use af_snapshot::{Exchange, Response};

use crate::{Rng, ex, number};

/// How the upstream limits each caller.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// No limit.
    None,
    /// At most this many accepted requests in flight per caller; more get 429.
    Concurrency(usize),
    /// Token bucket per caller: `rate` tokens/s, at most `burst` stored; no token → 429.
    TokenBucket {
        /// Refill rate, tokens per second.
        rate: f64,
        /// Bucket size.
        burst: f64,
    },
}

/// The simulated upstream.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Its limit.
    pub limit: Limit,
    /// Latency of accepted requests, ms.
    pub ok_ms: (f64, f64),
    /// Latency of rejections, ms.
    pub reject_ms: (f64, f64),
    /// Probability of a 500 independent of load.
    pub random_500: f64,
    /// `(from_ms, to_ms)`: every request answered 503 with `Retry-After: 5`.
    pub outage_ms: Option<(f64, f64)>,
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            limit: Limit::None,
            ok_ms: (80.0, 250.0),
            reject_ms: (3.0, 10.0),
            random_500: 0.0,
            outage_ms: None,
        }
    }
}

/// One request the client wants to make.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When, ms after [`crate::T0`].
    pub at_ms: f64,
    /// Caller token.
    pub caller: &'static str,
    /// `GET https://api.test/...`
    pub method: &'static str,
    /// URL.
    pub url: String,
    /// Latency override for accepted requests, ms.
    pub ok_ms: Option<(f64, f64)>,
    /// Retries left if it fails.
    pub retries: u32,
}

impl Arrival {
    /// A GET by `caller` at `at_ms`.
    pub fn get(at_ms: f64, caller: &'static str, url: String) -> Self {
        Self { at_ms, caller, method: "GET", url, ok_ms: None, retries: 0 }
    }
}

/// Client behaviour after a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryPolicy {
    /// Retry after this many ms (uniform), ignoring `Retry-After`; `None`: never retry.
    pub after_ms: Option<(f64, f64)>,
}

struct CallerState {
    inflight: Vec<f64>,
    tokens: f64,
    last: f64,
}

/// Replays `arrivals` against `up`; failed requests are retried per `policy`.
pub fn simulate(
    arrivals: Vec<Arrival>,
    up: &Upstream,
    policy: RetryPolicy,
    rng: &mut Rng,
) -> Vec<Exchange> {
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut pending: Vec<Arrival> = Vec::new();
    let key = |ms: f64| (ms * 1e6) as u64;
    for a in arrivals {
        queue.push(Reverse((key(a.at_ms), pending.len())));
        pending.push(a);
    }
    let mut state: HashMap<&'static str, CallerState> = HashMap::new();
    let mut out = Vec::new();
    while let Some(Reverse((_, i))) = queue.pop() {
        let a = pending[i].clone();
        let t = a.at_ms;
        let st = state.entry(a.caller).or_insert_with(|| CallerState {
            inflight: Vec::new(),
            tokens: match up.limit {
                Limit::TokenBucket { burst, .. } => burst,
                _ => 0.0,
            },
            last: t,
        });
        st.inflight.retain(|&end| end > t);
        let outage = up.outage_ms.is_some_and(|(a, b)| t >= a && t < b);
        let rejected = outage
            || match up.limit {
                Limit::None => false,
                Limit::Concurrency(n) => st.inflight.len() >= n,
                Limit::TokenBucket { rate, burst } => {
                    st.tokens = (st.tokens + (t - st.last) / 1000.0 * rate).min(burst);
                    st.last = t;
                    if st.tokens >= 1.0 {
                        st.tokens -= 1.0;
                        false
                    } else {
                        true
                    }
                }
            };
        let status = if outage {
            503
        } else if rejected {
            429
        } else if rng.chance(up.random_500) {
            500
        } else {
            200
        };
        let (lo, hi) = if rejected { up.reject_ms } else { a.ok_ms.unwrap_or(up.ok_ms) };
        let ms = rng.uniform(lo, hi);
        if !rejected {
            st.inflight.push(t + ms);
        }
        let mut b = ex(a.method, &a.url)
            .at_ns((t * 1e6) as i64)
            .lasting_ns((ms * 1e6) as u64)
            .token(a.caller)
            .status(status);
        if status == 429 {
            b = b.response_header("Retry-After", "1");
        } else if status == 503 {
            b = b.response_header("Retry-After", "5");
        }
        out.push(b.build());
        if status >= 429
            && a.retries > 0
            && let Some((rlo, rhi)) = policy.after_ms
        {
            let retry =
                Arrival { at_ms: t + ms + rng.uniform(rlo, rhi), retries: a.retries - 1, ..a };
            queue.push(Reverse((key(retry.at_ms), pending.len())));
            pending.push(retry);
        }
    }
    number(out)
}

fn item(rng: &mut Rng) -> String {
    format!("https://api.test/v1/items/{}", 100_000 + rng.next_u64() % 900_000)
}

/// Poisson arrivals of GET items by `caller` at `per_s` from `from_s` to `to_s`.
fn poisson(
    rng: &mut Rng,
    caller: &'static str,
    per_s: f64,
    from_s: f64,
    to_s: f64,
    ok_ms: Option<(f64, f64)>,
) -> Vec<Arrival> {
    let mut v = Vec::new();
    let mut t = from_s * 1000.0;
    loop {
        t += rng.exp(1000.0 / per_s);
        if t >= to_s * 1000.0 {
            return v;
        }
        let mut a = Arrival::get(t, caller, item(rng));
        a.ok_ms = ok_ms;
        v.push(a);
    }
}

/// A list call, then `n` concurrent gets spread over `spread_ms` once it returns (~100 ms).
fn fan_out(
    rng: &mut Rng,
    caller: &'static str,
    at_s: f64,
    n: usize,
    spread_ms: f64,
) -> Vec<Arrival> {
    let t = at_s * 1000.0;
    let mut list =
        Arrival::get(t, caller, format!("https://api.test/v1/items?page={}", rng.next_u64() % 100));
    list.ok_ms = Some((90.0, 100.0));
    let mut v = vec![list];
    for _ in 0..n {
        v.push(Arrival::get(t + 105.0 + rng.uniform(0.0, spread_ms), caller, item(rng)));
    }
    v
}

/// Concurrency limit 20 per caller. Background polls from two callers; at 200, 210 and 220 s
/// alice fans out 50 concurrent gets after a list call, and the calls past 20 in flight get
/// 429. Bob's fast stream at 100–110 s (60/s, ~10 ms each) has a high arrival rate but few in
/// flight and never fails: the errors track concurrency, not rate.
pub fn concurrency_limit(seed: u64) -> Vec<Exchange> {
    let mut rng = Rng::new(seed);
    let mut a = poisson(&mut rng, "alice", 2.0, 0.0, 300.0, None);
    a.extend(poisson(&mut rng, "bob", 2.0, 0.0, 300.0, None));
    a.extend(poisson(&mut rng, "bob", 60.0, 100.0, 110.0, Some((5.0, 15.0))));
    for at in [200.0, 210.0, 220.0] {
        a.extend(fan_out(&mut rng, "alice", at, 50, 30.0));
    }
    let up =
        Upstream { limit: Limit::Concurrency(20), ok_ms: (200.0, 600.0), ..Upstream::default() };
    simulate(a, &up, RetryPolicy::default(), &mut rng)
}

/// Token bucket 10/s, burst 10, per caller; short latencies (20–40 ms) keep few calls in flight.
/// A surge of 25/s at 120–150 s empties the bucket. A slow batch at 200–230 s keeps ~8 calls
/// in flight at 2/s and never fails: the errors track rate, not concurrency.
pub fn token_bucket(seed: u64) -> Vec<Exchange> {
    let mut rng = Rng::new(seed);
    let mut a = poisson(&mut rng, "svc", 4.0, 0.0, 300.0, None);
    a.extend(poisson(&mut rng, "svc", 21.0, 120.0, 150.0, None));
    a.extend(poisson(&mut rng, "svc", 2.0, 200.0, 230.0, Some((3000.0, 5000.0))));
    let up = Upstream {
        limit: Limit::TokenBucket { rate: 10.0, burst: 10.0 },
        ok_ms: (20.0, 40.0),
        ..Upstream::default()
    };
    simulate(a, &up, RetryPolicy::default(), &mut rng)
}

/// No limit; 3 % of requests fail with 500 at random, whatever the load (which varies: a surge
/// and a slow batch as in the other scenarios).
pub fn spread_5xx(seed: u64) -> Vec<Exchange> {
    let mut rng = Rng::new(seed);
    let mut a = poisson(&mut rng, "svc", 5.0, 0.0, 600.0, None);
    a.extend(poisson(&mut rng, "svc", 25.0, 120.0, 150.0, None));
    a.extend(poisson(&mut rng, "svc", 2.0, 300.0, 330.0, Some((3000.0, 5000.0))));
    let up = Upstream { random_500: 0.03, ..Upstream::default() };
    simulate(a, &up, RetryPolicy::default(), &mut rng)
}

/// An outage at 100–130 s answers 503 with `Retry-After: 5`; the client retries every failure
/// after 50–150 ms, up to 5 times, ignoring `Retry-After`.
pub fn retry_storm(seed: u64) -> Vec<Exchange> {
    let mut rng = Rng::new(seed);
    let a: Vec<Arrival> = poisson(&mut rng, "svc", 5.0, 0.0, 300.0, None)
        .into_iter()
        .map(|a| Arrival { retries: 5, ..a })
        .collect();
    let up = Upstream { outage_ms: Some((100_000.0, 130_000.0)), ..Upstream::default() };
    simulate(a, &up, RetryPolicy { after_ms: Some((50.0, 150.0)) }, &mut rng)
}

/// Nothing wrong: two callers, steady load, a small list-then-get pattern, all 200.
pub fn clean(seed: u64) -> Vec<Exchange> {
    let mut rng = Rng::new(seed);
    let mut a = poisson(&mut rng, "alice", 5.0, 0.0, 300.0, None);
    a.extend(poisson(&mut rng, "bob", 5.0, 0.0, 300.0, None));
    a.extend(fan_out(&mut rng, "alice", 150.0, 5, 20.0));
    simulate(a, &Upstream::default(), RetryPolicy::default(), &mut rng)
}

/// Rounds every start and duration to whole milliseconds, as browsers write HAR.
pub fn browser_precision(mut v: Vec<Exchange>) -> Vec<Exchange> {
    for e in &mut v {
        let s = e.timing.start.as_nanos();
        e.timing.start = af_snapshot::Timestamp::from_nanos(s - s.rem_euclid(1_000_000));
        e.timing.duration_ns = e.timing.duration_ns.map(|d| d - d % 1_000_000);
    }
    v
}

/// Counts of each status, for sanity checks in tests.
pub fn status_counts(v: &[Exchange]) -> std::collections::BTreeMap<u16, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in v {
        if let Some(Response { status, .. }) = e.response {
            *m.entry(status).or_default() += 1;
        }
    }
    m
}
