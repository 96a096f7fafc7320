//! Territories, memberships and assignment rules: queries and mutations. Territory
//! access itself is enforced in the services through `authz`.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use rust_decimal::Decimal;

use crate::graphql::accounts::DeletePayload;
use crate::graphql::ids::{NodeKind, decode, decode_opt, encode};
use crate::graphql::types::{
    AccessLevel, AccountSize, AssignmentRule, Territory, TerritoryKind, TerritoryMembership,
};
use crate::graphql::{actor, services};
use crate::services::territories::{
    self, MembershipInput, NewTerritory, RuleInput, TerritoryChanges,
};

#[derive(InputObject)]
pub struct CreateTerritoryInput {
    pub name: String,
    /// Omit for a top-level territory (admins only).
    pub parent_id: Option<ID>,
    #[graphql(default_with = "TerritoryKind::Geography")]
    pub kind: TerritoryKind,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateTerritoryInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    /// Moves the territory (and its subtree); `null` makes it top-level (admins only).
    pub parent_id: MaybeUndefined<ID>,
    pub kind: Option<TerritoryKind>,
    pub description: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct SetTerritoryMembershipInput {
    pub territory_id: ID,
    pub user_id: ID,
    pub access_level: AccessLevel,
    /// Managers' access covers the subtree; they must be sales managers or admins.
    #[graphql(default)]
    pub is_manager: bool,
}

#[derive(InputObject)]
pub struct AssignmentRuleInput {
    pub name: String,
    /// Lower runs first.
    pub position: i32,
    pub territory_id: ID,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub size: Option<AccountSize>,
    pub min_revenue: Option<Decimal>,
    pub max_revenue: Option<Decimal>,
    #[graphql(default = true)]
    pub active: bool,
}

#[derive(SimpleObject)]
pub struct TerritoryPayload {
    pub territory: Territory,
}

#[derive(SimpleObject)]
pub struct TerritoryMembershipPayload {
    pub membership: TerritoryMembership,
}

#[derive(SimpleObject)]
pub struct AssignmentRulePayload {
    pub rule: AssignmentRule,
}

/// An account the rules moved, or would move.
#[derive(SimpleObject)]
pub struct AccountMove {
    pub account_id: ID,
    pub account_name: String,
    pub from_territory_id: Option<ID>,
    pub to_territory_id: ID,
}

#[derive(SimpleObject)]
pub struct RunAssignmentRulesPayload {
    /// Accounts without a manual assignment that the rules looked at.
    pub examined: u64,
    pub moved: Vec<AccountMove>,
    pub dry_run: bool,
}

/// `prefix` places the fields' names inside a larger input (`changes.0.`).
pub(crate) fn membership_input(
    input: SetTerritoryMembershipInput,
    prefix: &str,
) -> async_graphql::Result<MembershipInput> {
    Ok(MembershipInput {
        territory_id: decode(
            &format!("{prefix}territoryId"),
            &input.territory_id,
            NodeKind::Territory,
        )?,
        user_id: decode(&format!("{prefix}userId"), &input.user_id, NodeKind::User)?,
        access_level: input.access_level.into(),
        is_manager: input.is_manager,
    })
}

pub(crate) fn rule_input(input: AssignmentRuleInput) -> async_graphql::Result<RuleInput> {
    Ok(RuleInput {
        name: input.name,
        position: input.position,
        territory_id: decode("territoryId", &input.territory_id, NodeKind::Territory)?,
        country: input.country,
        region: input.region,
        industry: input.industry,
        size: input.size.map(Into::into),
        min_revenue: input.min_revenue,
        max_revenue: input.max_revenue,
        active: input.active,
    })
}

pub(crate) fn account_move(m: territories::AccountMove) -> AccountMove {
    AccountMove {
        account_id: encode(NodeKind::Account, m.account_id),
        account_name: m.account_name,
        from_territory_id: m.from.map(|t| encode(NodeKind::Territory, t)),
        to_territory_id: encode(NodeKind::Territory, m.to),
    }
}

#[derive(Default)]
pub struct TerritoryQuery;

#[Object]
impl TerritoryQuery {
    async fn territory(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Territory> {
        let id = decode("id", &id, NodeKind::Territory)?;
        Ok(Territory(
            territories::get(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// The hierarchy, by name: the children of `parentId`, the top level with
    /// `rootsOnly`, or every territory.
    async fn territories(
        &self,
        ctx: &Context<'_>,
        parent_id: Option<ID>,
        #[graphql(default)] roots_only: bool,
    ) -> async_graphql::Result<Vec<Territory>> {
        let parent = match decode_opt("parentId", parent_id.as_ref(), NodeKind::Territory)? {
            Some(p) => Some(Some(p)),
            None if roots_only => Some(None),
            None => None,
        };
        Ok(territories::list(services(ctx), actor(ctx)?, parent)
            .await?
            .into_iter()
            .map(Territory)
            .collect())
    }

    /// Memberships of a territory, of a user, or all.
    async fn territory_memberships(
        &self,
        ctx: &Context<'_>,
        territory_id: Option<ID>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<Vec<TerritoryMembership>> {
        let t = decode_opt("territoryId", territory_id.as_ref(), NodeKind::Territory)?;
        let u = decode_opt("userId", user_id.as_ref(), NodeKind::User)?;
        Ok(territories::memberships(services(ctx), actor(ctx)?, t, u)
            .await?
            .into_iter()
            .map(TerritoryMembership)
            .collect())
    }

    /// In the order they are tried.
    async fn assignment_rules(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AssignmentRule>> {
        Ok(territories::rules(services(ctx), actor(ctx)?)
            .await?
            .into_iter()
            .map(AssignmentRule)
            .collect())
    }
}

#[derive(Default)]
pub struct TerritoryMutation;

#[Object]
impl TerritoryMutation {
    async fn create_territory(
        &self,
        ctx: &Context<'_>,
        input: CreateTerritoryInput,
    ) -> async_graphql::Result<TerritoryPayload> {
        let new = NewTerritory {
            name: input.name,
            parent_id: decode_opt("parentId", input.parent_id.as_ref(), NodeKind::Territory)?,
            kind: input.kind.into(),
            description: input.description,
        };
        let t = territories::create(services(ctx), actor(ctx)?, new).await?;
        Ok(TerritoryPayload {
            territory: Territory(t),
        })
    }

    async fn update_territory(
        &self,
        ctx: &Context<'_>,
        input: UpdateTerritoryInput,
    ) -> async_graphql::Result<TerritoryPayload> {
        let id = decode("id", &input.id, NodeKind::Territory)?;
        let changes = TerritoryChanges {
            name: input.name,
            parent_id: match input.parent_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(p) => {
                    Some(Some(decode("parentId", &p, NodeKind::Territory)?))
                }
            },
            kind: input.kind.map(Into::into),
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(d)),
            },
        };
        let t = territories::update(services(ctx), actor(ctx)?, id, input.version, changes).await?;
        Ok(TerritoryPayload {
            territory: Territory(t),
        })
    }

    /// Only an empty territory: no children, accounts or rules.
    async fn delete_territory(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::Territory)?;
        territories::delete(services(ctx), actor(ctx)?, raw, version).await?;
        Ok(DeletePayload { deleted_id: id })
    }

    /// Adds a member or changes their access; applies at once on every instance
    /// (within the policy poll interval on other instances).
    async fn set_territory_membership(
        &self,
        ctx: &Context<'_>,
        input: SetTerritoryMembershipInput,
    ) -> async_graphql::Result<TerritoryMembershipPayload> {
        let m = membership_input(input, "")?;
        let saved = territories::set_membership(services(ctx), actor(ctx)?, m).await?;
        Ok(TerritoryMembershipPayload {
            membership: TerritoryMembership(saved),
        })
    }

    async fn remove_territory_membership(
        &self,
        ctx: &Context<'_>,
        territory_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<TerritoryMembershipPayload> {
        let t = decode("territoryId", &territory_id, NodeKind::Territory)?;
        let u = decode("userId", &user_id, NodeKind::User)?;
        let removed = territories::remove_membership(services(ctx), actor(ctx)?, t, u).await?;
        Ok(TerritoryMembershipPayload {
            membership: TerritoryMembership(removed),
        })
    }

    /// New and edited accounts follow the rules at once; existing ones move when the
    /// rules are re-run (`runAssignmentRules`).
    async fn create_assignment_rule(
        &self,
        ctx: &Context<'_>,
        input: AssignmentRuleInput,
    ) -> async_graphql::Result<AssignmentRulePayload> {
        let saved =
            territories::create_rule(services(ctx), actor(ctx)?, rule_input(input)?).await?;
        Ok(AssignmentRulePayload {
            rule: AssignmentRule(saved),
        })
    }

    async fn update_assignment_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        input: AssignmentRuleInput,
    ) -> async_graphql::Result<AssignmentRulePayload> {
        let id = decode("id", &id, NodeKind::AssignmentRule)?;
        let saved =
            territories::update_rule(services(ctx), actor(ctx)?, id, version, rule_input(input)?)
                .await?;
        Ok(AssignmentRulePayload {
            rule: AssignmentRule(saved),
        })
    }

    async fn delete_assignment_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::AssignmentRule)?;
        territories::delete_rule(services(ctx), actor(ctx)?, raw).await?;
        Ok(DeletePayload { deleted_id: id })
    }

    /// Re-runs the rules over every account without a manual assignment and reports
    /// what moved (or, with `dryRun`, what would move). Admins only.
    async fn run_assignment_rules(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] dry_run: bool,
    ) -> async_graphql::Result<RunAssignmentRulesPayload> {
        let (examined, moves) = territories::run_rules(services(ctx), actor(ctx)?, dry_run).await?;
        Ok(RunAssignmentRulesPayload {
            examined,
            moved: moves.into_iter().map(account_move).collect(),
            dry_run,
        })
    }
}
