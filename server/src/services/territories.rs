//! Territories: the hierarchy, who belongs to which territory at what access level,
//! the rules that place accounts, and the copies of an account's territory that its
//! contacts and deals carry. Every change to the hierarchy or the memberships rewrites
//! the casbin policy in the same transaction (`authz::policy::sync`).

use accord_entities::account::{self, AccountSize};
use accord_entities::territory::{self, TerritoryKind};
use accord_entities::territory_membership::{self as membership, AccessLevel};
use accord_entities::user::Role;
use accord_entities::{contact, opportunity, territory_rule as rule, user};
use chrono::Utc;
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, NotSet,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use crate::auth::Actor;
use crate::authz::{Action, MAX_TERRITORY_DEPTH, Resource, Scope, policy};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::validate::{
    NAME_MAX, SHORT_MAX, country, money_micros, optional_text, required_text,
};
use crate::services::{Patch, Services, audit, update_if_version};

// ---------------------------------------------------------------------------------
// Placement: used by the account, contact, deal and lead services.

/// The account fields assignment rules look at.
#[derive(Debug, Clone, Default)]
pub struct RuleSubject {
    pub country: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub size: Option<AccountSize>,
    pub revenue_micros: Option<i64>,
}

fn value<T: Clone + Into<sea_orm::Value>>(v: &ActiveValue<T>) -> Option<T> {
    match v {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Some(v.clone()),
        ActiveValue::NotSet => None,
    }
}

impl RuleSubject {
    pub fn of_active(a: &account::ActiveModel) -> Self {
        RuleSubject {
            country: value(&a.country).flatten(),
            region: value(&a.region).flatten(),
            industry: value(&a.industry).flatten(),
            size: value(&a.size).flatten(),
            revenue_micros: value(&a.annual_revenue_micros).flatten(),
        }
    }

    pub fn of(a: &account::Model) -> Self {
        RuleSubject {
            country: a.country.clone(),
            region: a.region.clone(),
            industry: a.industry.clone(),
            size: a.size,
            revenue_micros: a.annual_revenue_micros,
        }
    }
}

fn same_text(want: &Option<String>, have: &Option<String>) -> bool {
    match want {
        None => true,
        Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
    }
}

/// Whether every condition the rule sets holds for the account.
pub fn rule_matches(r: &rule::Model, s: &RuleSubject) -> bool {
    r.active
        && same_text(&r.country, &s.country)
        && same_text(&r.region, &s.region)
        && same_text(&r.industry, &s.industry)
        && r.size.is_none_or(|size| s.size == Some(size))
        && r.min_revenue_micros
            .is_none_or(|min| s.revenue_micros.is_some_and(|v| v >= min))
        && r.max_revenue_micros
            .is_none_or(|max| s.revenue_micros.is_some_and(|v| v <= max))
}

async fn ordered_rules<C: ConnectionTrait>(db: &C) -> AppResult<Vec<rule::Model>> {
    Ok(rule::Entity::find()
        .order_by_asc(rule::Column::Position)
        .order_by_asc(rule::Column::Id)
        .all(db)
        .await?)
}

/// The territory of the first matching rule, if any.
pub async fn territory_by_rules<C: ConnectionTrait>(
    db: &C,
    subject: &RuleSubject,
) -> AppResult<Option<i64>> {
    Ok(ordered_rules(db)
        .await?
        .iter()
        .find(|r| rule_matches(r, subject))
        .map(|r| r.territory_id))
}

/// Contacts and deals follow their account's territory.
pub async fn propagate<C: ConnectionTrait>(
    txn: &C,
    account_id: i64,
    territory_id: Option<i64>,
) -> AppResult<()> {
    contact::Entity::update_many()
        .col_expr(contact::Column::TerritoryId, Expr::value(territory_id))
        .filter(contact::Column::AccountId.eq(account_id))
        .exec(txn)
        .await?;
    opportunity::Entity::update_many()
        .col_expr(opportunity::Column::TerritoryId, Expr::value(territory_id))
        .filter(opportunity::Column::AccountId.eq(account_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// A new or moved account must land where the caller can edit it, or it would vanish
/// from their sight the moment they saved it.
pub fn require_placement(scope: &Scope, territory: Option<i64>) -> AppResult<()> {
    if scope.allows(territory, AccessLevel::Edit) {
        return Ok(());
    }
    Err(match territory {
        None => AppError::validation(
            "territoryId",
            "no assignment rule places this account; choose a territory you can edit",
        ),
        Some(_) => AppError::Forbidden(
            "the account would belong to a territory you cannot edit; choose one you can".into(),
        ),
    })
}

/// The territory of an account that a new or moved child record (contact, deal) joins.
/// An account the caller cannot see reads as missing; one they may only read refuses.
pub async fn account_for_child<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    account_id: i64,
    field: &str,
) -> AppResult<Option<i64>> {
    let Some(a) = account::Entity::find_by_id(account_id).one(db).await? else {
        return Err(AppError::validation(field, "no such account"));
    };
    if !scope.allows(a.territory_id, AccessLevel::Read) {
        return Err(AppError::validation(field, "no such account"));
    }
    if !scope.allows(a.territory_id, AccessLevel::Edit) {
        return Err(AppError::Forbidden(
            "your access to this account's territory is read-only".into(),
        ));
    }
    Ok(a.territory_id)
}

// ---------------------------------------------------------------------------------
// The hierarchy.

#[derive(Debug, Clone)]
pub struct NewTerritory {
    pub name: String,
    pub parent_id: Option<i64>,
    pub kind: TerritoryKind,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TerritoryChanges {
    pub name: Option<String>,
    pub parent_id: Patch<i64>,
    pub kind: Option<TerritoryKind>,
    pub description: Patch<String>,
}

/// Managing a territory takes the role permission and, below admins, a manager
/// membership on it or above it. Creating a root takes an admin.
async fn require_manage(
    svc: &Services,
    actor: &Actor,
    scope: &Scope,
    territory: Option<i64>,
) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let allowed = match territory {
        Some(t) => scope.manages(t),
        None => scope.unrestricted,
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden(match territory {
            Some(_) => "you manage neither this territory nor one above it".into(),
            None => "only admins create or move top-level territories".into(),
        }))
    }
}

async fn find<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<territory::Model> {
    territory::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("territory"))
}

/// The ids from `id` up to the root (refuses chains deeper than the authz limit).
async fn ancestors<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<Vec<i64>> {
    let mut chain = vec![id];
    let mut cursor = find(db, id).await?.parent_id;
    while let Some(p) = cursor {
        if chain.contains(&p) || chain.len() > MAX_TERRITORY_DEPTH {
            return Err(AppError::validation(
                "parentId",
                "the territory hierarchy is too deep",
            ));
        }
        chain.push(p);
        cursor = find(db, p).await?.parent_id;
    }
    Ok(chain)
}

/// Levels of the deepest branch below `id` (0 for a leaf).
async fn height<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<usize> {
    let all = territory::Entity::find().all(db).await?;
    fn h(all: &[territory::Model], id: i64, depth: usize) -> usize {
        if depth > MAX_TERRITORY_DEPTH * 2 {
            return depth;
        }
        all.iter()
            .filter(|t| t.parent_id == Some(id))
            .map(|t| 1 + h(all, t.id, depth + 1))
            .max()
            .unwrap_or(0)
    }
    Ok(h(&all, id, 0))
}

/// Rewrites the stored policy from the tables, commits, and reloads this instance's
/// enforcer. Once committed the change stands: a failed local reload is logged, not
/// reported as a failed change (the policy watcher retries it). Returns the policy
/// version the change produced.
pub(crate) async fn commit_policy_change(
    svc: &Services,
    txn: sea_orm::DatabaseTransaction,
) -> AppResult<i64> {
    policy::sync(&txn).await?;
    let version = policy::version(&txn).await?;
    txn.commit().await?;
    if let Err(e) = svc.authz.refresh().await {
        tracing::warn!(error = ?e, "policy reload after a territory change failed");
    }
    Ok(version)
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: NewTerritory,
) -> AppResult<territory::Model> {
    let scope = svc.authz.scope(actor).await;
    require_manage(svc, actor, &scope, input.parent_id).await?;
    let name = required_text("name", &input.name, NAME_MAX)?;
    let description = optional_text("description", input.description.as_deref(), 2000)?;
    let txn = begin_write(&svc.db).await?;
    crate::db::serialize_on(&txn, "territory-hierarchy", 0).await?;
    if let Some(parent) = input.parent_id {
        let depth = ancestors(&txn, parent)
            .await
            .map_err(|e| match e {
                AppError::NotFound(_) => AppError::validation("parentId", "no such territory"),
                other => other,
            })?
            .len();
        if depth >= MAX_TERRITORY_DEPTH {
            return Err(AppError::validation(
                "parentId",
                format!("territories nest at most {MAX_TERRITORY_DEPTH} levels deep"),
            ));
        }
    }
    let created = territory::ActiveModel {
        id: NotSet,
        name: Set(name),
        parent_id: Set(input.parent_id),
        kind: Set(input.kind),
        description: Set(description),
        created_at: Set(Utc::now()),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Territory",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    commit_policy_change(svc, txn).await?;
    Ok(created)
}

/// Applies a territory change inside `txn` (shared with previews). The caller syncs the
/// policy once after all its changes.
pub(crate) async fn update_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    id: i64,
    version: Option<i32>,
    changes: TerritoryChanges,
) -> AppResult<territory::Model> {
    crate::db::serialize_on(txn, "territory-hierarchy", 0).await?;
    let before = find(txn, id).await?;
    if !scope.manages(id) {
        return Err(AppError::Forbidden(
            "you manage neither this territory nor one above it".into(),
        ));
    }
    if let Some(v) = version
        && v != before.version
    {
        return Err(AppError::stale_version("territory"));
    }
    let mut active: territory::ActiveModel = before.clone().into();
    if let Some(name) = changes.name {
        active.name = Set(required_text("name", &name, NAME_MAX)?);
    }
    if let Some(kind) = changes.kind {
        active.kind = Set(kind);
    }
    if let Some(d) = changes.description {
        active.description = Set(optional_text("description", d.as_deref(), 2000)?);
    }
    if let Some(parent) = changes.parent_id {
        match parent {
            Some(p) => {
                if !scope.manages(p) {
                    return Err(AppError::Forbidden(
                        "you may move territories only below ones you manage".into(),
                    ));
                }
                let chain = ancestors(txn, p).await.map_err(|e| match e {
                    AppError::NotFound(_) => AppError::validation("parentId", "no such territory"),
                    other => other,
                })?;
                if chain.contains(&id) {
                    return Err(AppError::validation(
                        "parentId",
                        "a territory cannot move below itself",
                    ));
                }
                if chain.len() + 1 + height(txn, id).await? > MAX_TERRITORY_DEPTH {
                    return Err(AppError::validation(
                        "parentId",
                        format!("territories nest at most {MAX_TERRITORY_DEPTH} levels deep"),
                    ));
                }
            }
            None if !scope.unrestricted => {
                return Err(AppError::Forbidden(
                    "only admins create or move top-level territories".into(),
                ));
            }
            None => {}
        }
        active.parent_id = Set(parent);
    }
    active.version = Set(before.version + 1);
    let after = update_if_version::<territory::Entity, _>(
        txn,
        active,
        (territory::Column::Id, territory::Column::Version),
        id,
        before.version,
        "territory",
    )
    .await?;
    audit::record(
        txn,
        Some(actor),
        "update",
        "Territory",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    Ok(after)
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    changes: TerritoryChanges,
) -> AppResult<territory::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let after = update_in(&txn, actor, &scope, id, Some(version), changes).await?;
    commit_policy_change(svc, txn).await?;
    Ok(after)
}

/// Deletes an empty territory: no child territories, no accounts, no rules pointing
/// at it. Its memberships go with it.
pub async fn delete(svc: &Services, actor: &Actor, id: i64, version: i32) -> AppResult<()> {
    let scope = svc.authz.scope(actor).await;
    require_manage(svc, actor, &scope, Some(id)).await?;
    let txn = begin_write(&svc.db).await?;
    crate::db::serialize_on(&txn, "territory-hierarchy", 0).await?;
    let before = find(&txn, id).await?;
    if before.version != version {
        return Err(AppError::stale_version("territory"));
    }
    let children = territory::Entity::find()
        .filter(territory::Column::ParentId.eq(id))
        .count(&txn)
        .await?;
    let accounts = account::Entity::find()
        .filter(account::Column::TerritoryId.eq(id))
        .count(&txn)
        .await?;
    let rules = rule::Entity::find()
        .filter(rule::Column::TerritoryId.eq(id))
        .count(&txn)
        .await?;
    if children + accounts + rules > 0 {
        return Err(AppError::Conflict(format!(
            "territory still has {children} child territories, {accounts} accounts and {rules} assignment rules; move or delete them first"
        )));
    }
    let members = membership::Entity::find()
        .filter(membership::Column::TerritoryId.eq(id))
        .all(&txn)
        .await?;
    membership::Entity::delete_many()
        .filter(membership::Column::TerritoryId.eq(id))
        .exec(&txn)
        .await?;
    territory::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "Territory",
        id,
        Some(&before),
        None,
    )
    .await?;
    audit::record_cascaded_deletes(&txn, actor, "TerritoryMembership", &members, |m| m.id).await?;
    commit_policy_change(svc, txn).await?;
    Ok(())
}

/// The hierarchy is readable by every signed-in user: it names regions, not customers.
pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<territory::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Read)
        .await?;
    find(&svc.db, id).await
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    parent: Option<Option<i64>>,
) -> AppResult<Vec<territory::Model>> {
    svc.authz
        .require(actor, Resource::Territory, Action::Read)
        .await?;
    let mut q = territory::Entity::find()
        .order_by_asc(territory::Column::Name)
        .order_by_asc(territory::Column::Id);
    match parent {
        Some(Some(p)) => q = q.filter(territory::Column::ParentId.eq(p)),
        Some(None) => q = q.filter(territory::Column::ParentId.is_null()),
        None => {}
    }
    Ok(q.all(&svc.db).await?)
}

// ---------------------------------------------------------------------------------
// Memberships.

#[derive(Debug, Clone, Copy)]
pub struct MembershipInput {
    pub territory_id: i64,
    pub user_id: i64,
    pub access_level: AccessLevel,
    pub is_manager: bool,
}

/// Adds or changes a membership inside `txn`; the caller syncs the policy.
pub(crate) async fn set_membership_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    input: MembershipInput,
) -> AppResult<membership::Model> {
    find(txn, input.territory_id)
        .await
        .map_err(|_| AppError::validation("territoryId", "no such territory"))?;
    if !scope.manages(input.territory_id) {
        return Err(AppError::Forbidden(
            "you manage neither this territory nor one above it".into(),
        ));
    }
    let member = match user::Entity::find_by_id(input.user_id).one(txn).await? {
        Some(u) if u.active => u,
        _ => return Err(AppError::validation("userId", "no such active user")),
    };
    if input.is_manager {
        if member.role == Role::Rep {
            return Err(AppError::validation(
                "isManager",
                "territory managers must have the sales_manager or admin role",
            ));
        }
        if input.access_level == AccessLevel::Read {
            return Err(AppError::validation(
                "accessLevel",
                "a territory manager needs edit or owner access",
            ));
        }
    }
    if input.user_id == actor.user_id && !scope.unrestricted {
        return Err(AppError::Forbidden(
            "you may not change your own territory access".into(),
        ));
    }
    let existing = membership::Entity::find()
        .filter(membership::Column::TerritoryId.eq(input.territory_id))
        .filter(membership::Column::UserId.eq(input.user_id))
        .one(txn)
        .await?;
    let saved = match &existing {
        Some(m) => {
            let mut active: membership::ActiveModel = m.clone().into();
            active.access_level = Set(input.access_level);
            active.is_manager = Set(input.is_manager);
            active.update(txn).await?
        }
        None => {
            membership::ActiveModel {
                id: NotSet,
                territory_id: Set(input.territory_id),
                user_id: Set(input.user_id),
                access_level: Set(input.access_level),
                is_manager: Set(input.is_manager),
                created_at: Set(Utc::now()),
            }
            .insert(txn)
            .await?
        }
    };
    let op = if existing.is_some() {
        "update"
    } else {
        "create"
    };
    audit::record(
        txn,
        Some(actor),
        op,
        "TerritoryMembership",
        saved.id,
        existing.as_ref(),
        Some(&saved),
    )
    .await?;
    Ok(saved)
}

pub async fn set_membership(
    svc: &Services,
    actor: &Actor,
    input: MembershipInput,
) -> AppResult<membership::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let saved = set_membership_in(&txn, actor, &scope, input).await?;
    commit_policy_change(svc, txn).await?;
    Ok(saved)
}

/// Removes a membership inside `txn`; the caller syncs the policy.
pub(crate) async fn remove_membership_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    territory_id: i64,
    user_id: i64,
) -> AppResult<membership::Model> {
    if !scope.manages(territory_id) {
        return Err(AppError::Forbidden(
            "you manage neither this territory nor one above it".into(),
        ));
    }
    if user_id == actor.user_id && !scope.unrestricted {
        return Err(AppError::Forbidden(
            "you may not change your own territory access".into(),
        ));
    }
    let existing = membership::Entity::find()
        .filter(membership::Column::TerritoryId.eq(territory_id))
        .filter(membership::Column::UserId.eq(user_id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("territory membership"))?;
    membership::Entity::delete_by_id(existing.id)
        .exec(txn)
        .await?;
    audit::record(
        txn,
        Some(actor),
        "delete",
        "TerritoryMembership",
        existing.id,
        Some(&existing),
        None,
    )
    .await?;
    Ok(existing)
}

pub async fn remove_membership(
    svc: &Services,
    actor: &Actor,
    territory_id: i64,
    user_id: i64,
) -> AppResult<membership::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let removed = remove_membership_in(&txn, actor, &scope, territory_id, user_id).await?;
    commit_policy_change(svc, txn).await?;
    Ok(removed)
}

/// Memberships of one territory, or of one user, or all.
pub async fn memberships(
    svc: &Services,
    actor: &Actor,
    territory_id: Option<i64>,
    user_id: Option<i64>,
) -> AppResult<Vec<membership::Model>> {
    svc.authz
        .require(actor, Resource::Territory, Action::Read)
        .await?;
    let mut q = membership::Entity::find().order_by_asc(membership::Column::Id);
    if let Some(t) = territory_id {
        q = q.filter(membership::Column::TerritoryId.eq(t));
    }
    if let Some(u) = user_id {
        q = q.filter(membership::Column::UserId.eq(u));
    }
    Ok(q.all(&svc.db).await?)
}

pub async fn get_membership(
    svc: &Services,
    actor: &Actor,
    id: i64,
) -> AppResult<membership::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Read)
        .await?;
    membership::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("territory membership"))
}

// ---------------------------------------------------------------------------------
// Assignment rules.

#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub name: String,
    pub position: i32,
    pub territory_id: i64,
    pub country: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub size: Option<AccountSize>,
    pub min_revenue: Option<Decimal>,
    pub max_revenue: Option<Decimal>,
    pub active: bool,
}

pub(crate) async fn save_rule_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    id: Option<(i64, Option<i32>)>,
    input: RuleInput,
) -> AppResult<rule::Model> {
    find(txn, input.territory_id)
        .await
        .map_err(|_| AppError::validation("territoryId", "no such territory"))?;
    if !scope.manages(input.territory_id) {
        return Err(AppError::Forbidden(
            "rules may target only territories you manage".into(),
        ));
    }
    let min = input
        .min_revenue
        .map(|v| money_micros("minRevenue", v))
        .transpose()?;
    let max = input
        .max_revenue
        .map(|v| money_micros("maxRevenue", v))
        .transpose()?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(AppError::validation(
            "maxRevenue",
            "must not be below minRevenue",
        ));
    }
    if input.position < 0 {
        return Err(AppError::validation("position", "must not be negative"));
    }
    let now = Utc::now();
    let mut active = rule::ActiveModel {
        id: NotSet,
        name: Set(required_text("name", &input.name, NAME_MAX)?),
        position: Set(input.position),
        territory_id: Set(input.territory_id),
        country: Set(country("country", input.country.as_deref())?),
        region: Set(optional_text("region", input.region.as_deref(), SHORT_MAX)?),
        industry: Set(optional_text(
            "industry",
            input.industry.as_deref(),
            SHORT_MAX,
        )?),
        size: Set(input.size),
        min_revenue_micros: Set(min),
        max_revenue_micros: Set(max),
        active: Set(input.active),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    };
    let saved = match id {
        None => {
            let created = active.insert(txn).await?;
            audit::record(
                txn,
                Some(actor),
                "create",
                "AssignmentRule",
                created.id,
                None,
                Some(&created),
            )
            .await?;
            created
        }
        Some((id, version)) => {
            let before = rule::Entity::find_by_id(id)
                .one(txn)
                .await?
                .ok_or(AppError::NotFound("assignment rule"))?;
            if !scope.manages(before.territory_id) {
                return Err(AppError::Forbidden(
                    "rules may target only territories you manage".into(),
                ));
            }
            if let Some(v) = version
                && v != before.version
            {
                return Err(AppError::stale_version("assignment rule"));
            }
            active.id = Set(id);
            active.created_at = Set(before.created_at);
            active.version = Set(before.version + 1);
            let after = update_if_version::<rule::Entity, _>(
                txn,
                active,
                (rule::Column::Id, rule::Column::Version),
                id,
                before.version,
                "assignment rule",
            )
            .await?;
            audit::record(
                txn,
                Some(actor),
                "update",
                "AssignmentRule",
                id,
                Some(&before),
                Some(&after),
            )
            .await?;
            after
        }
    };
    Ok(saved)
}

pub async fn create_rule(
    svc: &Services,
    actor: &Actor,
    input: RuleInput,
) -> AppResult<rule::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let saved = save_rule_in(&txn, actor, &scope, None, input).await?;
    txn.commit().await?;
    Ok(saved)
}

pub async fn update_rule(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    input: RuleInput,
) -> AppResult<rule::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let saved = save_rule_in(&txn, actor, &scope, Some((id, Some(version))), input).await?;
    txn.commit().await?;
    Ok(saved)
}

pub(crate) async fn delete_rule_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    id: i64,
) -> AppResult<rule::Model> {
    let before = rule::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("assignment rule"))?;
    if !scope.manages(before.territory_id) {
        return Err(AppError::Forbidden(
            "rules may target only territories you manage".into(),
        ));
    }
    rule::Entity::delete_by_id(id).exec(txn).await?;
    audit::record(
        txn,
        Some(actor),
        "delete",
        "AssignmentRule",
        id,
        Some(&before),
        None,
    )
    .await?;
    Ok(before)
}

pub async fn delete_rule(svc: &Services, actor: &Actor, id: i64) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    delete_rule_in(&txn, actor, &scope, id).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn rules(svc: &Services, actor: &Actor) -> AppResult<Vec<rule::Model>> {
    svc.authz
        .require(actor, Resource::Territory, Action::Read)
        .await?;
    ordered_rules(&svc.db).await
}

pub async fn get_rule(svc: &Services, actor: &Actor, id: i64) -> AppResult<rule::Model> {
    svc.authz
        .require(actor, Resource::Territory, Action::Read)
        .await?;
    rule::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("assignment rule"))
}

/// One account the rules moved (or would move).
#[derive(Debug, Clone)]
pub struct AccountMove {
    pub account_id: i64,
    pub account_name: String,
    pub from: Option<i64>,
    pub to: i64,
}

/// Re-runs the rules over every account without a manual assignment. An account no
/// rule matches stays where it is.
pub(crate) async fn run_rules_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    apply: bool,
) -> AppResult<(u64, Vec<AccountMove>)> {
    let rules = ordered_rules(txn).await?;
    let accounts = account::Entity::find()
        .filter(account::Column::TerritoryManual.eq(false))
        .order_by_asc(account::Column::Id)
        .all(txn)
        .await?;
    let examined = accounts.len() as u64;
    let mut moves = Vec::new();
    for a in accounts {
        let subject = RuleSubject::of(&a);
        let Some(target) = rules
            .iter()
            .find(|r| rule_matches(r, &subject))
            .map(|r| r.territory_id)
        else {
            continue;
        };
        if a.territory_id == Some(target) {
            continue;
        }
        moves.push(AccountMove {
            account_id: a.id,
            account_name: a.name.clone(),
            from: a.territory_id,
            to: target,
        });
        if apply {
            let mut active: account::ActiveModel = a.clone().into();
            active.territory_id = Set(Some(target));
            active.version = Set(a.version + 1);
            active.updated_at = Set(Utc::now());
            let after = active.update(txn).await?;
            propagate(txn, a.id, Some(target)).await?;
            audit::record(
                txn,
                Some(actor),
                "assign_territory",
                "Account",
                a.id,
                Some(&a),
                Some(&after),
            )
            .await?;
        }
    }
    Ok((examined, moves))
}

/// Admins only: the rules may move accounts across every part of the hierarchy.
pub async fn run_rules(
    svc: &Services,
    actor: &Actor,
    dry_run: bool,
) -> AppResult<(u64, Vec<AccountMove>)> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    if actor.role != Role::Admin {
        return Err(AppError::Forbidden(
            "only admins re-run the assignment rules over all accounts".into(),
        ));
    }
    let txn = begin_write(&svc.db).await?;
    let result = run_rules_in(&txn, actor, !dry_run).await?;
    if !dry_run {
        txn.commit().await?;
    }
    Ok(result)
}
