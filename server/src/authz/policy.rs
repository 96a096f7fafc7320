//! The stored casbin policy, derived from Accord's own tables: the role permissions
//! shipped in `policy.csv`, the territory tree, the memberships, and the fixed grants
//! for admins and deal owners. [`sync`] runs inside the transaction of every change that
//! alters one of them, so the policy never disagrees with the data it describes, and
//! bumps the policy version that every instance watches.

use std::collections::BTreeSet;

use accord_entities::{authz_state, casbin_rule, territory, territory_membership};
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

use super::adapter::row;
use crate::error::{AppError, AppResult};

const ROLE_POLICY: &str = include_str!("policy.csv");

/// `(ptype, values)`, ordered so two policies compare as sets.
pub type Rule = (String, Vec<String>);

pub fn territory_subject(id: Option<i64>) -> String {
    match id {
        Some(id) => format!("territory:{id}"),
        None => "territory:none".to_owned(),
    }
}

pub fn user_subject(id: i64) -> String {
    format!("user:{id}")
}

pub fn level_subject(level: territory_membership::AccessLevel) -> String {
    format!("level:{}", level.as_str())
}

/// Role permissions and the fixed grants, which do not depend on any table.
pub fn static_rules() -> AppResult<Vec<Rule>> {
    let mut rules = Vec::new();
    for line in ROLE_POLICY
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        match fields.as_slice() {
            ["p", role, obj, act] => rules.push((
                "p2".into(),
                vec![format!("role:{role}"), (*obj).into(), (*act).into()],
            )),
            ["g", member, of] => rules.push((
                "g".into(),
                vec![format!("role:{member}"), format!("role:{of}")],
            )),
            _ => {
                return Err(AppError::internal(anyhow::anyhow!(
                    "unrecognised line in policy.csv: {line}"
                )));
            }
        }
    }
    let s = |v: &str| v.to_owned();
    rules.push(("g".into(), vec![s("level:owner"), s("level:edit")]));
    rules.push(("g".into(), vec![s("level:edit"), s("level:read")]));
    rules.push((
        "p".into(),
        vec![s("role:admin"), s("*"), s("level:owner"), s("all")],
    ));
    rules.push((
        "p".into(),
        vec![s("*"), s("*"), s("level:edit"), s("record_owner")],
    ));
    Ok(rules)
}

/// The whole policy as the current tables imply it.
pub async fn derive<C: ConnectionTrait>(db: &C) -> AppResult<BTreeSet<Rule>> {
    let mut rules: BTreeSet<Rule> = static_rules()?.into_iter().collect();
    for t in territory::Entity::find().all(db).await? {
        if let Some(parent) = t.parent_id {
            rules.insert((
                "g".into(),
                vec![
                    territory_subject(Some(t.id)),
                    territory_subject(Some(parent)),
                ],
            ));
        }
    }
    for m in territory_membership::Entity::find().all(db).await? {
        rules.insert((
            "p".into(),
            vec![
                user_subject(m.user_id),
                territory_subject(Some(m.territory_id)),
                level_subject(m.access_level),
                if m.is_manager { "manager" } else { "member" }.to_owned(),
            ],
        ));
    }
    Ok(rules)
}

/// What `casbin_rule` holds now.
pub async fn stored<C: ConnectionTrait>(db: &C) -> AppResult<BTreeSet<Rule>> {
    let rows = casbin_rule::Entity::find()
        .order_by_asc(casbin_rule::Column::Id)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut values = vec![r.v0, r.v1, r.v2, r.v3, r.v4, r.v5];
            while values.last().is_some_and(String::is_empty) {
                values.pop();
            }
            (r.ptype, values)
        })
        .collect())
}

/// Rewrites the stored policy from the tables if it differs, and bumps the policy
/// version. Call it inside the transaction that changed territories or memberships.
/// Returns whether anything changed.
pub async fn sync<C: ConnectionTrait>(txn: &C) -> AppResult<bool> {
    let wanted = derive(txn).await?;
    let current = stored(txn).await?;
    if wanted == current {
        return Ok(false);
    }
    casbin_rule::Entity::delete_many().exec(txn).await?;
    let rows: Vec<_> = wanted.iter().map(|(p, r)| row(p, r)).collect();
    for chunk in rows.chunks(500) {
        casbin_rule::Entity::insert_many(chunk.to_vec())
            .exec(txn)
            .await?;
    }
    authz_state::Entity::update_many()
        .col_expr(
            authz_state::Column::PolicyVersion,
            Expr::col(authz_state::Column::PolicyVersion).add(1),
        )
        .col_expr(authz_state::Column::UpdatedAt, Expr::value(Utc::now()))
        .exec(txn)
        .await?;
    Ok(true)
}

pub async fn version<C: ConnectionTrait>(db: &C) -> AppResult<i64> {
    Ok(authz_state::Entity::find_by_id(1)
        .one(db)
        .await?
        .map(|s| s.policy_version)
        .unwrap_or(0))
}
