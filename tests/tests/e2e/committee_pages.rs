//! Committees read with the page (a JSON column on SQLite, joined rows on PostgreSQL)
//! against the same committees read apart, page by page, in every order and direction.

use accord::config::Limits;
use accord_e2e::{TestServer, data};
use accord_entities::user::Role;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

/// `{DEAL}` takes extra deal fields (any beyond the brief ones reads deals whole);
/// `{CONTACT}` extra contact fields (any beyond the brief ones reads committees apart).
const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, $o: OpportunityOrder, $f: OpportunityFilter) {
  opportunities(first: $first, after: $after, last: $last, before: $before, orderBy: $o, filter: $f) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name {DEAL} account { id name } owner { displayName } stage { name }
      contactRoles { id role isPrimary contact { id fullName {CONTACT} } } } } } }";

fn without_titles(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("title");
            m.values_mut().for_each(without_titles);
        }
        Value::Array(a) => a.iter_mut().for_each(without_titles),
        _ => {}
    }
}

/// Deals with ties on every sort column (and on their and their roles' creation
/// times), zero to three roles each, contacts in two territories and in an account with
/// none; a rep who reads one territory and owns deals in the other, whose contacts and
/// account they may not see. Every page of every order, forwards and backwards, with
/// deals brief and whole, with and without filters, must equal the page whose
/// committees are read by their own statement (asking for a contact's `title` makes
/// the list read them apart).
#[tokio::test]
async fn committees_read_with_the_page_equal_committees_read_apart() {
    let server = TestServer::start_with(Limits {
        policy_poll_ms: 3_600_000,
        ..Limits::default()
    })
    .await;
    let f = server.fixture().await;
    let t1 = server.territory(&f.token, "T1", None).await;
    let t2 = server.territory(&f.token, "T2", None).await;
    let rep = server.user("rep@example.com", Role::Rep).await;
    server.grant(&f.token, &t1, &rep, "READ", false).await;
    let rep_id = server.user_id(&rep).await;
    let admin_id = server.user_id(&f.token).await;
    let accounts = [
        server.create_account_in(&f.token, "A1", &t1).await,
        server.create_account_in(&f.token, "A2", &t2).await,
        f.account_id.clone(),
    ];
    let mut contacts = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        for k in 0..2 {
            contacts.push(
                server
                    .create_contact(&f.token, account, &format!("C{i}{k}"), None)
                    .await,
            );
        }
    }
    let names = ["Alpha", "Beta", "Alpha", "Gamma", "beta"];
    for i in 0..26usize {
        let owner = if i % 4 == 1 { &rep_id } else { &admin_id };
        let close = ["2027-01-31", "2027-02-28", "2027-01-31"][i % 3];
        let v = server
            .gql(
                Some(&f.token),
                "mutation($i: CreateOpportunityInput!) { createOpportunity(input: $i) { opportunity { id } } }",
                json!({ "i": {
                    "name": names[i % names.len()], "accountId": accounts[i % 3], "ownerId": owner,
                    "pipelineId": f.pipeline_id, "stageId": f.stages[i % 4],
                    "amount": format!("{}", 100 * (i % 4)), "currency": "EUR",
                    "expectedCloseDate": close,
                } }),
            )
            .await;
        let deal = data(&v)["createOpportunity"]["opportunity"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for k in 0..(i % 4) {
            let role = ["CHAMPION", "ECONOMIC_BUYER", "BLOCKER"][k];
            let v = server
                .gql(
                    Some(&f.token),
                    "mutation($i: AddContactRoleInput!) { addOpportunityContactRole(input: $i) { contactRole { id } } }",
                    json!({ "i": {
                        "opportunityId": deal,
                        "contactId": contacts[(i + 2 * k) % contacts.len()],
                        "role": role,
                        "isPrimary": k == 1,
                    } }),
                )
                .await;
            data(&v);
        }
    }
    let db = &server.state.services.db;
    for tie in [
        "UPDATE opportunities SET created_at = (SELECT min(created_at) FROM opportunities) WHERE id % 3 = 0",
        "UPDATE opportunity_contact_roles SET created_at = (SELECT min(created_at) FROM opportunity_contact_roles) \
         WHERE opportunity_id % 2 = 0",
    ] {
        db.execute_unprepared(tie).await.unwrap();
    }

    let filters = [
        ("", json!(null)),
        ("source expectedCloseDate", json!(null)),
        (
            "",
            json!({ "search": "a", "stageKind": "OPEN", "amountMin": "50",
                    "expectedCloseFrom": "2027-01-01", "pipelineId": f.pipeline_id }),
        ),
        (
            "grade",
            json!({ "search": "ALP", "amountMax": "250", "expectedCloseTo": "2027-02-01" }),
        ),
    ];
    let mut pages = 0;
    let mut committees = 0;
    let mut listed = std::collections::HashMap::new();
    for (who, token) in [("admin", &f.token), ("rep", &rep)] {
        for field in ["CREATED_AT", "NAME", "AMOUNT", "EXPECTED_CLOSE_DATE"] {
            for direction in ["ASC", "DESC"] {
                for (deal_fields, filter) in &filters {
                    let query = PAGE.replace("{DEAL}", deal_fields);
                    let with_page = query.replace("{CONTACT}", "");
                    let apart = query.replace("{CONTACT}", "title");
                    for backward in [false, true] {
                        let mut cursor: Option<String> = None;
                        let mut seen = 0;
                        loop {
                            let order = json!({ "field": field, "direction": direction });
                            let vars = if backward {
                                json!({ "last": 4, "before": cursor, "o": order, "f": filter })
                            } else {
                                json!({ "first": 4, "after": cursor, "o": order, "f": filter })
                            };
                            let got = server.gql(Some(token), &with_page, vars.clone()).await;
                            let mut want = server.gql(Some(token), &apart, vars).await;
                            without_titles(&mut want);
                            assert_eq!(
                                got, want,
                                "{who} {field} {direction} [{deal_fields}] {filter} backward={backward} cursor={cursor:?}"
                            );
                            pages += 1;
                            let c = &data(&got)["opportunities"];
                            let edges = c["edges"].as_array().unwrap();
                            seen += edges.len();
                            committees += edges
                                .iter()
                                .filter(|e| {
                                    !e["node"]["contactRoles"].as_array().unwrap().is_empty()
                                })
                                .count();
                            let (more, next) = if backward {
                                (
                                    &c["pageInfo"]["hasPreviousPage"],
                                    &c["pageInfo"]["startCursor"],
                                )
                            } else {
                                (&c["pageInfo"]["hasNextPage"], &c["pageInfo"]["endCursor"])
                            };
                            if !more.as_bool().unwrap() {
                                break;
                            }
                            assert!(seen <= 26, "paging does not end");
                            cursor = next.as_str().map(str::to_owned);
                        }
                        // Every order and direction walks the same deals.
                        let first = *listed.entry((who, filter.to_string())).or_insert(seen);
                        assert_eq!(
                            seen, first,
                            "{who} {field} {direction} {filter} backward={backward}"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(listed[&("admin", "null".to_owned())], 26);
    assert!(listed[&("rep", "null".to_owned())] < 26);
    // Not vacuous: many pages, and committees on them.
    assert!(pages > 400, "{pages} pages");
    assert!(committees > 500, "{committees} committees");
}
