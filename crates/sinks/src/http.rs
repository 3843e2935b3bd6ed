//! One HTTPS-or-HTTP client for every sink (hyper-util over rustls with ring, as the LLM
//! client), and the classification of a provider's answer into an outcome a job can act on.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Why a sink call failed, and whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// 401: the token is missing, wrong or expired. Retrying cannot help.
    #[error("{provider}: 401 unauthorized on {what}: {message} (check the token in ${token_env})")]
    Unauthorized {
        /// `github`, `gitlab`, `webhook`.
        provider: &'static str,
        /// The call, e.g. `POST /repos/o/r/issues`.
        what: String,
        /// The provider's message.
        message: String,
        /// The variable the token came from (its name only, never the value).
        token_env: String,
    },
    /// A rate limit (403 or 429 with `x-ratelimit-remaining: 0` or `retry-after`): try again
    /// after the wait.
    #[error("{provider}: rate limited on {what} ({status}); retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// Provider.
        provider: &'static str,
        /// The call.
        what: String,
        /// 403 or 429.
        status: u16,
        /// From `retry-after`, or `x-ratelimit-reset` minus now; 60 s when neither says.
        retry_after: Duration,
    },
    /// 403 without rate-limit headers: the token lacks a permission. Not retried.
    #[error("{provider}: 403 forbidden on {what}: {message} (the token lacks a permission)")]
    Forbidden {
        /// Provider.
        provider: &'static str,
        /// The call.
        what: String,
        /// The provider's message.
        message: String,
    },
    /// 404: the repository, project or number does not exist (or the token cannot see it).
    #[error("{provider}: 404 on {what}: {message}")]
    NotFound {
        /// Provider.
        provider: &'static str,
        /// The call.
        what: String,
        /// The provider's message.
        message: String,
    },
    /// 400/409/422: the provider refused the content. Not retried; the message says why.
    #[error("{provider}: {status} on {what}: {message}")]
    Invalid {
        /// Provider.
        provider: &'static str,
        /// The call.
        what: String,
        /// Status.
        status: u16,
        /// The provider's message and field errors.
        message: String,
    },
    /// 5xx or a transport failure: try again later.
    #[error("{provider}: {what}: {message} (transient; will retry)")]
    Transient {
        /// Provider.
        provider: &'static str,
        /// The call.
        what: String,
        /// Status or transport error.
        message: String,
    },
    /// The sink is misconfigured (bad URL, missing token variable).
    #[error("{0}")]
    Config(String),
}

impl SinkError {
    /// When trying again can help: after how long at least.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Transient { .. } => Some(Duration::ZERO),
            _ => None,
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (JSON for the forges).
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The shared client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// The process's one client (its TLS configuration and connection pool are built once,
    /// not per sink or per run).
    pub fn shared() -> Result<Self, SinkError> {
        static CLIENT: std::sync::OnceLock<Result<HttpClient, String>> = std::sync::OnceLock::new();
        CLIENT
            .get_or_init(|| Self::new().map_err(|e| e.to_string()))
            .clone()
            .map_err(SinkError::Config)
    }

    /// A client verifying TLS against the system's roots.
    pub fn new() -> Result<Self, SinkError> {
        let tls = af_capture::client_tls(false).map_err(SinkError::Config)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends one request; a transport failure or time-out is [`SinkError::Transient`].
    pub async fn send(
        &self,
        provider: &'static str,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, SinkError> {
        let what = format!("{method} {}", path_of(url));
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| SinkError::Config(format!("{provider}: {url}: {e}")))?;
        let transient =
            |message: String| SinkError::Transient { provider, what: what.clone(), message };
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| transient(format!("no answer in {}s", self.timeout.as_secs())))?
            .map_err(|e| transient(format!("transport: {e}")))?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(self.timeout, body.collect())
            .await
            .map_err(|_| transient("body did not arrive in time".into()))?
            .map_err(|e| transient(format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

/// `/repos/o/r/issues` of a URL (for messages: never the query, which could carry a secret).
pub(crate) fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

/// Turns a non-2xx answer into its outcome. `now_epoch` is for `x-ratelimit-reset`.
pub(crate) fn classify(
    provider: &'static str,
    what: String,
    a: &Answer,
    token_env: &str,
    now_epoch: u64,
) -> SinkError {
    let status = a.status.as_u16();
    let header = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let message = message_of(&a.json())
        .unwrap_or_else(|| String::from_utf8_lossy(&a.body).chars().take(300).collect());
    let remaining_zero =
        ["x-ratelimit-remaining", "ratelimit-remaining"].iter().any(|h| header(h) == Some("0"));
    let retry_after =
        header("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs);
    if status == 429 || (status == 403 && (remaining_zero || retry_after.is_some())) {
        let reset = ["x-ratelimit-reset", "ratelimit-reset"]
            .iter()
            .find_map(|h| header(h).and_then(|v| v.parse::<u64>().ok()))
            .map(|t| Duration::from_secs(t.saturating_sub(now_epoch)));
        let retry_after = retry_after.or(reset).unwrap_or(Duration::from_secs(60));
        return SinkError::RateLimited { provider, what, status, retry_after };
    }
    match status {
        401 => SinkError::Unauthorized { provider, what, message, token_env: token_env.to_owned() },
        403 => SinkError::Forbidden { provider, what, message },
        404 => SinkError::NotFound { provider, what, message },
        400..=499 => SinkError::Invalid { provider, what, status, message },
        _ => SinkError::Transient { provider, what, message: format!("HTTP {status}: {message}") },
    }
}

/// The message of a GitHub (`message` + `errors[]`) or GitLab (`message` string or object,
/// `error`) error body.
fn message_of(v: &serde_json::Value) -> Option<String> {
    let mut m = match v.get("message").or_else(|| v.get("error")) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other @ serde_json::Value::Object(_)) => other.to_string(),
        _ => return None,
    };
    if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| match (e.get("field"), e.get("code"), e.get("message")) {
                (_, _, Some(msg)) if msg.is_string() => msg.as_str().unwrap_or_default().to_owned(),
                (Some(f), Some(c), _) => {
                    format!("{}: {}", f.as_str().unwrap_or("?"), c.as_str().unwrap_or("?"))
                }
                _ => e.to_string(),
            })
            .collect();
        if !parts.is_empty() {
            m = format!("{m} ({})", parts.join("; "));
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn a_403_is_a_rate_limit_only_when_the_headers_say_so() {
        let limited = answer(
            403,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1060")],
            "{\"message\":\"API rate limit exceeded\"}",
        );
        match classify("github", "GET /x".into(), &limited, "T", 1000) {
            SinkError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(60))
            }
            e => panic!("{e}"),
        }
        let secondary = answer(403, &[("retry-after", "7")], "{}");
        assert_eq!(
            classify("github", "x".into(), &secondary, "T", 0).retry_after(),
            Some(Duration::from_secs(7))
        );
        let perm = answer(
            403,
            &[("x-ratelimit-remaining", "4999")],
            "{\"message\":\"Resource not accessible by integration\"}",
        );
        let e = classify("github", "x".into(), &perm, "T", 0);
        assert!(matches!(e, SinkError::Forbidden { .. }) && e.retry_after().is_none(), "{e}");
        assert!(e.to_string().contains("Resource not accessible"), "{e}");
    }

    #[test]
    fn validation_errors_name_the_field_and_5xx_is_transient() {
        let a = answer(
            422,
            &[],
            r#"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"}]}"#,
        );
        let e = classify("github", "POST /repos/o/r/issues".into(), &a, "T", 0);
        assert!(e.to_string().contains("title: missing_field"), "{e}");
        assert!(e.retry_after().is_none());
        let a = answer(502, &[], "<html>bad gateway</html>");
        assert_eq!(classify("gitlab", "x".into(), &a, "T", 0).retry_after(), Some(Duration::ZERO));
        let a = answer(401, &[], r#"{"message":"401 Unauthorized"}"#);
        let e = classify("gitlab", "x".into(), &a, "GITLAB_TOKEN", 0);
        assert!(e.to_string().contains("$GITLAB_TOKEN"), "{e}");
    }

    #[test]
    fn messages_never_carry_the_query() {
        assert_eq!(
            path_of("https://h:1/api/v4/projects/1/issues?private_token=s"),
            "/api/v4/projects/1/issues"
        );
        assert_eq!(path_of("http://h"), "/");
    }
}
