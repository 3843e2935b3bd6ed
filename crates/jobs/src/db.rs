//! The jobs database: apalis's tables (the queue: leases, heartbeats, priorities, delays) and
//! af's own (`af_runs`, `af_effects`) in one database — an embedded SQLite file by default, or
//! one PostgreSQL every process points at (`--database postgres://…`).
//!
//! af's tables are written in SQL both engines read (TEXT, BIGINT milliseconds, `$N`
//! placeholders), so one query text serves both; only the connection differs.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::JobsError;

/// One pool, either engine.
#[derive(Clone, Debug)]
pub enum Db {
    /// The embedded default (`<data-dir>/jobs.db`).
    Sqlite(SqlitePool),
    /// Shared by several machines.
    Pg(PgPool),
}

/// Runs one statement on whichever engine; evaluates to `Result<u64 rows, sqlx::Error>`.
macro_rules! exec {
    ($db:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Sqlite(p) => sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
            $crate::db::Db::Pg(p) => sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
        }
    };
}

/// Fetches rows as `$t` (a `sqlx::FromRow` type); `Result<Vec<$t>, sqlx::Error>`.
macro_rules! fetch {
    ($db:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Sqlite(p) => sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_all(p).await,
            $crate::db::Db::Pg(p) => sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_all(p).await,
        }
    };
}

pub(crate) use {exec, fetch};

/// af's own migrations, recorded in their own table so that apalis's migrator (which owns
/// `_sqlx_migrations`) never sees them.
fn af_migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name("af_jobs_migrations");
    m
}

impl Db {
    /// `postgres://…` or `postgresql://…`, else `sqlite://PATH`, else the embedded file in
    /// `data_dir`. Creates af's and apalis's tables (both migrations are idempotent, and
    /// PostgreSQL's are taken under an advisory lock, so several processes may start at once).
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Self, JobsError> {
        let db = match url {
            Some(u) if af_ledger::is_postgres(u) => {
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(u)
                    .await
                    .map_err(|e| {
                        JobsError::Db(format!("{}: {e}", crate::ticket::redact_remote(u)))
                    })?;
                apalis_postgres::PostgresStorage::<()>::migrations()
                    .run(&pool)
                    .await
                    .map_err(|e| JobsError::Db(format!("apalis migrations: {e}")))?;
                Self::Pg(pool)
            }
            other => {
                let path = match other {
                    Some(u) => Path::new(u.strip_prefix("sqlite://").unwrap_or(u)).to_owned(),
                    None => {
                        std::fs::create_dir_all(data_dir)
                            .map_err(|e| JobsError::Db(format!("{}: {e}", data_dir.display())))?;
                        data_dir.join("jobs.db")
                    }
                };
                // FULL: a run acknowledged to its producer survives power loss, not only a
                // crash; jobs are few and the fsync is cheap beside a fix run.
                let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                    .map_err(|e| JobsError::Db(format!("{}: {e}", path.display())))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .map_err(|e| JobsError::Db(format!("{}: {e}", path.display())))?;
                apalis_sqlite::SqliteStorage::<()>::migrations()
                    .run(&pool)
                    .await
                    .map_err(|e| JobsError::Db(format!("apalis migrations: {e}")))?;
                Self::Sqlite(pool)
            }
        };
        let m = af_migrator();
        match &db {
            Self::Sqlite(p) => m.run(p).await,
            Self::Pg(p) => m.run(p).await,
        }
        .map_err(|e| JobsError::Db(format!("af jobs migrations: {e}")))?;
        Ok(db)
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Pg(_) => "postgres",
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn urls_lose_their_password() {
        let shown = crate::ticket::redact_remote("postgres://af:s3cret@h:5/db");
        assert!(!shown.contains("s3cret") && shown.ends_with("@h:5/db"), "{shown}");
        assert_eq!(crate::ticket::redact_remote("postgres://h/db"), "postgres://h/db");
    }
}
