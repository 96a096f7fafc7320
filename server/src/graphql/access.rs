//! Access analysis over GraphQL: `explainAccess`, `previewTerritoryChange` and
//! `applyTerritoryChange`. The work happens in `services::access`.

use async_graphql::{Context, Enum, ID, InputObject, Object, OneofObject, SimpleObject};

use crate::graphql::ids::{NodeKind, decode, decode_any, decode_opt, encode};
use crate::graphql::loaders::one;
use crate::graphql::territories::{
    AccountMove, AssignmentRuleInput, SetTerritoryMembershipInput, account_move, membership_input,
    rule_input,
};
use crate::graphql::types::{AccessLevel, Territory, User};
use crate::graphql::{actor, loaders, services};
use crate::services::access::{self, RecordKind, TerritoryChange};

/// What the caller wants to do with a record.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::access::AccessAction")]
pub enum AccessAction {
    Read,
    Edit,
    /// Delete, or move an account to another territory: owner access.
    Delete,
}

pub struct AccessExplanation(access::Explanation);

#[Object]
impl AccessExplanation {
    /// Both the role and the territory access allow it (and the user is active).
    async fn allowed(&self) -> bool {
        self.0.allowed
    }
    /// The verdict in one sentence.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// How the verdict was reached, one sentence per step.
    async fn reasons(&self) -> &[String] {
        &self.0.reasons
    }
    /// The policy lines that granted, in casbin's notation.
    async fn policy_lines(&self) -> &[String] {
        &self.0.policy_lines
    }
    async fn role_allowed(&self) -> bool {
        self.0.role_allowed
    }
    async fn territory_allowed(&self) -> bool {
        self.0.territory_allowed
    }
    async fn action(&self) -> AccessAction {
        self.0.action.into()
    }
    async fn user(&self) -> User {
        User::from(self.0.user.clone())
    }
    async fn record_id(&self) -> ID {
        let kind = match self.0.kind {
            RecordKind::Account => NodeKind::Account,
            RecordKind::Contact => NodeKind::Contact,
            RecordKind::Opportunity => NodeKind::Opportunity,
        };
        encode(kind, self.0.record_id)
    }
    /// The record's territory, then its parent, up to the top level.
    async fn territory_path(&self) -> Vec<Territory> {
        self.0
            .territory_path
            .iter()
            .cloned()
            .map(Territory)
            .collect()
    }
}

#[derive(InputObject)]
pub struct MoveTerritoryStep {
    pub territory_id: ID,
    /// `null`: to the top level (admins only).
    pub parent_id: Option<ID>,
}

#[derive(InputObject)]
pub struct RemoveMembershipStep {
    pub territory_id: ID,
    pub user_id: ID,
}

#[derive(InputObject)]
pub struct UpdateRuleStep {
    pub id: ID,
    pub rule: AssignmentRuleInput,
}

#[derive(InputObject)]
pub struct DeleteRuleStep {
    pub id: ID,
}

/// One step of a territory change; exactly one field is set.
#[derive(OneofObject)]
pub enum TerritoryChangeStep {
    MoveTerritory(MoveTerritoryStep),
    SetMembership(SetTerritoryMembershipInput),
    RemoveMembership(RemoveMembershipStep),
    CreateRule(AssignmentRuleInput),
    UpdateRule(UpdateRuleStep),
    DeleteRule(DeleteRuleStep),
}

#[derive(InputObject)]
pub struct TerritoryChangeInput {
    /// Applied in order, all or nothing.
    pub changes: Vec<TerritoryChangeStep>,
    /// Re-run the assignment rules over existing accounts after the steps, so rule
    /// edits move the accounts they now place elsewhere (admins only).
    #[graphql(default)]
    pub reassign_accounts: bool,
    /// From a preview: refuse with CONFLICT if memberships or the hierarchy changed
    /// since.
    pub expected_policy_version: Option<i64>,
}

fn step(index: usize, s: TerritoryChangeStep) -> async_graphql::Result<TerritoryChange> {
    let field = |name: &str| format!("changes.{index}.{name}");
    Ok(match s {
        TerritoryChangeStep::MoveTerritory(m) => TerritoryChange::MoveTerritory {
            territory_id: decode(&field("territoryId"), &m.territory_id, NodeKind::Territory)?,
            parent_id: decode_opt(
                &field("parentId"),
                m.parent_id.as_ref(),
                NodeKind::Territory,
            )?,
        },
        TerritoryChangeStep::SetMembership(m) => {
            TerritoryChange::SetMembership(membership_input(m, &field(""))?)
        }
        TerritoryChangeStep::RemoveMembership(m) => TerritoryChange::RemoveMembership {
            territory_id: decode(&field("territoryId"), &m.territory_id, NodeKind::Territory)?,
            user_id: decode(&field("userId"), &m.user_id, NodeKind::User)?,
        },
        TerritoryChangeStep::CreateRule(r) => TerritoryChange::CreateRule(rule_input(r)?),
        TerritoryChangeStep::UpdateRule(u) => TerritoryChange::UpdateRule {
            id: decode(&field("id"), &u.id, NodeKind::AssignmentRule)?,
            input: rule_input(u.rule)?,
        },
        TerritoryChangeStep::DeleteRule(d) => TerritoryChange::DeleteRule {
            id: decode(&field("id"), &d.id, NodeKind::AssignmentRule)?,
        },
    })
}

fn request(input: TerritoryChangeInput) -> async_graphql::Result<access::ChangeRequest> {
    Ok(access::ChangeRequest {
        changes: input
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, s)| step(i, s))
            .collect::<async_graphql::Result<_>>()?,
        reassign_accounts: input.reassign_accounts,
        expected_policy_version: input.expected_policy_version,
    })
}

/// Records of each kind.
#[derive(SimpleObject)]
pub struct RecordCounts {
    pub accounts: u64,
    pub contacts: u64,
    pub opportunities: u64,
}

impl From<access::RecordCounts> for RecordCounts {
    fn from(c: access::RecordCounts) -> Self {
        RecordCounts {
            accounts: c.accounts,
            contacts: c.contacts,
            opportunities: c.opportunities,
        }
    }
}

pub struct TerritoryLevelChange(access::LevelChange);

#[Object]
impl TerritoryLevelChange {
    async fn territory(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Territory>> {
        Ok(one(&loaders(ctx)?.territories, self.0.territory_id)
            .await?
            .map(Territory))
    }
    /// `null`: no access.
    async fn before(&self) -> Option<AccessLevel> {
        self.0.before.map(Into::into)
    }
    async fn after(&self) -> Option<AccessLevel> {
        self.0.after.map(Into::into)
    }
}

pub struct UserAccessImpact(access::UserImpact);

#[Object]
impl UserAccessImpact {
    async fn user(&self) -> User {
        User::from(self.0.user.clone())
    }
    /// Records the user starts seeing.
    async fn read_gained(&self) -> RecordCounts {
        self.0.read_gained.into()
    }
    /// Records the user stops seeing.
    async fn read_lost(&self) -> RecordCounts {
        self.0.read_lost.into()
    }
    async fn edit_gained(&self) -> RecordCounts {
        self.0.edit_gained.into()
    }
    async fn edit_lost(&self) -> RecordCounts {
        self.0.edit_lost.into()
    }
    /// Territories where the user's level changes (subtrees of managed ones included).
    async fn territories(&self) -> Vec<TerritoryLevelChange> {
        self.0
            .territories
            .iter()
            .cloned()
            .map(TerritoryLevelChange)
            .collect()
    }
}

pub struct TerritoryChangeImpact(access::ChangeImpact);

#[Object]
impl TerritoryChangeImpact {
    async fn applied(&self) -> bool {
        self.0.applied
    }
    /// A preview: the policy version it was computed against (pass it to
    /// `applyTerritoryChange` as `expectedPolicyVersion`). An apply: the new version.
    async fn policy_version(&self) -> i64 {
        self.0.policy_version
    }
    async fn accounts_moved(&self) -> Vec<AccountMove> {
        self.0
            .accounts_moved
            .iter()
            .cloned()
            .map(account_move)
            .collect()
    }
    /// Users whose access changes (admins, who see everything, never do).
    async fn users(&self) -> Vec<UserAccessImpact> {
        self.0.users.iter().cloned().map(UserAccessImpact).collect()
    }
}

#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    /// Why a user (default: you) may or may not act on an account, contact or deal:
    /// the policy lines and territory path that decide, in words. Admins ask about
    /// anyone, sales managers about members of territories they manage.
    async fn explain_access(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        record_id: ID,
        #[graphql(default_with = "AccessAction::Read")] action: AccessAction,
    ) -> async_graphql::Result<AccessExplanation> {
        let user = decode_opt("userId", user_id.as_ref(), NodeKind::User)?;
        let (kind, id) = decode_any("recordId", &record_id)?;
        let kind = match kind {
            NodeKind::Account => RecordKind::Account,
            NodeKind::Contact => RecordKind::Contact,
            NodeKind::Opportunity => RecordKind::Opportunity,
            _ => {
                return Err(crate::error::AppError::validation(
                    "recordId",
                    "explainAccess covers accounts, contacts and opportunities",
                )
                .into());
            }
        };
        let explanation =
            access::explain(services(ctx), actor(ctx)?, user, kind, id, action.into()).await?;
        Ok(AccessExplanation(explanation))
    }

    /// What a territory change would do to everyone's access, without applying it:
    /// the steps run in a transaction that is rolled back.
    async fn preview_territory_change(
        &self,
        ctx: &Context<'_>,
        input: TerritoryChangeInput,
    ) -> async_graphql::Result<TerritoryChangeImpact> {
        let impact = access::change(services(ctx), actor(ctx)?, request(input)?, false).await?;
        Ok(TerritoryChangeImpact(impact))
    }
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Applies a territory change in one transaction and reports what it did.
    async fn apply_territory_change(
        &self,
        ctx: &Context<'_>,
        input: TerritoryChangeInput,
    ) -> async_graphql::Result<TerritoryChangeImpact> {
        let impact = access::change(services(ctx), actor(ctx)?, request(input)?, true).await?;
        Ok(TerritoryChangeImpact(impact))
    }
}
