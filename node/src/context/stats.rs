//! The statistics index a node's queries share, refreshed incrementally
//! from the store before each query; the first refresh loads the index
//! persisted beside the documents (`StoredStats`).
//!
//! A county node also keeps its statistics documents current for the
//! offices above it ([`publish`]): the node calls it every
//! `STATISTICS_REWRITE_INTERVAL_MS`, so a burst of writes or a sync makes at
//! most one rewrite per interval, and only months whose figures changed
//! are written.

use crate::store::{Store, StoreClosed, StoreUnavailable};
use civsync_protocol::replica::Replica;
use civsync_protocol::service::statistics::{PublishReport, StatisticsPublisher};
use civsync_protocol::stats::{StatsIndex, StatsOpenReport, StoredStats};
use civsync_protocol::storage::Storage;
use std::sync::{Arc, Mutex};

/// The statistics index and what it has seen of each document.
#[derive(Default)]
pub struct StatsState {
    stored: StoredStats,
    /// The persisted entries were loaded (by the first refresh).
    opened: bool,
    /// What this county last wrote into its statistics documents (empty
    /// after a start: every month is compared with its document once).
    publisher: StatisticsPublisher,
}

impl StatsState {
    /// The index as of the last refresh.
    pub fn index(&self) -> &StatsIndex {
        self.stored.index()
    }

    /// For what the index keeps besides contributions (freshness, which the
    /// next refresh persists).
    pub fn index_mut(&mut self) -> &mut StatsIndex {
        self.stored.index_mut()
    }
}

pub type SharedStats = Arc<Mutex<StatsState>>;

/// Log what loading the persisted index found: why documents were read
/// again, and every entry that could not be trusted.
fn log_open(report: &StatsOpenReport) {
    if let Some(reason) = &report.scan_failed {
        tracing::warn!(%reason, "persisted statistics unreadable; rebuilding from every document");
    }
    for problem in &report.corrupt {
        tracing::warn!(key = %problem.key, reason = %problem.reason, "persisted statistics entry not trusted; document read again");
    }
    if let Some(error) = &report.refresh.write_error {
        tracing::warn!(%error, "statistics entries not persisted; the next start reads those documents again");
    }
    tracing::info!(
        documents = report.documents,
        reused = report.reused,
        changed_since_written = report.changed,
        missing = report.missing,
        other_format = report.other_format,
        corrupt = report.corrupt.len(),
        orphans_dropped = report.orphans,
        read_again = report.refresh.reread,
        unreadable = report.refresh.unreadable,
        "statistics index loaded"
    );
}

/// Bring the index up to date with the store; returns the documents it
/// looked at again (read whole, or moved by their new changes alone). The
/// first call loads the persisted index (see the module comment). Those
/// documents' change times also feed the freshness.
pub async fn refresh(stats: &SharedStats, store: &Store) -> Result<usize, StoreClosed> {
    let stats = stats.clone();
    let reread = store
        .call(move |replica| {
            let mut state = stats.lock().unwrap_or_else(|p| p.into_inner());
            refresh_locked(&mut state, replica)
        })
        .await?;
    Ok(reread)
}

/// [`refresh`] on the owner thread, with the state locked.
fn refresh_locked<S: Storage>(state: &mut StatsState, replica: &mut Replica<S>) -> usize {
    // An unreadable document keeps its last contribution and is
    // listed by the index; figures go stale, never silently drop.
    if state.opened {
        let report = state.stored.refresh(replica);
        if let Some(error) = &report.write_error {
            tracing::warn!(%error, "statistics entries not persisted; the next start reads those documents again");
        }
        report.reread + report.from_changes
    } else {
        let (stored, report) = StoredStats::open(replica);
        log_open(&report);
        state.stored = stored;
        state.opened = true;
        report.refresh.reread
    }
}

/// Bring the index up to date and rewrite this county's statistics
/// documents whose figures changed (county nodes only; the caller checks
/// the tier). Answers once the rewrite is durable.
pub async fn publish(
    stats: &SharedStats,
    store: &Store,
    now_ms: i64,
) -> Result<Result<PublishReport, String>, StoreUnavailable> {
    let stats = stats.clone();
    store
        .call_durable(move |replica| {
            let mut state = stats.lock().unwrap_or_else(|p| p.into_inner());
            refresh_locked(&mut state, replica);
            let StatsState {
                stored, publisher, ..
            } = &mut *state;
            publisher
                .publish(replica, stored.index(), now_ms)
                .map_err(|e| e.to_string())
        })
        .await
}
