//! `af-testkit`: builders for tests (dev-dependency only).
//!
//! - [`ex`] / [`ExchangeBuilder`]: one exchange in a line.
//! - [`Rng`]: a tiny seeded generator, so scenarios are deterministic without a dependency.
//! - [`scenarios`]: simulated captures of an upstream with a known limit and a client with a
//!   known shape, so analysis tests can assert verdicts and numbers.
//!
//! ```
//! let e = af_testkit::ex("GET", "https://api.test/users/7").at_ms(1_000).lasting_ms(20).status(429).build();
//! assert_eq!(e.status(), Some(429));
//! ```

#![warn(missing_docs)]

pub mod forge;
pub mod scenarios;

use af_snapshot::{
    Body, ErrorKind, Exchange, ExchangeId, Request, Response, Timestamp, Timing, TransportError,
};

/// Base instant of generated captures: 2026-11-20T11:10:00Z, in ns.
pub const T0: i64 = 1_795_173_000_000_000_000;

/// SplitMix64: small, fast, good enough for simulations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponential with the given mean (inter-arrival times of a Poisson process).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// Builds one exchange.
#[derive(Clone, Debug)]
pub struct ExchangeBuilder {
    ex: Exchange,
}

/// Starts an exchange: `ex("GET", "https://api.test/users/7")`.
pub fn ex(method: &str, url: &str) -> ExchangeBuilder {
    ExchangeBuilder {
        ex: Exchange {
            id: ExchangeId::new("0"),
            service: None,
            direction: Default::default(),
            conn_id: None,
            caller: None,
            request: Request {
                method: method.into(),
                url: url.into(),
                http_version: Some("HTTP/1.1".into()),
                headers: vec![],
                body: None,
            },
            response: Some(Response {
                status: 200,
                status_text: None,
                http_version: None,
                headers: vec![],
                body: None,
            }),
            error: None,
            timing: Timing::new(Timestamp::from_nanos(T0), Some(1_000_000)),
            tags: Default::default(),
        },
    }
}

impl ExchangeBuilder {
    /// Start at `T0 + ns`.
    pub fn at_ns(mut self, ns: i64) -> Self {
        self.ex.timing.start = Timestamp::from_nanos(T0 + ns);
        self
    }

    /// Start at `T0 + ms`.
    pub fn at_ms(self, ms: i64) -> Self {
        self.at_ns(ms * 1_000_000)
    }

    /// Duration in ns.
    pub fn lasting_ns(mut self, ns: u64) -> Self {
        self.ex.timing.duration_ns = Some(ns);
        self
    }

    /// Duration in ms.
    pub fn lasting_ms(self, ms: u64) -> Self {
        self.lasting_ns(ms * 1_000_000)
    }

    /// Response status.
    pub fn status(mut self, s: u16) -> Self {
        if let Some(r) = self.ex.response.as_mut() {
            r.status = s;
        } else {
            self.ex.response = Some(Response {
                status: s,
                status_text: None,
                http_version: None,
                headers: vec![],
                body: None,
            });
            self.ex.error = None;
        }
        self
    }

    /// A transport error instead of a response.
    pub fn transport_error(mut self, kind: ErrorKind) -> Self {
        self.ex.response = None;
        self.ex.error = Some(TransportError { kind, message: kind.as_str().into() });
        self
    }

    /// Adds a request header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.ex.request.headers.push((k.into(), v.into()));
        self
    }

    /// Adds a response header.
    pub fn response_header(mut self, k: &str, v: &str) -> Self {
        if let Some(r) = self.ex.response.as_mut() {
            r.headers.push((k.into(), v.into()));
        }
        self
    }

    /// The caller's credential (`Authorization: Bearer TOKEN`).
    pub fn token(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Response body text (a recorded provider payload, an API's JSON).
    pub fn response_body(mut self, text: &str) -> Self {
        if let Some(r) = self.ex.response.as_mut() {
            r.body = Some(Body::text(text));
        }
        self
    }

    /// Request body text.
    pub fn body(mut self, text: &str) -> Self {
        self.ex.request.body = Some(Body::text(text));
        self
    }

    /// Exchange id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.ex.id = ExchangeId::new(id);
        self
    }

    /// The exchange.
    pub fn build(self) -> Exchange {
        self.ex
    }
}

/// Gives exchanges sequential ids `000000`, `000001`, ... in start order.
pub fn number(mut v: Vec<Exchange>) -> Vec<Exchange> {
    v.sort_by_key(|e| e.timing.start);
    for (i, e) in v.iter_mut().enumerate() {
        e.id = ExchangeId::new(format!("{i:06x}"));
    }
    v
}
