//! The generic sink: a JSON event POSTed to a URL, signed with HMAC-SHA256 over the exact body
//! (`x-af-signature-256: sha256=<hex>`, the scheme GitHub uses for its own webhooks), with an
//! `x-af-delivery` id the receiver can de-duplicate on (a redelivered job sends the same id).

use http::Method;
use ring::hmac;

use crate::http::{HttpClient, SinkError, classify};

/// A configured webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    url: String,
    key: hmac::Key,
    secret_env: String,
    http: HttpClient,
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body);
    format!("sha256={}", hex(tag.as_ref()))
}

/// Whether `header` (`sha256=<hex>`) is `body`'s signature under `secret`, compared in constant
/// time (ring's verify).
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hexsig) = header.trim().strip_prefix("sha256=") else { return false };
    let Some(bytes) = unhex(hexsig) else { return false };
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret), body, &bytes).is_ok()
}

impl Webhook {
    /// The secret is read from `secret_env` now and kept only in memory.
    pub fn from_env(url: &str, secret_env: &str) -> Result<Self, SinkError> {
        let secret = std::env::var(secret_env).map_err(|_| {
            SinkError::Config(format!("webhook: the secret variable ${secret_env} is not set"))
        })?;
        Self::new(url, secret.as_bytes(), secret_env)
    }

    /// With the secret given (`secret_env` names it in messages).
    pub fn new(url: &str, secret: &[u8], secret_env: &str) -> Result<Self, SinkError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SinkError::Config(format!("webhook: {url:?} is not an http(s) URL")));
        }
        Ok(Self {
            url: url.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            secret_env: secret_env.to_owned(),
            http: HttpClient::shared()?,
        })
    }

    /// Sends one event; `delivery` is its idempotency key.
    pub async fn send(&self, delivery: &str, event: &serde_json::Value) -> Result<(), SinkError> {
        let body = event.to_string().into_bytes();
        let sig = format!("sha256={}", hex(hmac::sign(&self.key, &body).as_ref()));
        let a = self
            .http
            .send(
                "webhook",
                Method::POST,
                &self.url,
                &[
                    ("content-type", "application/json".to_owned()),
                    ("user-agent", "agent-factory".to_owned()),
                    ("x-af-signature-256", sig),
                    ("x-af-delivery", delivery.to_owned()),
                ],
                Some(body),
            )
            .await?;
        if a.status.is_success() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Err(classify(
            "webhook",
            format!("POST {}", crate::http::path_of(&self.url)),
            &a,
            &self.secret_env,
            now,
        ))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_published_github_example() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
        let s = signature(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(s, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert!(verify_signature(b"It's a Secret to Everybody", b"Hello, World!", &s));
        assert!(!verify_signature(b"It's a Secret to Everybody", b"Hello, World?", &s));
        assert!(!verify_signature(b"x", b"y", "sha1=00"));
        assert!(!verify_signature(b"x", b"y", "sha256=zz"));
    }
}
