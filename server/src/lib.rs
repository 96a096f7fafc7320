//! Accord CRM server library: the binary in `main.rs` and the end-to-end tests both build
//! the application through [`app::build`].

pub mod app;
pub mod auth;
pub mod authz;
pub mod calendar_http;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod metrics;
pub mod org_chart_http;
pub mod sandbox;
pub mod scheduler;
pub mod seed;
pub mod services;
