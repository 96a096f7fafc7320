use accord_entities::{account, contact, opportunity};
use async_graphql::parser::types::Field;
use async_graphql::{Context, ContextSelectionSet, ID, Object, Value};
use chrono::{DateTime, Utc};

use super::at_hand::Immediate;
use super::{
    AccountSize, AtHand, Conn, Contact, Money, Note, Opportunity, Row, User, connection,
    nested_first_page,
};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders::one;
use crate::graphql::{loaders, wants_total};
use crate::services::contacts::{self, ContactSort};
use crate::services::opportunities::{self, OpportunitySort};
use crate::services::rows::AccountBrief;

pub struct Account(pub Row<account::Model, AccountBrief>);

impl From<account::Model> for Account {
    fn from(model: account::Model) -> Self {
        Account(Row::full(model))
    }
}

impl Account {
    /// The fields a brief account answers without loading the whole row.
    pub const BRIEF_FIELDS: &'static [&'static str] = &["id", "name"];

    /// The whole account (see [`Row`]).
    async fn model(&self, ctx: &Context<'_>) -> async_graphql::Result<&account::Model> {
        self.0.whole(&loaders(ctx)?.accounts, "account").await
    }
}

impl Immediate for AccountBrief {
    const TYPE_NAME: &'static str = "Account";

    fn immediate(&self, _: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "id" => Value::String(encode(NodeKind::Account, self.id).0),
            "name" => Value::String(self.name.clone()),
            _ => return None,
        })
    }
}

#[Object]
impl Account {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Account, self.0.key())
    }
    async fn name(&self) -> &str {
        match &self.0 {
            Row::Full(m) => &m.name,
            Row::Brief { brief, .. } => &brief.name,
        }
    }
    async fn industry(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.industry.as_deref())
    }
    /// ISO 3166-1 alpha-2 country code.
    async fn country(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.country.as_deref())
    }
    async fn region(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.region.as_deref())
    }
    async fn size(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AccountSize>> {
        Ok(self.model(ctx).await?.size.map(Into::into))
    }
    async fn annual_revenue(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Money>> {
        let m = self.model(ctx).await?;
        Ok(m.annual_revenue_micros
            .map(|micros| Money::from_micros(micros, &m.currency)))
    }
    /// Default currency of the account's money fields.
    async fn currency(&self, ctx: &Context<'_>) -> async_graphql::Result<&str> {
        Ok(&self.model(ctx).await?.currency)
    }
    async fn website(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.website.as_deref())
    }
    async fn version(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(self.model(ctx).await?.version)
    }
    async fn created_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.created_at)
    }
    async fn updated_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.updated_at)
    }

    async fn parent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let Some(id) = self.model(ctx).await?.parent_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.accounts, id).await?.map(Account::from))
    }

    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn children(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Account>> {
        let rows = one(&loaders(ctx)?.children_by_account, self.0.key()).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Account::from)
            .collect())
    }

    /// The territory the account belongs to; its contacts and deals follow it.
    async fn territory(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::Territory>> {
        let Some(id) = self.model(ctx).await?.territory_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.territories, id)
            .await?
            .map(super::Territory))
    }

    /// Whether the territory was chosen by hand (assignment rules leave it alone).
    async fn territory_manual(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.model(ctx).await?.territory_manual)
    }

    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.model(ctx).await?.owner_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.users, id).await?.map(User::from))
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
            self.0.key(),
            first,
            &order,
            contact::Column::Id,
        )
        .await?;
        Ok(connection(page, Contact::from))
    }

    /// The account's opportunities, oldest first. Continue with
    /// `opportunities(filter: {accountId}, after: endCursor)`.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Conn<AtHand<Opportunity>>> {
        let l = loaders(ctx)?;
        let counts = wants_total(ctx).then_some(&l.opportunity_count_by_account);
        let order = opportunities::sort_order(OpportunitySort::CreatedAt, false);
        let page = nested_first_page(
            &l.opportunities_by_account,
            counts,
            self.0.key(),
            first,
            &order,
            opportunity::Column::Id,
        )
        .await?;
        // Nothing of these deals is preloaded: their relations come through loaders.
        Ok(connection(page, |deal| {
            AtHand::concurrent(Opportunity::from(deal))
        }))
    }

    /// Newest notes first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Note>> {
        super::note::notes_of(&loaders(ctx)?.notes_by_account, self.0.key(), first).await
    }
}
