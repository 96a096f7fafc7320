use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a member may do with the records of a territory. Each level includes the ones
/// below it: owner > edit > read.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    /// See the records.
    #[sea_orm(string_value = "read")]
    Read,
    /// See and change them.
    #[sea_orm(string_value = "edit")]
    Edit,
    /// Also delete them and move accounts to another territory.
    #[sea_orm(string_value = "owner")]
    Owner,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Read => "read",
            AccessLevel::Edit => "edit",
            AccessLevel::Owner => "owner",
        }
    }
}

/// A user's access to one territory. A manager's access extends to the whole subtree
/// below the territory; a plain member's covers the territory itself.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "territory_memberships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub territory_id: i64,
    pub user_id: i64,
    pub access_level: AccessLevel,
    pub is_manager: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
