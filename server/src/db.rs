//! Connecting, migrating, and transaction helpers shared by all services.

use std::sync::Arc;
use std::time::Duration;

use accord_migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseArgs;
use crate::metrics::Metrics;

/// Statements at least this slow are logged (target `accord::db::slow`, debug level).
const SLOW_STATEMENT: Duration = Duration::from_millis(10);

/// Opens the pool. SQLite gets WAL (readers never block the writer), a busy timeout and
/// stable query plans ([`stable_plans`]); every statement is counted and timed into
/// `metrics`.
pub async fn connect(
    args: &DatabaseArgs,
    metrics: &Arc<Metrics>,
) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(args.url.clone());
    opts.max_connections(args.pool_size)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|conn, _| Box::pin(async move { stable_plans(conn).await }))
        });
    let mut db = Database::connect(opts).await?;
    let metrics = Arc::clone(metrics);
    db.set_metric_callback(move |info| {
        metrics.db_statements.inc();
        metrics.db_seconds.observe(info.elapsed.as_secs_f64());
        // Every statement, for finding out what one request costs
        // (`ACCORD_LOG=accord::db::statements=trace`).
        tracing::trace!(
            target: "accord::db::statements",
            elapsed_us = info.elapsed.as_micros() as u64,
            sql = %info.statement.sql,
        );
        if info.elapsed >= SLOW_STATEMENT {
            tracing::debug!(
                target: "accord::db::slow",
                elapsed_ms = info.elapsed.as_millis() as u64,
                sql = %info.statement.sql,
                "slow statement"
            );
        }
    });
    Ok(db)
}

/// Turns on SQLite's query planner stability guarantee (QPSG) for one connection.
///
/// Without it SQLite plans a statement anew on every execution whose bound values could
/// change the plan: any `LIMIT ?`, and, once `ANALYZE` has gathered `sqlite_stat4`
/// samples (the bundled SQLite is built with STAT4), almost any bound value in a WHERE
/// clause. sqlx binds fresh values on each run, so the prepared-statement cache saved
/// nothing for those statements: every page of a list was parsed and planned again,
/// 13% of the CPU of the nested-list benchmark. With the guarantee a statement keeps
/// the plan it was prepared with, the behaviour PostgreSQL's cached generic plans have
/// (see [`LiteralLimits`]). There is no pragma for it, hence the raw call.
async fn stable_plans(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    if qpsg(handle.as_raw_handle(), 1) == Some(true) {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration(
            "SQLite refused the query planner stability guarantee".into(),
        ))
    }
}

/// Sets (`1`), clears (`0`) or only reads (`-1`) one connection's query planner
/// stability guarantee; the setting afterwards, or `None` if SQLite refused the call.
fn qpsg(db: std::ptr::NonNull<libsqlite3_sys::sqlite3>, set: std::ffi::c_int) -> Option<bool> {
    let mut now: std::ffi::c_int = -1;
    // SAFETY: `db` comes from a locked sqlx connection handle, so it is open and no
    // other thread uses it during the call. SQLITE_DBCONFIG_ENABLE_QPSG takes exactly
    // an `int` and an `int *` (https://sqlite.org/c3ref/c_dbconfig_defensive.html), and
    // SQLite writes through the pointer only during the call.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db.as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            set,
            &mut now as *mut std::ffi::c_int,
        )
    };
    (rc == libsqlite3_sys::SQLITE_OK).then_some(now == 1)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one failing
/// with SQLITE_BUSY when its read transaction tries to upgrade.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = match db.get_database_backend() {
        DbBackend::Sqlite => TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        },
        _ => TransactionOptions::default(),
    };
    db.begin_with_options(options).await
}

/// Serializes transactions that check an invariant spanning several rows and then write
/// (no cycle in a hierarchy, one primary contact per deal), so two concurrent writers
/// cannot both pass the check. SQLite writers are already serialized by
/// `BEGIN IMMEDIATE`; on PostgreSQL this takes a transaction-scoped advisory lock on
/// `(topic, key)`, released at commit or rollback.
pub async fn serialize_on<C: ConnectionTrait>(txn: &C, topic: &str, key: i64) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
            [topic.into(), key.into()],
        ))
        .await?;
    }
    Ok(())
}

/// A connection whose PostgreSQL statements carry their `LIMIT`s as literals.
///
/// sea-query binds every `LIMIT` as a parameter. PostgreSQL cannot cost a plan whose
/// row limit it does not know, so for a page query (a union of per-territory branches,
/// each with its own limit) it keeps re-planning the statement for every execution:
/// about 0.3 ms of planning per page, more than the execution itself. With literal
/// limits the cached generic plan is as good as a custom one and is reused. Only
/// limits the server computes (page size + 1) are ever parameters here; the bound
/// values stay in place unused, which PostgreSQL accepts because their types are sent.
pub struct LiteralLimits<'a, C>(pub &'a C);

#[async_trait::async_trait]
impl<C: ConnectionTrait> ConnectionTrait for LiteralLimits<'_, C> {
    fn get_database_backend(&self) -> DbBackend {
        self.0.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<sea_orm::ExecResult, DbErr> {
        self.0.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, DbErr> {
        self.0.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<sea_orm::QueryResult>, DbErr> {
        self.0.query_one_raw(inline_limits(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        self.0.query_all_raw(inline_limits(stmt)).await
    }

    fn support_returning(&self) -> bool {
        self.0.support_returning()
    }
}

/// Rewrites `LIMIT $n` to `LIMIT <value>` in a PostgreSQL statement when the bound
/// value is an integer. Statement text built by sea-query holds no user data (all of it
/// is bound), so the pattern cannot occur inside a literal.
fn inline_limits(mut stmt: Statement) -> Statement {
    const MARK: &str = " LIMIT $";
    if stmt.db_backend != DbBackend::Postgres || !stmt.sql.contains(MARK) {
        return stmt;
    }
    let Some(values) = &stmt.values else {
        return stmt;
    };
    let mut sql = String::with_capacity(stmt.sql.len());
    let mut rest = stmt.sql.as_str();
    while let Some(at) = rest.find(MARK) {
        let digits_start = at + MARK.len();
        let digits_len = rest[digits_start..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let literal = rest[digits_start..digits_start + digits_len]
            .parse::<usize>()
            .ok()
            .and_then(|n| values.0.get(n.checked_sub(1)?))
            .and_then(|value| match value {
                sea_orm::Value::BigUnsigned(Some(n)) => Some(n.to_string()),
                sea_orm::Value::BigInt(Some(n)) if *n >= 0 => Some(n.to_string()),
                sea_orm::Value::Unsigned(Some(n)) => Some(n.to_string()),
                sea_orm::Value::Int(Some(n)) if *n >= 0 => Some(n.to_string()),
                _ => None,
            });
        let end = digits_start + digits_len;
        match literal {
            Some(literal) => {
                sql.push_str(&rest[..at]);
                sql.push_str(" LIMIT ");
                sql.push_str(&literal);
            }
            None => sql.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    sql.push_str(rest);
    stmt.sql = sql;
    stmt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlines_integer_limits_of_postgres_statements_only() {
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"SELECT "id" FROM "t" WHERE "a" = $1 AND "id" IN (SELECT "id" FROM "u" LIMIT $2) ORDER BY "id" LIMIT $3"#,
            [5i64.into(), 11u64.into(), "x".into()],
        );
        let sql = inline_limits(stmt).sql;
        assert_eq!(
            sql,
            r#"SELECT "id" FROM "t" WHERE "a" = $1 AND "id" IN (SELECT "id" FROM "u" LIMIT 11) ORDER BY "id" LIMIT $3"#
        );
        let sqlite =
            Statement::from_sql_and_values(DbBackend::Sqlite, "SELECT 1 LIMIT ?", [11u64.into()]);
        assert_eq!(inline_limits(sqlite).sql, "SELECT 1 LIMIT ?");
        let ten = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 LIMIT $10",
            (1..=10u64).map(Into::into).collect::<Vec<sea_orm::Value>>(),
        );
        assert_eq!(inline_limits(ten).sql, "SELECT 1 LIMIT 10");
    }

    /// The bundled SQLite is built without memory statistics (`.cargo/config.toml`), so
    /// its allocations take no process-wide lock.
    #[tokio::test]
    async fn bundled_sqlite_keeps_no_memory_statistics() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let found = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT compile_options FROM pragma_compile_options \
                 WHERE compile_options = 'DEFAULT_MEMSTATUS=0'",
            ))
            .await
            .unwrap();
        assert!(
            found.is_some(),
            "SQLite was built without LIBSQLITE3_FLAGS from .cargo/config.toml"
        );
    }

    /// Every pooled SQLite connection keeps its plans, including ones the pool opens
    /// later; a fresh raw connection shows the setting is not SQLite's default.
    #[tokio::test]
    async fn every_sqlite_connection_has_stable_plans() {
        use sea_orm::sqlx::{Connection, sqlite::SqliteConnectOptions};
        let dir = std::env::temp_dir().join(format!("accord-qpsg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plans.db");
        let args = DatabaseArgs {
            url: format!("sqlite://{}?mode=rwc", file.display()),
            pool_size: 3,
        };
        let db = connect(&args, &Metrics::new()).await.unwrap();
        let pool = db.get_sqlite_connection_pool();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            assert_eq!(
                qpsg(conn.lock_handle().await.unwrap().as_raw_handle(), -1),
                Some(true)
            );
            held.push(conn);
        }
        let mut raw = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&file))
            .await
            .unwrap();
        assert_eq!(
            qpsg(raw.lock_handle().await.unwrap().as_raw_handle(), -1),
            Some(false)
        );
        drop(held);
        std::fs::remove_dir_all(&dir).ok();
    }
}
