//! `node(id:)`: refetch any record by its global ID.

use async_graphql::{Context, ID, Object};

use crate::error::AppError;
use crate::graphql::ids::{NodeKind, decode_any};
use crate::graphql::types::{
    Account, Contact, Lead, Node, Opportunity, OpportunityContactRole, Pipeline, Stage, User,
};
use crate::graphql::types::{AssignmentRule, Note, Territory, TerritoryMembership};
use crate::graphql::{actor, services};
use crate::services::{
    accounts, contacts, leads, notes, opportunities, pipelines, territories, users,
};

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// A missing record and one you may not see both answer NOT_FOUND.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Node> {
        let (svc, actor) = (services(ctx), actor(ctx)?);
        let node = match decode_any("id", &id)? {
            (NodeKind::User, id) => Node::User(User::from(users::get(svc, actor, id).await?)),
            (NodeKind::Account, id) => {
                Node::Account(Account::from(accounts::get(svc, actor, id).await?))
            }
            (NodeKind::Contact, id) => {
                Node::Contact(Contact::from(contacts::get(svc, actor, id).await?))
            }
            (NodeKind::Lead, id) => Node::Lead(Lead(leads::get(svc, actor, id).await?)),
            (NodeKind::Pipeline, id) => {
                Node::Pipeline(Pipeline(pipelines::get(svc, actor, id).await?))
            }
            (NodeKind::Stage, id) => {
                Node::Stage(Stage::from(pipelines::get_stage(svc, actor, id).await?))
            }
            (NodeKind::Opportunity, id) => {
                Node::Opportunity(Opportunity::from(opportunities::get(svc, actor, id).await?))
            }
            (NodeKind::ContactRole, id) => Node::OpportunityContactRole(OpportunityContactRole(
                opportunities::get_contact_role(svc, actor, id).await?,
                None,
            )),
            (NodeKind::Note, id) => Node::Note(Note(notes::get(svc, actor, id).await?)),
            (NodeKind::Territory, id) => {
                Node::Territory(Territory(territories::get(svc, actor, id).await?))
            }
            (NodeKind::TerritoryMembership, id) => Node::TerritoryMembership(TerritoryMembership(
                territories::get_membership(svc, actor, id).await?,
            )),
            (NodeKind::AssignmentRule, id) => {
                Node::AssignmentRule(AssignmentRule(territories::get_rule(svc, actor, id).await?))
            }
            (NodeKind::Reminder, id) => Node::Reminder(crate::graphql::reminders::Reminder(
                crate::services::reminders::get(svc, actor, id).await?,
            )),
            (NodeKind::Event, id) => Node::Event(crate::graphql::calendar::Event(
                crate::services::calendar::get_event(svc, actor, id).await?,
            )),
            (NodeKind::Task, id) => Node::Task(crate::graphql::calendar::Task(
                crate::services::tasks::get(svc, actor, id).await?,
            )),
            (
                NodeKind::ApiToken
                | NodeKind::StageTransition
                | NodeKind::AuditEntry
                | NodeKind::StageScript
                | NodeKind::Webhook
                | NodeKind::ContactInfluence
                | NodeKind::ContactRelationship,
                _,
            ) => {
                return Err(AppError::NotFound("node").into());
            }
        };
        Ok(node)
    }
}
