//! The HTTP side of an engine: one request per model turn, retried with jittered exponential
//! back-off on 408, 429, 5xx and 529 — never sooner than the provider's `retry-after` — and
//! never on quota or billing errors. Every request and response is kept for the trajectory.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::model::{Message, Reply, ToolSpec};
use super::redact::Redactor;
use super::{anthropic, openai};

/// Which wire format, where, with which key.
#[derive(Clone, Debug)]
pub enum Provider {
    /// OpenAI Chat Completions (`{base}/chat/completions`).
    OpenAi {
        /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8080/v1`.
        base_url: String,
        /// `OPENAI_API_KEY` (local servers often need none).
        key: Option<String>,
    },
    /// Anthropic Messages (`{base}/v1/messages`).
    Anthropic {
        /// e.g. `https://api.anthropic.com`.
        base_url: String,
        /// `ANTHROPIC_API_KEY`.
        key: Option<String>,
    },
}

/// Retries.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (first try included).
    pub max_attempts: u32,
    /// First back-off; doubles each retry, with full jitter.
    pub base: Duration,
    /// Longest back-off (a longer `retry-after` is still honoured).
    pub cap: Duration,
    /// Per-request time-out.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Out of quota, billing, or the key is refused: retrying cannot help.
    #[error("{provider}: HTTP {status}: {message} (quota, billing or key problem; not retried)")]
    Quota {
        /// Provider name.
        provider: &'static str,
        /// Status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// Another HTTP error that is not worth retrying (400, 404, …) or retries ran out.
    #[error("{provider}: HTTP {status} after {attempts} attempt(s): {message}")]
    Http {
        /// Provider name.
        provider: &'static str,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The provider's message.
        message: String,
    },
    /// The connection failed or timed out, on every attempt.
    #[error("{provider}: {message} after {attempts} attempt(s)")]
    Transport {
        /// Provider name.
        provider: &'static str,
        /// Attempts made.
        attempts: u32,
        /// What failed.
        message: String,
    },
    /// A 2xx whose body is not a usable response (truncated, not JSON, wrong shape).
    #[error("{provider}: unusable response ({bytes} bytes): {message}")]
    BadResponse {
        /// Provider name.
        provider: &'static str,
        /// Body size.
        bytes: usize,
        /// What is wrong.
        message: String,
    },
    /// Configuration: unknown engine, missing key, bad URL.
    #[error("{0}")]
    Config(String),
}

/// One request/response pair, for `trajectory.jsonl`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exchanged {
    /// Attempt number within the turn.
    pub attempt: u32,
    /// The body sent (already redacted).
    pub request: Value,
    /// HTTP status (0: no response).
    pub status: u16,
    /// The body received (JSON when it parsed, else the text).
    pub response: Value,
}

/// A configured model.
pub struct Engine {
    /// Where and how.
    pub provider: Provider,
    /// Model name.
    pub model: String,
    /// Completion token limit per turn.
    pub max_tokens: u32,
    /// Retries.
    pub retry: RetryPolicy,
    /// Applied to every request.
    pub redactor: Redactor,
    /// The model has no tool calling: tools go in the prompt, calls come back as fenced blocks.
    pub text_tools: bool,
    /// Prices for the cost of turns whose provider reports none.
    pub price: Option<super::model::Price>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    log: Mutex<Vec<Exchanged>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("model", &self.model).finish_non_exhaustive()
    }
}

impl Engine {
    /// `openai:MODEL` or `anthropic:MODEL` (`openai-text:MODEL` for a server without tool
    /// calling: the text fallback); keys from `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`;
    /// `base_url` overrides the provider's.
    pub fn from_spec(spec: &str, base_url: Option<&str>) -> Result<Self, LlmError> {
        if let Some(rest) = spec.strip_prefix("openai-text:") {
            let mut e = Self::from_spec(&format!("openai:{rest}"), base_url)?;
            e.text_tools = true;
            return Ok(e);
        }
        let (kind, model) =
            spec.split_once(':').filter(|(_, m)| !m.is_empty()).ok_or_else(|| {
                LlmError::Config(format!(
                    "engine {spec:?}: expected openai:MODEL or anthropic:MODEL"
                ))
            })?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let provider = match kind {
            "openai" => Provider::OpenAi {
                base_url: base_url
                    .unwrap_or("https://api.openai.com/v1")
                    .trim_end_matches('/')
                    .to_owned(),
                key: env("OPENAI_API_KEY"),
            },
            "anthropic" => {
                let key = env("ANTHROPIC_API_KEY");
                if key.is_none() && base_url.is_none() {
                    return Err(LlmError::Config("anthropic: set ANTHROPIC_API_KEY".into()));
                }
                Provider::Anthropic {
                    base_url: base_url
                        .unwrap_or("https://api.anthropic.com")
                        .trim_end_matches('/')
                        .to_owned(),
                    key,
                }
            }
            other => {
                return Err(LlmError::Config(format!(
                    "engine {other:?}: expected openai or anthropic"
                )));
            }
        };
        Self::new(provider, model)
    }

    /// An engine for `provider` and `model` with default limits.
    pub fn new(provider: Provider, model: &str) -> Result<Self, LlmError> {
        let tls = af_capture::client_tls(false).map_err(LlmError::Config)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(Self {
            provider,
            model: model.to_owned(),
            max_tokens: 4096,
            retry: RetryPolicy::default(),
            redactor: Redactor::default(),
            text_tools: false,
            price: None,
            client: Client::builder(TokioExecutor::new()).build(connector),
            log: Mutex::new(Vec::new()),
        })
    }

    fn name(&self) -> &'static str {
        match self.provider {
            Provider::OpenAi { .. } => "openai",
            Provider::Anthropic { .. } => "anthropic",
        }
    }

    /// Every request and response so far.
    pub fn exchanged(&self) -> Vec<Exchanged> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// One model turn: the conversation (redacted here) and the tools offered.
    pub async fn turn(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Reply, LlmError> {
        let mut reply = if self.text_tools {
            let turn = messages.len();
            let as_text = super::text_tools::to_text(messages, tools);
            Box::pin(self.send(&as_text, &[])).await.map(|r| super::text_tools::extract(r, turn))
        } else {
            self.send(messages, tools).await
        }?;
        // The provider's own figure wins; prices given by the user fill in.
        if reply.usage.cost_usd.is_none() {
            reply.usage.cost_usd = self.price.map(|p| p.cost(&reply.usage));
        }
        Ok(reply)
    }

    async fn send(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Reply, LlmError> {
        let messages = self.redactor.messages(messages);
        let (url, body) = match &self.provider {
            Provider::OpenAi { base_url, .. } => (
                format!("{base_url}/chat/completions"),
                openai::request(&self.model, self.max_tokens, &messages, tools),
            ),
            Provider::Anthropic { base_url, .. } => (
                format!("{base_url}/v1/messages"),
                anthropic::request(&self.model, self.max_tokens, &messages, tools),
            ),
        };
        let bytes =
            Bytes::from(serde_json::to_vec(&body).map_err(|e| LlmError::Config(e.to_string()))?);
        let provider = self.name();
        let mut rng = Jitter::seeded();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome =
                tokio::time::timeout(self.retry.timeout, self.post(&url, bytes.clone())).await;
            let (status, retry_after, text) = match outcome {
                Ok(Ok(r)) => r,
                Ok(Err(_)) | Err(_) if attempt < self.retry.max_attempts => {
                    self.record(attempt, &body, 0, Value::Null);
                    tokio::time::sleep(rng.backoff(&self.retry, attempt, None)).await;
                    continue;
                }
                Ok(Err(message)) => {
                    self.record(attempt, &body, 0, Value::Null);
                    return Err(LlmError::Transport { provider, attempts: attempt, message });
                }
                Err(_) => {
                    self.record(attempt, &body, 0, Value::Null);
                    return Err(LlmError::Transport {
                        provider,
                        attempts: attempt,
                        message: format!("timed out after {:?}", self.retry.timeout),
                    });
                }
            };
            let json: Option<Value> = serde_json::from_str(&text).ok();
            self.record(
                attempt,
                &body,
                status,
                json.clone().unwrap_or_else(|| Value::String(text.clone())),
            );
            if (200..300).contains(&status) {
                let Some(json) = json else {
                    return Err(LlmError::BadResponse {
                        provider,
                        bytes: text.len(),
                        message: "the body is not complete JSON (truncated?)".into(),
                    });
                };
                let parsed = match &self.provider {
                    Provider::OpenAi { .. } => openai::parse(&json),
                    Provider::Anthropic { .. } => anthropic::parse(&json),
                };
                return parsed.map_err(|message| LlmError::BadResponse {
                    provider,
                    bytes: text.len(),
                    message,
                });
            }
            let message = json
                .as_ref()
                .and_then(|j| j.get("error"))
                .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(300).collect());
            let quota = json.as_ref().is_some_and(|j| match self.provider {
                Provider::OpenAi { .. } => openai::is_quota(j),
                Provider::Anthropic { .. } => anthropic::is_quota(j),
            }) || status == 401
                || status == 402
                || status == 403;
            if quota {
                return Err(LlmError::Quota { provider, status, message });
            }
            let retryable = matches!(status, 408 | 429 | 500..=599);
            if !retryable || attempt >= self.retry.max_attempts {
                return Err(LlmError::Http { provider, status, attempts: attempt, message });
            }
            tokio::time::sleep(rng.backoff(&self.retry, attempt, retry_after)).await;
        }
    }

    fn record(&self, attempt: u32, request: &Value, status: u16, response: Value) {
        if let Ok(mut l) = self.log.lock() {
            l.push(Exchanged { attempt, request: request.clone(), status, response });
        }
    }

    /// POST; returns (status, retry-after, body text).
    async fn post(
        &self,
        url: &str,
        body: Bytes,
    ) -> Result<(u16, Option<Duration>, String), String> {
        let mut req = http::Request::post(url).header("content-type", "application/json");
        match &self.provider {
            Provider::OpenAi { key, .. } => {
                if let Some(k) = key {
                    req = req.header("authorization", format!("Bearer {k}"));
                }
            }
            Provider::Anthropic { key, .. } => {
                req = req.header("anthropic-version", "2023-06-01");
                if let Some(k) = key {
                    req = req.header("x-api-key", k);
                }
            }
        }
        let req = req.body(Full::new(body)).map_err(|e| format!("bad request to {url}: {e}"))?;
        let resp = self.client.request(req).await.map_err(|e| {
            let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
            format!("{url}: {e} {cause}").trim_end().to_owned()
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: the response body broke off: {e}"))?
            .to_bytes();
        Ok((status, retry_after, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// `retry-after`: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s >= 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    Some(Duration::from_millis(
        u64::try_from(when.as_millisecond() - now.as_millisecond()).unwrap_or(0),
    ))
}

/// Full-jitter back-off (a small xorshift: no need for a random crate here).
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let t = jiff::Timestamp::now().as_nanosecond() as u64;
        Self(t | 1)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Random in [0, min(cap, base·2^(attempt-1))], never less than `retry_after`.
    fn backoff(
        &mut self,
        p: &RetryPolicy,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let exp = p.base.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16)).min(p.cap);
        let jittered = exp.mul_f64(self.unit());
        retry_after.map_or(jittered, |r| r.max(jittered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some_and(|d| d.is_zero()));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_is_jittered_capped_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let mut j = Jitter::seeded();
        for a in 1..10 {
            let d = j.backoff(&p, a, None);
            assert!(d <= p.cap, "{d:?}");
            assert!(j.backoff(&p, a, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        }
    }
}
