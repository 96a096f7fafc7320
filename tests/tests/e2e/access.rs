//! Access analysis: `explainAccess` and previewing then applying territory changes.

use accord_e2e::{TestServer, data, error_code, error_field};
use accord_entities::user::Role;
use serde_json::{Value, json};

const EXPLAIN: &str = "query($u: ID, $r: ID!, $a: AccessAction!) { explainAccess(userId: $u, recordId: $r, action: $a) { allowed roleAllowed territoryAllowed summary reasons policyLines territoryPath { name } user { id } } }";

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn raw_id(global: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(global)
        .expect("base64 id");
    let text = String::from_utf8(bytes).expect("utf-8 id");
    text.split_once(':').expect("kind:id").1.to_owned()
}

#[tokio::test]
async fn explain_access_names_the_policy_line_and_territory_path() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rep = server.user("rita@example.com", Role::Rep).await;
    let boss = server.user("bo@example.com", Role::SalesManager).await;
    let emea = server.territory(&admin, "EMEA", None).await;
    let uk = server.territory(&admin, "UK", Some(&emea)).await;
    let london = server.territory(&admin, "London", Some(&uk)).await;
    let apac = server.territory(&admin, "APAC", None).await;
    server.grant(&admin, &london, &rep, "READ", false).await;
    server.grant(&admin, &uk, &rep, "EDIT", false).await;
    server.grant(&admin, &emea, &boss, "OWNER", true).await;
    let acc = server.create_account_in(&admin, "Harrods", &london).await;
    let hidden = server.create_account_in(&admin, "Sony", &apac).await;
    let rep_id = server.user_id(&rep).await;
    let boss_id = server.user_id(&boss).await;

    // A member's read access, with the line that grants it and the path above.
    let v = server
        .gql(
            Some(&admin),
            EXPLAIN,
            json!({ "u": rep_id, "r": acc, "a": "READ" }),
        )
        .await;
    let e = &data(&v)["explainAccess"];
    assert_eq!(e["allowed"], true);
    assert_eq!(e["summary"], "Allowed: rita may read this account.");
    let lines = texts(&e["policyLines"]);
    assert!(
        lines.contains(&format!(
            "p, user:{}, territory:{}, level:read, member",
            raw_id(&rep_id),
            raw_id(&london)
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"p2, role:rep, account, read".to_owned()),
        "{lines:?}"
    );
    let path: Vec<&str> = e["territoryPath"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["London", "UK", "EMEA"]);
    assert!(
        texts(&e["reasons"])
            .iter()
            .any(|r| r.contains("rita is a member of London with read access"))
    );

    // Edit: read on London is not enough, and edit on UK does not reach down.
    let v = server
        .gql(
            Some(&admin),
            EXPLAIN,
            json!({ "u": rep_id, "r": acc, "a": "EDIT" }),
        )
        .await;
    let e = &data(&v)["explainAccess"];
    assert_eq!(e["allowed"], false);
    assert_eq!(e["roleAllowed"], true);
    assert_eq!(e["territoryAllowed"], false);
    assert_eq!(e["summary"], "Denied: rita may not edit this account.");
    let reasons = texts(&e["reasons"]);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("member of London with read access, but this needs edit")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("member of UK") && r.contains("only managers inherit")),
        "{reasons:?}"
    );

    // A manager's subtree grant, explained through the path.
    let v = server
        .gql(
            Some(&admin),
            EXPLAIN,
            json!({ "u": boss_id, "r": acc, "a": "DELETE" }),
        )
        .await;
    let e = &data(&v)["explainAccess"];
    assert_eq!(e["allowed"], true, "{e}");
    let reasons = texts(&e["reasons"]);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("(p2, role:rep, account, delete, inherited from rep)")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("bo manages EMEA with owner access")
                && r.contains("London › UK › EMEA")),
        "{reasons:?}"
    );

    // No membership anywhere on the path.
    let v = server
        .gql(
            Some(&admin),
            EXPLAIN,
            json!({ "u": rep_id, "r": hidden, "a": "READ" }),
        )
        .await;
    let e = &data(&v)["explainAccess"];
    assert_eq!(e["allowed"], false);
    assert!(
        texts(&e["reasons"])
            .iter()
            .any(|r| r.contains("holds no membership on APAC or any territory above it")),
    );

    // Reps ask about themselves, on records they can see; nobody else's.
    let v = server
        .gql(Some(&rep), EXPLAIN, json!({ "r": acc, "a": "EDIT" }))
        .await;
    assert_eq!(data(&v)["explainAccess"]["allowed"], false);
    assert_eq!(data(&v)["explainAccess"]["user"]["id"], rep_id.as_str());
    let v = server
        .gql(Some(&rep), EXPLAIN, json!({ "r": hidden, "a": "READ" }))
        .await;
    assert_eq!(
        error_code(&v),
        "NOT_FOUND",
        "explain must not reveal records"
    );
    let v = server
        .gql(
            Some(&rep),
            EXPLAIN,
            json!({ "u": boss_id, "r": acc, "a": "READ" }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    // The manager may ask about a member of their subtree.
    let v = server
        .gql(
            Some(&boss),
            EXPLAIN,
            json!({ "u": rep_id, "r": acc, "a": "READ" }),
        )
        .await;
    assert_eq!(data(&v)["explainAccess"]["allowed"], true);

    // Malformed and wrong-kind IDs.
    for (bad, field) in [("nonsense", "recordId"), (london.as_str(), "recordId")] {
        let v = server
            .gql(Some(&admin), EXPLAIN, json!({ "r": bad, "a": "READ" }))
            .await;
        assert_eq!(error_code(&v), "VALIDATION");
        assert_eq!(error_field(&v), field);
    }
    let v = server
        .gql(
            Some(&admin),
            EXPLAIN,
            json!({ "u": acc, "r": acc, "a": "READ" }),
        )
        .await;
    assert_eq!(error_field(&v), "userId");
}

const PREVIEW: &str = "query($i: TerritoryChangeInput!) { previewTerritoryChange(input: $i) { applied policyVersion accountsMoved { accountName } users { user { email } readGained { accounts contacts opportunities } readLost { accounts contacts opportunities } editGained { accounts } editLost { accounts } territories { territory { name } before after } } } }";
const APPLY: &str = "mutation($i: TerritoryChangeInput!) { applyTerritoryChange(input: $i) { applied policyVersion accountsMoved { accountName } users { user { email } readGained { accounts contacts opportunities } readLost { accounts contacts opportunities } editGained { accounts } editLost { accounts } territories { territory { name } before after } } } }";

fn impact_of<'a>(impact: &'a Value, email: &str) -> Option<&'a Value> {
    impact["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["user"]["email"] == email)
}

async fn visible_accounts(server: &TestServer, token: &str) -> i64 {
    let v = server
        .gql(Some(token), "{ accounts { totalCount } }", json!({}))
        .await;
    data(&v)["accounts"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn preview_counts_what_each_user_gains_and_loses_and_apply_commits_exactly_that() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let admin = f.token.clone();
    let north_boss = server.user("north@example.com", Role::SalesManager).await;
    let south_boss = server.user("south@example.com", Role::SalesManager).await;
    let city_rep = server.user("city@example.com", Role::Rep).await;
    let new_rep = server.user("new@example.com", Role::Rep).await;
    let north = server.territory(&admin, "North", None).await;
    let south = server.territory(&admin, "South", None).await;
    let city = server.territory(&admin, "City", Some(&north)).await;
    server
        .grant(&admin, &north, &north_boss, "OWNER", true)
        .await;
    server
        .grant(&admin, &south, &south_boss, "EDIT", true)
        .await;
    server.grant(&admin, &city, &city_rep, "EDIT", false).await;
    let mut city_accounts = Vec::new();
    for name in ["A", "B"] {
        let acc = server.create_account_in(&admin, name, &city).await;
        server.create_contact(&admin, &acc, name, None).await;
        city_accounts.push(acc);
    }
    // Two deals in City: one the north manager owns (and keeps seeing wherever City
    // goes), one an admin owns.
    let north_boss_id = server.user_id(&north_boss).await;
    for owner in [Some(north_boss_id.as_str()), None] {
        let v = server
            .gql(
                Some(&admin),
                "mutation($a: ID!, $p: ID!, $o: ID) { createOpportunity(input: {name: \"Deal\", accountId: $a, pipelineId: $p, ownerId: $o, amount: \"10\", currency: \"EUR\", expectedCloseDate: \"2027-03-31\"}) { opportunity { id } } }",
                json!({ "a": city_accounts[0], "p": f.pipeline_id, "o": owner }),
            )
            .await;
        data(&v);
    }
    server.create_account_in(&admin, "C", &south).await;
    let new_rep_id = server.user_id(&new_rep).await;

    let input = json!({ "changes": [
        { "moveTerritory": { "territoryId": city, "parentId": south } },
        { "setMembership": { "territoryId": south, "userId": new_rep_id, "accessLevel": "READ" } },
    ] });
    let v = server
        .gql(Some(&admin), PREVIEW, json!({ "i": input }))
        .await;
    let preview = data(&v)["previewTerritoryChange"].clone();
    assert_eq!(preview["applied"], false);
    let north_impact = impact_of(&preview, "north@example.com").expect("north boss affected");
    assert_eq!(
        north_impact["readLost"],
        json!({ "accounts": 2, "contacts": 2, "opportunities": 1 })
    );
    assert_eq!(north_impact["editLost"]["accounts"], 2);
    assert_eq!(north_impact["readGained"]["accounts"], 0);
    assert_eq!(
        north_impact["territories"],
        json!([{ "territory": { "name": "City" }, "before": "OWNER", "after": null }])
    );
    let south_impact = impact_of(&preview, "south@example.com").expect("south boss affected");
    assert_eq!(
        south_impact["readGained"],
        json!({ "accounts": 2, "contacts": 2, "opportunities": 2 })
    );
    let new_impact = impact_of(&preview, "new@example.com").expect("new rep affected");
    assert_eq!(new_impact["readGained"]["accounts"], 1);
    assert_eq!(new_impact["editGained"]["accounts"], 0);
    assert!(
        impact_of(&preview, "city@example.com").is_none(),
        "a member of the moved territory itself keeps exactly what they had"
    );
    // Nothing was applied.
    assert_eq!(visible_accounts(&server, &north_boss).await, 2);
    assert_eq!(visible_accounts(&server, &south_boss).await, 1);
    assert_eq!(visible_accounts(&server, &new_rep).await, 0);

    // Apply what was previewed: the same numbers, and now they hold.
    let mut apply = input.clone();
    apply["expectedPolicyVersion"] = preview["policyVersion"].clone();
    let v = server.gql(Some(&admin), APPLY, json!({ "i": apply })).await;
    let applied = data(&v)["applyTerritoryChange"].clone();
    assert_eq!(applied["applied"], true);
    assert_eq!(applied["users"], preview["users"]);
    assert_eq!(visible_accounts(&server, &north_boss).await, 0);
    assert_eq!(visible_accounts(&server, &south_boss).await, 3);
    assert_eq!(visible_accounts(&server, &new_rep).await, 1);
    assert_eq!(visible_accounts(&server, &city_rep).await, 2);

    // The preview's version is spent: a second apply of it is refused.
    let v = server.gql(Some(&admin), APPLY, json!({ "i": apply })).await;
    assert_eq!(error_code(&v), "CONFLICT");
}

#[tokio::test]
async fn a_bad_step_rejects_the_whole_change_and_only_managers_of_the_subtree_may_change_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let boss = server.user("boss@example.com", Role::SalesManager).await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let top = server.territory(&admin, "Top", None).await;
    let left = server.territory(&admin, "Left", Some(&top)).await;
    let right = server.territory(&admin, "Right", Some(&top)).await;
    let other = server.territory(&admin, "Other", None).await;
    server.grant(&admin, &top, &boss, "OWNER", true).await;
    let rep_id = server.user_id(&rep).await;

    // Step 2 would put Top below its own child: nothing of step 1 survives either.
    let input = json!({ "changes": [
        { "setMembership": { "territoryId": left, "userId": rep_id, "accessLevel": "EDIT" } },
        { "moveTerritory": { "territoryId": top, "parentId": right } },
    ] });
    let v = server.gql(Some(&admin), APPLY, json!({ "i": input })).await;
    assert_eq!(error_code(&v), "VALIDATION");
    assert_eq!(error_field(&v), "changes.1.parentId");
    let v = server
        .gql(
            Some(&admin),
            "query($u: ID!) { territoryMemberships(userId: $u) { id } }",
            json!({ "u": rep_id }),
        )
        .await;
    assert_eq!(data(&v)["territoryMemberships"], json!([]));

    // A manager changes their subtree, not beside it; reps change nothing.
    let inside =
        json!({ "changes": [{ "moveTerritory": { "territoryId": right, "parentId": left } }] });
    let v = server
        .gql(Some(&boss), PREVIEW, json!({ "i": inside }))
        .await;
    assert_eq!(data(&v)["previewTerritoryChange"]["applied"], false);
    let outside =
        json!({ "changes": [{ "moveTerritory": { "territoryId": right, "parentId": other } }] });
    let v = server
        .gql(Some(&boss), PREVIEW, json!({ "i": outside }))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = server
        .gql(Some(&rep), PREVIEW, json!({ "i": inside }))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = server
        .gql(
            Some(&boss),
            PREVIEW,
            json!({ "i": { "changes": inside["changes"], "reassignAccounts": true } }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    // Empty and malformed input.
    let v = server
        .gql(Some(&admin), PREVIEW, json!({ "i": { "changes": [] } }))
        .await;
    assert_eq!(error_field(&v), "changes");
    let v = server
        .gql(
            Some(&admin),
            PREVIEW,
            json!({ "i": { "changes": [{ "moveTerritory": { "territoryId": "bogus", "parentId": null } }] } }),
        )
        .await;
    assert_eq!(error_field(&v), "changes.0.territoryId");
    let v = server
        .gql(
            Some(&admin),
            PREVIEW,
            json!({ "i": { "changes": [{ "deleteRule": { "id": left }, "moveTerritory": { "territoryId": left } }] } }),
        )
        .await;
    assert_eq!(
        error_code(&v),
        "VALIDATION",
        "one step sets exactly one field: {v}"
    );
}

#[tokio::test]
async fn editing_a_rule_with_reassignment_previews_the_accounts_it_moves() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let west = server.territory(&admin, "West", None).await;
    let east = server.territory(&admin, "East", None).await;
    server.grant(&admin, &east, &rep, "EDIT", false).await;
    let v = server
        .gql(
            Some(&admin),
            "mutation($t: ID!) { createAssignmentRule(input: {name: \"Germany\", position: 1, territoryId: $t, country: \"DE\"}) { rule { id } } }",
            json!({ "t": west }),
        )
        .await;
    let rule = data(&v)["createAssignmentRule"]["rule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in ["Bosch", "Siemens"] {
        server.create_account(&admin, name).await;
    }
    let retarget = |reassign: bool| {
        json!({ "i": { "reassignAccounts": reassign, "changes": [{ "updateRule": { "id": rule, "rule": {
            "name": "Germany", "position": 1, "territoryId": east, "country": "DE" } } }] } })
    };
    // Without reassignment a rule edit only steers future placements.
    let v = server.gql(Some(&admin), PREVIEW, retarget(false)).await;
    let p = &data(&v)["previewTerritoryChange"];
    assert_eq!(p["accountsMoved"], json!([]));
    assert_eq!(p["users"], json!([]));
    let v = server.gql(Some(&admin), PREVIEW, retarget(true)).await;
    let p = &data(&v)["previewTerritoryChange"];
    let mut moved: Vec<&str> = p["accountsMoved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["accountName"].as_str().unwrap())
        .collect();
    moved.sort_unstable();
    assert_eq!(moved, ["Bosch", "Siemens"]);
    let r = impact_of(p, "rep@example.com").expect("rep affected");
    assert_eq!(r["readGained"]["accounts"], 2);
    assert_eq!(r["editGained"]["accounts"], 2);
    assert_eq!(r["territories"], json!([]));
    assert_eq!(visible_accounts(&server, &rep).await, 0);
    let v = server.gql(Some(&admin), APPLY, retarget(true)).await;
    assert_eq!(data(&v)["applyTerritoryChange"]["applied"], true);
    assert_eq!(visible_accounts(&server, &rep).await, 2);
}
