//! iCalendar in and out: each user's feed at a secret, revocable URL (events with their
//! recurrence, tasks as VTODO, reminders as VALARM) that Google Calendar, Outlook and
//! Apple Calendar subscribe to, and the import of an `.ics` file.
//!
//! The feed names IANA time zones in TZID and carries a VTIMEZONE for each, with the
//! zone's real offset changes over the years the feed covers, so clients that do not
//! know IANA names (Outlook) still place recurring events right across DST.

use std::collections::{BTreeSet, HashMap};

use accord_entities::calendar_feed;
use accord_entities::event::{self, EventKind, EventStatus};
use accord_entities::event_attendee::Response;
use accord_entities::reminder::{self, ReminderStatus};
use accord_entities::task::{self, TaskKind, TaskStatus};
use accord_entities::{contact, user};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName};
use icalendar::{
    Alarm, Calendar, CalendarComponent, CalendarDateTime, Component, DatePerhapsTime, EventLike,
    Property, Todo,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set,
};

use crate::auth::Actor;
use crate::auth::token::{generate_secret, hash_token};
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::calendar::{self, EventInput, exdates_of};
use crate::services::recurrence;
use crate::services::{Services, audit};

pub const FEED_PREFIX: &str = "cal_";
/// Largest `.ics` file an import accepts.
pub const IMPORT_MAX_BYTES: usize = 1024 * 1024;
const IMPORT_MAX_COMPONENTS: usize = 2000;
/// What one feed carries at most (newest first beyond that).
const FEED_MAX_ROWS: u64 = 5000;
/// Finished series and done tasks stay in the feed this long, then drop out.
const FEED_HISTORY_DAYS: i64 = 90;
const PRODID: &str = "-//Accord//Accord CRM//EN";

// ---- feed tokens --------------------------------------------------------------------

/// Creates the caller's feed, replacing (and so revoking) any earlier one. The token is
/// shown once; only its digest is stored.
pub async fn create_feed(svc: &Services, actor: &Actor) -> AppResult<String> {
    svc.authz
        .require(actor, Resource::Event, Action::Read)
        .await?;
    let (secret, digest) = generate_secret(FEED_PREFIX);
    let txn = begin_write(&svc.db).await?;
    calendar_feed::Entity::delete_many()
        .filter(calendar_feed::Column::UserId.eq(actor.user_id))
        .exec(&txn)
        .await?;
    calendar_feed::ActiveModel {
        id: NotSet,
        user_id: Set(actor.user_id),
        token_hash: Set(digest),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "CalendarFeed",
        actor.user_id,
        None::<&()>,
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(secret)
}

/// Revokes the caller's feed; its URL answers 404 from now on. Returns whether there
/// was one.
pub async fn revoke_feed(svc: &Services, actor: &Actor) -> AppResult<bool> {
    let txn = begin_write(&svc.db).await?;
    let deleted = calendar_feed::Entity::delete_many()
        .filter(calendar_feed::Column::UserId.eq(actor.user_id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected > 0 {
        audit::record(
            &txn,
            Some(actor),
            "revoke",
            "CalendarFeed",
            actor.user_id,
            None::<&()>,
            None,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}

pub async fn feed_created_at(svc: &Services, actor: &Actor) -> AppResult<Option<DateTime<Utc>>> {
    Ok(calendar_feed::Entity::find()
        .filter(calendar_feed::Column::UserId.eq(actor.user_id))
        .one(&svc.db)
        .await?
        .map(|f| f.created_at))
}

// ---- the feed -------------------------------------------------------------------------

/// The feed behind a token, or `None` for an unknown or revoked token (or a
/// deactivated user). What it shows is exactly what its user may see now.
pub async fn render_feed(svc: &Services, token: &str) -> AppResult<Option<String>> {
    if !token.starts_with(FEED_PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    let Some(feed) = calendar_feed::Entity::find()
        .filter(calendar_feed::Column::TokenHash.eq(hash_token(token)))
        .one(&svc.db)
        .await?
    else {
        return Ok(None);
    };
    let Some(owner) = user::Entity::find_by_id(feed.user_id)
        .one(&svc.db)
        .await?
        .filter(|u| u.active)
    else {
        return Ok(None);
    };
    let now = Utc::now();
    // Pollers come every few minutes; a write per poll would be waste.
    if feed
        .last_used_at
        .is_none_or(|t| now - t > Duration::hours(1))
    {
        calendar_feed::Entity::update_many()
            .col_expr(
                calendar_feed::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(calendar_feed::Column::Id.eq(feed.id))
            .exec(&svc.db)
            .await?;
    }
    let scope = svc.authz.scope_of(owner.id, owner.role).await;
    let since = now - Duration::days(FEED_HISTORY_DAYS);
    let invited = sea_orm::sea_query::Query::select()
        .column(accord_entities::event_attendee::Column::EventId)
        .from(accord_entities::event_attendee::Entity)
        .and_where(accord_entities::event_attendee::Column::UserId.eq(owner.id))
        .and_where(accord_entities::event_attendee::Column::Response.ne(Response::Declined))
        .to_owned();
    let events = event::Entity::find()
        .filter(
            Condition::any()
                .add(event::Column::OwnerId.eq(owner.id))
                .add(event::Column::Id.in_subquery(invited)),
        )
        .filter(
            Condition::any()
                .add(event::Column::SeriesEndsAt.is_null())
                .add(event::Column::SeriesEndsAt.gt(since)),
        )
        .apply_if(scope.events(), QueryFilter::filter)
        .order_by_desc(event::Column::StartsAt)
        .limit(FEED_MAX_ROWS)
        .all(&svc.db)
        .await?;
    let tasks = task::Entity::find()
        .filter(task::Column::AssigneeId.eq(owner.id))
        .filter(
            Condition::any()
                .add(task::Column::Status.eq(TaskStatus::Open))
                .add(task::Column::CompletedAt.gt(since)),
        )
        .apply_if(scope.tasks(), QueryFilter::filter)
        .order_by_desc(task::Column::Id)
        .limit(FEED_MAX_ROWS)
        .all(&svc.db)
        .await?;
    // Event reminders ride on their event as VALARM; the rest become alarmed to-dos.
    let reminders = reminder::Entity::find()
        .filter(reminder::Column::RecipientId.eq(owner.id))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .filter(reminder::Column::EventId.is_null())
        .order_by_asc(reminder::Column::DueAt)
        .limit(FEED_MAX_ROWS)
        .all(&svc.db)
        .await?;
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    let attendees = calendar::attendees_of(&svc.db, &ids).await?;
    let user_ids: BTreeSet<i64> = events
        .iter()
        .map(|e| e.owner_id)
        .chain(attendees.values().flatten().filter_map(|a| a.user_id))
        .collect();
    let contact_ids: BTreeSet<i64> = attendees
        .values()
        .flatten()
        .filter_map(|a| a.contact_id)
        .collect();
    let users: HashMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(user_ids))
        .all(&svc.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let contacts: HashMap<i64, contact::Model> = contact::Entity::find()
        .filter(contact::Column::Id.is_in(contact_ids))
        .apply_if(
            scope.contacts(accord_entities::territory_membership::AccessLevel::Read),
            QueryFilter::filter,
        )
        .all(&svc.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();

    let mut cal = Calendar::new();
    cal.name(&format!("Accord: {}", owner.display_name));
    cal.append_property(Property::new("PRODID", PRODID));
    cal.append_property(
        Property::new("REFRESH-INTERVAL", "PT15M")
            .add_parameter("VALUE", "DURATION")
            .done(),
    );
    cal.append_property(Property::new("X-PUBLISHED-TTL", "PT15M"));
    let zones: BTreeSet<&str> = events.iter().map(|e| e.time_zone.as_str()).collect();
    let first_year = events
        .iter()
        .map(|e| e.starts_at.year())
        .min()
        .unwrap_or(now.year())
        .max(now.year() - 10)
        .min(now.year() - 1);
    for zone in zones {
        if let Ok(tz) = zone.parse::<chrono_tz::Tz>()
            && let Some(component) = vtimezone(tz, first_year, now.year() + 3)
        {
            cal.push(component);
        }
    }
    for e in &events {
        let mut ev = icalendar::Event::new();
        let zone = e.time_zone.parse::<chrono_tz::Tz>().ok();
        let local = |t: DateTime<Utc>| -> CalendarDateTime {
            match zone {
                Some(z) => CalendarDateTime::WithTimezone {
                    date_time: t.with_timezone(&z).naive_local(),
                    tzid: e.time_zone.clone(),
                },
                None => CalendarDateTime::Utc(t),
            }
        };
        ev.uid(&e.ics_uid)
            .summary(&e.title)
            .timestamp(e.updated_at)
            .last_modified(e.updated_at)
            .created(e.created_at)
            .sequence(u32::try_from(e.version - 1).unwrap_or(0))
            .starts(local(e.starts_at))
            .ends(local(e.ends_at))
            .status(match e.status {
                EventStatus::Confirmed => icalendar::EventStatus::Confirmed,
                EventStatus::Cancelled => icalendar::EventStatus::Cancelled,
            });
        ev.add_property("CATEGORIES", kind_name(e.kind).to_uppercase());
        if let Some(d) = &e.description {
            ev.description(d);
        }
        if let Some(l) = &e.location {
            ev.location(l);
        }
        if let Some(rule) = &e.rrule {
            ev.add_property("RRULE", rule);
        }
        for ex in exdates_of(e) {
            let value = local(ex);
            let prop = match &value {
                CalendarDateTime::WithTimezone { date_time, tzid } => {
                    Property::new("EXDATE", date_time.format("%Y%m%dT%H%M%S").to_string())
                        .add_parameter("TZID", tzid)
                        .done()
                }
                _ => Property::new("EXDATE", ex.format("%Y%m%dT%H%M%SZ").to_string()),
            };
            ev.append_multi_property(prop);
        }
        if let Some(organizer) = users.get(&e.owner_id) {
            ev.append_property(
                Property::new("ORGANIZER", format!("mailto:{}", organizer.email))
                    .add_parameter("CN", &organizer.display_name)
                    .done(),
            );
        }
        for a in attendees.get(&e.id).into_iter().flatten() {
            let who = match (a.user_id, a.contact_id) {
                (Some(u), _) => users
                    .get(&u)
                    .map(|u| (u.display_name.clone(), Some(u.email.clone()))),
                (_, Some(c)) => contacts
                    .get(&c)
                    .map(|c| (format!("{} {}", c.first_name, c.last_name), c.email.clone())),
                _ => None,
            };
            let Some((name, Some(email))) = who else {
                continue;
            };
            ev.append_multi_property(
                Property::new("ATTENDEE", format!("mailto:{email}"))
                    .add_parameter("CN", &name)
                    .add_parameter("PARTSTAT", partstat(a.response))
                    .done(),
            );
        }
        if let (Some(minutes), EventStatus::Confirmed) = (e.remind_minutes_before, e.status) {
            ev.alarm(Alarm::display(
                &e.title,
                -Duration::minutes(i64::from(minutes)),
            ));
        }
        cal.push(ev.done());
    }
    for t in &tasks {
        let mut todo = Todo::new();
        todo.uid(&format!("task-{}@accord", t.id))
            .summary(&t.title)
            .timestamp(t.created_at)
            .sequence(u32::try_from(t.version - 1).unwrap_or(0))
            .status(match t.status {
                TaskStatus::Open => icalendar::TodoStatus::NeedsAction,
                TaskStatus::Done => icalendar::TodoStatus::Completed,
                TaskStatus::Cancelled => icalendar::TodoStatus::Cancelled,
            });
        if t.kind == TaskKind::Approval {
            todo.add_property("CATEGORIES", "APPROVAL");
        }
        if let Some(d) = &t.description {
            todo.description(d);
        }
        if let Some(due) = t.due_at {
            todo.due(due);
        }
        if let Some(done) = t.completed_at {
            todo.completed(done);
        }
        cal.push(todo.done());
    }
    for r in &reminders {
        let mut todo = Todo::new();
        todo.uid(&format!("reminder-{}@accord", r.id))
            .summary(&r.message)
            .timestamp(r.created_at)
            .due(r.due_at)
            .status(icalendar::TodoStatus::NeedsAction)
            .add_property("CATEGORIES", "REMINDER");
        todo.alarm(Alarm::display(
            &r.message,
            icalendar::Trigger::DateTime(CalendarDateTime::Utc(r.due_at)),
        ));
        cal.push(todo.done());
    }
    Ok(Some(cal.done().to_string()))
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Meeting => "meeting",
        EventKind::Call => "call",
        EventKind::Demo => "demo",
    }
}

fn partstat(r: Response) -> &'static str {
    match r {
        Response::NeedsAction => "NEEDS-ACTION",
        Response::Accepted => "ACCEPTED",
        Response::Tentative => "TENTATIVE",
        Response::Declined => "DECLINED",
    }
}

fn utc_offset(tz: chrono_tz::Tz, at: DateTime<Utc>) -> (i32, bool, String) {
    let offset = tz.offset_from_utc_datetime(&at.naive_utc());
    let dst = offset.dst_offset() != Duration::zero();
    let name = offset.abbreviation().unwrap_or("").to_owned();
    (offset.fix().local_minus_utc(), dst, name)
}

fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    if s % 60 == 0 {
        format!("{sign}{:02}{:02}", s / 3600, (s % 3600) / 60)
    } else {
        format!("{sign}{:02}{:02}{:02}", s / 3600, (s % 3600) / 60, s % 60)
    }
}

/// A VTIMEZONE with every offset change of `tz` from `first_year` through `last_year`
/// (found by an hourly scan, refined to the minute), plus the offset in force at the
/// start, so the component stands on its own.
fn vtimezone(tz: chrono_tz::Tz, first_year: i32, last_year: i32) -> Option<CalendarComponent> {
    let start = Utc.with_ymd_and_hms(first_year, 1, 1, 0, 0, 0).single()?;
    let end = Utc
        .with_ymd_and_hms(last_year + 1, 1, 1, 0, 0, 0)
        .single()?;
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "BEGIN:VTIMEZONE".to_owned(),
        format!("TZID:{}", tz.name()),
    ];
    let mut push = |kind: &str, at_local: NaiveDateTime, from: i32, to: i32, name: &str| {
        lines.push(format!("BEGIN:{kind}"));
        lines.push(format!("DTSTART:{}", at_local.format("%Y%m%dT%H%M%S")));
        lines.push(format!("TZOFFSETFROM:{}", format_offset(from)));
        lines.push(format!("TZOFFSETTO:{}", format_offset(to)));
        if !name.is_empty() && !name.starts_with(['+', '-']) {
            lines.push(format!("TZNAME:{name}"));
        }
        lines.push(format!("END:{kind}"));
    };
    let (mut offset, dst, name) = utc_offset(tz, start);
    push(
        if dst { "DAYLIGHT" } else { "STANDARD" },
        start.naive_utc() + Duration::seconds(i64::from(offset)),
        offset,
        offset,
        &name,
    );
    let mut t = start;
    while t < end {
        let next = t + Duration::hours(1);
        let (next_offset, _, _) = utc_offset(tz, next);
        if next_offset != offset {
            // The change happened in (t, next]: find its minute.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::minutes(1) {
                let mid = lo + (hi - lo) / 2;
                if utc_offset(tz, mid).0 == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let (to, dst, name) = utc_offset(tz, hi);
            push(
                if dst { "DAYLIGHT" } else { "STANDARD" },
                hi.naive_utc() + Duration::seconds(i64::from(offset)),
                offset,
                to,
                &name,
            );
            offset = to;
        }
        t = next;
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let text = lines.join("\r\n") + "\r\n";
    let parsed = icalendar::parser::read_calendar(&text).ok()?;
    parsed
        .components
        .into_iter()
        .find(|c| c.name == "VTIMEZONE")
        .map(|c| CalendarComponent::Other(c.into()))
}

// ---- import ---------------------------------------------------------------------------

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub events_created: u32,
    pub events_updated: u32,
    pub tasks_created: u32,
    pub tasks_updated: u32,
}

fn import_error(i: usize, uid: &str, message: impl std::fmt::Display) -> AppError {
    let uid: String = uid.chars().take(80).collect();
    AppError::validation("ics", format!("component {} (UID {uid}): {message}", i + 1))
}

/// A date or date-time of the file as a UTC instant, with the time zone it was given
/// in. Dates (all-day) and floating times are read in `default_tz`.
fn instant(
    value: &DatePerhapsTime,
    default_tz: chrono_tz::Tz,
) -> Result<(DateTime<Utc>, chrono_tz::Tz, bool), String> {
    let in_zone = |naive: NaiveDateTime, tz: chrono_tz::Tz| {
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            .ok_or_else(|| format!("{naive} does not exist in {}", tz.name()))
    };
    match value {
        DatePerhapsTime::Date(d) => {
            let midnight = d.and_hms_opt(0, 0, 0).ok_or("invalid date")?;
            Ok((in_zone(midnight, default_tz)?, default_tz, true))
        }
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => Ok((*t, default_tz, false)),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(naive)) => {
            Ok((in_zone(*naive, default_tz)?, default_tz, false))
        }
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
            let tz = recurrence::parse_time_zone(tzid).map_err(|e| e.message)?;
            Ok((in_zone(*date_time, tz)?, tz, false))
        }
    }
}

/// EXDATE and RECURRENCE-ID values: one or more comma-separated date-times, with an
/// optional TZID.
fn instants_of(prop: &Property, default_tz: chrono_tz::Tz) -> Result<Vec<DateTime<Utc>>, String> {
    let tz = match prop.params().get("TZID") {
        Some(p) => recurrence::parse_time_zone(p.value()).map_err(|e| e.message)?,
        None => default_tz,
    };
    prop.value()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            if let Some(utc) = v.strip_suffix('Z') {
                NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
                    .map(|n| n.and_utc())
                    .map_err(|_| format!("'{v}' is not a date-time"))
            } else if let Ok(n) = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S") {
                instant(
                    &DatePerhapsTime::DateTime(CalendarDateTime::Floating(n)),
                    tz,
                )
                .map(|(t, _, _)| t)
            } else {
                NaiveDate::parse_from_str(v, "%Y%m%d")
                    .map_err(|_| format!("'{v}' is not a date-time"))
                    .and_then(|d| instant(&DatePerhapsTime::Date(d), tz).map(|(t, _, _)| t))
            }
        })
        .collect()
}

struct ParsedEvent {
    uid: String,
    input: EventInput,
    cancelled: bool,
}

/// Imports an `.ics` file into the caller's calendar, all or nothing: events (with
/// RRULE, EXDATE and moved single occurrences) and to-dos. Importing the same file
/// again updates what it created instead of duplicating it.
pub async fn import(
    svc: &Services,
    actor: &Actor,
    ics: &str,
    default_time_zone: &str,
) -> AppResult<ImportReport> {
    svc.authz
        .require(actor, Resource::Event, Action::Write)
        .await?;
    if ics.len() > IMPORT_MAX_BYTES {
        return Err(AppError::validation(
            "ics",
            format!(
                "the file is {} bytes; at most {IMPORT_MAX_BYTES} bytes (1 MiB) per import",
                ics.len()
            ),
        ));
    }
    let default_tz = recurrence::parse_time_zone(default_time_zone)
        .map_err(|e| AppError::validation("timeZone", e.message))?;
    let unfolded = icalendar::parser::unfold(ics);
    let parsed = icalendar::parser::read_calendar(&unfolded).map_err(|e| {
        let short: String = e.chars().take(120).collect();
        AppError::validation("ics", format!("not a valid iCalendar file: {short}"))
    })?;
    let cal: Calendar = parsed.into();
    if cal.components.len() > IMPORT_MAX_COMPONENTS {
        return Err(AppError::validation(
            "ics",
            format!("at most {IMPORT_MAX_COMPONENTS} components per import"),
        ));
    }
    let mut masters: Vec<ParsedEvent> = Vec::new();
    let mut moved: Vec<(String, DateTime<Utc>, ParsedEvent)> = Vec::new();
    let mut todos = Vec::new();
    for (i, component) in cal.components.iter().enumerate() {
        match component {
            CalendarComponent::Event(ev) => {
                let uid = ev.get_uid().map(str::to_owned).unwrap_or_default();
                if uid.is_empty() || uid.len() > 200 {
                    return Err(import_error(
                        i,
                        &uid,
                        "every VEVENT needs a UID of at most 200 characters",
                    ));
                }
                let start = ev
                    .get_start()
                    .ok_or_else(|| import_error(i, &uid, "DTSTART is missing"))?;
                let (starts_at, tz, all_day) =
                    instant(&start, default_tz).map_err(|m| import_error(i, &uid, m))?;
                let ends_at = match (ev.get_end(), ev.property_value("DURATION")) {
                    (Some(end), _) => instant(&end, tz).map_err(|m| import_error(i, &uid, m))?.0,
                    (None, Some(d)) => {
                        starts_at
                            + parse_duration(d).ok_or_else(|| {
                                import_error(i, &uid, "DURATION is not a duration")
                            })?
                    }
                    (None, None) if all_day => starts_at + Duration::days(1),
                    (None, None) => starts_at + Duration::hours(1),
                };
                let mut exdates = Vec::new();
                for prop in ev.multi_properties().get("EXDATE").into_iter().flatten() {
                    exdates.extend(instants_of(prop, tz).map_err(|m| import_error(i, &uid, m))?);
                }
                if let Some(prop) = ev.properties().get("EXDATE") {
                    exdates.extend(instants_of(prop, tz).map_err(|m| import_error(i, &uid, m))?);
                }
                let categories = ev
                    .property_value("CATEGORIES")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let kind = if categories.contains("demo") {
                    EventKind::Demo
                } else if categories.contains("call") {
                    EventKind::Call
                } else {
                    EventKind::Meeting
                };
                let title = ev
                    .get_summary()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("(no title)");
                let parsed = ParsedEvent {
                    uid: uid.clone(),
                    input: EventInput {
                        kind,
                        title: title.chars().take(200).collect(),
                        description: ev
                            .get_description()
                            .map(|d| d.chars().take(calendar::DESCRIPTION_MAX).collect()),
                        location: ev
                            .get_location()
                            .map(|l| l.chars().take(calendar::LOCATION_MAX).collect()),
                        starts_at,
                        ends_at,
                        time_zone: tz.name().to_owned(),
                        rrule: ev.property_value("RRULE").map(str::to_owned),
                        exdates,
                        subject: None,
                        attendee_user_ids: vec![],
                        attendee_contact_ids: vec![],
                        remind_minutes_before: None,
                    },
                    cancelled: ev.property_value("STATUS") == Some("CANCELLED"),
                };
                match ev.properties().get("RECURRENCE-ID") {
                    Some(prop) => {
                        let original = instants_of(prop, tz)
                            .map_err(|m| import_error(i, &uid, m))?
                            .first()
                            .copied()
                            .ok_or_else(|| import_error(i, &uid, "RECURRENCE-ID is empty"))?;
                        moved.push((uid, original, parsed));
                    }
                    None => masters.push(parsed),
                }
            }
            CalendarComponent::Todo(todo) => {
                let uid = todo.get_uid().map(str::to_owned).unwrap_or_default();
                if uid.is_empty() || uid.len() > 200 {
                    return Err(import_error(
                        i,
                        &uid,
                        "every VTODO needs a UID of at most 200 characters",
                    ));
                }
                let due = match todo.get_due() {
                    Some(d) => Some(
                        instant(&d, default_tz)
                            .map_err(|m| import_error(i, &uid, m))?
                            .0,
                    ),
                    None => None,
                };
                let status = match todo.property_value("STATUS") {
                    Some("COMPLETED") => TaskStatus::Done,
                    Some("CANCELLED") => TaskStatus::Cancelled,
                    _ => TaskStatus::Open,
                };
                let title = todo
                    .get_summary()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("(no title)");
                todos.push((
                    uid,
                    title
                        .chars()
                        .take(crate::services::tasks::TITLE_MAX)
                        .collect::<String>(),
                    todo.get_description().map(|d| {
                        d.chars()
                            .take(crate::services::tasks::DESCRIPTION_MAX)
                            .collect::<String>()
                    }),
                    due,
                    status,
                ));
            }
            _ => {}
        }
    }
    // A moved occurrence leaves its series (an EXDATE) and becomes an event of its own.
    for (uid, original, mut single) in moved {
        if let Some(master) = masters.iter_mut().find(|m| m.uid == uid) {
            master.input.exdates.push(original);
        }
        single.uid = format!("{uid}/{}", original.timestamp());
        single.input.rrule = None;
        single.input.exdates.clear();
        masters.push(single);
    }
    let scope = svc.authz.scope(actor).await;
    let mut report = ImportReport::default();
    let txn = begin_write(&svc.db).await?;
    for (i, m) in masters.iter().enumerate() {
        let created = calendar::upsert_imported(&txn, actor, &scope, &m.input, &m.uid, m.cancelled)
            .await
            .map_err(|e| match e {
                AppError::Validation { field, message } => {
                    import_error(i, &m.uid, format!("{field}: {message}"))
                }
                other => other,
            })?;
        if created {
            report.events_created += 1;
        } else if !m.cancelled {
            report.events_updated += 1;
        }
    }
    let now = Utc::now();
    for (uid, title, description, due, status) in todos {
        let existing = task::Entity::find()
            .filter(task::Column::CreatedBy.eq(actor.user_id))
            .filter(task::Column::IcsUid.eq(&uid))
            .one(&txn)
            .await?;
        let completed_at = (status == TaskStatus::Done).then_some(now);
        match existing {
            Some(before) => {
                let mut active = task::ActiveModel::from(before.clone());
                active.title = Set(title);
                active.description = Set(description);
                active.due_at = Set(due);
                if before.status != status {
                    active.status = Set(status);
                    active.completed_at = Set(completed_at);
                }
                active.version = Set(before.version + 1);
                let after = active.update(&txn).await?;
                audit::record(
                    &txn,
                    Some(actor),
                    "import",
                    "Task",
                    after.id,
                    Some(&before),
                    Some(&after),
                )
                .await?;
                report.tasks_updated += 1;
            }
            None => {
                let created = crate::services::tasks::new_row(
                    crate::services::tasks::NewTask {
                        assignee: actor.user_id,
                        title,
                        description,
                        due_at: due,
                        status,
                        subject: None,
                        created_by: actor.user_id,
                        ics_uid: Some(uid),
                    },
                    now,
                )
                .insert(&txn)
                .await?;
                audit::record(
                    &txn,
                    Some(actor),
                    "import",
                    "Task",
                    created.id,
                    None,
                    Some(&created),
                )
                .await?;
                report.tasks_created += 1;
            }
        }
    }
    txn.commit().await?;
    crate::services::reminders::announce(svc, None).await;
    Ok(report)
}

/// An RFC 5545 duration (`PT1H30M`, `P1D`, `-PT15M`).
fn parse_duration(text: &str) -> Option<Duration> {
    let (negative, rest) = match text.trim().strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.trim().strip_prefix('+').unwrap_or(text.trim())),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total = Duration::zero();
    let mut number = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => number.push(c),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                total += match (unit, in_time) {
                    ('W', false) => Duration::weeks(n),
                    ('D', false) => Duration::days(n),
                    ('H', true) => Duration::hours(n),
                    ('M', true) => Duration::minutes(n),
                    ('S', true) => Duration::seconds(n),
                    _ => return None,
                };
            }
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("P1D"), Some(Duration::days(1)));
        assert_eq!(parse_duration("-PT15M"), Some(Duration::minutes(-15)));
        assert_eq!(parse_duration("P1W"), Some(Duration::weeks(1)));
        assert_eq!(parse_duration("1H"), None);
        assert_eq!(parse_duration("PT5"), None);
    }

    #[test]
    fn vtimezone_lists_berlin_changes() {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let c = vtimezone(tz, 2026, 2026).unwrap();
        let text = Calendar::new().push(c).done().to_string();
        assert!(text.contains("TZID:Europe/Berlin"), "{text}");
        assert!(text.contains("DTSTART:20260329T020000"), "{text}");
        assert!(text.contains("DTSTART:20261025T030000"), "{text}");
        assert!(text.contains("TZOFFSETTO:+0200"), "{text}");
        assert!(text.contains("BEGIN:DAYLIGHT"), "{text}");
    }
}
