use accord_entities::audit_log;
use async_graphql::{Context, ID, Json, Object};
use chrono::{DateTime, Utc};

use super::User;
use crate::graphql::ids::{NodeKind, encode, encode_named};
use crate::graphql::loaders;
use crate::graphql::loaders::one;

pub struct AuditEntry(pub audit_log::Model);

#[Object]
impl AuditEntry {
    pub async fn id(&self) -> ID {
        encode(NodeKind::AuditEntry, self.0.id)
    }
    /// create, update, delete, move_stage, convert, revoke ...
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn entity_type(&self) -> &str {
        &self.0.entity_type
    }
    /// Global ID of the changed record.
    async fn entity_id(&self) -> Option<ID> {
        encode_named(&self.0.entity_type, self.0.entity_id)
    }
    async fn before(&self) -> Option<Json<serde_json::Value>> {
        self.0.before.clone().map(Json)
    }
    async fn after(&self) -> Option<Json<serde_json::Value>> {
        self.0.after.clone().map(Json)
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.users, id).await?.map(User::from))
    }
}
