//! Reminder delivery end to end: a real scheduler claims due reminders and delivers them
//! to a real webhook receiver, a real SMTP server and a real WebSocket subscriber.

use std::time::Duration;

use accord::config::{Delivery, Limits};
use accord_e2e::{
    Backend, SinkMode, SmtpSink, TestServer, WebhookSink, backend, data, error_code, error_field,
};
use accord_entities::user::Role;
use chrono::{DateTime, Utc};
use hmac::Mac;
use serde_json::{Value, json};

fn delivery(allow_loopback: bool) -> Limits {
    Limits {
        delivery: Delivery {
            webhook_allow: if allow_loopback {
                vec!["127.0.0.1/32".parse().unwrap()]
            } else {
                Vec::new()
            },
            reminder_backoff_ms: 100,
            reminder_max_attempts: 3,
            reminder_lease_ms: 2_000,
            webhook_timeout_ms: 2_000,
            ..Delivery::default()
        },
        ..Limits::default()
    }
}

const CREATE_REMINDER: &str = r#"mutation($i: CreateReminderInput!) {
    createReminder(input: $i) { id status idempotencyKey dueAt channels } }"#;

async fn remind(s: &TestServer, token: &str, input: Value) -> Value {
    let v = s
        .gql(Some(token), CREATE_REMINDER, json!({ "i": input }))
        .await;
    data(&v)["createReminder"].clone()
}

async fn add_webhook(s: &TestServer, token: &str, url: &str) -> String {
    let v = s
        .gql(
            Some(token),
            "mutation($u: String!) { createWebhook(input: {url: $u}) { secret webhook { id url } } }",
            json!({ "u": url }),
        )
        .await;
    data(&v)["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn reminder(s: &TestServer, token: &str, id: &str) -> Value {
    let v = s
        .gql(
            Some(token),
            "query($id: ID!) { node(id: $id) { ... on Reminder { status attempts lastError deliveredAt nextAttemptAt idempotencyKey } } }",
            json!({ "id": id }),
        )
        .await;
    data(&v)["node"].clone()
}

async fn wait_status(s: &TestServer, token: &str, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = reminder(s, token, id).await;
        if r["status"] == status || tokio::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn soon(ms: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(ms)).to_rfc3339()
}

#[tokio::test]
async fn a_due_reminder_reaches_a_webhook_signed_keyed_and_on_time() {
    let s = TestServer::start_with(delivery(true)).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let sink = WebhookSink::start(SinkMode::Accept).await;
    let secret = add_webhook(&s, &rep, &sink.url).await;
    assert!(secret.starts_with("whsec_") && secret.len() > 40);

    let created = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(1_000), "message": "Call Acme back", "channels": ["WEBHOOK"] }),
    )
    .await;
    assert_eq!(created["status"], "PENDING");
    let due: DateTime<Utc> = created["dueAt"].as_str().unwrap().parse().unwrap();

    let hooks = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(hooks.len(), 1, "exactly one delivery");
    let hook = &hooks[0];
    // Not early, and within a second of its due time.
    assert!(hook.at >= due, "delivered before it was due");
    assert!(
        hook.at - due < chrono::Duration::milliseconds(1_000),
        "delivered {} ms late",
        (hook.at - due).num_milliseconds()
    );
    assert_eq!(hook.key, created["idempotencyKey"].as_str().unwrap());
    // The receiver recomputes the signature over timestamp and body.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", hook.timestamp, hook.body).as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hook.signature, expected);
    let body: Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["message"], "Call Acme back");
    assert_eq!(body["idempotencyKey"], created["idempotencyKey"]);

    let r = wait_status(&s, &rep, created["id"].as_str().unwrap(), "DELIVERED").await;
    assert_eq!(r["status"], "DELIVERED", "{r}");
    assert_eq!(r["attempts"], 1);
    // Nothing else arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
}

/// A webhook that answers after the lease would have run out: the lease is renewed
/// while the delivery is in flight, so no later claim sends the reminder again.
#[tokio::test]
async fn a_webhook_slower_than_the_lease_gets_the_reminder_once() {
    let mut limits = delivery(true);
    limits.delivery.webhook_timeout_ms = 8_000;
    let s = TestServer::start_with(limits).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    // Twice the 2 s lease.
    let sink = WebhookSink::start(SinkMode::Slow(Duration::from_millis(4_000))).await;
    add_webhook(&s, &rep, &sink.url).await;

    let created = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(300), "message": "slow receiver", "channels": ["WEBHOOK"] }),
    )
    .await;
    let r = wait_status(&s, &rep, created["id"].as_str().unwrap(), "DELIVERED").await;
    assert_eq!(r["status"], "DELIVERED", "{r}");
    assert_eq!(r["attempts"], 1, "{r}");
    // Long enough for a lapsed lease to be claimed and sent again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let hooks = sink.received();
    assert_eq!(hooks.len(), 1, "sent more than once: {hooks:?}");
}

/// The scheduler claims a first attempt shortly before its due time (a quarter of the
/// lease ahead, 500 ms here) and holds it; a reminder cancelled while held must not go
/// out, and a held one must not go out early.
#[tokio::test]
async fn a_reminder_claimed_ahead_of_its_time_is_not_sent_early_nor_once_cancelled() {
    use accord_entities::reminder;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let s = TestServer::start_with(delivery(true)).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let sink = WebhookSink::start(SinkMode::Accept).await;
    add_webhook(&s, &rep, &sink.url).await;

    let kept = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(450), "message": "kept", "channels": ["WEBHOOK"] }),
    )
    .await;
    let dropped = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(450), "message": "dropped", "channels": ["WEBHOOK"] }),
    )
    .await;
    // Both are claimed (leased) while still ahead of their due time.
    let keys = [&kept, &dropped].map(|r| r["idempotencyKey"].as_str().unwrap().to_owned());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    let leased = loop {
        let rows = reminder::Entity::find()
            .filter(reminder::Column::IdempotencyKey.is_in(keys.clone()))
            .all(&s.state.services.db)
            .await
            .unwrap();
        let leased = rows.iter().all(|r| r.lease_owner.is_some());
        if leased || tokio::time::Instant::now() > deadline {
            break leased;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(leased, "both claimed ahead of their due time");
    assert!(sink.received().is_empty(), "nothing sent before it was due");

    let v = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { cancelReminder(id: $id) { status } }",
            json!({ "id": dropped["id"] }),
        )
        .await;
    assert_eq!(data(&v)["cancelReminder"]["status"], "CANCELLED");

    let hooks = sink.wait_for(1, Duration::from_secs(10)).await;
    let due: DateTime<Utc> = kept["dueAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].key, keys[0]);
    assert!(hooks[0].at >= due, "delivered before it was due");
    let r = wait_status(&s, &rep, kept["id"].as_str().unwrap(), "DELIVERED").await;
    assert_eq!(r["attempts"], 1, "{r}");
    // The cancelled one never arrives, not even once its lease has run out.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(sink.received().len(), 1, "the cancelled reminder was sent");
    let r = reminder(&s, &rep, dropped["id"].as_str().unwrap()).await;
    assert_eq!(r["status"], "CANCELLED", "{r}");
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_and_nothing_is_written() {
    let s = TestServer::start_with(delivery(false)).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://10.0.0.8/hook",
        "http://2130706433/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let v = s
            .gql(
                Some(&rep),
                "mutation($u: String!) { createWebhook(input: {url: $u}) { secret } }",
                json!({ "u": url }),
            )
            .await;
        assert_eq!(error_code(&v), "VALIDATION", "{url}: {v}");
        assert_eq!(error_field(&v), "url", "{url}: {v}");
    }
    let v = s.gql(Some(&rep), "{ webhooks { id } }", json!({})).await;
    assert_eq!(data(&v)["webhooks"], json!([]));
}

#[tokio::test]
async fn failed_deliveries_back_off_end_dead_and_can_be_retried() {
    let s = TestServer::start_with(delivery(true)).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    // Three attempts fail (the configured maximum), the fourth would succeed.
    let sink = WebhookSink::start(SinkMode::FailFirst(3)).await;
    add_webhook(&s, &rep, &sink.url).await;
    let created = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(0), "message": "Send the proposal", "channels": ["WEBHOOK"] }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let dead = wait_status(&s, &rep, id, "DEAD").await;
    assert_eq!(dead["status"], "DEAD", "{dead}");
    assert_eq!(dead["attempts"], 3);
    assert!(
        dead["lastError"].as_str().unwrap().contains("HTTP 500"),
        "{dead}"
    );
    let hooks = sink.received();
    assert_eq!(hooks.len(), 3);
    // Every attempt carries the same key, and they were spaced by the backoff.
    assert!(hooks.iter().all(|h| h.key == created["idempotencyKey"]));
    assert!(hooks[2].at - hooks[1].at >= chrono::Duration::milliseconds(190));

    // Dead reminders are listed, and a retry delivers.
    let v = s
        .gql(
            Some(&rep),
            "{ reminders(filter: {status: DEAD}) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["reminders"]["totalCount"], 1);
    let v = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { retryReminder(id: $id) { status attempts } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&v)["retryReminder"]["status"], "PENDING");
    let done = wait_status(&s, &rep, id, "DELIVERED").await;
    assert_eq!(done["status"], "DELIVERED", "{done}");
    assert_eq!(sink.received().len(), 4);

    // Retrying a delivered reminder is refused.
    let v = s
        .gql(
            Some(&rep),
            "mutation($id: ID!) { retryReminder(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION", "{v}");
}

#[tokio::test]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let s = TestServer::start_with(delivery(true)).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let sink = WebhookSink::start(SinkMode::Redirect("http://169.254.169.254/latest".into())).await;
    add_webhook(&s, &rep, &sink.url).await;
    let created = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(0), "message": "m", "channels": ["WEBHOOK"] }),
    )
    .await;
    let dead = wait_status(&s, &rep, created["id"].as_str().unwrap(), "DEAD").await;
    assert_eq!(dead["status"], "DEAD", "{dead}");
    assert!(
        dead["lastError"].as_str().unwrap().contains("redirect"),
        "{dead}"
    );
}

#[tokio::test]
async fn reminder_email_reaches_a_real_smtp_server_with_its_key() {
    let smtp = SmtpSink::start();
    let mut limits = delivery(false);
    limits.delivery.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port));
    let s = TestServer::start_with(limits).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let created = remind(
        &s,
        &rep,
        json!({ "dueAt": soon(0), "message": "Renewal call with Globex", "channels": ["EMAIL"] }),
    )
    .await;
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1);
    let key = created["idempotencyKey"].as_str().unwrap();
    assert!(
        mail[0].contains(&format!("X-Accord-Idempotency-Key: {key}")),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("To: rep <rep@example.com>"), "{}", mail[0]);
    assert!(mail[0].contains("Renewal call with Globex"), "{}", mail[0]);
    let r = wait_status(&s, &rep, created["id"].as_str().unwrap(), "DELIVERED").await;
    assert_eq!(r["status"], "DELIVERED", "{r}");
}

#[tokio::test]
async fn a_subscriber_receives_only_their_own_reminders() {
    let s = TestServer::start_with(delivery(false)).await;
    let manager = s.user("manager@example.com", Role::SalesManager).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    let other = s.user("other@example.com", Role::Rep).await;
    let rep_id = s.user_id(&rep).await;
    let mut sub = s
        .subscribe(
            &rep,
            "subscription { reminders { idempotencyKey message reminderId } }",
        )
        .await;
    let mut other_sub = s
        .subscribe(&other, "subscription { reminders { idempotencyKey } }")
        .await;
    // A manager reminds the rep; the rep reminds themselves.
    let for_rep = remind(
        &s,
        &manager,
        json!({ "dueAt": soon(300), "message": "Forecast due", "recipientId": rep_id, "channels": ["IN_APP"] }),
    )
    .await;
    assert_eq!(for_rep["status"], "PENDING");
    let got = sub.next(Duration::from_secs(10)).await.expect("a reminder");
    assert_eq!(got["data"]["reminders"]["message"], "Forecast due");
    assert_eq!(
        got["data"]["reminders"]["idempotencyKey"],
        for_rep["idempotencyKey"]
    );
    assert!(other_sub.next(Duration::from_millis(500)).await.is_none());

    // A rep may not remind someone else.
    let other_id = s.user_id(&other).await;
    let v = s
        .gql(
            Some(&rep),
            CREATE_REMINDER,
            json!({ "i": { "dueAt": soon(0), "message": "x", "recipientId": other_id } }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN", "{v}");
}

#[tokio::test]
async fn bad_reminder_input_is_refused_and_the_same_key_creates_one_reminder() {
    let s = TestServer::start_with(delivery(false)).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    for (input, field) in [
        (json!({ "dueAt": soon(0), "message": "" }), "message"),
        (
            json!({ "dueAt": soon(0), "message": "x".repeat(501) }),
            "message",
        ),
        (
            json!({ "dueAt": "9999-01-01T00:00:00Z", "message": "m" }),
            "dueAt",
        ),
        (
            json!({ "dueAt": soon(0), "message": "m", "channels": [] }),
            "channels",
        ),
        (
            json!({ "dueAt": soon(0), "message": "m", "idempotencyKey": "has space" }),
            "idempotencyKey",
        ),
        (
            json!({ "dueAt": soon(0), "message": "m", "opportunityId": "T3Bwb3J0dW5pdHk6OTk5" }),
            "opportunityId",
        ),
    ] {
        let v = s
            .gql(Some(&rep), CREATE_REMINDER, json!({ "i": input }))
            .await;
        assert_eq!(error_code(&v), "VALIDATION", "{v}");
        assert_eq!(error_field(&v), field, "{v}");
    }
    let v = s
        .gql(
            Some(&rep),
            CREATE_REMINDER,
            json!({ "i": { "dueAt": "yesterday", "message": "m" } }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION", "{v}");
    let v = s
        .gql(Some(&rep), "{ reminders { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&v)["reminders"]["totalCount"], 0);

    let input =
        json!({ "dueAt": soon(3_600_000), "message": "m", "idempotencyKey": "crm-sync:42" });
    let a = remind(&s, &rep, input.clone()).await;
    let b = remind(&s, &rep, input).await;
    assert_eq!(a["id"], b["id"]);
    let v = s
        .gql(Some(&rep), "{ reminders { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&v)["reminders"]["totalCount"], 1);
}

/// Two instances on one PostgreSQL: a reminder fired by one reaches a subscriber
/// connected to the other (LISTEN/NOTIFY). SQLite serves one instance per file.
#[tokio::test]
async fn a_reminder_fired_by_one_instance_reaches_a_subscriber_on_another() {
    if backend() != Backend::Postgres {
        return;
    }
    let a = TestServer::start_with(delivery(false)).await;
    let mut quiet = delivery(false);
    quiet.delivery.scheduler = false;
    let b = a.start_sibling(quiet).await;
    let rep = a.user("rep@example.com", Role::Rep).await;
    let mut sub = b
        .subscribe(&rep, "subscription { reminders { idempotencyKey } }")
        .await;
    // Scheduled through B, which does not deliver: A does, and B's subscriber hears it.
    let created = remind(
        &b,
        &rep,
        json!({ "dueAt": soon(200), "message": "cross", "channels": ["IN_APP"] }),
    )
    .await;
    let got = sub
        .next(Duration::from_secs(10))
        .await
        .expect("delivered via A");
    assert_eq!(
        got["data"]["reminders"]["idempotencyKey"],
        created["idempotencyKey"]
    );
}

/// A reminder is stored for someone who may read its deal, but is sent only if they
/// still may when it falls due: a rep taken out of the deal's territory in between hears
/// nothing about the deal, while one who stayed does.
#[tokio::test]
async fn a_reminder_about_a_deal_its_recipient_may_no_longer_read_is_not_sent() {
    let s = TestServer::start_with(delivery(false)).await;
    let f = s.fixture().await;
    let north = s.territory(&f.token, "North", None).await;
    let account_id = s.create_account_in(&f.token, "Nordic AB", &north).await;
    let f = accord_e2e::Fixture { account_id, ..f };
    let (deal, _) = s.create_opportunity(&f, "Nordic renewal", "9000").await;
    let leaving = s.user("leaving@example.com", Role::Rep).await;
    let staying = s.user("staying@example.com", Role::Rep).await;
    s.grant(&f.token, &north, &leaving, "READ", false).await;
    s.grant(&f.token, &north, &staying, "READ", false).await;
    let mut ids = Vec::new();
    for rep in [&leaving, &staying] {
        let rep_id = s.user_id(rep).await;
        let created = remind(
            &s,
            &f.token,
            json!({ "dueAt": soon(1_500), "message": "Renewal call with Nordic", "recipientId": rep_id, "opportunityId": deal, "channels": ["IN_APP"] }),
        )
        .await;
        assert_eq!(created["status"], "PENDING", "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let leaving_id = s.user_id(&leaving).await;
    let v = s
        .gql(
            Some(&f.token),
            "mutation($t: ID!, $u: ID!) { removeTerritoryMembership(territoryId: $t, userId: $u) { membership { id } } }",
            json!({ "t": north, "u": leaving_id }),
        )
        .await;
    data(&v);

    let r = wait_status(&s, &f.token, &ids[0], "CANCELLED").await;
    assert_eq!(r["status"], "CANCELLED", "{r}");
    assert!(
        r["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("may no longer read the deal")),
        "{r}"
    );
    assert!(r["deliveredAt"].is_null(), "{r}");
    let r = wait_status(&s, &f.token, &ids[1], "DELIVERED").await;
    assert_eq!(r["status"], "DELIVERED", "{r}");
}
