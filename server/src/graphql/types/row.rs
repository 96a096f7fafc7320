//! A record as a list read it: whole, or brief (only the columns the list's selection
//! asked for, see `services::rows`). A brief record answers its brief fields at once;
//! any other field loads the whole record once, through the request's loader, so a
//! selection the list did not foresee still gets correct data, at the cost of one
//! statement.

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use tokio::sync::OnceCell;

use accord_entities::{account, contact, opportunity, stage, user};
use async_graphql::parser::types::Field;
use async_graphql::{ContextSelectionSet, Value};

use super::at_hand::Immediate;
use super::{Account, Contact, Stage, User};
use crate::error::AppError;
use crate::graphql::loaders::{LoadError, one};
use crate::services::rows::{
    AccountBrief, ContactBrief, Joined, OpportunityBrief, StageBrief, UserBrief,
};

/// The whole model is boxed: a resolver that returns one of these holds it across the
/// await of its resolution, and async-graphql sizes every field future of the parent
/// type by its largest resolver; inline, an account's 300 bytes went into each of them.
pub enum Row<M, B> {
    Full(Box<M>),
    Brief { brief: B, whole: OnceCell<Box<M>> },
}

impl<M, B> Row<M, B> {
    pub fn full(model: M) -> Self {
        Row::Full(Box::new(model))
    }

    pub fn brief(brief: B) -> Self {
        Row::Brief {
            brief,
            whole: OnceCell::new(),
        }
    }
}

impl<M: Keyed, B: Keyed> Row<M, B> {
    /// The record's primary key, which both forms carry.
    pub fn key(&self) -> i64 {
        match self {
            Row::Full(model) => model.key(),
            Row::Brief { brief, .. } => brief.key(),
        }
    }

    /// The whole record: at hand, or loaded through `loader` the first time it is asked
    /// for; gone meanwhile (deleted, or moved out of sight) answers NOT_FOUND `what`.
    pub async fn whole<L>(
        &self,
        loader: &DataLoader<L, HashMapCache>,
        what: &'static str,
    ) -> async_graphql::Result<&M>
    where
        L: Loader<i64, Value = M, Error = LoadError>,
        M: Clone + Send + Sync + 'static,
    {
        match self {
            Row::Full(model) => Ok(&**model),
            Row::Brief { whole, .. } => {
                let id = self.key();
                whole
                    .get_or_try_init(|| async move {
                        one(loader, id)
                            .await?
                            .map(Box::new)
                            .ok_or_else(|| AppError::NotFound(what).into())
                    })
                    .await
                    .map(|model| &**model)
            }
        }
    }
}

/// Records known by an `i64` primary key, whole or brief.
pub trait Keyed {
    fn key(&self) -> i64;
}

macro_rules! keyed {
    ($($t:ty),*) => {
        $(impl Keyed for $t {
            fn key(&self) -> i64 {
                self.id
            }
        })*
    };
}
keyed!(
    account::Model,
    AccountBrief,
    user::Model,
    UserBrief,
    contact::Model,
    ContactBrief,
    stage::Model,
    StageBrief,
    opportunity::Model,
    OpportunityBrief
);

impl<M, B> From<Joined<M, B>> for Row<M, B> {
    fn from(joined: Joined<M, B>) -> Self {
        match joined {
            Joined::Full(model) => Row::full(model),
            Joined::Brief(brief) => Row::brief(brief),
        }
    }
}

/// A record read brief answers directly what its brief form can ([`Immediate`]); one
/// read whole is left to its resolvers, which the selection may take further.
macro_rules! immediate_when_brief {
    ($($record:ty => $brief:ty),* $(,)?) => {
        $(impl Immediate for $record {
            const TYPE_NAME: &'static str = <$brief as Immediate>::TYPE_NAME;

            fn immediate(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
                match &self.0 {
                    Row::Brief { brief, .. } => brief.immediate(ctx, field),
                    Row::Full(_) => None,
                }
            }
        })*
    };
}
immediate_when_brief!(
    Account => AccountBrief,
    User => UserBrief,
    Stage => StageBrief,
    Contact => ContactBrief,
);
