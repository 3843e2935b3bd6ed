//! Command-line arguments (clap derive); `///` comments are the help text.

use std::path::PathBuf;

use af_agent::llm::Price;
use af_mock::Latency;
use af_snapshot::CallerSpec;
use clap::{Parser, Subcommand, ValueEnum};

/// Agent Factory: turn captured HTTP traffic into a confirmed fix.
#[derive(Debug, Parser)]
#[command(name = "af", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-endpoint table of a capture: calls, statuses, error rate, latency, time span.
    Inspect(InspectArgs),
    /// Convert a capture between formats (native .jsonl/.jsonl.zst, .har).
    Convert(ConvertArgs),
    /// Import captures (HAR, proxymock RRPair directories or files) into a native snapshot.
    Import(ImportArgs),
    /// Compare a capture from before a change with one from after it; gate CI with `--fail-if`.
    Diff(DiffArgs),
    /// Serve a capture as a mock upstream that journals every arrival.
    Mock(MockArgs),
    /// Run a program against the mock and measure what it does to the upstream.
    Measure(MeasureArgs),
    /// Create (once) and show the local CA, and the variables that make clients trust it.
    Ca(CaArgs),
    /// Record traffic as a proxy: reverse (`--reverse`), forward (`HTTP(S)_PROXY`, CONNECT
    /// intercepted with the local CA), or around a program (`-- CMD…`).
    Record(RecordArgs),
    /// Planner: snapshot → finding → metric and threshold → code sites → measured baseline
    /// (or an abstention with the evidence). Writes `.af/runs/<id>/plan.json`.
    Plan(PlanArgs),
    /// Worker: apply the fix in a git worktree, rerun the identical harness, run the tests,
    /// evaluate; writes result.json, patch.diff, report.md, report.html.
    Work(WorkArgs),
    /// `af plan` then `af work`, with phase timings.
    Fix(FixArgs),
    /// The whole loop on the bundled example (examples/radar), offline, no API key.
    Demo(DemoArgs),
    /// Always on: take live traffic (OTLP logs and traces over HTTP and gRPC, `af record
    /// --push`), find problems per window, keep a ledger of fingerprinted findings with their
    /// evidence; JSON API, Prometheus /metrics and a page at /.
    Serve(ServeArgs),
    /// The findings in af serve's ledger: `ls`, `show FP`.
    Findings(FindingsArgs),
    /// Stop reporting a finding (with a reason, an owner and an expiry).
    Suppress(SuppressArgs),
    /// After a deploy: did the fix work in production? verified (0), regressed (1),
    /// inconclusive (4: too little traffic to tell).
    Verify(VerifyArgs),
    /// Run jobs only (fix, plan, verify, ticket, pr) from the queue af serve fills: leased,
    /// heartbeated, retried; any number of workers may share one database.
    Worker(WorkerArgs),
    /// The jobs: `ls`, `show RUN`, `cancel RUN`, `requeue RUN`, `enqueue` (a job by hand).
    Runs(RunsArgs),
    /// Print the JSON Schema of a machine-readable output.
    #[command(hide = true)]
    Schema(SchemaArgs),
}

/// `af plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// The snapshot showing the bug.
    #[arg(long, required_unless_present = "finding", conflicts_with = "finding")]
    pub snapshot: Option<PathBuf>,
    /// A finding of `af serve` (fingerprint or a unique prefix): the loop runs on its evidence,
    /// the window of traffic it opened with.
    #[arg(long, value_name = "FP")]
    pub finding: Option<String>,
    /// af serve's data directory (for --finding).
    #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
    pub data_dir: PathBuf,
    /// The shared ledger's database (for --finding; `postgres://…`, as af serve's --database).
    #[arg(long, value_name = "URL", env = "AF_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// The code (a directory; a git checkout or not).
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// The program the harness runs against the mock (default: `[run] command` in af.toml).
    #[arg(long, value_name = "CMD")]
    pub run: Option<String>,
    /// Variable set to the mock's base URL (default: `[run] url_env` in af.toml).
    #[arg(long, value_name = "NAME")]
    pub url_env: Option<String>,
    /// A file with the issue text (title and body) naming the problem.
    #[arg(long, value_name = "FILE")]
    pub issue: Option<PathBuf>,
    /// Issue title (instead of --issue).
    #[arg(long)]
    pub title: Option<String>,
    /// Issue body (instead of --issue).
    #[arg(long)]
    pub body: Option<String>,
    /// Harness runs for the baseline (and later the confirm).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Where run directories go (default: SOURCE/.af/runs).
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Run the harness's runs one after another (default: at the same time, each against its
    /// own mock; the choice is part of the harness hash).
    #[arg(long)]
    pub serial: bool,
    /// `builtin` (offline), or an LLM: `openai:MODEL`, `anthropic:MODEL` (the tool still
    /// measures; the model decides which code to blame, and with `af fix` edits it).
    #[arg(long, default_value = "builtin")]
    pub engine: EngineSpec,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Do not copy the program's output to stderr (it is saved per run either way).
    #[arg(long)]
    pub quiet: bool,
    /// Print the plan as JSON (schema: `af schema plan`).
    #[arg(long)]
    pub json: bool,
}

/// `af work`.
#[derive(Debug, clap::Args)]
pub struct WorkArgs {
    /// The plan's run directory (`.af/runs/<id>`).
    pub run_dir: PathBuf,
    /// Try at most this many ranked sites.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: usize,
    /// Do not copy the program's output to stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print result.json (schema: `af schema result`).
    #[arg(long)]
    pub json: bool,
    /// `builtin` (codemods) or an LLM Worker: `openai:MODEL`, `anthropic:MODEL`.
    #[arg(long, default_value = "builtin")]
    pub engine: EngineSpec,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Options of the LLM engines.
#[derive(Debug, Clone, clap::Args)]
pub struct LlmArgs {
    /// The provider's base URL (an OpenAI-compatible server: `http://127.0.0.1:8080/v1`).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Model turns per phase.
    #[arg(long, default_value_t = 40)]
    pub max_steps: u32,
    /// Tokens (input + output, as the provider reports them) per phase.
    #[arg(long, default_value_t = 400_000)]
    pub max_tokens: u64,
    /// Wall time per phase (`15m`, `900s`).
    #[arg(long, default_value = "15m", value_parser = duration)]
    pub max_wall: std::time::Duration,
    /// Prices in US dollars per million input/output tokens (`3/15`), for the cost in
    /// result.json when the provider does not report one. Without it, only tokens are shown.
    #[arg(long, value_name = "IN/OUT")]
    pub price: Option<Price>,
}

/// `af fix`.
#[derive(Debug, clap::Args)]
pub struct FixArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Try at most this many ranked sites.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: usize,
}

/// `af serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the ledger (ledger.db), the segment log and the evidence live.
    #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
    pub data_dir: PathBuf,
    /// OTLP/HTTP (/v1/logs, /v1/traces), /v1/exchanges, the API, /metrics and the page.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318")]
    pub listen: std::net::SocketAddr,
    /// OTLP/gRPC (LogsService, TraceService).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4317")]
    pub grpc_listen: std::net::SocketAddr,
    /// Bearer token required on the API and the intake; without one, only loopback addresses
    /// are allowed.
    #[arg(long, env = "AF_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Window length.
    #[arg(long, default_value = "60s", value_parser = parse_span)]
    pub window: i64,
    /// How long a window waits for late records after its end (event time), and how long a
    /// silent service waits before its open windows close.
    #[arg(long, default_value = "10s", value_parser = parse_span)]
    pub grace: i64,
    /// Bytes of records one service may buffer (open and unanalysed windows); past it the
    /// intake answers 429 / RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub buffer: usize,
    /// Largest request body.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Largest single record.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_record: usize,
    /// Windows analysed at once.
    #[arg(long, default_value_t = 2)]
    pub pool: usize,
    /// Evidence older than this is deleted.
    #[arg(long, default_value = "14d", value_parser = parse_span)]
    pub retention: i64,
    /// Evidence beyond this many bytes in all is deleted, oldest first.
    #[arg(long, default_value_t = 10 << 30, value_name = "BYTES")]
    pub evidence_max_bytes: i64,
    /// Take in HAR/JSONL/proxymock drops from this directory (moved to .af-done/ when taken,
    /// .af-failed/ with a .error file when not readable).
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// The service of dropped captures that name none.
    #[arg(long, value_name = "NAME", default_value = "unknown")]
    pub watch_service: String,
    /// Seed the ledger (baselines, and findings where the traffic has them) from a snapshot at
    /// start: `FILE` or `FILE=SERVICE` (repeatable).
    #[arg(long, value_name = "FILE[=SERVICE]")]
    pub seed: Vec<String>,
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// Run this many jobs at once inside the server (0: none here; run `af worker`s).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub workers: usize,
}

/// Where the jobs are and what governs them (af serve, af worker, af runs).
#[derive(Debug, Clone, clap::Args)]
pub struct JobsArgs {
    /// The policy file: services, repositories, forges, rules, limits, budgets. Without it
    /// af serve queues no jobs.
    #[arg(long = "config", value_name = "AF_TOML", env = "AF_CONFIG")]
    pub config: Option<PathBuf>,
    /// The jobs database: `postgres://…` shared by every machine, or `sqlite://FILE`
    /// (default: jobs.db in the data directory).
    #[arg(long, value_name = "URL", env = "AF_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Push branches and post to the forges for real (default: dry-run, whatever the
    /// policy's `live` says is also honoured).
    #[arg(long)]
    pub live: bool,
}

/// `af worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// af serve's data directory (the ledger, evidence; run directories go in runs/).
    #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// Jobs at once in this process.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub concurrency: usize,
    /// The worker's name (default: host-pid-start).
    #[arg(long)]
    pub name: Option<String>,
}

/// `af runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// af serve's data directory.
    #[arg(
        long,
        value_name = "DIR",
        env = "AF_DATA_DIR",
        default_value = ".af/serve",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The jobs database (as for af worker).
    #[arg(
        long,
        value_name = "URL",
        env = "AF_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database: Option<String>,
    /// JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// ls, show, cancel, requeue, enqueue.
    #[command(subcommand)]
    pub command: RunsCommand,
}

/// `af runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    Ls {
        /// Only this state: queued, running, retrying, succeeded, failed, dead, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only this finding's.
        #[arg(long, value_name = "FP")]
        finding: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One run: its input, outcome, budget spent and the effects it made.
    Show {
        /// Run id (or a unique prefix).
        run: String,
    },
    /// Stop a run: a queued one never starts, a running one is stopped within a second.
    Cancel {
        /// Run id (or a unique prefix).
        run: String,
    },
    /// Put a finished run back in the queue (attempts reset; its effects are found again,
    /// never made twice).
    Requeue {
        /// Run id (or a unique prefix).
        run: String,
    },
    /// Queue a job by hand (the same key twice is one run).
    Enqueue {
        /// plan, fix, verify, ticket, pr, stub.
        #[arg(long)]
        kind: String,
        /// The finding (for stub: any label).
        #[arg(long, value_name = "FP")]
        finding: String,
        /// Its service.
        #[arg(long)]
        service: String,
        /// Input JSON (part of the idempotency key).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Higher runs first.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// Not before this delay (`30s`).
        #[arg(long, value_parser = parse_span)]
        delay: Option<i64>,
        /// Attempts allowed.
        #[arg(long, default_value_t = 5)]
        max_attempts: i64,
        /// Queue this many (input gets `"n": i`), for tests and benchmarks.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
}

/// A duration: `500ms`, `60s`, `5m`, `2h`, `14d`.
pub fn parse_span(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Some(h) = t.strip_suffix('h').filter(|h| !h.ends_with('c')) {
        return h
            .trim()
            .parse::<f64>()
            .map(|v| (v * 3600e9) as i64)
            .map_err(|_| format!("{s:?} is not a duration"));
    }
    if let Some(d) = t.strip_suffix('d') {
        return d
            .trim()
            .parse::<f64>()
            .map(|v| (v * 86_400e9) as i64)
            .map_err(|_| format!("{s:?} is not a duration"));
    }
    af_analyze::parse_duration_ns(t)
}

/// `af findings`.
#[derive(Debug, clap::Args)]
pub struct FindingsArgs {
    /// ls or show.
    #[command(subcommand)]
    pub command: FindingsCommand,
}

/// `af findings ls|show`.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// The findings, most recently seen first.
    Ls {
        /// Only this state (open, fixing, fixed, verified, reopened, suppressed).
        #[arg(long)]
        state: Option<String>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// JSON.
        #[arg(long)]
        json: bool,
        /// af serve's data directory.
        #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
        data_dir: PathBuf,
        /// The shared ledger's database (`postgres://…`, as af serve's --database).
        #[arg(long, value_name = "URL", env = "AF_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
    /// One finding: its state, occurrences, per-window metric and evidence.
    Show {
        /// Fingerprint (or a unique prefix).
        fingerprint: String,
        /// JSON.
        #[arg(long)]
        json: bool,
        /// af serve's data directory.
        #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
        data_dir: PathBuf,
        /// The shared ledger's database (`postgres://…`, as af serve's --database).
        #[arg(long, value_name = "URL", env = "AF_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
}

/// `af suppress`.
#[derive(Debug, clap::Args)]
pub struct SuppressArgs {
    /// Fingerprint (or a unique prefix).
    pub fingerprint: String,
    /// Why it is not to be reported.
    #[arg(long)]
    pub reason: String,
    /// Who decided (default: $USER).
    #[arg(long)]
    pub owner: Option<String>,
    /// Until when (RFC 3339); without it, until lifted.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// af serve's data directory.
    #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
    pub data_dir: PathBuf,
    /// The shared ledger's database (`postgres://…`, as af serve's --database).
    #[arg(long, value_name = "URL", env = "AF_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
}

/// `af verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The finding (fingerprint or a unique prefix); its windows come from the ledger.
    #[arg(required_unless_present = "before")]
    pub fingerprint: Option<String>,
    /// The deploy marker: an RFC 3339 time or a deployed commit (default: the latest deploy
    /// recorded with POST /api/deploys).
    #[arg(long, value_name = "TIME|GIT_SHA")]
    pub since: Option<String>,
    /// Instead of the ledger: a snapshot from before the deploy…
    #[arg(long, requires_all = ["after", "metric"], conflicts_with = "fingerprint")]
    pub before: Option<PathBuf>,
    /// …and one from after it.
    #[arg(long, requires = "before")]
    pub after: Option<PathBuf>,
    /// The check to weigh with --before/--after, e.g.
    /// `peak_inflight{endpoint="GET /a/{id}",per="caller"} <= 10`.
    #[arg(long, requires = "before")]
    pub metric: Option<String>,
    /// JSON on stdout (schema `schemas/verify.schema.json`).
    #[arg(long)]
    pub json: bool,
    /// af serve's data directory.
    #[arg(long, value_name = "DIR", env = "AF_DATA_DIR", default_value = ".af/serve")]
    pub data_dir: PathBuf,
    /// The shared ledger's database (`postgres://…`, as af serve's --database).
    #[arg(long, value_name = "URL", env = "AF_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
}

/// `af demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The example to run (default: the bundled examples/radar).
    #[arg(long, value_name = "DIR")]
    pub example: Option<PathBuf>,
    /// Work in this directory (default: a new temporary directory, kept for the reports).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Show the program's output.
    #[arg(long)]
    pub verbose: bool,
    /// Print the outcome as JSON on stdout (schema `schemas/demo.schema.json`); the steps'
    /// text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// How bad records are handled; shared by every verb that reads captures.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Skip unusable records (and say how many) instead of stopping at the first.
    #[arg(long)]
    pub lenient: bool,
}

/// `af inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Snapshot files or directories (native, HAR, proxymock); formats are detected by content.
    #[arg(required = true, value_name = "SNAPSHOT")]
    pub snapshots: Vec<PathBuf>,
    /// Print JSON (schema: `af schema inspect`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Group rows by endpoint, or by endpoint and caller.
    #[arg(long, value_enum, default_value_t = By::Endpoint)]
    pub by: By,
    /// Only this endpoint: `GET /users/{userId}/messages/{id}`, a template, `*` wildcards.
    #[arg(long, value_name = "PATTERN")]
    pub endpoint: Option<String>,
    /// Only these statuses: `429`, `4xx`, `error` (transport failures), comma-separated.
    #[arg(long, value_name = "LIST")]
    pub status: Option<String>,
    /// Only requests starting at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only requests starting before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Skip the detectors (bursts, limits, retries, fan-out): the table only.
    #[arg(long)]
    pub no_findings: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// How traffic is grouped; shared by `inspect` and `diff`.
#[derive(Debug, clap::Args)]
pub struct AnalysisArgs {
    /// Path template, tried before those learned from the capture (repeatable):
    /// `/repos/{owner}/{repo}`.
    #[arg(long = "template", value_name = "TEMPLATE")]
    pub templates: Vec<String>,
    /// The path templates of an OpenAPI document (3.x or Swagger 2.0, JSON or YAML), after
    /// `--template` and before those learned from the capture (repeatable).
    #[arg(long = "templates-from", value_name = "OPENAPI")]
    pub templates_from: Vec<PathBuf>,
    /// How callers are identified: `auto` (recorded caller, else a hash of the credential),
    /// `header:NAME`, `query:NAME`.
    #[arg(long, default_value = "auto", value_name = "SPEC")]
    pub caller_key: CallerSpec,
    /// Worker threads for reading native snapshots (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub read: ReadArgs,
}

impl AnalysisArgs {
    /// The explicit templates, checked: `--template`s first, then each document's.
    pub fn explicit_templates(
        &self,
    ) -> Result<Vec<af_snapshot::PathPattern>, crate::exit::UsageError> {
        let mut out = Vec::new();
        for t in &self.templates {
            out.push(
                af_snapshot::PathPattern::parse(t)
                    .map_err(|e| crate::exit::UsageError(format!("--template: {e}")))?,
            );
        }
        for doc in &self.templates_from {
            out.extend(
                af_snapshot::templates_from_openapi(doc)
                    .map_err(|e| crate::exit::UsageError(format!("--templates-from: {e}")))?,
            );
        }
        Ok(out)
    }
}

/// `af diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The capture from before the change.
    pub before: PathBuf,
    /// The capture from after it.
    pub after: PathBuf,
    /// Exit 1 when this holds on the AFTER capture (repeatable), e.g.
    /// `--fail-if 'errors{status="429"} > 0'` or `--fail-if 'peak_inflight{per="caller"} > 10'`.
    #[arg(long = "fail-if", value_name = "EXPR")]
    pub fail_if: Vec<String>,
    /// Print JSON (schema: `af schema diff`) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// Row grouping for `af inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One row per method, host and path template.
    Endpoint,
    /// One row per endpoint and caller.
    Caller,
}

/// `af convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Input capture (any readable format).
    pub input: PathBuf,
    /// Output file; format from the extension: `.jsonl`, `.jsonl.zst`, `.har`.
    pub output: PathBuf,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// `af import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Captures to import: HAR files, proxymock RRPair files or directories, native snapshots.
    #[arg(required = true, value_name = "SOURCE")]
    pub inputs: Vec<PathBuf>,
    /// Native snapshot to write (`.jsonl` or `.jsonl.zst`); default: the first input's name
    /// with `.jsonl`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// How the mock answers; shared by `mock` and `measure`.
#[derive(Debug, clap::Args)]
pub struct MockOptions {
    /// Requests no recording matches: `404` (body names the nearest recorded endpoints),
    /// `nearest` (serve the nearest endpoint's response), `fail` (502; `af measure` fails the run).
    #[arg(long, value_name = "MODE", value_enum, default_value = "404")]
    pub unmatched: UnmatchedMode,
    /// Recorded error responses: `replay` them, or `skip` to serve a success of the same request
    /// or endpoint (default for `af measure`, so client retries do not distort the workload).
    #[arg(long, value_name = "MODE", value_enum)]
    pub failures: Option<FailuresMode>,
    /// Response latency, counted from the request's arrival: `recorded`, `none`, `fixed:20ms`,
    /// `scale:0.5` (accurate to ±0.5 ms: the timer ticks every millisecond).
    #[arg(long, default_value = "recorded", value_name = "MODE")]
    pub latency: Latency,
    /// Emulated limit (repeatable): `'GET /a/{id}: inflight<=20 per caller'`, `'*: rate<=25/s'`,
    /// or `auto` for the limits the capture's limit model infers.
    #[arg(long = "limit", value_name = "RULE")]
    pub limits: Vec<String>,
    /// Largest request body read, in bytes (larger get 413 and are journaled).
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Also act as a forward proxy: `CONNECT` tunnels are intercepted with certificates from the
    /// local CA, so programs with hard-coded `https://` hosts reach the mock via `HTTPS_PROXY`.
    #[arg(long)]
    pub proxy: bool,
    /// The local CA's directory (default: `$AF_CA_DIR`, else `~/.config/af/ca`).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// `af mock`.
#[derive(Debug, clap::Args)]
pub struct MockArgs {
    /// Snapshot(s) to serve.
    #[arg(required = true, value_name = "SNAPSHOT")]
    pub snapshots: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Write the arrival journal (a native snapshot) here.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Serve HTTPS (certificate for `localhost`/the requested name from the local CA).
    #[arg(long)]
    pub tls: bool,
    /// Also write every journaled request as a proxymock-style markdown file in this directory
    /// (when the mock stops; needs `--journal`).
    #[arg(long, value_name = "DIR", requires = "journal")]
    pub report_dir: Option<PathBuf>,
    #[command(flatten)]
    pub mock: MockOptions,
}

/// `af measure`.
#[derive(Debug, clap::Args)]
pub struct MeasureArgs {
    /// The capture whose upstream the mock plays.
    #[arg(long, value_name = "SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Environment variable that receives the mock's base URL (`http://127.0.0.1:PORT`).
    #[arg(long, value_name = "NAME")]
    pub url_env: Vec<String>,
    /// Metric to measure (repeatable), DESIGN.md §4 syntax:
    /// `peak_inflight{endpoint="GET /a/{id}",per="caller"}`.
    #[arg(long = "metric", value_name = "METRIC", required = true)]
    pub metrics: Vec<String>,
    /// Expectation per metric, in order (`<= 10`); checked on the worst run.
    #[arg(long = "expect", value_name = "OP NUMBER")]
    pub expect: Vec<String>,
    /// How many times to run the program.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Kill the program's whole process group after this long.
    #[arg(long, default_value = "120s", value_name = "DURATION")]
    pub timeout: String,
    /// Keep credentials (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*API_KEY*`, ...) in the program's
    /// environment; by default they are removed.
    #[arg(long)]
    pub keep_env: bool,
    /// Start all runs at the same time, each against its own mock (recorded in the harness).
    #[arg(long)]
    pub parallel: bool,
    /// Save each run's journal and the program's output here (default: a temporary directory,
    /// removed afterwards unless `--keep`).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Write the result (schema: `af schema measure`) to this file.
    #[arg(long, value_name = "FILE")]
    pub result: Option<PathBuf>,
    /// Print the result JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Do not echo the program's output (it is still saved in the output directory).
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub mock: MockOptions,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `af record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The snapshot to write (`.jsonl` or `.jsonl.zst`), one flushed line per exchange.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Reverse proxy route `LISTEN=UPSTREAM` (repeatable): `127.0.0.1:4143=http://127.0.0.1:8080`.
    #[arg(long = "reverse", value_name = "LISTEN=UPSTREAM")]
    pub reverse: Vec<String>,
    /// Forward-proxy address (used when no `--reverse` is given, or with `--forward`).
    #[arg(long, default_value = "127.0.0.1:4140", value_name = "ADDR")]
    pub listen: String,
    /// Also run the forward proxy when `--reverse` routes are given.
    #[arg(long)]
    pub forward: bool,
    /// Bytes of each body kept in the snapshot (bodies always stream through whole).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Also redact this header's values in the snapshot (repeatable).
    #[arg(long = "redact-header", value_name = "NAME")]
    pub redact_headers: Vec<String>,
    /// Keep Authorization, Cookie, Set-Cookie and API-key values in the snapshot.
    #[arg(long)]
    pub keep_secrets: bool,
    /// Do not verify upstream TLS certificates.
    #[arg(long)]
    pub insecure_upstream: bool,
    /// How callers are identified (hashed before redaction): `auto`, `header:NAME`, `query:NAME`.
    #[arg(long, default_value = "auto", value_name = "SPEC")]
    pub caller_key: CallerSpec,
    /// The local CA's directory (default: `$AF_CA_DIR`, else `~/.config/af/ca`).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Also stream what is recorded into a running `af serve` (its base URL, e.g.
    /// http://127.0.0.1:4318); the token comes from AF_SERVE_TOKEN.
    #[arg(long, value_name = "URL")]
    pub push: Option<String>,
    /// The service the pushed exchanges belong to.
    #[arg(long, value_name = "NAME", default_value = "unknown", requires = "push")]
    pub push_service: String,
    /// Run this program with the proxy and CA variables set, and stop when it exits (af record
    /// then exits with its exit code).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `af ca`.
#[derive(Debug, clap::Args)]
pub struct CaArgs {
    /// The CA's directory (default: `$AF_CA_DIR`, else `~/.config/af/ca`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `af schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Which output.
    #[arg(value_enum)]
    pub which: SchemaName,
}

/// Outputs with a committed schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    /// `af inspect --json`.
    Inspect,
    /// `af diff --json`.
    Diff,
    /// `af measure --json` and `result.json`.
    Measure,
    /// `af plan --json` and `plan.json`.
    Plan,
    /// `af work --json` and a run's `result.json`.
    Result,
    /// `af demo --json`.
    Demo,
    /// `af verify --json`.
    Verify,
}

/// Parses `std::env::args`, exiting 2 with clap's message on usage errors.
pub fn parse() -> Cli {
    Cli::parse()
}

/// `--unmatched`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UnmatchedMode {
    /// 404 with a body naming the nearest recorded endpoints.
    #[value(name = "404")]
    NotFound,
    /// Serve the nearest endpoint's response.
    Nearest,
    /// 599 and a loud journal entry; `af measure` fails the run.
    Fail,
}

impl From<UnmatchedMode> for af_mock::Unmatched {
    fn from(m: UnmatchedMode) -> Self {
        match m {
            UnmatchedMode::NotFound => Self::NotFound,
            UnmatchedMode::Nearest => Self::Nearest,
            UnmatchedMode::Fail => Self::Fail,
        }
    }
}

/// `--failures`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailuresMode {
    /// Serve recorded error responses as they were.
    Replay,
    /// Serve a success of the same request or endpoint instead.
    Skip,
}

/// `--engine`: the builtin engine, or an LLM (`openai:MODEL`, `openai-text:MODEL`,
/// `anthropic:MODEL`), checked when the flags are parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineSpec {
    /// Analysis, tree-sitter localization and codemods: offline.
    Builtin,
    /// An LLM engine, by its spec.
    Llm(String),
}

impl std::str::FromStr for EngineSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "builtin" {
            return Ok(Self::Builtin);
        }
        match s.split_once(':') {
            Some(("openai" | "openai-text" | "anthropic", m)) if !m.is_empty() => {
                Ok(Self::Llm(s.to_owned()))
            }
            _ => Err(format!(
                "{s:?}: expected builtin, openai:MODEL, openai-text:MODEL or anthropic:MODEL"
            )),
        }
    }
}

/// `15m`, `900s`, `250ms`.
fn duration(s: &str) -> Result<std::time::Duration, String> {
    af_measure::parse_timeout_ms(s).map(std::time::Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("af").chain(args.iter().copied()))
    }

    #[test]
    fn inspect_flags() {
        let cli = parse(&[
            "inspect",
            "a.har",
            "dir/",
            "--json",
            "--by",
            "caller",
            "--endpoint",
            "GET /x",
            "--status",
            "4xx,error",
            "--since",
            "2026-11-20T11:15:00Z",
            "--until",
            "2026-11-20T11:16:00Z",
            "--template",
            "/a/{b}",
            "--caller-key",
            "header:X-Tenant",
            "--threads",
            "2",
            "--lenient",
        ])
        .expect("parses");
        let Command::Inspect(a) = cli.command else { panic!("not inspect") };
        assert_eq!(a.snapshots.len(), 2);
        assert!(a.json && a.analysis.read.lenient);
        assert_eq!(a.by, By::Caller);
        assert_eq!(a.endpoint.as_deref(), Some("GET /x"));
        assert_eq!(a.status.as_deref(), Some("4xx,error"));
        assert_eq!(a.analysis.templates, ["/a/{b}"]);
        assert_eq!(a.analysis.threads, Some(2));
        assert_eq!(a.analysis.caller_key, CallerSpec::Header("X-Tenant".into()));
        assert!(parse(&["inspect"]).is_err());
        assert!(parse(&["inspect", "x", "--by", "host"]).is_err());
    }

    #[test]
    fn convert_and_import_flags() {
        let Command::Convert(c) = parse(&["convert", "a.har", "b.jsonl", "--force", "--lenient"])
            .expect("parses")
            .command
        else {
            panic!("not convert")
        };
        assert!(c.force && c.read.lenient);
        assert!(parse(&["convert", "a.har"]).is_err());
        let Command::Import(i) =
            parse(&["import", "d1", "d2", "-o", "x.jsonl"]).expect("parses").command
        else {
            panic!("not import")
        };
        assert_eq!(i.inputs.len(), 2);
        assert_eq!(i.output, Some(PathBuf::from("x.jsonl")));
        assert!(parse(&["schema", "inspect"]).is_ok());
        assert!(parse(&["schema", "diff"]).is_ok());
    }

    #[test]
    fn diff_flags() {
        let Command::Diff(d) = parse(&[
            "diff",
            "before.har",
            "after.jsonl",
            "--fail-if",
            "errors{status=\"429\"} > 0",
            "--fail-if",
            "error_rate > 0.01",
            "--json",
            "--caller-key",
            "header:X-User",
            "--lenient",
        ])
        .expect("parses")
        .command
        else {
            panic!("not diff")
        };
        assert_eq!(d.fail_if.len(), 2);
        assert!(d.json && d.analysis.read.lenient);
        assert!(parse(&["diff", "only-one.har"]).is_err());
    }

    #[test]
    fn mock_and_measure_flags() {
        let Command::Mock(m) = parse(&[
            "mock",
            "cap.har",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--journal",
            "j.jsonl",
            "--unmatched",
            "nearest",
            "--failures",
            "skip",
            "--latency",
            "fixed:20ms",
            "--limit",
            "*: rate<=5/s",
            "--max-body",
            "1024",
            "--caller-key",
            "header:X-User",
            "--template",
            "/a/{b}",
        ])
        .expect("parses")
        .command
        else {
            panic!("not mock")
        };
        assert_eq!((m.host.as_str(), m.port), ("0.0.0.0", 8080));
        assert_eq!(m.mock.unmatched, UnmatchedMode::Nearest);
        assert_eq!(m.mock.failures, Some(FailuresMode::Skip));
        assert_eq!(m.mock.limits, ["*: rate<=5/s"]);
        assert_eq!(m.mock.max_body, 1024);
        assert!(parse(&["mock", "cap.har", "--unmatched", "ignore"]).is_err());

        let Command::Measure(x) = parse(&[
            "measure",
            "--snapshot",
            "cap.har",
            "--url-env",
            "API_URL",
            "--metric",
            "calls",
            "--expect",
            "<= 3",
            "--runs",
            "5",
            "--timeout",
            "30s",
            "--keep-env",
            "--out-dir",
            "out",
            "--result",
            "r.json",
            "--json",
            "--quiet",
            "--",
            "node",
            "sync.js",
            "--flag",
        ])
        .expect("parses")
        .command
        else {
            panic!("not measure")
        };
        assert_eq!(
            x.command,
            ["node", "sync.js", "--flag"],
            "flags after -- belong to the program"
        );
        assert_eq!((x.runs, x.timeout.as_str()), (5, "30s"));
        assert!(x.keep_env && x.json && x.quiet);
        assert!(
            parse(&["measure", "--snapshot", "c.har", "--metric", "calls"]).is_err(),
            "a program is required"
        );
        assert!(parse(&["schema", "measure"]).is_ok());
    }

    /// Values are typed when the flags are parsed: a bad one is a usage error naming the flag,
    /// never a default taken in silence later.
    #[test]
    fn typed_values_are_checked_at_the_edge() {
        for bad in [
            &["plan", "--snapshot", "s.har", "--source", ".", "--engine", "gpt4"][..],
            &["plan", "--snapshot", "s.har", "--source", ".", "--max-wall", "soon"],
            &["plan", "--snapshot", "s.har", "--source", ".", "--price", "cheap"],
            &["inspect", "s.har", "--caller-key", "cookie"],
            &["mock", "s.har", "--latency", "fast"],
            &["mock", "s.har", "--unmatched", "ignore"],
        ] {
            let e = parse(bad).expect_err("refused");
            let flag = bad.iter().rev().nth(1).expect("flag");
            assert!(e.to_string().contains(flag), "{bad:?}: {e}");
        }
        let Command::Plan(p) = parse(&[
            "plan",
            "--snapshot",
            "s.har",
            "--source",
            ".",
            "--engine",
            "anthropic:claude",
            "--max-wall",
            "90s",
            "--price",
            "3/15",
        ])
        .expect("parses")
        .command
        else {
            panic!("not plan")
        };
        assert_eq!(p.engine, EngineSpec::Llm("anthropic:claude".into()));
        assert_eq!(p.llm.max_wall, std::time::Duration::from_secs(90));
        assert!(p.llm.price.is_some());
        let Command::Mock(m) =
            parse(&["mock", "s.har", "--latency", "fixed:20ms"]).expect("parses").command
        else {
            panic!("not mock")
        };
        assert_eq!(m.mock.latency, Latency::Fixed(20.0));
        assert_eq!(m.mock.unmatched, UnmatchedMode::NotFound);
        assert_eq!(m.mock.analysis.caller_key, CallerSpec::Auto);
    }
}
