use accord_entities::{
    account, opportunity, opportunity_contact_role, stage, stage_transition, user,
};
use async_graphql::parser::types::Field;
use async_graphql::{Context, ContextSelectionSet, ID, InputType, Object, ScalarType, Value};
use chrono::{DateTime, NaiveDate, Utc};

use super::at_hand::{Immediate, answer};
use super::{
    Account, AtHand, Contact, ContactRoleKind, Grade, LeadSource, Money, Note, Pipeline, Row,
    Stage, User,
};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::one;
use crate::services::rows::{
    AccountBrief, Committee, ContactBrief, Joined, OpportunityBrief, StageBrief, UserBrief,
};

/// A deal, and what a list read along with it (see [`ReadAlong`]).
pub struct Opportunity(
    pub Row<opportunity::Model, OpportunityBrief>,
    pub Option<Box<ReadAlong>>,
);

impl From<opportunity::Model> for Opportunity {
    fn from(model: opportunity::Model) -> Self {
        Opportunity(Row::full(model), None)
    }
}

/// The relations a list read in its deals' own statement, handed to each deal's
/// resolvers as they are. Fed into the request's loader caches instead, every field
/// looked its record up again (a lock, a hash, a copy); on the nested list that was
/// about 6% of the request's CPU. A relation the list did not read (`None` here) is
/// answered through the loaders, as for any other deal.
pub struct ReadAlong {
    /// `Some(None)`: the deal's account is hidden from the caller.
    pub account: Option<Option<Joined<account::Model, AccountBrief>>>,
    pub owner: Option<Option<Joined<user::Model, UserBrief>>>,
    pub stage: Option<Option<Joined<stage::Model, StageBrief>>>,
    /// The roles whose contact the caller may see, oldest first.
    pub committee: Option<Committee>,
}

/// What a deal read whole and one read brief both carry.
#[derive(Clone, Copy)]
pub struct DealHead<'a> {
    pub id: i64,
    pub name: &'a str,
    pub account_id: i64,
    pub owner_id: i64,
    pub pipeline_id: i64,
    pub stage_id: i64,
    pub amount_micros: i64,
    pub currency: &'a str,
    pub territory_id: Option<i64>,
}

impl Opportunity {
    /// The fields a brief deal answers without loading the whole row (its relations
    /// come through their own loaders either way).
    pub const BRIEF_FIELDS: &'static [&'static str] = &[
        "id",
        "name",
        "amount",
        "account",
        "owner",
        "pipeline",
        "stage",
        "contactRoles",
    ];

    pub fn head(&self) -> DealHead<'_> {
        match &self.0 {
            Row::Full(m) => DealHead {
                id: m.id,
                name: &m.name,
                account_id: m.account_id,
                owner_id: m.owner_id,
                pipeline_id: m.pipeline_id,
                stage_id: m.stage_id,
                amount_micros: m.amount_micros,
                currency: &m.currency,
                territory_id: m.territory_id,
            },
            Row::Brief { brief: b, .. } => DealHead {
                id: b.id,
                name: &b.name,
                account_id: b.account_id,
                owner_id: b.owner_id,
                pipeline_id: b.pipeline_id,
                stage_id: b.stage_id,
                amount_micros: b.amount_micros,
                currency: &b.currency,
                territory_id: b.territory_id,
            },
        }
    }

    /// Whether the caller may see the deal's account. A deal carries its account's
    /// territory: one seen only as its owner may sit in an account the caller cannot
    /// see, and no query needs to ask. Both the resolver and the direct answer ask here.
    fn account_visible(&self, scope: &crate::authz::scope::Scope) -> bool {
        scope.allows(
            self.head().territory_id,
            accord_entities::territory_membership::AccessLevel::Read,
        )
    }

    fn along(&self) -> Option<&ReadAlong> {
        self.1.as_deref()
    }

    /// The whole deal (see [`Row`]).
    pub async fn model(&self, ctx: &Context<'_>) -> async_graphql::Result<&opportunity::Model> {
        self.0
            .whole(&loaders(ctx)?.opportunities, "opportunity")
            .await
    }
}

#[Object]
impl Opportunity {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Opportunity, self.0.key())
    }
    async fn name(&self) -> &str {
        self.head().name
    }
    async fn amount(&self) -> Money {
        let head = self.head();
        Money::from_micros(head.amount_micros, head.currency)
    }
    async fn expected_close_date(&self, ctx: &Context<'_>) -> async_graphql::Result<NaiveDate> {
        Ok(self.model(ctx).await?.expected_close_date)
    }
    async fn source(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LeadSource>> {
        Ok(self.model(ctx).await?.source.map(Into::into))
    }
    async fn grade(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Grade>> {
        Ok(self.model(ctx).await?.grade.map(Into::into))
    }
    async fn lost_reason(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(self.model(ctx).await?.lost_reason.as_deref())
    }
    async fn stage_entered_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.stage_entered_at)
    }
    async fn closed_at(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DateTime<Utc>>> {
        Ok(self.model(ctx).await?.closed_at)
    }
    /// Pass this back on every update; a stale value answers CONFLICT.
    async fn version(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(self.model(ctx).await?.version)
    }
    async fn created_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.created_at)
    }
    async fn updated_at(&self, ctx: &Context<'_>) -> async_graphql::Result<DateTime<Utc>> {
        Ok(self.model(ctx).await?.updated_at)
    }

    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AtHand<Account>>> {
        let loaders = loaders(ctx)?;
        let head = self.head();
        if !self.account_visible(&loaders.scope) {
            return Ok(None);
        }
        if let Some(read) = self.along().and_then(|a| a.account.as_ref()) {
            return Ok(read.clone().map(|a| at_hand(a, Account)));
        }
        Ok(one(&loaders.accounts, head.account_id)
            .await?
            .map(|a| AtHand::concurrent(Account::from(a))))
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AtHand<User>>> {
        if let Some(read) = self.along().and_then(|a| a.owner.as_ref()) {
            return Ok(read.clone().map(|u| at_hand(u, User)));
        }
        let loaders = loaders(ctx)?;
        let owner_id = self.head().owner_id;
        Ok(one(&loaders.users, owner_id)
            .await?
            .map(|u| AtHand::concurrent(User::from(u))))
    }
    async fn pipeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Pipeline>> {
        Ok(one(&loaders(ctx)?.pipelines, self.head().pipeline_id)
            .await?
            .map(Pipeline))
    }
    async fn stage(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AtHand<Stage>>> {
        if let Some(read) = self.along().and_then(|a| a.stage.as_ref()) {
            return Ok(read.clone().map(|s| at_hand(s, Stage)));
        }
        let loaders = loaders(ctx)?;
        let stage_id = self.head().stage_id;
        Ok(one(&loaders.stages, stage_id)
            .await?
            .map(|s| AtHand::concurrent(Stage::from(s))))
    }
    /// The buying committee: contacts and the roles they play on this deal.
    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn contact_roles(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AtHand<OpportunityContactRole>>> {
        if let Some(committee) = self.along().and_then(|a| a.committee.as_ref()) {
            // A member read along has its contact at hand, read brief. Its deal, if
            // asked, is a whole record whose fields may wait on loaders.
            let at_hand = !ctx.look_ahead().field("opportunity").exists();
            return Ok(committee
                .iter()
                .map(|(role, contact)| {
                    let member = OpportunityContactRole(role.clone(), Some(contact.clone()));
                    AtHand::new(member, at_hand)
                })
                .collect());
        }
        let rows = one(&loaders(ctx)?.roles_by_opportunity, self.0.key()).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(|role| AtHand::concurrent(OpportunityContactRole(role, None)))
            .collect())
    }
    /// What the published script of the deal's stage tells the rep: a checklist (with
    /// the stage's requirements ticked or not) and key fields. Null when the stage has
    /// no script. Runs the script, so it is costed high: ask for it on one deal.
    #[graphql(complexity = 500)]
    async fn guidance(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::graphql::stage_scripts::ScriptRun>> {
        let svc = crate::graphql::services(ctx);
        let actor = crate::graphql::actor(ctx)?;
        // Boxed, as are the other resolvers that run a service: async-graphql gives every
        // selected field of every deal a future as large as this type's largest resolver,
        // and running a script is large (4.5 KB). Unboxed, each `name` of a 50-deal page
        // would allocate and copy that much.
        let deal = self.model(ctx).await?;
        Ok(
            Box::pin(crate::services::stage_scripts::guidance(svc, actor, deal))
                .await?
                .map(Into::into),
        )
    }
    /// Reminders scheduled for this deal (by stage scripts), soonest first.
    #[graphql(complexity = "10 * child_complexity")]
    async fn reminders(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::graphql::reminders::Reminder>> {
        let svc = crate::graphql::services(ctx);
        Ok(Box::pin(crate::services::reminders::of_opportunity(
            &svc.db,
            self.0.key(),
        ))
        .await?
        .into_iter()
        .map(crate::graphql::reminders::Reminder)
        .collect())
    }
    /// Tasks and approval requests on this deal, oldest first.
    #[graphql(complexity = "10 * child_complexity")]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::graphql::calendar::Task>> {
        let svc = crate::graphql::services(ctx);
        Ok(Box::pin(crate::services::stage_scripts::tasks_of(
            &svc.db,
            self.0.key(),
        ))
        .await?
        .into_iter()
        .map(crate::graphql::calendar::Task)
        .collect())
    }
    /// Every stage change, oldest first, starting with the entry stage.
    /// Unbounded in principle; costed as 10 items so deep chains hit the complexity limit.
    #[graphql(complexity = "10 * child_complexity")]
    async fn stage_history(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<StageTransition>> {
        let rows = one(&loaders(ctx)?.transitions_by_opportunity, self.0.key()).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(StageTransition)
            .collect())
    }
    #[graphql(complexity = "first.unwrap_or(20).clamp(0, 100) as usize * child_complexity")]
    async fn notes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<Note>> {
        super::note::notes_of(&loaders(ctx)?.notes_by_opportunity, self.0.key(), first).await
    }
}

/// The fields a listed deal answers from what its page read: the resolvers above, for
/// a deal whose relations were read along brief (see [`AtHand`]).
impl Immediate for Opportunity {
    const TYPE_NAME: &'static str = "Opportunity";

    fn immediate(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        let head = self.head();
        let selection = &field.selection_set.node;
        Some(match field.name.node.as_str() {
            "id" => Value::String(encode(NodeKind::Opportunity, head.id).0),
            "name" => Value::String(head.name.to_owned()),
            "amount" => answer(
                &Money::from_micros(head.amount_micros, head.currency),
                ctx,
                selection,
            )?,
            "account" => {
                let scope = &ctx.data_opt::<crate::graphql::loaders::Loaders>()?.scope;
                if !self.account_visible(scope) {
                    Value::Null
                } else {
                    answer_read(self.along()?.account.as_ref()?, ctx, selection)?
                }
            }
            "owner" => answer_read(self.along()?.owner.as_ref()?, ctx, selection)?,
            "stage" => answer_read(self.along()?.stage.as_ref()?, ctx, selection)?,
            "contactRoles" => {
                let committee = self.along()?.committee.as_ref()?;
                let members = committee.iter().map(|(role, contact)| {
                    let member = Member {
                        role,
                        contact: Some(contact),
                    };
                    answer(&member, ctx, selection)
                });
                Value::List(members.collect::<Option<_>>()?)
            }
            _ => return None,
        })
    }
}

/// A relation read along, answered from its brief form; null when it is hidden. One
/// read whole may reach further through loaders: left to the resolvers.
fn answer_read<M, B: Immediate>(
    read: &Option<Joined<M, B>>,
    ctx: &ContextSelectionSet<'_>,
    selection: &async_graphql::parser::types::SelectionSet,
) -> Option<Value> {
    match read {
        None => Some(Value::Null),
        Some(Joined::Brief(brief)) => answer(brief, ctx, selection),
        Some(Joined::Full(_)) => None,
    }
}

/// A record a list read along with its deal, as the resolvers hand it on: read brief,
/// the selection asks only for its brief fields, all at hand; read whole, some of them
/// may reach further through loaders.
fn at_hand<M, B, T>(read: Joined<M, B>, wrap: fn(Row<M, B>) -> T) -> AtHand<T> {
    let brief = matches!(read, Joined::Brief(_));
    AtHand::new(wrap(read.into()), brief)
}

/// A role on a deal's committee, with its contact when the list read it along (see
/// [`ReadAlong`]); without, the contact comes through the loaders.
pub struct OpportunityContactRole(
    pub opportunity_contact_role::Model,
    pub Option<ContactBrief>,
);

/// A committee member as [`Immediate`] sees it, borrowed from the deal's committee.
struct Member<'a> {
    role: &'a opportunity_contact_role::Model,
    contact: Option<&'a ContactBrief>,
}

impl Immediate for Member<'_> {
    const TYPE_NAME: &'static str = OpportunityContactRole::TYPE_NAME;

    fn immediate(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "id" => Value::String(encode(NodeKind::ContactRole, self.role.id).0),
            "role" => InputType::to_value(&ContactRoleKind::from(self.role.role)),
            "isPrimary" => Value::Boolean(self.role.is_primary),
            "createdAt" => ScalarType::to_value(&self.role.created_at),
            "contact" => answer(self.contact?, ctx, &field.selection_set.node)?,
            _ => return None,
        })
    }
}

impl Immediate for OpportunityContactRole {
    const TYPE_NAME: &'static str = "OpportunityContactRole";

    fn immediate(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        let member = Member {
            role: &self.0,
            contact: self.1.as_ref(),
        };
        member.immediate(ctx, field)
    }
}

#[Object]
impl OpportunityContactRole {
    pub async fn id(&self) -> ID {
        encode(NodeKind::ContactRole, self.0.id)
    }
    async fn role(&self) -> ContactRoleKind {
        self.0.role.into()
    }
    async fn is_primary(&self) -> bool {
        self.0.is_primary
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AtHand<Contact>>> {
        // Read along with the page: its list's selection asks for brief fields only.
        if let Some(contact) = &self.1 {
            return Ok(Some(AtHand::serial(Contact(Row::brief(contact.clone())))));
        }
        let loaders = loaders(ctx)?;
        if let Some(brief) = loaders::brief(&loaders.briefs.contacts, self.0.contact_id) {
            // Read brief for some list in this request, which need not be the one this
            // selection belongs to: fields beyond the brief ones may wait on loaders.
            return Ok(Some(AtHand::concurrent(Contact(Row::brief(brief)))));
        }
        Ok(one(&loaders.contacts, self.0.contact_id)
            .await?
            .map(|c| AtHand::concurrent(Contact::from(c))))
    }
    async fn opportunity(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Opportunity>> {
        Ok(one(&loaders(ctx)?.opportunities, self.0.opportunity_id)
            .await?
            .map(Opportunity::from))
    }
}

/// One entry of the immutable stage-transition log.
pub struct StageTransition(pub stage_transition::Model);

#[Object]
impl StageTransition {
    pub async fn id(&self) -> ID {
        encode(NodeKind::StageTransition, self.0.id)
    }
    async fn transitioned_at(&self) -> DateTime<Utc> {
        self.0.transitioned_at
    }
    /// The version of the entered stage's script that ran for this move, if any.
    async fn script(&self) -> Option<ID> {
        self.0.script_id.map(|id| encode(NodeKind::StageScript, id))
    }
    /// Seconds spent in the previous stage; null for the entry into the first stage.
    async fn seconds_in_previous_stage(&self) -> Option<i64> {
        self.0.seconds_in_previous_stage
    }
    #[allow(clippy::wrong_self_convention)] // GraphQL field `fromStage`, not a constructor.
    async fn from_stage(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Stage>> {
        let Some(id) = self.0.from_stage_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.stages, id).await?.map(Stage::from))
    }
    async fn to_stage(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Stage>> {
        Ok(one(&loaders(ctx)?.stages, self.0.to_stage_id)
            .await?
            .map(Stage::from))
    }
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.actor_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.users, id).await?.map(User::from))
    }
}
