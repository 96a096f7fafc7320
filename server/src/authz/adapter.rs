//! A casbin [`Adapter`] over SeaORM 2 and the `casbin_rule` table. (The `sea-orm-adapter`
//! crate targets SeaORM 1.x.) The enforcer loads its policy through it; Accord's own
//! policy changes are written by [`super::policy::sync`] inside the transaction of the
//! change that implies them, so the adapter's write methods only serve casbin's
//! management API.

use accord_entities::casbin_rule;
use async_trait::async_trait;
use casbin::{Adapter, Filter, Model};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, NotSet, QueryFilter,
    QueryOrder, Set,
};

pub struct SeaOrmAdapter {
    db: DatabaseConnection,
}

impl SeaOrmAdapter {
    pub fn new(db: DatabaseConnection) -> Self {
        SeaOrmAdapter { db }
    }
}

fn adapter_error(e: sea_orm::DbErr) -> casbin::Error {
    casbin::Error::AdapterError(casbin::error::AdapterError(Box::new(e)))
}

/// The six value columns of a rule, padded with empty strings.
pub(crate) fn row(ptype: &str, rule: &[String]) -> casbin_rule::ActiveModel {
    let value = |i: usize| Set(rule.get(i).cloned().unwrap_or_default());
    casbin_rule::ActiveModel {
        id: NotSet,
        ptype: Set(ptype.to_owned()),
        v0: value(0),
        v1: value(1),
        v2: value(2),
        v3: value(3),
        v4: value(4),
        v5: value(5),
    }
}

/// A stored row as a rule of the length its ptype's definition expects.
fn rule_of(model: &casbin_rule::Model, width: usize) -> Vec<String> {
    [
        &model.v0, &model.v1, &model.v2, &model.v3, &model.v4, &model.v5,
    ]
    .into_iter()
    .take(width)
    .cloned()
    .collect()
}

fn width(m: &dyn Model, sec: &str, ptype: &str) -> Option<usize> {
    let tokens = m.get_model().get(sec)?.get(ptype)?;
    Some(if sec == "g" {
        tokens.value.matches('_').count()
    } else {
        tokens.tokens.len()
    })
}

fn section_of(ptype: &str) -> &'static str {
    if ptype.starts_with('g') { "g" } else { "p" }
}

fn matches(rule: &[String], columns: [casbin_rule::Column; 6]) -> Condition {
    columns
        .into_iter()
        .zip(rule.iter())
        .fold(Condition::all(), |c, (col, v)| c.add(col.eq(v.clone())))
}

const COLUMNS: [casbin_rule::Column; 6] = [
    casbin_rule::Column::V0,
    casbin_rule::Column::V1,
    casbin_rule::Column::V2,
    casbin_rule::Column::V3,
    casbin_rule::Column::V4,
    casbin_rule::Column::V5,
];

/// A read-only adapter over a rule set held in memory: previews load the policy a
/// proposed change would produce without storing it.
pub struct RulesAdapter {
    rules: Vec<super::policy::Rule>,
}

impl RulesAdapter {
    pub fn new(rules: impl IntoIterator<Item = super::policy::Rule>) -> Self {
        RulesAdapter {
            rules: rules.into_iter().collect(),
        }
    }
}

fn read_only() -> casbin::Error {
    casbin::Error::AdapterError(casbin::error::AdapterError(
        "the in-memory preview policy is read-only".into(),
    ))
}

#[async_trait]
impl Adapter for RulesAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        for (ptype, rule) in &self.rules {
            let sec = section_of(ptype);
            if let Some(w) = width(m, sec, ptype) {
                m.add_policy(sec, ptype, rule.iter().take(w).cloned().collect());
            }
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        _f: Filter<'a>,
    ) -> casbin::Result<()> {
        self.load_policy(m).await
    }

    async fn save_policy(&mut self, _m: &mut dyn Model) -> casbin::Result<()> {
        Err(read_only())
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        Err(read_only())
    }

    fn is_filtered(&self) -> bool {
        false
    }

    async fn add_policy(&mut self, _s: &str, _p: &str, _r: Vec<String>) -> casbin::Result<bool> {
        Err(read_only())
    }

    async fn add_policies(
        &mut self,
        _s: &str,
        _p: &str,
        _r: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        Err(read_only())
    }

    async fn remove_policy(&mut self, _s: &str, _p: &str, _r: Vec<String>) -> casbin::Result<bool> {
        Err(read_only())
    }

    async fn remove_policies(
        &mut self,
        _s: &str,
        _p: &str,
        _r: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        Err(read_only())
    }

    async fn remove_filtered_policy(
        &mut self,
        _s: &str,
        _p: &str,
        _i: usize,
        _v: Vec<String>,
    ) -> casbin::Result<bool> {
        Err(read_only())
    }
}

#[async_trait]
impl Adapter for SeaOrmAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let rows = casbin_rule::Entity::find()
            .order_by_asc(casbin_rule::Column::Id)
            .all(&self.db)
            .await
            .map_err(adapter_error)?;
        for r in rows {
            let sec = section_of(&r.ptype);
            if let Some(w) = width(m, sec, &r.ptype) {
                m.add_policy(sec, &r.ptype, rule_of(&r, w));
            } else {
                tracing::warn!(ptype = %r.ptype, "casbin_rule row of a ptype the model lacks; ignored");
            }
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        _f: Filter<'a>,
    ) -> casbin::Result<()> {
        // Accord always loads the whole policy: enforcement needs all of it.
        self.load_policy(m).await
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut rows = Vec::new();
        for sec in ["p", "g"] {
            if let Some(map) = m.get_model().get(sec) {
                for (ptype, ast) in map {
                    for rule in ast.get_policy() {
                        rows.push(row(ptype, rule));
                    }
                }
            }
        }
        let txn = sea_orm::TransactionTrait::begin(&self.db)
            .await
            .map_err(adapter_error)?;
        casbin_rule::Entity::delete_many()
            .exec(&txn)
            .await
            .map_err(adapter_error)?;
        for chunk in rows.chunks(500) {
            casbin_rule::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await
                .map_err(adapter_error)?;
        }
        txn.commit().await.map_err(adapter_error)?;
        Ok(())
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        casbin_rule::Entity::delete_many()
            .exec(&self.db)
            .await
            .map_err(adapter_error)?;
        Ok(())
    }

    fn is_filtered(&self) -> bool {
        false
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        row(ptype, &rule)
            .insert(&self.db)
            .await
            .map_err(adapter_error)?;
        Ok(true)
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        if rules.is_empty() {
            return Ok(true);
        }
        casbin_rule::Entity::insert_many(rules.iter().map(|r| row(ptype, r)))
            .exec(&self.db)
            .await
            .map_err(adapter_error)?;
        Ok(true)
    }

    async fn remove_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        let done = casbin_rule::Entity::delete_many()
            .filter(casbin_rule::Column::Ptype.eq(ptype))
            .filter(matches(&rule, COLUMNS))
            .exec(&self.db)
            .await
            .map_err(adapter_error)?;
        Ok(done.rows_affected > 0)
    }

    async fn remove_policies(
        &mut self,
        sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let mut any = false;
        for rule in rules {
            any |= self.remove_policy(sec, ptype, rule).await?;
        }
        Ok(any)
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        let mut cond = Condition::all().add(casbin_rule::Column::Ptype.eq(ptype));
        for (offset, value) in field_values.into_iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            if let Some(col) = COLUMNS.get(field_index + offset) {
                cond = cond.add(col.eq(value));
            }
        }
        let done = casbin_rule::Entity::delete_many()
            .filter(cond)
            .exec(&self.db)
            .await
            .map_err(adapter_error)?;
        Ok(done.rows_affected > 0)
    }
}
