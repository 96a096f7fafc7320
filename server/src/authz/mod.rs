//! Authorization. The only module that talks to casbin. Services ask [`Authz::require`]
//! for role permissions and [`Authz::scope`] for territory access; the scope turns into
//! SQL conditions (see [`scope`]) and record checks.
//!
//! The policy lives in the database (`casbin_rule`, written by [`policy::sync`] in the
//! transaction of every territory or membership change) and is loaded through the
//! SeaORM [`adapter`]. Each instance reloads it when the stored policy version moves:
//! right after its own changes, and by polling for other instances' changes.

pub mod adapter;
pub mod policy;
pub mod scope;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use accord_entities::territory_membership::AccessLevel;
use accord_entities::user::Role;
use casbin::{CoreApi, DefaultModel, DefaultRoleManager, EnforceContext, Enforcer, MgmtApi};
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, RwLock};

use crate::auth::Actor;
use crate::error::{AppError, AppResult};
pub use scope::Scope;

const MODEL: &str = include_str!("model.conf");

/// Deepest territory hierarchy the role graph follows (casbin's default is 10).
pub const MAX_TERRITORY_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Account,
    Contact,
    Lead,
    Opportunity,
    Note,
    Pipeline,
    User,
    Token,
    Audit,
    Territory,
    StageScript,
    Reminder,
    Webhook,
    Event,
    Task,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Account => "account",
            Resource::Contact => "contact",
            Resource::Lead => "lead",
            Resource::Opportunity => "opportunity",
            Resource::Note => "note",
            Resource::Pipeline => "pipeline",
            Resource::User => "user",
            Resource::Token => "token",
            Resource::Audit => "audit",
            Resource::Territory => "territory",
            Resource::StageScript => "stage_script",
            Resource::Reminder => "reminder",
            Resource::Webhook => "webhook",
            Resource::Event => "event",
            Resource::Task => "task",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
    Delete,
    ManageOwn,
    Manage,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::ManageOwn => "manage_own",
            Action::Manage => "manage",
        }
    }
}

pub fn role_subject(role: Role) -> String {
    format!("role:{}", role.as_str())
}

/// One decision explained: the lines of the policy that matched, and the verdict.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    pub matched: Vec<Vec<String>>,
}

/// The record a territory decision is about.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef {
    pub territory_id: Option<i64>,
    /// Deals only: their owner.
    pub owner_id: Option<i64>,
}

#[derive(Clone)]
pub struct Authz {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    enforcer: RwLock<Enforcer>,
    /// Policy version the enforcer holds.
    version: AtomicI64,
    scopes: std::sync::Mutex<HashMap<(i64, Role), Arc<Scope>>>,
    /// Role permission decisions under the loaded policy. Every request asks at least
    /// one, and casbin evaluates its matcher expression each time (about 2% of the
    /// nested list's CPU); there are only a few dozen distinct questions.
    decisions: std::sync::Mutex<HashMap<(Role, Resource, Action), bool>>,
    reload: Mutex<()>,
    last_reload: std::sync::Mutex<Duration>,
}

async fn build_enforcer(adapter: impl casbin::Adapter + 'static) -> casbin::Result<Enforcer> {
    let model = DefaultModel::from_str(MODEL).await?;
    let mut enforcer = Enforcer::new(model, adapter).await?;
    enforcer.set_role_manager(Arc::new(parking_lot::RwLock::new(DefaultRoleManager::new(
        MAX_TERRITORY_DEPTH + 4,
    ))))?;
    enforcer.load_policy().await?;
    Ok(enforcer)
}

/// The scopes `users` would have under `rules` (a policy that is not stored, as a
/// preview computes it), from a throwaway enforcer of the same model.
pub async fn scopes_under(
    rules: impl IntoIterator<Item = policy::Rule>,
    users: &[(i64, Role)],
) -> AppResult<HashMap<i64, Scope>> {
    let enforcer = build_enforcer(adapter::RulesAdapter::new(rules))
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("casbin preview load failed: {e}")))?;
    Ok(users
        .iter()
        .map(|&(user, role)| (user, expand_scope(&enforcer, user, role)))
        .collect())
}

impl Authz {
    /// Brings the stored policy in line with the tables (a fresh database gets its
    /// first policy here) and loads it.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let txn = crate::db::begin_write(db).await?;
        crate::db::serialize_on(&txn, "authz-policy", 0).await?;
        policy::sync(&txn).await?;
        let version = policy::version(&txn).await?;
        txn.commit().await?;
        let started = Instant::now();
        let enforcer = build_enforcer(adapter::SeaOrmAdapter::new(db.clone())).await?;
        Ok(Authz {
            inner: Arc::new(Inner {
                db: db.clone(),
                enforcer: RwLock::new(enforcer),
                version: AtomicI64::new(version),
                scopes: std::sync::Mutex::new(HashMap::new()),
                decisions: std::sync::Mutex::new(HashMap::new()),
                reload: Mutex::new(()),
                last_reload: std::sync::Mutex::new(started.elapsed()),
            }),
        })
    }

    /// How long the last full policy load took.
    pub fn last_reload_duration(&self) -> Duration {
        self.inner
            .last_reload
            .lock()
            .map(|d| *d)
            .unwrap_or_default()
    }

    pub fn policy_version(&self) -> i64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// Reloads the policy if the stored version moved. Returns whether it reloaded.
    pub async fn refresh(&self) -> AppResult<bool> {
        let stored = policy::version(&self.inner.db).await?;
        if stored == self.policy_version() {
            return Ok(false);
        }
        let _one_at_a_time = self.inner.reload.lock().await;
        let stored = policy::version(&self.inner.db).await?;
        if stored == self.policy_version() {
            return Ok(false);
        }
        self.reload_now(stored).await?;
        Ok(true)
    }

    /// Reloads the whole policy from the database, unconditionally.
    pub async fn reload_now(&self, version: i64) -> AppResult<()> {
        let started = Instant::now();
        {
            let mut enforcer = self.inner.enforcer.write().await;
            let loaded = enforcer.load_policy().await;
            // Cleared even when the load failed: casbin empties its policy before
            // loading, and answers kept from the old one would disagree with it.
            if let Ok(mut scopes) = self.inner.scopes.lock() {
                scopes.clear();
            }
            if let Ok(mut decisions) = self.inner.decisions.lock() {
                decisions.clear();
            }
            loaded.map_err(|e| AppError::internal(anyhow::anyhow!("casbin reload failed: {e}")))?;
            self.inner.version.store(version, Ordering::Release);
        }
        let took = started.elapsed();
        if let Ok(mut last) = self.inner.last_reload.lock() {
            *last = took;
        }
        tracing::info!(
            version,
            ms = took.as_secs_f64() * 1000.0,
            "casbin policy reloaded"
        );
        Ok(())
    }

    /// Polls the stored policy version so changes made through other instances
    /// take effect here within `every`.
    pub fn spawn_watcher(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let authz = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = authz.refresh().await {
                    tracing::warn!(error = %e, "policy version check failed");
                }
            }
        })
    }

    pub async fn can(&self, actor: &Actor, resource: Resource, action: Action) -> bool {
        let question = (actor.role, resource, action);
        let decided = |d: &HashMap<_, bool>| d.get(&question).copied();
        if let Some(allowed) = self.inner.decisions.lock().ok().and_then(|d| decided(&d)) {
            return allowed;
        }
        // The decision is kept while the read lock is held: a reload (which takes the
        // write lock, then clears `decisions`) cannot slip in between, so no decision
        // of an older policy outlives it.
        let enforcer = self.inner.enforcer.read().await;
        match enforcer.enforce_with_context(
            EnforceContext::new("2"),
            (
                role_subject(actor.role).as_str(),
                resource.as_str(),
                action.as_str(),
            ),
        ) {
            Ok(allowed) => {
                if let Ok(mut decisions) = self.inner.decisions.lock() {
                    decisions.insert(question, allowed);
                }
                allowed
            }
            Err(e) => {
                tracing::error!(error = %e, "casbin enforce failed; denying");
                false
            }
        }
    }

    pub async fn require(
        &self,
        actor: &Actor,
        resource: Resource,
        action: Action,
    ) -> AppResult<()> {
        if self.can(actor, resource, action).await {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "your role ({}) may not {} {} records",
                actor.role.as_str(),
                action.as_str().replace('_', " "),
                resource.as_str()
            )))
        }
    }

    /// The actor's territory access, expanded once per policy version and cached.
    pub async fn scope(&self, actor: &Actor) -> Arc<Scope> {
        self.scope_of(actor.user_id, actor.role).await
    }

    pub async fn scope_of(&self, user_id: i64, role: Role) -> Arc<Scope> {
        if let Some(hit) = self
            .inner
            .scopes
            .lock()
            .ok()
            .and_then(|s| s.get(&(user_id, role)).cloned())
        {
            return hit;
        }
        let enforcer = self.inner.enforcer.read().await;
        let scope = Arc::new(expand_scope(&enforcer, user_id, role));
        if let Ok(mut scopes) = self.inner.scopes.lock() {
            scopes.insert((user_id, role), scope.clone());
        }
        scope
    }

    /// Asks casbin itself about one record, and which policy lines decided.
    pub async fn decide(
        &self,
        user_id: i64,
        role: Role,
        record: RecordRef,
        need: AccessLevel,
    ) -> AppResult<Decision> {
        let enforcer = self.inner.enforcer.read().await;
        decide_with(&enforcer, user_id, role, record, need)
    }

    /// The role-permission lines that grant `role` the action on the resource.
    pub async fn role_lines(&self, role: Role, resource: &str, action: &str) -> Vec<Vec<String>> {
        let enforcer = self.inner.enforcer.read().await;
        let rm = enforcer.get_role_manager();
        let subject = role_subject(role);
        enforcer
            .get_named_policy("p2")
            .into_iter()
            .filter(|p| {
                p.len() >= 3
                    && rm.read().has_link(&subject, &p[0], None)
                    && (p[1] == "*" || p[1] == resource)
                    && (p[2] == "*" || p[2] == action)
            })
            .collect()
    }

    /// The chain of territories from `territory` up to the root, as casbin's role
    /// graph knows it.
    pub async fn territory_path(&self, territory: i64) -> Vec<i64> {
        let enforcer = self.inner.enforcer.read().await;
        let rm = enforcer.get_role_manager();
        let rm = rm.read();
        let mut path = vec![territory];
        let mut current = policy::territory_subject(Some(territory));
        for _ in 0..MAX_TERRITORY_DEPTH {
            let parents = rm.get_roles(&current, None);
            let Some(parent) = parents.into_iter().find(|p| p.starts_with("territory:")) else {
                break;
            };
            if let Some(id) = parse_territory(&parent) {
                path.push(id);
            }
            current = parent;
        }
        path
    }
}

pub fn decide_with(
    enforcer: &Enforcer,
    user_id: i64,
    role: Role,
    record: RecordRef,
    need: AccessLevel,
) -> AppResult<Decision> {
    let owner = record
        .owner_id
        .map(policy::user_subject)
        .unwrap_or_default();
    let (allowed, matched) = enforcer
        .enforce_ex((
            policy::user_subject(user_id).as_str(),
            role_subject(role).as_str(),
            policy::territory_subject(record.territory_id).as_str(),
            policy::level_subject(need).as_str(),
            owner.as_str(),
        ))
        .map_err(|e| AppError::internal(anyhow::anyhow!("casbin enforce failed: {e}")))?;
    Ok(Decision { allowed, matched })
}

fn parse_territory(subject: &str) -> Option<i64> {
    subject.strip_prefix("territory:")?.parse().ok()
}

fn parse_level(subject: &str) -> Option<AccessLevel> {
    match subject.strip_prefix("level:")? {
        "read" => Some(AccessLevel::Read),
        "edit" => Some(AccessLevel::Edit),
        "owner" => Some(AccessLevel::Owner),
        _ => None,
    }
}

/// Expands a user's grants from the loaded policy: `all` grants make the scope
/// unrestricted; `member` grants cover their territory; `manager` grants cover the
/// territory and everything below it in the role graph. The oracle test checks the
/// result against `enforce` record by record.
pub fn expand_scope(enforcer: &Enforcer, user_id: i64, role: Role) -> Scope {
    let rm = enforcer.get_role_manager();
    let rm = rm.read();
    let role_name = role_subject(role);
    let user = policy::user_subject(user_id);
    let mut levels: HashMap<i64, AccessLevel> = HashMap::new();
    let mut managed = BTreeSet::new();
    for grant in enforcer.get_policy() {
        let [sub, terr, act, scope] = grant.as_slice() else {
            continue;
        };
        match scope.as_str() {
            "all" if rm.has_link(&role_name, sub, None) => return Scope::unrestricted(user_id),
            "member" | "manager" if *sub == user => {
                let (Some(root), Some(level)) = (parse_territory(terr), parse_level(act)) else {
                    continue;
                };
                let mut covered = vec![root];
                if scope == "manager" {
                    let mut queue = VecDeque::from([terr.clone()]);
                    let mut seen = BTreeSet::from([terr.clone()]);
                    while let Some(t) = queue.pop_front() {
                        for child in rm.get_users(&t, None) {
                            if child.starts_with("territory:") && seen.insert(child.clone()) {
                                if let Some(id) = parse_territory(&child) {
                                    covered.push(id);
                                }
                                queue.push_back(child);
                            }
                        }
                    }
                    managed.extend(covered.iter().copied());
                }
                for t in covered {
                    let best = levels.entry(t).or_insert(level);
                    if level > *best {
                        *best = level;
                    }
                }
            }
            _ => {}
        }
    }
    Scope::new(user_id, levels, managed)
}

/// Whether `actor` may edit the stage scripts of a pipeline whose responsible manager is
/// `manager_id` (on top of the role's `stage_script, write` permission): admins always,
/// a sales manager when the pipeline names them or names nobody.
pub fn may_edit_scripts(actor: &Actor, manager_id: Option<i64>) -> bool {
    match actor.role {
        Role::Admin => true,
        Role::SalesManager => manager_id.is_none_or(|m| m == actor.user_id),
        Role::Rep => false,
    }
}

/// Whether `actor` may manage what belongs to a team (a territory), such as its
/// webhooks: admins, and the territory's managers (membership with `is_manager`, here
/// or above it).
pub fn may_manage_team(actor: &Actor, scope: &Scope, territory: i64) -> bool {
    actor.role == Role::Admin || scope.manages(territory)
}

/// Whether `actor` may record or remove `user_id`'s relationship with a contact in
/// `territory`: their own with any contact they see, anyone's with a contact they may
/// edit (a manager noting who on the team knows whom), and admins always.
pub fn may_record_relationship(
    actor: &Actor,
    scope: &Scope,
    user_id: i64,
    territory: Option<i64>,
) -> bool {
    actor.role == Role::Admin
        || (user_id == actor.user_id && scope.allows(territory, AccessLevel::Read))
        || scope.allows(territory, AccessLevel::Edit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            user_id: 1,
            role,
            token_id: 1,
        }
    }

    async fn authz() -> Authz {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        use accord_migration::MigratorTrait;
        accord_migration::Migrator::up(&db, None).await.unwrap();
        Authz::load(&db).await.unwrap()
    }

    #[tokio::test]
    async fn roles_follow_the_policy_file() {
        let authz = authz().await;
        let rep = actor(Role::Rep);
        let manager = actor(Role::SalesManager);
        let admin = actor(Role::Admin);
        assert!(authz.can(&rep, Resource::Opportunity, Action::Write).await);
        assert!(!authz.can(&rep, Resource::Pipeline, Action::Write).await);
        assert!(!authz.can(&rep, Resource::Audit, Action::Read).await);
        assert!(!authz.can(&rep, Resource::User, Action::Write).await);
        // Managers inherit every rep permission and add their own.
        assert!(
            authz
                .can(&manager, Resource::Opportunity, Action::Write)
                .await
        );
        assert!(authz.can(&manager, Resource::Pipeline, Action::Write).await);
        assert!(!authz.can(&manager, Resource::User, Action::Write).await);
        assert!(authz.can(&admin, Resource::User, Action::Write).await);
        let err = authz
            .require(&rep, Resource::Pipeline, Action::Write)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN");
    }

    #[tokio::test]
    async fn admins_see_everything_and_others_nothing_without_grants() {
        let authz = authz().await;
        assert!(authz.scope(&actor(Role::Admin)).await.unrestricted);
        let rep = authz.scope(&actor(Role::Rep)).await;
        assert!(!rep.unrestricted);
        assert!(!rep.allows(Some(1), AccessLevel::Read));
        assert!(!rep.allows(None, AccessLevel::Read));
        let d = authz
            .decide(
                1,
                Role::Rep,
                RecordRef {
                    territory_id: Some(1),
                    owner_id: Some(1),
                },
                AccessLevel::Edit,
            )
            .await
            .unwrap();
        assert!(d.allowed, "a deal's owner may edit it");
        assert_eq!(d.matched[0][3], "record_owner");
    }
}
