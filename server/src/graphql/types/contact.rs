use accord_entities::contact;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Account, Note, OpportunityContactRole};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::load_error;

pub struct Contact(pub contact::Model);

#[Object]
impl Contact {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Contact, self.0.id)
    }
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    async fn full_name(&self) -> String {
        format!("{} {}", self.0.first_name, self.0.last_name)
    }
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    async fn department(&self) -> Option<&str> {
        self.0.department.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        Ok(loaders(ctx)?
            .accounts
            .load_one(self.0.account_id)
            .await
            .map_err(load_error)?
            .map(Account))
    }

    /// The contact's manager in the org chart.
    async fn reports_to(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.0.reports_to_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .contacts
            .load_one(id)
            .await
            .map_err(load_error)?
            .map(Contact))
    }

    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn direct_reports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Contact>> {
        let rows = loaders(ctx)?
            .reports_by_contact
            .load_one(self.0.id)
            .await
            .map_err(load_error)?;
        Ok(rows.unwrap_or_default().into_iter().map(Contact).collect())
    }

    /// The roles this contact plays on opportunities.
    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn opportunity_roles(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<OpportunityContactRole>> {
        let rows = loaders(ctx)?
            .roles_by_contact
            .load_one(self.0.id)
            .await
            .map_err(load_error)?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(OpportunityContactRole)
            .collect())
    }

    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Note>> {
        super::note::notes_of(&loaders(ctx)?.notes_by_contact, self.0.id, first).await
    }
}
