//! Stable exchange ids, citable by a short unique prefix (`ex:3f2a`).
//!
//! Native snapshots store ids. Importers derive them from content (start time, method, URL and
//! the record's position in its source), so importing the same file twice gives the same ids and
//! a report's citation stays valid. Sources with their own ids (proxymock's uuid) keep them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An exchange id: lowercase hex (16 digits when derived, 32 for proxymock uuids).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExchangeId(String);

impl ExchangeId {
    /// Wraps an id read from a source. Ids are compared as given.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Derives a 64-bit id from the parts that make a record unique in its source.
    pub fn derive(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Self(hex(&h.finalize()[..8]))
    }

    /// Hex of raw id bytes (e.g. a decoded uuid).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hex(bytes))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shortest prefix of this id (at least `min` chars) that no other id in `all` shares.
    pub fn short<'a>(&self, all: impl IntoIterator<Item = &'a ExchangeId>, min: usize) -> &str {
        let mut need = min.min(self.0.len());
        for other in all {
            if other == self {
                continue;
            }
            let common = self.0.bytes().zip(other.0.bytes()).take_while(|(a, b)| a == b).count();
            need = need.max((common + 1).min(self.0.len()));
        }
        &self.0[..need]
    }
}

impl fmt::Display for ExchangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a citation did not pick exactly one exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// No id starts with the prefix.
    #[error("no exchange id starts with `{0}`")]
    NotFound(String),
    /// Several do; the first few are listed.
    #[error("`{prefix}` is ambiguous: it starts {count} ids ({examples})")]
    Ambiguous {
        /// The prefix asked for.
        prefix: String,
        /// How many ids share it.
        count: usize,
        /// A few of them.
        examples: String,
    },
}

/// Finds the one id that starts with `prefix` (an optional `ex:` is ignored).
pub fn resolve_prefix<'a>(
    ids: impl IntoIterator<Item = &'a ExchangeId>,
    prefix: &str,
) -> Result<&'a ExchangeId, PrefixError> {
    let p = prefix.strip_prefix("ex:").unwrap_or(prefix).to_ascii_lowercase();
    let hits: Vec<&ExchangeId> = ids.into_iter().filter(|id| id.0.starts_with(&p)).collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(PrefixError::NotFound(p)),
        many => Err(PrefixError::Ambiguous {
            prefix: p,
            count: many.len(),
            examples: many.iter().take(3).map(|i| i.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_separate_parts() {
        let a = ExchangeId::derive(&[b"ab", b"c"]);
        assert_eq!(a, ExchangeId::derive(&[b"ab", b"c"]));
        assert_ne!(a, ExchangeId::derive(&[b"a", b"bc"]));
        assert_eq!(a.as_str().len(), 16);
    }

    #[test]
    fn prefixes_resolve_uniquely_or_say_why_not() {
        let ids = [ExchangeId::new("3f2a11"), ExchangeId::new("3f2b22"), ExchangeId::new("9900")];
        assert_eq!(resolve_prefix(&ids, "ex:3f2a").map(ExchangeId::as_str), Ok("3f2a11"));
        assert!(matches!(resolve_prefix(&ids, "3f"), Err(PrefixError::Ambiguous { count: 2, .. })));
        assert!(matches!(resolve_prefix(&ids, "77"), Err(PrefixError::NotFound(_))));
        assert_eq!(ids[0].short(&ids, 4), "3f2a");
        assert_eq!(ids[2].short(&ids, 1), "9");
    }
}
