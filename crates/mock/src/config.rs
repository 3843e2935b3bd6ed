//! How the mock behaves: unmatched requests, recorded failures, latency, emulated limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to do with a request no recording matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// 404 with a body naming the nearest recorded signatures.
    #[default]
    #[serde(rename = "404")]
    NotFound,
    /// Serve the nearest recorded endpoint's response.
    Nearest,
    /// 599 and a loud journal entry; `af measure` fails the run.
    Fail,
}

/// What to do with recorded error responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failures {
    /// Serve them as recorded, in order.
    Replay,
    /// Serve a successful recording of the same signature or template instead, when one exists
    /// (the measuring default: client retries must not distort the workload).
    #[default]
    Skip,
}

/// How long responses take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum Latency {
    /// As recorded.
    #[default]
    Recorded,
    /// At once.
    None,
    /// Always this long (ms).
    Fixed(f64),
    /// Recorded × factor.
    Scale(f64),
}

impl std::str::FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "recorded" => Ok(Self::Recorded),
            None if s == "none" => Ok(Self::None),
            Some(("fixed", d)) => parse_ms(d).map(Self::Fixed),
            Some(("scale", f)) => match f.parse::<f64>() {
                Ok(v) if v >= 0.0 && v.is_finite() => Ok(Self::Scale(v)),
                _ => Err(format!("scale:{f}: expected a factor ≥ 0, e.g. scale:0.5")),
            },
            _ => Err(format!("latency {s:?}: use recorded, none, fixed:20ms or scale:0.5")),
        }
    }
}

fn parse_ms(d: &str) -> Result<f64, String> {
    let d = d.trim();
    let (num, scale) = if let Some(n) = d.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = d.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (d, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v * scale),
        _ => Err(format!("{d:?} is not a duration like 20ms or 1.5s")),
    }
}

impl Latency {
    /// The delay for a response recorded as taking `recorded_ns`.
    pub fn delay(self, recorded_ns: u64) -> Duration {
        match self {
            Self::Recorded => Duration::from_nanos(recorded_ns),
            Self::None => Duration::ZERO,
            Self::Fixed(ms) => Duration::from_secs_f64(ms / 1000.0),
            Self::Scale(f) => Duration::from_secs_f64(recorded_ns as f64 * f / 1e9),
        }
    }
}

/// The kind of an emulated limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum LimitKind {
    /// At most N requests in flight.
    Inflight(u64),
    /// At most R requests accepted in any 1 s window.
    Rate(f64),
}

/// `ENDPOINT: inflight<=N per caller` or `ENDPOINT: rate<=R/s per caller`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitRule {
    /// Endpoint pattern (`GET /a/{id}`, a template, `*`).
    pub endpoint: String,
    /// The limit.
    pub limit: LimitKind,
    /// Per caller, or for everyone together.
    pub per_caller: bool,
}

impl std::str::FromStr for LimitRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (endpoint, rule) = s.rsplit_once(": ").ok_or_else(|| {
            format!(
                "limit {s:?}: expected 'ENDPOINT: inflight<=N per caller' or 'ENDPOINT: rate<=R/s'"
            )
        })?;
        let rule = rule.trim();
        let (rule, per_caller) = match rule.strip_suffix("per caller") {
            Some(r) => (r.trim(), true),
            None => (rule, false),
        };
        let limit = if let Some(n) = rule.strip_prefix("inflight<=") {
            LimitKind::Inflight(
                n.trim().parse().map_err(|_| format!("limit {s:?}: {n:?} is not a count"))?,
            )
        } else if let Some(r) = rule.strip_prefix("rate<=") {
            let r = r.trim().trim_end_matches("/s");
            match r.parse::<f64>() {
                Ok(v) if v > 0.0 => LimitKind::Rate(v),
                _ => return Err(format!("limit {s:?}: {r:?} is not a rate per second")),
            }
        } else {
            return Err(format!("limit {s:?}: expected inflight<=N or rate<=R/s"));
        };
        Ok(Self { endpoint: endpoint.trim().to_owned(), limit, per_caller })
    }
}

/// Everything that shapes the mock's answers. Serializable: it is part of the harness spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MockConfig {
    /// Unmatched requests.
    pub unmatched: Unmatched,
    /// Recorded failures.
    pub failures: Failures,
    /// Latency.
    pub latency: Latency,
    /// Emulated limits.
    pub limits: Vec<LimitRule>,
    /// Caller key (`auto`, `header:NAME`, `query:NAME`).
    pub caller_key: String,
    /// Extra path templates.
    pub templates: Vec<String>,
    /// Largest request body read; larger ones get 413 (and are journaled as such).
    pub max_body: usize,
}

impl Default for MockConfig {
    /// The measuring defaults: 404 for unmatched requests, skip recorded failures, recorded
    /// latency, no limits, `auto` caller key, 16 MiB bodies.
    fn default() -> Self {
        Self {
            unmatched: Unmatched::default(),
            failures: Failures::default(),
            latency: Latency::default(),
            limits: Vec::new(),
            caller_key: "auto".into(),
            templates: Vec::new(),
            max_body: 16 << 20,
        }
    }
}

impl MockConfig {
    /// The templates a mock of `recorded` serves by, and its journal is read with: this
    /// configuration's explicit ones, then those learned from the recording.
    pub fn templater(
        &self,
        recorded: &[af_snapshot::Exchange],
    ) -> Result<af_snapshot::Templater, String> {
        let patterns = self
            .templates
            .iter()
            .map(|t| af_snapshot::PathPattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(af_snapshot::Templater::new(patterns).learning_from(recorded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_and_latency() {
        let r: LimitRule = "GET /gmail/v1/users/{userId}/messages/{id}: inflight<=20 per caller"
            .parse()
            .expect("parses");
        assert_eq!(r.endpoint, "GET /gmail/v1/users/{userId}/messages/{id}");
        assert_eq!((r.limit, r.per_caller), (LimitKind::Inflight(20), true));
        let r: LimitRule = "*: rate<=25/s".parse().expect("parses");
        assert_eq!((r.limit, r.per_caller), (LimitKind::Rate(25.0), false));
        assert!("GET /x inflight<=2".parse::<LimitRule>().is_err());
        assert!("GET /x: inflight<=many".parse::<LimitRule>().is_err());
        assert_eq!("fixed:20ms".parse::<Latency>(), Ok(Latency::Fixed(20.0)));
        assert_eq!("fixed:1.5s".parse::<Latency>(), Ok(Latency::Fixed(1500.0)));
        assert_eq!("scale:0.5".parse::<Latency>(), Ok(Latency::Scale(0.5)));
        assert!("slow".parse::<Latency>().is_err());
        assert_eq!(Latency::Scale(0.5).delay(20_000_000), Duration::from_millis(10));
    }
}
