//! Identity: login, logout, me, API tokens, and user administration.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use crate::graphql::ids::{NodeKind, decode};
use crate::graphql::types::{ApiToken, Conn, OrderDirection, Role, User, connection};
use crate::graphql::{actor, services, wants_total};
use crate::services::pagination::PageArgs;
use crate::services::users::{self, NewUser, UserFilter as ServiceFilter, UserSort};

#[derive(SimpleObject)]
pub struct LoginPayload {
    /// Bearer token for the `Authorization` header. Shown once.
    pub token: String,
    pub user: User,
}

#[derive(SimpleObject)]
pub struct CreateApiTokenPayload {
    /// The token's secret. Shown once; store it now.
    pub secret: String,
    pub api_token: ApiToken,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// At least 10 characters. Omit for a user who only uses API tokens.
    pub password: Option<String>,
}

#[derive(InputObject, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub search: Option<String>,
    pub active: Option<bool>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum UserOrderField {
    #[default]
    DisplayName,
    Email,
    CreatedAt,
}

#[derive(InputObject, Default)]
pub struct UserOrder {
    #[graphql(default)]
    pub field: UserOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let actor = actor(ctx)?;
        Ok(User::from(
            users::get(services(ctx), actor, actor.user_id).await?,
        ))
    }

    /// The signed-in user's API tokens (never their secrets).
    async fn my_api_tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiToken>> {
        let rows = users::list_api_tokens(services(ctx), actor(ctx)?).await?;
        Ok(rows.into_iter().map(ApiToken).collect())
    }

    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        order_by: Option<UserOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<User>> {
        let f = filter.unwrap_or_default();
        let filter = ServiceFilter {
            role: f.role.map(Into::into),
            search: f.search,
            active: f.active,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let o = order_by.unwrap_or_default();
        let sort = match o.field {
            UserOrderField::DisplayName => UserSort::DisplayName,
            UserOrderField::Email => UserSort::Email,
            UserOrderField::CreatedAt => UserSort::CreatedAt,
        };
        let order = users::sort_order(sort, o.direction.descending());
        let page = users::list(
            services(ctx),
            actor(ctx)?,
            filter,
            order,
            &args,
            wants_total(ctx),
        )
        .await?;
        Ok(connection(page, User::from))
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Exchanges email and password for a session token. The only operation that needs no token.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<LoginPayload> {
        let hours = ctx.data_unchecked::<crate::config::Limits>().session_hours;
        let (issued, user) = users::login(services(ctx), &email, &password, hours).await?;
        Ok(LoginPayload {
            token: issued.secret,
            user: User::from(user),
        })
    }

    /// Revokes the token this request was made with.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        users::logout(services(ctx), actor(ctx)?).await?;
        Ok(true)
    }

    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        expires_in_days: Option<i32>,
    ) -> async_graphql::Result<CreateApiTokenPayload> {
        let issued =
            users::create_api_token(services(ctx), actor(ctx)?, &name, expires_in_days).await?;
        Ok(CreateApiTokenPayload {
            secret: issued.secret,
            api_token: ApiToken(issued.token),
        })
    }

    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let id = decode("id", &id, NodeKind::ApiToken)?;
        users::revoke(services(ctx), actor(ctx)?, id).await?;
        Ok(true)
    }

    /// Admins only.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<User> {
        let new = NewUser {
            email: input.email,
            display_name: input.display_name,
            role: input.role.into(),
            password: input.password,
        };
        Ok(User::from(
            users::create_user(services(ctx), Some(actor(ctx)?), new).await?,
        ))
    }
}
