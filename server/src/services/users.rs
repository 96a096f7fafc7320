//! Users, password login, session and API tokens.

use accord_entities::auth_token::{self, TokenKind};
use accord_entities::user::{self, Role};
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryOrder,
    Set,
};

use crate::auth::{Actor, generate_token, hash_password, verify_password};
use crate::authz::{Action, Resource};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::services::Services;
use crate::services::audit;
use crate::services::pagination::{Page, PageArgs, SortKey, SortOrder, paginate, text_search};
use crate::services::validate::{NAME_MAX, optional_text, required_email, required_text};

pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 256;

/// A freshly issued token: the secret is returned exactly once.
pub struct IssuedToken {
    pub secret: String,
    pub token: auth_token::Model,
}

pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password: Option<String>,
}

fn check_password(password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(AppError::validation(
            "password",
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if len > PASSWORD_MAX {
        return Err(AppError::validation(
            "password",
            format!("must be at most {PASSWORD_MAX} characters"),
        ));
    }
    Ok(())
}

/// Creates a user. `actor` is `None` only for the operator's CLI (`accord user add`).
pub async fn create_user(
    svc: &Services,
    actor: Option<&Actor>,
    input: NewUser,
) -> AppResult<user::Model> {
    if let Some(actor) = actor {
        svc.authz
            .require(actor, Resource::User, Action::Write)
            .await?;
    }
    let email = required_email("email", &input.email)?;
    let display_name = required_text("displayName", &input.display_name, NAME_MAX)?;
    let password_hash = match input.password {
        Some(p) => {
            check_password(&p)?;
            Some(svc.password_work(move || hash_password(&p)).await??)
        }
        None => None,
    };
    let now = Utc::now();
    let txn = begin_write(&svc.db).await?;
    let created = user::ActiveModel {
        id: NotSet,
        email: Set(email),
        display_name: Set(display_name),
        role: Set(input.role),
        password_hash: Set(password_hash),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        "create",
        "User",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

async fn issue_token<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    kind: TokenKind,
    name: String,
    expires_at: Option<chrono::DateTime<Utc>>,
) -> AppResult<IssuedToken> {
    let (secret, digest) = generate_token();
    let token = auth_token::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        kind: Set(kind),
        name: Set(name),
        token_hash: Set(digest),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(IssuedToken { secret, token })
}

/// A well-formed hash of a random password: verifying against it costs the same as a real
/// check, so an unknown email and a wrong password take equally long.
const TIMING_DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5J6dRgs0o5V0mqSTfMmFTs9Qn1T1mTHLcNhX4R3O8wU";

pub async fn login(
    svc: &Services,
    email: &str,
    password: &str,
    session_hours: i64,
) -> AppResult<(IssuedToken, user::Model)> {
    let invalid = || AppError::Unauthenticated;
    if email.len() > 254 || password.chars().count() > PASSWORD_MAX {
        return Err(invalid());
    }
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(&svc.db)
        .await?;
    let stored = found
        .as_ref()
        .filter(|u| u.active)
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| TIMING_DUMMY_HASH.to_owned());
    let candidate = password.to_owned();
    let matches = svc
        .password_work(move || verify_password(&candidate, &stored))
        .await?;
    let user = match found {
        Some(u) if matches && u.active && u.password_hash.is_some() => u,
        _ => return Err(invalid()),
    };
    let expires = Utc::now() + Duration::hours(session_hours);
    let issued = issue_token(
        &svc.db,
        user.id,
        TokenKind::Session,
        "login".into(),
        Some(expires),
    )
    .await?;
    Ok((issued, user))
}

/// Revokes the token the actor is using right now.
pub async fn logout(svc: &Services, actor: &Actor) -> AppResult<()> {
    revoke(svc, actor, actor.token_id).await
}

pub async fn create_api_token(
    svc: &Services,
    actor: &Actor,
    name: &str,
    expires_in_days: Option<i32>,
) -> AppResult<IssuedToken> {
    svc.authz
        .require(actor, Resource::Token, Action::ManageOwn)
        .await?;
    let name = required_text("name", name, NAME_MAX)?;
    let expires_at = match expires_in_days {
        None => None,
        Some(d) if (1..=3650).contains(&d) => Some(Utc::now() + Duration::days(i64::from(d))),
        Some(_) => {
            return Err(AppError::validation(
                "expiresInDays",
                "must be between 1 and 3650",
            ));
        }
    };
    let txn = begin_write(&svc.db).await?;
    let issued = issue_token(&txn, actor.user_id, TokenKind::Api, name, expires_at).await?;
    audit::record(
        &txn,
        Some(actor),
        "create",
        "ApiToken",
        issued.token.id,
        None,
        Some(&issued.token),
    )
    .await?;
    txn.commit().await?;
    Ok(issued)
}

/// Revokes one of the actor's own tokens (admins: anyone's). Another user's token
/// answers NOT_FOUND, as a missing one does.
pub async fn revoke(svc: &Services, actor: &Actor, token_id: i64) -> AppResult<()> {
    let txn = begin_write(&svc.db).await?;
    let token = auth_token::Entity::find_by_id(token_id)
        .one(&txn)
        .await?
        .filter(|t| t.user_id == actor.user_id || actor.role == Role::Admin)
        .ok_or(AppError::NotFound("token"))?;
    svc.tokens.forget_token(token_id);
    if token.revoked_at.is_some() {
        return Ok(());
    }
    let mut active: auth_token::ActiveModel = token.clone().into();
    active.revoked_at = Set(Some(Utc::now()));
    let after = active.update(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "revoke",
        "ApiToken",
        token_id,
        Some(&token),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    // Again after commit: a request that read the token before the commit may have
    // cached it meanwhile.
    svc.tokens.forget_token(token_id);
    Ok(())
}

/// The actor's own API tokens (never their secrets), newest first.
pub async fn list_api_tokens(svc: &Services, actor: &Actor) -> AppResult<Vec<auth_token::Model>> {
    Ok(auth_token::Entity::find()
        .filter(auth_token::Column::UserId.eq(actor.user_id))
        .filter(auth_token::Column::Kind.eq(TokenKind::Api))
        .order_by_desc(auth_token::Column::Id)
        .all(&svc.db)
        .await?)
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<user::Model> {
    svc.authz
        .require(actor, Resource::User, Action::Read)
        .await?;
    user::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub search: Option<String>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserSort {
    #[default]
    DisplayName,
    Email,
    CreatedAt,
}

pub fn sort_order(sort: UserSort, descending: bool) -> SortOrder<user::Entity> {
    match sort {
        UserSort::DisplayName => SortOrder {
            column: user::Column::DisplayName,
            descending,
            key: |m| SortKey::Text(m.display_name.clone()),
        },
        UserSort::Email => SortOrder {
            column: user::Column::Email,
            descending,
            key: |m| SortKey::Text(m.email.clone()),
        },
        UserSort::CreatedAt => SortOrder {
            column: user::Column::CreatedAt,
            descending,
            key: |m| SortKey::Time(m.created_at),
        },
    }
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    filter: UserFilter,
    order: SortOrder<user::Entity>,
    args: &PageArgs,
    want_total: bool,
) -> AppResult<Page<user::Model>> {
    svc.authz
        .require(actor, Resource::User, Action::Read)
        .await?;
    let mut query = user::Entity::find();
    if let Some(role) = filter.role {
        query = query.filter(user::Column::Role.eq(role));
    }
    if let Some(active) = filter.active {
        query = query.filter(user::Column::Active.eq(active));
    }
    if let Some(search) = optional_text("filter.search", filter.search.as_deref(), NAME_MAX)? {
        query = query.filter(text_search(
            &[user::Column::DisplayName, user::Column::Email],
            &search,
        ));
    }
    paginate(&svc.db, query, user::Column::Id, &order, args, want_total).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_dummy_hash_is_well_formed() {
        // If this ever stops parsing, unknown emails would answer faster than wrong passwords.
        assert!(argon2::password_hash::PasswordHash::new(TIMING_DUMMY_HASH).is_ok());
        assert!(!verify_password("anything", TIMING_DUMMY_HASH));
    }
}
