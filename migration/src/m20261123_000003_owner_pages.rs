//! A deal's owner sees it wherever it lies, so a territory-bound caller's deal list is
//! the union of their territories' deals and their own. Each part of that union is read
//! in page order straight from an index: (territory_id, created_at, id) exists already;
//! this adds the owner's side.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    OwnerId,
    CreatedAt,
    Id,
}

const NAME: &str = "ix_opportunities_owner_created";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(NAME)
                    .table(Opportunities::Table)
                    .col(Opportunities::OwnerId)
                    .col(Opportunities::CreatedAt)
                    .col(Opportunities::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(NAME)
                    .table(Opportunities::Table)
                    .to_owned(),
            )
            .await
    }
}
