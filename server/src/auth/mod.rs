//! Identity: who is calling. Password hashing, bearer tokens, and the [`Actor`] that each
//! request carries into the services.

mod cache;
mod password;
pub(crate) mod token;

use accord_entities::{auth_token, user};
use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

pub use cache::TokenCache;
pub use password::{hash_password, verify_password};
pub use token::{TOKEN_PREFIX, generate_token, hash_token};

use crate::error::{AppError, AppResult};

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub role: user::Role,
    /// The token this request authenticated with, so `logout` can revoke it.
    pub token_id: i64,
}

/// Resolves an `Authorization: Bearer <token>` header value into an actor.
/// A token that is unknown, revoked, expired, or whose user is deactivated yields
/// `Unauthenticated`; the reason is deliberately not told apart for the client.
pub async fn authenticate(
    db: &DatabaseConnection,
    cache: &TokenCache,
    bearer: &str,
) -> AppResult<Actor> {
    if !bearer.starts_with(TOKEN_PREFIX) || bearer.len() > 128 {
        return Err(AppError::Unauthenticated);
    }
    let digest = hash_token(bearer);
    if let Some(actor) = cache.get(&digest) {
        return Ok(actor);
    }
    let found = auth_token::Entity::find()
        .filter(auth_token::Column::TokenHash.eq(digest.clone()))
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    let Some((token, Some(user))) = found else {
        return Err(AppError::Unauthenticated);
    };
    let now = Utc::now();
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now) || !user.active {
        return Err(AppError::Unauthenticated);
    }
    let actor = Actor {
        user_id: user.id,
        role: user.role,
        token_id: token.id,
    };
    cache.put(digest, actor.clone(), token.expires_at);
    Ok(actor)
}
