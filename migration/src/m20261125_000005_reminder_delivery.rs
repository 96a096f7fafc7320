//! Delivering reminders: when a reminder may next be claimed (`attempt_at`: its due time,
//! a retry's backoff, or the end of a delivery lease), who holds the lease, which
//! channels it goes to and which of them already have it, the last failure, and the
//! webhooks reps and teams receive reminders at.

use sea_orm_migration::prelude::ForeignKeyAction::Cascade;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reminders {
    Table,
    DueAt,
    AttemptAt,
    LeaseOwner,
    Channels,
    DeliveredChannels,
    LastError,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    UserId,
    TerritoryId,
    Url,
    Secret,
    Description,
    Active,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Territories {
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE; a NOT NULL column needs a constant
        // default, replaced by the real value right after.
        let columns = [
            ColumnDef::new(Reminders::AttemptAt)
                .timestamp_with_time_zone()
                .not_null()
                .default("1970-01-01 00:00:00+00:00")
                .to_owned(),
            ColumnDef::new(Reminders::LeaseOwner)
                .string_len(100)
                .null()
                .to_owned(),
            ColumnDef::new(Reminders::Channels)
                .string_len(64)
                .not_null()
                .default("in_app,webhook,email")
                .to_owned(),
            ColumnDef::new(Reminders::DeliveredChannels)
                .string_len(500)
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Reminders::LastError)
                .string_len(500)
                .null()
                .to_owned(),
            ColumnDef::new(Reminders::DeliveredAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Reminders::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .exec_stmt(
                Query::update()
                    .table(Reminders::Table)
                    .value(Reminders::AttemptAt, Expr::col(Reminders::DueAt))
                    .to_owned(),
            )
            .await?;
        // What a scheduler claims: pending reminders by the time they may next go out.
        manager
            .create_index(
                Index::create()
                    .name("ix_reminders_claim")
                    .table(Reminders::Table)
                    .col(Alias::new("status"))
                    .col(Reminders::AttemptAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(big_pk_auto(Webhooks::Id))
                    .col(big_integer_null(Webhooks::UserId))
                    .col(big_integer_null(Webhooks::TerritoryId))
                    .col(string_len(Webhooks::Url, 2048))
                    .col(string_len(Webhooks::Secret, 128))
                    .col(string_len_null(Webhooks::Description, 200))
                    .col(boolean(Webhooks::Active).default(true))
                    .col(big_integer_null(Webhooks::CreatedBy))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_webhooks_user",
                        (Webhooks::Table, Webhooks::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_webhooks_territory",
                        (Webhooks::Table, Webhooks::TerritoryId),
                        (Territories::Table, Territories::Id),
                    ))
                    .check(
                        Expr::col(Webhooks::UserId)
                            .is_null()
                            .ne(Expr::col(Webhooks::TerritoryId).is_null()),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhooks_user")
                    .table(Webhooks::Table)
                    .col(Webhooks::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhooks_territory")
                    .table(Webhooks::Table)
                    .col(Webhooks::TerritoryId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_reminders_claim")
                    .table(Reminders::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Reminders::DeliveredAt,
            Reminders::LastError,
            Reminders::DeliveredChannels,
            Reminders::Channels,
            Reminders::LeaseOwner,
            Reminders::AttemptAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Reminders::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
