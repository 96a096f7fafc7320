//! `accord seed --scale N`: a deterministic generated data set for benchmarks. At N = 1:
//! 200 users, 500 territories, 100k accounts, 300k contacts, 1M opportunities with about
//! 1.5M contact roles and 5M stage transitions. Rows are written in multi-row INSERTs with
//! explicit ids (offset past existing rows), so it also runs on top of the demo data.

use std::fmt;

use accord_entities::account::AccountSize;
use accord_entities::lead::{Grade, LeadSource};
use accord_entities::opportunity_contact_role::ContactRole;
use accord_entities::stage::StageKind;
use accord_entities::territory::TerritoryKind;
use accord_entities::territory_membership::AccessLevel;
use accord_entities::user::Role;
use accord_entities::{
    account, contact, opportunity, opportunity_contact_role, pipeline, stage, stage_transition,
    territory, territory_membership, user,
};
use chrono::{DateTime, Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, NotSet,
    QuerySelect, Set, Statement, TransactionTrait,
};

use crate::auth::hash_password;

pub const SCALE_PASSWORD: &str = "accord-bench-2026";

/// Bound variables per INSERT: under SQLite's limit of 32766.
const PARAMS_PER_INSERT: usize = 30_000;

#[derive(Debug, Default, Clone)]
pub struct ScaleCounts {
    pub users: u64,
    pub territories: u64,
    pub accounts: u64,
    pub contacts: u64,
    pub opportunities: u64,
    pub contact_roles: u64,
    pub transitions: u64,
}

impl fmt::Display for ScaleCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seeded {} users, {} territories, {} accounts, {} contacts, {} opportunities, {} contact roles, {} stage transitions (users' password: {SCALE_PASSWORD})",
            self.users,
            self.territories,
            self.accounts,
            self.contacts,
            self.opportunities,
            self.contact_roles,
            self.transitions
        )
    }
}

async fn max_id<E: EntityTrait, C: ConnectionTrait>(db: &C, id: E::Column) -> anyhow::Result<i64> {
    use sea_orm::sea_query::ExprTrait;
    let max: Option<Option<i64>> = E::find()
        .select_only()
        .column_as(Expr::col(id).max(), "m")
        .into_tuple()
        .one(db)
        .await?;
    Ok(max.flatten().unwrap_or(0))
}

async fn insert_chunked<A, C>(db: &C, rows: Vec<A>, bar: &ProgressBar) -> anyhow::Result<()>
where
    A: ActiveModelTrait + Send,
    C: ConnectionTrait,
{
    // Counted from the entity rather than written by hand: a hand-kept count went stale when
    // later migrations widened tables, and SQLite then refused the statement.
    let columns = <<A::Entity as EntityTrait>::Column as sea_orm::Iterable>::iter().count();
    let per = (PARAMS_PER_INSERT / columns.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per).collect();
        let n = chunk.len() as u64;
        <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
        bar.inc(n);
    }
    Ok(())
}

const INDUSTRIES: &[&str] = &[
    "Software",
    "Manufacturing",
    "Healthcare",
    "Financial Services",
    "Retail",
    "Logistics",
    "Energy",
    "Education",
    "Insurance",
    "Telecommunications",
    "Media",
    "Biotech",
];
const COUNTRIES: &[&str] = &[
    "US", "DE", "GB", "FR", "NL", "SE", "ES", "IT", "CA", "AU", "JP", "BR",
];
const SIZES: [AccountSize; 5] = [
    AccountSize::Micro,
    AccountSize::Small,
    AccountSize::Medium,
    AccountSize::Large,
    AccountSize::Enterprise,
];
const ROLES: [ContactRole; 7] = [
    ContactRole::DecisionMaker,
    ContactRole::EconomicBuyer,
    ContactRole::Champion,
    ContactRole::Influencer,
    ContactRole::TechnicalBuyer,
    ContactRole::User,
    ContactRole::Blocker,
];

pub async fn scale(db: &DatabaseConnection, n: f64, progress: bool) -> anyhow::Result<ScaleCounts> {
    if !(n > 0.0 && n <= 10.0) {
        anyhow::bail!("--scale must be greater than 0 and at most 10");
    }
    let count = |base: f64| ((base * n).round() as u64).max(1);
    let plan = ScaleCounts {
        users: 200,
        territories: 500,
        accounts: count(100_000.0),
        contacts: count(300_000.0),
        opportunities: count(1_000_000.0),
        contact_roles: 0,
        transitions: 0,
    };
    let mut rng = StdRng::seed_from_u64(0x00AC_C04D);
    let now = Utc::now();
    let bar = if progress {
        // Each opportunity brings 5 transitions and 1.5 contact roles on average.
        let total = plan.accounts + plan.contacts + plan.opportunities * 15 / 2;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>14} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let txn = db.begin().await?;
    let user0 = max_id::<user::Entity, _>(&txn, user::Column::Id).await?;
    let terr0 = max_id::<territory::Entity, _>(&txn, territory::Column::Id).await?;
    let acc0 = max_id::<account::Entity, _>(&txn, account::Column::Id).await?;
    let con0 = max_id::<contact::Entity, _>(&txn, contact::Column::Id).await?;
    let opp0 = max_id::<opportunity::Entity, _>(&txn, opportunity::Column::Id).await?;
    let role0 =
        max_id::<opportunity_contact_role::Entity, _>(&txn, opportunity_contact_role::Column::Id)
            .await?;
    let tr0 = max_id::<stage_transition::Entity, _>(&txn, stage_transition::Column::Id).await?;
    let pipe0 = max_id::<pipeline::Entity, _>(&txn, pipeline::Column::Id).await?;
    let stage0 = max_id::<stage::Entity, _>(&txn, stage::Column::Id).await?;

    bar.set_message("users");
    let hash = hash_password(SCALE_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    let users: Vec<user::ActiveModel> = (1..=plan.users as i64)
        .map(|i| user::ActiveModel {
            id: Set(user0 + i),
            email: Set(format!("user{}@scale.accord.test", user0 + i)),
            display_name: Set(format!("Scale User {}", user0 + i)),
            role: Set(match i {
                1 => Role::Admin,
                2..=21 => Role::SalesManager,
                _ => Role::Rep,
            }),
            password_hash: Set(Some(hash.clone())),
            active: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    insert_chunked(&txn, users, &ProgressBar::hidden()).await?;

    bar.set_message("territories");
    let territories: Vec<territory::ActiveModel> = (1..=plan.territories as i64)
        .map(|i| territory::ActiveModel {
            id: Set(terr0 + i),
            name: Set(format!("Territory {i}")),
            // A tree: 1 root, then each node's parent is an earlier node (fan-out ~5).
            parent_id: Set((i > 1).then(|| terr0 + (i - 2) / 5 + 1)),
            kind: Set(TerritoryKind::Geography),
            description: Set(None),
            created_at: Set(now),
            version: Set(1),
        })
        .collect();
    insert_chunked(&txn, territories, &ProgressBar::hidden()).await?;

    // Memberships: each sales manager manages one second-level subtree (owner access);
    // each rep edits two territories and reads a third.
    let mut memberships = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let second_level: Vec<i64> = (7..=31i64)
        .filter(|t| *t <= plan.territories as i64)
        .collect();
    for i in 2..=plan.users as i64 {
        let mut grant = |territory: i64, level: AccessLevel, manager: bool| {
            if seen.insert((territory, i)) {
                memberships.push(territory_membership::ActiveModel {
                    id: NotSet,
                    territory_id: Set(terr0 + territory),
                    user_id: Set(user0 + i),
                    access_level: Set(level),
                    is_manager: Set(manager),
                    created_at: Set(now),
                });
            }
        };
        if (2..=21).contains(&i) && !second_level.is_empty() {
            let root = second_level[(i as usize - 2) % second_level.len()];
            grant(root, AccessLevel::Owner, true);
        } else {
            let mut pick = || rng.random_range(1..=plan.territories as i64);
            let (a, b, c) = (pick(), pick(), pick());
            grant(a, AccessLevel::Edit, false);
            grant(b, AccessLevel::Edit, false);
            grant(c, AccessLevel::Read, false);
        }
    }
    insert_chunked(&txn, memberships, &ProgressBar::hidden()).await?;
    crate::authz::policy::sync(&txn)
        .await
        .map_err(|e| anyhow::anyhow!("policy sync: {e}"))?;

    bar.set_message("pipeline");
    let pipeline_id = pipe0 + 1;
    pipeline::ActiveModel {
        id: Set(pipeline_id),
        name: Set(format!("Scale Pipeline {pipeline_id}")),
        description: Set(Some("Generated by `accord seed --scale`".into())),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
        manager_id: Set(None),
    }
    .insert(&txn)
    .await?;
    let stage_defs = [
        ("Qualify", 10, StageKind::Open),
        ("Discovery", 20, StageKind::Open),
        ("Proposal", 50, StageKind::Open),
        ("Negotiation", 75, StageKind::Open),
        ("Closed Won", 100, StageKind::Won),
        ("Closed Lost", 0, StageKind::Lost),
    ];
    let stage_ids: Vec<i64> = (1..=stage_defs.len() as i64).map(|i| stage0 + i).collect();
    let stages: Vec<stage::ActiveModel> = stage_defs
        .iter()
        .enumerate()
        .map(|(i, (name, p, kind))| stage::ActiveModel {
            id: Set(stage_ids[i]),
            pipeline_id: Set(pipeline_id),
            name: Set((*name).into()),
            position: Set(i as i32),
            probability: Set(*p),
            kind: Set(*kind),
        })
        .collect();
    insert_chunked(&txn, stages, &ProgressBar::hidden()).await?;

    let random_time = |rng: &mut StdRng| -> DateTime<Utc> {
        now - Duration::seconds(rng.random_range(0..3 * 365 * 86_400))
    };

    bar.set_message("accounts");
    let mut accounts = Vec::with_capacity(plan.accounts as usize);
    // Contacts and deals copy their account's territory.
    let mut account_territory: Vec<i64> = Vec::with_capacity(plan.accounts as usize + 1);
    account_territory.push(0);
    for i in 1..=plan.accounts as i64 {
        let created = random_time(&mut rng);
        let industry = INDUSTRIES[rng.random_range(0..INDUSTRIES.len())];
        account_territory.push(terr0 + rng.random_range(1..=plan.territories as i64));
        accounts.push(account::ActiveModel {
            id: Set(acc0 + i),
            name: Set(format!(
                "{} {} #{}",
                [
                    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"
                ][rng.random_range(0..8)],
                industry,
                acc0 + i
            )),
            industry: Set(Some(industry.into())),
            country: Set(Some(COUNTRIES[rng.random_range(0..COUNTRIES.len())].into())),
            region: Set(None),
            size: Set(Some(SIZES[rng.random_range(0..SIZES.len())])),
            annual_revenue_micros: Set(Some(
                rng.random_range(100_000..5_000_000_000i64) * 1_000_000,
            )),
            currency: Set("USD".into()),
            website: Set(None),
            // Every 20th account is a subsidiary of an earlier one.
            parent_id: Set((i > 20 && i % 20 == 0).then(|| acc0 + rng.random_range(1..i))),
            territory_id: Set(Some(*account_territory.last().unwrap_or(&0))),
            territory_manual: Set(false),
            owner_id: Set(Some(user0 + rng.random_range(2..=plan.users as i64))),
            created_at: Set(created),
            updated_at: Set(created),
            version: Set(1),
        });
    }
    insert_chunked(&txn, accounts, &bar).await?;

    bar.set_message("contacts");
    let mut contacts = Vec::with_capacity(plan.contacts as usize);
    let per_account = (plan.contacts / plan.accounts).max(1) as i64;
    for i in 1..=plan.contacts as i64 {
        let account_index = ((i - 1) / per_account) % plan.accounts as i64 + 1;
        let first_in_account = (i - 1) % per_account == 0;
        let created = random_time(&mut rng);
        contacts.push(contact::ActiveModel {
            id: Set(con0 + i),
            account_id: Set(acc0 + account_index),
            territory_id: Set(account_territory.get(account_index as usize).copied()),
            first_name: Set(format!("First{}", i % 997)),
            last_name: Set(format!("Last{}", i % 1009)),
            title: Set(Some(
                if first_in_account { "CEO" } else { "Manager" }.into(),
            )),
            department: Set(None),
            email: Set(Some(format!("contact{}@scale.example", con0 + i))),
            phone: Set(None),
            // Everyone at an account reports to its first contact.
            reports_to_id: Set((!first_in_account).then(|| con0 + i - (i - 1) % per_account)),
            created_at: Set(created),
            updated_at: Set(created),
            version: Set(1),
        });
    }
    insert_chunked(&txn, contacts, &bar).await?;

    bar.set_message("opportunities");
    let mut done = plan.clone();
    let mut role_id = role0;
    let mut transition_id = tr0;
    let batch = 50_000i64;
    let mut next = 1i64;
    while next <= plan.opportunities as i64 {
        let end = (next + batch - 1).min(plan.opportunities as i64);
        let mut opps = Vec::new();
        let mut roles = Vec::new();
        let mut transitions = Vec::new();
        for i in next..=end {
            let id = opp0 + i;
            let account_index = rng.random_range(1..=plan.accounts as i64);
            let created = random_time(&mut rng);
            // Five stages starting at Qualify: mostly forward, sometimes back; 40% of
            // deals close (won or lost) in their last step.
            let mut path = vec![0usize];
            for step in 1..5 {
                let last = path[step - 1];
                let next = if last < 3 && rng.random_bool(0.8) {
                    last + 1
                } else if last > 0 {
                    last - 1
                } else {
                    1
                };
                path.push(next);
            }
            if rng.random_bool(0.4) {
                path[4] = if rng.random_bool(0.5) { 4 } else { 5 };
            }
            let current = *path.last().unwrap_or(&0);
            let gap = Duration::days(rng.random_range(1..30));
            let entered = created + gap * 4;
            let owner = user0 + rng.random_range(2..=plan.users as i64);
            let kind = stage_defs[current].2;
            opps.push(opportunity::ActiveModel {
                id: Set(id),
                name: Set(format!("Deal {id}")),
                account_id: Set(acc0 + account_index),
                territory_id: Set(account_territory.get(account_index as usize).copied()),
                owner_id: Set(owner),
                pipeline_id: Set(pipeline_id),
                stage_id: Set(stage_ids[current]),
                amount_micros: Set(rng.random_range(1_000..2_000_000i64) * 1_000_000),
                currency: Set("USD".into()),
                expected_close_date: Set(
                    (created + Duration::days(rng.random_range(30..365))).date_naive()
                ),
                source: Set(Some(
                    [
                        LeadSource::Web,
                        LeadSource::Referral,
                        LeadSource::Event,
                        LeadSource::Outbound,
                    ][rng.random_range(0..4)],
                )),
                grade: Set(Some([Grade::A, Grade::B, Grade::C][rng.random_range(0..3)])),
                lost_reason: Set((kind == StageKind::Lost).then(|| "Budget cut".to_owned())),
                stage_entered_at: Set(entered),
                closed_at: Set((kind != StageKind::Open).then_some(entered)),
                created_at: Set(created),
                updated_at: Set(entered),
                version: Set(5),
            });
            for (step, s) in path.iter().enumerate() {
                transition_id += 1;
                transitions.push(stage_transition::ActiveModel {
                    id: Set(transition_id),
                    opportunity_id: Set(id),
                    from_stage_id: Set(step.checked_sub(1).map(|p| stage_ids[path[p]])),
                    to_stage_id: Set(stage_ids[*s]),
                    transitioned_at: Set(created + gap * step as i32),
                    actor_id: Set(Some(owner)),
                    seconds_in_previous_stage: Set((step > 0).then(|| gap.num_seconds())),
                    script_id: Set(None),
                });
            }
            // 0-3 contacts of the account on the buying committee (1.5 on average).
            let first_contact = con0 + (account_index - 1) * per_account + 1;
            let n_roles = rng.random_range(0..=3).min(per_account);
            for k in 0..n_roles {
                role_id += 1;
                roles.push(opportunity_contact_role::ActiveModel {
                    id: Set(role_id),
                    opportunity_id: Set(id),
                    contact_id: Set(first_contact + k),
                    role: Set(ROLES[rng.random_range(0..ROLES.len())]),
                    is_primary: Set(k == 0),
                    created_at: Set(created),
                });
            }
        }
        done.contact_roles += roles.len() as u64;
        done.transitions += transitions.len() as u64;
        insert_chunked(&txn, opps, &bar).await?;
        insert_chunked(&txn, transitions, &bar).await?;
        insert_chunked(&txn, roles, &bar).await?;
        next = end + 1;
    }
    txn.commit().await?;
    reset_sequences(db).await?;
    // Fresh statistics, or the first queries after a bulk load get poor plans.
    bar.set_message("analyze");
    db.execute_unprepared("ANALYZE").await?;
    bar.finish_with_message("done");
    Ok(done)
}

/// PostgreSQL sequences do not follow explicit ids; move each past the largest id.
async fn reset_sequences(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for table in [
        "users",
        "territories",
        "pipelines",
        "stages",
        "accounts",
        "contacts",
        "opportunities",
        "opportunity_contact_roles",
        "stage_transitions",
    ] {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        );
        db.execute_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?;
    }
    Ok(())
}
