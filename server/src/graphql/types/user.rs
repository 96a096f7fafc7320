use accord_entities::{auth_token, user};
use async_graphql::parser::types::Field;
use async_graphql::{Context, ContextSelectionSet, ID, Object, Value};
use chrono::{DateTime, Utc};

use super::at_hand::Immediate;
use super::{Role, Row};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::services::rows::UserBrief;

pub struct User(pub Row<user::Model, UserBrief>);

impl From<user::Model> for User {
    fn from(model: user::Model) -> Self {
        User(Row::full(model))
    }
}

impl User {
    /// The fields a brief user answers without loading the whole row.
    pub const BRIEF_FIELDS: &'static [&'static str] = &["id", "displayName"];

    /// The whole user (see [`Row`]).
    async fn model(&self, ctx: &Context<'_>) -> async_graphql::Result<&user::Model> {
        self.0.whole(&loaders(ctx)?.users, "user").await
    }
}

impl Immediate for UserBrief {
    const TYPE_NAME: &'static str = "User";

    fn immediate(&self, _: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "id" => Value::String(encode(NodeKind::User, self.id).0),
            "displayName" => Value::String(self.display_name.clone()),
            _ => return None,
        })
    }
}

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        encode(NodeKind::User, self.0.key())
    }
    async fn email(&self, ctx: &Context<'_>) -> async_graphql::Result<&str> {
        Ok(&self.model(ctx).await?.email)
    }
    async fn display_name(&self) -> &str {
        match &self.0 {
            Row::Full(m) => &m.display_name,
            Row::Brief { brief, .. } => &brief.display_name,
        }
    }
    async fn role(&self, ctx: &Context<'_>) -> async_graphql::Result<Role> {
        Ok(self.model(ctx).await?.role.into())
    }
    async fn active(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.model(ctx).await?.active)
    }
    async fn created_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.created_at)
    }
}

/// A long-lived integration token. Its secret is shown only once, at creation.
pub struct ApiToken(pub auth_token::Model);

#[Object]
impl ApiToken {
    pub async fn id(&self) -> ID {
        encode(NodeKind::ApiToken, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}
