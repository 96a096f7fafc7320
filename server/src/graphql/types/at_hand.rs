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
//!
//! A serial record goes one step further when it can: it answers its selection
//! directly ([`Immediate`]), building the response's values without a future, a
//! context or a type lookup per field. On the nested list that machinery was about
//! two fifths of the server's CPU per request (bench/RESULTS.md, session 17). Anything
//! the direct answer does not cover (a named fragment, an argument, a directive other
//! than `@skip`/`@include`, which async-graphql applies before execution, a field it
//! does not know, a response key asked twice) falls back to async-graphql's own serial
//! resolution of the whole record, which is always correct.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{resolve_container, resolve_container_serial};
use async_graphql::{
    ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value,
};

use crate::metrics::Metrics;

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

/// A record that can answer some of its fields straight from what it holds.
///
/// Each answer must be exactly what the type's resolver gives for that field (the e2e
/// test `immediate_answers_match_resolved_ones` compares the two on the nested list);
/// a field that needs a loader, an argument or a fallible step is not answered here.
pub trait Immediate {
    /// The GraphQL type's name, for `__typename` and inline fragments.
    const TYPE_NAME: &'static str;

    /// `field`'s value, or `None` to leave the record to async-graphql's resolution.
    fn immediate(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value>;
}

/// `record`'s answer to `selection`, or `None` if some part of it is not [`Immediate`].
pub fn answer<T: Immediate + ?Sized>(
    record: &T,
    ctx: &ContextSelectionSet<'_>,
    selection: &SelectionSet,
) -> Option<Value> {
    let mut fields = IndexMap::with_capacity(selection.items.len());
    gather(record, ctx, selection, &mut fields)?;
    // Nothing left once `@skip`/`@include` were applied: async-graphql answers such an
    // object with null, and so does the fallback.
    if fields.is_empty() {
        return None;
    }
    Some(Value::Object(fields))
}

fn gather<T: Immediate + ?Sized>(
    record: &T,
    ctx: &ContextSelectionSet<'_>,
    selection: &SelectionSet,
    fields: &mut IndexMap<Name, Value>,
) -> Option<()> {
    for item in &selection.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                // `@skip`/`@include` are gone by now; any other directive (only
                // `@ifdef` passes validation) and arguments are async-graphql's.
                if !field.directives.is_empty() || !field.arguments.is_empty() {
                    return None;
                }
                let value = if field.name.node == "__typename" {
                    Value::String(T::TYPE_NAME.to_owned())
                } else {
                    record.immediate(ctx, field)?
                };
                // A key asked twice has its selections merged by async-graphql.
                if fields
                    .insert(field.response_key().node.clone(), value)
                    .is_some()
                {
                    return None;
                }
            }
            Selection::InlineFragment(fragment) => {
                let fragment = &fragment.node;
                let on_this_type = fragment
                    .type_condition
                    .as_ref()
                    .is_none_or(|on| on.node.on.node == T::TYPE_NAME);
                if !fragment.directives.is_empty() || !on_this_type {
                    return None;
                }
                gather(record, ctx, &fragment.selection_set.node, fields)?;
            }
            // Named fragments live in the query's environment, which async-graphql
            // keeps out of its documented API: left to it.
            Selection::FragmentSpread(_) => return None,
        }
    }
    Some(())
}

impl<T: ContainerType + OutputType + Immediate> OutputType for AtHand<T> {
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
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if self.serial {
            if let Some(value) = answer(&self.record, ctx, &field.node.selection_set.node) {
                if let Some(metrics) = ctx.data_opt::<Arc<Metrics>>() {
                    metrics.graphql_direct_answers.inc();
                }
                return Ok(value);
            }
            resolve_container_serial(ctx, &self.record).await
        } else {
            resolve_container(ctx, &self.record).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_graphql::Value;
    use async_graphql::parser::types::Field;
    use async_graphql::{ContextSelectionSet, EmptyMutation, EmptySubscription, Object, Schema};
    use parking_lot::Mutex;

    use super::{AtHand, Immediate};

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

    /// Never answered directly: these tests are about the order of resolution.
    impl Immediate for Record {
        const TYPE_NAME: &'static str = "Record";

        fn immediate(&self, _: &ContextSelectionSet<'_>, _: &Field) -> Option<Value> {
            None
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

    /// Answers `a` directly with 10, and `inner` with itself; its resolvers answer 1 and
    /// 2, so the answer tells which path ran.
    struct Direct;

    #[Object]
    impl Direct {
        async fn a(&self) -> i32 {
            1
        }
        async fn b(&self) -> i32 {
            2
        }
        async fn inner(&self) -> AtHand<Direct> {
            AtHand::serial(Direct)
        }
    }

    impl Immediate for Direct {
        const TYPE_NAME: &'static str = "Direct";

        fn immediate(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
            match field.name.node.as_str() {
                "a" => Some(Value::from(10)),
                "inner" => super::answer(self, ctx, &field.selection_set.node),
                _ => None,
            }
        }
    }

    struct DirectQuery;

    #[Object]
    impl DirectQuery {
        async fn serial(&self) -> AtHand<Direct> {
            AtHand::serial(Direct)
        }
        async fn concurrent(&self) -> AtHand<Direct> {
            AtHand::concurrent(Direct)
        }
    }

    /// The answer, as text: serde_json's map would sort the keys.
    async fn direct(query: &str) -> String {
        let schema = Schema::new(DirectQuery, EmptyMutation, EmptySubscription);
        let response = schema.execute(query).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        serde_json::to_string(&response.data).expect("JSON")
    }

    #[tokio::test]
    async fn serial_records_answer_what_they_can_directly() {
        let data = direct(
            "{ serial { a x: a __typename s: a @skip(if: true) ... { y: a } \
               ... on Direct { inner { a z: __typename } } } }",
        )
        .await;
        // In the selection's order.
        assert_eq!(
            data,
            r#"{"serial":{"a":10,"x":10,"__typename":"Direct","y":10,"inner":{"a":10,"z":"Direct"}}}"#
        );
    }

    #[tokio::test]
    async fn anything_not_immediate_leaves_the_whole_record_to_the_resolvers() {
        for query in [
            "{ serial { a b } }",
            "{ serial { a a } }",
            "{ serial { ...F } } fragment F on Direct { a }",
            "{ concurrent { a } }",
        ] {
            let data = direct(query).await;
            assert!(data.contains(r#""a":1"#), "{query}: {data}");
        }
        // Inside, the nested record decides for itself.
        let data = direct("{ serial { b inner { a } } }").await;
        assert_eq!(data, r#"{"serial":{"b":2,"inner":{"a":10}}}"#);
    }

    #[tokio::test]
    async fn an_empty_selection_is_answered_as_the_resolvers_answer_it() {
        let serial = direct("{ r: serial { a @skip(if: true) } }").await;
        let concurrent = direct("{ r: concurrent { a @skip(if: true) } }").await;
        assert_eq!(serial, concurrent);
    }

    /// `TYPE_NAME` answers `__typename`: it must be the schema's name of the type.
    #[test]
    fn immediate_type_names_are_the_schema_names() {
        use crate::graphql::types::{
            Account, Contact, Money, Opportunity, OpportunityContactRole, Stage, User,
        };
        use async_graphql::OutputType;

        fn same<T: OutputType + Immediate>() {
            assert_eq!(T::type_name(), T::TYPE_NAME);
        }
        same::<Opportunity>();
        same::<OpportunityContactRole>();
        same::<Money>();
        same::<Account>();
        same::<User>();
        same::<Stage>();
        // The brief forms lend their names to these.
        same::<Contact>();
    }
}
