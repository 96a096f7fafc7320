//! DataLoaders: every relation reachable from a list is fetched in one statement per
//! relation per request, never one per row. A fresh [`Loaders`] is made per request, so
//! caching never outlives the request that filled it.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use accord_entities::opportunity_contact_role as role;
use accord_entities::{
    account, contact, note, opportunity, pipeline, stage, stage_transition, territory,
    territory_membership, user,
};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use sea_orm::Iterable;
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, IdenStatic, ModelTrait, Order,
    PrimaryKeyToColumn, PrimaryKeyTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Value,
};

use crate::authz::Scope;
use crate::services::rows::ContactBrief;
use accord_entities::territory_membership::AccessLevel;

pub type LoadError = Arc<DbErr>;

fn as_i64(value: Value) -> Option<i64> {
    match value {
        Value::BigInt(Some(v)) => Some(v),
        Value::Int(Some(v)) => Some(i64::from(v)),
        _ => None,
    }
}

fn primary_column<E: EntityTrait>() -> Option<E::Column> {
    E::PrimaryKey::iter().next().map(|pk| pk.into_column())
}

/// Rows by primary key.
pub struct ById<E> {
    db: DatabaseConnection,
    entity: PhantomData<E>,
    /// The caller's visibility condition on `E`, if it has one (see `authz::scope`).
    visible: Option<Condition>,
}

impl<E> Loader<i64> for ById<E>
where
    E: EntityTrait + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    type Value = E::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, E::Model>, LoadError> {
        let Some(id) = primary_column::<E>() else {
            return Ok(HashMap::new());
        };
        let rows = E::find()
            .filter(id.is_in(keys.iter().copied()))
            .apply_if(self.visible.clone(), QueryFilter::filter)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|m| as_i64(m.get(id)).map(|k| (k, m)))
            .collect())
    }
}

/// All children of each parent, through a foreign-key column, in a fixed order.
pub struct ByParent<E: EntityTrait> {
    db: DatabaseConnection,
    parent: E::Column,
    order: E::Column,
    visible: Option<Condition>,
}

impl<E> Loader<i64> for ByParent<E>
where
    E: EntityTrait + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
    E::Column: Send + Sync,
{
    type Value = Vec<E::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Vec<E::Model>>, LoadError> {
        let Some(id) = primary_column::<E>() else {
            return Ok(HashMap::new());
        };
        // Parent first: rows are grouped by parent anyway, and an index on (parent,
        // order, id) then yields them without a sort.
        let rows = E::find()
            .filter(self.parent.is_in(keys.iter().copied()))
            .apply_if(self.visible.clone(), QueryFilter::filter)
            .order_by_asc(self.parent)
            .order_by_asc(self.order)
            .order_by_asc(id)
            .all(&self.db)
            .await?;
        let mut grouped: HashMap<i64, Vec<E::Model>> = HashMap::new();
        for row in rows {
            if let Some(parent) = as_i64(row.get(self.parent)) {
                grouped.entry(parent).or_default().push(row);
            }
        }
        Ok(grouped)
    }
}

/// The first `limit + 1` children of each parent in one statement (a window function
/// ranks rows per parent), for nested connections: the extra row tells `hasNextPage`.
pub struct FirstPerParent<E: EntityTrait> {
    db: DatabaseConnection,
    parent: E::Column,
    order: E::Column,
    descending: bool,
    visible: Option<Condition>,
}

/// `(parent id, page size)`
pub type PageKey = (i64, u64);

impl<E> Loader<PageKey> for FirstPerParent<E>
where
    E: EntityTrait + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
    E::Column: Send + Sync,
{
    type Value = Vec<E::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[PageKey]) -> Result<HashMap<PageKey, Vec<E::Model>>, LoadError> {
        let Some(id) = primary_column::<E>() else {
            return Ok(HashMap::new());
        };
        let mut by_limit: HashMap<u64, Vec<i64>> = HashMap::new();
        for (parent, limit) in keys {
            by_limit.entry(*limit).or_default().push(*parent);
        }
        let dir = if self.descending { "DESC" } else { "ASC" };
        let backend = self.db.get_database_backend();
        let mut out = HashMap::new();
        for (limit, parents) in by_limit {
            // Column names are compile-time identifiers of the entity, never user input.
            let rank = format!(
                "ROW_NUMBER() OVER (PARTITION BY \"{p}\" ORDER BY \"{o}\" {dir}, \"{i}\" {dir})",
                p = self.parent.as_str(),
                o = self.order.as_str(),
                i = id.as_str(),
            );
            let mut inner = Query::select()
                .column(Asterisk)
                .expr_as(Expr::cust(rank), Alias::new("page_rank"))
                .from(E::default())
                .and_where(self.parent.is_in(parents.iter().copied()))
                .to_owned();
            if let Some(visible) = &self.visible {
                inner.cond_where(visible.clone());
            }
            let outer = Query::select()
                .column(Asterisk)
                .from_subquery(inner, Alias::new("ranked"))
                .and_where(Expr::col(Alias::new("page_rank")).lte(limit as i64 + 1))
                .order_by(Alias::new("page_rank"), Order::Asc)
                .to_owned();
            let rows = E::find()
                .from_raw_sql(backend.build(&outer))
                .all(&self.db)
                .await?;
            for row in rows {
                if let Some(parent) = as_i64(row.get(self.parent)) {
                    out.entry((parent, limit))
                        .or_insert_with(Vec::new)
                        .push(row);
                }
            }
        }
        Ok(out)
    }
}

/// Number of children per parent (`totalCount` of nested connections).
pub struct CountPerParent<E: EntityTrait> {
    db: DatabaseConnection,
    parent: E::Column,
    visible: Option<Condition>,
}

impl<E> Loader<i64> for CountPerParent<E>
where
    E: EntityTrait + Send + Sync + 'static,
    E::Column: Send + Sync,
{
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, LoadError> {
        let rows: Vec<(i64, i64)> = E::find()
            .select_only()
            .column(self.parent)
            .column_as(Expr::col(Asterisk).count(), "n")
            .filter(self.parent.is_in(keys.iter().copied()))
            .apply_if(self.visible.clone(), QueryFilter::filter)
            .group_by(self.parent)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().collect())
    }
}

type Dl<L> = DataLoader<L, HashMapCache>;

fn dl<L, K>(loader: L) -> Dl<L>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    L: Loader<K>,
{
    // A batch runs in its own task; keep it in the span of the request that started it,
    // so its statements' logs stay with that request.
    DataLoader::with_cache(
        loader,
        |batch| tokio::spawn(tracing::Instrument::in_current_span(batch)),
        HashMapCache::default(),
    )
}

/// Every loader a request may use, as typed fields.
pub struct Loaders {
    /// For preloads that join several entities in one statement.
    pub db: DatabaseConnection,
    /// What the caller may see; every loader below filters by it.
    pub scope: Arc<Scope>,
    pub users: Dl<ById<user::Entity>>,
    pub accounts: Dl<ById<account::Entity>>,
    pub contacts: Dl<ById<contact::Entity>>,
    pub pipelines: Dl<ById<pipeline::Entity>>,
    pub stages: Dl<ById<stage::Entity>>,
    pub opportunities: Dl<ById<opportunity::Entity>>,
    pub stages_by_pipeline: Dl<ByParent<stage::Entity>>,
    pub territories: Dl<ById<territory::Entity>>,
    pub territory_children: Dl<ByParent<territory::Entity>>,
    pub memberships_by_territory: Dl<ByParent<territory_membership::Entity>>,
    pub roles_by_opportunity: Dl<ByParent<role::Entity>>,
    pub roles_by_contact: Dl<ByParent<role::Entity>>,
    pub transitions_by_opportunity: Dl<ByParent<stage_transition::Entity>>,
    pub reports_by_contact: Dl<ByParent<contact::Entity>>,
    pub children_by_account: Dl<ByParent<account::Entity>>,
    pub contacts_by_account: Dl<FirstPerParent<contact::Entity>>,
    pub contact_count_by_account: Dl<CountPerParent<contact::Entity>>,
    pub opportunities_by_account: Dl<FirstPerParent<opportunity::Entity>>,
    pub opportunity_count_by_account: Dl<CountPerParent<opportunity::Entity>>,
    pub notes_by_account: Dl<FirstPerParent<note::Entity>>,
    pub notes_by_contact: Dl<FirstPerParent<note::Entity>>,
    pub notes_by_lead: Dl<FirstPerParent<note::Entity>>,
    pub notes_by_opportunity: Dl<FirstPerParent<note::Entity>>,
    /// Attendees of events the caller already sees (events are checked before this).
    pub attendees_by_event: Dl<ByParent<accord_entities::event_attendee::Entity>>,
    /// Related records a list read brief with its page.
    pub briefs: Briefs,
}

/// Related records a list read brief with its page (only the columns its selection
/// asked for, see `services::rows`), by id. The resolvers that reach them look here
/// before their loader; the loaders' caches only ever hold whole rows. (A deal's
/// account, owner, stage and committee read with its page travel with the deal
/// instead, see `types::opportunity::ReadAlong`.)
#[derive(Default)]
pub struct Briefs {
    pub contacts: parking_lot::RwLock<HashMap<i64, ContactBrief>>,
}

/// A brief record read with the page, if there is one for `id`.
pub fn brief<B: Clone>(map: &parking_lot::RwLock<HashMap<i64, B>>, id: i64) -> Option<B> {
    map.read().get(&id).cloned()
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, scope: Arc<Scope>) -> Self {
        fn by_id<E>(db: &DatabaseConnection, visible: Option<Condition>) -> Dl<ById<E>>
        where
            E: EntityTrait + Send + Sync + 'static,
            E::Model: Clone + Send + Sync + 'static,
            <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
        {
            dl(ById {
                db: db.clone(),
                entity: PhantomData,
                visible,
            })
        }
        let accounts = scope.accounts(AccessLevel::Read);
        let contacts = scope.contacts(AccessLevel::Read);
        let opportunities = scope.opportunities(AccessLevel::Read);
        let roles = scope.contact_roles();
        // Notes and stage transitions are reached only through a parent the caller can
        // already see, so they need no filter of their own.
        let notes = |parent| FirstPerParent::<note::Entity> {
            db: db.clone(),
            parent,
            order: note::Column::CreatedAt,
            descending: true,
            visible: None,
        };
        Loaders {
            db: db.clone(),
            scope: scope.clone(),
            users: by_id(db, None),
            accounts: by_id(db, accounts.clone()),
            contacts: by_id(db, contacts.clone()),
            pipelines: by_id(db, None),
            territories: by_id(db, None),
            territory_children: dl(ByParent::<territory::Entity> {
                db: db.clone(),
                parent: territory::Column::ParentId,
                order: territory::Column::Name,
                visible: None,
            }),
            memberships_by_territory: dl(ByParent::<territory_membership::Entity> {
                db: db.clone(),
                parent: territory_membership::Column::TerritoryId,
                order: territory_membership::Column::CreatedAt,
                visible: None,
            }),
            stages: by_id(db, None),
            opportunities: by_id(db, opportunities.clone()),
            stages_by_pipeline: dl(ByParent::<stage::Entity> {
                db: db.clone(),
                parent: stage::Column::PipelineId,
                order: stage::Column::Position,
                visible: None,
            }),
            attendees_by_event: dl(ByParent::<accord_entities::event_attendee::Entity> {
                db: db.clone(),
                parent: accord_entities::event_attendee::Column::EventId,
                order: accord_entities::event_attendee::Column::Id,
                visible: None,
            }),
            roles_by_opportunity: dl(ByParent::<role::Entity> {
                db: db.clone(),
                parent: role::Column::OpportunityId,
                order: role::Column::CreatedAt,
                visible: roles.clone(),
            }),
            roles_by_contact: dl(ByParent::<role::Entity> {
                db: db.clone(),
                parent: role::Column::ContactId,
                order: role::Column::CreatedAt,
                visible: roles,
            }),
            transitions_by_opportunity: dl(ByParent::<stage_transition::Entity> {
                db: db.clone(),
                parent: stage_transition::Column::OpportunityId,
                order: stage_transition::Column::TransitionedAt,
                visible: None,
            }),
            reports_by_contact: dl(ByParent::<contact::Entity> {
                db: db.clone(),
                parent: contact::Column::ReportsToId,
                order: contact::Column::LastName,
                visible: contacts.clone(),
            }),
            children_by_account: dl(ByParent::<account::Entity> {
                db: db.clone(),
                parent: account::Column::ParentId,
                order: account::Column::Name,
                visible: accounts,
            }),
            contacts_by_account: dl(FirstPerParent::<contact::Entity> {
                db: db.clone(),
                parent: contact::Column::AccountId,
                order: contact::Column::LastName,
                descending: false,
                visible: contacts.clone(),
            }),
            contact_count_by_account: dl(CountPerParent::<contact::Entity> {
                db: db.clone(),
                parent: contact::Column::AccountId,
                visible: contacts,
            }),
            opportunities_by_account: dl(FirstPerParent::<opportunity::Entity> {
                db: db.clone(),
                parent: opportunity::Column::AccountId,
                order: opportunity::Column::CreatedAt,
                descending: false,
                visible: opportunities.clone(),
            }),
            opportunity_count_by_account: dl(CountPerParent::<opportunity::Entity> {
                db: db.clone(),
                parent: opportunity::Column::AccountId,
                visible: opportunities,
            }),
            notes_by_account: dl(notes(note::Column::AccountId)),
            notes_by_contact: dl(notes(note::Column::ContactId)),
            notes_by_lead: dl(notes(note::Column::LeadId)),
            notes_by_opportunity: dl(notes(note::Column::OpportunityId)),
            briefs: Briefs::default(),
        }
    }
}

/// Loader failures are database failures: log them, tell the client only INTERNAL.
pub fn load_error(err: LoadError) -> async_graphql::Error {
    crate::error::AppError::internal(anyhow::anyhow!("batch load failed: {err}")).into()
}

/// Loads one key through `loader`, in a boxed future.
///
/// async-graphql gives every selected field of an object a future as large as that
/// type's largest resolver, and a DataLoader call held inline is some 450 bytes: one
/// relation resolver would make each `name` of each row of a list allocate and copy
/// that much. Boxed, only a resolver that really loads pays for it.
pub fn one<L, K>(
    loader: &DataLoader<L, HashMapCache>,
    key: K,
) -> futures::future::BoxFuture<'_, async_graphql::Result<Option<L::Value>>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    L: Loader<K, Error = LoadError>,
{
    Box::pin(async move { loader.load_one(key).await.map_err(load_error) })
}
