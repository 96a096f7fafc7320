use accord_entities::{territory, territory_membership, territory_rule};
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{AccountSize, User};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::one;
use crate::services::validate::micros_to_decimal;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::territory::TerritoryKind")]
pub enum TerritoryKind {
    Geography,
    Industry,
    NamedAccounts,
    Segment,
}

/// What a member may do with a territory's accounts, contacts and deals. Each level
/// includes the ones below it.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::territory_membership::AccessLevel")]
pub enum AccessLevel {
    /// See the records.
    Read,
    /// See and change them.
    Edit,
    /// Also delete them and move accounts to other territories.
    Owner,
}

pub struct Territory(pub territory::Model);

#[Object]
impl Territory {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Territory, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> TerritoryKind {
        self.0.kind.into()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn parent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Territory>> {
        let Some(parent) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.territories, parent)
            .await?
            .map(Territory))
    }
    /// Direct children, by name.
    async fn children(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Territory>> {
        Ok(one(&loaders(ctx)?.territory_children, self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Territory)
            .collect())
    }
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TerritoryMembership>> {
        Ok(one(&loaders(ctx)?.memberships_by_territory, self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(TerritoryMembership)
            .collect())
    }
}

pub struct TerritoryMembership(pub territory_membership::Model);

#[Object]
impl TerritoryMembership {
    pub async fn id(&self) -> ID {
        encode(NodeKind::TerritoryMembership, self.0.id)
    }
    async fn access_level(&self) -> AccessLevel {
        self.0.access_level.into()
    }
    /// A manager's access covers the whole subtree below the territory, and they may
    /// manage its structure, members and rules.
    async fn is_manager(&self) -> bool {
        self.0.is_manager
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn territory(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Territory>> {
        Ok(one(&loaders(ctx)?.territories, self.0.territory_id)
            .await?
            .map(Territory))
    }
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(one(&loaders(ctx)?.users, self.0.user_id)
            .await?
            .map(User::from))
    }
}

/// Places accounts whose every set condition matches; rules are tried by `position`.
pub struct AssignmentRule(pub territory_rule::Model);

#[Object]
impl AssignmentRule {
    pub async fn id(&self) -> ID {
        encode(NodeKind::AssignmentRule, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn position(&self) -> i32 {
        self.0.position
    }
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }
    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }
    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }
    async fn size(&self) -> Option<AccountSize> {
        self.0.size.map(Into::into)
    }
    async fn min_revenue(&self) -> Option<Decimal> {
        self.0.min_revenue_micros.map(micros_to_decimal)
    }
    async fn max_revenue(&self) -> Option<Decimal> {
        self.0.max_revenue_micros.map(micros_to_decimal)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn territory(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Territory>> {
        Ok(one(&loaders(ctx)?.territories, self.0.territory_id)
            .await?
            .map(Territory))
    }
}
