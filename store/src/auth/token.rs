//! etcd's simple tokens: `<16 random letters>.<raft log index>`.
//!
//! The member that checks a password picks the random part and proposes it through raft; every
//! member's apply then knows the token (it is never persisted). A token expires after
//! `TOKEN_TTL` without use, on each member by its own clock: expiry is not applied state, so
//! it stays out of raft (etcd does the same).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;

/// How long a token lives without being used (etcd's `simpleTokenTTLDefault`).
pub const TOKEN_TTL: Duration = Duration::from_secs(300);

/// Length of the random part of a token (etcd's `defaultSimpleTokenLength`).
const PREFIX_LEN: usize = 16;

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A fresh random token prefix, as etcd's `genTokenPrefix` (letters only).
pub fn random_prefix() -> String {
    let mut rng = rand::thread_rng();
    (0..PREFIX_LEN).map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char).collect()
}

/// The token apply hands out for `prefix` at log `index`.
pub fn make(prefix: &str, index: u64) -> String {
    format!("{prefix}.{index}")
}

/// The log index a token was created at, or `None` if the token is malformed (etcd:
/// exactly one '.', then a decimal index).
pub fn index_of(token: &str) -> Option<u64> {
    let (_, index) = token.split_once('.')?;
    if index.contains('.') {
        return None;
    }
    index.parse().ok()
}

struct Entry {
    user: String,
    expires: Instant,
}

/// The live tokens of this member: token → user, with idle expiry.
pub struct Tokens {
    ttl: Duration,
    live: Mutex<HashMap<String, Entry>>,
}

impl Tokens {
    /// An empty token table whose tokens live `ttl` past their last use.
    pub fn new(ttl: Duration) -> Tokens {
        Tokens { ttl, live: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `token` for `user`, and forgets tokens that expired (so the table stays as
    /// small as the set of recently active clients).
    pub fn assign(&self, token: String, user: String, now: Instant) {
        let mut live = self.lock();
        live.retain(|_, e| e.expires > now);
        live.insert(token, Entry { user, expires: now + self.ttl });
    }

    /// The user a live token stands for; each use extends its life by the TTL.
    pub fn lookup(&self, token: &str, now: Instant) -> Option<String> {
        let mut live = self.lock();
        let entry = live.get_mut(token)?;
        if entry.expires <= now {
            live.remove(token);
            return None;
        }
        entry.expires = now + self.ttl;
        Some(entry.user.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub fn invalidate_user(&self, user: &str) {
        self.lock().retain(|_, e| e.user != user);
    }

    /// Forgets every token (auth was enabled or disabled).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_etcds() {
        let prefix = random_prefix();
        assert_eq!(prefix.len(), 16);
        assert!(prefix.bytes().all(|b| b.is_ascii_alphabetic()));
        let token = make(&prefix, 42);
        assert_eq!(index_of(&token), Some(42));
        assert_eq!(index_of("abc"), None);
        assert_eq!(index_of("a.b"), None);
        assert_eq!(index_of("a.1.2"), None);
        assert_eq!(index_of("a.-1"), None);
    }

    #[test]
    fn tokens_expire_when_idle() {
        let tokens = Tokens::new(Duration::from_secs(300));
        let t0 = Instant::now();
        tokens.assign("x.1".into(), "alice".into(), t0);
        assert_eq!(tokens.lookup("x.1", t0 + Duration::from_secs(299)), Some("alice".into()));
        // The use above restarted the clock.
        assert_eq!(tokens.lookup("x.1", t0 + Duration::from_secs(598)), Some("alice".into()));
        assert_eq!(tokens.lookup("x.1", t0 + Duration::from_secs(899)), None);
        assert_eq!(tokens.lookup("x.1", t0), None, "an expired token is forgotten");
        assert_eq!(tokens.lookup("y.2", t0), None);
    }

    #[test]
    fn tokens_are_invalidated_per_user() {
        let tokens = Tokens::new(TOKEN_TTL);
        let now = Instant::now();
        tokens.assign("a.1".into(), "alice".into(), now);
        tokens.assign("b.2".into(), "bob".into(), now);
        tokens.invalidate_user("alice");
        assert_eq!(tokens.lookup("a.1", now), None);
        assert_eq!(tokens.lookup("b.2", now), Some("bob".into()));
        tokens.clear();
        assert_eq!(tokens.lookup("b.2", now), None);
    }
}
