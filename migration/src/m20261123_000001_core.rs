//! The CRM core: users and tokens, territories (hierarchy only), accounts, contacts,
//! leads, pipelines and stages, opportunities with contact roles, the stage-transition
//! log, notes and the audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    Role,
    PasswordHash,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuthTokens {
    Table,
    Id,
    UserId,
    Kind,
    Name,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Territories {
    Table,
    Id,
    Name,
    ParentId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Name,
    Industry,
    Country,
    Region,
    Size,
    AnnualRevenueMicros,
    Currency,
    Website,
    ParentId,
    TerritoryId,
    OwnerId,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    AccountId,
    FirstName,
    LastName,
    Title,
    Department,
    Email,
    Phone,
    ReportsToId,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Leads {
    Table,
    Id,
    FirstName,
    LastName,
    Company,
    Title,
    Email,
    Phone,
    Source,
    Status,
    Grade,
    OwnerId,
    ConvertedAccountId,
    ConvertedContactId,
    ConvertedOpportunityId,
    ConvertedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Pipelines {
    Table,
    Id,
    Name,
    Description,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Stages {
    Table,
    Id,
    PipelineId,
    Name,
    Position,
    Probability,
    Kind,
}

#[derive(DeriveIden)]
enum Opportunities {
    Table,
    Id,
    Name,
    AccountId,
    OwnerId,
    PipelineId,
    StageId,
    AmountMicros,
    Currency,
    ExpectedCloseDate,
    Source,
    Grade,
    LostReason,
    StageEnteredAt,
    ClosedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum OpportunityContactRoles {
    Table,
    Id,
    OpportunityId,
    ContactId,
    Role,
    IsPrimary,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StageTransitions {
    Table,
    Id,
    OpportunityId,
    FromStageId,
    ToStageId,
    TransitionedAt,
    ActorId,
    SecondsInPreviousStage,
}

#[derive(DeriveIden)]
enum Notes {
    Table,
    Id,
    Body,
    AuthorId,
    AccountId,
    ContactId,
    LeadId,
    OpportunityId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    ActorId,
    Action,
    EntityType,
    EntityId,
    Before,
    After,
    At,
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
        use ForeignKeyAction::{Cascade, Restrict, SetNull};

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_len_uniq(Users::Email, 254))
                    .col(string_len(Users::DisplayName, 200))
                    .col(string_len(Users::Role, 24))
                    .col(text_null(Users::PasswordHash))
                    .col(boolean(Users::Active).default(true))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuthTokens::Table)
                    .col(big_pk_auto(AuthTokens::Id))
                    .col(big_integer(AuthTokens::UserId))
                    .col(string_len(AuthTokens::Kind, 16))
                    .col(string_len(AuthTokens::Name, 200))
                    .col(string_len_uniq(AuthTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(AuthTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(AuthTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AuthTokens::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_auth_tokens_user",
                        (AuthTokens::Table, AuthTokens::UserId),
                        (Users::Table, Users::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_auth_tokens_user",
                AuthTokens::Table,
                &["user_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Territories::Table)
                    .col(big_pk_auto(Territories::Id))
                    .col(string_len(Territories::Name, 200))
                    .col(big_integer_null(Territories::ParentId))
                    .col(timestamp_with_time_zone(Territories::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_territories_parent",
                        (Territories::Table, Territories::ParentId),
                        (Territories::Table, Territories::Id),
                        Restrict,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(big_pk_auto(Accounts::Id))
                    .col(string_len(Accounts::Name, 200))
                    .col(string_len_null(Accounts::Industry, 100))
                    .col(string_len_null(Accounts::Country, 2))
                    .col(string_len_null(Accounts::Region, 100))
                    .col(string_len_null(Accounts::Size, 16))
                    .col(big_integer_null(Accounts::AnnualRevenueMicros))
                    .col(string_len(Accounts::Currency, 3))
                    .col(string_len_null(Accounts::Website, 500))
                    .col(big_integer_null(Accounts::ParentId))
                    .col(big_integer_null(Accounts::TerritoryId))
                    .col(big_integer_null(Accounts::OwnerId))
                    .col(timestamp_with_time_zone(Accounts::CreatedAt))
                    .col(timestamp_with_time_zone(Accounts::UpdatedAt))
                    .col(integer(Accounts::Version).default(1))
                    .check((
                        "ck_accounts_revenue",
                        Expr::col(Accounts::AnnualRevenueMicros).gte(0),
                    ))
                    .foreign_key(&mut fk(
                        "fk_accounts_parent",
                        (Accounts::Table, Accounts::ParentId),
                        (Accounts::Table, Accounts::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_accounts_territory",
                        (Accounts::Table, Accounts::TerritoryId),
                        (Territories::Table, Territories::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        "fk_accounts_owner",
                        (Accounts::Table, Accounts::OwnerId),
                        (Users::Table, Users::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_accounts_name", &["name", "id"][..]),
            ("ix_accounts_created", &["created_at", "id"][..]),
            ("ix_accounts_parent", &["parent_id"][..]),
            ("ix_accounts_territory", &["territory_id"][..]),
            ("ix_accounts_owner", &["owner_id"][..]),
        ] {
            manager
                .create_index(index(name, Accounts::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(big_pk_auto(Contacts::Id))
                    .col(big_integer(Contacts::AccountId))
                    .col(string_len(Contacts::FirstName, 100))
                    .col(string_len(Contacts::LastName, 100))
                    .col(string_len_null(Contacts::Title, 200))
                    .col(string_len_null(Contacts::Department, 200))
                    .col(string_len_null(Contacts::Email, 254))
                    .col(string_len_null(Contacts::Phone, 50))
                    .col(big_integer_null(Contacts::ReportsToId))
                    .col(timestamp_with_time_zone(Contacts::CreatedAt))
                    .col(timestamp_with_time_zone(Contacts::UpdatedAt))
                    .col(integer(Contacts::Version).default(1))
                    .foreign_key(&mut fk(
                        "fk_contacts_account",
                        (Contacts::Table, Contacts::AccountId),
                        (Accounts::Table, Accounts::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_contacts_reports_to",
                        (Contacts::Table, Contacts::ReportsToId),
                        (Contacts::Table, Contacts::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_contacts_account", &["account_id", "id"][..]),
            ("ix_contacts_reports_to", &["reports_to_id"][..]),
            ("ix_contacts_last_name", &["last_name", "id"][..]),
            ("ix_contacts_created", &["created_at", "id"][..]),
            ("ix_contacts_email", &["email"][..]),
        ] {
            manager
                .create_index(index(name, Contacts::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Pipelines::Table)
                    .col(big_pk_auto(Pipelines::Id))
                    .col(string_len_uniq(Pipelines::Name, 200))
                    .col(text_null(Pipelines::Description))
                    .col(timestamp_with_time_zone(Pipelines::CreatedAt))
                    .col(timestamp_with_time_zone(Pipelines::UpdatedAt))
                    .col(integer(Pipelines::Version).default(1))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Stages::Table)
                    .col(big_pk_auto(Stages::Id))
                    .col(big_integer(Stages::PipelineId))
                    .col(string_len(Stages::Name, 100))
                    .col(integer(Stages::Position))
                    .col(integer(Stages::Probability))
                    .col(string_len(Stages::Kind, 8))
                    .check((
                        "ck_stages_probability",
                        Expr::col(Stages::Probability).between(0, 100),
                    ))
                    .foreign_key(&mut fk(
                        "fk_stages_pipeline",
                        (Stages::Table, Stages::PipelineId),
                        (Pipelines::Table, Pipelines::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_stages_pipeline_name",
                    Stages::Table,
                    &["pipeline_id", "name"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_stages_pipeline_position",
                    Stages::Table,
                    &["pipeline_id", "position"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Opportunities::Table)
                    .col(big_pk_auto(Opportunities::Id))
                    .col(string_len(Opportunities::Name, 200))
                    .col(big_integer(Opportunities::AccountId))
                    .col(big_integer(Opportunities::OwnerId))
                    .col(big_integer(Opportunities::PipelineId))
                    .col(big_integer(Opportunities::StageId))
                    .col(big_integer(Opportunities::AmountMicros))
                    .col(string_len(Opportunities::Currency, 3))
                    .col(date(Opportunities::ExpectedCloseDate))
                    .col(string_len_null(Opportunities::Source, 16))
                    .col(string_len_null(Opportunities::Grade, 1))
                    .col(string_len_null(Opportunities::LostReason, 500))
                    .col(timestamp_with_time_zone(Opportunities::StageEnteredAt))
                    .col(timestamp_with_time_zone_null(Opportunities::ClosedAt))
                    .col(timestamp_with_time_zone(Opportunities::CreatedAt))
                    .col(timestamp_with_time_zone(Opportunities::UpdatedAt))
                    .col(integer(Opportunities::Version).default(1))
                    .check((
                        "ck_opportunities_amount",
                        Expr::col(Opportunities::AmountMicros).gte(0),
                    ))
                    .foreign_key(&mut fk(
                        "fk_opportunities_account",
                        (Opportunities::Table, Opportunities::AccountId),
                        (Accounts::Table, Accounts::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_opportunities_owner",
                        (Opportunities::Table, Opportunities::OwnerId),
                        (Users::Table, Users::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_opportunities_pipeline",
                        (Opportunities::Table, Opportunities::PipelineId),
                        (Pipelines::Table, Pipelines::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_opportunities_stage",
                        (Opportunities::Table, Opportunities::StageId),
                        (Stages::Table, Stages::Id),
                        Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_opportunities_account", &["account_id", "id"][..]),
            ("ix_opportunities_owner", &["owner_id", "id"][..]),
            ("ix_opportunities_stage", &["stage_id", "id"][..]),
            ("ix_opportunities_pipeline", &["pipeline_id"][..]),
            ("ix_opportunities_created", &["created_at", "id"][..]),
            ("ix_opportunities_close", &["expected_close_date", "id"][..]),
            ("ix_opportunities_amount", &["amount_micros", "id"][..]),
            ("ix_opportunities_name", &["name", "id"][..]),
        ] {
            manager
                .create_index(index(name, Opportunities::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(OpportunityContactRoles::Table)
                    .col(big_pk_auto(OpportunityContactRoles::Id))
                    .col(big_integer(OpportunityContactRoles::OpportunityId))
                    .col(big_integer(OpportunityContactRoles::ContactId))
                    .col(string_len(OpportunityContactRoles::Role, 24))
                    .col(boolean(OpportunityContactRoles::IsPrimary).default(false))
                    .col(timestamp_with_time_zone(OpportunityContactRoles::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_ocr_opportunity",
                        (
                            OpportunityContactRoles::Table,
                            OpportunityContactRoles::OpportunityId,
                        ),
                        (Opportunities::Table, Opportunities::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_ocr_contact",
                        (
                            OpportunityContactRoles::Table,
                            OpportunityContactRoles::ContactId,
                        ),
                        (Contacts::Table, Contacts::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "ux_ocr_opportunity_contact_role",
                    OpportunityContactRoles::Table,
                    &["opportunity_id", "contact_id", "role"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_ocr_contact",
                OpportunityContactRoles::Table,
                &["contact_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StageTransitions::Table)
                    .col(big_pk_auto(StageTransitions::Id))
                    .col(big_integer(StageTransitions::OpportunityId))
                    .col(big_integer_null(StageTransitions::FromStageId))
                    .col(big_integer(StageTransitions::ToStageId))
                    .col(timestamp_with_time_zone(StageTransitions::TransitionedAt))
                    .col(big_integer_null(StageTransitions::ActorId))
                    .col(big_integer_null(StageTransitions::SecondsInPreviousStage))
                    .foreign_key(&mut fk(
                        "fk_transitions_opportunity",
                        (StageTransitions::Table, StageTransitions::OpportunityId),
                        (Opportunities::Table, Opportunities::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_transitions_from",
                        (StageTransitions::Table, StageTransitions::FromStageId),
                        (Stages::Table, Stages::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_transitions_to",
                        (StageTransitions::Table, StageTransitions::ToStageId),
                        (Stages::Table, Stages::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_transitions_actor",
                        (StageTransitions::Table, StageTransitions::ActorId),
                        (Users::Table, Users::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_transitions_opportunity",
                StageTransitions::Table,
                &["opportunity_id", "transitioned_at", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Leads::Table)
                    .col(big_pk_auto(Leads::Id))
                    .col(string_len(Leads::FirstName, 100))
                    .col(string_len(Leads::LastName, 100))
                    .col(string_len(Leads::Company, 200))
                    .col(string_len_null(Leads::Title, 200))
                    .col(string_len_null(Leads::Email, 254))
                    .col(string_len_null(Leads::Phone, 50))
                    .col(string_len(Leads::Source, 16))
                    .col(string_len(Leads::Status, 16))
                    .col(string_len_null(Leads::Grade, 1))
                    .col(big_integer_null(Leads::OwnerId))
                    .col(big_integer_null(Leads::ConvertedAccountId))
                    .col(big_integer_null(Leads::ConvertedContactId))
                    .col(big_integer_null(Leads::ConvertedOpportunityId))
                    .col(timestamp_with_time_zone_null(Leads::ConvertedAt))
                    .col(timestamp_with_time_zone(Leads::CreatedAt))
                    .col(timestamp_with_time_zone(Leads::UpdatedAt))
                    .col(integer(Leads::Version).default(1))
                    .foreign_key(&mut fk(
                        "fk_leads_owner",
                        (Leads::Table, Leads::OwnerId),
                        (Users::Table, Users::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        "fk_leads_account",
                        (Leads::Table, Leads::ConvertedAccountId),
                        (Accounts::Table, Accounts::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        "fk_leads_contact",
                        (Leads::Table, Leads::ConvertedContactId),
                        (Contacts::Table, Contacts::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        "fk_leads_opportunity",
                        (Leads::Table, Leads::ConvertedOpportunityId),
                        (Opportunities::Table, Opportunities::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_leads_created", &["created_at", "id"][..]),
            ("ix_leads_status", &["status"][..]),
            ("ix_leads_owner", &["owner_id"][..]),
        ] {
            manager
                .create_index(index(name, Leads::Table, cols))
                .await?;
        }

        let exactly_one_subject = Expr::cust(
            "(CASE WHEN account_id IS NULL THEN 0 ELSE 1 END) + \
             (CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END) + \
             (CASE WHEN lead_id IS NULL THEN 0 ELSE 1 END) + \
             (CASE WHEN opportunity_id IS NULL THEN 0 ELSE 1 END) = 1",
        );
        manager
            .create_table(
                Table::create()
                    .table(Notes::Table)
                    .col(big_pk_auto(Notes::Id))
                    .col(text(Notes::Body))
                    .col(big_integer(Notes::AuthorId))
                    .col(big_integer_null(Notes::AccountId))
                    .col(big_integer_null(Notes::ContactId))
                    .col(big_integer_null(Notes::LeadId))
                    .col(big_integer_null(Notes::OpportunityId))
                    .col(timestamp_with_time_zone(Notes::CreatedAt))
                    .check(("ck_notes_one_subject", exactly_one_subject))
                    .foreign_key(&mut fk(
                        "fk_notes_author",
                        (Notes::Table, Notes::AuthorId),
                        (Users::Table, Users::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_notes_account",
                        (Notes::Table, Notes::AccountId),
                        (Accounts::Table, Accounts::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_notes_contact",
                        (Notes::Table, Notes::ContactId),
                        (Contacts::Table, Contacts::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_notes_lead",
                        (Notes::Table, Notes::LeadId),
                        (Leads::Table, Leads::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_notes_opportunity",
                        (Notes::Table, Notes::OpportunityId),
                        (Opportunities::Table, Opportunities::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_notes_account", &["account_id"][..]),
            ("ix_notes_contact", &["contact_id"][..]),
            ("ix_notes_lead", &["lead_id"][..]),
            ("ix_notes_opportunity", &["opportunity_id"][..]),
        ] {
            manager
                .create_index(index(name, Notes::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(big_integer_null(AuditLog::ActorId))
                    .col(string_len(AuditLog::Action, 32))
                    .col(string_len(AuditLog::EntityType, 48))
                    .col(big_integer(AuditLog::EntityId))
                    .col(json_null(AuditLog::Before))
                    .col(json_null(AuditLog::After))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_audit_entity",
                AuditLog::Table,
                &["entity_type", "entity_id", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_audit_actor",
                AuditLog::Table,
                &["actor_id", "id"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            Notes::Table.into_iden(),
            Leads::Table.into_iden(),
            StageTransitions::Table.into_iden(),
            OpportunityContactRoles::Table.into_iden(),
            Opportunities::Table.into_iden(),
            Stages::Table.into_iden(),
            Pipelines::Table.into_iden(),
            Contacts::Table.into_iden(),
            Accounts::Table.into_iden(),
            Territories::Table.into_iden(),
            AuthTokens::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
