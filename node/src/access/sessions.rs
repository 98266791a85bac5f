//! Logged-in browsers: a random session id in an HttpOnly, SameSite=Strict
//! cookie, and per session a CSRF token every form carries.
//!
//! In memory only: a restart logs everyone out, which costs a clerk one
//! login and means no session secret is ever on disk. Bounded: at most
//! [`SESSIONS_MAX`]; beyond it the session seen longest ago ends.

use super::roles::Role;
use std::collections::HashMap;
use std::sync::Mutex;

/// A session unused this long ends (等保 2.0: "login timeout").
pub const IDLE_MS: u64 = 15 * 60 * 1000;
/// A session ends this long after login, however busy.
pub const LIFETIME_MS: u64 = 12 * 60 * 60 * 1000;
/// An office has a few staff, each with a browser or two.
pub const SESSIONS_MAX: usize = 256;
pub const COOKIE_NAME: &str = "civsync_session";

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub account: String,
    pub role: Role,
    /// Forms echo it; a request from another site cannot know it.
    pub csrf: String,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex: unguessable, cookie-safe.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Equal strings, compared in time that does not depend on where they
/// first differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Start a session; returns its id (for the cookie).
    pub fn start(&self, account: &str, role: Role, now_ms: u64) -> (String, Session) {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id.retain(|_, session| alive(session, now_ms));
        while by_id.len() >= SESSIONS_MAX {
            let oldest = by_id
                .iter()
                .min_by_key(|(_, session)| session.last_seen_ms)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => by_id.remove(&id),
                None => break,
            };
        }
        let id = random_token();
        let session = Session {
            account: account.to_string(),
            role,
            csrf: random_token(),
            created_ms: now_ms,
            last_seen_ms: now_ms,
        };
        by_id.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session with this id if it is still alive, marked as seen now.
    pub fn touch(&self, id: &str, now_ms: u64) -> Option<Session> {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let session = by_id.get_mut(id)?;
        if !alive(session, now_ms) {
            by_id.remove(id);
            return None;
        }
        session.last_seen_ms = now_ms;
        Some(session.clone())
    }

    pub fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// End every session of an account (removed, or its password changed).
    pub fn end_all_of(&self, account: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, session| session.account != account);
    }

    pub fn len(&self) -> usize {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(session: &Session, now_ms: u64) -> bool {
    now_ms.saturating_sub(session.last_seen_ms) < IDLE_MS
        && now_ms.saturating_sub(session.created_ms) < LIFETIME_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_after_fifteen_idle_minutes_but_not_while_used() {
        let sessions = Sessions::default();
        let (id, _) = sessions.start("wang", Role::Clerk, 0);
        assert!(sessions.touch(&id, IDLE_MS - 1).is_some());
        // Used just now: the idle clock started again.
        assert!(sessions.touch(&id, 2 * IDLE_MS - 2).is_some());
        assert!(sessions.touch(&id, 3 * IDLE_MS).is_none());
        assert!(sessions.touch(&id, 3 * IDLE_MS).is_none(), "ended for good");
    }

    #[test]
    fn a_session_ends_after_its_lifetime_however_busy() {
        let sessions = Sessions::default();
        let (id, _) = sessions.start("wang", Role::Clerk, 0);
        let mut now = 0;
        while now + IDLE_MS / 2 < LIFETIME_MS {
            now += IDLE_MS / 2;
            assert!(sessions.touch(&id, now).is_some());
        }
        assert!(sessions.touch(&id, LIFETIME_MS).is_none());
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recently_seen_goes_first() {
        let sessions = Sessions::default();
        let (first, _) = sessions.start("a", Role::Clerk, 0);
        let mut ids = Vec::new();
        for n in 1..SESSIONS_MAX as u64 {
            ids.push(sessions.start("b", Role::Clerk, n).0);
        }
        assert_eq!(sessions.len(), SESSIONS_MAX);
        let (_, _) = sessions.start("c", Role::Clerk, SESSIONS_MAX as u64);
        assert_eq!(sessions.len(), SESSIONS_MAX);
        assert!(sessions.touch(&first, SESSIONS_MAX as u64).is_none());
        assert!(sessions.touch(&ids[0], SESSIONS_MAX as u64).is_some());
    }

    #[test]
    fn ids_and_csrf_tokens_differ_and_compare_only_when_equal() {
        let sessions = Sessions::default();
        let (a, session_a) = sessions.start("a", Role::Clerk, 0);
        let (b, session_b) = sessions.start("a", Role::Clerk, 0);
        assert_ne!(a, b);
        assert_ne!(session_a.csrf, session_b.csrf);
        assert!(same_secret(&session_a.csrf, &session_a.csrf.clone()));
        assert!(!same_secret(&session_a.csrf, &session_b.csrf));
        assert!(!same_secret(&session_a.csrf, ""));
        sessions.end_all_of("a");
        assert!(sessions.is_empty());
    }
}
