//! `af diff BEFORE AFTER`: the before/after table and CI gates on the after capture.

use std::io::{IsTerminal, Write};

use af_analyze::{Check, Filter, diff};
use anyhow::Context;

use super::common::{Loaded, config, learned, read};
use crate::args::{By, DiffArgs};
use crate::exit::{self, UsageError};
use crate::output::{DIFF_SCHEMA, DiffOutput, Gate, Side};

pub fn run(a: &DiffArgs) -> anyhow::Result<i32> {
    let checks = a
        .fail_if
        .iter()
        .map(|e| e.parse::<Check>().map_err(|m| UsageError(format!("--fail-if: {m}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = config(&a.analysis, By::Endpoint, Filter::default())?;
    let before = read(std::slice::from_ref(&a.before), &cfg, &a.analysis, true)
        .with_context(|| format!("before ({})", a.before.display()))?;
    let after = read(std::slice::from_ref(&a.after), &cfg, &a.analysis, true)
        .with_context(|| format!("after ({})", a.after.display()))?;
    // One set of templates for both sides, learned from both: an endpoint whose ids the
    // after capture has too few of to learn by itself is still the same row.
    let mut paths = before.paths.clone();
    paths.merge(after.paths.clone());
    let cfg = learned(&cfg, &paths);
    let (before, after) = (before.finish(&cfg), after.finish(&cfg));
    // A gate whose selector selects nothing after would hold or fail on nothing.
    for c in &checks {
        c.metric.check_selects(&after.capture).map_err(|e| {
            UsageError(format!("--fail-if: {e} (in the after capture {})", a.after.display()))
        })?;
    }
    let d = diff((&before.table, &before.capture), (&after.table, &after.capture));
    let gates: Vec<Gate> = checks
        .iter()
        .map(|c| {
            let (value, holds) = c.evaluate(&after.capture);
            let (before_value, _) = c.evaluate(&before.capture);
            Gate { expr: c.to_string(), before: before_value, after: value, failed: holds }
        })
        .collect();
    let failed = gates.iter().any(|g| g.failed);
    let side = |l: &Loaded| Side {
        sources: l.summary.files.iter().map(|(p, f)| format!("{} ({f})", p.display())).collect(),
        exchanges: l.summary.exchanges,
        skipped: l.summary.skipped,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = DiffOutput {
            schema: DIFF_SCHEMA.into(),
            before: side(&before),
            after: side(&after),
            diff: d,
            gates,
            failed,
        };
        let mut text = serde_json::to_vec_pretty(&doc)?;
        text.push(b'\n');
        out.write_all(&text)?;
    } else {
        let text = crate::render::diff(&d, &gates, std::io::stdout().is_terminal());
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    super::common::warn_skipped(&before.summary);
    super::common::warn_skipped(&after.summary);
    Ok(if failed { exit::CHECK_FAILED } else { exit::OK })
}
