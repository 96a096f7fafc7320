//! Access analysis. [`explain`] says, in words and in policy lines, why a user may or
//! may not read, edit or delete one record. [`change`] takes a proposed territory change
//! (moves, memberships, assignment rules), applies it inside a transaction, and counts
//! the records every affected user gains or loses; a preview then rolls back, an apply
//! commits exactly what was counted.

use std::collections::{BTreeSet, HashMap};

use accord_entities::territory_membership::{self as membership, AccessLevel};
use accord_entities::user::{self, Role};
use accord_entities::{account, contact, opportunity, territory};
use sea_orm::sea_query::{Asterisk, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::auth::Actor;
use crate::authz::{self, Action, RecordRef, Resource, Scope, policy};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::territories::{
    self, AccountMove, MembershipInput, RuleInput, TerritoryChanges,
};
use crate::services::{Services, accounts, contacts, opportunities};

// ---------------------------------------------------------------------------------
// Explain.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessAction {
    Read,
    Edit,
    Delete,
}

impl AccessAction {
    /// The territory level the action needs (the services gate on the same levels).
    pub fn level(self) -> AccessLevel {
        match self {
            AccessAction::Read => AccessLevel::Read,
            AccessAction::Edit => AccessLevel::Edit,
            AccessAction::Delete => AccessLevel::Owner,
        }
    }

    fn role_action(self) -> Action {
        match self {
            AccessAction::Read => Action::Read,
            AccessAction::Edit => Action::Write,
            AccessAction::Delete => Action::Delete,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            AccessAction::Read => "read",
            AccessAction::Edit => "edit",
            AccessAction::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Account,
    Contact,
    Opportunity,
}

impl RecordKind {
    fn resource(self) -> Resource {
        match self {
            RecordKind::Account => Resource::Account,
            RecordKind::Contact => Resource::Contact,
            RecordKind::Opportunity => Resource::Opportunity,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            RecordKind::Account => "account",
            RecordKind::Contact => "contact",
            RecordKind::Opportunity => "deal",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Explanation {
    pub user: user::Model,
    pub kind: RecordKind,
    pub record_id: i64,
    pub action: AccessAction,
    pub allowed: bool,
    pub role_allowed: bool,
    pub territory_allowed: bool,
    pub record_territory: Option<i64>,
    /// From the record's territory up to the root.
    pub territory_path: Vec<territory::Model>,
    pub owner_id: Option<i64>,
    /// The policy lines that granted, in casbin's notation (none when denied).
    pub policy_lines: Vec<String>,
    /// The verdict in one sentence.
    pub summary: String,
    /// How it was reached, one sentence per step.
    pub reasons: Vec<String>,
}

fn line(ptype: &str, values: &[String]) -> String {
    format!("{ptype}, {}", values.join(", "))
}

fn path_words(path: &[territory::Model]) -> String {
    path.iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(" › ")
}

/// Admins may explain anyone's access; sales managers that of the members of
/// territories they manage; everyone else their own.
async fn may_explain_for(
    svc: &Services,
    actor: &Actor,
    scope: &Scope,
    user_id: i64,
) -> AppResult<()> {
    if user_id == actor.user_id || actor.role == Role::Admin {
        return Ok(());
    }
    if actor.role == Role::SalesManager {
        let theirs = membership::Entity::find()
            .filter(membership::Column::UserId.eq(user_id))
            .all(&svc.db)
            .await?;
        if theirs.iter().any(|m| scope.manages(m.territory_id)) {
            return Ok(());
        }
    }
    Err(AppError::Forbidden(
        "you may explain only your own access, or, as a sales manager, that of the members of territories you manage".into(),
    ))
}

/// Why `user_id` (default: the caller) may or may not act on a record. The record
/// must be visible to the caller: an invisible one is NOT_FOUND, as everywhere else.
pub async fn explain(
    svc: &Services,
    actor: &Actor,
    user_id: Option<i64>,
    kind: RecordKind,
    record_id: i64,
    action: AccessAction,
) -> AppResult<Explanation> {
    let scope = svc.authz.scope(actor).await;
    let user_id = user_id.unwrap_or(actor.user_id);
    may_explain_for(svc, actor, &scope, user_id).await?;
    let user = user::Entity::find_by_id(user_id)
        .one(&svc.db)
        .await?
        .ok_or_else(|| AppError::validation("userId", "no such user"))?;
    let (territory_id, owner_id) = match kind {
        RecordKind::Account => (
            accounts::get(svc, actor, record_id).await?.territory_id,
            None,
        ),
        RecordKind::Contact => (
            contacts::get(svc, actor, record_id).await?.territory_id,
            None,
        ),
        RecordKind::Opportunity => {
            let deal = opportunities::get(svc, actor, record_id).await?;
            (deal.territory_id, Some(deal.owner_id))
        }
    };

    let who = user.display_name.clone();
    let role = user.role.as_str();
    let (resource, verb) = (kind.resource(), action.verb());
    let mut reasons = Vec::new();
    let mut policy_lines = Vec::new();

    let role_subject = authz::role_subject(user.role);
    let role_lines = svc
        .authz
        .role_lines(user.role, resource.as_str(), action.role_action().as_str())
        .await;
    let role_allowed = !role_lines.is_empty();
    match role_lines.first() {
        Some(l) => {
            let inherited = if l[0] != role_subject {
                format!(", inherited from {}", l[0].trim_start_matches("role:"))
            } else {
                String::new()
            };
            reasons.push(format!(
                "Role {role} may {verb} {} records ({}{inherited}).",
                resource.as_str(),
                line("p2", l)
            ));
            policy_lines.push(line("p2", l));
        }
        None => reasons.push(format!(
            "Role {role} may not {verb} {} records: no role permission grants it.",
            resource.as_str()
        )),
    }

    let path_ids = match territory_id {
        Some(t) => svc.authz.territory_path(t).await,
        None => Vec::new(),
    };
    let by_id: HashMap<i64, territory::Model> = territory::Entity::find()
        .filter(territory::Column::Id.is_in(path_ids.iter().copied()))
        .all(&svc.db)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let territory_path: Vec<territory::Model> = path_ids
        .iter()
        .filter_map(|id| by_id.get(id).cloned())
        .collect();
    let name_of = |t: i64| {
        by_id
            .get(&t)
            .map_or_else(|| format!("territory {t}"), |m| m.name.clone())
    };

    let need = action.level();
    let decision = svc
        .authz
        .decide(
            user.id,
            user.role,
            RecordRef {
                territory_id,
                owner_id,
            },
            need,
        )
        .await?;
    let noun = kind.noun();
    if decision.allowed {
        for matched in &decision.matched {
            policy_lines.push(line("p", matched));
            let [_, terr, act, grant] = matched.as_slice() else {
                continue;
            };
            let level = act.trim_start_matches("level:");
            let granted = terr.strip_prefix("territory:").and_then(|t| t.parse().ok());
            reasons.push(match (grant.as_str(), granted) {
                ("member", Some(t)) => format!(
                    "{who} is a member of {} with {level} access, and the {noun} lies there.",
                    name_of(t)
                ),
                ("manager", Some(t)) if Some(t) == territory_id => format!(
                    "{who} manages {} with {level} access, and the {noun} lies there.",
                    name_of(t)
                ),
                ("manager", Some(t)) => format!(
                    "{who} manages {} with {level} access, which covers every territory below it; the {noun} lies in {} ({}).",
                    name_of(t),
                    territory_id.map_or_else(|| "no territory".into(), name_of),
                    path_words(&territory_path)
                ),
                ("all", _) => format!(
                    "Role {role} reaches every record at owner level, in a territory or not."
                ),
                ("record_owner", _) => format!(
                    "{who} owns this deal; a deal's owner may read and edit it wherever it lies."
                ),
                _ => format!("Policy line {} grants it.", line("p", matched)),
            });
        }
    } else {
        reasons.extend(
            denial_reasons(
                svc,
                &user,
                territory_id,
                owner_id,
                &territory_path,
                need,
                noun,
            )
            .await?,
        );
    }
    if !user.active {
        reasons.push(format!(
            "{who} is deactivated and cannot sign in, so none of this is in use."
        ));
    }
    let allowed = role_allowed && decision.allowed && user.active;
    let summary = format!(
        "{}: {who} {} {verb} this {noun}.",
        if allowed { "Allowed" } else { "Denied" },
        if allowed { "may" } else { "may not" }
    );
    Ok(Explanation {
        user,
        kind,
        record_id,
        action,
        allowed,
        role_allowed,
        territory_allowed: decision.allowed,
        record_territory: territory_id,
        territory_path,
        owner_id,
        policy_lines,
        summary,
        reasons,
    })
}

/// Why no policy line matched: what the user holds along the record's path, and why
/// it is not enough.
async fn denial_reasons(
    svc: &Services,
    user: &user::Model,
    territory_id: Option<i64>,
    owner_id: Option<i64>,
    path: &[territory::Model],
    need: AccessLevel,
    noun: &str,
) -> AppResult<Vec<String>> {
    let who = &user.display_name;
    let need_word = need.as_str();
    let mut reasons = Vec::new();
    if owner_id == Some(user.id) {
        reasons.push(format!(
            "{who} owns this deal, which allows reading and editing it but not {need_word}-level actions such as deleting it."
        ));
    }
    let Some(record_territory) = territory_id else {
        reasons.push(format!(
            "The {noun} is in no territory; only admins reach unassigned records."
        ));
        return Ok(reasons);
    };
    let held = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.id))
        .filter(membership::Column::TerritoryId.is_in(path.iter().map(|t| t.id)))
        .all(&svc.db)
        .await?;
    let name_of = |id: i64| {
        path.iter()
            .find(|t| t.id == id)
            .map_or_else(|| format!("territory {id}"), |t| t.name.clone())
    };
    for m in &held {
        let level = m.access_level.as_str();
        let place = name_of(m.territory_id);
        reasons.push(if m.territory_id == record_territory || m.is_manager {
            format!(
                "{who} {} {place} with {level} access, but this needs {need_word} access.",
                if m.is_manager { "manages" } else { "is a member of" }
            )
        } else {
            format!(
                "{who} is a member of {place} with {level} access, but membership covers only that territory, not the ones below it; only managers inherit a subtree."
            )
        });
    }
    if held.is_empty() {
        reasons.push(format!(
            "{who} holds no membership on {} or any territory above it ({}).",
            name_of(record_territory),
            path_words(path)
        ));
    }
    Ok(reasons)
}

// ---------------------------------------------------------------------------------
// Preview and apply.

/// One step of a territory change.
#[derive(Debug, Clone)]
pub enum TerritoryChange {
    /// Moves a territory with its subtree (`None`: to the top level).
    MoveTerritory {
        territory_id: i64,
        parent_id: Option<i64>,
    },
    SetMembership(MembershipInput),
    RemoveMembership {
        territory_id: i64,
        user_id: i64,
    },
    CreateRule(RuleInput),
    UpdateRule {
        id: i64,
        input: RuleInput,
    },
    DeleteRule {
        id: i64,
    },
}

/// At most this many steps in one change.
pub const MAX_CHANGES: usize = 100;

#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub changes: Vec<TerritoryChange>,
    /// Re-run the assignment rules over existing accounts after the steps (admins), so
    /// rule edits move the accounts they now place elsewhere.
    pub reassign_accounts: bool,
    /// Refuse (CONFLICT) if the stored policy moved past this version since the preview.
    pub expected_policy_version: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub accounts: u64,
    pub contacts: u64,
    pub opportunities: u64,
}

impl RecordCounts {
    fn is_zero(&self) -> bool {
        *self == RecordCounts::default()
    }
}

#[derive(Debug, Clone)]
pub struct LevelChange {
    pub territory_id: i64,
    pub before: Option<AccessLevel>,
    pub after: Option<AccessLevel>,
}

#[derive(Debug, Clone)]
pub struct UserImpact {
    pub user: user::Model,
    /// Records the user starts or stops seeing.
    pub read_gained: RecordCounts,
    pub read_lost: RecordCounts,
    /// Records the user starts or stops being able to edit.
    pub edit_gained: RecordCounts,
    pub edit_lost: RecordCounts,
    pub territories: Vec<LevelChange>,
}

#[derive(Debug, Clone)]
pub struct ChangeImpact {
    pub applied: bool,
    /// A preview: the policy version it was computed against (pass it to the apply as
    /// `expectedPolicyVersion`). An apply: the version it produced.
    pub policy_version: i64,
    pub accounts_moved: Vec<AccountMove>,
    pub users: Vec<UserImpact>,
}

/// Counts keyed by (territory before, territory after); records that stay put have
/// both keys equal. Only territories where someone's access changes are counted: in
/// the others, every record is seen by the same people before and after.
type Buckets = HashMap<(Option<i64>, Option<i64>), u64>;

#[derive(Default)]
struct RecordBuckets {
    accounts: Buckets,
    contacts: Buckets,
    opportunities: Buckets,
    /// Deals of the affected users, per owner: their own deals stay visible to them
    /// wherever they move, so they never count as gained or lost.
    owned: HashMap<i64, Buckets>,
}

/// Records counted (after the change) where they landed that came from elsewhere.
fn arrived(buckets: &mut Buckets, from: Option<i64>, to: Option<i64>, n: u64) {
    if let Some(stay) = buckets.get_mut(&(to, to)) {
        *stay = stay.saturating_sub(n);
    }
    *buckets.entry((from, to)).or_default() += n;
}

fn delta(before: &Scope, after: &Scope, need: AccessLevel, buckets: &Buckets) -> (u64, u64) {
    let (mut gained, mut lost) = (0, 0);
    for (&(from, to), &n) in buckets {
        let (had, has) = (before.allows(from, need), after.allows(to, need));
        if has && !had {
            gained += n;
        }
        if had && !has {
            lost += n;
        }
    }
    (gained, lost)
}

fn staying(rows: Vec<(Option<i64>, i64)>) -> Buckets {
    rows.into_iter()
        .map(|(t, n)| ((t, t), u64::try_from(n).unwrap_or(0)))
        .collect()
}

/// Records per territory in `territories` as the transaction sees them now (after the
/// change), and each user's own deals in the territories where their access changes.
async fn count_records<C: ConnectionTrait>(
    db: &C,
    owners: &[i64],
    territories: &[i64],
    changed_for: &HashMap<i64, Vec<i64>>,
) -> AppResult<RecordBuckets> {
    let mut buckets = RecordBuckets::default();
    for chunk in territories.chunks(500) {
        let within = || chunk.iter().copied();
        let accounts: Vec<(Option<i64>, i64)> = account::Entity::find()
            .select_only()
            .column(account::Column::TerritoryId)
            .column_as(Expr::col(Asterisk).count(), "n")
            .filter(account::Column::TerritoryId.is_in(within()))
            .group_by(account::Column::TerritoryId)
            .into_tuple()
            .all(db)
            .await?;
        let contacts: Vec<(Option<i64>, i64)> = contact::Entity::find()
            .select_only()
            .column(contact::Column::TerritoryId)
            .column_as(Expr::col(Asterisk).count(), "n")
            .filter(contact::Column::TerritoryId.is_in(within()))
            .group_by(contact::Column::TerritoryId)
            .into_tuple()
            .all(db)
            .await?;
        let deals: Vec<(Option<i64>, i64)> = opportunity::Entity::find()
            .select_only()
            .column(opportunity::Column::TerritoryId)
            .column_as(Expr::col(Asterisk).count(), "n")
            .filter(opportunity::Column::TerritoryId.is_in(within()))
            .group_by(opportunity::Column::TerritoryId)
            .into_tuple()
            .all(db)
            .await?;
        buckets.accounts.extend(staying(accounts));
        buckets.contacts.extend(staying(contacts));
        buckets.opportunities.extend(staying(deals));
    }
    for (owner, places) in changed_for {
        for chunk in places.chunks(500) {
            let rows: Vec<(Option<i64>, i64)> = opportunity::Entity::find()
                .select_only()
                .column(opportunity::Column::TerritoryId)
                .column_as(Expr::col(Asterisk).count(), "n")
                .filter(opportunity::Column::OwnerId.eq(*owner))
                .filter(opportunity::Column::TerritoryId.is_in(chunk.iter().copied()))
                .group_by(opportunity::Column::TerritoryId)
                .into_tuple()
                .all(db)
                .await?;
            buckets
                .owned
                .entry(*owner)
                .or_default()
                .extend(staying(rows));
        }
    }
    // Owners with no deals counted still get their (empty) entry, so moved deals of
    // theirs are tracked.
    for owner in owners {
        buckets.owned.entry(*owner).or_default();
    }
    Ok(buckets)
}

/// Carries the moved accounts' records from their old territory to the new one.
async fn apply_moves<C: ConnectionTrait>(
    db: &C,
    moves: &[AccountMove],
    buckets: &mut RecordBuckets,
) -> AppResult<()> {
    let route: HashMap<i64, (Option<i64>, Option<i64>)> = moves
        .iter()
        .map(|m| (m.account_id, (m.from, Some(m.to))))
        .collect();
    for m in moves {
        arrived(&mut buckets.accounts, m.from, Some(m.to), 1);
    }
    let ids: Vec<i64> = route.keys().copied().collect();
    let owners: BTreeSet<i64> = buckets.owned.keys().copied().collect();
    for chunk in ids.chunks(500) {
        let contacts: Vec<(i64, i64)> = contact::Entity::find()
            .select_only()
            .column(contact::Column::AccountId)
            .column_as(Expr::col(Asterisk).count(), "n")
            .filter(contact::Column::AccountId.is_in(chunk.iter().copied()))
            .group_by(contact::Column::AccountId)
            .into_tuple()
            .all(db)
            .await?;
        for (account, n) in contacts {
            if let Some(&(from, to)) = route.get(&account) {
                arrived(
                    &mut buckets.contacts,
                    from,
                    to,
                    u64::try_from(n).unwrap_or(0),
                );
            }
        }
        let deals: Vec<(i64, i64, i64)> = opportunity::Entity::find()
            .select_only()
            .column(opportunity::Column::AccountId)
            .column(opportunity::Column::OwnerId)
            .column_as(Expr::col(Asterisk).count(), "n")
            .filter(opportunity::Column::AccountId.is_in(chunk.iter().copied()))
            .group_by(opportunity::Column::AccountId)
            .group_by(opportunity::Column::OwnerId)
            .into_tuple()
            .all(db)
            .await?;
        for (account, owner, n) in deals {
            let Some(&(from, to)) = route.get(&account) else {
                continue;
            };
            let n = u64::try_from(n).unwrap_or(0);
            arrived(&mut buckets.opportunities, from, to, n);
            if owners.contains(&owner)
                && let Some(own) = buckets.owned.get_mut(&owner)
            {
                arrived(own, from, to, n);
            }
        }
    }
    Ok(())
}

/// Territories where a user's level differs between two scopes.
fn level_changes(before: &Scope, after: &Scope) -> Vec<LevelChange> {
    let mut places: BTreeSet<i64> = before.levels().keys().copied().collect();
    places.extend(after.levels().keys().copied());
    places
        .into_iter()
        .filter_map(|t| {
            let (b, a) = (before.level(Some(t)), after.level(Some(t)));
            (b != a).then_some(LevelChange {
                territory_id: t,
                before: b,
                after: a,
            })
        })
        .collect()
}

/// Users holding a membership grant in `rules`.
fn members_in(rules: &BTreeSet<policy::Rule>) -> BTreeSet<i64> {
    rules
        .iter()
        .filter(|(ptype, _)| ptype == "p")
        .filter_map(|(_, v)| v.first()?.strip_prefix("user:")?.parse().ok())
        .collect()
}

fn in_step<T>(index: usize, result: AppResult<T>) -> AppResult<T> {
    result.map_err(|e| match e {
        AppError::Validation { field, message } => {
            AppError::validation(format!("changes.{index}.{field}"), message)
        }
        AppError::Forbidden(m) => AppError::Forbidden(format!("change {}: {m}", index + 1)),
        AppError::Conflict(m) => AppError::Conflict(format!("change {}: {m}", index + 1)),
        other => other,
    })
}

async fn run_step<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    scope: &Scope,
    step: TerritoryChange,
) -> AppResult<()> {
    match step {
        TerritoryChange::MoveTerritory {
            territory_id,
            parent_id,
        } => {
            let changes = TerritoryChanges {
                name: None,
                parent_id: Some(parent_id),
                kind: None,
                description: None,
            };
            territories::update_in(txn, actor, scope, territory_id, None, changes).await?;
        }
        TerritoryChange::SetMembership(input) => {
            territories::set_membership_in(txn, actor, scope, input).await?;
        }
        TerritoryChange::RemoveMembership {
            territory_id,
            user_id,
        } => {
            territories::remove_membership_in(txn, actor, scope, territory_id, user_id).await?;
        }
        TerritoryChange::CreateRule(input) => {
            territories::save_rule_in(txn, actor, scope, None, input).await?;
        }
        TerritoryChange::UpdateRule { id, input } => {
            territories::save_rule_in(txn, actor, scope, Some((id, None)), input).await?;
        }
        TerritoryChange::DeleteRule { id } => {
            territories::delete_rule_in(txn, actor, scope, id).await?;
        }
    }
    Ok(())
}

/// Applies the change in one transaction and measures what it does to every user's
/// access; commits only when `apply` is set. Permission checks run against the
/// caller's access as it was before the change.
pub async fn change(
    svc: &Services,
    actor: &Actor,
    request: ChangeRequest,
    apply: bool,
) -> AppResult<ChangeImpact> {
    svc.authz
        .require(actor, Resource::Territory, Action::Manage)
        .await?;
    if request.changes.is_empty() || request.changes.len() > MAX_CHANGES {
        return Err(AppError::validation(
            "changes",
            format!("give between 1 and {MAX_CHANGES} changes"),
        ));
    }
    if request.reassign_accounts && actor.role != Role::Admin {
        return Err(AppError::Forbidden(
            "only admins re-run the assignment rules over existing accounts".into(),
        ));
    }
    let scope = svc.authz.scope(actor).await;
    let txn = begin_write(&svc.db).await?;
    crate::db::serialize_on(&txn, "territory-hierarchy", 0).await?;
    let version_before = policy::version(&txn).await?;
    if let Some(expected) = request.expected_policy_version
        && expected != version_before
    {
        return Err(AppError::Conflict(format!(
            "territory access changed since your preview (policy version {expected}, now {version_before}); preview again"
        )));
    }
    let rules_before = policy::derive(&txn).await?;
    let mut affected = members_in(&rules_before);
    affected.extend(request.changes.iter().filter_map(|c| match c {
        TerritoryChange::SetMembership(m) => Some(m.user_id),
        _ => None,
    }));
    let affected: Vec<i64> = affected.into_iter().collect();

    for (index, step) in request.changes.into_iter().enumerate() {
        in_step(index, run_step(&txn, actor, &scope, step).await)?;
    }
    let moves = if request.reassign_accounts {
        territories::run_rules_in(&txn, actor, true).await?.1
    } else {
        Vec::new()
    };
    // What the stored policy becomes; it is written once, on apply.
    let rules_after = policy::derive(&txn).await?;

    let users: Vec<user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(affected.iter().copied()))
        .filter(user::Column::Role.ne(Role::Admin))
        .all(&txn)
        .await?;
    let roles: Vec<(i64, Role)> = users.iter().map(|u| (u.id, u.role)).collect();
    let before = authz::scopes_under(rules_before, &roles).await?;
    let after = authz::scopes_under(rules_after, &roles).await?;
    let mut changed: BTreeSet<i64> = BTreeSet::new();
    let mut changed_for: HashMap<i64, Vec<i64>> = HashMap::new();
    for (user, b) in &before {
        if let Some(a) = after.get(user) {
            let places: Vec<i64> = level_changes(b, a)
                .into_iter()
                .map(|c| c.territory_id)
                .collect();
            changed.extend(places.iter().copied());
            if !places.is_empty() {
                changed_for.insert(*user, places);
            }
        }
    }
    let changed: Vec<i64> = changed.into_iter().collect();
    let mut buckets = count_records(&txn, &affected, &changed, &changed_for).await?;
    apply_moves(&txn, &moves, &mut buckets).await?;
    let empty = Buckets::new();
    let mut impacts = Vec::new();
    for user in users {
        let (Some(b), Some(a)) = (before.get(&user.id), after.get(&user.id)) else {
            continue;
        };
        let own = buckets.owned.get(&user.id).unwrap_or(&empty);
        let counts = |need: AccessLevel| {
            let (ag, al) = delta(b, a, need, &buckets.accounts);
            let (cg, cl) = delta(b, a, need, &buckets.contacts);
            let (og, ol) = delta(b, a, need, &buckets.opportunities);
            let (own_g, own_l) = delta(b, a, need, own);
            (
                RecordCounts {
                    accounts: ag,
                    contacts: cg,
                    opportunities: og.saturating_sub(own_g),
                },
                RecordCounts {
                    accounts: al,
                    contacts: cl,
                    opportunities: ol.saturating_sub(own_l),
                },
            )
        };
        let (read_gained, read_lost) = counts(AccessLevel::Read);
        let (edit_gained, edit_lost) = counts(AccessLevel::Edit);
        let territories = level_changes(b, a);
        if read_gained.is_zero()
            && read_lost.is_zero()
            && edit_gained.is_zero()
            && edit_lost.is_zero()
            && territories.is_empty()
        {
            continue;
        }
        impacts.push(UserImpact {
            user,
            read_gained,
            read_lost,
            edit_gained,
            edit_lost,
            territories,
        });
    }
    impacts.sort_by(|x, y| x.user.display_name.cmp(&y.user.display_name));

    let policy_version = if apply {
        // One policy rewrite for all the steps.
        territories::commit_policy_change(svc, txn).await?
    } else {
        // Dropping the transaction rolls every step back.
        version_before
    };
    Ok(ChangeImpact {
        applied: apply,
        policy_version,
        accounts_moved: moves,
        users: impacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(levels: &[(i64, AccessLevel)]) -> Scope {
        Scope::new(1, levels.iter().copied().collect(), BTreeSet::new())
    }

    #[test]
    fn a_lost_territory_counts_its_records_as_lost_at_every_level_it_granted() {
        let before = scope(&[(10, AccessLevel::Edit), (20, AccessLevel::Read)]);
        let after = scope(&[(20, AccessLevel::Read)]);
        let records: Buckets = [((Some(10), Some(10)), 7), ((Some(20), Some(20)), 3)].into();
        assert_eq!(delta(&before, &after, AccessLevel::Read, &records), (0, 7));
        assert_eq!(delta(&before, &after, AccessLevel::Edit, &records), (0, 7));
        assert_eq!(delta(&before, &after, AccessLevel::Owner, &records), (0, 0));
    }

    #[test]
    fn moved_records_count_where_they_came_from_and_where_they_went() {
        // After the change, territory 20 holds 5 records, 2 of which arrived from 10.
        let mut records: Buckets = [((Some(20), Some(20)), 5)].into();
        arrived(&mut records, Some(10), Some(20), 2);
        assert_eq!(records[&(Some(20), Some(20))], 3);
        assert_eq!(records[&(Some(10), Some(20))], 2);
        // A reader of 10 only loses the two that left; a reader of 20 gains them.
        let of_ten = scope(&[(10, AccessLevel::Read)]);
        let of_twenty = scope(&[(20, AccessLevel::Read)]);
        assert_eq!(delta(&of_ten, &of_ten, AccessLevel::Read, &records), (0, 2));
        assert_eq!(
            delta(&of_twenty, &of_twenty, AccessLevel::Read, &records),
            (2, 0)
        );
        // Arriving where nothing was counted (no one's access changed there) adds only
        // the move itself.
        let mut sparse = Buckets::new();
        arrived(&mut sparse, Some(10), Some(30), 4);
        assert_eq!(sparse, [((Some(10), Some(30)), 4)].into());
    }

    #[test]
    fn level_changes_list_every_territory_whose_level_moved() {
        let before = scope(&[(1, AccessLevel::Read), (2, AccessLevel::Edit)]);
        let after = scope(&[(2, AccessLevel::Owner), (3, AccessLevel::Read)]);
        let changes: Vec<(i64, Option<AccessLevel>, Option<AccessLevel>)> =
            level_changes(&before, &after)
                .into_iter()
                .map(|c| (c.territory_id, c.before, c.after))
                .collect();
        assert_eq!(
            changes,
            [
                (1, Some(AccessLevel::Read), None),
                (2, Some(AccessLevel::Edit), Some(AccessLevel::Owner)),
                (3, None, Some(AccessLevel::Read)),
            ]
        );
        assert!(level_changes(&before, &before).is_empty());
    }
}
