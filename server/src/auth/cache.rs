//! A short-lived cache of resolved bearer tokens. Every request authenticates, and on the
//! hot read paths that lookup was one of a handful of statements per request.
//!
//! Trade-off, stated plainly: a token revoked (or a user deactivated) through *another*
//! instance keeps working here for at most the TTL. Revocations through this instance
//! take effect at once. `ACCORD_AUTH_CACHE_SECONDS=0` turns the cache off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Actor;

/// Bounds memory under token-guessing traffic; only successful lookups are cached anyway.
const MAX_ENTRIES: usize = 50_000;

pub struct TokenCache {
    ttl: Duration,
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
        entries
            .get(digest)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(actor, _)| actor.clone())
    }

    pub fn put(&self, digest: String, actor: Actor) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(digest, (actor, Instant::now()));
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

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let actor = Actor {
            user_id: 1,
            role: Role::Rep,
            token_id: 7,
        };
        let cache = TokenCache::new(Duration::from_millis(50));
        cache.put("d".into(), actor.clone());
        assert!(cache.get("d").is_some());
        cache.forget_token(7);
        assert!(cache.get("d").is_none());
        cache.put("d".into(), actor);
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("d").is_none());
        let off = TokenCache::new(Duration::ZERO);
        off.put(
            "x".into(),
            Actor {
                user_id: 1,
                role: Role::Rep,
                token_id: 1,
            },
        );
        assert!(off.get("x").is_none());
    }
}
