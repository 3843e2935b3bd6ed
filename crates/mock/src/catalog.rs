//! The recorded responses and how a request finds one: exact signature (method, path, query,
//! body) → same endpoint template → near miss, among the recordings of the request's host when
//! the capture has that host. Repeated identical requests cycle through their recorded
//! responses in order.
//!
//! A body is served the way its headers say. A body the capture kept decoded (HAR, proxymock)
//! under `Content-Encoding: gzip` is served as it was kept, without that header (a server may
//! always answer uncompressed, and the client gets exactly the recorded bytes); a body kept as
//! it went over the wire is served so to clients that accept its coding, and decoded to the
//! rest.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use af_snapshot::coding::{self, Coding};
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
    /// Body bytes as the headers describe them (content-encoded when `Content-Encoding` is).
    pub body: Bytes,
    /// The same body decoded, for clients that do not accept its coding (none when the body
    /// has no coding, or the recorded bytes do not decode).
    pub plain: Option<Bytes>,
    /// The codings `body` carries, in the order applied.
    pub codings: Vec<Coding>,
    /// The capture did not keep the whole body (cut by a size cap, or kept in a file that was
    /// not there): what is served is what was kept.
    pub incomplete: bool,
    /// Recorded duration, ns.
    pub duration_ns: u64,
}

impl Recorded {
    /// Headers and body for a client that sent `accept_encoding`: the recorded coding when it
    /// accepts it, else the decoded body without `Content-Encoding` (when there is one).
    pub fn representation(&self, accept_encoding: Option<&str>) -> (Headers, Bytes) {
        let accepted = self.codings.iter().all(|c| coding::accepts(accept_encoding, *c));
        match &self.plain {
            Some(plain) if !accepted => (
                self.headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("content-encoding"))
                    .cloned()
                    .collect(),
                plain.clone(),
            ),
            _ => (self.headers.clone(), self.body.clone()),
        }
    }
}

/// The bytes to serve for a recorded body, made to agree with `headers` (which lose
/// `Content-Encoding` when the bytes are not encoded): `(as the headers say, decoded,
/// codings)`.
fn served_body(body: Option<&Body>, headers: &mut Headers) -> (Bytes, Option<Bytes>, Vec<Coding>) {
    let bytes = body.map(Body::bytes).unwrap_or_default();
    let raw = Bytes::copy_from_slice(bytes);
    let Some(ce) = af_snapshot::header(headers, "content-encoding") else {
        return (raw, None, Vec::new());
    };
    match coding::codings(ce) {
        Ok(codings) if !codings.is_empty() && !body.is_some_and(|b| b.decoded) => {
            let plain = coding::decode(&codings, bytes).ok().map(Bytes::from);
            (raw, plain, codings)
        }
        // Wire bytes in a coding af does not know: as recorded, for the client that asked.
        Err(_) if !body.is_some_and(|b| b.decoded) => (raw, None, Vec::new()),
        // Decoded bytes (or `identity`): the header no longer describes them.
        _ => {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-encoding"));
            (raw, None, Vec::new())
        }
    }
}

/// `Example.COM:443` → `example.com`: hosts compared without case or a default port.
fn normal_host(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    match h.rsplit_once(':') {
        Some((name, "80" | "443")) => name.to_owned(),
        _ => h,
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

    fn add(&mut self, i: usize, ok: bool) {
        self.all.push(i);
        if ok {
            self.ok.push(i);
        }
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

/// What a request is looked up by.
#[derive(Clone, Copy, Debug)]
pub struct Wanted<'a> {
    /// Its `Host` (or the authority of an absolute URI), when it had one.
    pub host: Option<&'a str>,
    /// `GET`, ...
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query without `?`.
    pub query: Option<&'a str>,
    /// Body bytes.
    pub body: &'a [u8],
}

/// The host a lookup is scoped to: `Some` for a host the capture has recordings of, `None`
/// for the rest (a program pointed at the mock's own address), which any host's recordings
/// serve.
type Scope = Option<String>;

/// All recorded responses, indexed.
#[derive(Debug, Default)]
pub struct Catalog {
    recorded: Vec<Recorded>,
    by_sig: HashMap<(Scope, u64), Cycle>,
    by_template: HashMap<(Scope, String, String), Cycle>,
    hosts: HashSet<String>,
    /// A recorded 429 body per template (or any), to answer emulated limits with.
    throttle_body: HashMap<String, usize>,
    templater: Templater,
    /// Exchanges not usable as responses (transport errors, incomplete).
    pub unservable: usize,
    /// Recordings whose body the capture did not keep whole (see [`Recorded::incomplete`]).
    pub incomplete_bodies: usize,
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
            let parts = UrlParts::split(&ex.request.url);
            // A host is known when the capture saw it at all, answered or not: a request to it
            // is never served another host's response.
            let host = (!parts.host().is_empty()).then(|| normal_host(parts.host()));
            c.hosts.extend(host.clone());
            let Some(r) = &ex.response else {
                c.unservable += 1;
                continue;
            };
            let body = ex.request.body.as_ref().map(|b| b.bytes().to_vec()).unwrap_or_default();
            let sig = signature(&ex.request.method, parts.path, parts.query, &body);
            let template = c.templater.template(parts.path).into_owned();
            let mut headers: Headers = r
                .headers
                .iter()
                .filter(|(k, _)| !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            let (served, plain, codings) = served_body(r.body.as_ref(), &mut headers);
            let incomplete =
                r.body.as_ref().is_some_and(|b| b.truncated && (b.bytes().len() as u64) < b.size);
            c.incomplete_bodies += usize::from(incomplete);
            let i = c.recorded.len();
            let ok = r.status < 400;
            c.recorded.push(Recorded {
                id: ex.id.clone(),
                status: r.status,
                headers,
                body: served,
                plain,
                codings,
                incomplete,
                duration_ns: ex.timing.duration_ns.unwrap_or(0),
            });
            let method = &ex.request.method;
            let scopes = std::iter::once(None).chain(host.map(Some));
            for scope in scopes {
                c.by_sig.entry((scope.clone(), sig)).or_default().add(i, ok);
                c.by_template
                    .entry((scope, method.clone(), template.clone()))
                    .or_default()
                    .add(i, ok);
            }
            if r.status == 429 {
                c.throttle_body.entry(format!("{method} {template}")).or_insert(i);
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

    fn scope(&self, host: Option<&str>) -> Scope {
        host.map(normal_host).filter(|h| self.hosts.contains(h))
    }

    /// Finds the response for a request.
    pub fn lookup(&self, w: Wanted<'_>, failures: Failures, nearest: bool) -> Match<'_> {
        let scope = self.scope(w.host);
        let exact = self.by_sig.get(&(scope.clone(), signature(w.method, w.path, w.query, w.body)));
        let template = self.template(w.path);
        let same = self.by_template.get(&(scope.clone(), w.method.to_owned(), template.clone()));
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
        let near = self.nearest(&scope, w.method, &template);
        if nearest
            && let Some(best) = near.first()
            && let Some((m, t)) = best.split_once(' ')
            && let Some(c) = self.by_template.get(&(scope, m.to_owned(), t.to_owned()))
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

    /// Recorded endpoints of the scope most like `method template`: same method first, then
    /// the longest run of equal leading path segments.
    fn nearest(&self, scope: &Scope, method: &str, template: &str) -> Vec<String> {
        let segs: Vec<&str> = template.split('/').collect();
        let mut scored: Vec<(usize, bool, &str, &str)> = self
            .by_template
            .keys()
            .filter(|k| k.0 == *scope)
            .map(|(_, m, t)| {
                let common = t.split('/').zip(&segs).take_while(|(a, b)| a == *b).count();
                (common, m == method, m.as_str(), t.as_str())
            })
            .collect();
        scored
            .sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then_with(|| (a.2, a.3).cmp(&(b.2, b.3))));
        scored.into_iter().take(5).map(|(_, _, m, t)| format!("{m} {t}")).collect()
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
            ex("GET", "https://other.test/").id("f").status(200).build(),
        ];
        Catalog::new(&v, Templater::default())
    }

    fn get<'a>(path: &'a str) -> Wanted<'a> {
        Wanted { host: None, method: "GET", path, query: None, body: b"" }
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
        let ids: Vec<String> =
            (0..4).map(|_| id(c.lookup(get("/users/1"), Failures::Replay, false))).collect();
        assert_eq!(ids, ["a", "b", "c", "a"]);
        let ids: Vec<String> =
            (0..3).map(|_| id(c.lookup(get("/users/1"), Failures::Skip, false))).collect();
        assert_eq!(ids, ["a", "c", "a"]);
        // Only a failure recorded for /users/2: skip falls back to the template's successes.
        assert!(
            ["a", "c"].contains(&id(c.lookup(get("/users/2"), Failures::Skip, false)).as_str())
        );
    }

    #[test]
    fn template_then_nearest_then_miss_with_suggestions() {
        let c = catalog();
        assert!(matches!(c.lookup(get("/users/99"), Failures::Replay, false), Match::Template(_)));
        let post = |body: &'static [u8]| Wanted { method: "POST", body, ..get("/orders") };
        assert!(matches!(c.lookup(post(b"{\"x\":1}"), Failures::Replay, false), Match::Exact(_)));
        assert!(matches!(
            c.lookup(post(b"{\"x\":2}"), Failures::Replay, false),
            Match::Template(_)
        ));
        let delete = Wanted { method: "DELETE", ..get("/users/1") };
        match c.lookup(delete, Failures::Replay, false) {
            Match::Miss(n) => assert_eq!(n[0], "GET /users/{id}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.lookup(delete, Failures::Replay, true), Match::Nearest(_, _)));
    }

    #[test]
    fn a_request_for_a_known_host_is_answered_from_that_host_only() {
        let c = catalog();
        // `/` was recorded for other.test only: a request for api.test's `/` is a miss, not
        // other.test's response.
        let to = |host| Wanted { host: Some(host), ..get("/") };
        assert!(matches!(c.lookup(to("api.test"), Failures::Replay, false), Match::Miss(_)));
        assert_eq!(id(c.lookup(to("OTHER.test:443"), Failures::Replay, false)), "f");
        // A host the capture does not know (the mock's own address): any host's recordings.
        assert_eq!(id(c.lookup(to("127.0.0.1:4000"), Failures::Replay, false)), "f");
    }

    #[test]
    fn decoded_bodies_lose_the_header_and_wire_bodies_are_decoded_for_who_does_not_accept() {
        let gz = coding::encode(&[Coding::Gzip], b"{\"fact\":\"cats\"}").expect("gzip");
        let mut kept = ex("GET", "https://api.test/decoded")
            .status(200)
            .response_header("Content-Encoding", "gzip")
            .response_body("{\"fact\":\"cats\"}")
            .build();
        if let Some(b) = kept.response.as_mut().and_then(|r| r.body.as_mut()) {
            b.decoded = true;
        }
        let mut wire = ex("GET", "https://api.test/wire")
            .status(200)
            .response_header("Content-Encoding", "gzip")
            .build();
        if let Some(r) = wire.response.as_mut() {
            r.body = Some(Body::from_bytes(gz.clone()));
        }
        let c = Catalog::new(&[kept, wire], Templater::default());
        let served = |path, accept| match c.lookup(get(path), Failures::Replay, false) {
            Match::Exact(r) => r.representation(accept),
            other => panic!("{other:?}"),
        };
        let (h, body) = served("/decoded", Some("gzip, deflate"));
        assert_eq!(af_snapshot::header(&h, "content-encoding"), None);
        assert_eq!(&body[..], b"{\"fact\":\"cats\"}");
        let (h, body) = served("/wire", Some("gzip"));
        assert_eq!(af_snapshot::header(&h, "content-encoding"), Some("gzip"));
        assert_eq!(&body[..], &gz[..]);
        let (h, body) = served("/wire", Some("identity"));
        assert_eq!(af_snapshot::header(&h, "content-encoding"), None);
        assert_eq!(&body[..], b"{\"fact\":\"cats\"}");
    }
}
