use sea_orm::entity::prelude::*;
use serde::Serialize;

/// An HTTPS (or HTTP) endpoint that receives the reminders of one user, or of every
/// member of one territory (a team). Deliveries are signed with `secret` (HMAC-SHA256);
/// the secret is kept in clear because signing needs it, and shown only at creation.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: Option<i64>,
    pub territory_id: Option<i64>,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub description: Option<String>,
    pub active: bool,
    pub created_by: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
