//! The job database: SQLite (embedded default; WAL, foreign keys) or PostgreSQL (scale-out),
//! chosen by the URL. Migrations are embedded, one folder per backend, and run at start.
//! Queries are written once with diesel's DSL and compiled for both backends by [`with_conn!`];
//! they all live in [`jobs`], [`mails`] and [`tokens`]: no SQL anywhere else.

pub mod jobs;
pub mod mails;
pub mod schema;
pub mod tokens;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;
use thiserror::Error;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database {url}: {message}")]
    Open { url: String, message: String },
    #[error("database task failed: {0}")]
    Task(String),
}

pub type DbResult<T> = Result<T, DbError>;

/// A connection pool for one of the two backends.
#[derive(Clone)]
pub enum Db {
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    Pg(Pool<ConnectionManager<PgConnection>>),
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend `$db` is.
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => {
                let $conn = &mut *pool.get()?;
                $body
            }
            $crate::db::Db::Pg(pool) => {
                let $conn = &mut *pool.get()?;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

#[derive(Debug)]
struct SqliteSetup;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers run beside the one writer; busy_timeout (set first, so that switching
        // to WAL from several new connections at once waits too) makes writers wait, not fail.
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Db {
    /// Opens (creating an SQLite file and its folder when needed) and migrates.
    pub fn open(url: &str) -> DbResult<Db> {
        let open_err = |message: String| DbError::Open { url: img_core::config::redact_url(url), message };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| open_err(format!("cannot create {}: {e}", dir.display())))?;
            }
            let pool = Pool::builder()
                .max_size(8)
                // A local file cannot drop a connection: no `SELECT 1` before every use.
                .test_on_check_out(false)
                .connection_customizer(Box::new(SqliteSetup))
                .connection_timeout(Duration::from_secs(10))
                .build(ConnectionManager::<SqliteConnection>::new(path))
                .map_err(|e| open_err(e.to_string()))?;
            let mut conn = pool.get()?;
            conn.run_pending_migrations(SQLITE_MIGRATIONS).map_err(|e| open_err(e.to_string()))?;
            drop(conn);
            Ok(Db::Sqlite(pool))
        } else {
            let pool = Pool::builder()
                .max_size(16)
                .connection_timeout(Duration::from_secs(10))
                .build(ConnectionManager::<PgConnection>::new(url))
                .map_err(|e| open_err(e.to_string()))?;
            let mut conn = pool.get()?;
            conn.run_pending_migrations(POSTGRES_MIGRATIONS).map_err(|e| open_err(e.to_string()))?;
            drop(conn);
            Ok(Db::Pg(pool))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }

    /// A short read. On SQLite it runs on the calling thread when a pooled connection is idle:
    /// WAL readers never wait for the writer, and spawn_blocking's two thread switches are
    /// most of a status read's cost. Otherwise (and always on PostgreSQL, where a query is a
    /// network round trip) it is [`Db::run`].
    pub async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Db) -> DbResult<T> + Send + 'static) -> DbResult<T> {
        match self {
            Db::Sqlite(pool) if pool.state().idle_connections > 0 => f(self),
            _ => self.run(f).await,
        }
    }

    /// Runs blocking database work off the async threads.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Db) -> DbResult<T> + Send + 'static) -> DbResult<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(|e| DbError::Task(e.to_string()))?
    }
}

/// Milliseconds since the Unix epoch: the database's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;

    /// Tokens from before scopes keep their rights: they become `admin`, each its own user.
    #[test]
    fn tokens_made_before_scopes_become_admins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        // Back to the schema of the release before scopes, with a token made then.
        conn.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
        conn.batch_execute("INSERT INTO api_tokens (name, hash, created_at) VALUES ('ci', 'abc', 1)").unwrap();
        drop(conn);
        let db = Db::open(&format!("sqlite://{}", path.display())).unwrap();
        let t = tokens::find(&db, "abc").unwrap().expect("kept");
        assert_eq!((t.name.as_str(), t.user_name.as_str(), t.scope.as_str()), ("ci", "ci", "admin"));
    }
}
