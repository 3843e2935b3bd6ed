//! The machine-readable outputs (`--json`) and their schemas. Each has a committed JSON Schema
//! under `schemas/`; a test validates real output against it and `.ci/run` fails if regenerating
//! the schema changes the committed file.

use af_analyze::{Diff, Finding, StatsTable};
use schemars::JsonSchema;
use serde::Serialize;

/// Identifies the shape of `af inspect --json`; bumped on incompatible changes.
pub const INSPECT_SCHEMA: &str = "af.inspect/1";

/// `af inspect --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InspectOutput {
    /// Always `af.inspect/1` for this shape.
    pub schema: String,
    /// Files read, with their detected formats.
    pub sources: Vec<Source>,
    /// What reading saw besides exchanges.
    pub read: ReadInfo,
    /// Filters applied before counting.
    pub filters: Filters,
    /// The per-endpoint table, totals and span.
    #[serde(flatten)]
    pub table: StatsTable,
    /// Concurrency per endpoint and in total (absent with `--no-findings`).
    pub concurrency: Option<Concurrency>,
    /// What the detectors found, most severe first (empty with `--no-findings`).
    pub findings: Vec<Finding>,
}

/// Reconstructed concurrency.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Concurrency {
    /// Per endpoint, most concurrent first.
    pub endpoints: Vec<af_analyze::concurrency::ConcurrencyRow>,
    /// All exchanges.
    pub total: af_analyze::concurrency::ConcurrencyRow,
}

/// One file read.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Source {
    /// Path as given (or found in a directory).
    pub path: String,
    /// `af-snapshot`, `har`, `proxymock-json`, `proxymock-markdown`, `+zstd` when compressed.
    pub format: String,
}

/// Reading outcome.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadInfo {
    /// Exchanges read (before filters).
    pub exchanges: u64,
    /// Bad records skipped under `--lenient`.
    pub skipped: u64,
    /// Messages of the first skipped records.
    pub errors: Vec<String>,
    /// Files whose last line was incomplete (an interrupted writer); that line is not counted.
    pub truncated_tails: Vec<String>,
    /// Files in directories that are no capture (a recorder's log), with what they looked like.
    pub not_captures: Vec<String>,
    /// Records of protocols other than HTTP (Postgres, AMQP, ...), by protocol: not exchanges.
    pub non_http: std::collections::BTreeMap<String, u64>,
    /// Benign deviations read past (`null` where HAR allows absence), one line per kind.
    pub warnings: Vec<String>,
}

impl ReadInfo {
    /// The JSON form of a read summary.
    pub fn of(s: &af_snapshot::ReadSummary) -> Self {
        Self {
            exchanges: s.exchanges,
            skipped: s.skipped,
            errors: s.errors.iter().map(ToString::to_string).collect(),
            truncated_tails: s.truncated_tails.iter().map(ToString::to_string).collect(),
            not_captures: s
                .not_captures
                .iter()
                .map(|(p, why)| format!("{}: {why}", p.display()))
                .collect(),
            non_http: s.non_http.clone(),
            warnings: s.warnings.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Filters as given.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Filters {
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--status`.
    pub status: Option<String>,
    /// `--since`.
    pub since: Option<String>,
    /// `--until`.
    pub until: Option<String>,
}

/// Identifies the shape of `af diff --json`.
pub const DIFF_SCHEMA: &str = "af.diff/1";

/// `af diff --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiffOutput {
    /// Always `af.diff/1` for this shape.
    pub schema: String,
    /// The before capture.
    pub before: Side,
    /// The after capture.
    pub after: Side,
    /// Per endpoint and total.
    #[serde(flatten)]
    pub diff: Diff,
    /// `--fail-if` expressions, evaluated on both captures; a gate fails when it holds after.
    pub gates: Vec<Gate>,
    /// True when any gate failed (exit code 1).
    pub failed: bool,
}

/// One side of a diff.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Side {
    /// Files read, with formats.
    pub sources: Vec<String>,
    /// Exchanges read.
    pub exchanges: u64,
    /// Bad records skipped under `--lenient`.
    pub skipped: u64,
}

/// A `--fail-if` gate.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Gate {
    /// The expression, canonical form.
    pub expr: String,
    /// The metric on the before capture (for context).
    pub before: f64,
    /// The metric on the after capture.
    pub after: f64,
    /// True when the expression holds on the after capture.
    pub failed: bool,
}

/// Identifies the shape of `af demo --json`.
pub const DEMO_SCHEMA: &str = "af.demo/1";

/// `af demo --json`: the loop's outcome on the bundled example.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DemoOutput {
    /// Always `af.demo/1` for this shape.
    pub schema: String,
    /// The fix was confirmed (exit 0).
    pub confirmed: bool,
    /// One sentence: what happened.
    pub verdict: String,
    /// The copy of the example the loop ran on.
    pub working_copy: String,
    /// The checked metric's values on every baseline and confirm run.
    pub headline: Option<Headline>,
    /// The plan (`plan.json`).
    pub plan: af_agent::Plan,
    /// The work result (`result.json`), when the plan proceeded.
    pub result: Option<af_agent::WorkResult>,
    /// The reports written beside `result.json`.
    pub reports: Option<Reports>,
    /// The post-fix capture recorded with `af record`.
    pub after_capture: Option<String>,
    /// `af diff --json` of the snapshot and the post-fix capture (`schemas/diff.schema.json`).
    pub diff: Option<serde_json::Value>,
}

/// The checked metric before and after.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Headline {
    /// The metric, canonical form.
    pub metric: String,
    /// Its expectation (`<= 10`).
    pub expect: Option<String>,
    /// Every baseline run's value (`null`: not measured).
    pub baseline: Vec<Option<f64>>,
    /// Every confirm run's value, when the fix got that far.
    pub confirm: Vec<Option<f64>>,
    /// The harness hash both used.
    pub harness: Option<String>,
}

/// Report paths.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Reports {
    /// `report.md` (the merge-request description).
    pub markdown: String,
    /// `report.html`.
    pub html: String,
}

fn pretty(schema: &schemars::Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

/// The JSON Schema of `af inspect --json`, pretty-printed with a trailing newline.
pub fn inspect_schema() -> String {
    pretty(&schemars::schema_for!(InspectOutput))
}

/// The JSON Schema of `af diff --json`.
pub fn diff_schema() -> String {
    pretty(&schemars::schema_for!(DiffOutput))
}

/// The JSON Schema of `af measure --json` and its `--result` file.
pub fn measure_schema() -> String {
    pretty(&schemars::schema_for!(af_measure::MeasureResult))
}

/// JSON Schema of `plan.json`.
pub fn plan_schema() -> String {
    pretty(&schemars::schema_for!(af_agent::Plan))
}

/// JSON Schema of `af demo --json`.
pub fn demo_schema() -> String {
    pretty(&schemars::schema_for!(DemoOutput))
}

/// JSON Schema of a run's `result.json`.
pub fn result_schema() -> String {
    pretty(&schemars::schema_for!(af_agent::WorkResult))
}

/// The JSON Schema of `af verify --json`.
pub fn verify_schema() -> String {
    pretty(&schemars::schema_for!(af_ledger::verify::Verification))
}
