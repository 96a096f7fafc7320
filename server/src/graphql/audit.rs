//! The audit log, newest first. Sales managers and admins.

use async_graphql::{Context, ID, InputObject, Object};

use crate::graphql::ids::{NodeKind, decode_any, decode_opt};
use crate::graphql::types::{AuditEntry, Conn, connection};
use crate::graphql::{actor, services, wants_total};
use crate::services::audit::{self, AuditFilter as Filter};
use crate::services::pagination::PageArgs;

#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// Entries about this record (any global ID).
    pub entity_id: Option<ID>,
    pub actor_id: Option<ID>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<AuditEntry>> {
        let f = filter.unwrap_or_default();
        let (entity_type, entity_id) = match &f.entity_id {
            Some(id) => {
                let (kind, raw) = decode_any("filter.entityId", id)?;
                (Some(kind.type_name().to_owned()), Some(raw))
            }
            None => (None, None),
        };
        let filter = Filter {
            entity_type,
            entity_id,
            actor_id: decode_opt("filter.actorId", f.actor_id.as_ref(), NodeKind::User)?,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page = audit::list(services(ctx), actor(ctx)?, filter, &args, wants_total(ctx)).await?;
        Ok(connection(page, AuditEntry))
    }
}
