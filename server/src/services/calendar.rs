//! Calendar events (meetings, calls, demos) with recurrence and attendees, and the
//! calendar views over them: a user's or a team's calendar over a range with
//! recurrences expanded, free/busy, and conflicts. Events hang on an account, a contact
//! or a deal and follow its territory permissions; an event on none is personal (its
//! owner and invited users see it). Reminders before each occurrence are durable rows
//! like every other reminder, kept in step with the event here.

use std::collections::{BTreeSet, HashMap, HashSet};

use accord_entities::event::{self, EventKind, EventStatus};
use accord_entities::event_attendee::{self, Response};
use accord_entities::reminder::{self, ReminderStatus};
use accord_entities::territory_membership::{self, AccessLevel};
use accord_entities::user::Role;
use accord_entities::{account, contact, opportunity, task, user};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};

use crate::auth::Actor;
use crate::authz::{Action, Resource, Scope};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::recurrence::{self, Occurrence, RecurrenceError, Series};
use crate::services::reminders::{self, NewReminder};
use crate::services::validate::{NAME_MAX, calendar_instant, optional_text, required_text};
use crate::services::{Patch, Services, audit, gate, update_if_version};

pub const DESCRIPTION_MAX: usize = 5000;
pub const LOCATION_MAX: usize = 500;
const ATTENDEES_MAX: usize = 100;
const EXDATES_MAX: usize = 500;
/// Longest single occurrence: a two-week offsite, not a placeholder for a quarter.
const LONGEST_EVENT_DAYS: i64 = 14;
/// Four weeks: the longest lead time for an event reminder.
const REMIND_MAX_MINUTES: i32 = 40_320;
/// Widest range one calendar, free/busy or conflicts query may span.
const RANGE_MAX_DAYS: i64 = 366;
const USERS_PER_QUERY_MAX: usize = 50;
/// Event rows one query may expand; more means the range is too wide for the team.
const EVENTS_PER_QUERY_MAX: u64 = 2000;
const OCCURRENCES_PER_QUERY_MAX: usize = 10_000;
/// How far ahead reminders of recurring events exist as rows; [`top_up_reminders`]
/// extends the window as time passes.
pub const REMINDER_HORIZON_DAYS: i64 = 35;
/// The window a new or moved event is checked against its attendees' other events.
const CONFLICT_WINDOW_DAYS: i64 = 90;
const CONFLICTS_MAX: usize = 200;

/// The record an event or task hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Account(i64),
    Contact(i64),
    Opportunity(i64),
}

impl Subject {
    pub fn columns(subject: Option<Subject>) -> (Option<i64>, Option<i64>, Option<i64>) {
        match subject {
            None => (None, None, None),
            Some(Subject::Account(id)) => (Some(id), None, None),
            Some(Subject::Contact(id)) => (None, Some(id), None),
            Some(Subject::Opportunity(id)) => (None, None, Some(id)),
        }
    }

    pub fn of(account: Option<i64>, contact: Option<i64>, deal: Option<i64>) -> Option<Subject> {
        account
            .map(Subject::Account)
            .or(contact.map(Subject::Contact))
            .or(deal.map(Subject::Opportunity))
    }
}

/// Checks that the caller may attach something to `subject` (edit access to it). An
/// invisible subject reads as missing (`field` names the input).
pub(crate) async fn check_subject<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    subject: Subject,
    field: &str,
) -> AppResult<()> {
    let missing = || AppError::validation(field, "no such record");
    let (can_read, can_edit, entity) = match subject {
        Subject::Account(id) => {
            let a = account::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or_else(missing)?;
            (
                scope.allows(a.territory_id, AccessLevel::Read),
                scope.allows(a.territory_id, AccessLevel::Edit),
                "account",
            )
        }
        Subject::Contact(id) => {
            let c = contact::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or_else(missing)?;
            (
                scope.allows(c.territory_id, AccessLevel::Read),
                scope.allows(c.territory_id, AccessLevel::Edit),
                "contact",
            )
        }
        Subject::Opportunity(id) => {
            let o = opportunity::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or_else(missing)?;
            (
                scope.allows_opportunity(&o, AccessLevel::Read),
                scope.allows_opportunity(&o, AccessLevel::Edit),
                "opportunity",
            )
        }
    };
    match gate(can_read, can_edit, entity, AccessLevel::Edit) {
        Err(AppError::NotFound(_)) => Err(missing()),
        other => other,
    }
}

fn recurrence_error(e: RecurrenceError) -> AppError {
    AppError::validation(e.field, e.message)
}

/// A new event as the caller describes it.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub kind: EventKind,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub time_zone: String,
    pub rrule: Option<String>,
    pub exdates: Vec<DateTime<Utc>>,
    pub subject: Option<Subject>,
    pub attendee_user_ids: Vec<i64>,
    pub attendee_contact_ids: Vec<i64>,
    pub remind_minutes_before: Option<i32>,
}

/// Changes to an event; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    pub kind: Option<EventKind>,
    pub title: Option<String>,
    pub description: Patch<String>,
    pub location: Patch<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    pub rrule: Patch<String>,
    pub exdates: Option<Vec<DateTime<Utc>>>,
    pub attendee_user_ids: Option<Vec<i64>>,
    pub attendee_contact_ids: Option<Vec<i64>>,
    pub remind_minutes_before: Patch<i32>,
}

/// An event's fields after validation, ready to store.
struct Checked {
    kind: EventKind,
    title: String,
    description: Option<String>,
    location: Option<String>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    time_zone: String,
    rrule: Option<String>,
    exdates: Vec<DateTime<Utc>>,
    series_ends_at: Option<DateTime<Utc>>,
    remind_minutes_before: Option<i32>,
}

impl Checked {
    fn new(input: &EventInput) -> AppResult<Checked> {
        let title = required_text("title", &input.title, NAME_MAX)?;
        let description =
            optional_text("description", input.description.as_deref(), DESCRIPTION_MAX)?;
        let location = optional_text("location", input.location.as_deref(), LOCATION_MAX)?;
        let tz = recurrence::parse_time_zone(&input.time_zone).map_err(recurrence_error)?;
        let rrule = match input.rrule.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(recurrence::normalize_rule(r).map_err(recurrence_error)?),
        };
        if input.ends_at <= input.starts_at {
            return Err(AppError::validation(
                "endsAt",
                "an event must end after it starts",
            ));
        }
        if input.ends_at - input.starts_at > Duration::days(LONGEST_EVENT_DAYS) {
            return Err(AppError::validation(
                "endsAt",
                format!("an occurrence may last at most {LONGEST_EVENT_DAYS} days"),
            ));
        }
        calendar_instant("startsAt", input.starts_at)?;
        if input.exdates.len() > EXDATES_MAX {
            return Err(AppError::validation(
                "exdates",
                format!("at most {EXDATES_MAX} exdates"),
            ));
        }
        let mut exdates = input.exdates.clone();
        exdates.sort_unstable();
        exdates.dedup();
        if let Some(m) = input.remind_minutes_before
            && !(0..=REMIND_MAX_MINUTES).contains(&m)
        {
            return Err(AppError::validation(
                "remindMinutesBefore",
                format!("must be between 0 and {REMIND_MAX_MINUTES} (four weeks)"),
            ));
        }
        let series_ends_at = Series {
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            time_zone: tz,
            rrule: rrule.as_deref(),
            exdates: &exdates,
        }
        .validate()
        .map_err(recurrence_error)?;
        Ok(Checked {
            kind: input.kind,
            title,
            description,
            location,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            time_zone: tz.name().to_owned(),
            rrule,
            exdates,
            series_ends_at,
            remind_minutes_before: input.remind_minutes_before,
        })
    }
}

impl Checked {
    /// `before` with these fields, its version bumped: the row an edit writes.
    fn onto(self, before: &event::Model, now: DateTime<Utc>) -> event::ActiveModel {
        event::ActiveModel {
            kind: Set(self.kind),
            title: Set(self.title),
            description: Set(self.description),
            location: Set(self.location),
            starts_at: Set(self.starts_at),
            ends_at: Set(self.ends_at),
            time_zone: Set(self.time_zone),
            rrule: Set(self.rrule),
            exdates: Set(exdates_json(&self.exdates)),
            series_ends_at: Set(self.series_ends_at),
            version: Set(before.version + 1),
            updated_at: Set(now),
            ..event::ActiveModel::from(before.clone())
        }
    }
}

fn exdates_json(exdates: &[DateTime<Utc>]) -> String {
    serde_json::to_string(&exdates.iter().map(|d| d.to_rfc3339()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".to_owned())
}

/// The exdates stored on an event (a malformed entry, impossible through the API, is
/// skipped rather than breaking the calendar).
pub fn exdates_of(e: &event::Model) -> Vec<DateTime<Utc>> {
    serde_json::from_str::<Vec<String>>(&e.exdates)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .collect()
}

/// The occurrences of a stored event overlapping `[from, to)`.
pub fn occurrences_of(
    e: &event::Model,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<Occurrence>> {
    let tz = recurrence::parse_time_zone(&e.time_zone).map_err(recurrence_error)?;
    let exdates = exdates_of(e);
    Series {
        starts_at: e.starts_at,
        ends_at: e.ends_at,
        time_zone: tz,
        rrule: e.rrule.as_deref(),
        exdates: &exdates,
    }
    .occurrences(from, to)
    .map_err(recurrence_error)
}

fn new_uid() -> String {
    format!("{:032x}@accord", rand::random::<u128>())
}

/// Active users among `ids` (deduplicated), or VALIDATION naming the first unknown one.
async fn attending_users<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<i64>> {
    let wanted: BTreeSet<i64> = ids.iter().copied().collect();
    if wanted.len() > ATTENDEES_MAX {
        return Err(AppError::validation(
            "attendeeUserIds",
            format!("at most {ATTENDEES_MAX} attendees"),
        ));
    }
    let found: HashSet<i64> = user::Entity::find()
        .filter(user::Column::Id.is_in(wanted.iter().copied()))
        .filter(user::Column::Active.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    if let Some(i) = ids.iter().position(|id| !found.contains(id)) {
        return Err(AppError::validation(
            format!("attendeeUserIds[{i}]"),
            "no such active user",
        ));
    }
    Ok(wanted.into_iter().collect())
}

/// Contacts among `ids` the caller can read, or VALIDATION naming the first other one.
async fn attending_contacts<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    ids: &[i64],
) -> AppResult<Vec<i64>> {
    let wanted: BTreeSet<i64> = ids.iter().copied().collect();
    if wanted.len() > ATTENDEES_MAX {
        return Err(AppError::validation(
            "attendeeContactIds",
            format!("at most {ATTENDEES_MAX} attendees"),
        ));
    }
    let found: HashSet<i64> = contact::Entity::find()
        .filter(contact::Column::Id.is_in(wanted.iter().copied()))
        .apply_if(scope.contacts(AccessLevel::Read), QueryFilter::filter)
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    if let Some(i) = ids.iter().position(|id| !found.contains(id)) {
        return Err(AppError::validation(
            format!("attendeeContactIds[{i}]"),
            "no such contact",
        ));
    }
    Ok(wanted.into_iter().collect())
}

/// Replaces an event's attendee list, keeping the answers of those who stay.
async fn set_attendees<C: ConnectionTrait>(
    db: &C,
    event_id: i64,
    users: &[i64],
    contacts: &[i64],
) -> AppResult<()> {
    let existing = event_attendee::Entity::find()
        .filter(event_attendee::Column::EventId.eq(event_id))
        .all(db)
        .await?;
    let stays = |a: &event_attendee::Model| match (a.user_id, a.contact_id) {
        (Some(u), _) => users.contains(&u),
        (_, Some(c)) => contacts.contains(&c),
        _ => false,
    };
    let gone: Vec<i64> = existing
        .iter()
        .filter(|a| !stays(a))
        .map(|a| a.id)
        .collect();
    if !gone.is_empty() {
        event_attendee::Entity::delete_many()
            .filter(event_attendee::Column::Id.is_in(gone))
            .exec(db)
            .await?;
    }
    let had_user: HashSet<i64> = existing.iter().filter_map(|a| a.user_id).collect();
    let had_contact: HashSet<i64> = existing.iter().filter_map(|a| a.contact_id).collect();
    let new_rows: Vec<event_attendee::ActiveModel> = users
        .iter()
        .filter(|u| !had_user.contains(u))
        .map(|&u| (Some(u), None))
        .chain(
            contacts
                .iter()
                .filter(|c| !had_contact.contains(c))
                .map(|&c| (None, Some(c))),
        )
        .map(|(user_id, contact_id)| event_attendee::ActiveModel {
            id: NotSet,
            event_id: Set(event_id),
            user_id: Set(user_id),
            contact_id: Set(contact_id),
            response: Set(Response::NeedsAction),
        })
        .collect();
    if !new_rows.is_empty() {
        event_attendee::Entity::insert_many(new_rows)
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Someone whose calendar already has something during a proposed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub user_id: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Stores an event the caller owns (`uid` given by an import, new otherwise).
pub(crate) async fn insert_event<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    scope: &Scope,
    input: &EventInput,
    uid: Option<String>,
) -> AppResult<event::Model> {
    let checked = Checked::new(input)?;
    if let Some(subject) = input.subject {
        check_subject(db, scope, subject, "subjectId").await?;
    }
    let users = attending_users(db, &input.attendee_user_ids).await?;
    let contacts = attending_contacts(db, scope, &input.attendee_contact_ids).await?;
    let (account_id, contact_id, opportunity_id) = Subject::columns(input.subject);
    let now = Utc::now();
    let created = event::ActiveModel {
        id: NotSet,
        owner_id: Set(actor.user_id),
        kind: Set(checked.kind),
        title: Set(checked.title),
        description: Set(checked.description),
        location: Set(checked.location),
        starts_at: Set(checked.starts_at),
        ends_at: Set(checked.ends_at),
        time_zone: Set(checked.time_zone),
        rrule: Set(checked.rrule),
        exdates: Set(exdates_json(&checked.exdates)),
        series_ends_at: Set(checked.series_ends_at),
        account_id: Set(account_id),
        contact_id: Set(contact_id),
        opportunity_id: Set(opportunity_id),
        status: Set(EventStatus::Confirmed),
        remind_minutes_before: Set(checked.remind_minutes_before),
        ics_uid: Set(uid.unwrap_or_else(new_uid)),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    set_attendees(db, created.id, &users, &contacts).await?;
    sync_reminders(db, &created, now).await?;
    audit::record(
        db,
        Some(actor),
        "create",
        "Event",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    Ok(created)
}

/// Stores an imported event: a new one, or the caller's event with the same UID
/// brought up to date (its answers and reminders kept where they still apply).
/// Returns whether it was new.
pub(crate) async fn upsert_imported<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    scope: &Scope,
    input: &EventInput,
    uid: &str,
    cancelled: bool,
) -> AppResult<bool> {
    let existing = event::Entity::find()
        .filter(event::Column::OwnerId.eq(actor.user_id))
        .filter(event::Column::IcsUid.eq(uid))
        .one(db)
        .await?;
    let Some(before) = existing else {
        if cancelled {
            return Ok(false);
        }
        insert_event(db, actor, scope, input, Some(uid.to_owned())).await?;
        return Ok(true);
    };
    // Attendees and reminders set in Accord stay: a file carries neither.
    let checked = Checked::new(input)?;
    let now = Utc::now();
    let mut active = checked.onto(&before, now);
    active.status = Set(if cancelled {
        EventStatus::Cancelled
    } else {
        EventStatus::Confirmed
    });
    let after = update_if_version::<event::Entity, _>(
        db,
        active,
        (event::Column::Id, event::Column::Version),
        before.id,
        before.version,
        "event",
    )
    .await?;
    sync_reminders(db, &after, now).await?;
    audit::record(
        db,
        Some(actor),
        "import",
        "Event",
        after.id,
        Some(&before),
        Some(&after),
    )
    .await?;
    Ok(false)
}

pub async fn create_event(
    svc: &Services,
    actor: &Actor,
    input: EventInput,
) -> AppResult<(event::Model, Vec<Busy>)> {
    svc.authz
        .require(actor, Resource::Event, Action::Write)
        .await?;
    // Cheap checks first, before taking the write lock.
    Checked::new(&input)?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let created = insert_event(&txn, actor, &scope, &input, None).await?;
    txn.commit().await?;
    reminders::announce(svc, None).await;
    let busy = conflicts_with(svc, &created).await?;
    Ok((created, busy))
}

/// A visible event, or NOT_FOUND.
pub async fn get_event(svc: &Services, actor: &Actor, id: i64) -> AppResult<event::Model> {
    svc.authz
        .require(actor, Resource::Event, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    visible_event(&svc.db, &scope, id).await
}

async fn visible_event<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    id: i64,
) -> AppResult<event::Model> {
    event::Entity::find_by_id(id)
        .apply_if(scope.events(), QueryFilter::filter)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("event"))
}

/// Who may change an event: its owner, an admin, or anyone who may edit the record
/// it hangs on (a teammate can move the demo when the owner is out).
async fn require_edit<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    scope: &Scope,
    e: &event::Model,
) -> AppResult<()> {
    if e.owner_id == actor.user_id || actor.role == Role::Admin {
        return Ok(());
    }
    match Subject::of(e.account_id, e.contact_id, e.opportunity_id) {
        Some(subject) => match check_subject(db, scope, subject, "id").await {
            Ok(()) => Ok(()),
            Err(_) => Err(AppError::Forbidden(
                "only the organizer, an admin or someone who may edit its record may change this event"
                    .into(),
            )),
        },
        None => Err(AppError::Forbidden(
            "only the organizer may change a personal event".into(),
        )),
    }
}

pub async fn update_event(
    svc: &Services,
    actor: &Actor,
    id: i64,
    version: i32,
    patch: EventPatch,
) -> AppResult<(event::Model, Vec<Busy>)> {
    svc.authz
        .require(actor, Resource::Event, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = visible_event(&txn, &scope, id).await?;
    require_edit(&txn, actor, &scope, &before).await?;
    if before.version != version {
        return Err(AppError::stale_version("event"));
    }
    if before.status == EventStatus::Cancelled {
        return Err(AppError::Conflict(
            "the event is cancelled; create a new one".into(),
        ));
    }
    let moved_start = patch.starts_at.is_some() || patch.time_zone.is_some();
    let merged = EventInput {
        kind: patch.kind.unwrap_or(before.kind),
        title: patch.title.unwrap_or_else(|| before.title.clone()),
        description: patch.description.unwrap_or(before.description.clone()),
        location: patch.location.unwrap_or(before.location.clone()),
        starts_at: patch.starts_at.unwrap_or(before.starts_at),
        ends_at: patch.ends_at.unwrap_or(before.ends_at),
        time_zone: patch.time_zone.unwrap_or_else(|| before.time_zone.clone()),
        rrule: patch.rrule.unwrap_or(before.rrule.clone()),
        // Moving a series' first start makes old exdates meaningless unless resent.
        exdates: match patch.exdates {
            Some(list) => list,
            None if moved_start => vec![],
            None => exdates_of(&before),
        },
        subject: None,
        attendee_user_ids: vec![],
        attendee_contact_ids: vec![],
        remind_minutes_before: patch
            .remind_minutes_before
            .unwrap_or(before.remind_minutes_before),
    };
    let checked = Checked::new(&merged)?;
    let checked_remind = checked.remind_minutes_before;
    if let Some(users) = &patch.attendee_user_ids {
        let users = attending_users(&txn, users).await?;
        let contacts = match &patch.attendee_contact_ids {
            Some(c) => attending_contacts(&txn, &scope, c).await?,
            None => current_attendees(&txn, id).await?.1,
        };
        set_attendees(&txn, id, &users, &contacts).await?;
    } else if let Some(contacts) = &patch.attendee_contact_ids {
        let contacts = attending_contacts(&txn, &scope, contacts).await?;
        let users = current_attendees(&txn, id).await?.0;
        set_attendees(&txn, id, &users, &contacts).await?;
    }
    let now = Utc::now();
    let mut active = checked.onto(&before, now);
    active.remind_minutes_before = Set(checked_remind);
    let after = update_if_version::<event::Entity, _>(
        &txn,
        active,
        (event::Column::Id, event::Column::Version),
        id,
        version,
        "event",
    )
    .await?;
    sync_reminders(&txn, &after, now).await?;
    audit::record(
        &txn,
        Some(actor),
        "update",
        "Event",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    reminders::announce(svc, None).await;
    let busy = conflicts_with(svc, &after).await?;
    Ok((after, busy))
}

async fn current_attendees<C: ConnectionTrait>(
    db: &C,
    event_id: i64,
) -> AppResult<(Vec<i64>, Vec<i64>)> {
    let rows = event_attendee::Entity::find()
        .filter(event_attendee::Column::EventId.eq(event_id))
        .all(db)
        .await?;
    Ok((
        rows.iter().filter_map(|a| a.user_id).collect(),
        rows.iter().filter_map(|a| a.contact_id).collect(),
    ))
}

/// Cancels an event: it stays (feeds show it as cancelled) and its reminders end.
pub async fn cancel_event(svc: &Services, actor: &Actor, id: i64) -> AppResult<event::Model> {
    svc.authz
        .require(actor, Resource::Event, Action::Write)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let before = visible_event(&txn, &scope, id).await?;
    require_edit(&txn, actor, &scope, &before).await?;
    if before.status == EventStatus::Cancelled {
        return Ok(before);
    }
    let now = Utc::now();
    let active = event::ActiveModel {
        status: Set(EventStatus::Cancelled),
        version: Set(before.version + 1),
        updated_at: Set(now),
        ..event::ActiveModel::from(before.clone())
    };
    let after = update_if_version::<event::Entity, _>(
        &txn,
        active,
        (event::Column::Id, event::Column::Version),
        id,
        before.version,
        "event",
    )
    .await?;
    sync_reminders(&txn, &after, now).await?;
    audit::record(
        &txn,
        Some(actor),
        "cancel",
        "Event",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// A user attendee answers an invitation; declining ends their reminders.
pub async fn respond(
    svc: &Services,
    actor: &Actor,
    event_id: i64,
    response: Response,
) -> AppResult<event::Model> {
    svc.authz
        .require(actor, Resource::Event, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    let e = visible_event(&txn, &scope, event_id).await?;
    let updated = event_attendee::Entity::update_many()
        .col_expr(event_attendee::Column::Response, Expr::value(response))
        .filter(event_attendee::Column::EventId.eq(event_id))
        .filter(event_attendee::Column::UserId.eq(actor.user_id))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(AppError::validation(
            "eventId",
            "you are not invited to this event",
        ));
    }
    sync_reminders(&txn, &e, Utc::now()).await?;
    txn.commit().await?;
    reminders::announce(svc, None).await;
    Ok(e)
}

pub async fn attendees_of<C: ConnectionTrait>(
    db: &C,
    event_ids: &[i64],
) -> AppResult<HashMap<i64, Vec<event_attendee::Model>>> {
    let mut by_event: HashMap<i64, Vec<event_attendee::Model>> = HashMap::new();
    for a in event_attendee::Entity::find()
        .filter(event_attendee::Column::EventId.is_in(event_ids.iter().copied()))
        .order_by_asc(event_attendee::Column::Id)
        .all(db)
        .await?
    {
        by_event.entry(a.event_id).or_default().push(a);
    }
    Ok(by_event)
}

// ---- reminders before occurrences ----------------------------------------------------

fn reminder_key(event_id: i64, occurrence: DateTime<Utc>, minutes: i32, user: i64) -> String {
    format!(
        "event:{event_id}:{}:{minutes}:{user}",
        occurrence.timestamp()
    )
}

/// Makes the event's pending reminders match the event: one per attending user (owner
/// and users who have not declined) for every occurrence starting within the horizon.
/// Reminders of occurrences that moved or vanished are cancelled; ones already
/// delivered stay delivered (their keys keep them from being sent twice).
pub(crate) async fn sync_reminders<C: ConnectionTrait>(
    db: &C,
    e: &event::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut desired: HashMap<String, (i64, DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    if let (EventStatus::Confirmed, Some(minutes)) = (e.status, e.remind_minutes_before) {
        let mut recipients: BTreeSet<i64> = BTreeSet::from([e.owner_id]);
        recipients.extend(
            event_attendee::Entity::find()
                .filter(event_attendee::Column::EventId.eq(e.id))
                .filter(event_attendee::Column::UserId.is_not_null())
                .filter(event_attendee::Column::Response.ne(Response::Declined))
                .all(db)
                .await?
                .into_iter()
                .filter_map(|a| a.user_id),
        );
        let lead = Duration::minutes(i64::from(minutes));
        let horizon = now + Duration::days(REMINDER_HORIZON_DAYS);
        for occurrence in occurrences_of(e, now, horizon + lead)? {
            if occurrence.starts_at <= now {
                continue;
            }
            // Created too late for the full lead time: remind now rather than never.
            let due = (occurrence.starts_at - lead).max(now);
            for &user in &recipients {
                desired.insert(
                    reminder_key(e.id, occurrence.starts_at, minutes, user),
                    (user, due, occurrence.starts_at),
                );
            }
        }
    }
    let existing = reminder::Entity::find()
        .filter(reminder::Column::EventId.eq(e.id))
        .filter(
            reminder::Column::Status.is_in([ReminderStatus::Pending, ReminderStatus::Cancelled]),
        )
        .all(db)
        .await?;
    let mut moot = Vec::new();
    for r in existing {
        match desired.remove(&r.idempotency_key) {
            // Moved, or back after a cancellation: pending again at the new time.
            Some((_, due, _)) if r.status != ReminderStatus::Pending || r.due_at != due => {
                reminder::Entity::update_many()
                    .col_expr(
                        reminder::Column::Status,
                        Expr::value(ReminderStatus::Pending),
                    )
                    .col_expr(reminder::Column::DueAt, Expr::value(due))
                    .col_expr(reminder::Column::AttemptAt, Expr::value(due))
                    .col_expr(reminder::Column::Attempts, Expr::value(0))
                    .filter(reminder::Column::Id.eq(r.id))
                    .exec(db)
                    .await?;
            }
            Some(_) => {}
            None if r.status == ReminderStatus::Pending => moot.push(r.id),
            None => {}
        }
    }
    // Occurrences that moved or vanished: one statement for all of them.
    for ids in moot.chunks(500) {
        reminder::Entity::update_many()
            .col_expr(
                reminder::Column::Status,
                Expr::value(ReminderStatus::Cancelled),
            )
            .filter(reminder::Column::Id.is_in(ids.iter().copied()))
            .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
            .exec(db)
            .await?;
    }
    if desired.is_empty() {
        return Ok(());
    }
    let tz = recurrence::parse_time_zone(&e.time_zone).map_err(recurrence_error)?;
    let rows: Vec<reminder::ActiveModel> = desired
        .into_iter()
        .map(|(key, (user, due, starts))| {
            let local = starts.with_timezone(&tz).format("%a %e %b %H:%M %Z");
            let mut row = NewReminder {
                recipient_id: user,
                opportunity_id: None,
                message: format!("{} at {local}", e.title)
                    .chars()
                    .take(500)
                    .collect(),
                due_at: due,
                anchor: None,
                offset_minutes: -i64::from(e.remind_minutes_before.unwrap_or(0)),
                idempotency_key: key,
                script_id: None,
                stage_id: None,
                channels: reminders::all_channels(),
                follows_owner: false,
            }
            .into_active(now);
            row.event_id = Set(Some(e.id));
            row
        })
        .collect();
    for chunk in rows.chunks(200) {
        // A key already delivered (or claimed by another instance's top-up) stays.
        reminder::Entity::insert_many(chunk.to_vec())
            .on_conflict_do_nothing_on([reminder::Column::IdempotencyKey])
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Extends the reminders of open-ended recurring events as the horizon moves on. Each
/// instance runs it now and then; keys make concurrent runs harmless.
pub async fn top_up_reminders(svc: &Services) -> AppResult<usize> {
    let now = Utc::now();
    let events = event::Entity::find()
        .filter(event::Column::Status.eq(EventStatus::Confirmed))
        .filter(event::Column::RemindMinutesBefore.is_not_null())
        .filter(event::Column::Rrule.is_not_null())
        .filter(
            Condition::any()
                .add(event::Column::SeriesEndsAt.is_null())
                .add(event::Column::SeriesEndsAt.gt(now)),
        )
        .all(&svc.db)
        .await?;
    let count = events.len();
    for chunk in events.chunks(50) {
        let txn = begin_write(&svc.db).await?;
        for e in chunk {
            sync_reminders(&txn, e, now).await?;
        }
        txn.commit().await?;
    }
    if count > 0 {
        reminders::announce(svc, None).await;
    }
    Ok(count)
}

// ---- calendar views -------------------------------------------------------------------

/// A validated query range.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Range {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<Range> {
        if to <= from {
            return Err(AppError::validation("to", "must be after from"));
        }
        if to - from > Duration::days(RANGE_MAX_DAYS) {
            return Err(AppError::validation(
                "to",
                format!("a range spans at most {RANGE_MAX_DAYS} days"),
            ));
        }
        Ok(Range { from, to })
    }
}

/// Whose calendar: some users, or the members of a team (territory).
#[derive(Debug, Clone, Default)]
pub struct Whose {
    pub user_ids: Vec<i64>,
    pub territory_id: Option<i64>,
}

async fn resolve_users(
    svc: &Services,
    actor: &Actor,
    scope: &Scope,
    whose: &Whose,
) -> AppResult<Vec<i64>> {
    let mut users: BTreeSet<i64> = whose.user_ids.iter().copied().collect();
    if let Some(t) = whose.territory_id {
        if !scope.allows(Some(t), AccessLevel::Read) {
            return Err(AppError::validation("territoryId", "no such territory"));
        }
        users.extend(
            territory_membership::Entity::find()
                .filter(territory_membership::Column::TerritoryId.eq(t))
                .all(&svc.db)
                .await?
                .into_iter()
                .map(|m| m.user_id),
        );
    }
    if whose.user_ids.is_empty() && whose.territory_id.is_none() {
        users.insert(actor.user_id);
    }
    if users.len() > USERS_PER_QUERY_MAX {
        return Err(AppError::validation(
            "userIds",
            format!("at most {USERS_PER_QUERY_MAX} people per query"),
        ));
    }
    Ok(users.into_iter().collect())
}

/// Events of `users` (organizer, or invited and not declined) that may overlap
/// `range`, filtered by `visible` (free/busy looks at all of them).
async fn events_of(
    svc: &Services,
    users: &[i64],
    range: Range,
    visible: Option<Condition>,
) -> AppResult<Vec<event::Model>> {
    let invited = Query::select()
        .column(event_attendee::Column::EventId)
        .from(event_attendee::Entity)
        .and_where(event_attendee::Column::UserId.is_in(users.iter().copied()))
        .and_where(event_attendee::Column::Response.ne(Response::Declined))
        .to_owned();
    let rows = event::Entity::find()
        .filter(event::Column::Status.eq(EventStatus::Confirmed))
        .filter(event::Column::StartsAt.lt(range.to))
        .filter(
            Condition::any()
                .add(event::Column::SeriesEndsAt.is_null())
                .add(event::Column::SeriesEndsAt.gt(range.from)),
        )
        .filter(
            Condition::any()
                .add(event::Column::OwnerId.is_in(users.iter().copied()))
                .add(event::Column::Id.in_subquery(invited)),
        )
        .apply_if(visible, QueryFilter::filter)
        .order_by_asc(event::Column::Id)
        .limit(EVENTS_PER_QUERY_MAX + 1)
        .all(&svc.db)
        .await?;
    if rows.len() as u64 > EVENTS_PER_QUERY_MAX {
        return Err(AppError::validation(
            "to",
            "too many events in this range; ask for a shorter one",
        ));
    }
    Ok(rows)
}

fn expand(events: &[event::Model], range: Range) -> AppResult<Vec<(usize, Occurrence)>> {
    let mut all = Vec::new();
    for (i, e) in events.iter().enumerate() {
        all.extend(
            occurrences_of(e, range.from, range.to)?
                .into_iter()
                .map(|o| (i, o)),
        );
        if all.len() > OCCURRENCES_PER_QUERY_MAX {
            return Err(AppError::validation(
                "to",
                format!(
                    "more than {OCCURRENCES_PER_QUERY_MAX} occurrences in this range; ask for a shorter one"
                ),
            ));
        }
    }
    all.sort_by_key(|(i, o)| (o.starts_at, o.ends_at, events[*i].id));
    Ok(all)
}

/// A calendar: event occurrences and tasks due in the range, both in time order.
pub struct CalendarView {
    pub occurrences: Vec<(event::Model, Occurrence)>,
    pub tasks: Vec<task::Model>,
}

pub async fn calendar(
    svc: &Services,
    actor: &Actor,
    whose: Whose,
    range: Range,
) -> AppResult<CalendarView> {
    svc.authz
        .require(actor, Resource::Event, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let users = resolve_users(svc, actor, &scope, &whose).await?;
    let events = events_of(svc, &users, range, scope.events()).await?;
    let occurrences = expand(&events, range)?
        .into_iter()
        .map(|(i, o)| (events[i].clone(), o))
        .collect();
    let tasks = task::Entity::find()
        .filter(task::Column::AssigneeId.is_in(users.iter().copied()))
        .filter(task::Column::DueAt.gte(range.from))
        .filter(task::Column::DueAt.lt(range.to))
        .apply_if(scope.tasks(), QueryFilter::filter)
        .order_by_asc(task::Column::DueAt)
        .order_by_asc(task::Column::Id)
        .limit(EVENTS_PER_QUERY_MAX)
        .all(&svc.db)
        .await?;
    Ok(CalendarView { occurrences, tasks })
}

/// Busy blocks per user: times only, so everyone may ask about anyone (as in every
/// calendar system); what the events are stays behind their permissions.
pub async fn free_busy(
    svc: &Services,
    actor: &Actor,
    whose: Whose,
    range: Range,
) -> AppResult<Vec<(i64, Vec<Occurrence>)>> {
    svc.authz
        .require(actor, Resource::User, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let users = resolve_users(svc, actor, &scope, &whose).await?;
    let busy = busy_of(svc, &users, range, None).await?;
    Ok(users
        .iter()
        .map(|u| (*u, busy.get(u).cloned().unwrap_or_default()))
        .collect())
}

async fn busy_of(
    svc: &Services,
    users: &[i64],
    range: Range,
    except_event: Option<i64>,
) -> AppResult<HashMap<i64, Vec<Occurrence>>> {
    let events: Vec<event::Model> = events_of(svc, users, range, None)
        .await?
        .into_iter()
        .filter(|e| Some(e.id) != except_event)
        .collect();
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    let attendees = attendees_of(&svc.db, &ids).await?;
    let mut per_user: HashMap<i64, Vec<Occurrence>> = HashMap::new();
    for (i, occurrence) in expand(&events, range)? {
        let e = &events[i];
        let mut people: BTreeSet<i64> = BTreeSet::from([e.owner_id]);
        people.extend(
            attendees
                .get(&e.id)
                .into_iter()
                .flatten()
                .filter(|a| a.response != Response::Declined)
                .filter_map(|a| a.user_id),
        );
        for u in people.into_iter().filter(|u| users.contains(u)) {
            per_user.entry(u).or_default().push(occurrence);
        }
    }
    Ok(per_user
        .into_iter()
        .map(|(u, list)| (u, recurrence::merge_busy(list)))
        .collect())
}

/// The busy blocks of an event's people that overlap its own occurrences (in the next
/// [`CONFLICT_WINDOW_DAYS`]), so a client can warn before anyone is double-booked.
async fn conflicts_with(svc: &Services, e: &event::Model) -> AppResult<Vec<Busy>> {
    let (users, _) = current_attendees(&svc.db, e.id).await?;
    let mut people: Vec<i64> = users;
    people.push(e.owner_id);
    people.sort_unstable();
    people.dedup();
    let from = e.starts_at.max(Utc::now() - Duration::days(1));
    let range = Range {
        from,
        to: from + Duration::days(CONFLICT_WINDOW_DAYS),
    };
    let own = occurrences_of(e, range.from, range.to)?;
    let busy = busy_of(svc, &people, range, Some(e.id)).await?;
    let mut found = Vec::new();
    for (user_id, blocks) in busy {
        for block in blocks {
            if own
                .iter()
                .any(|o| o.starts_at < block.ends_at && block.starts_at < o.ends_at)
            {
                found.push(Busy {
                    user_id,
                    starts_at: block.starts_at,
                    ends_at: block.ends_at,
                });
            }
        }
    }
    found.sort_by_key(|b| (b.starts_at, b.user_id));
    found.truncate(CONFLICTS_MAX);
    Ok(found)
}

/// Two occurrences of one person's calendar that overlap.
pub struct Conflict {
    pub first: (event::Model, Occurrence),
    pub second: (event::Model, Occurrence),
}

/// Overlapping occurrences in a user's calendar (among the events the caller sees).
pub async fn conflicts(
    svc: &Services,
    actor: &Actor,
    user_id: Option<i64>,
    range: Range,
) -> AppResult<Vec<Conflict>> {
    svc.authz
        .require(actor, Resource::Event, Action::Read)
        .await?;
    let scope = svc.authz.scope(actor).await;
    let users = [user_id.unwrap_or(actor.user_id)];
    let events = events_of(svc, &users, range, scope.events()).await?;
    let list = expand(&events, range)?;
    let mut found = Vec::new();
    // Sorted by start: each occurrence overlaps the following ones that start before
    // it ends.
    'outer: for (a, (i, first)) in list.iter().enumerate() {
        for (j, second) in list[a + 1..].iter() {
            if second.starts_at >= first.ends_at {
                break;
            }
            found.push(Conflict {
                first: (events[*i].clone(), *first),
                second: (events[*j].clone(), *second),
            });
            if found.len() >= CONFLICTS_MAX {
                break 'outer;
            }
        }
    }
    Ok(found)
}
