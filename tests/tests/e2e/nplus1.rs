use accord::config::Limits;
use accord_e2e::{TestServer, data};
use accord_entities::user::Role;
use serde_json::json;

const NESTED: &str =
    "query($n: Int!) { opportunities(first: $n) { edges { node { name amount { amount currency }
  account { name owner { displayName } } owner { displayName email } stage { name probability }
  contactRoles { role contact { fullName title account { name } } } } } } }";

/// The nested list costs the same number of SQL statements for 10 rows as for 50: every
/// relation is batched, none is fetched per row.
#[tokio::test]
async fn nested_opportunity_list_costs_a_constant_number_of_statements() {
    // The policy watcher's version check is a statement too; keep it out of the counts.
    let server = TestServer::start_with(Limits {
        policy_poll_ms: 3_600_000,
        ..Limits::default()
    })
    .await;
    let f = server.fixture().await;
    let mut accounts = vec![f.account_id.clone()];
    for i in 0..4 {
        accounts.push(
            server
                .create_account(&f.token, &format!("Account {i}"))
                .await,
        );
    }
    let mut owners = Vec::new();
    for i in 0..3 {
        server.user(&format!("rep{i}@example.com"), Role::Rep).await;
        let v = server
            .gql(
                Some(&f.token),
                "query($s: String) { users(filter: {search: $s}) { edges { node { id } } } }",
                json!({ "s": format!("rep{i}@") }),
            )
            .await;
        owners.push(
            data(&v)["users"]["edges"][0]["node"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut contacts = Vec::new();
    for (i, acc) in accounts.iter().enumerate() {
        contacts.push(
            server
                .create_contact(&f.token, acc, &format!("C{i}"), None)
                .await,
        );
        contacts.push(
            server
                .create_contact(&f.token, acc, &format!("D{i}"), None)
                .await,
        );
    }
    for i in 0..60usize {
        let v = server
            .gql(
                Some(&f.token),
                "mutation($i: CreateOpportunityInput!) { createOpportunity(input: $i) { opportunity { id } } }",
                json!({ "i": { "name": format!("Deal {i}"), "accountId": accounts[i % accounts.len()], "ownerId": owners[i % owners.len()],
                    "pipelineId": f.pipeline_id, "stageId": f.stages[i % 4], "amount": format!("{}.50", 1000 + i), "currency": "EUR", "expectedCloseDate": "2027-01-31" } }),
            )
            .await;
        let opp = data(&v)["createOpportunity"]["opportunity"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for k in 0..(i % 3) {
            let role = ["CHAMPION", "ECONOMIC_BUYER"][k];
            let v = server
                .gql(Some(&f.token), "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }",
                    json!({ "i": { "opportunityId": opp, "contactId": contacts[(i + k) % contacts.len()], "role": role } }))
                .await;
            data(&v);
        }
    }

    let mut costs = Vec::new();
    for n in [10, 50] {
        let before = server.statements();
        let v = server.gql(Some(&f.token), NESTED, json!({ "n": n })).await;
        let cost = server.statements() - before;
        let edges = data(&v)["opportunities"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(edges.len(), n);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["account"]["name"].is_string()
                    && e["node"]["stage"]["name"].is_string())
        );
        let roles: usize = edges
            .iter()
            .map(|e| e["node"]["contactRoles"].as_array().unwrap().len())
            .sum();
        assert!(roles > 0);
        costs.push(cost);
    }
    println!(
        "statements for 10 rows: {}, for 50 rows: {}",
        costs[0], costs[1]
    );
    assert_eq!(
        costs[0], costs[1],
        "statement count grew with the page size"
    );
    // page joined with account, owner and stage; contact roles; users; contacts (the
    // token is cached after its first use)
    assert!(
        costs[1] <= 5,
        "expected at most 5 statements, got {}",
        costs[1]
    );

    // Batching must not depend on timing: 16 concurrent requests cost 16 times one.
    let before = server.statements();
    let requests = (0..16).map(|_| server.gql(Some(&f.token), NESTED, json!({ "n": 50 })));
    for v in futures::future::join_all(requests).await {
        assert_eq!(
            data(&v)["opportunities"]["edges"].as_array().unwrap().len(),
            50
        );
    }
    assert_eq!(
        server.statements() - before,
        16 * costs[1],
        "batches split under concurrency"
    );
}

/// A list that asks only for the names of a deal's account, owner and contacts reads
/// them brief, with the page, in two statements. A field beyond the brief ones, reached
/// by another path in the same response (a contact role's deal is the same deal), loads
/// the whole record instead of showing a blank or a default.
#[tokio::test]
async fn brief_relations_answer_names_and_load_the_rest_when_asked() {
    let server = TestServer::start_with(Limits {
        policy_poll_ms: 3_600_000,
        ..Limits::default()
    })
    .await;
    let f = server.fixture().await;
    let v = server
        .gql(
            Some(&f.token),
            r#"mutation { createAccount(input: {name: "Brief Steel", industry: "Steel", country: "DE", website: "https://steel.example"}) { account { id } } }"#,
            json!({}),
        )
        .await;
    let account = data(&v)["createAccount"]["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server
        .gql(
            Some(&f.token),
            r#"mutation($a: ID!) { createContact(input: {accountId: $a, firstName: "Ada", lastName: "Byron", title: "CTO", email: "ada@steel.example"}) { contact { id } } }"#,
            json!({ "a": account }),
        )
        .await;
    let contact = data(&v)["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server
        .gql(
            Some(&f.token),
            "mutation($i: CreateOpportunityInput!) { createOpportunity(input: $i) { opportunity { id } } }",
            json!({ "i": { "name": "Brief deal", "accountId": account, "pipelineId": f.pipeline_id,
                "amount": "10.00", "currency": "EUR", "expectedCloseDate": "2027-01-31" } }),
        )
        .await;
    let deal = data(&v)["createOpportunity"]["opportunity"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server
        .gql(Some(&f.token), "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }",
            json!({ "i": { "opportunityId": deal, "contactId": contact, "role": "CHAMPION" } }))
        .await;
    data(&v);
    // A second member, marked primary: committees list oldest first.
    let v = server
        .gql(
            Some(&f.token),
            r#"mutation($a: ID!) { createContact(input: {accountId: $a, firstName: "Bo", lastName: "Yin"}) { contact { id } } }"#,
            json!({ "a": account }),
        )
        .await;
    let second = data(&v)["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server
        .gql(Some(&f.token), "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }",
            json!({ "i": { "opportunityId": deal, "contactId": second, "role": "ECONOMIC_BUYER", "isPrimary": true } }))
        .await;
    data(&v);
    let v = server
        .gql(Some(&f.token), "{ me { email displayName } }", json!({}))
        .await;
    let me = data(&v)["me"].clone();

    // The benchmark's shape: names only. One statement: the page with its account,
    // owner and stage, and each deal's contact roles with their contacts.
    let brief = "query($a: ID!) { opportunities(first: 5, filter: {accountId: $a}) { edges { node {
        id name amount { amount currency } account { id name } owner { displayName } stage { name }
        contactRoles { role isPrimary createdAt contact { id fullName } } } } } }";
    let before = server.statements();
    let v = server
        .gql(Some(&f.token), brief, json!({ "a": account }))
        .await;
    let cost = server.statements() - before;
    let node = &data(&v)["opportunities"]["edges"][0]["node"];
    assert_eq!(node["account"]["name"], "Brief Steel");
    assert_eq!(node["account"]["id"], account.as_str());
    assert_eq!(node["owner"]["displayName"], me["displayName"]);
    assert_eq!(node["stage"]["name"], "Qualify");
    assert_eq!(node["contactRoles"][0]["contact"]["fullName"], "Ada Byron");
    assert_eq!(node["contactRoles"][0]["contact"]["id"], contact.as_str());
    assert_eq!(node["contactRoles"][0]["role"], "CHAMPION");
    assert_eq!(node["contactRoles"][0]["isPrimary"], false);
    assert_eq!(node["contactRoles"][1]["contact"]["fullName"], "Bo Yin");
    assert_eq!(node["contactRoles"][1]["role"], "ECONOMIC_BUYER");
    assert_eq!(node["contactRoles"][1]["isPrimary"], true);
    assert_eq!(node["contactRoles"].as_array().unwrap().len(), 2);
    // The committee's timestamps, read from JSON, are the ones the role itself shows.
    let v = server
        .gql(
            Some(&f.token),
            "query($id: ID!) { opportunity(id: $id) { contactRoles { createdAt } } }",
            json!({ "id": deal }),
        )
        .await;
    assert_eq!(
        node["contactRoles"][0]["createdAt"],
        data(&v)["opportunity"]["contactRoles"][0]["createdAt"]
    );
    assert_eq!(node["id"], deal.as_str());
    assert_eq!(node["name"], "Brief deal");
    assert_eq!(node["amount"]["amount"], "10");
    assert_eq!(node["amount"]["currency"], "EUR");
    assert_eq!(cost, 1, "names only should cost the page alone");

    // A deal field beyond the brief ones, even behind a fragment, reads the deals whole
    // with the page: no statement more.
    let fields = "query($a: ID!) { opportunities(first: 5, filter: {accountId: $a}) { edges { node {
        name ...Dates } } } } fragment Dates on Opportunity { expectedCloseDate version createdAt }";
    let before = server.statements();
    let v = server
        .gql(Some(&f.token), fields, json!({ "a": account }))
        .await;
    let cost = server.statements() - before;
    let node = &data(&v)["opportunities"]["edges"][0]["node"];
    assert_eq!(node["name"], "Brief deal");
    assert_eq!(node["expectedCloseDate"], "2027-01-31");
    assert_eq!(node["version"], 1);
    assert!(
        node["createdAt"]
            .as_str()
            .is_some_and(|t| t.starts_with("20"))
    );
    assert_eq!(cost, 1, "whole deals come with the page");

    // Asked for more than names, the list reads them whole.
    let full = "query($a: ID!) { opportunities(first: 5, filter: {accountId: $a}) { edges { node {
        account { name industry } owner { displayName email } stage { name kind probability }
        contactRoles { contact { fullName email } } } } } }";
    let v = server
        .gql(Some(&f.token), full, json!({ "a": account }))
        .await;
    let node = &data(&v)["opportunities"]["edges"][0]["node"];
    assert_eq!(node["account"]["industry"], "Steel");
    assert_eq!(node["owner"]["email"], me["email"]);
    assert_eq!(node["stage"]["kind"], "OPEN");
    assert_eq!(node["stage"]["probability"], 10);
    assert_eq!(
        node["contactRoles"][0]["contact"]["email"],
        "ada@steel.example"
    );

    // Names at the top; the rest of the same records through the contact role's deal,
    // which the list's look-ahead does not cover: whole records, loaded when asked.
    let mixed = "query($a: ID!) { opportunities(first: 5, filter: {accountId: $a}) { edges { node {
        account { name } owner { displayName } stage { name } contactRoles { contact { fullName }
          opportunity { account { industry country website } owner { email role }
            stage { position probability kind pipeline { id name } }
            contactRoles { contact { email title } } } } } } } }";
    let v = server
        .gql(Some(&f.token), mixed, json!({ "a": account }))
        .await;
    let node = &data(&v)["opportunities"]["edges"][0]["node"];
    assert_eq!(node["account"]["name"], "Brief Steel");
    let again = &node["contactRoles"][0]["opportunity"];
    assert_eq!(again["account"]["industry"], "Steel");
    assert_eq!(again["account"]["country"], "DE");
    assert_eq!(again["account"]["website"], "https://steel.example");
    assert_eq!(again["owner"]["email"], me["email"]);
    assert_eq!(again["owner"]["role"], "ADMIN");
    assert_eq!(node["stage"]["name"], "Qualify");
    assert_eq!(again["stage"]["position"], 0);
    assert_eq!(again["stage"]["probability"], 10);
    assert_eq!(again["stage"]["kind"], "OPEN");
    assert_eq!(again["stage"]["pipeline"]["id"], f.pipeline_id.as_str());
    assert_eq!(again["stage"]["pipeline"]["name"], "New Business");
    assert_eq!(
        again["contactRoles"][0]["contact"]["email"],
        "ada@steel.example"
    );
    assert_eq!(again["contactRoles"][0]["contact"]["title"], "CTO");
}

/// Committees stored outside Accord's own writes (on SQLite a timestamp in one of
/// SQLite's other date forms, which the page's JSON carries as written; on PostgreSQL a
/// five-digit year) are still read by the page's own statement, and the list answers
/// in full.
#[tokio::test]
async fn committees_with_unusual_timestamps_are_still_listed() {
    use accord_e2e::{Backend, backend};
    use sea_orm::ConnectionTrait;
    let server = TestServer::start_with(Limits {
        policy_poll_ms: 3_600_000,
        ..Limits::default()
    })
    .await;
    let f = server.fixture().await;
    let contact = server
        .create_contact(&f.token, &f.account_id, "Odd", None)
        .await;
    let (deal, _) = server.create_opportunity(&f, "Odd deal", "10").await;
    let v = server
        .gql(Some(&f.token), "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }",
            json!({ "i": { "opportunityId": deal, "contactId": contact, "role": "BLOCKER" } }))
        .await;
    data(&v);
    let odd = match backend() {
        Backend::Sqlite => "UPDATE opportunity_contact_roles SET created_at = '2026-12-07 15:40'",
        Backend::Postgres => {
            "UPDATE opportunity_contact_roles SET created_at = '10000-01-01T00:00:00Z'"
        }
    };
    server
        .state
        .services
        .db
        .execute_unprepared(odd)
        .await
        .unwrap();
    let q = "{ opportunities(first: 5) { edges { node { name contactRoles { role contact { fullName } } } } } }";
    let before = server.statements();
    let v = server.gql(Some(&f.token), q, json!({})).await;
    let cost = server.statements() - before;
    let edges = data(&v)["opportunities"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let node = edges
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["name"] == "Odd deal")
        .expect("the deal is listed");
    assert_eq!(node["contactRoles"][0]["role"], "BLOCKER");
    assert_eq!(node["contactRoles"][0]["contact"]["fullName"], "Pat Odd");
    assert_eq!(cost, 1);
}

/// Listed deals whose selection is all at hand answer it directly (`types::Immediate`)
/// instead of through async-graphql's field resolvers. The two must give the same
/// response: a named fragment spread inside each object leaves that object to the
/// resolvers, so the same selection with and without them compares the two paths.
#[tokio::test]
async fn immediate_answers_match_resolved_ones() {
    let server = TestServer::start_with(Limits {
        policy_poll_ms: 3_600_000,
        ..Limits::default()
    })
    .await;
    let f = server.fixture().await;
    let account = server.create_account(&f.token, "Immediate Ltd").await;
    let ada = server.create_contact(&f.token, &account, "Ada", None).await;
    let bo = server.create_contact(&f.token, &account, "Bo", None).await;
    for (i, members) in [
        vec![],
        vec![(&ada, "CHAMPION", false)],
        vec![(&ada, "USER", false), (&bo, "ECONOMIC_BUYER", true)],
    ]
    .into_iter()
    .enumerate()
    {
        let v = server
            .gql(
                Some(&f.token),
                "mutation($i: CreateOpportunityInput!) { createOpportunity(input: $i) { opportunity { id } } }",
                json!({ "i": { "name": format!("Deal \"{i}\" ü"), "accountId": account, "pipelineId": f.pipeline_id,
                    "stageId": f.stages[i], "amount": format!("{}.05", 1000 * i), "currency": "EUR", "expectedCloseDate": "2027-01-31" } }),
            )
            .await;
        let deal = data(&v)["createOpportunity"]["opportunity"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (contact, role, primary) in members {
            let v = server
                .gql(Some(&f.token), "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }",
                    json!({ "i": { "opportunityId": deal, "contactId": contact, "role": role, "isPrimary": primary } }))
                .await;
            data(&v);
        }
    }

    // `@T` marks where the resolved variant spreads a named fragment on `T`, which
    // leaves the object it sits in to async-graphql's resolvers.
    let shape = "query($a: ID!) { opportunities(first: 5, filter: {accountId: $a}) { edges { node {
        __typename @Opportunity id name again: name amount { amount __typename @Money currency }
        account { id __typename @Account name } owner { displayName __typename @User id }
        stage { __typename @Stage name id skipped: name @skip(if: true) } ... on Opportunity { label: name }
        contactRoles { id __typename @OpportunityContactRole role isPrimary createdAt
          contact { fullName __typename @Contact firstName lastName id } } } } } }";
    let types = [
        "Opportunity",
        "Money",
        "Account",
        "User",
        "Stage",
        "OpportunityContactRole",
        "Contact",
    ];
    let mut immediate = shape.to_owned();
    let mut resolved = shape.to_owned();
    for t in types {
        immediate = immediate.replace(&format!(" @{t} "), " ");
        resolved = resolved.replace(&format!(" @{t} "), &format!(" ...{t}Name "));
        resolved.push_str(&format!(" fragment {t}Name on {t} {{ __typename }}"));
    }
    let mut answers = Vec::new();
    for (query, direct) in [(&immediate, 3), (&resolved, 0)] {
        let before = (server.statements(), server.direct_answers());
        let text = server
            .gql_text(Some(&f.token), query, json!({ "a": account }))
            .await;
        assert_eq!(server.statements() - before.0, 1, "{query}");
        // Each of the three deals took the path the variant is meant to take.
        assert_eq!(server.direct_answers() - before.1, direct, "{query}");
        answers.push(text);
    }
    // As sent, so the keys' order is compared too.
    assert_eq!(answers[0], answers[1]);
    let answer: serde_json::Value = serde_json::from_str(&answers[0]).unwrap();
    let answers = [data(&answer)["opportunities"].clone()];

    let edges = answers[0]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    let last = &edges[2]["node"];
    assert_eq!(last["__typename"], "Opportunity");
    assert_eq!(last["name"], "Deal \"2\" ü");
    assert_eq!(last["again"], last["name"]);
    assert_eq!(last["label"], last["name"]);
    assert_eq!(last["amount"]["amount"], "2000.05");
    assert_eq!(last["amount"]["__typename"], "Money");
    assert_eq!(last["account"]["id"], account.as_str());
    assert_eq!(last["account"]["name"], "Immediate Ltd");
    assert_eq!(last["stage"]["__typename"], "Stage");
    assert_eq!(last["owner"]["__typename"], "User");
    assert_eq!(last["contactRoles"][1]["role"], "ECONOMIC_BUYER");
    assert_eq!(last["contactRoles"][1]["isPrimary"], true);
    assert_eq!(
        last["contactRoles"][1]["__typename"],
        "OpportunityContactRole"
    );
    assert_eq!(last["contactRoles"][1]["contact"]["id"], bo.as_str());
    assert_eq!(last["contactRoles"][1]["contact"]["__typename"], "Contact");
    assert_eq!(edges[0]["node"]["contactRoles"], json!([]));
}
