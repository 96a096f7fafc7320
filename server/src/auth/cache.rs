//! A short-lived cache of resolved bearer tokens. Every request authenticates, and on the
//! hot read paths that lookup was one of a handful of statements per request.
//!
//! Trade-off, stated plainly: a token revoked (or a user deactivated) through *another*
//! instance keeps working here for at most the TTL. Revocations through this instance
//! take effect at once. A token is never trusted past its own expiry.
//! `ACCORD_AUTH_CACHE_SECONDS=0` turns the cache off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Actor;

/// Bounds memory; only successful lookups are cached, so guessing cannot fill it.
const MAX_ENTRIES: usize = 50_000;

pub struct TokenCache {
    ttl: Duration,
    /// Token digest -> (actor, trusted until).
    entries: Mutex<HashMap<String, (Actor, Instant)>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, digest: &str) -> Option<Actor> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let now = Instant::now();
        entries
            .get(digest)
            .filter(|(_, until)| now < *until)
            .map(|(actor, _)| actor.clone())
    }

    /// Trusts `actor` for the TTL, but never past the token's own expiry.
    pub fn put(&self, digest: String, actor: Actor, token_expires: Option<DateTime<Utc>>) {
        let mut ttl = self.ttl;
        if let Some(expires) = token_expires {
            ttl = ttl.min((expires - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        }
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                let now = Instant::now();
                entries.retain(|_, (_, until)| now < *until);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(digest, (actor, Instant::now() + ttl));
        }
    }

    /// Forgets a token (logout, revocation) so this instance refuses it immediately.
    pub fn forget_token(&self, token_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (actor, _)| actor.token_id != token_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accord_entities::user::Role;

    fn actor() -> Actor {
        Actor {
            user_id: 1,
            role: Role::Rep,
            token_id: 7,
        }
    }

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let cache = TokenCache::new(Duration::from_millis(50));
        cache.put("d".into(), actor(), None);
        assert!(cache.get("d").is_some());
        cache.forget_token(7);
        assert!(cache.get("d").is_none());
        cache.put("d".into(), actor(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("d").is_none());
    }

    #[test]
    fn never_trusted_past_the_tokens_expiry() {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.put(
            "soon".into(),
            actor(),
            Some(Utc::now() + chrono::Duration::milliseconds(30)),
        );
        assert!(cache.get("soon").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("soon").is_none());
        cache.put(
            "gone".into(),
            actor(),
            Some(Utc::now() - chrono::Duration::seconds(1)),
        );
        assert!(cache.get("gone").is_none());
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let off = TokenCache::new(Duration::ZERO);
        off.put("x".into(), actor(), None);
        assert!(off.get("x").is_none());
    }
}
