//! Parsed GraphQL documents, kept by query text.
//!
//! Clients send the same few operations over and over, and async-graphql parses each
//! request's text again with its PEG parser, a cost that grows with the document and
//! that every page of a list used to pay. A copy of a parsed document costs a fraction
//! of a parse. Only the parse is kept: validation depends on the variables and runs
//! every time, as do the depth and directive checks and the extensions' parse hooks.
//!
//! A parsed tree can be a hundred times larger than its text (`{a a a ...}`), so only
//! documents that an authenticated caller ran without errors are kept: they passed
//! validation, whose depth and complexity limits bound the tree, and a stranger cannot
//! fill the cache with documents built to be large. The cache is bounded by the total
//! length of the texts it holds.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response};
use lru::LruCache;
use parking_lot::Mutex;

/// Longer texts are parsed every time: they are rare, and each would take a large share
/// of the budget below.
const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Total length of the texts kept. Typical operations are a few hundred bytes, so this
/// holds about a thousand; a valid document's tree is at most some hundred times its
/// text, so the trees stay within tens of MiB even for documents built to be large.
const BUDGET_BYTES: usize = 256 * 1024;

pub struct Documents {
    kept: Mutex<Kept>,
}

struct Kept {
    parsed: LruCache<String, Arc<ExecutableDocument>>,
    /// Sum of the lengths of `parsed`'s keys.
    bytes: usize,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            // Bounded by `BUDGET_BYTES` in `remember` (an empty text never parses).
            kept: Mutex::new(Kept {
                parsed: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }
}

impl Documents {
    /// Hands `request` its parsed document if one is kept. If none is, and the text may
    /// be kept (an `authenticated` caller's, short enough), also returns the text, for
    /// [`Documents::remember`] once the request has run.
    pub fn prepare(&self, mut request: Request, authenticated: bool) -> (Request, Option<String>) {
        let kept = self.kept.lock().parsed.get(&request.query).cloned();
        if let Some(document) = kept {
            request.set_parsed_query(ExecutableDocument::clone(&document));
            return (request, None);
        }
        let candidate = (authenticated && request.query.len() <= MAX_QUERY_BYTES)
            .then(|| request.query.clone());
        (request, candidate)
    }

    /// Keeps the parsed `query`, a text [`Documents::prepare`] handed back, if `response`
    /// answered it without errors. Parses the text once more: that happens once per
    /// distinct text.
    pub fn remember(&self, query: String, response: &Response) {
        if !response.errors.is_empty() || query.len() > MAX_QUERY_BYTES {
            return;
        }
        let Ok(parsed) = async_graphql::parser::parse_query(&query) else {
            return;
        };
        let mut kept = self.kept.lock();
        if kept.parsed.contains(&query) {
            return;
        }
        kept.bytes += query.len();
        kept.parsed.put(query, Arc::new(parsed));
        while kept.bytes > BUDGET_BYTES {
            match kept.parsed.pop_lru() {
                Some((text, _)) => kept.bytes -= text.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ok() -> Response {
        Response::new(async_graphql::Value::Null)
    }

    #[test]
    fn only_documents_answered_without_errors_are_kept_and_reused() {
        let documents = Documents::default();
        let query = "{ me { id } }";
        let (_, candidate) = documents.prepare(Request::new(query), true);
        assert_eq!(
            candidate.as_deref(),
            Some(query),
            "nothing kept before it ran"
        );
        let (_, anonymous) = documents.prepare(Request::new(query), false);
        assert_eq!(anonymous, None, "a stranger's text is never a candidate");

        documents.remember(query.to_owned(), &ok());
        let (mut again, candidate) = documents.prepare(Request::new(query), true);
        assert_eq!(candidate, None, "kept: nothing to remember");
        assert!(again.parsed_query().is_ok());

        let failed = Response::from_errors(vec![async_graphql::ServerError::new("no", None)]);
        documents.remember("{ users { id } }".to_owned(), &failed);
        assert!(
            documents
                .prepare(Request::new("{ users { id } }"), true)
                .1
                .is_some()
        );

        documents.remember("{ me { id ".to_owned(), &ok());
        assert_eq!(documents.kept.lock().parsed.len(), 1, "unparseable text");

        let long = format!("{{ me {{ id }} }}{}", " ".repeat(MAX_QUERY_BYTES));
        assert_eq!(documents.prepare(Request::new(long.clone()), true).1, None);
        documents.remember(long, &ok());
        assert_eq!(documents.kept.lock().parsed.len(), 1, "long texts");
    }

    #[test]
    fn the_total_length_of_kept_texts_stays_within_the_budget() {
        let documents = Documents::default();
        let padding = " ".repeat(MAX_QUERY_BYTES - 64);
        for i in 0..(2 * BUDGET_BYTES / MAX_QUERY_BYTES) {
            documents.remember(format!("{{ me {{ id }} }} # {i}{padding}"), &ok());
        }
        let kept = documents.kept.lock();
        assert!(kept.bytes <= BUDGET_BYTES);
        assert!(kept.parsed.len() >= BUDGET_BYTES / MAX_QUERY_BYTES - 1);
        assert_eq!(
            kept.bytes,
            kept.parsed
                .iter()
                .map(|(text, _)| text.len())
                .sum::<usize>()
        );
    }
}
