//! The merge-request description.

use std::fmt::Write;

use af_agent::WorkResult;
use af_agent::format::fmt_values;

use crate::{summary_rows, worst};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown report.
pub fn markdown(r: &WorkResult) -> String {
    let p = &r.plan;
    let mut s = String::new();
    let title = match (&p.finding, r.confirmed) {
        (Some(f), true) => format!(
            "Fix {} on {} (confirmed by af)",
            f.detector,
            f.endpoint.as_deref().unwrap_or("the upstream")
        ),
        (Some(f), false) => format!(
            "{} on {}: fix not confirmed",
            f.detector,
            f.endpoint.as_deref().unwrap_or("the upstream")
        ),
        _ => "af run".into(),
    };
    let _ = writeln!(s, "# {title}\n\n{}\n", r.verdict);
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v) in summary_rows(r) {
        let _ = writeln!(s, "| **{k}** | {} |", cell(&v));
    }
    let _ = writeln!(s, "\n## Metrics: baseline vs confirm (every run)\n");
    let _ = writeln!(
        s,
        "| metric | expect | baseline runs | confirm runs | baseline worst | confirm worst |\n|---|---|---|---|---|---|"
    );
    let confirm = r.shown_attempt().and_then(|a| a.confirm.as_ref());
    if let Some(b) = &p.baseline {
        for (i, m) in b.metrics.iter().enumerate() {
            let c = confirm.and_then(|c| c.metrics.get(i));
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} | {} |",
                cell(&m.metric),
                m.expect.as_deref().unwrap_or("—"),
                fmt_values(m),
                c.map(fmt_values).unwrap_or_else(|| "—".into()),
                worst(m),
                c.map(worst).unwrap_or_else(|| "—".into())
            );
        }
    }
    if let Some(ev) = r.shown_attempt().and_then(|a| a.evaluation.as_ref()) {
        let _ = writeln!(s, "\n## Evaluator\n\n| check | result | evidence |\n|---|---|---|");
        for c in &ev.checks {
            let mark = match c.passed {
                Some(true) => "pass",
                Some(false) => "**FAIL**",
                None => "n/a",
            };
            let _ = writeln!(s, "| {} | {mark} | {} |", c.name, cell(&c.detail));
        }
    }
    if r.attempts.len() > 1 || !r.confirmed {
        let _ = writeln!(s, "\n## Sites tried\n");
        for (i, a) in r.attempts.iter().enumerate() {
            let _ = writeln!(
                s,
                "{}. `{}` at {}:{} — {}",
                i + 1,
                a.site.pattern,
                a.site.file,
                a.site.line,
                a.error.as_deref().unwrap_or("confirmed")
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Harness\n\nHash `{}` (SHA-256 of the canonical spec; baseline and confirm ran the same one).\n",
        p.harness_hash.as_deref().unwrap_or("")
    );
    if let Some(h) = &p.harness {
        let _ =
            writeln!(s, "```json\n{}\n```", serde_json::to_string_pretty(h).unwrap_or_default());
    }
    if let Some((path, sha, code, same)) = crate::driver(r) {
        let note = if same { "" } else { " — **the file has changed since the runs**" };
        let lang = if path.ends_with(".py") { "python" } else { "js" };
        let _ = writeln!(
            s,
            "\n### Harness driver\n\nWritten by the Planner (the project has no program of its own); `{path}`, SHA-256 `{sha}`, part of the hash{note}.\n\n````{lang}\n{}\n````",
            code.trim_end()
        );
    }
    if !r.patch.is_empty() {
        let _ = writeln!(s, "\n## Patch (branch `{}`)\n\n```diff\n{}```", r.branch, r.patch);
    }
    if let Some(t) = r.chosen_attempt().and_then(|a| a.tests.as_ref()) {
        let _ = writeln!(
            s,
            "\n## Tests\n\n`{}` {} in {:.1} s\n\n```\n{}\n```",
            t.command.join(" "),
            t.ended(),
            t.ms / 1000.0,
            t.tail
        );
    }
    let _ = writeln!(s, "\n## Findings in the snapshot\n");
    for f in &p.findings {
        let _ = writeln!(s, "- {}", cell(f));
    }
    let _ = writeln!(s, "\n## Phase timings\n\n| phase | time |\n|---|---|");
    for t in &r.timings {
        let _ = writeln!(s, "| {} | {:.0} ms |", t.name, t.ms);
    }
    let _ = writeln!(
        s,
        "\n_Run `{}` · engine `{}` · every number above was measured by af, not written by a model._",
        p.id, p.engine
    );
    s
}
