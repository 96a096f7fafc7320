use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum EventKind {
    #[sea_orm(string_value = "meeting")]
    Meeting,
    #[sea_orm(string_value = "call")]
    Call,
    #[sea_orm(string_value = "demo")]
    Demo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum EventStatus {
    #[sea_orm(string_value = "confirmed")]
    Confirmed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// A meeting, call or demo. A recurring event is one row: `starts_at`/`ends_at` are its
/// first occurrence, `rrule` (RFC 5545, without the `RRULE:` prefix) repeats it in the
/// wall-clock time of `time_zone`, and `exdates` drops single occurrences.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub owner_id: i64,
    pub kind: EventKind,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    /// IANA name (`Europe/Berlin`): recurrences keep their local time across DST.
    pub time_zone: String,
    pub rrule: Option<String>,
    /// JSON array of RFC 3339 UTC instants: the starts of cancelled occurrences.
    pub exdates: String,
    /// When the last occurrence ends; `None` while the series has no end. Lets range
    /// queries skip finished series without expanding them.
    pub series_ends_at: Option<DateTimeUtc>,
    pub account_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub opportunity_id: Option<i64>,
    pub status: EventStatus,
    /// Attending users are reminded this many minutes before each occurrence.
    pub remind_minutes_before: Option<i32>,
    /// The iCalendar UID: stable in the feed, and the key an import updates by.
    pub ics_uid: String,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
