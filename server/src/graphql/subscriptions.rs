//! Subscriptions, served over WebSocket (`graphql-transport-ws`) at `/graphql/ws`.
//! Every event is checked against the subscriber's territory access at the moment it is
//! delivered, not when they subscribed.

use accord_entities::territory_membership::AccessLevel;
use std::sync::Arc;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::OperationType;
use async_graphql::{
    Context, Data, Enum, ErrorExtensionValues, ErrorExtensions, Executor, ID, Request, Response,
    ServerError, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use crate::auth;
use crate::authz::{Action, Resource};
use crate::error::AppError;
use crate::events::{OpportunityEvent, ReminderFired};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::schema::AppSchema;
use crate::graphql::{actor, services};
use crate::services::Services;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::events::Operation")]
pub enum ChangeOperation {
    Created,
    Updated,
    StageChanged,
    Deleted,
}

/// A deal changed. The fields are the deal's state right after the change (before it,
/// for deletions); query the deal for anything else.
#[derive(SimpleObject)]
pub struct OpportunityChange {
    pub operation: ChangeOperation,
    pub opportunity_id: ID,
    pub name: String,
    pub stage_id: ID,
    pub owner_id: ID,
    pub version: i32,
    /// Who made the change.
    pub by_user_id: ID,
    pub occurred_at: DateTime<Utc>,
}

impl From<OpportunityEvent> for OpportunityChange {
    fn from(e: OpportunityEvent) -> Self {
        let o = e.opportunity;
        OpportunityChange {
            operation: e.operation.into(),
            opportunity_id: encode(NodeKind::Opportunity, o.id),
            name: o.name,
            stage_id: encode(NodeKind::Stage, o.stage_id),
            owner_id: encode(NodeKind::User, o.owner_id),
            version: o.version,
            by_user_id: encode(NodeKind::User, e.actor_id),
            occurred_at: e.at,
        }
    }
}

/// The token a WebSocket connection authenticated with. Every event re-checks it, so a
/// revoked or expired token, a deactivated user or a changed role takes effect on the
/// next event, as on the next HTTP request.
pub struct SocketToken(pub String);

/// What a deal subscription carries from one event to the next.
struct Listener {
    receiver: tokio::sync::broadcast::Receiver<OpportunityEvent>,
    svc: Services,
    token: String,
    /// Set after the subscriber lost access entirely; the stream then ends.
    done: bool,
}

impl Listener {
    async fn next(mut self) -> Option<(async_graphql::Result<OpportunityChange>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let event = match self.receiver.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    let error = async_graphql::Error::new(format!(
                        "this subscription fell {missed} changes behind and skipped them; refetch what you show"
                    ))
                    .extend_with(|_, e| e.set("code", "CONFLICT"));
                    return Some((Err(error), self));
                }
                Err(RecvError::Closed) => return None,
            };
            let actor = match auth::authenticate(&self.svc.db, &self.svc.tokens, &self.token).await
            {
                Ok(actor) => actor,
                Err(AppError::Unauthenticated) => {
                    self.done = true;
                    return Some((Err(AppError::Unauthenticated.into()), self));
                }
                Err(e) => {
                    // A failed lookup withholds this event rather than guessing.
                    tracing::warn!(error = ?e, "subscriber check failed; event withheld");
                    continue;
                }
            };
            if !self
                .svc
                .authz
                .can(&actor, Resource::Opportunity, Action::Read)
                .await
            {
                continue;
            }
            let scope = self.svc.authz.scope(&actor).await;
            if scope.allows_opportunity(&event.opportunity, AccessLevel::Read) {
                return Some((Ok(OpportunityChange::from(event)), self));
            }
        }
    }
}

/// A reminder, as it reaches you. Drop any whose `idempotencyKey` you have seen: a
/// reminder is sent again when a server died before recording that it was delivered.
#[derive(SimpleObject)]
pub struct ReminderDelivery {
    pub reminder_id: ID,
    pub idempotency_key: String,
    pub message: String,
    pub due_at: DateTime<Utc>,
    pub opportunity_id: Option<ID>,
    pub fired_at: DateTime<Utc>,
}

impl From<ReminderFired> for ReminderDelivery {
    fn from(r: ReminderFired) -> Self {
        ReminderDelivery {
            reminder_id: encode(NodeKind::Reminder, r.reminder_id),
            idempotency_key: r.idempotency_key,
            message: r.message,
            due_at: r.due_at,
            opportunity_id: r.opportunity_id.map(|id| encode(NodeKind::Opportunity, id)),
            fired_at: r.fired_at,
        }
    }
}

/// What a reminder subscription carries from one reminder to the next.
struct ReminderListener {
    receiver: tokio::sync::broadcast::Receiver<ReminderFired>,
    svc: Services,
    token: String,
    user_id: i64,
    done: bool,
}

impl ReminderListener {
    async fn next(mut self) -> Option<(async_graphql::Result<ReminderDelivery>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let fired = match self.receiver.recv().await {
                Ok(fired) => fired,
                Err(RecvError::Lagged(missed)) => {
                    let error = async_graphql::Error::new(format!(
                        "this subscription fell {missed} reminders behind; query `reminders` for what you missed"
                    ))
                    .extend_with(|_, e| e.set("code", "CONFLICT"));
                    return Some((Err(error), self));
                }
                Err(RecvError::Closed) => return None,
            };
            if fired.recipient_id != self.user_id {
                continue;
            }
            match auth::authenticate(&self.svc.db, &self.svc.tokens, &self.token).await {
                Ok(actor) if actor.user_id == self.user_id => {
                    return Some((Ok(ReminderDelivery::from(fired)), self));
                }
                Ok(_) | Err(AppError::Unauthenticated) => {
                    self.done = true;
                    return Some((Err(AppError::Unauthenticated.into()), self));
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "subscriber check failed; reminder withheld (it stays queryable)");
                    continue;
                }
            }
        }
    }
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Changes to deals you can see, as they happen: created, edited, moved to another
    /// stage, deleted. Losing access to a territory stops its deals' changes at once; a
    /// revoked token ends the subscription with UNAUTHENTICATED.
    async fn opportunity_changes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<OpportunityChange>>> {
        let actor = actor(ctx)?.clone();
        let token = ctx
            .data::<SocketToken>()
            .map_err(|_| AppError::validation("query", "subscriptions are served at /graphql/ws"))?
            .0
            .clone();
        let svc = services(ctx).clone();
        svc.authz
            .require(&actor, Resource::Opportunity, Action::Read)
            .await?;
        let listener = Listener {
            receiver: svc.events.opportunities(),
            svc,
            token,
            done: false,
        };
        Ok(futures::stream::unfold(listener, Listener::next))
    }

    /// Your reminders as they fall due, fired by whichever instance delivers them. Each
    /// carries its idempotency key; a revoked token ends the subscription with
    /// UNAUTHENTICATED.
    async fn reminders(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ReminderDelivery>>> {
        let actor = actor(ctx)?.clone();
        let token = ctx
            .data::<SocketToken>()
            .map_err(|_| AppError::validation("query", "subscriptions are served at /graphql/ws"))?
            .0
            .clone();
        let svc = services(ctx).clone();
        let listener = ReminderListener {
            receiver: svc.events.reminders(),
            svc,
            token,
            user_id: actor.user_id,
            done: false,
        };
        Ok(futures::stream::unfold(listener, ReminderListener::next))
    }
}

/// What a query or mutation sent over the WebSocket is told.
pub(crate) const ONLY_SUBSCRIPTIONS_ON_SOCKET: &str =
    "send queries and mutations to POST /graphql; the WebSocket serves subscriptions";

/// The WebSocket's executor: the schema, refusing queries and mutations. They belong
/// on `POST /graphql`, where every request authenticates anew and gets its own loaders
/// (a socket authenticates once; only subscriptions re-check its token, event by event).
///
/// A wrapper rather than a schema extension: an extension sits in the path of every
/// field of every HTTP request too, and the check concerns only the socket.
#[derive(Clone)]
pub struct SubscriptionsOnly(pub AppSchema);

impl Executor for SubscriptionsOnly {
    async fn execute(&self, request: Request) -> Response {
        // The socket sends everything through `execute_stream`; anything else that
        // arrives here is refused the same way.
        match only_subscriptions(request) {
            Ok(request) => self.0.execute(request).await,
            Err(refused) => Response::from_errors(vec![refused]),
        }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match only_subscriptions(request) {
            Ok(request) => Executor::execute_stream(&self.0, request, session_data),
            Err(refused) => {
                futures::stream::once(async move { Response::from_errors(vec![refused]) }).boxed()
            }
        }
    }
}

/// The request if every operation in it is a subscription (parsed once; the schema
/// reuses the parse), or the VALIDATION error refusing it. A document that does not
/// parse goes on, so the client gets the parse error.
fn only_subscriptions(mut request: Request) -> Result<Request, ServerError> {
    let Ok(document) = request.parsed_query() else {
        return Ok(request);
    };
    if document
        .operations
        .iter()
        .all(|(_, op)| op.node.ty == OperationType::Subscription)
    {
        return Ok(request);
    }
    let mut error = ServerError::new(ONLY_SUBSCRIPTIONS_ON_SOCKET, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", "VALIDATION");
    error.extensions = Some(extensions);
    Err(error)
}
