//! Human output: tables for a terminal (or a pipe), with units on every number.

use std::fmt::Write as _;
use std::path::Path;

use af_agent::format::fmt_values;
use af_agent::{Decision, Plan, WorkResult};
use af_analyze::{Counts, Diff, DiffRow, Finding, StatsTable};
use af_snapshot::{ReadSummary, Timestamp};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};

/// A table in our style: wraps to the terminal's width on a TTY, never in a pipe (stable output
/// for scripts and snapshots).
fn new_table(tty: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(if tty {
        ContentArrangement::Dynamic
    } else {
        ContentArrangement::Disabled
    });
    t
}

/// `1.2 ms`, `340 µs`, `2.50 s`.
pub fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 1.0 => format!("{v:.1} ms"),
        Some(v) => format!("{:.0} µs", v * 1000.0),
    }
}

/// `429×28 200×155`, most frequent first; transport errors by kind.
pub fn statuses(c: &Counts) -> String {
    let mut v: Vec<(String, u64)> = c.status.iter().map(|(k, n)| (k.clone(), *n)).collect();
    v.extend(c.transport_errors.iter().map(|(k, n)| (k.clone(), *n)));
    if c.incomplete > 0 {
        v.push(("incomplete".into(), c.incomplete));
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.iter().map(|(k, n)| format!("{k}×{n}")).collect::<Vec<_>>().join(" ")
}

/// A span in the unit that reads best: `16.2 s`, `5 min 21 s`, `3 h 4 min`, `181.6 d`.
pub fn seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 172_800.0 {
        format!("{} h {} min", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

fn pct(rate: f64) -> String {
    if rate == 0.0 {
        "0%".into()
    } else if rate < 0.001 {
        "<0.1%".into()
    } else {
        format!("{:.1}%", rate * 100.0)
    }
}

/// Time of day with ms, or the full timestamp when the capture spans several days.
fn clock(t: Option<Timestamp>, same_day: bool) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let s = t.to_rfc3339();
            if same_day {
                s.get(11..23).unwrap_or(&s).to_owned()
            } else {
                s.get(..23).unwrap_or(&s).replace('T', " ")
            }
        }
    }
}

/// The `af inspect` table and its summary lines.
pub fn inspect(table: &StatsTable, read: &ReadSummary, by_caller: bool, tty: bool) -> String {
    let same_day = match (table.span.start, table.span.end) {
        (Some(s), Some(e)) => s.to_rfc3339().get(..10) == e.to_rfc3339().get(..10),
        _ => true,
    };
    let mut t = new_table(tty);
    let mut header = vec!["endpoint", "host"];
    if by_caller {
        header.push("caller");
    }
    header.extend(["calls", "statuses", "errors", "p50", "p95", "p99", "first", "last"]);
    t.set_header(header);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    let row = |c: &Counts, mut lead: Vec<Cell>| {
        lead.extend([
            right(c.calls.to_string()),
            Cell::new(statuses(c)),
            right(if c.errors == 0 {
                "0".to_owned()
            } else {
                format!("{} ({})", c.errors, pct(c.error_rate))
            }),
            right(ms(c.latency_ms.p50)),
            right(ms(c.latency_ms.p95)),
            right(ms(c.latency_ms.p99)),
            Cell::new(clock(c.first, same_day)),
            Cell::new(clock(c.last, same_day)),
        ]);
        lead
    };
    for e in &table.endpoints {
        let mut lead = vec![Cell::new(&e.endpoint), Cell::new(&e.host)];
        if by_caller {
            lead.push(Cell::new(e.caller.as_deref().unwrap_or("")));
        }
        t.add_row(row(&e.counts, lead));
    }
    let n = distinct_endpoints(table);
    let mut lead = vec![
        Cell::new(format!("total ({n} endpoint{})", if n == 1 { "" } else { "s" })),
        Cell::new(""),
    ];
    if by_caller {
        lead.push(Cell::new(""));
    }
    t.add_row(row(&table.totals, lead));

    let mut out = t.to_string();
    out.push('\n');
    match (table.span.start, table.span.end) {
        (Some(s), Some(e)) => {
            let (s, e) = (s.to_rfc3339(), e.to_rfc3339());
            let end = if same_day {
                e.get(11..23).unwrap_or(&e).to_owned()
            } else {
                e.get(..23).unwrap_or(&e).replace('T', " ")
            };
            out.push_str(&format!(
                "span: {} → {end} UTC ({})\n",
                s.get(..23).unwrap_or(&s).replace('T', " "),
                seconds(table.span.seconds)
            ));
        }
        _ => out.push_str("span: no exchanges selected\n"),
    }
    let formats: Vec<String> = {
        let mut f: Vec<String> = read.files.iter().map(|(_, f)| f.to_string()).collect();
        f.sort();
        f.dedup();
        f
    };
    out.push_str(&format!(
        "read: {} exchange{} from {} file{} ({})",
        read.exchanges,
        if read.exchanges == 1 { "" } else { "s" },
        read.files.len(),
        if read.files.len() == 1 { "" } else { "s" },
        formats.join(", ")
    ));
    if table.filtered_out > 0 {
        out.push_str(&format!(
            "; {} selected by filters, {} left out",
            table.totals.calls, table.filtered_out
        ));
    }
    if read.skipped > 0 {
        out.push_str(&format!(
            "; {} bad record{} skipped (--lenient)",
            read.skipped,
            if read.skipped == 1 { "" } else { "s" }
        ));
    }
    out.push('\n');
    out.push_str(&read_notes(read));
    out
}

/// What reading passed over without it being an error: an interrupted writer's last line,
/// hidden files and files that are no capture in directories, records of other protocols, and
/// benign deviations from a format. Said, never silent.
pub fn read_notes(read: &ReadSummary) -> String {
    let mut out = String::new();
    for loc in &read.truncated_tails {
        out.push_str(&format!(
            "note: {loc}: incomplete last line ignored (was the writer interrupted?)\n"
        ));
    }
    for p in &read.hidden_skipped {
        out.push_str(&format!("note: {}: hidden file not read\n", p.display()));
    }
    for (p, why) in &read.not_captures {
        out.push_str(&format!("note: {}: not a capture ({why}), not read\n", p.display()));
    }
    if !read.non_http.is_empty() {
        let n = read.non_http_total();
        let by: Vec<String> = read.non_http.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(
            "note: {n} record{} of other protocols skipped ({}): af analyses HTTP\n",
            if n == 1 { "" } else { "s" },
            by.join(", ")
        ));
    }
    for w in &read.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

fn distinct_endpoints(t: &StatsTable) -> usize {
    let mut v: Vec<(&str, &str)> =
        t.endpoints.iter().map(|e| (e.endpoint.as_str(), e.host.as_str())).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// Reconstructed concurrency: the most concurrent endpoints and the total.
pub fn concurrency(c: &crate::output::Concurrency, tty: bool) -> String {
    let mut t = new_table(tty);
    t.set_header([
        "endpoint",
        "host",
        "peak in flight",
        "per caller",
        "max starts/50 ms",
        "max starts/1 s",
    ]);
    let right = |v: u64| Cell::new(v).set_alignment(CellAlignment::Right);
    for r in c.endpoints.iter().take(SHOWN_FINDINGS).chain(std::iter::once(&c.total)) {
        t.add_row(vec![
            Cell::new(&r.endpoint),
            Cell::new(&r.host),
            right(r.peak_inflight),
            right(r.peak_inflight_per_caller),
            right(r.max_arrivals_50ms),
            right(r.max_rate_1s),
        ]);
    }
    let more = c.endpoints.len().saturating_sub(SHOWN_FINDINGS);
    let mut out = format!("\nconcurrency:\n{t}\n");
    if more > 0 {
        out.push_str(&format!("  … and {more} more endpoints; all are in --json\n"));
    }
    out
}

/// How many findings the human output lists; the rest are counted (all are in `--json`).
const SHOWN_FINDINGS: usize = 10;

/// Findings under the table: one paragraph each, most severe first.
pub fn findings(
    findings: &[Finding],
    enabled: bool,
    short: &dyn Fn(&[&str]) -> Vec<String>,
) -> String {
    if !enabled {
        return String::new();
    }
    if findings.is_empty() {
        return "\nfindings: none (no error bursts, load-related limits, retry storms or fan-outs)\n".into();
    }
    let mut out = String::from("\nfindings:\n");
    for f in findings.iter().take(SHOWN_FINDINGS) {
        out.push_str(&format!(
            "  {} [{}] {}: {}\n",
            f.id,
            f.severity.as_str(),
            f.detector,
            f.summary
        ));
        if !f.evidence.is_empty() {
            let ids: Vec<&str> = f.evidence.iter().map(String::as_str).collect();
            let cited: Vec<String> = short(&ids).into_iter().map(|p| format!("ex:{p}")).collect();
            out.push_str(&format!("     evidence: {}\n", cited.join(" ")));
        }
    }
    if findings.len() > SHOWN_FINDINGS {
        let rest = &findings[SHOWN_FINDINGS..];
        let mut by: Vec<(&str, usize)> = Vec::new();
        for f in rest {
            match by.iter_mut().find(|(s, _)| *s == f.severity.as_str()) {
                Some(e) => e.1 += 1,
                None => by.push((f.severity.as_str(), 1)),
            }
        }
        let by: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
        out.push_str(&format!(
            "  … and {} more ({}); all are in --json\n",
            rest.len(),
            by.join(", ")
        ));
    }
    out
}

/// `28 → 0 (−28)`.
fn change(b: u64, a: u64) -> String {
    if a == b { format!("{b} → {a}") } else { format!("{b} → {a} ({:+})", a as i64 - b as i64) }
}

/// The `af diff` table and gate results.
pub fn diff(d: &Diff, gates: &[crate::output::Gate], tty: bool) -> String {
    let mut t = new_table(tty);
    t.set_header([
        "endpoint",
        "host",
        "calls",
        "errors by status",
        "error rate",
        "peak in flight/caller",
        "p95",
    ]);
    let add = |t: &mut Table, r: &DiffRow| {
        let by: Vec<String> = r
            .errors_by_status
            .iter()
            .map(|(k, p)| format!("{k}: {}", change(p.before, p.after)))
            .collect();
        t.add_row(vec![
            Cell::new(&r.endpoint),
            Cell::new(&r.host),
            Cell::new(change(r.calls.before, r.calls.after)),
            Cell::new(if by.is_empty() { "-".to_owned() } else { by.join(", ") }),
            Cell::new(format!("{} → {}", pct(r.error_rate.before), pct(r.error_rate.after))),
            Cell::new(change(r.peak_inflight_per_caller.before, r.peak_inflight_per_caller.after)),
            Cell::new(format!("{} → {}", ms(r.latency_p95_ms.before), ms(r.latency_p95_ms.after))),
        ]);
    };
    for r in &d.endpoints {
        add(&mut t, r);
    }
    add(&mut t, &d.totals);
    let mut out = t.to_string();
    out.push('\n');
    for g in gates {
        out.push_str(&format!(
            "gate {}: {} after (was {}) → {}\n",
            g.expr,
            num(g.after),
            num(g.before),
            if g.failed { "FAILED" } else { "ok" }
        ));
    }
    out
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.4}") }
}

fn num3(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// A measured value, or `none` where the metric selected no call (never a 0).
fn opt3(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), num3)
}

/// The `af measure` table: each metric's value in every run, min/median/max and the check.
pub fn measure(r: &af_measure::MeasureResult, tty: bool) -> String {
    let mut t = new_table(tty);
    let mut header = vec!["metric".to_owned()];
    header.extend(r.runs.iter().map(|x| format!("run {}", x.run)));
    header.extend(["min".into(), "median".into(), "max".into(), "expect".into(), "result".into()]);
    t.set_header(header);
    for m in &r.metrics {
        let mut row: Vec<Cell> = vec![Cell::new(&m.metric)];
        row.extend(
            m.values.iter().map(|v| Cell::new(opt3(*v)).set_alignment(CellAlignment::Right)),
        );
        row.extend(
            [opt3(m.min), opt3(m.median), opt3(m.max)]
                .map(|v| Cell::new(v).set_alignment(CellAlignment::Right)),
        );
        row.push(Cell::new(m.expect.as_deref().unwrap_or("-")));
        row.push(Cell::new(match m.passed {
            Some(true) => format!("pass (worst {})", opt3(m.checked)),
            Some(false) => format!("FAIL (worst {})", opt3(m.checked)),
            None => "-".into(),
        }));
        t.add_row(row);
    }
    let mut out = format!("{t}\n");
    for run in &r.runs {
        out.push_str(&format!(
            "run {}: exit {}, {} requests ({} unmatched, {} limited), {:.0} ms\n",
            run.run,
            run.exit_code.map_or_else(|| "killed".to_owned(), |c| c.to_string()),
            run.requests,
            run.misses,
            run.limited,
            run.wall_ms
        ));
    }
    for p in &r.problems {
        out.push_str(&format!("warning: {p}\n"));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&format!(
        "harness {} · {}\n",
        &r.harness_hash[..16],
        if r.passed { "PASSED" } else { "FAILED" }
    ));
    out
}

// ---- plan, work, fix

/// The plan for a person: finding, metric, sites, baseline, decision.
pub fn plan(p: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan {} ({})", p.id, p.run_dir);
    if let Some(f) = &p.finding {
        let _ =
            writeln!(out, "  finding   {} [{}] {}: {}", f.id, f.severity, f.detector, f.summary);
        let _ = writeln!(out, "            chosen because {}", f.why);
    }
    if let Some(m) = &p.metric {
        let _ = writeln!(out, "  metric    {m}");
    }
    for (i, s) in p.sites.iter().take(3).enumerate() {
        let _ = writeln!(
            out,
            "  site {}    {}:{} {} (score {:.1})",
            i + 1,
            s.site.file,
            s.site.line,
            s.site.pattern,
            s.score
        );
        for r in &s.reasons {
            let _ = writeln!(out, "              - {r}");
        }
    }
    if let Some(b) = &p.baseline {
        for m in &b.metrics {
            let _ = writeln!(
                out,
                "  baseline  {} = [{}]{}",
                m.metric,
                fmt_values(m),
                m.expect.as_ref().map(|e| format!(" (expect {e})")).unwrap_or_default()
            );
        }
        let _ = writeln!(out, "  harness   {}", p.harness_hash.as_deref().unwrap_or(""));
        if let Some(d) = p.harness_inputs.as_ref().and_then(|h| h.driver.as_ref()) {
            let _ = writeln!(
                out,
                "  driver    {} (written by the Planner; its digest is in the hash)",
                d.display()
            );
        }
    }
    let what = match p.decision {
        Decision::Proceed => "proceed",
        Decision::Abstain => "ABSTAIN",
        Decision::NoSite => "NO SITE",
    };
    let _ = writeln!(out, "  decision  {what}: {}", p.reason);
    for s in &p.skipped {
        let _ = writeln!(out, "  passed    {} ({}): {}", s.id, s.detector, s.reason);
    }
    if let Some(u) = p.usage {
        let cost = u
            .cost_usd
            .map_or_else(|| "cost not known (--price IN/OUT)".to_owned(), |c| format!("${c:.4}"));
        let _ = writeln!(
            out,
            "  model     {} in / {} out tokens · {cost}",
            u.input_tokens, u.output_tokens
        );
    }
    out
}

/// The work result for a person: both measurements, the Evaluator's checks, verdict, timings.
pub fn work_result(r: &WorkResult, md: &Path, html: &Path) -> String {
    let mut out = String::new();
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["metric", "expect", "baseline runs", "confirm runs"]);
    let confirm = r.shown_attempt().and_then(|a| a.confirm.as_ref());
    if let Some(b) = &r.plan.baseline {
        for (i, m) in b.metrics.iter().enumerate() {
            t.add_row([
                m.metric.clone(),
                m.expect.clone().unwrap_or_else(|| "—".into()),
                fmt_values(m),
                confirm
                    .and_then(|c| c.metrics.get(i))
                    .map(fmt_values)
                    .unwrap_or_else(|| "—".into()),
            ]);
        }
    }
    let _ = writeln!(out, "{t}");
    if let Some(ev) = r.shown_attempt().and_then(|a| a.evaluation.as_ref()) {
        for c in &ev.checks {
            let mark = match c.passed {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "n/a ",
            };
            let _ = writeln!(out, "  [{mark}] {}: {}", c.name, c.detail);
        }
    }
    let _ = writeln!(out, "{}", r.verdict);
    let total: f64 = r.timings.iter().map(|p| p.ms).sum();
    let _ = writeln!(
        out,
        "phases: {} — total {:.1} s",
        r.timings
            .iter()
            .map(|p| format!("{} {:.1} s", p.name, p.ms / 1000.0))
            .collect::<Vec<_>>()
            .join(", "),
        total / 1000.0
    );
    if let Some(u) = af_report::usage(r) {
        let _ = writeln!(out, "model: {u}");
    }
    let _ = writeln!(out, "report: {}\n        {}", md.display(), html.display());
    if r.confirmed {
        let _ = writeln!(out, "branch: {} in {}", r.branch, r.worktree);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_everywhere() {
        assert_eq!(ms(Some(0.25)), "250 µs");
        assert_eq!(ms(Some(12.34)), "12.3 ms");
        assert_eq!(ms(Some(1500.0)), "1.50 s");
        assert_eq!(ms(None), "-");
        assert_eq!(pct(0.1447), "14.5%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(seconds(16.04), "16.0 s");
        assert_eq!(seconds(320.9), "5 min 20 s");
        assert_eq!(seconds(15_693_043.0), "181.6 d");
    }
}
