//! The audit log: who did what, when, from where, and how it ended.
//!
//! Append-only by construction: entries are keyed by time and a sled id
//! (so they sort by time and never collide), nothing in the node updates
//! or deletes one, and no route or command offers to. The only removal is
//! [`AuditLog::prune`] at start, of entries older than
//! [`RETENTION_MS`] (等保 2.0 asks for at least six months; we keep 400
//! days so a year-end review still sees last December).
//!
//! Kept in a node-local sled tree (`local|audit`); it never syncs: what a
//! village's clerks did is the village's record, read there by its auditor.
//! No entry holds a personal field's value: requests are recorded by method,
//! path and `?station=`, never their bodies.

use serde::{Deserialize, Serialize};

/// Entries younger than this are never removed.
pub const RETENTION_MS: u64 = 400 * 24 * 60 * 60 * 1000;
/// Most entries one query returns.
pub const PAGE_ENTRIES_MAX: usize = 1000;
/// Longest text kept in one field of an entry (paths, reasons).
pub const FIELD_CHARS_MAX: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// The account, or `api-token` for scripts and the CLI, or the name
    /// someone tried to log in with.
    pub who: String,
    /// Where the request came from (the peer address of the connection).
    pub from: String,
    /// `login`, `login-failed`, `logout`, or `METHOD /path`.
    pub action: String,
    /// `?station=` when given, or what was acted on.
    #[serde(default)]
    pub target: String,
    /// The HTTP status, or a word (`locked`).
    pub outcome: String,
}

pub struct AuditLog {
    tree: sled::Tree,
    /// The key's second half: entries of one millisecond stay apart and in
    /// order. Starts past the newest entry's, so a restart never reuses one.
    next_sequence: std::sync::atomic::AtomicU64,
}

/// What `list` returns, newest first.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuditQuery {
    pub who: Option<String>,
    /// Entries whose action contains this text.
    pub action: Option<String>,
    pub since_ms: Option<u64>,
    pub limit: Option<usize>,
}

fn clip(text: &str) -> String {
    text.chars().take(FIELD_CHARS_MAX).collect()
}

impl AuditLog {
    pub fn open(tree: sled::Tree) -> AuditLog {
        let last = tree
            .last()
            .ok()
            .flatten()
            .and_then(|(key, _)| key.get(8..16).map(|s| s.to_vec()))
            .and_then(|s| <[u8; 8]>::try_from(s.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        AuditLog {
            tree,
            next_sequence: std::sync::atomic::AtomicU64::new(last + 1),
        }
    }

    /// Append one entry and make it durable. An audit log that cannot be
    /// written is reported by the caller, never skipped silently.
    pub fn append(&self, entry: AuditEntry) -> Result<(), String> {
        let entry = AuditEntry {
            who: clip(&entry.who),
            from: clip(&entry.from),
            action: clip(&entry.action),
            target: clip(&entry.target),
            outcome: clip(&entry.outcome),
            ..entry
        };
        let id = self
            .next_sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&entry.at_ms.to_be_bytes());
        key[8..].copy_from_slice(&id.to_be_bytes());
        let bytes = serde_json::to_vec(&entry).map_err(|error| format!("audit log: {error}"))?;
        self.tree
            .insert(key, bytes)
            .map_err(|error| format!("audit log: {error}"))?;
        self.tree
            .flush()
            .map_err(|error| format!("audit log: {error}"))?;
        Ok(())
    }

    /// Newest first, filtered, at most [`PAGE_ENTRIES_MAX`].
    pub fn list(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, String> {
        let limit = query.limit.unwrap_or(200).clamp(1, PAGE_ENTRIES_MAX);
        let since = query.since_ms.unwrap_or(0).to_be_bytes();
        let mut entries = Vec::new();
        for item in self.tree.range(since.to_vec()..).rev() {
            let (_, bytes) = item.map_err(|error| format!("audit log: {error}"))?;
            let Ok(entry) = serde_json::from_slice::<AuditEntry>(&bytes) else {
                continue;
            };
            if query.who.as_ref().is_some_and(|who| &entry.who != who) {
                continue;
            }
            if query
                .action
                .as_ref()
                .is_some_and(|action| !entry.action.contains(action.as_str()))
            {
                continue;
            }
            entries.push(entry);
            if entries.len() >= limit {
                break;
            }
        }
        Ok(entries)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Remove entries older than the retention period; returns how many.
    pub fn prune(&self, now_ms: u64) -> Result<usize, String> {
        let Some(cutoff) = now_ms.checked_sub(RETENTION_MS) else {
            return Ok(0);
        };
        let old: Vec<_> = self
            .tree
            .range(..cutoff.to_be_bytes().to_vec())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|error| format!("audit log: {error}"))?;
        for key in &old {
            self.tree
                .remove(key)
                .map_err(|error| format!("audit log: {error}"))?;
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> AuditLog {
        let db = sled::Config::new().temporary(true).open().unwrap();
        AuditLog::open(db.open_tree("audit").unwrap())
    }

    fn entry(at_ms: u64, who: &str, action: &str) -> AuditEntry {
        AuditEntry {
            at_ms,
            who: who.into(),
            from: "127.0.0.1".into(),
            action: action.into(),
            target: String::new(),
            outcome: "200".into(),
        }
    }

    #[test]
    fn entries_come_back_newest_first_and_filtered() {
        let log = log();
        log.append(entry(1, "wang", "login")).unwrap();
        log.append(entry(2, "li", "login-failed")).unwrap();
        log.append(entry(2, "wang", "POST /api/v1/activities"))
            .unwrap();
        let all = log.list(&AuditQuery::default()).unwrap();
        let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["POST /api/v1/activities", "login-failed", "login"]
        );
        let wang = log
            .list(&AuditQuery {
                who: Some("wang".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(wang.len(), 2);
        let logins = log
            .list(&AuditQuery {
                action: Some("login".into()),
                since_ms: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(logins.len(), 1);
        assert_eq!(logins[0].who, "li");
    }

    #[test]
    fn pruning_keeps_everything_younger_than_the_retention() {
        let log = log();
        let day = 24 * 60 * 60 * 1000;
        log.append(entry(day, "old", "login")).unwrap();
        log.append(entry(200 * day, "half-year", "login")).unwrap();
        let now = 200 * day + RETENTION_MS - day;
        assert_eq!(log.prune(now).unwrap(), 1);
        let left = log.list(&AuditQuery::default()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].who, "half-year");
        assert!(RETENTION_MS >= 183 * day, "at least six months");
    }

    #[test]
    fn long_fields_are_clipped_and_pages_are_bounded() {
        let log = log();
        let long = "x".repeat(10 * FIELD_CHARS_MAX);
        log.append(entry(1, &long, "login")).unwrap();
        let got = log.list(&AuditQuery::default()).unwrap();
        assert_eq!(got[0].who.chars().count(), FIELD_CHARS_MAX);
        let page = log
            .list(&AuditQuery {
                limit: Some(usize::MAX),
                ..Default::default()
            })
            .unwrap();
        assert!(page.len() <= PAGE_ENTRIES_MAX);
    }
}
