//! One module per verb; `dispatch` is the only place that lists them. What several verbs share
//! lives in `common` (reading captures, the mock's options, the CA) and `engine` (running the
//! Planner and Worker of an engine); verbs never borrow from each other.

mod agent;
mod ca;
mod common;
mod convert;
mod demo;
mod diff;
mod engine;
mod inspect;
mod jobs;
mod measure;
mod mock;
mod record;
mod serve;

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
        Command::Serve(a) => serve::serve(&a),
        Command::Findings(a) => serve::findings(&a),
        Command::Suppress(a) => serve::suppress(&a),
        Command::Verify(a) => serve::verify_cmd(&a),
        Command::Worker(a) => jobs::worker(&a),
        Command::Runs(a) => jobs::runs(&a),
        Command::Schema(a) => {
            let text = match a.which {
                SchemaName::Inspect => crate::output::inspect_schema(),
                SchemaName::Diff => crate::output::diff_schema(),
                SchemaName::Measure => crate::output::measure_schema(),
                SchemaName::Plan => crate::output::plan_schema(),
                SchemaName::Result => crate::output::result_schema(),
                SchemaName::Demo => crate::output::demo_schema(),
                SchemaName::Verify => crate::output::verify_schema(),
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(exit::OK)
        }
    }
}
