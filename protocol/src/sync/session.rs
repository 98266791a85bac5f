//! One unit: the whole state machine of a session — every state, every
//! event and every output in one place, as quinn-proto keeps a connection —
//! so that a transition can be read against all the others. Its tests are
//! in `session/tests.rs`.
//!
//! The sync session with one peer: a sans-IO state machine in the manner of
//! quinn-proto. It reads no clock, draws no randomness and does no IO; the
//! driver (the QUIC node, the simulator, the tests) feeds it bytes, time and
//! local document changes, and takes bytes, events and deadlines out of it.
//! Given the same inputs it produces the same outputs.
//!
//! ```text
//!              new()                     first poll_transmit / handle_bytes:
//!                │                       queue Hello + ScopeRoot (one flight)
//!                ▼
//!          ┌───────────┐  bad hello / wrong version / station or tier
//!          │ Handshake │ ─────────────────────────────────────────┐
//!          └───────────┘   not the certified ones (HelloRejected  │
//!                │          sent, Closed event)                   │
//!                │ peer Hello accepted                            │
//!                ▼                                                │
//!          ┌─────────────┐ roots differ: swap BucketHashes, then  │
//!          │ Reconciling │ BucketContents of differing buckets    │
//!          └─────────────┘                                        │
//!                │ roots equal, or every differing bucket merged  │
//!                ▼                                                ▼
//!          ┌─────────┐  queue drained  ┌──────────┐         ┌────────┐
//!          │ Syncing │ ──────────────▶ │ UpToDate │         │ Closed │
//!          └─────────┘ ◀────────────── └──────────┘         └────────┘
//!                      document_changed /                       ▲
//!                      peer's sync message                      │
//!   any state ── protocol error, idle timeout, close(), Goodbye ┘
//! ```
//!
//! Per document, the two sides run Automerge's own sync loop
//! (`SyncHost::generate_sync_message` / `receive_sync_message`) on the one
//! ordered stream. Every `Sync` message is answered by exactly one frame
//! marked as an answer: a `Sync` with `reply = true`, or a `SyncQuiet` when
//! Automerge has nothing to say. Counting unanswered messages lets each side
//! know when a document's exchange is over even when both sides start one at
//! the same time, which bounds the exchanges in flight
//! ([`SessionConfig::documents_in_flight_max`]) without any timer.
//!
//! Output is generated lazily in [`Session::poll_transmit`]: sync messages
//! are only produced when the driver asks for bytes, so a peer that stops
//! reading costs us bounded memory (one sync message, the queue of owed
//! replies as counters, and at most [`CONTROL_FRAMES_MAX`] small frames).
//!
//! Driver contract: after every input call drain `poll_transmit` (write the
//! bytes, in order, to the stream), drain `poll_event`, and arm a timer for
//! `poll_timeout`. After `Closed`, keep draining `poll_transmit` (it carries
//! the Goodbye or HelloRejected) and then finish the stream.
//!
//! Host contract (beyond the `SyncHost` docs):
//! - the sync state of every open exchange stays in memory until the exchange
//!   ends. A session keeps at most `2 × documents_in_flight_max` exchanges
//!   open per peer (its own and the peer's), so the host's cache of sync
//!   states must hold that many per connected peer. A state dropped
//!   mid-exchange makes Automerge repeat itself; the loop guard
//!   ([`SYNC_MESSAGES_PER_EXCHANGE_MAX`]) then gives the document up for the
//!   session with a readable reason instead of spinning.
//! - in-memory sync states for the peer must not outlive the session (the
//!   replica's `peer_disconnected`): a message lost with a connection would
//!   otherwise leave Automerge waiting for a reply forever.

use crate::identity::document_id::DocumentId;
use crate::identity::station::{StationId, Tier};
use crate::sync::authority::{check_document, Side};
use crate::sync::digest::{bucket_of, differing_documents, ScopeDigest};
use crate::sync::host::{HeadsDigest, MessagePreparer, PreparedMessage, ReceiveError, SyncHost};
use crate::sync::signing::PayloadFormat;
use crate::sync::wire::{
    encode_frame, FrameDecoder, Message, VersionRange, WireError, BUCKET_ENTRIES_PER_FRAME_MAX,
    PROTOCOL_VERSION, REASON_BYTES_MAX, SYNC_CHUNK_BYTES_MAX, SYNC_MESSAGE_BYTES_MAX,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

#[cfg(test)]
mod test_host;
#[cfg(test)]
mod tests;

/// Documents whose exchange this side starts and keeps open at once.
pub const DOCUMENTS_IN_FLIGHT_MAX: usize = 64;
/// Close when nothing at all (not a byte) arrived for this long.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;
/// Send a ping when we sent nothing for this long, so the peer's idle timer
/// does not fire on a quiet but healthy link.
pub const KEEPALIVE_INTERVAL_MS: u64 = 15_000;
/// `poll_transmit` coalesces frames up to about this many bytes per call.
pub const TRANSMIT_BYTES_TARGET: usize = 64 * 1024;
/// Small frames (pongs, refusals) queued while the peer does not read; past
/// this the peer is not reading and the session closes.
pub const CONTROL_FRAMES_MAX: usize = 4096;
/// Events kept for the driver; older ones are dropped past this (counted in
/// [`SessionStatus::events_dropped`]).
pub const EVENTS_QUEUED_MAX: usize = 65_536;
/// Entries one side may list in a single bucket.
pub const BUCKET_ENTRIES_MAX: usize = 65_536;
/// Entries of the peer's differing buckets held at once, over all buckets,
/// before the scope filter runs on a finished bucket. Without it a peer
/// could make a session hold 256 full buckets (16.7 M entries, gigabytes).
/// A county holds ~8,500 documents and a prefecture ten times that, all of
/// which a peer may honestly list; 2^18 entries are ~40 MB at most.
pub const BUCKET_ENTRIES_BUFFERED_MAX: usize = 262_144;
/// Sync messages sent for one document within one exchange. Automerge
/// settles in a handful; more means a loop, and the document is given up for
/// this session instead of spinning forever.
pub const SYNC_MESSAGES_PER_EXCHANGE_MAX: u32 = 256;
/// Documents refused for now (`ReceiveError::Deferred`) that the session
/// remembers to ask the host about again; more are refused all the same
/// and come back at the next reconnect for another reason.
pub const DEFERRED_DOCUMENTS_MAX: usize = 1024;
/// How often the host is asked whether a deferred refusal is lifted (a
/// station registered since, a new day's quota). When one is, the session
/// closes so that the peer, on the new session, offers those documents again:
/// a refusal holds for the rest of a session on both sides.
pub const DEFERRED_RECHECK_MS: u64 = 2_000;
/// Sync messages shorter than this are not handed to the host's preparer:
/// heads and acknowledgements cost the host little, and preparing decodes
/// a message once more. A cold county's whole documents average 4 KB and
/// many are smaller: at 4 KiB, loading those still took half of the store
/// thread's time.
pub const PREPARED_MESSAGE_BYTES_MIN: usize = 512;
/// Input is decoded in slices of this size, so one huge `handle_bytes` call
/// never makes the decoder buffer more than a frame and a slice.
const INPUT_SLICE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub documents_in_flight_max: usize,
    pub idle_timeout_ms: u64,
    pub keepalive_interval_ms: u64,
    pub transmit_bytes_target: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            documents_in_flight_max: DOCUMENTS_IN_FLIGHT_MAX,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            keepalive_interval_ms: KEEPALIVE_INTERVAL_MS,
            transmit_bytes_target: TRANSMIT_BYTES_TARGET,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the peer's hello.
    Handshake,
    /// Comparing scope digests.
    Reconciling,
    /// Documents to exchange, or exchanges under way.
    Syncing,
    /// Nothing pending on this side.
    UpToDate,
    Closed,
}

/// Why a session ended, worded for the clerk who reads the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// `Session::close` was called.
    Local {
        reason: String,
    },
    /// The peer said goodbye.
    PeerGoodbye {
        reason: String,
    },
    /// We refused the peer's hello.
    HelloRejectedByUs {
        reason: String,
    },
    /// The peer refused our hello.
    HelloRejectedByPeer {
        reason: String,
    },
    /// The peer broke the protocol (bad frame, message out of order).
    Protocol {
        problem: String,
    },
    IdleTimeout {
        idle_ms: u64,
    },
    PeerNotReading {
        frames_queued: usize,
    },
    /// The peer ended its stream without a goodbye.
    StreamEnded,
}

impl CloseReason {
    /// An orderly end is not an error worth showing as one.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            CloseReason::Local { .. } | CloseReason::PeerGoodbye { .. }
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local { reason } => write!(f, "closed by this node: {reason}"),
            CloseReason::PeerGoodbye { reason } => write!(f, "the peer closed the session: {reason}"),
            CloseReason::HelloRejectedByUs { reason } => write!(f, "refused the peer's hello: {reason}"),
            CloseReason::HelloRejectedByPeer { reason } => write!(f, "the peer refused our hello: {reason}"),
            CloseReason::Protocol { problem } => write!(
                f,
                "the peer broke the sync protocol ({problem}); closed. If it repeats, check that both nodes run \
                 the same civsync release"
            ),
            CloseReason::IdleTimeout { idle_ms } => write!(
                f,
                "nothing heard from the peer for {} s; the link is probably down. Sync resumes by itself when \
                 the link is back",
                idle_ms / 1000
            ),
            CloseReason::PeerNotReading { frames_queued } => write!(
                f,
                "the peer stopped reading ({frames_queued} frames waiting); closed to bound memory. Sync \
                 resumes on the next connection"
            ),
            CloseReason::StreamEnded => write!(f, "the peer ended the connection without saying goodbye"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The peer's hello was accepted.
    Connected {
        peer: StationId,
        peer_tier: Tier,
    },
    /// Changes from the peer were applied: the driver should tell the other
    /// sessions (`document_changed`) so the changes travel on.
    DocumentUpdated {
        document: DocumentId,
        changes_applied: usize,
        heads_changed: bool,
    },
    /// We refused the peer's message for `document`; the peer was told.
    RefusedByUs {
        document: DocumentId,
        reason: String,
    },
    /// The peer refused our message for `document`.
    RefusedByPeer {
        document: DocumentId,
        reason: String,
    },
    /// Nothing left to exchange on this side (digests matched or every
    /// differing document was synced).
    UpToDate {
        documents_shared: usize,
    },
    Closed {
        reason: CloseReason,
    },
}

/// What the status page shows about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub state: SessionState,
    pub peer: StationId,
    pub peer_tier: Option<Tier>,
    /// The protocol version agreed with the peer, once its hello is in.
    pub protocol_version: Option<u16>,
    pub up_to_date: bool,
    /// Documents this node shares with the peer (at session start).
    pub documents_shared: usize,
    /// Documents the peer said it shares with us (its scope root), once
    /// heard: what a cold sync counts towards.
    pub peer_documents: Option<u64>,
    /// Documents the peer's messages changed here in this session (each
    /// counted once per exchange): a cold sync's documents received.
    pub documents_received: u64,
    /// Documents known to differ, not yet started.
    pub documents_pending: usize,
    /// Documents whose exchange is under way.
    pub documents_in_flight: usize,
    /// Document exchanges finished in this session.
    pub documents_synced: u64,
    /// Documents refused (by either side) for the rest of this session.
    pub documents_refused: usize,
    pub sync_messages_sent: u64,
    pub sync_messages_received: u64,
    /// Changes from the peer applied to our documents.
    pub changes_applied: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub events_dropped: u64,
    pub last_error: Option<String>,
}

/// One document's exchange in this session. Exists only while active.
#[derive(Debug, Default, Clone)]
struct Exchange {
    /// Our `Sync` messages the peer has not answered yet.
    unanswered: u32,
    /// Peer `Sync` messages we have not answered yet.
    replies_owed: u32,
    /// The peer answered our last message: ask Automerge whether we have more.
    followup: bool,
    /// In the `due` queue.
    scheduled: bool,
    /// `Sync` messages sent in this exchange (loop guard).
    messages_sent: u32,
    /// The peer's messages changed the document in this exchange (counted
    /// in `documents_received`).
    received: bool,
}

impl Exchange {
    fn is_idle(&self) -> bool {
        self.unanswered == 0 && self.replies_owed == 0 && !self.followup && !self.scheduled
    }
}

/// A sync message being sent, one fragment per frame.
#[derive(Debug)]
struct Outgoing {
    document: DocumentId,
    reply: bool,
    bytes: Vec<u8>,
    offset: usize,
}

/// A sync message being reassembled. At most one at a time: the sender
/// sends each message's fragments before starting another.
#[derive(Debug)]
struct Incoming {
    document: DocumentId,
    reply: bool,
    message_bytes: usize,
    bytes: Vec<u8>,
}

/// The digest exchange.
#[derive(Debug, Default)]
struct Reconciliation {
    peer_root_seen: bool,
    peer_buckets_seen: bool,
    /// Buckets whose peer entries we await, with those received so far.
    awaited: BTreeMap<u8, Vec<(DocumentId, HeadsDigest)>>,
    /// Entries held in `awaited`, over all buckets.
    buffered_entries: usize,
    /// Buckets whose entries we still have to send, and the next entry.
    to_send: VecDeque<u8>,
    to_send_offset: usize,
    done: bool,
}

/// The peer as the transport certified it: station and tier read from its
/// certificate, never from anything the peer says. The peer's hello must
/// name exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedPeer {
    pub station: StationId,
    pub tier: Tier,
}

pub struct Session {
    local: StationId,
    peer: StationId,
    /// The tier in the peer's certificate; its hello must say the same.
    peer_certified_tier: Tier,
    local_tier: Tier,
    config: SessionConfig,
    now_ms: u64,
    last_received_ms: u64,
    last_sent_ms: u64,
    ping_nonce: u64,

    started: bool,
    peer_tier: Option<Tier>,
    /// The version both ends speak, agreed from the hellos.
    protocol_version: Option<u16>,
    closed: Option<CloseReason>,
    digest: Option<ScopeDigest>,
    reconciliation: Reconciliation,

    decoder: FrameDecoder,
    /// Messages decoded by [`Session::absorb`] and not yet taken in by
    /// [`Session::process_inbox`], each with what the host's preparer made
    /// of it; then the wire error that ended the input, if one did.
    inbox: VecDeque<(Message, Option<PreparedMessage>)>,
    inbox_error: Option<WireError>,
    control: VecDeque<Vec<u8>>,
    outgoing: Option<Outgoing>,
    incoming: Option<Incoming>,

    /// The document count of the peer's scope root, once it came.
    peer_documents: Option<u64>,
    pending: VecDeque<DocumentId>,
    pending_set: BTreeSet<DocumentId>,
    exchanges: BTreeMap<DocumentId, Exchange>,
    due: VecDeque<DocumentId>,
    refused: BTreeSet<DocumentId>,
    /// Refused for now; see [`DEFERRED_DOCUMENTS_MAX`].
    deferred: BTreeSet<DocumentId>,
    deferred_checked_ms: u64,

    events: VecDeque<SessionEvent>,
    up_to_date: bool,
    counters: Counters,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    documents_synced: u64,
    documents_received: u64,
    sync_messages_sent: u64,
    sync_messages_received: u64,
    changes_applied: u64,
    bytes_sent: u64,
    bytes_received: u64,
    frames_sent: u64,
    frames_received: u64,
    events_dropped: u64,
}

/// Cut `reason` to what the wire accepts, on a character boundary.
fn bounded_reason(mut reason: String) -> String {
    if reason.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX - 3;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}

impl Session {
    /// The peer as certified: its tier is the certificate's, not its hello's.
    fn peer_side(&self) -> Side<'_> {
        Side::new(&self.peer, self.peer_certified_tier)
    }

    fn local_side(&self) -> Side<'_> {
        Side::new(&self.local, self.local_tier)
    }

    /// A session with `peer`, whose station and tier the transport has
    /// certified.
    pub fn new(
        local: StationId,
        peer: CertifiedPeer,
        local_tier: Tier,
        now_ms: u64,
        config: SessionConfig,
    ) -> Session {
        assert!(
            config.documents_in_flight_max > 0,
            "at least one document must be allowed in flight"
        );
        assert!(config.idle_timeout_ms > 0 && config.keepalive_interval_ms > 0);
        Session {
            local,
            peer: peer.station,
            peer_certified_tier: peer.tier,
            local_tier,
            config,
            now_ms,
            last_received_ms: now_ms,
            last_sent_ms: now_ms,
            ping_nonce: 0,
            started: false,
            peer_tier: None,
            protocol_version: None,
            closed: None,
            digest: None,
            reconciliation: Reconciliation::default(),
            decoder: FrameDecoder::new(),
            inbox: VecDeque::new(),
            inbox_error: None,
            control: VecDeque::new(),
            outgoing: None,
            incoming: None,
            peer_documents: None,
            pending: VecDeque::new(),
            pending_set: BTreeSet::new(),
            exchanges: BTreeMap::new(),
            due: VecDeque::new(),
            refused: BTreeSet::new(),
            deferred: BTreeSet::new(),
            deferred_checked_ms: now_ms,
            events: VecDeque::new(),
            up_to_date: false,
            counters: Counters::default(),
            last_error: None,
        }
    }

    pub fn peer(&self) -> &StationId {
        &self.peer
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    // ---- inputs ----

    /// Bytes read from the stream, in any chunking.
    pub fn handle_bytes(&mut self, bytes: &[u8], now_ms: u64, host: &mut impl SyncHost) {
        let preparer = host.preparer();
        for slice in bytes.chunks(INPUT_SLICE_BYTES) {
            self.absorb(slice, now_ms);
            if let Some(preparer) = &preparer {
                self.prepare_inbox(preparer.as_ref());
            }
            self.process_inbox(host);
            if self.closed.is_some() {
                return;
            }
        }
        if bytes.is_empty() {
            self.absorb(bytes, now_ms);
            self.process_inbox(host);
        }
    }

    /// The first part of [`handle_bytes`](Self::handle_bytes), without the
    /// host: decode the frames `bytes` complete into the inbox. A driver
    /// whose host lives on another thread calls this and
    /// [`prepare_inbox`](Self::prepare_inbox) where it reads, then
    /// [`process_inbox`](Self::process_inbox) with the host, before any
    /// other input. The inbox holds at most what `bytes` completes: feed it
    /// bounded reads.
    pub fn absorb(&mut self, bytes: &[u8], now_ms: u64) {
        debug_assert!(
            self.inbox.is_empty() && self.inbox_error.is_none(),
            "the inbox is processed before more bytes come"
        );
        self.advance_clock(now_ms);
        if self.closed.is_some() {
            return;
        }
        self.counters.bytes_received += bytes.len() as u64;
        if !bytes.is_empty() {
            // Any byte shows the link is alive: on a slow village link one
            // 1 MiB frame can take longer than the idle timeout to arrive.
            self.last_received_ms = self.now_ms;
        }
        self.decoder.push(bytes);
        loop {
            match self.decoder.pop() {
                Ok(Some(message)) => self.inbox.push_back((message, None)),
                Ok(None) => break,
                Err(error) => {
                    self.inbox_error = Some(error);
                    break;
                }
            }
        }
    }

    /// Let `preparer` work on every sync message in the inbox that came
    /// whole in one frame and has at least [`PREPARED_MESSAGE_BYTES_MIN`]
    /// bytes, so that taking it in later costs the host less.
    /// Needs neither the host nor the session's progress, only the agreed
    /// version (before the hello is taken in, nothing is prepared).
    pub fn prepare_inbox(&mut self, preparer: &dyn MessagePreparer) {
        let Some(version) = self.protocol_version else {
            return;
        };
        let format = PayloadFormat::for_version(version);
        for (message, prepared) in self.inbox.iter_mut() {
            if let Message::Sync {
                document,
                message_bytes,
                offset: 0,
                chunk,
                ..
            } = message
            {
                if preparable(*message_bytes, chunk) {
                    *prepared = preparer.prepare(document, chunk, format);
                }
            }
        }
    }

    /// Bytes of the sync messages in the inbox that
    /// [`prepare_inbox`](Self::prepare_inbox) would look at: a driver hands
    /// the preparing to another thread only when there are some.
    pub fn inbox_preparable_bytes(&self) -> usize {
        if self.protocol_version.is_none() {
            return 0;
        }
        self.inbox
            .iter()
            .map(|(message, _)| match message {
                Message::Sync {
                    message_bytes,
                    offset: 0,
                    chunk,
                    ..
                } if preparable(*message_bytes, chunk) => chunk.len(),
                _ => 0,
            })
            .sum()
    }

    /// Take in what [`absorb`](Self::absorb) decoded, in order, with the
    /// host.
    pub fn process_inbox(&mut self, host: &mut impl SyncHost) {
        if self.closed.is_some() {
            self.inbox.clear();
            self.inbox_error = None;
            return;
        }
        self.start(host);
        while let Some((message, prepared)) = self.inbox.pop_front() {
            self.counters.frames_received += 1;
            self.on_message(message, prepared, host);
            if self.closed.is_some() {
                self.inbox.clear();
                self.inbox_error = None;
                return;
            }
        }
        if let Some(error) = self.inbox_error.take() {
            self.on_wire_error(error);
            return;
        }
        self.refresh_up_to_date();
    }

    /// The peer finished its side of the stream.
    pub fn handle_stream_finished(&mut self, now_ms: u64) {
        self.advance_clock(now_ms);
        if self.closed.is_some() {
            return;
        }
        match self.decoder.finish() {
            Err(error) => self.close_with(
                CloseReason::Protocol {
                    problem: error.to_string(),
                },
                None,
            ),
            Ok(()) => self.close_with(CloseReason::StreamEnded, None),
        }
    }

    /// `document` changed locally (a clerk's commit, or changes received from
    /// another peer). If the peer may hold it, an exchange starts promptly.
    pub fn document_changed(&mut self, document: &DocumentId, host: &mut impl SyncHost) {
        if self.closed.is_some() {
            return;
        }
        self.start(host);
        if check_document(document, self.peer_side(), self.local_side()).is_err()
            || self.refused.contains(document)
        {
            return;
        }
        // An open exchange asks Automerge again when the peer answers, and
        // Automerge then sends the new heads: nothing to add.
        if self.exchanges.contains_key(document) {
            return;
        }
        if self.pending_set.insert(document.clone()) {
            // Live changes go before the reconnect backlog.
            self.pending.push_front(document.clone());
        }
        self.refresh_up_to_date();
    }

    /// Time passed: idle timeout and keepalive.
    pub fn handle_timeout(&mut self, now_ms: u64, host: &mut impl SyncHost) {
        self.advance_clock(now_ms);
        if self.closed.is_some() {
            return;
        }
        self.start(host);
        let idle_ms = self.now_ms.saturating_sub(self.last_received_ms);
        if idle_ms >= self.config.idle_timeout_ms {
            let reason = CloseReason::IdleTimeout { idle_ms };
            self.close_with(
                reason.clone(),
                Some(Message::Goodbye {
                    reason: bounded_reason(reason.to_string()),
                }),
            );
            return;
        }
        if !self.deferred.is_empty()
            && self.now_ms >= self.deferred_checked_ms + DEFERRED_RECHECK_MS
        {
            self.deferred_checked_ms = self.now_ms;
            let peer = self.peer.clone();
            if let Some(document) = self
                .deferred
                .iter()
                .find(|document| host.refusal_lifted(&peer, document))
            {
                let reason = format!(
                    "{document}, refused earlier for now, may be taken in now; reconnecting so that station {peer} \
                     offers it again"
                );
                return self.close(&reason);
            }
        }
        if self.now_ms >= self.last_sent_ms + self.config.keepalive_interval_ms {
            // Frames already waiting keep the peer awake as well as a ping.
            if self.control.is_empty() {
                self.ping_nonce += 1;
                self.push_control(Message::Ping {
                    nonce: self.ping_nonce,
                });
            }
            // Move the deadline either way: a driver that cannot write right
            // now must not be woken again at once, in a loop.
            self.last_sent_ms = self.now_ms;
        }
    }

    /// Close the session; the Goodbye comes out of `poll_transmit`.
    pub fn close(&mut self, reason: &str) {
        if self.closed.is_some() {
            return;
        }
        let reason = bounded_reason(reason.to_string());
        self.close_with(
            CloseReason::Local {
                reason: reason.clone(),
            },
            Some(Message::Goodbye { reason }),
        );
    }

    // ---- outputs ----

    /// Bytes to write to the stream, or `None` when there is nothing to send
    /// now. Whole frames, about `transmit_bytes_target` bytes at most (a
    /// single frame may be larger).
    pub fn poll_transmit(&mut self, host: &mut impl SyncHost) -> Option<Vec<u8>> {
        if self.closed.is_none() {
            self.start(host);
        }
        let mut out = Vec::new();
        while out.len() < self.config.transmit_bytes_target {
            match self.next_frame(host) {
                Some(frame) => {
                    self.counters.frames_sent += 1;
                    out.extend_from_slice(&frame);
                }
                None => break,
            }
        }
        self.refresh_up_to_date();
        if out.is_empty() {
            return None;
        }
        self.counters.bytes_sent += out.len() as u64;
        self.last_sent_ms = self.now_ms;
        Some(out)
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.closed.is_some() {
            return None;
        }
        let idle = self.last_received_ms + self.config.idle_timeout_ms;
        let keepalive = self.last_sent_ms + self.config.keepalive_interval_ms;
        let recheck = if self.deferred.is_empty() {
            u64::MAX
        } else {
            self.deferred_checked_ms + DEFERRED_RECHECK_MS
        };
        Some(idle.min(keepalive).min(recheck))
    }

    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            state: self.state(),
            peer: self.peer.clone(),
            peer_tier: self.peer_tier,
            protocol_version: self.protocol_version,
            up_to_date: self.up_to_date,
            documents_shared: self.digest.as_ref().map_or(0, |digest| digest.documents()),
            peer_documents: self.peer_documents,
            documents_received: self.counters.documents_received,
            documents_pending: self.pending_set.len(),
            documents_in_flight: self.exchanges.len(),
            documents_synced: self.counters.documents_synced,
            documents_refused: self.refused.len(),
            sync_messages_sent: self.counters.sync_messages_sent,
            sync_messages_received: self.counters.sync_messages_received,
            changes_applied: self.counters.changes_applied,
            bytes_sent: self.counters.bytes_sent,
            bytes_received: self.counters.bytes_received,
            frames_sent: self.counters.frames_sent,
            frames_received: self.counters.frames_received,
            events_dropped: self.counters.events_dropped,
            last_error: self.last_error.clone(),
        }
    }

    pub fn state(&self) -> SessionState {
        if self.closed.is_some() {
            SessionState::Closed
        } else if self.peer_tier.is_none() {
            SessionState::Handshake
        } else if !self.reconciliation.done {
            SessionState::Reconciling
        } else if self.up_to_date {
            SessionState::UpToDate
        } else {
            SessionState::Syncing
        }
    }

    // ---- internals ----

    fn advance_clock(&mut self, now_ms: u64) {
        // Time never runs backwards here, whatever the driver's clock does.
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// The first flight: hello and our scope root, computed once per session.
    fn start(&mut self, host: &mut impl SyncHost) {
        if self.started {
            return;
        }
        self.started = true;
        debug_assert_eq!(
            host.local_station(),
            &self.local,
            "host and session disagree on the local station"
        );
        let (peer, local) = (self.peer_side(), self.local_side());
        let shared: Vec<(DocumentId, HeadsDigest)> = host
            .shared_documents(&self.peer)
            .into_iter()
            .filter(|(document, _)| check_document(document, peer, local).is_ok())
            .collect();
        let digest = ScopeDigest::new(shared);
        self.push_control(Message::Hello {
            versions: VersionRange::OURS,
            station: self.local.clone(),
            tier: self.local_tier,
        });
        self.push_control(Message::ScopeRoot {
            documents: digest.documents() as u64,
            root: digest.root(),
        });
        self.digest = Some(digest);
    }

    fn push_event(&mut self, event: SessionEvent) {
        if self.events.len() >= EVENTS_QUEUED_MAX {
            self.events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    fn push_control(&mut self, message: Message) {
        match encode_frame(&message) {
            Ok(frame) => self.control.push_back(frame),
            Err(error) => {
                debug_assert!(false, "our own frame does not encode: {error}");
                self.close_with(
                    CloseReason::Protocol {
                        problem: format!("internal: {error}"),
                    },
                    None,
                );
                return;
            }
        }
        if self.control.len() > CONTROL_FRAMES_MAX && self.closed.is_none() {
            let frames_queued = self.control.len();
            self.close_with(CloseReason::PeerNotReading { frames_queued }, None);
        }
    }

    fn close_with(&mut self, reason: CloseReason, farewell: Option<Message>) {
        debug_assert!(self.closed.is_none());
        self.control.clear();
        self.outgoing = None;
        self.incoming = None;
        self.due.clear();
        self.reconciliation.to_send.clear();
        if let Some(message) = farewell {
            match encode_frame(&message) {
                Ok(frame) => self.control.push_back(frame),
                Err(error) => debug_assert!(false, "farewell does not encode: {error}"),
            }
        }
        if reason.is_error() {
            self.last_error = Some(reason.to_string());
        }
        self.up_to_date = false;
        self.closed = Some(reason.clone());
        self.push_event(SessionEvent::Closed { reason });
    }

    fn violation(&mut self, problem: String) {
        let reason = CloseReason::Protocol { problem };
        let goodbye = Message::Goodbye {
            reason: bounded_reason(reason.to_string()),
        };
        self.close_with(reason, Some(goodbye));
    }

    fn reject_hello(&mut self, reason: String) {
        let reason = bounded_reason(reason);
        let rejection = Message::HelloRejected {
            protocol_version: PROTOCOL_VERSION,
            reason: reason.clone(),
        };
        self.close_with(CloseReason::HelloRejectedByUs { reason }, Some(rejection));
    }

    fn on_wire_error(&mut self, error: WireError) {
        match error {
            WireError::IncompatibleVersion { found, supported } => self.reject_hello(format!(
                "station {} speaks sync protocol {found}, station {} speaks {supported}: they have no \
                 version in common. Install a current civsync release on the older node",
                self.peer, self.local
            )),
            other => self.violation(other.to_string()),
        }
    }

    fn on_message(
        &mut self,
        message: Message,
        prepared: Option<PreparedMessage>,
        host: &mut impl SyncHost,
    ) {
        let name = message_name(&message);
        match message {
            Message::Goodbye { reason } => {
                return self.close_with(CloseReason::PeerGoodbye { reason }, None)
            }
            Message::HelloRejected { reason, .. } => {
                return self.close_with(CloseReason::HelloRejectedByPeer { reason }, None)
            }
            Message::Hello {
                versions,
                station,
                tier,
            } => return self.on_hello(versions, station, tier),
            _ if self.peer_tier.is_none() => return self.violation(format!("{name} before hello")),
            _ => {}
        }
        match message {
            Message::Ping { nonce } => self.push_control(Message::Pong { nonce }),
            Message::Pong { .. } => {}
            Message::ScopeRoot { documents, root } => self.on_scope_root(documents, root),
            Message::BucketHashes { hashes } => self.on_bucket_hashes(&hashes),
            Message::BucketContents {
                bucket,
                entries,
                last,
            } => self.on_bucket_contents(bucket, entries, last, host),
            Message::Sync {
                document,
                reply,
                message_bytes,
                offset,
                chunk,
            } => self.on_sync_fragment(
                document,
                reply,
                message_bytes as usize,
                offset as usize,
                chunk,
                prepared,
                host,
            ),
            Message::SyncQuiet { document } => self.on_quiet(document),
            Message::Refused { document, reason } => {
                self.on_refused_by_peer(document, reason, host)
            }
            Message::Goodbye { .. } | Message::HelloRejected { .. } | Message::Hello { .. } => {
                unreachable!("handled above")
            }
        }
    }

    /// How sync payloads are framed with this peer: signed envelopes from
    /// wire version 4. Sync messages flow only after the hello.
    fn payload_format(&self) -> PayloadFormat {
        debug_assert!(self.protocol_version.is_some(), "sync before the hello");
        PayloadFormat::for_version(self.protocol_version.unwrap_or(PROTOCOL_VERSION))
    }

    fn on_hello(&mut self, versions: VersionRange, station: StationId, tier: Tier) {
        if self.peer_tier.is_some() {
            return self.violation("a second hello".to_string());
        }
        // The decoder refuses ranges without a common version; a session
        // fed messages another way must not start on one either.
        let Some(protocol_version) = versions.negotiate(VersionRange::OURS) else {
            return self.on_wire_error(WireError::IncompatibleVersion {
                found: versions,
                supported: VersionRange::OURS,
            });
        };
        if station != self.peer {
            return self.reject_hello(format!(
                "the peer says it is station {station} but its certificate is for station {}: check the station \
                 id configured on that node and the certificate it was issued",
                self.peer
            ));
        }
        if tier != self.peer_certified_tier {
            return self.reject_hello(format!(
                "station {station} says it is a {tier} node but its certificate is for a {} node: check the tier \
                 configured on that node and the certificate it was issued",
                self.peer_certified_tier
            ));
        }
        debug_assert!(station == self.peer && tier == self.peer_certified_tier);
        // Every message after the hello is of this version: from 4 on, sync
        // payloads are signed envelopes (`payload_format`); frames are the
        // same in 3 and 4.
        debug_assert!(VersionRange::OURS
            .negotiate(VersionRange::exactly(protocol_version))
            .is_some());
        self.protocol_version = Some(protocol_version);
        self.peer_tier = Some(tier);
        self.push_event(SessionEvent::Connected {
            peer: station,
            peer_tier: tier,
        });
    }

    fn on_scope_root(&mut self, documents: u64, root: [u8; 16]) {
        if self.reconciliation.peer_root_seen {
            return self.violation("a second scope root".to_string());
        }
        self.reconciliation.peer_root_seen = true;
        self.peer_documents = Some(documents);
        let Some(digest) = &self.digest else {
            return self.violation("internal: no local digest".to_string());
        };
        if digest.root() == root && digest.documents() as u64 == documents {
            self.reconciliation.done = true;
            return;
        }
        let hashes = digest.bucket_hashes().to_vec();
        self.push_control(Message::BucketHashes { hashes });
    }

    fn on_bucket_hashes(&mut self, hashes: &[[u8; 16]]) {
        let reconciliation = &mut self.reconciliation;
        if !reconciliation.peer_root_seen || reconciliation.done || reconciliation.peer_buckets_seen
        {
            return self.violation("bucket hashes that were not asked for".to_string());
        }
        reconciliation.peer_buckets_seen = true;
        let Some(digest) = &self.digest else {
            return self.violation("internal: no local digest".to_string());
        };
        let differing = digest.differing_buckets(hashes);
        for bucket in &differing {
            reconciliation.awaited.insert(*bucket, Vec::new());
            reconciliation.to_send.push_back(*bucket);
        }
        reconciliation.to_send_offset = 0;
        if differing.is_empty() {
            // Same buckets but different roots: only a count mismatch, which
            // equal buckets rule out. Nothing to sync.
            reconciliation.done = true;
        }
    }

    fn on_bucket_contents(
        &mut self,
        bucket: u8,
        entries: Vec<(DocumentId, HeadsDigest)>,
        last: bool,
        host: &mut impl SyncHost,
    ) {
        let Some(received) = self.reconciliation.awaited.get_mut(&bucket) else {
            return self.violation(format!(
                "entries of bucket {bucket}, which was not asked for"
            ));
        };
        if received.len() + entries.len() > BUCKET_ENTRIES_MAX {
            return self.violation(format!(
                "more than {BUCKET_ENTRIES_MAX} entries in bucket {bucket}"
            ));
        }
        let buffered = self.reconciliation.buffered_entries + entries.len();
        if buffered > BUCKET_ENTRIES_BUFFERED_MAX {
            return self.violation(format!(
                "more than {BUCKET_ENTRIES_BUFFERED_MAX} bucket entries listed before the buckets \
                 were complete"
            ));
        }
        if let Some((document, _)) = entries
            .iter()
            .find(|(document, _)| bucket_of(document) != bucket)
        {
            return self.violation(format!(
                "document {document} listed in the wrong bucket {bucket}"
            ));
        }
        received.extend(entries);
        self.reconciliation.buffered_entries = buffered;
        if !last {
            return;
        }
        let mut theirs = self
            .reconciliation
            .awaited
            .remove(&bucket)
            .unwrap_or_default();
        self.reconciliation.buffered_entries -= theirs.len();
        theirs.sort_by(|a, b| a.0.cmp(&b.0));
        theirs.dedup_by(|a, b| a.0 == b.0);
        let ours = self
            .digest
            .as_ref()
            .map_or(&[][..], |digest| digest.bucket(bucket));
        for document in differing_documents(ours, &theirs) {
            if let Err(error) = check_document(&document, self.peer_side(), self.local_side()) {
                self.refuse(
                    &document,
                    format!("listed by the peer but not shared: {error}"),
                    host,
                );
            } else if !self.refused.contains(&document) && self.pending_set.insert(document.clone())
            {
                self.pending.push_back(document);
            }
        }
        if self.reconciliation.awaited.is_empty() {
            self.reconciliation.done = true;
        }
    }

    // The wire fields of a `Sync` frame, what was prepared of it, the host.
    #[allow(clippy::too_many_arguments)]
    fn on_sync_fragment(
        &mut self,
        document: DocumentId,
        reply: bool,
        message_bytes: usize,
        offset: usize,
        chunk: Vec<u8>,
        prepared: Option<PreparedMessage>,
        host: &mut impl SyncHost,
    ) {
        let incoming = match self.incoming.take() {
            None if offset == 0 => Incoming {
                document,
                reply,
                message_bytes,
                bytes: Vec::new(),
            },
            None => {
                return self.violation(format!(
                    "sync fragment for {document} at offset {offset} without a start"
                ))
            }
            Some(incoming) => {
                if incoming.document != document
                    || incoming.reply != reply
                    || incoming.message_bytes != message_bytes
                    || incoming.bytes.len() != offset
                {
                    return self.violation(format!(
                        "sync fragment for {document} at offset {offset} interleaved with the message for {} at \
                         offset {}",
                        incoming.document,
                        incoming.bytes.len()
                    ));
                }
                incoming
            }
        };
        let mut incoming = incoming;
        // Limits were checked by the decoder: the message stays within
        // SYNC_MESSAGE_BYTES_MAX, and memory grows only as bytes arrive.
        debug_assert!(incoming.bytes.len() + chunk.len() <= incoming.message_bytes);
        incoming.bytes.extend_from_slice(&chunk);
        if incoming.bytes.len() < incoming.message_bytes {
            self.incoming = Some(incoming);
            return;
        }
        self.on_sync_message(
            incoming.document,
            incoming.reply,
            &incoming.bytes,
            prepared,
            host,
        );
    }

    fn on_sync_message(
        &mut self,
        document: DocumentId,
        reply: bool,
        bytes: &[u8],
        prepared: Option<PreparedMessage>,
        host: &mut impl SyncHost,
    ) {
        self.counters.sync_messages_received += 1;
        if self.refused.contains(&document) {
            // Sent before the peer heard of the refusal; it was told.
            return;
        }
        if let Err(error) = check_document(&document, self.peer_side(), self.local_side()) {
            return self.refuse(&document, error.to_string(), host);
        }
        let exchange = self.exchanges.entry(document.clone()).or_default();
        if reply {
            if exchange.unanswered == 0 {
                return self.violation(format!(
                    "an answer for {document} to a message we never sent"
                ));
            }
            exchange.unanswered -= 1;
        }
        let format = self.payload_format();
        match host.receive_prepared_sync_message(&self.peer, &document, bytes, format, prepared) {
            Ok(outcome) => {
                self.counters.changes_applied += outcome.changes_applied as u64;
                if outcome.changes_applied > 0 || outcome.heads_changed {
                    if let Some(exchange) = self.exchanges.get_mut(&document) {
                        if !exchange.received {
                            exchange.received = true;
                            self.counters.documents_received += 1;
                        }
                    }
                    self.push_event(SessionEvent::DocumentUpdated {
                        document: document.clone(),
                        changes_applied: outcome.changes_applied,
                        heads_changed: outcome.heads_changed,
                    });
                }
            }
            Err(error) => {
                self.refuse(&document, receive_error_reason(&error), host);
                if matches!(error, ReceiveError::Deferred { .. })
                    && self.refused.contains(&document)
                    && self.deferred.len() < DEFERRED_DOCUMENTS_MAX
                {
                    self.deferred.insert(document);
                }
                return;
            }
        }
        if let Some(exchange) = self.exchanges.get_mut(&document) {
            exchange.replies_owed += 1;
        }
        self.schedule(&document);
    }

    fn on_quiet(&mut self, document: DocumentId) {
        if self.refused.contains(&document) {
            return;
        }
        let Some(exchange) = self
            .exchanges
            .get_mut(&document)
            .filter(|exchange| exchange.unanswered > 0)
        else {
            return self.violation(format!(
                "a quiet answer for {document} to a message we never sent"
            ));
        };
        exchange.unanswered -= 1;
        if exchange.unanswered == 0 {
            exchange.followup = true;
            self.schedule(&document);
        }
    }

    fn on_refused_by_peer(
        &mut self,
        document: DocumentId,
        reason: String,
        host: &mut impl SyncHost,
    ) {
        if check_document(&document, self.peer_side(), self.local_side()).is_err() {
            return self.violation(format!("a refusal of {document}, which we do not share"));
        }
        self.last_error = Some(format!(
            "station {} refused document {document}: {reason}",
            self.peer
        ));
        host.reset_sync_state(&self.peer, &document);
        self.forget(&document);
        self.refused.insert(document.clone());
        self.push_event(SessionEvent::RefusedByPeer { document, reason });
    }

    /// Refuse `document` for the rest of this session and tell the peer.
    fn refuse(&mut self, document: &DocumentId, reason: String, host: &mut impl SyncHost) {
        let reason = bounded_reason(reason);
        self.last_error = Some(format!(
            "refused document {document} from station {}: {reason}",
            self.peer
        ));
        self.push_event(SessionEvent::RefusedByUs {
            document: document.clone(),
            reason: reason.clone(),
        });
        self.forget(document);
        if check_document(document, self.peer_side(), self.local_side()).is_ok() {
            host.reset_sync_state(&self.peer, document);
            // Only shared documents are remembered: the set stays bounded by
            // the scope whatever ids a peer makes up.
            self.refused.insert(document.clone());
        }
        self.push_control(Message::Refused {
            document: document.clone(),
            reason,
        });
    }

    fn forget(&mut self, document: &DocumentId) {
        self.exchanges.remove(document);
        if self.pending_set.remove(document) {
            self.pending.retain(|pending| pending != document);
        }
    }

    fn schedule(&mut self, document: &DocumentId) {
        if let Some(exchange) = self.exchanges.get_mut(document) {
            if !exchange.scheduled {
                exchange.scheduled = true;
                self.due.push_back(document.clone());
            }
        }
    }

    fn finish_if_idle(&mut self, document: &DocumentId) {
        if self.exchanges.get(document).is_some_and(Exchange::is_idle) {
            self.exchanges.remove(document);
            self.counters.documents_synced += 1;
        }
    }

    fn refresh_up_to_date(&mut self) {
        let now_up_to_date = self.closed.is_none()
            && self.peer_tier.is_some()
            && self.reconciliation.done
            && self.pending_set.is_empty()
            && self.exchanges.is_empty()
            && self.outgoing.is_none()
            && self.incoming.is_none()
            && self.reconciliation.to_send.is_empty();
        if now_up_to_date && !self.up_to_date {
            let documents_shared = self.digest.as_ref().map_or(0, |digest| digest.documents());
            self.push_event(SessionEvent::UpToDate { documents_shared });
        }
        self.up_to_date = now_up_to_date;
    }

    fn encode(&mut self, message: &Message) -> Option<Vec<u8>> {
        match encode_frame(message) {
            Ok(frame) => Some(frame),
            Err(error) => {
                debug_assert!(false, "our own frame does not encode: {error}");
                self.violation(format!("internal: {error}"));
                None
            }
        }
    }

    /// The next frame to send, generating work lazily, in priority order:
    /// control frames, our digest entries, the sync message being sent,
    /// answers owed, then new exchanges.
    fn next_frame(&mut self, host: &mut impl SyncHost) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.control.pop_front() {
                return Some(frame);
            }
            if self.closed.is_some() {
                return None;
            }
            if let Some(frame) = self.next_bucket_contents() {
                return Some(frame);
            }
            if let Some(frame) = self.next_fragment() {
                return Some(frame);
            }
            // Nothing document-related goes out before the peer is known.
            self.peer_tier?;
            if let Some(document) = self.due.pop_front() {
                if let Some(frame) = self.answer(&document, host) {
                    return Some(frame);
                }
                continue;
            }
            if self.exchanges.len() < self.config.documents_in_flight_max {
                if let Some(document) = self.pending.pop_front() {
                    self.pending_set.remove(&document);
                    self.initiate(&document, host);
                    continue;
                }
            }
            return None;
        }
    }

    fn next_bucket_contents(&mut self) -> Option<Vec<u8>> {
        let bucket = *self.reconciliation.to_send.front()?;
        let entries = self
            .digest
            .as_ref()
            .map_or(&[][..], |digest| digest.bucket(bucket));
        let start = self.reconciliation.to_send_offset.min(entries.len());
        let end = (start + BUCKET_ENTRIES_PER_FRAME_MAX).min(entries.len());
        let last = end == entries.len();
        let message = Message::BucketContents {
            bucket,
            entries: entries[start..end].to_vec(),
            last,
        };
        if last {
            self.reconciliation.to_send.pop_front();
            self.reconciliation.to_send_offset = 0;
        } else {
            self.reconciliation.to_send_offset = end;
        }
        self.encode(&message)
    }

    fn next_fragment(&mut self) -> Option<Vec<u8>> {
        let outgoing = self.outgoing.as_mut()?;
        let start = outgoing.offset;
        let end = (start + SYNC_CHUNK_BYTES_MAX).min(outgoing.bytes.len());
        let message = Message::Sync {
            document: outgoing.document.clone(),
            reply: outgoing.reply,
            message_bytes: outgoing.bytes.len() as u32,
            offset: start as u32,
            chunk: outgoing.bytes[start..end].to_vec(),
        };
        outgoing.offset = end;
        if end == outgoing.bytes.len() {
            self.outgoing = None;
        }
        self.encode(&message)
    }

    /// Work on a document in the `due` queue: answer one peer message, or
    /// ask Automerge whether we have more after the peer answered ours.
    fn answer(&mut self, document: &DocumentId, host: &mut impl SyncHost) -> Option<Vec<u8>> {
        debug_assert!(
            self.outgoing.is_none(),
            "answers wait until the current sync message is out"
        );
        let exchange = self.exchanges.get_mut(document)?;
        exchange.scheduled = false;
        // Either branch asks Automerge for what it has, which is all that a
        // follow-up wants: clear it, or the exchange never becomes idle.
        exchange.followup = false;
        let frame = if exchange.replies_owed > 0 {
            exchange.replies_owed -= 1;
            let more = exchange.replies_owed > 0;
            let format = self.payload_format();
            let frame = match host.generate_sync_message(&self.peer, document, format) {
                Ok(Some(bytes)) => {
                    self.start_outgoing(document, true, bytes, host);
                    None
                }
                Ok(None) => self.encode(&Message::SyncQuiet {
                    document: document.clone(),
                }),
                Err(error) => {
                    self.refuse(
                        document,
                        format!("this node could not prepare it: {error}"),
                        host,
                    );
                    None
                }
            };
            if more {
                self.schedule(document);
            }
            frame
        } else {
            if exchange.unanswered == 0 {
                self.generate_unprompted(document, host);
            }
            None
        };
        self.finish_if_idle(document);
        frame
    }

    fn initiate(&mut self, document: &DocumentId, host: &mut impl SyncHost) {
        if self.refused.contains(document) || self.exchanges.contains_key(document) {
            return;
        }
        self.exchanges.insert(document.clone(), Exchange::default());
        self.generate_unprompted(document, host);
        self.finish_if_idle(document);
    }

    /// Ask Automerge for a message that answers nothing (a new exchange, or
    /// more to say after the peer answered).
    fn generate_unprompted(&mut self, document: &DocumentId, host: &mut impl SyncHost) {
        match host.generate_sync_message(&self.peer, document, self.payload_format()) {
            Ok(Some(bytes)) => self.start_outgoing(document, false, bytes, host),
            Ok(None) => {}
            Err(error) => self.refuse(
                document,
                format!("this node could not prepare it: {error}"),
                host,
            ),
        }
    }

    fn start_outgoing(
        &mut self,
        document: &DocumentId,
        reply: bool,
        bytes: Vec<u8>,
        host: &mut impl SyncHost,
    ) {
        debug_assert!(self.outgoing.is_none());
        if bytes.len() > SYNC_MESSAGE_BYTES_MAX {
            let reason = format!(
                "its sync message is {} bytes, more than the limit of {SYNC_MESSAGE_BYTES_MAX}; compact or split \
                 the document",
                bytes.len()
            );
            return self.refuse(document, reason, host);
        }
        let Some(exchange) = self.exchanges.get_mut(document) else {
            return;
        };
        if exchange.messages_sent >= SYNC_MESSAGES_PER_EXCHANGE_MAX {
            let reason = format!(
                "sync did not settle after {SYNC_MESSAGES_PER_EXCHANGE_MAX} messages; given up for this session"
            );
            return self.refuse(document, reason, host);
        }
        exchange.messages_sent += 1;
        exchange.unanswered += 1;
        self.counters.sync_messages_sent += 1;
        self.outgoing = Some(Outgoing {
            document: document.clone(),
            reply,
            bytes,
            offset: 0,
        });
    }
}

fn receive_error_reason(error: &ReceiveError) -> String {
    match error {
        ReceiveError::Refused(authority) => format!("not authorised: {authority}"),
        ReceiveError::Malformed { reason, .. } => format!("malformed sync message: {reason}"),
        ReceiveError::Deferred { reason, .. } => format!("refused for now: {reason}"),
        ReceiveError::SchemaTooNew { found, supported, .. } => format!(
            "the document has schema version {found} but this node understands up to {supported}: upgrade civsync \
             on this node"
        ),
        ReceiveError::Storage { reason, .. } => {
            format!("this node could not store it ({reason}); check the disk of this node")
        }
    }
}

/// A sync message worth preparing: whole in this one frame, and long.
fn preparable(message_bytes: u32, chunk: &[u8]) -> bool {
    chunk.len() as u64 == u64::from(message_bytes) && chunk.len() >= PREPARED_MESSAGE_BYTES_MIN
}

fn message_name(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "hello",
        Message::HelloRejected { .. } => "hello-rejected",
        Message::ScopeRoot { .. } => "scope root",
        Message::BucketHashes { .. } => "bucket hashes",
        Message::BucketContents { .. } => "bucket contents",
        Message::Sync { .. } => "sync message",
        Message::SyncQuiet { .. } => "sync quiet",
        Message::Refused { .. } => "refusal",
        Message::Ping { .. } => "ping",
        Message::Pong { .. } => "pong",
        Message::Goodbye { .. } => "goodbye",
    }
}
