use accord_e2e::{TestServer, data};
use serde_json::{Value, json};

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, $order: AccountOrder, $filter: AccountFilter) {
  accounts(first: $first, after: $after, last: $last, before: $before, orderBy: $order, filter: $filter) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { name } } } }";

fn names(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn forward_and_backward_pages_cover_everything_exactly_once() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    for i in (0..25).rev() {
        server.create_account(&token, &format!("Acct {i:02}")).await;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("Acct {i:02}")).collect();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let v = server
            .gql(Some(&token), PAGE, json!({ "first": 10, "after": after }))
            .await;
        let conn = &data(&v)["accounts"];
        assert_eq!(conn["totalCount"], 25);
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], after.is_some());
        seen.extend(names(conn));
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    let mut seen_back = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let v = server
            .gql(Some(&token), PAGE, json!({ "last": 10, "before": before }))
            .await;
        let conn = &data(&v)["accounts"];
        let mut page = names(conn);
        page.extend(seen_back);
        seen_back = page;
        if conn["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = conn["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen_back, expected);

    let v = server
        .gql(
            Some(&token),
            PAGE,
            json!({ "first": 3, "order": { "field": "NAME", "direction": "DESC" } }),
        )
        .await;
    assert_eq!(
        names(&data(&v)["accounts"]),
        vec!["Acct 24", "Acct 23", "Acct 22"]
    );

    let v = server.gql(Some(&token), PAGE, json!({ "first": 0 })).await;
    assert_eq!(data(&v)["accounts"]["edges"].as_array().unwrap().len(), 0);
    assert_eq!(data(&v)["accounts"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn filters_narrow_lists_and_counts_alike() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    for name in ["Alpha 100% Foods", "alphabet Soup", "Beta_Works", "Gamma"] {
        server.create_account(&token, name).await;
    }
    for (search, expected) in [("ALPHA", 2), ("100%", 1), ("_", 1), ("%", 1), ("zzz", 0)] {
        let v = server
            .gql(
                Some(&token),
                PAGE,
                json!({ "filter": { "search": search } }),
            )
            .await;
        let conn = &data(&v)["accounts"];
        assert_eq!(conn["totalCount"], expected, "search {search}");
        assert_eq!(conn["edges"].as_array().unwrap().len(), expected as usize);
    }
    let v = server
        .gql(
            Some(&token),
            PAGE,
            json!({ "filter": { "country": "de", "industry": "Software" } }),
        )
        .await;
    assert_eq!(data(&v)["accounts"]["totalCount"], 4);
}

#[tokio::test]
async fn ties_in_the_sort_key_do_not_lose_rows() {
    let server = TestServer::start().await;
    let f = server.fixture().await;
    for i in 0..7 {
        server
            .create_opportunity(&f, &format!("Same amount {i}"), "500")
            .await;
    }
    let q = "query($after: String) { opportunities(first: 2, after: $after, orderBy: {field: AMOUNT, direction: DESC}) { pageInfo { hasNextPage endCursor } edges { node { id } } } }";
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let v = server
            .gql(Some(&f.token), q, json!({ "after": after }))
            .await;
        let conn = &data(&v)["opportunities"];
        ids.extend(
            conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 7);
    assert_eq!(unique.len(), 7);
}

#[tokio::test]
async fn nested_connections_page_per_parent_and_continue_at_the_top_level() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    let a = server.create_account(&token, "A").await;
    let b = server.create_account(&token, "B").await;
    for i in 0..5 {
        server
            .create_contact(&token, &a, &format!("A{i}"), None)
            .await;
    }
    server.create_contact(&token, &b, "B0", None).await;
    let v = server
        .gql(Some(&token), "{ accounts { edges { node { name contacts(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { lastName } } } } } } }", json!({}))
        .await;
    let edges = data(&v)["accounts"]["edges"].as_array().unwrap().clone();
    let a_conn = &edges[0]["node"]["contacts"];
    assert_eq!(a_conn["totalCount"], 5);
    assert_eq!(a_conn["pageInfo"]["hasNextPage"], true);
    assert_eq!(a_conn["edges"][1]["node"]["lastName"], "A1");
    let b_conn = &edges[1]["node"]["contacts"];
    assert_eq!(b_conn["totalCount"], 1);
    assert_eq!(b_conn["pageInfo"]["hasNextPage"], false);

    let v = server
        .gql(Some(&token), "query($a: ID!, $c: String) { contacts(filter: {accountId: $a}, first: 10, after: $c) { edges { node { lastName } } } }", json!({ "a": a, "c": a_conn["pageInfo"]["endCursor"] }))
        .await;
    let rest: Vec<_> = data(&v)["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["lastName"].clone())
        .collect();
    assert_eq!(rest, vec!["A2", "A3", "A4"]);
}

#[tokio::test]
async fn every_list_takes_an_order() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    for (first, company) in [
        ("Zoe", "Alpha Ltd"),
        ("Adam", "Mid GmbH"),
        ("Mia", "Zulu Inc"),
    ] {
        let v = server
            .gql(Some(&token), "mutation($f: String!, $c: String!) { createLead(input: {firstName: $f, lastName: \"X\", company: $c, source: WEB}) { lead { id } } }", json!({ "f": first, "c": company }))
            .await;
        data(&v);
    }
    let v = server
        .gql(
            Some(&token),
            "{ leads(orderBy: {field: COMPANY, direction: ASC}) { edges { node { company } } } }",
            json!({}),
        )
        .await;
    let companies: Vec<_> = data(&v)["leads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["company"].clone())
        .collect();
    assert_eq!(companies, vec!["Alpha Ltd", "Mid GmbH", "Zulu Inc"]);
    // Default: newest first.
    let v = server
        .gql(
            Some(&token),
            "{ leads { edges { node { firstName } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&v)["leads"]["edges"][0]["node"]["firstName"], "Mia");

    server
        .user("zed@example.com", accord_entities::user::Role::Rep)
        .await;
    let v = server
        .gql(
            Some(&token),
            "{ users(orderBy: {field: EMAIL, direction: DESC}) { edges { node { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&v)["users"]["edges"][0]["node"]["email"],
        "zed@example.com"
    );

    for name in ["Renewals", "New Business"] {
        let v = server
            .gql(Some(&token), "mutation($n: String!) { createPipeline(input: {name: $n, stages: [{name: \"Open\", probability: 10, kind: OPEN}]}) { pipeline { id } } }", json!({ "n": name }))
            .await;
        data(&v);
    }
    let v = server
        .gql(
            Some(&token),
            "{ pipelines(orderBy: {field: NAME, direction: DESC}) { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&v)["pipelines"]["edges"][0]["node"]["name"],
        "Renewals"
    );
    let v = server
        .gql(
            Some(&token),
            "{ pipelines { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&v)["pipelines"]["edges"][0]["node"]["name"],
        "New Business"
    );
}

#[tokio::test]
async fn a_cursor_only_continues_the_order_that_issued_it() {
    let server = TestServer::start().await;
    let token = server.admin().await;
    for name in ["A", "B", "C"] {
        server.create_account(&token, name).await;
    }
    let v = server.gql(Some(&token), PAGE, json!({ "first": 1 })).await;
    let cursor = data(&v)["accounts"]["pageInfo"]["endCursor"].clone();
    let v = server
        .gql(
            Some(&token),
            PAGE,
            json!({ "first": 1, "after": cursor, "order": { "field": "CREATED_AT" } }),
        )
        .await;
    assert_eq!(accord_e2e::error_code(&v), "VALIDATION", "{v}");
    assert_eq!(accord_e2e::error_field(&v), "after");
    let v = server
        .gql(Some(&token), PAGE, json!({ "first": 1, "after": cursor }))
        .await;
    assert_eq!(names(&data(&v)["accounts"]), vec!["B"]);
}
