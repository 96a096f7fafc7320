//! Domain logic, one module per area. Every resolver call lands here: services take the
//! acting user, check authorization, validate, and run the transaction that writes the
//! row, its audit entry and anything else the change implies.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod calendar;
pub mod contacts;
pub mod ical;
pub mod influence;
pub mod influence_graph;
pub mod leads;
pub mod notes;
pub mod opportunities;
pub mod org_chart;
pub mod org_chart_render;
pub mod pagination;
pub mod pipelines;
pub mod published_scripts;
pub mod recurrence;
pub mod reminders;
pub mod rows;
pub mod stage_script_replay;
pub mod stage_scripts;
pub mod tasks;
pub mod territories;
pub mod users;
pub mod validate;
pub mod webhooks;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TryIntoModel,
};

use crate::auth::TokenCache;
use crate::authz::Authz;
use crate::error::{AppError, AppResult};

/// What every service needs: the database, the authorizer, the token cache and the
/// event bus.
#[derive(Clone)]
pub struct Services {
    pub db: DatabaseConnection,
    pub authz: Authz,
    pub tokens: std::sync::Arc<TokenCache>,
    /// Change events for subscriptions, published after commit.
    pub events: crate::events::EventBus,
    /// Argon2 costs ~19 MiB and tens of milliseconds per hash. At most one hash per core
    /// runs at a time, so a flood of (anonymous) logins queues instead of exhausting CPU
    /// and memory.
    pub password_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Where stage scripts are compiled and run; never in this process.
    pub sandbox: std::sync::Arc<crate::sandbox::Sandbox>,
    /// Where webhooks may point (checked when one is registered).
    pub egress: std::sync::Arc<crate::scheduler::egress::Egress>,
    /// The published stage scripts by stage, as stage moves read them.
    pub scripts: std::sync::Arc<published_scripts::PublishedScripts>,
}

impl Services {
    pub fn new(
        db: DatabaseConnection,
        authz: Authz,
        token_cache_ttl: std::time::Duration,
        sandbox: std::sync::Arc<crate::sandbox::Sandbox>,
    ) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Services {
            db,
            authz,
            tokens: std::sync::Arc::new(TokenCache::new(token_cache_ttl)),
            events: crate::events::EventBus::default(),
            password_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
            sandbox,
            egress: std::sync::Arc::default(),
            scripts: std::sync::Arc::default(),
        }
    }

    /// Runs password hashing or verification on the blocking pool, one slot per core.
    pub(crate) async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let _slot = self
            .password_slots
            .acquire()
            .await
            .map_err(AppError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(AppError::internal)
    }
}

/// A nullable field in an update: `None` leaves it alone, `Some(None)` clears it.
pub type Patch<T> = Option<Option<T>>;

/// Most values in one `IN (...)` list: well under SQLite's bound-variable limit and
/// PostgreSQL's 65,535, small enough to keep plans cheap.
pub(crate) const IN_LIST_MAX: usize = 5000;

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

/// Territory gate for one record: one the caller cannot see is NOT_FOUND, exactly like a
/// missing one; one they see but may not change at `need` is FORBIDDEN.
pub(crate) fn gate(
    can_read: bool,
    can: bool,
    entity: &'static str,
    need: accord_entities::territory_membership::AccessLevel,
) -> AppResult<()> {
    use accord_entities::territory_membership::AccessLevel;
    if !can_read {
        return Err(AppError::NotFound(entity));
    }
    if !can {
        let what = match need {
            AccessLevel::Read => "see",
            AccessLevel::Edit => "change",
            AccessLevel::Owner => "delete or reassign",
        };
        return Err(AppError::Forbidden(format!(
            "your access to this {entity}'s territory does not let you {what} it"
        )));
    }
    Ok(())
}

pub(crate) fn gate_territory(
    scope: &crate::authz::Scope,
    territory: Option<i64>,
    need: accord_entities::territory_membership::AccessLevel,
    entity: &'static str,
) -> AppResult<()> {
    use accord_entities::territory_membership::AccessLevel;
    gate(
        scope.allows(territory, AccessLevel::Read),
        scope.allows(territory, need),
        entity,
        need,
    )
}

pub(crate) fn gate_opportunity(
    scope: &crate::authz::Scope,
    o: &accord_entities::opportunity::Model,
    need: accord_entities::territory_membership::AccessLevel,
) -> AppResult<()> {
    use accord_entities::territory_membership::AccessLevel;
    gate(
        scope.allows_opportunity(o, AccessLevel::Read),
        scope.allows_opportunity(o, need),
        "opportunity",
        need,
    )
}
