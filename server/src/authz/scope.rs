//! What one user may see and change, expanded once from the casbin policy and turned
//! into SQL conditions. Lists push these into their `WHERE`, so page sizes and
//! `totalCount` count only visible rows; single records are checked against the same
//! sets, so a record outside them answers NOT_FOUND exactly like a missing one.

use std::collections::{BTreeSet, HashMap};

use accord_entities::territory_membership::AccessLevel;
use accord_entities::{
    account, contact, event, event_attendee, note, opportunity, opportunity_contact_role as role,
    task,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait};

/// Above this many territories a page is filtered with one `IN` list instead of a
/// union of per-territory branches.
const MAX_PAGE_BRANCHES: usize = 48;

/// The territories whose records every one of several viewers may read: a stage script
/// sees at most what both its publisher and the person moving the deal see. Used where
/// visibility goes into hand-written SQL (recursive org-chart queries).
#[derive(Debug, Clone)]
pub struct ReadView {
    /// `None`: every record, assigned to a territory or not.
    territories: Option<Vec<i64>>,
}

impl ReadView {
    pub fn of(scopes: &[&Scope]) -> Self {
        let mut territories: Option<Vec<i64>> = None;
        for scope in scopes.iter().filter(|s| !s.unrestricted) {
            let readable = scope.territories(AccessLevel::Read);
            territories = Some(match territories {
                None => readable.to_vec(),
                Some(mut kept) => {
                    kept.retain(|t| readable.binary_search(t).is_ok());
                    kept
                }
            });
        }
        ReadView { territories }
    }

    pub fn allows(&self, territory: Option<i64>) -> bool {
        match &self.territories {
            None => true,
            Some(list) => territory.is_some_and(|t| list.binary_search(&t).is_ok()),
        }
    }

    /// The readable territories (sorted), or `None` when nothing needs filtering.
    pub fn territories(&self) -> Option<&[i64]> {
        self.territories.as_deref()
    }
}

/// The territory part of an actor's permissions.
#[derive(Debug, Clone)]
pub struct Scope {
    pub user_id: i64,
    /// Admins: every record, in a territory or not.
    pub unrestricted: bool,
    /// The best level the user holds on each territory, subtrees of managed
    /// territories included.
    levels: HashMap<i64, AccessLevel>,
    /// Territories whose structure, members and rules the user may manage.
    managed: BTreeSet<i64>,
    read: Vec<i64>,
    edit: Vec<i64>,
    owner: Vec<i64>,
}

impl Scope {
    pub fn unrestricted(user_id: i64) -> Self {
        Scope {
            user_id,
            unrestricted: true,
            levels: HashMap::new(),
            managed: BTreeSet::new(),
            read: Vec::new(),
            edit: Vec::new(),
            owner: Vec::new(),
        }
    }

    /// No access at all (anonymous requests, which may only log in).
    pub fn nothing() -> Self {
        Scope::new(0, HashMap::new(), BTreeSet::new())
    }

    pub fn new(user_id: i64, levels: HashMap<i64, AccessLevel>, managed: BTreeSet<i64>) -> Self {
        let at_least = |need: AccessLevel| {
            let mut ids: Vec<i64> = levels
                .iter()
                .filter(|(_, l)| **l >= need)
                .map(|(t, _)| *t)
                .collect();
            ids.sort_unstable();
            ids
        };
        Scope {
            user_id,
            unrestricted: false,
            read: at_least(AccessLevel::Read),
            edit: at_least(AccessLevel::Edit),
            owner: at_least(AccessLevel::Owner),
            levels,
            managed,
        }
    }

    /// The user's level on a territory (`None`: an unassigned record).
    pub fn level(&self, territory: Option<i64>) -> Option<AccessLevel> {
        if self.unrestricted {
            return Some(AccessLevel::Owner);
        }
        territory.and_then(|t| self.levels.get(&t).copied())
    }

    pub fn allows(&self, territory: Option<i64>, need: AccessLevel) -> bool {
        self.level(territory).is_some_and(|l| l >= need)
    }

    /// Deals also answer to their owner, who may read and edit them wherever they are.
    pub fn allows_opportunity(&self, o: &opportunity::Model, need: AccessLevel) -> bool {
        self.allows_deal(o.territory_id, o.owner_id, need)
    }

    /// [`Self::allows_opportunity`] for a deal known by its territory and owner.
    pub fn allows_deal(&self, territory: Option<i64>, owner: i64, need: AccessLevel) -> bool {
        self.allows(territory, need) || (need <= AccessLevel::Edit && owner == self.user_id)
    }

    pub fn manages(&self, territory: i64) -> bool {
        self.unrestricted || self.managed.contains(&territory)
    }

    /// The best level per territory (empty when unrestricted).
    pub fn levels(&self) -> &HashMap<i64, AccessLevel> {
        &self.levels
    }

    pub fn managed(&self) -> &BTreeSet<i64> {
        &self.managed
    }

    /// Territories at `need` or above, sorted (not meaningful when unrestricted).
    pub fn territories(&self, need: AccessLevel) -> &[i64] {
        match need {
            AccessLevel::Read => &self.read,
            AccessLevel::Edit => &self.edit,
            AccessLevel::Owner => &self.owner,
        }
    }

    /// `column IN (visible territories)`; `None` when nothing needs filtering.
    pub fn territory_condition(
        &self,
        column: impl ColumnTrait,
        need: AccessLevel,
    ) -> Option<Condition> {
        if self.unrestricted {
            return None;
        }
        Some(Condition::all().add(column.is_in(self.territories(need).iter().copied())))
    }

    pub fn accounts(&self, need: AccessLevel) -> Option<Condition> {
        self.territory_condition(account::Column::TerritoryId, need)
    }

    pub fn contacts(&self, need: AccessLevel) -> Option<Condition> {
        self.territory_condition(contact::Column::TerritoryId, need)
    }

    pub fn opportunities(&self, need: AccessLevel) -> Option<Condition> {
        let by_territory = self.territory_condition(opportunity::Column::TerritoryId, need)?;
        Some(if need <= AccessLevel::Edit {
            Condition::any()
                .add(by_territory)
                .add(opportunity::Column::OwnerId.eq(self.user_id))
        } else {
            by_territory
        })
    }

    /// Conditions whose union is exactly the deals visible at `need`: one per
    /// territory, and the caller's own deals. `None` when there is nothing to split
    /// (unrestricted) or too many territories for a union to pay off.
    pub fn opportunity_branches(&self, need: AccessLevel) -> Option<Vec<Condition>> {
        if self.unrestricted || self.territories(need).len() > MAX_PAGE_BRANCHES {
            return None;
        }
        let mut branches: Vec<Condition> = self
            .territories(need)
            .iter()
            .map(|&t| Condition::all().add(opportunity::Column::TerritoryId.eq(t)))
            .collect();
        if need <= AccessLevel::Edit {
            branches.push(Condition::all().add(opportunity::Column::OwnerId.eq(self.user_id)));
        }
        Some(branches)
    }

    /// `EXISTS (SELECT 1 FROM <E> WHERE <E>.id = <outer> AND <cond>)`. Correlated on
    /// purpose: each outer row costs one primary-key probe, where `outer IN (SELECT id
    /// ...)` would have SQLite materialize the caller's whole visible set first.
    fn through<E: EntityTrait>(outer: impl ColumnTrait, id: E::Column, cond: Condition) -> Condition
    where
        E::Column: ColumnTrait,
    {
        let select = Query::select()
            .expr(Expr::val(1))
            .from(E::default())
            .cond_where(
                Condition::all()
                    .add(Expr::col(id.as_column_ref()).equals(outer.as_column_ref()))
                    .add(cond),
            )
            .to_owned();
        Condition::all().add(Expr::exists(select))
    }

    /// A contact role shows only when both its deal and its contact are visible.
    pub fn contact_roles(&self) -> Option<Condition> {
        let deals = self.opportunities(AccessLevel::Read)?;
        let contacts = self.contacts(AccessLevel::Read)?;
        Some(
            Condition::all()
                .add(Self::through::<opportunity::Entity>(
                    role::Column::OpportunityId,
                    opportunity::Column::Id,
                    deals,
                ))
                .add(Self::through::<contact::Entity>(
                    role::Column::ContactId,
                    contact::Column::Id,
                    contacts,
                )),
        )
    }

    /// A note shows when its subject does (leads are not territory records).
    pub fn notes(&self) -> Option<Condition> {
        let accounts = self.accounts(AccessLevel::Read)?;
        let contacts = self.contacts(AccessLevel::Read)?;
        let deals = self.opportunities(AccessLevel::Read)?;
        Some(
            Condition::any()
                .add(note::Column::LeadId.is_not_null())
                .add(Self::through::<account::Entity>(
                    note::Column::AccountId,
                    account::Column::Id,
                    accounts,
                ))
                .add(Self::through::<contact::Entity>(
                    note::Column::ContactId,
                    contact::Column::Id,
                    contacts,
                ))
                .add(Self::through::<opportunity::Entity>(
                    note::Column::OpportunityId,
                    opportunity::Column::Id,
                    deals,
                )),
        )
    }

    /// Condition for rows whose deal (through `column`) is visible.
    pub fn via_opportunity(&self, column: impl ColumnTrait) -> Option<Condition> {
        let deals = self.opportunities(AccessLevel::Read)?;
        Some(Self::through::<opportunity::Entity>(
            column,
            opportunity::Column::Id,
            deals,
        ))
    }
}

impl Scope {
    /// Audit entries of territory records show only while the record itself is visible
    /// (entries of deleted records then stay with admins); other entries show as before.
    pub fn audit_entries(&self) -> Option<Condition> {
        use accord_entities::audit_log::Column as A;
        use accord_entities::contact_influence as influence;
        use accord_entities::contact_relationship as relationship;
        // Influence edges and relationships show as far as their contacts do.
        let visible_contacts = || {
            Some(
                Query::select()
                    .column(contact::Column::Id)
                    .from(contact::Entity)
                    .cond_where(self.contacts(AccessLevel::Read)?)
                    .to_owned(),
            )
        };
        let of = |kind: &str, visible: Condition| {
            Condition::all().add(A::EntityType.eq(kind)).add(visible)
        };
        Some(
            Condition::any()
                .add(A::EntityType.is_not_in([
                    "Account",
                    "Contact",
                    "Opportunity",
                    "OpportunityContactRole",
                    "Note",
                    "ContactInfluence",
                    "ContactRelationship",
                    "Event",
                    "Task",
                ]))
                .add(of(
                    "Account",
                    Self::through::<account::Entity>(
                        A::EntityId,
                        account::Column::Id,
                        self.accounts(AccessLevel::Read)?,
                    ),
                ))
                .add(of(
                    "Contact",
                    Self::through::<contact::Entity>(
                        A::EntityId,
                        contact::Column::Id,
                        self.contacts(AccessLevel::Read)?,
                    ),
                ))
                .add(of(
                    "Opportunity",
                    Self::through::<opportunity::Entity>(
                        A::EntityId,
                        opportunity::Column::Id,
                        self.opportunities(AccessLevel::Read)?,
                    ),
                ))
                .add(of(
                    "OpportunityContactRole",
                    Self::through::<role::Entity>(
                        A::EntityId,
                        role::Column::Id,
                        self.contact_roles()?,
                    ),
                ))
                .add(of(
                    "Note",
                    Self::through::<note::Entity>(A::EntityId, note::Column::Id, self.notes()?),
                ))
                .add(of(
                    "ContactInfluence",
                    Self::through::<influence::Entity>(
                        A::EntityId,
                        influence::Column::Id,
                        Condition::all()
                            .add(influence::Column::FromContactId.in_subquery(visible_contacts()?))
                            .add(influence::Column::ToContactId.in_subquery(visible_contacts()?)),
                    ),
                ))
                .add(of(
                    "Event",
                    Self::through::<event::Entity>(A::EntityId, event::Column::Id, self.events()?),
                ))
                .add(of(
                    "Task",
                    Self::through::<task::Entity>(A::EntityId, task::Column::Id, self.tasks()?),
                ))
                .add(of(
                    "ContactRelationship",
                    Self::through::<relationship::Entity>(
                        A::EntityId,
                        relationship::Column::Id,
                        Condition::all()
                            .add(relationship::Column::ContactId.in_subquery(visible_contacts()?)),
                    ),
                )),
        )
    }
}

impl Scope {
    /// An event shows when the record it hangs on does; a personal event (on no record)
    /// shows to its owner and its invited users.
    pub fn events(&self) -> Option<Condition> {
        if self.unrestricted {
            return None;
        }
        let invited = Query::select()
            .expr(Expr::val(1))
            .from(event_attendee::Entity)
            .cond_where(
                Condition::all()
                    .add(
                        Expr::col((event_attendee::Entity, event_attendee::Column::EventId))
                            .equals((event::Entity, event::Column::Id)),
                    )
                    .add(event_attendee::Column::UserId.eq(self.user_id)),
            )
            .to_owned();
        let personal = Condition::all()
            .add(event::Column::AccountId.is_null())
            .add(event::Column::ContactId.is_null())
            .add(event::Column::OpportunityId.is_null())
            .add(
                Condition::any()
                    .add(event::Column::OwnerId.eq(self.user_id))
                    .add(Expr::exists(invited)),
            );
        Some(self.on_subject(
            personal,
            (
                event::Column::AccountId,
                event::Column::ContactId,
                event::Column::OpportunityId,
            ),
        ))
    }

    /// A task shows when the record it hangs on does; a personal task shows to the
    /// user it is assigned to and the user who created it.
    pub fn tasks(&self) -> Option<Condition> {
        if self.unrestricted {
            return None;
        }
        let personal = Condition::all()
            .add(task::Column::AccountId.is_null())
            .add(task::Column::ContactId.is_null())
            .add(task::Column::OpportunityId.is_null())
            .add(
                Condition::any()
                    .add(task::Column::AssigneeId.eq(self.user_id))
                    .add(task::Column::CreatedBy.eq(self.user_id)),
            );
        Some(self.on_subject(
            personal,
            (
                task::Column::AccountId,
                task::Column::ContactId,
                task::Column::OpportunityId,
            ),
        ))
    }

    /// `personal OR` the visible account, contact or deal the row points at.
    fn on_subject(
        &self,
        personal: Condition,
        (account_id, contact_id, deal_id): (impl ColumnTrait, impl ColumnTrait, impl ColumnTrait),
    ) -> Condition {
        let mut any = Condition::any().add(personal);
        if let Some(accounts) = self.accounts(AccessLevel::Read) {
            any = any.add(Self::through::<account::Entity>(
                account_id,
                account::Column::Id,
                accounts,
            ));
        }
        if let Some(contacts) = self.contacts(AccessLevel::Read) {
            any = any.add(Self::through::<contact::Entity>(
                contact_id,
                contact::Column::Id,
                contacts,
            ));
        }
        if let Some(deals) = self.opportunities(AccessLevel::Read) {
            any = any.add(Self::through::<opportunity::Entity>(
                deal_id,
                opportunity::Column::Id,
                deals,
            ));
        }
        any
    }
}

/// A condition that is never true, for callers that must filter but may see nothing.
pub fn nothing() -> Condition {
    Condition::all().add(Expr::val(1).eq(0))
}
