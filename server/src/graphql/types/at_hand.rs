//! How a record's selected fields are resolved: one after another when all of them are
//! at hand, concurrently when some may wait on a loader.
//!
//! async-graphql resolves an object's fields concurrently: each selected field becomes
//! a task in a fresh `FuturesUnordered`, with its own reference-counted allocation,
//! waker registration and release. That pays off when fields wait on I/O, so that
//! their DataLoader batches overlap. A record a list read with its page (see
//! `ReadAlong`) waits on nothing: every field it is asked for completes on its first
//! poll, and the bookkeeping is pure overhead. On the nested opportunity list it was
//! about a tenth of the server's CPU, and resolving such records serially measured
//! 0.03x closer to the hand-written baseline on PostgreSQL (bench/RESULTS.md, session
//! 17).
//!
//! Serial resolution awaits fields in turn, so a record whose fields do wait on loaders
//! would wait for one batch after another. The choice is therefore made per record, by
//! whoever knows what it holds: [`AtHand::serial`] only where every field the
//! selection can reach is already read, [`AtHand::concurrent`] everywhere else.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{resolve_container, resolve_container_serial};
use async_graphql::{
    ContainerType, ContextSelectionSet, OutputType, Positioned, ServerResult, Value,
};

/// `T` in the schema (same name, same fields), resolved as [`AtHand::serial`] or
/// [`AtHand::concurrent`] said.
pub struct AtHand<T> {
    record: T,
    serial: bool,
}

impl<T> AtHand<T> {
    /// Every field the selection asks of `record` is at hand: resolve them in turn.
    pub fn serial(record: T) -> Self {
        AtHand {
            record,
            serial: true,
        }
    }

    /// Some fields of `record` may wait on loaders: resolve them concurrently, as
    /// async-graphql does by default.
    pub fn concurrent(record: T) -> Self {
        AtHand {
            record,
            serial: false,
        }
    }

    /// [`AtHand::serial`] if `at_hand`, else [`AtHand::concurrent`].
    pub fn new(record: T, at_hand: bool) -> Self {
        AtHand {
            record,
            serial: at_hand,
        }
    }
}

impl<T: ContainerType + OutputType> OutputType for AtHand<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.record.introspection_type_name()
    }

    /// `T`'s own registration: the schema knows one type, whichever wrapper the fields
    /// that return it use.
    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if self.serial {
            resolve_container_serial(ctx, &self.record).await
        } else {
            resolve_container(ctx, &self.record).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use parking_lot::Mutex;

    use super::AtHand;

    /// Two fields that each note when they start and end, yielding in between.
    struct Record(Arc<Mutex<Vec<&'static str>>>);

    #[Object]
    impl Record {
        async fn a(&self) -> i32 {
            self.0.lock().push("a starts");
            tokio::task::yield_now().await;
            self.0.lock().push("a ends");
            1
        }
        async fn b(&self) -> i32 {
            self.0.lock().push("b starts");
            tokio::task::yield_now().await;
            self.0.lock().push("b ends");
            2
        }
    }

    struct Query {
        serial: bool,
        log: Arc<Mutex<Vec<&'static str>>>,
    }

    #[Object]
    impl Query {
        async fn record(&self) -> AtHand<Record> {
            AtHand::new(Record(self.log.clone()), self.serial)
        }
    }

    /// Runs `{ record { b a __typename } }`, checks the answer (the same whichever
    /// way the fields are resolved) and returns the order the fields ran in, and the SDL.
    async fn run(serial: bool) -> (Vec<&'static str>, String) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let query = Query {
            serial,
            log: log.clone(),
        };
        let schema = Schema::new(query, EmptyMutation, EmptySubscription);
        let response = schema.execute("{ record { b a __typename } }").await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let data = serde_json::to_value(&response.data).expect("JSON");
        assert_eq!(
            data,
            serde_json::json!({ "record": { "b": 2, "a": 1, "__typename": "Record" } })
        );
        let log = log.lock().clone();
        (log, schema.sdl())
    }

    #[tokio::test]
    async fn serial_records_resolve_one_field_after_another() {
        let (log, _) = run(true).await;
        assert_eq!(log, ["b starts", "b ends", "a starts", "a ends"]);
    }

    #[tokio::test]
    async fn concurrent_records_start_every_field_before_any_ends() {
        let (log, _) = run(false).await;
        assert_eq!(log[..2], ["b starts", "a starts"]);
    }

    #[tokio::test]
    async fn the_schema_knows_only_the_wrapped_type() {
        let (_, sdl) = run(true).await;
        assert!(sdl.contains("type Record {"), "{sdl}");
        assert!(sdl.contains("record: Record!"), "{sdl}");
        assert!(!sdl.contains("AtHand"), "{sdl}");
    }
}
