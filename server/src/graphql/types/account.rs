use accord_entities::{account, contact, opportunity};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{
    AccountSize, Conn, Contact, Money, Note, Opportunity, User, connection, nested_first_page,
};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders::load_error;
use crate::graphql::{loaders, wants_total};
use crate::services::contacts::{self, ContactSort};
use crate::services::opportunities::{self, OpportunitySort};

pub struct Account(pub account::Model);

#[Object]
impl Account {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Account, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }
    /// ISO 3166-1 alpha-2 country code.
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }
    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }
    async fn size(&self) -> Option<AccountSize> {
        self.0.size.map(Into::into)
    }
    async fn annual_revenue(&self) -> Option<Money> {
        self.0
            .annual_revenue_micros
            .map(|m| Money::from_micros(m, &self.0.currency))
    }
    /// Default currency of the account's money fields.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn website(&self) -> Option<&str> {
        self.0.website.as_deref()
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

    async fn parent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let Some(id) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .accounts
            .load_one(id)
            .await
            .map_err(load_error)?
            .map(Account))
    }

    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn children(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Account>> {
        let rows = loaders(ctx)?
            .children_by_account
            .load_one(self.0.id)
            .await
            .map_err(load_error)?;
        Ok(rows.unwrap_or_default().into_iter().map(Account).collect())
    }

    /// The territory the account belongs to; its contacts and deals follow it.
    async fn territory(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::Territory>> {
        let Some(id) = self.0.territory_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .territories
            .load_one(id)
            .await
            .map_err(load_error)?
            .map(super::Territory))
    }

    /// Whether the territory was chosen by hand (assignment rules leave it alone).
    async fn territory_manual(&self) -> bool {
        self.0.territory_manual
    }

    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.owner_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .users
            .load_one(id)
            .await
            .map_err(load_error)?
            .map(User))
    }

    /// The account's contacts by last name. Continue with
    /// `contacts(filter: {accountId}, after: endCursor)`.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Conn<Contact>> {
        let l = loaders(ctx)?;
        let counts = wants_total(ctx).then_some(&l.contact_count_by_account);
        let order = contacts::sort_order(ContactSort::LastName, false);
        let page = nested_first_page(
            &l.contacts_by_account,
            counts,
            self.0.id,
            first,
            &order,
            contact::Column::Id,
        )
        .await?;
        Ok(connection(page, Contact))
    }

    /// The account's opportunities, oldest first. Continue with
    /// `opportunities(filter: {accountId}, after: endCursor)`.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Conn<Opportunity>> {
        let l = loaders(ctx)?;
        let counts = wants_total(ctx).then_some(&l.opportunity_count_by_account);
        let order = opportunities::sort_order(OpportunitySort::CreatedAt, false);
        let page = nested_first_page(
            &l.opportunities_by_account,
            counts,
            self.0.id,
            first,
            &order,
            opportunity::Column::Id,
        )
        .await?;
        Ok(connection(page, Opportunity))
    }

    /// Newest notes first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Note>> {
        super::note::notes_of(&loaders(ctx)?.notes_by_account, self.0.id, first).await
    }
}
