//! `--compare territory`: the same nested deal list for a territory-bound rep and sales
//! manager against an admin, whose list is unfiltered, on one server in one run; then
//! the cost of (re)loading the whole casbin policy and of expanding one user's scope.

use std::time::{Duration, Instant};

use accord::app::RunningServer;
use accord_entities::territory_membership as membership;
use accord_entities::user::{self, Role};
use anyhow::Context;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use super::{Args, Target, check, cores, cpu_name, login, measure, percentile};

/// The first scale user of `role` holding a membership (managers: a manager one).
async fn member(server: &RunningServer, role: Role) -> anyhow::Result<user::Model> {
    let db = &server.state.services.db;
    let users = user::Entity::find()
        .filter(user::Column::Role.eq(role))
        .filter(user::Column::Email.contains("@scale.accord.test"))
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?;
    for u in users {
        let held = membership::Entity::find()
            .filter(membership::Column::UserId.eq(u.id))
            .filter(membership::Column::IsManager.eq(role == Role::SalesManager))
            .count(db)
            .await?;
        if held > 0 {
            return Ok(u);
        }
    }
    anyhow::bail!(
        "no scale {} with a membership; reseed with --scale",
        role.as_str()
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

pub async fn run(
    args: &Args,
    server: &RunningServer,
    http: &reqwest::Client,
    url: &str,
    backend_name: &str,
) -> anyhow::Result<()> {
    let db = &server.state.services.db;
    let admin = super::admin_email(db).await?;
    let manager = member(server, Role::SalesManager).await?;
    let rep = member(server, Role::Rep).await?;
    let mut targets = Vec::new();
    let mut visible = Vec::new();
    for (name, email) in [
        ("admin", admin.as_str()),
        ("manager", manager.email.as_str()),
        ("rep", rep.email.as_str()),
    ] {
        let target = Target {
            name,
            url: url.to_owned(),
            token: Some(login(http, url, email).await?),
        };
        check(&target.call(http, args.page).await?, args.page)
            .with_context(|| format!("{name}'s list"))?;
        let count: Value = http
            .post(url)
            .bearer_auth(target.token.as_deref().unwrap_or_default())
            .json(&json!({ "query": "{ opportunities { totalCount } }" }))
            .send()
            .await?
            .json()
            .await?;
        visible.push((
            name,
            count["data"]["opportunities"]["totalCount"]
                .as_u64()
                .context("totalCount")?,
        ));
        targets.push((target, server.state.metrics.as_ref()));
    }
    eprintln!("visible deals: {visible:?}; warming up");
    for (target, _) in &targets {
        super::drive(http, target, 4, 1, args.page).await?;
    }
    let results = measure(http, &targets, args).await?;

    // Policy (re)load and scope expansion, on the loaded server.
    let authz = &server.state.services.authz;
    let rules = accord_entities::casbin_rule::Entity::find()
        .count(db)
        .await?;
    let version = authz.policy_version();
    let mut reloads = Vec::new();
    let mut expansions = Vec::new();
    for _ in 0..15 {
        let t0 = Instant::now();
        authz.reload_now(version).await?;
        reloads.push(t0.elapsed());
        // The reload emptied the scope cache: this expands the manager's subtree anew.
        let t0 = Instant::now();
        authz.scope_of(manager.id, manager.role).await;
        expansions.push(t0.elapsed());
    }

    println!(
        "\n### Territory-filtered nested list, {backend_name}, page {}\n",
        args.page
    );
    println!(
        "Machine: {} cores, {}. {} rounds x {} s per target and client count, rotating; pool {}.\n",
        cores(),
        cpu_name(),
        args.rounds,
        args.seconds,
        args.pool
    );
    println!(
        "Visible deals: {}.\n",
        visible
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| clients | caller | req/s | p50 ms | p99 ms | SQL stmts/req | cost vs admin |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for &clients in &args.clients {
        let admin_rps = results
            .get(&(clients, "admin"))
            .map(super::Row::rps)
            .unwrap_or(0.0);
        for name in ["admin", "manager", "rep"] {
            let Some(row) = results.get(&(clients, name)) else {
                continue;
            };
            let cost = if name != "admin" && row.rps() > 0.0 {
                format!("{:.2}x", admin_rps / row.rps())
            } else {
                String::new()
            };
            println!(
                "| {clients} | {name} | {:.0} | {:.2} | {:.2} | {:.1} | {cost} |",
                row.rps(),
                percentile(&row.latencies, 0.5).as_secs_f64() * 1000.0,
                percentile(&row.latencies, 0.99).as_secs_f64() * 1000.0,
                row.statements / row.requests.max(1) as f64,
            );
        }
    }
    println!(
        "\nPolicy: {rules} casbin rules. Full reload (read every rule, rebuild the role graph): median {:.1} ms of 15. Expanding one manager's scope after a reload: median {:.2} ms.",
        median(reloads).as_secs_f64() * 1000.0,
        median(expansions).as_secs_f64() * 1000.0,
    );
    Ok(())
}
