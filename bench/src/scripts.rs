//! `--compare scripts`: what stage scripts cost, each number next to its baseline in the
//! same run.
//!
//! 1. Evaluation latency of one transition's script through the sandbox (a worker
//!    process) against evaluating it in this process with no sandbox.
//! 2. Stage moves per second end to end (GraphQL, scripted stages, reminders and tasks
//!    written) against two raw endpoints, each one transaction: `UPDATE` + `INSERT`
//!    (the deal and its transition), and by hand every write a scripted move makes; on a
//!    fresh database, alternating, at several client counts.
//! 3. Replay of a draft over 100,000 recorded transitions of the scale data set.
//! 4. The nested-list read load's p99 with and without a client that keeps submitting an
//!    endless-loop script.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use accord::app::RunningServer;
use accord::config::{DatabaseArgs, Limits};
use accord_workflows::{Event, ScriptEngine, StageContext};
use anyhow::{Context, bail};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

use super::{Args, Target, cores, cpu_name, drive, percentile};

/// The script every scripted stage of the move benchmark runs: a guard, guidance, a
/// reminder on the close date and a task, as the demo's Negotiation does.
const SCRIPT: &str = r#"
require(deal.amount > 0, "an amount");
require(roles.len() >= 0, "a buying committee");
checklist("Agree the mutual close plan");
key_field("expected_close_date");
if event == "enter" {
    remind("owner", before_close_days(7), deal.name + " closes in a week");
    task("owner", "Follow up on " + deal.name, after_days(2));
}
"#;

const MOVE: &str = "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { version } } }";

async fn gql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> anyhow::Result<Value> {
    let mut req = http
        .post(url)
        .json(&json!({ "query": query, "variables": vars }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: Value = req.send().await?.json().await?;
    if v.get("errors").is_some() {
        bail!("{query}: {v}");
    }
    Ok(v)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A fresh database next to the benchmark's own: a temporary SQLite file, or a new
/// database on the same PostgreSQL server.
async fn fresh_database(url: &str) -> anyhow::Result<(String, Option<tempfile::TempDir>)> {
    if !url.starts_with("postgres") {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("moves.db");
        return Ok((format!("sqlite://{}?mode=rwc", path.display()), Some(dir)));
    }
    let admin = sea_orm::Database::connect(url).await?;
    for sql in [
        "DROP DATABASE IF EXISTS accord_bench_moves",
        "CREATE DATABASE accord_bench_moves",
    ] {
        admin
            .execute_raw(Statement::from_string(sea_orm::DbBackend::Postgres, sql))
            .await?;
    }
    admin.close().await.ok();
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    Ok((format!("{base}/accord_bench_moves"), None))
}

#[derive(Clone)]
struct Raw {
    db: DatabaseConnection,
}

/// What a client asks a raw endpoint: move deal `id`, at `version`, to `stage`.
#[derive(serde::Deserialize)]
struct RawMove {
    id: i64,
    version: i64,
    stage: i64,
}

type RawAnswer = Result<Json<Value>, (axum::http::StatusCode, String)>;

fn failed(e: sea_orm::DbErr) -> (axum::http::StatusCode, String) {
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The first baseline: the deal's update and its transition, in one transaction, without
/// GraphQL, permissions or scripts.
async fn raw_move(State(raw): State<Raw>, Json(wanted): Json<RawMove>) -> RawAnswer {
    let RawMove { id, version, stage } = wanted;
    let backend = raw.db.get_database_backend();
    let txn = accord::db::begin_write(&raw.db).await.map_err(failed)?;
    let now = chrono::Utc::now();
    let updated = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, "UPDATE opportunities SET stage_id = ?, stage_entered_at = ?, version = version + 1 WHERE id = ? AND version = ?"),
            [stage.into(), now.into(), id.into(), version.into()],
        ))
        .await
        .map_err(failed)?;
    if updated.rows_affected() != 1 {
        return Err((axum::http::StatusCode::CONFLICT, "stale".into()));
    }
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        placeholders(backend, "INSERT INTO stage_transitions (opportunity_id, to_stage_id, transitioned_at) VALUES (?, ?, ?)"),
        [id.into(), stage.into(), now.into()],
    ))
    .await
    .map_err(failed)?;
    txn.commit().await.map_err(failed)?;
    Ok(Json(json!({ "version": version + 1 })))
}

/// `sql` written with `?` placeholders, numbered for PostgreSQL.
fn placeholders(backend: sea_orm::DbBackend, sql: &str) -> String {
    if backend != sea_orm::DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// The second baseline: by hand, the writes a scripted move makes, in one transaction.
/// It reads the deal (its state before, for the log and the audit entry), updates it at
/// its version, logs the transition, cancels the left stage's pending reminders,
/// inserts the reminder and the task the bench script asks for, and writes the audit
/// entry. No GraphQL, no permissions, no scripts.
async fn raw_move_writes(State(raw): State<Raw>, Json(wanted): Json<RawMove>) -> RawAnswer {
    let RawMove { id, version, stage } = wanted;
    let backend = raw.db.get_database_backend();
    let sql = |text: &str| placeholders(backend, text);
    let txn = accord::db::begin_write(&raw.db).await.map_err(failed)?;
    let now = chrono::Utc::now();
    let Some(row) = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql("SELECT id, name, owner_id, stage_id, stage_entered_at, version, expected_close_date FROM opportunities WHERE id = ?"),
            [id.into()],
        ))
        .await
        .map_err(failed)?
    else {
        return Err((axum::http::StatusCode::NOT_FOUND, "no deal".into()));
    };
    let name: String = row.try_get_by_index(1).map_err(failed)?;
    let owner: i64 = row.try_get_by_index(2).map_err(failed)?;
    let from: i64 = row.try_get_by_index(3).map_err(failed)?;
    let entered: chrono::DateTime<chrono::Utc> = row.try_get_by_index(4).map_err(failed)?;
    let close: chrono::NaiveDate = row.try_get_by_index(6).map_err(failed)?;
    let before = json!({ "id": id, "name": name, "owner_id": owner, "stage_id": from, "stage_entered_at": entered, "version": version, "expected_close_date": close });
    let after = json!({ "id": id, "name": name, "owner_id": owner, "stage_id": stage, "stage_entered_at": now, "version": version + 1, "expected_close_date": close });
    let updated = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql("UPDATE opportunities SET stage_id = ?, stage_entered_at = ?, updated_at = ?, version = version + 1 WHERE id = ? AND version = ?"),
            [stage.into(), now.into(), now.into(), id.into(), version.into()],
        ))
        .await
        .map_err(failed)?;
    if updated.rows_affected() != 1 {
        return Err((axum::http::StatusCode::CONFLICT, "stale".into()));
    }
    let seconds = (now - entered).num_seconds();
    let transition: i64 = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql("INSERT INTO stage_transitions (opportunity_id, from_stage_id, to_stage_id, transitioned_at, actor_id, seconds_in_previous_stage) VALUES (?, ?, ?, ?, ?, ?) RETURNING id"),
            [id.into(), from.into(), stage.into(), now.into(), owner.into(), seconds.into()],
        ))
        .await
        .map_err(failed)?
        .map(|r| r.try_get_by_index(0))
        .transpose()
        .map_err(failed)?
        .unwrap_or(0);
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql("UPDATE reminders SET status = 'cancelled' WHERE opportunity_id = ? AND status = 'pending' AND stage_id = ?"),
        [id.into(), from.into()],
    ))
    .await
    .map_err(failed)?;
    let due = now + chrono::Duration::days(7);
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql("INSERT INTO reminders (recipient_id, opportunity_id, message, due_at, anchor, offset_minutes, status, attempts, idempotency_key, stage_id, created_at, attempt_at, channels, delivered_channels) VALUES (?, ?, ?, ?, 'expected_close_date', -10080, 'pending', 0, ?, ?, ?, ?, 'in_app', '')"),
        [owner.into(), id.into(), format!("{name} closes in a week").into(), due.into(), format!("raw:{transition}").into(), stage.into(), now.into(), due.into()],
    ))
    .await
    .map_err(failed)?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql("INSERT INTO tasks (kind, assignee_id, opportunity_id, title, due_at, anchor, offset_minutes, status, stage_id, created_at, version) VALUES ('task', ?, ?, ?, ?, 'transition', 2880, 'open', ?, ?, 1)"),
        [owner.into(), id.into(), format!("Follow up on {name}").into(), (now + chrono::Duration::days(2)).into(), stage.into(), now.into()],
    ))
    .await
    .map_err(failed)?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql("INSERT INTO audit_log (actor_id, action, entity_type, entity_id, before, after, at) VALUES (?, 'move_stage', 'Opportunity', ?, ?, ?, ?)"),
        [owner.into(), id.into(), before.into(), after.into(), now.into()],
    ))
    .await
    .map_err(failed)?;
    txn.commit().await.map_err(failed)?;
    Ok(Json(json!({ "version": version + 1 })))
}

/// One deal a client moves back and forth between two scripted stages.
struct Deal {
    gid: String,
    id: i64,
    version: i64,
    at_first: bool,
}

async fn drive_moves(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    stages: &[(String, i64); 2],
    deals: Vec<Vec<Deal>>,
    seconds: u64,
    raw: bool,
) -> anyhow::Result<(Vec<Duration>, Duration, Vec<Vec<Deal>>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut mine in deals {
        let (http, url, token, stop, stages) = (
            http.clone(),
            url.to_owned(),
            token.map(str::to_owned),
            Arc::clone(&stop),
            stages.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let count = mine.len();
                let deal = &mut mine[i % count];
                i += 1;
                let target = &stages[usize::from(deal.at_first)];
                let t0 = Instant::now();
                if raw {
                    let v: Value = http
                        .post(&url)
                        .json(&json!({ "id": deal.id, "version": deal.version, "stage": target.1 }))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    deal.version = v["version"].as_i64().context("version")?;
                } else {
                    let v = gql(
                        &http,
                        &url,
                        token.as_deref(),
                        MOVE,
                        json!({ "i": { "id": deal.gid, "version": deal.version, "stageId": target.0 } }),
                    )
                    .await?;
                    deal.version = v["data"]["moveOpportunityStage"]["opportunity"]["version"]
                        .as_i64()
                        .context("version")?;
                }
                latencies.push(t0.elapsed());
                deal.at_first = !deal.at_first;
            }
            anyhow::Ok((latencies, mine))
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut back = Vec::new();
    for t in tasks {
        let (l, mine) = t.await??;
        latencies.extend(l);
        back.push(mine);
    }
    latencies.sort();
    Ok((latencies, started.elapsed(), back))
}

pub async fn run(
    args: &Args,
    scale_server: &RunningServer,
    http: &reqwest::Client,
    scale_url: &str,
    database_url: &str,
    backend_name: &str,
    limits: Limits,
) -> anyhow::Result<()> {
    println!(
        "\n### Stage scripts, {backend_name}\n\nMachine: {} cores, {}. Script workers: {}, limits {} ms / {} MiB.\n",
        cores(),
        cpu_name(),
        limits.script_workers,
        limits.script_time_ms,
        limits.script_memory_mib
    );

    // 1. Evaluation latency: sandbox vs in-process.
    let sandbox = &scale_server.state.services.sandbox;
    let context = StageContext::sample(Event::Enter, "Negotiation");
    for _ in 0..200 {
        sandbox
            .evaluate(accord::sandbox::Lane::Moves, SCRIPT, context.clone())
            .await?;
    }
    let runs = 3000;
    let mut sandboxed = Vec::with_capacity(runs);
    let mut in_process = Vec::with_capacity(runs);
    let engine = ScriptEngine::new();
    let compiled = engine
        .compile(SCRIPT)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for _ in 0..runs {
        let t0 = Instant::now();
        sandbox
            .evaluate(accord::sandbox::Lane::Moves, SCRIPT, context.clone())
            .await?;
        sandboxed.push(t0.elapsed());
        let t0 = Instant::now();
        engine
            .evaluate(&compiled, &context)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        in_process.push(t0.elapsed());
    }
    sandboxed.sort();
    in_process.sort();
    println!("Evaluation of one transition's script ({runs} runs, alternating):\n");
    println!("| how | median ms | p99 ms |\n|---|---:|---:|");
    println!(
        "| sandboxed worker process (what the server does) | {:.3} | {:.3} |",
        ms(percentile(&sandboxed, 0.5)),
        ms(percentile(&sandboxed, 0.99))
    );
    println!(
        "| in this process, no sandbox (baseline) | {:.3} | {:.3} |\n",
        ms(percentile(&in_process, 0.5)),
        ms(percentile(&in_process, 0.99))
    );

    // 2. Stage moves per second on a fresh database.
    let (moves_url, _dir) = fresh_database(database_url).await?;
    let db_args = DatabaseArgs {
        url: moves_url.clone(),
        pool_size: args.pool,
    };
    let server = accord::app::start(&db_args, limits.clone(), "127.0.0.1:0".parse()?).await?;
    let url = format!("http://{}/graphql", server.addr);
    accord::services::users::create_user(
        &server.state.services,
        None,
        accord::services::users::NewUser {
            email: "bench@example.com".into(),
            display_name: "Bench".into(),
            role: accord_entities::user::Role::Admin,
            password: Some("bench-password-1".into()),
        },
    )
    .await?;
    let v = gql(
        http,
        &url,
        None,
        "mutation { login(email: \"bench@example.com\", password: \"bench-password-1\") { token } }",
        json!({}),
    )
    .await?;
    let token = v["data"]["login"]["token"]
        .as_str()
        .context("token")?
        .to_owned();
    let v = gql(http, &url, Some(&token), r#"mutation { createPipeline(input: {name: "Bench", stages: [
        {name: "Qualify", probability: 10, kind: OPEN}, {name: "Proposal", probability: 50, kind: OPEN},
        {name: "Negotiation", probability: 75, kind: OPEN}, {name: "Review", probability: 80, kind: OPEN},
        {name: "Legal", probability: 90, kind: OPEN}, {name: "Won", probability: 100, kind: WON}]}) {
        pipeline { id stages { id } } } }"#, json!({})).await?;
    let pipeline = v["data"]["createPipeline"]["pipeline"]["id"]
        .as_str()
        .context("pipeline")?
        .to_owned();
    let stage_ids: Vec<String> = v["data"]["createPipeline"]["pipeline"]["stages"]
        .as_array()
        .context("stages")?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    let number = |gid: &str| -> anyhow::Result<i64> {
        let raw = base64_decode(gid)?;
        raw.rsplit_once(':')
            .and_then(|(_, n)| n.parse().ok())
            .context("id number")
    };
    let stages = [
        (stage_ids[1].clone(), number(&stage_ids[1])?),
        (stage_ids[2].clone(), number(&stage_ids[2])?),
    ];
    let plain_stages = [
        (stage_ids[3].clone(), number(&stage_ids[3])?),
        (stage_ids[4].clone(), number(&stage_ids[4])?),
    ];
    for (stage, _) in &stages {
        let v = gql(http, &url, Some(&token), "mutation($s: ID!, $src: String!) { saveStageScriptDraft(input: {stageId: $s, source: $src}) { script { id } problems { message } } }", json!({ "s": stage, "src": SCRIPT })).await?;
        let id = v["data"]["saveStageScriptDraft"]["script"]["id"].clone();
        gql(
            http,
            &url,
            Some(&token),
            "mutation($id: ID!) { publishStageScript(id: $id) { script { id } } }",
            json!({ "id": id }),
        )
        .await?;
    }
    let v = gql(http, &url, Some(&token), "mutation { createAccount(input: {name: \"Bench AG\", country: \"de\"}) { account { id } } }", json!({})).await?;
    let account = v["data"]["createAccount"]["account"]["id"].clone();
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let per_client = 8;
    // Four groups of deals: moved by Accord between scripted stages, by Accord between
    // stages without scripts, and by the two raw endpoints. Each client owns its own
    // deals.
    let mut groups: [Vec<Vec<Deal>>; 4] = Default::default();
    for (g, group) in groups.iter_mut().enumerate() {
        for c in 0..max_clients {
            let mut mine = Vec::new();
            for d in 0..per_client {
                let v = gql(http, &url, Some(&token), "mutation($a: ID!, $p: ID!, $n: String!) { createOpportunity(input: {name: $n, accountId: $a, pipelineId: $p, amount: \"48000\", currency: \"EUR\", expectedCloseDate: \"2027-06-30\"}) { opportunity { id version } } }", json!({ "a": account, "p": pipeline, "n": format!("Deal {g}-{c}-{d}") })).await?;
                let o = &v["data"]["createOpportunity"]["opportunity"];
                let gid = o["id"].as_str().context("id")?.to_owned();
                mine.push(Deal {
                    id: number(&gid)?,
                    gid,
                    version: o["version"].as_i64().context("version")?,
                    at_first: false,
                });
            }
            group.push(mine);
        }
    }
    // Deals start in Qualify; their first move puts them on their two-stage circuit.
    let raw_db = accord::db::connect(&db_args, &accord::metrics::Metrics::new()).await?;
    let raw_app = Router::new()
        .route("/move", post(raw_move))
        .route("/move-writes", post(raw_move_writes))
        .with_state(Raw { db: raw_db });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let raw_url = format!("http://{}/move", listener.local_addr()?);
    let raw_writes_url = format!("http://{}/move-writes", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, raw_app).await });

    println!(
        "Stage moves end to end ({per_client} deals per client moving back and forth between two stages; {} rounds x {} s per target, alternating):\n",
        args.rounds, args.seconds
    );
    println!(
        "| clients | target | moves/s | p50 ms | p99 ms | SQL stmts/move | vs raw UPDATE + INSERT | vs raw, same writes |\n|---:|---|---:|---:|---:|---:|---:|---:|"
    );
    let names = [
        "accord, scripted stages",
        "accord, stages without scripts",
        "raw UPDATE + INSERT",
        "raw, the scripted move's writes",
    ];
    let circuits = [&stages, &plain_stages, &stages, &stages];
    let raw_urls = [&url, &url, &raw_url, &raw_writes_url];
    let metrics = &server.state.metrics;
    for &clients in &args.clients {
        let mut rows: Vec<(Vec<Duration>, f64, u64)> = vec![(Vec::new(), 0.0, 0); 4];
        for round in 0..args.rounds {
            for k in 0..4 {
                let g = (k + round) % 4;
                let mut deals = std::mem::take(&mut groups[g]);
                let rest = deals.split_off(clients.min(deals.len()));
                let raw = g >= 2;
                let before = metrics.statements();
                let (l, t, back) = drive_moves(
                    http,
                    raw_urls[g],
                    (!raw).then_some(token.as_str()),
                    circuits[g],
                    deals,
                    args.seconds,
                    raw,
                )
                .await?;
                rows[g].2 += metrics.statements() - before;
                rows[g].0.extend(l);
                rows[g].1 += t.as_secs_f64();
                groups[g] = back.into_iter().chain(rest).collect();
            }
        }
        let raw_rate = rows[2].0.len() as f64 / rows[2].1;
        let raw_writes_rate = rows[3].0.len() as f64 / rows[3].1;
        for (g, (latencies, seconds, statements)) in rows.iter_mut().enumerate() {
            latencies.sort();
            let rate = latencies.len() as f64 / *seconds;
            // The raw endpoints' statements are counted here, not by the server.
            let per_move = match g {
                2 => "2".to_owned(),
                3 => "7".to_owned(),
                _ => format!("{:.1}", *statements as f64 / latencies.len().max(1) as f64),
            };
            let (ratio, ratio_writes) = if g >= 2 {
                (String::new(), String::new())
            } else {
                (
                    format!("{:.2}x", rate / raw_rate),
                    format!("{:.2}x", rate / raw_writes_rate),
                )
            };
            println!(
                "| {clients} | {} | {rate:.0} | {:.2} | {:.2} | {per_move} | {ratio} | {ratio_writes} |",
                names[g],
                ms(percentile(latencies, 0.5)),
                ms(percentile(latencies, 0.99)),
            );
        }
    }
    drop(server);

    // 3. Replay over the scale data set's recorded history.
    let admin = super::admin_email(&scale_server.state.services.db).await?;
    let scale_token = super::login(http, scale_url, &admin).await?;
    let v = gql(
        http,
        scale_url,
        Some(&scale_token),
        "{ pipelines(first: 1) { edges { node { stages { id name } } } } }",
        json!({}),
    )
    .await?;
    let stage = v["data"]["pipelines"]["edges"][0]["node"]["stages"][2]["id"].clone();
    let v = gql(http, scale_url, Some(&scale_token), "mutation($s: ID!, $src: String!) { saveStageScriptDraft(input: {stageId: $s, source: $src, note: \"accord-bench replay\"}) { script { id } } }", json!({ "s": stage, "src": SCRIPT })).await?;
    let draft = v["data"]["saveStageScriptDraft"]["script"]["id"].clone();
    let t0 = Instant::now();
    let v = gql(http, scale_url, Some(&scale_token), "query($s: ID!) { replayStageScript(scriptId: $s, from: \"2000-01-01T00:00:00Z\", to: \"2100-01-01T00:00:00Z\") { transitions replayed { blocked reminders tasks failures } truncated } }", json!({ "s": draft })).await?;
    let took = t0.elapsed();
    let r = &v["data"]["replayStageScript"];
    let n = r["transitions"].as_f64().unwrap_or(0.0);
    println!(
        "\nReplay: {} transitions (truncated: {}) in {:.1} s = {:.0} transitions/s; the draft would have created {} reminders and {} tasks, blocked {}, failed {}.\n",
        n,
        r["truncated"],
        took.as_secs_f64(),
        n / took.as_secs_f64(),
        r["replayed"]["reminders"],
        r["replayed"]["tasks"],
        r["replayed"]["blocked"],
        r["replayed"]["failures"]
    );
    gql(
        http,
        scale_url,
        Some(&scale_token),
        "mutation($id: ID!) { archiveStageScript(id: $id) { script { id } } }",
        json!({ "id": draft }),
    )
    .await?;

    // 4. Reads while a client keeps submitting an endless loop.
    let target = Target {
        name: "accord",
        url: scale_url.to_owned(),
        token: Some(scale_token.clone()),
    };
    let clients = 8;
    drive(http, &target, clients, 1, args.page).await?;
    let mut quiet = Vec::new();
    let mut attacked = Vec::new();
    let attacks = Arc::new(AtomicUsize::new(0));
    for _ in 0..args.rounds {
        quiet.extend(
            drive(http, &target, clients, args.seconds, args.page)
                .await?
                .latencies,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (http, url, token, stop, attacks) = (
                http.clone(),
                scale_url.to_owned(),
                scale_token.clone(),
                Arc::clone(&stop),
                Arc::clone(&attacks),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let v = gql(
                        &http,
                        &url,
                        Some(&token),
                        "query($s: String!) { validateStageScript(source: $s) { message } }",
                        json!({ "s": "loop { }" }),
                    )
                    .await?;
                    if !v.to_string().contains("time limit") {
                        bail!("endless loop not stopped: {v}");
                    }
                    attacks.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        };
        attacked.extend(
            drive(http, &target, clients, args.seconds, args.page)
                .await?
                .latencies,
        );
        stop.store(true, Ordering::Relaxed);
        attacker.await??;
    }
    quiet.sort();
    attacked.sort();
    let (q99, a99) = (percentile(&quiet, 0.99), percentile(&attacked, 0.99));
    println!(
        "Nested list ({clients} clients, page {}) with and without a client submitting `loop {{ }}` back to back ({} attacks stopped):\n",
        args.page,
        attacks.load(Ordering::Relaxed)
    );
    println!("| load | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|");
    let secs = (args.rounds as u64 * args.seconds) as f64;
    println!(
        "| reads alone | {:.0} | {:.2} | {:.2} |",
        quiet.len() as f64 / secs,
        ms(percentile(&quiet, 0.5)),
        ms(q99)
    );
    println!(
        "| reads during the attack | {:.0} | {:.2} | {:.2} |",
        attacked.len() as f64 / secs,
        ms(percentile(&attacked, 0.5)),
        ms(a99)
    );
    println!(
        "\np99 during the attack / alone: {:.2}x (target at most 2x)",
        a99.as_secs_f64() / q99.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn base64_decode(id: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id)?;
    Ok(String::from_utf8(bytes)?)
}
