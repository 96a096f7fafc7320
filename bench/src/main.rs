//! `accord-bench`: the nested opportunity list through Accord's GraphQL API against a
//! hand-written baseline endpoint (one SQL join, serialized to the same JSON), measured
//! side by side in one run, alternating, at several client counts.
//!
//! ```sh
//! cargo run --release -p accord-bench -- --scale 1                       # SQLite
//! cargo run --release -p accord-bench -- --scale 1 --database-url postgres://...
//! ```
//!
//! Every response body is checked (a fast stream of errors is not throughput), and before
//! measuring, Accord's response must equal the baseline's byte for byte as JSON values.

mod floor;
mod org_chart;
mod reminders;
mod scripts;
mod territory;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use accord::config::{DatabaseArgs, Limits};
use accord::graphql::ids::{NodeKind, encode};
use accord::services::validate::micros_to_decimal;
use anyhow::{Context, bail};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, Statement};
use serde_json::{Value, json};

/// The same allocator as the `accord` binary, since the servers run in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERY: &str = "query($n: Int!) { opportunities(first: $n) { edges { node { id name amount { amount currency } \
stage { name } account { name } owner { displayName } contactRoles { role contact { fullName } } } } } }";

#[derive(Parser)]
#[command(about = "Accord vs hand-written baseline on the nested opportunity list")]
struct Args {
    /// Data set size for `seed --scale` (used only when the database is empty).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Database; default is a SQLite file under bench/out/ named after the scale.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Concurrent clients per measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per measurement slice; each target gets `rounds` slices, alternating.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Page size of the list.
    #[arg(long, default_value_t = 50)]
    page: usize,
    /// Also measure the GraphQL floor: the same query over in-memory data, no database.
    #[arg(long)]
    floor: bool,
    /// `--compare reminders`: the read load's pace in requests per second across all
    /// clients, each request measured from when it was due to be sent (no coordinated
    /// omission); 0 sends as fast as responses come back, which saturates the machine.
    #[arg(long, default_value_t = 200)]
    read_rate: u32,
    /// Connection pool size for both servers.
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// What to compare: Accord against the hand-written baseline, or a territory-bound
    /// rep and manager against an (unfiltered) admin on the same server.
    #[arg(long, value_enum, default_value_t = Compare::Baseline)]
    compare: Compare,
    /// The `accord` binary that runs stage-script workers (default: the one next to this
    /// benchmark, `cargo build --release -p accord` builds it).
    #[arg(long)]
    worker: Option<std::path::PathBuf>,
    /// Stage-script worker processes per lane (the server's `ACCORD_SCRIPT_WORKERS`).
    #[arg(long, default_value_t = Limits::default().script_workers)]
    script_workers: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compare {
    Baseline,
    Territory,
    Scripts,
    /// 10,000 reminders due in one second among 1,000,000 pending: lateness at a webhook
    /// sink, and read latency with the scheduler idle versus busy.
    Reminders,
    /// The org chart of a 5,000-person account and a deal's buying committee against
    /// the bare recursive SQL query.
    Orgchart,
}

#[derive(Clone)]
struct Baseline {
    db: DatabaseConnection,
    page: usize,
}

/// The baseline: one SQL statement joining everything the GraphQL query reads, folded
/// into the same JSON shape Accord returns.
async fn baseline_handler(
    State(b): State<Baseline>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    let sql = format!(
        "SELECT o.id, o.name, o.amount_micros, o.currency, s.name AS stage_name, a.name AS account_name, \
                u.display_name, r.role, c.first_name, c.last_name \
         FROM (SELECT * FROM opportunities ORDER BY created_at, id LIMIT {}) o \
         JOIN stages s ON s.id = o.stage_id \
         JOIN accounts a ON a.id = o.account_id \
         JOIN users u ON u.id = o.owner_id \
         LEFT JOIN opportunity_contact_roles r ON r.opportunity_id = o.id \
         LEFT JOIN contacts c ON c.id = r.contact_id \
         ORDER BY o.created_at, o.id, r.created_at, r.id",
        b.page
    );
    let backend = b.db.get_database_backend();
    let rows =
        b.db.query_all_raw(Statement::from_string(backend, sql))
            .await
            .map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut edges: Vec<Value> = Vec::with_capacity(b.page);
    let mut last_id = None;
    let fail = |e: sea_orm::DbErr| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    for row in rows {
        let id: i64 = row.try_get("", "id").map_err(fail)?;
        if last_id != Some(id) {
            let micros: i64 = row.try_get("", "amount_micros").map_err(fail)?;
            let currency: String = row.try_get("", "currency").map_err(fail)?;
            edges.push(json!({ "node": {
                "id": encode(NodeKind::Opportunity, id).0,
                "name": row.try_get::<String>("", "name").map_err(fail)?,
                "amount": { "amount": micros_to_decimal(micros).to_string(), "currency": currency },
                "stage": { "name": row.try_get::<String>("", "stage_name").map_err(fail)? },
                "account": { "name": row.try_get::<String>("", "account_name").map_err(fail)? },
                "owner": { "displayName": row.try_get::<String>("", "display_name").map_err(fail)? },
                "contactRoles": [],
            }}));
            last_id = Some(id);
        }
        if let Some(role) = row.try_get::<Option<String>>("", "role").map_err(fail)?
            && let Some(Value::Array(roles)) = edges
                .last_mut()
                .and_then(|e| e["node"].get_mut("contactRoles"))
        {
            let first: String = row.try_get("", "first_name").map_err(fail)?;
            let last: String = row.try_get("", "last_name").map_err(fail)?;
            roles.push(json!({ "role": role.to_uppercase(), "contact": { "fullName": format!("{first} {last}") } }));
        }
    }
    Ok(Json(
        json!({ "data": { "opportunities": { "edges": edges } } }),
    ))
}

struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

/// Runs `clients` loops against `target` for `seconds`, checking every body.
async fn drive(
    http: &reqwest::Client,
    target: &Target,
    clients: usize,
    seconds: u64,
    page: usize,
) -> anyhow::Result<Sample> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, target, stop) = (http.clone(), target.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let body = target.call(&http, page).await?;
                latencies.push(t0.elapsed());
                check(&body, page)?;
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Sample {
        latencies,
        elapsed: started.elapsed(),
    })
}

fn check(body: &Value, page: usize) -> anyhow::Result<()> {
    if body.get("errors").is_some() {
        bail!("error response: {body}");
    }
    let edges = body["data"]["opportunities"]["edges"]
        .as_array()
        .context("no edges")?;
    if edges.len() != page {
        bail!("expected {page} edges, got {}", edges.len());
    }
    Ok(())
}

#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    token: Option<String>,
}

impl Target {
    async fn call(&self, http: &reqwest::Client, page: usize) -> anyhow::Result<Value> {
        let mut req = http
            .post(&self.url)
            .json(&json!({ "query": QUERY, "variables": { "n": page } }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        Ok(req.send().await?.error_for_status()?.json().await?)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Row {
    requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    statements: f64,
    /// CPU time of this whole process during the target's slices.
    cpu_seconds: f64,
}

impl Row {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn cpu_ms_per_request(&self) -> f64 {
        self.cpu_seconds * 1000.0 / self.requests.max(1) as f64
    }
}

/// CPU time this process has used so far, all threads, user and system, from
/// `/proc/self/stat` (zero elsewhere). Linux reports it in USER_HZ ticks, which its ABI
/// fixes at 100 per second.
///
/// On a shared machine throughput swings with the neighbours; CPU time per request
/// swings much less, since time the process waits or is descheduled does not count.
fn process_cpu_seconds() -> f64 {
    let ticks = || -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name is in parentheses and may hold spaces; fields after it
        // start at the 3rd, so utime (14th) and stime (15th) are 11th and 12th from 0.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    };
    ticks().unwrap_or(0.0) / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The server's own log, quiet unless asked for (`ACCORD_LOG=accord::scheduler=debug`).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACCORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => {
            std::fs::create_dir_all("bench/out")?;
            format!("sqlite://bench/out/accord-scale-{}.db?mode=rwc", args.scale)
        }
    };
    let db_args = DatabaseArgs {
        url: url.clone(),
        pool_size: args.pool,
    };
    let backend_name = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };

    // Seed once; reuse on later runs.
    let metrics = accord::metrics::Metrics::new();
    let db = accord::app::open_database(&db_args, &metrics).await?;
    let opportunities = accord_entities::opportunity::Entity::find()
        .count(&db)
        .await?;
    if opportunities == 0 {
        eprintln!(
            "seeding scale {} into {backend_name} (one time)...",
            args.scale
        );
        let t0 = Instant::now();
        let counts = accord::seed::scale(&db, args.scale, true).await?;
        eprintln!("{counts} in {:.0?}", t0.elapsed());
    }
    let opportunities = accord_entities::opportunity::Entity::find()
        .count(&db)
        .await?;
    let transitions = accord_entities::stage_transition::Entity::find()
        .count(&db)
        .await?;
    db.close().await.ok();
    if args.compare == Compare::Reminders {
        return reminders::run(&args, &db_args, backend_name).await;
    }
    if args.compare == Compare::Orgchart {
        return org_chart::run(&args, &db_args, backend_name).await;
    }

    let limits = Limits {
        script_worker_program: Some(match &args.worker {
            Some(worker) => worker.clone(),
            None => std::env::current_exe()?
                .with_file_name(format!("accord{}", std::env::consts::EXE_SUFFIX)),
        }),
        script_workers: args.script_workers,
        ..Limits::default()
    };
    let server = accord::app::start(&db_args, limits.clone(), "127.0.0.1:0".parse()?).await?;
    let admin_email = admin_email(&server.state.services.db).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let accord_url = format!("http://{}/graphql", server.addr);
    if args.compare == Compare::Territory {
        return territory::run(&args, &server, &http, &accord_url, backend_name).await;
    }
    if args.compare == Compare::Scripts {
        return scripts::run(
            &args,
            &server,
            &http,
            &accord_url,
            &url,
            backend_name,
            limits,
        )
        .await;
    }
    let token = login(&http, &accord_url, &admin_email).await?;

    let baseline_metrics = accord::metrics::Metrics::new();
    let baseline_db = accord::db::connect(&db_args, &baseline_metrics).await?;
    let baseline_app = Router::new()
        .route("/baseline", post(baseline_handler))
        .with_state(Baseline {
            db: baseline_db,
            page: args.page,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let baseline_addr: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, baseline_app).await });

    let accord_target = Target {
        name: "accord",
        url: accord_url,
        token: Some(token),
    };
    let baseline_target = Target {
        name: "baseline",
        url: format!("http://{baseline_addr}/baseline"),
        token: None,
    };

    // Same answer, or the comparison means nothing.
    let a = accord_target.call(&http, args.page).await?;
    let b = baseline_target.call(&http, args.page).await?;
    if a != b {
        bail!("Accord and baseline disagree:\naccord:   {a}\nbaseline: {b}");
    }
    let roles: usize = a["data"]["opportunities"]["edges"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| x["node"]["contactRoles"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    if args.floor {
        let (graphql_us, serde_us) = floor::run(&a, QUERY, args.page, 2000).await?;
        println!(
            "\nGraphQL floor (in-memory data, one thread, 2000 runs): async-graphql execute + serialize {graphql_us:.0} µs per response; serde_json alone {serde_us:.0} µs\n"
        );
    }
    eprintln!(
        "responses identical ({} opportunities, {roles} contact roles); warming up",
        args.page
    );
    drive(&http, &accord_target, 4, 1, args.page).await?;
    drive(&http, &baseline_target, 4, 1, args.page).await?;

    let targets = [
        (accord_target, server.state.metrics.as_ref()),
        (baseline_target, baseline_metrics.as_ref()),
    ];
    let mut results = measure(&http, &targets, &args).await?;

    let cpu = cpu_name();
    println!(
        "\n### Nested list, {backend_name}, {opportunities} opportunities / {transitions} transitions, page {}\n",
        args.page
    );
    println!(
        "Machine: {} cores, {cpu}. {} rounds x {} s per target and client count, alternating; pool {}.\n",
        cores(),
        args.rounds,
        args.seconds,
        args.pool
    );
    println!(
        "| clients | target | req/s | p50 ms | p99 ms | SQL stmts/req | CPU ms/req | Accord/baseline req/s | baseline/Accord CPU ms |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &clients in &args.clients {
        let (baseline_rps, baseline_cpu) = results
            .get(&(clients, "baseline"))
            .map(|row| (row.rps(), row.cpu_ms_per_request()))
            .unwrap_or_default();
        for name in ["accord", "baseline"] {
            let Some(row) = results.get_mut(&(clients, name)) else {
                continue;
            };
            let (ratio, cpu_ratio) = if name == "accord" && baseline_rps > 0.0 {
                (
                    format!("{:.2}x", row.rps() / baseline_rps),
                    format!("{:.2}x", baseline_cpu / row.cpu_ms_per_request().max(1e-9)),
                )
            } else {
                (String::new(), String::new())
            };
            println!(
                "| {clients} | {name} | {:.0} | {:.2} | {:.2} | {:.1} | {:.2} | {ratio} | {cpu_ratio} |",
                row.rps(),
                percentile(&row.latencies, 0.5).as_secs_f64() * 1000.0,
                percentile(&row.latencies, 0.99).as_secs_f64() * 1000.0,
                row.statements / row.requests.max(1) as f64,
                row.cpu_ms_per_request(),
            );
        }
    }
    println!(
        "\nCPU ms/req: this process's CPU time (servers, SQLite, load generator) per request; \
         baseline/Accord CPU ms is the baseline's CPU per request over Accord's (higher is better, like the req/s ratio). \
         On PostgreSQL the database server's own CPU is not in it."
    );
    Ok(())
}

/// Every target gets `rounds` slices per client count; the order rotates each round so
/// drift in machine load hits all targets alike.
async fn measure(
    http: &reqwest::Client,
    targets: &[(Target, &accord::metrics::Metrics)],
    args: &Args,
) -> anyhow::Result<BTreeMap<(usize, &'static str), Row>> {
    let mut results: BTreeMap<(usize, &'static str), Row> = BTreeMap::new();
    for &clients in &args.clients {
        for round in 0..args.rounds {
            for i in 0..targets.len() {
                let (target, metrics) = &targets[(i + round) % targets.len()];
                let before = metrics.statements();
                let cpu_before = process_cpu_seconds();
                let sample = drive(http, target, clients, args.seconds, args.page).await?;
                let cpu_seconds = process_cpu_seconds() - cpu_before;
                let statements = metrics.statements() - before;
                let row = results.entry((clients, target.name)).or_insert(Row {
                    requests: 0,
                    seconds: 0.0,
                    latencies: Vec::new(),
                    statements: 0.0,
                    cpu_seconds: 0.0,
                });
                row.requests += sample.latencies.len();
                row.seconds += sample.elapsed.as_secs_f64();
                row.statements += statements as f64;
                row.cpu_seconds += cpu_seconds;
                row.latencies.extend(sample.latencies);
            }
        }
    }
    for row in results.values_mut() {
        row.latencies.sort();
    }
    Ok(results)
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

/// Signs a scale user in (they all share the scale password).
async fn login(http: &reqwest::Client, url: &str, email: &str) -> anyhow::Result<String> {
    let login = json!({ "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        "variables": { "e": email, "p": accord::seed::SCALE_PASSWORD } });
    let v: Value = http.post(url).json(&login).send().await?.json().await?;
    Ok(v["data"]["login"]["token"]
        .as_str()
        .with_context(|| format!("login of {email} failed: {v}"))?
        .to_owned())
}

async fn admin_email(db: &DatabaseConnection) -> anyhow::Result<String> {
    use accord_entities::user;
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    let admin = user::Entity::find()
        .filter(user::Column::Role.eq(user::Role::Admin))
        .filter(user::Column::Email.contains("@scale.accord.test"))
        .order_by_asc(user::Column::Id)
        .one(db)
        .await?
        .context("no scale admin user; seed with --scale")?;
    Ok(admin.email)
}
