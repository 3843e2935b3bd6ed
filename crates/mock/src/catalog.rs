//! The recorded responses and how a request finds one: exact signature (method, path, query,
//! body) → same endpoint template → near miss. Repeated identical requests cycle through their
//! recorded responses in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use af_snapshot::{Body, Exchange, ExchangeId, Headers, Templater, UrlParts};
use bytes::Bytes;

use crate::config::Failures;

/// One recorded response, ready to serve.
#[derive(Debug)]
pub struct Recorded {
    /// The exchange it came from.
    pub id: ExchangeId,
    /// Status.
    pub status: u16,
    /// Headers to send (hop-by-hop and length headers removed).
    pub headers: Headers,
    /// Body bytes as captured (still Content-Encoded when they were).
    pub body: Bytes,
    /// Recorded duration, ns.
    pub duration_ns: u64,
}

impl Recorded {
    fn is_error(&self) -> bool {
        self.status >= 400
    }
}

#[derive(Debug, Default)]
struct Cycle {
    all: Vec<usize>,
    ok: Vec<usize>,
    next_all: AtomicUsize,
    next_ok: AtomicUsize,
}

impl Cycle {
    fn next(list: &[usize], next: &AtomicUsize) -> Option<usize> {
        (!list.is_empty()).then(|| list[next.fetch_add(1, Ordering::Relaxed) % list.len()])
    }

    fn pick_ok(&self) -> Option<usize> {
        Self::next(&self.ok, &self.next_ok)
    }

    fn pick_any(&self) -> Option<usize> {
        Self::next(&self.all, &self.next_all)
    }
}

/// How a request was answered from the catalog.
#[derive(Debug)]
pub enum Match<'a> {
    /// Same method, path, query and body.
    Exact(&'a Recorded),
    /// Same method and path template.
    Template(&'a Recorded),
    /// The nearest recorded endpoint (`--unmatched nearest`), and which.
    Nearest(&'a Recorded, String),
    /// Nothing; the nearest recorded endpoints, best first.
    Miss(Vec<String>),
}

/// All recorded responses, indexed.
#[derive(Debug, Default)]
pub struct Catalog {
    recorded: Vec<Recorded>,
    by_sig: HashMap<u64, Cycle>,
    by_template: HashMap<(String, String), Cycle>,
    /// A recorded 429 body per template (or any), to answer emulated limits with.
    throttle_body: HashMap<String, usize>,
    templater: Templater,
    /// Exchanges not usable as responses (transport errors, incomplete).
    pub unservable: usize,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

/// A request signature: method, path, query and body digest.
pub fn signature(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    method.hash(&mut h);
    path.hash(&mut h);
    query.hash(&mut h);
    if !body.is_empty() {
        Body::from_bytes(body.to_vec()).digest().hash(&mut h);
    }
    h.finish()
}

impl Catalog {
    /// Indexes `exchanges` (bodies must have been kept).
    pub fn new(exchanges: &[Exchange], templater: Templater) -> Self {
        let mut c = Catalog { templater, ..Catalog::default() };
        for ex in exchanges {
            let Some(r) = &ex.response else {
                c.unservable += 1;
                continue;
            };
            let parts = UrlParts::split(&ex.request.url);
            let body = ex.request.body.as_ref().map(|b| b.bytes().to_vec()).unwrap_or_default();
            let sig = signature(&ex.request.method, parts.path, parts.query, &body);
            let template = c.templater.template(parts.path).into_owned();
            let i = c.recorded.len();
            c.recorded.push(Recorded {
                id: ex.id.clone(),
                status: r.status,
                headers: r
                    .headers
                    .iter()
                    .filter(|(k, _)| !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()))
                    .cloned()
                    .collect(),
                body: Bytes::copy_from_slice(r.body.as_ref().map(Body::bytes).unwrap_or_default()),
                duration_ns: ex.timing.duration_ns.unwrap_or(0),
            });
            let ok = !c.recorded[i].is_error();
            for cycle in [
                c.by_sig.entry(sig).or_default(),
                c.by_template.entry((ex.request.method.clone(), template.clone())).or_default(),
            ] {
                cycle.all.push(i);
                if ok {
                    cycle.ok.push(i);
                }
            }
            if r.status == 429 {
                c.throttle_body.entry(format!("{} {template}", ex.request.method)).or_insert(i);
                c.throttle_body.entry(String::new()).or_insert(i);
            }
        }
        c
    }

    /// Number of servable recordings.
    pub fn len(&self) -> usize {
        self.recorded.len()
    }

    /// True when nothing can be served.
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty()
    }

    /// The path template of `path`.
    pub fn template(&self, path: &str) -> String {
        self.templater.template(path).into_owned()
    }

    /// The recorded 429 to answer an emulated limit on `endpoint` with, if the capture had one.
    pub fn throttle(&self, endpoint: &str) -> Option<&Recorded> {
        self.throttle_body
            .get(endpoint)
            .or_else(|| self.throttle_body.get(""))
            .map(|&i| &self.recorded[i])
    }

    /// Finds the response for a request.
    pub fn lookup(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        failures: Failures,
        nearest: bool,
    ) -> Match<'_> {
        let exact = self.by_sig.get(&signature(method, path, query, body));
        let template = self.template(path);
        let same = self.by_template.get(&(method.to_owned(), template.clone()));
        // Skipping failures: a success of the same request, else of the same endpoint, before
        // replaying a recorded failure.
        if failures == Failures::Skip {
            if let Some(i) = exact.and_then(Cycle::pick_ok) {
                return Match::Exact(&self.recorded[i]);
            }
            if let Some(i) = same.and_then(Cycle::pick_ok) {
                return Match::Template(&self.recorded[i]);
            }
        }
        if let Some(i) = exact.and_then(Cycle::pick_any) {
            return Match::Exact(&self.recorded[i]);
        }
        if let Some(i) = same.and_then(Cycle::pick_any) {
            return Match::Template(&self.recorded[i]);
        }
        let near = self.nearest(method, &template);
        if nearest
            && let Some(best) = near.first()
            && let Some((m, t)) = best.split_once(' ')
            && let Some(c) = self.by_template.get(&(m.to_owned(), t.to_owned()))
            && let Some(i) = if failures == Failures::Skip {
                c.pick_ok().or_else(|| c.pick_any())
            } else {
                c.pick_any()
            }
        {
            return Match::Nearest(&self.recorded[i], best.clone());
        }
        Match::Miss(near)
    }

    /// Recorded endpoints most like `method template`: same method first, then the longest run of
    /// equal leading path segments.
    fn nearest(&self, method: &str, template: &str) -> Vec<String> {
        let segs: Vec<&str> = template.split('/').collect();
        let mut scored: Vec<(usize, bool, &(String, String))> = self
            .by_template
            .keys()
            .map(|k| {
                let common = k.1.split('/').zip(&segs).take_while(|(a, b)| a == *b).count();
                (common, k.0 == method, k)
            })
            .collect();
        scored.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then_with(|| a.2.cmp(b.2)));
        scored.into_iter().take(5).map(|(_, _, k)| format!("{} {}", k.0, k.1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_testkit::ex;

    fn catalog() -> Catalog {
        let v = vec![
            ex("GET", "https://api.test/users/1").id("a").status(200).build(),
            ex("GET", "https://api.test/users/1").id("b").status(429).build(),
            ex("GET", "https://api.test/users/1").id("c").status(200).build(),
            ex("GET", "https://api.test/users/2").id("d").status(500).build(),
            ex("POST", "https://api.test/orders").id("e").status(201).body("{\"x\":1}").build(),
        ];
        Catalog::new(&v, Templater::default())
    }

    fn id(m: Match<'_>) -> String {
        match m {
            Match::Exact(r) | Match::Template(r) | Match::Nearest(r, _) => r.id.to_string(),
            Match::Miss(n) => format!("miss {n:?}"),
        }
    }

    #[test]
    fn identical_requests_cycle_in_order_and_skip_failures_when_asked() {
        let c = catalog();
        let ids: Vec<String> = (0..4)
            .map(|_| id(c.lookup("GET", "/users/1", None, b"", Failures::Replay, false)))
            .collect();
        assert_eq!(ids, ["a", "b", "c", "a"]);
        let ids: Vec<String> = (0..3)
            .map(|_| id(c.lookup("GET", "/users/1", None, b"", Failures::Skip, false)))
            .collect();
        assert_eq!(ids, ["a", "c", "a"]);
        // Only a failure recorded for /users/2: skip falls back to the template's successes.
        assert!(
            ["a", "c"].contains(
                &id(c.lookup("GET", "/users/2", None, b"", Failures::Skip, false)).as_str()
            )
        );
    }

    #[test]
    fn template_then_nearest_then_miss_with_suggestions() {
        let c = catalog();
        assert!(matches!(
            c.lookup("GET", "/users/99", None, b"", Failures::Replay, false),
            Match::Template(_)
        ));
        assert!(matches!(
            c.lookup("POST", "/orders", None, b"{\"x\":1}", Failures::Replay, false),
            Match::Exact(_)
        ));
        assert!(matches!(
            c.lookup("POST", "/orders", None, b"{\"x\":2}", Failures::Replay, false),
            Match::Template(_)
        ));
        match c.lookup("DELETE", "/users/1", None, b"", Failures::Replay, false) {
            Match::Miss(n) => assert_eq!(n[0], "GET /users/{id}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.lookup("DELETE", "/users/1", None, b"", Failures::Replay, true),
            Match::Nearest(_, _)
        ));
    }
}
