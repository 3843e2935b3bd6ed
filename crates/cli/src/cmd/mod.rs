//! One module per verb; `dispatch` is the only place that lists them.

mod agent;
mod ca;
mod convert;
mod demo;
mod diff;
mod inspect;
mod measure;
mod mock;
mod record;

use std::io::Write;

use crate::args::{Cli, Command, SchemaName};
use crate::exit;

/// Runs the verb; returns the exit code for outcomes that are not errors.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Inspect(a) => inspect::run(&a),
        Command::Convert(a) => convert::convert(a),
        Command::Import(a) => convert::import(&a),
        Command::Diff(a) => diff::run(&a),
        Command::Mock(a) => mock::run(&a),
        Command::Measure(a) => measure::run(&a),
        Command::Ca(a) => ca::run(&a),
        Command::Record(a) => record::run(&a),
        Command::Plan(a) => agent::plan(&a),
        Command::Work(a) => agent::work(&a),
        Command::Fix(a) => agent::fix(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Schema(a) => {
            let text = match a.which {
                SchemaName::Inspect => crate::output::inspect_schema(),
                SchemaName::Diff => crate::output::diff_schema(),
                SchemaName::Measure => crate::output::measure_schema(),
                SchemaName::Plan => crate::output::plan_schema(),
                SchemaName::Result => crate::output::result_schema(),
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(exit::OK)
        }
    }
}

/// Lenient-mode report on stderr: how many records were skipped and the first reasons.
pub fn warn_skipped(summary: &af_snapshot::ReadSummary) {
    if summary.skipped == 0 {
        return;
    }
    eprintln!(
        "warning: skipped {} bad record{} (--lenient); first:",
        summary.skipped,
        if summary.skipped == 1 { "" } else { "s" }
    );
    for e in summary.errors.iter().take(5) {
        eprintln!("  {e}");
    }
    if summary.skipped > 5 {
        eprintln!("  … and {} more", summary.skipped - 5);
    }
}
