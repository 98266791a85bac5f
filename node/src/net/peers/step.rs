//! One step of a sync session against the store: the input run on the
//! owner thread with the replica's flush deferred, and the rule for when the
//! bytes it produced may leave (only once what the session wrote is
//! durable). Kept apart from the link's life cycle in `peers.rs`, which only
//! feeds steps and writes what they return.

use super::Shared;
use crate::store::{Durable, SledStorage};
use civsync_protocol::identity::document_id::DocumentId;
use civsync_protocol::replica::{PeerIntake, Replica};
use civsync_protocol::sync::session::{Session, SessionEvent, SessionStatus};
use std::sync::Arc;

/// One thing to do to the session on the store's owner thread.
pub(super) enum SessionInput {
    Bytes(Vec<u8>),
    /// Bytes already decoded into the session's inbox (see [`step`]).
    Absorbed,
    StreamFinished,
    Timeout,
    /// Batches from the change feed, in the order they were offered.
    Changed(Vec<Arc<Vec<DocumentId>>>),
    Close(String),
    /// Produce the next buffer to send.
    Transmit,
}

pub(super) struct StepOutput {
    pub(super) transmit: Option<Vec<u8>>,
    /// Set when `transmit` may leave only after a flush still to come: the
    /// writer waits for it (see [`step`]).
    pub(super) durable: Option<Durable>,
    pub(super) events: Vec<SessionEvent>,
    pub(super) status: SessionStatus,
    pub(super) timeout_ms: Option<u64>,
    pub(super) closed: bool,
    pub(super) intake: Option<PeerIntake>,
}

/// `owed` of a session before its first step: every batch applied so far.
pub(super) const OWED_FROM_THE_START: u64 = u64::MAX;

/// Runs `input` through the session on the owner thread and returns the
/// session with what came out. `None` if the store is closed.
///
/// What the session receives is written with the flush deferred, and
/// `owed` remembers the last batch it wrote. Bytes to send (a `Transmit`)
/// come back with `durable` set while that batch is not yet durable, and
/// the link's writer sends them only once it is: a peer is never answered
/// with what a crash here could lose. The flush runs on the flush thread,
/// shared with every other session and commit; neither the owner thread
/// nor the session waits for the disk (a cold county's 2,600 documents
/// were 2,600 flushes on the owner, one after another; a cold township's
/// session then waited out one flush a document before taking in the
/// next). Writes of other work — another session's, the statistics index's
/// entries — do not hold this session's bytes.
pub(super) async fn step(
    shared: &Shared,
    session: Session,
    input: SessionInput,
    owed: &mut u64,
) -> Option<(Session, StepOutput)> {
    let now_ms = shared.now_ms();
    // Decoding frames is copying; a read is at most `READ_CHUNK_BYTES_MAX`.
    let (session, input) = match input {
        SessionInput::Bytes(bytes) => {
            let mut session = session;
            session.absorb(&bytes, now_ms);
            // Sync messages a read completed, but for the shortest (see
            // `PREPARED_MESSAGE_BYTES_MIN`), are prepared on a blocking
            // thread: loaded, and their signatures checked.
            if session.inbox_preparable_bytes() > 0 {
                session = prepared_off_owner(shared, session).await?;
            }
            (session, SessionInput::Absorbed)
        }
        other => (session, other),
    };
    let transmit_wanted = matches!(input, SessionInput::Transmit);
    let owed_before = *owed;
    let work = move |replica: &mut Replica<SledStorage>| {
        let mut session = session;
        let applied_before = replica.storage().applied();
        replica.set_flush_deferred(true);
        let mut transmit = None;
        match input {
            SessionInput::Bytes(bytes) => session.handle_bytes(&bytes, now_ms, replica),
            SessionInput::Absorbed => session.process_inbox(replica),
            SessionInput::StreamFinished => session.handle_stream_finished(now_ms),
            SessionInput::Timeout => session.handle_timeout(now_ms, replica),
            SessionInput::Changed(batches) => {
                let mut offered = std::collections::BTreeSet::new();
                for document in batches.iter().flat_map(|batch| batch.iter()) {
                    if offered.insert(document) {
                        session.document_changed(document, replica);
                    }
                }
            }
            SessionInput::Close(reason) => session.close(&reason),
            SessionInput::Transmit => transmit = session.poll_transmit(replica),
        }
        replica.set_flush_deferred(false);
        let applied = replica.storage().applied();
        // A new session owes everything written before it began too: what
        // it tells the peer it holds may have arrived on an earlier link.
        let owed = if applied > applied_before || owed_before == OWED_FROM_THE_START {
            applied
        } else {
            owed_before
        };
        let mut events = Vec::new();
        while let Some(event) = session.poll_event() {
            events.push(event);
        }
        let status = session.status();
        let timeout_ms = session.poll_timeout();
        let closed = session.is_closed();
        let intake = replica.peer_intake_of(session.peer());
        let out = StepOutput {
            transmit,
            events,
            status,
            timeout_ms,
            closed,
            intake,
            durable: None,
        };
        ((session, out), owed)
    };
    if !transmit_wanted {
        let ((session, out), owed_now) = shared.store.call(work).await.ok()?;
        *owed = owed_now;
        return Some((session, out));
    }
    let (((session, mut out), owed_now), durable) = shared
        .store
        .call_with_durable(move |replica| {
            let answer = work(replica);
            let needed = answer.1;
            (answer, needed)
        })
        .await
        .ok()?;
    *owed = owed_now;
    out.durable = durable;
    Some((session, out))
}

/// Load the whole documents in the session's inbox on a blocking thread:
/// a cold county receives 2,600 of them, and loading each on the owner
/// thread held every other link's turn there. `None` if the blocking pool is
/// gone (the runtime is shutting down).
async fn prepared_off_owner(shared: &Shared, session: Session) -> Option<Session> {
    let preparer = shared.store.preparer();
    tokio::task::spawn_blocking(move || {
        let mut session = session;
        session.prepare_inbox(&preparer);
        session
    })
    .await
    .ok()
}
