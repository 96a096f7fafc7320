//! Tasks: to-dos with a due date and a status, made by hand or by stage scripts. Like
//! events they hang on an account, a contact or a deal and follow its permissions; a
//! task on none is personal to its assignee and its creator.

use accord_entities::task::{self, TaskKind, TaskStatus};
use accord_entities::user;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, NotSet, QueryFilter, QueryTrait, Set};

use crate::auth::Actor;
use crate::authz::{Action, Resource, Scope};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::calendar::{Subject, check_subject};
use crate::services::validate::{calendar_instant, optional_text, required_text};
use crate::services::{Patch, Services, audit, update_if_version};

pub const TITLE_MAX: usize = 500;
pub const DESCRIPTION_MAX: usize = 2000;

pub struct TaskInput {
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    /// Defaults to the caller; assigning to someone else takes `task, manage`.
    pub assignee_id: Option<i64>,
    pub subject: Option<Subject>,
}

#[derive(Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Patch<String>,
    pub due_at: Patch<DateTime<Utc>>,
    pub status: Option<TaskStatus>,
    pub assignee_id: Option<i64>,
}

fn check_due(due: Option<DateTime<Utc>>) -> AppResult<()> {
    due.map_or(Ok(()), |d| calendar_instant("dueAt", d))
}

async fn check_assignee(svc: &Services, actor: &Actor, assignee: i64) -> AppResult<()> {
    if assignee != actor.user_id {
        svc.authz
            .require(actor, Resource::Task, Action::Manage)
            .await?;
    }
    let active = user::Entity::find_by_id(assignee)
        .one(&svc.db)
        .await?
        .is_some_and(|u| u.active);
    if !active {
        return Err(AppError::validation("assigneeId", "no such active user"));
    }
    Ok(())
}

pub async fn create(svc: &Services, actor: &Actor, input: TaskInput) -> AppResult<task::Model> {
    svc.authz
        .require(actor, Resource::Task, Action::Write)
        .await?;
    let title = required_text("title", &input.title, TITLE_MAX)?;
    let description = optional_text("description", input.description.as_deref(), DESCRIPTION_MAX)?;
    check_due(input.due_at)?;
    let assignee = input.assignee_id.unwrap_or(actor.user_id);
    check_assignee(svc, actor, assignee).await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    if let Some(subject) = input.subject {
        check_subject(&txn, &scope, subject, "subjectId").await?;
    }
    let created = new_row(
        NewTask {
            assignee,
            title,
            description,
            due_at: input.due_at,
            status: TaskStatus::Open,
            subject: input.subject,
            created_by: actor.user_id,
            ics_uid: None,
        },
        Utc::now(),
    )
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Task",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// A task made by a person (by hand or by importing a file), not by a stage script.
pub(crate) struct NewTask {
    pub assignee: i64,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub status: TaskStatus,
    pub subject: Option<Subject>,
    pub created_by: i64,
    pub ics_uid: Option<String>,
}

pub(crate) fn new_row(t: NewTask, now: DateTime<Utc>) -> task::ActiveModel {
    let (account_id, contact_id, opportunity_id) = Subject::columns(t.subject);
    task::ActiveModel {
        id: NotSet,
        kind: Set(TaskKind::Task),
        assignee_id: Set(t.assignee),
        opportunity_id: Set(opportunity_id),
        title: Set(t.title),
        due_at: Set(t.due_at),
        anchor: Set(None),
        offset_minutes: Set(0),
        status: Set(t.status),
        script_id: Set(None),
        stage_id: Set(None),
        created_at: Set(now),
        account_id: Set(account_id),
        contact_id: Set(contact_id),
        description: Set(t.description),
        version: Set(1),
        completed_at: Set((t.status == TaskStatus::Done).then_some(now)),
        created_by: Set(Some(t.created_by)),
        ics_uid: Set(t.ics_uid),
        // Made by a person for a person: it stays with them whoever owns the deal.
        follows_owner: Set(false),
    }
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<task::Model> {
    svc.authz
        .require(actor, Resource::Task, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    visible(&svc.db, &scope, id).await
}

async fn visible<C: sea_orm::ConnectionTrait>(
    db: &C,
    scope: &Scope,
    id: i64,
) -> AppResult<task::Model> {
    task::Entity::find_by_id(id)
        .apply_if(scope.tasks(), QueryFilter::filter)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("task"))
}

/// The assignee, the creator, an admin, or anyone who may edit the task's record may
/// change a task.
pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    patch: TaskPatch,
) -> AppResult<task::Model> {
    svc.authz
        .require(actor, Resource::Task, Action::Write)
        .await?;
    let title = patch
        .title
        .as_deref()
        .map(|t| required_text("title", t, TITLE_MAX))
        .transpose()?;
    let description = match &patch.description {
        None => None,
        Some(d) => Some(optional_text("description", d.as_deref(), DESCRIPTION_MAX)?),
    };
    if let Some(due) = patch.due_at {
        check_due(due)?;
    }
    if let Some(assignee) = patch.assignee_id {
        check_assignee(svc, actor, assignee).await?;
    }
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = visible(&txn, &scope, id).await?;
    let mine = before.assignee_id == actor.user_id || before.created_by == Some(actor.user_id);
    if !mine && actor.role != accord_entities::user::Role::Admin {
        let subject = Subject::of(before.account_id, before.contact_id, before.opportunity_id);
        let allowed = match subject {
            Some(s) => check_subject(&txn, &scope, s, "id").await.is_ok(),
            None => false,
        };
        if !allowed {
            return Err(AppError::Forbidden(
                "only its assignee, its creator or someone who may edit its record may change this task"
                    .into(),
            ));
        }
    }
    if before.version != version {
        return Err(AppError::stale_version("task"));
    }
    let now = Utc::now();
    let mut active = task::ActiveModel::from(before.clone());
    if let Some(t) = title {
        active.title = Set(t);
    }
    if let Some(d) = description {
        active.description = Set(d);
    }
    if let Some(due) = patch.due_at {
        active.due_at = Set(due);
    }
    if let Some(a) = patch.assignee_id {
        active.assignee_id = Set(a);
    }
    if let Some(status) = patch.status
        && status != before.status
    {
        active.status = Set(status);
        active.completed_at = Set((status == TaskStatus::Done).then_some(now));
    }
    active.version = Set(before.version + 1);
    let after = update_if_version::<task::Entity, _>(
        &txn,
        active,
        (task::Column::Id, task::Column::Version),
        id,
        version,
        "task",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Task",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}
