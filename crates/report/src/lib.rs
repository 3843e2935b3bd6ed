//! Reports (DESIGN.md §7), rendered from a run's `result.json` by fixed templates: the numbers
//! come from the measurements, never from an engine's prose. Markdown for a merge request,
//! self-contained HTML (inline CSS and SVG charts, no scripts, no network) for a browser.

mod charts;
mod escape;
mod html;
mod markdown;

pub use charts::{Charts, Inputs, Series, charts};
pub use html::html;
pub use markdown::markdown;

use af_agent::WorkResult;
use af_agent::format::{fmt_opt, fmt_values};
use af_measure::MetricSummary;

/// The worst run's value, as text: what the check was decided on (measure computes it), else
/// the max; `not measured` when no run selected a call.
pub(crate) fn worst(m: &MetricSummary) -> String {
    fmt_opt(m.checked.or(m.max))
}

/// The harness driver, when the LLM Planner wrote one: (path, sha256 from the harness, its
/// code as it is on disk now, and whether that still has the digest the runs used).
pub(crate) fn driver(r: &WorkResult) -> Option<(String, String, String, bool)> {
    let d = r.plan.harness.as_ref()?.driver.as_ref()?;
    let (path, sha) = (d.path.clone(), d.sha256.clone());
    let code = std::fs::read_to_string(&path).unwrap_or_default();
    let same = af_measure::digest_files(&[std::path::Path::new(&path)]).is_ok_and(|now| now == sha);
    Some((path, sha, code, same))
}

/// Seconds with one decimal.
pub(crate) fn secs(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}

/// The rows of the summary table (reference layout): `(label, text)`.
pub fn summary_rows(r: &WorkResult) -> Vec<(&'static str, String)> {
    let p = &r.plan;
    let total: f64 = r.timings.iter().map(|t| t.ms).sum();
    let phases = r
        .timings
        .iter()
        .map(|t| format!("{} {}", t.name, secs(t.ms)))
        .collect::<Vec<_>>()
        .join(" · ");
    let bug = p
        .finding
        .as_ref()
        .map(|f| format!("{} [{}] {}: {}", f.id, f.severity, f.detector, f.summary))
        .unwrap_or_default();
    let cause = p
        .sites
        .first()
        .map(|s| {
            format!(
                "{} at {}:{} — {}",
                s.site.description,
                s.site.file,
                s.site.line,
                s.reasons.join("; ")
            )
        })
        .unwrap_or_else(|| "no code site localized".into());
    let repro = p
        .baseline
        .as_ref()
        .and_then(|b| b.primary())
        .map(|m| {
            format!(
                "{} {} violated on today's code: [{}] over {} runs (harness {})",
                m.metric,
                m.expect.clone().unwrap_or_default(),
                fmt_values(m),
                m.values.len(),
                p.harness_hash.as_deref().map_or("", |h| h.get(..12).unwrap_or(h))
            )
        })
        .unwrap_or_default();
    let approach = r
        .shown_attempt()
        .map(|a| {
            format!(
                "{} fix of {} at {}:{} with bound {} (files: {})",
                p.fix_kind.map_or("", |k| k.as_str()),
                a.site.pattern,
                a.site.file,
                a.site.line,
                p.bound.unwrap_or(0),
                a.files.join(", ")
            )
        })
        .unwrap_or_else(|| "no codemod applied".into());
    let confirm =
        match r.chosen_attempt().and_then(|a| a.confirm.as_ref()).and_then(|c| c.primary()) {
            Some(m) => format!(
                "{} {} met: [{}] over {} runs on the identical harness",
                m.metric,
                m.expect.clone().unwrap_or_default(),
                fmt_values(m),
                m.values.len()
            ),
            None => r.verdict.clone(),
        };
    let mut rows = vec![
        ("Phase timings", format!("{} total — {phases}", secs(total))),
        ("Bug identified", bug),
        ("Root-cause hypothesis", cause),
        ("Reproduce harness result", repro),
        ("Fix approach", approach),
        ("Confirm result", confirm),
    ];
    if !p.skipped.is_empty() {
        let passed: Vec<String> =
            p.skipped.iter().map(|s| format!("{} ({}): {}", s.id, s.detector, s.reason)).collect();
        rows.push(("Findings passed over", passed.join("; ")));
    }
    if let Some(e) = exits(r) {
        rows.push(("Program exits", e));
    }
    if let Some(u) = usage(r) {
        rows.push(("Model usage", u));
    }
    rows
}

/// The program's exit codes on the baseline and confirm runs, when any run did not exit 0: a
/// baseline that fails *because of the bug* is evidence, and the reader should see that the
/// fixed program exits cleanly.
fn exits(r: &WorkResult) -> Option<String> {
    fn codes(runs: &[af_measure::RunResult]) -> String {
        runs.iter()
            .map(|r| r.exit_code.map_or_else(|| "signal".to_owned(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }
    let base = r.plan.baseline.as_ref()?;
    let confirm = r.chosen_attempt().and_then(|a| a.confirm.as_ref());
    let nonzero = |runs: &[af_measure::RunResult]| runs.iter().any(|x| x.exit_code != Some(0));
    if !nonzero(&base.runs) && !confirm.is_some_and(|c| nonzero(&c.runs)) {
        return None;
    }
    let mut text = format!("baseline runs exited [{}]", codes(&base.runs));
    if let Some(c) = confirm {
        text.push_str(&format!(", confirm runs [{}]", codes(&c.runs)));
    }
    Some(text)
}

/// Tokens per phase and their cost, for an LLM run: `plan 7200 in / 480 out tokens · work …
/// · $0.0540`. The cost is the provider's or from `--price`, never guessed.
pub fn usage(r: &WorkResult) -> Option<String> {
    let phases: Vec<(&str, af_agent::llm::Usage)> = [("plan", r.plan.usage), ("work", r.usage)]
        .into_iter()
        .filter_map(|(n, u)| Some((n, u?)))
        .collect();
    if phases.is_empty() {
        return None;
    }
    let mut total = af_agent::llm::Usage::default();
    let mut parts = Vec::new();
    for (name, u) in &phases {
        total.add(*u);
        parts.push(format!("{name} {} in / {} out tokens", u.input_tokens, u.output_tokens));
    }
    parts.push(match total.cost_usd {
        Some(c) => format!("${c:.4}"),
        None => "cost not known (the provider reports none; pass --price IN/OUT)".into(),
    });
    Some(parts.join(" · "))
}
