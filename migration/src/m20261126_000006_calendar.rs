//! Calendars: events (meetings, calls, demos) with their recurrence and attendees,
//! tasks that link to accounts and contacts as well as deals and can be edited under a
//! version, the secret calendar-feed tokens, and reminders that hang on an event.

use sea_orm_migration::prelude::ForeignKeyAction::Cascade;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    OwnerId,
    Kind,
    Title,
    Description,
    Location,
    StartsAt,
    EndsAt,
    TimeZone,
    Rrule,
    Exdates,
    SeriesEndsAt,
    AccountId,
    ContactId,
    OpportunityId,
    Status,
    RemindMinutesBefore,
    IcsUid,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EventAttendees {
    Table,
    Id,
    EventId,
    UserId,
    ContactId,
    Response,
}

#[derive(DeriveIden)]
enum CalendarFeeds {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    AssigneeId,
    DueAt,
    AccountId,
    ContactId,
    Description,
    Version,
    CompletedAt,
    CreatedBy,
    IcsUid,
}

#[derive(DeriveIden)]
enum Reminders {
    Table,
    EventId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    Id,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(Cascade)
        .to_owned()
}

fn index(name: &str, table: impl IntoIden, cols: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(Alias::new(*col));
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_pk_auto(Events::Id))
                    .col(big_integer(Events::OwnerId))
                    .col(string_len(Events::Kind, 16))
                    .col(string_len(Events::Title, 200))
                    .col(text_null(Events::Description))
                    .col(string_len_null(Events::Location, 500))
                    .col(timestamp_with_time_zone(Events::StartsAt))
                    .col(timestamp_with_time_zone(Events::EndsAt))
                    .col(string_len(Events::TimeZone, 64))
                    .col(string_len_null(Events::Rrule, 1000))
                    .col(text(Events::Exdates).default("[]"))
                    .col(timestamp_with_time_zone_null(Events::SeriesEndsAt))
                    .col(big_integer_null(Events::AccountId))
                    .col(big_integer_null(Events::ContactId))
                    .col(big_integer_null(Events::OpportunityId))
                    .col(string_len(Events::Status, 16))
                    .col(integer_null(Events::RemindMinutesBefore))
                    .col(string_len(Events::IcsUid, 255))
                    .col(integer(Events::Version).default(1))
                    .col(timestamp_with_time_zone(Events::CreatedAt))
                    .col(timestamp_with_time_zone(Events::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_events_owner",
                        (Events::Table, Events::OwnerId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_events_account",
                        (Events::Table, Events::AccountId),
                        (Accounts::Table, Accounts::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_events_contact",
                        (Events::Table, Events::ContactId),
                        (Contacts::Table, Contacts::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_events_opportunity",
                        (Events::Table, Events::OpportunityId),
                        (Opportunities::Table, Opportunities::Id),
                    ))
                    // An event hangs on at most one record.
                    .check(Expr::cust(
                        "(CASE WHEN account_id IS NULL THEN 0 ELSE 1 END) + \
                         (CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END) + \
                         (CASE WHEN opportunity_id IS NULL THEN 0 ELSE 1 END) <= 1",
                    ))
                    .check(Expr::cust("ends_at > starts_at"))
                    .to_owned(),
            )
            .await?;
        // Range queries: what starts before the range ends, and may still run into it.
        manager
            .create_index(index(
                "ix_events_owner_start",
                Events::Table,
                &["owner_id", "starts_at"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_events_series_end",
                Events::Table,
                &["series_ends_at"],
            ))
            .await?;
        // An imported event is updated, not duplicated, when its file is imported again.
        manager
            .create_index(
                index(
                    "ux_events_owner_uid",
                    Events::Table,
                    &["owner_id", "ics_uid"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_events_account", "account_id"),
            ("ix_events_contact", "contact_id"),
            ("ix_events_opportunity", "opportunity_id"),
        ] {
            manager
                .create_index(index(name, Events::Table, &[col]))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(EventAttendees::Table)
                    .col(big_pk_auto(EventAttendees::Id))
                    .col(big_integer(EventAttendees::EventId))
                    .col(big_integer_null(EventAttendees::UserId))
                    .col(big_integer_null(EventAttendees::ContactId))
                    .col(string_len(EventAttendees::Response, 16))
                    .foreign_key(&mut fk(
                        "fk_event_attendees_event",
                        (EventAttendees::Table, EventAttendees::EventId),
                        (Events::Table, Events::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_event_attendees_user",
                        (EventAttendees::Table, EventAttendees::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_event_attendees_contact",
                        (EventAttendees::Table, EventAttendees::ContactId),
                        (Contacts::Table, Contacts::Id),
                    ))
                    .check(Expr::cust("(user_id IS NULL) <> (contact_id IS NULL)"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_event_attendees_user",
                    EventAttendees::Table,
                    &["user_id", "event_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_event_attendees_contact",
                    EventAttendees::Table,
                    &["event_id", "contact_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CalendarFeeds::Table)
                    .col(big_pk_auto(CalendarFeeds::Id))
                    .col(big_integer_uniq(CalendarFeeds::UserId))
                    .col(string_len_uniq(CalendarFeeds::TokenHash, 64))
                    .col(timestamp_with_time_zone(CalendarFeeds::CreatedAt))
                    .col(timestamp_with_time_zone_null(CalendarFeeds::LastUsedAt))
                    .foreign_key(&mut fk(
                        "fk_calendar_feeds_user",
                        (CalendarFeeds::Table, CalendarFeeds::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        // SQLite adds one column per ALTER TABLE.
        let task_columns = [
            ColumnDef::new(Tasks::AccountId)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::ContactId)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::Description)
                .string_len(2000)
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::Version)
                .integer()
                .not_null()
                .default(1)
                .to_owned(),
            ColumnDef::new(Tasks::CompletedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::CreatedBy)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::IcsUid)
                .string_len(255)
                .null()
                .to_owned(),
        ];
        for mut column in task_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_tasks_assignee_due")
                    .table(Tasks::Table)
                    .col(Tasks::AssigneeId)
                    .col(Tasks::DueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Reminders::Table)
                    .add_column(
                        ColumnDef::new(Reminders::EventId)
                            .big_integer()
                            .null()
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("ix_reminders_event", Reminders::Table, &["event_id"]))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_reminders_event")
                    .table(Reminders::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Reminders::Table)
                    .drop_column(Reminders::EventId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_tasks_assignee_due")
                    .table(Tasks::Table)
                    .to_owned(),
            )
            .await?;
        for col in [
            Tasks::AccountId,
            Tasks::ContactId,
            Tasks::Description,
            Tasks::Version,
            Tasks::CompletedAt,
            Tasks::CreatedBy,
            Tasks::IcsUid,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            CalendarFeeds::Table.into_iden(),
            EventAttendees::Table.into_iden(),
            Events::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
