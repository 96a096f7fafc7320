use accord::config::Limits;
use accord_e2e::{TestServer, data, error_code, error_field};
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_and_wrong_kind_ids_are_validation_errors() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    for bad in [
        "",
        "nope",
        "!!!!",
        "QWNjb3VudDox'; DROP TABLE accounts;--",
        &"A".repeat(500),
    ] {
        let v = server
            .gql(
                Some(&f.token),
                "query($id: ID!) { account(id: $id) { id } }",
                json!({ "id": bad }),
            )
            .await;
        assert_eq!(error_code(&v), "VALIDATION", "{bad}: {v}");
        assert_eq!(error_field(&v), "id");
    }
    // A well-formed ID of another kind.
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { account(id: $id) { id } }",
            json!({ "id": f.pipeline_id }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    // A well-formed ID of a record that does not exist.
    let v = server
        .gql(
            Some(&f.token),
            "{ account(id: \"QWNjb3VudDo5OTk5OTk\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn wrong_types_and_unknown_fields_carry_a_code() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let cases = [
        ("{ accounts(first: \"ten\") { totalCount } }", json!({})),
        ("{ accounts { nope } }", json!({})),
        ("{ accounts(first: ", json!({})),
        (
            "mutation($a: Decimal!) { createOpportunity(input: {name: \"x\", accountId: \"x\", pipelineId: \"x\", amount: $a, currency: \"EUR\", expectedCloseDate: \"2027-01-01\"}) { opportunity { id } } }",
            json!({ "a": "twelve" }),
        ),
        (
            "mutation { createAccount(input: {name: \"x\", size: HUGE}) { account { id } } }",
            json!({}),
        ),
        (
            "mutation { createOpportunity(input: {name: \"x\", accountId: \"x\", pipelineId: \"x\", amount: \"1\", currency: \"EUR\", expectedCloseDate: \"31/12/2027\"}) { opportunity { id } } }",
            json!({}),
        ),
    ];
    for (query, vars) in cases {
        let v = server.gql(Some(&f.token), query, vars).await;
        assert_eq!(error_code(&v), "VALIDATION", "{query}: {v}");
    }
}

/// Sends `mutation` once per case, with `base` overridden by the case's fields, and expects
/// a VALIDATION error naming the case's field each time.
async fn assert_each_rejected(
    server: &TestServer,
    token: &str,
    mutation: &str,
    base: &Value,
    cases: &[(Value, &str)],
) {
    for (patch, field) in cases {
        let mut input = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            input[k] = val.clone();
        }
        let v = server
            .gql(Some(token), mutation, json!({ "i": input }))
            .await;
        assert_eq!(error_code(&v), "VALIDATION", "{field}: {v}");
        assert_eq!(error_field(&v), *field, "{v}");
    }
}

#[tokio::test]
async fn invalid_field_values_name_the_field_and_write_nothing() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let create_contact =
        "mutation($i: CreateContactInput!) { createContact(input: $i) { contact { id } } }";
    let base = json!({ "accountId": f.account_id, "firstName": "Ada", "lastName": "Lovelace" });
    let cases = [
        (json!({ "email": "not-an-email" }), "email"),
        (json!({ "firstName": "   " }), "firstName"),
        (json!({ "lastName": "x".repeat(101) }), "lastName"),
        (json!({ "title": "t".repeat(5000) }), "title"),
        (json!({ "phone": "call me maybe" }), "phone"),
        (json!({ "accountId": "QWNjb3VudDo0MjQyNA" }), "accountId"),
    ];
    assert_each_rejected(&server, &f.token, create_contact, &base, &cases).await;
    let v = server
        .gql(Some(&f.token), "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&v)["contacts"]["totalCount"], 0);

    let create_opp = "mutation($i: CreateOpportunityInput!) { createOpportunity(input: $i) { opportunity { id } } }";
    let base = json!({ "name": "Deal", "accountId": f.account_id, "pipelineId": f.pipeline_id, "amount": "100", "currency": "EUR", "expectedCloseDate": "2027-01-01" });
    let cases = [
        (json!({ "amount": "-5" }), "amount"),
        (json!({ "amount": "1.0000001" }), "amount"),
        (json!({ "amount": "99999999999999999" }), "amount"),
        (json!({ "amount": "100000000000000000000000" }), "amount"),
        (json!({ "currency": "EURO" }), "currency"),
        (json!({ "stageId": "U3RhZ2U6OTk5OQ" }), "stageId"),
        (json!({ "name": "" }), "name"),
    ];
    assert_each_rejected(&server, &f.token, create_opp, &base, &cases).await;
    let v = server
        .gql(
            Some(&f.token),
            "{ opportunities { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["opportunities"]["totalCount"], 0);

    // Filters go through the same money rules: an absurd bound is an error, not a crash.
    for bound in ["1e30", "100000000000000000000000"] {
        let q = format!("{{ opportunities(filter: {{amountMin: \"{bound}\"}}) {{ totalCount }} }}");
        let v = server.gql(Some(&f.token), &q, json!({})).await;
        assert_eq!(error_code(&v), "VALIDATION", "{bound}: {v}");
    }
}

#[tokio::test]
async fn oversize_bodies_batches_depth_and_complexity_are_refused() {
    let limits = Limits {
        max_body_bytes: 16 * 1024,
        ..Limits::default()
    };
    let server = TestServer::start_with(limits).await;
    let token = server.admin().await;

    let huge =
        json!({ "query": "{ me { email } }", "variables": { "pad": "x".repeat(20 * 1024) } });
    let (status, v) = server.post_json(Some(&token), &huge).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&v), "VALIDATION");

    let batch: Vec<_> = (0..11)
        .map(|_| json!({ "query": "{ me { email } }" }))
        .collect();
    let (status, v) = server.post_json(Some(&token), &json!(batch)).await;
    assert_eq!(status, 400);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10")
    );

    let batch: Vec<_> = (0..3)
        .map(|_| json!({ "query": "{ me { email } }" }))
        .collect();
    let (status, v) = server.post_json(Some(&token), &json!(batch)).await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().unwrap().len(), 3);

    let (status, v) = server
        .post_raw(Some(&token), b"this is not json".to_vec())
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&v), "VALIDATION");

    let deep = "{ accounts { edges { node { parent { parent { parent { parent { parent { parent { parent { parent { parent { name } } } } } } } } } } } } }";
    let v = server.gql(Some(&token), deep, json!({})).await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("deep"),
        "{v}"
    );

    let wide = "{ accounts(first: 100) { edges { node { contacts(first: 100) { edges { node { opportunityRoles { opportunity { name } } notes(first: 100) { body } } } } } } } }";
    let v = server.gql(Some(&token), wide, json!({})).await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{v}"
    );
}

#[tokio::test]
async fn page_size_and_cursor_abuse_is_refused() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    for (query, field) in [
        ("{ accounts(first: 101) { totalCount } }", "first"),
        ("{ accounts(first: -1) { totalCount } }", "first"),
        ("{ accounts(first: 1, last: 1) { totalCount } }", "last"),
        ("{ accounts(after: \"garbage\") { totalCount } }", "after"),
        (
            "{ accounts(before: \"eyJrIjoiIn0\") { totalCount } }",
            "before",
        ),
    ] {
        let v = server.gql(Some(&token), query, json!({})).await;
        assert_eq!(error_code(&v), "VALIDATION", "{query}: {v}");
        assert_eq!(error_field(&v), field);
    }
}

#[tokio::test]
async fn database_failures_answer_internal_without_details() {
    use sea_orm::ConnectionTrait;
    let server = TestServer::start().await;
    let token = server.admin().await;
    let account = server.create_account(&token, "Broken").await;
    // Break the schema underneath the running server, as a botched manual change would.
    server
        .state
        .services
        .db
        .execute_unprepared("DROP TABLE notes")
        .await
        .unwrap();
    let v = server
        .gql(
            Some(&token),
            "mutation($s: ID!) { addNote(subjectId: $s, body: \"hello\") { note { id } } }",
            json!({ "s": account }),
        )
        .await;
    assert_eq!(error_code(&v), "INTERNAL");
    assert_eq!(v["errors"][0]["message"], "internal error");
    let text = v.to_string().to_lowercase();
    for leak in [
        "no such table",
        "does not exist",
        "insert into",
        "sqlx",
        "relation",
    ] {
        assert!(
            !text.contains(leak),
            "internal detail `{leak}` reached the client: {v}"
        );
    }
    // The server keeps answering.
    let v = server
        .gql(
            Some(&token),
            "query($id: ID!) { account(id: $id) { name } }",
            json!({ "id": account }),
        )
        .await;
    assert_eq!(data(&v)["account"]["name"], "Broken");
}
