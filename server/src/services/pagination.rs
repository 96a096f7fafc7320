//! Keyset (cursor) pagination shared by every list. A cursor names the last row seen by
//! its sort key and id, so pages stay stable under inserts and deep pages cost the same
//! as the first one (no OFFSET scans over a million opportunities).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{
    Alias, Asterisk, Expr, ExprTrait, Func, LikeExpr, Query, SelectStatement, SimpleExpr, UnionType,
};
use sea_orm::{
    ColumnTrait, ColumnType, Condition, ConnectionTrait, EntityTrait, IdenStatic, ModelTrait,
    Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Value,
};
use serde::{Deserialize, Serialize};

use crate::db::LiteralLimits;
use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// Relay connection arguments as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

/// The value of the sort column in a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SortKey {
    Int(i64),
    Text(String),
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl From<SortKey> for Value {
    fn from(key: SortKey) -> Value {
        match key {
            SortKey::Int(v) => v.into(),
            SortKey::Text(v) => v.into(),
            SortKey::Date(v) => v.into(),
            SortKey::Time(v) => v.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Cursor {
    /// The order the cursor was issued for (`column:asc|desc`): a cursor is only valid
    /// for the list order that produced it.
    o: String,
    k: SortKey,
    id: i64,
}

/// A row's place in its list, encoded into the opaque cursor string only when a client
/// asks for it: most list queries never select `cursor` or `pageInfo`, and encoding is a
/// JSON document and a base64 string per row.
#[derive(Debug, Clone)]
pub struct EdgeCursor {
    /// The list's order tag, shared by every row of a page.
    order: Arc<str>,
    key: SortKey,
    id: i64,
}

/// The wire form of `EdgeCursor`, field for field that of `Cursor`, so `Cursor::decode`
/// reads what this writes.
#[derive(Serialize)]
struct CursorRef<'a> {
    o: &'a str,
    k: &'a SortKey,
    id: i64,
}

impl EdgeCursor {
    fn new<E: EntityTrait>(
        order: &SortOrder<E>,
        tag: &Arc<str>,
        id: E::Column,
        model: &E::Model,
    ) -> Self {
        EdgeCursor {
            order: Arc::clone(tag),
            key: (order.key)(model),
            id: id_of(model, id),
        }
    }

    pub fn encode(&self) -> String {
        let wire = CursorRef {
            o: &self.order,
            k: &self.key,
            id: self.id,
        };
        // Serializing a plain struct of scalars cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }
}

impl Cursor {
    /// Decodes a cursor and checks it belongs to `order`: same sort column and direction,
    /// and a key of the column's type (a forged key would otherwise reach SQL as a type
    /// error, or silently compare text with numbers on SQLite).
    fn decode<E: EntityTrait>(field: &str, raw: &str, order: &SortOrder<E>) -> AppResult<Self> {
        let invalid =
            || AppError::validation(field, "invalid cursor; pass a cursor from a previous page");
        if raw.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.o != order_tag(order) {
            return Err(AppError::validation(
                field,
                "this cursor belongs to a list in another order; start again from the first page",
            ));
        }
        let key_fits = matches!(
            (&cursor.k, order.column.def().get_column_type()),
            (
                SortKey::Int(_),
                ColumnType::BigInteger | ColumnType::Integer
            ) | (SortKey::Text(_), ColumnType::String(_) | ColumnType::Text)
                | (SortKey::Date(_), ColumnType::Date)
                | (
                    SortKey::Time(_),
                    ColumnType::TimestampWithTimeZone
                        | ColumnType::Timestamp
                        | ColumnType::DateTime
                )
        );
        if !key_fits {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

fn order_tag<E: EntityTrait>(order: &SortOrder<E>) -> String {
    format!(
        "{}:{}",
        order.column.as_str(),
        if order.descending { "desc" } else { "asc" }
    )
}

/// How a list is ordered: one sort column (ties broken by id) and how to read its value.
pub struct SortOrder<E: EntityTrait> {
    pub column: E::Column,
    pub descending: bool,
    pub key: fn(&E::Model) -> SortKey,
}

/// One page of rows, each with its cursor.
pub struct Page<T> {
    pub items: Vec<(EdgeCursor, T)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub total_count: Option<u64>,
}

impl<T> Page<T> {
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(|(c, t)| (c, f(t))).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            total_count: self.total_count,
        }
    }
}

fn page_size(field: &str, value: Option<i32>) -> AppResult<Option<u64>> {
    match value {
        None => Ok(None),
        Some(n) if n < 0 => Err(AppError::validation(field, "must not be negative")),
        Some(n) if n as u64 > MAX_PAGE_SIZE => Err(AppError::validation(
            field,
            format!("must be at most {MAX_PAGE_SIZE}"),
        )),
        Some(n) => Ok(Some(n as u64)),
    }
}

/// Rows strictly after (or before) `cursor` in the given direction of `order`.
fn beyond<E: EntityTrait>(
    order: &SortOrder<E>,
    id: E::Column,
    cursor: Cursor,
    ascending: bool,
) -> Condition {
    let key: Value = cursor.k.into();
    let (col_cmp, id_cmp): (SimpleExpr, SimpleExpr) = if ascending {
        (order.column.gt(key.clone()), id.gt(cursor.id))
    } else {
        (order.column.lt(key.clone()), id.lt(cursor.id))
    };
    Condition::any()
        .add(col_cmp)
        .add(Condition::all().add(order.column.eq(key)).add(id_cmp))
}

fn id_of<M: ModelTrait>(model: &M, id: <M::Entity as EntityTrait>::Column) -> i64 {
    match model.get(id) {
        Value::BigInt(Some(v)) => v,
        Value::Int(Some(v)) => i64::from(v),
        _ => 0,
    }
}

/// Page size for a nested connection that only takes `first`.
pub fn first_or_default(first: Option<i32>) -> AppResult<u64> {
    Ok(page_size("first", first)?.unwrap_or(DEFAULT_PAGE_SIZE))
}

/// Cursors for `models` of a page in `order`.
pub fn cursors_for<'m, E: EntityTrait>(
    order: &SortOrder<E>,
    id: E::Column,
    models: impl IntoIterator<Item = &'m E::Model>,
) -> Vec<EdgeCursor>
where
    E::Model: 'm,
{
    let tag: Arc<str> = order_tag(order).into();
    models
        .into_iter()
        .map(|model| EdgeCursor::new(order, &tag, id, model))
        .collect()
}

/// A page request resolved against a sort order: keyset conditions, direction and limit,
/// applicable to any select of the entity (plain or with joined relations).
pub struct PagePlan<'a, E: EntityTrait> {
    order: &'a SortOrder<E>,
    id: E::Column,
    after: Option<Cursor>,
    before: Option<Cursor>,
    limit: u64,
    backward: bool,
}

impl<'a, E: EntityTrait> PagePlan<'a, E> {
    pub fn new(order: &'a SortOrder<E>, id: E::Column, args: &PageArgs) -> AppResult<Self> {
        let first = page_size("first", args.first)?;
        let last = page_size("last", args.last)?;
        if first.is_some() && last.is_some() {
            return Err(AppError::validation(
                "last",
                "pass either `first` or `last`, not both",
            ));
        }
        Ok(PagePlan {
            order,
            id,
            after: args
                .after
                .as_deref()
                .map(|c| Cursor::decode("after", c, order))
                .transpose()?,
            before: args
                .before
                .as_deref()
                .map(|c| Cursor::decode("before", c, order))
                .transpose()?,
            limit: first.or(last).unwrap_or(DEFAULT_PAGE_SIZE),
            backward: last.is_some(),
        })
    }

    /// Adds the cursor conditions, the ordering and the limit. One row beyond the page is
    /// fetched to tell whether another page follows (also for `first: 0`).
    pub fn apply<Q: QueryFilter + QueryOrder + QuerySelect>(&self, mut query: Q) -> Q {
        let ascending = !self.order.descending;
        if let Some(cursor) = &self.after {
            query = query.filter(beyond(self.order, self.id, cursor.clone(), ascending));
        }
        if let Some(cursor) = &self.before {
            query = query.filter(beyond(self.order, self.id, cursor.clone(), !ascending));
        }
        let direction = self.direction();
        query
            .order_by(self.order.column, direction.clone())
            .order_by(self.id, direction)
            .limit(self.limit + 1)
    }

    /// Narrows a page to its candidates when the visible rows are a union of branches
    /// (one per territory, say): each branch contributes only its own first rows in page
    /// order, read from an index on (branch column, sort column, id) without touching
    /// the table, and the page's rows are the first of those. Whatever the order and
    /// cursors, every row of the true page is among the first rows of its own branch,
    /// so the result is exact; the whole visible set is never gathered or sorted.
    pub fn candidates(&self, base: &Select<E>, branches: Vec<Condition>) -> Condition
    where
        E::Column: ColumnTrait,
    {
        let (sort, id) = (self.order.column.as_str(), self.id.as_str());
        let mut union: Option<SelectStatement> = None;
        for (i, branch) in branches.into_iter().enumerate() {
            let mut firsts = self.apply(base.clone().filter(branch)).select_only();
            if sort != id {
                firsts = firsts.column(self.order.column);
            }
            let wrapped = Query::select()
                .column(Asterisk)
                .from_subquery(
                    firsts.column(self.id).into_query(),
                    Alias::new(format!("branch{i}")),
                )
                .to_owned();
            union = Some(match union {
                None => wrapped,
                Some(mut u) => {
                    // Distinct: a row in two branches (a deal in your territory
                    // that you also own) must take one place among the first rows.
                    u.union(UnionType::Distinct, wrapped);
                    u
                }
            });
        }
        let Some(union) = union else {
            return crate::authz::scope::nothing();
        };
        let direction = self.direction();
        let page = Query::select()
            .column(Alias::new(id))
            .from_subquery(union, Alias::new("candidates"))
            .order_by(Alias::new(sort), direction.clone())
            .order_by(Alias::new(id), direction)
            .limit(self.limit + 1)
            .to_owned();
        Condition::all().add(self.id.in_subquery(page))
    }

    /// The direction rows are fetched in (backward pages fetch in reverse).
    pub fn direction(&self) -> Order {
        if self.order.descending == self.backward {
            Order::Asc
        } else {
            Order::Desc
        }
    }

    /// Turns the fetched rows into the page, in the requested order, with cursors.
    pub fn finish<T>(
        &self,
        rows: Vec<T>,
        model: impl Fn(&T) -> &E::Model,
        total_count: Option<u64>,
    ) -> Page<T> {
        let id = self.id;
        self.finish_keyed(
            rows,
            |row| {
                let model = model(row);
                ((self.order.key)(model), id_of(model, id))
            },
            total_count,
        )
    }

    /// [`Self::finish`] for rows that are not whole models: `key` gives each row's sort
    /// key and id.
    pub fn finish_keyed<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (SortKey, i64),
        total_count: Option<u64>,
    ) -> Page<T> {
        let has_more = rows.len() as u64 > self.limit;
        rows.truncate(self.limit as usize);
        if self.backward {
            rows.reverse();
        }
        let (has_next_page, has_previous_page) = if self.backward {
            (self.before.is_some(), has_more)
        } else {
            (has_more, self.after.is_some())
        };
        let tag: Arc<str> = order_tag(self.order).into();
        let items = rows
            .into_iter()
            .map(|row| {
                let (key, id) = key(&row);
                let cursor = EdgeCursor {
                    order: Arc::clone(&tag),
                    key,
                    id,
                };
                (cursor, row)
            })
            .collect();
        Page {
            items,
            has_next_page,
            has_previous_page,
            total_count,
        }
    }
}

/// Runs `base` (already filtered) as one page. `want_total` adds one `COUNT(*)` over the
/// same filter, only when the client asked.
pub async fn paginate<E, C>(
    db: &C,
    base: Select<E>,
    id: E::Column,
    order: &SortOrder<E>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Sync,
    C: ConnectionTrait,
{
    let plan = PagePlan::new(order, id, args)?;
    let total_count = if want_total {
        Some(base.clone().count(db).await?)
    } else {
        None
    };
    let rows = plan.apply(base).all(&LiteralLimits(db)).await?;
    Ok(plan.finish(rows, |m| m, total_count))
}

/// Case-insensitive substring match on any of `columns`, with LIKE wildcards in the
/// user's text taken literally. Same semantics on SQLite and PostgreSQL.
pub fn text_search<C: ColumnTrait>(columns: &[C], needle: &str) -> Condition {
    let escaped: String = needle
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("%{escaped}%");
    columns.iter().fold(Condition::any(), |cond, col| {
        cond.add(
            Expr::expr(Func::lower(Expr::col(col.as_column_ref())))
                .like(LikeExpr::new(pattern.clone()).escape('\\')),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        use crate::services::accounts::{AccountSort, sort_order};
        let by_name = sort_order(AccountSort::Name, false);
        let c = EdgeCursor {
            order: order_tag(&by_name).into(),
            key: SortKey::Text("Acme".into()),
            id: 42,
        };
        let decoded = Cursor::decode("after", &c.encode(), &by_name).unwrap();
        assert_eq!(decoded.id, 42);
        assert_eq!(decoded.k, SortKey::Text("Acme".into()));
        let err = Cursor::decode("after", "not a cursor!", &by_name).unwrap_err();
        assert_eq!(err.code(), "VALIDATION");
        // Another order, or the other direction, refuses the cursor.
        let by_created = sort_order(AccountSort::CreatedAt, false);
        assert_eq!(
            Cursor::decode("after", &c.encode(), &by_created)
                .unwrap_err()
                .code(),
            "VALIDATION"
        );
        let by_name_desc = sort_order(AccountSort::Name, true);
        assert!(Cursor::decode("after", &c.encode(), &by_name_desc).is_err());
        // A forged key of the wrong type for the column.
        let forged = EdgeCursor {
            order: order_tag(&by_name).into(),
            key: SortKey::Int(5),
            id: 1,
        };
        assert!(Cursor::decode("after", &forged.encode(), &by_name).is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert!(page_size("first", Some(101)).is_err());
        assert!(page_size("first", Some(-1)).is_err());
        assert_eq!(page_size("first", Some(100)).unwrap(), Some(100));
    }
}
