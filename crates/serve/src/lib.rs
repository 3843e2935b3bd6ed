//! `af-serve`: the always-on half of `af` in one process — `af serve`.
//!
//! Data flow: [`ingest`] (OTLP/HTTP on the HTTP port, OTLP/gRPC on its own, native JSON Lines
//! from `af record --push`) decodes with `af-intake`, admits against a per-service buffer
//! (429 / `RESOURCE_EXHAUSTED` past it, never a silent drop), appends to the segment log and
//! syncs it, and only then acknowledges → [`windows`] keeps tumbling event-time windows per
//! service and closes them after a grace period; a bounded pool analyses closed windows with
//! `af inspect`'s own detectors plus the baselines' relative ones, and writes the ledger →
//! [`api`] (JSON, OpenAPI), [`page`] (HTML with inline SVG) and [`metrics`] (Prometheus) read
//! it.

#![warn(missing_docs)]

/// A line on stderr that never panics: a server whose stderr was closed (a supervisor gone, a
/// pipe nobody reads) must keep serving, and `eprintln!` panics on a failed write.
macro_rules! log {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

pub mod api;
mod auth;
mod grpc;
pub mod hooks;
pub mod ingest;
pub mod metrics;
pub mod page;
mod reply;
mod watch;
pub mod windows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use af_ledger::Ledger;
use af_ledger::evidence::Retention;

/// How `af serve` runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the ledger, the segment log and evidence live.
    pub data_dir: PathBuf,
    /// OTLP/HTTP, the API, metrics and the page.
    pub http: SocketAddr,
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    /// Bearer token for the API and the intake; none: loopback only.
    pub token: Option<String>,
    /// Window length, ns.
    pub window_ns: i64,
    /// How long after its end a window waits for late records, ns (event time), and how long a
    /// service may stay silent before its open windows close (wall time).
    pub grace_ns: i64,
    /// Bytes of records one service may hold in open and unanalysed windows.
    pub buffer_bytes: usize,
    /// Largest request body.
    pub max_body: usize,
    /// Largest single record (its stored frame).
    pub max_record: usize,
    /// Windows analysed at once.
    pub analysis_pool: usize,
    /// Evidence retention.
    pub retention: Retention,
    /// A directory whose HAR/JSONL/proxymock drops are taken in, and the service they belong
    /// to when the capture names none.
    pub watch: Option<(PathBuf, String)>,
    /// Snapshots whose traffic seeds the baselines (windowed and learned from like live
    /// traffic, findings included), each with its service.
    pub seed: Vec<(PathBuf, String)>,
    /// Durable jobs: the queue findings' events go to under the policy's rules (and the page
    /// shows). `None`: findings stay in the ledger until someone runs `af fix`.
    pub jobs: Option<Jobs>,
    /// The ledger's database: `postgres://…` shared by several replicas (their windows too:
    /// see `af_ledger::pending`); none: `ledger.db` in the data directory.
    pub ledger_url: Option<String>,
}

/// The jobs side of `af serve`.
#[derive(Clone, Debug)]
pub struct Jobs {
    /// The queue (the same database every worker uses).
    pub queue: af_jobs::Queue,
    /// The rules, services and forges.
    pub policy: Arc<af_jobs::Policy>,
}

impl Config {
    /// Defaults: loopback on 4318 (HTTP) and 4317 (gRPC), 60 s windows, 10 s grace, 256 MiB
    /// per service, 16 MiB bodies, 4 MiB records, two analyses at once.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            token: None,
            window_ns: 60_000_000_000,
            grace_ns: 10_000_000_000,
            buffer_bytes: 256 << 20,
            max_body: 16 << 20,
            max_record: 4 << 20,
            analysis_pool: 2,
            retention: Retention::default(),
            watch: None,
            seed: Vec::new(),
            jobs: None,
            ledger_url: None,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Refused configuration.
    #[error("{0}")]
    Config(String),
    /// The ledger.
    #[error(transparent)]
    Ledger(#[from] af_ledger::LedgerError),
    /// Sockets and files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Everything the handlers share.
pub struct Shared {
    /// The configuration.
    pub cfg: Config,
    /// The ledger.
    pub ledger: Ledger,
    /// Counters.
    pub metrics: metrics::Metrics,
    /// Open windows, their buffers and the segment log writer.
    pub windows: windows::Windows,
    /// The segment log's writer.
    pub log: ingest::LogWriter,
}

/// A running server.
pub struct Running {
    /// Where OTLP/HTTP, the API and the page answer.
    pub http: SocketAddr,
    /// Where OTLP/gRPC answers.
    pub grpc: SocketAddr,
    /// The shared state (tests read the metrics).
    pub shared: Arc<Shared>,
    /// What replay found on start.
    pub replayed: usize,
}

impl Running {
    /// Closes every open window now and waits for their analyses (used on shutdown and by
    /// tests that cannot wait out a grace period).
    pub async fn flush(&self) {
        windows::flush(&self.shared).await;
    }
}

/// Starts the server: opens the ledger, replays the segment log, binds both ports.
pub async fn start(cfg: Config) -> Result<Running, ServeError> {
    let loopback = cfg.http.ip().is_loopback() && cfg.grpc.ip().is_loopback();
    if cfg.token.is_none() && !loopback {
        return Err(ServeError::Config(format!(
            "refusing to listen on {} / {} without a token: set --token (or AF_SERVE_TOKEN), or listen on 127.0.0.1",
            cfg.http, cfg.grpc
        )));
    }
    if cfg.window_ns <= 0 || cfg.grace_ns < 0 {
        return Err(ServeError::Config(
            "--window must be positive and --grace not negative".into(),
        ));
    }
    let ledger = Ledger::connect(cfg.ledger_url.as_deref(), &cfg.data_dir).await?;
    let (log, replay) =
        ingest::LogWriter::open(&cfg.data_dir.join("segments")).map_err(|source| {
            ServeError::Io { what: format!("{}/segments", cfg.data_dir.display()), source }
        })?;
    let shared = Arc::new(Shared {
        windows: windows::Windows::new(&cfg),
        metrics: metrics::Metrics::default(),
        log,
        ledger,
        cfg,
    });
    let replayed = windows::replay(&shared, replay).await?;
    let http = tokio::net::TcpListener::bind(shared.cfg.http).await.map_err(|source| {
        ServeError::Io { what: format!("binding {}", shared.cfg.http), source }
    })?;
    let grpc = tokio::net::TcpListener::bind(shared.cfg.grpc).await.map_err(|source| {
        ServeError::Io { what: format!("binding {}", shared.cfg.grpc), source }
    })?;
    let http_addr = http
        .local_addr()
        .map_err(|source| ServeError::Io { what: "http address".into(), source })?;
    let grpc_addr = grpc
        .local_addr()
        .map_err(|source| ServeError::Io { what: "grpc address".into(), source })?;
    tokio::spawn(windows::closer(shared.clone()));
    if let Some((dir, service)) = shared.cfg.watch.clone() {
        std::fs::create_dir_all(&dir).map_err(|source| ServeError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        tokio::spawn(watch::watch(shared.clone(), dir, service));
    }
    if !shared.cfg.seed.is_empty() {
        for (path, _) in &shared.cfg.seed {
            if !path.exists() {
                return Err(ServeError::Config(format!("--seed {}: no such file", path.display())));
            }
        }
        tokio::spawn(watch::seed(shared.clone(), shared.cfg.seed.clone()));
    }
    tokio::spawn(grpc::serve(shared.clone(), grpc));
    let app = api::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            log!("af serve: HTTP server stopped: {e}");
        }
    });
    Ok(Running { http: http_addr, grpc: grpc_addr, shared, replayed })
}
