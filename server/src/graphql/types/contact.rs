use accord_entities::contact;
use async_graphql::parser::types::Field;
use async_graphql::{Context, ContextSelectionSet, ID, Object, Value};
use chrono::{DateTime, Utc};

use super::at_hand::Immediate;
use super::{Account, Note, OpportunityContactRole, Row};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::one;
use crate::services::rows::ContactBrief;

pub struct Contact(pub Row<contact::Model, ContactBrief>);

impl From<contact::Model> for Contact {
    fn from(model: contact::Model) -> Self {
        Contact(Row::full(model))
    }
}

impl Contact {
    /// The fields a brief contact answers without loading the whole row.
    pub const BRIEF_FIELDS: &'static [&'static str] = &["id", "firstName", "lastName", "fullName"];

    fn names(&self) -> (&str, &str) {
        match &self.0 {
            Row::Full(m) => (&m.first_name, &m.last_name),
            Row::Brief { brief, .. } => (&brief.first_name, &brief.last_name),
        }
    }

    /// The whole contact (see [`Row`]).
    async fn model(&self, ctx: &Context<'_>) -> async_graphql::Result<&contact::Model> {
        self.0.whole(&loaders(ctx)?.contacts, "contact").await
    }
}

impl Immediate for ContactBrief {
    const TYPE_NAME: &'static str = "Contact";

    fn immediate(&self, _: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "id" => Value::String(encode(NodeKind::Contact, self.id).0),
            "firstName" => Value::String(self.first_name.clone()),
            "lastName" => Value::String(self.last_name.clone()),
            "fullName" => Value::String(full_name(&self.first_name, &self.last_name)),
            _ => return None,
        })
    }
}

fn full_name(first: &str, last: &str) -> String {
    format!("{first} {last}")
}

#[Object]
impl Contact {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Contact, self.0.key())
    }
    async fn first_name(&self) -> &str {
        self.names().0
    }
    async fn last_name(&self) -> &str {
        self.names().1
    }
    async fn full_name(&self) -> String {
        let (first, last) = self.names();
        full_name(first, last)
    }
    async fn title(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.title.as_deref())
    }
    async fn department(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.department.as_deref())
    }
    async fn email(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.email.as_deref())
    }
    async fn phone(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.phone.as_deref())
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

    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let account_id = self.model(ctx).await?.account_id;
        Ok(one(&loaders(ctx)?.accounts, account_id)
            .await?
            .map(Account::from))
    }

    /// The contact's manager in the org chart.
    async fn reports_to(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let Some(id) = self.model(ctx).await?.reports_to_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.contacts, id).await?.map(Contact::from))
    }

    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn direct_reports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Contact>> {
        let rows = one(&loaders(ctx)?.reports_by_contact, self.0.key()).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Contact::from)
            .collect())
    }

    /// The roles this contact plays on opportunities.
    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn opportunity_roles(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<OpportunityContactRole>> {
        let rows = one(&loaders(ctx)?.roles_by_contact, self.0.key()).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(|role| OpportunityContactRole(role, None))
            .collect())
    }

    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Note>> {
        super::note::notes_of(&loaders(ctx)?.notes_by_contact, self.0.key(), first).await
    }
}
