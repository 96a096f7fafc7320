//! Territory permissions: the ugly cases a rep might try, and the management API.

use accord_e2e::{TestServer, data, error_code, error_field};
use accord_entities::user::Role;
use serde_json::json;

#[tokio::test]
async fn reps_cannot_reach_records_of_other_territories_by_any_route() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let admin = &f.token;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let west = server.territory(admin, "West", None).await;
    let east = server.territory(admin, "East", None).await;
    server.grant(admin, &west, &rep, "EDIT", false).await;
    let mine = server.create_account_in(admin, "Mine", &west).await;
    let theirs = server.create_account_in(admin, "Theirs", &east).await;
    let their_contact = server.create_contact(admin, &theirs, "Hidden", None).await;

    // Guessing an ID answers exactly like a missing record.
    let v = server
        .gql(
            Some(&rep),
            "query($id: ID!) { account(id: $id) { name } }",
            json!({ "id": theirs }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    // Counting what you cannot see: the other territory does not exist for you.
    let v = server
        .gql(
            Some(&rep),
            "{ accounts { totalCount } contacts { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["accounts"]["totalCount"], 1);
    assert_eq!(data(&v)["contacts"]["totalCount"], 0);
    // Reaching in through a reference of a record you may edit.
    let v = server
        .gql(
            Some(&rep),
            "mutation($a: ID!, $r: ID) { createContact(input: {accountId: $a, firstName: \"A\", lastName: \"B\", reportsToId: $r}) { contact { id } } }",
            json!({ "a": mine, "r": their_contact }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert_eq!(error_field(&v), "reportsToId");
    let v = server
        .gql(
            Some(&rep),
            "mutation($a: ID!) { createContact(input: {accountId: $a, firstName: \"A\", lastName: \"B\"}) { contact { id } } }",
            json!({ "a": theirs }),
        )
        .await;
    assert_eq!(error_field(&v), "accountId");
    // Moving an account out of reach takes owner access here.
    let v = server
        .gql(
            Some(&rep),
            "mutation($id: ID!, $t: ID!) { updateAccount(input: {id: $id, version: 1, territoryId: $t}) { account { id } } }",
            json!({ "id": mine, "t": east }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    // Nothing of the above was written.
    let v = server
        .gql(Some(admin), "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&v)["contacts"]["totalCount"], 1);
}

#[tokio::test]
async fn removing_a_membership_takes_effect_on_the_next_request() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let west = server.territory(&admin, "West", None).await;
    server.grant(&admin, &west, &rep, "READ", false).await;
    let acc = server.create_account_in(&admin, "Acme", &west).await;
    let q = "query($id: ID!) { account(id: $id) { name } }";
    let v = server.gql(Some(&rep), q, json!({ "id": acc })).await;
    assert_eq!(data(&v)["account"]["name"], "Acme");
    // Read access does not let the rep edit.
    let v = server
        .gql(
            Some(&rep),
            "mutation($id: ID!) { updateAccount(input: {id: $id, version: 1, name: \"X\"}) { account { id } } }",
            json!({ "id": acc }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let rep_id = server.user_id(&rep).await;
    let v = server
        .gql(
            Some(&admin),
            "mutation($t: ID!, $u: ID!) { removeTerritoryMembership(territoryId: $t, userId: $u) { membership { id } } }",
            json!({ "t": west, "u": rep_id }),
        )
        .await;
    data(&v);
    let v = server.gql(Some(&rep), q, json!({ "id": acc })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn managers_inherit_their_subtree_and_rules_place_accounts() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let boss = server.user("boss@example.com", Role::SalesManager).await;
    let emea = server.territory(&admin, "EMEA", None).await;
    let dach = server.territory(&admin, "DACH", Some(&emea)).await;
    let apac = server.territory(&admin, "APAC", None).await;
    server.grant(&admin, &emea, &boss, "OWNER", true).await;
    // The manager may build below their territory, not beside it.
    let v = server
        .gql(
            Some(&boss),
            "mutation($p: ID!) { createTerritory(input: {name: \"Berlin\", parentId: $p}) { territory { id } } }",
            json!({ "p": dach }),
        )
        .await;
    let berlin = data(&v)["createTerritory"]["territory"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server
        .gql(
            Some(&boss),
            "mutation($p: ID!) { createTerritory(input: {name: \"Tokyo\", parentId: $p}) { territory { id } } }",
            json!({ "p": apac }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    // A rule places German accounts in Berlin; the manager sees them through the subtree.
    let v = server
        .gql(
            Some(&boss),
            "mutation($t: ID!) { createAssignmentRule(input: {name: \"Germany\", position: 1, territoryId: $t, country: \"DE\"}) { rule { id } } }",
            json!({ "t": berlin }),
        )
        .await;
    data(&v);
    let v = server
        .gql(
            Some(&boss),
            "mutation { createAccount(input: {name: \"Siemens\", country: \"DE\"}) { account { id territory { name } territoryManual } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&v)["createAccount"]["account"]["territory"]["name"],
        "Berlin"
    );
    assert_eq!(
        data(&v)["createAccount"]["account"]["territoryManual"],
        false
    );
    // Nothing matches a French account and the manager may not leave it unassigned.
    let v = server
        .gql(Some(&boss), "mutation { createAccount(input: {name: \"Total\", country: \"FR\"}) { account { id } } }", json!({}))
        .await;
    assert_eq!(error_field(&v), "territoryId");
    // An account an admin placed by hand before the rule existed moves on a rule run.
    let v = server
        .gql(Some(&admin), "mutation { createAccount(input: {name: \"Bosch\", country: \"DE\"}) { account { id territory { name } } } }", json!({}))
        .await;
    assert_eq!(
        data(&v)["createAccount"]["account"]["territory"]["name"],
        "Berlin"
    );
    let v = server
        .gql(Some(&admin), "mutation { runAssignmentRules(dryRun: true) { examined moved { accountName } dryRun } }", json!({}))
        .await;
    assert_eq!(
        data(&v)["runAssignmentRules"]["moved"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let v = server
        .gql(
            Some(&boss),
            "mutation { runAssignmentRules { examined } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
}
