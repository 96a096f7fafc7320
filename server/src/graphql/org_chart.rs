//! Org charts, influence maps and buying committees: queries and mutations.

use std::sync::Arc;

use accord_entities::contact_influence as influence;
use accord_entities::contact_relationship as relationship;
use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use chrono::{DateTime, NaiveDate, Utc};

use crate::graphql::accounts::DeletePayload;
use crate::graphql::calendar::user_field;
use crate::graphql::ids::{NodeKind, decode, decode_opt, encode};
use crate::graphql::loaders::one;
use crate::graphql::types::{Account, Contact, ContactRoleKind, Opportunity, User};
use crate::graphql::{actor, loaders, services};
use crate::services::influence::{self as svc, InfluenceChanges, NewInfluence, RelationshipInput};
use crate::services::influence_graph::Link;
use crate::services::org_chart::{self, Coverage};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::contact_influence::InfluenceKind")]
pub enum InfluenceKind {
    Influences,
    ChampionsFor,
    Blocks,
    Mentors,
    FormerColleagueOf,
}

/// A typed, directed edge of the influence map.
pub struct ContactInfluence(pub influence::Model);

#[Object]
impl ContactInfluence {
    async fn id(&self) -> ID {
        encode(NodeKind::ContactInfluence, self.0.id)
    }
    async fn kind(&self) -> InfluenceKind {
        self.0.kind.into()
    }
    /// 1 (slight) to 5 (decisive).
    async fn strength(&self) -> i32 {
        self.0.strength
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
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
    async fn from(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        contact(ctx, self.0.from_contact_id).await
    }
    async fn to(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        contact(ctx, self.0.to_contact_id).await
    }
}

async fn contact(ctx: &Context<'_>, id: i64) -> async_graphql::Result<Option<Contact>> {
    Ok(one(&loaders(ctx)?.contacts, id).await?.map(Contact::from))
}

/// How well one of our users knows a contact.
pub struct ContactRelationship(pub relationship::Model);

#[Object]
impl ContactRelationship {
    async fn id(&self) -> ID {
        encode(NodeKind::ContactRelationship, self.0.id)
    }
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user_field(ctx, self.0.user_id).await
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        contact(ctx, self.0.contact_id).await
    }
    /// 1 (met once) to 5 (close).
    async fn strength(&self) -> i32 {
        self.0.strength
    }
    async fn last_contact_on(&self) -> Option<NaiveDate> {
        self.0.last_contact_on
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
}

/// The reporting lines of an account (and its subsidiaries) as the caller may see them.
pub struct OrgChart(Arc<org_chart::OrgChart>);

#[Object]
impl OrgChart {
    async fn account(&self) -> Account {
        Account::from(self.0.account.clone())
    }
    /// People in the chart.
    async fn size(&self) -> usize {
        self.0.nodes.len()
    }
    /// Everyone, depth first with siblings by name: the order a chart is read in.
    async fn nodes(&self) -> Vec<OrgChartNode> {
        (0..self.0.nodes.len())
            .map(|index| OrgChartNode {
                chart: Arc::clone(&self.0),
                index,
            })
            .collect()
    }
    /// The top-most people; walk `reports` from here for a nested tree.
    async fn roots(&self) -> Vec<OrgChartNode> {
        self.0
            .roots
            .iter()
            .map(|index| OrgChartNode {
                chart: Arc::clone(&self.0),
                index: *index,
            })
            .collect()
    }
    /// Influence edges between people of the chart.
    async fn influences(&self) -> Vec<ContactInfluence> {
        self.0.edges.iter().cloned().map(ContactInfluence).collect()
    }
}

pub struct OrgChartNode {
    chart: Arc<org_chart::OrgChart>,
    index: usize,
}

impl OrgChartNode {
    fn node(&self) -> &org_chart::ChartNode {
        &self.chart.nodes[self.index]
    }
}

#[Object]
impl OrgChartNode {
    async fn contact(&self) -> Contact {
        Contact::from(self.node().contact.clone())
    }
    /// Their manager, when the caller can see them in this chart.
    async fn manager_id(&self) -> Option<ID> {
        self.node()
            .manager_id
            .map(|id| encode(NodeKind::Contact, id))
    }
    /// 0 for the top-most people.
    async fn depth(&self) -> i32 {
        self.node().depth
    }
    /// Direct reports, by name.
    async fn reports(&self) -> Vec<OrgChartNode> {
        self.node()
            .reports
            .iter()
            .map(|index| OrgChartNode {
                chart: Arc::clone(&self.chart),
                index: *index,
            })
            .collect()
    }
    /// Everyone below them, directly or not.
    async fn team_size(&self) -> usize {
        self.node().team_size
    }
    /// Their roles on the account's open deals that the caller may see.
    async fn deal_roles(&self) -> Vec<DealRole> {
        self.node()
            .deal_roles
            .iter()
            .map(|r| DealRole {
                opportunity_id: r.opportunity_id,
                role: r.role.into(),
                is_primary: r.is_primary,
            })
            .collect()
    }
    /// The latest note, completed task, meeting or recorded conversation with them.
    async fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        self.node().last_activity_at
    }
    /// Sway: each outgoing influence edge adds strength / 5, each person in their
    /// reporting line 0.1.
    async fn influence(&self) -> f64 {
        self.node().influence
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct DealRole {
    #[graphql(skip)]
    opportunity_id: i64,
    role: ContactRoleKind,
    is_primary: bool,
}

#[ComplexObject]
impl DealRole {
    async fn opportunity(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Opportunity>> {
        Ok(one(&loaders(ctx)?.opportunities, self.opportunity_id)
            .await?
            .map(Opportunity::from))
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CoverageStatus {
    /// Nobody holds the role.
    Missing,
    /// Someone holds it, nobody holding it was engaged within the window.
    Filled,
    Engaged,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PathLink {
    /// One of our users knows the contact.
    Knows,
    ReportsTo,
    Influences,
    ChampionsFor,
    Mentors,
    FormerColleagueOf,
}

impl From<Link> for PathLink {
    fn from(link: Link) -> Self {
        use accord_entities::contact_influence::InfluenceKind as K;
        match link {
            Link::Knows => PathLink::Knows,
            Link::ReportsTo => PathLink::ReportsTo,
            Link::Influence(K::Influences | K::Blocks) => PathLink::Influences,
            Link::Influence(K::ChampionsFor) => PathLink::ChampionsFor,
            Link::Influence(K::Mentors) => PathLink::Mentors,
            Link::Influence(K::FormerColleagueOf) => PathLink::FormerColleagueOf,
        }
    }
}

/// Who decides on a deal, who is engaged, who blocks, and the strongest ways in.
pub struct BuyingCommittee(Arc<org_chart::Committee>);

#[Object]
impl BuyingCommittee {
    async fn opportunity(&self) -> Opportunity {
        Opportunity::from(self.0.opportunity.clone())
    }
    async fn engaged_within_days(&self) -> i64 {
        self.0.engaged_within_days
    }
    /// Share of the key roles (decision maker, economic buyer, champion, technical
    /// buyer) that someone holds, 0 to 1.
    async fn coverage(&self) -> f64 {
        self.0.coverage_ratio()
    }
    /// The key roles, each with who holds it.
    async fn roles(&self) -> Vec<CommitteeRole> {
        (0..self.0.roles.len())
            .map(|index| CommitteeRole {
                committee: Arc::clone(&self.0),
                index,
            })
            .collect()
    }
    async fn missing(&self) -> Vec<ContactRoleKind> {
        self.0.missing().into_iter().map(Into::into).collect()
    }
    /// Contacts with the BLOCKER role or a `blocks` edge to someone on the deal, the
    /// most influential first.
    async fn blockers(&self) -> Vec<Blocker> {
        (0..self.0.blockers.len())
            .map(|index| Blocker {
                committee: Arc::clone(&self.0),
                index,
            })
            .collect()
    }
    /// The strongest path to each decision maker from any of our users (through the
    /// relationships they recorded) or from a champion; strongest first. A path's
    /// strength is the product of its ties' strengths (each / 5; reporting lines 0.6).
    async fn paths(&self) -> Vec<RelationshipPath> {
        (0..self.0.paths.len())
            .map(|index| RelationshipPath {
                committee: Arc::clone(&self.0),
                index,
            })
            .collect()
    }
}

pub struct CommitteeRole {
    committee: Arc<org_chart::Committee>,
    index: usize,
}

#[Object]
impl CommitteeRole {
    async fn role(&self) -> ContactRoleKind {
        self.committee.roles[self.index].role.into()
    }
    async fn status(&self) -> CoverageStatus {
        match self.committee.roles[self.index].coverage() {
            Coverage::Missing => CoverageStatus::Missing,
            Coverage::Filled => CoverageStatus::Filled,
            Coverage::Engaged => CoverageStatus::Engaged,
        }
    }
    async fn members(&self) -> Vec<CommitteeMember> {
        self.committee.roles[self.index]
            .members
            .iter()
            .map(|m| CommitteeMember {
                contact: Contact::from(m.contact.clone()),
                is_primary: m.is_primary,
                last_activity_at: m.last_activity_at,
                engaged: m.engaged,
                influence: m.influence,
            })
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct CommitteeMember {
    contact: Contact,
    is_primary: bool,
    last_activity_at: Option<DateTime<Utc>>,
    /// Some activity with them within the committee's window.
    engaged: bool,
    influence: f64,
}

pub struct Blocker {
    committee: Arc<org_chart::Committee>,
    index: usize,
}

#[Object]
impl Blocker {
    async fn contact(&self) -> Contact {
        Contact::from(self.committee.blockers[self.index].contact.clone())
    }
    async fn influence(&self) -> f64 {
        self.committee.blockers[self.index].influence
    }
    async fn has_blocker_role(&self) -> bool {
        self.committee.blockers[self.index].has_blocker_role
    }
    /// People on the deal they block.
    async fn blocks(&self) -> Vec<Contact> {
        self.committee.blockers[self.index]
            .blocks
            .iter()
            .cloned()
            .map(Contact::from)
            .collect()
    }
}

pub struct RelationshipPath {
    committee: Arc<org_chart::Committee>,
    index: usize,
}

#[Object]
impl RelationshipPath {
    /// 0 to 1: the product of the ties' strengths.
    async fn strength(&self) -> f64 {
        self.committee.paths[self.index].strength
    }
    async fn hops(&self) -> usize {
        self.committee.paths[self.index]
            .steps
            .len()
            .saturating_sub(1)
    }
    /// From where the path starts (a user or a champion) to the decision maker.
    async fn steps(&self) -> Vec<PathStep> {
        self.committee.paths[self.index]
            .steps
            .iter()
            .map(|s| PathStep { step: s.clone() })
            .collect()
    }
}

pub struct PathStep {
    step: org_chart::PathStep,
}

#[Object]
impl PathStep {
    /// One of our users (a path's start only).
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match &self.step.party {
            org_chart::PathParty::User(id) => user_field(ctx, *id).await,
            org_chart::PathParty::Contact(_) => Ok(None),
        }
    }
    async fn contact(&self) -> Option<Contact> {
        match &self.step.party {
            org_chart::PathParty::Contact(c) => Some(Contact::from((**c).clone())),
            org_chart::PathParty::User(_) => None,
        }
    }
    /// How this step is reached from the previous one; null for the first.
    async fn via(&self) -> Option<PathLink> {
        self.step.via.map(Into::into)
    }
}

#[derive(Default)]
pub struct OrgChartQuery;

#[Object]
impl OrgChartQuery {
    /// The org chart of an account, with its subsidiaries unless told otherwise.
    async fn org_chart(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        #[graphql(desc = "true when absent")] include_child_accounts: Option<bool>,
        max_depth: Option<i32>,
    ) -> async_graphql::Result<OrgChart> {
        let account_id = decode("accountId", &account_id, NodeKind::Account)?;
        let chart = org_chart::org_chart(
            services(ctx),
            actor(ctx)?,
            account_id,
            include_child_accounts.unwrap_or(true),
            max_depth,
        )
        .await?;
        Ok(OrgChart(Arc::new(chart)))
    }

    /// Coverage of a deal's buying committee.
    async fn buying_committee(
        &self,
        ctx: &Context<'_>,
        opportunity_id: ID,
        engaged_within_days: Option<i64>,
    ) -> async_graphql::Result<BuyingCommittee> {
        let id = decode("opportunityId", &opportunity_id, NodeKind::Opportunity)?;
        let committee =
            org_chart::committee(services(ctx), actor(ctx)?, id, engaged_within_days).await?;
        Ok(BuyingCommittee(Arc::new(committee)))
    }

    /// Influence edges from or to a contact (those whose other end the caller can see).
    async fn contact_influences(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
    ) -> async_graphql::Result<Vec<ContactInfluence>> {
        let id = decode("contactId", &contact_id, NodeKind::Contact)?;
        Ok(svc::influences_of(services(ctx), actor(ctx)?, id)
            .await?
            .into_iter()
            .map(ContactInfluence)
            .collect())
    }

    /// Who on our side knows a contact, and how well.
    async fn contact_relationships(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
    ) -> async_graphql::Result<Vec<ContactRelationship>> {
        let id = decode("contactId", &contact_id, NodeKind::Contact)?;
        Ok(svc::relationships_of(services(ctx), actor(ctx)?, id)
            .await?
            .into_iter()
            .map(ContactRelationship)
            .collect())
    }
}

#[derive(InputObject)]
pub struct CreateContactInfluenceInput {
    pub from_contact_id: ID,
    pub to_contact_id: ID,
    pub kind: InfluenceKind,
    /// 1 (slight) to 5 (decisive).
    pub strength: i32,
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateContactInfluenceInput {
    pub id: ID,
    pub version: i32,
    pub strength: Option<i32>,
    pub note: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct SetContactRelationshipInput {
    /// Whose relationship; yours when absent.
    pub user_id: Option<ID>,
    pub contact_id: ID,
    /// 1 (met once) to 5 (close).
    pub strength: i32,
    pub last_contact_on: Option<NaiveDate>,
    pub note: Option<String>,
}

#[derive(SimpleObject)]
pub struct ContactInfluencePayload {
    pub influence: ContactInfluence,
}

#[derive(SimpleObject)]
pub struct ContactRelationshipPayload {
    pub relationship: ContactRelationship,
}

#[derive(Default)]
pub struct OrgChartMutation;

#[Object]
impl OrgChartMutation {
    async fn create_contact_influence(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInfluenceInput,
    ) -> async_graphql::Result<ContactInfluencePayload> {
        let new = NewInfluence {
            from_contact_id: decode("fromContactId", &input.from_contact_id, NodeKind::Contact)?,
            to_contact_id: decode("toContactId", &input.to_contact_id, NodeKind::Contact)?,
            kind: input.kind.into(),
            strength: input.strength,
            note: input.note,
        };
        let created = svc::create_influence(services(ctx), actor(ctx)?, new).await?;
        Ok(ContactInfluencePayload {
            influence: ContactInfluence(created),
        })
    }

    async fn update_contact_influence(
        &self,
        ctx: &Context<'_>,
        input: UpdateContactInfluenceInput,
    ) -> async_graphql::Result<ContactInfluencePayload> {
        let id = decode("id", &input.id, NodeKind::ContactInfluence)?;
        let changes = InfluenceChanges {
            strength: input.strength,
            note: input.note.into(),
        };
        let updated =
            svc::update_influence(services(ctx), actor(ctx)?, id, input.version, changes).await?;
        Ok(ContactInfluencePayload {
            influence: ContactInfluence(updated),
        })
    }

    async fn delete_contact_influence(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::ContactInfluence)?;
        svc::delete_influence(services(ctx), actor(ctx)?, raw, version).await?;
        Ok(DeletePayload { deleted_id: id })
    }

    /// Records (or replaces) how well one of our users knows a contact.
    async fn set_contact_relationship(
        &self,
        ctx: &Context<'_>,
        input: SetContactRelationshipInput,
    ) -> async_graphql::Result<ContactRelationshipPayload> {
        let input = RelationshipInput {
            user_id: decode_opt("userId", input.user_id.as_ref(), NodeKind::User)?,
            contact_id: decode("contactId", &input.contact_id, NodeKind::Contact)?,
            strength: input.strength,
            last_contact_on: input.last_contact_on,
            note: input.note,
        };
        let saved = svc::set_relationship(services(ctx), actor(ctx)?, input).await?;
        Ok(ContactRelationshipPayload {
            relationship: ContactRelationship(saved),
        })
    }

    async fn remove_contact_relationship(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::ContactRelationship)?;
        svc::remove_relationship(services(ctx), actor(ctx)?, raw).await?;
        Ok(DeletePayload { deleted_id: id })
    }
}
