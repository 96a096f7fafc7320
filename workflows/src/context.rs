//! What a stage script can read: typed, read-only views of a deal and its surroundings.
//!
//! The server fills a [`StageContext`] from the database; the engine turns it into
//! constants in the script's scope. Every field a script may name is listed in
//! [`FIELDS`], which the static check uses to refuse `deal.amout` before it ever runs.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Why the script is being evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A deal is about to enter the stage: guards apply, actions are taken.
    Enter,
    /// A deal is leaving the stage: actions are taken, guards do not apply.
    Exit,
    /// A rep is looking at the deal in the stage: only guidance is kept.
    Guidance,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Enter => "enter",
            Event::Exit => "exit",
            Event::Guidance => "guidance",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageContext {
    pub event: Event,
    /// The moment of the transition (or of the look, for guidance).
    pub now: DateTime<Utc>,
    /// The stage the deal comes from (absent for a deal's first stage).
    pub from_stage: Option<String>,
    /// The stage the script belongs to.
    pub stage: String,
    pub deal: DealView,
    /// Absent when the deal's account is not visible to the script's author.
    pub account: Option<AccountView>,
    pub owner: UserView,
    pub contact_roles: Vec<ContactRoleView>,
    pub history: Vec<TransitionView>,
    pub activity: ActivityView,
    pub quote: Option<QuoteView>,
    /// Who decides and how well we reach them (absent in contexts recorded before
    /// influence maps existed, hence the default).
    #[serde(default)]
    pub committee: CommitteeView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealView {
    pub id: String,
    pub name: String,
    pub amount: Decimal,
    pub currency: String,
    pub expected_close_date: Option<NaiveDate>,
    pub source: Option<String>,
    pub grade: Option<String>,
    /// The stage the deal is in now (before the move, for enter and exit).
    pub stage: String,
    pub probability: i32,
    pub stage_entered_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub name: String,
    pub industry: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub size: Option<String>,
    pub annual_revenue: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub email: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRoleView {
    pub contact: String,
    pub title: Option<String>,
    pub role: String,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionView {
    pub from: Option<String>,
    pub to: String,
    pub at: DateTime<Utc>,
    pub days_in_previous: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityView {
    /// Notes, tasks and events linked to the deal.
    pub count: i64,
    pub last_at: Option<DateTime<Utc>>,
}

/// The buying committee as the script sees it. Key roles are `decision_maker`,
/// `economic_buyer`, `champion` and `technical_buyer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitteeView {
    /// Key roles someone visible holds on the deal.
    pub filled: Vec<String>,
    /// Key roles whose holder had activity within [`ENGAGED_DAYS`] days.
    pub engaged: Vec<String>,
    /// Contacts with the blocker role or blocking someone on the deal.
    pub blockers: i64,
    /// Strength (0 to 1) of the strongest path from our users or a champion to a
    /// decision maker; absent when there is none.
    pub path_strength: Option<Decimal>,
    pub path_hops: Option<i64>,
}

/// The key roles of a buying committee, in the order scripts list them.
pub const KEY_ROLES: [&str; 4] = [
    "decision_maker",
    "economic_buyer",
    "champion",
    "technical_buyer",
];

/// How recent activity must be for a committee member to count as engaged.
pub const ENGAGED_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteView {
    pub total: Decimal,
    pub discount_percent: Decimal,
}

/// Every variable a script sees, with the fields it may read. Arrays (`roles`,
/// `history`) list the fields of their elements.
pub const FIELDS: &[(&str, &[&str])] = &[
    ("event", &[]),
    ("stage", &[]),
    ("from_stage", &[]),
    (
        "deal",
        &[
            "id",
            "name",
            "amount",
            "currency",
            "expected_close_date",
            "days_to_close",
            "source",
            "grade",
            "stage",
            "probability",
            "days_in_stage",
            "age_days",
        ],
    ),
    (
        "account",
        &[
            "name",
            "industry",
            "country",
            "region",
            "size",
            "annual_revenue",
        ],
    ),
    ("owner", &["name", "email", "role"]),
    ("roles", &["contact", "title", "role", "primary"]),
    ("history", &["from", "to", "at", "days_in_previous"]),
    ("activity", &["count", "last_at", "days_since_last"]),
    ("quote", &["total", "discount_percent"]),
    (
        "committee",
        &[
            "has_decision_maker",
            "has_economic_buyer",
            "has_champion",
            "has_technical_buyer",
            "engaged_decision_maker",
            "engaged_economic_buyer",
            "engaged_champion",
            "engaged_technical_buyer",
            "missing",
            "coverage",
            "blockers",
            "path_strength",
            "path_hops",
        ],
    ),
];

/// The fields of `variable`, if it is one the scripts see.
pub fn fields_of(variable: &str) -> Option<&'static [&'static str]> {
    FIELDS
        .iter()
        .find(|(name, _)| *name == variable)
        .map(|(_, fields)| *fields)
}

impl StageContext {
    /// A plausible deal used to dry-run drafts during validation.
    pub fn sample(event: Event, stage: &str) -> StageContext {
        let now = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let day = chrono::Duration::days(1);
        StageContext {
            event,
            now,
            from_stage: Some("Discovery".into()),
            stage: stage.into(),
            deal: DealView {
                id: "sample".into(),
                name: "Sample deal".into(),
                amount: Decimal::new(48_000, 0),
                currency: "EUR".into(),
                expected_close_date: Some((now + day * 30).date_naive()),
                source: Some("web".into()),
                grade: Some("B".into()),
                stage: "Discovery".into(),
                probability: 20,
                stage_entered_at: now - day * 12,
                created_at: now - day * 40,
            },
            account: Some(AccountView {
                name: "Sample GmbH".into(),
                industry: Some("Manufacturing".into()),
                country: Some("DE".into()),
                region: Some("EMEA".into()),
                size: Some("enterprise".into()),
                annual_revenue: Some(Decimal::new(250_000_000, 0)),
            }),
            owner: UserView {
                name: "Sample Rep".into(),
                email: "rep@example.com".into(),
                role: "rep".into(),
            },
            contact_roles: vec![ContactRoleView {
                contact: "Sample Contact".into(),
                title: Some("CFO".into()),
                role: "economic_buyer".into(),
                primary: true,
            }],
            history: vec![TransitionView {
                from: Some("Qualify".into()),
                to: "Discovery".into(),
                at: now - day * 12,
                days_in_previous: Some(28),
            }],
            activity: ActivityView {
                count: 3,
                last_at: Some(now - day * 2),
            },
            quote: Some(QuoteView {
                total: Decimal::new(45_600, 0),
                discount_percent: Decimal::new(5, 0),
            }),
            committee: CommitteeView {
                filled: vec!["economic_buyer".into(), "champion".into()],
                engaged: vec!["champion".into()],
                blockers: 0,
                path_strength: Some(Decimal::new(48, 2)),
                path_hops: Some(2),
            },
        }
    }
}
