//! Accounts: the companies we sell to, with their parent/child hierarchy.

use accord_entities::account::{self, AccountSize};
use accord_entities::{contact, note, opportunity, territory, user};
use chrono::Utc;
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, PaginatorTrait,
    QueryFilter, Set,
};

use crate::auth::Actor;
use crate::authz::Scope;
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate, text_search};
use crate::services::validate::{
    NAME_MAX, SHORT_MAX, country, currency, money_micros, optional_text, required_text,
};
use crate::services::{Patch, Services, audit, gate_territory, territories, update_if_version};
use accord_entities::territory_membership::AccessLevel;
use sea_orm::QueryTrait;

#[derive(Debug, Default, Clone)]
pub struct NewAccount {
    pub name: String,
    pub industry: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub size: Option<AccountSize>,
    pub annual_revenue: Option<Decimal>,
    pub currency: Option<String>,
    pub website: Option<String>,
    pub parent_id: Option<i64>,
    pub territory_id: Option<i64>,
    pub owner_id: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub industry: Patch<String>,
    pub country: Patch<String>,
    pub region: Patch<String>,
    pub size: Patch<AccountSize>,
    pub annual_revenue: Patch<Decimal>,
    pub currency: Option<String>,
    pub website: Patch<String>,
    pub parent_id: Patch<i64>,
    pub territory_id: Patch<i64>,
    pub owner_id: Patch<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccountSort {
    #[default]
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Default, Clone)]
pub struct AccountFilter {
    pub search: Option<String>,
    pub industry: Option<String>,
    pub country: Option<String>,
    pub size: Option<AccountSize>,
    pub parent_id: Option<i64>,
    pub territory_id: Option<i64>,
    pub owner_id: Option<i64>,
}

pub const DEFAULT_CURRENCY: &str = "USD";

pub(crate) async fn require_user<C: ConnectionTrait>(
    db: &C,
    field: &str,
    id: i64,
) -> AppResult<()> {
    match user::Entity::find_by_id(id).one(db).await? {
        Some(u) if u.active => Ok(()),
        _ => Err(AppError::validation(field, "no such active user")),
    }
}

/// Refuses a parent that is the account itself or one of its descendants.
async fn check_parent<C: ConnectionTrait>(
    db: &C,
    account_id: Option<i64>,
    parent_id: i64,
) -> AppResult<()> {
    // Two concurrent re-parentings could each pass the check and close a cycle together.
    crate::db::serialize_on(db, "account-hierarchy", 0).await?;
    let mut cursor = Some(parent_id);
    let mut hops = 0;
    while let Some(current) = cursor {
        if Some(current) == account_id {
            return Err(AppError::validation(
                "parentId",
                "an account cannot be its own ancestor",
            ));
        }
        let Some(parent) = account::Entity::find_by_id(current).one(db).await? else {
            return Err(AppError::validation("parentId", "no such account"));
        };
        cursor = parent.parent_id;
        hops += 1;
        if hops > 64 {
            return Err(AppError::validation(
                "parentId",
                "account hierarchy is deeper than 64 levels",
            ));
        }
    }
    Ok(())
}

async fn check_territory<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<()> {
    if territory::Entity::find_by_id(id).one(db).await?.is_none() {
        return Err(AppError::validation("territoryId", "no such territory"));
    }
    Ok(())
}

pub async fn create(svc: &Services, actor: &Actor, input: NewAccount) -> AppResult<account::Model> {
    svc.authz
        .require(actor, Resource::Account, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let created = insert(&txn, &scope, input).await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Account",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Validates and inserts an account inside the caller's transaction (also used by lead
/// conversion). Writes no audit entry; the caller does.
pub(crate) async fn insert<C: ConnectionTrait>(
    txn: &C,
    scope: &Scope,
    input: NewAccount,
) -> AppResult<account::Model> {
    let now = Utc::now();
    let model = account::ActiveModel {
        id: NotSet,
        name: Set(required_text("name", &input.name, NAME_MAX)?),
        industry: Set(optional_text(
            "industry",
            input.industry.as_deref(),
            SHORT_MAX,
        )?),
        country: Set(country("country", input.country.as_deref())?),
        region: Set(optional_text("region", input.region.as_deref(), SHORT_MAX)?),
        size: Set(input.size),
        annual_revenue_micros: Set(input
            .annual_revenue
            .map(|r| money_micros("annualRevenue", r))
            .transpose()?),
        currency: Set(currency(
            "currency",
            input.currency.as_deref().unwrap_or(DEFAULT_CURRENCY),
        )?),
        website: Set(optional_text("website", input.website.as_deref(), 500)?),
        parent_id: Set(input.parent_id),
        territory_id: Set(input.territory_id),
        territory_manual: Set(input.territory_id.is_some()),
        owner_id: Set(input.owner_id),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    };
    if let Some(parent) = input.parent_id {
        check_parent(txn, None, parent).await?;
    }
    if let Some(t) = input.territory_id {
        check_territory(txn, t).await?;
    }
    if let Some(owner) = input.owner_id {
        require_user(txn, "ownerId", owner).await?;
    }
    let mut model = model;
    if input.territory_id.is_none() {
        // No manual choice: the assignment rules place it.
        let subject = territories::RuleSubject::of_active(&model);
        model.territory_id = Set(territories::territory_by_rules(txn, &subject).await?);
    }
    let placed = match &model.territory_id {
        sea_orm::ActiveValue::Set(t) | sea_orm::ActiveValue::Unchanged(t) => *t,
        sea_orm::ActiveValue::NotSet => None,
    };
    territories::require_placement(scope, placed)?;
    Ok(model.insert(txn).await?)
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    changes: AccountChanges,
) -> AppResult<account::Model> {
    svc.authz
        .require(actor, Resource::Account, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = account::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    gate_territory(&scope, before.territory_id, AccessLevel::Edit, "account")?;
    if before.version != version {
        return Err(AppError::stale_version("account"));
    }
    let mut active: account::ActiveModel = before.clone().into();
    if let Some(name) = changes.name {
        active.name = Set(required_text("name", &name, NAME_MAX)?);
    }
    if let Some(v) = changes.industry {
        active.industry = Set(optional_text("industry", v.as_deref(), SHORT_MAX)?);
    }
    if let Some(v) = changes.country {
        active.country = Set(country("country", v.as_deref())?);
    }
    if let Some(v) = changes.region {
        active.region = Set(optional_text("region", v.as_deref(), SHORT_MAX)?);
    }
    if let Some(v) = changes.size {
        active.size = Set(v);
    }
    if let Some(v) = changes.annual_revenue {
        active.annual_revenue_micros =
            Set(v.map(|r| money_micros("annualRevenue", r)).transpose()?);
    }
    if let Some(v) = changes.currency {
        active.currency = Set(currency("currency", &v)?);
    }
    if let Some(v) = changes.website {
        active.website = Set(optional_text("website", v.as_deref(), 500)?);
    }
    if let Some(v) = changes.parent_id {
        if let Some(parent) = v {
            check_parent(&txn, Some(id), parent).await?;
        }
        active.parent_id = Set(v);
    }
    match changes.territory_id {
        // A manual assignment moves the account out of the old territory: that takes
        // owner access there, and the new territory must be one the caller can edit.
        Some(Some(t)) => {
            gate_territory(&scope, before.territory_id, AccessLevel::Owner, "account")?;
            check_territory(&txn, t).await?;
            territories::require_placement(&scope, Some(t))?;
            active.territory_id = Set(Some(t));
            active.territory_manual = Set(true);
        }
        // Clearing it hands the account back to the assignment rules.
        Some(None) => {
            gate_territory(&scope, before.territory_id, AccessLevel::Owner, "account")?;
            active.territory_manual = Set(false);
        }
        None => {}
    }
    let manual = match &active.territory_manual {
        sea_orm::ActiveValue::Set(v) | sea_orm::ActiveValue::Unchanged(v) => *v,
        sea_orm::ActiveValue::NotSet => before.territory_manual,
    };
    if !manual {
        let subject = territories::RuleSubject::of_active(&active);
        if let Some(t) = territories::territory_by_rules(&txn, &subject).await? {
            active.territory_id = Set(Some(t));
        }
    }
    if let Some(v) = changes.owner_id {
        if let Some(owner) = v {
            require_user(&txn, "ownerId", owner).await?;
        }
        active.owner_id = Set(v);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let after = update_if_version::<account::Entity, _>(
        &txn,
        active,
        (account::Column::Id, account::Column::Version),
        id,
        version,
        "account",
    )
    .await?;
    if after.territory_id != before.territory_id {
        territories::propagate(&txn, id, after.territory_id).await?;
    }
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Account",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Deletes an account that nothing depends on; otherwise says what still hangs on it.
pub async fn delete(svc: &Services, actor: &Actor, id: i64, version: i32) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Account, Action::Delete)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = account::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    gate_territory(&scope, before.territory_id, AccessLevel::Owner, "account")?;
    if before.version != version {
        return Err(AppError::stale_version("account"));
    }
    let contacts = contact::Entity::find()
        .filter(contact::Column::AccountId.eq(id))
        .count(&txn)
        .await?;
    let opportunities = opportunity::Entity::find()
        .filter(opportunity::Column::AccountId.eq(id))
        .count(&txn)
        .await?;
    let children = account::Entity::find()
        .filter(account::Column::ParentId.eq(id))
        .count(&txn)
        .await?;
    if contacts + opportunities + children > 0 {
        return Err(AppError::Conflict(format!(
            "account still has {contacts} contacts, {opportunities} opportunities and {children} child accounts; move or delete them first"
        )));
    }
    let notes = note::Entity::find()
        .filter(note::Column::AccountId.eq(id))
        .all(&txn)
        .await?;
    account::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "Account",
        id,
        Some(&before),
        None,
    )
    .await?;
    audit::record_cascaded_deletes(&txn, actor, "Note", &notes, |n| n.id).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<account::Model> {
    svc.authz
        .require(actor, Resource::Account, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    account::Entity::find_by_id(id)
        .apply_if(scope.accounts(AccessLevel::Read), QueryFilter::filter)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("account"))
}

pub fn sort_order(sort: AccountSort, descending: bool) -> SortOrder<account::Entity> {
    match sort {
        AccountSort::Name => SortOrder {
            column: account::Column::Name,
            descending,
            key: |m| SortKey::Text(m.name.clone()),
        },
        AccountSort::CreatedAt => SortOrder {
            column: account::Column::CreatedAt,
            descending,
            key: |m| SortKey::Time(m.created_at),
        },
        AccountSort::UpdatedAt => SortOrder {
            column: account::Column::UpdatedAt,
            descending,
            key: |m| SortKey::Time(m.updated_at),
        },
    }
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    filter: AccountFilter,
    order: SortOrder<account::Entity>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<account::Model>> {
    svc.authz
        .require(actor, Resource::Account, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let mut query =
        account::Entity::find().apply_if(scope.accounts(AccessLevel::Read), QueryFilter::filter);
    if let Some(search) = optional_text("filter.search", filter.search.as_deref(), NAME_MAX)? {
        query = query.filter(text_search(&[account::Column::Name], &search));
    }
    if let Some(v) = filter.industry {
        query = query.filter(account::Column::Industry.eq(v));
    }
    if let Some(v) = country("filter.country", filter.country.as_deref())? {
        query = query.filter(account::Column::Country.eq(v));
    }
    if let Some(v) = filter.size {
        query = query.filter(account::Column::Size.eq(v));
    }
    if let Some(v) = filter.parent_id {
        query = query.filter(account::Column::ParentId.eq(v));
    }
    if let Some(v) = filter.territory_id {
        query = query.filter(account::Column::TerritoryId.eq(v));
    }
    if let Some(v) = filter.owner_id {
        query = query.filter(account::Column::OwnerId.eq(v));
    }
    paginate(
        &svc.db,
        query,
        account::Column::Id,
        &order,
        args,
        want_total,
    )
    .await
}
