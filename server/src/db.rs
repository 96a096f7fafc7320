//! Connecting, migrating, and transaction helpers shared by all services.

use std::sync::Arc;
use std::time::Duration;

use accord_migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{
    MysqlQueryBuilder, PostgresQueryBuilder, QueryBuilder, QueryStatementBuilder, SqlWriter,
    SqliteQueryBuilder, Values,
};
use sea_orm::sqlx::sqlite::{SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseArgs;
use crate::metrics::Metrics;

/// A pooled connection idle at least this long is tested before it is handed out.
const IDLE_BEFORE_TEST: Duration = Duration::from_secs(30);

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
        // A connection is tested (a round trip) before it is handed out only when it has
        // been idle long enough for a server restart, a proxy or a firewall to have
        // dropped it. Testing every checkout, the default, added a round trip to every
        // statement run outside a transaction.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_TEST)
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

/// Writes that need nothing back from one another, sent to the database in one round
/// trip: on PostgreSQL as one statement (each write but the last a data-modifying
/// `WITH` clause), on SQLite as the statements one after another in one call.
///
/// Why: a stage move writes the deal, its transition, the reminders it cancels and
/// schedules, its tasks and its audit entry. One statement each cost a round trip each
/// (a socket exchange with PostgreSQL, a hand-off to SQLite's connection thread), and
/// those round trips were most of a move's time.
///
/// What the two backends guarantee differs, so a batch may hold only writes that do not
/// read each other's rows: PostgreSQL runs the `WITH` clauses on one snapshot (none sees
/// another's rows), SQLite runs the statements in order. Run it inside a transaction:
/// on SQLite an error leaves the statements before it written until the rollback.
pub struct WriteBatch {
    sql: BatchWriter,
    /// Where each statement's text ends in `sql.text`.
    ends: Vec<usize>,
}

impl WriteBatch {
    pub fn new(backend: DbBackend) -> Self {
        WriteBatch {
            sql: BatchWriter {
                backend,
                text: String::with_capacity(1024),
                values: Vec::new(),
            },
            ends: Vec::new(),
        }
    }

    /// Adds a write; it runs after the writes added before it (on SQLite; on PostgreSQL
    /// they share a snapshot).
    pub fn push<S: QueryStatementBuilder>(&mut self, statement: &S) {
        self.write(statement);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn write<S: QueryStatementBuilder>(&mut self, statement: &S) {
        match self.sql.backend {
            DbBackend::Postgres => {
                statement.build_collect_any_into(&PostgresQueryBuilder, &mut self.sql)
            }
            DbBackend::Sqlite => {
                statement.build_collect_any_into(&SqliteQueryBuilder, &mut self.sql)
            }
            _ => statement.build_collect_any_into(&MysqlQueryBuilder, &mut self.sql),
        }
        self.ends.push(self.sql.text.len());
    }

    /// Runs the batch's writes and then `last`, and answers the rows `last` returns
    /// (give it a `RETURNING` clause to tell whether it wrote).
    pub async fn run_then<C: ConnectionTrait, S: QueryStatementBuilder>(
        mut self,
        db: &C,
        last: &S,
    ) -> Result<Vec<QueryResult>, DbErr> {
        self.write(last);
        db.query_all_raw(self.into_statement()).await
    }

    /// Runs the batch's writes; an empty batch sends nothing.
    pub async fn run<C: ConnectionTrait>(self, db: &C) -> Result<(), DbErr> {
        if self.is_empty() {
            return Ok(());
        }
        db.execute_raw(self.into_statement()).await.map(|_| ())
    }

    /// The statements as one: PostgreSQL `WITH "write_0" AS (…), … <last>`, SQLite
    /// `…; …; <last>`. The text is assembled in the order it was written, so the
    /// parameters keep their numbers.
    fn into_statement(self) -> Statement {
        let BatchWriter {
            backend,
            text,
            values,
        } = self.sql;
        let mut sql = String::with_capacity(text.len() + 24 * self.ends.len());
        let mut start = 0;
        let last = self.ends.len().saturating_sub(1);
        for (i, &end) in self.ends.iter().enumerate() {
            let part = &text[start..end];
            start = end;
            match backend {
                DbBackend::Postgres if i < last => {
                    sql.push_str(if i == 0 { "WITH " } else { ", " });
                    sql.push_str(&format!("\"write_{i}\" AS ("));
                    sql.push_str(part);
                    sql.push(')');
                }
                DbBackend::Postgres => {
                    if i > 0 {
                        sql.push(' ');
                    }
                    sql.push_str(part);
                }
                _ => {
                    if i > 0 {
                        sql.push_str("; ");
                    }
                    sql.push_str(part);
                }
            }
        }
        Statement::from_sql_and_values(backend, sql, Values(values))
    }
}

/// Collects the batch's statement text and parameters, numbering the parameters across
/// statements (`$1`… on PostgreSQL; SQLite's `?` count on from the previous statement's).
struct BatchWriter {
    backend: DbBackend,
    text: String,
    values: Vec<sea_orm::Value>,
}

impl std::fmt::Write for BatchWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.text.push_str(s);
        Ok(())
    }
}

impl std::fmt::Display for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl SqlWriter for BatchWriter {
    fn push_param<T: QueryBuilder>(&mut self, value: sea_orm::Value, _: &T) {
        self.values.push(value);
        match self.backend {
            DbBackend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
            _ => self.text.push('?'),
        }
    }

    fn as_writer(&mut self) -> &mut dyn std::fmt::Write {
        self
    }
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

    fn insert_into_t(id: i64, v: &str) -> sea_orm::sea_query::InsertStatement {
        use sea_orm::sea_query::{Alias, Query};
        Query::insert()
            .into_table(Alias::new("t"))
            .columns([Alias::new("id"), Alias::new("v")])
            .values_panic([id.into(), v.into()])
            .to_owned()
    }

    fn set_v_returning(id: i64, v: &str) -> sea_orm::sea_query::UpdateStatement {
        use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
        Query::update()
            .table(Alias::new("t"))
            .value(Alias::new("v"), v)
            .and_where(Expr::col(Alias::new("id")).eq(id))
            .returning_col(Alias::new("v"))
            .to_owned()
    }

    #[test]
    fn a_postgres_batch_is_one_statement_with_its_parameters_numbered_in_order() {
        let mut batch = WriteBatch::new(DbBackend::Postgres);
        batch.push(&insert_into_t(1, "a"));
        batch.push(&insert_into_t(2, "b"));
        batch.write(&set_v_returning(1, "c"));
        let stmt = batch.into_statement();
        assert_eq!(
            stmt.sql,
            r#"WITH "write_0" AS (INSERT INTO "t" ("id", "v") VALUES ($1, $2)), "write_1" AS (INSERT INTO "t" ("id", "v") VALUES ($3, $4)) UPDATE "t" SET "v" = $5 WHERE "id" = $6 RETURNING "v""#
        );
        let values: Vec<sea_orm::Value> = stmt.values.unwrap().0;
        assert_eq!(
            values,
            vec![
                1i64.into(),
                "a".into(),
                2i64.into(),
                "b".into(),
                "c".into(),
                1i64.into()
            ]
        );
        let mut one = WriteBatch::new(DbBackend::Postgres);
        one.push(&insert_into_t(1, "a"));
        assert_eq!(
            one.into_statement().sql,
            r#"INSERT INTO "t" ("id", "v") VALUES ($1, $2)"#
        );
    }

    /// On SQLite the statements run in order in one call, their `?` parameters bound
    /// across statements, and the rows answered are the last statement's.
    #[tokio::test]
    async fn a_sqlite_batch_runs_its_statements_in_order_and_answers_the_last() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .await
            .unwrap();
        let mut batch = WriteBatch::new(DbBackend::Sqlite);
        batch.push(&insert_into_t(1, "a"));
        batch.push(&insert_into_t(2, "b"));
        // Sees the row the first insert wrote.
        let rows = batch.run_then(&db, &set_v_returning(1, "c")).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get_by_index::<String>(0).unwrap(), "c");
        let mut nothing = WriteBatch::new(DbBackend::Sqlite);
        nothing.push(&insert_into_t(3, "d"));
        let rows = nothing
            .run_then(&db, &set_v_returning(9, "e"))
            .await
            .unwrap();
        assert!(
            rows.is_empty(),
            "an update that matches nothing returns no row"
        );
        let all = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id, v FROM t ORDER BY id",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get_by_index::<i64>(0).unwrap(),
                    r.try_get_by_index::<String>(1).unwrap(),
                )
            })
            .collect::<Vec<_>>();
        assert_eq!(
            all,
            [
                (1, "c".to_owned()),
                (2, "b".to_owned()),
                (3, "d".to_owned())
            ]
        );
        // A failing statement fails the batch.
        let mut failing = WriteBatch::new(DbBackend::Sqlite);
        failing.push(&insert_into_t(4, "x"));
        failing.push(&insert_into_t(1, "duplicate"));
        assert!(failing.run(&db).await.is_err());
        WriteBatch::new(DbBackend::Sqlite).run(&db).await.unwrap();
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
