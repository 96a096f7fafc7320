//! Influence maps: typed, directed edges between contacts (who influences, champions for,
//! blocks, mentors or used to work with whom) and our own users' relationships with
//! contacts (how well they know them, when they last spoke).

use sea_orm_migration::prelude::ForeignKeyAction::{Cascade, SetNull};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ContactInfluences {
    Table,
    Id,
    FromContactId,
    ToContactId,
    Kind,
    Strength,
    Note,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum ContactRelationships {
    Table,
    Id,
    UserId,
    ContactId,
    Strength,
    LastContactOn,
    Note,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
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

fn index(name: &str, table: impl IntoIden, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(Alias::new(*col));
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ContactInfluences::Table)
                    .col(big_pk_auto(ContactInfluences::Id))
                    .col(big_integer(ContactInfluences::FromContactId))
                    .col(big_integer(ContactInfluences::ToContactId))
                    .col(string_len(ContactInfluences::Kind, 24))
                    .col(integer(ContactInfluences::Strength))
                    .col(string_len_null(ContactInfluences::Note, 2000))
                    .col(big_integer_null(ContactInfluences::CreatedBy))
                    .col(timestamp_with_time_zone(ContactInfluences::CreatedAt))
                    .col(timestamp_with_time_zone(ContactInfluences::UpdatedAt))
                    .col(integer(ContactInfluences::Version).default(1))
                    .foreign_key(&mut fk(
                        "fk_contact_influences_from",
                        (ContactInfluences::Table, ContactInfluences::FromContactId),
                        (Contacts::Table, Contacts::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_contact_influences_to",
                        (ContactInfluences::Table, ContactInfluences::ToContactId),
                        (Contacts::Table, Contacts::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_contact_influences_created_by",
                        (ContactInfluences::Table, ContactInfluences::CreatedBy),
                        (Users::Table, Users::Id),
                        SetNull,
                    ))
                    .check(Expr::cust("from_contact_id <> to_contact_id"))
                    .check(Expr::cust("strength BETWEEN 1 AND 5"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_contact_influences_edge",
                ContactInfluences::Table,
                &["from_contact_id", "to_contact_id", "kind"],
                true,
            ))
            .await?;
        manager
            .create_index(index(
                "ix_contact_influences_to",
                ContactInfluences::Table,
                &["to_contact_id"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactRelationships::Table)
                    .col(big_pk_auto(ContactRelationships::Id))
                    .col(big_integer(ContactRelationships::UserId))
                    .col(big_integer(ContactRelationships::ContactId))
                    .col(integer(ContactRelationships::Strength))
                    .col(date_null(ContactRelationships::LastContactOn))
                    .col(string_len_null(ContactRelationships::Note, 2000))
                    .col(timestamp_with_time_zone(ContactRelationships::CreatedAt))
                    .col(timestamp_with_time_zone(ContactRelationships::UpdatedAt))
                    .col(integer(ContactRelationships::Version).default(1))
                    .foreign_key(&mut fk(
                        "fk_contact_relationships_user",
                        (ContactRelationships::Table, ContactRelationships::UserId),
                        (Users::Table, Users::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_contact_relationships_contact",
                        (ContactRelationships::Table, ContactRelationships::ContactId),
                        (Contacts::Table, Contacts::Id),
                        Cascade,
                    ))
                    .check(Expr::cust("strength BETWEEN 1 AND 5"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ux_contact_relationships_pair",
                ContactRelationships::Table,
                &["user_id", "contact_id"],
                true,
            ))
            .await?;
        manager
            .create_index(index(
                "ix_contact_relationships_contact",
                ContactRelationships::Table,
                &["contact_id"],
                false,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ContactRelationships::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ContactInfluences::Table).to_owned())
            .await?;
        Ok(())
    }
}
