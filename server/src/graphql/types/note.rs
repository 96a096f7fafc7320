use accord_entities::note;
use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::User;
use crate::graphql::ids::{NodeKind, encode};
use crate::graphql::loaders;
use crate::graphql::loaders::{FirstPerParent, one};
use crate::services::pagination::first_or_default;

pub struct Note(pub note::Model);

#[Object]
impl Note {
    pub async fn id(&self) -> ID {
        encode(NodeKind::Note, self.0.id)
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(one(&loaders(ctx)?.users, self.0.author_id)
            .await?
            .map(User::from))
    }
}

/// The newest `first` notes of one record, batched across the response.
pub(crate) async fn notes_of(
    loader: &DataLoader<FirstPerParent<note::Entity>, HashMapCache>,
    parent: i64,
    first: Option<i32>,
) -> async_graphql::Result<Vec<Note>> {
    let limit = first_or_default(first)?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut rows = one(loader, (parent, limit)).await?.unwrap_or_default();
    rows.truncate(limit as usize);
    Ok(rows.into_iter().map(Note).collect())
}
