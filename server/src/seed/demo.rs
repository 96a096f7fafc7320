//! `accord seed --demo`: Northwind-style B2B company with two pipelines, deals at every
//! stage, backdated stage histories, org charts and a lead funnel.

use accord_entities::account::AccountSize;
use accord_entities::lead::{Grade, LeadSource, LeadStatus};
use accord_entities::opportunity_contact_role::ContactRole;
use accord_entities::stage::StageKind;
use accord_entities::territory::TerritoryKind;
use accord_entities::territory_membership::AccessLevel;
use accord_entities::user::Role;
use accord_entities::{
    account, contact, lead, opportunity, opportunity_contact_role, pipeline, stage, stage_script,
    stage_transition, territory, territory_membership, user,
};
use chrono::{Duration, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, NotSet, PaginatorTrait, Set,
    TransactionTrait,
};

use crate::auth::hash_password;
use crate::error::AppError;

pub const DEMO_PASSWORD: &str = "accord-demo-2026";

const USERS: &[(&str, &str, Role)] = &[
    ("admin@accord.test", "Ada Admin", Role::Admin),
    ("maria.lopez@accord.test", "Maria Lopez", Role::SalesManager),
    ("tom.becker@accord.test", "Tom Becker", Role::SalesManager),
    ("sam.reed@accord.test", "Sam Reed", Role::Rep),
    ("lena.fischer@accord.test", "Lena Fischer", Role::Rep),
    ("raj.patel@accord.test", "Raj Patel", Role::Rep),
    ("chloe.martin@accord.test", "Chloe Martin", Role::Rep),
];

/// (name, parent index)
const TERRITORIES: &[(&str, Option<usize>)] = &[
    ("Global", None),
    ("EMEA", Some(0)),
    ("North America", Some(0)),
    ("DACH", Some(1)),
    ("UK & Ireland", Some(1)),
    ("US West", Some(2)),
    ("US East", Some(2)),
];

/// (user index, territory index, access level, manager)
const MEMBERSHIPS: &[(usize, usize, AccessLevel, bool)] = &[
    (1, 1, AccessLevel::Owner, true),  // Maria Lopez runs EMEA
    (2, 2, AccessLevel::Owner, true),  // Tom Becker runs North America
    (3, 4, AccessLevel::Edit, false),  // Sam Reed: UK & Ireland
    (3, 6, AccessLevel::Read, false),  // ... and follows US East
    (4, 3, AccessLevel::Edit, false),  // Lena Fischer: DACH
    (5, 5, AccessLevel::Edit, false),  // Raj Patel: US West
    (6, 6, AccessLevel::Owner, false), // Chloe Martin owns US East
    (6, 5, AccessLevel::Read, false),  // ... and follows US West
];

/// (name, industry, country, region, size, revenue in millions, territory, parent, owner)
type AccountRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    AccountSize,
    i64,
    usize,
    Option<usize>,
    usize,
);
const ACCOUNTS: &[AccountRow] = &[
    (
        "Northwind Holdings",
        "Logistics",
        "DE",
        "Bavaria",
        AccountSize::Enterprise,
        2_400,
        3,
        None,
        4,
    ),
    (
        "Northwind Freight GmbH",
        "Logistics",
        "DE",
        "Hamburg",
        AccountSize::Large,
        380,
        3,
        Some(0),
        4,
    ),
    (
        "Alpenblick Versicherung",
        "Insurance",
        "AT",
        "Tyrol",
        AccountSize::Large,
        610,
        3,
        None,
        4,
    ),
    (
        "Thames Analytics Ltd",
        "Software",
        "GB",
        "London",
        AccountSize::Medium,
        42,
        4,
        None,
        3,
    ),
    (
        "Emerald Isle Foods",
        "Food & Beverage",
        "IE",
        "Leinster",
        AccountSize::Medium,
        95,
        4,
        None,
        3,
    ),
    (
        "Cascade Robotics",
        "Manufacturing",
        "US",
        "Washington",
        AccountSize::Large,
        720,
        5,
        None,
        5,
    ),
    (
        "Pacific Crest Health",
        "Healthcare",
        "US",
        "California",
        AccountSize::Enterprise,
        3_100,
        5,
        None,
        5,
    ),
    (
        "Pacific Crest Labs",
        "Biotech",
        "US",
        "California",
        AccountSize::Medium,
        60,
        5,
        Some(6),
        5,
    ),
    (
        "Hudson Capital Partners",
        "Financial Services",
        "US",
        "New York",
        AccountSize::Large,
        900,
        6,
        None,
        6,
    ),
    (
        "Blue Ridge Outfitters",
        "Retail",
        "US",
        "Virginia",
        AccountSize::Small,
        18,
        6,
        None,
        6,
    ),
    (
        "Liberty Grid Energy",
        "Utilities",
        "US",
        "Massachusetts",
        AccountSize::Enterprise,
        5_200,
        6,
        None,
        6,
    ),
    (
        "Brightwater Schools",
        "Education",
        "US",
        "New York",
        AccountSize::Micro,
        3,
        6,
        None,
        3,
    ),
];

/// (title, department, reports-to index within the account)
const ORG_CHART: &[(&str, &str, Option<usize>)] = &[
    ("Chief Executive Officer", "Executive", None),
    ("Chief Financial Officer", "Finance", Some(0)),
    ("Chief Information Officer", "IT", Some(0)),
    ("Director of Operations", "Operations", Some(0)),
    ("Head of Procurement", "Finance", Some(1)),
    ("IT Architect", "IT", Some(2)),
];

const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Eva", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kira",
    "Liam", "Mona", "Nils", "Olivia", "Paul", "Quinn", "Rosa", "Stefan", "Tara", "Uma", "Victor",
    "Wendy", "Yusuf",
];
const LAST_NAMES: &[&str] = &[
    "Schmidt", "Okafor", "Novak", "Hughes", "Larsen", "Moreau", "Kowalski", "Brennan", "Tanaka",
    "Rossi", "Andersen", "Silva", "Weber", "Murphy", "Kim", "Dubois", "Jensen", "Costa", "Nguyen",
    "Fischer",
];

/// Returns the demo logins as (email, role).
pub async fn demo(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, String)>> {
    if user::Entity::find().count(db).await? > 0 {
        anyhow::bail!("the database already has users; seed the demo into an empty database");
    }
    let password_hash = hash_password(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let txn = db.begin().await?;

    let mut users = Vec::new();
    for (email, name, role) in USERS {
        let u = user::ActiveModel {
            id: NotSet,
            email: Set((*email).into()),
            display_name: Set((*name).into()),
            role: Set(*role),
            password_hash: Set(Some(password_hash.clone())),
            active: Set(true),
            created_at: Set(now - Duration::days(400)),
            updated_at: Set(now - Duration::days(400)),
        }
        .insert(&txn)
        .await?;
        users.push(u);
    }

    let mut territories: Vec<territory::Model> = Vec::new();
    for (name, parent) in TERRITORIES {
        let t = territory::ActiveModel {
            id: NotSet,
            name: Set((*name).into()),
            parent_id: Set(parent.map(|p| territories[p].id)),
            kind: Set(TerritoryKind::Geography),
            description: Set(None),
            created_at: Set(now - Duration::days(400)),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
        territories.push(t);
    }

    // Who works where: each manager runs a region, each rep a territory or two.
    for (user, terr, level, manager) in MEMBERSHIPS {
        territory_membership::ActiveModel {
            id: NotSet,
            territory_id: Set(territories[*terr].id),
            user_id: Set(users[*user].id),
            access_level: Set(*level),
            is_manager: Set(*manager),
            created_at: Set(now - Duration::days(400)),
        }
        .insert(&txn)
        .await?;
    }
    crate::authz::policy::sync(&txn)
        .await
        .map_err(|e| anyhow::anyhow!("policy sync: {e}"))?;

    let mut accounts: Vec<account::Model> = Vec::new();
    for (i, (name, industry, country, region, size, revenue_m, terr, parent, owner)) in
        ACCOUNTS.iter().enumerate()
    {
        let created = now - Duration::days(380 - i as i64 * 9);
        let a = account::ActiveModel {
            id: NotSet,
            name: Set((*name).into()),
            industry: Set(Some((*industry).into())),
            country: Set(Some((*country).into())),
            region: Set(Some((*region).into())),
            size: Set(Some(*size)),
            annual_revenue_micros: Set(Some(revenue_m * 1_000_000 * 1_000_000)),
            currency: Set(if *country == "US" {
                "USD"
            } else if *country == "GB" {
                "GBP"
            } else {
                "EUR"
            }
            .into()),
            website: Set(Some(format!(
                "https://www.{}.example",
                name.to_lowercase().replace([' ', '&', '.'], "")
            ))),
            parent_id: Set(parent.map(|p| accounts[p].id)),
            territory_id: Set(Some(territories[*terr].id)),
            territory_manual: Set(false),
            owner_id: Set(Some(users[*owner].id)),
            created_at: Set(created),
            updated_at: Set(created),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
        accounts.push(a);
    }

    // Org charts: a reports-to tree per account.
    let mut contacts_by_account: Vec<Vec<contact::Model>> = Vec::new();
    let mut name_seq = 0usize;
    for (ai, acc) in accounts.iter().enumerate() {
        let size = 3 + (ai % 4);
        let mut contacts: Vec<contact::Model> = Vec::new();
        for (title, dept, reports_to) in ORG_CHART.iter().take(size) {
            let first = FIRST_NAMES[name_seq % FIRST_NAMES.len()];
            let last = LAST_NAMES[(name_seq * 7 + ai) % LAST_NAMES.len()];
            name_seq += 1;
            let domain = acc
                .website
                .as_deref()
                .unwrap_or("")
                .trim_start_matches("https://www.");
            let c = contact::ActiveModel {
                id: NotSet,
                account_id: Set(acc.id),
                first_name: Set(first.into()),
                last_name: Set(last.into()),
                title: Set(Some((*title).into())),
                department: Set(Some((*dept).into())),
                email: Set(Some(format!(
                    "{}.{}@{domain}",
                    first.to_lowercase(),
                    last.to_lowercase()
                ))),
                phone: Set(Some(format!("+1 555 01{:02}", name_seq % 100))),
                reports_to_id: Set(reports_to.map(|r| contacts[r].id)),
                territory_id: Set(acc.territory_id),
                created_at: Set(acc.created_at),
                updated_at: Set(acc.created_at),
                version: Set(1),
            }
            .insert(&txn)
            .await?;
            contacts.push(c);
        }
        contacts_by_account.push(contacts);
    }

    let new_business = make_pipeline(
        &txn,
        "New Business",
        "Net-new logos, from first qualified conversation to signature.",
        &[
            ("Qualify", 10, StageKind::Open),
            ("Discovery", 20, StageKind::Open),
            ("Proposal", 50, StageKind::Open),
            ("Negotiation", 75, StageKind::Open),
            ("Closed Won", 100, StageKind::Won),
            ("Closed Lost", 0, StageKind::Lost),
        ],
    )
    .await?;
    publish_demo_scripts(&txn, &new_business, users[1].id, users[0].id).await?;
    let renewals = make_pipeline(
        &txn,
        "Renewals",
        "Contract renewals and expansions of existing customers.",
        &[
            ("Upcoming", 60, StageKind::Open),
            ("In Discussion", 75, StageKind::Open),
            ("Renewed", 100, StageKind::Won),
            ("Churned", 0, StageKind::Lost),
        ],
    )
    .await?;

    // Deals at every stage of both pipelines, each with a backdated history that walks
    // the open stages in order up to where it stands now.
    let roles = [
        ContactRole::EconomicBuyer,
        ContactRole::DecisionMaker,
        ContactRole::Champion,
        ContactRole::TechnicalBuyer,
    ];
    let mut deal_no = 0usize;
    for (pipeline, stages) in [&new_business, &renewals] {
        for (target, target_stage) in stages.iter().enumerate() {
            for copy in 0..2 {
                let ai = (deal_no * 5 + copy) % accounts.len();
                deal_no += 1;
                let acc = &accounts[ai];
                let owner = acc.owner_id.unwrap_or(users[3].id);
                let open_path: Vec<&stage::Model> = stages
                    .iter()
                    .filter(|s| s.kind == StageKind::Open && s.position <= target_stage.position)
                    .collect();
                let mut path: Vec<&stage::Model> = open_path;
                if target_stage.kind != StageKind::Open {
                    path.push(target_stage);
                }
                let start = now - Duration::days(20 * path.len() as i64 + (deal_no % 9) as i64);
                let amount = 12_000 + (deal_no as i64 * 7_919) % 240_000;
                let lost = target_stage.kind == StageKind::Lost;
                let closed = target_stage.kind != StageKind::Open;
                let entered = start + Duration::days(20 * (path.len() as i64 - 1));
                let o = opportunity::ActiveModel {
                    id: NotSet,
                    name: Set(format!("{} - {} {}", acc.name, pipeline.name, deal_no)),
                    account_id: Set(acc.id),
                    territory_id: Set(acc.territory_id),
                    owner_id: Set(owner),
                    pipeline_id: Set(pipeline.id),
                    stage_id: Set(target_stage.id),
                    amount_micros: Set(amount * 1_000_000),
                    currency: Set(acc.currency.clone()),
                    expected_close_date: Set(close_date(now, target as i64, closed)),
                    source: Set(Some(
                        [
                            LeadSource::Web,
                            LeadSource::Referral,
                            LeadSource::Event,
                            LeadSource::Outbound,
                        ][deal_no % 4],
                    )),
                    grade: Set(Some([Grade::A, Grade::B, Grade::C][deal_no % 3])),
                    lost_reason: Set(lost.then(|| "Chose a competitor on price".to_owned())),
                    stage_entered_at: Set(entered),
                    closed_at: Set(closed.then_some(entered)),
                    created_at: Set(start),
                    updated_at: Set(entered),
                    version: Set(path.len() as i32),
                }
                .insert(&txn)
                .await?;
                for (step, s) in path.iter().enumerate() {
                    stage_transition::ActiveModel {
                        id: NotSet,
                        opportunity_id: Set(o.id),
                        from_stage_id: Set(step.checked_sub(1).map(|p| path[p].id)),
                        to_stage_id: Set(s.id),
                        transitioned_at: Set(start + Duration::days(20 * step as i64)),
                        actor_id: Set(Some(owner)),
                        seconds_in_previous_stage: Set((step > 0).then_some(20 * 86_400)),
                        script_id: Set(None),
                    }
                    .insert(&txn)
                    .await?;
                }
                for (ri, c) in contacts_by_account[ai]
                    .iter()
                    .take(1 + target % 4)
                    .enumerate()
                {
                    opportunity_contact_role::ActiveModel {
                        id: NotSet,
                        opportunity_id: Set(o.id),
                        contact_id: Set(c.id),
                        role: Set(roles[ri % roles.len()]),
                        is_primary: Set(ri == 0),
                        created_at: Set(start),
                    }
                    .insert(&txn)
                    .await?;
                }
            }
        }
    }

    let lead_rows = [
        (
            "Mila",
            "Hartmann",
            "Zugspitze Bikes",
            LeadSource::Web,
            LeadStatus::New,
            Some(Grade::B),
        ),
        (
            "Owen",
            "Clarke",
            "Clarke & Sons Joinery",
            LeadSource::Referral,
            LeadStatus::Working,
            Some(Grade::A),
        ),
        (
            "Priya",
            "Shah",
            "Lotus Diagnostics",
            LeadSource::Event,
            LeadStatus::Qualified,
            Some(Grade::A),
        ),
        (
            "Jack",
            "O'Neill",
            "Shamrock Couriers",
            LeadSource::Outbound,
            LeadStatus::Nurturing,
            Some(Grade::C),
        ),
        (
            "Sofia",
            "Greco",
            "Vesuvio Ceramics",
            LeadSource::Partner,
            LeadStatus::Unqualified,
            Some(Grade::C),
        ),
        (
            "Ethan",
            "Brooks",
            "Redwood Solar",
            LeadSource::Advertising,
            LeadStatus::New,
            None,
        ),
        (
            "Hana",
            "Sato",
            "Sakura Textiles",
            LeadSource::Web,
            LeadStatus::Working,
            Some(Grade::B),
        ),
        (
            "Lucas",
            "Meyer",
            "Rheinland Pumps",
            LeadSource::Event,
            LeadStatus::Qualified,
            Some(Grade::A),
        ),
    ];
    for (i, (first, last, company, source, status, grade)) in lead_rows.into_iter().enumerate() {
        let created = now - Duration::days(30 - i as i64 * 3);
        lead::ActiveModel {
            id: NotSet,
            first_name: Set(first.into()),
            last_name: Set(last.into()),
            company: Set(company.into()),
            title: Set(Some("Head of Operations".into())),
            email: Set(Some(format!(
                "{}@{}.example",
                first.to_lowercase(),
                company.to_lowercase().replace([' ', '&', '\''], "")
            ))),
            phone: Set(None),
            source: Set(source),
            status: Set(status),
            grade: Set(grade),
            owner_id: Set(Some(users[3 + i % 4].id)),
            converted_account_id: Set(None),
            converted_contact_id: Set(None),
            converted_opportunity_id: Set(None),
            converted_at: Set(None),
            created_at: Set(created),
            updated_at: Set(created),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
    }

    txn.commit().await?;
    Ok(USERS
        .iter()
        .map(|(e, _, r)| ((*e).to_owned(), r.as_str().to_owned()))
        .collect())
}

fn close_date(now: chrono::DateTime<Utc>, offset: i64, closed: bool) -> NaiveDate {
    let days = if closed {
        -10 - offset
    } else {
        15 + offset * 12
    };
    (now + Duration::days(days)).date_naive()
}

/// The demo's sales process: scripts for the New Business stages of which Maria Lopez is
/// the responsible manager. The admin published them: a script acts with its author's
/// permissions, and these set fields on deals in every territory. Checked by a unit test
/// below.
pub const DEMO_SCRIPTS: &[(&str, &str)] = &[
    ("Discovery", include_str!("scripts/discovery.rhai")),
    ("Proposal", include_str!("scripts/proposal.rhai")),
    ("Negotiation", include_str!("scripts/negotiation.rhai")),
    ("Closed Won", include_str!("scripts/closed_won.rhai")),
];

async fn publish_demo_scripts<C: sea_orm::ConnectionTrait>(
    txn: &C,
    (pipeline, stages): &(pipeline::Model, Vec<stage::Model>),
    manager: i64,
    author: i64,
) -> Result<(), AppError> {
    let now = Utc::now() - Duration::days(400);
    let mut responsible: pipeline::ActiveModel = pipeline.clone().into();
    responsible.manager_id = Set(Some(manager));
    responsible.update(txn).await?;
    for (stage_name, source) in DEMO_SCRIPTS {
        let Some(stage) = stages.iter().find(|s| s.name == *stage_name) else {
            continue;
        };
        stage_script::ActiveModel {
            id: NotSet,
            stage_id: Set(stage.id),
            version: Set(1),
            source: Set((*source).to_owned()),
            status: Set(stage_script::ScriptStatus::Published),
            note: Set(Some("Demo sales process".into())),
            author_id: Set(Some(author)),
            created_at: Set(now),
            published_at: Set(Some(now)),
            published_by: Set(Some(author)),
            archived_at: Set(None),
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}

async fn make_pipeline<C: sea_orm::ConnectionTrait>(
    txn: &C,
    name: &str,
    description: &str,
    stages: &[(&str, i32, StageKind)],
) -> Result<(pipeline::Model, Vec<stage::Model>), AppError> {
    let now = Utc::now() - Duration::days(400);
    let p = pipeline::ActiveModel {
        id: NotSet,
        name: Set(name.into()),
        description: Set(Some(description.into())),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        manager_id: Set(None),
    }
    .insert(txn)
    .await?;
    let mut out = Vec::new();
    for (i, (stage_name, probability, kind)) in stages.iter().enumerate() {
        out.push(
            stage::ActiveModel {
                id: NotSet,
                pipeline_id: Set(p.id),
                name: Set((*stage_name).into()),
                position: Set(i as i32),
                probability: Set(*probability),
                kind: Set(*kind),
            }
            .insert(txn)
            .await?,
        );
    }
    Ok((p, out))
}

#[cfg(test)]
mod tests {
    use super::DEMO_SCRIPTS;
    use accord_workflows::{Event, ScriptEngine, StageContext};

    #[test]
    fn demo_scripts_compile_and_run_on_a_sample_deal() {
        let engine = ScriptEngine::new();
        for (stage, source) in DEMO_SCRIPTS {
            let script = engine
                .compile(source)
                .unwrap_or_else(|e| panic!("{stage}: {e:?}"));
            for event in [Event::Enter, Event::Exit, Event::Guidance] {
                engine
                    .evaluate(&script, &StageContext::sample(event, stage))
                    .unwrap_or_else(|e| panic!("{stage} ({event:?}): {e}"));
            }
        }
    }
}
