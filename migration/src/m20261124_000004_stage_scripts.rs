//! Stage scripts and what they create: every version of every stage's script (drafts,
//! the published one, archived ones), the reminders and tasks scripts schedule, and the
//! script version each stage transition ran.

use sea_orm_migration::prelude::ForeignKeyAction::{Cascade, SetNull};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StageScripts {
    Table,
    Id,
    StageId,
    Version,
    Source,
    Status,
    Note,
    AuthorId,
    CreatedAt,
    PublishedAt,
    PublishedBy,
    ArchivedAt,
}

#[derive(DeriveIden)]
enum Reminders {
    Table,
    Id,
    RecipientId,
    OpportunityId,
    Message,
    DueAt,
    Anchor,
    OffsetMinutes,
    Status,
    Attempts,
    IdempotencyKey,
    LeaseUntil,
    ScriptId,
    StageId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    Kind,
    AssigneeId,
    OpportunityId,
    Title,
    DueAt,
    Anchor,
    OffsetMinutes,
    Status,
    ScriptId,
    StageId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StageTransitions {
    Table,
    ScriptId,
}

#[derive(DeriveIden)]
enum Pipelines {
    Table,
    ManagerId,
}

#[derive(DeriveIden)]
enum Stages {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
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
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StageScripts::Table)
                    .col(big_pk_auto(StageScripts::Id))
                    .col(big_integer(StageScripts::StageId))
                    .col(integer(StageScripts::Version))
                    .col(text(StageScripts::Source))
                    .col(string_len(StageScripts::Status, 16))
                    .col(string_len_null(StageScripts::Note, 500))
                    .col(big_integer_null(StageScripts::AuthorId))
                    .col(timestamp_with_time_zone(StageScripts::CreatedAt))
                    .col(timestamp_with_time_zone_null(StageScripts::PublishedAt))
                    .col(big_integer_null(StageScripts::PublishedBy))
                    .col(timestamp_with_time_zone_null(StageScripts::ArchivedAt))
                    .foreign_key(&mut fk(
                        "fk_stage_scripts_stage",
                        (StageScripts::Table, StageScripts::StageId),
                        (Stages::Table, Stages::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_stage_scripts_author",
                        (StageScripts::Table, StageScripts::AuthorId),
                        (Users::Table, Users::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_stage_scripts_stage_version")
                    .table(StageScripts::Table)
                    .col(StageScripts::StageId)
                    .col(StageScripts::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // At most one published version per stage, whatever races.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_stage_scripts_published ON stage_scripts (stage_id) \
                 WHERE status = 'published'",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reminders::Table)
                    .col(big_pk_auto(Reminders::Id))
                    .col(big_integer(Reminders::RecipientId))
                    .col(big_integer_null(Reminders::OpportunityId))
                    .col(string_len(Reminders::Message, 500))
                    .col(timestamp_with_time_zone(Reminders::DueAt))
                    .col(string_len_null(Reminders::Anchor, 32))
                    .col(big_integer(Reminders::OffsetMinutes).default(0))
                    .col(string_len(Reminders::Status, 16))
                    .col(integer(Reminders::Attempts).default(0))
                    .col(string_len_uniq(Reminders::IdempotencyKey, 100))
                    .col(timestamp_with_time_zone_null(Reminders::LeaseUntil))
                    .col(big_integer_null(Reminders::ScriptId))
                    .col(big_integer_null(Reminders::StageId))
                    .col(timestamp_with_time_zone(Reminders::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_reminders_recipient",
                        (Reminders::Table, Reminders::RecipientId),
                        (Users::Table, Users::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_reminders_opportunity",
                        (Reminders::Table, Reminders::OpportunityId),
                        (Opportunities::Table, Opportunities::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_reminders_status_due")
                    .table(Reminders::Table)
                    .col(Reminders::Status)
                    .col(Reminders::DueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_reminders_opportunity")
                    .table(Reminders::Table)
                    .col(Reminders::OpportunityId)
                    .col(Reminders::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(big_pk_auto(Tasks::Id))
                    .col(string_len(Tasks::Kind, 16))
                    .col(big_integer(Tasks::AssigneeId))
                    .col(big_integer_null(Tasks::OpportunityId))
                    .col(string_len(Tasks::Title, 500))
                    .col(timestamp_with_time_zone_null(Tasks::DueAt))
                    .col(string_len_null(Tasks::Anchor, 32))
                    .col(big_integer(Tasks::OffsetMinutes).default(0))
                    .col(string_len(Tasks::Status, 16))
                    .col(big_integer_null(Tasks::ScriptId))
                    .col(big_integer_null(Tasks::StageId))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_tasks_assignee",
                        (Tasks::Table, Tasks::AssigneeId),
                        (Users::Table, Users::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_tasks_opportunity",
                        (Tasks::Table, Tasks::OpportunityId),
                        (Opportunities::Table, Opportunities::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tasks_opportunity")
                    .table(Tasks::Table)
                    .col(Tasks::OpportunityId)
                    .col(Tasks::Status)
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(StageTransitions::Table)
                    .add_column(big_integer_null(StageTransitions::ScriptId))
                    .to_owned(),
            )
            .await?;
        // The sales manager responsible for a pipeline's scripts (none: any manager).
        manager
            .alter_table(
                Table::alter()
                    .table(Pipelines::Table)
                    .add_column(big_integer_null(Pipelines::ManagerId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pipelines::Table)
                    .drop_column(Pipelines::ManagerId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StageTransitions::Table)
                    .drop_column(StageTransitions::ScriptId)
                    .to_owned(),
            )
            .await?;
        for table in ["tasks", "reminders", "stage_scripts"] {
            manager
                .drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
