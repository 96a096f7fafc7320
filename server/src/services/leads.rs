//! Leads: unqualified interest, converted into account + contact (+ opportunity) at once.

use accord_entities::lead::{self, Grade, LeadSource, LeadStatus};
use accord_entities::{account, contact, opportunity};
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, QueryFilter, Set};

use crate::auth::Actor;
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::accounts::{self, NewAccount, require_user};
use crate::services::contacts::{self, NewContact, phone};
use crate::services::opportunities::{self, NewOpportunity};
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate, text_search};
use crate::services::validate::{NAME_MAX, SHORT_MAX, email, optional_text, required_text};
use crate::services::{Patch, Services, audit, territories, update_if_version};

#[derive(Debug, Clone)]
pub struct NewLead {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub source: LeadSource,
    pub grade: Option<Grade>,
    pub owner_id: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct LeadChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub title: Patch<String>,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub source: Option<LeadSource>,
    pub status: Option<LeadStatus>,
    pub grade: Patch<Grade>,
    pub owner_id: Patch<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct LeadFilter {
    pub search: Option<String>,
    pub status: Option<LeadStatus>,
    pub grade: Option<Grade>,
    pub source: Option<LeadSource>,
    pub owner_id: Option<i64>,
}

/// The deal a conversion opens, if any.
#[derive(Debug, Clone)]
pub struct ConversionOpportunity {
    pub name: String,
    pub pipeline_id: i64,
    pub amount: Decimal,
    pub currency: String,
    pub expected_close_date: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct Conversion {
    pub lead_id: i64,
    pub version: i32,
    /// Attach to an existing account instead of creating one from the lead's company.
    pub existing_account_id: Option<i64>,
    /// Territory of the new account; without it the assignment rules place it.
    pub territory_id: Option<i64>,
    pub opportunity: Option<ConversionOpportunity>,
}

pub struct Converted {
    pub lead: lead::Model,
    pub account: account::Model,
    pub contact: contact::Model,
    pub opportunity: Option<opportunity::Model>,
}

pub async fn create(svc: &Services, actor: &Actor, input: NewLead) -> AppResult<lead::Model> {
    svc.authz
        .require(actor, Resource::Lead, Action::Write)
        .await?;
    let now = Utc::now();
    let model = lead::ActiveModel {
        id: NotSet,
        first_name: Set(required_text("firstName", &input.first_name, SHORT_MAX)?),
        last_name: Set(required_text("lastName", &input.last_name, SHORT_MAX)?),
        company: Set(required_text("company", &input.company, NAME_MAX)?),
        title: Set(optional_text("title", input.title.as_deref(), NAME_MAX)?),
        email: Set(email("email", input.email.as_deref())?),
        phone: Set(phone("phone", input.phone.as_deref())?),
        source: Set(input.source),
        status: Set(LeadStatus::New),
        grade: Set(input.grade),
        owner_id: Set(input.owner_id.or(Some(actor.user_id))),
        converted_account_id: Set(None),
        converted_contact_id: Set(None),
        converted_opportunity_id: Set(None),
        converted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    };
    let txn = begin_write(&svc.db).await?;
    if let Some(owner) = input.owner_id {
        require_user(&txn, "ownerId", owner).await?;
    }
    let created = model.insert(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Lead",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    changes: LeadChanges,
) -> AppResult<lead::Model> {
    svc.authz
        .require(actor, Resource::Lead, Action::Write)
        .await?;
    let txn = begin_write(&svc.db).await?;
    let before = lead::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("lead"))?;
    if before.version != version {
        return Err(AppError::stale_version("lead"));
    }
    if before.status == LeadStatus::Converted {
        return Err(AppError::Conflict(
            "a converted lead is read-only; edit its account and contact".into(),
        ));
    }
    let mut active: lead::ActiveModel = before.clone().into();
    if let Some(v) = changes.first_name {
        active.first_name = Set(required_text("firstName", &v, SHORT_MAX)?);
    }
    if let Some(v) = changes.last_name {
        active.last_name = Set(required_text("lastName", &v, SHORT_MAX)?);
    }
    if let Some(v) = changes.company {
        active.company = Set(required_text("company", &v, NAME_MAX)?);
    }
    if let Some(v) = changes.title {
        active.title = Set(optional_text("title", v.as_deref(), NAME_MAX)?);
    }
    if let Some(v) = changes.email {
        active.email = Set(email("email", v.as_deref())?);
    }
    if let Some(v) = changes.phone {
        active.phone = Set(phone("phone", v.as_deref())?);
    }
    if let Some(v) = changes.source {
        active.source = Set(v);
    }
    if let Some(v) = changes.status {
        if v == LeadStatus::Converted {
            return Err(AppError::validation(
                "status",
                "use convertLead to convert a lead",
            ));
        }
        active.status = Set(v);
    }
    if let Some(v) = changes.grade {
        active.grade = Set(v);
    }
    if let Some(v) = changes.owner_id {
        if let Some(owner) = v {
            require_user(&txn, "ownerId", owner).await?;
        }
        active.owner_id = Set(v);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let after = update_if_version::<lead::Entity, _>(
        &txn,
        active,
        (lead::Column::Id, lead::Column::Version),
        id,
        version,
        "lead",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Lead",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Converts a lead in one transaction: account (new or existing), contact, optional
/// opportunity, and the lead marked converted. Any failure on the way (including one
/// after rows were inserted) rolls the whole conversion back.
pub async fn convert(svc: &Services, actor: &Actor, input: Conversion) -> AppResult<Converted> {
    svc.authz
        .require(actor, Resource::Lead, Action::Write)
        .await?;
    svc.authz
        .require(actor, Resource::Account, Action::Write)
        .await?;
    svc.authz
        .require(actor, Resource::Contact, Action::Write)
        .await?;
    if input.opportunity.is_some() {
        svc.authz
            .require(actor, Resource::Opportunity, Action::Write)
            .await?;
    }
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = lead::Entity::find_by_id(input.lead_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("lead"))?;
    if before.version != input.version {
        return Err(AppError::stale_version("lead"));
    }
    if before.status == LeadStatus::Converted {
        return Err(AppError::Conflict(
            "this lead has already been converted".into(),
        ));
    }

    let account = match input.existing_account_id {
        Some(id) => {
            territories::account_for_child(&txn, &scope, id, "existingAccountId").await?;
            account::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| AppError::validation("existingAccountId", "no such account"))?
        }
        None => {
            let new_account = NewAccount {
                name: before.company.clone(),
                owner_id: before.owner_id,
                territory_id: input.territory_id,
                ..Default::default()
            };
            let created = accounts::insert(&txn, &scope, new_account).await?;
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
            created
        }
    };

    let contact = contacts::insert(
        &txn,
        &scope,
        NewContact {
            account_id: account.id,
            first_name: before.first_name.clone(),
            last_name: before.last_name.clone(),
            title: before.title.clone(),
            email: before.email.clone(),
            phone: before.phone.clone(),
            ..Default::default()
        },
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "Contact",
        contact.id,
        None,
        Some(&contact),
    )
    .await?;

    let opportunity = match input.opportunity {
        Some(o) => Some(
            opportunities::insert(
                svc,
                &txn,
                actor,
                &scope,
                NewOpportunity {
                    name: o.name,
                    account_id: account.id,
                    owner_id: before.owner_id,
                    pipeline_id: o.pipeline_id,
                    stage_id: None,
                    amount: o.amount,
                    currency: o.currency,
                    expected_close_date: o.expected_close_date,
                    source: Some(before.source),
                    grade: before.grade,
                },
            )
            .await
            .map_err(|e| nest_field(e, "opportunity"))?,
        ),
        None => None,
    };

    let mut active: lead::ActiveModel = before.clone().into();
    let now = Utc::now();
    active.status = Set(LeadStatus::Converted);
    active.converted_account_id = Set(Some(account.id));
    active.converted_contact_id = Set(Some(contact.id));
    active.converted_opportunity_id = Set(opportunity.as_ref().map(|o| o.id));
    active.converted_at = Set(Some(now));
    active.updated_at = Set(now);
    active.version = Set(input.version + 1);
    let after = update_if_version::<lead::Entity, _>(
        &txn,
        active,
        (lead::Column::Id, lead::Column::Version),
        input.lead_id,
        input.version,
        "lead",
    )
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "convert",
        "Lead",
        after.id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    if opportunity.is_some() {
        // Its entry stage's script may have scheduled reminders.
        crate::services::reminders::announce(svc, None).await;
    }
    Ok(Converted {
        lead: after,
        account,
        contact,
        opportunity,
    })
}

/// Prefixes a validation error's field with the input object it came from.
fn nest_field(err: AppError, parent: &str) -> AppError {
    match err {
        AppError::Validation { field, message } => AppError::Validation {
            field: format!("{parent}.{field}"),
            message,
        },
        other => other,
    }
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<lead::Model> {
    svc.authz
        .require(actor, Resource::Lead, Action::Read)
        .await?;
    lead::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("lead"))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeadSort {
    #[default]
    CreatedAt,
    LastName,
    Company,
}

pub fn sort_order(sort: LeadSort, descending: bool) -> SortOrder<lead::Entity> {
    match sort {
        LeadSort::CreatedAt => SortOrder {
            column: lead::Column::CreatedAt,
            descending,
            key: |m| SortKey::Time(m.created_at),
        },
        LeadSort::LastName => SortOrder {
            column: lead::Column::LastName,
            descending,
            key: |m| SortKey::Text(m.last_name.clone()),
        },
        LeadSort::Company => SortOrder {
            column: lead::Column::Company,
            descending,
            key: |m| SortKey::Text(m.company.clone()),
        },
    }
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    filter: LeadFilter,
    order: SortOrder<lead::Entity>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<lead::Model>> {
    use lead::Column as C;
    svc.authz
        .require(actor, Resource::Lead, Action::Read)
        .await?;
    let mut query = lead::Entity::find();
    if let Some(search) = optional_text("filter.search", filter.search.as_deref(), NAME_MAX)? {
        query = query.filter(text_search(
            &[C::FirstName, C::LastName, C::Company, C::Email],
            &search,
        ));
    }
    if let Some(v) = filter.status {
        query = query.filter(C::Status.eq(v));
    }
    if let Some(v) = filter.grade {
        query = query.filter(C::Grade.eq(v));
    }
    if let Some(v) = filter.source {
        query = query.filter(C::Source.eq(v));
    }
    if let Some(v) = filter.owner_id {
        query = query.filter(C::OwnerId.eq(v));
    }
    paginate(&svc.db, query, C::Id, &order, args, want_total).await
}
