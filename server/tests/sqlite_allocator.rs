//! Its own test binary, so its own process: SQLite takes an allocator only before its
//! first connection, and the library's unit tests open connections of their own.

use accord::config::DatabaseArgs;
use accord::metrics::Metrics;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

#[tokio::test]
async fn sqlite_allocates_through_mimalloc() {
    let args = DatabaseArgs {
        url: "sqlite::memory:".into(),
        pool_size: 2,
    };
    let db = accord::db::connect(&args, &Metrics::new())
        .await
        .expect("connect");
    assert!(accord::db::sqlite_on_mimalloc());
    // Allocation-heavy work on the new allocator: a sort of large rows, values copied out.
    db.execute_unprepared(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t (id, body) SELECT i, printf('%.*c', 200 + i % 300, 'x') FROM n;",
    )
    .await
    .expect("fill");
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT id, body FROM t ORDER BY body DESC, id LIMIT 5000",
        ))
        .await
        .expect("sorted read");
    assert_eq!(rows.len(), 5000);
    let first: String = rows[0].try_get_by_index(1).expect("body");
    assert_eq!(first.len(), 499);
}
