//! Pipelines and their ordered stages.

use std::collections::HashSet;

use accord_entities::stage::{self, StageKind};
use accord_entities::{opportunity, pipeline};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};

use crate::auth::Actor;
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate};
use crate::services::validate::{
    NAME_MAX, NOTE_MAX, SHORT_MAX, optional_text, percentage, required_text,
};
use crate::services::{Patch, Services, audit, update_if_version};

#[derive(Debug, Clone)]
pub struct NewStage {
    pub name: String,
    pub probability: i32,
    pub kind: StageKind,
}

#[derive(Debug, Clone)]
pub struct NewPipeline {
    pub name: String,
    pub description: Option<String>,
    pub stages: Vec<NewStage>,
}

const MAX_STAGES: usize = 30;

fn check_stages(stages: &[NewStage]) -> AppResult<()> {
    if stages.is_empty() || stages.len() > MAX_STAGES {
        return Err(AppError::validation(
            "stages",
            format!("a pipeline needs 1 to {MAX_STAGES} stages"),
        ));
    }
    if !stages.iter().any(|s| s.kind == StageKind::Open) {
        return Err(AppError::validation(
            "stages",
            "a pipeline needs at least one open stage",
        ));
    }
    let mut names = HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        let name = required_text(&format!("stages.{i}.name"), &s.name, SHORT_MAX)?;
        if !names.insert(name.to_lowercase()) {
            return Err(AppError::validation(
                format!("stages.{i}.name"),
                "stage names must be unique",
            ));
        }
        percentage(&format!("stages.{i}.probability"), s.probability)?;
    }
    Ok(())
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: NewPipeline,
) -> AppResult<(pipeline::Model, Vec<stage::Model>)> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Write)
        .await?;
    let name = required_text("name", &input.name, NAME_MAX)?;
    let description = optional_text("description", input.description.as_deref(), NOTE_MAX)?;
    check_stages(&input.stages)?;
    let now = Utc::now();
    let txn = begin_write(&svc.db).await?;
    let created = pipeline::ActiveModel {
        id: NotSet,
        name: Set(name),
        description: Set(description),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        manager_id: Set(None),
    }
    .insert(&txn)
    .await?;
    let mut stages = Vec::with_capacity(input.stages.len());
    for (position, s) in input.stages.into_iter().enumerate() {
        let row = stage::ActiveModel {
            id: NotSet,
            pipeline_id: Set(created.id),
            name: Set(s.name.trim().to_owned()),
            position: Set(position as i32),
            probability: Set(s.probability),
            kind: Set(s.kind),
        }
        .insert(&txn)
        .await?;
        stages.push(row);
    }
    let snapshot = serde_json::json!({ "pipeline": created, "stages": stages });
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Pipeline",
        created.id,
        None,
        Some(&snapshot),
    )
    .await?;
    txn.commit().await?;
    Ok((created, stages))
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    name: Option<String>,
    description: Patch<String>,
) -> AppResult<pipeline::Model> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Write)
        .await?;
    let txn = begin_write(&svc.db).await?;
    let before = pipeline::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("pipeline"))?;
    if before.version != version {
        return Err(AppError::stale_version("pipeline"));
    }
    let mut active: pipeline::ActiveModel = before.clone().into();
    if let Some(n) = name {
        active.name = Set(required_text("name", &n, NAME_MAX)?);
    }
    if let Some(d) = description {
        active.description = Set(optional_text("description", d.as_deref(), NOTE_MAX)?);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let after = update_if_version::<pipeline::Entity, _>(
        &txn,
        active,
        (pipeline::Column::Id, pipeline::Column::Version),
        id,
        version,
        "pipeline",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Pipeline",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Names the sales manager responsible for a pipeline's stage scripts (or nobody, which
/// lets any sales manager edit them). Admins only.
pub async fn set_manager(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    manager_id: Option<i64>,
) -> AppResult<pipeline::Model> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Manage)
        .await?;
    let txn = begin_write(&svc.db).await?;
    let before = pipeline::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("pipeline"))?;
    if before.version != version {
        return Err(AppError::stale_version("pipeline"));
    }
    if let Some(manager) = manager_id {
        let user = accord_entities::user::Entity::find_by_id(manager)
            .one(&txn)
            .await?;
        if !user.is_some_and(|u| u.active && u.role == accord_entities::user::Role::SalesManager) {
            return Err(AppError::validation(
                "managerId",
                "the responsible manager must be an active sales manager",
            ));
        }
    }
    let mut active: pipeline::ActiveModel = before.clone().into();
    active.manager_id = Set(manager_id);
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let after = update_if_version::<pipeline::Entity, _>(
        &txn,
        active,
        (pipeline::Column::Id, pipeline::Column::Version),
        id,
        version,
        "pipeline",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "set_manager",
        "Pipeline",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Deletes a pipeline no opportunity uses (its stages go with it).
pub async fn delete(svc: &Services, actor: &Actor, id: i64, version: i32) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Write)
        .await?;
    let txn = begin_write(&svc.db).await?;
    let before = pipeline::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("pipeline"))?;
    if before.version != version {
        return Err(AppError::stale_version("pipeline"));
    }
    let used = opportunity::Entity::find()
        .filter(opportunity::Column::PipelineId.eq(id))
        .count(&txn)
        .await?;
    if used > 0 {
        return Err(AppError::Conflict(format!(
            "{used} opportunities still use this pipeline"
        )));
    }
    pipeline::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "Pipeline",
        id,
        Some(&before),
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<pipeline::Model> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Read)
        .await?;
    pipeline::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("pipeline"))
}

pub async fn get_stage(svc: &Services, actor: &Actor, id: i64) -> AppResult<stage::Model> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Read)
        .await?;
    stage::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("stage"))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PipelineSort {
    #[default]
    Name,
    CreatedAt,
}

pub fn sort_order(sort: PipelineSort, descending: bool) -> SortOrder<pipeline::Entity> {
    match sort {
        PipelineSort::Name => SortOrder {
            column: pipeline::Column::Name,
            descending,
            key: |m| SortKey::Text(m.name.clone()),
        },
        PipelineSort::CreatedAt => SortOrder {
            column: pipeline::Column::CreatedAt,
            descending,
            key: |m| SortKey::Time(m.created_at),
        },
    }
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    order: SortOrder<pipeline::Entity>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<pipeline::Model>> {
    svc.authz
        .require(actor, Resource::Pipeline, Action::Read)
        .await?;
    paginate(
        &svc.db,
        pipeline::Entity::find(),
        pipeline::Column::Id,
        &order,
        args,
        want_total,
    )
    .await
}

/// The stage new opportunities start in: the first open stage by position.
pub(crate) async fn entry_stage<C: ConnectionTrait>(
    db: &C,
    pipeline_id: i64,
) -> AppResult<stage::Model> {
    stage::Entity::find()
        .filter(stage::Column::PipelineId.eq(pipeline_id))
        .filter(stage::Column::Kind.eq(StageKind::Open))
        .order_by_asc(stage::Column::Position)
        .one(db)
        .await?
        .ok_or_else(|| AppError::validation("pipelineId", "no such pipeline"))
}
