//! The analysis input: one compact [`Call`] per exchange, sorted by start, with endpoints and
//! callers interned. About 70 bytes per exchange (ids in one arena), so a million-exchange capture
//! fits in well under 100 MB; bodies are reduced to a digest while reading.
//!
//! Built per reader thread ([`CaptureBuilder`]) and merged, like [`crate::Stats`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use af_snapshot::{CallerSpec, Exchange, ExchangeId, Templater, Timestamp, header};

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A response with status < 400.
    Ok,
    /// A response with status ≥ 400.
    HttpError,
    /// A transport error (no status).
    Transport,
    /// Neither (the capture ended first).
    Incomplete,
}

/// One exchange, reduced to what the detectors use.
#[derive(Clone, Debug)]
pub struct Call {
    /// Request start, ns since the epoch.
    pub start: i64,
    /// End (start when unknown), ns.
    pub end: i64,
    /// Same request (method, path, query, request body digest, caller) ⇔ same signature.
    pub sig: u64,
    /// Index into [`Capture::endpoints`].
    pub endpoint: u32,
    /// Index into [`Capture::callers`].
    pub caller: u32,
    /// Status, 0 without a response.
    pub status: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// `Retry-After` of the response, in ms, when it had one (seconds or HTTP date).
    pub retry_after_ms: Option<u32>,
    /// The kind of a transport error (who gave up: the client, or the other side).
    pub transport_kind: Option<af_snapshot::ErrorKind>,
    /// When the upstream had the request and when it had answered, µs after `start`: the
    /// request's phases when the capture kept them (a proxy's own connect and queueing are not
    /// the upstream's), else the time to first byte, else the duration.
    upstream_us: (u32, u32),
    id_at: u32,
    id_len: u16,
}

impl Call {
    /// True for status ≥ 400 and transport errors.
    pub fn is_error(&self) -> bool {
        matches!(self.outcome, Outcome::HttpError | Outcome::Transport)
    }

    /// Duration in ns (0 when unknown).
    pub fn duration(&self) -> i64 {
        self.end - self.start
    }

    /// When the upstream had the request and had answered it, ns: what a limiter in the
    /// upstream saw of the call (see `upstream_us`).
    pub fn upstream(&self) -> (i64, i64) {
        let (a, b) = self.upstream_us;
        (self.start + i64::from(a) * 1000, self.start + i64::from(b) * 1000)
    }
}

/// An endpoint: method, host and path template.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// `GET`, ...
    pub method: String,
    /// Host without default port.
    pub host: String,
    /// Path template.
    pub template: String,
}

impl Endpoint {
    /// `GET /users/{userId}/messages/{id}`: the form metrics select endpoints by.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// Everything the detectors look at.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// Calls sorted by start.
    pub calls: Vec<Call>,
    /// Interned endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Interned callers (`(none)` for requests without a credential).
    pub callers: Vec<String>,
    ids: String,
}

impl Capture {
    /// The exchange id of a call.
    pub fn id(&self, c: &Call) -> ExchangeId {
        let at = c.id_at as usize;
        ExchangeId::new(self.ids.get(at..at + c.id_len as usize).unwrap_or(""))
    }

    /// Indices of each endpoint's calls, in start order: `[endpoint][k]`. One pass; detectors
    /// call it once instead of scanning all calls per group.
    pub fn by_endpoint(&self) -> Vec<Vec<usize>> {
        let mut v = vec![Vec::new(); self.endpoints.len()];
        for (i, c) in self.calls.iter().enumerate() {
            v[c.endpoint as usize].push(i);
        }
        v
    }

    /// For each of `ids`, its shortest prefix (at least 4 characters) that no other exchange
    /// of the capture shares: the form a report cites (`ex:3f2a`).
    pub fn short_ids(&self, ids: &[&str]) -> Vec<String> {
        let mut all: Vec<&str> = self
            .calls
            .iter()
            .map(|c| {
                let at = c.id_at as usize;
                self.ids.get(at..at + c.id_len as usize).unwrap_or("")
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        let common =
            |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        ids.iter()
            .map(|id| {
                let i = all.partition_point(|x| x < id);
                let mut need = 4;
                if i > 0 {
                    need = need.max(common(all[i - 1], id) + 1);
                }
                if let Some(next) = all.get(i + usize::from(all.get(i) == Some(id))) {
                    need = need.max(common(next, id) + 1);
                }
                id.get(..need.min(id.len())).unwrap_or(id).to_owned()
            })
            .collect()
    }

    /// The capture with every endpoint's key mapped to its template by `templater` (endpoints
    /// that map to one template merge), keeping only the calls whose endpoint `keep` selects.
    pub fn retemplate(mut self, templater: &Templater, keep: impl Fn(&Endpoint) -> bool) -> Self {
        let mut ix: HashMap<Endpoint, u32> = HashMap::new();
        let mut endpoints = Vec::new();
        let map: Vec<Option<u32>> = self
            .endpoints
            .iter()
            .map(|e| {
                let e = Endpoint {
                    method: e.method.clone(),
                    host: e.host.clone(),
                    template: templater.template_on(&e.host, &e.template).into_owned(),
                };
                keep(&e).then(|| intern(&mut ix, &mut endpoints, e))
            })
            .collect();
        self.calls.retain_mut(|c| match map[c.endpoint as usize] {
            Some(i) => {
                c.endpoint = i;
                true
            }
            None => false,
        });
        self.endpoints = endpoints;
        self
    }

    /// Earliest start and latest end, ns.
    pub fn span(&self) -> Option<(i64, i64)> {
        let first = self.calls.first()?.start;
        let last = self.calls.iter().map(|c| c.end).max()?;
        Some((first, last))
    }

    /// Builds a capture from exchanges (tests, small inputs).
    pub fn from_exchanges<'a>(
        exchanges: impl IntoIterator<Item = &'a Exchange>,
        templater: &Templater,
        callers: &CallerSpec,
    ) -> Self {
        let mut b = CaptureBuilder::default();
        for e in exchanges {
            b.add(e, templater, callers);
        }
        b.finish()
    }
}

/// Accumulates calls from one reader thread; merge builders, then [`CaptureBuilder::finish`].
#[derive(Debug, Default)]
pub struct CaptureBuilder {
    cap: Capture,
    endpoint_ix: HashMap<Endpoint, u32>,
    caller_ix: HashMap<String, u32>,
    /// Credential header value → caller index: hashing a credential (SHA-256) once per distinct
    /// value instead of once per exchange.
    credential_ix: HashMap<String, u32>,
    last_endpoint: u32,
}

fn intern<K: Hash + Eq + Clone>(ix: &mut HashMap<K, u32>, list: &mut Vec<K>, k: K) -> u32 {
    if let Some(i) = ix.get(&k) {
        return *i;
    }
    let i = list.len() as u32;
    list.push(k.clone());
    ix.insert(k, i);
    i
}

/// `Retry-After: 2` or an HTTP date, relative to `now` (ns), as ms.
fn retry_after_ms(v: &str, now: i64) -> Option<u32> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s >= 0.0).then(|| (s * 1000.0).min(f64::from(u32::MAX)) as u32);
    }
    let t = jiff::fmt::rfc2822::parse(v).ok()?.timestamp().as_nanosecond();
    let ms = (t - i128::from(now)) / 1_000_000;
    Some(ms.clamp(0, i128::from(u32::MAX)) as u32)
}

impl CaptureBuilder {
    /// Adds one exchange, under its template.
    pub fn add(&mut self, ex: &Exchange, templater: &Templater, callers: &CallerSpec) {
        let parts = ex.url_parts();
        let template = templater.template_on(parts.host(), parts.path);
        self.add_keyed(ex, &template, callers);
    }

    /// Adds one exchange under `key`: its template, or a provisional key to be mapped to one
    /// by [`Capture::retemplate`] once the whole capture was read.
    pub fn add_keyed(&mut self, ex: &Exchange, template: &str, callers: &CallerSpec) {
        let parts = ex.url_parts();
        let endpoint = self.endpoint_index(&ex.request.method, parts.host(), template);
        let caller = self.caller_index(ex, callers);
        let start = ex.timing.start.as_nanos();
        let end = ex.timing.end().map_or(start, Timestamp::as_nanos);
        let (status, outcome, retry_after_ms) = match (&ex.response, &ex.error) {
            (Some(r), _) => (
                r.status,
                if r.status >= 400 { Outcome::HttpError } else { Outcome::Ok },
                header(&r.headers, "retry-after").and_then(|v| retry_after_ms(v, end)),
            ),
            (None, Some(_)) => (0, Outcome::Transport, None),
            (None, None) => (0, Outcome::Incomplete, None),
        };
        let transport_kind =
            if ex.response.is_none() { ex.error.as_ref().map(|e| e.kind) } else { None };
        let upstream_us = {
            let t = &ex.timing;
            let us = |ns: u64| u32::try_from(ns / 1000).unwrap_or(u32::MAX);
            let whole = t.duration_ns.unwrap_or(0);
            let (a, b) = match (&t.phases, t.ttfb_ns) {
                (Some(p), _) if p.wait_ns.is_some() => {
                    // HAR: `ssl` is inside `connect`.
                    let pre: u64 =
                        [p.blocked_ns, p.dns_ns, p.connect_ns, p.send_ns].iter().flatten().sum();
                    (pre, pre + p.wait_ns.unwrap_or(0))
                }
                (_, Some(ttfb)) => (0, ttfb),
                _ => (0, whole),
            };
            let b = if whole > 0 { b.min(whole) } else { b };
            (us(a.min(b)), us(b))
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ex.request.method.hash(&mut h);
        parts.path.hash(&mut h);
        parts.query.hash(&mut h);
        ex.request.body.as_ref().map(|b| (b.size, b.digest())).hash(&mut h);
        caller.hash(&mut h);
        let id_at = self.cap.ids.len() as u32;
        let id = ex.id.as_str();
        self.cap.ids.push_str(id);
        self.cap.calls.push(Call {
            start,
            end: end.max(start),
            sig: h.finish(),
            endpoint,
            caller,
            status,
            outcome,
            retry_after_ms,
            transport_kind,
            upstream_us,
            id_at,
            id_len: id.len().min(usize::from(u16::MAX)) as u16,
        });
    }

    fn endpoint_index(&mut self, method: &str, host: &str, template: &str) -> u32 {
        // Consecutive exchanges mostly hit the same endpoint: compare with the last one before
        // building a key to hash.
        if let Some(e) = self.cap.endpoints.get(self.last_endpoint as usize)
            && e.method == method
            && e.host == host
            && e.template == template
        {
            return self.last_endpoint;
        }
        let e = Endpoint {
            method: method.to_owned(),
            host: host.to_owned(),
            template: template.to_owned(),
        };
        self.last_endpoint = intern(&mut self.endpoint_ix, &mut self.cap.endpoints, e);
        self.last_endpoint
    }

    fn caller_index(&mut self, ex: &Exchange, callers: &CallerSpec) -> u32 {
        let credential = callers.credential(ex);
        if let Some(&i) = credential.and_then(|v| self.credential_ix.get(v)) {
            return i;
        }
        let who = callers.caller_of(ex).unwrap_or_else(|| "(none)".to_owned());
        let i = intern(&mut self.caller_ix, &mut self.cap.callers, who);
        if let Some(v) = credential {
            self.credential_ix.insert(v.to_owned(), i);
        }
        i
    }

    /// Adds another builder's calls, re-mapping its endpoints and callers.
    pub fn merge(&mut self, other: CaptureBuilder) {
        let ep_map: Vec<u32> = other
            .cap
            .endpoints
            .into_iter()
            .map(|e| intern(&mut self.endpoint_ix, &mut self.cap.endpoints, e))
            .collect();
        let caller_map: Vec<u32> = other
            .cap
            .callers
            .into_iter()
            .map(|c| intern(&mut self.caller_ix, &mut self.cap.callers, c))
            .collect();
        let offset = self.cap.ids.len() as u32;
        self.cap.ids.push_str(&other.cap.ids);
        self.cap.calls.extend(other.cap.calls.into_iter().map(|mut c| {
            c.endpoint = ep_map[c.endpoint as usize];
            c.caller = caller_map[c.caller as usize];
            c.id_at += offset;
            c
        }));
    }

    /// The capture, calls sorted by start (ties by end).
    pub fn finish(mut self) -> Capture {
        self.cap.calls.sort_by_key(|c| (c.start, c.end));
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_ms("2", 0), Some(2000));
        assert_eq!(retry_after_ms("0.5", 0), Some(500));
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("ts").as_nanosecond() as i64;
        assert_eq!(retry_after_ms("Tue, 14 Nov 2023 22:13:30 GMT", now), Some(10_000));
        assert_eq!(retry_after_ms("soon", 0), None);
    }
}
