//! Who may use this node's HTTP server, and the record of what they did.
//!
//! - `accounts`: people who log in (name, role, argon2 hash, lockout), in a
//!   node-local sled tree that never syncs: an account belongs to one office.
//! - `sessions`: logged-in browsers, in memory (a restart logs everyone out),
//!   each with an idle timeout and its own CSRF token.
//! - `token`: the bearer token scripts and the `civsync` CLI use, a secret
//!   file in the data directory created at `init`.
//! - `audit`: an append-only log of logins, failed logins and every request
//!   that changes or exports something, kept for at least six months.
//! - `guard`: the middleware in front of every route: Host and Origin
//!   checks, JSON-only API bodies, authentication, then the role's
//!   permission for the route, and the audit entry after the answer.
//!
//! Layer: may use `store` (for its sled trees) and the base modules; used by
//! `context`, `api`, `web`, `node` and `cli`. Never uses `net`, `files`,
//! `context` or `api`. Time is passed in (`now_ms`) everywhere but in
//! `guard`, which reads the node's clock.

pub mod accounts;
pub mod audit;
pub mod guard;
pub mod roles;
pub mod sessions;
pub mod token;

pub use accounts::{Account, AccountError, Accounts};
pub use audit::{AuditEntry, AuditLog};
pub use roles::{Permission, Role};
pub use sessions::{Session, Sessions};

use crate::store::Store;
use std::path::Path;

/// Everything the guard and the account pages share.
pub struct Access {
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub audit: AuditLog,
    /// The bearer token of this node's scripts and CLI.
    pub token: token::ApiToken,
    /// Host names (besides IP literals and `localhost`) this node answers
    /// to, each with the API port; anything else is a DNS-rebinding attempt.
    pub host_names: Vec<String>,
    pub api_port: u16,
    /// Login attempts in the current minute: (minute, count).
    pub login_window: std::sync::Mutex<(u64, u32)>,
}

/// Login attempts one node answers per minute, whoever sends them: the
/// per-account lockout stops guessing one password, this stops a flood of
/// names (each attempt costs an argon2 hash and an audit entry).
pub const LOGINS_PER_MINUTE_MAX: u32 = 60;

impl Access {
    /// Count one login attempt; `false` when this minute's are used up.
    pub fn admit_login(&self, now_ms: u64) -> bool {
        let minute = now_ms / 60_000;
        let mut window = self.login_window.lock().unwrap_or_else(|e| e.into_inner());
        if window.0 != minute {
            *window = (minute, 0);
        }
        window.1 += 1;
        window.1 <= LOGINS_PER_MINUTE_MAX
    }
}

impl Access {
    /// Open the accounts and audit trees of `store` and read (or create)
    /// the bearer token in `data_dir`.
    pub fn open(
        store: &Store,
        data_dir: &Path,
        api_port: u16,
        host_names: Vec<String>,
    ) -> anyhow::Result<Access> {
        let accounts = Accounts::open(store.local_tree("accounts")?);
        let audit = AuditLog::open(store.local_tree("audit")?);
        let token = token::ApiToken::load_or_create(data_dir)?;
        Ok(Access {
            accounts,
            sessions: Sessions::default(),
            audit,
            token,
            host_names,
            api_port,
            login_window: Default::default(),
        })
    }
}
