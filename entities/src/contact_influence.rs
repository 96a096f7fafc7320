use sea_orm::entity::prelude::*;
use serde::Serialize;

/// How one contact bears on another. Directed: `from` influences, champions for, blocks
/// or mentors `to`; `FormerColleagueOf` reads the same both ways but is stored once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum InfluenceKind {
    #[sea_orm(string_value = "influences")]
    Influences,
    #[sea_orm(string_value = "champions_for")]
    ChampionsFor,
    #[sea_orm(string_value = "blocks")]
    Blocks,
    #[sea_orm(string_value = "mentors")]
    Mentors,
    #[sea_orm(string_value = "former_colleague_of")]
    FormerColleagueOf,
}

/// A typed, directed edge of the influence map; never from a contact to themselves, and
/// at most one per pair and kind (both enforced by the schema as well as the service).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "contact_influences")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub from_contact_id: i64,
    pub to_contact_id: i64,
    pub kind: InfluenceKind,
    /// 1 (slight) to 5 (decisive).
    pub strength: i32,
    pub note: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
