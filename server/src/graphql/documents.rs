//! Parsed GraphQL documents, kept by query text.
//!
//! Clients send the same few operations over and over, and async-graphql parses each
//! request's text again with its PEG parser, a cost that grows with the document and
//! that every page of a list used to pay. A copy of a parsed document costs a fraction
//! of a parse. Only the parse is kept: validation depends on the variables and runs
//! every time, as do the depth and directive checks and the extensions' parse hooks.

use std::num::NonZeroUsize;
use std::sync::Arc;

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;
use parking_lot::Mutex;

/// Distinct operations kept; a busy integration sends a few dozen.
const CAPACITY: usize = 512;
/// Longer texts are parsed every time: they are rare, and an attacker's many distinct
/// large documents must not pin memory.
const MAX_QUERY_BYTES: usize = 16 * 1024;

pub struct Documents {
    parsed: Mutex<LruCache<String, Arc<ExecutableDocument>>>,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            parsed: Mutex::new(LruCache::new(
                NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl Documents {
    /// Hands `request` its parsed document from the cache, parsing and keeping it first
    /// if needed. A text that does not parse is left alone, for async-graphql to answer
    /// with its usual error.
    pub fn prepare(&self, mut request: Request) -> Request {
        if request.query.len() > MAX_QUERY_BYTES {
            return request;
        }
        let cached = self.parsed.lock().get(&request.query).cloned();
        let document = match cached {
            Some(document) => document,
            None => match async_graphql::parser::parse_query(&request.query) {
                Ok(parsed) => {
                    let parsed = Arc::new(parsed);
                    self.parsed
                        .lock()
                        .put(request.query.clone(), Arc::clone(&parsed));
                    parsed
                }
                Err(_) => return request,
            },
        };
        request.set_parsed_query(ExecutableDocument::clone(&document));
        request
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_document_is_parsed_once_and_bad_text_is_left_to_async_graphql() {
        let documents = Documents::default();
        let query = "{ me { id } }";
        let mut first = documents.prepare(Request::new(query));
        assert!(first.parsed_query().is_ok());
        assert_eq!(documents.parsed.lock().len(), 1);
        let mut again = documents.prepare(Request::new(query));
        assert!(again.parsed_query().is_ok());
        assert_eq!(documents.parsed.lock().len(), 1);

        let broken = documents.prepare(Request::new("{ me { id "));
        assert_eq!(
            documents.parsed.lock().len(),
            1,
            "parse errors are not kept"
        );
        assert_eq!(broken.query, "{ me { id ");

        let huge = format!("{{ me {{ id }} }}{}", " ".repeat(MAX_QUERY_BYTES));
        documents.prepare(Request::new(huge));
        assert_eq!(documents.parsed.lock().len(), 1, "long texts are not kept");
    }
}
