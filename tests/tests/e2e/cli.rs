//! The `accord` binary itself: migrate, seed, user add, schema, and serve.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use accord_e2e::{accord_binary, fresh_database};
use serde_json::{Value, json};

fn accord(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(accord_binary())
        .args(args)
        .env("DATABASE_URL", db)
        .env("ACCORD_LOG", "warn")
        .output()
        .expect("run accord")
}

#[tokio::test]
async fn cli_migrates_seeds_adds_users_and_serves() {
    let (db, _dir) = fresh_database().await;

    let out = accord(&db, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = accord(&db, &["seed", "--demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("admin@accord.test")
            && printed.contains("sales_manager")
            && printed.contains("rep")
    );
    // Seeding twice is refused rather than duplicating the company.
    assert!(!accord(&db, &["seed", "--demo"]).status.success());

    let mut child = Command::new(accord_binary())
        .args([
            "user",
            "add",
            "--email",
            "ops@example.com",
            "--role",
            "admin",
        ])
        .env("DATABASE_URL", &db)
        .env("ACCORD_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-very-secret-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all_output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all_output.contains("a-very-secret-password"),
        "the password must never be printed"
    );

    let out = accord(&db, &["schema"]);
    let sdl = String::from_utf8_lossy(&out.stdout);
    assert!(
        sdl.contains("type Opportunity implements Node") && sdl.contains("moveOpportunityStage")
    );

    // The most verbose logging there is, to prove secrets stay out of it.
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("server.log");
    let mut server = Command::new(accord_binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db)
        .env("ACCORD_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("listening line")
        .to_owned();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let page = http
        .get(format!("{url}/graphiql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.to_lowercase().contains("graphiql"));

    let login = json!({ "query": "mutation { login(email: \"ops@example.com\", password: \"a-very-secret-password\") { token } }" });
    let v: Value = http
        .post(format!("{url}/graphql"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["data"]["login"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let q = json!({ "query": "{ opportunities { totalCount } pipelines { edges { node { name stages { name } } } } }" });
    let v: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(&token)
        .json(&q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["opportunities"]["totalCount"], 20, "{v}");
    assert_eq!(v["data"]["pipelines"]["edges"].as_array().unwrap().len(), 2);

    // Demo reps work inside their territories: Lena Fischer sees DACH and nothing else.
    let login = json!({ "query": "mutation($p: String!) { login(email: \"lena.fischer@accord.test\", password: $p) { token } }",
        "variables": { "p": accord::seed::DEMO_PASSWORD } });
    let v: Value = http
        .post(format!("{url}/graphql"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rep_token = v["data"]["login"]["token"].as_str().expect("rep token");
    let q = json!({ "query": "{ accounts(first: 50) { totalCount edges { node { territory { name } } } } }" });
    let v: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(rep_token)
        .json(&q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let places: Vec<&str> = v["data"]["accounts"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["territory"]["name"].as_str().unwrap_or("?"))
        .collect();
    assert!(
        !places.is_empty() && places.iter().all(|p| *p == "DACH"),
        "{v}"
    );

    // The demo's stage scripts run in this binary's own script workers: guidance for a
    // deal in Proposal, and the Negotiation guard on a move.
    let gql = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        let token = token.clone();
        async move {
            http.post(format!("{url}/graphql"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let v = gql(json!({ "query": "{ opportunities(first: 20, filter: {stageKind: OPEN}) { edges { node { id version stage { name pipeline { stages { id name } } } guidance { outcome { checklist { text done } } problems { message } } } } } }" })).await;
    let in_proposal = v["data"]["opportunities"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["stage"]["name"] == "Proposal")
        .unwrap_or_else(|| panic!("a demo deal in Proposal: {v}"))
        .clone();
    let checklist = &in_proposal["guidance"]["outcome"]["checklist"];
    assert!(
        checklist.as_array().is_some_and(|c| c
            .iter()
            .any(|i| i["text"] == "Send the proposal and agree a date to walk through it")),
        "{in_proposal}"
    );
    let negotiation = in_proposal["stage"]["pipeline"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Negotiation")
        .unwrap()["id"]
        .clone();
    let v = gql(json!({
        "query": "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { reminders { message } } } }",
        "variables": { "i": { "id": in_proposal["id"], "version": in_proposal["version"], "stageId": negotiation } }
    }))
    .await;
    let moved = v["data"]["moveOpportunityStage"]["opportunity"]["reminders"]
        .as_array()
        .is_some_and(|r| r.len() >= 2);
    let guarded = v["errors"][0]["extensions"]["code"] == "GUARD_DENIED"
        && v["errors"][0]["extensions"]["scriptMessage"]
            .as_str()
            .is_some_and(|m| m.contains("economic buyer"));
    assert!(moved || guarded, "{v}");

    let create = json!({ "query": "mutation { createApiToken(name: \"ci\") { secret } }" });
    let v: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(&token)
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_secret = v["data"]["createApiToken"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("accord_graphql_requests_total")
            && metrics.contains("accord_db_statements_total")
            && metrics.contains("accord_graphql_records_answered_directly_total"),
        "{metrics}"
    );
    assert!(!metrics.contains(&token));

    server.kill().ok();
    server.wait().ok();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.len() > 1000,
        "expected trace output, got {} bytes",
        log.len()
    );
    for secret in [
        "a-very-secret-password",
        token.as_str(),
        api_secret.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

/// The benchmark data set must seed on both backends: SQLite caps bound variables per
/// statement, so the widest table's batch size is what this guards.
#[tokio::test]
async fn cli_seeds_a_scaled_data_set() {
    let (db, _dir) = fresh_database().await;
    let out = accord(&db, &["seed", "--scale", "0.01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "1000 accounts",
        "3000 contacts",
        "10000 opportunities",
        "50000 stage transitions",
    ] {
        assert!(
            printed.contains(expected),
            "{expected} missing in {printed}"
        );
    }
    // A second scaled seed appends rather than colliding on keys.
    let out = accord(&db, &["seed", "--scale", "0.01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every migration's `down` undoes its `up`: the schema goes all the way down and back
/// up, and the reminder indexes of the latest migration are the ones in place after.
#[tokio::test]
async fn migrations_revert_and_reapply() {
    use accord_migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

    let (url, _guard) = fresh_database().await;
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    Migrator::down(&db, None).await.unwrap();
    assert!(
        Migrator::get_applied_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(&db, None).await.unwrap();

    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'reminders' ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'reminders' AND name LIKE 'ix_%' ORDER BY 1"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .filter(|n| n.starts_with("ix_"))
        .collect();
    assert_eq!(
        names,
        [
            "ix_reminders_event_only",
            "ix_reminders_opportunity_only",
            "ix_reminders_pending",
            "ix_reminders_recipient_due"
        ]
    );
}
