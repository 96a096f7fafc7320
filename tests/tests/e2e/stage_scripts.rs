//! Stage scripts through the API: lifecycle, enforcement on stage moves, dry-run,
//! replay, and the hostile corpus in `workflows/hostile/`.

use std::time::{Duration, Instant};

use accord_e2e::{Fixture, TestServer, data, error_code};
use accord_entities::user::Role;
use serde_json::{Value, json};

const SAVE: &str = "mutation($i: SaveStageScriptInput!) { saveStageScriptDraft(input: $i) { script { id version status } problems { message line column } } }";
const PUBLISH: &str =
    "mutation($id: ID!) { publishStageScript(id: $id) { script { id version status } } }";
const MOVE: &str = "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { version stage { name } stageHistory { script } reminders { message dueAt anchor status idempotencyKey recipient { email } } tasks { kind title status assignee { email } } } } }";

/// On entry: a reminder and a task for the owner.
const CALL_AND_PROPOSE: &str = "if event == \"enter\" { remind(\"owner\", after_days(1), \"Call them\"); \
    task(\"owner\", \"Send the proposal\", after_days(2)); }";
const NEGOTIATION: &str = r#"
require(has_role("economic_buyer"), "an economic buyer among the contact roles");
checklist("Agree the mutual close plan");
key_field("expected_close_date");
if event == "enter" {
    remind("owner", before_close_days(7), "Closes in a week: confirm signatures");
    task("owner", "Send the order form", after_days(2));
    if deal.amount > 100000 {
        require_approval("deals above 100,000 need a second pair of eyes");
    }
}
"#;

async fn save(server: &TestServer, token: &str, stage: &str, source: &str) -> Value {
    server
        .gql(
            Some(token),
            SAVE,
            json!({ "i": { "stageId": stage, "source": source, "note": "test" } }),
        )
        .await
}

async fn publish_new(server: &TestServer, token: &str, stage: &str, source: &str) -> String {
    let v = save(server, token, stage, source).await;
    let saved = &data(&v)["saveStageScriptDraft"];
    assert_eq!(saved["problems"], json!([]), "{v:#}");
    let id = saved["script"]["id"].as_str().unwrap().to_owned();
    let v = server.gql(Some(token), PUBLISH, json!({ "id": id })).await;
    assert_eq!(
        data(&v)["publishStageScript"]["script"]["status"],
        "PUBLISHED"
    );
    id
}

/// Moves deal `id` at `version` to `stage`, asking for what `MOVE` selects.
async fn move_deal(server: &TestServer, token: &str, id: &str, version: i64, stage: &str) -> Value {
    server
        .gql(
            Some(token),
            MOVE,
            json!({ "i": { "id": id, "version": version, "stageId": stage } }),
        )
        .await
}

async fn add_role(server: &TestServer, f: &Fixture, opp: &str, kind: &str) {
    let contact = server
        .create_contact(&f.token, &f.account_id, "Buyer", None)
        .await;
    let v = server
        .gql(
            Some(&f.token),
            "mutation($o: ID!, $c: ID!, $r: ContactRoleKind!) { addOpportunityContactRole(input: {opportunityId: $o, contactId: $c, role: $r}) { __typename } }",
            json!({ "o": opp, "c": contact, "r": kind }),
        )
        .await;
    data(&v);
}

#[tokio::test]
async fn drafts_are_checked_versioned_published_and_rolled_back() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let stage = &f.stages[3];

    // Problems come back with positions, and the draft is kept.
    let v = save(&server, &f.token, stage, "let a = 1;\nlet b = deal.amout;").await;
    let saved = &data(&v)["saveStageScriptDraft"];
    assert_eq!(saved["script"]["version"], 1);
    assert_eq!(saved["script"]["status"], "DRAFT");
    let problem = &saved["problems"][0];
    assert!(
        problem["message"].as_str().unwrap().contains("deal.amout"),
        "{v:#}"
    );
    assert_eq!(
        (problem["line"].as_i64(), problem["column"].as_i64()),
        (Some(2), Some(14))
    );
    let broken = saved["script"]["id"].as_str().unwrap().to_owned();
    // ... but it cannot be published.
    let v = server
        .gql(Some(&f.token), PUBLISH, json!({ "id": broken }))
        .await;
    assert_eq!(error_code(&v), "VALIDATION");

    let v1 = publish_new(&server, &f.token, stage, "checklist(\"one\");").await;
    let v2 = publish_new(&server, &f.token, stage, "checklist(\"two\");").await;
    let versions = "query($s: ID!) { stageScripts(stageId: $s) { id version status } }";
    let v = server
        .gql(Some(&f.token), versions, json!({ "s": stage }))
        .await;
    let statuses: Vec<(i64, String)> = data(&v)["stageScripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["version"].as_i64().unwrap(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (3, "PUBLISHED".to_owned()),
            (2, "ARCHIVED".to_owned()),
            (1, "DRAFT".to_owned())
        ]
    );
    // Rollback: publishing the older version again.
    let v = server
        .gql(Some(&f.token), PUBLISH, json!({ "id": v1 }))
        .await;
    assert_eq!(data(&v)["publishStageScript"]["script"]["version"], 2);
    let v = server
        .gql(Some(&f.token), versions, json!({ "s": stage }))
        .await;
    let published: Vec<&Value> = data(&v)["stageScripts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "PUBLISHED")
        .collect();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["id"], json!(v1));
    let v = server
        .gql(Some(&f.token), PUBLISH, json!({ "id": v1 }))
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
    let _ = v2;

    // Reps may read scripts but not write them; a pipeline's responsible manager only.
    let rep = server.user("rep@example.com", Role::Rep).await;
    let v = save(&server, &rep, stage, "checklist(\"mine\");").await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let manager = server.user("mgr@example.com", Role::SalesManager).await;
    let v = save(&server, &manager, stage, "checklist(\"ours\");").await;
    assert_eq!(data(&v)["saveStageScriptDraft"]["script"]["version"], 4);
    // Oversize and empty sources are refused outright.
    let v = save(&server, &f.token, stage, "   ").await;
    assert_eq!(error_code(&v), "VALIDATION");
    let v = save(&server, &f.token, stage, &"let a = 1;\n".repeat(2000)).await;
    assert_eq!(error_code(&v), "VALIDATION");
    // Malformed IDs.
    let v = server
        .gql(Some(&f.token), PUBLISH, json!({ "id": "nope" }))
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
}

#[tokio::test]
async fn stage_moves_run_guards_and_actions_in_one_transaction() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let script = publish_new(&server, &f.token, &f.stages[3], NEGOTIATION).await;
    let (opp, _) = server.create_opportunity(&f, "Big one", "250000").await;

    // The guard refuses with the script's words and nothing is written.
    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[3]).await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v:#}");
    let message = v["errors"][0]["extensions"]["scriptMessage"]
        .as_str()
        .unwrap();
    assert_eq!(
        message,
        "requires an economic buyer among the contact roles"
    );
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Negotiation refuses")
    );
    let q = "query($id: ID!) { opportunity(id: $id) { version stage { name } stageHistory { id } reminders { id } tasks { id } } }";
    let o = server.gql(Some(&f.token), q, json!({ "id": opp })).await;
    let o = &data(&o)["opportunity"];
    assert_eq!(o["version"], 1);
    assert_eq!(o["stage"]["name"], "Qualify");
    assert_eq!(o["stageHistory"].as_array().unwrap().len(), 1);
    assert_eq!(o["reminders"], json!([]));

    // Guidance shows the requirement unticked.
    let g = "query($id: ID!) { opportunity(id: $id) { guidance { outcome { checklist { text done } keyFields } problems { message } } } }";
    add_role(&server, &f, &opp, "CHAMPION").await;
    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[3]).await;
    assert_eq!(error_code(&v), "GUARD_DENIED");
    add_role(&server, &f, &opp, "ECONOMIC_BUYER").await;

    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[3]).await;
    let o = &data(&v)["moveOpportunityStage"]["opportunity"];
    assert_eq!(o["stage"]["name"], "Negotiation");
    assert_eq!(o["stageHistory"][1]["script"], json!(script));
    let reminders = o["reminders"].as_array().unwrap();
    assert_eq!(reminders.len(), 1, "{o:#}");
    // Seven days before the expected close date (2027-03-31), at 09:00 UTC.
    assert!(
        reminders[0]["dueAt"]
            .as_str()
            .unwrap()
            .starts_with("2027-03-24T09:00:00"),
        "{o:#}"
    );
    assert_eq!(reminders[0]["anchor"], "expected_close_date");
    assert_eq!(reminders[0]["recipient"]["email"], "admin@example.com");
    assert!(!reminders[0]["idempotencyKey"].as_str().unwrap().is_empty());
    let tasks = o["tasks"].as_array().unwrap();
    let kinds: Vec<&str> = tasks.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    // No territory managers: the approval goes to the admins.
    assert_eq!(kinds, vec!["TASK", "APPROVAL"], "{o:#}");

    let v = server.gql(Some(&f.token), g, json!({ "id": opp })).await;
    let outcome = &data(&v)["opportunity"]["guidance"]["outcome"];
    assert_eq!(
        outcome["checklist"],
        json!([
            { "text": "an economic buyer among the contact roles", "done": true },
            { "text": "Agree the mutual close plan", "done": null }
        ])
    );
    assert_eq!(outcome["keyFields"], json!(["expected_close_date"]));

    // A new close date moves the reminder with it.
    let v = server
        .gql(
            Some(&f.token),
            "mutation($i: UpdateOpportunityInput!) { updateOpportunity(input: $i) { opportunity { version reminders { dueAt } } } }",
            json!({ "i": { "id": opp, "version": 2, "expectedCloseDate": "2027-06-30" } }),
        )
        .await;
    let o = &data(&v)["updateOpportunity"]["opportunity"];
    assert!(
        o["reminders"][0]["dueAt"]
            .as_str()
            .unwrap()
            .starts_with("2027-06-23T09:00:00"),
        "{o:#}"
    );

    // Closing the deal cancels what its scripts left pending.
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 3, "stageId": f.stages[5], "lostReason": "Budget cut" } }),
        )
        .await;
    let o = &data(&v)["moveOpportunityStage"]["opportunity"];
    assert_eq!(o["reminders"][0]["status"], "CANCELLED");
    assert!(
        o["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "CANCELLED")
    );

    // One audit entry per change, none for the refused moves: the creation, the move
    // into Negotiation, the new close date and the close.
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { auditLog(filter: {entityId: $id}) { totalCount edges { node { action before after } } } }",
            json!({ "id": opp }),
        )
        .await;
    let log = &data(&v)["auditLog"];
    let actions: Vec<&str> = log["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["move_stage", "update", "move_stage", "create"],
        "{log:#}"
    );
    let into_negotiation = &log["edges"][2]["node"];
    assert_eq!(into_negotiation["before"]["version"], 1);
    assert_eq!(into_negotiation["after"]["version"], 2);
    assert_ne!(
        into_negotiation["before"]["stage_id"],
        into_negotiation["after"]["stage_id"]
    );
}

#[tokio::test]
async fn failing_scripts_refuse_the_move_and_dry_runs_change_nothing() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    // Runtime error on a path the sample deal does not take.
    let source = "if deal.amount == 7 { let x = roles[5].role; }";
    let script = publish_new(&server, &f.token, &f.stages[2], source).await;
    let (opp, _) = server.create_opportunity(&f, "Seven", "7").await;

    let dry = "query($s: ID!, $o: ID!, $e: ScriptEvent) { dryRunStageScript(scriptId: $s, opportunityId: $o, event: $e) { outcome { allowed } problems { message line column } } }";
    let v = server
        .gql(
            Some(&f.token),
            dry,
            json!({ "s": script, "o": opp, "e": "ENTER" }),
        )
        .await;
    let run = &data(&v)["dryRunStageScript"];
    assert!(run["outcome"].is_null());
    assert_eq!(run["problems"][0]["line"], 1, "{v:#}");

    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[2]).await;
    assert_eq!(error_code(&v), "SCRIPT_FAILED", "{v:#}");

    // A dry run of a script with actions schedules nothing.
    let noisy = publish_new(
        &server,
        &f.token,
        &f.stages[1],
        "remind(\"owner\", after_days(1), \"hello\"); task(\"owner\", \"call\", after_hours(4));",
    )
    .await;
    let v = server
        .gql(Some(&f.token), "query($s: ID!, $o: ID!) { dryRunStageScript(scriptId: $s, opportunityId: $o) { outcome { allowed actions { kind to anchor offsetMinutes text } } } }", json!({ "s": noisy, "o": opp }))
        .await;
    let actions = &data(&v)["dryRunStageScript"]["outcome"]["actions"];
    assert_eq!(
        actions,
        &json!([
            { "kind": "REMIND", "to": "owner", "anchor": "transition", "offsetMinutes": 1440, "text": "hello" },
            { "kind": "TASK", "to": "owner", "anchor": "transition", "offsetMinutes": 240, "text": "call" }
        ])
    );
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { opportunity(id: $id) { reminders { id } tasks { id } } }",
            json!({ "id": opp }),
        )
        .await;
    assert_eq!(data(&v)["opportunity"]["reminders"], json!([]));
    assert_eq!(data(&v)["opportunity"]["tasks"], json!([]));

    // Reps do not run drafts; a manager cannot dry-run against a deal they cannot see:
    // it does not exist for them.
    let rep = server.user("rep@example.com", Role::Rep).await;
    let v = server
        .gql(
            Some(&rep),
            dry,
            json!({ "s": noisy, "o": opp, "e": "ENTER" }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = server
        .gql(
            Some(&rep),
            "query { validateStageScript(source: \"loop {}\") { message } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let manager = server.user("mgr@example.com", Role::SalesManager).await;
    let v = server
        .gql(
            Some(&manager),
            dry,
            json!({ "s": noisy, "o": opp, "e": "ENTER" }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn replay_compares_a_draft_with_the_published_version_over_history() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    // Five deals reach Proposal with no script; two are above 50,000.
    for (i, amount) in ["1000", "60000", "2000", "75000", "3000"]
        .iter()
        .enumerate()
    {
        let (opp, _) = server
            .create_opportunity(&f, &format!("Deal {i}"), amount)
            .await;
        let v = move_deal(&server, &f.token, &opp, 1, &f.stages[2]).await;
        data(&v);
    }
    publish_new(
        &server,
        &f.token,
        &f.stages[2],
        "remind(\"owner\", after_days(2), \"follow up\");",
    )
    .await;
    let end = chrono::Utc::now() + chrono::Duration::minutes(1);
    // A draft of Proposal's script replayed over the period; the report.
    let replay = async |source: &str| {
        let v = save(&server, &f.token, &f.stages[2], source).await;
        let draft = data(&v)["saveStageScriptDraft"]["script"]["id"].clone();
        let v = server
            .gql(
                Some(&f.token),
                "query($s: ID!, $f: DateTime!, $t: DateTime!) { replayStageScript(scriptId: $s, from: $f, to: $t) { transitions replayed { blocked reminders failures } published { blocked reminders } publishedVersion differing differences { replayed published } truncated } }",
                json!({ "s": draft, "f": start.to_rfc3339(), "t": end.to_rfc3339() }),
            )
            .await;
        data(&v)["replayStageScript"].clone()
    };
    let r = &replay("if deal.amount > 50000 { deny(\"big deals need a discovery call first\"); }")
        .await;
    assert_eq!(r["transitions"], 5, "{r:#}");
    assert_eq!(
        r["replayed"],
        json!({ "blocked": 2, "reminders": 0, "failures": 0 })
    );
    assert_eq!(r["published"], json!({ "blocked": 0, "reminders": 5 }));
    assert_eq!(r["publishedVersion"], 1);
    assert_eq!(r["differing"], 2);
    assert_eq!(
        r["differences"][0]["replayed"],
        "big deals need a discovery call first"
    );
    assert!(r["differences"][0]["published"].is_null());
    assert_eq!(r["truncated"], false);

    // A draft that fails on one deal and runs away on another: each failure is counted
    // against its own transition, and the published version's answers stand.
    let r = &replay(
        r#"if deal.name == "Deal 1" { throw "no amount rule for this one"; }
           if deal.name == "Deal 3" { loop { } }"#,
    )
    .await;
    assert_eq!(
        r["replayed"],
        json!({ "blocked": 0, "reminders": 0, "failures": 2 }),
        "{r:#}"
    );
    assert_eq!(r["published"], json!({ "blocked": 0, "reminders": 5 }));
    assert_eq!(r["differing"], 2);
    let said: Vec<&str> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["replayed"].as_str().unwrap())
        .collect();
    assert!(said[0].contains("no amount rule for this one"), "{said:?}");
    assert!(said[1].contains("time limit"), "{said:?}");
}

/// Every file of the hostile corpus is refused or stopped, with the limit named,
/// within the time limit (plus slack for a debug build on a busy machine), while the
/// server keeps answering.
#[tokio::test]
async fn hostile_corpus_is_refused_or_stopped_by_a_named_limit() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus too small: {}", files.len());
    let validate = "query($s: String!) { validateStageScript(source: $s) { message line column } }";
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let expect = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{} has no expect line", file.display()))
            .to_owned();
        // Meanwhile, the server answers other requests promptly.
        let health = {
            let url = format!("{}/healthz", server.url);
            let http = server.http.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let asked = Instant::now();
                let ok = http.get(url).send().await.map(|r| r.status().is_success());
                (ok.unwrap_or(false), asked.elapsed())
            })
        };
        let started = Instant::now();
        let v = server
            .gql(Some(&token), validate, json!({ "s": source }))
            .await;
        let took = started.elapsed();
        let problems = data(&v)["validateStageScript"].as_array().unwrap().clone();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(!problems.is_empty(), "{name}: accepted");
        let message = problems[0]["message"].as_str().unwrap();
        // `a | b`: either limit may strike first (speed differs between builds).
        if expect != "refused" {
            assert!(
                expect.split(" | ").any(|e| message.contains(e)),
                "{name}: expected `{expect}`, got {v:#}"
            );
        }
        assert!(took < Duration::from_millis(2_000), "{name}: took {took:?}");
        let (healthy, health_took) = health.await.unwrap();
        assert!(healthy, "{name}: /healthz failed during the attack");
        assert!(
            health_took < Duration::from_millis(500),
            "{name}: /healthz took {health_took:?} during the attack"
        );
    }
    // After all that, scripts still run.
    let v = server
        .gql(
            Some(&token),
            validate,
            json!({ "s": "checklist(\"fine\");" }),
        )
        .await;
    assert_eq!(data(&v)["validateStageScript"], json!([]));
}

/// A move's exit and entry scripts run in one exchange with the sandbox. When one of
/// them breaks a limit there, the error still names the stage whose script did it, and
/// nothing is written.
#[tokio::test]
async fn a_runaway_exit_script_is_named_and_stops_the_move() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let (opp, _) = server.create_opportunity(&f, "Stuck", "1000").await;
    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[1]).await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["version"],
        2
    );
    // Discovery's script runs away when this deal leaves (validation, on a sample
    // deal, cannot see it); Proposal's is fine.
    publish_new(
        &server,
        &f.token,
        &f.stages[1],
        r#"if event == "exit" && deal.name == "Stuck" { loop { } }"#,
    )
    .await;
    publish_new(
        &server,
        &f.token,
        &f.stages[2],
        r#"checklist("Send the proposal");"#,
    )
    .await;
    let started = Instant::now();
    let v = move_deal(&server, &f.token, &opp, 2, &f.stages[2]).await;
    assert_eq!(error_code(&v), "SCRIPT_FAILED", "{v:#}");
    let said = v.to_string();
    assert!(said.contains("Discovery"), "{v:#}");
    assert!(said.contains("time limit"), "{v:#}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // Nothing moved: the deal is where it was, at its version, with one more move
    // possible once the script is fixed.
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { node(id: $id) { ... on Opportunity { version stage { name } stageHistory { script } } } }",
            json!({ "id": opp }),
        )
        .await;
    let deal = &data(&v)["node"];
    assert_eq!(deal["version"], 2);
    assert_eq!(deal["stage"]["name"], "Discovery");
    assert_eq!(deal["stageHistory"].as_array().unwrap().len(), 2);
    publish_new(
        &server,
        &f.token,
        &f.stages[1],
        r#"checklist("Qualified");"#,
    )
    .await;
    let v = move_deal(&server, &f.token, &opp, 2, &f.stages[2]).await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["stage"]["name"],
        "Proposal",
        "{v:#}"
    );
}

/// A script whose publisher is deactivated stops the moves it would run in, even on an
/// instance that cached it before, and the entering stage answers first: its guard's
/// refusal comes before the gone publisher of the stage being left.
#[tokio::test]
async fn a_gone_publisher_stops_moves_once_the_entry_allows_them() {
    use sea_orm::ConnectionTrait;
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let ops = server.user("ops@example.com", Role::Admin).await;
    let mut deals = Vec::new();
    for name in ["First", "Second"] {
        let (opp, _) = server.create_opportunity(&f, name, "1000").await;
        let v = move_deal(&server, &f.token, &opp, 1, &f.stages[1]).await;
        assert_eq!(
            data(&v)["moveOpportunityStage"]["opportunity"]["version"],
            2
        );
        deals.push(opp);
    }
    publish_new(&server, &ops, &f.stages[1], r#"checklist("Discovered");"#).await;
    publish_new(
        &server,
        &f.token,
        &f.stages[2],
        r#"checklist("Proposal sent");"#,
    )
    .await;
    // This move caches both scripts, with their publishers active.
    let v = move_deal(&server, &f.token, &deals[0], 2, &f.stages[2]).await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["version"],
        3
    );
    server
        .state
        .services
        .db
        .execute_unprepared("UPDATE users SET active = false WHERE email = 'ops@example.com'")
        .await
        .unwrap();
    let v = move_deal(&server, &f.token, &deals[1], 2, &f.stages[2]).await;
    assert_eq!(error_code(&v), "SCRIPT_FAILED", "{v:#}");
    let said = v.to_string();
    assert!(said.contains("no longer an active user"), "{v:#}");
    assert!(said.contains("Discovery"), "{v:#}");
    // With an entry guard that refuses, the refusal is the answer.
    publish_new(
        &server,
        &f.token,
        &f.stages[2],
        r#"deny("not this quarter");"#,
    )
    .await;
    let v = move_deal(&server, &f.token, &deals[1], 2, &f.stages[2]).await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v:#}");
}

#[tokio::test]
async fn a_script_acts_with_its_authors_permissions_at_most() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    // A sales manager with no territory writes a script that edits deals.
    let manager = server.user("mgr@example.com", Role::SalesManager).await;
    publish_new(
        &server,
        &manager,
        &f.stages[1],
        "set_field(\"grade\", \"A\");",
    )
    .await;
    let (opp, _) = server.create_opportunity(&f, "Elsewhere", "5000").await;
    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[1]).await;
    assert_eq!(error_code(&v), "SCRIPT_FAILED", "{v:#}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("author may not edit")
    );
    // The same script published by the admin applies.
    publish_new(
        &server,
        &f.token,
        &f.stages[1],
        "set_field(\"grade\", \"A\");",
    )
    .await;
    let v = server
        .gql(
            Some(&f.token),
            "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { grade } } }",
            json!({ "i": { "id": opp, "version": 1, "stageId": f.stages[1] } }),
        )
        .await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["grade"],
        "A"
    );
}

#[tokio::test]
async fn only_the_responsible_manager_edits_a_pipelines_scripts() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let maria = server.user("maria@example.com", Role::SalesManager).await;
    let tom = server.user("tom@example.com", Role::SalesManager).await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let set = "mutation($id: ID!, $v: Int!, $m: ID) { setPipelineManager(id: $id, version: $v, managerId: $m) { pipeline { version manager { email } } } }";
    // Only admins name the responsible manager, and only a sales manager can be one.
    let maria_id = server.user_id(&maria).await;
    let v = server
        .gql(
            Some(&tom),
            set,
            json!({ "id": f.pipeline_id, "v": 1, "m": maria_id }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let rep_id = server.user_id(&rep).await;
    let v = server
        .gql(
            Some(&f.token),
            set,
            json!({ "id": f.pipeline_id, "v": 1, "m": rep_id }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    let v = server
        .gql(
            Some(&f.token),
            set,
            json!({ "id": f.pipeline_id, "v": 1, "m": maria_id }),
        )
        .await;
    assert_eq!(
        data(&v)["setPipelineManager"]["pipeline"]["manager"]["email"],
        "maria@example.com"
    );
    let v = save(&server, &tom, &f.stages[2], "checklist(\"tom's\");").await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = save(&server, &maria, &f.stages[2], "checklist(\"maria's\");").await;
    assert_eq!(data(&v)["saveStageScriptDraft"]["script"]["version"], 1);
    // Back to nobody: any sales manager again.
    let v = server
        .gql(
            Some(&f.token),
            set,
            json!({ "id": f.pipeline_id, "v": 2, "m": null }),
        )
        .await;
    assert!(data(&v)["setPipelineManager"]["pipeline"]["manager"].is_null());
    let v = save(&server, &tom, &f.stages[2], "checklist(\"tom's\");").await;
    assert_eq!(data(&v)["saveStageScriptDraft"]["script"]["version"], 2);
}

/// With the wall clock out of the way, the memory cap alone stops growth, and says so.
#[tokio::test]
async fn memory_cap_stops_growth_before_a_generous_clock() {
    let limits = accord::config::Limits {
        script_time_ms: 20_000,
        ..Default::default()
    };
    let server = TestServer::start_with(limits).await;
    let token = server.admin().await;
    for source in [
        "let s = \"ab\"; loop { s += s; }",
        "let a = [1, 2, 3]; loop { a += a; }",
    ] {
        let started = Instant::now();
        let v = server
            .gql(
                Some(&token),
                "query($s: String!) { validateStageScript(source: $s) { message } }",
                json!({ "s": source }),
            )
            .await;
        let message = data(&v)["validateStageScript"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("memory limit") && message.contains("64 MiB"),
            "{source}: {v:#}"
        );
        assert!(started.elapsed() < Duration::from_secs(15), "{source}");
    }
}

/// Creating a deal enters its first stage: the guard and actions of that stage apply,
/// whichever stage the deal is created in.
#[tokio::test]
async fn creating_a_deal_runs_the_entered_stages_script() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    publish_new(&server, &f.token, &f.stages[3], NEGOTIATION).await;
    publish_new(
        &server,
        &f.token,
        &f.stages[0],
        "require(deal.source != (), \"a lead source\"); if event == \"enter\" { task(\"owner\", \"Qualify \" + deal.name, after_days(1)); }",
    )
    .await;
    let create = "mutation($i: CreateOpportunityInput!) { createOpportunity(input: $i) { opportunity { stage { name } stageHistory { script } tasks { title } } } }";
    let input = |stage: Option<&str>, source: Option<&str>| {
        json!({ "i": { "name": "Fresh", "accountId": f.account_id, "pipelineId": f.pipeline_id,
            "stageId": stage, "source": source, "amount": "1000", "currency": "EUR", "expectedCloseDate": "2027-03-31" } })
    };
    let count = "{ opportunities { totalCount } }";
    // Straight into Negotiation without an economic buyer: refused, nothing created.
    let v = server
        .gql(
            Some(&f.token),
            create,
            input(Some(&f.stages[3]), Some("WEB")),
        )
        .await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v:#}");
    // Into the entry stage without a source: refused too.
    let v = server.gql(Some(&f.token), create, input(None, None)).await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v:#}");
    let v = server.gql(Some(&f.token), count, json!({})).await;
    assert_eq!(data(&v)["opportunities"]["totalCount"], 0);
    // With a source: created, and the entry stage's task is there.
    let v = server
        .gql(Some(&f.token), create, input(None, Some("WEB")))
        .await;
    let o = &data(&v)["createOpportunity"]["opportunity"];
    assert_eq!(o["tasks"], json!([{ "title": "Qualify Fresh" }]));
    assert!(o["stageHistory"][0]["script"].is_string());
}

/// Reminders reach only people who may read the deal, and a stage's reminders end when
/// the deal leaves the stage.
#[tokio::test]
async fn reminders_reach_readers_only_and_end_with_their_stage() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let emea = server.territory(&f.token, "EMEA", None).await;
    let insider = server.user("insider@example.com", Role::Rep).await;
    let _outsider = server.user("outsider@example.com", Role::Rep).await;
    server.grant(&f.token, &emea, &insider, "READ", false).await;
    let account = server.create_account_in(&f.token, "Fjord AS", &emea).await;
    let v = server
        .gql(
            Some(&f.token),
            "mutation($a: ID!, $p: ID!) { createOpportunity(input: {name: \"Fjord\", accountId: $a, pipelineId: $p, amount: \"900\", currency: \"EUR\", expectedCloseDate: \"2027-03-31\"}) { opportunity { id } } }",
            json!({ "a": account, "p": f.pipeline_id }),
        )
        .await;
    let opp = data(&v)["createOpportunity"]["opportunity"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    publish_new(
        &server,
        &f.token,
        &f.stages[1],
        "if event == \"enter\" { remind(\"role:rep\", after_days(1), \"Reps, look at \" + deal.name); }",
    )
    .await;
    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[1]).await;
    let reminders = &data(&v)["moveOpportunityStage"]["opportunity"]["reminders"];
    let to: Vec<&str> = reminders
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recipient"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(to, vec!["insider@example.com"], "{reminders:#}");

    // Leaving the stage cancels its reminders.
    let v = move_deal(&server, &f.token, &opp, 2, &f.stages[2]).await;
    let reminders = &data(&v)["moveOpportunityStage"]["opportunity"]["reminders"];
    assert_eq!(reminders[0]["status"], "CANCELLED", "{reminders:#}");
}

/// Whatever a script throws, what comes back is short. (Twenty thousand characters,
/// not more: a debug build under a loaded CI machine must stay inside the script's
/// 250 ms clock, or the message is about the clock instead.)
#[tokio::test]
async fn script_errors_come_back_bounded() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let v = server
        .gql(
            Some(&token),
            "query($s: String!) { validateStageScript(source: $s) { message } }",
            json!({ "s": "let s = \"x\"; s.pad(20000, \"y\"); throw s;" }),
        )
        .await;
    let message = data(&v)["validateStageScript"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("on a sample deal (enter): xyyy"),
        "{message}"
    );
    assert!(
        message.chars().count() < 600,
        "{} chars",
        message.chars().count()
    );
}

/// Loading a deal's buying committee costs several statements; a move pays for it only
/// when the stage's script reads `committee` in its code, not when a message or a
/// comment says the word.
/// Statements of one move into `stage` of a fresh deal; the least of three tries, so a
/// token look-up or a scheduler pass in between does not count.
async fn move_cost(server: &TestServer, f: &Fixture, stage: &str) -> u64 {
    let mut least = u64::MAX;
    for _ in 0..3 {
        let (opp, _) = server.create_opportunity(f, "Counted", "1000").await;
        let before = server.statements();
        let v = server
            .gql(
                Some(&f.token),
                "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { version } } }",
                json!({ "i": { "id": opp, "version": 1, "stageId": stage } }),
            )
            .await;
        assert_eq!(
            data(&v)["moveOpportunityStage"]["opportunity"]["version"],
            2,
            "{v:#}"
        );
        least = least.min(server.statements() - before);
    }
    least
}

/// A move reads the deal with its account, owner and pipeline in one statement, takes
/// the published scripts from the instance's cache, and loads only the parts of the
/// deal's story (contact roles, history, activity, committee) its scripts can read.
#[tokio::test]
async fn a_move_loads_only_what_its_scripts_read() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let into = &f.stages[1];
    let unscripted = move_cost(&server, &f, into).await;
    // The read, then in the transaction one statement: the transition, the left stage's
    // reminders cancelled, the audit entry and the update (which re-checks the scripts).
    assert!(unscripted <= 2, "a move without scripts cost {unscripted}");
    let actions = r#"
        remind("owner", after_days(2), "Follow up");
        task("owner", "Send the deck", after_days(1));"#;
    let cost_of = async |source: &str| {
        publish_new(&server, &f.token, into, &format!("{source}\n{actions}")).await;
        move_cost(&server, &f, into).await
    };
    let plain = cost_of(r#"require(deal.amount > 0, "an amount");"#).await;
    // The reminder and the task go in the same write: the owner needs no look-up.
    assert_eq!(plain, unscripted, "a script reading only the deal");
    let says = cost_of(r#"require(true, "roles, history, activity and a committee");"#).await;
    assert_eq!(says, plain, "names in a message loaded something");
    for (source, what) in [
        (r#"require(roles.len() >= 0, "x");"#, "roles"),
        (r#"require(has_role("champion") || true, "x");"#, "has_role"),
        (r#"require(history.len() >= 0, "x");"#, "history"),
        (r#"require(activity.count >= 0, "x");"#, "activity"),
    ] {
        let cost = cost_of(source).await;
        assert_eq!(cost, plain + 1, "a script reading {what}");
    }
    let committee = cost_of(r#"require(committee.blockers >= 0, "x");"#).await;
    assert!(
        committee > plain + 1,
        "reading the committee should load it: {committee} vs {plain} statements"
    );
}

/// Each instance caches the published scripts; a move re-checks them in its
/// transaction, so a script published or archived on another instance guards the very
/// next move here.
#[tokio::test]
async fn a_script_published_on_another_instance_guards_the_next_move_here() {
    let one = TestServer::start().await;
    let f = one.fixture().await;
    let two = one.start_sibling(accord::config::Limits::default()).await;
    let into = &f.stages[1];
    let move_on = async |server: &TestServer| {
        let (opp, _) = one.create_opportunity(&f, "Cached", "1000").await;
        move_deal(server, &f.token, &opp, 1, into).await
    };
    // Instance two learns that the stage has no script.
    let v = move_on(&two).await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["version"],
        2
    );
    let id = publish_new(&one, &f.token, into, r#"deny("closed for the audit");"#).await;
    let v = move_on(&two).await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v:#}");
    assert!(v.to_string().contains("closed for the audit"), "{v:#}");
    // And learns that it is gone again.
    let v = one
        .gql(
            Some(&f.token),
            "mutation($id: ID!) { archiveStageScript(id: $id) { script { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data(&v)["archiveStageScript"]["script"]["status"],
        "ARCHIVED"
    );
    let v = move_on(&two).await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["version"],
        2,
        "{v:#}"
    );
    // A script that acts, published there, acts here.
    publish_new(
        &one,
        &f.token,
        into,
        r#"task("owner", "Call the champion", after_days(1));"#,
    )
    .await;
    let (opp, _) = one.create_opportunity(&f, "Cached", "1000").await;
    let v = move_deal(&two, &f.token, &opp, 1, into).await;
    let tasks = &data(&v)["moveOpportunityStage"]["opportunity"]["tasks"];
    assert_eq!(tasks[0]["title"], "Call the champion", "{v:#}");
    // The first attempt, decided without the script, wrote its transition, audit entry
    // and the rest before its update found the script changed; all of it was rolled
    // back, and only the second attempt's writes are there.
    let v = written_for(&one, &f.token, &opp).await;
    let o = &data(&v)["opportunity"];
    assert_eq!(o["version"], 2, "{v:#}");
    assert_eq!(o["stageHistory"].as_array().unwrap().len(), 2, "{v:#}");
    assert!(!o["stageHistory"][1]["script"].is_null(), "{v:#}");
    assert_eq!(o["tasks"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(data(&v)["auditLog"]["totalCount"], 2, "{v:#}");
}

/// A deal that changes hands takes with it the pending reminders and open tasks its
/// scripts addressed to the owner; a reminder someone set by hand stays with them.
#[tokio::test]
async fn script_reminders_and_tasks_for_the_owner_follow_the_deal_to_a_new_owner() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let heir = server.user("heir@example.com", Role::Rep).await;
    let v = server.gql(Some(&heir), "{ me { id } }", json!({})).await;
    let heir_id = data(&v)["me"]["id"].as_str().unwrap().to_owned();
    let (opp, _) = server.create_opportunity(&f, "Handover", "900").await;
    publish_new(&server, &f.token, &f.stages[1], CALL_AND_PROPOSE).await;
    let v = move_deal(&server, &f.token, &opp, 1, &f.stages[1]).await;
    data(&v);
    let v = server
        .gql(
            Some(&f.token),
            "mutation($o: ID!) { createReminder(input: {opportunityId: $o, dueAt: \"2027-01-15T09:00:00Z\", message: \"My own note\"}) { id } }",
            json!({ "o": opp }),
        )
        .await;
    data(&v);

    let v = server
        .gql(
            Some(&f.token),
            "mutation($i: UpdateOpportunityInput!) { updateOpportunity(input: $i) { opportunity { owner { email }
               reminders { message status recipient { email } } tasks { title status assignee { email } } } } }",
            json!({ "i": { "id": opp, "version": 2, "ownerId": heir_id } }),
        )
        .await;
    let deal = &data(&v)["updateOpportunity"]["opportunity"];
    assert_eq!(deal["owner"]["email"], "heir@example.com");
    let mut reminders: Vec<(String, String)> = deal["reminders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "PENDING", "{r}");
            (
                r["message"].as_str().unwrap().to_owned(),
                r["recipient"]["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    reminders.sort();
    assert_eq!(
        reminders,
        [
            ("Call them".to_owned(), "heir@example.com".to_owned()),
            ("My own note".to_owned(), "admin@example.com".to_owned()),
        ],
        "{deal:#}"
    );
    assert_eq!(deal["tasks"][0]["title"], "Send the proposal");
    assert_eq!(deal["tasks"][0]["assignee"]["email"], "heir@example.com");
    assert_eq!(deal["tasks"][0]["status"], "OPEN");

    // The new owner sees them as their own.
    let v = server
        .gql(
            Some(&heir),
            "query($id: ID!) { opportunity(id: $id) { tasks { assignee { email } } } }",
            json!({ "id": opp }),
        )
        .await;
    assert_eq!(
        data(&v)["opportunity"]["tasks"][0]["assignee"]["email"],
        "heir@example.com"
    );

    // Rows written before the migration that added the mark get it where a script made
    // them for the deal's current owner: here the reminder and task just handed over,
    // not the hand-made reminder.
    use accord_migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Statement};
    let db = &server.state.services.db;
    Migrator::down(db, Some(1)).await.unwrap();
    Migrator::up(db, None).await.unwrap();
    let marked = |sql: &'static str| async move {
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).unwrap(),
                    r.try_get_by_index::<bool>(1).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        marked("SELECT message, follows_owner FROM reminders ORDER BY message").await,
        [
            ("Call them".to_owned(), true),
            ("My own note".to_owned(), false)
        ]
    );
    assert_eq!(
        marked("SELECT title, follows_owner FROM tasks").await,
        [("Send the proposal".to_owned(), true)]
    );
}

/// Moves of one deal from the same version at once: exactly one is written, with its
/// reminder, task, transition and audit entry; the others are told the deal changed and
/// leave nothing behind, although each of them sent its writes before finding that
/// out. Into a stage whose script sets a reminder, a losing move's reminder collides
/// with the winner's key first; into one whose script only makes a task, its writes go
/// through and its update finds the new version.
#[tokio::test]
async fn concurrent_moves_of_one_deal_write_exactly_one() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    publish_new(&server, &f.token, &f.stages[1], CALL_AND_PROPOSE).await;
    publish_new(
        &server,
        &f.token,
        &f.stages[2],
        "if event == \"enter\" { task(\"owner\", \"Send the proposal\", after_days(2)); }",
    )
    .await;
    for (into, reminders) in [
        (&f.stages[1], json!([{ "message": "Call them" }])),
        (&f.stages[2], json!([])),
    ] {
        let (opp, _) = server.create_opportunity(&f, "Contended", "900").await;
        let attempts = (0..8).map(|_| move_deal(&server, &f.token, &opp, 1, into));
        let results = futures::future::join_all(attempts).await;
        let winners = results.iter().filter(|v| v.get("errors").is_none()).count();
        let stale = results
            .iter()
            .filter(|v| {
                v.get("errors").is_some()
                    && error_code(v) == "CONFLICT"
                    && v["errors"][0]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("changed by someone else"))
            })
            .count();
        assert_eq!((winners, stale), (1, 7), "{results:#?}");
        let v = written_for(&server, &f.token, &opp).await;
        let o = &data(&v)["opportunity"];
        assert_eq!(o["version"], 2, "{v:#}");
        assert_eq!(o["stageHistory"].as_array().unwrap().len(), 2, "{v:#}");
        assert_eq!(o["reminders"], reminders, "{v:#}");
        assert_eq!(
            o["tasks"],
            json!([{ "title": "Send the proposal" }]),
            "{v:#}"
        );
        assert_eq!(data(&v)["auditLog"]["totalCount"], 2, "{v:#}");
    }
}

/// What a deal's moves have left: its version, stage history, reminders and tasks, and
/// how many audit entries it has.
async fn written_for(server: &TestServer, token: &str, opp: &str) -> Value {
    server
        .gql(
            Some(token),
            "query($id: ID!) { opportunity(id: $id) { version stageHistory { script } reminders { message } tasks { title } } auditLog(filter: {entityId: $id}) { totalCount } }",
            json!({ "id": opp }),
        )
        .await
}
