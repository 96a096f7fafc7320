//! Subscriptions, served over WebSocket (`graphql-transport-ws`) at `/graphql/ws`.
//! Every event is checked against the subscriber's territory access at the moment it is
//! delivered, not when they subscribed.

use accord_entities::territory_membership::AccessLevel;
use async_graphql::{Context, Enum, ErrorExtensions, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::authz::{Action, Resource};
use crate::events::OpportunityEvent;
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::{actor, services};

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

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Changes to deals you can see, as they happen: created, edited, moved to another
    /// stage, deleted. Losing access to a territory stops its deals' changes at once.
    async fn opportunity_changes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<OpportunityChange>>> {
        let actor = actor(ctx)?.clone();
        let svc = services(ctx).clone();
        svc.authz
            .require(&actor, Resource::Opportunity, Action::Read)
            .await?;
        let receiver = svc.events.opportunities();
        Ok(futures::stream::unfold(
            (receiver, svc, actor),
            |(mut receiver, svc, actor)| async move {
                loop {
                    let item = match receiver.recv().await {
                        Ok(event) => {
                            let scope = svc.authz.scope(&actor).await;
                            if !scope.allows_opportunity(&event.opportunity, AccessLevel::Read) {
                                continue;
                            }
                            Ok(OpportunityChange::from(event))
                        }
                        Err(RecvError::Lagged(missed)) => Err(async_graphql::Error::new(
                            format!("this subscription fell {missed} changes behind and skipped them; refetch what you show"),
                        )
                        .extend_with(|_, e| e.set("code", "CONFLICT"))),
                        Err(RecvError::Closed) => return None,
                    };
                    return Some((item, (receiver, svc, actor)));
                }
            },
        ))
    }
}
