//! `--compare reminders`: the scheduler under a burst. 1,000,000 pending reminders sit
//! in the table (due in a month), 10,000 more fall due in the same second. A webhook
//! sink on 127.0.0.1 records when each arrives; lateness is arrival minus due time.
//! Meanwhile clients read a list over GraphQL; its latency while the scheduler is idle
//! (before the burst) and busy (during it) is compared in the same run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::config::{DatabaseArgs, Delivery, Limits};
use accord_entities::reminder::{self, ReminderStatus};
use accord_entities::webhook;
use axum::Router;
use axum::extract::Request;
use axum::routing::post;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, NotSet, Set};
use serde_json::{Value, json};

use crate::{Args, admin_email, login, percentile};

const PENDING: usize = 1_000_000;
const BURST: usize = 10_000;
/// Time between the end of seeding and the burst: the idle phase of the read load.
const IDLE_SECONDS: i64 = 15;

fn row(
    recipient: i64,
    key: String,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> reminder::ActiveModel {
    reminder::ActiveModel {
        id: NotSet,
        recipient_id: Set(recipient),
        opportunity_id: Set(None),
        message: Set("benchmark reminder".into()),
        due_at: Set(due),
        anchor: Set(None),
        offset_minutes: Set(0),
        status: Set(ReminderStatus::Pending),
        attempts: Set(0),
        idempotency_key: Set(key),
        lease_until: Set(None),
        script_id: Set(None),
        stage_id: Set(None),
        created_at: Set(now),
        attempt_at: Set(due),
        lease_owner: Set(None),
        channels: Set("webhook".into()),
        delivered_channels: Set(String::new()),
        last_error: Set(None),
        delivered_at: Set(None),
        event_id: Set(None),
        follows_owner: Set(false),
    }
}

async fn insert(db: &DatabaseConnection, rows: Vec<reminder::ActiveModel>) -> anyhow::Result<()> {
    for chunk in rows.chunks(1000) {
        reminder::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    Ok(())
}

type Arrivals = Arc<parking_lot::Mutex<HashMap<String, (DateTime<Utc>, u32)>>>;

async fn sink() -> anyhow::Result<(std::net::SocketAddr, Arrivals)> {
    let arrivals: Arrivals = Arc::default();
    let seen = Arc::clone(&arrivals);
    let app = Router::new().route(
        "/hook",
        // The whole request, not a `HeaderMap`, which axum extracts by cloning.
        post(move |request: Request| {
            let seen = Arc::clone(&seen);
            async move {
                if let Some(key) = request
                    .headers()
                    .get("x-accord-idempotency-key")
                    .and_then(|v| v.to_str().ok())
                {
                    let now = Utc::now();
                    seen.lock()
                        .entry(key.to_owned())
                        .and_modify(|e| e.1 += 1)
                        .or_insert((now, 1));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, arrivals))
}

/// Read load until `until`: returns the latencies of successful responses. With a
/// `rate` (requests per second over all clients) each client sends on a fixed schedule
/// and a request's latency counts from when it was due, so a stalled server shows up as
/// latency rather than as fewer requests; without one, clients send back to back.
async fn readers(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    clients: usize,
    rate: u32,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let interval = (rate > 0).then(|| Duration::from_secs_f64(clients as f64 / f64::from(rate)));
    let query = json!({ "query": "{ opportunities(first: 20) { edges { node { id name stage { name } } } } }" });
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, token, query) = (
            http.clone(),
            url.to_owned(),
            token.to_owned(),
            query.clone(),
        );
        let offset = interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(tasks.len() as f64 / clients as f64)
        });
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut due = Instant::now() + offset;
            while Instant::now() < until {
                let t = match interval {
                    Some(every) => {
                        tokio::time::sleep_until(due.into()).await;
                        let sent_due = due;
                        due += every;
                        sent_due
                    }
                    None => Instant::now(),
                };
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&query)
                    .send()
                    .await;
                if let Ok(r) = r
                    && let Ok(v) = r.json::<Value>().await
                    && v.get("errors").is_none()
                {
                    lat.push(t.elapsed());
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    all.sort_unstable();
    Ok(all)
}

pub async fn run(args: &Args, db_args: &DatabaseArgs, backend: &str) -> anyhow::Result<()> {
    let metrics = accord::metrics::Metrics::new();
    let db = accord::app::open_database(db_args, &metrics).await?;
    let email = admin_email(&db).await?;
    let admin = accord_entities::user::Entity::find()
        .all(&db)
        .await?
        .into_iter()
        .find(|u| u.email == email)
        .ok_or_else(|| anyhow::anyhow!("no admin"))?;
    let (sink_addr, arrivals) = sink().await?;
    // Leftovers of an earlier run would be claimed too.
    reminder::Entity::delete_many().exec(&db).await?;
    webhook::Entity::delete_many().exec(&db).await?;
    webhook::ActiveModel {
        id: NotSet,
        user_id: Set(Some(admin.id)),
        territory_id: Set(None),
        url: Set(format!("http://{sink_addr}/hook")),
        secret: Set("whsec_bench".into()),
        description: Set(None),
        active: Set(true),
        created_by: Set(Some(admin.id)),
        created_at: Set(Utc::now()),
    }
    .insert(&db)
    .await?;
    let started = Instant::now();
    let now = Utc::now();
    let later = now + chrono::Duration::days(30);
    let rows = (0..PENDING)
        .map(|i| row(admin.id, format!("bench-later:{i}"), later, now))
        .collect();
    insert(&db, rows).await?;
    eprintln!(
        "{PENDING} pending reminders written in {:.0?}",
        started.elapsed()
    );
    let due = Utc::now() + chrono::Duration::seconds(IDLE_SECONDS);
    let due = DateTime::from_timestamp(due.timestamp(), 0).unwrap_or(due);
    let rows = (0..BURST)
        .map(|i| row(admin.id, format!("bench-burst:{i}"), due, Utc::now()))
        .collect();
    insert(&db, rows).await?;
    // A table in service has statistics (autovacuum keeps them); without them the
    // claim's plan depends on whether autovacuum happened to run in the idle phase.
    db.execute_unprepared("ANALYZE reminders").await?;
    db.close().await.ok();

    let limits = Limits {
        delivery: Delivery {
            webhook_allow: vec!["127.0.0.1/32".parse()?],
            ..Delivery::default()
        },
        ..Limits::default()
    };
    let server = accord::app::start(db_args, limits, "127.0.0.1:0".parse()?).await?;
    let url = format!("http://{}/graphql", server.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let token = login(&http, &url, &email).await?;
    let clients = args.clients.iter().copied().max().unwrap_or(16).min(16);

    // Idle: from now until a second before the burst.
    let until_due = (due - Utc::now() - chrono::Duration::seconds(1))
        .to_std()
        .unwrap_or(Duration::from_secs(1));
    let idle = readers(
        &http,
        &url,
        &token,
        clients,
        args.read_rate,
        Instant::now() + until_due,
    )
    .await?;
    // Busy: from the burst until every reminder arrived (at most 60 s).
    while Utc::now() < due {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = {
        let arrivals = Arc::clone(&arrivals);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while arrivals.lock().len() < BURST && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let busy_until = Instant::now() + Duration::from_secs(3);
    let busy = readers(&http, &url, &token, clients, args.read_rate, busy_until).await?;
    done.await?;

    let seen = arrivals.lock().clone();
    let mut lateness: Vec<Duration> = seen
        .values()
        .map(|(at, _)| (*at - due).to_std().unwrap_or(Duration::ZERO))
        .collect();
    lateness.sort_unstable();
    let duplicates: u32 = seen.values().map(|(_, n)| n - 1).sum();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("# Reminder burst on {backend}: {PENDING} pending, {BURST} due at {due}");
    println!(
        "delivered {} of {BURST}, duplicates {duplicates}; lateness first {:.0} ms, p10 {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        seen.len(),
        ms(lateness.first().copied().unwrap_or_default()),
        ms(percentile(&lateness, 0.10)),
        ms(percentile(&lateness, 0.50)),
        ms(percentile(&lateness, 0.90)),
        ms(percentile(&lateness, 0.99)),
        ms(lateness.last().copied().unwrap_or_default()),
    );
    // Arrivals per 100 ms after the due time: shows when delivery started and its pace.
    let mut per_tenth =
        vec![0usize; 1 + lateness.last().map_or(0, |l| l.as_millis() / 100) as usize];
    for l in &lateness {
        per_tenth[(l.as_millis() / 100) as usize] += 1;
    }
    println!(
        "arrivals per 100 ms: {}",
        per_tenth
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (i99, b99) = (percentile(&idle, 0.99), percentile(&busy, 0.99));
    let pace = match args.read_rate {
        0 => "back to back".to_owned(),
        r => format!("{r}/s"),
    };
    println!(
        "reads ({clients} clients, {pace}): idle p50 {:.1} ms p99 {:.1} ms ({} requests); busy p50 {:.1} ms p99 {:.1} ms ({} requests); busy/idle p99 {:.2}x",
        ms(percentile(&idle, 0.50)),
        ms(i99),
        idle.len(),
        ms(percentile(&busy, 0.50)),
        ms(b99),
        busy.len(),
        ms(b99) / ms(i99).max(0.001),
    );
    Ok(())
}
