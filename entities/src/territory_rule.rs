use sea_orm::entity::prelude::*;
use serde::Serialize;

use crate::account::AccountSize;

/// An account assignment rule. Rules are tried in `position` order; the first active
/// rule whose every set condition matches places the account in `territory_id`.
/// Unset conditions match anything.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "territory_rules")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub position: i32,
    pub territory_id: i64,
    pub country: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub size: Option<AccountSize>,
    pub min_revenue_micros: Option<i64>,
    pub max_revenue_micros: Option<i64>,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
