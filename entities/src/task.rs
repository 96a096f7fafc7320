use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum TaskKind {
    #[sea_orm(string_value = "task")]
    Task,
    /// A stage script asked for an approval (a discount above policy, say).
    #[sea_orm(string_value = "approval")]
    Approval,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum TaskStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: TaskKind,
    pub assignee_id: i64,
    pub opportunity_id: Option<i64>,
    pub title: String,
    pub due_at: Option<DateTimeUtc>,
    pub anchor: Option<String>,
    pub offset_minutes: i64,
    pub status: TaskStatus,
    pub script_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub account_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub description: Option<String>,
    /// Optimistic concurrency for edits, as on opportunities.
    pub version: i32,
    pub completed_at: Option<DateTimeUtc>,
    /// Who created it by hand; `None` for tasks a stage script created.
    pub created_by: Option<i64>,
    /// The iCalendar UID of an imported to-do (re-imports update it); `None` otherwise.
    pub ics_uid: Option<String>,
    /// Set by a stage script that addressed the deal's owner: an open task goes to the
    /// new owner when the deal changes hands.
    pub follows_owner: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
