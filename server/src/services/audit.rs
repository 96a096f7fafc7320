//! The audit log: one row per mutation, written inside the mutation's transaction so
//! the change and its record commit or vanish together.

use accord_entities::audit_log;
use chrono::Utc;
use sea_orm::sea_query::InsertStatement;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryTrait, Set};
use serde::Serialize;

use crate::auth::Actor;
use crate::authz::{Action, Resource};
use crate::error::{AppError, AppResult};
use crate::services::Services;
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate};

fn snapshot<T: Serialize>(value: Option<&T>) -> AppResult<Option<serde_json::Value>> {
    value
        .map(serde_json::to_value)
        .transpose()
        .map_err(AppError::internal)
}

pub async fn record<C: ConnectionTrait, T: Serialize>(
    txn: &C,
    actor: Option<&Actor>,
    action: &str,
    entity_type: &str,
    entity_id: i64,
    before: Option<&T>,
    after: Option<&T>,
) -> AppResult<()> {
    let entry = entry(actor, action, entity_type, entity_id, before, after)?;
    txn.execute(&entry).await?;
    Ok(())
}

/// The statement that writes one audit entry, for a caller that sends it along with
/// other writes ([`crate::db::WriteBatch`]).
pub fn entry<T: Serialize>(
    actor: Option<&Actor>,
    action: &str,
    entity_type: &str,
    entity_id: i64,
    before: Option<&T>,
    after: Option<&T>,
) -> AppResult<InsertStatement> {
    let row = audit_log::ActiveModel {
        id: NotSet,
        actor_id: Set(actor.map(|a| a.user_id)),
        action: Set(action.to_owned()),
        entity_type: Set(entity_type.to_owned()),
        entity_id: Set(entity_id),
        before: Set(snapshot(before)?),
        after: Set(snapshot(after)?),
        at: Set(Utc::now()),
    };
    Ok(audit_log::Entity::insert(row).into_query())
}

/// Records deletions that the database performs on its own (ON DELETE CASCADE), so the
/// log holds every row a mutation removed, not only the one the client named.
pub async fn record_cascaded_deletes<C: ConnectionTrait, T: Serialize>(
    txn: &C,
    actor: &Actor,
    entity_type: &str,
    rows: &[T],
    id_of: fn(&T) -> i64,
) -> AppResult<()> {
    for row in rows {
        record(
            txn,
            Some(actor),
            "delete",
            entity_type,
            id_of(row),
            Some(row),
            None,
        )
        .await?;
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub entity_type: Option<String>,
    pub entity_id: Option<i64>,
    pub actor_id: Option<i64>,
}

/// Newest first.
pub async fn list(
    svc: &Services,
    actor: &Actor,
    filter: AuditFilter,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<audit_log::Model>> {
    svc.authz
        .require(actor, Resource::Audit, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let mut query = audit_log::Entity::find();
    if let Some(visible) = scope.audit_entries() {
        query = query.filter(visible);
    }
    if let Some(t) = filter.entity_type {
        query = query.filter(audit_log::Column::EntityType.eq(t));
    }
    if let Some(id) = filter.entity_id {
        query = query.filter(audit_log::Column::EntityId.eq(id));
    }
    if let Some(id) = filter.actor_id {
        query = query.filter(audit_log::Column::ActorId.eq(id));
    }
    let order = SortOrder::<audit_log::Entity> {
        column: audit_log::Column::Id,
        descending: true,
        key: |m| SortKey::Int(m.id),
    };
    paginate(
        &svc.db,
        query,
        audit_log::Column::Id,
        &order,
        args,
        want_total,
    )
    .await
}
