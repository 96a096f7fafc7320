use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a territory groups accounts by. Purely descriptive: access follows the
/// hierarchy and memberships whatever the kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
#[serde(rename_all = "snake_case")]
pub enum TerritoryKind {
    #[sea_orm(string_value = "geography")]
    Geography,
    #[sea_orm(string_value = "industry")]
    Industry,
    #[sea_orm(string_value = "named_accounts")]
    NamedAccounts,
    #[sea_orm(string_value = "segment")]
    Segment,
}

/// A node of the territory hierarchy. Accounts belong to at most one territory;
/// their contacts and opportunities follow.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "territories")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    pub kind: TerritoryKind,
    pub description: Option<String>,
    pub created_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
