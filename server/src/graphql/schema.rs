//! Schema assembly: the per-area Query and Mutation parts merged, with limits.

use async_graphql::{MergedObject, Schema};

use super::access::{AccessMutation, AccessQuery};
use super::accounts::{AccountMutation, AccountQuery};
use super::audit::AuditQuery;
use super::calendar::{CalendarMutation, CalendarQuery};
use super::contacts::{ContactMutation, ContactQuery};
use super::leads::{LeadMutation, LeadQuery};
use super::node::NodeQuery;
use super::notes::NoteMutation;
use super::opportunities::{OpportunityMutation, OpportunityQuery};
use super::org_chart::{OrgChartMutation, OrgChartQuery};
use super::pipelines::{PipelineMutation, PipelineQuery};
use super::reminders::{ReminderMutation, ReminderQuery};
use super::stage_scripts::{StageScriptMutation, StageScriptQuery};
use super::subscriptions::SubscriptionRoot;
use super::territories::{TerritoryMutation, TerritoryQuery};
use super::users::{UserMutation, UserQuery};
use crate::config::Limits;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    NodeQuery,
    UserQuery,
    AccountQuery,
    ContactQuery,
    LeadQuery,
    PipelineQuery,
    OpportunityQuery,
    AuditQuery,
    TerritoryQuery,
    AccessQuery,
    StageScriptQuery,
    ReminderQuery,
    CalendarQuery,
    OrgChartQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    UserMutation,
    AccountMutation,
    ContactMutation,
    LeadMutation,
    PipelineMutation,
    OpportunityMutation,
    NoteMutation,
    TerritoryMutation,
    AccessMutation,
    StageScriptMutation,
    ReminderMutation,
    CalendarMutation,
    OrgChartMutation,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema. Per-request data (actor, loaders) is attached by the HTTP handler;
/// `extra` carries the long-lived services.
pub fn build(
    limits: &Limits,
) -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    // No extensions: records answered directly (`types::Immediate`) skip the per-field
    // resolve hooks an extension would get. One that needs them must keep such records
    // on async-graphql's resolvers.
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(16)
    .data(limits.clone())
}

/// The SDL, for `accord schema`.
pub fn sdl() -> String {
    build(&Limits::default()).finish().sdl()
}
