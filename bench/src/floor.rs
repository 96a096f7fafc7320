//! The floor of the GraphQL layer: the benchmark's query executed by async-graphql over
//! in-memory data of the same shape (no database, no HTTP, no loaders), against plain
//! serde serialization of the same response. Tells how much of Accord's gap to the
//! baseline any ORM or SQL work could ever win back.

use std::time::Instant;

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(SimpleObject, Deserialize, Clone)]
struct Amount {
    amount: String,
    currency: String,
}

#[derive(SimpleObject, Deserialize, Clone)]
struct Named {
    name: String,
}

#[derive(SimpleObject, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
#[graphql(rename_fields = "camelCase")]
struct Owner {
    display_name: String,
}

#[derive(SimpleObject, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
#[graphql(rename_fields = "camelCase")]
struct Person {
    full_name: String,
}

#[derive(SimpleObject, Deserialize, Clone)]
struct Role {
    role: String,
    contact: Person,
}

#[derive(SimpleObject, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
#[graphql(rename_fields = "camelCase")]
struct Node {
    id: String,
    name: String,
    amount: Amount,
    stage: Named,
    account: Named,
    owner: Owner,
    contact_roles: Vec<Role>,
}

#[derive(SimpleObject, Deserialize, Clone)]
struct Edge {
    node: Node,
}

#[derive(SimpleObject, Deserialize, Clone)]
struct Conn {
    edges: Vec<Edge>,
}

struct Query(Conn);

#[Object]
impl Query {
    async fn opportunities(&self, first: i32) -> Conn {
        let mut conn = self.0.clone();
        conn.edges.truncate(first.max(0) as usize);
        conn
    }
}

/// Returns (GraphQL µs per response, serde µs per response).
pub async fn run(
    response: &Value,
    query: &str,
    page: usize,
    iterations: u32,
) -> anyhow::Result<(f64, f64)> {
    let conn: Conn = serde_json::from_value(response["data"]["opportunities"].clone())?;
    let schema = Schema::build(Query(conn), EmptyMutation, EmptySubscription).finish();
    let variables = async_graphql::Variables::from_json(json!({ "n": page }));

    // Same output, or the comparison means nothing.
    let out = schema
        .execute(async_graphql::Request::new(query).variables(variables.clone()))
        .await;
    if serde_json::to_value(&out)? != *response {
        anyhow::bail!("floor schema does not reproduce the response");
    }

    let t0 = Instant::now();
    for _ in 0..iterations {
        let out = schema
            .execute(async_graphql::Request::new(query).variables(variables.clone()))
            .await;
        std::hint::black_box(serde_json::to_vec(&out)?);
    }
    let graphql = t0.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);

    let t0 = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(serde_json::to_vec(response)?);
    }
    let serde = t0.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    Ok((graphql, serde))
}
