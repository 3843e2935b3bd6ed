//! The page at `/`: services and their endpoints with a sparkline of calls and errors per
//! window, open findings, verification results; `/findings/FP` with the finding's timeline and
//! its evidence. Server-rendered HTML with inline SVG: no front-end build step, nothing loaded
//! from elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use crate::Shared;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn time(ns: i64) -> String {
    let s = af_snapshot::Timestamp::from_nanos(ns).to_rfc3339();
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}th{background:#f4f4f4}.n{text-align:right;font-variant-numeric:tabular-nums}.high{color:#b00020;font-weight:600}.medium{color:#a15c00}code{font-size:12px}h1 code{font-size:22px}.verified{color:#1b7f3b;font-weight:600}.regressed{color:#b00020;font-weight:600}.inconclusive{color:#777;font-weight:600}";

/// Calls (grey) and errors (red) per window as inline SVG bars: one bar per window, so even a
/// single window shows.
pub fn sparkline(calls: &[f64], errors: &[f64], w: f64, h: f64) -> String {
    let max = calls.iter().chain(errors).copied().fold(1.0_f64, f64::max);
    let n = calls.len().max(1) as f64;
    let bw = (w / n).min(12.0);
    let mut bars = String::new();
    for (i, (c, e)) in calls.iter().zip(errors).enumerate() {
        let x = i as f64 * bw;
        let hc = (c / max * (h - 1.0)).max(if *c > 0.0 { 1.0 } else { 0.0 });
        let he = (e / max * (h - 1.0)).max(if *e > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            bars,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hc:.1}\" fill=\"#bbb\"/><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{he:.1}\" fill=\"#d00\"/>",
            h - hc,
            (bw - 1.0).max(1.0),
            h - he,
            (bw - 1.0).max(1.0)
        );
    }
    format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>calls (grey) and errors (red) per window, max {max}</title>{bars}</svg>"
    )
}

/// A finding's timeline: its metric per window as bars (red where it broke `threshold`), the
/// threshold as a dashed line, windows it was seen in marked below.
pub fn timeline(
    values: &[Option<f64>],
    threshold: Option<f64>,
    holds: &dyn Fn(f64) -> bool,
    seen: &[bool],
) -> String {
    let (w, h, pad) = (720.0_f64, 160.0_f64, 24.0_f64);
    let max = values.iter().flatten().copied().chain(threshold).fold(1.0_f64, f64::max) * 1.1;
    let n = values.len().max(1) as f64;
    let bw = ((w - 40.0) / n).min(40.0);
    let y = |v: f64| h - pad - v / max * (h - 2.0 * pad);
    let mut svg = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = 40.0 + i as f64 * bw;
        if let Some(v) = v {
            let colour = if holds(*v) { "#888" } else { "#d00" };
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{v}</title></rect>",
                y(*v),
                (bw - 2.0).max(1.0),
                (h - pad - y(*v)).max(1.0)
            );
        }
        if seen.get(i).copied().unwrap_or(false) {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#d00\"/>",
                x + bw / 2.0 - 1.0,
                h - pad / 2.0
            );
        }
    }
    if let Some(t) = threshold {
        let _ = write!(
            svg,
            "<line x1=\"36\" x2=\"{w}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#1b7f3b\" stroke-dasharray=\"4 3\"/><text x=\"0\" y=\"{1:.1}\" font-size=\"11\" fill=\"#1b7f3b\">{t}</text>",
            y(t),
            y(t) + 4.0
        );
    }
    let _ = write!(svg, "<text x=\"0\" y=\"{:.1}\" font-size=\"11\">{:.0}</text>", pad, max / 1.1);
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>the finding's metric per window; dashed: the bound a fix must meet; dots: windows it was seen in</title>{svg}</svg>"
    )
}

fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — af serve</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    ))
    .into_response()
}

/// `/`.
pub async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let l = &shared.ledger;
    let mut b = String::from("<h1>af serve</h1>");
    let _ = write!(
        b,
        "<p>{} records received, {} windows analysed, backlog {}.</p>",
        shared.metrics.received_total(),
        shared.metrics.windows.load(std::sync::atomic::Ordering::Relaxed),
        shared.metrics.backlog.load(std::sync::atomic::Ordering::Relaxed)
    );
    b.push_str("<h2>Services</h2>");
    for s in l.services().await.unwrap_or_default() {
        let series = l.endpoint_series(&s, 5000).await.unwrap_or_default();
        let windows: Vec<i64> = series
            .iter()
            .map(|(w, _)| *w)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut by: BTreeMap<String, BTreeMap<i64, (i64, i64)>> = BTreeMap::new();
        for (w, e) in &series {
            by.entry(e.endpoint.clone()).or_default().insert(*w, (e.calls, e.errors));
        }
        let _ = write!(
            b,
            "<h3>{}</h3><table><tr><th>endpoint</th><th class=n>calls</th><th class=n>errors</th><th>per window</th></tr>",
            esc(&s)
        );
        for (ep, per) in &by {
            let calls: Vec<f64> =
                windows.iter().map(|w| per.get(w).map_or(0.0, |c| c.0 as f64)).collect();
            let errors: Vec<f64> =
                windows.iter().map(|w| per.get(w).map_or(0.0, |c| c.1 as f64)).collect();
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
                esc(ep),
                calls.iter().sum::<f64>(),
                errors.iter().sum::<f64>(),
                sparkline(&calls, &errors, 160.0, 24.0)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Findings</h2><table><tr><th>fingerprint</th><th>state</th><th>severity</th><th>kind</th><th>service</th><th>endpoint</th><th class=n>windows</th><th>last seen</th></tr>");
    for f in l.findings(None, None).await.unwrap_or_default() {
        let _ = write!(
            b,
            "<tr><td><a class=\"finding\" href=\"/findings/{fp}\"><code>{fp}</code></a></td><td>{}</td><td class=\"{sev}\">{sev}</td><td>{}</td><td>{}</td><td><code>{} {}</code></td><td class=n>{}</td><td>{}</td></tr>",
            f.state.as_str(),
            esc(&f.kind),
            esc(&f.service),
            esc(&f.method),
            esc(&f.template),
            f.occurrences,
            time(f.last_seen),
            fp = esc(&f.fingerprint),
            sev = esc(&f.severity),
        );
    }
    b.push_str("</table><h2>Verifications</h2><table><tr><th>fingerprint</th><th>outcome</th><th>why</th></tr>");
    for (fp, _, outcome, report) in l.verifications(50).await.unwrap_or_default() {
        let _ = write!(
            b,
            "<tr><td><a href=\"/findings/{fp}\"><code>{fp}</code></a></td><td class=\"{o}\">{o}</td><td>{}</td></tr>",
            esc(report.get("reason").and_then(|r| r.as_str()).unwrap_or("")),
            fp = esc(&fp),
            o = esc(&outcome)
        );
    }
    b.push_str("</table>");
    runs_table(&shared, None, &mut b).await;
    page("af serve", &b)
}

/// The runs (of one finding, or the latest of all) with their state, the rule that made them,
/// their run directory, and what they made (issues, pull requests, comments).
async fn runs_table(shared: &Shared, fingerprint: Option<&str>, b: &mut String) {
    let Some(j) = &shared.cfg.jobs else { return };
    let runs = j.queue.list(None, fingerprint, 50).await.unwrap_or_default();
    let effects = j.queue.effects(fingerprint).await.unwrap_or_default();
    let _ = write!(
        b,
        "<h2>Runs</h2><p>{}</p><table id=\"runs\"><tr><th>run</th><th>kind</th><th>state</th><th class=n>attempts</th><th>why</th><th>finding</th><th>run directory</th><th>made</th></tr>",
        if j.policy.jobs.live {
            "live: pushes and posts"
        } else {
            "dry-run: nothing is pushed or posted (see each run's outbox)"
        }
    );
    for r in &runs {
        let made: Vec<String> = effects
            .iter()
            .filter(|e| e.run_id == r.id)
            .map(|e| {
                if e.url.is_empty() {
                    format!("{} {}", esc(&e.kind), esc(&e.target))
                } else {
                    format!("<a href=\"{}\">{} {}</a>", esc(&e.url), esc(&e.kind), esc(&e.target))
                }
            })
            .collect();
        let _ = write!(
            b,
            "<tr><td><a class=\"run\" href=\"/api/runs/{id}\"><code>{id}</code></a></td><td>{}</td><td class=\"{st}\" title=\"{}\">{st}</td><td class=n>{}/{}</td><td>{}</td><td><a href=\"/findings/{fp}\"><code>{fp}</code></a></td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&r.kind),
            esc(r.error.as_deref().unwrap_or("")),
            r.attempts,
            r.max_attempts,
            esc(&r.cause),
            esc(r.run_dir.as_deref().unwrap_or("")),
            made.join(", "),
            id = esc(&r.id),
            st = esc(&r.status),
            fp = esc(&r.fingerprint),
        );
    }
    b.push_str("</table>");
}

/// `/findings/FP`.
pub async fn finding(State(shared): State<Arc<Shared>>, Path(fp): Path<String>) -> Response {
    let l = &shared.ledger;
    let (f, occ) = match l.finding(&fp).await {
        Ok(x) => x,
        Err(e) => {
            return (
                axum::http::StatusCode::NOT_FOUND,
                page("not found", &format!("<p>{}</p>", esc(&e.to_string()))),
            )
                .into_response();
        }
    };
    let checks = l.checks(&f.fingerprint).await.unwrap_or_default();
    let mut b = format!(
        "<p><a href=\"/\">← all</a></p><h1><code>{}</code></h1><p><b>{}</b> · {} · <span class=\"{sev}\">{sev}</span> · {} on <code>{} {}</code></p><p id=\"summary\">{}</p>",
        esc(&f.fingerprint),
        f.state.as_str(),
        esc(&f.kind),
        esc(&f.service),
        esc(&f.method),
        esc(&f.template),
        esc(&f.summary),
        sev = esc(&f.severity)
    );
    if let Some(m) = &f.metric {
        let _ = write!(b, "<p>Metric a fix must meet: <code>{}</code></p>", esc(m));
    }
    // Timeline: the metric per window (and the endpoint's errors), occurrences marked.
    let values: Vec<Option<f64>> = checks.iter().map(|c| c.value).collect();
    let check = f.metric.as_deref().and_then(|m| m.parse::<af_analyze::Check>().ok());
    let seen_at: std::collections::HashSet<i64> = occ.iter().map(|o| o.window_ns).collect();
    let seen: Vec<bool> = checks.iter().map(|c| seen_at.contains(&c.window_ns)).collect();
    let holds = |v: f64| check.as_ref().is_none_or(|c| c.op.holds(v, c.threshold));
    let _ = write!(
        b,
        "<h2>Timeline</h2><figure id=\"timeline\">{}<figcaption>{} window(s) from {} to {}: the metric per window (red where it breaks the bound), the bound dashed, the windows the finding was seen in dotted</figcaption></figure>",
        timeline(&values, check.as_ref().map(|c| c.threshold), &holds, &seen),
        checks.len(),
        checks.first().map_or("-".into(), |c| time(c.window_ns)),
        checks.last().map_or("-".into(), |c| time(c.window_ns))
    );
    b.push_str("<h2>Evidence</h2>");
    match &f.evidence {
        Some(d) => match l.evidence(d).await.ok().flatten() {
            Some(e) if e.deleted.is_none() => {
                let _ = write!(
                    b,
                    "<p><a id=\"evidence\" href=\"/api/findings/{}/evidence\">{} exchanges ({} bytes)</a>, <code>{}</code>. Reproduce: <code>af fix --finding {} --source .</code></p>",
                    esc(&f.fingerprint),
                    e.exchanges,
                    e.bytes,
                    esc(d),
                    esc(&f.fingerprint)
                );
            }
            _ => {
                let _ =
                    write!(b, "<p>Evidence <code>{}</code> was deleted by retention.</p>", esc(d));
            }
        },
        None => b.push_str("<p>None stored.</p>"),
    }
    b.push_str(
        "<h2>Occurrences</h2><table><tr><th>window</th><th>severity</th><th>summary</th></tr>",
    );
    for o in occ.iter().take(100) {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"{s}\">{s}</td><td>{}</td></tr>",
            time(o.window_ns),
            esc(&o.summary),
            s = esc(&o.severity)
        );
    }
    b.push_str("</table>");
    runs_table(&shared, Some(&f.fingerprint), &mut b).await;
    page(&f.fingerprint, &b)
}
