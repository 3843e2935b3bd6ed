//! The self-contained HTML report: inline CSS and SVG, no scripts, nothing fetched.

use std::fmt::Write;

use af_agent::WorkResult;
use af_agent::format::fmt_values;

use crate::charts::{Charts, svg};
use crate::escape::esc;
use crate::{summary_rows, worst};

/// HTML report.
pub fn html(r: &WorkResult, charts: &Charts) -> String {
    let p = &r.plan;
    let mut s = String::new();
    let status = if r.confirmed { ("confirmed", "#1e8449") } else { ("not confirmed", "#922b21") };
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>af report {}</title><style>\
         body{{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:980px;color:#222;padding:0 1rem}}\
         table{{border-collapse:collapse;width:100%;margin:.6rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}\
         th{{background:#f4f6f7}}pre{{background:#f8f9f9;border:1px solid #ddd;padding:.6rem;overflow:auto;font-size:12px}}\
         .badge{{display:inline-block;color:#fff;border-radius:4px;padding:.1rem .5rem;font-weight:bold}}.fail{{color:#922b21;font-weight:bold}}.pass{{color:#1e8449}}\
         </style></head><body>",
        esc(&p.id)
    );
    let _ = write!(
        s,
        "<h1>{} <span class=\"badge\" style=\"background:{}\">{}</span></h1><p>{}</p>",
        esc(p.finding.as_ref().and_then(|f| f.endpoint.as_deref()).unwrap_or("af run")),
        status.1,
        status.0,
        esc(&r.verdict)
    );
    s.push_str("<table>");
    for (k, v) in summary_rows(r) {
        let _ = write!(s, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    s.push_str("</table><h2>Metrics: baseline vs confirm</h2><table><tr><th>metric</th><th>expect</th><th>baseline runs</th><th>confirm runs</th><th>baseline worst</th><th>confirm worst</th></tr>");
    let confirm = r.shown_attempt().and_then(|a| a.confirm.as_ref());
    if let Some(b) = &p.baseline {
        for (i, m) in b.metrics.iter().enumerate() {
            let c = confirm.and_then(|c| c.metrics.get(i));
            let _ = write!(
                s,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.metric),
                esc(m.expect.as_deref().unwrap_or("—")),
                fmt_values(m),
                c.map(fmt_values).unwrap_or_else(|| "—".into()),
                worst(m),
                c.map(worst).unwrap_or_else(|| "—".into())
            );
        }
    }
    s.push_str("</table>");
    s.push_str("<h2>Charts</h2>");
    if !charts.arrivals.is_empty() {
        s.push_str(&svg(
            "Arrivals per 50 ms at the mock (endpoint)",
            "seconds from the first arrival",
            "arrivals",
            &charts.arrivals,
            None,
        ));
    }
    if !charts.inflight.is_empty() {
        s.push_str(&svg(
            "Calls in flight over time (busiest caller)",
            "seconds from the first arrival",
            "in flight",
            &charts.inflight,
            None,
        ));
    }
    if !charts.timeline.is_empty() {
        s.push_str(&svg(
            "The snapshot: calls and errors over time",
            "seconds from the snapshot's start",
            "per bucket",
            &charts.timeline,
            charts.burst,
        ));
    }
    for n in &charts.notes {
        let _ = write!(s, "<p class=\"fail\">chart input unreadable: {}</p>", esc(n));
    }
    if let Some(ev) = r.shown_attempt().and_then(|a| a.evaluation.as_ref()) {
        s.push_str(
            "<h2>Evaluator</h2><table><tr><th>check</th><th>result</th><th>evidence</th></tr>",
        );
        for c in &ev.checks {
            let (cls, mark) = match c.passed {
                Some(true) => ("pass", "pass"),
                Some(false) => ("fail", "FAIL"),
                None => ("", "n/a"),
            };
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"{cls}\">{mark}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.detail)
            );
        }
        s.push_str("</table>");
    }
    if !r.patch.is_empty() {
        let _ = write!(
            s,
            "<h2>Patch <small>(branch <code>{}</code>)</small></h2><pre>{}</pre>",
            esc(&r.branch),
            esc(&r.patch)
        );
    }
    let _ = write!(
        s,
        "<h2>Harness</h2><p>Hash <code>{}</code> — baseline and confirm ran this exact spec.</p>",
        esc(p.harness_hash.as_deref().unwrap_or(""))
    );
    if let Some(h) = &p.harness {
        let _ =
            write!(s, "<pre>{}</pre>", esc(&serde_json::to_string_pretty(h).unwrap_or_default()));
    }
    if let Some((path, sha, code, same)) = crate::driver(r) {
        let note =
            if same { "" } else { " — <strong>the file has changed since the runs</strong>" };
        let _ = write!(
            s,
            "<h3>Harness driver</h3><p>Written by the Planner (the project has no program of its own); <code>{}</code>, SHA-256 <code>{}</code>, part of the hash{note}.</p><pre>{}</pre>",
            esc(&path),
            esc(&sha),
            esc(&code)
        );
    }
    if let Some(t) = r.chosen_attempt().and_then(|a| a.tests.as_ref()) {
        let _ = write!(
            s,
            "<h2>Tests</h2><p><code>{}</code> {} in {:.1} s</p><pre>{}</pre>",
            esc(&t.command.join(" ")),
            t.ended(),
            t.ms / 1000.0,
            esc(&t.tail)
        );
    }
    s.push_str("<h2>Findings in the snapshot</h2><ul>");
    for f in &p.findings {
        let _ = write!(s, "<li>{}</li>", esc(f));
    }
    s.push_str("</ul><h2>Phase timings</h2><table><tr><th>phase</th><th>ms</th></tr>");
    for t in &r.timings {
        let _ = write!(s, "<tr><td>{}</td><td>{:.0}</td></tr>", esc(&t.name), t.ms);
    }
    let _ = writeln!(
        s,
        "</table><p><small>Run {} · engine {} · rendered by af from result.json; every number was measured, none written by a model.</small></p></body></html>",
        esc(&p.id),
        esc(&p.engine)
    );
    s
}
