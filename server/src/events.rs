//! Change events for subscribers. Services publish after their transaction commits;
//! each subscription decides per event, against the subscriber's territory access at
//! that moment, whether to deliver it. So a membership removed while a client is
//! subscribed takes effect on the very next event, like on the next HTTP request.
//!
//! Deal changes stay on the instance they happened on: a client connected to one
//! instance hears about changes made through it. Fired reminders cross instances: on
//! PostgreSQL the scheduler that delivers one announces it with `NOTIFY`, and every
//! instance's listener ([`listen_postgres`]) puts it on its own bus. The same listener
//! wakes the local scheduler when any instance schedules a reminder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use accord_entities::opportunity;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbBackend};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};

/// PostgreSQL channel: a reminder was scheduled or moved; schedulers look again.
pub const WAKE_CHANNEL: &str = "accord_reminders_wake";
/// PostgreSQL channel: a reminder was fired; its JSON is the payload.
pub const FIRED_CHANNEL: &str = "accord_reminders_fired";

/// Events a slow subscriber may fall behind by before it misses some (it is told).
const BUFFER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Created,
    Updated,
    StageChanged,
    Deleted,
}

/// A deal as it was when the event happened.
#[derive(Debug, Clone)]
pub struct OpportunityEvent {
    pub operation: Operation,
    pub opportunity: opportunity::Model,
    pub actor_id: i64,
    pub at: DateTime<Utc>,
}

/// A reminder handed to its recipient's live sessions (the `in_app` channel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReminderFired {
    pub reminder_id: i64,
    pub recipient_id: i64,
    pub opportunity_id: Option<i64>,
    pub message: String,
    pub due_at: DateTime<Utc>,
    pub idempotency_key: String,
    pub fired_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct EventBus {
    opportunities: broadcast::Sender<OpportunityEvent>,
    reminders: broadcast::Sender<ReminderFired>,
    /// Wakes this instance's scheduler (see `scheduler/`).
    wake: Arc<Notify>,
    /// How far ahead (ms) the running scheduler finds new reminders on its own, without
    /// a wake: its idle ceiling plus how early it claims. 0: no scheduler here, so
    /// every new reminder is announced.
    finds_unwoken_ms: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            opportunities: broadcast::channel(BUFFER).0,
            reminders: broadcast::channel(BUFFER).0,
            wake: Arc::new(Notify::new()),
            finds_unwoken_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl EventBus {
    pub fn opportunity(
        &self,
        operation: Operation,
        opportunity: &opportunity::Model,
        actor_id: i64,
    ) {
        // No subscribers is not an error.
        let _ = self.opportunities.send(OpportunityEvent {
            operation,
            opportunity: opportunity.clone(),
            actor_id,
            at: Utc::now(),
        });
    }

    pub fn opportunities(&self) -> broadcast::Receiver<OpportunityEvent> {
        self.opportunities.subscribe()
    }

    /// Hands a fired reminder to this instance's subscribers.
    pub fn reminder_fired(&self, fired: ReminderFired) {
        let _ = self.reminders.send(fired);
    }

    pub fn reminders(&self) -> broadcast::Receiver<ReminderFired> {
        self.reminders.subscribe()
    }

    /// Tells this instance's scheduler to look for due reminders again. A wake with no
    /// scheduler waiting is kept for its next wait, so none is lost in between.
    pub fn wake_scheduler(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn wakes(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Set by the scheduler when it starts: reminders due further ahead than `horizon`
    /// are found by its ordinary wake-ups.
    pub(crate) fn scheduler_finds_unwoken(&self, horizon: Duration) {
        self.finds_unwoken_ms.store(
            u64::try_from(horizon.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Whether a new reminder first due at `due` (unknown: `None`) needs the schedulers
    /// woken. One due later than this instance's scheduler finds unwoken does not: that
    /// scheduler delivers it in time, and waking every scheduler for it would cost each
    /// a claim and a look-up for nothing (a stage move that schedules a reminder a week
    /// out would make every scheduler claim at once).
    pub fn wake_needed(&self, due: Option<DateTime<Utc>>) -> bool {
        let horizon = self.finds_unwoken_ms.load(Ordering::Relaxed);
        match due {
            Some(due) if horizon > 0 => {
                let horizon =
                    chrono::Duration::milliseconds(i64::try_from(horizon).unwrap_or(i64::MAX / 2));
                due <= Utc::now() + horizon
            }
            _ => true,
        }
    }
}

/// On PostgreSQL, listens for other instances' (and this one's) announcements and puts
/// them on `bus`. Reconnects after a lost connection, and wakes the scheduler then, since
/// announcements made in between are gone. Returns `None` on SQLite (one instance).
pub fn listen_postgres(
    db: &DatabaseConnection,
    bus: EventBus,
) -> Option<tokio::task::JoinHandle<()>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let pool = db.get_postgres_connection_pool().clone();
    Some(tokio::spawn(async move {
        loop {
            match listen_once(&pool, &bus).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "reminder listener lost its connection; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    bus.wake_scheduler();
                }
            }
        }
    }))
}

async fn listen_once(
    pool: &sea_orm::sqlx::PgPool,
    bus: &EventBus,
) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen_all([WAKE_CHANNEL, FIRED_CHANNEL]).await?;
    // Anything announced before the listener was up is found by looking once.
    bus.wake_scheduler();
    loop {
        let note = listener.recv().await?;
        match note.channel() {
            WAKE_CHANNEL => bus.wake_scheduler(),
            FIRED_CHANNEL => match serde_json::from_str::<ReminderFired>(note.payload()) {
                Ok(fired) => bus.reminder_fired(fired),
                Err(e) => tracing::warn!(error = %e, "unreadable reminder announcement dropped"),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reminders_due_within_the_schedulers_horizon_wake_them() {
        let bus = EventBus::default();
        let in_a_week = Utc::now() + chrono::Duration::days(7);
        // No scheduler on this instance: others may sleep longer, so always announce.
        assert!(bus.wake_needed(Some(in_a_week)));
        bus.scheduler_finds_unwoken(Duration::from_secs(33));
        assert!(!bus.wake_needed(Some(in_a_week)));
        assert!(!bus.wake_needed(Some(Utc::now() + chrono::Duration::seconds(40))));
        assert!(bus.wake_needed(Some(Utc::now() + chrono::Duration::seconds(20))));
        assert!(bus.wake_needed(Some(Utc::now() - chrono::Duration::seconds(5))));
        // An unknown due time (a moved close date or event) always wakes.
        assert!(bus.wake_needed(None));
    }
}
