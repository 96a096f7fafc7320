//! The scheduler's statements. A claim takes due reminders under a lease in one
//! statement: on PostgreSQL `FOR UPDATE SKIP LOCKED` lets instances claim side by side
//! without waiting on each other; on SQLite the statement runs in a write transaction,
//! SQLite's single writer being the lease's lock. A claim moves `attempt_at` to the end
//! of the lease, so a reminder whose instance died becomes due again by itself.

use std::collections::{HashMap, HashSet};

use accord_entities::reminder::{self, ReminderStatus};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};

use crate::db::begin_write;

/// `status = 'pending'` with the value written out, not bound: the claim index holds
/// only pending reminders, and PostgreSQL uses such a partial index only when it can
/// prove the query's condition implies the index's, which a generic plan over a
/// parameter cannot.
fn pending() -> Expr {
    Expr::col(reminder::Column::Status).eq(Expr::cust("'pending'"))
}

/// Which reminders a claim takes.
#[derive(Clone, Copy, Debug)]
pub enum Due {
    /// Those that may go out now.
    Now,
    /// First attempts falling due after now and up to this time, which the claimer
    /// holds until their due time. Retries are never claimed early: their backoff is
    /// the point.
    Before(DateTime<Utc>),
}

/// Claims up to `limit` reminders for `owner` until `now + lease`.
pub async fn claim(
    db: &DatabaseConnection,
    owner: &str,
    now: DateTime<Utc>,
    which: Due,
    lease: Duration,
    limit: u64,
) -> Result<Vec<reminder::Model>, DbErr> {
    let lease_end = now + lease;
    let mut due = reminder::Entity::find()
        .select_only()
        .column(reminder::Column::Id)
        .filter(pending());
    due = match which {
        Due::Now => due.filter(reminder::Column::AttemptAt.lte(now)),
        Due::Before(until) => due
            .filter(reminder::Column::AttemptAt.gt(now))
            .filter(reminder::Column::AttemptAt.lte(until))
            .filter(reminder::Column::Attempts.eq(0)),
    };
    let due = due
        .order_by_asc(reminder::Column::AttemptAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_query();
    let update = reminder::Entity::update_many()
        .col_expr(reminder::Column::LeaseUntil, Expr::value(lease_end))
        .col_expr(reminder::Column::AttemptAt, Expr::value(lease_end))
        .col_expr(reminder::Column::LeaseOwner, Expr::value(owner))
        .col_expr(
            reminder::Column::Attempts,
            Expr::col(reminder::Column::Attempts).add(1),
        )
        .filter(reminder::Column::Id.in_subquery(due));
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let txn = begin_write(db).await?;
            let claimed = update.exec_with_returning(&txn).await?;
            txn.commit().await?;
            Ok(claimed)
        }
        _ => update.exec_with_returning(db).await,
    }
}

/// Of reminders claimed early by `owner`, those still to be sent: still pending, still
/// held by that claim, and still due when they were at the claim. A reminder cancelled
/// or moved while it waited for its due time drops out here.
pub async fn still_held<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    claimed: &[(i64, DateTime<Utc>)],
) -> Result<HashSet<i64>, DbErr> {
    if claimed.is_empty() {
        return Ok(HashSet::new());
    }
    let now: Vec<(i64, DateTime<Utc>)> = reminder::Entity::find()
        .select_only()
        .column(reminder::Column::Id)
        .column(reminder::Column::DueAt)
        .filter(reminder::Column::Id.is_in(claimed.iter().map(|(id, _)| *id)))
        .filter(reminder::Column::LeaseOwner.eq(owner))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .into_tuple()
        .all(db)
        .await?;
    let due: HashMap<i64, DateTime<Utc>> = now.into_iter().collect();
    Ok(claimed
        .iter()
        .filter(|(id, at)| due.get(id) == Some(at))
        .map(|(id, _)| *id)
        .collect())
}

/// Extends the lease of reminders `owner` still holds to `until`; returns how many it
/// still held. One that was acknowledged, cancelled or taken over meanwhile is left
/// as it is.
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    ids: &[i64],
    until: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = reminder::Entity::update_many()
        .col_expr(reminder::Column::LeaseUntil, Expr::value(until))
        .col_expr(reminder::Column::AttemptAt, Expr::value(until))
        .filter(reminder::Column::Id.is_in(ids.iter().copied()))
        .filter(reminder::Column::LeaseOwner.eq(owner))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Marks reminders of one claim delivered. A reminder whose lease another claim took
/// over, or that was cancelled meanwhile, is left as it is.
pub async fn delivered<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    reminder::Entity::update_many()
        .col_expr(
            reminder::Column::Status,
            Expr::value(ReminderStatus::Delivered),
        )
        .col_expr(reminder::Column::DeliveredAt, Expr::value(now))
        .col_expr(
            reminder::Column::DeliveredChannels,
            Expr::col(reminder::Column::Channels),
        )
        .col_expr(
            reminder::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(reminder::Column::LeaseOwner, Expr::value(None::<String>))
        .col_expr(reminder::Column::LastError, Expr::value(None::<String>))
        .filter(reminder::Column::Id.is_in(ids.iter().copied()))
        .filter(reminder::Column::LeaseOwner.eq(owner))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .exec(db)
        .await?;
    Ok(())
}

/// What became of a delivery that did not reach every channel.
pub struct Failure<'a> {
    pub id: i64,
    pub owner: &'a str,
    pub error: &'a str,
    /// The channels (and webhook endpoints) that did get it; a retry skips them.
    pub delivered_channels: &'a str,
}

/// Records a failed delivery: back to pending with a backoff, or dead after the last
/// attempt. `retry_at` is `None` for dead.
pub async fn failed<C: ConnectionTrait>(
    db: &C,
    failure: Failure<'_>,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let status = if retry_at.is_some() {
        ReminderStatus::Pending
    } else {
        ReminderStatus::Dead
    };
    reminder::Entity::update_many()
        .col_expr(reminder::Column::Status, Expr::value(status))
        .col_expr(
            reminder::Column::AttemptAt,
            Expr::value(retry_at.unwrap_or(now)),
        )
        .col_expr(
            reminder::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(reminder::Column::LeaseOwner, Expr::value(None::<String>))
        .col_expr(
            reminder::Column::LastError,
            Expr::value(failure.error.chars().take(500).collect::<String>()),
        )
        .col_expr(
            reminder::Column::DeliveredChannels,
            Expr::value(failure.delivered_channels),
        )
        .filter(reminder::Column::Id.eq(failure.id))
        .filter(reminder::Column::LeaseOwner.eq(failure.owner))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends a reminder that has no one left to receive it.
pub async fn cancelled<C: ConnectionTrait>(
    db: &C,
    id: i64,
    owner: &str,
    why: &str,
) -> Result<(), DbErr> {
    reminder::Entity::update_many()
        .col_expr(
            reminder::Column::Status,
            Expr::value(ReminderStatus::Cancelled),
        )
        .col_expr(
            reminder::Column::LeaseUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(reminder::Column::LeaseOwner, Expr::value(None::<String>))
        .col_expr(reminder::Column::LastError, Expr::value(why))
        .filter(reminder::Column::Id.eq(id))
        .filter(reminder::Column::LeaseOwner.eq(owner))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .exec(db)
        .await?;
    Ok(())
}

/// The earliest pending reminder: when it may next go out (its due time, retry or lease
/// end) and whether it is a first attempt, which may be claimed ahead of that time.
pub async fn next_attempt(db: &DatabaseConnection) -> Result<Option<(DateTime<Utc>, bool)>, DbErr> {
    // On SQLite the claim index is named: left to itself, SQLite's planner scanned the
    // whole table and sorted it (300-600 ms over a million pending reminders, in the
    // middle of a burst) instead of reading the index's first entry.
    let backend = db.get_database_backend();
    let from = match backend {
        DbBackend::Sqlite => "reminders INDEXED BY ix_reminders_pending",
        _ => "reminders",
    };
    let sql = format!(
        "SELECT attempt_at, attempts FROM {from} \
         WHERE status = 'pending' ORDER BY attempt_at LIMIT 1"
    );
    let Some(row) = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
    else {
        return Ok(None);
    };
    let at: DateTime<Utc> = row.try_get("", "attempt_at")?;
    let attempts: i32 = row.try_get("", "attempts")?;
    Ok(Some((at, attempts == 0)))
}

/// The wait before retry number `attempts` (1 after the first failure): `base`
/// doubling each time, at most an hour, plus up to a tenth more so that a burst of
/// failures does not come back as one burst.
pub fn backoff(base: std::time::Duration, attempts: i32) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let wait = base
        .saturating_mul(1u32 << doublings)
        .min(std::time::Duration::from_secs(3600));
    let jitter = wait.mul_f64(rand::random::<f64>() * 0.1);
    Duration::from_std(wait + jitter).unwrap_or(Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = std::time::Duration::from_secs(30);
        let first = backoff(base, 1);
        assert!(first >= Duration::seconds(30) && first <= Duration::seconds(33));
        let third = backoff(base, 3);
        assert!(third >= Duration::seconds(120) && third <= Duration::seconds(132));
        let late = backoff(base, 30);
        assert!(late >= Duration::hours(1) && late <= Duration::minutes(66));
    }
}
