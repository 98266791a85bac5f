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
use civsync_protocol::stats::{
    decode_stored, DecodedStored, OpenSnapshot, StatsIndex, StatsOpenReport, StoredStats,
};
use civsync_protocol::storage::Storage;
use std::sync::{Arc, Mutex};

/// The statistics index and what it has seen of each document.
#[derive(Default)]
pub struct StatsState {
    stored: StoredStats,
    /// The persisted entries were loaded (by the first refresh).
    opened: bool,
    /// Held by the refresh that opens the persisted index, so that a
    /// refresh racing it waits instead of opening it twice.
    opening: Arc<tokio::sync::Mutex<()>>,
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

/// Moved documents one refresh job reads. A job runs on the store's one
/// thread, where every sync message and request waits behind it; a whole
/// read costs 0.3–1 ms (a roster of 150, loaded from sled when the cache
/// has moved on), so a job holds the thread for tens of milliseconds. After
/// a cold county's refill 2,600 documents had moved, and reading them in
/// one job held a reconnecting township for 1.6–2.1 s.
pub const REFRESH_DOCUMENTS_PER_JOB: usize = 64;
/// Jobs one refresh runs at most before it answers, leaving what moved
/// since to the next refresh: ends a refresh racing a steady stream of
/// writes (64,000 documents, far above a county's few thousand).
pub const REFRESH_JOBS_MAX: usize = 1_000;

/// Bring the index up to date with the store, in jobs of at most
/// [`REFRESH_DOCUMENTS_PER_JOB`] moved documents so that requests and sync
/// run between them; returns the documents it looked at again (read whole,
/// or moved by their new changes alone). The first call loads the
/// persisted index (see the module comment). Those documents' change times
/// also feed the freshness.
pub async fn refresh(stats: &SharedStats, store: &Store) -> Result<usize, StoreClosed> {
    let mut looked_at = open_beside_the_store(stats, store).await?;
    for _ in 0..REFRESH_JOBS_MAX {
        let stats = stats.clone();
        let (seen, left) = store
            .call(move |replica| {
                let mut state = stats.lock().unwrap_or_else(|p| p.into_inner());
                refresh_locked(&mut state, replica, REFRESH_DOCUMENTS_PER_JOB)
            })
            .await?;
        looked_at += seen;
        if left == 0 {
            break;
        }
    }
    Ok(looked_at)
}

/// Open the persisted index unless it is open: its entries are copied out
/// in one short job, folded on a blocking thread (decoded on one more,
/// `decode_beside`), and installed by a last job that also reads again the
/// first documents that moved. The store's thread runs sync and requests
/// in between: at a township's restart the open took 9 ms of it, while
/// its reconnect waited behind. Returns the documents read again. If the
/// fold cannot run on its own thread, the first refresh job opens the
/// index in line (`refresh_locked`). Reads at most
/// `REFRESH_DOCUMENTS_PER_JOB` moved documents; a refresh reads the rest.
pub async fn open_beside_the_store(
    stats: &SharedStats,
    store: &Store,
) -> Result<usize, StoreClosed> {
    let gate = stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .opening
        .clone();
    let _opening = gate.lock().await;
    if stats.lock().unwrap_or_else(|p| p.into_inner()).opened {
        return Ok(0);
    }
    let snapshot = store.call(|replica| OpenSnapshot::take(replica)).await?;
    let folded = match tokio::task::spawn_blocking(move || snapshot.fold(decode_beside)).await {
        Ok(folded) => folded,
        Err(error) => {
            tracing::warn!(%error, "the statistics index could not be folded on its own thread; the store's thread opens it");
            return Ok(0);
        }
    };
    let stats = stats.clone();
    store
        .call(move |replica| {
            let (stored, report) = folded.finish(replica, REFRESH_DOCUMENTS_PER_JOB);
            log_open(&report);
            let mut state = stats.lock().unwrap_or_else(|p| p.into_inner());
            state.stored = stored;
            state.opened = true;
            report.refresh.reread + report.refresh.from_changes
        })
        .await
}

/// One refresh job on the owner thread, with the state locked: the
/// documents looked at, and how many moved documents are left.
fn refresh_locked<S: Storage>(
    state: &mut StatsState,
    replica: &mut Replica<S>,
    documents_max: usize,
) -> (usize, usize) {
    // An unreadable document keeps its last contribution and is
    // listed by the index; figures go stale, never silently drop.
    if state.opened {
        let report = state.stored.refresh_at_most(replica, documents_max);
        if let Some(error) = &report.write_error {
            tracing::warn!(%error, "statistics entries not persisted; the next start reads those documents again");
        }
        (report.reread + report.from_changes, report.left)
    } else {
        let (stored, report) = StoredStats::open_with(replica, decode_beside);
        log_open(&report);
        state.stored = stored;
        state.opened = true;
        (report.refresh.reread, report.refresh.left)
    }
}

/// Decoded entries the decoding thread may run ahead of the fold.
const DECODED_AHEAD_MAX: usize = 256;

/// Decode the persisted entries on a thread of their own while the store's
/// thread folds them (`StoredStats::open_with`): at a county's restart the
/// decoding was a third of the open, with the other core idle. If no thread
/// can be started, the store's thread decodes them itself.
fn decode_beside(
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    fold: &mut dyn FnMut(&mut dyn Iterator<Item = DecodedStored>),
) {
    let (sender, receiver) = std::sync::mpsc::sync_channel(DECODED_AHEAD_MAX);
    // The entries go to the thread only once it runs; kept here until then.
    let handed = Mutex::new(Some(entries));
    let handed = &handed;
    std::thread::scope(|scope| {
        let started = std::thread::Builder::new()
            .name("civsync-stats-decode".to_string())
            // `sender` moves in: once the thread ends, the fold's iterator does.
            .spawn_scoped(scope, move || {
                let entries = handed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                for (key, value) in entries {
                    // The fold stopped (it panicked): nothing is waiting.
                    if sender.send(decode_stored(key, value)).is_err() {
                        return;
                    }
                }
            });
        match started {
            Ok(_) => fold(&mut receiver.iter()),
            Err(error) => {
                tracing::warn!(%error, "no thread to decode the statistics entries; decoding them here");
                let entries = handed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                fold(
                    &mut entries
                        .into_iter()
                        .map(|(key, value)| decode_stored(key, value)),
                )
            }
        }
    });
}

/// Bring the index up to date and rewrite this county's statistics
/// documents whose figures changed (county nodes only; the caller checks
/// the tier). Answers once the rewrite is durable.
pub async fn publish(
    stats: &SharedStats,
    store: &Store,
    now_ms: i64,
) -> Result<Result<PublishReport, String>, StoreUnavailable> {
    // Most of the refresh in bounded jobs first; the publishing job then
    // takes in only what moved meanwhile.
    refresh(stats, store)
        .await
        .map_err(|StoreClosed| StoreUnavailable::Closed)?;
    let stats = stats.clone();
    store
        .call_durable(move |replica| {
            let mut state = stats.lock().unwrap_or_else(|p| p.into_inner());
            refresh_locked(&mut state, replica, usize::MAX);
            let StatsState {
                stored, publisher, ..
            } = &mut *state;
            publisher
                .publish(replica, stored.index(), now_ms)
                .map_err(|e| e.to_string())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::{decode_beside, refresh, SharedStats};
    use crate::api::stats::above_county_tests::activity;
    use crate::store::Store;
    use civsync_protocol::layout;
    use civsync_protocol::replica::{Replica, ReplicaConfig};
    use civsync_protocol::stats::StoredStats;
    use civsync_protocol::storage::MemoryStorage;
    use civsync_protocol::{DocumentId, Month, StationId};

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    /// One activity in each of `villages` villages, each its own document.
    fn record_in_villages<S: civsync_protocol::storage::Storage>(
        replica: &mut Replica<S>,
        villages: usize,
    ) {
        for n in 0..villages {
            let at = station(&format!("xh/t{}/v{}", n / 26, n % 26));
            let recorded = activity(&format!("a{n}"), at.as_str(), 1 + n as u32);
            replica
                .commit(
                    &DocumentId::activities(&at, Month::new(2026, 11).unwrap()),
                    |doc| layout::put_activity(doc, &recorded),
                )
                .unwrap();
        }
    }

    #[test]
    fn entries_decoded_on_their_own_thread_open_the_index_they_open_in_line() {
        let mut replica = Replica::open(
            MemoryStorage::new(),
            station("xh"),
            1,
            ReplicaConfig::default(),
        )
        .unwrap();
        // More entries than the decoding thread may run ahead of the fold.
        let villages = super::DECODED_AHEAD_MAX + 40;
        record_in_villages(&mut replica, villages);
        // The first open reads every document and writes its entry.
        let (first, report) = StoredStats::open(&mut replica);
        assert_eq!(report.refresh.reread, villages);
        let figures = first.index().statistics();
        drop(first);

        let (beside, beside_report) = StoredStats::open_with(&mut replica, decode_beside);
        let (in_line, in_line_report) = StoredStats::open(&mut replica);
        assert_eq!(beside_report.reused, villages, "{beside_report:?}");
        assert_eq!(beside_report.refresh.reread, 0, "{beside_report:?}");
        assert_eq!(beside_report, in_line_report);
        assert_eq!(beside.index().statistics(), figures);
        assert_eq!(in_line.index().statistics(), figures);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_refreshes_open_the_index_once_beside_the_store_and_as_in_line() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(
            &root.path().join("store"),
            station("xh"),
            ReplicaConfig::default(),
        )
        .unwrap();
        let villages = 30;
        store
            .call(move |replica| record_in_villages(replica, villages))
            .await
            .unwrap();
        let stats = SharedStats::default();
        let (first, second) = tokio::join!(refresh(&stats, &store), refresh(&stats, &store));
        // Nothing was persisted: the one open reads every document; a
        // second open would have read them all again.
        assert_eq!(first.unwrap() + second.unwrap(), villages);
        let figures = stats.lock().unwrap().index().statistics();
        let in_line = store
            .call(|replica| StoredStats::open(replica).0.index().statistics())
            .await
            .unwrap();
        assert_eq!(figures, in_line);
        store.close().await;
    }
}
