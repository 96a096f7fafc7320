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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
