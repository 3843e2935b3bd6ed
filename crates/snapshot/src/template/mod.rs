//! Path templates and endpoint keys: `/users/me/messages/18c2f5a9` →
//! `/users/me/messages/{id}`.
//!
//! Analysis groups traffic by endpoint, so ids in paths must collapse. Three sources, in order:
//! 1. explicit templates: the user's `--template`, then those of an OpenAPI document
//!    (`--templates-from`); among the matching ones the most specific wins;
//! 2. templates learned from the capture itself ([`PathSet`], [`Learned`]): a position that
//!    takes many distinct values is a parameter, whatever their shape;
//! 3. for a path nothing was learned about, the shape of each segment (numbers, uuids, hex,
//!    prefixed ids, e-mail addresses, dates, addresses).
//!
//! A parameter is named after the collection segment before it (`users/42/orders` →
//! `users/{userId}/orders`, `{id}` last). Names are for people: selectors match templates by
//! unification, so `users/me` selects `users/{userId}` and the other way round
//! ([`endpoint_matches`]).

mod infer;
mod openapi;
mod shape;

use std::borrow::Cow;
use std::sync::Arc;

pub use infer::{Learned, MIN_DISTINCT, OVERFLOW, PathSet, provisional};
pub use openapi::{OpenApiError, templates_from_openapi};

/// An explicit template: literal segments and `{name}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Option<String>>,
}

impl PathPattern {
    /// Parses `/a/{b}/c`. Fails when the template does not start with `/`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("template {text:?} must start with `/`"));
        }
        let segments = text[1..]
            .split('/')
            .map(|s| if infer::is_marker(s) { None } else { Some(s.to_owned()) })
            .collect();
        Ok(Self { text: text.to_owned(), segments })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }

    /// Does `path` (a request path, or a provisional key whose markers stand for ids) fit?
    fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else { return false };
        let mut segs = rest.split('/');
        let fits = self.segments.iter().all(|want| match (segs.next(), want) {
            (Some(seg), Some(lit)) => lit == seg,
            (Some(seg), None) => !seg.is_empty(),
            (None, _) => false,
        });
        fits && segs.next().is_none()
    }
}

/// Turns request paths into templates. Cheap to clone; build once per capture.
///
/// Explicit templates first (most literal segments wins, so `/messages/batchModify` beats
/// `/messages/{id}`), then what was learned from the capture, then the segments' shapes.
#[derive(Clone, Debug, Default)]
pub struct Templater {
    explicit: Vec<PathPattern>,
    learned: Arc<Learned>,
}

impl Templater {
    /// Explicit templates only (the user's first, then a document's).
    pub fn new(explicit: Vec<PathPattern>) -> Self {
        Self { explicit, learned: Arc::default() }
    }

    /// These templates, plus what was learned from a capture.
    pub fn with_learned(mut self, learned: Learned) -> Self {
        self.learned = Arc::new(learned);
        self
    }

    /// These templates, plus what the paths of `exchanges` teach.
    pub fn learning_from<'a>(
        self,
        exchanges: impl IntoIterator<Item = &'a crate::Exchange>,
    ) -> Self {
        let mut set = PathSet::default();
        for ex in exchanges {
            let parts = ex.url_parts();
            set.key(parts.host(), parts.path);
        }
        self.with_learned(set.learn())
    }

    /// What was learned from the capture.
    pub fn learned(&self) -> &Learned {
        &self.learned
    }

    fn explicit(&self, path: &str) -> Option<&PathPattern> {
        self.explicit.iter().filter(|p| p.matches(path)).max_by_key(|p| p.literals())
    }

    /// The template of `path` (query excluded) whatever its host: an `af mock` journal's host
    /// is the mock's own address, not the capture's.
    pub fn template<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if !path.starts_with('/') {
            return Cow::Borrowed(path);
        }
        if let Some(p) = self.explicit(path) {
            return Cow::Owned(p.text.clone());
        }
        match self.learned.any_host(path) {
            Some(t) => Cow::Owned(t),
            None => infer::by_shape(path),
        }
    }

    /// The template of `path` as requested from `host`.
    pub fn template_on<'a>(&self, host: &str, path: &'a str) -> Cow<'a, str> {
        if !path.starts_with('/') {
            return Cow::Borrowed(path);
        }
        if let Some(p) = self.explicit(path) {
            return Cow::Owned(p.text.clone());
        }
        match self.learned.on_host(host, path) {
            Some(t) => Cow::Owned(t),
            None => self.template(path),
        }
    }
}

/// Does `pattern` (an endpoint selector) select `method` + `template`?
///
/// Accepted forms: `GET /a/{id}` (method and template), `/a/{id}` (any method). Segments
/// unify: a placeholder on either side stands for any one segment, so `/users/me/messages/{id}`
/// selects `/users/{userId}/messages/{id}` and the other way round; `*` matches any run of
/// characters, `/` included. Method comparison ignores case.
pub fn endpoint_matches(pattern: &str, method: &str, template: &str) -> bool {
    match pattern.split_once(' ') {
        Some((m, t)) => (m == "*" || m.eq_ignore_ascii_case(method)) && unify(t.trim(), template),
        None => unify(pattern, template),
    }
}

/// Segment unification with `*` globs (see [`endpoint_matches`]).
fn unify(pattern: &str, template: &str) -> bool {
    fn placeholder(s: &[u8]) -> Option<usize> {
        // `{…}` up to the end of the segment: its length.
        if s.first() != Some(&b'{') {
            return None;
        }
        let end = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
        (end >= 2 && s[end - 1] == b'}').then_some(end)
    }
    fn segment(s: &[u8]) -> usize {
        s.iter().position(|&c| c == b'/').unwrap_or(s.len())
    }
    fn go(p: &[u8], t: &[u8], at_seg_start: bool) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..], false)),
            _ => {
                if at_seg_start {
                    if let Some(n) = placeholder(p) {
                        let m = segment(t);
                        return m > 0 && go(&p[n..], &t[m..], false);
                    }
                    if let Some(n) = placeholder(t) {
                        // The pattern's segment must be plain text (no glob inside) to unify.
                        let m = segment(p);
                        return m > 0 && !p[..m].contains(&b'*') && go(&p[m..], &t[n..], false);
                    }
                }
                match t.first() {
                    Some(c) if *c == p[0] => go(&p[1..], &t[1..], *c == b'/'),
                    _ => false,
                }
            }
        }
    }
    go(pattern.as_bytes(), template.as_bytes(), false)
}

/// Of `candidates` (`METHOD template` keys), the few most like `wanted`: same method first,
/// then the most segments that unify position by position, then the closest length.
pub fn nearest_endpoints<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<String> {
    let (wm, wt) = wanted.split_once(' ').unwrap_or(("", wanted));
    let wsegs: Vec<&str> = wt.trim().split('/').collect();
    let mut scored: Vec<(bool, usize, usize, &str)> = candidates
        .into_iter()
        .map(|c| {
            let (m, t) = c.split_once(' ').unwrap_or(("", c));
            let segs: Vec<&str> = t.split('/').collect();
            let same = segs
                .iter()
                .zip(&wsegs)
                .filter(|(a, b)| a == b || infer::is_marker(a) || infer::is_marker(b))
                .count();
            (m.eq_ignore_ascii_case(wm), same, segs.len().abs_diff(wsegs.len()), c)
        })
        .collect();
    scored.sort_by(|a, b| (b.0, b.1, a.2, a.3).cmp(&(a.0, a.1, b.2, b.3)));
    scored.dedup_by(|a, b| a.3 == b.3);
    scored.into_iter().take(n).map(|s| s.3.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> String {
        Templater::default().template(path).into_owned()
    }

    #[test]
    fn shape_names_ids_after_their_collection() {
        assert_eq!(t("/users/42/orders/9001"), "/users/{userId}/orders/{id}");
        assert_eq!(t("/api/v2/categories/17/items"), "/api/v2/categories/{categoryId}/items");
        assert_eq!(t("/things/123e4567-e89b-12d3-a456-426614174000"), "/things/{id}");
        assert_eq!(t("/people/ann@example.com/mail"), "/people/{email}/mail");
        assert_eq!(t("/files/01HF7ZQ9K3M2V8X4Y6B1C0D2E3"), "/files/{id}");
        assert_eq!(
            t("/v1/customers/cus_NffrFeUfNV2Hib/orders/ord_9001"),
            "/v1/customers/{customerId}/orders/{id}"
        );
        assert_eq!(t("/snake_case/path"), "/snake_case/path");
        assert_eq!(t("/v1/health"), "/v1/health");
        assert_eq!(t("/"), "/");
        assert_eq!(t("/user-groups/7/members"), "/user-groups/{userGroupId}/members");
        assert_eq!(t("/api/v1/deadbeef/status"), "/api/v1/deadbeef/status");
        assert_eq!(t("/search/abc"), "/search/abc");
    }

    #[test]
    fn explicit_templates_win_over_learned_ones() {
        let tp = Templater::new(vec![PathPattern::parse("/repos/{owner}/{repo}").expect("valid")]);
        assert_eq!(tp.template("/repos/rust-lang/cargo"), "/repos/{owner}/{repo}");
        assert_eq!(tp.template("/repos/rust-lang"), "/repos/rust-lang");
        assert!(PathPattern::parse("repos").is_err());
        // An explicit template also matches a provisional key, whose markers stand for ids.
        let tp = Templater::new(vec![PathPattern::parse("/users/{u}/x").expect("valid")]);
        assert_eq!(tp.template("/users/{}/x"), "/users/{u}/x");
    }

    #[test]
    fn learned_templates_apply_per_host_and_to_any_host() {
        let ex: Vec<crate::Exchange> = (0..30)
            .map(|i| {
                let url = format!("https://inventory.test/v2/stock/shelf{i}a");
                crate::Exchange {
                    id: crate::ExchangeId::new(format!("{i:04}")),
                    service: None,
                    direction: Default::default(),
                    conn_id: None,
                    caller: None,
                    request: crate::Request {
                        method: "GET".into(),
                        url,
                        http_version: None,
                        headers: vec![],
                        body: None,
                    },
                    response: None,
                    error: None,
                    timing: crate::Timing::new(crate::Timestamp::from_nanos(i), None),
                    tags: Default::default(),
                }
            })
            .collect();
        let tp = Templater::default().learning_from(&ex);
        assert_eq!(tp.template_on("inventory.test", "/v2/stock/shelf7a"), "/v2/stock/{id}");
        // A journal's host is the mock's address: the learned decisions still apply.
        assert_eq!(tp.template_on("127.0.0.1:4000", "/v2/stock/anything"), "/v2/stock/{id}");
        assert_eq!(tp.template("/v2/stock/anything"), "/v2/stock/{id}");
    }

    #[test]
    fn selectors_unify_with_templates_in_both_directions() {
        let tmpl = "/gmail/v1/users/{userId}/messages/{id}";
        assert!(endpoint_matches("GET /gmail/v1/users/{userId}/messages/{id}", "GET", tmpl));
        assert!(endpoint_matches("GET /gmail/v1/users/me/messages/{id}", "GET", tmpl));
        assert!(endpoint_matches(
            "GET /gmail/v1/users/{userId}/messages/{id}",
            "GET",
            "/gmail/v1/users/me/messages/{id}"
        ));
        assert!(endpoint_matches("get */messages/{id}", "GET", tmpl));
        assert!(endpoint_matches(tmpl, "POST", tmpl));
        assert!(!endpoint_matches("POST *", "GET", tmpl));
        assert!(!endpoint_matches("/gmail", "GET", tmpl));
        assert!(endpoint_matches("/gmail*", "GET", tmpl));
        // A typo does not unify.
        assert!(!endpoint_matches("GET /gmail/v1/users/me/mesages/{id}", "GET", tmpl));
        // Placeholders stand for one segment, not several, and never for an empty one.
        assert!(!endpoint_matches("/a/{x}", "GET", "/a/b/c"));
        assert!(!endpoint_matches("/a/{x}", "GET", "/a/"));
        assert!(endpoint_matches("/a/*/c", "GET", "/a/{id}/c"));
    }

    #[test]
    fn nearest_endpoints_put_the_likeliest_first() {
        let c =
            ["GET /gmail/v1/users/me/messages", "GET /gmail/v1/users/me/messages/{id}", "POST /x"];
        let n = nearest_endpoints("GET /gmail/v1/users/me/mesages/{id}", c, 2);
        assert_eq!(n[0], "GET /gmail/v1/users/me/messages/{id}");
    }
}
