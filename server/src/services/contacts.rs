//! Contacts: the people at an account, with their reports-to chain.

use accord_entities::{contact, note, opportunity_contact_role};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, Set,
};

use crate::auth::Actor;
use crate::authz::Scope;
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate, text_search};
use crate::services::validate::{NAME_MAX, SHORT_MAX, email, optional_text, required_text};
use crate::services::{Patch, Services, audit, gate_territory, territories, update_if_version};
use accord_entities::territory_membership::AccessLevel;
use sea_orm::QueryTrait;

/// A contact the caller can see, for references such as reports-to; others read as
/// missing.
pub(crate) async fn visible_contact<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    id: i64,
    field: &str,
) -> AppResult<contact::Model> {
    match contact::Entity::find_by_id(id).one(db).await? {
        Some(c) if scope.allows(c.territory_id, AccessLevel::Read) => Ok(c),
        _ => Err(AppError::validation(field, "no such contact")),
    }
}

#[derive(Debug, Default, Clone)]
pub struct NewContact {
    pub account_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub reports_to_id: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct ContactChanges {
    pub account_id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Patch<String>,
    pub department: Patch<String>,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub reports_to_id: Patch<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContactSort {
    #[default]
    LastName,
    CreatedAt,
}

#[derive(Debug, Default, Clone)]
pub struct ContactFilter {
    pub account_id: Option<i64>,
    pub reports_to_id: Option<i64>,
    pub search: Option<String>,
}

const PHONE_MAX: usize = 50;

/// The longest reports-to chain we walk; deeper org charts are refused as malformed.
const MAX_CHAIN: usize = 256;

/// Refuses a manager that would put `contact_id` into its own reports-to chain.
async fn check_manager<C: ConnectionTrait>(
    db: &C,
    contact_id: Option<i64>,
    manager_id: i64,
) -> AppResult<()> {
    // Two concurrent reporting changes could each pass the check and close a cycle together.
    crate::db::serialize_on(db, "contact-hierarchy", 0).await?;
    let mut cursor = Some(manager_id);
    for _ in 0..MAX_CHAIN {
        let Some(current) = cursor else { return Ok(()) };
        if Some(current) == contact_id {
            return Err(AppError::validation(
                "reportsToId",
                "this would make the contact report to themselves through the chain",
            ));
        }
        let Some(manager) = contact::Entity::find_by_id(current).one(db).await? else {
            return Err(AppError::validation("reportsToId", "no such contact"));
        };
        cursor = manager.reports_to_id;
    }
    Err(AppError::validation(
        "reportsToId",
        format!("reports-to chain is longer than {MAX_CHAIN}"),
    ))
}

/// A manager works at the contact's account or elsewhere in its hierarchy (a parent, a
/// subsidiary, a sister company), never at an unrelated company.
async fn check_same_company<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    manager: &contact::Model,
) -> AppResult<()> {
    if crate::services::org_chart::same_account_family(db, account_id, manager.account_id).await? {
        Ok(())
    } else {
        Err(AppError::validation(
            "reportsToId",
            "the manager must work in the same group of companies (this account, its parent \
             or subsidiaries, or theirs)",
        ))
    }
}

pub(crate) fn phone(field: &str, value: Option<&str>) -> AppResult<Option<String>> {
    let phone = optional_text(field, value, PHONE_MAX)?;
    if let Some(p) = &phone
        && !p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().x/".contains(c))
    {
        return Err(AppError::validation(
            field,
            "may contain only digits, spaces and + - ( ) . x /",
        ));
    }
    Ok(phone)
}

pub async fn create(svc: &Services, actor: &Actor, input: NewContact) -> AppResult<contact::Model> {
    svc.authz
        .require(actor, Resource::Contact, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let created = insert(&txn, &scope, input).await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Contact",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Validates and inserts a contact inside the caller's transaction (also used by lead
/// conversion). Writes no audit entry; the caller does.
pub(crate) async fn insert<C: ConnectionTrait>(
    txn: &C,
    scope: &Scope,
    input: NewContact,
) -> AppResult<contact::Model> {
    let now = Utc::now();
    let model = contact::ActiveModel {
        id: NotSet,
        account_id: Set(input.account_id),
        first_name: Set(required_text("firstName", &input.first_name, SHORT_MAX)?),
        last_name: Set(required_text("lastName", &input.last_name, SHORT_MAX)?),
        title: Set(optional_text("title", input.title.as_deref(), NAME_MAX)?),
        department: Set(optional_text(
            "department",
            input.department.as_deref(),
            NAME_MAX,
        )?),
        email: Set(email("email", input.email.as_deref())?),
        phone: Set(phone("phone", input.phone.as_deref())?),
        reports_to_id: Set(input.reports_to_id),
        territory_id: NotSet,
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    };
    let territory =
        territories::account_for_child(txn, scope, input.account_id, "accountId").await?;
    let mut model = model;
    model.territory_id = Set(territory);
    if let Some(manager) = input.reports_to_id {
        let manager = visible_contact(txn, scope, manager, "reportsToId").await?;
        check_same_company(txn, input.account_id, &manager).await?;
        check_manager(txn, None, manager.id).await?;
    }
    Ok(model.insert(txn).await?)
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    changes: ContactChanges,
) -> AppResult<contact::Model> {
    svc.authz
        .require(actor, Resource::Contact, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = contact::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("contact"))?;
    gate_territory(&scope, before.territory_id, AccessLevel::Edit, "contact")?;
    if before.version != version {
        return Err(AppError::stale_version("contact"));
    }
    let mut active: contact::ActiveModel = before.clone().into();
    if let Some(account_id) = changes.account_id {
        let territory =
            territories::account_for_child(&txn, &scope, account_id, "accountId").await?;
        active.account_id = Set(account_id);
        active.territory_id = Set(territory);
    }
    if let Some(v) = changes.first_name {
        active.first_name = Set(required_text("firstName", &v, SHORT_MAX)?);
    }
    if let Some(v) = changes.last_name {
        active.last_name = Set(required_text("lastName", &v, SHORT_MAX)?);
    }
    if let Some(v) = changes.title {
        active.title = Set(optional_text("title", v.as_deref(), NAME_MAX)?);
    }
    if let Some(v) = changes.department {
        active.department = Set(optional_text("department", v.as_deref(), NAME_MAX)?);
    }
    if let Some(v) = changes.email {
        active.email = Set(email("email", v.as_deref())?);
    }
    if let Some(v) = changes.phone {
        active.phone = Set(phone("phone", v.as_deref())?);
    }
    let account_id = changes.account_id.unwrap_or(before.account_id);
    match changes.reports_to_id {
        Some(Some(manager)) => {
            let manager = visible_contact(&txn, &scope, manager, "reportsToId").await?;
            check_same_company(&txn, account_id, &manager).await?;
            check_manager(&txn, Some(id), manager.id).await?;
            active.reports_to_id = Set(Some(manager.id));
        }
        Some(None) => active.reports_to_id = Set(None),
        None => {
            // Moving to another company ends a reporting line that would cross over (the
            // contact changed employer; their old manager stays behind).
            if account_id != before.account_id
                && let Some(manager) = before.reports_to_id
                && let Some(manager) = contact::Entity::find_by_id(manager).one(&txn).await?
                && !crate::services::org_chart::same_account_family(
                    &txn,
                    account_id,
                    manager.account_id,
                )
                .await?
            {
                active.reports_to_id = Set(None);
            }
        }
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let after = update_if_version::<contact::Entity, _>(
        &txn,
        active,
        (contact::Column::Id, contact::Column::Version),
        id,
        version,
        "contact",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Contact",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Deletes a contact; their direct reports keep their place without a manager, and their
/// roles on opportunities go with them.
pub async fn delete(svc: &Services, actor: &Actor, id: i64, version: i32) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::Contact, Action::Delete)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = contact::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("contact"))?;
    gate_territory(&scope, before.territory_id, AccessLevel::Owner, "contact")?;
    if before.version != version {
        return Err(AppError::stale_version("contact"));
    }
    // Direct reports lose their manager: a visible, versioned, audited change of theirs.
    let reports = contact::Entity::find()
        .filter(contact::Column::ReportsToId.eq(id))
        .all(&txn)
        .await?;
    for report in reports {
        let mut active: contact::ActiveModel = report.clone().into();
        active.reports_to_id = Set(None);
        active.version = Set(report.version + 1);
        active.updated_at = Set(Utc::now());
        let after = active.update(&txn).await?;
        audit::record(
            &txn,
            Some(actor),
            "update",
            "Contact",
            report.id,
            Some(&report),
            Some(&after),
        )
        .await?;
    }
    let roles = opportunity_contact_role::Entity::find()
        .filter(opportunity_contact_role::Column::ContactId.eq(id))
        .all(&txn)
        .await?;
    let notes = note::Entity::find()
        .filter(note::Column::ContactId.eq(id))
        .all(&txn)
        .await?;
    contact::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "delete",
        "Contact",
        id,
        Some(&before),
        None,
    )
    .await?;
    audit::record_cascaded_deletes(&txn, actor, "OpportunityContactRole", &roles, |r| r.id).await?;
    audit::record_cascaded_deletes(&txn, actor, "Note", &notes, |n| n.id).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<contact::Model> {
    svc.authz
        .require(actor, Resource::Contact, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    contact::Entity::find_by_id(id)
        .apply_if(scope.contacts(AccessLevel::Read), QueryFilter::filter)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("contact"))
}

pub fn sort_order(sort: ContactSort, descending: bool) -> SortOrder<contact::Entity> {
    match sort {
        ContactSort::LastName => SortOrder {
            column: contact::Column::LastName,
            descending,
            key: |m| SortKey::Text(m.last_name.clone()),
        },
        ContactSort::CreatedAt => SortOrder {
            column: contact::Column::CreatedAt,
            descending,
            key: |m| SortKey::Time(m.created_at),
        },
    }
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    filter: ContactFilter,
    order: SortOrder<contact::Entity>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<contact::Model>> {
    svc.authz
        .require(actor, Resource::Contact, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let mut query =
        contact::Entity::find().apply_if(scope.contacts(AccessLevel::Read), QueryFilter::filter);
    if let Some(v) = filter.account_id {
        query = query.filter(contact::Column::AccountId.eq(v));
    }
    if let Some(v) = filter.reports_to_id {
        query = query.filter(contact::Column::ReportsToId.eq(v));
    }
    if let Some(search) = optional_text("filter.search", filter.search.as_deref(), NAME_MAX)? {
        query = query.filter(text_search(
            &[
                contact::Column::FirstName,
                contact::Column::LastName,
                contact::Column::Email,
            ],
            &search,
        ));
    }
    paginate(
        &svc.db,
        query,
        contact::Column::Id,
        &order,
        args,
        want_total,
    )
    .await
}
