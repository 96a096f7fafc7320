//! A record as a list read it: whole, or brief (only the columns the list's selection
//! asked for, see `services::rows`). A brief record answers its brief fields at once;
//! any other field loads the whole record once, through the request's loader, so a
//! selection the list did not foresee still gets correct data, at the cost of one
//! statement.

use std::future::Future;

use tokio::sync::OnceCell;

use crate::services::rows::Joined;

pub enum Row<M, B> {
    Full(M),
    Brief { brief: B, whole: OnceCell<M> },
}

impl<M, B> Row<M, B> {
    pub fn brief(brief: B) -> Self {
        Row::Brief {
            brief,
            whole: OnceCell::new(),
        }
    }

    /// The whole record: at hand, or loaded by `load` the first time it is asked for.
    pub async fn whole<F, Fut>(&self, load: F) -> async_graphql::Result<&M>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = async_graphql::Result<M>>,
    {
        match self {
            Row::Full(model) => Ok(model),
            Row::Brief { whole, .. } => whole.get_or_try_init(load).await,
        }
    }
}

impl<M, B> From<Joined<M, B>> for Row<M, B> {
    fn from(joined: Joined<M, B>) -> Self {
        match joined {
            Joined::Full(model) => Row::Full(model),
            Joined::Brief(brief) => Row::brief(brief),
        }
    }
}
