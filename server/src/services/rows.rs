//! Hot list statements read by position, and only the columns their caller asked for.
//!
//! SeaORM decodes a joined row by name: for every column of every model it formats
//! `"{prefix}{column}"` and looks the name up in the row, then checks and decodes the
//! value. On the nested opportunity list that was about a fifth of the server's CPU (50
//! rows of four models, 48 columns each). Here a statement lists its columns itself and
//! the readers below take them back in the same order, so nothing is looked up.
//!
//! A list whose selection asks only for a related record's name reads that record
//! "brief" (a few columns) instead of whole; see [`Width`] and the GraphQL types'
//! `Row`, which load the whole record if a field beyond the brief ones is asked after all.

use accord_entities::{account, contact, opportunity, opportunity_contact_role, stage, user};
use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::sea_query::{Expr, IntoIden, SelectStatement};
use sea_orm::{ColumnDef, ColumnType, DbErr, EntityTrait, Iterable, QueryResult, TryGetable};

use crate::services::pagination::SortKey;

/// How much of a related record a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Not at all: the selection does not reach it.
    Skip,
    /// The brief columns only (see the `*Brief` structs).
    Brief,
    /// Every column.
    Full,
}

/// A related record as a list read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Joined<M, B> {
    Full(M),
    Brief(B),
}

impl Joined<opportunity::Model, OpportunityBrief> {
    pub fn id(&self) -> i64 {
        match self {
            Joined::Full(m) => m.id,
            Joined::Brief(b) => b.id,
        }
    }

    pub fn owner_id(&self) -> i64 {
        match self {
            Joined::Full(m) => m.owner_id,
            Joined::Brief(b) => b.owner_id,
        }
    }

    pub fn territory_id(&self) -> Option<i64> {
        match self {
            Joined::Full(m) => m.territory_id,
            Joined::Brief(b) => b.territory_id,
        }
    }
}

impl Joined<account::Model, AccountBrief> {
    pub fn territory_id(&self) -> Option<i64> {
        match self {
            Joined::Full(m) => m.territory_id,
            Joined::Brief(b) => b.territory_id,
        }
    }
}

/// What a list needs of an account it names: enough to show it and decide its visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBrief {
    pub id: i64,
    pub name: String,
    pub territory_id: Option<i64>,
}

/// What a list needs of a user it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBrief {
    pub id: i64,
    pub display_name: String,
}

/// What a list needs of a stage it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageBrief {
    pub id: i64,
    pub name: String,
}

/// What the nested opportunity list needs of a deal when its selection asks only for
/// the deal's name, amount and relations: the text and timestamp columns it leaves out
/// are most of what copying and decoding a row costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpportunityBrief {
    pub id: i64,
    pub name: String,
    pub account_id: i64,
    pub owner_id: i64,
    pub pipeline_id: i64,
    pub stage_id: i64,
    pub amount_micros: i64,
    pub currency: String,
    pub territory_id: Option<i64>,
}

/// What a list needs of a contact it names: the name and what decides visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactBrief {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub territory_id: Option<i64>,
}

/// Reads a row's columns front to back.
pub struct Reader<'a> {
    row: &'a QueryResult,
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(row: &'a QueryResult) -> Self {
        Reader { row, at: 0 }
    }

    /// The next column.
    pub fn take<T: TryGetable>(&mut self) -> Result<T, DbErr> {
        let value = self.row.try_get_by_index(self.at);
        self.at += 1;
        value
    }

    /// How many columns have been read or passed over.
    pub fn columns_read(&self) -> usize {
        self.at
    }

    /// Passes over the next `columns` columns.
    pub fn skip(&mut self, columns: usize) {
        self.at += columns;
    }

    /// Whether the record starting at the next column is absent (a LEFT JOIN found
    /// nothing: its primary key, always its first column, is NULL); if so, skips its
    /// `width` columns.
    fn skip_if_absent(&mut self, width: usize) -> Result<bool, DbErr> {
        let key: Option<i64> = self.row.try_get_by_index(self.at)?;
        if key.is_none() {
            self.at += width;
        }
        Ok(key.is_none())
    }
}

/// Appends `columns` of the table `E` to a statement's select list, in the given order.
pub fn select_columns<E: EntityTrait>(
    statement: &mut SelectStatement,
    entity: E,
    columns: impl IntoIterator<Item = E::Column>,
) {
    for column in columns {
        statement.expr(Expr::col((entity.into_iden(), column.into_iden())));
    }
}

/// Appends every column of `E`, in the order [`FullRead`] reads them back.
pub fn select_all<E: EntityTrait + Default>(statement: &mut SelectStatement) {
    select_columns(statement, E::default(), E::Column::iter());
}

/// A model read back from every column of its table in declaration order, the order
/// of `E::Column::iter()` (the struct literals below are written in that order; the
/// tests compare each against SeaORM's own reading of the same row).
pub trait FullRead: Sized {
    /// Columns the model spans.
    const WIDTH: usize;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr>;
}

/// A model that a LEFT JOIN may leave out: absent when its first column (the primary
/// key) is NULL.
pub fn read_optional<M: FullRead>(r: &mut Reader<'_>) -> Result<Option<M>, DbErr> {
    if r.skip_if_absent(M::WIDTH)? {
        return Ok(None);
    }
    M::read(r).map(Some)
}

impl FullRead for opportunity::Model {
    const WIDTH: usize = 18;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(opportunity::Model {
            id: r.take()?,
            name: r.take()?,
            account_id: r.take()?,
            owner_id: r.take()?,
            pipeline_id: r.take()?,
            stage_id: r.take()?,
            amount_micros: r.take()?,
            currency: r.take()?,
            expected_close_date: r.take()?,
            source: r.take()?,
            grade: r.take()?,
            lost_reason: r.take()?,
            stage_entered_at: r.take()?,
            closed_at: r.take()?,
            territory_id: r.take()?,
            created_at: r.take()?,
            updated_at: r.take()?,
            version: r.take()?,
        })
    }
}

impl FullRead for account::Model {
    const WIDTH: usize = 16;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(account::Model {
            id: r.take()?,
            name: r.take()?,
            industry: r.take()?,
            country: r.take()?,
            region: r.take()?,
            size: r.take()?,
            annual_revenue_micros: r.take()?,
            currency: r.take()?,
            website: r.take()?,
            parent_id: r.take()?,
            territory_id: r.take()?,
            territory_manual: r.take()?,
            owner_id: r.take()?,
            created_at: r.take()?,
            updated_at: r.take()?,
            version: r.take()?,
        })
    }
}

impl FullRead for user::Model {
    const WIDTH: usize = 8;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(user::Model {
            id: r.take()?,
            email: r.take()?,
            display_name: r.take()?,
            role: r.take()?,
            password_hash: r.take()?,
            active: r.take()?,
            created_at: r.take()?,
            updated_at: r.take()?,
        })
    }
}

impl FullRead for stage::Model {
    const WIDTH: usize = 6;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(stage::Model {
            id: r.take()?,
            pipeline_id: r.take()?,
            name: r.take()?,
            position: r.take()?,
            probability: r.take()?,
            kind: r.take()?,
        })
    }
}

impl FullRead for contact::Model {
    const WIDTH: usize = 13;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(contact::Model {
            id: r.take()?,
            account_id: r.take()?,
            first_name: r.take()?,
            last_name: r.take()?,
            title: r.take()?,
            department: r.take()?,
            email: r.take()?,
            phone: r.take()?,
            reports_to_id: r.take()?,
            territory_id: r.take()?,
            created_at: r.take()?,
            updated_at: r.take()?,
            version: r.take()?,
        })
    }
}

impl FullRead for opportunity_contact_role::Model {
    const WIDTH: usize = 6;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(opportunity_contact_role::Model {
            id: r.take()?,
            opportunity_id: r.take()?,
            contact_id: r.take()?,
            role: r.take()?,
            is_primary: r.take()?,
            created_at: r.take()?,
        })
    }
}

/// A record a list reads either whole or brief, with the columns of its brief form.
pub trait BriefRead: Sized {
    type Model: FullRead;
    type Entity: EntityTrait + Default;
    fn brief_columns() -> Vec<<Self::Entity as EntityTrait>::Column>;
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr>;
}

impl BriefRead for AccountBrief {
    type Model = account::Model;
    type Entity = account::Entity;
    fn brief_columns() -> Vec<account::Column> {
        use account::Column as C;
        vec![C::Id, C::Name, C::TerritoryId]
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(AccountBrief {
            id: r.take()?,
            name: r.take()?,
            territory_id: r.take()?,
        })
    }
}

impl BriefRead for UserBrief {
    type Model = user::Model;
    type Entity = user::Entity;
    fn brief_columns() -> Vec<user::Column> {
        use user::Column as C;
        vec![C::Id, C::DisplayName]
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(UserBrief {
            id: r.take()?,
            display_name: r.take()?,
        })
    }
}

impl BriefRead for StageBrief {
    type Model = stage::Model;
    type Entity = stage::Entity;
    fn brief_columns() -> Vec<stage::Column> {
        use stage::Column as C;
        vec![C::Id, C::Name]
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(StageBrief {
            id: r.take()?,
            name: r.take()?,
        })
    }
}

impl BriefRead for ContactBrief {
    type Model = contact::Model;
    type Entity = contact::Entity;
    fn brief_columns() -> Vec<contact::Column> {
        use contact::Column as C;
        vec![C::Id, C::FirstName, C::LastName, C::TerritoryId]
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(ContactBrief {
            id: r.take()?,
            first_name: r.take()?,
            last_name: r.take()?,
            territory_id: r.take()?,
        })
    }
}

impl BriefRead for OpportunityBrief {
    type Model = opportunity::Model;
    type Entity = opportunity::Entity;
    fn brief_columns() -> Vec<opportunity::Column> {
        use opportunity::Column as C;
        vec![
            C::Id,
            C::Name,
            C::AccountId,
            C::OwnerId,
            C::PipelineId,
            C::StageId,
            C::AmountMicros,
            C::Currency,
            C::TerritoryId,
        ]
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DbErr> {
        Ok(OpportunityBrief {
            id: r.take()?,
            name: r.take()?,
            account_id: r.take()?,
            owner_id: r.take()?,
            pipeline_id: r.take()?,
            stage_id: r.take()?,
            amount_micros: r.take()?,
            currency: r.take()?,
            territory_id: r.take()?,
        })
    }
}

/// Reads a sort column's value as a cursor key, by the column's type (what
/// [`crate::services::pagination::SortOrder::key`] takes from a whole model).
pub fn read_sort_key(column: &ColumnDef, r: &mut Reader<'_>) -> Result<SortKey, DbErr> {
    Ok(match column.get_column_type() {
        ColumnType::Date => SortKey::Date(r.take()?),
        ColumnType::Timestamp | ColumnType::TimestampWithTimeZone | ColumnType::DateTime => {
            SortKey::Time(r.take()?)
        }
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => SortKey::Text(r.take()?),
        _ => SortKey::Int(r.take()?),
    })
}

/// A deal's buying committee: its contact roles, oldest first, each with its contact
/// brief.
pub type Committee = Vec<(opportunity_contact_role::Model, ContactBrief)>;

/// Appends the columns of one committee member, as a page that reads committees with
/// its deals joins them (see `services::opportunities::list_with_relations`): the role
/// whole, then its contact brief.
pub fn select_member(statement: &mut SelectStatement) {
    select_all::<opportunity_contact_role::Entity>(statement);
    select_joined::<ContactBrief>(statement, Width::Brief);
}

/// Reads back what [`select_member`] selected: `None` for a deal without roles (the
/// LEFT JOIN found none), and for a role whose contact is missing.
pub fn read_member(
    r: &mut Reader<'_>,
) -> Result<Option<(opportunity_contact_role::Model, ContactBrief)>, DbErr> {
    let role = read_optional::<opportunity_contact_role::Model>(r)?;
    let contact = read_joined::<ContactBrief>(r, Width::Brief)?;
    Ok(match (role, contact) {
        (Some(role), Some(Joined::Brief(contact))) => Some((role, contact)),
        _ => None,
    })
}

/// Appends a column holding each deal's committee as a JSON array of
/// `[id, contact_id, role, is_primary, created_at, first_name, last_name, territory_id]`,
/// built by a correlated subquery that finds them through `ix_ocr_opportunity_created`,
/// for the statement's `opportunities` rows: SQLite's way of reading committees with the
/// page (see `services::opportunities::CommitteeRead`).
pub fn select_committee(statement: &mut SelectStatement) {
    statement.expr(Expr::cust(
        "(SELECT json_group_array(json_array(r.id, r.contact_id, r.role, r.is_primary, \
         r.created_at, c.first_name, c.last_name, c.territory_id) ORDER BY r.created_at, r.id) \
         FROM opportunity_contact_roles r JOIN contacts c ON c.id = r.contact_id \
         WHERE r.opportunity_id = opportunities.id)",
    ));
}

/// Reads back what [`select_committee`] selected, for the deal `opportunity_id`.
pub fn read_committee(r: &mut Reader<'_>, opportunity_id: i64) -> Result<Committee, DbErr> {
    let text: String = r.take()?;
    parse_committee(&text, opportunity_id)
}

fn parse_committee(text: &str, opportunity_id: i64) -> Result<Committee, DbErr> {
    #[derive(serde::Deserialize)]
    struct Member(
        i64,
        i64,
        opportunity_contact_role::ContactRole,
        // SQLite stores booleans as 0 and 1.
        i64,
        String,
        String,
        String,
        Option<i64>,
    );
    let members: Vec<Member> =
        serde_json::from_str(text).map_err(|e| DbErr::Type(format!("committee: {e}")))?;
    members
        .into_iter()
        .map(|m| {
            let Member(id, contact_id, role, primary, created_at, first, last, territory) = m;
            let role = opportunity_contact_role::Model {
                id,
                opportunity_id,
                contact_id,
                role,
                is_primary: primary != 0,
                created_at: timestamp(&created_at)?,
            };
            let contact = ContactBrief {
                id: contact_id,
                first_name: first,
                last_name: last,
                territory_id: territory,
            };
            Ok((role, contact))
        })
        .collect()
}

/// A timestamp as SQLite holds it: the RFC 3339 text sqlx writes, or any of the forms
/// SQLite's date functions document, which sqlx also reads (without an offset, UTC).
/// Anything else is an error, which the list answers by reading the committees by
/// their own statement (see `list_with_relations`).
fn timestamp(text: &str) -> Result<DateTime<Utc>, DbErr> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    const SQLITE_FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    for format in SQLITE_FORMATS {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Ok(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    Err(DbErr::Type(format!("committee timestamp {text:?}")))
}

/// Appends the columns of a related record read at `width` (nothing for `Skip`).
pub fn select_joined<B: BriefRead>(statement: &mut SelectStatement, width: Width) {
    match width {
        Width::Skip => {}
        Width::Brief => select_columns(statement, B::Entity::default(), B::brief_columns()),
        Width::Full => select_all::<B::Entity>(statement),
    }
}

/// Reads back what [`select_joined`] selected; `None` for `Skip`, and for a LEFT JOIN
/// that found nothing (its primary key, always the first column, is NULL).
pub fn read_joined<B: BriefRead>(
    r: &mut Reader<'_>,
    width: Width,
) -> Result<Option<Joined<B::Model, B>>, DbErr> {
    match width {
        Width::Skip => Ok(None),
        Width::Full => Ok(read_optional::<B::Model>(r)?.map(Joined::Full)),
        Width::Brief => {
            if r.skip_if_absent(B::brief_columns().len())? {
                return Ok(None);
            }
            B::read(r).map(|b| Some(Joined::Brief(b)))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryTrait};

    #[test]
    fn widths_match_the_entities() {
        assert_eq!(
            opportunity::Model::WIDTH,
            opportunity::Column::iter().count()
        );
        assert_eq!(account::Model::WIDTH, account::Column::iter().count());
        assert_eq!(user::Model::WIDTH, user::Column::iter().count());
        assert_eq!(stage::Model::WIDTH, stage::Column::iter().count());
        assert_eq!(contact::Model::WIDTH, contact::Column::iter().count());
        assert_eq!(
            opportunity_contact_role::Model::WIDTH,
            opportunity_contact_role::Column::iter().count()
        );
    }

    async fn migrated() -> DatabaseConnection {
        use accord_migration::MigratorTrait;
        let db = Database::connect("sqlite::memory:").await.unwrap();
        accord_migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    /// Reads every row of `E` positionally and compares with SeaORM's reading by name.
    async fn same_as_seaorm<E>(db: &DatabaseConnection)
    where
        E: EntityTrait + Default,
        E::Model: FullRead + PartialEq + std::fmt::Debug,
    {
        let mut statement = E::find().into_query();
        statement.clear_selects();
        select_all::<E>(&mut statement);
        let rows = db.query_all(&statement).await.unwrap();
        let by_position: Vec<E::Model> = rows
            .iter()
            .map(|row| E::Model::read(&mut Reader::new(row)).unwrap())
            .collect();
        let by_name = E::find().all(db).await.unwrap();
        assert!(!by_name.is_empty(), "seed a row of every table read here");
        assert_eq!(by_position, by_name);
    }

    #[tokio::test]
    async fn positional_reads_equal_seaorm_reads() {
        let db = migrated().await;
        // Every column distinct from its neighbours of the same type, so a swapped
        // pair would show.
        for sql in [
            "INSERT INTO users (id, email, display_name, role, password_hash, active, created_at, updated_at) \
             VALUES (7, 'a@example.com', 'Ann Example', 'sales_manager', 'hash', 1, '2026-01-02T03:04:05Z', '2026-02-03T04:05:06Z')",
            "INSERT INTO pipelines (id, name, created_at, updated_at, version) VALUES (3, 'P', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1)",
            "INSERT INTO stages (id, pipeline_id, name, position, probability, kind) VALUES (5, 3, 'Won', 4, 100, 'won')",
            "INSERT INTO accounts (id, name, industry, country, region, size, annual_revenue_micros, currency, website, \
             parent_id, territory_id, territory_manual, owner_id, created_at, updated_at, version) \
             VALUES (11, 'Acme', 'Steel', 'DE', 'EMEA', 'large', 1200000, 'EUR', 'https://acme.example', NULL, NULL, 1, 7, \
             '2026-01-04T00:00:00Z', '2026-01-05T00:00:00Z', 3)",
            "INSERT INTO contacts (id, account_id, first_name, last_name, title, department, email, phone, reports_to_id, \
             territory_id, created_at, updated_at, version) VALUES (13, 11, 'Ada', 'Byron', 'CTO', 'IT', 'ada@example.com', \
             '+49 1', NULL, NULL, '2026-01-06T00:00:00Z', '2026-01-07T00:00:00Z', 2)",
            "INSERT INTO opportunities (id, name, account_id, owner_id, pipeline_id, stage_id, amount_micros, currency, \
             expected_close_date, source, grade, lost_reason, stage_entered_at, closed_at, territory_id, created_at, \
             updated_at, version) VALUES (17, 'Deal', 11, 7, 3, 5, 5000000, 'EUR', '2026-03-01', 'web', 'A', 'none', \
             '2026-01-08T00:00:00Z', '2026-01-09T00:00:00Z', NULL, '2026-01-10T00:00:00Z', '2026-01-11T00:00:00Z', 4)",
            "INSERT INTO opportunity_contact_roles (id, opportunity_id, contact_id, role, is_primary, created_at) \
             VALUES (19, 17, 13, 'champion', 1, '2026-01-12T00:00:00Z')",
        ] {
            db.execute_unprepared(sql).await.expect(sql);
        }
        same_as_seaorm::<opportunity::Entity>(&db).await;
        same_as_seaorm::<account::Entity>(&db).await;
        same_as_seaorm::<user::Entity>(&db).await;
        same_as_seaorm::<stage::Entity>(&db).await;
        same_as_seaorm::<contact::Entity>(&db).await;
        same_as_seaorm::<opportunity_contact_role::Entity>(&db).await;

        // The committee column reads back the role SeaORM reads, and the contact brief.
        let mut statement = opportunity::Entity::find().into_query();
        statement.clear_selects();
        select_committee(&mut statement);
        let row = db.query_one(&statement).await.unwrap().unwrap();
        let committee = read_committee(&mut Reader::new(&row), 17).unwrap();
        let role = opportunity_contact_role::Entity::find()
            .one(&db)
            .await
            .unwrap();
        assert_eq!(
            committee,
            vec![(
                role.unwrap(),
                ContactBrief {
                    id: 13,
                    first_name: "Ada".into(),
                    last_name: "Byron".into(),
                    territory_id: None,
                }
            )]
        );

        // So does a committee member read as a row of its own; a deal without roles
        // reads none.
        db.execute_unprepared(
            "INSERT INTO opportunities (id, name, account_id, owner_id, pipeline_id, stage_id, amount_micros, \
             currency, expected_close_date, source, grade, lost_reason, stage_entered_at, closed_at, territory_id, \
             created_at, updated_at, version) SELECT 18, 'Bare', account_id, owner_id, pipeline_id, stage_id, \
             amount_micros, currency, expected_close_date, source, grade, lost_reason, stage_entered_at, closed_at, \
             territory_id, created_at, updated_at, version FROM opportunities WHERE id = 17",
        )
        .await
        .unwrap();
        use opportunity_contact_role as role;
        use sea_orm::sea_query::{ExprTrait, Order, Query};
        let statement = Query::select()
            .from(opportunity::Entity)
            .left_join(
                role::Entity,
                Expr::col((role::Entity, role::Column::OpportunityId))
                    .equals((opportunity::Entity, opportunity::Column::Id)),
            )
            .left_join(
                contact::Entity,
                Expr::col((contact::Entity, contact::Column::Id))
                    .equals((role::Entity, role::Column::ContactId)),
            )
            .order_by((opportunity::Entity, opportunity::Column::Id), Order::Asc)
            .to_owned();
        let mut statement = statement;
        select_member(&mut statement);
        let rows = db.query_all(&statement).await.unwrap();
        let members: Vec<_> = rows
            .iter()
            .map(|row| read_member(&mut Reader::new(row)).unwrap())
            .collect();
        let role = role::Entity::find().one(&db).await.unwrap().unwrap();
        assert_eq!(
            members,
            vec![
                Some((
                    role,
                    ContactBrief {
                        id: 13,
                        first_name: "Ada".into(),
                        last_name: "Byron".into(),
                        territory_id: None,
                    }
                )),
                None
            ]
        );
    }

    /// SQLite's JSON holds booleans as 0/1 and timestamps as the text sqlx wrote, or in
    /// another form SQLite's date functions know.
    #[test]
    fn committees_parse_from_sqlites_json() {
        let text = r#"[[5, 9, "economic_buyer", 1, "2026-12-07T15:40:13.628577+00:00", "Bo", "Yin", 3],
                        [6, 10, "user", 0, "2026-12-07T16:40:13+01:00", "Al", "Ng", null]]"#;
        let committee = parse_committee(text, 4).unwrap();
        assert_eq!(committee.len(), 2);
        let (role, contact) = &committee[0];
        assert_eq!((role.id, role.opportunity_id, role.contact_id), (5, 4, 9));
        assert_eq!(
            role.role,
            opportunity_contact_role::ContactRole::EconomicBuyer
        );
        assert!(role.is_primary);
        assert_eq!(
            role.created_at.to_rfc3339(),
            "2026-12-07T15:40:13.628577+00:00"
        );
        assert_eq!(contact.territory_id, Some(3));
        let (role, contact) = &committee[1];
        assert!(!role.is_primary);
        assert_eq!(role.created_at.to_rfc3339(), "2026-12-07T15:40:13+00:00");
        assert_eq!(
            (contact.first_name.as_str(), contact.territory_id),
            ("Al", None)
        );
        // SQLite's own date functions' forms.
        for (text, utc) in [
            ("2026-12-07T15:40:13", "2026-12-07T15:40:13+00:00"),
            ("2026-12-07 15:40:13.5", "2026-12-07T15:40:13.500+00:00"),
            ("2026-12-07 16:40+01:00", "2026-12-07T15:40:00+00:00"),
            ("2026-12-07T15:40Z", "2026-12-07T15:40:00+00:00"),
        ] {
            assert_eq!(timestamp(text).unwrap().to_rfc3339(), utc, "{text}");
        }
        assert_eq!(parse_committee("[]", 4).unwrap(), vec![]);
        assert!(parse_committee(r#"[[5, 9, "chairman", 1, "x", "a", "b", null]]"#, 4).is_err());
        assert!(parse_committee(r#"[[5, 9, "user", 1, "yesterday", "a", "b", null]]"#, 4).is_err());
    }
}
