//! Look-ahead preloading for lists. DataLoader batching relies on a timer: keys requested
//! within ~1 ms go into one batch. Under load, resolving a page's siblings can take longer
//! than that, batches split, and statements per request grow with concurrency (the
//! benchmark saw 7 become 35). So list resolvers preload every relation the query
//! selects, level by level and one statement per entity type per level, straight into the
//! loaders' caches; the per-node resolvers then hit the cache. The statement count is
//! fixed by the query's shape, never by timing or page size.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::Hash;

use accord_entities::territory_membership::AccessLevel;
use accord_entities::{account, contact, lead, opportunity_contact_role};
use async_graphql::Lookahead;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use super::{DealHead, ReadAlong};
use crate::graphql::loaders::{LoadError, Loaders, load_error};
use crate::services::opportunities::RelationWidths;
use crate::services::rows::{ContactBrief, Joined, Width};

type Result = async_graphql::Result<()>;

/// Loads the keys the cache does not hold yet, in one statement, and feeds the cache.
async fn prime<K, L>(
    loader: &DataLoader<L, HashMapCache>,
    keys: impl IntoIterator<Item = K>,
) -> Result
where
    K: Send + Sync + Hash + Eq + Clone + Ord + 'static,
    L: Loader<K, Error = LoadError>,
{
    let cached = loader.get_cached_values::<K>();
    let keys: Vec<K> = keys
        .into_iter()
        .filter(|k| !cached.contains_key(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let values = loader.loader().load(&keys).await.map_err(load_error)?;
    loader.feed_many(values).await;
    Ok(())
}

/// [`prime`] for one-to-many loaders; parents without children are cached as empty, and
/// all children found are returned for the next level.
async fn prime_children<L, M>(
    loader: &DataLoader<L, HashMapCache>,
    parents: impl IntoIterator<Item = i64>,
) -> async_graphql::Result<Vec<M>>
where
    L: Loader<i64, Value = Vec<M>, Error = LoadError>,
    M: Clone + Send + Sync + 'static,
{
    let keys: Vec<i64> = parents
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut values = loader.loader().load(&keys).await.map_err(load_error)?;
    let all: Vec<M> = values.values().flatten().cloned().collect();
    let fed: Vec<(i64, Vec<M>)> = keys
        .iter()
        .map(|k| (*k, values.remove(k).unwrap_or_default()))
        .collect();
    loader.feed_many(fed).await;
    Ok(all)
}

async fn when(selected: bool, load: impl Future<Output = Result>) -> Result {
    if selected { load.await } else { Ok(()) }
}

/// Cached rows for `ids` (all primed before), for the next level.
fn cached<L, M>(loader: &DataLoader<L, HashMapCache>, ids: &[i64]) -> Vec<M>
where
    L: Loader<i64, Value = M, Error = LoadError>,
    M: Clone + Send + Sync + 'static,
{
    let cache = loader.get_cached_values::<i64>();
    ids.iter().filter_map(|id| cache.get(id).cloned()).collect()
}

/// Feeds the whole accounts, owners and stages a page read along with its deals into
/// the loaders' caches, for the levels below them (an account's owner, say) and for any
/// other path to the same records. Brief ones are only ever answered from the deals'
/// [`ReadAlong`] itself.
pub(crate) async fn feed_whole<'a>(l: &Loaders, read: impl Iterator<Item = &'a ReadAlong>) {
    let (mut accounts, mut owners, mut stages) = (Vec::new(), Vec::new(), Vec::new());
    for along in read {
        if let Some(Some(Joined::Full(a))) = &along.account {
            accounts.push((a.id, a.clone()));
        }
        if let Some(Some(Joined::Full(u))) = &along.owner {
            owners.push((u.id, u.clone()));
        }
        if let Some(Some(Joined::Full(s))) = &along.stage {
            stages.push((s.id, s.clone()));
        }
    }
    if !accounts.is_empty() {
        l.accounts.feed_many(accounts).await;
    }
    if !owners.is_empty() {
        l.users.feed_many(owners).await;
    }
    if !stages.is_empty() {
        l.stages.feed_many(stages).await;
    }
}

/// `joined`: the widths the page read the deals' account, owner and stage with; those
/// are not loaded again. `read_roles`: the committee members the page read along (see
/// [`ReadAlong`]), if it did; they are not loaded again either.
pub(crate) async fn opportunities(
    l: &Loaders,
    node: &Lookahead<'_>,
    rows: &[DealHead<'_>],
    joined: RelationWidths,
    read_roles: Option<Vec<&opportunity_contact_role::Model>>,
) -> Result {
    let read_with_page = |w: fn(&RelationWidths) -> Width| w(&joined) != Width::Skip;
    let account = node.field("account");
    let roles = node.field("contactRoles");
    let contact = roles.field("contact");
    let contact_width = super::width(&contact, super::Contact::BRIEF_FIELDS);
    // Accounts of deals seen only as their owner stay hidden (see `Opportunity.account`).
    let account_ids: Vec<i64> = rows
        .iter()
        .filter(|o| l.scope.allows(o.territory_id, AccessLevel::Read))
        .map(|o| o.account_id)
        .collect();

    let ((), (), (), role_rows) = futures::try_join!(
        when(
            account.exists() && !read_with_page(|w| w.account),
            prime(&l.accounts, account_ids.iter().copied())
        ),
        when(
            node.field("stage").exists() && !read_with_page(|w| w.stage),
            prime(&l.stages, rows.iter().map(|o| o.stage_id))
        ),
        when(
            node.field("pipeline").exists(),
            prime(&l.pipelines, rows.iter().map(|o| o.pipeline_id))
        ),
        async {
            let keys = |roles: Vec<opportunity_contact_role::Model>| {
                roles.iter().map(RoleKeys::of).collect::<Vec<_>>()
            };
            Ok(match read_roles {
                Some(read) => read.into_iter().map(RoleKeys::of).collect(),
                None if contact.exists() => {
                    keys(roles_with_contacts(l, rows, contact_width).await?)
                }
                None if roles.exists() => {
                    keys(prime_children(&l.roles_by_opportunity, rows.iter().map(|o| o.id)).await?)
                }
                None => Vec::new(),
            })
        },
    )?;

    // Second level: every user (deal owners and account owners) in one statement.
    let accounts: Vec<account::Model> = if account.exists() {
        cached(&l.accounts, &account_ids)
    } else {
        Vec::new()
    };
    let mut user_ids: Vec<i64> = Vec::new();
    if node.field("owner").exists() && !read_with_page(|w| w.owner) {
        user_ids.extend(rows.iter().map(|o| o.owner_id));
    }
    if account.field("owner").exists() {
        user_ids.extend(accounts.iter().filter_map(|a| a.owner_id));
    }
    let contact_ids: Vec<i64> = role_rows.iter().map(|r| r.contact_id).collect();
    futures::try_join!(
        prime(&l.users, user_ids),
        when(
            account.field("parent").exists(),
            prime(&l.accounts, accounts.iter().filter_map(|a| a.parent_id))
        ),
        when(
            contact_width == Width::Full,
            prime(&l.contacts, contact_ids.iter().copied())
        ),
        when(
            roles.field("opportunity").exists(),
            prime(&l.opportunities, role_rows.iter().map(|r| r.opportunity_id))
        ),
    )?;

    if contact_width == Width::Full {
        let found = cached(&l.contacts, &contact_ids);
        contacts(l, &contact, &found.iter().collect::<Vec<_>>()).await?;
    }
    Ok(())
}

/// What the level below a deal's committee needs of each role.
struct RoleKeys {
    opportunity_id: i64,
    contact_id: i64,
}

impl RoleKeys {
    fn of(role: &opportunity_contact_role::Model) -> Self {
        RoleKeys {
            opportunity_id: role.opportunity_id,
            contact_id: role.contact_id,
        }
    }
}

/// The contact roles of the given deals joined with their contacts in one statement,
/// fed into both caches (same order as the `roles_by_opportunity` loader); contacts read
/// brief (`contact` asks for names only) go to [`crate::graphql::loaders::Briefs`].
///
/// Visibility is the loader's (`Scope::contact_roles`: deal and contact both visible),
/// decided here in memory: the deals are checked one by one, and each joined contact
/// carries its territory. The statement itself then costs a caller in a territory
/// exactly what it costs an admin.
async fn roles_with_contacts(
    l: &Loaders,
    deals: &[DealHead<'_>],
    contact_width: Width,
) -> async_graphql::Result<Vec<opportunity_contact_role::Model>> {
    use crate::services::rows::{FullRead, Reader, read_joined, select_all, select_joined};
    use opportunity_contact_role::{Column as R, Entity as Roles};
    use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryTrait};
    let ids = visible_deals(l, deals);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut statement = Roles::find()
        .filter(R::OpportunityId.is_in(ids.iter().copied()))
        .left_join(contact::Entity)
        // Deal first, as `ix_ocr_opportunity_created` holds them: no sort.
        .order_by_asc(R::OpportunityId)
        .order_by_asc(R::CreatedAt)
        .order_by_asc(R::Id)
        .into_query();
    statement.clear_selects();
    select_all::<Roles>(&mut statement);
    select_joined::<ContactBrief>(&mut statement, contact_width);
    let fail = |e| load_error(std::sync::Arc::new(e));
    let rows = l.db.query_all(&statement).await.map_err(fail)?;
    let mut members = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut r = Reader::new(row);
        let role = opportunity_contact_role::Model::read(&mut r).map_err(fail)?;
        if let Some(contact) = read_joined::<ContactBrief>(&mut r, contact_width).map_err(fail)? {
            members.push((role, contact));
        }
    }
    Ok(feed_roles(l, &ids, members).await)
}

/// The deals, of those given, whose committees the caller may see, sorted.
fn visible_deals(l: &Loaders, deals: &[DealHead<'_>]) -> Vec<i64> {
    deals
        .iter()
        .filter(|o| {
            l.scope
                .allows_deal(o.territory_id, o.owner_id, AccessLevel::Read)
        })
        .map(|o| o.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Feeds the committees of the deals `ids` (visible, each committee oldest first) into
/// the role and contact caches, leaving out roles whose contact the caller cannot see
/// (a deal seen as its owner may have some); returns the roles fed.
async fn feed_roles(
    l: &Loaders,
    ids: &[i64],
    members: Vec<(
        opportunity_contact_role::Model,
        Joined<contact::Model, ContactBrief>,
    )>,
) -> Vec<opportunity_contact_role::Model> {
    let mut by_deal: HashMap<i64, Vec<opportunity_contact_role::Model>> =
        ids.iter().map(|id| (*id, Vec::new())).collect();
    let (mut contacts, mut briefs) = (Vec::new(), Vec::new());
    let mut roles = Vec::with_capacity(members.len());
    let visible = |territory| l.scope.allows(territory, AccessLevel::Read);
    for (role, contact) in members {
        match contact {
            Joined::Full(c) if visible(c.territory_id) => contacts.push((c.id, c)),
            Joined::Brief(c) if visible(c.territory_id) => briefs.push((c.id, c)),
            _ => continue,
        }
        by_deal
            .entry(role.opportunity_id)
            .or_default()
            .push(role.clone());
        roles.push(role);
    }
    l.roles_by_opportunity.feed_many(by_deal).await;
    l.contacts.feed_many(contacts).await;
    l.briefs.contacts.write().extend(briefs);
    roles
}

pub(crate) async fn accounts(
    l: &Loaders,
    node: &Lookahead<'_>,
    rows: &[&account::Model],
) -> Result {
    futures::try_join!(
        when(
            node.field("owner").exists(),
            prime(&l.users, rows.iter().filter_map(|a| a.owner_id))
        ),
        when(
            node.field("parent").exists(),
            prime(&l.accounts, rows.iter().filter_map(|a| a.parent_id))
        ),
    )?;
    Ok(())
}

pub(crate) async fn contacts(
    l: &Loaders,
    node: &Lookahead<'_>,
    rows: &[&contact::Model],
) -> Result {
    let account = node.field("account");
    let account_ids: Vec<i64> = rows.iter().map(|c| c.account_id).collect();
    futures::try_join!(
        when(
            account.exists(),
            prime(&l.accounts, account_ids.iter().copied())
        ),
        when(
            node.field("reportsTo").exists(),
            prime(&l.contacts, rows.iter().filter_map(|c| c.reports_to_id))
        ),
    )?;
    if account.exists() {
        let found = cached(&l.accounts, &account_ids);
        accounts(l, &account, &found.iter().collect::<Vec<_>>()).await?;
    }
    Ok(())
}

pub(crate) async fn leads(l: &Loaders, node: &Lookahead<'_>, rows: &[&lead::Model]) -> Result {
    when(
        node.field("owner").exists(),
        prime(&l.users, rows.iter().filter_map(|r| r.owner_id)),
    )
    .await
}
