//! Pipelines and stages: queries and mutations.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};

use crate::graphql::accounts::DeletePayload;
use crate::graphql::ids::{NodeKind, decode};
use crate::graphql::types::{Conn, OrderDirection, Pipeline, StageKind, connection};
use crate::graphql::{actor, services, wants_total};
use crate::services::pagination::PageArgs;
use crate::services::pipelines::{self, NewPipeline, NewStage, PipelineSort};

#[derive(InputObject)]
pub struct StageInput {
    pub name: String,
    /// Win probability in percent, 0-100.
    pub probability: i32,
    pub kind: StageKind,
}

#[derive(InputObject)]
pub struct CreatePipelineInput {
    pub name: String,
    pub description: Option<String>,
    /// In pipeline order; at least one OPEN stage.
    pub stages: Vec<StageInput>,
}

#[derive(InputObject)]
pub struct UpdatePipelineInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
}

#[derive(SimpleObject)]
pub struct PipelinePayload {
    pub pipeline: Pipeline,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum PipelineOrderField {
    #[default]
    Name,
    CreatedAt,
}

#[derive(InputObject, Default)]
pub struct PipelineOrder {
    #[graphql(default)]
    pub field: PipelineOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(Default)]
pub struct PipelineQuery;

#[Object]
impl PipelineQuery {
    async fn pipeline(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Pipeline> {
        let id = decode("id", &id, NodeKind::Pipeline)?;
        Ok(Pipeline(
            pipelines::get(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    /// By name.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    async fn pipelines(
        &self,
        ctx: &Context<'_>,
        order_by: Option<PipelineOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<Pipeline>> {
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let o = order_by.unwrap_or_default();
        let sort = match o.field {
            PipelineOrderField::Name => PipelineSort::Name,
            PipelineOrderField::CreatedAt => PipelineSort::CreatedAt,
        };
        let order = pipelines::sort_order(sort, o.direction.descending());
        let page =
            pipelines::list(services(ctx), actor(ctx)?, order, &args, wants_total(ctx)).await?;
        Ok(connection(page, Pipeline))
    }
}

#[derive(Default)]
pub struct PipelineMutation;

#[Object]
impl PipelineMutation {
    /// Sales managers and admins.
    async fn create_pipeline(
        &self,
        ctx: &Context<'_>,
        input: CreatePipelineInput,
    ) -> async_graphql::Result<PipelinePayload> {
        let new = NewPipeline {
            name: input.name,
            description: input.description,
            stages: input
                .stages
                .into_iter()
                .map(|s| NewStage {
                    name: s.name,
                    probability: s.probability,
                    kind: s.kind.into(),
                })
                .collect(),
        };
        let (pipeline, _) = pipelines::create(services(ctx), actor(ctx)?, new).await?;
        Ok(PipelinePayload {
            pipeline: Pipeline(pipeline),
        })
    }

    async fn update_pipeline(
        &self,
        ctx: &Context<'_>,
        input: UpdatePipelineInput,
    ) -> async_graphql::Result<PipelinePayload> {
        let id = decode("id", &input.id, NodeKind::Pipeline)?;
        let pipeline = pipelines::update(
            services(ctx),
            actor(ctx)?,
            id,
            input.version,
            input.name,
            input.description.into(),
        )
        .await?;
        Ok(PipelinePayload {
            pipeline: Pipeline(pipeline),
        })
    }

    /// Names the sales manager responsible for the pipeline's stage scripts; null lets
    /// any sales manager edit them. Admins only.
    async fn set_pipeline_manager(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        manager_id: Option<ID>,
    ) -> async_graphql::Result<PipelinePayload> {
        let id = decode("id", &id, NodeKind::Pipeline)?;
        let manager_id =
            crate::graphql::ids::decode_opt("managerId", manager_id.as_ref(), NodeKind::User)?;
        let pipeline =
            pipelines::set_manager(services(ctx), actor(ctx)?, id, version, manager_id).await?;
        Ok(PipelinePayload {
            pipeline: Pipeline(pipeline),
        })
    }

    /// Refused with CONFLICT while opportunities use the pipeline.
    async fn delete_pipeline(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::Pipeline)?;
        pipelines::delete(services(ctx), actor(ctx)?, raw, version).await?;
        Ok(DeletePayload { deleted_id: id })
    }
}
