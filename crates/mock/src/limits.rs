//! Emulated upstream limits: in-flight caps and sliding-window rates, per caller or global.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use af_snapshot::endpoint_matches;

use crate::config::{LimitKind, LimitRule};

#[derive(Debug, Default)]
struct KeyState {
    inflight: u64,
    accepted: VecDeque<Instant>,
}

/// Limit state for all rules and callers.
#[derive(Debug, Default)]
pub struct Limiter {
    rules: Vec<LimitRule>,
    state: Mutex<HashMap<(usize, String), KeyState>>,
}

/// In-flight slots a request holds until it finishes.
#[derive(Debug, Default)]
pub struct Held(Vec<(usize, String)>);

impl Limiter {
    /// A limiter for `rules`.
    pub fn new(rules: Vec<LimitRule>) -> Self {
        Self { rules, state: Mutex::default() }
    }

    /// Admits a request to `method template` from `caller`, or names the rule that rejects it.
    /// Nothing is taken unless every rule admits it.
    pub fn admit(
        &self,
        method: &str,
        template: &str,
        caller: &str,
        now: Instant,
    ) -> Result<Held, &LimitRule> {
        let applicable: Vec<usize> = (0..self.rules.len())
            .filter(|&i| {
                let p = &self.rules[i].endpoint;
                p == "*" || endpoint_matches(p, method, template)
            })
            .collect();
        if applicable.is_empty() {
            return Ok(Held::default());
        }
        let Ok(mut state) = self.state.lock() else { return Ok(Held::default()) };
        let key = |i: usize| {
            (i, if self.rules[i].per_caller { caller.to_owned() } else { String::new() })
        };
        for &i in &applicable {
            let s = state.entry(key(i)).or_default();
            let ok = match self.rules[i].limit {
                LimitKind::Inflight(n) => s.inflight < n,
                LimitKind::Rate(r) => {
                    while s
                        .accepted
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                    {
                        s.accepted.pop_front();
                    }
                    (s.accepted.len() as f64) < r
                }
            };
            if !ok {
                return Err(&self.rules[i]);
            }
        }
        let mut held = Held::default();
        for &i in &applicable {
            let k = key(i);
            let s = state.entry(k.clone()).or_default();
            match self.rules[i].limit {
                LimitKind::Inflight(_) => {
                    s.inflight += 1;
                    held.0.push(k);
                }
                LimitKind::Rate(_) => s.accepted.push_back(now),
            }
        }
        Ok(held)
    }

    /// Gives back the in-flight slots of a finished request.
    pub fn release(&self, held: Held) {
        if held.0.is_empty() {
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            for k in held.0 {
                if let Some(s) = state.get_mut(&k) {
                    s.inflight = s.inflight.saturating_sub(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_per_caller_is_independent_and_released() {
        let l = Limiter::new(vec!["GET /a/{id}: inflight<=2 per caller".parse().expect("rule")]);
        let now = Instant::now();
        let a1 = l.admit("GET", "/a/{id}", "alice", now).expect("1st");
        let _a2 = l.admit("GET", "/a/{id}", "alice", now).expect("2nd");
        assert!(l.admit("GET", "/a/{id}", "alice", now).is_err());
        assert!(l.admit("GET", "/a/{id}", "bob", now).is_ok(), "callers are limited independently");
        assert!(l.admit("GET", "/b", "alice", now).is_ok(), "other endpoints are not limited");
        l.release(a1);
        assert!(l.admit("GET", "/a/{id}", "alice", now).is_ok());
    }

    #[test]
    fn rate_is_a_sliding_second() {
        let l = Limiter::new(vec!["*: rate<=3/s".parse().expect("rule")]);
        let t = Instant::now();
        for k in 0..3 {
            assert!(l.admit("GET", "/x", "c", t + Duration::from_millis(k * 100)).is_ok());
        }
        assert!(
            l.admit("GET", "/x", "d", t + Duration::from_millis(500)).is_err(),
            "global: other callers too"
        );
        assert!(
            l.admit("GET", "/x", "c", t + Duration::from_millis(1000)).is_ok(),
            "the first left the window"
        );
    }
}
