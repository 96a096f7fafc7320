//! SeaORM entity models of Accord: one module per table, nothing else.
//!
//! These are storage shapes, not API shapes: the GraphQL layer maps them to its own
//! types, so adding a column never silently widens the public API.
//!
//! Money is stored as `BIGINT` micro-units (`*_micros`, 1 unit = 1_000_000) on every
//! backend: SQLite has no exact decimal type (SeaORM reads SQLite decimals through
//! `f64`), and an integer keeps sums, sorting and comparisons exact in SQL on both.

pub mod account;
pub mod audit_log;
pub mod auth_token;
pub mod authz_state;
pub mod calendar_feed;
pub mod casbin_rule;
pub mod contact;
pub mod contact_influence;
pub mod contact_relationship;
pub mod event;
pub mod event_attendee;
pub mod lead;
pub mod note;
pub mod opportunity;
pub mod opportunity_contact_role;
pub mod pipeline;
pub mod reminder;
pub mod stage;
pub mod stage_script;
pub mod stage_transition;
pub mod task;
pub mod territory;
pub mod territory_membership;
pub mod territory_rule;
pub mod user;
pub mod webhook;

pub mod prelude {
    pub use super::account::Entity as Account;
    pub use super::audit_log::Entity as AuditLog;
    pub use super::auth_token::Entity as AuthToken;
    pub use super::contact::Entity as Contact;
    pub use super::lead::Entity as Lead;
    pub use super::note::Entity as Note;
    pub use super::opportunity::Entity as Opportunity;
    pub use super::opportunity_contact_role::Entity as OpportunityContactRole;
    pub use super::pipeline::Entity as Pipeline;
    pub use super::stage::Entity as Stage;
    pub use super::stage_transition::Entity as StageTransition;
    pub use super::territory::Entity as Territory;
    pub use super::territory_membership::Entity as TerritoryMembership;
    pub use super::territory_rule::Entity as TerritoryRule;
    pub use super::user::Entity as User;
}
