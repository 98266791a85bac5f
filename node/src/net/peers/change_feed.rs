//! The change feed: what the store's jobs changed (local commits, changes
//! received from a peer), taken from the replica and offered to every
//! session, which pushes it to its peer.
//!
//! The store wakes the feed after any job that leaves documents changed;
//! the feed then lingers until the burst is over, so a clerk's run of
//! writes goes out in one exchange instead of one exchange a write.

use super::{LIVE_PUSH_LINGER_MAX_MS, LIVE_PUSH_POLL_MS, LIVE_PUSH_QUIET_MS};
use crate::store::Store;
use civsync_protocol::identity::document_id::DocumentId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// When the change feed takes what changed and offers it to the sessions.
#[derive(Debug, Clone, Copy)]
pub(super) struct FeedTiming {
    /// Taken at least this often even without a wake from the store.
    pub(super) fallback_poll: Duration,
    /// After a wake, taken once no further change came for this long...
    pub(super) quiet: Duration,
    /// ...or this long after the wake, whichever comes first.
    pub(super) linger_max: Duration,
}

pub(super) const FEED_TIMING: FeedTiming = FeedTiming {
    fallback_poll: Duration::from_millis(LIVE_PUSH_POLL_MS),
    quiet: Duration::from_millis(LIVE_PUSH_QUIET_MS),
    linger_max: Duration::from_millis(LIVE_PUSH_LINGER_MAX_MS),
};

/// Collects changed documents from the store and offers them to every
/// session: woken by the store when a job leaves documents changed, it
/// lingers until the burst is over (`quiet`, at most `linger_max`), so a
/// clerk's run of writes goes out in one exchange rather than one each.
pub(super) async fn change_feed(
    store: Store,
    changes: broadcast::Sender<Arc<Vec<DocumentId>>>,
    mut stop: watch::Receiver<bool>,
    timing: FeedTiming,
) {
    loop {
        tokio::select! {
            _ = store.documents_changed() => {
                let linger_until = Instant::now() + timing.linger_max;
                loop {
                    let quiet_until = (Instant::now() + timing.quiet).min(linger_until);
                    tokio::select! {
                        _ = tokio::time::sleep_until(quiet_until) => break,
                        _ = store.documents_changed() => if Instant::now() >= linger_until { break },
                        _ = stop.changed() => return,
                    }
                }
            }
            _ = tokio::time::sleep(timing.fallback_poll) => {}
            _ = stop.changed() => return,
        }
        let Ok(changed) = store.call(|replica| replica.take_changed_documents()).await else {
            return;
        };
        if !changed.is_empty() {
            // No receiver simply means no session right now.
            let _ = changes.send(Arc::new(changed));
        }
    }
}

/// The batch just received and every one queued behind it, so a session
/// takes them in one step (at most `CHANGE_FEED_LEN`); `Err(missed)` if it
/// fell behind meanwhile.
pub(super) fn queued_batches(
    first: Arc<Vec<DocumentId>>,
    changes: &mut broadcast::Receiver<Arc<Vec<DocumentId>>>,
) -> Result<Vec<Arc<Vec<DocumentId>>>, u64> {
    let mut batches = vec![first];
    loop {
        match changes.try_recv() {
            Ok(batch) => batches.push(batch),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => return Err(missed),
            Err(_) => return Ok(batches),
        }
    }
}
