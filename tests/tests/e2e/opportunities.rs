use accord_e2e::{TestServer, data, error_code, error_field};
use serde_json::json;

const MOVE: &str = "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { version stage { name kind } closedAt lostReason stageHistory { fromStage { name } toStage { name } secondsInPreviousStage actor { email } } } } }";

#[tokio::test]
async fn stage_moves_log_transitions_and_close_deals() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let (opp, version) = server.create_opportunity(&f, "Big deal", "125000.75").await;
    assert_eq!(version, 1);

    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 1, "stageId": f.stages[2] } }),
        )
        .await;
    let o = &data(&v)["moveOpportunityStage"]["opportunity"];
    assert_eq!(o["version"], 2);
    assert_eq!(o["stage"]["name"], "Proposal");
    assert!(o["closedAt"].is_null());
    let history = o["stageHistory"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0]["fromStage"].is_null());
    assert_eq!(history[0]["toStage"]["name"], "Qualify");
    assert_eq!(history[1]["fromStage"]["name"], "Qualify");
    assert_eq!(history[1]["toStage"]["name"], "Proposal");
    assert!(history[1]["secondsInPreviousStage"].as_i64().unwrap() >= 0);
    assert_eq!(history[1]["actor"]["email"], "admin@example.com");

    // Lost needs a reason; a reason needs a lost stage.
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 2, "stageId": f.stages[5] } }),
        )
        .await;
    assert_eq!(error_field(&v), "lostReason");
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 2, "stageId": f.stages[3], "lostReason": "x" } }),
        )
        .await;
    assert_eq!(error_field(&v), "lostReason");
    // Same stage, stale version, foreign stage.
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 2, "stageId": f.stages[2] } }),
        )
        .await;
    assert_eq!(error_field(&v), "stageId");
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 1, "stageId": f.stages[3] } }),
        )
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 2, "stageId": "U3RhZ2U6OTk5OQ" } }),
        )
        .await;
    assert_eq!(error_field(&v), "stageId");

    let v = server
        .gql(Some(&f.token), MOVE, json!({ "i": { "id": opp, "version": 2, "stageId": f.stages[5], "lostReason": "Went with a competitor" } }))
        .await;
    let o = &data(&v)["moveOpportunityStage"]["opportunity"];
    assert_eq!(o["stage"]["kind"], "LOST");
    assert_eq!(o["lostReason"], "Went with a competitor");
    assert!(o["closedAt"].is_string());
    assert_eq!(o["stageHistory"].as_array().unwrap().len(), 3);

    // Reopening clears the close.
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 3, "stageId": f.stages[1] } }),
        )
        .await;
    let o = &data(&v)["moveOpportunityStage"]["opportunity"];
    assert!(o["closedAt"].is_null() && o["lostReason"].is_null());

    let v = server.gql(Some(&f.token), "{ opportunities(filter: {stageKind: OPEN}) { totalCount } closed: opportunities(filter: {stageKind: LOST}) { totalCount } }", json!({})).await;
    assert_eq!(data(&v)["opportunities"]["totalCount"], 1);
    assert_eq!(data(&v)["closed"]["totalCount"], 0);
}

#[tokio::test]
async fn failed_stage_move_writes_no_transition_or_audit() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let (opp, _) = server.create_opportunity(&f, "Steady", "10").await;
    let audit = "{ auditLog { totalCount } }";
    let before = server.gql(Some(&f.token), audit, json!({})).await;
    let v = server
        .gql(
            Some(&f.token),
            MOVE,
            json!({ "i": { "id": opp, "version": 1, "stageId": f.stages[5] } }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert_eq!(server.gql(Some(&f.token), audit, json!({})).await, before);
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { opportunity(id: $id) { version stageHistory { id } } }",
            json!({ "id": opp }),
        )
        .await;
    assert_eq!(data(&v)["opportunity"]["version"], 1);
    assert_eq!(
        data(&v)["opportunity"]["stageHistory"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn buying_committee_roles() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let (opp, _) = server.create_opportunity(&f, "Committee", "5000").await;
    let cfo = server
        .create_contact(&f.token, &f.account_id, "Money", None)
        .await;
    let cto = server
        .create_contact(&f.token, &f.account_id, "Tech", Some(&cfo))
        .await;
    let add = "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id role isPrimary contact { lastName } } } }";
    let v = server.gql(Some(&f.token), add, json!({ "i": { "opportunityId": opp, "contactId": cfo, "role": "ECONOMIC_BUYER", "isPrimary": true } })).await;
    assert_eq!(
        data(&v)["addOpportunityContactRole"]["contactRole"]["isPrimary"],
        true
    );
    let v = server.gql(Some(&f.token), add, json!({ "i": { "opportunityId": opp, "contactId": cto, "role": "TECHNICAL_BUYER", "isPrimary": true } })).await;
    let tech_role = data(&v)["addOpportunityContactRole"]["contactRole"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Duplicates, unknown contacts, unknown roles.
    let v = server
        .gql(
            Some(&f.token),
            add,
            json!({ "i": { "opportunityId": opp, "contactId": cfo, "role": "ECONOMIC_BUYER" } }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    let v = server.gql(Some(&f.token), add, json!({ "i": { "opportunityId": opp, "contactId": "Q29udGFjdDo5OTk5", "role": "CHAMPION" } })).await;
    assert_eq!(error_field(&v), "contactId");
    let v = server
        .gql(
            Some(&f.token),
            add,
            json!({ "i": { "opportunityId": opp, "contactId": cfo, "role": "KINGMAKER" } }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");

    let v = server.gql(Some(&f.token), "query($id: ID!) { opportunity(id: $id) { contactRoles { role isPrimary contact { lastName } } } }", json!({ "id": opp })).await;
    let roles = data(&v)["opportunity"]["contactRoles"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(roles.len(), 2);
    let primaries: Vec<_> = roles.iter().filter(|r| r["isPrimary"] == true).collect();
    assert_eq!(primaries.len(), 1, "a new primary demotes the old one");
    assert_eq!(primaries[0]["contact"]["lastName"], "Tech");

    let v = server
        .gql(
            Some(&f.token),
            "mutation($id: ID!) { removeOpportunityContactRole(id: $id) { deletedId } }",
            json!({ "id": tech_role }),
        )
        .await;
    assert!(v.get("errors").is_none());
    let v = server.gql(Some(&f.token), "query($id: ID!) { contact(id: $id) { opportunityRoles { role opportunity { name } } } }", json!({ "id": cfo })).await;
    assert_eq!(
        data(&v)["contact"]["opportunityRoles"][0]["opportunity"]["name"],
        "Committee"
    );
}

#[tokio::test]
async fn money_is_exact() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let (opp, _) = server.create_opportunity(&f, "Pennies", "0.1").await;
    let v = server
        .gql(Some(&f.token), "mutation($id: ID!) { updateOpportunity(input: {id: $id, version: 1, amount: \"999999999999.999999\"}) { opportunity { amount { amount } version } } }", json!({ "id": opp }))
        .await;
    assert_eq!(
        data(&v)["updateOpportunity"]["opportunity"]["amount"]["amount"],
        "999999999999.999999"
    );
    let v = server
        .gql(
            Some(&f.token),
            "{ opportunities(filter: {amountMin: \"999999999999.999998\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["opportunities"]["totalCount"], 1);
}
