//! Notes: attach to any account, contact, lead or opportunity by its global ID.

use async_graphql::{Context, ID, Object, SimpleObject};

use crate::error::AppError;
use crate::graphql::accounts::DeletePayload;
use crate::graphql::ids::{NodeKind, decode, decode_any};
use crate::graphql::types::Note;
use crate::graphql::{actor, services};
use crate::services::notes::{self, NoteSubject};

#[derive(SimpleObject)]
pub struct NotePayload {
    pub note: Note,
}

#[derive(Default)]
pub struct NoteMutation;

#[Object]
impl NoteMutation {
    /// `subjectId` is the ID of an Account, Contact, Lead or Opportunity.
    async fn add_note(
        &self,
        ctx: &Context<'_>,
        subject_id: ID,
        body: String,
    ) -> async_graphql::Result<NotePayload> {
        let subject = match decode_any("subjectId", &subject_id)? {
            (NodeKind::Account, id) => NoteSubject::Account(id),
            (NodeKind::Contact, id) => NoteSubject::Contact(id),
            (NodeKind::Lead, id) => NoteSubject::Lead(id),
            (NodeKind::Opportunity, id) => NoteSubject::Opportunity(id),
            _ => {
                return Err(AppError::validation(
                    "subjectId",
                    "notes attach to an Account, Contact, Lead or Opportunity",
                )
                .into());
            }
        };
        let note = notes::create(services(ctx), actor(ctx)?, subject, &body).await?;
        Ok(NotePayload { note: Note(note) })
    }

    /// Authors delete their own notes; admins any.
    async fn delete_note(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::Note)?;
        notes::delete(services(ctx), actor(ctx)?, raw).await?;
        Ok(DeletePayload { deleted_id: id })
    }
}
