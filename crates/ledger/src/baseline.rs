//! Baselines: each endpoint's own normal, learned **only from windows without a finding on
//! that endpoint** (a baseline that learned from the regression would stop seeing it), and the
//! relative detectors that compare a window with it.
//!
//! Per endpoint and window: the error rate, the p95 latency and the peak calls in flight per
//! caller, kept as running mean and variance (Welford), plus pooled calls, errors and throttled
//! answers. The thresholds are argued in `docs/design/0011-serve.md`: at least
//! [`MIN_WINDOWS`] clean windows; an error rate far above the pooled rate (z ≥ [`Z`], at least
//! twice it and [`MIN_ERRORS`] errors); a p95 or peak in-flight at least twice the mean and
//! [`Z`] standard deviations above it (σ floored at a tenth of the mean, so a flat history does
//! not make noise look significant).

use serde::Serialize;

use crate::{EndpointWindow, Ledger, Result, now_ns};

/// Clean windows needed before a baseline judges.
pub const MIN_WINDOWS: i64 = 5;
/// Standard deviations above normal.
pub const Z: f64 = 4.0;
/// Errors needed in the window before an error rate is called high.
pub const MIN_ERRORS: i64 = 5;

/// One endpoint's normal.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Baseline {
    /// `METHOD template`.
    pub endpoint: String,
    /// Clean windows learned from.
    pub windows: i64,
    /// Calls in them.
    pub calls: i64,
    /// Errors in them.
    pub errors: i64,
    /// 429/503 answers in them.
    pub throttled: i64,
    /// Per-window error rate: mean.
    pub rate_mean: f64,
    /// Per-window error rate: sum of squared deviations.
    pub rate_m2: f64,
    /// Windows with a p95.
    pub p95_n: i64,
    /// p95 ms: mean.
    pub p95_mean: f64,
    /// p95: sum of squared deviations.
    pub p95_m2: f64,
    /// Peak in flight per caller: mean.
    pub peak_mean: f64,
    /// Peak in flight: sum of squared deviations.
    pub peak_m2: f64,
}

fn welford(n: i64, mean: &mut f64, m2: &mut f64, x: f64) {
    let d = x - *mean;
    *mean += d / n as f64;
    *m2 += d * (x - *mean);
}

impl Baseline {
    /// Learns from one clean window.
    pub fn learn(&mut self, w: &EndpointWindow) {
        if w.calls == 0 {
            return;
        }
        self.windows += 1;
        self.calls += w.calls;
        self.errors += w.errors;
        self.throttled += w.throttled;
        welford(
            self.windows,
            &mut self.rate_mean,
            &mut self.rate_m2,
            w.errors as f64 / w.calls as f64,
        );
        welford(
            self.windows,
            &mut self.peak_mean,
            &mut self.peak_m2,
            w.peak_inflight_caller as f64,
        );
        if let Some(p) = w.p95_ms {
            self.p95_n += 1;
            welford(self.p95_n, &mut self.p95_mean, &mut self.p95_m2, p);
        }
    }

    fn sd(m2: f64, n: i64, mean: f64) -> f64 {
        let var = if n > 1 { m2 / (n - 1) as f64 } else { 0.0 };
        var.sqrt().max(mean / 10.0)
    }

    /// The relative findings of window `w` against this normal: `(kind, summary, metric)`.
    pub fn judge(&self, w: &EndpointWindow) -> Vec<(&'static str, String, Option<String>)> {
        let mut out = Vec::new();
        if self.windows < MIN_WINDOWS || w.calls == 0 {
            return out;
        }
        let ep = &w.endpoint;
        // Error rate against the pooled rate (Laplace-smoothed: a clean history is not rate 0).
        let p0 = (self.errors as f64 + 1.0) / (self.calls as f64 + 2.0);
        let p = w.errors as f64 / w.calls as f64;
        let z = (p - p0) / (p0 * (1.0 - p0) / w.calls as f64).sqrt();
        if w.errors >= MIN_ERRORS && p >= 2.0 * p0 && z >= Z {
            out.push((
                "error-rate-above-baseline",
                format!(
                    "{ep}: {} of {} calls failed ({:.1}%) against a normal of {:.2}% over {} clean windows (z = {z:.1})",
                    w.errors, w.calls, 100.0 * p, 100.0 * p0, self.windows
                ),
                Some(format!("error_rate{{endpoint=\"{ep}\"}} <= {:.4}", (2.0 * p0).min(1.0))),
            ));
        }
        if let Some(p95) = w.p95_ms.filter(|_| self.p95_n >= MIN_WINDOWS) {
            let sd = Self::sd(self.p95_m2, self.p95_n, self.p95_mean);
            if p95 >= 2.0 * self.p95_mean && p95 >= self.p95_mean + Z * sd {
                out.push((
                    "p95-above-baseline",
                    format!("{ep}: p95 {p95:.1} ms against a normal of {:.1} ms (σ {sd:.1}) over {} clean windows", self.p95_mean, self.p95_n),
                    Some(format!("latency_p95{{endpoint=\"{ep}\"}} <= {:.1}", self.p95_mean + Z * sd)),
                ));
            }
        }
        let sd = Self::sd(self.peak_m2, self.windows, self.peak_mean);
        let peak = w.peak_inflight_caller as f64;
        if peak >= 4.0 && peak >= 2.0 * self.peak_mean && peak >= self.peak_mean + Z * sd {
            let bound = (self.peak_mean + Z * sd).floor().max(1.0);
            out.push((
                "inflight-above-baseline",
                format!(
                    "{ep}: {peak} calls in flight per caller against a normal of {:.1} (σ {sd:.1}) over {} clean windows",
                    self.peak_mean, self.windows
                ),
                Some(format!("peak_inflight{{endpoint=\"{ep}\",per=\"caller\"}} <= {bound}")),
            ));
        }
        out
    }
}

impl Ledger {
    /// The baselines of a service's endpoints.
    pub async fn baselines(&self, service: &str) -> Result<Vec<Baseline>> {
        Ok(sqlx::query_as::<_, Baseline>(
            "SELECT * FROM baselines WHERE service = $1 ORDER BY endpoint",
        )
        .bind(service)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores a baseline.
    pub async fn put_baseline(&self, service: &str, b: &Baseline) -> Result<()> {
        sqlx::query(
            "INSERT INTO baselines (service, endpoint, windows, calls, errors, throttled, rate_mean, rate_m2,
               p95_n, p95_mean, p95_m2, peak_mean, peak_m2, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (service, endpoint) DO UPDATE SET windows = excluded.windows, calls = excluded.calls,
               errors = excluded.errors, throttled = excluded.throttled, rate_mean = excluded.rate_mean,
               rate_m2 = excluded.rate_m2, p95_n = excluded.p95_n, p95_mean = excluded.p95_mean,
               p95_m2 = excluded.p95_m2, peak_mean = excluded.peak_mean, peak_m2 = excluded.peak_m2,
               updated_at = excluded.updated_at",
        )
        .bind(service)
        .bind(&b.endpoint)
        .bind(b.windows)
        .bind(b.calls)
        .bind(b.errors)
        .bind(b.throttled)
        .bind(b.rate_mean)
        .bind(b.rate_m2)
        .bind(b.p95_n)
        .bind(b.p95_mean)
        .bind(b.p95_m2)
        .bind(b.peak_mean)
        .bind(b.peak_m2)
        .bind(now_ns())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(calls: i64, errors: i64, p95: f64, peak: i64) -> EndpointWindow {
        EndpointWindow {
            endpoint: "GET /a/{id}".into(),
            calls,
            errors,
            throttled: errors,
            server_errors: 0,
            p95_ms: Some(p95),
            peak_inflight_caller: peak,
        }
    }

    #[test]
    fn judges_only_with_history_and_only_far_above_it() {
        let mut b = Baseline { endpoint: "GET /a/{id}".into(), ..Baseline::default() };
        let bad = w(200, 60, 400.0, 50);
        for i in 0..MIN_WINDOWS - 1 {
            b.learn(&w(200, i % 2, 40.0 + i as f64, 4 + i % 2));
        }
        assert!(b.judge(&bad).is_empty(), "too little history");
        b.learn(&w(200, 1, 42.0, 5));
        let kinds: Vec<_> = b.judge(&bad).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(
            kinds,
            ["error-rate-above-baseline", "p95-above-baseline", "inflight-above-baseline"]
        );
        // Normal variation is not a finding.
        assert!(b.judge(&w(200, 2, 45.0, 6)).is_empty());
        // Four errors is not a rate to call, whatever the history.
        assert!(b.judge(&w(10, 4, 40.0, 5)).is_empty());
    }
}
