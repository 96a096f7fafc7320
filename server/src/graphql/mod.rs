//! The GraphQL API: one module per area with its Query and Mutation parts (merged in
//! `schema`), object types in `types`, batch loaders in `loaders`. Resolvers are thin:
//! decode input, call one service, map the result.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod calendar;
pub mod contacts;
pub mod documents;
pub mod ids;
pub mod leads;
pub mod loaders;
pub mod node;
pub mod notes;
pub mod opportunities;
pub mod org_chart;
pub mod pipelines;
pub mod reminders;
pub mod schema;
pub mod stage_scripts;
pub mod subscriptions;
pub mod territories;
pub mod types;
pub mod users;

use async_graphql::Context;

use crate::auth::Actor;
use crate::error::AppError;
use crate::services::Services;
use loaders::Loaders;

/// The caller, or UNAUTHENTICATED.
pub(crate) fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    ctx.data_opt::<Actor>()
        .ok_or_else(|| AppError::Unauthenticated.into())
}

pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// The request's loaders. Only `POST /graphql` requests carry them: the WebSocket
/// serves subscriptions, whose payloads never load relations, and a query sent there is
/// refused instead of answered from a connection-wide cache with stale access.
pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Loaders> {
    ctx.data_opt::<Loaders>().ok_or_else(|| {
        AppError::validation("query", subscriptions::ONLY_SUBSCRIPTIONS_ON_SOCKET).into()
    })
}

/// Counting costs a query; only do it when the client selected `totalCount`.
pub(crate) fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}
