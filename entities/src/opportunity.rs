use sea_orm::entity::prelude::*;
use serde::Serialize;

use crate::lead::{Grade, LeadSource};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "opportunities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub account_id: i64,
    pub owner_id: i64,
    pub pipeline_id: i64,
    pub stage_id: i64,
    pub amount_micros: i64,
    /// ISO 4217
    pub currency: String,
    pub expected_close_date: Date,
    pub source: Option<LeadSource>,
    pub grade: Option<Grade>,
    pub lost_reason: Option<String>,
    pub stage_entered_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Optimistic-concurrency version; every update must name the version it read.
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
