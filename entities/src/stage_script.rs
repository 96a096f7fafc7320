use sea_orm::entity::prelude::*;
use serde::Serialize;

/// Where a version of a stage script is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ScriptStatus {
    /// Saved, never published; may be validated, dry-run, replayed and published.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// The one version that runs for its stage.
    #[sea_orm(string_value = "published")]
    Published,
    /// Was published (or given up as a draft); kept, and may be published again.
    #[sea_orm(string_value = "archived")]
    Archived,
}

/// One version of a stage's script. Sources are immutable: editing saves a new version.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "stage_scripts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub stage_id: i64,
    /// 1, 2, 3 ... per stage.
    pub version: i32,
    pub source: String,
    pub status: ScriptStatus,
    pub note: Option<String>,
    pub author_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    /// Who published it last: the script runs with this user's permissions at most.
    pub published_by: Option<i64>,
    pub archived_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
