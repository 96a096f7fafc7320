//! Leads: queries, mutations and conversion.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::graphql::accounts::id_patch;
use crate::graphql::ids::{NodeKind, decode, decode_opt};
use crate::graphql::types::preload;
use crate::graphql::types::{
    Account, Conn, Contact, Grade, Lead, LeadSource, LeadStatus, Opportunity, OrderDirection,
    connection,
};
use crate::graphql::{actor, loaders, services, wants_total};
use crate::services::leads::{
    self, Conversion, ConversionOpportunity, LeadChanges, LeadFilter as Filter, LeadSort, NewLead,
};
use crate::services::pagination::PageArgs;

#[derive(InputObject, Default)]
pub struct LeadFilter {
    /// Case-insensitive substring of name, company or email.
    pub search: Option<String>,
    pub status: Option<LeadStatus>,
    pub grade: Option<Grade>,
    pub source: Option<LeadSource>,
    pub owner_id: Option<ID>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum LeadOrderField {
    #[default]
    CreatedAt,
    LastName,
    Company,
}

/// Default: newest first.
#[derive(InputObject)]
pub struct LeadOrder {
    #[graphql(default)]
    pub field: LeadOrderField,
    #[graphql(default_with = "OrderDirection::Desc")]
    pub direction: OrderDirection,
}

#[derive(InputObject)]
pub struct CreateLeadInput {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub source: LeadSource,
    pub grade: Option<Grade>,
    /// Defaults to the caller.
    pub owner_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateLeadInput {
    pub id: ID,
    pub version: i32,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub title: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub source: Option<LeadSource>,
    /// Any status but CONVERTED, which only `convertLead` sets.
    pub status: Option<LeadStatus>,
    pub grade: MaybeUndefined<Grade>,
    pub owner_id: MaybeUndefined<ID>,
}

#[derive(InputObject)]
pub struct ConversionOpportunityInput {
    pub name: String,
    pub pipeline_id: ID,
    pub amount: Decimal,
    pub currency: String,
    pub expected_close_date: NaiveDate,
}

#[derive(InputObject)]
pub struct ConvertLeadInput {
    pub id: ID,
    pub version: i32,
    /// Attach the contact to this account instead of creating one from the lead's company.
    pub existing_account_id: Option<ID>,
    /// Territory of the new account (ignored with `existingAccountId`); without it the
    /// assignment rules place the account.
    pub territory_id: Option<ID>,
    /// Also open a deal in this pipeline's first stage.
    pub opportunity: Option<ConversionOpportunityInput>,
}

#[derive(SimpleObject)]
pub struct LeadPayload {
    pub lead: Lead,
}

#[derive(SimpleObject)]
pub struct ConvertLeadPayload {
    pub lead: Lead,
    pub account: Account,
    pub contact: Contact,
    pub opportunity: Option<Opportunity>,
}

#[derive(Default)]
pub struct LeadQuery;

#[Object]
impl LeadQuery {
    async fn lead(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Lead> {
        let id = decode("id", &id, NodeKind::Lead)?;
        Ok(Lead(leads::get(services(ctx), actor(ctx)?, id).await?))
    }

    /// Newest first.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadFilter>,
        order_by: Option<LeadOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<Lead>> {
        let f = filter.unwrap_or_default();
        let filter = Filter {
            search: f.search,
            status: f.status.map(Into::into),
            grade: f.grade.map(Into::into),
            source: f.source.map(Into::into),
            owner_id: decode_opt("filter.ownerId", f.owner_id.as_ref(), NodeKind::User)?,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let (sort, descending) = match order_by {
            None => (LeadSort::CreatedAt, true),
            Some(o) => (
                match o.field {
                    LeadOrderField::CreatedAt => LeadSort::CreatedAt,
                    LeadOrderField::LastName => LeadSort::LastName,
                    LeadOrderField::Company => LeadSort::Company,
                },
                o.direction.descending(),
            ),
        };
        let order = leads::sort_order(sort, descending);
        let page = leads::list(
            services(ctx),
            actor(ctx)?,
            filter,
            order,
            &args,
            wants_total(ctx),
        )
        .await?;
        let models: Vec<_> = page.items.iter().map(|(_, m)| m).collect();
        preload::leads(
            loaders(ctx)?,
            &ctx.look_ahead().field("edges").field("node"),
            &models,
        )
        .await?;
        Ok(connection(page, Lead))
    }
}

#[derive(Default)]
pub struct LeadMutation;

#[Object]
impl LeadMutation {
    async fn create_lead(
        &self,
        ctx: &Context<'_>,
        input: CreateLeadInput,
    ) -> async_graphql::Result<LeadPayload> {
        let new = NewLead {
            first_name: input.first_name,
            last_name: input.last_name,
            company: input.company,
            title: input.title,
            email: input.email,
            phone: input.phone,
            source: input.source.into(),
            grade: input.grade.map(Into::into),
            owner_id: decode_opt("ownerId", input.owner_id.as_ref(), NodeKind::User)?,
        };
        Ok(LeadPayload {
            lead: Lead(leads::create(services(ctx), actor(ctx)?, new).await?),
        })
    }

    async fn update_lead(
        &self,
        ctx: &Context<'_>,
        input: UpdateLeadInput,
    ) -> async_graphql::Result<LeadPayload> {
        let id = decode("id", &input.id, NodeKind::Lead)?;
        let changes = LeadChanges {
            first_name: input.first_name,
            last_name: input.last_name,
            company: input.company,
            title: input.title.into(),
            email: input.email.into(),
            phone: input.phone.into(),
            source: input.source.map(Into::into),
            status: input.status.map(Into::into),
            grade: Option::<Option<Grade>>::from(input.grade).map(|g| g.map(Into::into)),
            owner_id: id_patch("ownerId", input.owner_id, NodeKind::User)?,
        };
        Ok(LeadPayload {
            lead: Lead(
                leads::update(services(ctx), actor(ctx)?, id, input.version, changes).await?,
            ),
        })
    }

    /// Creates (or reuses) the account, creates the contact and optionally the deal, and
    /// marks the lead converted: all in one transaction, or nothing.
    async fn convert_lead(
        &self,
        ctx: &Context<'_>,
        input: ConvertLeadInput,
    ) -> async_graphql::Result<ConvertLeadPayload> {
        let opportunity = match input.opportunity {
            Some(o) => Some(ConversionOpportunity {
                name: o.name,
                pipeline_id: decode("opportunity.pipelineId", &o.pipeline_id, NodeKind::Pipeline)?,
                amount: o.amount,
                currency: o.currency,
                expected_close_date: o.expected_close_date,
            }),
            None => None,
        };
        let conversion = Conversion {
            lead_id: decode("id", &input.id, NodeKind::Lead)?,
            version: input.version,
            existing_account_id: decode_opt(
                "existingAccountId",
                input.existing_account_id.as_ref(),
                NodeKind::Account,
            )?,
            territory_id: decode_opt(
                "territoryId",
                input.territory_id.as_ref(),
                NodeKind::Territory,
            )?,
            opportunity,
        };
        let done = leads::convert(services(ctx), actor(ctx)?, conversion).await?;
        Ok(ConvertLeadPayload {
            lead: Lead(done.lead),
            account: Account::from(done.account),
            contact: Contact::from(done.contact),
            opportunity: done.opportunity.map(Opportunity::from),
        })
    }
}
