//! The influence map: typed, directed edges between contacts, and our users'
//! relationships with contacts. An edge is only as visible as both its ends: one that
//! touches a contact the caller cannot see is neither listed nor admitted to exist.

use accord_entities::contact_influence::{self as influence, InfluenceKind};
use accord_entities::contact_relationship as relationship;
use accord_entities::territory_membership::AccessLevel;
use accord_entities::{contact, user};
use std::collections::HashSet;

use chrono::{NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};

use crate::auth::Actor;
use crate::authz::{self, Action, Resource, Scope};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::contacts::visible_contact;
use crate::services::{Patch, Services, audit, update_if_version};

const NOTE_MAX: usize = 2000;

/// 1 (slight) to 5 (decisive), for edges and relationships alike.
fn strength(field: &str, value: i32) -> AppResult<i32> {
    if (1..=5).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::validation(
            field,
            format!("must be between 1 and 5 (got {value})"),
        ))
    }
}

fn note(value: Option<&str>) -> AppResult<Option<String>> {
    super::validate::optional_text("note", value, NOTE_MAX)
}

#[derive(Debug, Clone)]
pub struct NewInfluence {
    pub from_contact_id: i64,
    pub to_contact_id: i64,
    pub kind: InfluenceKind,
    pub strength: i32,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InfluenceChanges {
    pub strength: Option<i32>,
    pub note: Patch<String>,
}

/// The ends of an edge the caller may change: the source at edit level, the target
/// visible. A target the caller cannot see reads as missing, never as forbidden.
async fn ends_for_edit<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    from: i64,
    to: i64,
) -> AppResult<(contact::Model, contact::Model)> {
    let source = visible_contact(db, scope, from, "fromContactId").await?;
    if !scope.allows(source.territory_id, AccessLevel::Edit) {
        return Err(AppError::Forbidden(
            "you may not change this contact's influence map".into(),
        ));
    }
    let target = visible_contact(db, scope, to, "toContactId").await?;
    Ok((source, target))
}

pub async fn create_influence(
    svc: &Services,
    actor: &Actor,
    input: NewInfluence,
) -> AppResult<influence::Model> {
    svc.authz
        .require(actor, Resource::Contact, Action::Write)
        .await?;
    if input.from_contact_id == input.to_contact_id {
        return Err(AppError::validation(
            "toContactId",
            "a contact cannot influence themselves",
        ));
    }
    let strength = strength("strength", input.strength)?;
    let note = note(input.note.as_deref())?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    ends_for_edit(&txn, &scope, input.from_contact_id, input.to_contact_id).await?;
    let existing = influence::Entity::find()
        .filter(influence::Column::FromContactId.eq(input.from_contact_id))
        .filter(influence::Column::ToContactId.eq(input.to_contact_id))
        .filter(influence::Column::Kind.eq(input.kind))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::validation(
            "kind",
            "this edge already exists; update its strength or note instead",
        ));
    }
    let now = Utc::now();
    let created = influence::ActiveModel {
        id: NotSet,
        from_contact_id: Set(input.from_contact_id),
        to_contact_id: Set(input.to_contact_id),
        kind: Set(input.kind),
        strength: Set(strength),
        note: Set(note),
        created_by: Set(Some(actor.user_id)),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "ContactInfluence",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// An edge the caller may see (both ends visible); otherwise NOT_FOUND.
async fn visible_edge<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    id: i64,
) -> AppResult<influence::Model> {
    let edge = influence::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("influence"))?;
    let ends = contact::Entity::find()
        .filter(contact::Column::Id.is_in([edge.from_contact_id, edge.to_contact_id]))
        .all(db)
        .await?;
    if ends.len() != 2
        || !ends
            .iter()
            .all(|c| scope.allows(c.territory_id, AccessLevel::Read))
    {
        return Err(AppError::NotFound("influence"));
    }
    Ok(edge)
}

pub async fn update_influence(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    changes: InfluenceChanges,
) -> AppResult<influence::Model> {
    svc.authz
        .require(actor, Resource::Contact, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = visible_edge(&txn, &scope, id).await?;
    ends_for_edit(&txn, &scope, before.from_contact_id, before.to_contact_id).await?;
    if before.version != version {
        return Err(AppError::stale_version("influence"));
    }
    let mut active: influence::ActiveModel = before.clone().into();
    if let Some(v) = changes.strength {
        active.strength = Set(strength("strength", v)?);
    }
    if let Some(v) = changes.note {
        active.note = Set(note(v.as_deref())?);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let after = update_if_version::<influence::Entity, _>(
        &txn,
        active,
        (influence::Column::Id, influence::Column::Version),
        id,
        version,
        "influence",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "update",
        "ContactInfluence",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

pub async fn delete_influence(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Contact, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = visible_edge(&txn, &scope, id).await?;
    ends_for_edit(&txn, &scope, before.from_contact_id, before.to_contact_id).await?;
    if before.version != version {
        return Err(AppError::stale_version("influence"));
    }
    let gone = influence::Entity::delete_many()
        .filter(influence::Column::Id.eq(id))
        .filter(influence::Column::Version.eq(version))
        .exec(&txn)
        .await?;
    if gone.rows_affected == 0 {
        return Err(AppError::stale_version("influence"));
    }
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "ContactInfluence",
        id,
        Some(&before),
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The influence edges of one contact the caller sees, leaving out any whose other end
/// the caller cannot see.
pub async fn influences_of(
    svc: &Services,
    actor: &Actor,
    contact_id: i64,
) -> AppResult<Vec<influence::Model>> {
    super::contacts::get(svc, actor, contact_id).await?;
    let scope = svc.authz.scope(actor).await;
    let mut edges = influence::Entity::find()
        .filter(
            Condition::any()
                .add(influence::Column::FromContactId.eq(contact_id))
                .add(influence::Column::ToContactId.eq(contact_id)),
        )
        .order_by_asc(influence::Column::Id)
        .all(&svc.db)
        .await?;
    let other_end = |e: &influence::Model| {
        if e.from_contact_id == contact_id {
            e.to_contact_id
        } else {
            e.from_contact_id
        }
    };
    let others: Vec<i64> = edges.iter().map(other_end).collect();
    let visible: HashSet<i64> = contact::Entity::find()
        .filter(contact::Column::Id.is_in(others))
        .apply_if(scope.contacts(AccessLevel::Read), QueryFilter::filter)
        .select_only()
        .column(contact::Column::Id)
        .into_tuple::<i64>()
        .all(&svc.db)
        .await?
        .into_iter()
        .collect();
    edges.retain(|e| visible.contains(&other_end(e)));
    Ok(edges)
}

#[derive(Debug, Clone)]
pub struct RelationshipInput {
    /// Whose relationship; the caller's own when absent.
    pub user_id: Option<i64>,
    pub contact_id: i64,
    pub strength: i32,
    pub last_contact_on: Option<NaiveDate>,
    pub note: Option<String>,
}

/// Records (or replaces) how well one of our users knows a contact.
pub async fn set_relationship(
    svc: &Services,
    actor: &Actor,
    input: RelationshipInput,
) -> AppResult<relationship::Model> {
    svc.authz
        .require(actor, Resource::Contact, Action::Read)
        .await?;
    let strength = strength("strength", input.strength)?;
    let note = note(input.note.as_deref())?;
    let today = Utc::now().date_naive();
    if let Some(on) = input.last_contact_on
        && on > today + chrono::Duration::days(1)
    {
        return Err(AppError::validation(
            "lastContactOn",
            "lies in the future; record contact that happened",
        ));
    }
    let user_id = input.user_id.unwrap_or(actor.user_id);
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let c = visible_contact(&txn, &scope, input.contact_id, "contactId").await?;
    if !authz::may_record_relationship(actor, &scope, user_id, c.territory_id) {
        return Err(AppError::Forbidden(
            "you may record only your own relationships, or those with contacts you may edit"
                .into(),
        ));
    }
    match user::Entity::find_by_id(user_id).one(&txn).await? {
        Some(u) if u.active => {}
        _ => return Err(AppError::validation("userId", "no such active user")),
    }
    let before = relationship::Entity::find()
        .filter(relationship::Column::UserId.eq(user_id))
        .filter(relationship::Column::ContactId.eq(input.contact_id))
        .one(&txn)
        .await?;
    let now = Utc::now();
    let after = match &before {
        Some(existing) => {
            let mut active: relationship::ActiveModel = existing.clone().into();
            active.strength = Set(strength);
            active.last_contact_on = Set(input.last_contact_on);
            active.note = Set(note);
            active.updated_at = Set(now);
            active.version = Set(existing.version + 1);
            update_if_version::<relationship::Entity, _>(
                &txn,
                active,
                (relationship::Column::Id, relationship::Column::Version),
                existing.id,
                existing.version,
                "relationship",
            )
            .await?
        }
        None => {
            relationship::ActiveModel {
                id: NotSet,
                user_id: Set(user_id),
                contact_id: Set(input.contact_id),
                strength: Set(strength),
                last_contact_on: Set(input.last_contact_on),
                note: Set(note),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            }
            .insert(&txn)
            .await?
        }
    };
    audit::record(
        &txn,
        Some(actor),
        if before.is_some() { "update" } else { "create" },
        "ContactRelationship",
        after.id,
        before.as_ref(),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

pub async fn remove_relationship(svc: &Services, actor: &Actor, id: i64) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Contact, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = relationship::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("relationship"))?;
    let c = contact::Entity::find_by_id(before.contact_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("relationship"))?;
    if !scope.allows(c.territory_id, AccessLevel::Read) {
        return Err(AppError::NotFound("relationship"));
    }
    if !authz::may_record_relationship(actor, &scope, before.user_id, c.territory_id) {
        return Err(AppError::Forbidden(
            "you may remove only your own relationships, or those with contacts you may edit"
                .into(),
        ));
    }
    relationship::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "ContactRelationship",
        id,
        Some(&before),
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The relationships our users have with one contact the caller sees.
pub async fn relationships_of(
    svc: &Services,
    actor: &Actor,
    contact_id: i64,
) -> AppResult<Vec<relationship::Model>> {
    super::contacts::get(svc, actor, contact_id).await?;
    Ok(relationship::Entity::find()
        .filter(relationship::Column::ContactId.eq(contact_id))
        .order_by_asc(relationship::Column::Id)
        .all(&svc.db)
        .await?)
}
