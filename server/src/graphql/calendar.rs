//! Calendars: events with recurrence and attendees, tasks, the calendar of a user or a
//! team with recurrences expanded, free/busy, conflicts, the iCalendar feed and
//! `.ics` import. Resolvers translate IDs and shapes; `services::calendar`,
//! `services::tasks` and `services::ical` do the work.

use accord_entities::event;
use accord_entities::event_attendee;
use accord_entities::task;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::ids::{NodeKind, decode, decode_opt, encode};
use crate::graphql::loaders::one;
use crate::graphql::types::{Account, Contact, Opportunity, User};
use crate::graphql::{actor, loaders, services};
use crate::services::calendar::{self, Range, Subject, Whose};
use crate::services::recurrence::Occurrence;
use crate::services::{ical, tasks};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::event::EventKind")]
pub enum EventKind {
    Meeting,
    Call,
    Demo,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::event::EventStatus")]
pub enum EventStatus {
    Confirmed,
    Cancelled,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::event_attendee::Response")]
pub enum AttendeeResponse {
    NeedsAction,
    Accepted,
    Tentative,
    Declined,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::task::TaskKind")]
pub enum TaskKind {
    Task,
    /// A stage script asked for an approval.
    Approval,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "accord_entities::task::TaskStatus")]
pub enum TaskStatus {
    Open,
    Done,
    Cancelled,
}

/// The account, contact or deal something hangs on (when you may see it).
async fn subject_fields(
    ctx: &Context<'_>,
    (account, contact, deal): (Option<i64>, Option<i64>, Option<i64>),
) -> async_graphql::Result<(Option<Account>, Option<Contact>, Option<Opportunity>)> {
    let l = loaders(ctx)?;
    let a = match account {
        Some(id) => one(&l.accounts, id).await?.map(Account::from),
        None => None,
    };
    let c = match contact {
        Some(id) => one(&l.contacts, id).await?.map(Contact::from),
        None => None,
    };
    let o = match deal {
        Some(id) => one(&l.opportunities, id).await?.map(Opportunity::from),
        None => None,
    };
    Ok((a, c, o))
}

/// One user by ID through the request's loader.
pub(crate) async fn user_field(ctx: &Context<'_>, id: i64) -> async_graphql::Result<Option<User>> {
    Ok(one(&loaders(ctx)?.users, id).await?.map(User::from))
}

pub struct Event(pub event::Model);

#[Object]
impl Event {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Event, self.0.id)
    }
    async fn kind(&self) -> EventKind {
        self.0.kind.into()
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }
    /// The first occurrence's start.
    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }
    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }
    /// IANA name; recurrences keep their wall-clock time in it across DST.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    /// RFC 5545 RRULE value (`FREQ=WEEKLY;BYDAY=MO`), if it repeats.
    async fn rrule(&self) -> Option<&str> {
        self.0.rrule.as_deref()
    }
    /// Starts of cancelled single occurrences.
    async fn exdates(&self) -> Vec<DateTime<Utc>> {
        calendar::exdates_of(&self.0)
    }
    /// When the last occurrence ends; null while the series is open-ended.
    async fn series_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.series_ends_at
    }
    async fn status(&self) -> EventStatus {
        self.0.status.into()
    }
    async fn remind_minutes_before(&self) -> Option<i32> {
        self.0.remind_minutes_before
    }
    /// The iCalendar UID (stable in feeds and across re-imports).
    async fn ics_uid(&self) -> &str {
        &self.0.ics_uid
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn organizer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user_field(ctx, self.0.owner_id).await
    }
    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        Ok(subject_fields(ctx, (self.0.account_id, None, None))
            .await?
            .0)
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        Ok(subject_fields(ctx, (None, self.0.contact_id, None))
            .await?
            .1)
    }
    async fn opportunity(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Opportunity>> {
        Ok(subject_fields(ctx, (None, None, self.0.opportunity_id))
            .await?
            .2)
    }
    async fn attendees(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Attendee>> {
        Ok(one(&loaders(ctx)?.attendees_by_event, self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Attendee)
            .collect())
    }
    /// Occurrences overlapping a range (at most 366 days).
    async fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<Vec<Slot>> {
        let range = Range::new(from, to)?;
        Ok(calendar::occurrences_of(&self.0, range.from, range.to)?
            .into_iter()
            .map(Slot::from)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct Attendee(pub event_attendee::Model);

#[Object]
impl Attendee {
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match self.0.user_id {
            Some(id) => user_field(ctx, id).await,
            None => Ok(None),
        }
    }
    /// Null when it is a user, or a contact you may not see.
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        Ok(subject_fields(ctx, (None, self.0.contact_id, None))
            .await?
            .1)
    }
    async fn response(&self) -> AttendeeResponse {
        self.0.response.into()
    }
}

/// A span of time.
#[derive(SimpleObject, Clone, Copy)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl From<Occurrence> for Slot {
    fn from(o: Occurrence) -> Self {
        Slot {
            starts_at: o.starts_at,
            ends_at: o.ends_at,
        }
    }
}

/// One occurrence of an event.
pub struct EventOccurrence(pub event::Model, pub Occurrence);

#[Object]
impl EventOccurrence {
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
    async fn starts_at(&self) -> DateTime<Utc> {
        self.1.starts_at
    }
    async fn ends_at(&self) -> DateTime<Utc> {
        self.1.ends_at
    }
}

pub struct Task(pub task::Model);

#[Object]
impl Task {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Task, self.0.id)
    }
    async fn kind(&self) -> TaskKind {
        self.0.kind.into()
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        user_field(ctx, self.0.assignee_id).await
    }
    async fn due_at(&self) -> Option<DateTime<Utc>> {
        self.0.due_at
    }
    async fn status(&self) -> TaskStatus {
        self.0.status.into()
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn account(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        Ok(subject_fields(ctx, (self.0.account_id, None, None))
            .await?
            .0)
    }
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        Ok(subject_fields(ctx, (None, self.0.contact_id, None))
            .await?
            .1)
    }
    async fn opportunity(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Opportunity>> {
        Ok(subject_fields(ctx, (None, None, self.0.opportunity_id))
            .await?
            .2)
    }
    /// The stage-script version that created it, if a script did.
    async fn script(&self) -> Option<ID> {
        self.0.script_id.map(|id| encode(NodeKind::StageScript, id))
    }
}

/// Someone's time is taken during (part of) a proposed event.
#[derive(SimpleObject)]
pub struct BusyConflict {
    pub user: ID,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct EventPayload {
    pub event: Event,
    /// Busy blocks of the organizer and invited users that overlap this event in the
    /// next 90 days. A warning, not a refusal.
    pub conflicts: Vec<BusyConflict>,
}

fn payload((event, busy): (event::Model, Vec<calendar::Busy>)) -> EventPayload {
    EventPayload {
        event: Event(event),
        conflicts: busy
            .into_iter()
            .map(|b| BusyConflict {
                user: encode(NodeKind::User, b.user_id),
                starts_at: b.starts_at,
                ends_at: b.ends_at,
            })
            .collect(),
    }
}

pub struct Calendar(calendar::CalendarView);

#[Object]
impl Calendar {
    /// Event occurrences overlapping the range, recurrences expanded, by start.
    async fn occurrences(&self) -> Vec<EventOccurrence> {
        self.0
            .occurrences
            .iter()
            .map(|(e, o)| EventOccurrence(e.clone(), *o))
            .collect()
    }
    /// Tasks due in the range, by due time.
    async fn tasks(&self) -> Vec<Task> {
        self.0.tasks.iter().cloned().map(Task).collect()
    }
}

#[derive(SimpleObject)]
pub struct FreeBusy {
    pub user: ID,
    /// Merged busy blocks, in order.
    pub busy: Vec<Slot>,
}

pub struct Conflict(calendar::Conflict);

#[Object]
impl Conflict {
    async fn first(&self) -> EventOccurrence {
        EventOccurrence(self.0.first.0.clone(), self.0.first.1)
    }
    async fn second(&self) -> EventOccurrence {
        EventOccurrence(self.0.second.0.clone(), self.0.second.1)
    }
}

/// Whose calendar: some users, a team, or (neither) yours.
#[derive(InputObject, Default)]
pub struct CalendarOf {
    pub user_ids: Option<Vec<ID>>,
    /// Every member of this territory.
    pub team_id: Option<ID>,
}

fn whose(of: Option<CalendarOf>) -> async_graphql::Result<Whose> {
    let of = of.unwrap_or_default();
    let user_ids = of
        .user_ids
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, id)| decode(&format!("of.userIds[{i}]"), id, NodeKind::User))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Whose {
        user_ids,
        territory_id: decode_opt("of.teamId", of.team_id.as_ref(), NodeKind::Territory)?,
    })
}

#[derive(InputObject)]
pub struct CreateEventInput {
    pub kind: EventKind,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA time zone (`Europe/Berlin`); recurrences follow its wall clock.
    pub time_zone: String,
    /// RFC 5545 RRULE value, e.g. `FREQ=WEEKLY;BYDAY=TU;COUNT=10`.
    pub rrule: Option<String>,
    /// Starts of single occurrences to leave out.
    pub exdates: Option<Vec<DateTime<Utc>>>,
    /// The account, contact or opportunity it is about (at most one); it then follows
    /// that record's territory permissions.
    pub subject_id: Option<ID>,
    pub attendee_user_ids: Option<Vec<ID>>,
    pub attendee_contact_ids: Option<Vec<ID>>,
    /// Remind the organizer and attending users this many minutes before each
    /// occurrence.
    pub remind_minutes_before: Option<i32>,
}

#[derive(InputObject)]
pub struct UpdateEventInput {
    pub id: ID,
    /// The version you read; a stale one answers CONFLICT.
    pub version: i32,
    pub kind: Option<EventKind>,
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    pub location: MaybeUndefined<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    pub rrule: MaybeUndefined<String>,
    /// Replaces the list. Moving the start or time zone clears it unless given.
    pub exdates: Option<Vec<DateTime<Utc>>>,
    pub attendee_user_ids: Option<Vec<ID>>,
    pub attendee_contact_ids: Option<Vec<ID>>,
    pub remind_minutes_before: MaybeUndefined<i32>,
}

#[derive(InputObject)]
pub struct CreateTaskInput {
    pub title: String,
    pub description: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    /// You by default; someone else takes a sales manager or admin.
    pub assignee_id: Option<ID>,
    pub subject_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateTaskInput {
    pub id: ID,
    pub version: i32,
    pub title: Option<String>,
    pub description: MaybeUndefined<String>,
    pub due_at: MaybeUndefined<DateTime<Utc>>,
    pub status: Option<TaskStatus>,
    pub assignee_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct CalendarFeed {
    /// The secret token; shown once. Anyone with it can read your calendar.
    pub token: String,
    /// Path of the feed on this server (`/calendar/<token>.ics`); subscribe to it
    /// with the server's public address in front (`webcal://` works too).
    pub path: String,
    /// The whole address to subscribe to, when the server knows its public address
    /// (`ACCORD_PUBLIC_URL`); null otherwise.
    pub url: Option<String>,
}

#[derive(SimpleObject)]
pub struct ImportReport {
    pub events_created: u32,
    pub events_updated: u32,
    pub tasks_created: u32,
    pub tasks_updated: u32,
}

fn subject(field: &str, id: Option<&ID>) -> async_graphql::Result<Option<Subject>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let (kind, raw) = crate::graphql::ids::decode_any(field, id)?;
    Ok(Some(match kind {
        NodeKind::Account => Subject::Account(raw),
        NodeKind::Contact => Subject::Contact(raw),
        NodeKind::Opportunity => Subject::Opportunity(raw),
        _ => {
            return Err(crate::error::AppError::validation(
                field,
                "must be the ID of an account, a contact or an opportunity",
            )
            .into());
        }
    }))
}

fn ids(field: &str, list: &[ID], kind: NodeKind) -> async_graphql::Result<Vec<i64>> {
    Ok(list
        .iter()
        .enumerate()
        .map(|(i, id)| decode(&format!("{field}[{i}]"), id, kind))
        .collect::<Result<Vec<_>, _>>()?)
}

#[derive(Default)]
pub struct CalendarQuery;

#[Object]
impl CalendarQuery {
    /// A calendar over a range (at most 366 days): yours, some users', or a team's.
    /// Shows the events and tasks you may see.
    async fn calendar(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        of: Option<CalendarOf>,
    ) -> async_graphql::Result<Calendar> {
        let view = calendar::calendar(
            services(ctx),
            actor(ctx)?,
            whose(of)?,
            Range::new(from, to)?,
        )
        .await?;
        Ok(Calendar(view))
    }

    /// When people are busy (times only, whatever the events are).
    async fn free_busy(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        of: Option<CalendarOf>,
    ) -> async_graphql::Result<Vec<FreeBusy>> {
        let found = calendar::free_busy(
            services(ctx),
            actor(ctx)?,
            whose(of)?,
            Range::new(from, to)?,
        )
        .await?;
        Ok(found
            .into_iter()
            .map(|(user, busy)| FreeBusy {
                user: encode(NodeKind::User, user),
                busy: busy.into_iter().map(Slot::from).collect(),
            })
            .collect())
    }

    /// Overlapping occurrences in one person's calendar (yours by default).
    async fn calendar_conflicts(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<Vec<Conflict>> {
        let user = decode_opt("userId", user_id.as_ref(), NodeKind::User)?;
        let found =
            calendar::conflicts(services(ctx), actor(ctx)?, user, Range::new(from, to)?).await?;
        Ok(found.into_iter().map(Conflict).collect())
    }

    /// When your calendar feed was created, if you have one.
    async fn calendar_feed_created_at(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DateTime<Utc>>> {
        Ok(ical::feed_created_at(services(ctx), actor(ctx)?).await?)
    }
}

#[derive(Default)]
pub struct CalendarMutation;

#[Object]
impl CalendarMutation {
    async fn create_event(
        &self,
        ctx: &Context<'_>,
        input: CreateEventInput,
    ) -> async_graphql::Result<EventPayload> {
        let input = calendar::EventInput {
            kind: input.kind.into(),
            title: input.title,
            description: input.description,
            location: input.location,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            time_zone: input.time_zone,
            rrule: input.rrule,
            exdates: input.exdates.unwrap_or_default(),
            subject: subject("input.subjectId", input.subject_id.as_ref())?,
            attendee_user_ids: ids(
                "input.attendeeUserIds",
                &input.attendee_user_ids.unwrap_or_default(),
                NodeKind::User,
            )?,
            attendee_contact_ids: ids(
                "input.attendeeContactIds",
                &input.attendee_contact_ids.unwrap_or_default(),
                NodeKind::Contact,
            )?,
            remind_minutes_before: input.remind_minutes_before,
        };
        Ok(payload(
            calendar::create_event(services(ctx), actor(ctx)?, input).await?,
        ))
    }

    async fn update_event(
        &self,
        ctx: &Context<'_>,
        input: UpdateEventInput,
    ) -> async_graphql::Result<EventPayload> {
        let id = decode("input.id", &input.id, NodeKind::Event)?;
        let patch = calendar::EventPatch {
            kind: input.kind.map(Into::into),
            title: input.title,
            description: input.description.into(),
            location: input.location.into(),
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            time_zone: input.time_zone,
            rrule: input.rrule.into(),
            exdates: input.exdates,
            attendee_user_ids: input
                .attendee_user_ids
                .map(|l| ids("input.attendeeUserIds", &l, NodeKind::User))
                .transpose()?,
            attendee_contact_ids: input
                .attendee_contact_ids
                .map(|l| ids("input.attendeeContactIds", &l, NodeKind::Contact))
                .transpose()?,
            remind_minutes_before: input.remind_minutes_before.into(),
        };
        Ok(payload(
            calendar::update_event(services(ctx), actor(ctx)?, id, input.version, patch).await?,
        ))
    }

    /// Cancels an event (every occurrence); its reminders end, feeds show it cancelled.
    async fn cancel_event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Event> {
        let id = decode("id", &id, NodeKind::Event)?;
        Ok(Event(
            calendar::cancel_event(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// Answers an invitation; declining ends your reminders for it.
    async fn respond_to_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        response: AttendeeResponse,
    ) -> async_graphql::Result<Event> {
        let id = decode("id", &id, NodeKind::Event)?;
        Ok(Event(
            calendar::respond(services(ctx), actor(ctx)?, id, response.into()).await?,
        ))
    }

    async fn create_task(
        &self,
        ctx: &Context<'_>,
        input: CreateTaskInput,
    ) -> async_graphql::Result<Task> {
        let input = tasks::TaskInput {
            title: input.title,
            description: input.description,
            due_at: input.due_at,
            assignee_id: decode_opt(
                "input.assigneeId",
                input.assignee_id.as_ref(),
                NodeKind::User,
            )?,
            subject: subject("input.subjectId", input.subject_id.as_ref())?,
        };
        Ok(Task(
            tasks::create(services(ctx), actor(ctx)?, input).await?,
        ))
    }

    async fn update_task(
        &self,
        ctx: &Context<'_>,
        input: UpdateTaskInput,
    ) -> async_graphql::Result<Task> {
        let id = decode("input.id", &input.id, NodeKind::Task)?;
        let patch = tasks::TaskPatch {
            title: input.title,
            description: input.description.into(),
            due_at: input.due_at.into(),
            status: input.status.map(Into::into),
            assignee_id: decode_opt(
                "input.assigneeId",
                input.assignee_id.as_ref(),
                NodeKind::User,
            )?,
        };
        Ok(Task(
            tasks::update(services(ctx), actor(ctx)?, id, input.version, patch).await?,
        ))
    }

    /// A new secret feed URL for your calendar; any earlier one stops working.
    async fn create_calendar_feed(&self, ctx: &Context<'_>) -> async_graphql::Result<CalendarFeed> {
        let token = ical::create_feed(services(ctx), actor(ctx)?).await?;
        let path = format!("/calendar/{token}.ics");
        let url = ctx
            .data::<crate::config::Limits>()
            .ok()
            .and_then(|limits| limits.public_url_of(&path));
        Ok(CalendarFeed { path, url, token })
    }

    /// Stops your feed URL from working. Answers whether there was one.
    async fn revoke_calendar_feed(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(ical::revoke_feed(services(ctx), actor(ctx)?).await?)
    }

    /// Imports an `.ics` file (at most 1 MiB) into your calendar, all or nothing. Dates
    /// and floating times are read in `timeZone`. Importing again updates, never
    /// duplicates.
    async fn import_calendar(
        &self,
        ctx: &Context<'_>,
        ics: String,
        #[graphql(default = "UTC")] time_zone: String,
    ) -> async_graphql::Result<ImportReport> {
        let r = ical::import(services(ctx), actor(ctx)?, &ics, &time_zone).await?;
        Ok(ImportReport {
            events_created: r.events_created,
            events_updated: r.events_updated,
            tasks_created: r.tasks_created,
            tasks_updated: r.tasks_updated,
        })
    }
}
