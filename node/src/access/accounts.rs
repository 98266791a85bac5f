//! Accounts of one office: name, role, argon2id password hash, lockout.
//!
//! Kept in a node-local sled tree (`local|accounts`), one JSON value per
//! account keyed by its name. Never synced: a village's clerks are the
//! village's business, and a hash that travels is a hash that can be
//! cracked elsewhere.
//!
//! Lockout (等保 2.0 level 2, "login failure handling"): after
//! [`FAILED_LOGINS_MAX`] wrong passwords in a row the account is locked for
//! [`LOCKOUT_MS`]; the count survives a restart. A wrong name and a wrong
//! password get the same answer, and both cost one argon2 hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

use super::roles::Role;

/// Wrong passwords in a row before the account locks.
pub const FAILED_LOGINS_MAX: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_MS: u64 = 15 * 60 * 1000;
/// Accounts one office may hold: an office has a handful of staff.
pub const ACCOUNTS_MAX: usize = 1000;
pub const NAME_CHARS_MAX: usize = 32;
pub const PASSWORD_CHARS_MIN: usize = 8;
/// argon2 accepts more, but a longer "password" is an attack on the CPU.
pub const PASSWORD_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub name: String,
    pub role: Role,
    /// The PHC string of the argon2id hash (salt and parameters inside).
    pub password_hash: String,
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default)]
    pub locked_until_ms: u64,
    pub created_ms: u64,
    #[serde(default)]
    pub last_login_ms: u64,
}

/// What an account looks like to whoever lists them: no hash.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountView {
    pub name: String,
    pub role: Role,
    pub role_label: &'static str,
    pub locked: bool,
    pub failed_logins: u32,
    pub created_ms: u64,
    pub last_login_ms: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account named {0:?} already exists")]
    Exists(String),
    #[error("no account is named {0:?}")]
    Unknown(String),
    #[error("this office already has {ACCOUNTS_MAX} accounts")]
    TooMany,
    #[error("the account store failed: {0}")]
    Store(String),
}

/// Why a login was refused. The same words for a wrong name and a wrong
/// password, so the answer does not tell which names exist.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginRefusal {
    Wrong { attempts_left: u32 },
    Locked { until_ms: u64 },
}

impl LoginRefusal {
    /// For the login page, in Chinese.
    pub fn message(&self, now_ms: u64) -> String {
        match self {
            LoginRefusal::Wrong { attempts_left } if *attempts_left > 0 => {
                format!("用户名或密码错误；再错 {attempts_left} 次账户将被锁定 15 分钟")
            }
            LoginRefusal::Wrong { .. } => "用户名或密码错误；账户已锁定 15 分钟".to_string(),
            LoginRefusal::Locked { until_ms } => {
                let minutes = until_ms.saturating_sub(now_ms).div_ceil(60_000).max(1);
                format!("连续输错密码，账户已锁定，请 {minutes} 分钟后再试，或请管理员解锁")
            }
        }
    }
}

pub struct Accounts {
    tree: sled::Tree,
    /// Read-modify-write of one account at a time (logins are rare).
    writing: Mutex<()>,
}

fn store_error(error: impl std::fmt::Display) -> AccountError {
    AccountError::Store(error.to_string())
}

/// Names: what a clerk types at the login box; no spaces or controls.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_CHARS_MAX {
        return Err(AccountError::Invalid(format!(
            "an account name has 1 to {NAME_CHARS_MAX} characters"
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AccountError::Invalid(
            "an account name has no spaces or control characters".to_string(),
        ));
    }
    Ok(())
}

/// At least 8 characters, with letters and digits (等保 2.0 asks for
/// passwords of some complexity); at most 128 bytes.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(AccountError::Invalid(format!(
            "a password has at most {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    if password.chars().count() < PASSWORD_CHARS_MIN
        || !password.chars().any(|c| c.is_alphabetic())
        || !password.chars().any(|c| c.is_ascii_digit())
    {
        return Err(AccountError::Invalid(format!(
            "a password has at least {PASSWORD_CHARS_MIN} characters, with letters and digits (密码至少 {PASSWORD_CHARS_MIN} 位，须含字母和数字)"
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AccountError::Store(format!("hashing the password: {error}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

impl Accounts {
    pub fn open(tree: sled::Tree) -> Accounts {
        Accounts {
            tree,
            writing: Mutex::new(()),
        }
    }

    fn read(&self, name: &str) -> Result<Option<Account>, AccountError> {
        let Some(bytes) = self.tree.get(name.as_bytes()).map_err(store_error)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| store_error(format!("account {name:?} is unreadable: {error}")))
    }

    fn write(&self, account: &Account) -> Result<(), AccountError> {
        let bytes = serde_json::to_vec(account).map_err(store_error)?;
        self.tree
            .insert(account.name.as_bytes(), bytes)
            .map_err(store_error)?;
        self.tree.flush().map_err(store_error)?;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Create an account. Slow (one argon2 hash): call it off the runtime.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now_ms: u64,
    ) -> Result<AccountView, AccountError> {
        check_name(name)?;
        check_password(password)?;
        let password_hash = hash_password(password)?;
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        if self.read(name)?.is_some() {
            return Err(AccountError::Exists(name.to_string()));
        }
        if self.tree.len() >= ACCOUNTS_MAX {
            return Err(AccountError::TooMany);
        }
        let account = Account {
            name: name.to_string(),
            role,
            password_hash,
            failed_logins: 0,
            locked_until_ms: 0,
            created_ms: now_ms,
            last_login_ms: 0,
        };
        self.write(&account)?;
        Ok(view(&account, now_ms))
    }

    /// Set a new password (and unlock): for an administrator, or the
    /// account's owner.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        check_password(password)?;
        let password_hash = hash_password(password)?;
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut account = self
            .read(name)?
            .ok_or_else(|| AccountError::Unknown(name.to_string()))?;
        account.password_hash = password_hash;
        account.failed_logins = 0;
        account.locked_until_ms = 0;
        self.write(&account)
    }

    pub fn unlock(&self, name: &str) -> Result<(), AccountError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut account = self
            .read(name)?
            .ok_or_else(|| AccountError::Unknown(name.to_string()))?;
        account.failed_logins = 0;
        account.locked_until_ms = 0;
        self.write(&account)
    }

    pub fn remove(&self, name: &str) -> Result<(), AccountError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        match self.tree.remove(name.as_bytes()).map_err(store_error)? {
            Some(_) => {
                self.tree.flush().map_err(store_error)?;
                Ok(())
            }
            None => Err(AccountError::Unknown(name.to_string())),
        }
    }

    pub fn list(&self, now_ms: u64) -> Result<Vec<AccountView>, AccountError> {
        let mut views = Vec::new();
        for entry in self.tree.iter().take(ACCOUNTS_MAX) {
            let (_, bytes) = entry.map_err(store_error)?;
            let account: Account = serde_json::from_slice(&bytes).map_err(store_error)?;
            views.push(view(&account, now_ms));
        }
        Ok(views)
    }

    pub fn get(&self, name: &str) -> Result<Option<Account>, AccountError> {
        self.read(name)
    }

    /// Check a login. Slow (one argon2 hash, even for an unknown name):
    /// call it off the runtime. A locked account is refused without
    /// checking the password, so guessing goes no faster while locked.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<Result<Account, LoginRefusal>, AccountError> {
        if password.len() > PASSWORD_BYTES_MAX || check_name(name).is_err() {
            return Ok(Err(LoginRefusal::Wrong {
                attempts_left: FAILED_LOGINS_MAX,
            }));
        }
        let Some(account) = self.read(name)? else {
            // Same cost as a real check, so timing does not tell names.
            let _ = password_matches(password, dummy_hash());
            return Ok(Err(LoginRefusal::Wrong {
                attempts_left: FAILED_LOGINS_MAX,
            }));
        };
        if account.locked_until_ms > now_ms {
            return Ok(Err(LoginRefusal::Locked {
                until_ms: account.locked_until_ms,
            }));
        }
        let matches = password_matches(password, &account.password_hash);
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        // Re-read: another login may have counted a failure meanwhile.
        let mut account = self
            .read(name)?
            .ok_or_else(|| AccountError::Unknown(name.to_string()))?;
        if matches {
            account.failed_logins = 0;
            account.locked_until_ms = 0;
            account.last_login_ms = now_ms;
            self.write(&account)?;
            return Ok(Ok(account));
        }
        account.failed_logins = account.failed_logins.saturating_add(1);
        let refusal = if account.failed_logins >= FAILED_LOGINS_MAX {
            account.failed_logins = 0;
            account.locked_until_ms = now_ms + LOCKOUT_MS;
            LoginRefusal::Wrong { attempts_left: 0 }
        } else {
            LoginRefusal::Wrong {
                attempts_left: FAILED_LOGINS_MAX - account.failed_logins,
            }
        };
        self.write(&account)?;
        Ok(Err(refusal))
    }
}

/// A real hash of nothing anyone types, made once, for unknown names.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no account has this password 0").unwrap_or_default())
}

fn view(account: &Account, now_ms: u64) -> AccountView {
    AccountView {
        name: account.name.clone(),
        role: account.role,
        role_label: account.role.label(),
        locked: account.locked_until_ms > now_ms,
        failed_logins: account.failed_logins,
        created_ms: account.created_ms,
        last_login_ms: account.last_login_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Accounts::open(db.open_tree("accounts").unwrap())
    }

    #[test]
    fn a_right_password_logs_in_and_a_wrong_one_does_not() {
        let accounts = accounts();
        accounts.add("wang", Role::Clerk, "dongcun2026", 1).unwrap();
        let account = accounts.login("wang", "dongcun2026", 2).unwrap().unwrap();
        assert_eq!(account.role, Role::Clerk);
        assert_eq!(account.last_login_ms, 2);
        assert_eq!(
            accounts.login("wang", "dongcun2025", 3).unwrap(),
            Err(LoginRefusal::Wrong { attempts_left: 4 })
        );
        assert!(accounts
            .get("wang")
            .unwrap()
            .unwrap()
            .password_hash
            .starts_with("$argon2id$"));
    }

    #[test]
    fn five_wrong_passwords_lock_the_account_even_against_the_right_one() {
        let accounts = accounts();
        accounts.add("li", Role::Approver, "xicun2026a", 0).unwrap();
        for attempt in 1..=FAILED_LOGINS_MAX {
            let refusal = accounts.login("li", "guess1234", 10).unwrap().unwrap_err();
            assert_eq!(
                refusal,
                LoginRefusal::Wrong {
                    attempts_left: FAILED_LOGINS_MAX - attempt
                }
            );
        }
        let locked = accounts.login("li", "xicun2026a", 11).unwrap().unwrap_err();
        assert_eq!(
            locked,
            LoginRefusal::Locked {
                until_ms: 10 + LOCKOUT_MS
            }
        );
        assert!(locked.message(11).contains("15 分钟"));
        // After the lockout the right password works again.
        assert!(accounts
            .login("li", "xicun2026a", 11 + LOCKOUT_MS)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn an_administrator_unlocks_a_locked_account() {
        let accounts = accounts();
        accounts.add("zhao", Role::Clerk, "beicun2026", 0).unwrap();
        for _ in 0..FAILED_LOGINS_MAX {
            let _ = accounts.login("zhao", "wrong1234", 5).unwrap();
        }
        assert!(accounts.login("zhao", "beicun2026", 6).unwrap().is_err());
        accounts.unlock("zhao").unwrap();
        assert!(accounts.login("zhao", "beicun2026", 7).unwrap().is_ok());
    }

    #[test]
    fn an_unknown_name_is_answered_like_a_wrong_password() {
        let accounts = accounts();
        assert_eq!(
            accounts.login("nobody", "whatever12", 0).unwrap(),
            Err(LoginRefusal::Wrong {
                attempts_left: FAILED_LOGINS_MAX
            })
        );
    }

    #[test]
    fn weak_passwords_long_names_and_repeated_names_are_refused() {
        let accounts = accounts();
        assert!(matches!(
            accounts.add("a", Role::Clerk, "short1", 0),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            accounts.add("a", Role::Clerk, "lettersonly", 0),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            accounts.add(&"x".repeat(33), Role::Clerk, "good12345", 0),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            accounts.add("with space", Role::Clerk, "good12345", 0),
            Err(AccountError::Invalid(_))
        ));
        accounts.add("a", Role::Clerk, "good12345", 0).unwrap();
        assert_eq!(
            accounts.add("a", Role::Admin, "good12345", 0),
            Err(AccountError::Exists("a".into()))
        );
        let listed = accounts.list(0).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].role, Role::Clerk);
    }
}
