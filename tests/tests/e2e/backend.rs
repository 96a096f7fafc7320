use accord_e2e::{Backend, TestServer, backend};
use sea_orm::DbBackend;

/// Guards the PostgreSQL tier against silently running on SQLite: the server under test
/// must really use the backend the run asked for.
#[tokio::test]
async fn server_runs_on_the_requested_backend() {
    let server = TestServer::start().await;
    let actual = server.state.services.db.get_database_backend();
    match backend() {
        Backend::Sqlite => assert_eq!(actual, DbBackend::Sqlite),
        Backend::Postgres => {
            assert_eq!(actual, DbBackend::Postgres);
            assert!(server.database_url.starts_with("postgres"));
        }
    }
    println!("ACCORD_E2E_BACKEND={actual:?}");
}
