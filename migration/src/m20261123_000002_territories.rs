//! Territory permissions: territory kinds, memberships with access levels, ordered
//! account assignment rules, the casbin policy table and the policy version that lets
//! several instances notice each other's policy changes. Contacts and opportunities get a
//! copy of their account's territory so visibility filters need no join.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Territories {
    Table,
    Id,
    Kind,
    Description,
    Version,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    TerritoryManual,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    TerritoryId,
}

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    TerritoryId,
}

#[derive(DeriveIden)]
enum TerritoryMemberships {
    Table,
    Id,
    TerritoryId,
    UserId,
    AccessLevel,
    IsManager,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TerritoryRules {
    Table,
    Id,
    Name,
    Position,
    TerritoryId,
    Country,
    Region,
    Industry,
    Size,
    MinRevenueMicros,
    MaxRevenueMicros,
    Active,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum CasbinRule {
    Table,
    Id,
    Ptype,
    V0,
    V1,
    V2,
    V3,
    V4,
    V5,
}

#[derive(DeriveIden)]
enum AuthzState {
    Table,
    Id,
    PolicyVersion,
    UpdatedAt,
}

fn index(name: &str, table: impl IntoIden, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite allows one column per ALTER TABLE statement.
        for column in [
            ColumnDef::new(Territories::Kind)
                .string_len(20)
                .not_null()
                .default("geography")
                .to_owned(),
            ColumnDef::new(Territories::Description)
                .string_len(2000)
                .null()
                .to_owned(),
            ColumnDef::new(Territories::Version)
                .integer()
                .not_null()
                .default(1)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Territories::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Accounts::Table)
                    .add_column(
                        ColumnDef::new(Accounts::TerritoryManual)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Contacts::Table)
                    .add_column(ColumnDef::new(Contacts::TerritoryId).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Opportunities::Table)
                    .add_column(
                        ColumnDef::new(Opportunities::TerritoryId)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Existing rows take their account's territory.
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE contacts SET territory_id = \
             (SELECT a.territory_id FROM accounts a WHERE a.id = contacts.account_id)",
        )
        .await?;
        db.execute_unprepared(
            "UPDATE opportunities SET territory_id = \
             (SELECT a.territory_id FROM accounts a WHERE a.id = opportunities.account_id)",
        )
        .await?;
        for (name, table, cols) in [
            (
                "ix_contacts_territory",
                Contacts::Table.into_iden(),
                &["territory_id", "last_name", "id"][..],
            ),
            (
                "ix_opportunities_territory",
                Opportunities::Table.into_iden(),
                &["territory_id", "created_at", "id"][..],
            ),
            (
                "ix_accounts_territory_name",
                Alias::new("accounts").into_iden(),
                &["territory_id", "name", "id"][..],
            ),
        ] {
            manager.create_index(index(name, table, cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(TerritoryMemberships::Table)
                    .col(big_pk_auto(TerritoryMemberships::Id))
                    .col(big_integer(TerritoryMemberships::TerritoryId))
                    .col(big_integer(TerritoryMemberships::UserId))
                    .col(string_len(TerritoryMemberships::AccessLevel, 8))
                    .col(boolean(TerritoryMemberships::IsManager).default(false))
                    .col(timestamp_with_time_zone(TerritoryMemberships::CreatedAt))
                    .check((
                        "ck_membership_level",
                        Expr::col(TerritoryMemberships::AccessLevel)
                            .is_in(["read", "edit", "owner"]),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_membership_territory")
                            .from(
                                TerritoryMemberships::Table,
                                TerritoryMemberships::TerritoryId,
                            )
                            .to(Territories::Table, Territories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_membership_user")
                            .from(TerritoryMemberships::Table, TerritoryMemberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_membership_territory_user",
                    TerritoryMemberships::Table,
                    &["territory_id", "user_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_membership_user",
                TerritoryMemberships::Table,
                &["user_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TerritoryRules::Table)
                    .col(big_pk_auto(TerritoryRules::Id))
                    .col(string_len(TerritoryRules::Name, 200))
                    .col(integer(TerritoryRules::Position))
                    .col(big_integer(TerritoryRules::TerritoryId))
                    .col(string_len_null(TerritoryRules::Country, 2))
                    .col(string_len_null(TerritoryRules::Region, 100))
                    .col(string_len_null(TerritoryRules::Industry, 100))
                    .col(string_len_null(TerritoryRules::Size, 16))
                    .col(big_integer_null(TerritoryRules::MinRevenueMicros))
                    .col(big_integer_null(TerritoryRules::MaxRevenueMicros))
                    .col(boolean(TerritoryRules::Active).default(true))
                    .col(timestamp_with_time_zone(TerritoryRules::CreatedAt))
                    .col(timestamp_with_time_zone(TerritoryRules::UpdatedAt))
                    .col(integer(TerritoryRules::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_rule_territory")
                            .from(TerritoryRules::Table, TerritoryRules::TerritoryId)
                            .to(Territories::Table, Territories::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_rules_position",
                TerritoryRules::Table,
                &["position", "id"],
            ))
            .await?;

        // The column layout of casbin's usual database adapters.
        manager
            .create_table(
                Table::create()
                    .table(CasbinRule::Table)
                    .col(big_pk_auto(CasbinRule::Id))
                    .col(string_len(CasbinRule::Ptype, 12))
                    .col(string_len(CasbinRule::V0, 128).default(""))
                    .col(string_len(CasbinRule::V1, 128).default(""))
                    .col(string_len(CasbinRule::V2, 128).default(""))
                    .col(string_len(CasbinRule::V3, 128).default(""))
                    .col(string_len(CasbinRule::V4, 128).default(""))
                    .col(string_len(CasbinRule::V5, 128).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthzState::Table)
                    .col(integer(AuthzState::Id).primary_key())
                    .col(big_integer(AuthzState::PolicyVersion).default(0))
                    .col(timestamp_with_time_zone(AuthzState::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "INSERT INTO authz_state (id, policy_version, updated_at) \
             VALUES (1, 0, CURRENT_TIMESTAMP)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuthzState::Table.into_iden(),
            CasbinRule::Table.into_iden(),
            TerritoryRules::Table.into_iden(),
            TerritoryMemberships::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for (name, table) in [
            ("ix_contacts_territory", Contacts::Table.into_iden()),
            (
                "ix_opportunities_territory",
                Opportunities::Table.into_iden(),
            ),
            (
                "ix_accounts_territory_name",
                Alias::new("accounts").into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for (table, column) in [
            (
                Contacts::Table.into_iden(),
                Contacts::TerritoryId.into_iden(),
            ),
            (
                Opportunities::Table.into_iden(),
                Opportunities::TerritoryId.into_iden(),
            ),
            (
                Accounts::Table.into_iden(),
                Accounts::TerritoryManual.into_iden(),
            ),
            (
                Territories::Table.into_iden(),
                Territories::Kind.into_iden(),
            ),
            (
                Territories::Table.into_iden(),
                Territories::Description.into_iden(),
            ),
            (
                Territories::Table.into_iden(),
                Territories::Version.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
