//! Webhooks that receive reminders: a user's own, or a team's (every member of a
//! territory). The URL is checked against the egress guard when it is registered and
//! again at every delivery (`scheduler/egress.rs`).

use accord_entities::{territory, webhook};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};

use crate::auth::Actor;
use crate::authz::{self, Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::validate::optional_text;
use crate::services::{Services, audit};

const URL_MAX: usize = 2048;
const DESCRIPTION_MAX: usize = 200;
/// Webhooks one user (or one team) may have.
const PER_OWNER_MAX: u64 = 10;

pub struct WebhookInput {
    pub url: String,
    /// A team webhook, for every member of this territory.
    pub team_id: Option<i64>,
    pub description: Option<String>,
}

/// Registers a webhook. The signing secret is returned here and never again.
pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: WebhookInput,
) -> AppResult<(webhook::Model, String)> {
    svc.authz
        .require(actor, Resource::Webhook, Action::ManageOwn)
        .await?;
    if input.url.len() > URL_MAX {
        return Err(AppError::validation(
            "url",
            format!("at most {URL_MAX} characters"),
        ));
    }
    let description = optional_text("description", input.description.as_deref(), DESCRIPTION_MAX)?;
    if let Some(team) = input.team_id {
        svc.authz
            .require(actor, Resource::Webhook, Action::Manage)
            .await?;
        let scope = svc.authz.scope(actor).await;
        let exists = territory::Entity::find_by_id(team).one(&svc.db).await?;
        if exists.is_none() || !authz::may_manage_team(actor, &scope, team) {
            return Err(AppError::validation(
                "teamId",
                "no such territory among those you manage",
            ));
        }
    }
    let url = svc
        .egress
        .check_new(input.url.trim())
        .await
        .map_err(|why| AppError::validation("url", why))?;
    let secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()));
    let txn = begin_write(&svc.db).await?;
    let owned = match input.team_id {
        Some(team) => webhook::Column::TerritoryId.eq(team),
        None => webhook::Column::UserId.eq(actor.user_id),
    };
    if webhook::Entity::find().filter(owned).count(&txn).await? >= PER_OWNER_MAX {
        return Err(AppError::validation(
            "url",
            format!("at most {PER_OWNER_MAX} webhooks each; delete one first"),
        ));
    }
    let created = webhook::ActiveModel {
        id: NotSet,
        user_id: Set(input.team_id.is_none().then_some(actor.user_id)),
        territory_id: Set(input.team_id),
        url: Set(url.to_string()),
        secret: Set(secret.clone()),
        description: Set(description),
        active: Set(true),
        created_by: Set(Some(actor.user_id)),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Webhook",
        created.id,
        None::<&webhook::Model>,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok((created, secret))
}

/// The caller's webhooks and those of the teams they manage (all of them for admins).
pub async fn list(svc: &Services, actor: &Actor) -> AppResult<Vec<webhook::Model>> {
    svc.authz
        .require(actor, Resource::Webhook, Action::ManageOwn)
        .await?;
    let scope = svc.authz.scope(actor).await;
    Ok(webhook::Entity::find()
        .order_by_asc(webhook::Column::Id)
        .all(&svc.db)
        .await?
        .into_iter()
        .filter(|h| visible(actor, &scope, h))
        .collect())
}

pub async fn delete(svc: &Services, actor: &Actor, id: i64) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Webhook, Action::ManageOwn)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let found = webhook::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .filter(|h| visible(actor, &scope, h))
        .ok_or(AppError::NotFound("webhook"))?;
    webhook::Entity::delete_by_id(found.id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "Webhook",
        found.id,
        Some(&found),
        None::<&webhook::Model>,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

fn visible(actor: &Actor, scope: &crate::authz::Scope, hook: &webhook::Model) -> bool {
    hook.user_id == Some(actor.user_id)
        || hook
            .territory_id
            .is_some_and(|t| authz::may_manage_team(actor, scope, t))
}
