use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    #[sea_orm(string_value = "web")]
    Web,
    #[sea_orm(string_value = "referral")]
    Referral,
    #[sea_orm(string_value = "event")]
    Event,
    #[sea_orm(string_value = "outbound")]
    Outbound,
    #[sea_orm(string_value = "partner")]
    Partner,
    #[sea_orm(string_value = "advertising")]
    Advertising,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    #[sea_orm(string_value = "new")]
    New,
    #[sea_orm(string_value = "working")]
    Working,
    #[sea_orm(string_value = "nurturing")]
    Nurturing,
    #[sea_orm(string_value = "qualified")]
    Qualified,
    #[sea_orm(string_value = "unqualified")]
    Unqualified,
    /// Terminal: set only by conversion.
    #[sea_orm(string_value = "converted")]
    Converted,
}

/// A/B/C fit grade, used for leads and carried onto the opportunities they become.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(1))")]
pub enum Grade {
    #[sea_orm(string_value = "A")]
    A,
    #[sea_orm(string_value = "B")]
    B,
    #[sea_orm(string_value = "C")]
    C,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "leads")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub source: LeadSource,
    pub status: LeadStatus,
    pub grade: Option<Grade>,
    pub owner_id: Option<i64>,
    pub converted_account_id: Option<i64>,
    pub converted_contact_id: Option<i64>,
    pub converted_opportunity_id: Option<i64>,
    pub converted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
