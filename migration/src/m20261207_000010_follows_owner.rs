//! Reminders and tasks a stage script addressed to "the owner" follow the deal's owner:
//! when a deal changes hands, its pending ones go to the new owner instead of staying
//! with someone who may no longer work the deal (or may no longer read it, in which
//! case the scheduler would cancel them).
//!
//! Existing rows are marked where the script's target can be told from the row: made by
//! a script, for the deal's current owner.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Reminders {
    Table,
    FollowsOwner,
    RecipientId,
    OpportunityId,
    ScriptId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    FollowsOwner,
    AssigneeId,
    OpportunityId,
    ScriptId,
}

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    Id,
    OwnerId,
}

fn follows_owner(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column)
        .boolean()
        .not_null()
        .default(false)
        .to_owned()
}

/// `person` is the owner of the row's deal.
fn is_deal_owner(
    table: impl IntoIden + Copy + 'static,
    deal: impl IntoIden + Copy + 'static,
    person: impl IntoIden + Copy + 'static,
) -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(Opportunities::Table)
            .and_where(Expr::col((Opportunities::Table, Opportunities::Id)).equals((table, deal)))
            .and_where(
                Expr::col((Opportunities::Table, Opportunities::OwnerId)).equals((table, person)),
            )
            .to_owned(),
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Reminders::Table)
                    .add_column(follows_owner(Reminders::FollowsOwner))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(follows_owner(Tasks::FollowsOwner))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Reminders::Table)
                    .value(Reminders::FollowsOwner, true)
                    .and_where(Expr::col((Reminders::Table, Reminders::ScriptId)).is_not_null())
                    .and_where(is_deal_owner(
                        Reminders::Table,
                        Reminders::OpportunityId,
                        Reminders::RecipientId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Tasks::Table)
                    .value(Tasks::FollowsOwner, true)
                    .and_where(Expr::col((Tasks::Table, Tasks::ScriptId)).is_not_null())
                    .and_where(is_deal_owner(
                        Tasks::Table,
                        Tasks::OpportunityId,
                        Tasks::AssigneeId,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .drop_column(Tasks::FollowsOwner)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Reminders::Table)
                    .drop_column(Reminders::FollowsOwner)
                    .to_owned(),
            )
            .await
    }
}
