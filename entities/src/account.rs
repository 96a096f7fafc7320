use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Head-count band, the way sales teams segment (and territory rules match) accounts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AccountSize {
    /// 1-9 employees
    #[sea_orm(string_value = "micro")]
    Micro,
    /// 10-49 employees
    #[sea_orm(string_value = "small")]
    Small,
    /// 50-249 employees
    #[sea_orm(string_value = "medium")]
    Medium,
    /// 250-999 employees
    #[sea_orm(string_value = "large")]
    Large,
    /// 1000+ employees
    #[sea_orm(string_value = "enterprise")]
    Enterprise,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub industry: Option<String>,
    /// ISO 3166-1 alpha-2
    pub country: Option<String>,
    pub region: Option<String>,
    pub size: Option<AccountSize>,
    pub annual_revenue_micros: Option<i64>,
    /// ISO 4217 code of `annual_revenue_micros`.
    pub currency: String,
    pub website: Option<String>,
    pub parent_id: Option<i64>,
    pub territory_id: Option<i64>,
    /// Set by a manual territory assignment; assignment rules leave such accounts alone.
    pub territory_manual: bool,
    pub owner_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
