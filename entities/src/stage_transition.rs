use sea_orm::entity::prelude::*;
use serde::Serialize;

/// Immutable log of stage moves. Rows are only ever inserted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "stage_transitions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub opportunity_id: i64,
    /// `None` for the entry into the first stage when the opportunity was created.
    pub from_stage_id: Option<i64>,
    pub to_stage_id: i64,
    pub transitioned_at: DateTimeUtc,
    pub actor_id: Option<i64>,
    pub seconds_in_previous_stage: Option<i64>,
    /// The published script of the entered stage that ran for this move, if any.
    pub script_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
