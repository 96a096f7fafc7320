use accord_e2e::{TestServer, data, error_code, error_field};
use serde_json::{Value, json};

async fn create_lead(server: &TestServer, token: &str) -> String {
    let v = server
        .gql(
            Some(token),
            r#"mutation { createLead(input: {firstName: "Priya", lastName: "Shah", company: "Lotus Diagnostics", email: "priya@lotus.example", source: EVENT, grade: A}) { lead { id status version } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["createLead"]["lead"]["status"], "NEW");
    data(&v)["createLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn counts(server: &TestServer, token: &str) -> Value {
    let v = server
        .gql(
            Some(token),
            "{ accounts { totalCount } contacts { totalCount } opportunities { totalCount } }",
            json!({}),
        )
        .await;
    data(&v).clone()
}

const CONVERT: &str = "mutation($i: ConvertLeadInput!) { convertLead(input: $i) { lead { status version convertedAt convertedAccount { name } convertedContact { fullName } convertedOpportunity { name } } account { id name } contact { email account { name } } opportunity { name source grade stage { name } amount { amount currency } } } }";

#[tokio::test]
async fn conversion_creates_account_contact_and_deal_at_once() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let lead = create_lead(&server, &f.token).await;
    let input = json!({ "i": { "id": lead, "version": 1, "opportunity": { "name": "Lotus lab rollout", "pipelineId": f.pipeline_id, "amount": "48000", "currency": "usd", "expectedCloseDate": "2027-06-30" } } });
    let v = server.gql(Some(&f.token), CONVERT, input.clone()).await;
    let out = &data(&v)["convertLead"];
    assert_eq!(out["lead"]["status"], "CONVERTED");
    assert_eq!(out["lead"]["version"], 2);
    assert_eq!(out["account"]["name"], "Lotus Diagnostics");
    assert_eq!(out["contact"]["email"], "priya@lotus.example");
    assert_eq!(out["contact"]["account"]["name"], "Lotus Diagnostics");
    assert_eq!(out["opportunity"]["source"], "EVENT");
    assert_eq!(out["opportunity"]["grade"], "A");
    assert_eq!(out["opportunity"]["stage"]["name"], "Qualify");
    assert_eq!(out["opportunity"]["amount"]["currency"], "USD");
    assert_eq!(
        out["lead"]["convertedOpportunity"]["name"],
        "Lotus lab rollout"
    );

    // Converting twice is a conflict.
    let again = json!({ "i": { "id": lead, "version": 2 } });
    let v = server.gql(Some(&f.token), CONVERT, again).await;
    assert_eq!(error_code(&v), "CONFLICT");
    // And a converted lead is read-only.
    let v = server
        .gql(Some(&f.token), "mutation($id: ID!) { updateLead(input: {id: $id, version: 2, company: \"Renamed\"}) { lead { id } } }", json!({ "id": lead }))
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
}

#[tokio::test]
async fn conversion_failing_halfway_writes_nothing() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let lead = create_lead(&server, &f.token).await;
    let before = counts(&server, &f.token).await;
    let audit_before = server
        .gql(Some(&f.token), "{ auditLog { totalCount } }", json!({}))
        .await;

    // The account and contact are inserted before the deal's pipeline is looked up; the
    // unknown pipeline fails the conversion after those inserts, so they must roll back.
    let input = json!({ "i": { "id": lead, "version": 1, "opportunity": { "name": "Doomed", "pipelineId": "UGlwZWxpbmU6OTk5OTk", "amount": "1000", "currency": "EUR", "expectedCloseDate": "2027-01-01" } } });
    let v = server.gql(Some(&f.token), CONVERT, input).await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert_eq!(error_field(&v), "opportunity.pipelineId");

    // Same with an invalid amount, found only when the deal is built.
    let input = json!({ "i": { "id": lead, "version": 1, "opportunity": { "name": "Doomed", "pipelineId": f.pipeline_id, "amount": "-1", "currency": "EUR", "expectedCloseDate": "2027-01-01" } } });
    let v = server.gql(Some(&f.token), CONVERT, input).await;
    assert_eq!(error_field(&v), "opportunity.amount");

    assert_eq!(counts(&server, &f.token).await, before);
    let audit_after = server
        .gql(Some(&f.token), "{ auditLog { totalCount } }", json!({}))
        .await;
    assert_eq!(audit_after, audit_before);
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { lead(id: $id) { status version } }",
            json!({ "id": lead }),
        )
        .await;
    assert_eq!(data(&v)["lead"]["status"], "NEW");
    assert_eq!(data(&v)["lead"]["version"], 1);
}

#[tokio::test]
async fn conversion_into_an_existing_account() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let lead = create_lead(&server, &f.token).await;
    let v = server
        .gql(
            Some(&f.token),
            CONVERT,
            json!({ "i": { "id": lead, "version": 1, "existingAccountId": f.account_id } }),
        )
        .await;
    let out = &data(&v)["convertLead"];
    assert_eq!(out["account"]["id"], f.account_id.as_str());
    assert!(out["opportunity"].is_null());
    let v = server
        .gql(Some(&f.token), "{ accounts { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&v)["accounts"]["totalCount"], 1);
}

#[tokio::test]
async fn lead_status_cannot_be_set_to_converted_by_hand() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let lead = create_lead(&server, &f.token).await;
    let v = server
        .gql(Some(&f.token), "mutation($id: ID!) { updateLead(input: {id: $id, version: 1, status: CONVERTED}) { lead { id } } }", json!({ "id": lead }))
        .await;
    assert_eq!(error_field(&v), "status");
    let v = server
        .gql(Some(&f.token), "mutation($id: ID!) { updateLead(input: {id: $id, version: 1, status: QUALIFIED, grade: null}) { lead { status grade version } } }", json!({ "id": lead }))
        .await;
    assert_eq!(data(&v)["updateLead"]["lead"]["status"], "QUALIFIED");
    assert!(data(&v)["updateLead"]["lead"]["grade"].is_null());
    let v = server
        .gql(
            Some(&f.token),
            "{ leads(filter: {status: QUALIFIED, search: \"lotus\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["leads"]["totalCount"], 1);
}
