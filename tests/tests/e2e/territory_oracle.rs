//! The proof that territory permissions have no leaks: random territory trees, users,
//! memberships and records, then every (user, access path) pair checked against a
//! brute-force oracle that asks casbin's `enforce` about each record, using the model
//! file from the repository and the policy the server stored in its database.

use std::collections::{BTreeMap, BTreeSet};

use accord::authz::adapter::SeaOrmAdapter;
use accord_e2e::{TestServer, data};
use accord_entities::user::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use casbin::{CoreApi, DefaultModel, DefaultRoleManager, Enforcer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const MODEL: &str = include_str!("../../../server/src/authz/model.conf");

fn raw(id: &str) -> i64 {
    let bytes = URL_SAFE_NO_PAD.decode(id).expect("base64 id");
    let text = String::from_utf8(bytes).expect("utf8 id");
    text.rsplit(':')
        .next()
        .expect("colon")
        .parse()
        .expect("number")
}

struct Member {
    token: String,
    id: i64,
    role: Role,
}

#[derive(Clone)]
struct Rec {
    id: String,
    territory: Option<i64>,
    /// Deals: their owner.
    owner: Option<i64>,
    /// Contacts and deals: index of their account.
    account: usize,
    /// Contacts: index of the contact they report to.
    reports_to: Option<usize>,
}

struct World {
    users: Vec<Member>,
    accounts: Vec<Rec>,
    contacts: Vec<Rec>,
    deals: Vec<Rec>,
    /// (deal index, contact index)
    roles: Vec<(usize, usize)>,
}

async fn build_world(server: &TestServer, seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed);
    let admin = server.admin().await;
    let mut territories: Vec<String> = Vec::new();
    for i in 0..12 {
        let parent = if i == 0 || rng.random_bool(0.2) {
            None
        } else {
            Some(territories[rng.random_range(0..territories.len())].clone())
        };
        let t = server
            .territory(&admin, &format!("T{i}"), parent.as_deref())
            .await;
        territories.push(t);
    }
    let mut users = vec![Member {
        id: raw(&server.user_id(&admin).await),
        token: admin.clone(),
        role: Role::Admin,
    }];
    for i in 0..8 {
        let role = if i < 3 { Role::SalesManager } else { Role::Rep };
        let token = server.user(&format!("u{i}@oracle.test"), role).await;
        users.push(Member {
            id: raw(&server.user_id(&token).await),
            token,
            role,
        });
    }
    for m in users.iter().skip(1) {
        for _ in 0..rng.random_range(0..=3) {
            let t = &territories[rng.random_range(0..territories.len())];
            let level = ["READ", "EDIT", "OWNER"][rng.random_range(0..3)];
            let manager = m.role == Role::SalesManager && level != "READ" && rng.random_bool(0.6);
            server.grant(&admin, t, &m.token, level, manager).await;
        }
    }
    let v = server
        .gql(
            Some(&admin),
            r#"mutation { createPipeline(input: {name: "P", stages: [{name: "Open", probability: 10, kind: OPEN}, {name: "Won", probability: 100, kind: WON}]}) { pipeline { id } } }"#,
            json!({}),
        )
        .await;
    let pipeline = data(&v)["createPipeline"]["pipeline"]["id"]
        .as_str()
        .expect("pipeline")
        .to_owned();

    let mut accounts: Vec<Rec> = Vec::new();
    // The top-most account of each account's hierarchy: reporting lines stay within one.
    let mut company: Vec<usize> = Vec::new();
    for i in 0..24 {
        // Some accounts stay unassigned: only admins see those.
        let territory = rng
            .random_bool(0.85)
            .then(|| territories[rng.random_range(0..territories.len())].clone());
        // Subsidiaries, often in another territory than their parent.
        let parent = (i > 0 && rng.random_bool(0.6)).then(|| rng.random_range(0..i));
        company.push(parent.map_or(i, |p| company[p]));
        let v = server
            .gql(
                Some(&admin),
                "mutation($n: String!, $t: ID, $p: ID) { createAccount(input: {name: $n, territoryId: $t, parentId: $p}) { account { id } } }",
                json!({ "n": format!("Account {i}"), "t": territory, "p": parent.map(|p| accounts[p].id.clone()) }),
            )
            .await;
        accounts.push(Rec {
            id: data(&v)["createAccount"]["account"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
            territory: territory.as_deref().map(raw),
            owner: None,
            account: i,
            reports_to: None,
        });
    }
    let mut contacts: Vec<Rec> = Vec::new();
    for i in 0..50 {
        let account = rng.random_range(0..accounts.len());
        // Reports-to may cross accounts of one company (and so territories).
        let colleagues: Vec<usize> = (0..contacts.len())
            .filter(|c| company[contacts[*c].account] == company[account])
            .collect();
        let reports_to = (!colleagues.is_empty() && rng.random_bool(0.5))
            .then(|| colleagues[rng.random_range(0..colleagues.len())]);
        let id = server
            .create_contact(
                &admin,
                &accounts[account].id,
                &format!("C{i}"),
                reports_to.map(|r| contacts[r].id.as_str()),
            )
            .await;
        contacts.push(Rec {
            id,
            territory: accounts[account].territory,
            owner: None,
            account,
            reports_to,
        });
    }
    let mut deals = Vec::new();
    for i in 0..40 {
        let account = rng.random_range(0..accounts.len());
        let owner = &users[rng.random_range(0..users.len())];
        let v = server
            .gql(
                Some(&admin),
                "mutation($a: ID!, $p: ID!, $n: String!, $o: ID!) { createOpportunity(input: {name: $n, accountId: $a, pipelineId: $p, ownerId: $o, amount: \"1000\", currency: \"EUR\", expectedCloseDate: \"2027-03-31\"}) { opportunity { id } } }",
                json!({ "a": accounts[account].id, "p": pipeline, "n": format!("Deal {i}"), "o": server.user_id(&owner.token).await }),
            )
            .await;
        deals.push(Rec {
            id: data(&v)["createOpportunity"]["opportunity"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
            territory: accounts[account].territory,
            owner: Some(owner.id),
            account,
            reports_to: None,
        });
    }
    let mut roles = Vec::new();
    for (d, deal) in deals.iter().enumerate() {
        let mut taken = BTreeSet::new();
        for _ in 0..rng.random_range(0..=2) {
            let c = rng.random_range(0..contacts.len());
            if !taken.insert(c) {
                continue;
            }
            let v = server
                .gql(
                    Some(&admin),
                    "mutation($o: ID!, $c: ID!) { addOpportunityContactRole(input: {opportunityId: $o, contactId: $c, role: INFLUENCER}) { contactRole { id } } }",
                    json!({ "o": deal.id, "c": contacts[c].id }),
                )
                .await;
            data(&v);
            roles.push((d, c));
        }
    }
    World {
        users,
        accounts,
        contacts,
        deals,
        roles,
    }
}

struct Oracle {
    enforcer: Enforcer,
}

impl Oracle {
    async fn load(server: &TestServer) -> Self {
        let model = DefaultModel::from_str(MODEL).await.expect("model");
        let mut enforcer =
            Enforcer::new(model, SeaOrmAdapter::new(server.state.services.db.clone()))
                .await
                .expect("enforcer");
        enforcer
            .set_role_manager(std::sync::Arc::new(parking_lot::RwLock::new(
                DefaultRoleManager::new(64),
            )))
            .expect("role manager");
        enforcer.load_policy().await.expect("policy");
        Oracle { enforcer }
    }

    fn allows(&self, user: &Member, r: &Rec, level: &str) -> bool {
        let territory = r
            .territory
            .map(|t| format!("territory:{t}"))
            .unwrap_or_else(|| "territory:none".into());
        let owner = r.owner.map(|o| format!("user:{o}")).unwrap_or_default();
        self.enforcer
            .enforce((
                format!("user:{}", user.id).as_str(),
                format!("role:{}", user.role.as_str()).as_str(),
                territory.as_str(),
                format!("level:{level}").as_str(),
                owner.as_str(),
            ))
            .expect("enforce")
    }

    /// What a gated mutation must answer: NOT_FOUND when invisible, FORBIDDEN when the
    /// level is missing, and CONFLICT (the deliberately stale version) when allowed.
    fn expected_code(&self, user: &Member, r: &Rec, level: &str) -> &'static str {
        if !self.allows(user, r, "read") {
            "NOT_FOUND"
        } else if !self.allows(user, r, level) {
            "FORBIDDEN"
        } else {
            "CONFLICT"
        }
    }
}

fn ids(v: &Value) -> BTreeSet<String> {
    v["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Error codes by top-level alias.
fn codes(v: &Value) -> BTreeMap<String, String> {
    v["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| {
                    Some((
                        e["path"][0].as_str()?.to_owned(),
                        e["extensions"]["code"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Tally {
    pairs: usize,
    diffs: Vec<String>,
}

impl Tally {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.pairs += 1;
        if !ok {
            self.diffs.push(what());
        }
    }
}

/// A deal's `account` and `contactRoles { contact }` as `node` shows them.
fn check_deal_relations(
    t: &mut Tally,
    w: &World,
    oracle: &Oracle,
    u: &Member,
    i: usize,
    node: &Value,
    what: &str,
) {
    let deal = &w.deals[i];
    let account = &w.accounts[deal.account];
    let want_account = oracle
        .allows(u, account, "read")
        .then(|| account.id.clone());
    t.check(
        node["account"]["id"].as_str().map(str::to_owned) == want_account,
        || format!("{what} {} .account", deal.id),
    );
    let got: BTreeSet<String> = node["contactRoles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["contact"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let want: BTreeSet<String> = w
        .roles
        .iter()
        .filter(|(dl, cl)| *dl == i && oracle.allows(u, &w.contacts[*cl], "read"))
        .map(|(_, cl)| w.contacts[*cl].id.clone())
        .collect();
    t.check(got == want, || {
        format!("{what} {} .contactRoles {got:?} != {want:?}", deal.id)
    });
}

async fn check_world(server: &TestServer, w: &World, oracle: &Oracle, t: &mut Tally) {
    for u in &w.users {
        let who = format!("user {} ({})", u.id, u.role.as_str());
        let tok = Some(u.token.as_str());
        // Lists and their counts.
        let v = server
            .gql(
                tok,
                "{ accounts(first: 100) { totalCount edges { node { id } } } contacts(first: 100) { totalCount edges { node { id account { id } } } } opportunities(first: 100) { totalCount edges { node { id account { id } contactRoles { contact { id } } } } } }",
                json!({}),
            )
            .await;
        for (list, recs) in [
            ("accounts", &w.accounts),
            ("contacts", &w.contacts),
            ("opportunities", &w.deals),
        ] {
            let got = ids(&data(&v)[list]);
            let want: BTreeSet<String> = recs
                .iter()
                .filter(|r| oracle.allows(u, r, "read"))
                .map(|r| r.id.clone())
                .collect();
            for r in recs {
                t.check(got.contains(&r.id) == want.contains(&r.id), || {
                    format!("{who}: {list} list and {} disagree", r.id)
                });
            }
            t.check(
                data(&v)[list]["totalCount"].as_u64() == Some(want.len() as u64),
                || {
                    format!(
                        "{who}: {list} totalCount {} != {}",
                        data(&v)[list]["totalCount"],
                        want.len()
                    )
                },
            );
        }

        // Relations preloaded for a whole list page (a path of its own, not the loaders).
        let listed = |list: &str| -> BTreeMap<String, Value> {
            data(&v)[list]["edges"]
                .as_array()
                .map(|edges| {
                    edges
                        .iter()
                        .filter_map(|e| {
                            Some((e["node"]["id"].as_str()?.to_owned(), e["node"].clone()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let listed_contacts = listed("contacts");
        for c in &w.contacts {
            if let Some(node) = listed_contacts.get(&c.id) {
                let account = &w.accounts[c.account];
                let want = oracle
                    .allows(u, account, "read")
                    .then(|| account.id.clone());
                t.check(
                    node["account"]["id"].as_str().map(str::to_owned) == want,
                    || format!("{who}: listed contact {} .account", c.id),
                );
            }
        }
        let listed_deals = listed("opportunities");
        for (i, deal) in w.deals.iter().enumerate() {
            let Some(node) = listed_deals.get(&deal.id) else {
                continue;
            };
            check_deal_relations(t, w, oracle, u, i, node, &format!("{who}: listed deal"));
        }

        // node(id) for every record.
        let all: Vec<&Rec> = w
            .accounts
            .iter()
            .chain(&w.contacts)
            .chain(&w.deals)
            .collect();
        let query = all
            .iter()
            .enumerate()
            .map(|(i, r)| format!("n{i}: node(id: \"{}\") {{ id }}", r.id))
            .collect::<Vec<_>>()
            .join(" ");
        let v = server.gql(tok, &format!("{{ {query} }}"), json!({})).await;
        let errs = codes(&v);
        for (i, r) in all.iter().enumerate() {
            let key = format!("n{i}");
            let seen = v["data"][&key]["id"].as_str() == Some(r.id.as_str());
            let want = oracle.allows(u, r, "read");
            t.check(
                seen == want && (want || errs.get(&key).map(String::as_str) == Some("NOT_FOUND")),
                || {
                    format!(
                        "{who}: node({}) seen={seen} want={want} err={:?}",
                        r.id,
                        errs.get(&key)
                    )
                },
            );
        }

        // Nested edges from every account, contact and deal the user can see.
        let mut parts = Vec::new();
        for (i, a) in w.accounts.iter().enumerate() {
            if oracle.allows(u, a, "read") {
                parts.push(format!("a{i}: account(id: \"{}\") {{ contacts(first: 30) {{ totalCount edges {{ node {{ id }} }} }} opportunities(first: 30) {{ totalCount edges {{ node {{ id }} }} }} }}", a.id));
            }
        }
        for (i, c) in w.contacts.iter().enumerate() {
            if oracle.allows(u, c, "read") {
                parts.push(format!("c{i}: contact(id: \"{}\") {{ account {{ id }} reportsTo {{ id }} opportunityRoles {{ opportunity {{ id }} }} }}", c.id));
            }
        }
        for (i, d) in w.deals.iter().enumerate() {
            if oracle.allows(u, d, "read") {
                parts.push(format!("d{i}: opportunity(id: \"{}\") {{ account {{ id }} contactRoles {{ contact {{ id }} }} }}", d.id));
            }
        }
        if !parts.is_empty() {
            // A few records per request keeps each under the complexity limit.
            let mut merged = serde_json::Map::new();
            for chunk in parts.chunks(6) {
                let v = server
                    .gql(tok, &format!("{{ {} }}", chunk.join(" ")), json!({}))
                    .await;
                if let Some(obj) = data(&v).as_object() {
                    merged.extend(obj.clone());
                }
            }
            let d = &Value::Object(merged);
            for (i, a) in w.accounts.iter().enumerate() {
                if !oracle.allows(u, a, "read") {
                    continue;
                }
                let node = &d[format!("a{i}")];
                for (edge, recs) in [("contacts", &w.contacts), ("opportunities", &w.deals)] {
                    let got = ids(&node[edge]);
                    let want: BTreeSet<String> = recs
                        .iter()
                        .filter(|r| r.account == i && oracle.allows(u, r, "read"))
                        .map(|r| r.id.clone())
                        .collect();
                    t.check(got == want, || {
                        format!("{who}: account {} .{edge} {got:?} != {want:?}", a.id)
                    });
                    t.check(
                        node[edge]["totalCount"].as_u64() == Some(want.len() as u64),
                        || format!("{who}: account {} .{edge}.totalCount", a.id),
                    );
                }
            }
            for (i, c) in w.contacts.iter().enumerate() {
                if !oracle.allows(u, c, "read") {
                    continue;
                }
                let node = &d[format!("c{i}")];
                let account = &w.accounts[c.account];
                let want_account = oracle
                    .allows(u, account, "read")
                    .then(|| account.id.clone());
                t.check(
                    node["account"]["id"].as_str().map(str::to_owned) == want_account,
                    || format!("{who}: contact {} .account", c.id),
                );
                let want_manager = c
                    .reports_to
                    .map(|m| &w.contacts[m])
                    .filter(|m| oracle.allows(u, m, "read"))
                    .map(|m| m.id.clone());
                t.check(
                    node["reportsTo"]["id"].as_str().map(str::to_owned) == want_manager,
                    || format!("{who}: contact {} .reportsTo", c.id),
                );
                let got: BTreeSet<String> = node["opportunityRoles"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r["opportunity"]["id"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let want: BTreeSet<String> = w
                    .roles
                    .iter()
                    .filter(|(dl, cl)| *cl == i && oracle.allows(u, &w.deals[*dl], "read"))
                    .map(|(dl, _)| w.deals[*dl].id.clone())
                    .collect();
                t.check(got == want, || {
                    format!("{who}: contact {} .opportunityRoles", c.id)
                });
            }
            for (i, deal) in w.deals.iter().enumerate() {
                if !oracle.allows(u, deal, "read") {
                    continue;
                }
                let node = &d[format!("d{i}")];
                check_deal_relations(t, w, oracle, u, i, node, &format!("{who}: deal"));
            }
        }

        // Mutations with a deliberately stale version: the answer tells which gate
        // decided, and nothing is written whatever it is.
        let mut parts = Vec::new();
        let mut expected = BTreeMap::new();
        for (kind, recs, update) in [
            (
                "Account",
                &w.accounts,
                "updateAccount(input: {id: \"ID\", version: 0, name: \"x\"}) { account { id } }",
            ),
            (
                "Contact",
                &w.contacts,
                "updateContact(input: {id: \"ID\", version: 0, lastName: \"x\"}) { contact { id } }",
            ),
            (
                "Opportunity",
                &w.deals,
                "updateOpportunity(input: {id: \"ID\", version: 0, name: \"x\"}) { opportunity { id } }",
            ),
        ] {
            for (i, r) in recs.iter().enumerate() {
                let up = format!("u{kind}{i}");
                parts.push(format!("{up}: {}", update.replace("ID", &r.id)));
                expected.insert(up, oracle.expected_code(u, r, "edit"));
                let del = format!("x{kind}{i}");
                parts.push(format!(
                    "{del}: delete{kind}(id: \"{}\", version: 0) {{ deletedId }}",
                    r.id
                ));
                expected.insert(del, oracle.expected_code(u, r, "owner"));
            }
        }
        let v = server
            .gql(
                tok,
                &format!("mutation {{ {} }}", parts.join(" ")),
                json!({}),
            )
            .await;
        let got = codes(&v);
        for (alias, want) in &expected {
            t.check(got.get(alias).map(String::as_str) == Some(*want), || {
                format!(
                    "{who}: {alias} answered {:?}, oracle says {want}",
                    got.get(alias)
                )
            });
        }
    }
}

#[tokio::test]
async fn api_visibility_equals_casbin_enforce_for_every_record() {
    let mut tally = Tally {
        pairs: 0,
        diffs: Vec::new(),
    };
    for seed in [7u64, 1234, 99] {
        let server = TestServer::start().await;
        let world = build_world(&server, seed).await;
        let oracle = Oracle::load(&server).await;
        check_world(&server, &world, &oracle, &mut tally).await;
    }
    assert!(
        tally.diffs.is_empty(),
        "{} of {} checks differ from the oracle; first ones: {:#?}",
        tally.diffs.len(),
        tally.pairs,
        &tally.diffs[..tally.diffs.len().min(20)]
    );
    assert!(tally.pairs >= 10_000, "only {} pairs checked", tally.pairs);
}
