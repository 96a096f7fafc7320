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
