//! Notes on accounts, contacts, leads and opportunities.

use accord_entities::{account, contact, lead, note, opportunity};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, NotSet, PaginatorTrait, Set};

use crate::auth::Actor;
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::validate::{NOTE_MAX, required_text};
use crate::services::{Services, audit, gate_opportunity, gate_territory};
use accord_entities::territory_membership::AccessLevel;
use accord_entities::user::Role;
use sea_orm::{QueryFilter, QueryTrait};

/// The record a note is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteSubject {
    Account(i64),
    Contact(i64),
    Lead(i64),
    Opportunity(i64),
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    subject: NoteSubject,
    body: &str,
) -> AppResult<note::Model> {
    svc.authz
        .require(actor, Resource::Note, Action::Write)
        .await?;
    let body = required_text("body", body, NOTE_MAX)?;
    let txn = begin_write(&svc.db).await?;
    // Notes on territory records take edit access there; an invisible subject reads
    // as missing.
    let scope = svc.authz.scope(actor).await;
    let edit = AccessLevel::Edit;
    let missing = || AppError::validation("subjectId", "no such record");
    let gated = |r: AppResult<()>| match r {
        Err(AppError::NotFound(_)) => Err(missing()),
        other => other,
    };
    let mut deal = None;
    match subject {
        NoteSubject::Account(id) => {
            let a = account::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(missing)?;
            gated(gate_territory(&scope, a.territory_id, edit, "account"))?;
        }
        NoteSubject::Contact(id) => {
            let c = contact::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(missing)?;
            gated(gate_territory(&scope, c.territory_id, edit, "contact"))?;
        }
        NoteSubject::Lead(id) => {
            if lead::Entity::find_by_id(id).count(&txn).await? == 0 {
                return Err(missing());
            }
        }
        NoteSubject::Opportunity(id) => {
            let o = opportunity::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(missing)?;
            gated(gate_opportunity(&scope, &o, edit))?;
            deal = Some(o);
        }
    }
    let (a, c, l, o) = match subject {
        NoteSubject::Account(id) => (Some(id), None, None, None),
        NoteSubject::Contact(id) => (None, Some(id), None, None),
        NoteSubject::Lead(id) => (None, None, Some(id), None),
        NoteSubject::Opportunity(id) => (None, None, None, Some(id)),
    };
    let created = note::ActiveModel {
        id: NotSet,
        body: Set(body),
        author_id: Set(actor.user_id),
        account_id: Set(a),
        contact_id: Set(c),
        lead_id: Set(l),
        opportunity_id: Set(o),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    let mut moved = 0;
    if let Some(deal) = &deal {
        // A note is activity: reminders waiting for a quiet deal start counting again.
        moved = crate::services::stage_scripts::reschedule(
            &txn,
            deal,
            accord_workflows::Anchor::LastActivity,
            created.created_at,
        )
        .await?;
    }
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Note",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    if moved > 0 {
        crate::services::reminders::announce(svc, None).await;
    }
    Ok(created)
}

/// Authors delete their own notes; admins any note.
pub async fn delete(svc: &Services, actor: &Actor, id: i64) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Note, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = note::Entity::find_by_id(id)
        .apply_if(scope.notes(), QueryFilter::filter)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("note"))?;
    if before.author_id != actor.user_id && actor.role != Role::Admin {
        return Err(AppError::Forbidden(
            "only the author or an admin may delete a note".into(),
        ));
    }
    note::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(&txn, Some(actor), "delete", "Note", id, Some(&before), None).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<note::Model> {
    svc.authz
        .require(actor, Resource::Note, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    note::Entity::find_by_id(id)
        .apply_if(scope.notes(), QueryFilter::filter)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("note"))
}
