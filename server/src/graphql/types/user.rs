use accord_entities::{auth_token, user};
use async_graphql::{ID, Object};
use chrono::{DateTime, Utc};

use super::Role;
use crate::graphql::ids::{NodeKind, encode};

pub struct User(pub user::Model);

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        encode(NodeKind::User, self.0.id)
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
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
