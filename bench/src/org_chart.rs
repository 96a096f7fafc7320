//! `--compare orgchart`: the org chart of an account with 5,000 contacts (six levels of
//! reporting lines, influence edges, relationships, notes) and the buying committee of
//! a deal on it, over GraphQL, against the bare recursive SQL query that finds the same
//! people, run alternately in one process.

use std::time::{Duration, Instant};

use accord::authz::scope::ReadView;
use accord::config::{DatabaseArgs, Limits};
use accord::services::org_chart::{MAX_DEPTH, chart_rows};
use accord_entities::contact_influence::{self as influence, InfluenceKind};
use accord_entities::opportunity_contact_role::{self as role, ContactRole};
use accord_entities::stage::{self, StageKind};
use accord_entities::{account, contact, contact_relationship, note, opportunity, user};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, NotSet, QueryFilter, Set,
};
use serde_json::{Value, json};

use crate::{Args, admin_email, login, percentile};

const PEOPLE: usize = 5_000;
/// Direct reports per manager: 5,000 people make six levels.
const SPAN: usize = 6;
const EDGES: usize = 2_000;
const ITERATIONS: usize = 30;

const CHART: &str = "query($a: ID!) { orgChart(accountId: $a) { size nodes { contact { id fullName title } managerId depth teamSize lastActivityAt influence dealRoles { role } } influences { kind strength } } }";
const COMMITTEE: &str = "query($o: ID!) { buyingCommittee(opportunityId: $o) { coverage missing roles { role status members { contact { id } engaged } } blockers { contact { id } influence } paths { strength hops steps { via contact { id } user { id } } } } }";

struct World {
    account: i64,
    deal: i64,
}

async fn build(db: &DatabaseConnection, admin: &user::Model) -> anyhow::Result<World> {
    let mut rng = StdRng::seed_from_u64(5000);
    let now = Utc::now();
    let template = account::Entity::find()
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no accounts; seed first"))?;
    let mut company: account::ActiveModel = template.into();
    company.id = NotSet;
    company.name = Set(format!("Org chart bench {}", now.timestamp()));
    company.parent_id = Set(None);
    let company = company.insert(db).await?;

    // Contacts in id order, each reporting to the one `SPAN` places up the tree.
    let mut ids: Vec<i64> = Vec::with_capacity(PEOPLE);
    for i in 0..PEOPLE {
        let manager = (i > 0).then(|| ids[(i - 1) / SPAN]);
        let c = contact::ActiveModel {
            id: NotSet,
            account_id: Set(company.id),
            first_name: Set(format!("Person{i}")),
            last_name: Set(format!("Level{}", (i as f64).log(SPAN as f64) as i64)),
            title: Set(Some(if i == 0 {
                "CEO".into()
            } else {
                "Manager".into()
            })),
            department: Set(None),
            email: Set(None),
            phone: Set(None),
            reports_to_id: Set(manager),
            territory_id: Set(company.territory_id),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(db)
        .await?;
        ids.push(c.id);
    }
    let kinds = [
        InfluenceKind::Influences,
        InfluenceKind::ChampionsFor,
        InfluenceKind::Blocks,
        InfluenceKind::Mentors,
        InfluenceKind::FormerColleagueOf,
    ];
    let mut edges = Vec::with_capacity(EDGES);
    let mut seen = std::collections::HashSet::new();
    while edges.len() < EDGES {
        let (from, to) = (rng.random_range(0..PEOPLE), rng.random_range(0..PEOPLE));
        let kind = kinds[rng.random_range(0..kinds.len())];
        if from == to || !seen.insert((from, to, kind as u8)) {
            continue;
        }
        edges.push(influence::ActiveModel {
            id: NotSet,
            from_contact_id: Set(ids[from]),
            to_contact_id: Set(ids[to]),
            kind: Set(kind),
            strength: Set(rng.random_range(1..=5)),
            note: Set(None),
            created_by: Set(Some(admin.id)),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        });
    }
    for chunk in edges.chunks(500) {
        influence::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    let relationships: Vec<_> = (0..50)
        .map(|i| contact_relationship::ActiveModel {
            id: NotSet,
            user_id: Set(admin.id),
            contact_id: Set(ids[i * 97 % PEOPLE]),
            strength: Set(1 + (i % 5) as i32),
            last_contact_on: Set(Some((now - chrono::Duration::days(i as i64)).date_naive())),
            note: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        })
        .collect();
    contact_relationship::Entity::insert_many(relationships)
        .exec(db)
        .await?;
    let notes: Vec<_> = (0..500)
        .map(|i| note::ActiveModel {
            id: NotSet,
            body: Set("Call notes".into()),
            author_id: Set(admin.id),
            account_id: Set(None),
            contact_id: Set(Some(ids[i * 7 % PEOPLE])),
            lead_id: Set(None),
            opportunity_id: Set(None),
            created_at: Set(now - chrono::Duration::days((i % 60) as i64)),
        })
        .collect();
    note::Entity::insert_many(notes).exec(db).await?;

    let open: Vec<i64> = stage::Entity::find()
        .filter(stage::Column::Kind.eq(StageKind::Open))
        .all(db)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let template = opportunity::Entity::find()
        .filter(opportunity::Column::StageId.is_in(open))
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no open deal to copy"))?;
    let mut deal: opportunity::ActiveModel = template.into();
    deal.id = NotSet;
    deal.account_id = Set(company.id);
    deal.territory_id = Set(company.territory_id);
    deal.name = Set("Org chart bench deal".into());
    let deal = deal.insert(db).await?;
    let roles = [
        (0, ContactRole::DecisionMaker),
        (1, ContactRole::EconomicBuyer),
        (700, ContactRole::Champion),
        (4_321, ContactRole::TechnicalBuyer),
        (30, ContactRole::Blocker),
    ];
    for (i, r) in roles {
        role::ActiveModel {
            id: NotSet,
            opportunity_id: Set(deal.id),
            contact_id: Set(ids[i]),
            role: Set(r),
            is_primary: Set(i == 0),
            created_at: Set(now),
        }
        .insert(db)
        .await?;
    }
    Ok(World {
        account: company.id,
        deal: deal.id,
    })
}

fn global_id(kind: &str, id: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

async fn gql(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let v: Value = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    if v.get("errors").is_some() {
        anyhow::bail!("GraphQL error: {v}");
    }
    Ok(v)
}

pub async fn run(_args: &Args, db_args: &DatabaseArgs, backend: &str) -> anyhow::Result<()> {
    let metrics = accord::metrics::Metrics::new();
    let db = accord::app::open_database(db_args, &metrics).await?;
    let email = admin_email(&db).await?;
    let admin = user::Entity::find()
        .filter(user::Column::Email.eq(email.clone()))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no admin"))?;
    let t0 = Instant::now();
    let world = build(&db, &admin).await?;
    eprintln!(
        "{PEOPLE} contacts with {EDGES} edges written in {:.0?}",
        t0.elapsed()
    );

    let server = accord::app::start(db_args, Limits::default(), "127.0.0.1:0".parse()?).await?;
    let url = format!("http://{}/graphql", server.addr);
    let http = reqwest::Client::new();
    let token = login(&http, &url, &email).await?;
    let account = json!({ "a": global_id("Account", world.account) });
    let deal = json!({ "o": global_id("Opportunity", world.deal) });
    let everyone = ReadView::of(&[]);

    // Warm up, and check the answers are what the data set says.
    let chart = gql(&http, &url, &token, CHART, account.clone()).await?;
    let size = chart["data"]["orgChart"]["size"].as_u64().unwrap_or(0);
    anyhow::ensure!(size == PEOPLE as u64, "chart has {size} people");
    let rows = chart_rows(&db, &everyone, &[world.account], MAX_DEPTH).await?;
    anyhow::ensure!(rows.len() == PEOPLE, "bare query found {}", rows.len());
    let committee = gql(&http, &url, &token, COMMITTEE, deal.clone()).await?;
    anyhow::ensure!(
        committee["data"]["buyingCommittee"]["coverage"] == json!(1.0),
        "committee: {committee}"
    );

    let (mut bare, mut full, mut cover) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        let rows = chart_rows(&db, &everyone, &[world.account], MAX_DEPTH).await?;
        bare.push(t.elapsed());
        anyhow::ensure!(rows.len() == PEOPLE);
        let t = Instant::now();
        gql(&http, &url, &token, CHART, account.clone()).await?;
        full.push(t.elapsed());
        let t = Instant::now();
        gql(&http, &url, &token, COMMITTEE, deal.clone()).await?;
        cover.push(t.elapsed());
    }
    for list in [&mut bare, &mut full, &mut cover] {
        list.sort_unstable();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let line = |name: &str, list: &[Duration]| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1}x |",
            ms(percentile(list, 0.50)),
            ms(percentile(list, 0.99)),
            ms(percentile(list, 0.50)) / ms(percentile(&bare, 0.50)).max(0.001)
        );
    };
    println!(
        "# Org chart on {backend}: {PEOPLE} contacts, {EDGES} influence edges, {ITERATIONS} alternating rounds"
    );
    println!("| measured | p50 ms | p99 ms | p50 vs bare SQL |");
    println!("|---|---|---|---|");
    line("bare recursive SQL (ids, managers, depths)", &bare);
    line(
        "GraphQL orgChart (full nodes, roles, activity, influence, edges)",
        &full,
    );
    line(
        "GraphQL buyingCommittee (coverage, blockers, paths)",
        &cover,
    );
    db.close().await.ok();
    Ok(())
}
