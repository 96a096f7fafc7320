//! Domain logic, one module per area. Every resolver call lands here: services take the
//! acting user, check authorization, validate, and run the transaction that writes the
//! row, its audit entry and anything else the change implies.

pub mod accounts;
pub mod audit;
pub mod contacts;
pub mod leads;
pub mod notes;
pub mod opportunities;
pub mod pagination;
pub mod pipelines;
pub mod users;
pub mod validate;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TryIntoModel,
};

use crate::auth::TokenCache;
use crate::authz::Authz;
use crate::error::{AppError, AppResult};

/// What every service needs: the database, the authorizer and the token cache.
#[derive(Clone)]
pub struct Services {
    pub db: DatabaseConnection,
    pub authz: Authz,
    pub tokens: std::sync::Arc<TokenCache>,
}

impl Services {
    pub fn new(db: DatabaseConnection, authz: Authz, token_cache_ttl: std::time::Duration) -> Self {
        Services {
            db,
            authz,
            tokens: std::sync::Arc::new(TokenCache::new(token_cache_ttl)),
        }
    }
}

/// A nullable field in an update: `None` leaves it alone, `Some(None)` clears it.
pub type Patch<T> = Option<Option<T>>;

/// Writes `active` only if the row still has `version` (which the caller read and checked),
/// so a concurrent writer that got there first turns this update into CONFLICT instead of
/// silently overwriting its change.
pub(crate) async fn update_if_version<E, C>(
    txn: &C,
    active: E::ActiveModel,
    columns: (E::Column, E::Column),
    id: i64,
    version: i32,
    entity: &str,
) -> AppResult<E::Model>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + TryIntoModel<E::Model> + Clone + Send,
    C: ConnectionTrait,
{
    let (id_column, version_column) = columns;
    let result = E::update_many()
        .set(active.clone())
        .filter(id_column.eq(id))
        .filter(version_column.eq(version))
        .exec(txn)
        .await?;
    if result.rows_affected == 0 {
        return Err(AppError::stale_version(entity));
    }
    active.try_into_model().map_err(AppError::internal)
}
