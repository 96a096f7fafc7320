//! Durable reminder delivery, one scheduler per server instance.
//!
//! - **Claim.** The claimer takes due reminders under a lease ([`claims::claim`]) in
//!   batches, ahead of the delivery slots: up to [`CLAIM_AHEAD`] claimed reminders wait
//!   for a slot, so a burst costs one claim round trip per batch rather than one per
//!   freed slot. Instances claim side by side on PostgreSQL; nothing is claimed twice
//!   while a lease holds.
//! - **Claim early.** A first attempt may be claimed up to [`CLAIM_EARLY`] (at most a
//!   quarter of the lease) before its due time and is held until then, so the claim's
//!   round trips happen before the due time, not after it: ten thousand reminders due
//!   in the same second are in memory when the second comes. At their due time the held
//!   reminders are checked in groups ([`claims::still_held`]); one cancelled or moved
//!   while held is not sent. Up to [`CLAIM_EARLY_MAX`] are held at once, apart from the
//!   room for due ones, so holding a burst never stops the claimer taking what is due.
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
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::config::Delivery;
use crate::events::EventBus;
use crate::metrics::{Metrics, OutcomeLabel};
use channels::{Deliverer, Missed, Recipient};

/// Most reminders claimed by one statement.
const CLAIM_BATCH: usize = 500;
/// Claimed reminders that may wait for a delivery slot, beyond those being delivered.
const CLAIM_AHEAD: usize = CLAIM_BATCH;
/// Most reminders held between a claim ahead of their due time and their
/// acknowledgement: a burst of ten thousand due in the same second is claimed before
/// it falls due.
const CLAIM_EARLY_MAX: usize = 10_000;
/// Smallest claim worth a round trip while deliveries are under way: below it the
/// claimer waits for more room instead of claiming reminders one freed slot at a time.
const CLAIM_MIN: usize = CLAIM_BATCH / 4;
/// How long before its due time a first attempt may be claimed: the claim's round trip
/// then happens before the due time instead of making the reminder late. At most a
/// quarter of the lease, so a reminder held until its due time still has a quarter of
/// the lease to find a delivery slot before its claim counts as stale.
const CLAIM_EARLY: Duration = Duration::from_secs(2);
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
        early_room: Arc::new(Semaphore::new(CLAIM_EARLY_MAX)),
        acks,
        instance: instance.clone(),
        lease: chrono::Duration::milliseconds(config.reminder_lease_ms.max(1) as i64),
        early: chrono::Duration::from_std(CLAIM_EARLY)
            .unwrap_or_default()
            .min(chrono::Duration::milliseconds(
                config.reminder_lease_ms as i64 / 4,
            )),
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
    /// One permit per reminder claimed once due and not yet acknowledged (waiting or
    /// in flight).
    room: Arc<Semaphore>,
    /// The same for reminders claimed ahead of their due time.
    early_room: Arc<Semaphore>,
    acks: mpsc::UnboundedSender<Ack>,
    instance: String,
    lease: chrono::Duration,
    /// How long before its due time a first attempt may be claimed.
    early: chrono::Duration,
    idle: Duration,
}

impl Claimer {
    async fn run(self) {
        let wakes = self.bus.wakes();
        let mut claims: u64 = 0;
        loop {
            // Only this loop takes `room` and `early_room` permits, so what is free
            // now stays free until the claims below.
            let room_short = self.room.available_permits() < CLAIM_MIN;
            let early_short = self.early_room.available_permits() < CLAIM_MIN;
            let now = Utc::now();
            let mut full = false;
            if !room_short {
                claims += 1;
                full |= self.claim(claims, now, claims::Due::Now).await;
            }
            if !full && !early_short {
                claims += 1;
                full |= self
                    .claim(claims, now, claims::Due::Before(now + self.early))
                    .await;
            }
            if full {
                continue;
            }
            let wait = match claims::next_attempt(&self.db).await {
                Ok(Some((at, first))) => {
                    let claimable = if first { at - self.early } else { at };
                    (claimable - Utc::now())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .max(CONTENDED_PAUSE)
                }
                Ok(None) => self.idle,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for the next reminder failed");
                    Duration::from_secs(1)
                }
            };
            // While the room is full, what is due waits for room, not for its time.
            tokio::select! {
                _ = tokio::time::sleep(wait.min(self.idle)) => {}
                _ = wakes.notified() => {}
                _ = self.room.acquire_many(CLAIM_MIN as u32), if room_short => {}
                _ = self.early_room.acquire_many(CLAIM_MIN as u32), if early_short => {}
            }
        }
    }

    /// One claim and its dispatch; true when it took as many as it could, so more may
    /// be waiting.
    async fn claim(&self, number: u64, now: DateTime<Utc>, which: claims::Due) -> bool {
        let room = match which {
            claims::Due::Now => &self.room,
            claims::Due::Before(_) => &self.early_room,
        };
        let limit = room.available_permits().min(CLAIM_BATCH);
        let owner: Arc<str> = format!("{}#{number}", self.instance).into();
        match claims::claim(&self.db, &owner, now, which, self.lease, limit as u64).await {
            Ok(batch) => {
                let full = batch.len() == limit;
                if !batch.is_empty() {
                    let hold = matches!(which, claims::Due::Before(_));
                    self.dispatch(batch, owner, now, Arc::clone(room), hold)
                        .await;
                }
                full
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming reminders failed; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        }
    }

    /// Hands a claimed batch to delivery: at once, or for a claim ahead of due time
    /// (`hold`), in groups that wake at their due time.
    async fn dispatch(
        &self,
        mut batch: Vec<reminder::Model>,
        owner: Arc<str>,
        claimed_at: DateTime<Utc>,
        room: Arc<Semaphore>,
        hold: bool,
    ) {
        let recipients = match recipients(&self.db, &batch).await {
            Ok(found) => Arc::new(found),
            Err(e) => {
                tracing::warn!(error = %e, "loading reminder recipients failed");
                for r in batch {
                    let missed = Missed {
                        error: "recipient lookup failed".into(),
                        delivered: r.delivered_channels.clone(),
                    };
                    let _ = self.acks.send(Ack {
                        reminder: r,
                        owner: Arc::clone(&owner),
                        outcome: Outcome::Missed(missed),
                    });
                }
                return;
            }
        };
        let sender = Sender {
            db: self.db.clone(),
            slots: Arc::clone(&self.slots),
            deliverer: Arc::clone(&self.deliverer),
            acks: self.acks.clone(),
            owner,
            recipients,
            // A claim that waited for a slot through half its lease is left to the
            // lease's end, so it never races another instance's delivery.
            start_by: claimed_at + self.lease / 2,
        };
        // Group the early ones by the tick they fall due in.
        batch.sort_by_key(|r| r.due_at);
        let mut waiting: Option<(DateTime<Utc>, Vec<Held>)> = None;
        for r in batch {
            let Ok(room) = Arc::clone(&room).acquire_owned().await else {
                return;
            };
            let held = Held { reminder: r, room };
            // A first attempt goes out at its due time (`attempt_at` was that time
            // before the claim moved it to the lease's end).
            if !hold || held.reminder.due_at <= Utc::now() {
                sender.send(held);
                continue;
            }
            let tick = ceil_to_tick(held.reminder.due_at);
            match &mut waiting {
                Some((at, group)) if *at == tick => group.push(held),
                _ => {
                    if let Some((at, group)) = waiting.replace((tick, vec![held])) {
                        tokio::spawn(sender.clone().send_at(at, group));
                    }
                }
            }
        }
        if let Some((at, group)) = waiting {
            tokio::spawn(sender.send_at(at, group));
        }
    }
}

/// Reminders claimed ahead of their due time are sent in groups per this tick, so a
/// group costs one check that it is still wanted, and none is sent early.
const TICK_MS: i64 = 10;

fn ceil_to_tick(at: DateTime<Utc>) -> DateTime<Utc> {
    let ms = at.timestamp_millis();
    let up = ms + (TICK_MS - ms.rem_euclid(TICK_MS)) % TICK_MS;
    DateTime::from_timestamp_millis(up).unwrap_or(at)
}

/// A claimed reminder with its place in the claimer's room.
struct Held {
    reminder: reminder::Model,
    room: OwnedSemaphorePermit,
}

/// Sends the reminders of one claim.
#[derive(Clone)]
struct Sender {
    db: DatabaseConnection,
    slots: Arc<Semaphore>,
    deliverer: Arc<Deliverer>,
    acks: mpsc::UnboundedSender<Ack>,
    owner: Arc<str>,
    recipients: Arc<HashMap<i64, Arc<Recipient>>>,
    start_by: DateTime<Utc>,
}

impl Sender {
    /// Waits until `at`, then sends those of `group` still wanted: a reminder
    /// cancelled or moved meanwhile stays as its change left it.
    async fn send_at(self, at: DateTime<Utc>, group: Vec<Held>) {
        if let Ok(wait) = (at - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let claimed: Vec<(i64, DateTime<Utc>)> = group
            .iter()
            .map(|h| (h.reminder.id, h.reminder.due_at))
            .collect();
        match claims::still_held(&self.db, &self.owner, &claimed).await {
            Ok(wanted) => {
                for held in group {
                    if wanted.contains(&held.reminder.id) {
                        self.send(held);
                    }
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "checking reminders claimed early failed; their lease's end hands them on"
            ),
        }
    }

    fn send(&self, held: Held) {
        let Held { reminder: r, room } = held;
        let slots = Arc::clone(&self.slots);
        let deliverer = Arc::clone(&self.deliverer);
        let acks = self.acks.clone();
        let owner = Arc::clone(&self.owner);
        let to = self.recipients.get(&r.recipient_id).cloned();
        let start_by = self.start_by;
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
                Some(to) if !to.user.active => Outcome::Cancelled("the recipient is deactivated"),
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
