//! End-to-end tests: each starts a real server with a fresh database and speaks GraphQL
//! over HTTP. Run on SQLite by default; `ACCORD_TEST_BACKEND=postgres` runs the same
//! suite on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

mod e2e {
    mod access;
    mod auth;
    mod backend;
    mod calendar;
    mod cli;
    mod committee_pages;
    mod crm;
    mod errors;
    mod leads;
    mod nplus1;
    mod opportunities;
    mod org_chart;
    mod pagination;
    mod reminder_fleet;
    mod reminders;
    mod stage_scripts;
    mod territories;
    mod territory_oracle;
}
