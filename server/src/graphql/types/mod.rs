//! GraphQL object types. Each wraps an entity model and exposes chosen fields only, so a
//! new column never becomes public API by accident.

mod account;
mod at_hand;
mod audit;
mod contact;
mod enums;
mod lead;
mod note;
mod opportunity;
mod pipeline;
pub(crate) mod preload;
mod row;
mod territory;
mod user;

pub use account::Account;
pub use at_hand::AtHand;
pub use audit::AuditEntry;
pub use contact::Contact;
pub use enums::*;
pub use lead::Lead;
pub use note::Note;
pub use opportunity::{DealHead, Opportunity, OpportunityContactRole, ReadAlong, StageTransition};
pub use pipeline::{Pipeline, Stage};
pub use row::Row;
pub use territory::{AccessLevel, AssignmentRule, Territory, TerritoryKind, TerritoryMembership};
pub use user::{ApiToken, User};

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::{ID, Interface, SimpleObject};
use rust_decimal::Decimal;

use crate::services::pagination::{EdgeCursor, Page};
use crate::services::rows::Width;
use crate::services::validate::micros_to_decimal;

/// Anything refetchable by its global ID through `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global ID"))]
pub enum Node {
    User(User),
    Account(Account),
    Contact(Contact),
    Lead(Lead),
    Pipeline(Pipeline),
    Stage(Stage),
    Opportunity(Opportunity),
    OpportunityContactRole(OpportunityContactRole),
    Note(Note),
    Territory(Territory),
    TerritoryMembership(TerritoryMembership),
    AssignmentRule(AssignmentRule),
    Reminder(crate::graphql::reminders::Reminder),
    Event(crate::graphql::calendar::Event),
    Task(crate::graphql::calendar::Task),
}

/// An exact amount of money. `amount` is a decimal string, never a float.
// Both fields are at hand, so they are resolved in turn (see `AtHand`).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct Money {
    pub amount: Decimal,
    /// ISO 4217 code
    pub currency: String,
}

impl at_hand::Immediate for Money {
    const TYPE_NAME: &'static str = "Money";

    fn immediate(
        &self,
        _: &async_graphql::ContextSelectionSet<'_>,
        field: &async_graphql::parser::types::Field,
    ) -> Option<async_graphql::Value> {
        Some(match field.name.node.as_str() {
            "amount" => async_graphql::ScalarType::to_value(&self.amount),
            "currency" => async_graphql::Value::String(self.currency.clone()),
            _ => return None,
        })
    }
}

impl Money {
    pub fn from_micros(micros: i64, currency: &str) -> Self {
        Money {
            amount: micros_to_decimal(micros),
            currency: currency.to_owned(),
        }
    }
}

/// How wide a list reads a relation its selection reaches: brief when every field asked
/// of it (through fragments too) is one of `brief_fields` or `__typename`. An empty
/// `brief_fields` means the relation has no brief form.
pub(crate) fn width(field: &async_graphql::Lookahead<'_>, brief_fields: &[&str]) -> Width {
    if !field.exists() {
        return Width::Skip;
    }
    let brief = !brief_fields.is_empty()
        && field.selection_fields().iter().all(|f| {
            f.selection_set()
                .all(|sub| sub.name() == "__typename" || brief_fields.contains(&sub.name()))
        });
    if brief { Width::Brief } else { Width::Full }
}

/// Extra fields on every connection.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct ConnectionTotals {
    /// Number of records matching the filter across all pages.
    pub total_count: i64,
}

pub type Conn<T> = Connection<EdgeCursor, T, ConnectionTotals>;

/// Edges carry their cursor unencoded; async-graphql encodes it only when `cursor`,
/// `startCursor` or `endCursor` is selected.
impl CursorType for EdgeCursor {
    type Error = &'static str;

    /// Lists take `after`/`before` as strings and decode them against their own order
    /// (`PagePlan::new`); async-graphql's `connection::query` helper, the only caller of
    /// this, is not used.
    fn decode_cursor(_: &str) -> Result<Self, Self::Error> {
        Err("cursors are decoded by the list that issued them")
    }

    fn encode_cursor(&self) -> String {
        self.encode()
    }
}

pub fn connection<M, T>(page: Page<M>, wrap: impl Fn(M) -> T) -> Conn<T>
where
    T: async_graphql::OutputType,
{
    let totals = ConnectionTotals {
        total_count: page.total_count.unwrap_or_default() as i64,
    };
    let mut conn =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, totals);
    conn.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, m)| Edge::new(cursor, wrap(m))),
    );
    conn
}

use async_graphql::dataloader::{DataLoader, HashMapCache};
use sea_orm::EntityTrait;

use crate::graphql::loaders::{CountPerParent, FirstPerParent, one};
use crate::services::pagination::{SortOrder, cursors_for, first_or_default};

/// The first page of a nested to-many edge, batched across all parents in the response.
/// Cursors match the top-level list with the same order, so a client continues paging
/// there (e.g. `contacts(filter: {accountId}, after: ...)`).
pub(crate) async fn nested_first_page<E>(
    rows: &DataLoader<FirstPerParent<E>, HashMapCache>,
    counts: Option<&DataLoader<CountPerParent<E>, HashMapCache>>,
    parent: i64,
    first: Option<i32>,
    order: &SortOrder<E>,
    id: E::Column,
) -> async_graphql::Result<Page<E::Model>>
where
    E: EntityTrait + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
    E::Column: Send + Sync,
{
    let limit = first_or_default(first)?;
    let mut models = if limit == 0 {
        Vec::new()
    } else {
        one(rows, (parent, limit)).await?.unwrap_or_default()
    };
    let has_next_page = models.len() as u64 > limit;
    models.truncate(limit as usize);
    let total_count = match counts {
        Some(loader) => Some(one(loader, parent).await?.unwrap_or(0) as u64),
        None => None,
    };
    let items = cursors_for(order, id, &models)
        .into_iter()
        .zip(models)
        .collect();
    Ok(Page {
        items,
        has_next_page,
        has_previous_page: false,
        total_count,
    })
}
