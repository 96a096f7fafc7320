//! Opportunities: queries, mutations, stage moves and contact roles.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::graphql::accounts::DeletePayload;
use crate::graphql::ids::{NodeKind, decode, decode_opt};
use crate::graphql::types::DealHead;
use crate::graphql::types::preload;
use crate::graphql::types::{
    Account, AtHand, Conn, Contact, ContactRoleKind, Grade, LeadSource, Opportunity,
    OpportunityContactRole, OrderDirection, ReadAlong, Stage, StageKind, User, connection, width,
};
use crate::graphql::{actor, loaders, services, wants_total};
use crate::services::opportunities::{
    self, NewOpportunity, OpportunityChanges, OpportunityFilter as Filter, OpportunitySort,
    RelationWidths,
};
use crate::services::pagination::PageArgs;
use crate::services::rows::Width;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum OpportunityOrderField {
    #[default]
    CreatedAt,
    Name,
    Amount,
    ExpectedCloseDate,
}

#[derive(InputObject, Default)]
pub struct OpportunityOrder {
    #[graphql(default)]
    pub field: OpportunityOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(InputObject, Default)]
pub struct OpportunityFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub account_id: Option<ID>,
    pub owner_id: Option<ID>,
    pub pipeline_id: Option<ID>,
    pub stage_id: Option<ID>,
    pub stage_kind: Option<StageKind>,
    pub amount_min: Option<Decimal>,
    pub amount_max: Option<Decimal>,
    pub expected_close_from: Option<NaiveDate>,
    pub expected_close_to: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct CreateOpportunityInput {
    pub name: String,
    pub account_id: ID,
    /// Defaults to the caller.
    pub owner_id: Option<ID>,
    pub pipeline_id: ID,
    /// Defaults to the pipeline's first open stage.
    pub stage_id: Option<ID>,
    /// Non-negative, at most 6 decimal places.
    pub amount: Decimal,
    /// ISO 4217
    pub currency: String,
    pub expected_close_date: NaiveDate,
    pub source: Option<LeadSource>,
    pub grade: Option<Grade>,
}

/// Stage changes go through `moveOpportunityStage`, which logs the transition.
#[derive(InputObject)]
pub struct UpdateOpportunityInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub account_id: Option<ID>,
    pub owner_id: Option<ID>,
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    pub expected_close_date: Option<NaiveDate>,
    pub source: MaybeUndefined<LeadSource>,
    pub grade: MaybeUndefined<Grade>,
}

#[derive(InputObject)]
pub struct MoveOpportunityStageInput {
    pub id: ID,
    pub version: i32,
    pub stage_id: ID,
    /// Required when the target stage is LOST.
    pub lost_reason: Option<String>,
}

#[derive(InputObject)]
pub struct AddContactRoleInput {
    pub opportunity_id: ID,
    pub contact_id: ID,
    pub role: ContactRoleKind,
    #[graphql(default)]
    pub is_primary: bool,
}

#[derive(SimpleObject)]
pub struct OpportunityPayload {
    pub opportunity: Opportunity,
}

#[derive(SimpleObject)]
pub struct ContactRolePayload {
    pub contact_role: OpportunityContactRole,
}

#[derive(Default)]
pub struct OpportunityQuery;

#[Object]
impl OpportunityQuery {
    async fn opportunity(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Opportunity> {
        let id = decode("id", &id, NodeKind::Opportunity)?;
        Ok(Opportunity::from(
            opportunities::get(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn opportunities(
        &self,
        ctx: &Context<'_>,
        filter: Option<OpportunityFilter>,
        order_by: Option<OpportunityOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<AtHand<Opportunity>>> {
        let f = filter.unwrap_or_default();
        let filter = Filter {
            search: f.search,
            account_id: decode_opt("filter.accountId", f.account_id.as_ref(), NodeKind::Account)?,
            owner_id: decode_opt("filter.ownerId", f.owner_id.as_ref(), NodeKind::User)?,
            pipeline_id: decode_opt(
                "filter.pipelineId",
                f.pipeline_id.as_ref(),
                NodeKind::Pipeline,
            )?,
            stage_id: decode_opt("filter.stageId", f.stage_id.as_ref(), NodeKind::Stage)?,
            stage_kind: f.stage_kind.map(Into::into),
            amount_min: f.amount_min,
            amount_max: f.amount_max,
            close_from: f.expected_close_from,
            close_to: f.expected_close_to,
        };
        let o = order_by.unwrap_or_default();
        let sort = match o.field {
            OpportunityOrderField::CreatedAt => OpportunitySort::CreatedAt,
            OpportunityOrderField::Name => OpportunitySort::Name,
            OpportunityOrderField::Amount => OpportunitySort::Amount,
            OpportunityOrderField::ExpectedCloseDate => OpportunitySort::ExpectedCloseDate,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let order = opportunities::sort_order(sort, o.direction.descending());
        let (svc, actor, total) = (services(ctx), actor(ctx)?, wants_total(ctx));
        let node = ctx.look_ahead().field("edges").field("node");
        let widths = RelationWidths {
            deal: width(&node, Opportunity::BRIEF_FIELDS),
            account: width(&node.field("account"), Account::BRIEF_FIELDS),
            owner: width(&node.field("owner"), User::BRIEF_FIELDS),
            stage: width(&node.field("stage"), Stage::BRIEF_FIELDS),
            // Committees come with the page unless their contacts are wanted whole.
            committee: node.field("contactRoles").exists()
                && width(
                    &node.field("contactRoles").field("contact"),
                    Contact::BRIEF_FIELDS,
                ) != Width::Full,
        };
        let l = loaders(ctx)?;
        // The service future is boxed so that this resolver's own future, and with it
        // every root field's (async-graphql sizes them by the largest), stays small.
        let page = Box::pin(opportunities::list_with_relations(
            svc, actor, filter, order, &args, total, widths,
        ))
        .await?;
        // A committee the page could not read (SQLite JSON that did not parse) is read
        // by its own statement instead, with those of the page's other deals.
        let committees_read =
            widths.committee && page.items.iter().all(|(_, r)| r.committee.is_some());
        let read = |width: Width| width != Width::Skip;
        let page = page.map(|r| {
            let along = ReadAlong {
                account: read(widths.account).then_some(r.account),
                owner: read(widths.owner).then_some(r.owner),
                stage: read(widths.stage).then_some(r.stage),
                committee: r.committee.filter(|_| committees_read),
            };
            Opportunity(r.opportunity.into(), Some(Box::new(along)))
        });
        let alongs = || page.items.iter().filter_map(|(_, o)| o.1.as_deref());
        preload::feed_whole(l, alongs()).await;
        let read_roles = committees_read.then(|| {
            alongs()
                .flat_map(|a| a.committee.iter().flatten().map(|(role, _)| role))
                .collect()
        });
        let deals: Vec<DealHead<'_>> = page.items.iter().map(|(_, o)| o.head()).collect();
        Box::pin(preload::opportunities(l, &node, &deals, widths, read_roles)).await?;
        let at_hand = deal_at_hand(&node, widths, committees_read);
        Ok(connection(page, |deal| AtHand::new(deal, at_hand)))
    }
}

/// Whether every field the selection asks of a listed deal, down to the leaves, is at
/// hand once the page is read and preloaded (see [`AtHand`]): the deal read brief, its
/// account, owner and stage read brief with it (a whole one may reach further, through
/// loaders), its committee read along, no pipeline (whose stages and manager are
/// loaded) and no member's deal (a whole record).
fn deal_at_hand(
    node: &async_graphql::Lookahead<'_>,
    widths: RelationWidths,
    committees_read: bool,
) -> bool {
    let roles = node.field("contactRoles");
    widths.deal == Width::Brief
        && [widths.account, widths.owner, widths.stage]
            .iter()
            .all(|w| *w != Width::Full)
        && !node.field("pipeline").exists()
        && (!roles.exists() || committees_read)
        && !roles.field("opportunity").exists()
}

#[derive(Default)]
pub struct OpportunityMutation;

#[Object]
impl OpportunityMutation {
    async fn create_opportunity(
        &self,
        ctx: &Context<'_>,
        input: CreateOpportunityInput,
    ) -> async_graphql::Result<OpportunityPayload> {
        let new = NewOpportunity {
            name: input.name,
            account_id: decode("accountId", &input.account_id, NodeKind::Account)?,
            owner_id: decode_opt("ownerId", input.owner_id.as_ref(), NodeKind::User)?,
            pipeline_id: decode("pipelineId", &input.pipeline_id, NodeKind::Pipeline)?,
            stage_id: decode_opt("stageId", input.stage_id.as_ref(), NodeKind::Stage)?,
            amount: input.amount,
            currency: input.currency,
            expected_close_date: input.expected_close_date,
            source: input.source.map(Into::into),
            grade: input.grade.map(Into::into),
        };
        let created = opportunities::create(services(ctx), actor(ctx)?, new).await?;
        Ok(OpportunityPayload {
            opportunity: Opportunity::from(created),
        })
    }

    async fn update_opportunity(
        &self,
        ctx: &Context<'_>,
        input: UpdateOpportunityInput,
    ) -> async_graphql::Result<OpportunityPayload> {
        let id = decode("id", &input.id, NodeKind::Opportunity)?;
        let changes = OpportunityChanges {
            name: input.name,
            account_id: decode_opt("accountId", input.account_id.as_ref(), NodeKind::Account)?,
            owner_id: decode_opt("ownerId", input.owner_id.as_ref(), NodeKind::User)?,
            amount: input.amount,
            currency: input.currency,
            expected_close_date: input.expected_close_date,
            source: Option::<Option<LeadSource>>::from(input.source).map(|s| s.map(Into::into)),
            grade: Option::<Option<Grade>>::from(input.grade).map(|g| g.map(Into::into)),
        };
        let updated =
            opportunities::update(services(ctx), actor(ctx)?, id, input.version, changes).await?;
        Ok(OpportunityPayload {
            opportunity: Opportunity::from(updated),
        })
    }

    /// Moves a deal to another stage of its pipeline and logs the transition.
    async fn move_opportunity_stage(
        &self,
        ctx: &Context<'_>,
        input: MoveOpportunityStageInput,
    ) -> async_graphql::Result<OpportunityPayload> {
        let id = decode("id", &input.id, NodeKind::Opportunity)?;
        let stage_id = decode("stageId", &input.stage_id, NodeKind::Stage)?;
        let moved = opportunities::move_stage(
            services(ctx),
            actor(ctx)?,
            id,
            input.version,
            stage_id,
            input.lost_reason,
        )
        .await?;
        Ok(OpportunityPayload {
            opportunity: Opportunity::from(moved),
        })
    }

    /// Sales managers and admins.
    async fn delete_opportunity(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::Opportunity)?;
        opportunities::delete(services(ctx), actor(ctx)?, raw, version).await?;
        Ok(DeletePayload { deleted_id: id })
    }

    async fn add_opportunity_contact_role(
        &self,
        ctx: &Context<'_>,
        input: AddContactRoleInput,
    ) -> async_graphql::Result<ContactRolePayload> {
        let opportunity_id = decode(
            "opportunityId",
            &input.opportunity_id,
            NodeKind::Opportunity,
        )?;
        let contact_id = decode("contactId", &input.contact_id, NodeKind::Contact)?;
        let role = opportunities::add_contact_role(
            services(ctx),
            actor(ctx)?,
            opportunity_id,
            contact_id,
            input.role.into(),
            input.is_primary,
        )
        .await?;
        Ok(ContactRolePayload {
            contact_role: OpportunityContactRole(role, None),
        })
    }

    async fn remove_opportunity_contact_role(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::ContactRole)?;
        opportunities::remove_contact_role(services(ctx), actor(ctx)?, raw).await?;
        Ok(DeletePayload { deleted_id: id })
    }
}
