//! Opportunities: deals moving through a pipeline's stages, with their contact roles and
//! the immutable log of stage transitions.

use accord_entities::lead::{Grade, LeadSource};
use accord_entities::opportunity_contact_role::{self as role, ContactRole};
use accord_entities::stage::{self, StageKind};
use accord_entities::{account, contact, note, opportunity, stage_transition, user};
use std::sync::Arc;

use accord_workflows::Anchor;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{
    Alias, Asterisk, Expr, InsertStatement, Order, Query, SelectStatement, UpdateStatement,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, NotSet,
    PaginatorTrait, QueryFilter, Select, Set,
};

use crate::auth::Actor;
use crate::authz::Scope;
use crate::authz::{Action, Resource};
use crate::db::{LiteralLimits, WriteBatch, begin_write};
use crate::error::{AppError, AppResult};
use crate::events::Operation;
use crate::services::accounts::require_user;
use crate::services::pagination::{
    Page, PageArgs, PagePlan, SortKey, SortOrder, paginate, text_search,
};
use crate::services::pipelines::entry_stage;
use crate::services::reminders;
use crate::services::rows::{
    AccountBrief, Committee, FullRead, Joined, Reader, StageBrief, UserBrief, Width, read_optional,
    select_all,
};
use crate::services::validate::{NAME_MAX, currency, money_micros, optional_text, required_text};
use crate::services::{
    Patch, Services, audit, gate_opportunity, stage_scripts, territories, update_if_version,
};
use accord_entities::territory_membership::AccessLevel;
use sea_orm::{DbBackend, QueryTrait};

#[derive(Debug, Clone)]
pub struct NewOpportunity {
    pub name: String,
    pub account_id: i64,
    pub owner_id: Option<i64>,
    pub pipeline_id: i64,
    pub stage_id: Option<i64>,
    pub amount: Decimal,
    pub currency: String,
    pub expected_close_date: NaiveDate,
    pub source: Option<LeadSource>,
    pub grade: Option<Grade>,
}

#[derive(Debug, Default, Clone)]
pub struct OpportunityChanges {
    pub name: Option<String>,
    pub account_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub amount: Option<Decimal>,
    pub currency: Option<String>,
    pub expected_close_date: Option<NaiveDate>,
    pub source: Patch<LeadSource>,
    pub grade: Patch<Grade>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpportunitySort {
    #[default]
    CreatedAt,
    Name,
    Amount,
    ExpectedCloseDate,
}

#[derive(Debug, Default, Clone)]
pub struct OpportunityFilter {
    pub search: Option<String>,
    pub account_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub stage_kind: Option<StageKind>,
    pub amount_min: Option<Decimal>,
    pub amount_max: Option<Decimal>,
    pub close_from: Option<NaiveDate>,
    pub close_to: Option<NaiveDate>,
}

const LOST_REASON_MAX: usize = 500;

async fn stage_in_pipeline<C: ConnectionTrait>(
    db: &C,
    stage_id: i64,
    pipeline_id: i64,
) -> AppResult<stage::Model> {
    match stage::Entity::find_by_id(stage_id).one(db).await? {
        Some(s) if s.pipeline_id == pipeline_id => Ok(s),
        Some(_) => Err(AppError::validation(
            "stageId",
            "stage does not belong to the opportunity's pipeline",
        )),
        None => Err(AppError::validation("stageId", "no such stage")),
    }
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: NewOpportunity,
) -> AppResult<opportunity::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    // Validate and run the entered stage's script before taking the write lock; the
    // insert checks the account and owner again inside the transaction (foreign keys).
    let (row, stage) = prepare(&svc.db, actor, &scope, input).await?;
    let decision =
        stage_scripts::decide_entry(svc, &svc.db, scope.clone(), &row, &stage, row.created_at)
            .await?;
    let txn = begin_write(&svc.db).await?;
    let created = write_new(svc, &txn, actor, row, &stage, &decision).await?;
    txn.commit().await?;
    if decision.schedules_reminders() {
        reminders::announce(svc, None).await;
    }
    svc.events
        .opportunity(Operation::Created, &created, actor.user_id);
    Ok(created)
}

/// Validates and inserts an opportunity with its entry transition and audit entry, inside
/// the caller's transaction. Lead conversion uses it: the account it creates exists only
/// in that transaction, so the entry stage's script runs inside it there.
pub(crate) async fn insert<C: ConnectionTrait>(
    svc: &Services,
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    input: NewOpportunity,
) -> AppResult<opportunity::Model> {
    let (row, stage) = prepare(txn, actor, scope, input).await?;
    // Entering the first stage is a stage entry like any other: its guard and actions
    // apply (creating a deal straight into Negotiation must not skip Negotiation's guard).
    let decision = stage_scripts::decide_entry(
        svc,
        txn,
        Arc::new(scope.clone()),
        &row,
        &stage,
        row.created_at,
    )
    .await?;
    write_new(svc, txn, actor, row, &stage, &decision).await
}

/// Validates a new opportunity into the row to insert (id 0) and its first stage.
async fn prepare<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    input: NewOpportunity,
) -> AppResult<(opportunity::Model, stage::Model)> {
    let name = required_text("name", &input.name, NAME_MAX)?;
    let amount_micros = money_micros("amount", input.amount)?;
    let currency = currency("currency", &input.currency)?;
    let owner_id = input.owner_id.unwrap_or(actor.user_id);
    let territory_id =
        territories::account_for_child(txn, scope, input.account_id, "accountId").await?;
    require_user(txn, "ownerId", owner_id).await?;
    let stage = match input.stage_id {
        Some(id) => stage_in_pipeline(txn, id, input.pipeline_id).await?,
        None => entry_stage(txn, input.pipeline_id).await?,
    };
    if stage.kind == StageKind::Lost {
        return Err(AppError::validation(
            "stageId",
            "create the opportunity, then move it to a lost stage with a reason",
        ));
    }
    let now = Utc::now();
    let row = opportunity::Model {
        id: 0,
        name,
        account_id: input.account_id,
        owner_id,
        pipeline_id: input.pipeline_id,
        stage_id: stage.id,
        amount_micros,
        currency,
        expected_close_date: input.expected_close_date,
        source: input.source,
        grade: input.grade,
        lost_reason: None,
        stage_entered_at: now,
        closed_at: (stage.kind != StageKind::Open).then_some(now),
        territory_id,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    Ok((row, stage))
}

/// Inserts a prepared opportunity with what its first stage's script decided.
async fn write_new<C: ConnectionTrait>(
    svc: &Services,
    txn: &C,
    actor: &Actor,
    row: opportunity::Model,
    stage: &stage::Model,
    decision: &stage_scripts::MoveDecision,
) -> AppResult<opportunity::Model> {
    let now = row.created_at;
    let mut active: opportunity::ActiveModel = row.into();
    active.id = NotSet;
    stage_scripts::set_fields(&mut active, decision, &stage.name)?;
    let created = active.insert(txn).await?;
    let mut writes = WriteBatch::new(txn.get_database_backend());
    writes.push(&transition_insert(
        actor,
        Transition {
            opportunity_id: created.id,
            from: None,
            to: stage.id,
            at: now,
            seconds_in_previous: None,
            script_id: decision.script_id,
        },
    ));
    stage_scripts::apply_move(
        svc,
        txn,
        &mut writes,
        decision,
        &created,
        None,
        stage,
        now,
        None,
    )
    .await?;
    writes.push(&audit::entry(
        Some(actor),
        "create",
        "Opportunity",
        created.id,
        None,
        Some(&created),
    )?);
    writes.run(txn).await?;
    Ok(created)
}

/// One stage move, as the transition log records it.
struct Transition {
    opportunity_id: i64,
    from: Option<i64>,
    to: i64,
    at: DateTime<Utc>,
    seconds_in_previous: Option<i64>,
    script_id: Option<i64>,
}

/// The statement that logs a stage move.
fn transition_insert(actor: &Actor, t: Transition) -> InsertStatement {
    let Transition {
        opportunity_id,
        from,
        to,
        at,
        seconds_in_previous,
        script_id,
    } = t;
    let logged = stage_transition::ActiveModel {
        id: NotSet,
        opportunity_id: Set(opportunity_id),
        from_stage_id: Set(from),
        to_stage_id: Set(to),
        transitioned_at: Set(at),
        actor_id: Set(Some(actor.user_id)),
        seconds_in_previous_stage: Set(seconds_in_previous),
        script_id: Set(script_id),
    };
    stage_transition::Entity::insert(logged).into_query()
}

/// The deal to change, if the caller may change it at `need` and named its version.
async fn load_for_write<C: ConnectionTrait>(
    txn: &C,
    scope: &Scope,
    need: AccessLevel,
    id: i64,
    version: i32,
) -> AppResult<opportunity::Model> {
    let found = opportunity::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("opportunity"))?;
    gate_opportunity(scope, &found, need)?;
    if found.version != version {
        return Err(AppError::stale_version("opportunity"));
    }
    Ok(found)
}

async fn save<C: ConnectionTrait>(
    txn: &C,
    mut active: opportunity::ActiveModel,
    version: i32,
) -> AppResult<opportunity::Model> {
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let id = match &active.id {
        sea_orm::ActiveValue::Set(id) | sea_orm::ActiveValue::Unchanged(id) => *id,
        sea_orm::ActiveValue::NotSet => return Err(AppError::NotFound("opportunity")),
    };
    let columns = (opportunity::Column::Id, opportunity::Column::Version);
    update_if_version::<opportunity::Entity, _>(txn, active, columns, id, version, "opportunity")
        .await
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    changes: OpportunityChanges,
) -> AppResult<opportunity::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = load_for_write(&txn, &scope, AccessLevel::Edit, id, version).await?;
    let mut active: opportunity::ActiveModel = before.clone().into();
    if let Some(v) = changes.name {
        active.name = Set(required_text("name", &v, NAME_MAX)?);
    }
    if let Some(v) = changes.amount {
        active.amount_micros = Set(money_micros("amount", v)?);
    }
    if let Some(v) = changes.currency {
        active.currency = Set(currency("currency", &v)?);
    }
    if let Some(v) = changes.expected_close_date {
        active.expected_close_date = Set(v);
    }
    if let Some(v) = changes.source {
        active.source = Set(v);
    }
    if let Some(v) = changes.grade {
        active.grade = Set(v);
    }
    if let Some(v) = changes.account_id {
        let territory = territories::account_for_child(&txn, &scope, v, "accountId").await?;
        active.account_id = Set(v);
        active.territory_id = Set(territory);
    }
    if let Some(v) = changes.owner_id {
        require_user(&txn, "ownerId", v).await?;
        active.owner_id = Set(v);
    }
    let after = save(&txn, active, version).await?;
    if after.owner_id != before.owner_id {
        stage_scripts::hand_over(&txn, id, after.owner_id).await?;
    }
    let mut moved = 0;
    if after.expected_close_date != before.expected_close_date {
        // Reminders that hang on the close date move with it.
        moved =
            stage_scripts::reschedule(&txn, &after, Anchor::ExpectedCloseDate, Utc::now()).await?;
    }
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Opportunity",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    if moved > 0 {
        reminders::announce(svc, None).await;
    }
    svc.events
        .opportunity(Operation::Updated, &after, actor.user_id);
    Ok(after)
}

/// Moves a deal to another stage of its pipeline: stage, version, transition log and
/// audit entry commit together. Entering a lost stage requires a reason; entering a
/// won or lost stage closes the deal; moving back to an open stage reopens it.
pub async fn move_stage(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    stage_id: i64,
    lost_reason: Option<String>,
) -> AppResult<opportunity::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Write)
        .await?;
    let lost_reason = optional_text("lostReason", lost_reason.as_deref(), LOST_REASON_MAX)?;
    let scope = svc.authz.scope(actor).await;
    let wanted = WantedMove {
        id,
        version,
        stage_id,
        lost_reason,
    };
    // A move is decided on the stage scripts this instance has cached. If its
    // transaction finds that they changed in the meantime, it is decided once more on
    // fresh ones.
    for _ in 0..2 {
        if let Some(after) = try_move(svc, actor, &scope, &wanted).await? {
            return Ok(after);
        }
    }
    Err(AppError::Conflict(
        "the stage scripts changed while this move was being decided; try again".into(),
    ))
}

/// What a caller asked a move to do.
struct WantedMove {
    id: i64,
    version: i32,
    stage_id: i64,
    lost_reason: Option<String>,
}

/// One attempt at a move: `None` when the stage scripts changed between deciding and
/// writing (nothing was written).
///
/// The deal is read and the scripts decide before the write transaction begins: on
/// SQLite `BEGIN IMMEDIATE` takes the database's write lock, which a script never
/// holds, and on either backend a move waiting for a script worker holds no pooled
/// connection.
async fn try_move(
    svc: &Services,
    actor: &Actor,
    scope: &Arc<Scope>,
    wanted: &WantedMove,
) -> AppResult<Option<opportunity::Model>> {
    let Some(decided) = decide(svc, scope, wanted).await? else {
        return Ok(None);
    };
    let txn = begin_write(&svc.db).await?;
    write_move(svc, txn, actor, scope, wanted, decided).await
}

/// A move the stage scripts allowed, about to be written.
struct Decided {
    moving: stage_scripts::Parties,
    target: stage::Model,
    decision: stage_scripts::MoveDecision,
    now: DateTime<Utc>,
}

/// Reads the deal as it is and has the stage scripts decide about the move. The move
/// writes only over the deal as read here (see `write_over`), so nothing the scripts
/// saw of it can have changed underneath. `None`: the scripts changed while they were
/// deciding.
async fn decide(
    svc: &Services,
    scope: &Arc<Scope>,
    wanted: &WantedMove,
) -> AppResult<Option<Decided>> {
    let db = &svc.db;
    let (moving, stages) = read_moving(db, wanted.id)
        .await?
        .ok_or(AppError::NotFound("opportunity"))?;
    let before = &moving.deal;
    gate_opportunity(scope, before, AccessLevel::Edit)?;
    if before.version != wanted.version {
        return Err(AppError::stale_version("opportunity"));
    }
    let target = match stages.get(&wanted.stage_id) {
        Some(stage) => stage.clone(),
        None => return Err(not_in_pipeline(db, wanted.stage_id).await?),
    };
    if target.id == before.stage_id {
        return Err(AppError::validation(
            "stageId",
            "the opportunity is already in this stage",
        ));
    }
    if target.kind == StageKind::Lost && wanted.lost_reason.is_none() {
        return Err(AppError::validation(
            "lostReason",
            "a lost reason is required to close a deal as lost",
        ));
    }
    if target.kind != StageKind::Lost && wanted.lost_reason.is_some() {
        return Err(AppError::validation(
            "lostReason",
            "only a lost stage takes a lost reason",
        ));
    }
    let now = Utc::now();
    let decision =
        stage_scripts::decide_move(svc, scope.clone(), &moving, &stages, &target, now).await?;
    Ok(decision.map(|decision| Decided {
        moving,
        target,
        decision,
        now,
    }))
}

/// Writes a decided move in `txn` and commits: the deal's stage and version, the
/// transition log, what the scripts do, the audit entry. `None`: the stage scripts
/// changed since the decision (nothing was written).
async fn write_move(
    svc: &Services,
    txn: DatabaseTransaction,
    actor: &Actor,
    scope: &Arc<Scope>,
    wanted: &WantedMove,
    decided: Decided,
) -> AppResult<Option<opportunity::Model>> {
    let Decided {
        moving,
        target,
        decision,
        now,
    } = decided;
    let before = &moving.deal;
    let id = before.id;
    let seconds_in_previous = (now - before.stage_entered_at).num_seconds().max(0);
    let mut active: opportunity::ActiveModel = before.clone().into();
    active.stage_id = Set(target.id);
    active.stage_entered_at = Set(now);
    active.lost_reason = Set(wanted.lost_reason.clone());
    active.closed_at = Set(match target.kind {
        StageKind::Open => None,
        StageKind::Won | StageKind::Lost => Some(now),
    });
    let close_date_moved = stage_scripts::set_fields(&mut active, &decision, &target.name)?;
    let (update, after) = write_over(active, before, decision.scripts_unchanged())?;
    // Everything the move writes goes to the database in one round trip, the deal's
    // update last: when it writes nothing, the transaction is rolled back.
    let mut writes = WriteBatch::new(txn.get_database_backend());
    writes.push(&transition_insert(
        actor,
        Transition {
            opportunity_id: id,
            from: Some(before.stage_id),
            to: target.id,
            at: now,
            seconds_in_previous: Some(seconds_in_previous),
            script_id: decision.script_id,
        },
    ));
    let applied = stage_scripts::apply_move(
        svc,
        &txn,
        &mut writes,
        &decision,
        &after,
        Some(before.stage_id),
        &target,
        now,
        moving.owner.as_ref(),
    )
    .await?;
    writes.push(&audit::entry(
        Some(actor),
        "move_stage",
        "Opportunity",
        id,
        Some(before),
        Some(&after),
    )?);
    let written = match writes.run_then(&txn, &update).await {
        Ok(rows) => !rows.is_empty(),
        Err(failed) => {
            // A write failed before the deal's update could tell that the deal had
            // changed: a concurrent move of it from the same version wrote the same
            // reminder keys, or it was deleted (its rows' foreign keys). Say so if it
            // did; otherwise the failure stands. PostgreSQL has aborted the
            // transaction, so the reasons are read after the rollback.
            txn.rollback().await?;
            if !decision.still_current(svc, &svc.db).await? {
                return Ok(None);
            }
            return Err(
                match load_for_write(&svc.db, scope, AccessLevel::Edit, id, before.version).await {
                    Err(why) => why,
                    Ok(_) => failed.into(),
                },
            );
        }
    };
    if !written {
        // Nothing written: the stage scripts changed since the decision (decide again),
        // or the deal did (say how).
        let why = if decision.still_current(svc, &txn).await? {
            Some(why_unwritten(&txn, scope, before).await)
        } else {
            None
        };
        txn.rollback().await?;
        return why.map_or(Ok(None), Err);
    }
    let mut moved = 0;
    if close_date_moved {
        moved = stage_scripts::reschedule(&txn, &after, Anchor::ExpectedCloseDate, now).await?;
    }
    txn.commit().await?;
    if moved > 0 {
        reminders::announce(svc, None).await;
    } else if applied.reminders > 0 {
        reminders::announce(svc, applied.earliest_reminder).await;
    }
    svc.events
        .opportunity(Operation::StageChanged, &after, actor.user_id);
    Ok(Some(after))
}

/// A deal about to move, with what deciding the move needs, in one statement: its
/// account and owner (what its scripts see of them) and every stage of its pipeline
/// (the target, and the names its scripts see). `None` when there is no such deal.
async fn read_moving<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> AppResult<Option<(stage_scripts::Parties, stage_scripts::Stages)>> {
    use sea_orm::sea_query::{Expr, ExprTrait, JoinType};
    let mut statement = Query::select();
    statement
        .from(opportunity::Entity)
        .join(
            JoinType::LeftJoin,
            account::Entity,
            Expr::col((account::Entity, account::Column::Id))
                .equals((opportunity::Entity, opportunity::Column::AccountId)),
        )
        .join(
            JoinType::LeftJoin,
            user::Entity,
            Expr::col((user::Entity, user::Column::Id))
                .equals((opportunity::Entity, opportunity::Column::OwnerId)),
        )
        .join(
            JoinType::InnerJoin,
            stage::Entity,
            Expr::col((stage::Entity, stage::Column::PipelineId))
                .equals((opportunity::Entity, opportunity::Column::PipelineId)),
        )
        .and_where(opportunity::Column::Id.eq(id));
    select_all::<opportunity::Entity>(&mut statement);
    select_all::<account::Entity>(&mut statement);
    select_all::<user::Entity>(&mut statement);
    select_all::<stage::Entity>(&mut statement);
    let rows = db.query_all(&statement).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut r = Reader::new(first);
    let moving = stage_scripts::Parties {
        deal: opportunity::Model::read(&mut r)?,
        account: read_optional::<account::Model>(&mut r)?,
        owner: read_optional::<user::Model>(&mut r)?,
    };
    let parties_width = opportunity::Model::WIDTH + account::Model::WIDTH + user::Model::WIDTH;
    let mut stages = stage_scripts::Stages::new();
    for row in &rows {
        let mut r = Reader::new(row);
        r.skip(parties_width);
        let stage = stage::Model::read(&mut r)?;
        stages.insert(stage.id, stage);
    }
    Ok(Some((moving, stages)))
}

/// Why a stage is not one of a deal's pipeline.
async fn not_in_pipeline<C: ConnectionTrait>(db: &C, stage_id: i64) -> AppResult<AppError> {
    Ok(match stage::Entity::find_by_id(stage_id).one(db).await? {
        Some(_) => AppError::validation(
            "stageId",
            "stage does not belong to the opportunity's pipeline",
        ),
        None => AppError::validation("stageId", "no such stage"),
    })
}

/// The update that writes `active` over `before`, the deal as read (and
/// permission-checked) before the transaction, only if it is still exactly that deal
/// (the same version and the same territory) and `also` holds; with the deal it writes.
/// Every change to a deal bumps its version except an account's move to another
/// territory, which its deals follow without one. The update returns a row when it
/// wrote, none when it did not.
fn write_over(
    mut active: opportunity::ActiveModel,
    before: &opportunity::Model,
    also: sea_orm::Condition,
) -> AppResult<(UpdateStatement, opportunity::Model)> {
    active.version = Set(before.version + 1);
    active.updated_at = Set(Utc::now());
    let same_territory = match before.territory_id {
        Some(t) => opportunity::Column::TerritoryId.eq(t),
        None => opportunity::Column::TerritoryId.is_null(),
    };
    let mut update = opportunity::Entity::update_many()
        .set(active.clone())
        .filter(opportunity::Column::Id.eq(before.id))
        .filter(opportunity::Column::Version.eq(before.version))
        .filter(same_territory)
        .filter(also)
        .into_query();
    update.returning_col(opportunity::Column::Version);
    let after = sea_orm::TryIntoModel::try_into_model(active).map_err(AppError::internal)?;
    Ok((update, after))
}

/// Why [`write_over`]'s update wrote nothing over `before`: the deal is gone, out of the
/// caller's reach now, or changed.
async fn why_unwritten<C: ConnectionTrait>(
    txn: &C,
    scope: &Scope,
    before: &opportunity::Model,
) -> AppError {
    match load_for_write(txn, scope, AccessLevel::Edit, before.id, before.version).await {
        Err(why) => why,
        Ok(_) => AppError::Conflict(
            "the opportunity moved to another territory while this change was being made; \
             try again"
                .into(),
        ),
    }
}

pub async fn delete(svc: &Services, actor: &Actor, id: i64, version: i32) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Delete)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = load_for_write(&txn, &scope, AccessLevel::Owner, id, version).await?;
    let roles = role::Entity::find()
        .filter(role::Column::OpportunityId.eq(id))
        .all(&txn)
        .await?;
    let notes = note::Entity::find()
        .filter(note::Column::OpportunityId.eq(id))
        .all(&txn)
        .await?;
    opportunity::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "Opportunity",
        id,
        Some(&before),
        None,
    )
    .await?;
    // The stage history goes with the deal; its last state is in the delete entry above.
    audit::record_cascaded_deletes(&txn, actor, "OpportunityContactRole", &roles, |r| r.id).await?;
    audit::record_cascaded_deletes(&txn, actor, "Note", &notes, |n| n.id).await?;
    txn.commit().await?;
    svc.events
        .opportunity(Operation::Deleted, &before, actor.user_id);
    Ok(())
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<opportunity::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    opportunity::Entity::find_by_id(id)
        .apply_if(scope.opportunities(AccessLevel::Read), QueryFilter::filter)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("opportunity"))
}

pub fn sort_order(sort: OpportunitySort, descending: bool) -> SortOrder<opportunity::Entity> {
    use opportunity::Column as C;
    match sort {
        OpportunitySort::CreatedAt => SortOrder {
            column: C::CreatedAt,
            descending,
            key: |m| SortKey::Time(m.created_at),
        },
        OpportunitySort::Name => SortOrder {
            column: C::Name,
            descending,
            key: |m| SortKey::Text(m.name.clone()),
        },
        OpportunitySort::Amount => SortOrder {
            column: C::AmountMicros,
            descending,
            key: |m| SortKey::Int(m.amount_micros),
        },
        OpportunitySort::ExpectedCloseDate => SortOrder {
            column: C::ExpectedCloseDate,
            descending,
            key: |m| SortKey::Date(m.expected_close_date),
        },
    }
}

/// An opportunity with the records it belongs to, read in the same statement, each as
/// wide as [`RelationWidths`] asked (`None` where skipped).
pub struct OpportunityWithRelations {
    pub opportunity: Joined<opportunity::Model, crate::services::rows::OpportunityBrief>,
    pub account: Option<Joined<account::Model, AccountBrief>>,
    pub owner: Option<Joined<user::Model, UserBrief>>,
    pub stage: Option<Joined<stage::Model, StageBrief>>,
    /// The deal's value in the list's sort column, for its cursor.
    pub key: SortKey,
    /// As [`RelationWidths::committee`] asked: the roles whose contact the caller may
    /// see, oldest first. `None` if not asked, and also when SQLite's JSON for it could
    /// not be read (see [`visible_committee`]); the caller then reads committees by
    /// their own statement.
    pub committee: Option<Committee>,
}

/// How much of each deal, and of each related record, [`list_with_relations`] reads.
#[derive(Debug, Clone, Copy)]
pub struct RelationWidths {
    /// The deal itself: `Brief` or `Full` (`Skip` reads it whole too).
    pub deal: Width,
    pub account: Width,
    pub owner: Width,
    pub stage: Width,
    /// Whether the page reads each deal's buying committee (contact roles with their
    /// contacts brief) too.
    pub committee: bool,
}

/// The filtered query every opportunity list starts from.
fn filtered(filter: OpportunityFilter) -> AppResult<Select<opportunity::Entity>> {
    use opportunity::Column as C;
    let mut query = opportunity::Entity::find();
    if let Some(search) = optional_text("filter.search", filter.search.as_deref(), NAME_MAX)? {
        query = query.filter(text_search(&[C::Name], &search));
    }
    if let Some(v) = filter.account_id {
        query = query.filter(C::AccountId.eq(v));
    }
    if let Some(v) = filter.owner_id {
        query = query.filter(C::OwnerId.eq(v));
    }
    if let Some(v) = filter.pipeline_id {
        query = query.filter(C::PipelineId.eq(v));
    }
    if let Some(v) = filter.stage_id {
        query = query.filter(C::StageId.eq(v));
    }
    if let Some(kind) = filter.stage_kind {
        let stages_of_kind = Query::select()
            .column(stage::Column::Id)
            .from(stage::Entity)
            .and_where(stage::Column::Kind.eq(kind))
            .to_owned();
        query = query.filter(C::StageId.in_subquery(stages_of_kind));
    }
    if let Some(v) = filter.amount_min {
        query = query.filter(C::AmountMicros.gte(money_micros("filter.amountMin", v)?));
    }
    if let Some(v) = filter.amount_max {
        query = query.filter(C::AmountMicros.lte(money_micros("filter.amountMax", v)?));
    }
    if let Some(v) = filter.close_from {
        query = query.filter(C::ExpectedCloseDate.gte(v));
    }
    if let Some(v) = filter.close_to {
        query = query.filter(C::ExpectedCloseDate.lte(v));
    }
    Ok(query)
}

/// The deals the caller sees under `filtered` (for counts), and the query one page of
/// them comes from: for a territory-bound caller, the union of each territory's (and
/// their own deals') first rows, so a page never sorts the whole visible set.
fn visible_page(
    filtered: Select<opportunity::Entity>,
    scope: &Scope,
    plan: &PagePlan<'_, opportunity::Entity>,
) -> (Select<opportunity::Entity>, Select<opportunity::Entity>) {
    let visible = filtered
        .clone()
        .apply_if(scope.opportunities(AccessLevel::Read), QueryFilter::filter);
    let page = match scope.opportunity_branches(AccessLevel::Read) {
        Some(branches) => {
            let candidates = plan.candidates(&filtered, branches);
            filtered.filter(candidates)
        }
        None => visible.clone(),
    };
    (visible, page)
}

/// One page of deals, each with its account, owner and stage (and, when asked, its
/// buying committee) read by the page's own statement (one round trip instead of
/// five), and each read as wide as `widths` says: a list that shows names reads a few
/// columns, not whole rows.
pub async fn list_with_relations(
    svc: &Services,
    actor: &Actor,
    filter: OpportunityFilter,
    order: SortOrder<opportunity::Entity>,
    args: &PageArgs,
    want_total: bool,
    widths: RelationWidths,
) -> AppResult<Page<OpportunityWithRelations>> {
    use crate::services::rows::{
        BriefRead, OpportunityBrief, read_joined, read_member, read_sort_key,
    };
    svc.authz
        .require(actor, Resource::Opportunity, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let plan = PagePlan::new(&order, opportunity::Column::Id, args)?;
    let sort_column = order.column.def();
    let (visible, page) = visible_page(filtered(filter)?, &scope, &plan);
    let total_count = if want_total {
        Some(visible.count(&svc.db).await?)
    } else {
        None
    };
    let committees = match (widths.committee, svc.db.get_database_backend()) {
        (false, _) => CommitteeRead::Skip,
        (true, DbBackend::Postgres) => CommitteeRead::Rows,
        (true, _) => CommitteeRead::Json,
    };
    let statement = page_statement(page, &plan, order.column, widths, committees);
    let db = LiteralLimits(&svc.db);
    let rows = db.query_all(&statement).await?;
    let mut read: Vec<OpportunityWithRelations> = Vec::with_capacity(rows.len());
    // A deal with several committee members spans as many rows; its later rows pass
    // over the columns its first row read.
    let mut deal_columns = 0;
    let mut committee_visible = false;
    for row in &rows {
        let mut r = Reader::new(row);
        let same_deal = match read.last() {
            Some(last) if committees == CommitteeRead::Rows => {
                Reader::new(row).take::<i64>()? == last.opportunity.id()
            }
            _ => false,
        };
        if same_deal {
            r.skip(deal_columns);
        } else {
            let opportunity = if widths.deal == Width::Brief {
                Joined::Brief(OpportunityBrief::read(&mut r)?)
            } else {
                Joined::Full(opportunity::Model::read(&mut r)?)
            };
            let key = read_sort_key(&sort_column, &mut r)?;
            let account = read_joined::<AccountBrief>(&mut r, widths.account)?;
            let owner = read_joined::<UserBrief>(&mut r, widths.owner)?;
            let stage = read_joined::<StageBrief>(&mut r, widths.stage)?;
            deal_columns = r.columns_read();
            // A deal seen only as its owner may have contacts, and sit in an account,
            // the caller cannot see: those stay hidden.
            committee_visible = scope.allows_deal(
                opportunity.territory_id(),
                opportunity.owner_id(),
                AccessLevel::Read,
            );
            let committee = match committees {
                CommitteeRead::Skip => None,
                CommitteeRead::Rows => Some(Vec::new()),
                CommitteeRead::Json => {
                    visible_committee(&scope, opportunity.id(), committee_visible, &mut r)
                }
            };
            read.push(OpportunityWithRelations {
                account: account.filter(|a| scope.allows(a.territory_id(), AccessLevel::Read)),
                opportunity,
                key,
                owner,
                stage,
                committee,
            });
        }
        if committees == CommitteeRead::Rows
            && let Some((role, contact)) = read_member(&mut r)?
            && committee_visible
            && scope.allows(contact.territory_id, AccessLevel::Read)
            && let Some(committee) = read.last_mut().and_then(|d| d.committee.as_mut())
        {
            committee.push((role, contact));
        }
    }
    // Each deal's rows come together (the statement orders by deal first), so no deal
    // was read twice.
    debug_assert!(
        {
            let mut ids: Vec<i64> = read.iter().map(|d| d.opportunity.id()).collect();
            ids.sort_unstable();
            ids.windows(2).all(|pair| pair[0] != pair[1])
        },
        "a deal's rows came apart"
    );
    Ok(plan.finish_keyed(
        read,
        |r: &OpportunityWithRelations| (r.key.clone(), r.opportunity.id()),
        total_count,
    ))
}

/// The alias of the sort column a page statement reads after each deal's own columns.
const SORT_KEY: &str = "sort_key";

/// How a page reads its deals' committees along with them, by backend. Each was
/// measured against the other (bench/RESULTS.md, session 16):
/// - `Rows` (PostgreSQL): the roles and their contacts are joined in, a row per member,
///   as a hand-written statement would. Building each committee as JSON in a
///   correlated subquery cost PostgreSQL about 40% more per page (`pgbench`).
/// - `Json` (SQLite): each committee comes as one JSON value per deal
///   ([`crate::services::rows::select_committee`]). A row per member cost more there:
///   sqlx copies every column of every row out of SQLite, deal columns included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitteeRead {
    Skip,
    Json,
    Rows,
}

/// The statement [`list_with_relations`] reads: each deal (brief or whole) and its sort
/// value, then its account, owner and stage as wide as asked, then its committee as
/// `committees` says. For `Rows` each deal has a row per committee member, its rows
/// together, members oldest first: the page's own query (filters, cursor, order,
/// limit) becomes a subquery named like the deal table, joined to the rest.
fn page_statement(
    page: Select<opportunity::Entity>,
    plan: &PagePlan<'_, opportunity::Entity>,
    sort: opportunity::Column,
    widths: RelationWidths,
    committees: CommitteeRead,
) -> SelectStatement {
    use crate::services::rows::{
        BriefRead, OpportunityBrief, select_columns, select_committee, select_joined, select_member,
    };
    use opportunity::Column as C;
    use sea_orm::sea_query::ExprTrait;
    let mut deals = plan.apply(page).into_query();
    deals.clear_selects();
    if widths.deal == Width::Brief {
        select_columns(
            &mut deals,
            opportunity::Entity,
            OpportunityBrief::brief_columns(),
        );
    } else {
        select_all::<opportunity::Entity>(&mut deals);
    }
    deals.expr_as(Expr::col((opportunity::Entity, sort)), Alias::new(SORT_KEY));
    let mut statement = if committees == CommitteeRead::Rows {
        let mut outer = Query::select();
        outer
            .expr(Expr::col((opportunity::Entity, Asterisk)))
            .from_subquery(deals, opportunity::Entity);
        outer
    } else {
        deals
    };
    // The same joins, to the table or to the page named like it.
    if widths.account != Width::Skip {
        statement.left_join(
            account::Entity,
            Expr::col((account::Entity, account::Column::Id))
                .equals((opportunity::Entity, C::AccountId)),
        );
    }
    if widths.owner != Width::Skip {
        statement.left_join(
            user::Entity,
            Expr::col((user::Entity, user::Column::Id)).equals((opportunity::Entity, C::OwnerId)),
        );
    }
    if widths.stage != Width::Skip {
        statement.left_join(
            stage::Entity,
            Expr::col((stage::Entity, stage::Column::Id)).equals((opportunity::Entity, C::StageId)),
        );
    }
    select_joined::<AccountBrief>(&mut statement, widths.account);
    select_joined::<UserBrief>(&mut statement, widths.owner);
    select_joined::<StageBrief>(&mut statement, widths.stage);
    match committees {
        CommitteeRead::Skip => {}
        CommitteeRead::Json => select_committee(&mut statement),
        CommitteeRead::Rows => {
            statement
                .left_join(
                    role::Entity,
                    Expr::col((role::Entity, role::Column::OpportunityId))
                        .equals((opportunity::Entity, C::Id)),
                )
                .left_join(
                    contact::Entity,
                    Expr::col((contact::Entity, contact::Column::Id))
                        .equals((role::Entity, role::Column::ContactId)),
                );
            select_member(&mut statement);
            let direction = plan.direction();
            statement
                .order_by(
                    (opportunity::Entity, Alias::new(SORT_KEY)),
                    direction.clone(),
                )
                .order_by((opportunity::Entity, C::Id), direction)
                .order_by((role::Entity, role::Column::CreatedAt), Order::Asc)
                .order_by((role::Entity, role::Column::Id), Order::Asc);
        }
    }
    statement
}

/// A deal's committee as SQLite's JSON for it reads, keeping only roles whose contact
/// the caller may see (a deal seen only as its owner may have others), or none if the
/// deal's committee is not `visible`. A committee that does not parse (a timestamp
/// written outside Accord in a form it does not know, say) is logged and answered
/// `None`, so the list falls back to reading committees by their own statement instead
/// of failing.
fn visible_committee(
    scope: &Scope,
    deal: i64,
    visible: bool,
    r: &mut Reader<'_>,
) -> Option<Committee> {
    use crate::services::rows::read_committee;
    match read_committee(r, deal) {
        Ok(mut committee) => {
            if !visible {
                committee.clear();
            }
            committee.retain(|(_, contact)| scope.allows(contact.territory_id, AccessLevel::Read));
            Some(committee)
        }
        Err(error) => {
            tracing::warn!(deal, %error, "committee not readable from the page; reading it apart");
            None
        }
    }
}

/// Adds a contact to the buying committee of a deal. Marking a role primary demotes the
/// deal's other primary contact in the same transaction.
pub async fn add_contact_role(
    svc: &Services,
    actor: &Actor,
    opportunity_id: i64,
    contact_id: i64,
    role_kind: ContactRole,
    is_primary: bool,
) -> AppResult<role::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    // One primary per deal: concurrent additions to the same deal take turns.
    crate::db::serialize_on(&txn, "opportunity-contact-roles", opportunity_id).await?;
    let deal = opportunity::Entity::find_by_id(opportunity_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("opportunity"))?;
    gate_opportunity(&scope, &deal, AccessLevel::Edit)?;
    crate::services::contacts::visible_contact(&txn, &scope, contact_id, "contactId").await?;
    if contact::Entity::find_by_id(contact_id)
        .one(&txn)
        .await?
        .is_none()
    {
        return Err(AppError::validation("contactId", "no such contact"));
    }
    if is_primary {
        let primaries = role::Entity::find()
            .filter(role::Column::OpportunityId.eq(opportunity_id))
            .filter(role::Column::IsPrimary.eq(true))
            .all(&txn)
            .await?;
        for previous in primaries {
            let mut active: role::ActiveModel = previous.clone().into();
            active.is_primary = Set(false);
            let after = active.update(&txn).await?;
            audit::record(
                &txn,
                Some(actor),
                "update",
                "OpportunityContactRole",
                previous.id,
                Some(&previous),
                Some(&after),
            )
            .await?;
        }
    }
    let created = role::ActiveModel {
        id: NotSet,
        opportunity_id: Set(opportunity_id),
        contact_id: Set(contact_id),
        role: Set(role_kind),
        is_primary: Set(is_primary),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "OpportunityContactRole",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn remove_contact_role(
    svc: &Services,
    actor: &Actor,
    role_id: i64,
) -> AppResult<role::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = role::Entity::find_by_id(role_id)
        .apply_if(scope.contact_roles(), QueryFilter::filter)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("contact role"))?;
    let deal = opportunity::Entity::find_by_id(before.opportunity_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("contact role"))?;
    gate_opportunity(&scope, &deal, AccessLevel::Edit)?;
    role::Entity::delete_by_id(role_id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "OpportunityContactRole",
        role_id,
        Some(&before),
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(before)
}

pub async fn get_contact_role(svc: &Services, actor: &Actor, id: i64) -> AppResult<role::Model> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    role::Entity::find_by_id(id)
        .apply_if(scope.contact_roles(), QueryFilter::filter)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("contact role"))
}

/// The stage history of one deal, oldest first.
pub async fn transitions(
    svc: &Services,
    actor: &Actor,
    opportunity_id: i64,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<stage_transition::Model>> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Read)
        .await?;
    let order = SortOrder::<stage_transition::Entity> {
        column: stage_transition::Column::TransitionedAt,
        descending: false,
        key: |m| SortKey::Time(m.transitioned_at),
    };
    let scope = svc.authz.scope(actor).await;
    let query = stage_transition::Entity::find()
        .filter(stage_transition::Column::OpportunityId.eq(opportunity_id))
        .apply_if(
            scope.via_opportunity(stage_transition::Column::OpportunityId),
            QueryFilter::filter,
        );
    paginate(
        &svc.db,
        query,
        stage_transition::Column::Id,
        &order,
        args,
        want_total,
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sea_orm::{Condition, Database, DatabaseConnection};

    /// A deal (id 17, version 4, territory 2) of account 11 and owner 7, in a pipeline
    /// of two stages, and a second territory.
    async fn one_deal() -> DatabaseConnection {
        use accord_migration::MigratorTrait;
        let db = Database::connect("sqlite::memory:").await.unwrap();
        accord_migration::Migrator::up(&db, None).await.unwrap();
        for sql in [
            "INSERT INTO users (id, email, display_name, role, password_hash, active, created_at, updated_at) \
             VALUES (7, 'a@example.com', 'Ann Example', 'rep', NULL, 1, '2026-01-02T03:04:05Z', '2026-02-03T04:05:06Z')",
            "INSERT INTO territories (id, name, parent_id, kind, description, created_at, version) VALUES \
             (2, 'North', NULL, 'geography', NULL, '2026-01-01T00:00:00Z', 1), \
             (3, 'South', NULL, 'geography', NULL, '2026-01-01T00:00:00Z', 1)",
            "INSERT INTO pipelines (id, name, created_at, updated_at, version) VALUES (3, 'P', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1)",
            "INSERT INTO stages (id, pipeline_id, name, position, probability, kind) VALUES \
             (5, 3, 'Qualify', 0, 10, 'open'), (6, 3, 'Won', 1, 100, 'won')",
            "INSERT INTO accounts (id, name, currency, territory_id, territory_manual, owner_id, created_at, updated_at, version) \
             VALUES (11, 'Acme', 'EUR', 2, 1, 7, '2026-01-04T00:00:00Z', '2026-01-05T00:00:00Z', 3)",
            "INSERT INTO opportunities (id, name, account_id, owner_id, pipeline_id, stage_id, amount_micros, currency, \
             expected_close_date, stage_entered_at, territory_id, created_at, updated_at, version) \
             VALUES (17, 'Deal', 11, 7, 3, 5, 5000000, 'EUR', '2026-03-01', '2026-01-08T00:00:00Z', 2, \
             '2026-01-10T00:00:00Z', '2026-01-11T00:00:00Z', 4)",
        ] {
            db.execute_unprepared(sql).await.expect(sql);
        }
        db
    }

    /// A brief page reads each deal's cursor key from the sort column by the column's
    /// type; it must be the key a whole deal gives, for every order.
    #[tokio::test]
    async fn sort_keys_read_from_the_column_equal_the_whole_deals() {
        use crate::services::rows::{Reader, read_sort_key, select_columns};
        use sea_orm::{ColumnTrait, ConnectionTrait, QueryTrait};
        let db = one_deal().await;
        let deal = opportunity::Entity::find_by_id(17)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        for sort in [
            OpportunitySort::CreatedAt,
            OpportunitySort::Name,
            OpportunitySort::Amount,
            OpportunitySort::ExpectedCloseDate,
        ] {
            let order = sort_order(sort, false);
            let mut statement = opportunity::Entity::find_by_id(17).into_query();
            statement.clear_selects();
            select_columns(&mut statement, opportunity::Entity, [order.column]);
            let row = db.query_one(&statement).await.unwrap().unwrap();
            let read = read_sort_key(&order.column.def(), &mut Reader::new(&row)).unwrap();
            assert_eq!(read, (order.key)(&deal), "{:?}", order.column);
        }
    }

    #[tokio::test]
    async fn a_moving_deal_is_read_with_its_parties_and_its_pipelines_stages() {
        let db = one_deal().await;
        let (moving, stages) = read_moving(&db, 17).await.unwrap().expect("found");
        assert_eq!(
            moving.deal,
            opportunity::Entity::find_by_id(17)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
        );
        assert_eq!(moving.account.map(|a| a.name), Some("Acme".to_owned()));
        assert_eq!(
            moving.owner.map(|u| u.display_name),
            Some("Ann Example".to_owned())
        );
        let mut names: Vec<_> = stages.values().map(|s| (s.id, s.name.clone())).collect();
        names.sort();
        assert_eq!(names, [(5, "Qualify".to_owned()), (6, "Won".to_owned())]);
        assert!(read_moving(&db, 18).await.unwrap().is_none());
    }

    /// What a move does with [`write_over`]'s update: the deal as written, if it was.
    async fn save_over(
        db: &DatabaseConnection,
        active: opportunity::ActiveModel,
        before: &opportunity::Model,
        also: Condition,
    ) -> AppResult<Option<opportunity::Model>> {
        let (update, after) = write_over(active, before, also)?;
        let written = WriteBatch::new(db.get_database_backend())
            .run_then(db, &update)
            .await?;
        Ok((!written.is_empty()).then_some(after))
    }

    /// A move writes only over the deal exactly as it was read before its transaction.
    #[tokio::test]
    async fn a_move_writes_only_over_the_deal_as_read() {
        let db = one_deal().await;
        let scope = Scope::unrestricted(7);
        let read = || async { read_moving(&db, 17).await.unwrap().unwrap().0.deal };
        let moved = |before: &opportunity::Model| {
            let mut active: opportunity::ActiveModel = before.clone().into();
            active.stage_id = Set(6);
            active
        };

        // The account (and with it the deal) moved to another territory, which bumps no
        // version: refused, nothing written.
        let before = read().await;
        territories::propagate(&db, 11, Some(3)).await.unwrap();
        let unwritten = save_over(&db, moved(&before), &before, Condition::all()).await;
        assert!(unwritten.unwrap().is_none());
        let err = why_unwritten(&db, &scope, &before).await;
        assert!(
            matches!(&err, AppError::Conflict(m) if m.contains("another territory")),
            "{err:?}"
        );
        let now = read().await;
        assert_eq!(
            (now.stage_id, now.version, now.territory_id),
            (5, 4, Some(3))
        );

        // Changed by someone else (a new version): refused as stale.
        let before = read().await;
        let mut bumped: opportunity::ActiveModel = before.clone().into();
        bumped.version = Set(5);
        bumped.update(&db).await.unwrap();
        let unwritten = save_over(&db, moved(&before), &before, Condition::all()).await;
        assert!(unwritten.unwrap().is_none());
        let err = why_unwritten(&db, &scope, &before).await;
        assert!(
            matches!(&err, AppError::Conflict(m) if m.contains("changed by someone else")),
            "{err:?}"
        );

        // Unchanged since read: written, at the next version.
        let before = read().await;
        // Unless something else the caller requires no longer holds.
        let refused = Condition::all().add(opportunity::Column::Id.eq(-1));
        let unwritten = save_over(&db, moved(&before), &before, refused).await;
        assert!(unwritten.unwrap().is_none());
        let after = save_over(&db, moved(&before), &before, Condition::all())
            .await
            .unwrap()
            .expect("written");
        assert_eq!((after.stage_id, after.version), (6, 6));
        let now = read().await;
        assert_eq!((now.stage_id, now.version), (6, 6));
    }
}
