//! Durable reminder delivery, one scheduler per server instance.
//!
//! - **Claim.** The claimer takes due reminders under a lease ([`claims::claim`]) in
//!   batches, ahead of the delivery slots: up to [`CLAIM_AHEAD`] claimed reminders wait
//!   for a slot, so a burst costs one claim round trip per batch rather than one per
//!   freed slot. Instances claim side by side on PostgreSQL; nothing is claimed twice
//!   while a lease holds.
//! - **Deliver.** Each reminder gets its own task, which waits for one of the
//!   `ACCORD_DELIVERY_CONCURRENCY` slots, sends on the reminder's channels ([`channels`])
//!   and reports the outcome. A slow webhook holds one slot, never the claimer. A
//!   reminder that waited for a slot through half its lease is left alone: the lease
//!   runs out and the next claim (on any instance) delivers it, so a claim that went
//!   stale in the queue never races another instance's delivery.
//! - **Acknowledge.** The acker writes outcomes in small batches: delivered; failed, to
//!   be retried after an exponential backoff; dead after the last attempt.
//! - **Crash.** An instance that dies between claim and acknowledgement loses nothing:
//!   the claim set the reminder's `attempt_at` to the lease's end, so once the lease runs
//!   out the reminder is due again and any instance delivers it, with the same
//!   idempotency key.
//! - **Idle.** With nothing due the claimer sleeps until the next `attempt_at`. Scheduling
//!   a reminder wakes it (through PostgreSQL `NOTIFY` on every instance); a long
//!   ceiling (`ACCORD_SCHEDULER_IDLE_MS`) bounds the sleep for rows written behind
//!   Accord's back.

pub mod channels;
pub mod claims;
pub mod egress;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use accord_entities::{reminder, territory_membership as membership, user, webhook};
use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::config::Delivery;
use crate::events::EventBus;
use crate::metrics::{Metrics, OutcomeLabel};
use channels::{Deliverer, Missed, Recipient};

/// Most reminders claimed by one statement.
const CLAIM_BATCH: usize = 500;
/// Claimed reminders that may wait for a delivery slot, beyond those being delivered.
const CLAIM_AHEAD: usize = CLAIM_BATCH;
/// Smallest claim worth a round trip while deliveries are under way: below it the
/// claimer waits for more room instead of claiming reminders one freed slot at a time.
const CLAIM_MIN: usize = CLAIM_BATCH / 4;
/// Pause when something is due but every due row is held by another instance's claim
/// in progress: long enough not to spin, short against the one-second promise.
const CONTENDED_PAUSE: Duration = Duration::from_millis(20);
/// How long the acker gathers outcomes into one statement.
const ACK_WINDOW: Duration = Duration::from_millis(10);
const ACK_BATCH: usize = 1000;

/// The running scheduler's tasks; dropping the handle stops them.
pub struct SchedulerHandle {
    tasks: Vec<JoinHandle<()>>,
    pub instance: String,
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the claimer and the acker of this instance.
pub fn spawn(
    db: DatabaseConnection,
    bus: EventBus,
    metrics: Arc<Metrics>,
    config: &Delivery,
) -> anyhow::Result<SchedulerHandle> {
    let instance = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
    let deliverer = Arc::new(Deliverer::new(
        db.clone(),
        bus.clone(),
        config,
        instance.clone(),
    )?);
    let (acks, ack_queue) = mpsc::unbounded_channel();
    let claimer = Claimer {
        db: db.clone(),
        bus,
        deliverer,
        slots: Arc::new(Semaphore::new(config.delivery_concurrency.max(1))),
        room: Arc::new(Semaphore::new(
            config.delivery_concurrency.max(1) + CLAIM_AHEAD,
        )),
        acks,
        instance: instance.clone(),
        lease: chrono::Duration::milliseconds(config.reminder_lease_ms.max(1) as i64),
        idle: Duration::from_millis(config.scheduler_idle_ms.max(1)),
    };
    let acker = Acker {
        db,
        metrics,
        max_attempts: config.reminder_max_attempts.max(1),
        backoff: Duration::from_millis(config.reminder_backoff_ms),
    };
    Ok(SchedulerHandle {
        tasks: vec![
            tokio::spawn(claimer.run()),
            tokio::spawn(acker.run(ack_queue)),
        ],
        instance,
    })
}

enum Outcome {
    Delivered,
    Missed(Missed),
    /// Nobody left to receive it (the user was deleted or deactivated).
    Cancelled(&'static str),
}

struct Ack {
    reminder: reminder::Model,
    owner: Arc<str>,
    outcome: Outcome,
}

struct Claimer {
    db: DatabaseConnection,
    bus: EventBus,
    deliverer: Arc<Deliverer>,
    /// One permit per delivery in flight.
    slots: Arc<Semaphore>,
    /// One permit per claimed reminder not yet acknowledged (waiting or in flight).
    room: Arc<Semaphore>,
    acks: mpsc::UnboundedSender<Ack>,
    instance: String,
    lease: chrono::Duration,
    idle: Duration,
}

impl Claimer {
    async fn run(self) {
        let wakes = self.bus.wakes();
        let mut claims: u64 = 0;
        loop {
            // Only this loop takes `room` permits, so what is free now stays free until
            // the claim below.
            match self.room.acquire_many(CLAIM_MIN as u32).await {
                Ok(permits) => drop(permits),
                Err(_) => return,
            }
            claims += 1;
            let owner: Arc<str> = format!("{}#{claims}", self.instance).into();
            let limit = self.room.available_permits().min(CLAIM_BATCH);
            match claims::claim(&self.db, &owner, Utc::now(), self.lease, limit as u64).await {
                Ok(batch) => {
                    let full = batch.len() == limit;
                    if !batch.is_empty() {
                        self.dispatch(batch, owner).await;
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming reminders failed; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let wait = match claims::next_attempt(&self.db).await {
                Ok(Some(at)) => (at - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(CONTENDED_PAUSE),
                Ok(None) => self.idle,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for the next reminder failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait.min(self.idle)) => {}
                _ = wakes.notified() => {}
            }
        }
    }

    async fn dispatch(&self, batch: Vec<reminder::Model>, owner: Arc<str>) {
        let recipients = match recipients(&self.db, &batch).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "loading reminder recipients failed");
                for r in batch {
                    let missed = Missed {
                        error: "recipient lookup failed".into(),
                        delivered: r.delivered_channels.clone(),
                    };
                    self.ack(r, &owner, Outcome::Missed(missed));
                }
                return;
            }
        };
        let claimed_at = Utc::now();
        for r in batch {
            let Ok(room) = Arc::clone(&self.room).acquire_owned().await else {
                return;
            };
            let slots = Arc::clone(&self.slots);
            let deliverer = Arc::clone(&self.deliverer);
            let acks = self.acks.clone();
            let owner = Arc::clone(&owner);
            let to = recipients.get(&r.recipient_id).cloned();
            let start_by = claimed_at + self.lease / 2;
            tokio::spawn(async move {
                let _room = room;
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                if Utc::now() > start_by {
                    tracing::debug!(
                        reminder = r.id,
                        "claim went stale waiting for a slot; the lease's end hands it on"
                    );
                    return;
                }
                let outcome = match to {
                    None => Outcome::Cancelled("the recipient no longer exists"),
                    Some(to) if !to.user.active => {
                        Outcome::Cancelled("the recipient is deactivated")
                    }
                    Some(to) => match deliverer.deliver(&r, &to).await {
                        Ok(()) => Outcome::Delivered,
                        Err(missed) => Outcome::Missed(missed),
                    },
                };
                let _ = acks.send(Ack {
                    reminder: r,
                    owner,
                    outcome,
                });
            });
        }
    }

    fn ack(&self, reminder: reminder::Model, owner: &Arc<str>, outcome: Outcome) {
        let _ = self.acks.send(Ack {
            reminder,
            owner: Arc::clone(owner),
            outcome,
        });
    }
}

/// The users a batch goes to, with their own webhooks and their teams'.
async fn recipients(
    db: &DatabaseConnection,
    batch: &[reminder::Model],
) -> Result<HashMap<i64, Arc<Recipient>>, DbErr> {
    let mut ids: Vec<i64> = batch.iter().map(|r| r.recipient_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(ids.clone()))
        .all(db)
        .await?;
    let teams: Vec<(i64, i64)> = membership::Entity::find()
        .filter(membership::Column::UserId.is_in(ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.territory_id))
        .collect();
    let territory_ids: Vec<i64> = teams.iter().map(|(_, t)| *t).collect();
    let hooks = webhook::Entity::find()
        .filter(webhook::Column::Active.eq(true))
        .filter(
            Condition::any()
                .add(webhook::Column::UserId.is_in(ids))
                .add(webhook::Column::TerritoryId.is_in(territory_ids)),
        )
        .all(db)
        .await?;
    Ok(users
        .into_iter()
        .map(|u| {
            let webhooks = hooks
                .iter()
                .filter(|h| {
                    h.user_id == Some(u.id)
                        || h.territory_id.is_some_and(|t| teams.contains(&(u.id, t)))
                })
                .cloned()
                .collect();
            (u.id, Arc::new(Recipient { user: u, webhooks }))
        })
        .collect())
}

struct Acker {
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    max_attempts: i32,
    backoff: Duration,
}

impl Acker {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Ack>) {
        while let Some(first) = queue.recv().await {
            let mut acks = vec![first];
            let until = tokio::time::Instant::now() + ACK_WINDOW;
            while acks.len() < ACK_BATCH {
                match tokio::time::timeout_at(until, queue.recv()).await {
                    Ok(Some(ack)) => acks.push(ack),
                    _ => break,
                }
            }
            // A failed write leaves the reminders leased; they are delivered again when
            // the lease ends, with their key. Try a few times before accepting that.
            for attempt in 0..3 {
                match self.write(&acks).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "acknowledging reminders failed");
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
        }
    }

    async fn write(&self, acks: &[Ack]) -> Result<(), DbErr> {
        let now = Utc::now();
        let mut delivered: HashMap<&str, Vec<i64>> = HashMap::new();
        for ack in acks {
            let r = &ack.reminder;
            match &ack.outcome {
                Outcome::Delivered => {
                    delivered.entry(&ack.owner).or_default().push(r.id);
                    self.count("delivered");
                    let late = (now - r.due_at).to_std().unwrap_or(Duration::ZERO);
                    self.metrics
                        .reminder_lateness_seconds
                        .observe(late.as_secs_f64());
                }
                Outcome::Missed(missed) => {
                    let retry_at = (r.attempts < self.max_attempts)
                        .then(|| now + claims::backoff(self.backoff, r.attempts));
                    self.count(if retry_at.is_some() { "failed" } else { "dead" });
                    claims::failed(
                        &self.db,
                        claims::Failure {
                            id: r.id,
                            owner: &ack.owner,
                            error: &missed.error,
                            delivered_channels: &missed.delivered,
                        },
                        retry_at,
                        now,
                    )
                    .await?;
                }
                Outcome::Cancelled(why) => {
                    self.count("cancelled");
                    claims::cancelled(&self.db, r.id, &ack.owner, why).await?;
                }
            }
        }
        for (owner, ids) in delivered {
            claims::delivered(&self.db, owner, &ids, now).await?;
        }
        Ok(())
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .reminders
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}
