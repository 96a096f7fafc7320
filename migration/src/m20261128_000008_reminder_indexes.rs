//! Reminder indexes shaped by what reads them, so delivering a reminder writes fewer
//! index entries. Each delivery updates a reminder twice (claim, acknowledgement) and
//! both updates change indexed columns, so every index gains an entry each time:
//! - the scheduler's claim index holds only pending reminders (what it scans), so a
//!   delivered, dead or cancelled reminder leaves it;
//! - the opportunity and event indexes hold only reminders that have one;
//! - `(status, due_at)`, which no query used, gives way to `(recipient_id, due_at)`,
//!   which the reminder list, the calendar feed and the recipient's foreign key need.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reminders {
    Table,
    Status,
    DueAt,
    AttemptAt,
    RecipientId,
    OpportunityId,
    EventId,
}

fn drop(name: &str) -> IndexDropStatement {
    Index::drop().name(name).table(Reminders::Table).to_owned()
}

impl Migration {
    fn new_indexes() -> Vec<IndexCreateStatement> {
        vec![
            Index::create()
                .name("ix_reminders_pending")
                .table(Reminders::Table)
                .col(Reminders::AttemptAt)
                .and_where(Expr::col(Reminders::Status).eq("pending"))
                .to_owned(),
            Index::create()
                .name("ix_reminders_recipient_due")
                .table(Reminders::Table)
                .col(Reminders::RecipientId)
                .col(Reminders::DueAt)
                .to_owned(),
            Index::create()
                .name("ix_reminders_opportunity_only")
                .table(Reminders::Table)
                .col(Reminders::OpportunityId)
                .col(Reminders::Status)
                .and_where(Expr::col(Reminders::OpportunityId).is_not_null())
                .to_owned(),
            Index::create()
                .name("ix_reminders_event_only")
                .table(Reminders::Table)
                .col(Reminders::EventId)
                .and_where(Expr::col(Reminders::EventId).is_not_null())
                .to_owned(),
        ]
    }

    fn old_indexes() -> Vec<IndexCreateStatement> {
        vec![
            Index::create()
                .name("ix_reminders_claim")
                .table(Reminders::Table)
                .col(Reminders::Status)
                .col(Reminders::AttemptAt)
                .to_owned(),
            Index::create()
                .name("ix_reminders_status_due")
                .table(Reminders::Table)
                .col(Reminders::Status)
                .col(Reminders::DueAt)
                .to_owned(),
            Index::create()
                .name("ix_reminders_opportunity")
                .table(Reminders::Table)
                .col(Reminders::OpportunityId)
                .col(Reminders::Status)
                .to_owned(),
            Index::create()
                .name("ix_reminders_event")
                .table(Reminders::Table)
                .col(Reminders::EventId)
                .to_owned(),
        ]
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in Self::new_indexes() {
            manager.create_index(index).await?;
        }
        for index in Self::old_indexes() {
            let name = index
                .get_index_spec()
                .get_name()
                .unwrap_or_default()
                .to_owned();
            manager.drop_index(drop(&name)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in Self::old_indexes() {
            manager.create_index(index).await?;
        }
        for index in Self::new_indexes() {
            let name = index
                .get_index_spec()
                .get_name()
                .unwrap_or_default()
                .to_owned();
            manager.drop_index(drop(&name)).await?;
        }
        Ok(())
    }
}
