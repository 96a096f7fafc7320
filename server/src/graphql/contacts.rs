//! Contacts: queries and mutations.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};

use crate::graphql::accounts::{DeletePayload, id_patch};
use crate::graphql::ids::{NodeKind, decode, decode_opt};
use crate::graphql::types::preload;
use crate::graphql::types::{Conn, Contact, OrderDirection, connection};
use crate::graphql::{actor, loaders, services, wants_total};
use crate::services::contacts::{
    self, ContactChanges, ContactFilter as Filter, ContactSort, NewContact,
};
use crate::services::pagination::PageArgs;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum ContactOrderField {
    #[default]
    LastName,
    CreatedAt,
}

#[derive(InputObject, Default)]
pub struct ContactOrder {
    #[graphql(default)]
    pub field: ContactOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(InputObject, Default)]
pub struct ContactFilter {
    pub account_id: Option<ID>,
    pub reports_to_id: Option<ID>,
    /// Case-insensitive substring of first name, last name or email.
    pub search: Option<String>,
}

#[derive(InputObject)]
pub struct CreateContactInput {
    pub account_id: ID,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub reports_to_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateContactInput {
    pub id: ID,
    pub version: i32,
    pub account_id: Option<ID>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: MaybeUndefined<String>,
    pub department: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    /// A manager that would close a reporting cycle is refused.
    pub reports_to_id: MaybeUndefined<ID>,
}

#[derive(SimpleObject)]
pub struct ContactPayload {
    pub contact: Contact,
}

#[derive(Default)]
pub struct ContactQuery;

#[Object]
impl ContactQuery {
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Contact> {
        let id = decode("id", &id, NodeKind::Contact)?;
        Ok(Contact::from(
            contacts::get(services(ctx), actor(ctx)?, id).await?,
        ))
    }

    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(0, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilter>,
        order_by: Option<ContactOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Conn<Contact>> {
        let f = filter.unwrap_or_default();
        let filter = Filter {
            account_id: decode_opt("filter.accountId", f.account_id.as_ref(), NodeKind::Account)?,
            reports_to_id: decode_opt(
                "filter.reportsToId",
                f.reports_to_id.as_ref(),
                NodeKind::Contact,
            )?,
            search: f.search,
        };
        let o = order_by.unwrap_or_default();
        let sort = match o.field {
            ContactOrderField::LastName => ContactSort::LastName,
            ContactOrderField::CreatedAt => ContactSort::CreatedAt,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let order = contacts::sort_order(sort, o.direction.descending());
        let page = contacts::list(
            services(ctx),
            actor(ctx)?,
            filter,
            order,
            &args,
            wants_total(ctx),
        )
        .await?;
        let models: Vec<_> = page.items.iter().map(|(_, m)| m).collect();
        preload::contacts(
            loaders(ctx)?,
            &ctx.look_ahead().field("edges").field("node"),
            &models,
        )
        .await?;
        Ok(connection(page, Contact::from))
    }
}

#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> async_graphql::Result<ContactPayload> {
        let new = NewContact {
            account_id: decode("accountId", &input.account_id, NodeKind::Account)?,
            first_name: input.first_name,
            last_name: input.last_name,
            title: input.title,
            department: input.department,
            email: input.email,
            phone: input.phone,
            reports_to_id: decode_opt(
                "reportsToId",
                input.reports_to_id.as_ref(),
                NodeKind::Contact,
            )?,
        };
        let contact = contacts::create(services(ctx), actor(ctx)?, new).await?;
        Ok(ContactPayload {
            contact: Contact::from(contact),
        })
    }

    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        input: UpdateContactInput,
    ) -> async_graphql::Result<ContactPayload> {
        let id = decode("id", &input.id, NodeKind::Contact)?;
        let changes = ContactChanges {
            account_id: decode_opt("accountId", input.account_id.as_ref(), NodeKind::Account)?,
            first_name: input.first_name,
            last_name: input.last_name,
            title: input.title.into(),
            department: input.department.into(),
            email: input.email.into(),
            phone: input.phone.into(),
            reports_to_id: id_patch("reportsToId", input.reports_to_id, NodeKind::Contact)?,
        };
        let contact =
            contacts::update(services(ctx), actor(ctx)?, id, input.version, changes).await?;
        Ok(ContactPayload {
            contact: Contact::from(contact),
        })
    }

    async fn delete_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> async_graphql::Result<DeletePayload> {
        let raw = decode("id", &id, NodeKind::Contact)?;
        contacts::delete(services(ctx), actor(ctx)?, raw, version).await?;
        Ok(DeletePayload { deleted_id: id })
    }
}
