//! Look-ahead preloading for lists. DataLoader batching relies on a timer: keys requested
//! within ~1 ms go into one batch. Under load, resolving a page's siblings can take longer
//! than that, batches split, and statements per request grow with concurrency (the
//! benchmark saw 7 become 35). So list resolvers preload every relation the query
//! selects, level by level and one statement per entity type per level, straight into the
//! loaders' caches; the per-node resolvers then hit the cache. The statement count is
//! fixed by the query's shape, never by timing or page size.

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::Hash;

use accord_entities::territory_membership::AccessLevel;
use accord_entities::{account, contact, lead, opportunity, opportunity_contact_role};
use async_graphql::Lookahead;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use crate::graphql::loaders::{LoadError, Loaders, load_error};
use crate::services::opportunities::OpportunityWithRelations;

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

/// Feeds the caches with the relations a joined page brought along.
pub(crate) async fn feed_joined<'a>(
    l: &Loaders,
    rows: impl Iterator<Item = &'a OpportunityWithRelations>,
) {
    let (mut accounts, mut owners, mut stages) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        accounts.extend(r.account.clone().map(|a| (a.id, a)));
        owners.extend(r.owner.clone().map(|u| (u.id, u)));
        stages.extend(r.stage.clone().map(|s| (s.id, s)));
    }
    l.accounts.feed_many(accounts).await;
    l.users.feed_many(owners).await;
    l.stages.feed_many(stages).await;
}

pub(crate) async fn opportunities(
    l: &Loaders,
    node: &Lookahead<'_>,
    rows: &[&opportunity::Model],
) -> Result {
    let account = node.field("account");
    let roles = node.field("contactRoles");
    let contact = roles.field("contact");
    // Accounts of deals seen only as their owner stay hidden (see `Opportunity.account`).
    let account_ids: Vec<i64> = rows
        .iter()
        .filter(|o| l.scope.allows(o.territory_id, AccessLevel::Read))
        .map(|o| o.account_id)
        .collect();

    let ((), (), (), role_rows) = futures::try_join!(
        when(
            account.exists(),
            prime(&l.accounts, account_ids.iter().copied())
        ),
        when(
            node.field("stage").exists(),
            prime(&l.stages, rows.iter().map(|o| o.stage_id))
        ),
        when(
            node.field("pipeline").exists(),
            prime(&l.pipelines, rows.iter().map(|o| o.pipeline_id))
        ),
        async {
            if contact.exists() {
                roles_with_contacts(l, rows).await
            } else if roles.exists() {
                prime_children(&l.roles_by_opportunity, rows.iter().map(|o| o.id)).await
            } else {
                Ok(Vec::new())
            }
        },
    )?;

    // Second level: every user (deal owners and account owners) in one statement.
    let accounts: Vec<account::Model> = if account.exists() {
        cached(&l.accounts, &account_ids)
    } else {
        Vec::new()
    };
    let mut user_ids: Vec<i64> = Vec::new();
    if node.field("owner").exists() {
        user_ids.extend(rows.iter().map(|o| o.owner_id));
    }
    if account.field("owner").exists() {
        user_ids.extend(accounts.iter().filter_map(|a| a.owner_id));
    }
    let contact_ids: Vec<i64> = role_rows
        .iter()
        .map(|r: &opportunity_contact_role::Model| r.contact_id)
        .collect();
    futures::try_join!(
        prime(&l.users, user_ids),
        when(
            account.field("parent").exists(),
            prime(&l.accounts, accounts.iter().filter_map(|a| a.parent_id))
        ),
        when(
            contact.exists(),
            prime(&l.contacts, contact_ids.iter().copied())
        ),
        when(
            roles.field("opportunity").exists(),
            prime(&l.opportunities, role_rows.iter().map(|r| r.opportunity_id))
        ),
    )?;

    if contact.exists() {
        let found = cached(&l.contacts, &contact_ids);
        contacts(l, &contact, &found.iter().collect::<Vec<_>>()).await?;
    }
    Ok(())
}

/// The contact roles of the given deals joined with their contacts in one statement,
/// fed into both caches (same order as the `roles_by_opportunity` loader).
///
/// Visibility is the loader's (`Scope::contact_roles`: deal and contact both visible),
/// decided here in memory: the deals are checked one by one, and each joined contact
/// carries its territory. The statement itself then costs a caller in a territory
/// exactly what it costs an admin.
async fn roles_with_contacts(
    l: &Loaders,
    deals: &[&opportunity::Model],
) -> async_graphql::Result<Vec<opportunity_contact_role::Model>> {
    use opportunity_contact_role::{Column as R, Entity as Roles};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let ids: Vec<i64> = deals
        .iter()
        .filter(|o| l.scope.allows_opportunity(o, AccessLevel::Read))
        .map(|o| o.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = Roles::find()
        .filter(R::OpportunityId.is_in(ids.iter().copied()))
        .find_also_related(contact::Entity)
        .order_by_asc(R::CreatedAt)
        .order_by_asc(R::Id)
        .all(&l.db)
        .await
        .map_err(|e| load_error(std::sync::Arc::new(e)))?;
    let mut by_deal: std::collections::HashMap<i64, Vec<opportunity_contact_role::Model>> =
        ids.iter().map(|id| (*id, Vec::new())).collect();
    let mut contacts = Vec::new();
    let mut roles = Vec::with_capacity(rows.len());
    for (role, contact) in rows {
        // A deal seen as its owner may have contacts the caller cannot see.
        let Some(c) = contact.filter(|c| l.scope.allows(c.territory_id, AccessLevel::Read)) else {
            continue;
        };
        contacts.push((c.id, c));
        by_deal
            .entry(role.opportunity_id)
            .or_default()
            .push(role.clone());
        roles.push(role);
    }
    l.roles_by_opportunity.feed_many(by_deal).await;
    l.contacts.feed_many(contacts).await;
    Ok(roles)
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
