//! Fingerprints: which findings are "the same problem" across windows.
//!
//! `v1:` + the first 128 bits of BLAKE3 over `kind | service | method | template | status
//! class`, in hex. 128 bits because the fingerprint is a key, not a checksum: a 32-bit hash has
//! even odds of a collision after ~77,000 findings (the birthday bound, √(2·2³²·ln 2)); 128 bits
//! push that past 10¹⁹. The version prefix lets a later scheme coexist with stored ones.

use std::fmt;

/// What a finding is about, the parts its fingerprint is made of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The detector (`limit-model`, ...).
    pub kind: String,
    /// The service.
    pub service: String,
    /// `GET`, ... (`-` when the finding has no endpoint).
    pub method: String,
    /// The path template (`-` when none).
    pub template: String,
    /// `4xx`, `5xx`, `transport` or `-`.
    pub status_class: String,
}

/// `v1:` and 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 16]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v1:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The class of a status: `4xx`, `5xx`, `transport` (0), `-` (none).
pub fn status_class(status: Option<u16>) -> String {
    match status {
        None => "-".into(),
        Some(0) => "transport".into(),
        Some(s) => format!("{}xx", s / 100),
    }
}

impl Key {
    /// The key of a finding `kind` on `endpoint` (`METHOD template`) of `service`.
    pub fn new(kind: &str, service: &str, endpoint: Option<&str>, status: Option<u16>) -> Self {
        let (method, template) = match endpoint.and_then(|e| e.split_once(' ')) {
            Some((m, t)) => (m.to_owned(), t.to_owned()),
            None => ("-".to_owned(), endpoint.unwrap_or("-").to_owned()),
        };
        Self {
            kind: kind.into(),
            service: service.into(),
            method,
            template,
            status_class: status_class(status),
        }
    }

    /// Its fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        // Lengths first, so that no part can run into the next (`a|b` + `c` ≠ `a` + `b|c`).
        for part in [&self.kind, &self.service, &self.method, &self.template, &self.status_class] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Fingerprint(out)
    }

    /// `METHOD template`, or the template alone.
    pub fn endpoint(&self) -> String {
        if self.method == "-" {
            self.template.clone()
        } else {
            format!("{} {}", self.method, self.template)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_versioned_and_separate_their_parts() {
        let k = Key::new(
            "limit-model",
            "radar",
            Some("GET /gmail/v1/users/me/messages/{id}"),
            Some(429),
        );
        assert_eq!(k.method, "GET");
        assert_eq!(k.status_class, "4xx");
        let fp = k.fingerprint().to_string();
        assert!(fp.starts_with("v1:") && fp.len() == 35, "{fp}");
        assert_eq!(fp, k.fingerprint().to_string());
        // Same class, same problem: a 429 and a 403 burst on one endpoint are one fingerprint.
        let k403 = Key::new(
            "limit-model",
            "radar",
            Some("GET /gmail/v1/users/me/messages/{id}"),
            Some(403),
        );
        assert_eq!(k403.fingerprint(), k.fingerprint());
        // Every part counts, and parts do not run into each other.
        let other = Key { service: "radar2".into(), ..k.clone() };
        assert_ne!(other.fingerprint(), k.fingerprint());
        let a = Key { kind: "a|b".into(), service: "c".into(), ..k.clone() };
        let b = Key { kind: "a".into(), service: "b|c".into(), ..k };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(status_class(Some(0)), "transport");
        assert_eq!(status_class(None), "-");
    }
}
