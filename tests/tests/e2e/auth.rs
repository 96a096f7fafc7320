use accord_e2e::{PASSWORD, TestServer, data, error_code};
use accord_entities::user::Role;
use serde_json::json;

#[tokio::test]
async fn login_me_and_logout() {
    let server = TestServer::start().await;
    let token = server.user("rep@example.com", Role::Rep).await;
    let v = server
        .gql(Some(&token), "{ me { email role displayName } }", json!({}))
        .await;
    assert_eq!(data(&v)["me"]["email"], "rep@example.com");
    assert_eq!(data(&v)["me"]["role"], "REP");

    let v = server
        .gql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(data(&v)["logout"], true);
    let (status, v) = server
        .post_json(Some(&token), &json!({ "query": "{ me { email } }" }))
        .await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start().await;
    server.user("rep@example.com", Role::Rep).await;
    let q = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let wrong = server
        .gql(
            None,
            q,
            json!({ "e": "rep@example.com", "p": "not-the-password" }),
        )
        .await;
    let unknown = server
        .gql(None, q, json!({ "e": "nobody@example.com", "p": PASSWORD }))
        .await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(error_code(&unknown), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    // Emails are case-insensitive.
    assert!(!server.login("REP@Example.com", PASSWORD).await.is_empty());
}

#[tokio::test]
async fn every_operation_but_login_needs_a_token() {
    let server = TestServer::start().await;
    for query in [
        "{ me { email } }",
        "{ accounts { totalCount } }",
        "{ node(id: \"QWNjb3VudDox\") { id } }",
        "{ __schema { queryType { name } } }",
        "mutation { login(email: \"a@b.c\", password: \"x\") { token } createApiToken(name: \"sneaky\") { secret } }",
    ] {
        let (status, v) = server.post_json(None, &json!({ "query": query })).await;
        assert_eq!(status, 401, "{query}: {v}");
        assert_eq!(error_code(&v), "UNAUTHENTICATED", "{query}: {v}");
        assert!(v.get("data").is_none_or(|d| d.is_null()));
    }
    let (status, v) = server
        .post_json(Some("acc_forged"), &json!({ "query": "{ me { email } }" }))
        .await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
}

#[tokio::test]
async fn api_tokens_work_until_revoked_and_hide_their_secret() {
    let server = TestServer::start().await;
    let session = server.user("integrator@example.com", Role::Rep).await;
    let v = server
        .gql(Some(&session), "mutation { createApiToken(name: \"BI export\", expiresInDays: 30) { secret apiToken { id name expiresAt } } }", json!({}))
        .await;
    let created = &data(&v)["createApiToken"];
    let secret = created["secret"].as_str().unwrap().to_owned();
    let token_id = created["apiToken"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("acc_"));
    assert!(created["apiToken"]["expiresAt"].is_string());

    let v = server
        .gql(
            Some(&secret),
            "{ me { email } myApiTokens { id name } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["me"]["email"], "integrator@example.com");
    let listed = serde_json::to_string(&data(&v)["myApiTokens"]).unwrap();
    assert!(listed.contains("BI export") && !listed.contains(&secret));

    let v = server
        .gql(
            Some(&session),
            "mutation($id: ID!) { revokeApiToken(id: $id) }",
            json!({ "id": token_id }),
        )
        .await;
    assert_eq!(data(&v)["revokeApiToken"], true);
    let (status, _) = server
        .post_json(Some(&secret), &json!({ "query": "{ me { email } }" }))
        .await;
    assert_eq!(status, 401);
    // The session token is unaffected.
    let v = server
        .gql(Some(&session), "{ me { email } }", json!({}))
        .await;
    assert_eq!(data(&v)["me"]["email"], "integrator@example.com");
}

#[tokio::test]
async fn another_users_token_cannot_be_revoked() {
    let server = TestServer::start().await;
    let alice = server.user("alice@example.com", Role::Rep).await;
    let bob = server.user("bob@example.com", Role::Rep).await;
    let v = server
        .gql(
            Some(&alice),
            "mutation { createApiToken(name: \"mine\") { apiToken { id } } }",
            json!({}),
        )
        .await;
    let id = data(&v)["createApiToken"]["apiToken"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server
        .gql(
            Some(&bob),
            "mutation($id: ID!) { revokeApiToken(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn only_admins_create_users_and_passwords_never_reach_the_audit_log() {
    let server = TestServer::start().await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let q = "mutation($i: CreateUserInput!) { createUser(input: $i) { id email role } }";
    let input = json!({ "i": { "email": "new@example.com", "displayName": "New", "role": "REP", "password": "a-long-password-1" } });
    let v = server.gql(Some(&rep), q, input.clone()).await;
    assert_eq!(error_code(&v), "FORBIDDEN");

    let admin = server.admin().await;
    let v = server.gql(Some(&admin), q, input.clone()).await;
    assert_eq!(data(&v)["createUser"]["role"], "REP");
    let v = server.gql(Some(&admin), q, input).await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert_eq!(v["errors"][0]["extensions"]["field"], "email");

    let short = json!({ "i": { "email": "short@example.com", "displayName": "S", "role": "REP", "password": "short" } });
    let v = server.gql(Some(&admin), q, short).await;
    assert_eq!(v["errors"][0]["extensions"]["field"], "password");

    let v = server
        .gql(
            Some(&admin),
            "{ auditLog(first: 50) { edges { node { entityType after } } } }",
            json!({}),
        )
        .await;
    let dump = serde_json::to_string(&data(&v)).unwrap();
    assert!(dump.contains("new@example.com"));
    assert!(
        !dump.contains("argon2") && !dump.contains("password") && !dump.contains("token_hash"),
        "{dump}"
    );
}
