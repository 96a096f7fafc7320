//! Connecting, migrating, and transaction helpers shared by all services.

use std::sync::Arc;
use std::time::Duration;

use accord_migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseArgs;
use crate::metrics::Metrics;

/// Opens the pool. SQLite gets WAL (readers never block the writer) and a busy timeout;
/// every statement is counted and timed into `metrics`.
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
        });
    let mut db = Database::connect(opts).await?;
    let metrics = Arc::clone(metrics);
    db.set_metric_callback(move |info| {
        metrics.db_statements.inc();
        metrics.db_seconds.observe(info.elapsed.as_secs_f64());
    });
    Ok(db)
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
