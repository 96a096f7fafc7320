use accord_entities::{pipeline, stage};
use async_graphql::parser::types::Field;
use async_graphql::{Context, ContextSelectionSet, ID, Object, Value};
use chrono::{DateTime, Utc};

use super::at_hand::Immediate;
use super::{Row, StageKind, User};
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::one;
use crate::services::rows::StageBrief;

pub struct Pipeline(pub pipeline::Model);

#[Object]
impl Pipeline {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Pipeline, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The sales manager responsible for the stage scripts (null: any sales manager).
    async fn manager(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.manager_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx)?.users, id).await?.map(User::from))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Stages in pipeline order.
    async fn stages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Stage>> {
        let rows = one(&loaders(ctx)?.stages_by_pipeline, self.0.id).await?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Stage::from)
            .collect())
    }
}

pub struct Stage(pub Row<stage::Model, StageBrief>);

impl From<stage::Model> for Stage {
    fn from(model: stage::Model) -> Self {
        Stage(Row::full(model))
    }
}

impl Stage {
    /// The fields a brief stage answers without loading the whole row.
    pub const BRIEF_FIELDS: &'static [&'static str] = &["id", "name"];

    /// The whole stage (see [`Row`]).
    async fn model(&self, ctx: &Context<'_>) -> async_graphql::Result<&stage::Model> {
        self.0.whole(&loaders(ctx)?.stages, "stage").await
    }
}

impl Immediate for StageBrief {
    const TYPE_NAME: &'static str = "Stage";

    fn immediate(&self, _: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "id" => Value::String(encode(NodeKind::Stage, self.id).0),
            "name" => Value::String(self.name.clone()),
            _ => return None,
        })
    }
}

#[Object]
impl Stage {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Stage, self.0.key())
    }
    async fn name(&self) -> &str {
        match &self.0 {
            Row::Full(m) => &m.name,
            Row::Brief { brief, .. } => &brief.name,
        }
    }
    /// 0-based order within the pipeline.
    async fn position(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(self.model(ctx).await?.position)
    }
    /// Win probability in percent.
    async fn probability(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(self.model(ctx).await?.probability)
    }
    async fn kind(&self, ctx: &Context<'_>) -> async_graphql::Result<StageKind> {
        Ok(self.model(ctx).await?.kind.into())
    }
    async fn pipeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Pipeline>> {
        let pipeline_id = self.model(ctx).await?.pipeline_id;
        Ok(one(&loaders(ctx)?.pipelines, pipeline_id)
            .await?
            .map(Pipeline))
    }
}
