//! `af-ledger`: what `af serve` remembers, in one embedded database (SQLite through `sqlx`, which
//! also speaks PostgreSQL for several replicas): analysed windows and their per-endpoint rows,
//! baselines learned from clean windows, findings by [`fingerprint`] with their state and
//! occurrences, the evidence each finding opened with ([`evidence`]), a per-window check of
//! each finding's own metric, deploy markers, and verifications ([`verify`]).
//!
//! Schema migrations are versioned (`migrations/NNNN_*.sql`, embedded in the binary) and run on
//! open; an older database is brought forward, never rebuilt.

#![warn(missing_docs)]

pub mod baseline;
pub mod evidence;
pub mod fingerprint;
pub mod pending;
pub mod verify;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::AnyPool;
use sqlx::Row as _;
use sqlx::any::{AnyPoolOptions, AnyRow};

pub use fingerprint::{Fingerprint, Key};

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database.
    #[error("ledger database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration.
    #[error("ledger migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Files (evidence).
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Writing a snapshot.
    #[error(transparent)]
    Snapshot(#[from] af_snapshot::SnapshotError),
    /// A fingerprint prefix matched no finding, or several.
    #[error("{0}")]
    NotFound(String),
}

/// Ledger results.
pub type Result<T> = std::result::Result<T, LedgerError>;

/// The embedded SQLite ledger's migrations (recorded in `_sqlx_migrations` of `ledger.db`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL ledger's migrations: the same versions in PostgreSQL's types, recorded in
/// `af_ledger_migrations` (the database is shared with the jobs, whose library owns
/// `_sqlx_migrations`).
fn pg_migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations/postgres");
    m.dangerous_set_table_name(PG_MIGRATIONS);
    m
}

const PG_MIGRATIONS: &str = "af_ledger_migrations";

/// Whether `url` names a PostgreSQL database (`postgres://…`, `postgresql://…`): the one
/// test every process uses to decide whether the ledger and the jobs are shared.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Which database the ledger is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `DATA_DIR/ledger.db`: one server.
    Sqlite,
    /// One PostgreSQL for several replicas: windows are shared ([`pending`]).
    Postgres,
}

/// Where a finding is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Seen, nobody on it yet.
    Open,
    /// A fix run is on it.
    Fixing,
    /// A fix is deployed, not yet verified.
    Fixed,
    /// Production traffic after the fix says it is gone.
    Verified,
    /// Seen again after it was fixed or verified (past the cooldown), or a verification said
    /// regressed.
    Reopened,
    /// Someone said not to report it, with a reason and an expiry.
    Suppressed,
}

impl State {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Fixing => "fixing",
            Self::Fixed => "fixed",
            Self::Verified => "verified",
            Self::Reopened => "reopened",
            Self::Suppressed => "suppressed",
        }
    }

    /// Still wanting attention.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::Reopened | Self::Fixing)
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "open" => Self::Open,
            "fixing" => Self::Fixing,
            "fixed" => Self::Fixed,
            "verified" => Self::Verified,
            "reopened" => Self::Reopened,
            "suppressed" => Self::Suppressed,
            _ => {
                return Err(format!(
                    "unknown state `{s}` (open, fixing, fixed, verified, reopened, suppressed)"
                ));
            }
        })
    }
}

/// One finding in the ledger.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FindingRow {
    /// `v1:` + 32 hex digits.
    pub fingerprint: String,
    /// The detector (`limit-model`, `error-burst`, `error-rate-above-baseline`, ...).
    pub kind: String,
    /// The service.
    pub service: String,
    /// The endpoint's method.
    pub method: String,
    /// The endpoint's path template.
    pub template: String,
    /// `4xx`, `5xx`, `transport` or `-`.
    pub status_class: String,
    /// `high`, `medium`, `low` (of the latest occurrence).
    pub severity: String,
    /// Where it is in its life.
    pub state: State,
    /// The latest occurrence's summary.
    pub summary: String,
    /// The metric a fix should meet, when the detector gave one.
    pub metric: Option<String>,
    /// First seen (window start, ns since the epoch).
    pub first_seen: i64,
    /// Last seen (window start, ns).
    pub last_seen: i64,
    /// Windows it was seen in.
    pub occurrences: i64,
    /// Digest of the evidence it opened (or last reopened) with.
    pub evidence: Option<String>,
    /// When the state last changed (ns).
    pub state_since: i64,
    /// Why it is suppressed.
    pub suppressed_reason: Option<String>,
    /// Who suppressed it.
    pub suppressed_owner: Option<String>,
    /// Until when (ns).
    pub suppressed_until: Option<i64>,
    /// How often it was reopened.
    pub reopened: i64,
    /// The exact status it is about (its errors are counted by it), when one.
    pub status: Option<u16>,
}

/// One window in which a finding was seen.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Occurrence {
    /// Window start, ns.
    pub window_ns: i64,
    /// Severity then.
    pub severity: String,
    /// Summary then.
    pub summary: String,
    /// Evidence stored for it, when it opened or reopened the finding.
    pub evidence: Option<String>,
}

/// A finding as a window's analysis saw it.
#[derive(Clone, Debug)]
pub struct Observation {
    /// Who and where.
    pub key: Key,
    /// `high`, ...
    pub severity: String,
    /// What the detector said.
    pub summary: String,
    /// The exact status it is about (0: transport errors), when one.
    pub status: Option<u16>,
    /// The metric a fix should meet.
    pub metric: Option<String>,
    /// Window start, ns.
    pub window_ns: i64,
}

/// A finding with everything known about it: what `GET /api/findings/FP` and
/// `af findings show FP --json` answer.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FindingDetail {
    /// The finding.
    pub finding: FindingRow,
    /// Windows it was seen in, newest first.
    pub occurrences: Vec<Occurrence>,
    /// Its metric per window, oldest first.
    pub checks: Vec<CheckRow>,
    /// The evidence it opened (or last reopened) with.
    pub evidence: Option<evidence::Evidence>,
}

/// What observing a finding did to the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// A new fingerprint: opened; evidence should be stored.
    Opened,
    /// Seen again while active (or inside the cooldown after a fix): one more occurrence.
    Recurred,
    /// Seen again after a fix or verification, past the cooldown: reopened; evidence should be
    /// stored.
    Reopened,
    /// Suppressed and not expired: counted, not reported.
    Suppressed,
}

/// Per-endpoint numbers of one window.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct EndpointWindow {
    /// `METHOD template`.
    pub endpoint: String,
    /// Calls.
    pub calls: i64,
    /// Status ≥ 400 or transport errors.
    pub errors: i64,
    /// 429 and 503 answers.
    pub throttled: i64,
    /// Status ≥ 500.
    pub server_errors: i64,
    /// p95 latency, ms (none without durations).
    pub p95_ms: Option<f64>,
    /// Peak calls in flight per caller.
    pub peak_inflight_caller: i64,
}

/// A window's row.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct WindowRow {
    /// The service.
    pub service: String,
    /// Start, ns.
    pub start_ns: i64,
    /// End, ns.
    pub end_ns: i64,
    /// Exchanges in it.
    pub records: i64,
    /// Findings its analysis produced.
    pub findings: i64,
    /// Records that arrived after it closed.
    pub late: i64,
}

/// One finding's metric on one window: the numbers `af verify` weighs.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CheckRow {
    /// Window start, ns.
    pub window_ns: i64,
    /// Window end, ns, when known (a window that straddles a deploy marker is on neither side).
    #[serde(default)]
    pub end_ns: Option<i64>,
    /// The metric's value (none: the window had no call it selects).
    pub value: Option<f64>,
    /// Calls to the finding's endpoint.
    pub calls: i64,
    /// Of them, errors of the finding's status (all errors without one).
    pub errors: i64,
    /// Calls by status (`0` = transport error, `-` = no response).
    pub statuses: std::collections::BTreeMap<String, i64>,
}

/// A deploy marker.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Deploy {
    /// Row id.
    pub id: i64,
    /// The service deployed (none: all).
    pub service: Option<String>,
    /// When, ns.
    pub at_ns: i64,
    /// The commit deployed.
    pub sha: Option<String>,
}

/// How long a fixed or verified finding that recurs stays closed before it reopens.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// The cooldown, ns (default: ten 60 s windows).
    pub cooldown_ns: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self { cooldown_ns: 600_000_000_000 }
    }
}

/// The ledger.
#[derive(Clone)]
pub struct Ledger {
    pool: AnyPool,
    engine: Engine,
    evidence_dir: PathBuf,
    /// Cooldowns.
    pub policy: Policy,
}

/// The advisory lock key of the ledger's writers on PostgreSQL (`af-ledg` in ASCII).
const WRITE_LOCK: i64 = 0x0061_662d_6c65_6467;

fn now_ns() -> i64 {
    af_snapshot::Timestamp::now().as_nanos()
}

fn finding_row(r: &AnyRow) -> Result<FindingRow> {
    let state: String = r.try_get("state")?;
    Ok(FindingRow {
        fingerprint: r.try_get("fingerprint")?,
        kind: r.try_get("kind")?,
        service: r.try_get("service")?,
        method: r.try_get("method")?,
        template: r.try_get("template")?,
        status_class: r.try_get("status_class")?,
        severity: r.try_get("severity")?,
        state: state.parse().map_err(|e: String| LedgerError::Db(sqlx::Error::Decode(e.into())))?,
        summary: r.try_get("summary")?,
        metric: r.try_get("metric")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        occurrences: r.try_get("occurrences")?,
        evidence: r.try_get("evidence")?,
        state_since: r.try_get("state_since")?,
        suppressed_reason: r.try_get("suppressed_reason")?,
        suppressed_owner: r.try_get("suppressed_owner")?,
        suppressed_until: r.try_get("suppressed_until")?,
        reopened: r.try_get("reopened")?,
        status: r.try_get::<Option<i64>, _>("status")?.and_then(|s| u16::try_from(s).ok()),
    })
}

impl Ledger {
    /// Opens (creating and migrating) `DATA_DIR/ledger.db`; evidence goes to `DATA_DIR/evidence`.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        Self::connect(None, data_dir).await
    }

    /// Opens the ledger at `url` (`postgres://…`: shared by several replicas and workers) or,
    /// without one, `DATA_DIR/ledger.db`; creates and migrates its tables. Evidence files are
    /// written under `DATA_DIR/evidence` either way (on PostgreSQL their bytes are kept in the
    /// database too, and a machine that lacks the file writes it from there).
    pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(data_dir)
            .map_err(|source| LedgerError::Io { path: data_dir.to_owned(), source })?;
        let (pool, engine) = match url {
            Some(u) if is_postgres(u) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(u)
                    .await?;
                // Several replicas may start at once: PostgreSQL's migrator takes an advisory
                // lock around its work.
                pg_migrator().run(&pool).await?;
                (pool, Engine::Postgres)
            }
            Some(other) => {
                return Err(LedgerError::NotFound(format!(
                    "the ledger's database must be postgres://… (or none: {}/ledger.db), not `{}`",
                    data_dir.display(),
                    other.split(':').next().unwrap_or("")
                )));
            }
            None => {
                let file = data_dir.join("ledger.db");
                let url = format!("sqlite://{}?mode=rwc", file.display());
                // WAL: readers (the API) never wait for the analysis writing; NORMAL: a
                // crash loses no committed row (the segment log holds what is not analysed).
                let pool = AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor as _;
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                MIGRATOR.run(&pool).await?;
                (pool, Engine::Sqlite)
            }
        };
        Ok(Self {
            pool,
            engine,
            evidence_dir: data_dir.join("evidence"),
            policy: Policy::default(),
        })
    }

    /// The schema version (the latest migration applied).
    pub async fn schema_version(&self) -> Result<i64> {
        let table = match self.engine {
            Engine::Sqlite => "_sqlx_migrations",
            Engine::Postgres => PG_MIGRATIONS,
        };
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT MAX(version) FROM {table}")))
            .fetch_one(&self.pool)
            .await?)
    }

    /// Whether window `(service, start)` was analysed (a replayed record of it is not counted
    /// again).
    pub async fn window_done(&self, service: &str, start_ns: i64) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM windows WHERE service = $1 AND start_ns = $2")
                .bind(service)
                .bind(start_ns)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    /// Records an analysed window and its endpoints, in one transaction.
    pub async fn record_window(&self, w: &WindowRow, endpoints: &[EndpointWindow]) -> Result<()> {
        let mut tx = self.write().await?;
        self.write_window(&mut tx, w, endpoints).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A window's row (added to one already there: late records) and its endpoints.
    pub(crate) async fn write_window(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        w: &WindowRow,
        endpoints: &[EndpointWindow],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO windows (service, start_ns, end_ns, records, findings, analysed_at, late)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (service, start_ns) DO UPDATE SET records = windows.records + excluded.records,
               findings = windows.findings + excluded.findings, late = windows.late + excluded.late",
        )
        .bind(&w.service)
        .bind(w.start_ns)
        .bind(w.end_ns)
        .bind(w.records)
        .bind(w.findings)
        .bind(now_ns())
        .bind(w.late)
        .execute(&mut **tx)
        .await?;
        for e in endpoints {
            sqlx::query(
                "INSERT INTO endpoint_windows (service, start_ns, endpoint, calls, errors, throttled,
                   server_errors, p95_ms, peak_inflight_caller) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (service, start_ns, endpoint) DO UPDATE SET
                   calls = endpoint_windows.calls + excluded.calls,
                   errors = endpoint_windows.errors + excluded.errors,
                   throttled = endpoint_windows.throttled + excluded.throttled,
                   server_errors = endpoint_windows.server_errors + excluded.server_errors,
                   p95_ms = CASE WHEN excluded.p95_ms IS NULL
                       OR COALESCE(endpoint_windows.p95_ms, 0) >= excluded.p95_ms
                     THEN endpoint_windows.p95_ms ELSE excluded.p95_ms END,
                   peak_inflight_caller = CASE
                     WHEN endpoint_windows.peak_inflight_caller >= excluded.peak_inflight_caller
                     THEN endpoint_windows.peak_inflight_caller ELSE excluded.peak_inflight_caller END",
            )
            .bind(&w.service)
            .bind(w.start_ns)
            .bind(&e.endpoint)
            .bind(e.calls)
            .bind(e.errors)
            .bind(e.throttled)
            .bind(e.server_errors)
            .bind(e.p95_ms)
            .bind(e.peak_inflight_caller)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Analysed windows, newest first (of one service, or all).
    pub async fn windows(&self, service: Option<&str>, limit: i64) -> Result<Vec<WindowRow>> {
        Ok(sqlx::query_as::<_, WindowRow>(
            "SELECT service, start_ns, end_ns, records, findings, late FROM windows
             WHERE $1 IS NULL OR service = $1 ORDER BY start_ns DESC LIMIT $2",
        )
        .bind(service)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Per-endpoint rows of a service's windows, oldest first: `(window start, row)`.
    pub async fn endpoint_series(
        &self,
        service: &str,
        limit: i64,
    ) -> Result<Vec<(i64, EndpointWindow)>> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT start_ns, endpoint, calls, errors, throttled, server_errors, p95_ms,
               peak_inflight_caller FROM endpoint_windows WHERE service = $1
               ORDER BY start_ns DESC LIMIT $2) ORDER BY start_ns",
        )
        .bind(service)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("start_ns")?,
                    EndpointWindow {
                        endpoint: r.try_get("endpoint")?,
                        calls: r.try_get("calls")?,
                        errors: r.try_get("errors")?,
                        throttled: r.try_get("throttled")?,
                        server_errors: r.try_get("server_errors")?,
                        p95_ms: r.try_get("p95_ms")?,
                        peak_inflight_caller: r.try_get("peak_inflight_caller")?,
                    },
                ))
            })
            .collect()
    }

    /// Services with analysed windows.
    pub async fn services(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT DISTINCT service FROM windows ORDER BY service")
            .fetch_all(&self.pool)
            .await?)
    }

    /// What observing `existing` again now would do.
    fn decide(&self, existing: Option<&FindingRow>, now: i64) -> Transition {
        let Some(f) = existing else { return Transition::Opened };
        match f.state {
            State::Suppressed if f.suppressed_until.is_none_or(|u| u > now) => {
                Transition::Suppressed
            }
            State::Suppressed => Transition::Reopened,
            State::Fixed | State::Verified if now - f.state_since >= self.policy.cooldown_ns => {
                Transition::Reopened
            }
            _ => Transition::Recurred,
        }
    }

    /// Whether observing `o` now would open or reopen its finding (so evidence should be
    /// stored first, and the finding never seen without it).
    pub async fn would_open(&self, o: &Observation) -> Result<bool> {
        let fp = o.key.fingerprint().to_string();
        let existing = sqlx::query("SELECT * FROM findings WHERE fingerprint = $1")
            .bind(&fp)
            .fetch_optional(&self.pool)
            .await?;
        let f = existing.as_ref().map(finding_row).transpose()?;
        Ok(matches!(self.decide(f.as_ref(), now_ns()), Transition::Opened | Transition::Reopened))
    }

    /// Records that a finding was seen in a window, and what that did. `evidence` (stored
    /// beforehand) is linked, in the same transaction, when it opens or reopens the finding.
    pub async fn observe(
        &self,
        o: &Observation,
        evidence: Option<&str>,
    ) -> Result<(Transition, FindingRow)> {
        let fp = o.key.fingerprint().to_string();
        let mut tx = self.write().await?;
        let existing = sqlx::query("SELECT * FROM findings WHERE fingerprint = $1")
            .bind(&fp)
            .fetch_optional(&mut *tx)
            .await?;
        let now = now_ns();
        let transition = match existing.as_ref().map(finding_row).transpose()? {
            None => {
                sqlx::query(
                    "INSERT INTO findings (fingerprint, kind, service, method, template, status_class,
                       severity, state, summary, metric, first_seen, last_seen, occurrences, state_since, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $10, 1, $11, $12)",
                )
                .bind(&fp)
                .bind(&o.key.kind)
                .bind(&o.key.service)
                .bind(&o.key.method)
                .bind(&o.key.template)
                .bind(&o.key.status_class)
                .bind(&o.severity)
                .bind(&o.summary)
                .bind(&o.metric)
                .bind(o.window_ns)
                .bind(now)
                .bind(o.status.map(i64::from))
                .execute(&mut *tx)
                .await?;
                Transition::Opened
            }
            Some(f) => {
                let transition = self.decide(Some(&f), now);
                let reopen = transition == Transition::Reopened;
                // A window analysed again (its replica died before writing it) is one
                // occurrence, not two.
                let seen: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM occurrences WHERE fingerprint = $1 AND window_ns = $2",
                )
                .bind(&fp)
                .bind(o.window_ns)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE findings SET severity = $2, summary = $3, metric = COALESCE($4, metric),
                       last_seen = CASE WHEN last_seen >= $5 THEN last_seen ELSE $5 END,
                       first_seen = CASE WHEN first_seen <= $5 THEN first_seen ELSE $5 END,
                       occurrences = occurrences + $8,
                       state = CASE WHEN $6 THEN 'reopened' ELSE state END,
                       state_since = CASE WHEN $6 THEN $7 ELSE state_since END,
                       reopened = reopened + CASE WHEN $6 THEN 1 ELSE 0 END
                     WHERE fingerprint = $1",
                )
                .bind(&fp)
                .bind(&o.severity)
                .bind(&o.summary)
                .bind(&o.metric)
                .bind(o.window_ns)
                .bind(reopen)
                .bind(now)
                .bind(i64::from(seen == 0))
                .execute(&mut *tx)
                .await?;
                transition
            }
        };
        let linked =
            evidence.filter(|_| matches!(transition, Transition::Opened | Transition::Reopened));
        if let Some(d) = linked {
            sqlx::query("UPDATE findings SET evidence = $2 WHERE fingerprint = $1")
                .bind(&fp)
                .bind(d)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO occurrences (fingerprint, window_ns, severity, summary, evidence) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (fingerprint, window_ns) DO UPDATE SET severity = excluded.severity, summary = excluded.summary,
               evidence = COALESCE(excluded.evidence, occurrences.evidence)",
        )
        .bind(&fp)
        .bind(o.window_ns)
        .bind(&o.severity)
        .bind(&o.summary)
        .bind(linked)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM findings WHERE fingerprint = $1")
            .bind(&fp)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((transition, finding_row(&row)?))
    }

    /// Findings, most recently seen first, optionally of one state and service.
    pub async fn findings(
        &self,
        state: Option<State>,
        service: Option<&str>,
    ) -> Result<Vec<FindingRow>> {
        let rows = sqlx::query(
            "SELECT * FROM findings WHERE ($1 IS NULL OR state = $1)
             AND ($2 IS NULL OR service = $2) ORDER BY last_seen DESC, fingerprint",
        )
        .bind(state.map(State::as_str))
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_row).collect()
    }

    /// The finding whose fingerprint starts with `prefix` (`v1:` optional), with its
    /// occurrences, newest first.
    pub async fn finding(&self, prefix: &str) -> Result<(FindingRow, Vec<Occurrence>)> {
        let p = prefix.trim();
        let p = if p.starts_with("v1:") { p.to_owned() } else { format!("v1:{p}") };
        if p.len() < 7 || !p[3..].bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LedgerError::NotFound(format!(
                "`{prefix}` is not a fingerprint: give `v1:` and at least 4 hex digits"
            )));
        }
        let rows = sqlx::query(
            "SELECT * FROM findings WHERE substr(fingerprint, 1, length($1)) = $1 LIMIT 2",
        )
        .bind(&p)
        .fetch_all(&self.pool)
        .await?;
        let f = match rows.as_slice() {
            [one] => finding_row(one)?,
            [] => return Err(LedgerError::NotFound(format!("no finding has fingerprint {p}…"))),
            _ => return Err(LedgerError::NotFound(format!("{p} is ambiguous: give more digits"))),
        };
        let occ = sqlx::query_as::<_, Occurrence>(
            "SELECT window_ns, severity, summary, evidence FROM occurrences WHERE fingerprint = $1
             ORDER BY window_ns DESC LIMIT 500",
        )
        .bind(&f.fingerprint)
        .fetch_all(&self.pool)
        .await?;
        Ok((f, occ))
    }

    /// A finding, its occurrences, per-window checks and evidence.
    pub async fn finding_detail(&self, prefix: &str) -> Result<FindingDetail> {
        let (finding, occurrences) = self.finding(prefix).await?;
        let checks = self.checks(&finding.fingerprint).await?;
        let evidence = match &finding.evidence {
            Some(d) => self.evidence(d).await?,
            None => None,
        };
        Ok(FindingDetail { finding, occurrences, checks, evidence })
    }

    /// Suppresses a finding until `until` (ns; none: until lifted).
    pub async fn suppress(
        &self,
        fingerprint: &str,
        reason: &str,
        owner: &str,
        until: Option<i64>,
    ) -> Result<FindingRow> {
        let (f, _) = self.finding(fingerprint).await?;
        sqlx::query(
            "UPDATE findings SET state = 'suppressed', state_since = $2, suppressed_reason = $3,
               suppressed_owner = $4, suppressed_until = $5 WHERE fingerprint = $1",
        )
        .bind(&f.fingerprint)
        .bind(now_ns())
        .bind(reason)
        .bind(owner)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(self.finding(&f.fingerprint).await?.0)
    }

    /// Sets a finding's state.
    pub async fn set_state(&self, fingerprint: &str, state: State) -> Result<()> {
        let reopen = i64::from(state == State::Reopened);
        sqlx::query(
            "UPDATE findings SET state = $2, state_since = $3, reopened = reopened + $4 WHERE fingerprint = $1",
        )
        .bind(fingerprint)
        .bind(state.as_str())
        .bind(now_ns())
        .bind(reopen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records one finding's metric on one window.
    pub async fn record_check(&self, fingerprint: &str, c: &CheckRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO checks (fingerprint, window_ns, value, calls, errors, statuses) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (fingerprint, window_ns) DO UPDATE SET value = excluded.value, calls = excluded.calls,
               errors = excluded.errors, statuses = excluded.statuses",
        )
        .bind(fingerprint)
        .bind(c.window_ns)
        .bind(c.value)
        .bind(c.calls)
        .bind(c.errors)
        .bind(serde_json::to_string(&c.statuses).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A finding's per-window checks, oldest first.
    pub async fn checks(&self, fingerprint: &str) -> Result<Vec<CheckRow>> {
        let rows = sqlx::query(
            "SELECT c.window_ns, w.end_ns, c.value, c.calls, c.errors, c.statuses FROM checks c
             JOIN findings f ON f.fingerprint = c.fingerprint
             LEFT JOIN windows w ON w.service = f.service AND w.start_ns = c.window_ns
             WHERE c.fingerprint = $1 ORDER BY c.window_ns",
        )
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let statuses: String = r.try_get("statuses")?;
                Ok(CheckRow {
                    window_ns: r.try_get("window_ns")?,
                    end_ns: r.try_get("end_ns")?,
                    value: r.try_get("value")?,
                    calls: r.try_get("calls")?,
                    errors: r.try_get("errors")?,
                    statuses: serde_json::from_str(&statuses).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Adds a deploy marker.
    pub async fn add_deploy(
        &self,
        service: Option<&str>,
        at_ns: i64,
        sha: Option<&str>,
    ) -> Result<Deploy> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deploys (service, at_ns, sha, created) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(service)
        .bind(at_ns)
        .bind(sha)
        .bind(now_ns())
        .fetch_one(&self.pool)
        .await?;
        Ok(Deploy { id, service: service.map(str::to_owned), at_ns, sha: sha.map(str::to_owned) })
    }

    /// Deploy markers, newest first.
    pub async fn deploys(&self, service: Option<&str>) -> Result<Vec<Deploy>> {
        Ok(sqlx::query_as::<_, Deploy>(
            "SELECT id, service, at_ns, sha FROM deploys WHERE $1 IS NULL OR service IS NULL OR service = $1
             ORDER BY at_ns DESC",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a verification and moves the finding: verified → `verified`, regressed →
    /// `reopened`; inconclusive leaves the state as it was.
    pub async fn record_verification(&self, v: &verify::Verification) -> Result<()> {
        let report = serde_json::to_string(v).unwrap_or_default();
        sqlx::query(
            "INSERT INTO verifications (fingerprint, at, outcome, report) VALUES ($1, $2, $3, $4)",
        )
        .bind(&v.fingerprint)
        .bind(now_ns())
        .bind(v.outcome.as_str())
        .bind(report)
        .execute(&self.pool)
        .await?;
        match v.outcome {
            verify::Outcome::Verified => self.set_state(&v.fingerprint, State::Verified).await,
            verify::Outcome::Regressed => self.set_state(&v.fingerprint, State::Reopened).await,
            verify::Outcome::Inconclusive => Ok(()),
        }
    }

    /// Verifications, newest first: `(fingerprint, at ns, outcome, report JSON)`.
    pub async fn verifications(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, i64, String, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT fingerprint, at, outcome, report FROM verifications ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let report: String = r.try_get("report")?;
                Ok((
                    r.try_get("fingerprint")?,
                    r.try_get("at")?,
                    r.try_get("outcome")?,
                    serde_json::from_str(&report).unwrap_or(serde_json::Value::Null),
                ))
            })
            .collect()
    }

    /// Counts of findings by (kind, state), for metrics.
    pub async fn finding_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows =
            sqlx::query("SELECT kind, state, COUNT(*) AS n FROM findings GROUP BY kind, state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`): a
    /// deferred one that reads first and then writes cannot wait for another writer — SQLite
    /// answers it `SQLITE_BUSY` at once to avoid a deadlock — so two windows analysed at the same
    /// time would fail each other's analysis. Immediate ones queue on the busy timeout.
    ///
    /// On PostgreSQL the same serialisation is a transaction-scoped advisory lock: several
    /// replicas read-modify-write one finding (`observe`), and without it two would both insert
    /// it or lose each other's occurrence.
    pub(crate) async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.begin(Some(WRITE_LOCK)).await
    }

    /// A write transaction: `BEGIN IMMEDIATE` on SQLite (which serialises every writer); on
    /// PostgreSQL a plain one holding the advisory lock `lock`, when given, until it ends.
    pub(crate) async fn begin(
        &self,
        lock: Option<i64>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.engine {
            Engine::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Engine::Postgres => {
                let mut tx = self.pool.begin().await?;
                if let Some(key) = lock {
                    sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(tx)
            }
        }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests;
