use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Response {
    #[sea_orm(string_value = "needs_action")]
    NeedsAction,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "tentative")]
    Tentative,
    #[sea_orm(string_value = "declined")]
    Declined,
}

/// A user or a contact invited to an event (exactly one of the two is set).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "event_attendees")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: i64,
    pub user_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub response: Response,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
