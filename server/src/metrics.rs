//! Prometheus metrics, kept in a registry owned by the app (no global state, so several
//! apps can live in one test process).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub graphql_requests: Family<OutcomeLabel, Counter>,
    pub graphql_seconds: Histogram,
    pub db_statements: Counter<u64, AtomicU64>,
    pub db_seconds: Histogram,
    /// Records that answered their selection directly (`graphql::types::Immediate`).
    pub graphql_direct_answers: Counter<u64, AtomicU64>,
    /// Reminder deliveries by outcome: delivered, failed (will retry), dead, cancelled.
    pub reminders: Family<OutcomeLabel, Counter>,
    /// From a reminder's due time to its delivery.
    pub reminder_lateness_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("accord");
        let graphql_requests = Family::<OutcomeLabel, Counter>::default();
        let graphql_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let db_statements = Counter::<u64, AtomicU64>::default();
        let db_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 18));
        let graphql_direct_answers = Counter::<u64, AtomicU64>::default();
        registry.register(
            "graphql_records_answered_directly",
            "Records (listed deals, and records nested in one that was not) whose whole \
             selection was answered from data at hand, without per-field resolvers",
            graphql_direct_answers.clone(),
        );
        registry.register(
            "graphql_requests",
            "GraphQL HTTP requests by outcome",
            graphql_requests.clone(),
        );
        registry.register(
            "graphql_request_duration_seconds",
            "GraphQL request latency",
            graphql_seconds.clone(),
        );
        registry.register(
            "db_statements",
            "SQL statements executed",
            db_statements.clone(),
        );
        registry.register(
            "db_statement_duration_seconds",
            "SQL statement latency",
            db_seconds.clone(),
        );
        let reminders = Family::<OutcomeLabel, Counter>::default();
        let reminder_lateness_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        registry.register(
            "reminder_deliveries",
            "Reminder deliveries by outcome",
            reminders.clone(),
        );
        registry.register(
            "reminder_lateness_seconds",
            "Time from a reminder's due time to its delivery",
            reminder_lateness_seconds.clone(),
        );
        Arc::new(Metrics {
            registry,
            graphql_requests,
            graphql_seconds,
            db_statements,
            db_seconds,
            graphql_direct_answers,
            reminders,
            reminder_lateness_seconds,
        })
    }

    /// Statements executed since start; tests and benchmarks diff this around a request.
    pub fn statements(&self) -> u64 {
        self.db_statements.inner().load(Ordering::Relaxed)
    }

    /// Records answered directly since start (see `graphql_direct_answers`).
    pub fn direct_answers(&self) -> u64 {
        self.graphql_direct_answers.inner().load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
