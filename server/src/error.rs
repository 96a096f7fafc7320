//! One error type for the whole server. Each variant knows its client-facing code;
//! internal details are logged here and never sent.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input rejected; `field` names the input path the client should fix.
    #[error("{message}")]
    Validation { field: String, message: String },
    /// Missing, or not visible to the caller (the two are indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Stale version or a state that forbids the change.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("authentication required")]
    Unauthenticated,
    /// A stage script's entry guard refused the move; the message is the script's.
    #[error("{stage} refuses this deal: {message}")]
    GuardDenied { stage: String, message: String },
    /// A stage script failed (an error in it, or a sandbox limit) while deciding a move;
    /// the move is refused rather than made unchecked.
    #[error("the {stage} stage script failed: {message}")]
    ScriptFailed { stage: String, message: String },
    /// Anything the client cannot act on. The payload is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "VALIDATION",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Conflict(_) => "CONFLICT",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::GuardDenied { .. } => "GUARD_DENIED",
            AppError::ScriptFailed { .. } => "SCRIPT_FAILED",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    pub fn stale_version(entity: &str) -> Self {
        AppError::Conflict(format!(
            "{entity} was changed by someone else; reload it and apply your change to the current version"
        ))
    }
}

/// Unique constraints the client can trip over, mapped to the input field at fault.
/// SQLite names the columns ("UNIQUE constraint failed: users.email"), PostgreSQL the
/// constraint ("users_email_key"), so each entry lists both spellings.
const UNIQUE_FIELDS: &[(&[&str], &str, &str)] = &[
    (
        &["users.email", "users_email_key"],
        "email",
        "a user with this email already exists",
    ),
    (
        &["pipelines.name", "pipelines_name_key"],
        "name",
        "a pipeline with this name already exists",
    ),
    (
        &["stages.pipeline_id, stages.name", "ux_stages_pipeline_name"],
        "stages",
        "stage names must be unique within a pipeline",
    ),
    (
        &[
            "opportunity_contact_roles.opportunity_id",
            "ux_ocr_opportunity_contact_role",
        ],
        "role",
        "this contact already has this role on the opportunity",
    ),
    (
        &[
            "contact_influences.from_contact_id",
            "ux_contact_influences_edge",
        ],
        "kind",
        "this edge already exists; update its strength or note instead",
    ),
];

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
            for (needles, field, message) in UNIQUE_FIELDS {
                if needles.iter().any(|n| detail.contains(n)) {
                    return AppError::validation(*field, *message);
                }
            }
            tracing::warn!(%detail, "unmapped unique constraint violation");
            return AppError::Conflict("a record with these values already exists".into());
        }
        AppError::Internal(err.into())
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(inner) = &err {
            tracing::error!(error = ?inner, "internal error");
        }
        let code = err.code();
        let field = match &err {
            AppError::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        let script_message = match &err {
            AppError::GuardDenied { message, .. } | AppError::ScriptFailed { message, .. } => {
                Some(message.clone())
            }
            _ => None,
        };
        async_graphql::Error::new(err.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = &field {
                ext.set("field", field.as_str());
            }
            if let Some(message) = &script_message {
                ext.set("scriptMessage", message.as_str());
            }
        })
    }
}
