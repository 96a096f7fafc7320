//! A deal's buying committee in the order every reader lists it (oldest role first), so
//! reading the committees of a page of deals walks one index instead of sorting them all:
//! the unique `(opportunity_id, contact_id, role)` index finds the rows but not in that
//! order, and the nested opportunity list paid for a temporary sort on every request.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OpportunityContactRoles {
    Table,
    OpportunityId,
    CreatedAt,
    Id,
}

const NAME: &str = "ix_ocr_opportunity_created";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(OpportunityContactRoles::Table)
                    .col(OpportunityContactRoles::OpportunityId)
                    .col(OpportunityContactRoles::CreatedAt)
                    .col(OpportunityContactRoles::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(NAME)
                    .table(OpportunityContactRoles::Table)
                    .to_owned(),
            )
            .await
    }
}
