//! A cold sync's progress: a session whose peer announces many more
//! documents than this node shares with it (an empty node, or one far
//! behind) is a job in the node's progress registry, counting the documents
//! received against the peer's announced count and the bytes received,
//! until the session is up to date or ends.

use crate::progress::{CountUnit, JobKind, Progress, ProgressJob};
use civsync_protocol::sync::session::SessionStatus;
use civsync_protocol::StationId;

/// A session is a cold sync when the peer announces at least this many
/// documents more than this node shares with it.
pub const COLD_SYNC_DOCUMENTS_MIN: u64 = 16;

/// Whether a session whose peer announced `peer_documents`, while this
/// node shares `documents_here` with it, is a cold sync.
pub fn is_cold(documents_here: usize, peer_documents: u64) -> bool {
    peer_documents >= (documents_here as u64).saturating_add(COLD_SYNC_DOCUMENTS_MIN)
}

/// Follows one session's status into the registry.
pub struct ColdSyncProgress {
    progress: Progress,
    peer: StationId,
    judged: bool,
    job: Option<ProgressJob>,
}

impl ColdSyncProgress {
    pub fn new(progress: Progress, peer: StationId) -> ColdSyncProgress {
        ColdSyncProgress {
            progress,
            peer,
            judged: false,
            job: None,
        }
    }

    /// After each step of the session: start the job once the peer's count
    /// shows a cold sync, count into it, finish it once up to date.
    pub fn observe(&mut self, status: &SessionStatus) {
        if !self.judged {
            let Some(announced) = status.peer_documents else {
                return;
            };
            self.judged = true;
            if is_cold(status.documents_shared, announced) {
                let job = self.progress.start(
                    JobKind::ColdSync,
                    self.peer.to_string(),
                    CountUnit::Documents,
                    Some(announced),
                );
                job.set_phase("receiving documents");
                self.job = Some(job);
            }
        }
        let Some(job) = &self.job else { return };
        job.set_counts(status.documents_received, status.bytes_received);
        if status.up_to_date {
            if let Some(job) = self.job.take() {
                job.finish("up to date");
            }
        }
    }

    /// The session ended: a cold sync still running ends with it.
    pub fn end(&mut self, error: Option<&str>) {
        if let Some(job) = self.job.take() {
            match error {
                Some(reason) => job.fail(format!("the link ended: {reason}")),
                None => job.fail("the session ended before it was up to date"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_a_cold_sync_when_the_peer_holds_many_more_documents() {
        assert!(is_cold(0, 104));
        assert!(is_cold(10, 26));
        assert!(!is_cold(10, 25));
        assert!(!is_cold(2_600, 2_600));
        assert!(!is_cold(0, 3), "a handful is no cold sync");
    }
}
