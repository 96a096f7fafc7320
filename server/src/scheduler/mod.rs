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
//!   in the same second are in memory when the second comes. Shortly before their due
//!   time ([`CHECK_AHEAD`]) the held reminders are checked in groups
//!   ([`claims::still_held`]); one cancelled or moved while held is not sent. Up to
//!   [`CLAIM_EARLY_MAX`] are held at once, apart from the room for due ones, so holding
//!   a burst never stops the claimer taking what is due.
//! - **Deliver.** `ACCORD_DELIVERY_CONCURRENCY` workers take claimed reminders from
//!   one queue, send each on its channels ([`channels`]) and report the outcome. A slow
//!   webhook holds one worker, never the claimer. Workers live as long as the
//!   scheduler, so a burst of ten thousand costs ten thousand queue entries, not ten
//!   thousand tasks each sized for a whole delivery. A reminder that waited in the
//!   queue through half its lease is left alone: the lease runs out and the next claim
//!   (on any instance) delivers it, so a claim that went stale in the queue never races
//!   another instance's delivery.
//! - **Acknowledge.** The acker writes outcomes in small batches: delivered; failed, to
//!   be retried after an exponential backoff; dead after the last attempt.
//! - **Keep the lease.** From the moment a worker starts on a reminder until its outcome
//!   is written, its lease is renewed once half spent ([`leases`]), so a slow webhook
//!   or a backed-up acknowledgement never lets another claim send it again.
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
mod leases;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use accord_entities::territory_membership::AccessLevel;
use accord_entities::{opportunity, reminder, territory_membership as membership, user, webhook};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::authz::Authz;
use crate::config::Delivery;
use crate::events::EventBus;
use crate::metrics::{Metrics, OutcomeLabel};
use channels::{Deliverer, Hook, Missed, Recipient};
use egress::Egress;
use leases::{InFlight, Renewer};

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
/// How long before their due time held reminders are checked: twenty checks of 500
/// reminders took up to 200 ms under a burst's load, and run ahead so that the burst
/// goes out on time rather than after its checks. A change made in this last moment
/// may not stop a reminder, as a change racing the delivery itself would not. At most
/// a quarter of how early reminders are claimed.
const CHECK_AHEAD: Duration = Duration::from_millis(200);
/// Pause when something is due but every due row is held by another instance's claim
/// in progress: long enough not to spin, short against the one-second promise.
const CONTENDED_PAUSE: Duration = Duration::from_millis(20);
/// How long the acker gathers outcomes into one batch. Nothing waits on an
/// acknowledgement (the lease is far longer), and fewer, larger statements leave more
/// of the CPU to a burst's deliveries.
const ACK_WINDOW: Duration = Duration::from_millis(50);
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
    authz: Authz,
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
    let in_flight = Arc::new(InFlight::default());
    let lease = chrono::Duration::milliseconds(config.reminder_lease_ms.max(1) as i64);
    // Many workers take from one queue: each job wakes a waiting worker directly.
    let (jobs, job_queue) = flume::unbounded();
    let mut tasks: Vec<JoinHandle<()>> = (0..config.delivery_concurrency.max(1))
        .map(|_| {
            tokio::spawn(deliver_jobs(
                job_queue.clone(),
                Arc::clone(&deliverer),
                Arc::clone(&in_flight),
                acks.clone(),
            ))
        })
        .collect();
    let early = chrono::Duration::from_std(CLAIM_EARLY)
        .unwrap_or_default()
        .min(chrono::Duration::milliseconds(
            config.reminder_lease_ms as i64 / 4,
        ));
    let idle = Duration::from_millis(config.scheduler_idle_ms.max(1));
    // Whatever falls due after this claimer's longest sleep plus how early it claims is
    // found by its ordinary wake-ups; a second of margin for the sleep's own lateness.
    bus.scheduler_finds_unwoken(idle + early.to_std().unwrap_or_default() + Duration::from_secs(1));
    let claimer = Claimer {
        db: db.clone(),
        authz,
        bus,
        egress: Arc::clone(deliverer.egress()),
        jobs,
        room: Arc::new(Semaphore::new(
            config.delivery_concurrency.max(1) + CLAIM_AHEAD,
        )),
        early_room: Arc::new(Semaphore::new(CLAIM_EARLY_MAX)),
        acks,
        instance: instance.clone(),
        lease,
        early,
        check_ahead: chrono::Duration::from_std(CHECK_AHEAD)
            .unwrap_or_default()
            .min(early / 4),
        idle,
    };
    let renewer = Renewer {
        db: db.clone(),
        in_flight: Arc::clone(&in_flight),
        lease,
    };
    let acker = Acker {
        db,
        in_flight,
        metrics,
        max_attempts: config.reminder_max_attempts.max(1),
        backoff: Duration::from_millis(config.reminder_backoff_ms),
    };
    tasks.push(tokio::spawn(claimer.run()));
    tasks.push(tokio::spawn(acker.run(ack_queue)));
    tasks.push(tokio::spawn(renewer.run()));
    Ok(SchedulerHandle { tasks, instance })
}

enum Outcome {
    Delivered,
    Missed(Missed),
    /// Nobody left to receive it: the user was deleted or deactivated, or may no longer
    /// read the deal it is about.
    Cancelled(&'static str),
}

struct Ack {
    reminder: reminder::Model,
    owner: Arc<str>,
    outcome: Outcome,
    /// When the delivery ended (for the lateness metric).
    at: DateTime<Utc>,
}

struct Claimer {
    db: DatabaseConnection,
    /// Who may still read the deal a reminder is about.
    authz: Authz,
    bus: EventBus,
    /// Checks the URLs of the webhooks a claim goes to.
    egress: Arc<Egress>,
    /// The delivery workers' queue.
    jobs: flume::Sender<Job>,
    /// One permit per reminder claimed once due and not yet acknowledged (queued or
    /// being delivered).
    room: Arc<Semaphore>,
    /// The same for reminders claimed ahead of their due time.
    early_room: Arc<Semaphore>,
    acks: mpsc::UnboundedSender<Ack>,
    instance: String,
    lease: chrono::Duration,
    /// How long before its due time a first attempt may be claimed.
    early: chrono::Duration,
    /// How long before their due time held reminders are checked.
    check_ahead: chrono::Duration,
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
                tracing::debug!(claimed = batch.len(), early = ?which, "claim");
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
        let audience = async {
            let recipients = recipients(&self.db, &self.egress, &batch).await?;
            let unreadable = unreadable(&self.db, &self.authz, &batch, &recipients).await?;
            Ok::<_, DbErr>((recipients, unreadable))
        };
        let (recipients, unreadable) = match audience.await {
            Ok(found) => found,
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
                        at: Utc::now(),
                    });
                }
                return;
            }
        };
        let sender = Sender {
            db: self.db.clone(),
            jobs: self.jobs.clone(),
            check_ahead: self.check_ahead,
            claim: Arc::new(Claim {
                owner,
                recipients,
                unreadable,
                // A claim that waited in the queue through half its lease is left to
                // the lease's end, so it never races another instance's delivery.
                start_by: claimed_at + self.lease / 2,
                lease_until: claimed_at + self.lease,
            }),
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

/// What the reminders of one claim share.
struct Claim {
    owner: Arc<str>,
    recipients: HashMap<i64, Arc<Recipient>>,
    /// Reminders about deals their recipients may no longer read.
    unreadable: HashSet<i64>,
    /// A reminder not picked up by a worker by then is left to the lease's end.
    start_by: DateTime<Utc>,
    /// When the claim's lease ends unless renewed.
    lease_until: DateTime<Utc>,
}

/// A reminder waiting in the queue for a delivery worker.
struct Job {
    held: Held,
    claim: Arc<Claim>,
}

/// Queues the reminders of one claim for the delivery workers.
#[derive(Clone)]
struct Sender {
    db: DatabaseConnection,
    jobs: flume::Sender<Job>,
    check_ahead: chrono::Duration,
    claim: Arc<Claim>,
}

impl Sender {
    /// Checks `group` shortly before `at` and sends those still wanted at `at`: a
    /// reminder cancelled or moved meanwhile stays as its change left it.
    async fn send_at(self, at: DateTime<Utc>, group: Vec<Held>) {
        if let Ok(wait) = (at - self.check_ahead - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let claimed: Vec<(i64, DateTime<Utc>)> = group
            .iter()
            .map(|h| (h.reminder.id, h.reminder.due_at))
            .collect();
        match claims::still_held(&self.db, &self.claim.owner, &claimed).await {
            Ok(wanted) => {
                tracing::debug!(
                    held = claimed.len(),
                    wanted = wanted.len(),
                    before_due_ms = (at - Utc::now()).num_milliseconds(),
                    "held reminders checked"
                );
                // None goes out before its time.
                if let Ok(wait) = (at - Utc::now()).to_std() {
                    tokio::time::sleep(wait).await;
                }
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
        // The workers stop only with the scheduler, and then nothing is sent anyway:
        // the lease's end hands the reminder on.
        let _ = self.jobs.send(Job {
            held,
            claim: Arc::clone(&self.claim),
        });
    }
}

/// One delivery worker: takes reminders off the shared queue until the scheduler stops.
async fn deliver_jobs(
    queue: flume::Receiver<Job>,
    deliverer: Arc<Deliverer>,
    in_flight: Arc<InFlight>,
    acks: mpsc::UnboundedSender<Ack>,
) {
    while let Ok(Job { held, claim }) = queue.recv_async().await {
        let Held { reminder: r, room } = held;
        if Utc::now() > claim.start_by {
            tracing::debug!(
                reminder = r.id,
                "claim went stale waiting for a worker; the lease's end hands it on"
            );
            continue;
        }
        in_flight.enter(r.id, &claim.owner, claim.lease_until);
        let outcome = match claim.recipients.get(&r.recipient_id) {
            None => Outcome::Cancelled("the recipient no longer exists"),
            Some(to) if !to.user.active => Outcome::Cancelled("the recipient is deactivated"),
            Some(_) if claim.unreadable.contains(&r.id) => {
                Outcome::Cancelled("the recipient may no longer read the deal")
            }
            Some(to) => match deliverer.deliver(&r, to).await {
                Ok(()) => Outcome::Delivered,
                Err(missed) => Outcome::Missed(missed),
            },
        };
        let _ = acks.send(Ack {
            reminder: r,
            owner: Arc::clone(&claim.owner),
            outcome,
            at: Utc::now(),
        });
        drop(room);
    }
}

/// The users a batch goes to, with their own webhooks and their teams'.
async fn recipients(
    db: &DatabaseConnection,
    egress: &Egress,
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
                .map(|h| Hook::new(h.clone(), egress))
                .collect();
            (u.id, Arc::new(Recipient { user: u, webhooks }))
        })
        .collect())
}

/// The reminders of a batch about deals their recipients may no longer read: a
/// reminder is stored when its recipient may read the deal, but by the time it is due
/// they may have left the territory, or the deal's account may have moved. What it
/// would say about the deal is then not theirs to hear.
async fn unreadable(
    db: &DatabaseConnection,
    authz: &Authz,
    batch: &[reminder::Model],
    recipients: &HashMap<i64, Arc<Recipient>>,
) -> Result<HashSet<i64>, DbErr> {
    let mut deal_ids: Vec<i64> = batch.iter().filter_map(|r| r.opportunity_id).collect();
    if deal_ids.is_empty() {
        return Ok(HashSet::new());
    }
    deal_ids.sort_unstable();
    deal_ids.dedup();
    let deals: HashMap<i64, opportunity::Model> = opportunity::Entity::find()
        .filter(opportunity::Column::Id.is_in(deal_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    let mut unreadable = HashSet::new();
    for r in batch {
        let (Some(deal_id), Some(to)) = (r.opportunity_id, recipients.get(&r.recipient_id)) else {
            continue;
        };
        let readable = match deals.get(&deal_id) {
            Some(deal) => authz
                .scope_of(to.user.id, to.user.role)
                .await
                .allows_opportunity(deal, AccessLevel::Read),
            None => false,
        };
        if !readable {
            unreadable.insert(r.id);
        }
    }
    Ok(unreadable)
}

struct Acker {
    db: DatabaseConnection,
    /// Outcomes written here end the renewal of their leases.
    in_flight: Arc<InFlight>,
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
            self.in_flight.leave(acks.iter().map(|a| a.reminder.id));
        }
    }

    /// Writes one batch of outcomes.
    async fn write(&self, acks: &[Ack]) -> Result<(), DbErr> {
        let now = Utc::now();
        let mut delivered: HashMap<&str, Vec<i64>> = HashMap::new();
        for ack in acks {
            let r = &ack.reminder;
            match &ack.outcome {
                Outcome::Delivered => {
                    delivered.entry(&ack.owner).or_default().push(r.id);
                }
                Outcome::Missed(missed) => {
                    let retry_at = (r.attempts < self.max_attempts)
                        .then(|| now + claims::backoff(self.backoff, r.attempts));
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
                    claims::cancelled(&self.db, r.id, &ack.owner, why).await?;
                }
            }
        }
        for (owner, ids) in delivered {
            claims::delivered(&self.db, owner, &ids, now).await?;
        }
        // Counted once written, so a batch tried again is not counted twice.
        for ack in acks {
            let outcome = match &ack.outcome {
                Outcome::Delivered => {
                    let r = &ack.reminder;
                    let late = (ack.at - r.due_at).to_std().unwrap_or(Duration::ZERO);
                    self.metrics
                        .reminder_lateness_seconds
                        .observe(late.as_secs_f64());
                    "delivered"
                }
                Outcome::Missed(_) if ack.reminder.attempts < self.max_attempts => "failed",
                Outcome::Missed(_) => "dead",
                Outcome::Cancelled(_) => "cancelled",
            };
            self.metrics
                .reminders
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
        }
        Ok(())
    }
}
