//! Accounts: queries and mutations.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use rust_decimal::Decimal;

use crate::graphql::ids::{NodeKind, decode, decode_opt};
use crate::graphql::types::preload;
use crate::graphql::types::{Account, AccountSize, Conn, OrderDirection, connection};
use crate::graphql::{actor, loaders, services, wants_total};
use crate::services::accounts::{
    self, AccountChanges, AccountFilter as Filter, AccountSort, NewAccount,
};
use crate::services::pagination::PageArgs;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum AccountOrderField {
    #[default]
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(InputObject, Default)]
pub struct AccountOrder {
    #[graphql(default)]
    pub field: AccountOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(InputObject, Default)]
pub struct AccountFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub industry: Option<String>,
    pub country: Option<String>,
    pub size: Option<AccountSize>,
    pub parent_id: Option<ID>,
    pub owner_id: Option<ID>,
    pub territory_id: Option<ID>,
}

#[derive(InputObject)]
pub struct CreateAccountInput {
    pub name: String,
    pub industry: Option<String>,
    /// ISO 3166-1 alpha-2
    pub country: Option<String>,
    pub region: Option<String>,
    pub size: Option<AccountSize>,
    pub annual_revenue: Option<Decimal>,
    /// ISO 4217; defaults to USD.
    pub currency: Option<String>,
    pub website: Option<String>,
    pub parent_id: Option<ID>,
    pub owner_id: Option<ID>,
    /// Places the account by hand (assignment rules then leave it alone). Without it
    /// the rules place it; it must land in a territory you can edit.
    pub territory_id: Option<ID>,
}

/// Omitted fields stay as they are; `null` clears a nullable field.
#[derive(InputObject)]
pub struct UpdateAccountInput {
    pub id: ID,
    /// The version you read; a stale one answers CONFLICT and changes nothing.
    pub version: i32,
    pub name: Option<String>,
    pub industry: MaybeUndefined<String>,
    pub country: MaybeUndefined<String>,
    pub region: MaybeUndefined<String>,
    pub size: MaybeUndefined<AccountSize>,
    pub annual_revenue: MaybeUndefined<Decimal>,
    pub currency: Option<String>,
    pub website: MaybeUndefined<String>,
    pub parent_id: MaybeUndefined<ID>,
    pub owner_id: MaybeUndefined<ID>,
    /// Moves the account by hand (takes owner access to its current territory and
    /// edit access to the new one); `null` hands it back to the assignment rules.
    pub territory_id: MaybeUndefined<ID>,
}

#[derive(SimpleObject)]
pub struct AccountPayload {
    pub account: Account,
}

#[derive(SimpleObject)]
pub struct DeletePayload {
    pub deleted_id: ID,
}

/// Decodes an optional-and-nullable ID patch.
pub(crate) fn id_patch(
    field: &str,
    value: MaybeUndefined<ID>,
    kind: NodeKind,
) -> async_graphql::Result<Option<Option<i64>>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(id) => Some(Some(decode(field, &id, kind)?)),
    })
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    async fn account(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Account> {
        let id = decode("id", &id, NodeKind::Account)?;
        Ok(Account::from(
            accounts::get(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AccountFilter>,
        order_by: Option<AccountOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<Account>> {
        let f = filter.unwrap_or_default();
        let filter = Filter {
            search: f.search,
            industry: f.industry,
            country: f.country,
            size: f.size.map(Into::into),
            parent_id: decode_opt("filter.parentId", f.parent_id.as_ref(), NodeKind::Account)?,
            owner_id: decode_opt("filter.ownerId", f.owner_id.as_ref(), NodeKind::User)?,
            territory_id: decode_opt(
                "filter.territoryId",
                f.territory_id.as_ref(),
                NodeKind::Territory,
            )?,
        };
        let o = order_by.unwrap_or_default();
        let sort = match o.field {
            AccountOrderField::Name => AccountSort::Name,
            AccountOrderField::CreatedAt => AccountSort::CreatedAt,
            AccountOrderField::UpdatedAt => AccountSort::UpdatedAt,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let order = accounts::sort_order(sort, o.direction.descending());
        let page = accounts::list(
            services(ctx),
            actor(ctx)?,
            filter,
            order,
            &args,
            wants_total(ctx),
        )
        .await?;
        let models: Vec<_> = page.items.iter().map(|(_, m)| m).collect();
        preload::accounts(
            loaders(ctx)?,
            &ctx.look_ahead().field("edges").field("node"),
            &models,
        )
        .await?;
        Ok(connection(page, Account::from))
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    async fn create_account(
        &self,
        ctx: &Context<'_>,
        input: CreateAccountInput,
    ) -> async_graphql::Result<AccountPayload> {
        let new = NewAccount {
            name: input.name,
            industry: input.industry,
            country: input.country,
            region: input.region,
            size: input.size.map(Into::into),
            annual_revenue: input.annual_revenue,
            currency: input.currency,
            website: input.website,
            parent_id: decode_opt("parentId", input.parent_id.as_ref(), NodeKind::Account)?,
            territory_id: decode_opt(
                "territoryId",
                input.territory_id.as_ref(),
                NodeKind::Territory,
            )?,
            owner_id: decode_opt("ownerId", input.owner_id.as_ref(), NodeKind::User)?,
        };
        let account = accounts::create(services(ctx), actor(ctx)?, new).await?;
        Ok(AccountPayload {
            account: Account::from(account),
        })
    }

    async fn update_account(
        &self,
        ctx: &Context<'_>,
        input: UpdateAccountInput,
    ) -> async_graphql::Result<AccountPayload> {
        let id = decode("id", &input.id, NodeKind::Account)?;
        let changes = AccountChanges {
            name: input.name,
            industry: input.industry.into(),
            country: input.country.into(),
            region: input.region.into(),
            size: Option::<Option<AccountSize>>::from(input.size).map(|s| s.map(Into::into)),
            annual_revenue: input.annual_revenue.into(),
            currency: input.currency,
            website: input.website.into(),
            parent_id: id_patch("parentId", input.parent_id, NodeKind::Account)?,
            territory_id: id_patch("territoryId", input.territory_id, NodeKind::Territory)?,
            owner_id: id_patch("ownerId", input.owner_id, NodeKind::User)?,
        };
        let account =
            accounts::update(services(ctx), actor(ctx)?, id, input.version, changes).await?;
        Ok(AccountPayload {
            account: Account::from(account),
        })
    }

    /// Refused with CONFLICT while contacts, opportunities or child accounts hang on it.
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::Account)?;
        accounts::delete(services(ctx), actor(ctx)?, raw, version).await?;
        Ok(DeletePayload { deleted_id: id })
    }
}
