//! Org charts and buying committees: who reports to whom at an account (and its parent
//! and child accounts), who holds which role on the open deals, who was engaged lately,
//! who blocks, and the strongest way in to the people who decide.
//!
//! The chart is one recursive SQL query on either database; roles, activity and edges
//! come in a few grouped statements whatever the number of contacts. Visibility is
//! applied in the SQL: a contact whose manager the caller cannot see becomes a root of
//! the chart, so nothing about the hidden manager leaks, not even that there is one.

use std::collections::{HashMap, HashSet};

use accord_entities::contact_influence::{self as influence, InfluenceKind};
use accord_entities::contact_relationship as relationship;
use accord_entities::opportunity_contact_role::{self as role, ContactRole};
use accord_entities::stage::{self, StageKind};
use accord_entities::territory_membership::AccessLevel;
use accord_entities::{account, contact, event, event_attendee, opportunity, user};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    Statement, Value,
};

use crate::auth::Actor;
use crate::authz::scope::ReadView;
use crate::authz::{Action, Resource};
use crate::error::{AppError, AppResult};
use crate::services::influence_graph::{self as graph, Link, Party, Tie};
use crate::services::{IN_LIST_MAX, Services, calendar};

/// Deepest chart drawn (the same bound the reports-to check walks).
pub const MAX_DEPTH: i32 = 256;
/// Largest chart answered in one piece; bigger ones ask for `maxDepth`.
pub const MAX_CHART: usize = 20_000;
/// Deepest account hierarchy (the same bound accounts enforce).
const MAX_ACCOUNT_DEPTH: i32 = 64;
/// The roles a buying committee needs filled.
pub const KEY_ROLES: [ContactRole; 4] = [
    ContactRole::DecisionMaker,
    ContactRole::EconomicBuyer,
    ContactRole::Champion,
    ContactRole::TechnicalBuyer,
];
/// Engagement window when the caller names none (and the one scripts see).
pub const ENGAGED_DAYS: i64 = 30;

/// Numbered placeholders for hand-written SQL on either backend.
struct Binds {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Binds {
    fn new(backend: DbBackend) -> Self {
        Binds {
            backend,
            values: Vec::new(),
        }
    }

    fn push(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    fn list(&mut self, ids: &[i64]) -> String {
        ids.iter()
            .map(|id| self.push(*id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// `account_id` and every account below it; with `whole_tree`, the whole hierarchy it
/// belongs to (from its top-most parent down).
pub(crate) async fn account_family<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    whole_tree: bool,
) -> AppResult<Vec<i64>> {
    let mut top = account_id;
    if whole_tree {
        for _ in 0..MAX_ACCOUNT_DEPTH {
            let parent: Option<Option<i64>> = account::Entity::find_by_id(top)
                .select_only()
                .column(account::Column::ParentId)
                .into_tuple()
                .one(db)
                .await?;
            match parent.flatten() {
                Some(p) if p != account_id => top = p,
                _ => break,
            }
        }
    }
    let mut b = Binds::new(db.get_database_backend());
    let sql = format!(
        "WITH RECURSIVE family (id, depth) AS ( \
           SELECT id, 0 FROM accounts WHERE id = {top} \
           UNION ALL \
           SELECT a.id, f.depth + 1 FROM accounts a JOIN family f ON a.parent_id = f.id \
           WHERE f.depth < {max} \
         ) SELECT DISTINCT id FROM family",
        top = b.push(top),
        max = b.push(MAX_ACCOUNT_DEPTH),
    );
    let rows = db.query_all_raw(b.statement(sql)).await?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get::<i64>("", "id"))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// `SELECT id FROM contacts WHERE account_id IN (accounts)`, for `IN` subqueries.
fn people_of(accounts: &[i64]) -> sea_orm::sea_query::SelectStatement {
    contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::AccountId.is_in(accounts.iter().copied()))
        .into_query()
}

/// One contact's place in the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartRow {
    pub id: i64,
    /// Their manager, if the caller can see them within the same accounts.
    pub manager_id: Option<i64>,
    pub depth: i32,
}

/// The bare recursive query: the visible contacts of `accounts` with their visible
/// manager and their depth below the top of their visible reporting line, down to
/// `max_depth`. Contacts in a cycle
/// written behind the service's back have no root and stay out.
pub async fn chart_rows<C: ConnectionTrait>(
    db: &C,
    view: &ReadView,
    accounts: &[i64],
    max_depth: i32,
) -> AppResult<Vec<ChartRow>> {
    if accounts.is_empty() || view.territories().is_some_and(<[i64]>::is_empty) {
        return Ok(Vec::new());
    }
    // Each part filters `contacts` itself rather than a shared CTE of the members: SQLite
    // would re-scan such a CTE for every row of the recursion (quadratic); this way both
    // databases walk the `reports_to_id` index.
    let mut b = Binds::new(db.get_database_backend());
    // `+column` (a no-op on a number) keeps the planner off the account and territory
    // indexes in the recursive step: without statistics SQLite may pick them over
    // `reports_to_id` and scan every member for every row of the chart.
    let members = |column: &str, b: &mut Binds| {
        let mut filter = format!("{column}account_id IN ({})", b.list(accounts));
        if let Some(list) = view.territories() {
            filter.push_str(&format!(" AND {column}territory_id IN ({})", b.list(list)));
        }
        filter
    };
    let top = members("c.", &mut b);
    let manager_visible = members("m.", &mut b);
    let below = members("+c.", &mut b);
    let sql = format!(
        "WITH RECURSIVE chart (id, manager_id, depth) AS ( \
           SELECT c.id, CAST(NULL AS BIGINT), 0 FROM contacts c \
           WHERE {top} AND (c.reports_to_id IS NULL OR NOT EXISTS ( \
             SELECT 1 FROM contacts m WHERE m.id = c.reports_to_id AND {manager_visible})) \
           UNION ALL \
           SELECT c.id, c.reports_to_id, chart.depth + 1 FROM chart \
           JOIN contacts c ON c.reports_to_id = chart.id \
           WHERE {below} AND chart.depth < {max_depth} \
         ) SELECT id, manager_id, depth FROM chart LIMIT {limit}",
        max_depth = b.push(max_depth.clamp(0, MAX_DEPTH)),
        limit = b.push(MAX_CHART as i64 + 1),
    );
    let rows = db.query_all_raw(b.statement(sql)).await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(ChartRow {
                id: r.try_get("", "id")?,
                manager_id: r.try_get("", "manager_id")?,
                depth: r.try_get::<i32>("", "depth")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    if rows.len() > MAX_CHART {
        return Err(AppError::validation(
            "maxDepth",
            format!("the chart has more than {MAX_CHART} people; ask for fewer levels"),
        ));
    }
    Ok(rows)
}

/// The latest activity with each contact of `accounts`: notes on them, completed tasks
/// about them, meetings they attended or that were about them (past occurrences only),
/// and the last contact our users recorded with them.
pub(crate) async fn last_activity<C: ConnectionTrait>(
    db: &C,
    accounts: &[i64],
    now: DateTime<Utc>,
) -> AppResult<HashMap<i64, DateTime<Utc>>> {
    let mut latest: HashMap<i64, DateTime<Utc>> = HashMap::new();
    let mut seen = |contact: i64, at: DateTime<Utc>| {
        let slot = latest.entry(contact).or_insert(at);
        if at > *slot {
            *slot = at;
        }
    };
    if accounts.is_empty() {
        return Ok(HashMap::new());
    }
    // Placeholders are pushed in the order they appear: SQLite numbers `?` by position.
    let mut b = Binds::new(db.get_database_backend());
    let people = |b: &mut Binds| {
        format!(
            "SELECT id FROM contacts WHERE account_id IN ({})",
            b.list(accounts)
        )
    };
    let notes = format!(
        "SELECT contact_id, created_at AS at FROM notes WHERE contact_id IN ({})",
        people(&mut b)
    );
    let tasks = format!(
        "SELECT contact_id, completed_at AS at FROM tasks \
         WHERE status = {} AND completed_at IS NOT NULL AND contact_id IN ({})",
        b.push("done"),
        people(&mut b)
    );
    let events = format!(
        "SELECT contact_id, starts_at AS at FROM events \
         WHERE status <> {} AND rrule IS NULL AND starts_at <= {} AND contact_id IN ({})",
        b.push("cancelled"),
        b.push(now),
        people(&mut b)
    );
    let attended = format!(
        "SELECT a.contact_id, e.starts_at AS at FROM event_attendees a \
         JOIN events e ON e.id = a.event_id \
         WHERE e.status <> {} AND e.rrule IS NULL AND e.starts_at <= {} AND a.contact_id IN ({})",
        b.push("cancelled"),
        b.push(now),
        people(&mut b)
    );
    let sql = format!("{notes} UNION ALL {tasks} UNION ALL {events} UNION ALL {attended}");
    // Grouping happens here rather than in SQL: SQLite's MAX over a timestamp column
    // loses the column's type, and the rows are few (activity, not contacts).
    for row in db.query_all_raw(b.statement(sql)).await? {
        let contact: Option<i64> = row.try_get("", "contact_id")?;
        let at: Option<DateTime<Utc>> = row.try_get("", "at")?;
        if let (Some(contact), Some(at)) = (contact, at) {
            seen(contact, at);
        }
    }

    // Recurring meetings: their latest occurrence before now, not their first.
    let attended: Vec<(i64, i64)> = event_attendee::Entity::find()
        .select_only()
        .column(event_attendee::Column::EventId)
        .column(event_attendee::Column::ContactId)
        .filter(event_attendee::Column::ContactId.in_subquery(people_of(accounts)))
        .into_tuple::<(i64, Option<i64>)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(e, c)| Some((e, c?)))
        .collect();
    let attended_events: HashSet<i64> = attended.iter().map(|(e, _)| *e).collect();
    let series = event::Entity::find()
        .filter(event::Column::Rrule.is_not_null())
        .filter(event::Column::Status.ne(event::EventStatus::Cancelled))
        .filter(event::Column::StartsAt.lte(now))
        .filter(
            sea_orm::Condition::any()
                .add(event::Column::ContactId.in_subquery(people_of(accounts)))
                .add(event::Column::Id.is_in(attended_events.iter().copied())),
        )
        .all(db)
        .await?;
    for e in series {
        let from = (now - Duration::days(366)).max(e.starts_at);
        let Ok(occurrences) = calendar::occurrences_of(&e, from, now) else {
            continue;
        };
        let Some(last) = occurrences
            .iter()
            .map(|o| o.starts_at)
            .filter(|s| *s <= now)
            .max()
        else {
            continue;
        };
        if let Some(c) = e.contact_id {
            seen(c, last);
        }
        for (_, c) in attended.iter().filter(|(id, _)| *id == e.id) {
            seen(*c, last);
        }
    }

    let talks: Vec<(i64, Option<chrono::NaiveDate>)> = relationship::Entity::find()
        .select_only()
        .column(relationship::Column::ContactId)
        .column(relationship::Column::LastContactOn)
        .filter(relationship::Column::LastContactOn.is_not_null())
        .filter(relationship::Column::ContactId.in_subquery(people_of(accounts)))
        .into_tuple()
        .all(db)
        .await?;
    for (c, on) in talks {
        if let Some(on) = on {
            seen(c, on.and_time(NaiveTime::MIN).and_utc());
        }
    }
    Ok(latest)
}

/// Everything the chart, the committee and the scripts read about an account family,
/// restricted to what the viewers see.
pub(crate) struct InfluenceMap {
    pub rows: Vec<ChartRow>,
    pub contacts: HashMap<i64, contact::Model>,
    /// Edges with both ends in the chart.
    pub edges: Vec<influence::Model>,
    pub relationships: Vec<relationship::Model>,
    pub last_activity: HashMap<i64, DateTime<Utc>>,
    pub influence: HashMap<i64, f64>,
}

pub(crate) async fn influence_map<C: ConnectionTrait>(
    db: &C,
    view: &ReadView,
    accounts: &[i64],
    max_depth: i32,
    now: DateTime<Utc>,
) -> AppResult<InfluenceMap> {
    let rows = chart_rows(db, view, accounts, max_depth).await?;
    let in_chart: HashSet<i64> = rows.iter().map(|r| r.id).collect();
    let mut contacts: HashMap<i64, contact::Model> = HashMap::with_capacity(rows.len());
    for c in contact::Entity::find()
        .filter(contact::Column::AccountId.is_in(accounts.iter().copied()))
        .all(db)
        .await?
    {
        // Checked again: a contact may have moved out of sight since the chart was read.
        if in_chart.contains(&c.id) && view.allows(c.territory_id) {
            contacts.insert(c.id, c);
        }
    }
    // One `IN` only: with both, SQLite probes the (from, to) index for every pair of
    // people (25 million probes for 5,000 contacts). The other end is checked below.
    let edges: Vec<influence::Model> = influence::Entity::find()
        .filter(influence::Column::FromContactId.in_subquery(people_of(accounts)))
        .all(db)
        .await?
        .into_iter()
        .filter(|e| in_chart.contains(&e.from_contact_id) && in_chart.contains(&e.to_contact_id))
        .collect();
    let relationships: Vec<relationship::Model> = relationship::Entity::find()
        .filter(relationship::Column::ContactId.in_subquery(people_of(accounts)))
        .all(db)
        .await?
        .into_iter()
        .filter(|r| in_chart.contains(&r.contact_id))
        .collect();
    let mut last_activity = last_activity(db, accounts, now).await?;
    last_activity.retain(|c, _| in_chart.contains(c));
    let managers: HashMap<i64, Option<i64>> = rows.iter().map(|r| (r.id, r.manager_id)).collect();
    let scored: Vec<(i64, i64, InfluenceKind, i32)> = edges
        .iter()
        .map(|e| (e.from_contact_id, e.to_contact_id, e.kind, e.strength))
        .collect();
    let influence = graph::influence_scores(&scored, &managers);
    Ok(InfluenceMap {
        rows,
        contacts,
        edges,
        relationships,
        last_activity,
        influence,
    })
}

/// A role a contact holds on an open deal.
#[derive(Debug, Clone)]
pub struct DealRole {
    pub opportunity_id: i64,
    pub role: ContactRole,
    pub is_primary: bool,
}

#[derive(Debug, Clone)]
pub struct ChartNode {
    pub contact: contact::Model,
    pub manager_id: Option<i64>,
    pub depth: i32,
    /// Indexes of direct reports in [`OrgChart::nodes`], by name.
    pub reports: Vec<usize>,
    /// Everyone below them, directly or not.
    pub team_size: usize,
    pub deal_roles: Vec<DealRole>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub influence: f64,
}

#[derive(Debug, Clone)]
pub struct OrgChart {
    pub account: account::Model,
    /// Depth first, siblings by name: the order a chart is read in.
    pub nodes: Vec<ChartNode>,
    /// Indexes of the top-most people.
    pub roots: Vec<usize>,
    pub edges: Vec<influence::Model>,
}

/// The visible open deals of `accounts` and the roles on them, by contact.
async fn open_deal_roles<C: ConnectionTrait>(
    db: &C,
    scope: &crate::authz::Scope,
    accounts: &[i64],
) -> AppResult<HashMap<i64, Vec<DealRole>>> {
    let open: Vec<i64> = stage::Entity::find()
        .select_only()
        .column(stage::Column::Id)
        .filter(stage::Column::Kind.eq(StageKind::Open))
        .into_tuple()
        .all(db)
        .await?;
    let deals: Vec<i64> = opportunity::Entity::find()
        .select_only()
        .column(opportunity::Column::Id)
        .filter(opportunity::Column::AccountId.is_in(accounts.iter().copied()))
        .filter(opportunity::Column::StageId.is_in(open))
        .apply_if(scope.opportunities(AccessLevel::Read), QueryFilter::filter)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_contact: HashMap<i64, Vec<DealRole>> = HashMap::new();
    for chunk in deals.chunks(IN_LIST_MAX) {
        for r in role::Entity::find()
            .filter(role::Column::OpportunityId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            by_contact.entry(r.contact_id).or_default().push(DealRole {
                opportunity_id: r.opportunity_id,
                role: r.role,
                is_primary: r.is_primary,
            });
        }
    }
    Ok(by_contact)
}

/// The org chart of an account (with its child accounts unless told otherwise).
pub async fn org_chart(
    svc: &Services,
    actor: &Actor,
    account_id: i64,
    include_child_accounts: bool,
    max_depth: Option<i32>,
) -> AppResult<OrgChart> {
    svc.authz
        .require(actor, Resource::Contact, Action::Read)
        .await?;
    let account = super::accounts::get(svc, actor, account_id).await?;
    if let Some(d) = max_depth
        && !(0..=MAX_DEPTH).contains(&d)
    {
        return Err(AppError::validation(
            "maxDepth",
            format!("must be between 0 and {MAX_DEPTH}"),
        ));
    }
    let scope = svc.authz.scope(actor).await;
    let view = ReadView::of(&[&scope]);
    let accounts = if include_child_accounts {
        account_family(&svc.db, account_id, false).await?
    } else {
        vec![account_id]
    };
    let mut map = influence_map(
        &svc.db,
        &view,
        &accounts,
        max_depth.unwrap_or(MAX_DEPTH),
        Utc::now(),
    )
    .await?;
    let mut roles = open_deal_roles(&svc.db, &scope, &accounts).await?;

    // Depth-first, siblings by name.
    let mut children: HashMap<Option<i64>, Vec<i64>> = HashMap::new();
    for r in &map.rows {
        children.entry(r.manager_id).or_default().push(r.id);
    }
    let name_of = |id: &i64| {
        map.contacts.get(id).map(|c| {
            (
                c.last_name.to_lowercase(),
                c.first_name.to_lowercase(),
                c.id,
            )
        })
    };
    for list in children.values_mut() {
        list.sort_by_key(name_of);
    }
    let depth_of: HashMap<i64, (Option<i64>, i32)> = map
        .rows
        .iter()
        .map(|r| (r.id, (r.manager_id, r.depth)))
        .collect();
    let mut order: Vec<i64> = Vec::with_capacity(map.rows.len());
    let mut stack: Vec<i64> = children.get(&None).cloned().unwrap_or_default();
    stack.reverse();
    while let Some(id) = stack.pop() {
        // A contact deleted or hidden between the chart and the contact reads drops out
        // with everyone below them (they had no place without a manager anyway).
        if !map.contacts.contains_key(&id) {
            continue;
        }
        order.push(id);
        if let Some(kids) = children.get(&Some(id)) {
            stack.extend(kids.iter().rev());
        }
    }
    let index: HashMap<i64, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut nodes: Vec<ChartNode> = Vec::with_capacity(order.len());
    for id in &order {
        let Some(contact) = map.contacts.remove(id) else {
            continue;
        };
        let (manager_id, depth) = depth_of.get(id).copied().unwrap_or((None, 0));
        nodes.push(ChartNode {
            manager_id,
            depth,
            reports: children
                .get(&Some(*id))
                .map(|kids| kids.iter().filter_map(|k| index.get(k).copied()).collect())
                .unwrap_or_default(),
            team_size: 0,
            deal_roles: roles.remove(id).unwrap_or_default(),
            last_activity_at: map.last_activity.get(id).copied(),
            influence: map.influence.get(id).copied().unwrap_or(0.0),
            contact,
        });
    }
    // Team sizes bottom-up: in depth-first order every report comes after its manager.
    for i in (0..nodes.len()).rev() {
        let size: usize = nodes[i]
            .reports
            .iter()
            .map(|r| nodes[*r].team_size + 1)
            .sum();
        nodes[i].team_size = size;
    }
    let roots = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.manager_id.is_none())
        .map(|(i, _)| i)
        .collect();
    Ok(OrgChart {
        account,
        nodes,
        roots,
        edges: map.edges,
    })
}

/// Where a key role stands on a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    Missing,
    /// Someone holds it, but nobody holding it was engaged lately.
    Filled,
    Engaged,
}

#[derive(Debug, Clone)]
pub struct CommitteeMember {
    pub contact: contact::Model,
    pub is_primary: bool,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub engaged: bool,
    pub influence: f64,
}

#[derive(Debug, Clone)]
pub struct RoleCoverage {
    pub role: ContactRole,
    pub members: Vec<CommitteeMember>,
}

impl RoleCoverage {
    pub fn coverage(&self) -> Coverage {
        if self.members.is_empty() {
            Coverage::Missing
        } else if self.members.iter().any(|m| m.engaged) {
            Coverage::Engaged
        } else {
            Coverage::Filled
        }
    }
}

#[derive(Debug, Clone)]
pub struct Blocker {
    pub contact: contact::Model,
    pub influence: f64,
    /// Holds the BLOCKER role on the deal.
    pub has_blocker_role: bool,
    /// Committee members they block (through `blocks` edges).
    pub blocks: Vec<contact::Model>,
}

/// One step of a path: one of our users or a contact, and how it was reached.
#[derive(Debug, Clone)]
pub enum PathParty {
    User(i64),
    Contact(Box<contact::Model>),
}

#[derive(Debug, Clone)]
pub struct PathStep {
    pub party: PathParty,
    pub via: Option<Link>,
}

#[derive(Debug, Clone)]
pub struct RelationshipPath {
    pub strength: f64,
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone)]
pub struct Committee {
    pub opportunity: opportunity::Model,
    pub engaged_within_days: i64,
    /// The key roles, in [`KEY_ROLES`] order.
    pub roles: Vec<RoleCoverage>,
    /// Strongest first.
    pub blockers: Vec<Blocker>,
    /// The strongest path to each decision maker, strongest first.
    pub paths: Vec<RelationshipPath>,
}

impl Committee {
    pub fn missing(&self) -> Vec<ContactRole> {
        self.roles
            .iter()
            .filter(|r| r.coverage() == Coverage::Missing)
            .map(|r| r.role)
            .collect()
    }

    /// Share of key roles filled, 0 to 1.
    pub fn coverage_ratio(&self) -> f64 {
        let filled = self
            .roles
            .iter()
            .filter(|r| r.coverage() != Coverage::Missing)
            .count();
        filled as f64 / KEY_ROLES.len() as f64
    }
}

/// The buying committee of a deal as `view` sees it.
pub(crate) async fn committee_of<C: ConnectionTrait>(
    db: &C,
    view: &ReadView,
    deal: opportunity::Model,
    engaged_within_days: i64,
    now: DateTime<Utc>,
) -> AppResult<Committee> {
    let accounts = account_family(db, deal.account_id, true).await?;
    let map = influence_map(db, view, &accounts, MAX_DEPTH, now).await?;
    let deal_roles = role::Entity::find()
        .filter(role::Column::OpportunityId.eq(deal.id))
        .all(db)
        .await?;
    // Role holders outside the account family still count, if visible.
    let outside: Vec<i64> = deal_roles
        .iter()
        .map(|r| r.contact_id)
        .filter(|c| !map.contacts.contains_key(c))
        .collect();
    let mut people = map.contacts.clone();
    if !outside.is_empty() {
        for c in contact::Entity::find()
            .filter(contact::Column::Id.is_in(outside))
            .all(db)
            .await?
        {
            if view.allows(c.territory_id) {
                people.insert(c.id, c);
            }
        }
    }
    let since = now - Duration::days(engaged_within_days);
    let member = |contact_id: i64, is_primary: bool| {
        let contact = people.get(&contact_id)?.clone();
        let last = map.last_activity.get(&contact_id).copied();
        Some(CommitteeMember {
            contact,
            is_primary,
            last_activity_at: last,
            engaged: last.is_some_and(|at| at >= since),
            influence: map.influence.get(&contact_id).copied().unwrap_or(0.0),
        })
    };
    let roles: Vec<RoleCoverage> = KEY_ROLES
        .iter()
        .map(|key| RoleCoverage {
            role: *key,
            members: deal_roles
                .iter()
                .filter(|r| r.role == *key)
                .filter_map(|r| member(r.contact_id, r.is_primary))
                .collect(),
        })
        .collect();

    let on_deal: HashSet<i64> = deal_roles
        .iter()
        .filter(|r| r.role != ContactRole::Blocker)
        .map(|r| r.contact_id)
        .collect();
    let mut blockers: HashMap<i64, Blocker> = HashMap::new();
    for r in deal_roles.iter().filter(|r| r.role == ContactRole::Blocker) {
        if let Some(c) = people.get(&r.contact_id) {
            blockers.insert(
                c.id,
                Blocker {
                    contact: c.clone(),
                    influence: map.influence.get(&c.id).copied().unwrap_or(0.0),
                    has_blocker_role: true,
                    blocks: Vec::new(),
                },
            );
        }
    }
    for e in map
        .edges
        .iter()
        .filter(|e| e.kind == InfluenceKind::Blocks && on_deal.contains(&e.to_contact_id))
    {
        let (Some(from), Some(to)) = (people.get(&e.from_contact_id), people.get(&e.to_contact_id))
        else {
            continue;
        };
        blockers
            .entry(from.id)
            .or_insert_with(|| Blocker {
                contact: from.clone(),
                influence: map.influence.get(&from.id).copied().unwrap_or(0.0),
                has_blocker_role: false,
                blocks: Vec::new(),
            })
            .blocks
            .push(to.clone());
    }
    let mut blockers: Vec<Blocker> = blockers.into_values().collect();
    blockers.sort_by(|a, b| {
        b.influence
            .total_cmp(&a.influence)
            .then(a.contact.id.cmp(&b.contact.id))
    });

    // Ways in: our users' relationships (of users still with us), influence edges,
    // reporting lines.
    let mut knowers: Vec<i64> = map.relationships.iter().map(|r| r.user_id).collect();
    knowers.sort_unstable();
    knowers.dedup();
    let active: HashSet<i64> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Id.is_in(knowers))
        .filter(user::Column::Active.eq(true))
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let relationships: Vec<&relationship::Model> = map
        .relationships
        .iter()
        .filter(|r| active.contains(&r.user_id))
        .collect();
    let mut ties: Vec<Tie> = Vec::new();
    for r in &relationships {
        ties.push(Tie {
            a: Party::User(r.user_id),
            b: Party::Contact(r.contact_id),
            link: Link::Knows,
            weight: f64::from(r.strength.clamp(1, 5)) / 5.0,
        });
    }
    for e in &map.edges {
        if let Some(weight) = graph::edge_weight(e.kind, e.strength) {
            ties.push(Tie {
                a: Party::Contact(e.from_contact_id),
                b: Party::Contact(e.to_contact_id),
                link: Link::Influence(e.kind),
                weight,
            });
        }
    }
    for r in &map.rows {
        if let Some(manager) = r.manager_id {
            ties.push(Tie {
                a: Party::Contact(r.id),
                b: Party::Contact(manager),
                link: Link::ReportsTo,
                weight: graph::REPORTS_TO_WEIGHT,
            });
        }
    }
    let mut sources: Vec<Party> = relationships
        .iter()
        .map(|r| Party::User(r.user_id))
        .collect();
    sources.extend(
        deal_roles
            .iter()
            .filter(|r| r.role == ContactRole::Champion && people.contains_key(&r.contact_id))
            .map(|r| Party::Contact(r.contact_id)),
    );
    sources.sort_unstable();
    sources.dedup();
    let targets: Vec<Party> = deal_roles
        .iter()
        .filter(|r| r.role == ContactRole::DecisionMaker && people.contains_key(&r.contact_id))
        .map(|r| Party::Contact(r.contact_id))
        .collect();
    let paths = graph::strongest_paths(&ties, &sources, &targets)
        .into_iter()
        .filter_map(|p| {
            let steps = p
                .steps
                .into_iter()
                .map(|s| {
                    Some(PathStep {
                        party: match s.party {
                            Party::User(u) => PathParty::User(u),
                            Party::Contact(c) => {
                                PathParty::Contact(Box::new(people.get(&c)?.clone()))
                            }
                        },
                        via: s.via,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(RelationshipPath {
                strength: p.strength,
                steps,
            })
        })
        .collect();
    Ok(Committee {
        opportunity: deal,
        engaged_within_days,
        roles,
        blockers,
        paths,
    })
}

/// The buying committee of a deal the caller may see.
pub async fn committee(
    svc: &Services,
    actor: &Actor,
    opportunity_id: i64,
    engaged_within_days: Option<i64>,
) -> AppResult<Committee> {
    svc.authz
        .require(actor, Resource::Opportunity, Action::Read)
        .await?;
    let days = engaged_within_days.unwrap_or(ENGAGED_DAYS);
    if !(1..=3650).contains(&days) {
        return Err(AppError::validation(
            "engagedWithinDays",
            "must be between 1 and 3650",
        ));
    }
    let scope = svc.authz.scope(actor).await;
    let deal = opportunity::Entity::find_by_id(opportunity_id)
        .one(&svc.db)
        .await?
        .filter(|o| scope.allows_opportunity(o, AccessLevel::Read))
        .ok_or(AppError::NotFound("opportunity"))?;
    let view = ReadView::of(&[&scope]);
    committee_of(&svc.db, &view, deal, days, Utc::now()).await
}

/// Whether two accounts belong to the same hierarchy (reports-to lines may cross from a
/// subsidiary to its parent, never to an unrelated company).
pub(crate) async fn same_account_family<C: ConnectionTrait>(
    db: &C,
    a: i64,
    b: i64,
) -> AppResult<bool> {
    if a == b {
        return Ok(true);
    }
    Ok(account_family(db, a, true).await?.binary_search(&b).is_ok())
}
