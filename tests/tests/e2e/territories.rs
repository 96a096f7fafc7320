//! Territory permissions: the ugly cases a rep might try, and the management API.

use accord_e2e::{TestServer, data, error_code, error_field};
use accord_entities::user::Role;
use serde_json::{Value, json};

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

/// The ids of a whole list walked page by page with cursors, forwards or backwards.
async fn walk(server: &TestServer, token: &str, order: &Value, backward: bool) -> Vec<String> {
    let q = "query($f: Int, $a: String, $l: Int, $b: String, $o: OpportunityOrder) { opportunities(first: $f, after: $a, last: $l, before: $b, orderBy: $o) { edges { node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let vars = if backward {
            json!({ "l": 2, "b": cursor, "o": order })
        } else {
            json!({ "f": 2, "a": cursor, "o": order })
        };
        let v = server.gql(Some(token), q, vars).await;
        let conn = &data(&v)["opportunities"];
        let mut page: Vec<String> = conn["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        let info = &conn["pageInfo"];
        let more = if backward {
            page.reverse();
            cursor = info["startCursor"].as_str().map(str::to_owned);
            info["hasPreviousPage"] == true
        } else {
            cursor = info["endCursor"].as_str().map(str::to_owned);
            info["hasNextPage"] == true
        };
        ids.extend(page);
        assert!(ids.len() < 100, "the walk does not end");
        if !more {
            break;
        }
    }
    if backward {
        ids.reverse();
    }
    ids
}

#[tokio::test]
async fn a_reps_deal_pages_walk_their_territories_and_own_deals_in_every_order() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let admin = f.token.clone();
    let rep = server.user("rep@example.com", Role::Rep).await;
    let rep_id = server.user_id(&rep).await;
    let t1 = server.territory(&admin, "One", None).await;
    let t2 = server.territory(&admin, "Two", None).await;
    let t3 = server.territory(&admin, "Three", None).await;
    server.grant(&admin, &t1, &rep, "EDIT", false).await;
    server.grant(&admin, &t2, &rep, "READ", false).await;
    let mut expected = std::collections::BTreeSet::new();
    // (territory, deals, how many of them the rep owns); amounts repeat so ties fall to ids.
    for (territory, count, owned) in [(&t1, 4, 1), (&t2, 3, 0), (&t3, 4, 2)] {
        let account = server.create_account_in(&admin, "Acct", territory).await;
        for i in 0..count {
            let owner = (i < owned).then_some(rep_id.as_str());
            let v = server
                .gql(
                    Some(&admin),
                    "mutation($a: ID!, $p: ID!, $o: ID, $n: String!, $amt: Decimal!) { createOpportunity(input: {name: $n, accountId: $a, pipelineId: $p, ownerId: $o, amount: $amt, currency: \"EUR\", expectedCloseDate: \"2027-03-31\"}) { opportunity { id } } }",
                    json!({ "a": account, "p": f.pipeline_id, "o": owner, "n": format!("Deal {}", (i * 7) % 5), "amt": format!("{}", 100 * (i % 3)) }),
                )
                .await;
            let id = data(&v)["createOpportunity"]["opportunity"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            if territory != &t3 || owner.is_some() {
                expected.insert(id);
            }
        }
    }
    assert_eq!(expected.len(), 9);
    for field in ["CREATED_AT", "NAME", "AMOUNT", "EXPECTED_CLOSE_DATE"] {
        for direction in ["ASC", "DESC"] {
            let order = json!({ "field": field, "direction": direction });
            // The admin's list is unfiltered: the rep's pages must be exactly its
            // visible part, in the same order.
            let all = walk(&server, &admin, &order, false).await;
            let want: Vec<String> = all.into_iter().filter(|id| expected.contains(id)).collect();
            assert_eq!(want.len(), 9);
            assert_eq!(
                walk(&server, &rep, &order, false).await,
                want,
                "{field} {direction} forwards"
            );
            assert_eq!(
                walk(&server, &rep, &order, true).await,
                want,
                "{field} {direction} backwards"
            );
        }
    }
}

/// Renames a deal as `admin` (one change event).
async fn rename(server: &TestServer, admin: &str, deal: &str, version: i64, name: &str) {
    let v = server
        .gql(
            Some(admin),
            "mutation($id: ID!, $v: Int!, $n: String!) { updateOpportunity(input: {id: $id, version: $v, name: $n}) { opportunity { version } } }",
            json!({ "id": deal, "v": version, "n": name }),
        )
        .await;
    data(&v);
}

#[tokio::test]
async fn a_subscriber_stops_hearing_about_a_territory_the_moment_the_membership_goes() {
    use accord_e2e::SubscribeError;
    use std::time::Duration;
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let admin = f.token.clone();
    let rep = server.user("rep@example.com", Role::Rep).await;
    let rep_id = server.user_id(&rep).await;
    let west = server.territory(&admin, "West", None).await;
    let east = server.territory(&admin, "East", None).await;
    server.grant(&admin, &west, &rep, "READ", false).await;
    let west_account = server.create_account_in(&admin, "Westco", &west).await;
    let east_account = server.create_account_in(&admin, "Eastco", &east).await;
    let create = "mutation($a: ID!, $p: ID!, $o: ID, $n: String!) { createOpportunity(input: {name: $n, accountId: $a, pipelineId: $p, ownerId: $o, amount: \"10\", currency: \"EUR\", expectedCloseDate: \"2027-03-31\"}) { opportunity { id } } }";
    let deal = |v: &Value| {
        data(v)["createOpportunity"]["opportunity"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A deal in West (seen through the membership) and one in East the rep owns.
    let v = server
        .gql(
            Some(&admin),
            create,
            json!({ "a": west_account, "p": f.pipeline_id, "n": "West deal" }),
        )
        .await;
    let west_deal = deal(&v);
    let v = server
        .gql(
            Some(&admin),
            create,
            json!({ "a": east_account, "p": f.pipeline_id, "o": rep_id, "n": "Owned deal" }),
        )
        .await;
    let owned_deal = deal(&v);
    let hidden_deal = {
        let v = server
            .gql(
                Some(&admin),
                create,
                json!({ "a": east_account, "p": f.pipeline_id, "n": "East deal" }),
            )
            .await;
        deal(&v)
    };

    let query = "subscription { opportunityChanges { operation opportunityId name version } }";
    let mut sub = server.subscribe(&rep, query).await;
    let wait = Duration::from_secs(5);

    // Changes in East that the rep may not see are never delivered; West's are.
    rename(&server, &admin, &hidden_deal, 1, "East deal 2").await;
    rename(&server, &admin, &west_deal, 1, "West deal 2").await;
    let event = sub.next(wait).await.expect("the West change arrives");
    assert_eq!(
        event["data"]["opportunityChanges"],
        json!({ "operation": "UPDATED", "opportunityId": west_deal, "name": "West deal 2", "version": 2 })
    );

    // The membership goes while the client stays connected.
    let v = server
        .gql(
            Some(&admin),
            "mutation($t: ID!, $u: ID!) { removeTerritoryMembership(territoryId: $t, userId: $u) { membership { id } } }",
            json!({ "t": west, "u": rep_id }),
        )
        .await;
    data(&v);
    rename(&server, &admin, &west_deal, 2, "West deal 3").await;
    // The rep's own deal still reaches them, and it is the next thing they hear: the
    // West change before it was dropped, not merely late.
    rename(&server, &admin, &owned_deal, 1, "Owned deal 2").await;
    let event = sub
        .next(wait)
        .await
        .expect("the owned deal's change arrives");
    assert_eq!(
        event["data"]["opportunityChanges"]["opportunityId"],
        owned_deal.as_str()
    );
    assert_eq!(sub.next(Duration::from_millis(300)).await, None);

    // Logging out ends the subscription: the token is checked again on every event.
    let v = server
        .gql(Some(&rep), "mutation { logout }", json!({}))
        .await;
    assert_eq!(data(&v)["logout"], true);
    rename(&server, &admin, &owned_deal, 2, "Owned deal 3").await;
    let ended = sub.raw(wait).await.expect("the subscription ends");
    assert_eq!(ended["type"], "next", "{ended}");
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    assert!(ended["payload"]["data"].is_null(), "nothing leaks: {ended}");
    let done = sub.raw(wait).await.expect("complete");
    assert_eq!(done["type"], "complete", "{done}");

    // Queries and mutations belong on POST /graphql: the socket refuses them (its token
    // is checked once; only subscriptions re-check it).
    let token = server.login("rep@example.com", accord_e2e::PASSWORD).await;
    for operation in [
        "{ opportunities(first: 5) { edges { node { account { name } } } } }",
        "mutation { logout }",
    ] {
        let refused = match server
            .subscribe_with(json!({ "token": token }), operation)
            .await
        {
            Err(SubscribeError::Rejected(v)) => v["payload"][0].clone(),
            Err(SubscribeError::Answered(v)) => v["payload"]["errors"][0].clone(),
            other => panic!("expected {operation} to be refused, got {:?}", other.err()),
        };
        assert_eq!(refused["extensions"]["code"], "VALIDATION", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("POST /graphql"),
            "{refused}"
        );
    }
    // The refused logout did not happen.
    let v = server.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(data(&v)["me"]["id"], rep_id.as_str());

    // Subscribing takes a valid token in connection_init.
    match server
        .subscribe_with(json!({ "token": "nonsense" }), query)
        .await
    {
        // async-graphql closes a refused init with 1002 and the reason we gave.
        Err(SubscribeError::Closed(code, reason)) => {
            assert_eq!(
                (code, reason.as_str()),
                (1002, "the token is invalid, expired or revoked")
            );
        }
        Err(other) => panic!("expected the connection to close, got {other:?}"),
        Ok(_) => panic!("a bad token must not subscribe"),
    }
    match server.subscribe_with(json!({}), query).await {
        Err(SubscribeError::Closed(_, reason)) => assert!(reason.contains("token"), "{reason}"),
        other => panic!("expected a close without a token, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_membership_change_on_one_instance_reaches_another_sharing_the_database() {
    use accord::config::Limits;
    use std::time::{Duration, Instant};
    let quick = Limits {
        policy_poll_ms: 50,
        ..Limits::default()
    };
    let one = TestServer::start_with(quick.clone()).await;
    let two = one.start_sibling(quick).await;
    let admin = one.admin().await;
    let rep = one.user("rep@example.com", Role::Rep).await;
    let west = one.territory(&admin, "West", None).await;
    let account = one.create_account_in(&admin, "Westco", &west).await;
    let q = "query($id: ID!) { account(id: $id) { name } }";
    // Until the other instance has polled the new policy version, give it a moment.
    async fn eventually(server: &TestServer, token: &str, q: &str, id: &str, visible: bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = server.gql(Some(token), q, json!({ "id": id })).await;
            let seen = v["data"]["account"]["name"] == "Westco";
            if seen == visible {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instance two did not follow the policy change (visible: {visible}): {v}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let v = two.gql(Some(&rep), q, json!({ "id": account })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    one.grant(&admin, &west, &rep, "READ", false).await;
    eventually(&two, &rep, q, &account, true).await;
    let rep_id = one.user_id(&rep).await;
    let v = one
        .gql(
            Some(&admin),
            "mutation($t: ID!, $u: ID!) { removeTerritoryMembership(territoryId: $t, userId: $u) { membership { id } } }",
            json!({ "t": west, "u": rep_id }),
        )
        .await;
    data(&v);
    eventually(&two, &rep, q, &account, false).await;
    assert_eq!(
        two.state.services.authz.policy_version(),
        one.state.services.authz.policy_version()
    );
}
