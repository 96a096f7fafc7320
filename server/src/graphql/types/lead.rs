use accord_entities::lead;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Account, Contact, Grade, LeadSource, LeadStatus, Note, Opportunity, User};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::one;

pub struct Lead(pub lead::Model);

#[Object]
impl Lead {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Lead, self.0.id)
    }
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    async fn company(&self) -> &str {
        &self.0.company
    }
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    async fn source(&self) -> LeadSource {
        self.0.source.into()
    }
    async fn status(&self) -> LeadStatus {
        self.0.status.into()
    }
    async fn grade(&self) -> Option<Grade> {
        self.0.grade.map(Into::into)
    }
    async fn converted_at(&self) -> Option<DateTime<Utc>> {
        self.0.converted_at
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

    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.owner_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.users, id).await?.map(User::from))
    }
    async fn converted_account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let Some(id) = self.0.converted_account_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.accounts, id).await?.map(Account::from))
    }
    async fn converted_contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.0.converted_contact_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.contacts, id).await?.map(Contact::from))
    }
    async fn converted_opportunity(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Opportunity>> {
        let Some(id) = self.0.converted_opportunity_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.opportunities, id)
            .await?
            .map(Opportunity::from))
    }

    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Note>> {
        super::note::notes_of(&loaders(ctx)?.notes_by_lead, self.0.id, first).await
    }
}
