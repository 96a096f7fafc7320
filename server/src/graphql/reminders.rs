//! Reminders and the webhooks that receive them: list, create, cancel, retry; register
//! and remove webhooks. Delivery itself is the scheduler's (`scheduler/`).

use accord_entities::reminder::{self, ReminderStatus as ReminderStatusModel};
use accord_entities::webhook;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::ids::{NodeKind, decode, decode_opt, encode};
use crate::graphql::types::{Conn, Opportunity, User, connection};
use crate::graphql::{actor, loaders, services, wants_total};
use crate::scheduler::channels;
use crate::services::pagination::PageArgs;
use crate::services::{reminders, webhooks};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::reminder::ReminderStatus")]
pub enum ReminderStatus {
    /// Waiting for its time, or for its next attempt after a failed delivery.
    Pending,
    Delivered,
    Cancelled,
    /// Every attempt failed; `retryReminder` sends it again.
    Dead,
}

/// Where a reminder goes.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ReminderChannel {
    /// Live `reminders` subscriptions of the recipient, on any instance.
    InApp,
    /// The recipient's webhooks and their teams'.
    Webhook,
    /// The recipient's email address (when the server has an SMTP server configured).
    Email,
}

impl ReminderChannel {
    fn as_str(self) -> &'static str {
        match self {
            ReminderChannel::InApp => channels::IN_APP,
            ReminderChannel::Webhook => channels::WEBHOOK,
            ReminderChannel::Email => channels::EMAIL,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            channels::IN_APP => Some(ReminderChannel::InApp),
            channels::WEBHOOK => Some(ReminderChannel::Webhook),
            channels::EMAIL => Some(ReminderChannel::Email),
            _ => None,
        }
    }
}

pub struct Reminder(pub reminder::Model);

#[Object]
impl Reminder {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Reminder, self.0.id)
    }
    async fn recipient(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(
            crate::graphql::loaders::one(&loaders(ctx)?.users, self.0.recipient_id)
                .await?
                .map(User::from),
        )
    }
    /// The deal it is about, if you may see it.
    async fn opportunity(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Opportunity>> {
        let Some(id) = self.0.opportunity_id else {
            return Ok(None);
        };
        match crate::services::opportunities::get(services(ctx), actor(ctx)?, id).await {
            Ok(deal) => Ok(Some(Opportunity::from(deal))),
            Err(crate::error::AppError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }
    /// What the due time hangs on; it moves when that moves.
    async fn anchor(&self) -> Option<&str> {
        self.0.anchor.as_deref()
    }
    async fn offset_minutes(&self) -> i64 {
        self.0.offset_minutes
    }
    async fn status(&self) -> ReminderStatus {
        self.0.status.into()
    }
    async fn channels(&self) -> Vec<ReminderChannel> {
        self.0
            .channels
            .split(',')
            .filter_map(ReminderChannel::parse)
            .collect()
    }
    /// Deliveries tried so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When a pending reminder is next tried (its due time, or a retry's backoff).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.status == ReminderStatusModel::Pending).then_some(self.0.attempt_at)
    }
    /// Why the last delivery failed, or why it was cancelled.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// Sent with every delivery so that receivers can drop duplicates.
    async fn idempotency_key(&self) -> &str {
        &self.0.idempotency_key
    }
    /// The stage-script version that scheduled it.
    async fn script(&self) -> Option<ID> {
        self.0.script_id.map(|id| encode(NodeKind::StageScript, id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct Webhook(pub webhook::Model);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        encode(NodeKind::Webhook, self.0.id)
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// Set for a personal webhook.
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.map(|id| encode(NodeKind::User, id))
    }
    /// Set for a team webhook: it receives the reminders of every member.
    async fn team_id(&self) -> Option<ID> {
        self.0
            .territory_id
            .map(|id| encode(NodeKind::Territory, id))
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(InputObject, Default)]
pub struct ReminderFilter {
    pub status: Option<ReminderStatus>,
    /// Someone else's reminders (sales managers and admins); yours by default.
    pub recipient_id: Option<ID>,
    pub opportunity_id: Option<ID>,
}

#[derive(InputObject)]
pub struct CreateReminderInput {
    pub due_at: DateTime<Utc>,
    pub message: String,
    /// Someone else (sales managers and admins); you by default.
    pub recipient_id: Option<ID>,
    pub opportunity_id: Option<ID>,
    /// Every channel by default.
    pub channels: Option<Vec<ReminderChannel>>,
    /// Your own key for this request: sending it again returns the same reminder.
    pub idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// Where to POST reminders. Internal addresses are refused.
    pub url: String,
    /// A team webhook for every member of this territory (its managers and admins).
    pub team_id: Option<ID>,
    pub description: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    /// The HMAC-SHA256 signing key. Shown once: store it now.
    pub secret: String,
}

#[derive(Default)]
pub struct ReminderQuery;

#[Object]
impl ReminderQuery {
    /// Reminders, soonest first: yours, or (for sales managers and admins) someone's.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    async fn reminders(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReminderFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<Reminder>> {
        let f = filter.unwrap_or_default();
        let filter = reminders::ReminderFilter {
            status: f.status.map(Into::into),
            recipient_id: decode_opt(
                "filter.recipientId",
                f.recipient_id.as_ref(),
                NodeKind::User,
            )?,
            opportunity_id: decode_opt(
                "filter.opportunityId",
                f.opportunity_id.as_ref(),
                NodeKind::Opportunity,
            )?,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page =
            reminders::list(services(ctx), actor(ctx)?, filter, &args, wants_total(ctx)).await?;
        Ok(connection(page, Reminder))
    }

    /// Your webhooks and those of the teams you manage.
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        let found = webhooks::list(services(ctx), actor(ctx)?).await?;
        Ok(found.into_iter().map(Webhook).collect())
    }
}

#[derive(Default)]
pub struct ReminderMutation;

#[Object]
impl ReminderMutation {
    async fn create_reminder(
        &self,
        ctx: &Context<'_>,
        input: CreateReminderInput,
    ) -> async_graphql::Result<Reminder> {
        let input = reminders::ReminderInput {
            recipient_id: decode_opt(
                "input.recipientId",
                input.recipient_id.as_ref(),
                NodeKind::User,
            )?,
            opportunity_id: decode_opt(
                "input.opportunityId",
                input.opportunity_id.as_ref(),
                NodeKind::Opportunity,
            )?,
            due_at: input.due_at,
            message: input.message,
            channels: input
                .channels
                .map(|list| list.into_iter().map(ReminderChannel::as_str).collect()),
            idempotency_key: input.idempotency_key,
        };
        let created = reminders::create(services(ctx), actor(ctx)?, input).await?;
        Ok(Reminder(created))
    }

    /// Stops a pending reminder.
    async fn cancel_reminder(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Reminder> {
        let id = decode("id", &id, NodeKind::Reminder)?;
        Ok(Reminder(
            reminders::cancel(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Sends a dead or cancelled reminder again, now, from its first attempt.
    async fn retry_reminder(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Reminder> {
        let id = decode("id", &id, NodeKind::Reminder)?;
        Ok(Reminder(
            reminders::retry(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> async_graphql::Result<CreatedWebhook> {
        let input = webhooks::WebhookInput {
            url: input.url,
            team_id: decode_opt("input.teamId", input.team_id.as_ref(), NodeKind::Territory)?,
            description: input.description,
        };
        let (webhook, secret) = webhooks::create(services(ctx), actor(ctx)?, input).await?;
        Ok(CreatedWebhook {
            webhook: Webhook(webhook),
            secret,
        })
    }

    /// Removes a webhook; answers its ID.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let raw = decode("id", &id, NodeKind::Webhook)?;
        webhooks::delete(services(ctx), actor(ctx)?, raw).await?;
        Ok(id)
    }
}
