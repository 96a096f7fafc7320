use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ReminderStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "dead")]
    Dead,
}

/// A durable reminder for one user. When it hangs on a date of its deal (`anchor`), it
/// is due `offset_minutes` after that date and moves when the date moves.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "reminders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub recipient_id: i64,
    pub opportunity_id: Option<i64>,
    pub message: String,
    pub due_at: DateTimeUtc,
    /// `transition`, `expected_close_date` or `last_activity` (see accord-workflows).
    pub anchor: Option<String>,
    pub offset_minutes: i64,
    pub status: ReminderStatus,
    /// Deliveries tried so far (each claim counts, so a reminder that crashes its
    /// deliverer still ends as dead).
    pub attempts: i32,
    /// Carried by every delivery so that receivers can drop duplicates.
    pub idempotency_key: String,
    /// The end of the current delivery lease, if a scheduler holds one.
    pub lease_until: Option<DateTimeUtc>,
    /// The stage-script version that scheduled it, if a script did.
    pub script_id: Option<i64>,
    /// The stage it belongs to: leaving that stage or closing the deal cancels it.
    pub stage_id: Option<i64>,
    pub created_at: DateTimeUtc,
    /// When a scheduler may next claim it: the due time, then a retry's backoff or the
    /// end of a lease (so an instance that died mid-delivery hands it on by itself).
    pub attempt_at: DateTimeUtc,
    /// The claim that holds the lease: a scheduler instance and a claim number.
    pub lease_owner: Option<String>,
    /// Comma-separated channels to deliver to: `in_app`, `webhook`, `email`.
    pub channels: String,
    /// The channels that already have it; a retry skips them.
    pub delivered_channels: String,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    /// The event whose occurrence it announces (`anchor` = `event_start`).
    pub event_id: Option<i64>,
    /// Set by a stage script that addressed the deal's owner: a pending reminder goes
    /// to the new owner when the deal changes hands.
    pub follows_owner: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
