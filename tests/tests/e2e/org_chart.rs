//! Org charts and influence maps end to end: the chart across a parent and a subsidiary,
//! buying-committee coverage with engagement, blockers and the strongest path to the
//! decision maker, territory limits on contacts and edges, refusals that write nothing,
//! the SVG read back with an XML parser and the DOT picture, and a stage script that
//! reads the committee.

use accord_e2e::{TestServer, data, error_code, error_field};
use accord_entities::user::Role;
use serde_json::{Value, json};

const CHART: &str = r#"query($a: ID!, $c: Boolean, $d: Int) {
    orgChart(accountId: $a, includeChildAccounts: $c, maxDepth: $d) {
        size
        nodes { contact { id lastName } managerId depth teamSize influence lastActivityAt
                dealRoles { role opportunity { id } } }
        roots { contact { lastName } reports { contact { lastName } reports { contact { lastName } } } }
        influences { kind strength from { lastName } to { lastName } } } }"#;

const COMMITTEE: &str = r#"query($o: ID!) {
    buyingCommittee(opportunityId: $o) {
        coverage missing
        roles { role status members { contact { lastName } engaged lastActivityAt } }
        blockers { contact { lastName } hasBlockerRole influence blocks { lastName } }
        paths { strength hops steps { via user { email } contact { lastName } } } } }"#;

const EDGE: &str = r#"mutation($i: CreateContactInfluenceInput!) {
    createContactInfluence(input: $i) { influence { id version kind strength } } }"#;

async fn contact(
    s: &TestServer,
    token: &str,
    account: &str,
    last: &str,
    manager: Option<&str>,
) -> String {
    s.create_contact(token, account, last, manager).await
}

async fn child_account(s: &TestServer, token: &str, name: &str, parent: &str) -> String {
    let v = s
        .gql(
            Some(token),
            "mutation($n: String!, $p: ID!) { createAccount(input: {name: $n, parentId: $p}) { account { id } } }",
            json!({ "n": name, "p": parent }),
        )
        .await;
    data(&v)["createAccount"]["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn edge(
    s: &TestServer,
    token: &str,
    from: &str,
    to: &str,
    kind: &str,
    strength: i64,
) -> Value {
    s.gql(
        Some(token),
        EDGE,
        json!({ "i": { "fromContactId": from, "toContactId": to, "kind": kind, "strength": strength } }),
    )
    .await
}

async fn role(s: &TestServer, token: &str, opp: &str, contact: &str, kind: &str) {
    let v = s
        .gql(
            Some(token),
            "mutation($o: ID!, $c: ID!, $r: ContactRoleKind!) { addOpportunityContactRole(input: {opportunityId: $o, contactId: $c, role: $r}) { __typename } }",
            json!({ "o": opp, "c": contact, "r": kind }),
        )
        .await;
    data(&v);
}

fn names(nodes: &Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["contact"]["lastName"].as_str().unwrap().to_owned())
        .collect()
}

struct Company {
    parent: String,
    labs: String,
    ceo: String,
    cfo: String,
    cto: String,
    vp: String,
    architect: String,
    procurement: String,
    deal: String,
}

/// Globex (the fixture's account) and its subsidiary Globex Labs:
/// Ceo ─┬─ Cfo ── Procurement
///      └─ Cto ── Vp (Labs) ── Architect (Labs)
async fn company(s: &TestServer) -> (accord_e2e::Fixture, Company) {
    let f = s.fixture().await;
    let t = &f.token;
    let labs = child_account(s, t, "Globex Labs", &f.account_id).await;
    let ceo = contact(s, t, &f.account_id, "Ceo", None).await;
    let cfo = contact(s, t, &f.account_id, "Cfo", Some(&ceo)).await;
    let cto = contact(s, t, &f.account_id, "Cto", Some(&ceo)).await;
    let procurement = contact(s, t, &f.account_id, "Procurement", Some(&cfo)).await;
    let vp = contact(s, t, &labs, "Vp", Some(&cto)).await;
    let architect = contact(s, t, &labs, "Architect", Some(&vp)).await;
    let (deal, _) = s.create_opportunity(&f, "Globex platform", "90000").await;
    let c = Company {
        parent: f.account_id.clone(),
        labs,
        ceo,
        cfo,
        cto,
        vp,
        architect,
        procurement,
        deal,
    };
    (f, c)
}

#[tokio::test]
async fn org_chart_committee_coverage_and_the_strongest_way_in() {
    let s = TestServer::start().await;
    let (f, c) = company(&s).await;
    let t = &f.token;
    role(&s, t, &c.deal, &c.ceo, "DECISION_MAKER").await;
    role(&s, t, &c.deal, &c.cfo, "ECONOMIC_BUYER").await;
    role(&s, t, &c.deal, &c.architect, "CHAMPION").await;
    role(&s, t, &c.deal, &c.procurement, "BLOCKER").await;
    data(&edge(&s, t, &c.architect, &c.cto, "INFLUENCES", 4).await);
    data(&edge(&s, t, &c.procurement, &c.cfo, "BLOCKS", 5).await);
    data(&edge(&s, t, &c.vp, &c.architect, "MENTORS", 3).await);
    // The CFO was engaged this week (a note); we know the architect well, and spoke today.
    let v = s
        .gql(
            Some(t),
            "mutation($c: ID!) { addNote(subjectId: $c, body: \"Budget confirmed for Q1\") { __typename } }",
            json!({ "c": c.cfo }),
        )
        .await;
    data(&v);
    let today = chrono::Utc::now().date_naive().to_string();
    let v = s
        .gql(
            Some(t),
            "mutation($c: ID!, $d: NaiveDate) { setContactRelationship(input: {contactId: $c, strength: 5, lastContactOn: $d}) { relationship { strength lastContactOn user { email } } } }",
            json!({ "c": c.architect, "d": today }),
        )
        .await;
    assert_eq!(
        data(&v)["setContactRelationship"]["relationship"]["strength"],
        5
    );

    // A call with the VP last week, and one planned with the CTO next week (not activity yet).
    let week = chrono::Duration::days(7);
    for (who, at) in [
        (&c.vp, chrono::Utc::now() - week),
        (&c.cto, chrono::Utc::now() + week),
    ] {
        let v = s
            .gql(
                Some(t),
                "mutation($i: CreateEventInput!) { createEvent(input: $i) { event { id } } }",
                json!({ "i": { "kind": "CALL", "title": "Check-in", "timeZone": "UTC",
                    "startsAt": at.to_rfc3339(), "endsAt": (at + chrono::Duration::minutes(30)).to_rfc3339(),
                    "subjectId": who } }),
            )
            .await;
        data(&v);
    }

    // The chart: depth first, siblings by name, across the subsidiary.
    let v = s.gql(Some(t), CHART, json!({ "a": c.parent })).await;
    let chart = &data(&v)["orgChart"];
    assert_eq!(chart["size"], 6);
    assert_eq!(
        names(&chart["nodes"]),
        ["Ceo", "Cfo", "Procurement", "Cto", "Vp", "Architect"]
    );
    let depths: Vec<i64> = chart["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["depth"].as_i64().unwrap())
        .collect();
    assert_eq!(depths, [0, 1, 2, 1, 2, 3]);
    let ceo = &chart["nodes"][0];
    assert_eq!(ceo["teamSize"], 5);
    assert!(ceo["managerId"].is_null());
    assert_eq!(ceo["dealRoles"][0]["role"], "DECISION_MAKER");
    assert_eq!(ceo["dealRoles"][0]["opportunity"]["id"], c.deal.as_str());
    assert_eq!(chart["nodes"][4]["managerId"], c.cto.as_str());
    assert!(chart["nodes"][1]["lastActivityAt"].is_string()); // the CFO's note
    assert!(chart["nodes"][3]["lastActivityAt"].is_null()); // the CTO's call is ahead
    let vp_call =
        chrono::DateTime::parse_from_rfc3339(chart["nodes"][4]["lastActivityAt"].as_str().unwrap())
            .unwrap();
    let ago = chrono::Utc::now() - vp_call.with_timezone(&chrono::Utc);
    assert!(
        ago > chrono::Duration::days(6) && ago < chrono::Duration::days(8),
        "{ago}"
    );
    // Influence: the CEO has five people below (0.5); the architect one edge of 4 (0.8).
    assert!((ceo["influence"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!((chart["nodes"][5]["influence"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    assert_eq!(
        names(&chart["roots"][0]["reports"]),
        ["Cfo", "Cto"],
        "{chart:#}"
    );
    assert_eq!(chart["influences"].as_array().unwrap().len(), 3);

    // Without the subsidiary, and cut at one level.
    let v = s
        .gql(Some(t), CHART, json!({ "a": c.parent, "c": false }))
        .await;
    assert_eq!(
        names(&data(&v)["orgChart"]["nodes"]),
        ["Ceo", "Cfo", "Procurement", "Cto"]
    );
    let v = s
        .gql(Some(t), CHART, json!({ "a": c.parent, "d": 1 }))
        .await;
    assert_eq!(data(&v)["orgChart"]["size"], 3);
    // The subsidiary's own chart starts at the VP (their manager is outside it).
    let v = s.gql(Some(t), CHART, json!({ "a": c.labs })).await;
    assert_eq!(names(&data(&v)["orgChart"]["nodes"]), ["Vp", "Architect"]);

    // The committee.
    let v = s.gql(Some(t), COMMITTEE, json!({ "o": c.deal })).await;
    let committee = &data(&v)["buyingCommittee"];
    assert_eq!(committee["coverage"], 0.75);
    assert_eq!(committee["missing"], json!(["TECHNICAL_BUYER"]));
    let status: Vec<(&str, &str)> = committee["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["role"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("DECISION_MAKER", "FILLED"),
            ("ECONOMIC_BUYER", "ENGAGED"),
            ("CHAMPION", "ENGAGED"),
            ("TECHNICAL_BUYER", "MISSING"),
        ]
    );
    let blocker = &committee["blockers"][0];
    assert_eq!(blocker["contact"]["lastName"], "Procurement");
    assert_eq!(blocker["hasBlockerRole"], true);
    assert_eq!(blocker["blocks"], json!([{ "lastName": "Cfo" }]));
    // The champion reaches the CEO through the CTO: 4/5 × 0.6 (reporting line) = 0.48;
    // the reporting chain alone (0.6³ = 0.216) is weaker.
    let path = &committee["paths"][0];
    assert!(
        (path["strength"].as_f64().unwrap() - 0.48).abs() < 1e-9,
        "{path:#}"
    );
    assert_eq!(path["hops"], 2);
    let steps: Vec<(Value, Value)> = path["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["contact"]["lastName"].clone(), s["via"].clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (json!("Architect"), Value::Null),
            (json!("Cto"), json!("INFLUENCES")),
            (json!("Ceo"), json!("REPORTS_TO")),
        ]
    );

    // A colleague who knows the CEO well opens the strongest way in, until they leave.
    let dana = s.user("dana@example.com", Role::Rep).await;
    let dana_id = s.user_id(&dana).await;
    let v = s
        .gql(
            Some(t),
            "mutation($u: ID!, $c: ID!) { setContactRelationship(input: {userId: $u, contactId: $c, strength: 5}) { relationship { user { email } } } }",
            json!({ "u": dana_id, "c": c.ceo }),
        )
        .await;
    assert_eq!(
        data(&v)["setContactRelationship"]["relationship"]["user"]["email"],
        "dana@example.com"
    );
    let best = |v: &Value| data(v)["buyingCommittee"]["paths"][0].clone();
    let v = s.gql(Some(t), COMMITTEE, json!({ "o": c.deal })).await;
    assert_eq!(best(&v)["strength"], 1.0);
    assert_eq!(best(&v)["steps"][0]["user"]["email"], "dana@example.com");
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        accord_entities::user::Entity::update_many()
            .col_expr(accord_entities::user::Column::Active, Expr::value(false))
            .filter(accord_entities::user::Column::Email.eq("dana@example.com"))
            .exec(&s.state.services.db)
            .await
            .unwrap();
    }
    let v = s.gql(Some(t), COMMITTEE, json!({ "o": c.deal })).await;
    assert!(
        (best(&v)["strength"].as_f64().unwrap() - 0.48).abs() < 1e-9,
        "{v}"
    );

    // The architect's own edges: the one they draw and the one drawn to them.
    let v = s
        .gql(
            Some(t),
            "query($c: ID!) { contactInfluences(contactId: $c) { kind from { lastName } to { lastName } } }",
            json!({ "c": c.architect }),
        )
        .await;
    assert_eq!(data(&v)["contactInfluences"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_influence_input_is_refused_and_writes_nothing() {
    let s = TestServer::start().await;
    let (f, c) = company(&s).await;
    let t = &f.token;
    let created = edge(&s, t, &c.architect, &c.cto, "INFLUENCES", 4).await;
    let id = data(&created)["createContactInfluence"]["influence"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cases: Vec<(Value, &str)> = vec![
        (
            edge(&s, t, &c.cto, &c.cto, "INFLUENCES", 3).await,
            "toContactId",
        ),
        (
            edge(&s, t, &c.cto, &c.ceo, "INFLUENCES", 0).await,
            "strength",
        ),
        (
            edge(&s, t, &c.cto, &c.ceo, "INFLUENCES", 6).await,
            "strength",
        ),
        (
            edge(&s, t, &c.architect, &c.cto, "INFLUENCES", 2).await,
            "kind",
        ),
        (
            edge(&s, t, "not-an-id", &c.ceo, "INFLUENCES", 2).await,
            "fromContactId",
        ),
        // A contact's ID where an account's belongs.
        (
            edge(&s, t, &c.cto, &c.parent, "INFLUENCES", 2).await,
            "toContactId",
        ),
    ];
    for (v, field) in &cases {
        assert_eq!(error_code(v), "VALIDATION", "{v}");
        assert_eq!(error_field(v), *field, "{v}");
    }
    let v = edge(&s, t, &c.cto, &c.ceo, "BRIBES", 2).await;
    assert_eq!(error_code(&v), "VALIDATION", "{v}");
    let v = s
        .gql(
            Some(t),
            EDGE,
            json!({ "i": { "fromContactId": c.cto, "toContactId": c.ceo, "kind": "INFLUENCES", "strength": 2, "note": "x".repeat(2001) } }),
        )
        .await;
    assert_eq!(error_field(&v), "note");

    // Reporting cycles, directly or through the chain, and managers at unrelated companies.
    let other = s.create_account(t, "Initech").await;
    let stranger = contact(&s, t, &other, "Stranger", None).await;
    for (manager, why) in [
        (&c.ceo, "self"),
        (&c.architect, "chain"),
        (&stranger, "company"),
    ] {
        let v = s
            .gql(
                Some(t),
                "mutation($c: ID!, $m: ID!) { updateContact(input: {id: $c, version: 1, reportsToId: $m}) { contact { id } } }",
                json!({ "c": c.ceo, "m": manager }),
            )
            .await;
        assert_eq!(error_code(&v), "VALIDATION", "{why}: {v}");
        assert_eq!(error_field(&v), "reportsToId", "{why}: {v}");
    }
    let v = s
        .gql(
            Some(t),
            "mutation($a: ID!, $m: ID!) { createContact(input: {accountId: $a, firstName: \"Al\", lastName: \"Cross\", reportsToId: $m}) { contact { id } } }",
            json!({ "a": c.parent, "m": stranger }),
        )
        .await;
    assert_eq!(error_field(&v), "reportsToId", "{v}");
    // Someone who changes employer leaves their old manager behind.
    let v = s
        .gql(
            Some(t),
            "mutation($c: ID!, $a: ID!) { updateContact(input: {id: $c, version: 1, accountId: $a}) { contact { reportsTo { id } account { name } } } }",
            json!({ "c": c.procurement, "a": other }),
        )
        .await;
    let moved = &data(&v)["updateContact"]["contact"];
    assert_eq!(moved["account"]["name"], "Initech");
    assert!(moved["reportsTo"].is_null(), "{moved}");

    // A stale version loses, the current one wins; a relationship cannot be in the future.
    let update = "mutation($i: UpdateContactInfluenceInput!) { updateContactInfluence(input: $i) { influence { version strength } } }";
    let v = s
        .gql(
            Some(t),
            update,
            json!({ "i": { "id": id, "version": 1, "strength": 5 } }),
        )
        .await;
    assert_eq!(
        data(&v)["updateContactInfluence"]["influence"]["version"],
        2
    );
    let v = s
        .gql(
            Some(t),
            update,
            json!({ "i": { "id": id, "version": 1, "strength": 1 } }),
        )
        .await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = s
        .gql(
            Some(t),
            update,
            json!({ "i": { "id": id, "version": 2, "strength": 9 } }),
        )
        .await;
    assert_eq!(error_field(&v), "strength");
    let v = s
        .gql(
            Some(t),
            "mutation($c: ID!) { setContactRelationship(input: {contactId: $c, strength: 3, lastContactOn: \"2999-01-01\"}) { __typename } }",
            json!({ "c": c.cto }),
        )
        .await;
    assert_eq!(error_field(&v), "lastContactOn");

    // Nothing of the above was written: one edge (strength 5), the chart unchanged, no
    // relationship.
    let v = s.gql(Some(t), CHART, json!({ "a": c.parent })).await;
    let chart = &data(&v)["orgChart"];
    assert_eq!(
        chart["influences"],
        json!([{ "kind": "INFLUENCES", "strength": 5, "from": { "lastName": "Architect" }, "to": { "lastName": "Cto" } }])
    );
    assert_eq!(chart["nodes"][0]["contact"]["lastName"], "Ceo");
    assert!(chart["nodes"][0]["managerId"].is_null());
    let v = s
        .gql(
            Some(t),
            "query($c: ID!) { contactRelationships(contactId: $c) { id } }",
            json!({ "c": c.cto }),
        )
        .await;
    assert_eq!(data(&v)["contactRelationships"], json!([]));

    // Deleting under a stale version is refused; under the current one it goes.
    let delete = "mutation($id: ID!, $v: Int!) { deleteContactInfluence(id: $id, version: $v) { deletedId } }";
    let v = s.gql(Some(t), delete, json!({ "id": id, "v": 1 })).await;
    assert_eq!(error_code(&v), "CONFLICT");
    let v = s.gql(Some(t), delete, json!({ "id": id, "v": 2 })).await;
    assert_eq!(data(&v)["deleteContactInfluence"]["deletedId"], id.as_str());
}

#[tokio::test]
async fn charts_and_edges_stop_at_the_territory_line() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let east = s.territory(&admin, "East", None).await;
    let west = s.territory(&admin, "West", None).await;
    let alice = s.user("alice@example.com", Role::Rep).await;
    let bob = s.user("bob@example.com", Role::Rep).await;
    s.grant(&admin, &east, &alice, "EDIT", false).await;
    s.grant(&admin, &west, &bob, "EDIT", false).await;
    let parent = s.create_account_in(&admin, "Umbrella", &east).await;
    let v = s
        .gql(
            Some(&admin),
            "mutation($p: ID!, $t: ID!) { createAccount(input: {name: \"Umbrella West\", parentId: $p, territoryId: $t}) { account { id } } }",
            json!({ "p": parent, "t": west }),
        )
        .await;
    let subsidiary = data(&v)["createAccount"]["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let boss = contact(&s, &admin, &parent, "Boss", None).await;
    let west_vp = contact(&s, &admin, &subsidiary, "WestVp", Some(&boss)).await;
    let engineer = contact(&s, &admin, &subsidiary, "Engineer", Some(&west_vp)).await;
    data(&edge(&s, &admin, &engineer, &boss, "INFLUENCES", 5).await);

    // Alice sees the parent's people only: no hidden subsidiary, no edge into it.
    let v = s.gql(Some(&alice), CHART, json!({ "a": parent })).await;
    let chart = &data(&v)["orgChart"];
    assert_eq!(names(&chart["nodes"]), ["Boss"]);
    assert_eq!(chart["nodes"][0]["teamSize"], 0);
    assert_eq!(chart["influences"], json!([]));
    let v = s
        .gql(
            Some(&alice),
            "query($c: ID!) { contactInfluences(contactId: $c) { id } }",
            json!({ "c": boss }),
        )
        .await;
    assert_eq!(data(&v)["contactInfluences"], json!([]));
    // She cannot draw an edge to, or note a relationship with, someone she cannot see:
    // the answer is the same as for a contact that does not exist.
    let v = edge(&s, &alice, &boss, &west_vp, "INFLUENCES", 3).await;
    assert_eq!(error_field(&v), "toContactId");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no such contact")
    );
    let v = s
        .gql(
            Some(&alice),
            "mutation($c: ID!) { setContactRelationship(input: {contactId: $c, strength: 3}) { __typename } }",
            json!({ "c": west_vp }),
        )
        .await;
    assert_eq!(error_field(&v), "contactId");
    let v = s.gql(Some(&alice), CHART, json!({ "a": subsidiary })).await;
    assert_eq!(error_code(&v), "NOT_FOUND");

    // Bob sees the subsidiary; its VP heads his chart, the hidden manager unmentioned.
    let v = s.gql(Some(&bob), CHART, json!({ "a": subsidiary })).await;
    let chart = &data(&v)["orgChart"];
    assert_eq!(names(&chart["nodes"]), ["WestVp", "Engineer"]);
    assert!(chart["nodes"][0]["managerId"].is_null());
    assert_eq!(chart["influences"], json!([]));
    // Nor can Bob draw from a contact he cannot see.
    let v = edge(&s, &bob, &boss, &engineer, "MENTORS", 2).await;
    assert_eq!(error_field(&v), "fromContactId");

    // The audit log of the edge (it touches the subsidiary) shows to a manager of both
    // sides, not to one of the parent's territory only.
    let audit = "{ auditLog(first: 50) { edges { node { entityType } } } }";
    let entries = |v: &Value, kind: &str| {
        data(v)["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["node"]["entityType"] == kind)
            .count()
    };
    // So does a meeting about the subsidiary's engineer.
    let v = s
        .gql(
            Some(&admin),
            "mutation($i: CreateEventInput!) { createEvent(input: $i) { event { id } } }",
            json!({ "i": { "kind": "MEETING", "title": "Architecture review", "timeZone": "UTC",
                "startsAt": "2027-01-11T10:00:00Z", "endsAt": "2027-01-11T11:00:00Z",
                "subjectId": engineer } }),
        )
        .await;
    data(&v);
    let east_manager = s.user("carol@example.com", Role::SalesManager).await;
    s.grant(&admin, &east, &east_manager, "EDIT", true).await;
    let v = s.gql(Some(&east_manager), audit, json!({})).await;
    assert_eq!(
        (entries(&v, "ContactInfluence"), entries(&v, "Event")),
        (0, 0)
    );
    s.grant(&admin, &west, &east_manager, "READ", false).await;
    let v = s.gql(Some(&east_manager), audit, json!({})).await;
    assert_eq!(
        (entries(&v, "ContactInfluence"), entries(&v, "Event")),
        (1, 1)
    );
}

#[tokio::test]
async fn org_chart_pictures_render_as_svg_and_dot() {
    let s = TestServer::start().await;
    let (f, c) = company(&s).await;
    let t = &f.token;
    let hostile = contact(
        &s,
        t,
        &c.parent,
        "<script>alert(\"x\")</script> & Co",
        Some(&c.ceo),
    )
    .await;
    data(&edge(&s, t, &c.architect, &c.cto, "INFLUENCES", 4).await);
    data(&edge(&s, t, &hostile, &c.ceo, "FORMER_COLLEAGUE_OF", 2).await);
    let get = |path: String, token: Option<String>| {
        let http = s.http.clone();
        let url = format!("{}{}", s.url, path);
        async move {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, r.text().await.unwrap())
        }
    };

    let (status, kind, svg) = get(
        format!("/accounts/{}/org-chart.svg", c.parent),
        Some(t.clone()),
    )
    .await;
    assert_eq!(status, 200, "{svg}");
    assert!(kind.starts_with("image/svg+xml"));
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert!(
        doc.descendants().all(|n| n.tag_name().name() != "script"),
        "a contact's name became markup"
    );
    let boxes = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("contact"))
        .count();
    assert_eq!(boxes, 7);
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(
        texts.iter().any(|t| t.contains("<script>alert")),
        "the name is shown as text: {texts:?}"
    );
    let edges = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("edge ")))
        .count();
    assert_eq!(edges, 2);
    // Without influence edges, and cut at the top level.
    let (_, _, plain) = get(
        format!(
            "/accounts/{}/org-chart.svg?influence=false&maxDepth=0",
            c.parent
        ),
        Some(t.clone()),
    )
    .await;
    let doc = roxmltree::Document::parse(&plain).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.attribute("class") == Some("contact"))
            .count(),
        1
    );
    assert!(!plain.contains("class=\"edge "));

    let (status, kind, dot) = get(
        format!("/accounts/{}/org-chart.dot", c.parent),
        Some(t.clone()),
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/vnd.graphviz"));
    assert!(dot.starts_with("digraph \"Acme Corp\" {"), "{dot}");
    assert!(dot.contains("\\\"x\\\""), "quotes escaped: {dot}");
    assert_eq!(dot.matches("[color=gray50]").count(), 6, "{dot}");
    assert_eq!(dot.matches("constraint=false").count(), 2);
    assert!(dot.trim_end().ends_with('}'));

    // No token, a malformed ID, an account outside the caller's territory, a bad depth.
    let path = format!("/accounts/{}/org-chart.svg", c.parent);
    assert_eq!(get(path.clone(), None).await.0, 401);
    assert_eq!(
        get("/accounts/nope/org-chart.svg".into(), Some(t.clone()))
            .await
            .0,
        400
    );
    let east = s.territory(t, "East", None).await;
    let rep = s.user("rep@example.com", Role::Rep).await;
    s.grant(t, &east, &rep, "READ", false).await;
    assert_eq!(get(path.clone(), Some(rep)).await.0, 404);
    assert_eq!(
        get(format!("{path}?maxDepth=9999"), Some(t.clone()))
            .await
            .0,
        400
    );
    assert_eq!(
        get(
            format!("/accounts/{}/org-chart.png", c.parent),
            Some(t.clone())
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn a_stage_guard_reads_the_committee() {
    let s = TestServer::start().await;
    let (f, c) = company(&s).await;
    let t = &f.token;
    let source = r#"
if event == "enter" && !(committee.has_champion && committee.engaged_economic_buyer) {
    deny("Negotiation requires a champion and an engaged economic buyer");
}
"#;
    let v = s
        .gql(
            Some(t),
            "mutation($i: SaveStageScriptInput!) { saveStageScriptDraft(input: $i) { script { id } problems { message } } }",
            json!({ "i": { "stageId": f.stages[3], "source": source, "note": "committee" } }),
        )
        .await;
    let saved = &data(&v)["saveStageScriptDraft"];
    assert_eq!(saved["problems"], json!([]), "{v:#}");
    let id = saved["script"]["id"].as_str().unwrap().to_owned();
    data(
        &s.gql(
            Some(t),
            "mutation($id: ID!) { publishStageScript(id: $id) { __typename } }",
            json!({ "id": id }),
        )
        .await,
    );
    // A typo in a committee field is caught before publishing.
    let v = s
        .gql(
            Some(t),
            "mutation($i: SaveStageScriptInput!) { saveStageScriptDraft(input: $i) { problems { message } } }",
            json!({ "i": { "stageId": f.stages[3], "source": "if committee.has_champoin { deny(\"x\"); }", "note": "typo" } }),
        )
        .await;
    let problems = data(&v)["saveStageScriptDraft"]["problems"].to_string();
    assert!(problems.contains("has_champoin"), "{problems}");

    let mv = |version: i64| {
        s.gql(
            Some(t),
            "mutation($i: MoveOpportunityStageInput!) { moveOpportunityStage(input: $i) { opportunity { version stage { name } } } }",
            json!({ "i": { "id": c.deal, "version": version, "stageId": f.stages[3] } }),
        )
    };
    let v = mv(1).await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("champion"), "{message}");

    role(&s, t, &c.deal, &c.architect, "CHAMPION").await;
    role(&s, t, &c.deal, &c.cfo, "ECONOMIC_BUYER").await;
    // Filled but not engaged: still refused.
    let v = mv(1).await;
    assert_eq!(error_code(&v), "GUARD_DENIED", "{v}");
    let v = s
        .gql(
            Some(t),
            "mutation($c: ID!) { addNote(subjectId: $c, body: \"Walked through the budget\") { __typename } }",
            json!({ "c": c.cfo }),
        )
        .await;
    data(&v);
    let v = mv(1).await;
    assert_eq!(
        data(&v)["moveOpportunityStage"]["opportunity"]["stage"]["name"],
        "Negotiation"
    );
}
