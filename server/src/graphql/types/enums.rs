//! GraphQL enums, each mirroring a stored enum of the entities crate.

use async_graphql::Enum;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::user::Role")]
pub enum Role {
    Admin,
    SalesManager,
    Rep,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::account::AccountSize")]
pub enum AccountSize {
    /// 1-9 employees
    Micro,
    /// 10-49 employees
    Small,
    /// 50-249 employees
    Medium,
    /// 250-999 employees
    Large,
    /// 1000+ employees
    Enterprise,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::lead::LeadSource")]
pub enum LeadSource {
    Web,
    Referral,
    Event,
    Outbound,
    Partner,
    Advertising,
    Other,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::lead::LeadStatus")]
pub enum LeadStatus {
    New,
    Working,
    Nurturing,
    Qualified,
    Unqualified,
    Converted,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::lead::Grade")]
pub enum Grade {
    A,
    B,
    C,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::stage::StageKind")]
pub enum StageKind {
    Open,
    Won,
    Lost,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "accord_entities::opportunity_contact_role::ContactRole")]
pub enum ContactRoleKind {
    DecisionMaker,
    EconomicBuyer,
    Champion,
    Influencer,
    TechnicalBuyer,
    User,
    Blocker,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrderDirection {
    #[default]
    Asc,
    Desc,
}

impl OrderDirection {
    pub fn descending(self) -> bool {
        self == OrderDirection::Desc
    }
}
