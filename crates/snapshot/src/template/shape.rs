//! Segments whose shape alone says "an id": numbers, uuids, long hex, e-mail addresses, prefixed
//! ids (`cus_NffrFeUfNV2Hib`, `SKU-10000`, `inv_520659`, `ord-7F3K`), long mixed tokens, dates,
//! IPv4 addresses. Everything else is a word, and only the capture's own data (how many values a
//! position takes, see `infer`) can make it a parameter. And how a parameter is named after the
//! segment before it.

/// What kind of id a segment's shape shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An id of some shape (number, uuid, hex, prefixed, token, date, address).
    Id,
    /// An e-mail address (named `{email}`).
    Email,
}

/// The shape of `seg`, when it is unmistakably an id.
pub(crate) fn classify(seg: &str) -> Option<Shape> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return Some(Shape::Id);
    }
    // `632910392.json`, `3f2a…c1.png`: an id with a file extension (Shopify's REST paths).
    if let Some((stem, ext)) = seg.rsplit_once('.')
        && (1..=5).contains(&ext.len())
        && ext.bytes().all(|c| c.is_ascii_alphanumeric())
        && !stem.contains('.')
        && classify(stem) == Some(Shape::Id)
    {
        return Some(Shape::Id);
    }
    if seg.contains('@') && seg.contains('.') || seg.contains("%40") {
        return Some(Shape::Email);
    }
    if is_uuid(b) || is_date(b) || is_ipv4(seg) {
        return Some(Shape::Id);
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return Some(Shape::Id);
    }
    if is_prefixed(seg) {
        return Some(Shape::Id);
    }
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let tokenish =
        b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'.'));
    if b.len() >= 16 && tokenish && digits >= 2 && letters >= 2 {
        return Some(Shape::Id);
    }
    None
}

/// A short all-letter prefix (one case), `_` or `-`, then digits, or a token of at least four
/// letters and digits with a digit in it: `ord_9001`, `cus_NffrFeUfNV2Hib`, `SKU-10000`,
/// `item-17`, `ord-7F3K`. Words joined by `-` (`user-groups`) have no digit and stay words.
fn is_prefixed(seg: &str) -> bool {
    let Some(at) = seg.find(['_', '-']) else { return false };
    let (prefix, rest) = (&seg[..at], &seg[at + 1..]);
    let one_case = prefix.bytes().all(|c| c.is_ascii_lowercase())
        || prefix.bytes().all(|c| c.is_ascii_uppercase());
    if !(2..=6).contains(&prefix.len()) || !one_case {
        return false;
    }
    let alnum = !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_alphanumeric());
    alnum
        && (rest.bytes().all(|c| c.is_ascii_digit())
            || rest.len() >= 4 && rest.bytes().any(|c| c.is_ascii_digit()))
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() }
        })
}

/// `2024-01-15`, optionally followed by a time (`2024-01-15T10:00:00Z`).
fn is_date(b: &[u8]) -> bool {
    b.len() >= 10
        && b[..10]
            .iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 4 | 7) { *c == b'-' } else { c.is_ascii_digit() })
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b'_' | b' '))
}

fn is_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|c| c.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// A collection name a parameter after it can be named from: letters, `-`, `_`.
pub(crate) fn is_word(s: &str) -> bool {
    s.len() > 1 && s.bytes().all(|c| c.is_ascii_alphabetic() || c == b'_' || c == b'-')
}

/// The name of a parameter: `{email}` for addresses; after a collection name, mid-path,
/// `{userId}` (`users/42/orders`); else `{id}`.
pub(crate) fn param_name(prev: Option<&str>, last: bool, email: bool) -> String {
    if email {
        return "{email}".into();
    }
    match prev {
        Some(p) if !last && is_word(p) => format!("{{{}Id}}", singular(p)),
        _ => "{id}".into(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_by_shape_and_words_that_stay_words() {
        for id in [
            "42",
            "123e4567-e89b-12d3-a456-426614174000",
            "18c2f5a9e4b7d301",
            "01HF7ZQ9K3M2V8X4Y6B1C0D2E3",
            "cus_NffrFeUfNV2Hib",
            "inv_520659",
            "SKU-10000",
            "ord-7F3K",
            "item-17",
            "2024-01-15",
            "2024-01-15T10:00:00Z",
            "10.0.0.12",
            "632910392.json",
        ] {
            assert_eq!(classify(id), Some(Shape::Id), "{id}");
        }
        assert_eq!(classify("ann@example.com"), Some(Shape::Email));
        for word in [
            "users",
            "v1",
            "v2beta1",
            "oauth2",
            "batchModify",
            "user-groups",
            "snake_case",
            "deadbeef",
            "2024-01",
            "check-runs",
            "x86_64",
            "me",
            "rust-lang",
            "octocat",
            "1.2.3.4.5",
            "count.json",
            "v1.2",
        ] {
            assert_eq!(classify(word), None, "{word}");
        }
    }

    #[test]
    fn names_follow_the_collection() {
        assert_eq!(param_name(Some("users"), false, false), "{userId}");
        assert_eq!(param_name(Some("categories"), false, false), "{categoryId}");
        assert_eq!(param_name(Some("user-groups"), false, false), "{userGroupId}");
        assert_eq!(param_name(Some("users"), true, false), "{id}");
        assert_eq!(param_name(None, false, false), "{id}");
        assert_eq!(param_name(Some("people"), true, true), "{email}");
    }
}
