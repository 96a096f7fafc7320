use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One of our users knows a contact: how well (1 to 5) and when they last spoke.
/// At most one per user and contact.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "contact_relationships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub contact_id: i64,
    pub strength: i32,
    pub last_contact_on: Option<Date>,
    pub note: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
