//! Test harness: start real Accord servers on 127.0.0.1:0, each with its own fresh
//! database, and talk GraphQL to them over HTTP.
//!
//! The backend comes from `ACCORD_TEST_BACKEND` (`sqlite`, the default, or `postgres`).
//! For PostgreSQL, `ACCORD_TEST_PG_URL` must point at a server where the test user may
//! create databases (`scripts/with-postgres.sh` starts a throwaway cluster and sets it);
//! a missing URL fails the tests instead of silently falling back to SQLite.

// Test-only crate: a panic here is a test failure with its message, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use accord::app::{AppState, RunningServer};
use accord::config::{DatabaseArgs, Limits};
use accord::services::users::{NewUser, create_user};
use accord_entities::user::Role;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("ACCORD_TEST_BACKEND").as_deref() {
        Ok("postgres") | Ok("postgresql") | Ok("pg") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("unknown ACCORD_TEST_BACKEND={other}; use sqlite or postgres"),
    }
}

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty database for one test. The guard keeps a SQLite file alive.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match backend() {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("accord.db").display()
            );
            (url, Some(dir))
        }
        Backend::Postgres => {
            let admin_url = std::env::var("ACCORD_TEST_PG_URL")
                .expect("ACCORD_TEST_BACKEND=postgres needs ACCORD_TEST_PG_URL (see scripts/with-postgres.sh)");
            let name = format!(
                "accord_t_{}_{}_{}",
                std::process::id(),
                DB_COUNTER.fetch_add(1, Ordering::Relaxed),
                rand::random::<u32>()
            );
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL admin database");
            admin
                .execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("CREATE DATABASE {name}"),
                ))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .unwrap_or(admin_url);
            (format!("{base}/{name}"), None)
        }
    }
}

/// The `accord` binary `cargo test --workspace` built next to this test executable.
pub fn accord_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = dir.join(format!("accord{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing; run `cargo build -p accord` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub database_url: String,
    pub state: AppState,
    pub http: reqwest::Client,
    _server: RunningServer,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(mut limits: Limits) -> Self {
        // The server runs in this test process; its script workers are the real binary.
        limits
            .script_worker_program
            .get_or_insert_with(accord_binary);
        let (database_url, dir) = fresh_database().await;
        let db_args = DatabaseArgs {
            url: database_url.clone(),
            pool_size: 8,
        };
        let server = accord::app::start(&db_args, limits, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("server starts");
        TestServer {
            addr: server.addr,
            url: format!("http://{}", server.addr),
            database_url,
            state: server.state.clone(),
            http: reqwest::Client::new(),
            _server: server,
            _dir: dir,
        }
    }

    /// Another instance on this server's database, as a second `accord` process
    /// sharing one PostgreSQL would be. Keep `self` alive as long as the sibling.
    pub async fn start_sibling(&self, mut limits: Limits) -> TestServer {
        limits
            .script_worker_program
            .get_or_insert_with(accord_binary);
        let db_args = DatabaseArgs {
            url: self.database_url.clone(),
            pool_size: 8,
        };
        let server = accord::app::start(&db_args, limits, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sibling starts");
        TestServer {
            addr: server.addr,
            url: format!("http://{}", server.addr),
            database_url: self.database_url.clone(),
            state: server.state.clone(),
            http: reqwest::Client::new(),
            _server: server,
            _dir: None,
        }
    }

    /// SQL statements this server has executed so far.
    pub fn statements(&self) -> u64 {
        self.state.metrics.statements()
    }

    /// Records answered without async-graphql's field resolvers since start.
    pub fn direct_answers(&self) -> u64 {
        self.state.metrics.direct_answers()
    }

    /// Creates a user directly (as `accord user add` does) and returns a session token
    /// obtained through the real login mutation.
    pub async fn user(&self, email: &str, role: Role) -> String {
        let new = NewUser {
            email: email.to_owned(),
            display_name: email.split('@').next().unwrap_or(email).to_owned(),
            role,
            password: Some(PASSWORD.to_owned()),
        };
        create_user(&self.state.services, None, new)
            .await
            .expect("create user");
        self.login(email, PASSWORD).await
    }

    pub async fn admin(&self) -> String {
        self.user("admin@example.com", Role::Admin).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let v = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": password }),
            )
            .await;
        data(&v)["login"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// POSTs one GraphQL operation; returns the JSON body whatever the HTTP status.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post_json(token, &json!({ "query": query, "variables": variables }))
            .await
            .1
    }

    pub async fn post_json(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.post_raw(token, serde_json::to_vec(body).expect("json"))
            .await
    }

    /// The response body as sent, for checks a parsed `Value` cannot make (key order).
    pub async fn gql_text(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let body = json!({ "query": query, "variables": variables });
        self.post_text(token, serde_json::to_vec(&body).expect("json"))
            .await
            .1
    }

    pub async fn post_raw(&self, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let (status, text) = self.post_text(token, body).await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON response ({status}): {text}"));
        (status, value)
    }

    async fn post_text(&self, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, text)
    }
}

/// The `data` of a response that must not have errors.
pub fn data(v: &Value) -> &Value {
    assert!(
        v.get("errors")
            .is_none_or(|e| e.as_array().is_none_or(|a| a.is_empty())),
        "unexpected errors: {v:#}"
    );
    &v["data"]
}

/// The `extensions.code` of the first error; panics if there is none.
pub fn error_code(v: &Value) -> String {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {v:#}"))
        .to_owned()
}

pub fn error_field(v: &Value) -> String {
    v["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Common fixtures built through the API.
pub struct Fixture {
    pub token: String,
    pub pipeline_id: String,
    /// Stage IDs in pipeline order: Qualify, Discovery, Proposal, Negotiation, Won, Lost.
    pub stages: Vec<String>,
    pub account_id: String,
}

impl TestServer {
    pub async fn fixture(&self) -> Fixture {
        let token = self.admin().await;
        let v = self
            .gql(
                Some(&token),
                r#"mutation { createPipeline(input: {name: "New Business", stages: [
                    {name: "Qualify", probability: 10, kind: OPEN},
                    {name: "Discovery", probability: 20, kind: OPEN},
                    {name: "Proposal", probability: 50, kind: OPEN},
                    {name: "Negotiation", probability: 75, kind: OPEN},
                    {name: "Closed Won", probability: 100, kind: WON},
                    {name: "Closed Lost", probability: 0, kind: LOST}]}) {
                    pipeline { id stages { id } } } }"#,
                json!({}),
            )
            .await;
        let p = &data(&v)["createPipeline"]["pipeline"];
        let stages = p["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect();
        let account_id = self.create_account(&token, "Acme Corp").await;
        Fixture {
            token,
            pipeline_id: p["id"].as_str().expect("id").to_owned(),
            stages,
            account_id,
        }
    }

    pub async fn create_account(&self, token: &str, name: &str) -> String {
        let v = self
            .gql(
                Some(token),
                "mutation($n: String!) { createAccount(input: {name: $n, country: \"de\", industry: \"Software\", annualRevenue: \"1250000.50\", currency: \"EUR\"}) { account { id } } }",
                json!({ "n": name }),
            )
            .await;
        data(&v)["createAccount"]["account"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// The global ID of the user behind `token`.
    pub async fn user_id(&self, token: &str) -> String {
        let v = self.gql(Some(token), "{ me { id } }", json!({})).await;
        data(&v)["me"]["id"].as_str().expect("me.id").to_owned()
    }

    /// Creates a territory (as `token`, usually an admin) and returns its ID.
    pub async fn territory(&self, token: &str, name: &str, parent: Option<&str>) -> String {
        let v = self
            .gql(
                Some(token),
                "mutation($n: String!, $p: ID) { createTerritory(input: {name: $n, parentId: $p}) { territory { id } } }",
                json!({ "n": name, "p": parent }),
            )
            .await;
        data(&v)["createTerritory"]["territory"]["id"]
            .as_str()
            .expect("territory id")
            .to_owned()
    }

    /// Gives the user behind `member` access to a territory (`level`: READ, EDIT, OWNER).
    pub async fn grant(
        &self,
        admin: &str,
        territory: &str,
        member: &str,
        level: &str,
        manager: bool,
    ) {
        let user = self.user_id(member).await;
        let v = self
            .gql(
                Some(admin),
                "mutation($t: ID!, $u: ID!, $l: AccessLevel!, $m: Boolean!) { setTerritoryMembership(input: {territoryId: $t, userId: $u, accessLevel: $l, isManager: $m}) { membership { id } } }",
                json!({ "t": territory, "u": user, "l": level, "m": manager }),
            )
            .await;
        data(&v);
    }

    /// Creates an account placed by hand in `territory`.
    pub async fn create_account_in(&self, token: &str, name: &str, territory: &str) -> String {
        let v = self
            .gql(
                Some(token),
                "mutation($n: String!, $t: ID!) { createAccount(input: {name: $n, country: \"de\", territoryId: $t}) { account { id } } }",
                json!({ "n": name, "t": territory }),
            )
            .await;
        data(&v)["createAccount"]["account"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    pub async fn create_contact(
        &self,
        token: &str,
        account_id: &str,
        last: &str,
        reports_to: Option<&str>,
    ) -> String {
        let v = self
            .gql(
                Some(token),
                "mutation($a: ID!, $l: String!, $r: ID) { createContact(input: {accountId: $a, firstName: \"Pat\", lastName: $l, email: \"pat@example.com\", reportsToId: $r}) { contact { id } } }",
                json!({ "a": account_id, "l": last, "r": reports_to }),
            )
            .await;
        data(&v)["createContact"]["contact"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    pub async fn create_opportunity(&self, f: &Fixture, name: &str, amount: &str) -> (String, i64) {
        let v = self
            .gql(
                Some(&f.token),
                "mutation($a: ID!, $p: ID!, $n: String!, $amt: Decimal!) { createOpportunity(input: {name: $n, accountId: $a, pipelineId: $p, amount: $amt, currency: \"EUR\", expectedCloseDate: \"2027-03-31\"}) { opportunity { id version } } }",
                json!({ "a": f.account_id, "p": f.pipeline_id, "n": name, "amt": amount }),
            )
            .await;
        let o = &data(&v)["createOpportunity"]["opportunity"];
        (
            o["id"].as_str().expect("id").to_owned(),
            o["version"].as_i64().expect("version"),
        )
    }
}

/// A GraphQL subscription over a real WebSocket, speaking `graphql-transport-ws`.
pub struct Subscription {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// How a subscription attempt ended before any event.
#[derive(Debug)]
pub enum SubscribeError {
    /// The server closed the connection with this code and reason.
    Closed(u16, String),
    /// The server answered the subscribe message with `error`.
    Rejected(Value),
    /// The server answered at once with this message (a query's result, say).
    Answered(Value),
}

impl TestServer {
    /// Opens `/graphql/ws`, authenticates in `connection_init` with `init` as payload,
    /// and subscribes with `query`.
    pub async fn subscribe_with(
        &self,
        init: Value,
        query: &str,
    ) -> Result<Subscription, SubscribeError> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/graphql/ws", self.addr)
            .into_client_request()
            .expect("ws request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        let send = |v: Value| Message::Text(v.to_string().into());
        ws.send(send(json!({ "type": "connection_init", "payload": init })))
            .await
            .expect("send init");
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                assert_eq!(v["type"], "connection_ack", "{v}");
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((0, String::new()));
                return Err(SubscribeError::Closed(code, reason));
            }
            other => panic!("unexpected answer to connection_init: {other:?}"),
        }
        ws.send(send(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }),
        ))
        .await
        .expect("send subscribe");
        let mut sub = Subscription { ws };
        // An immediate `error` means the subscription was refused; give it a moment.
        match sub.message(std::time::Duration::from_millis(200)).await {
            Some(v) if v["type"] == "error" => Err(SubscribeError::Rejected(v)),
            Some(v) => Err(SubscribeError::Answered(v)),
            None => Ok(sub),
        }
    }

    pub async fn subscribe(&self, token: &str, query: &str) -> Subscription {
        self.subscribe_with(json!({ "token": token }), query)
            .await
            .expect("subscription accepted")
    }
}

impl Subscription {
    /// The next protocol message other than pings, or `None` after `wait`.
    async fn message(&mut self, wait: std::time::Duration) -> Option<Value> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match msg.expect("websocket message") {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("json");
                    if v["type"] == "ping" {
                        self.ws
                            .send(Message::Text(json!({ "type": "pong" }).to_string().into()))
                            .await
                            .expect("pong");
                        continue;
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next message whatever its type (`next`, `error`, `complete`), or `None`.
    pub async fn raw(&mut self, wait: std::time::Duration) -> Option<Value> {
        self.message(wait).await
    }

    /// The payload of the next event, or `None` if none arrives within `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<Value> {
        let v = self.message(wait).await?;
        assert_eq!(v["type"], "next", "{v}");
        Some(v["payload"].clone())
    }
}

/// One request a [`WebhookSink`] received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub key: String,
    pub timestamp: String,
    pub signature: String,
    pub instance: String,
    pub body: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// How a [`WebhookSink`] answers.
#[derive(Debug, Clone)]
pub enum SinkMode {
    Accept,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// 307 to this URL, every time.
    Redirect(String),
    /// 200, but only after this long (the request is recorded when it arrives).
    Slow(std::time::Duration),
}

/// A real HTTP receiver on 127.0.0.1 that records every webhook request.
pub struct WebhookSink {
    pub url: String,
    pub hooks: std::sync::Arc<parking_lot::Mutex<Vec<Hook>>>,
    pub mode: std::sync::Arc<parking_lot::Mutex<SinkMode>>,
    _task: tokio::task::JoinHandle<()>,
}

impl WebhookSink {
    pub async fn start(mode: SinkMode) -> WebhookSink {
        use axum::http::{HeaderMap, StatusCode, header};
        use axum::response::IntoResponse;
        let hooks = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<Hook>::new()));
        let mode = std::sync::Arc::new(parking_lot::Mutex::new(mode));
        let (h, m) = (hooks.clone(), mode.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (hooks, mode) = (h.clone(), m.clone());
                async move {
                    let get = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let seen = {
                        let mut hooks = hooks.lock();
                        hooks.push(Hook {
                            key: get("x-accord-idempotency-key"),
                            timestamp: get("x-accord-timestamp"),
                            signature: get("x-accord-signature"),
                            instance: get("x-accord-instance"),
                            body,
                            at: chrono::Utc::now(),
                        });
                        hooks.len()
                    };
                    // Not matched on the lock's guard: it must not be held over an await.
                    let answer = mode.lock().clone();
                    match answer {
                        SinkMode::Accept => StatusCode::OK.into_response(),
                        SinkMode::FailFirst(n) if seen <= n => {
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        }
                        SinkMode::FailFirst(_) => StatusCode::OK.into_response(),
                        SinkMode::Redirect(to) => {
                            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)])
                                .into_response()
                        }
                        SinkMode::Slow(wait) => {
                            tokio::time::sleep(wait).await;
                            StatusCode::OK.into_response()
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WebhookSink {
            url: format!("http://{addr}/hook"),
            hooks,
            mode,
            _task: task,
        }
    }

    pub fn received(&self) -> Vec<Hook> {
        self.hooks.lock().clone()
    }

    /// Waits until at least `n` requests arrived, or `wait` passed.
    pub async fn wait_for(&self, n: usize, wait: std::time::Duration) -> Vec<Hook> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.hooks.lock().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.received()
    }
}

/// A real SMTP server on 127.0.0.1 (mailin-embedded) that keeps every message.
pub struct SmtpSink {
    pub port: u16,
    pub messages: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct SmtpCollector {
    current: Vec<u8>,
    messages: std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
}

impl mailin_embedded::Handler for SmtpCollector {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let message = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
        self.messages.lock().push(message);
        mailin_embedded::response::OK
    }
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let handler = SmtpCollector {
            current: Vec::new(),
            messages: messages.clone(),
        };
        std::thread::spawn(move || {
            let mut server = mailin_embedded::Server::new(handler);
            server
                .with_name("sink.test")
                .with_ssl(mailin_embedded::SslConfig::None)
                .unwrap()
                .with_tcp_listener(listener);
            let _ = server.serve();
        });
        SmtpSink { port, messages }
    }

    pub async fn wait_for(&self, n: usize, wait: std::time::Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.messages.lock().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.messages.lock().clone()
    }
}
