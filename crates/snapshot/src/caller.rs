//! Who the upstream counts a limit for: the *caller* of an exchange.
//!
//! By default a stable, non-reversible hash of the credential the request carried
//! (`Authorization`, then common API-key headers), so two tokens are two callers and no secret
//! ever appears in output. An explicit `caller` recorded in the snapshot wins.

use sha2::{Digest, Sha256};

use crate::model::{Exchange, UrlParts, header};

/// Headers that identify a caller, in order of preference (lower case).
pub const KEY_HEADERS: &[&str] =
    &["authorization", "x-api-key", "api-key", "x-goog-api-key", "x-auth-token"];

/// How to find the caller of an exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CallerSpec {
    /// Recorded caller, else a hash of the credential header.
    #[default]
    Auto,
    /// The value of this request header (hashed).
    Header(String),
    /// The value of this query parameter (hashed).
    Query(String),
}

impl std::str::FromStr for CallerSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "auto" => Ok(Self::Auto),
            Some(("header", n)) if !n.is_empty() => Ok(Self::Header(n.to_owned())),
            Some(("query", n)) if !n.is_empty() => Ok(Self::Query(n.to_owned())),
            _ => Err(format!("caller key {s:?} is not `auto`, `header:NAME` or `query:NAME`")),
        }
    }
}

/// The spec as it is written (`auto`, `header:NAME`, `query:NAME`): parsing it gives it back.
impl std::fmt::Display for CallerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Header(n) => write!(f, "header:{n}"),
            Self::Query(n) => write!(f, "query:{n}"),
        }
    }
}

impl CallerSpec {
    /// The raw value that identifies the caller of `ex` (a credential: never print it), or `None`
    /// when the caller is recorded explicitly or nothing identifies one. Equal values mean the
    /// same caller, so callers can cache [`CallerSpec::caller_of`] by it.
    pub fn credential<'a>(&self, ex: &'a Exchange) -> Option<&'a str> {
        match self {
            Self::Auto if ex.caller.is_some() => None,
            Self::Auto => KEY_HEADERS.iter().find_map(|h| header(&ex.request.headers, h)),
            Self::Header(name) => header(&ex.request.headers, name),
            Self::Query(name) => UrlParts::split(&ex.request.url).query.and_then(|q| {
                q.split('&')
                    .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
            }),
        }
    }

    /// The caller of `ex`, or `None` when the request carries nothing that identifies one.
    pub fn caller_of(&self, ex: &Exchange) -> Option<String> {
        if let (Self::Auto, Some(c)) = (self, &ex.caller) {
            return Some(c.clone());
        }
        let label = match self {
            Self::Auto => "key",
            Self::Header(n) | Self::Query(n) => n,
        };
        self.credential(ex).map(|v| hashed(label, v))
    }
}

fn hashed(label: &str, value: &str) -> String {
    let d = Sha256::digest(value.as_bytes());
    format!("{}:{:02x}{:02x}{:02x}{:02x}", label.to_ascii_lowercase(), d[0], d[1], d[2], d[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExchangeId, Request, Timestamp, Timing};

    fn ex(headers: &[(&str, &str)], url: &str) -> Exchange {
        Exchange {
            id: ExchangeId::new("1"),
            service: None,
            direction: Default::default(),
            conn_id: None,
            caller: None,
            request: Request {
                method: "GET".into(),
                url: url.into(),
                http_version: None,
                headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
                body: None,
            },
            response: None,
            error: None,
            timing: Timing::new(Timestamp::from_nanos(0), None),
            tags: Default::default(),
        }
    }

    #[test]
    fn auto_hashes_credentials_without_revealing_them() {
        let a = ex(&[("Authorization", "Bearer secret-one")], "/x");
        let b = ex(&[("authorization", "Bearer secret-two")], "/x");
        let ca = CallerSpec::Auto.caller_of(&a).expect("has caller");
        assert!(!ca.contains("secret"));
        assert_ne!(Some(ca.clone()), CallerSpec::Auto.caller_of(&b));
        assert_eq!(Some(ca), CallerSpec::Auto.caller_of(&a));
        assert_eq!(CallerSpec::Auto.caller_of(&ex(&[], "/x")), None);
    }

    #[test]
    fn header_and_query_specs() {
        let e = ex(&[("X-Tenant", "t1")], "https://h/p?tenant=a&x=1");
        assert!(CallerSpec::Header("x-tenant".into()).caller_of(&e).is_some());
        assert!(CallerSpec::Query("tenant".into()).caller_of(&e).is_some());
        assert!(CallerSpec::Query("nope".into()).caller_of(&e).is_none());
        assert!("path:x".parse::<CallerSpec>().is_err());
        assert_eq!("header:X".parse::<CallerSpec>(), Ok(CallerSpec::Header("X".into())));
    }
}
