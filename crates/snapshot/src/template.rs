//! Path templates and endpoint keys: `/users/me/messages/18c2f5a9` → `/users/{userId}/messages/{id}`.
//!
//! Analysis groups traffic by endpoint, so ids in paths must collapse. Two sources of truth, in
//! order: explicit templates (the user's `--template`, then a short built-in list of well-known
//! APIs whose ids are not id-shaped, such as Gmail's `users/me`), then a heuristic that replaces
//! id-shaped segments (numbers, uuids, hex, long mixed tokens, e-mail addresses) and names each
//! after the collection segment before it (`users/42` → `users/{userId}` mid-path, `{id}` last).

use std::borrow::Cow;

/// Templates of well-known APIs whose path parameters are not id-shaped.
const KNOWN: &[&str] = &[
    "/gmail/v1/users/{userId}/messages/{id}",
    "/gmail/v1/users/{userId}/messages/{id}/attachments/{id}",
    "/gmail/v1/users/{userId}/messages/{id}/modify",
    "/gmail/v1/users/{userId}/messages/{id}/trash",
    "/gmail/v1/users/{userId}/messages",
    "/gmail/v1/users/{userId}/messages/batchModify",
    "/gmail/v1/users/{userId}/messages/send",
    "/gmail/v1/users/{userId}/threads/{id}",
    "/gmail/v1/users/{userId}/threads",
    "/gmail/v1/users/{userId}/labels/{id}",
    "/gmail/v1/users/{userId}/labels",
    "/gmail/v1/users/{userId}/history",
    "/gmail/v1/users/{userId}/profile",
    "/gmail/v1/users/{userId}/drafts/{id}",
    "/gmail/v1/users/{userId}/drafts",
];

/// An explicit template: literal segments and `{name}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Option<String>>,
    /// Literal text before the first placeholder: a cheap first test.
    prefix: String,
}

impl PathPattern {
    /// Parses `/a/{b}/c`. Fails when the template does not start with `/`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("template {text:?} must start with `/`"));
        }
        let segments = text[1..]
            .split('/')
            .map(|s| if s.starts_with('{') && s.ends_with('}') { None } else { Some(s.to_owned()) })
            .collect();
        let prefix = text.split('{').next().unwrap_or("").to_owned();
        Ok(Self { text: text.to_owned(), segments, prefix })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }

    fn matches(&self, path: &str) -> bool {
        if !path.starts_with(&self.prefix) {
            return false;
        }
        let mut n = 0;
        for (seg, want) in
            path[1..].split('/').zip(self.segments.iter().chain(std::iter::repeat(&None)))
        {
            n += 1;
            if n > self.segments.len() {
                return false;
            }
            match want {
                Some(lit) if lit != seg => return false,
                None if seg.is_empty() => return false,
                _ => {}
            }
        }
        n == self.segments.len()
    }
}

/// Turns request paths into templates. Cheap to clone; build once per run.
///
/// Among matching explicit templates the most specific wins (most literal segments), so
/// `/messages/batchModify` beats `/messages/{id}`; the user's templates are tried before the
/// built-in ones.
#[derive(Clone, Debug)]
pub struct Templater {
    user: Vec<PathPattern>,
    known: Vec<PathPattern>,
}

impl Default for Templater {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Templater {
    /// User templates first, then the built-in well-known ones.
    pub fn new(user: Vec<PathPattern>) -> Self {
        let known = KNOWN.iter().filter_map(|t| PathPattern::parse(t).ok()).collect();
        Self { user, known }
    }

    fn best<'p>(patterns: &'p [PathPattern], path: &str) -> Option<&'p PathPattern> {
        patterns.iter().filter(|p| p.matches(path)).max_by_key(|p| p.literals())
    }

    /// The template of `path` (query excluded).
    pub fn template<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if !path.starts_with('/') {
            return Cow::Borrowed(path);
        }
        if let Some(p) = Self::best(&self.user, path).or_else(|| Self::best(&self.known, path)) {
            return Cow::Owned(p.text.clone());
        }
        heuristic(path)
    }
}

fn heuristic(path: &str) -> Cow<'_, str> {
    let segs: Vec<&str> = path[1..].split('/').collect();
    let vars: Vec<Option<&'static str>> = segs.iter().map(|s| classify(s)).collect();
    if vars.iter().all(Option::is_none) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, (seg, var)) in segs.iter().zip(&vars).enumerate() {
        out.push('/');
        let Some(kind) = var else {
            out.push_str(seg);
            continue;
        };
        let last = i + 1 == segs.len();
        let prev = if i > 0 && vars[i - 1].is_none() { Some(segs[i - 1]) } else { None };
        out.push('{');
        match (kind, prev) {
            (&"email", _) => out.push_str("email"),
            (_, Some(p)) if !last && is_word(p) => {
                out.push_str(&singular(p));
                out.push_str("Id");
            }
            _ => out.push_str("id"),
        }
        out.push('}');
    }
    Cow::Owned(out)
}

fn is_word(s: &str) -> bool {
    s.len() > 1 && s.bytes().all(|c| c.is_ascii_alphabetic() || c == b'_' || c == b'-')
}

fn singular(word: &str) -> String {
    let w = if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if word.ends_with("ss") {
        word.to_owned()
    } else {
        word.strip_suffix('s').unwrap_or(word).to_owned()
    };
    // camelCase: `user-groups` → `userGroup`
    let mut out = String::with_capacity(w.len());
    let mut upper = false;
    for c in w.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// What kind of id a segment looks like, if any.
fn classify(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some("number");
    }
    if seg.contains('@') && seg.contains('.') || seg.contains("%40") {
        return Some("email");
    }
    if is_uuid(b) {
        return Some("uuid");
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return Some("hex");
    }
    // Prefixed ids (`ord_9001`, `cus_NffrFeUfNV2Hib`): a short lowercase prefix, `_`, a token
    // with a digit.
    if let Some((prefix, rest)) = seg.split_once('_')
        && (2..=6).contains(&prefix.len())
        && prefix.bytes().all(|c| c.is_ascii_lowercase())
        && rest.len() >= 4
        && rest.bytes().all(|c| c.is_ascii_alphanumeric())
        && rest.bytes().any(|c| c.is_ascii_digit())
    {
        return Some("prefixed");
    }
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let tokenish =
        b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'.'));
    if b.len() >= 16 && tokenish && digits >= 2 && letters >= 2 {
        return Some("token");
    }
    None
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() }
        })
}

/// Does `pattern` (an endpoint filter) select `method` + `template`?
///
/// Accepted forms: `GET /a/{id}` (method and template), `/a/{id}` (any method); `*` matches any
/// run of characters in either form. Method comparison ignores case.
pub fn endpoint_matches(pattern: &str, method: &str, template: &str) -> bool {
    match pattern.split_once(' ') {
        Some((m, t)) => (m == "*" || m.eq_ignore_ascii_case(method)) && glob(t.trim(), template),
        None => glob(pattern, template),
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> String {
        Templater::default().template(path).into_owned()
    }

    #[test]
    fn gmail_me_alias_uses_the_known_template() {
        assert_eq!(
            t("/gmail/v1/users/me/messages/18c2f5a9e4b7d301"),
            "/gmail/v1/users/{userId}/messages/{id}"
        );
        assert_eq!(t("/gmail/v1/users/me/messages"), "/gmail/v1/users/{userId}/messages");
        assert_eq!(
            t("/gmail/v1/users/me/messages/batchModify"),
            "/gmail/v1/users/{userId}/messages/batchModify"
        );
    }

    #[test]
    fn heuristic_names_ids_after_their_collection() {
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
    }

    #[test]
    fn words_and_versions_stay_literal() {
        assert_eq!(t("/api/v1/deadbeef/status"), "/api/v1/deadbeef/status");
        assert_eq!(t("/search/abc"), "/search/abc");
    }

    #[test]
    fn user_templates_win() {
        let tp = Templater::new(vec![PathPattern::parse("/repos/{owner}/{repo}").expect("valid")]);
        assert_eq!(tp.template("/repos/rust-lang/cargo"), "/repos/{owner}/{repo}");
        assert_eq!(tp.template("/repos/rust-lang"), "/repos/rust-lang");
        assert!(PathPattern::parse("repos").is_err());
    }

    #[test]
    fn endpoint_filters() {
        let tmpl = "/gmail/v1/users/{userId}/messages/{id}";
        assert!(endpoint_matches("GET /gmail/v1/users/{userId}/messages/{id}", "GET", tmpl));
        assert!(endpoint_matches("get */messages/{id}", "GET", tmpl));
        assert!(endpoint_matches(tmpl, "POST", tmpl));
        assert!(!endpoint_matches("POST *", "GET", tmpl));
        assert!(!endpoint_matches("/gmail", "GET", tmpl));
        assert!(endpoint_matches("/gmail*", "GET", tmpl));
    }
}
