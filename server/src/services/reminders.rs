//! Reminders: scheduled by stage scripts and by users, moved when the date they hang on
//! moves, cancelled when moot, delivered by the scheduler (`scheduler/`), and visible,
//! cancellable and retryable here.

use accord_entities::reminder::{self, ReminderStatus};
use accord_entities::territory_membership::AccessLevel;
use accord_entities::{opportunity, user};
use accord_workflows::Anchor;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::{Expr, UpdateStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QueryTrait, Set, Statement,
};

use crate::auth::Actor;
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::events::WAKE_CHANNEL;
use crate::scheduler::channels;
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate};
use crate::services::validate::required_text;
use crate::services::{Services, audit};

pub const MESSAGE_MAX: usize = 500;
const KEY_MAX: usize = 64;
/// How far ahead a user may schedule a reminder.
const HORIZON_DAYS: i64 = 3650;

/// A reminder about to be stored. Its first claimable moment is its due time.
pub(crate) struct NewReminder {
    pub recipient_id: i64,
    pub opportunity_id: Option<i64>,
    pub message: String,
    pub due_at: DateTime<Utc>,
    pub anchor: Option<Anchor>,
    pub offset_minutes: i64,
    pub idempotency_key: String,
    pub script_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub channels: String,
    /// A script addressed it to the deal's owner, whoever that is when it is due.
    pub follows_owner: bool,
}

impl NewReminder {
    pub(crate) fn into_active(self, now: DateTime<Utc>) -> reminder::ActiveModel {
        reminder::ActiveModel {
            id: NotSet,
            recipient_id: Set(self.recipient_id),
            opportunity_id: Set(self.opportunity_id),
            message: Set(self.message),
            due_at: Set(self.due_at),
            anchor: Set(self.anchor.map(|a| a.as_str().to_owned())),
            offset_minutes: Set(self.offset_minutes),
            status: Set(ReminderStatus::Pending),
            attempts: Set(0),
            idempotency_key: Set(self.idempotency_key),
            lease_until: Set(None),
            script_id: Set(self.script_id),
            stage_id: Set(self.stage_id),
            created_at: Set(now),
            attempt_at: Set(self.due_at),
            lease_owner: Set(None),
            channels: Set(self.channels),
            delivered_channels: Set(String::new()),
            last_error: Set(None),
            delivered_at: Set(None),
            event_id: Set(None),
            follows_owner: Set(self.follows_owner),
        }
    }
}

/// Every channel, the default for scripts and users alike.
pub(crate) fn all_channels() -> String {
    channels::ALL.join(",")
}

/// Tells every scheduler that reminders were scheduled or moved, after the transaction
/// that did it committed: this instance's at once, the others through PostgreSQL.
/// `earliest` is the first due time among them, when known: reminders due beyond the
/// schedulers' idle ceiling need no announcement.
pub async fn announce(svc: &Services, earliest: Option<DateTime<Utc>>) {
    if !svc.events.wake_needed(earliest) {
        return;
    }
    svc.events.wake_scheduler();
    if svc.db.get_database_backend() == DbBackend::Postgres {
        let notify = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, '')",
            [WAKE_CHANNEL.into()],
        );
        if let Err(e) = svc.db.execute_raw(notify).await {
            // The other schedulers still find it by their idle ceiling.
            tracing::warn!(error = %e, "announcing a reminder to other instances failed");
        }
    }
}

/// What a user asks to be reminded of.
pub struct ReminderInput {
    /// Defaults to the caller. Reminding someone else takes `reminder, manage`.
    pub recipient_id: Option<i64>,
    pub opportunity_id: Option<i64>,
    pub due_at: DateTime<Utc>,
    pub message: String,
    /// Defaults to every channel.
    pub channels: Option<Vec<&'static str>>,
    /// The client's own key: sending the same request twice creates one reminder.
    pub idempotency_key: Option<String>,
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: ReminderInput,
) -> AppResult<reminder::Model> {
    svc.authz
        .require(actor, Resource::Reminder, Action::ManageOwn)
        .await?;
    let message = required_text("message", &input.message, MESSAGE_MAX)?;
    let now = Utc::now();
    if input.due_at > now + Duration::days(HORIZON_DAYS) {
        return Err(AppError::validation(
            "dueAt",
            "a reminder can be at most ten years ahead",
        ));
    }
    let recipient_id = input.recipient_id.unwrap_or(actor.user_id);
    if recipient_id != actor.user_id {
        svc.authz
            .require(actor, Resource::Reminder, Action::Manage)
            .await?;
    }
    let channels = match &input.channels {
        Some(list) if list.is_empty() => {
            return Err(AppError::validation(
                "channels",
                "name at least one channel, or leave it out for all",
            ));
        }
        Some(list) => {
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            list.join(",")
        }
        None => all_channels(),
    };
    let key = match &input.idempotency_key {
        Some(k) => {
            let k = k.trim();
            if k.is_empty()
                || k.len() > KEY_MAX
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
            {
                return Err(AppError::validation(
                    "idempotencyKey",
                    "use 1 to 64 letters, digits, '-', '_', '.' or ':'",
                ));
            }
            format!("user:{}:{k}", actor.user_id)
        }
        None => format!("user:{}:{:032x}", actor.user_id, rand::random::<u128>()),
    };
    let txn = begin_write(&svc.db).await?;
    if let Some(existing) = reminder::Entity::find()
        .filter(reminder::Column::IdempotencyKey.eq(&key))
        .one(&txn)
        .await?
    {
        return Ok(existing);
    }
    let recipient = user::Entity::find_by_id(recipient_id)
        .one(&txn)
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| AppError::validation("recipientId", "no such active user"))?;
    if let Some(deal_id) = input.opportunity_id {
        let deal = opportunity::Entity::find_by_id(deal_id).one(&txn).await?;
        let caller = svc.authz.scope(actor).await;
        let readable_by = |scope: &crate::authz::Scope, d: &opportunity::Model| {
            scope.allows_opportunity(d, AccessLevel::Read)
        };
        let Some(deal) = deal.filter(|d| readable_by(&caller, d)) else {
            return Err(AppError::validation("opportunityId", "no such opportunity"));
        };
        // A reminder tells its recipient about the deal: only to someone who may read it.
        let theirs = svc.authz.scope_of(recipient.id, recipient.role).await;
        if !readable_by(&theirs, &deal) {
            return Err(AppError::validation(
                "recipientId",
                "the recipient may not see this opportunity",
            ));
        }
    }
    let created = NewReminder {
        recipient_id,
        opportunity_id: input.opportunity_id,
        message,
        due_at: input.due_at,
        anchor: None,
        offset_minutes: 0,
        idempotency_key: key,
        script_id: None,
        stage_id: None,
        channels,
        follows_owner: false,
    }
    .into_active(now)
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Reminder",
        created.id,
        None::<&reminder::Model>,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    announce(svc, Some(created.due_at)).await;
    Ok(created)
}

/// A reminder the caller may see: their own, or any for `reminder, manage`.
pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<reminder::Model> {
    let found = reminder::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("reminder"))?;
    if found.recipient_id != actor.user_id
        && !svc
            .authz
            .can(actor, Resource::Reminder, Action::Manage)
            .await
    {
        return Err(AppError::NotFound("reminder"));
    }
    Ok(found)
}

#[derive(Debug, Default)]
pub struct ReminderFilter {
    pub status: Option<ReminderStatus>,
    /// Someone else's reminders take `reminder, manage`; the default is the caller's.
    pub recipient_id: Option<i64>,
    pub opportunity_id: Option<i64>,
}

/// Reminders by due time, soonest first.
pub async fn list(
    svc: &Services,
    actor: &Actor,
    filter: ReminderFilter,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<reminder::Model>> {
    let recipient = filter.recipient_id.unwrap_or(actor.user_id);
    if recipient != actor.user_id {
        svc.authz
            .require(actor, Resource::Reminder, Action::Manage)
            .await?;
    }
    let mut query = reminder::Entity::find().filter(reminder::Column::RecipientId.eq(recipient));
    if let Some(status) = filter.status {
        query = query.filter(reminder::Column::Status.eq(status));
    }
    if let Some(deal) = filter.opportunity_id {
        query = query.filter(reminder::Column::OpportunityId.eq(deal));
    }
    let order = SortOrder::<reminder::Entity> {
        column: reminder::Column::DueAt,
        descending: false,
        key: |m| SortKey::Time(m.due_at),
    };
    paginate(
        &svc.db,
        query,
        reminder::Column::Id,
        &order,
        args,
        want_total,
    )
    .await
}

/// Stops a pending reminder.
pub async fn cancel(svc: &Services, actor: &Actor, id: i64) -> AppResult<reminder::Model> {
    change_status(svc, actor, id, "cancel", |r| match r.status {
        ReminderStatus::Pending => Ok(()),
        _ => Err(AppError::validation(
            "id",
            "only a pending reminder can be cancelled",
        )),
    })
    .await
}

/// Sends a dead (or cancelled) reminder again, from its first attempt, now.
pub async fn retry(svc: &Services, actor: &Actor, id: i64) -> AppResult<reminder::Model> {
    let retried = change_status(svc, actor, id, "retry", |r| match r.status {
        ReminderStatus::Dead | ReminderStatus::Cancelled => Ok(()),
        _ => Err(AppError::validation(
            "id",
            "only a dead or cancelled reminder can be retried",
        )),
    })
    .await?;
    announce(svc, Some(retried.attempt_at)).await;
    Ok(retried)
}

async fn change_status(
    svc: &Services,
    actor: &Actor,
    id: i64,
    verb: &'static str,
    allowed: impl Fn(&reminder::Model) -> AppResult<()>,
) -> AppResult<reminder::Model> {
    svc.authz
        .require(actor, Resource::Reminder, Action::ManageOwn)
        .await?;
    let before = get(svc, actor, id).await?;
    let txn = begin_write(&svc.db).await?;
    let before = reminder::Entity::find_by_id(before.id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("reminder"))?;
    allowed(&before)?;
    let now = Utc::now();
    let mut active: reminder::ActiveModel = before.clone().into();
    match verb {
        "cancel" => {
            active.status = Set(ReminderStatus::Cancelled);
        }
        _ => {
            active.status = Set(ReminderStatus::Pending);
            active.attempts = Set(0);
            active.attempt_at = Set(now);
            active.lease_until = Set(None);
            active.lease_owner = Set(None);
        }
    }
    // Only if nobody else changed it meanwhile (a delivery's acknowledgement, say).
    let result = reminder::Entity::update_many()
        .set(active.clone())
        .filter(reminder::Column::Id.eq(before.id))
        .filter(reminder::Column::Status.eq(before.status))
        .exec(&txn)
        .await?;
    if result.rows_affected == 0 {
        return Err(AppError::Conflict(
            "the reminder changed meanwhile; look again".into(),
        ));
    }
    let after = reminder::Entity::find_by_id(before.id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("reminder"))?;
    audit::record(
        &txn,
        Some(actor),
        verb,
        "Reminder",
        after.id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// A deal's reminders, soonest first.
pub async fn of_opportunity<C: ConnectionTrait>(
    db: &C,
    deal_id: i64,
) -> AppResult<Vec<reminder::Model>> {
    Ok(reminder::Entity::find()
        .filter(reminder::Column::OpportunityId.eq(deal_id))
        .order_by_asc(reminder::Column::DueAt)
        .order_by_asc(reminder::Column::Id)
        .all(db)
        .await?)
}

/// The statement that cancels a deal's pending reminders: all of them, or those of one
/// stage.
pub(crate) fn cancel_for_deal(deal_id: i64, stage_id: Option<i64>) -> UpdateStatement {
    reminder::Entity::update_many()
        .col_expr(
            reminder::Column::Status,
            Expr::value(ReminderStatus::Cancelled),
        )
        .filter(reminder::Column::OpportunityId.eq(deal_id))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .apply_if(stage_id, |q, stage| {
            q.filter(reminder::Column::StageId.eq(stage))
        })
        .into_query()
}

/// Moves a deal's pending reminders that hang on `base`'s anchor to follow its new
/// value. Returns how many moved.
pub(crate) async fn reschedule<C: ConnectionTrait>(
    txn: &C,
    deal_id: i64,
    anchor: Anchor,
    base: DateTime<Utc>,
) -> AppResult<usize> {
    let pending = reminder::Entity::find()
        .filter(reminder::Column::OpportunityId.eq(deal_id))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .filter(reminder::Column::Anchor.eq(anchor.as_str()))
        .all(txn)
        .await?;
    let mut moved = 0;
    for r in pending {
        let Some(due) =
            Duration::try_minutes(r.offset_minutes).and_then(|d| base.checked_add_signed(d))
        else {
            continue;
        };
        let mut active: reminder::ActiveModel = r.into();
        active.due_at = Set(due);
        // A new due time is a fresh start: no backoff carried over.
        active.attempt_at = Set(due);
        active.update(txn).await?;
        moved += 1;
    }
    Ok(moved)
}

/// 09:00 UTC on a date: when reminders anchored on an expected close date count from.
pub(crate) fn close_morning(date: NaiveDate) -> Option<DateTime<Utc>> {
    Some(date.and_time(NaiveTime::from_hms_opt(9, 0, 0)?).and_utc())
}
