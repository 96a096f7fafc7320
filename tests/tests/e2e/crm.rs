use accord_e2e::{TestServer, data, error_code, error_field};
use accord_entities::user::Role;
use serde_json::json;

#[tokio::test]
async fn account_lifecycle_with_versions_audit_and_node_refetch() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let id = server.create_account(&token, "Globex").await;

    let v = server
        .gql(Some(&token), "query($id: ID!) { node(id: $id) { id ... on Account { name country annualRevenue { amount currency } version } } }", json!({ "id": id }))
        .await;
    let node = &data(&v)["node"];
    assert_eq!(node["name"], "Globex");
    assert_eq!(node["country"], "DE");
    assert_eq!(node["annualRevenue"]["amount"], "1250000.5");
    assert_eq!(node["annualRevenue"]["currency"], "EUR");
    assert_eq!(node["version"], 1);

    let update = "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { name industry version } } }";
    let v = server
        .gql(
            Some(&token),
            update,
            json!({ "i": { "id": id, "version": 1, "name": "Globex Corp", "industry": null } }),
        )
        .await;
    let acc = &data(&v)["updateAccount"]["account"];
    assert_eq!(acc["name"], "Globex Corp");
    assert!(acc["industry"].is_null(), "explicit null clears");
    assert_eq!(acc["version"], 2);

    // A stale version is refused and changes nothing.
    let v = server
        .gql(
            Some(&token),
            update,
            json!({ "i": { "id": id, "version": 1, "name": "Lost write" } }),
        )
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = server
        .gql(
            Some(&token),
            "query($id: ID!) { account(id: $id) { name version } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&v)["account"]["name"], "Globex Corp");
    assert_eq!(data(&v)["account"]["version"], 2);

    let v = server
        .gql(Some(&token), "query($id: ID!) { auditLog(filter: {entityId: $id}) { totalCount edges { node { action entityId before after actor { email } } } } }", json!({ "id": id }))
        .await;
    let log = &data(&v)["auditLog"];
    assert_eq!(log["totalCount"], 2);
    let newest = &log["edges"][0]["node"];
    assert_eq!(newest["action"], "update");
    assert_eq!(newest["entityId"], id.as_str());
    assert_eq!(newest["before"]["name"], "Globex");
    assert_eq!(newest["after"]["name"], "Globex Corp");
    assert_eq!(newest["actor"]["email"], "admin@example.com");

    let v = server
        .gql(
            Some(&token),
            "mutation($id: ID!) { deleteAccount(id: $id, version: 2) { deletedId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&v)["deleteAccount"]["deletedId"], id.as_str());
    let v = server
        .gql(
            Some(&token),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn concurrent_edits_of_one_version_let_exactly_one_win() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let id = server.create_account(&token, "Contended").await;
    let update = "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { name version } } }";
    let attempts = (0..8).map(|n| {
        let (server, token, id) = (&server, &token, &id);
        async move {
            server
                .gql(
                    Some(token),
                    update,
                    json!({ "i": { "id": id, "version": 1, "name": format!("Writer {n}") } }),
                )
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|v| v.get("errors").is_none())
        .collect();
    let conflicts = results
        .iter()
        .filter(|v| v.get("errors").is_some() && error_code(v) == "CONFLICT")
        .count();
    assert_eq!(winners.len(), 1, "{results:#?}");
    assert_eq!(conflicts, 7);
    let v = server
        .gql(
            Some(&token),
            "query($id: ID!) { account(id: $id) { name version } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data(&v)["account"]["version"], 2);
    assert_eq!(
        data(&v)["account"]["name"],
        winners[0]["data"]["updateAccount"]["account"]["name"]
    );
}

#[tokio::test]
async fn account_with_dependents_cannot_be_deleted() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let id = server.create_account(&token, "Parent").await;
    server.create_contact(&token, &id, "Keeper", None).await;
    let v = server
        .gql(
            Some(&token),
            "mutation($id: ID!) { deleteAccount(id: $id, version: 1) { deletedId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1 contacts")
    );
}

#[tokio::test]
async fn reps_may_edit_records_but_not_delete_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let west = server.territory(&admin, "West", None).await;
    server.grant(&admin, &west, &rep, "EDIT", false).await;
    let id = server.create_account_in(&rep, "Rep's account", &west).await;
    let v = server
        .gql(
            Some(&rep),
            "mutation($id: ID!) { deleteAccount(id: $id, version: 1) { deletedId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = server
        .gql(Some(&rep), "{ auditLog { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = server
        .gql(
            Some(&admin),
            "mutation($id: ID!) { deleteAccount(id: $id, version: 1) { deletedId } }",
            json!({ "id": id }),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
}

#[tokio::test]
async fn org_chart_refuses_cycles_and_resolves_both_directions() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let acc = server.create_account(&token, "Initech").await;
    let ceo = server.create_contact(&token, &acc, "Lumbergh", None).await;
    let vp = server
        .create_contact(&token, &acc, "Smykowski", Some(&ceo))
        .await;
    let eng = server
        .create_contact(&token, &acc, "Gibbons", Some(&vp))
        .await;

    let update =
        "mutation($i: UpdateContactInput!) { updateContact(input: $i) { contact { id } } }";
    for (who, manager) in [(&ceo, &eng), (&ceo, &ceo)] {
        let v = server
            .gql(
                Some(&token),
                update,
                json!({ "i": { "id": who, "version": 1, "reportsToId": manager } }),
            )
            .await;
        assert_eq!(error_code(&v), "VALIDATION", "{v}");
        assert_eq!(error_field(&v), "reportsToId");
    }
    let v = server
        .gql(Some(&token), "query($id: ID!) { contact(id: $id) { reportsTo { lastName reportsTo { lastName } } directReports { lastName } account { name } } }", json!({ "id": vp }))
        .await;
    let c = &data(&v)["contact"];
    assert_eq!(c["reportsTo"]["lastName"], "Lumbergh");
    assert!(c["reportsTo"]["reportsTo"].is_null());
    assert_eq!(c["directReports"][0]["lastName"], "Gibbons");
    assert_eq!(c["account"]["name"], "Initech");
}

#[tokio::test]
async fn notes_attach_to_any_record_and_only_authors_delete_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    let other = server.user("other@example.com", Role::Rep).await;
    let west = server.territory(&admin, "West", None).await;
    server.grant(&admin, &west, &rep, "EDIT", false).await;
    server.grant(&admin, &west, &other, "EDIT", false).await;
    let acc = server.create_account_in(&admin, "Noted", &west).await;
    let add = "mutation($s: ID!, $b: String!) { addNote(subjectId: $s, body: $b) { note { id body author { email } } } }";
    let v = server
        .gql(
            Some(&rep),
            add,
            json!({ "s": acc, "b": "Met the CFO at the trade fair." }),
        )
        .await;
    let note_id = data(&v)["addNote"]["note"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        data(&v)["addNote"]["note"]["author"]["email"],
        "rep@example.com"
    );

    let v = server
        .gql(
            Some(&rep),
            "query($id: ID!) { account(id: $id) { notes { body } } }",
            json!({ "id": acc }),
        )
        .await;
    assert_eq!(
        data(&v)["account"]["notes"][0]["body"],
        "Met the CFO at the trade fair."
    );

    let v = server
        .gql(
            Some(&rep),
            add,
            json!({ "s": note_id, "b": "note on a note" }),
        )
        .await;
    assert_eq!(error_code(&v), "VALIDATION");
    let v = server
        .gql(
            Some(&other),
            "mutation($id: ID!) { deleteNote(id: $id) { deletedId } }",
            json!({ "id": note_id }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = server
        .gql(
            Some(&rep),
            "mutation($id: ID!) { deleteNote(id: $id) { deletedId } }",
            json!({ "id": note_id }),
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
}

#[tokio::test]
async fn concurrent_reparenting_cannot_close_a_cycle() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    for _ in 0..5 {
        let a = server.create_account(&token, "A").await;
        let b = server.create_account(&token, "B").await;
        let update =
            "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { account { id } } }";
        let (x, y) = futures::join!(
            server.gql(
                Some(&token),
                update,
                json!({ "i": { "id": a, "version": 1, "parentId": b } })
            ),
            server.gql(
                Some(&token),
                update,
                json!({ "i": { "id": b, "version": 1, "parentId": a } })
            ),
        );
        let ok = [&x, &y]
            .iter()
            .filter(|v| v.get("errors").is_none())
            .count();
        assert_eq!(ok, 1, "exactly one re-parenting may win: {x} {y}");
        let loser = if x.get("errors").is_some() { &x } else { &y };
        assert_eq!(error_field(loser), "parentId");
    }
}

#[tokio::test]
async fn deleting_a_contact_audits_everything_it_takes_along() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    let boss = server
        .create_contact(&f.token, &f.account_id, "Boss", None)
        .await;
    let report = server
        .create_contact(&f.token, &f.account_id, "Report", Some(&boss))
        .await;
    let (opp, _) = server.create_opportunity(&f, "Deal", "100").await;
    let add = "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }";
    let v = server.gql(Some(&f.token), add, json!({ "i": { "opportunityId": opp, "contactId": boss, "role": "CHAMPION", "isPrimary": true } })).await;
    let role = data(&v)["addOpportunityContactRole"]["contactRole"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second primary demotes the first, and that change is audited too.
    let v = server.gql(Some(&f.token), add, json!({ "i": { "opportunityId": opp, "contactId": report, "role": "USER", "isPrimary": true } })).await;
    data(&v);
    let v = server.gql(Some(&f.token), "query($id: ID!) { auditLog(filter: {entityId: $id}) { edges { node { action before after } } } }", json!({ "id": role })).await;
    let entries = data(&v)["auditLog"]["edges"].as_array().unwrap().clone();
    assert_eq!(entries[0]["node"]["action"], "update");
    assert_eq!(entries[0]["node"]["after"]["is_primary"], false);

    let v = server
        .gql(
            Some(&f.token),
            "mutation($n: ID!) { addNote(subjectId: $n, body: \"met\") { note { id } } }",
            json!({ "n": boss }),
        )
        .await;
    let note = data(&v)["addNote"]["note"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let v = server
        .gql(
            Some(&f.token),
            "mutation($id: ID!) { deleteContact(id: $id, version: 1) { deletedId } }",
            json!({ "id": boss }),
        )
        .await;
    data(&v);
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { contact(id: $id) { reportsTo { id } version } }",
            json!({ "id": report }),
        )
        .await;
    assert!(data(&v)["contact"]["reportsTo"].is_null());
    assert_eq!(
        data(&v)["contact"]["version"],
        2,
        "losing a manager is a versioned change"
    );
    for (id, action) in [(&report, "update"), (&role, "delete"), (&note, "delete")] {
        let v = server.gql(Some(&f.token), "query($id: ID!) { auditLog(filter: {entityId: $id}, first: 1) { edges { node { action } } } }", json!({ "id": id })).await;
        assert_eq!(
            data(&v)["auditLog"]["edges"][0]["node"]["action"],
            action,
            "{id}"
        );
    }
}
