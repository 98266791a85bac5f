//! One unit: the connection manager's life cycle of a link — dial, accept,
//! supersede, run a session, back off, report — is one state machine over
//! shared peer state (`PeerTable`), and its races (crossing dials, restarts,
//! flapping) are only checkable in one place. Its tests are in
//! `peers/tests.rs`.
//!
//! The connection manager: keeps links to the configured peers up and runs
//! one sync `Session` per link against the store.
//!
//! - Every dialled peer (parent, fallback, siblings) has a task that connects
//!   with exponential backoff and jitter (`Backoff`), runs the session while
//!   the link lives, and starts over. The fallback is dialled only while the
//!   parent is not connected.
//! - An accept loop takes links from children (and from siblings that dial us).
//! - At most one session per peer station at a time: the replica keeps one
//!   in-memory sync state per (peer, document), so two sessions with the same
//!   peer would corrupt each other's exchanges. A new link with a station
//!   already in session is judged (`judge_new_link`) before any session
//!   starts on it:
//!   - the peer opened both links: it dialled again, which it does only once
//!     it lost the old link (it restarted, or its side broke), so the new
//!     link supersedes the old one. Otherwise a SIGKILLed and restarted child
//!     would be locked out until the old connection's idle timeout;
//!   - the links were opened by different sides within `CROSSING_WINDOW_MS`
//!     (siblings dialling each other at the same moment): on both sides the
//!     link dialled by the smaller station wins, so exactly one survives
//!     whatever the timing;
//!   - the peer dialled us long after our own link to it was up: it lost
//!     that link (restarted); supersede;
//!   - we opened both (one station configured twice): the old one stays.
//!
//!   A superseded link is closed at once (`CLOSE_SUPERSEDED`, no goodbye:
//!   its peer is presumed gone), and the new session starts only after the
//!   old one has ended and the replica has dropped the peer's sync states.
//! - Two live nodes holding one certificate would supersede each other
//!   without end. Past `LINK_SUPERSEDES_MAX` supersedes for one station
//!   within `SUPERSEDE_WINDOW_MS`, new links from it are refused for
//!   `SUPERSEDE_BACKOFF_MS` (an error in the log and on the status board);
//!   the session in place keeps running. A dialler resets its backoff only
//!   after a session got past the hello, so a refused twin backs off too.
//! - Each session runs in its own task with its own reader and writer tasks
//!   and bounded queues; a peer that stops reading stalls only its own
//!   writer, which gives up after `WRITE_STALL_TIMEOUT_MS`. Session output is
//!   produced only when the writer has room, so memory per peer is bounded.
//! - Session work happens on the store's owner thread (`Store::call`): the
//!   session is moved into the closure with its input and moved back with
//!   its output. Bytes leave only once every write before them is durable:
//!   the writer task waits for the flush that covers them (`step`), while
//!   the session goes on with its next input. A change must be durable here
//!   before it leaves (otherwise a crash could make this node reuse the
//!   change's sequence number for different content), and a peer is never
//!   told we hold what a crash could lose.
//! - Local commits and changes received from other peers reach every session
//!   (`document_changed`) through `take_changed_documents`, taken by the
//!   change feed when the store wakes it (after `LIVE_PUSH_QUIET_MS` without
//!   a further change, at most `LIVE_PUSH_LINGER_MAX_MS` after the wake) and
//!   every `LIVE_PUSH_POLL_MS` besides. A session takes every batch queued
//!   for it in one step; one that still falls `CHANGE_FEED_LEN` batches
//!   behind is closed and reconnects, which reconciles everything by digest.
//! - Revocation: the county's revocation document is followed
//!   (`revocation::follow_revocation_document`), and whenever a newer list
//!   is put in force — and every `REVOCATION_SWEEP_MS` besides — every link
//!   in session is checked against it; a link with a revoked peer is closed
//!   (`CLOSE_REVOKED`, the list's reason as the close reason, also shown on
//!   the status board). New links with it are refused at the handshake.
//! - `PeerStatusBoard` holds what the API and CLI show per peer.

use crate::net::revocation::follow_revocation_document;
use crate::net::transport::{
    closed_for_another_link, NodeEndpoint, PeerLink, TransportError, CLOSE_LINK_DUPLICATE,
    CLOSE_LINK_REFUSED, CLOSE_REVOKED, CLOSE_SHUTDOWN, CLOSE_SUPERSEDED, HANDSHAKE_TIMEOUT_MS,
};
use crate::store::Store;
use civsync_protocol::identity::document_id::DocumentId;
use civsync_protocol::replica::PeerIntake;
use civsync_protocol::sync::session::{CertifiedPeer, Session, SessionConfig, SessionEvent};
use civsync_protocol::{StationId, Tier};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

mod change_feed;
mod early_links;
mod step;
use change_feed::{change_feed, queued_batches, FEED_TIMING};
pub use early_links::EarlyLinks;
use step::{step, SessionInput, StepOutput, OWED_FROM_THE_START};

/// First retry delay after a failed or ended connection.
pub const BACKOFF_INITIAL_MS: u64 = 500;
/// Longest retry delay.
pub const BACKOFF_CAP_MS: u64 = 60_000;
/// Changed documents are collected at least this often; the store wakes
/// the feed at once when a job changes one, so this only bounds the delay
/// should a wake ever be missed.
pub const LIVE_PUSH_POLL_MS: u64 = 1_000;
/// After a wake, the feed waits until no change came for this long (a
/// clerk's or an import's writes come a few ms apart: a burst of 30 went
/// out in one exchange of 6.7 KB, against 23 KB in four at 5 ms)...
pub const LIVE_PUSH_QUIET_MS: u64 = 10;
/// ...but no longer than this after the wake, so a steady stream of
/// changes (a cold sync arriving) still goes out in batches, at most as
/// often as the feed's old 100 ms poll.
pub const LIVE_PUSH_LINGER_MAX_MS: u64 = 100;
/// Batches of changed documents a session may lag behind before it is closed.
pub const CHANGE_FEED_LEN: usize = 256;
/// Chunks read from a peer and not yet handed to its session.
pub const READ_QUEUE_LEN: usize = 8;
/// Largest chunk read from the stream at once.
pub const READ_CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Buffers produced by a session and not yet written to the peer.
pub const WRITE_QUEUE_LEN: usize = 4;
/// A single buffer that cannot be written for this long means the peer has
/// stopped reading: the link is closed.
pub const WRITE_STALL_TIMEOUT_MS: u64 = 60_000;
/// Time given to a closing session to send its goodbye.
pub const GOODBYE_GRACE_MS: u64 = 2_000;
/// The fallback is dialled after the parent has been unreachable this long.
pub const FALLBACK_AFTER_MS: u64 = 30_000;
/// While a peer is already in session, its dialler checks again this often.
const IN_SESSION_RECHECK_MS: u64 = 1_000;
/// A link from a peer arriving this soon after our own link to it was set
/// up may be a dial that crossed ours: the peer may have started dialling
/// before it saw our link, and a dial takes at most `HANDSHAKE_TIMEOUT_MS`;
/// twice that leaves room for the accept queue on either side.
pub const CROSSING_WINDOW_MS: u64 = 2 * HANDSHAKE_TIMEOUT_MS;
/// Supersedes of one station's link tolerated within `SUPERSEDE_WINDOW_MS`.
/// A restarting node needs one per restart; more means two live nodes share
/// one certificate (or one node restarts in a loop).
pub const LINK_SUPERSEDES_MAX: usize = 5;
pub const SUPERSEDE_WINDOW_MS: u64 = 60_000;
/// How long new links from a flapping station are refused.
pub const SUPERSEDE_BACKOFF_MS: u64 = 300_000;
/// Links in session are checked against the revocation list at least this
/// often, besides at once whenever a newer list is put in force.
pub const REVOCATION_SWEEP_MS: u64 = 30_000;

/// Why we talk to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    Parent,
    Fallback,
    Sibling,
    /// Any peer that dialled us.
    Incoming,
}

/// A peer this node dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialledPeer {
    pub role: PeerRole,
    pub station: StationId,
    pub address: SocketAddr,
}

/// What the status page shows about one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    pub station: StationId,
    pub role: PeerRole,
    pub address: Option<SocketAddr>,
    pub tier: Option<Tier>,
    pub connected: bool,
    /// Nothing left to exchange and nothing refused in this session: a
    /// link whose documents were refused is not up to date, however quiet.
    pub up_to_date: bool,
    /// Documents refused (by either side) in the current session.
    pub documents_refused: usize,
    /// Unix ms of the last bytes received from the peer.
    pub last_seen_unix_ms: Option<u64>,
    pub connected_since_unix_ms: Option<u64>,
    pub documents_pending: usize,
    pub documents_in_flight: usize,
    pub documents_synced: u64,
    pub changes_applied: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// UDP payload of the current (or last) link each way: the sync bytes
    /// above plus what QUIC and TLS add (handshake, certificates, acks,
    /// keep-alives), which on a quiet link is nearly all of it.
    pub transport_bytes_sent: u64,
    pub transport_bytes_received: u64,
    pub sessions: u64,
    /// Links from this station replaced by a newer one (it restarted, or a
    /// second node holds its certificate).
    pub links_superseded: u64,
    pub connect_failures: u64,
    pub last_error: Option<String>,
    /// The last document of the peer's this node refused, and why. Kept
    /// when the link ends, which overwrites `last_error`.
    pub last_refused: Option<String>,
    /// What the peer brought in today and what was refused for now
    /// (unregistered stations, daily quotas); absent until it sent anything.
    pub intake: Option<PeerIntake>,
}

impl PeerStatus {
    fn new(station: StationId, role: PeerRole, address: Option<SocketAddr>) -> PeerStatus {
        PeerStatus {
            station,
            role,
            address,
            tier: None,
            connected: false,
            up_to_date: false,
            documents_refused: 0,
            last_seen_unix_ms: None,
            connected_since_unix_ms: None,
            documents_pending: 0,
            documents_in_flight: 0,
            documents_synced: 0,
            changes_applied: 0,
            bytes_sent: 0,
            bytes_received: 0,
            transport_bytes_sent: 0,
            transport_bytes_received: 0,
            sessions: 0,
            links_superseded: 0,
            connect_failures: 0,
            last_error: None,
            last_refused: None,
            intake: None,
        }
    }
}

/// Per-peer status, shared between the peer tasks and whoever displays it.
#[derive(Debug, Clone, Default)]
pub struct PeerStatusBoard {
    peers: Arc<Mutex<BTreeMap<StationId, PeerStatus>>>,
    /// The connection of each link in session: its transport counters move
    /// without any session step (acks, keep-alives), so they are read when
    /// the status is, and folded in for good when the link ends.
    links: Arc<Mutex<BTreeMap<StationId, quinn::Connection>>>,
}

impl PeerStatusBoard {
    /// Every peer known so far (configured or seen), ordered by station.
    pub fn snapshot(&self) -> Vec<PeerStatus> {
        let mut peers: Vec<PeerStatus> = self.lock().values().cloned().collect();
        let links = self.links();
        for status in &mut peers {
            if let Some(connection) = links.get(&status.station) {
                count_transport(status, connection);
            }
        }
        peers
    }

    pub fn get(&self, station: &StationId) -> Option<PeerStatus> {
        let mut status = self.lock().get(station).cloned()?;
        if let Some(connection) = self.links().get(station) {
            count_transport(&mut status, connection);
        }
        Some(status)
    }

    fn links(&self) -> std::sync::MutexGuard<'_, BTreeMap<StationId, quinn::Connection>> {
        self.links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn link_up(&self, station: &StationId, connection: &quinn::Connection) {
        self.links().insert(station.clone(), connection.clone());
    }

    /// Folds the ended link's final counters into the status, unless a
    /// newer link from the station has taken its place meanwhile.
    fn link_down(&self, station: &StationId, connection: &quinn::Connection) {
        let mut links = self.links();
        if links
            .get(station)
            .is_some_and(|current| current.stable_id() == connection.stable_id())
        {
            links.remove(station);
            drop(links);
            if let Some(status) = self.lock().get_mut(station) {
                count_transport(status, connection);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<StationId, PeerStatus>> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(
        &self,
        station: &StationId,
        role: PeerRole,
        address: Option<SocketAddr>,
        change: impl FnOnce(&mut PeerStatus),
    ) {
        let mut peers = self.lock();
        let status = peers
            .entry(station.clone())
            .or_insert_with(|| PeerStatus::new(station.clone(), role, address));
        change(status);
    }
}

fn count_transport(status: &mut PeerStatus, connection: &quinn::Connection) {
    let stats = connection.stats();
    status.transport_bytes_sent = stats.udp_tx.bytes;
    status.transport_bytes_received = stats.udp_rx.bytes;
}

/// Exponential backoff with "equal jitter": the delay is half the current
/// step plus a random part of the other half, so retries of many villages
/// after a county outage spread out instead of arriving together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    step_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            step_ms: BACKOFF_INITIAL_MS,
        }
    }
}

impl Backoff {
    /// The next delay; `random` is any random number.
    pub fn next_delay_ms(&mut self, random: u64) -> u64 {
        let step = self.step_ms;
        debug_assert!((BACKOFF_INITIAL_MS..=BACKOFF_CAP_MS).contains(&step));
        self.step_ms = (step * 2).min(BACKOFF_CAP_MS);
        let half = step / 2;
        half + random % (step - half + 1)
    }

    pub fn reset(&mut self) {
        self.step_ms = BACKOFF_INITIAL_MS;
    }
}

/// Which side opened a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    Us,
    Peer,
}

/// What to do with a new link to a station already in session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkVerdict {
    /// Close the old link; the session runs on the new one.
    Supersede,
    /// Close the new link; the old one stays.
    KeepExisting,
}

/// Decides between the link in session with `peer` (opened by `existing`,
/// set up `existing_age_ms` ago) and a new one (opened by `new`). For dials
/// that crossed, both sides reach the same verdict: the link dialled by the
/// smaller station wins.
fn judge_new_link(
    local: &StationId,
    peer: &StationId,
    existing: Opener,
    existing_age_ms: u64,
    new: Opener,
) -> LinkVerdict {
    debug_assert_ne!(local, peer, "a node does not link to itself");
    match (existing, new) {
        // The peer dialled again: it lost the old link.
        (Opener::Peer, Opener::Peer) => LinkVerdict::Supersede,
        // Our dial loop dials only while not in session; a second link of
        // ours means the station is configured twice. Keep what works.
        (Opener::Us, Opener::Us) => LinkVerdict::KeepExisting,
        // Too late to have crossed our dial: the peer lost our link.
        (Opener::Us, Opener::Peer) if existing_age_ms >= CROSSING_WINDOW_MS => {
            LinkVerdict::Supersede
        }
        _ => {
            let smaller_dials = if local < peer {
                Opener::Us
            } else {
                Opener::Peer
            };
            if new == smaller_dials {
                LinkVerdict::Supersede
            } else {
                LinkVerdict::KeepExisting
            }
        }
    }
}

/// Why a new link was closed before any session ran on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkRefusal {
    /// A link between the two stations is in session and wins over the new one.
    Duplicate { local: StationId, peer: StationId },
    /// The peer's links superseded each other too often: refusing for a while.
    Flapping {
        peer: StationId,
        supersedes: usize,
        remaining_ms: u64,
    },
}

impl fmt::Display for LinkRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRefusal::Duplicate { local, peer } => write!(
                f,
                "a link between {local} and {peer} is already in session and wins over this one \
                 (of two crossing dials, the one dialled by {} stays)",
                local.min(peer)
            ),
            LinkRefusal::Flapping {
                peer,
                supersedes,
                remaining_ms,
            } => write!(
                f,
                "links from {peer} replaced each other {supersedes} times within {} s: two running \
                 nodes may hold the same certificate (or one restarts in a loop); refusing new links \
                 from it for {} s",
                SUPERSEDE_WINDOW_MS / 1000,
                remaining_ms.div_ceil(1000)
            ),
        }
    }
}

/// Counts supersedes per station to catch two live nodes fighting with one
/// certificate. Time is passed in (ms on the manager's clock).
#[derive(Debug, Default)]
struct SupersedeGuard {
    /// Times of supersedes within the window, per station, oldest first;
    /// at most `LINK_SUPERSEDES_MAX` each.
    recent: BTreeMap<StationId, VecDeque<u64>>,
    /// Stations whose new links are refused until the given time.
    refused_until: BTreeMap<StationId, u64>,
}

impl SupersedeGuard {
    /// May a new link from `station` supersede its link in session now?
    /// Counts the supersede when it may.
    fn allow(&mut self, station: &StationId, now_ms: u64) -> Result<(), LinkRefusal> {
        self.forget_before(now_ms);
        if let Some(until) = self.refused_until.get(station) {
            return Err(LinkRefusal::Flapping {
                peer: station.clone(),
                supersedes: LINK_SUPERSEDES_MAX + 1,
                remaining_ms: until - now_ms,
            });
        }
        let recent = self.recent.entry(station.clone()).or_default();
        if recent.len() >= LINK_SUPERSEDES_MAX {
            recent.clear();
            self.recent.remove(station);
            self.refused_until
                .insert(station.clone(), now_ms + SUPERSEDE_BACKOFF_MS);
            return Err(LinkRefusal::Flapping {
                peer: station.clone(),
                supersedes: LINK_SUPERSEDES_MAX + 1,
                remaining_ms: SUPERSEDE_BACKOFF_MS,
            });
        }
        recent.push_back(now_ms);
        debug_assert!(recent.len() <= LINK_SUPERSEDES_MAX);
        Ok(())
    }

    fn forget_before(&mut self, now_ms: u64) {
        self.refused_until.retain(|_, until| *until > now_ms);
        let window_start = now_ms.saturating_sub(SUPERSEDE_WINDOW_MS);
        for times in self.recent.values_mut() {
            while times
                .front()
                .is_some_and(|&at| at <= window_start && at < now_ms)
            {
                times.pop_front();
            }
        }
        self.recent.retain(|_, times| !times.is_empty());
    }
}

/// The link a station is in session on (or about to be).
struct SessionSlot {
    generation: u64,
    opener: Opener,
    admitted_at_ms: u64,
    connection: quinn::Connection,
    superseded: watch::Sender<bool>,
    ended: watch::Receiver<bool>,
}

/// Links in session, one per station, and the flapping guard.
#[derive(Default)]
struct Links {
    slots: BTreeMap<StationId, SessionSlot>,
    guard: SupersedeGuard,
    generations: u64,
}

/// A link admitted to run its session.
struct Admission {
    generation: u64,
    /// Turns true when a newer link supersedes this one.
    superseded: watch::Receiver<bool>,
    /// Set when this link's session has ended and released the station.
    ended: watch::Sender<bool>,
    /// The end of the link this one superseded: the session starts after it.
    predecessor: Option<watch::Receiver<bool>>,
}

/// Running peer tasks. Dropping it does not stop them; call `shutdown`.
pub struct PeerManager {
    board: PeerStatusBoard,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: Arc<NodeEndpoint>,
    store: Store,
    local: StationId,
    local_tier: Tier,
    session_config: SessionConfig,
    board: PeerStatusBoard,
    /// Stations with a session running now (or about to start).
    links: Mutex<Links>,
    changes: broadcast::Sender<Arc<Vec<DocumentId>>>,
    stop: watch::Receiver<bool>,
    session_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Session clock: monotonic ms since the manager started.
    epoch: Instant,
    /// Where a cold sync reports its progress.
    progress: crate::progress::Progress,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits `link` to run a session with its station, superseding the link
    /// in session if `judge_new_link` and the flapping guard say so.
    fn admit(&self, link: &PeerLink, opener: Opener) -> Result<Admission, LinkRefusal> {
        let now_ms = self.now_ms();
        let peer = &link.peer_station;
        let mut links = self.links();
        let mut predecessor = None;
        if let Some(existing) = links.slots.get(peer) {
            let age_ms = now_ms.saturating_sub(existing.admitted_at_ms);
            let verdict = judge_new_link(&self.local, peer, existing.opener, age_ms, opener);
            if verdict == LinkVerdict::KeepExisting {
                return Err(LinkRefusal::Duplicate {
                    local: self.local.clone(),
                    peer: peer.clone(),
                });
            }
            links.guard.allow(peer, now_ms)?;
            let old = links.slots.remove(peer).expect("the slot was just read");
            info!(
                %peer,
                old_opened_by = ?old.opener,
                new_opened_by = ?opener,
                old_age_ms = age_ms,
                "a new link from a station in session supersedes the old one (it restarted or lost the link)"
            );
            old.superseded.send_replace(true);
            old.connection.close(
                CLOSE_SUPERSEDED.into(),
                b"superseded by a newer link from the same station",
            );
            predecessor = Some(old.ended);
            self.board.update(peer, PeerRole::Incoming, None, |status| {
                status.links_superseded += 1;
            });
        }
        links.generations += 1;
        let generation = links.generations;
        let (superseded_sender, superseded) = watch::channel(false);
        let (ended, ended_receiver) = watch::channel(false);
        let previous = links.slots.insert(
            peer.clone(),
            SessionSlot {
                generation,
                opener,
                admitted_at_ms: now_ms,
                connection: link.connection.clone(),
                superseded: superseded_sender,
                ended: ended_receiver,
            },
        );
        debug_assert!(previous.is_none());
        Ok(Admission {
            generation,
            superseded,
            ended,
            predecessor,
        })
    }

    /// Frees `station` unless a newer link has taken it over.
    fn release(&self, station: &StationId, generation: u64) {
        let mut links = self.links();
        if links
            .slots
            .get(station)
            .is_some_and(|slot| slot.generation == generation)
        {
            links.slots.remove(station);
        }
    }

    fn is_in_session(&self, station: &StationId) -> bool {
        self.links().slots.contains_key(station)
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

impl PeerManager {
    /// Starts dialling `dialled`, accepting links on `endpoint`, and the live
    /// change feed. Must be called inside a tokio runtime.
    pub fn start(
        endpoint: Arc<NodeEndpoint>,
        store: Store,
        local_tier: Tier,
        dialled: Vec<DialledPeer>,
        session_config: SessionConfig,
    ) -> PeerManager {
        let progress = crate::progress::Progress::default();
        PeerManager::start_reporting(
            endpoint,
            store,
            local_tier,
            dialled,
            session_config,
            progress,
            EarlyLinks::default(),
        )
    }

    /// [`PeerManager::start`], with cold syncs reported into `progress`,
    /// and the dials in `early` (started before the store was open) taken
    /// as the first attempts of their dial loops.
    pub fn start_reporting(
        endpoint: Arc<NodeEndpoint>,
        store: Store,
        local_tier: Tier,
        dialled: Vec<DialledPeer>,
        session_config: SessionConfig,
        progress: crate::progress::Progress,
        mut early: EarlyLinks,
    ) -> PeerManager {
        let board = PeerStatusBoard::default();
        for peer in &dialled {
            board.update(&peer.station, peer.role, Some(peer.address), |_| {});
        }
        let (stop, stop_receiver) = watch::channel(false);
        let (changes, _) = broadcast::channel(CHANGE_FEED_LEN);
        let shared = Arc::new(Shared {
            local: endpoint.station().clone(),
            endpoint,
            store,
            local_tier,
            session_config,
            board: board.clone(),
            links: Mutex::new(Links::default()),
            changes,
            stop: stop_receiver,
            session_tasks: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            progress,
        });
        let parent = dialled
            .iter()
            .find(|peer| peer.role == PeerRole::Parent)
            .map(|peer| peer.station.clone());
        let identity = shared.endpoint.identity();
        let mut tasks = vec![
            tokio::spawn(change_feed(
                shared.store.clone(),
                shared.changes.clone(),
                shared.stop.clone(),
                FEED_TIMING,
            )),
            tokio::spawn(accept_loop(shared.clone())),
            tokio::spawn(follow_revocation_document(
                shared.store.clone(),
                shared.endpoint.revocations().clone(),
                identity.ca_cert.clone(),
                identity.county.clone(),
                shared.stop.clone(),
            )),
            tokio::spawn(revocation_sweep(shared.clone())),
        ];
        for peer in dialled {
            let first = early.take(&peer.station);
            tasks.push(tokio::spawn(dial_loop(
                shared.clone(),
                peer,
                parent.clone(),
                first,
            )));
        }
        PeerManager {
            board,
            stop,
            tasks,
            shared,
        }
    }

    pub fn board(&self) -> PeerStatusBoard {
        self.board.clone()
    }

    /// Says goodbye to every peer and stops all tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Sessions close with a goodbye and dial loops return at the stop
        // signal; whatever is still running after the grace is cut off.
        let deadline = Instant::now() + Duration::from_millis(GOODBYE_GRACE_MS * 2);
        let sessions = std::mem::take(
            &mut *self
                .shared
                .session_tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for mut task in sessions.into_iter().chain(self.tasks) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        self.shared.endpoint.close();
    }
}

/// Closes every link in session whose peer's certificate the list in force
/// revokes: at once when a newer list is put in force, and every
/// `REVOCATION_SWEEP_MS`.
async fn revocation_sweep(shared: Arc<Shared>) {
    let revocations = shared.endpoint.revocations().clone();
    let mut newer = revocations.subscribe();
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(REVOCATION_SWEEP_MS)) => {}
            changed = newer.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
        let links = shared.links();
        for (station, slot) in &links.slots {
            let Some(entry) = peer_certificate(&slot.connection)
                .and_then(|certificate| revocations.revoking(&certificate))
            else {
                continue;
            };
            let reason = format!(
                "certificate of {station} was revoked by the county: {}",
                entry.reason
            );
            warn!(peer = %station, %reason, "closing the link with a revoked peer");
            slot.connection
                .close(CLOSE_REVOKED.into(), reason.as_bytes());
            shared
                .board
                .update(station, PeerRole::Incoming, None, |status| {
                    status.last_error = Some(reason.clone());
                });
        }
    }
}

/// The certificate the peer showed at the handshake (the leaf).
fn peer_certificate(connection: &quinn::Connection) -> Option<Vec<u8>> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    chain.first().map(|leaf| leaf.to_vec())
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = shared.endpoint.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            None => return,
            Some(Ok(link)) => {
                // Admitted here, in arrival order, before the task starts.
                let Some((link, admission)) = admit_link(&shared, link, Opener::Peer) else {
                    continue;
                };
                let role = shared
                    .board
                    .get(&link.peer_station)
                    .map_or(PeerRole::Incoming, |status| status.role);
                let task = tokio::spawn({
                    let shared = shared.clone();
                    async move {
                        run_admitted(&shared, link, role, admission).await;
                    }
                });
                shared
                    .session_tasks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(task);
            }
            // Already logged by the transport.
            Some(Err(_)) => {}
        }
        shared
            .session_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|task| !task.is_finished());
    }
}

/// Admits `link` (see `Shared::admit`), or closes it telling the peer why.
fn admit_link(shared: &Shared, link: PeerLink, opener: Opener) -> Option<(PeerLink, Admission)> {
    match shared.admit(&link, opener) {
        Ok(admission) => Some((link, admission)),
        Err(refusal) => {
            let peer = &link.peer_station;
            match &refusal {
                LinkRefusal::Duplicate { .. } => {
                    info!(%peer, ?opener, %refusal, "closing a duplicate link")
                }
                LinkRefusal::Flapping { .. } => {
                    error!(%peer, %refusal, "refusing a link: links from this station keep superseding each other");
                    shared
                        .board
                        .update(peer, PeerRole::Incoming, None, |status| {
                            status.last_error = Some(refusal.to_string());
                        });
                }
            }
            let reason = refusal.to_string();
            let code = match refusal {
                LinkRefusal::Duplicate { .. } => CLOSE_LINK_DUPLICATE,
                LinkRefusal::Flapping { .. } => CLOSE_LINK_REFUSED,
            };
            link.connection.close(code.into(), reason.as_bytes());
            None
        }
    }
}

/// Runs the session of an admitted link: waits until the link it
/// superseded (if any) has ended, runs the session unless this link was
/// superseded meanwhile, then frees the station. The one path for dialled
/// and accepted links alike.
async fn run_admitted(
    shared: &Arc<Shared>,
    link: PeerLink,
    role: PeerRole,
    admission: Admission,
) -> SessionOutcome {
    let Admission {
        generation,
        mut superseded,
        ended,
        predecessor,
    } = admission;
    let station = link.peer_station.clone();
    if let Some(mut predecessor) = predecessor {
        // Its connection is closed and it skips the goodbye, so it ends
        // promptly; an error means its task is gone, which ends it too.
        let mut stop = shared.stop.clone();
        tokio::select! {
            _ = until_true(&mut predecessor) => {}
            _ = until_true(&mut stop) => {}
        }
    }
    let outcome = if *superseded.borrow() || shared.stopping() {
        link.connection
            .close(CLOSE_SHUTDOWN.into(), b"session not started");
        SessionOutcome::default()
    } else {
        run_session(shared, link, role, &mut superseded).await
    };
    shared.release(&station, generation);
    ended.send_replace(true);
    outcome
}

/// Dial `peer` again whenever it is not in session, with backoff; `first`,
/// a dial started before the manager, is the first attempt.
async fn dial_loop(
    shared: Arc<Shared>,
    peer: DialledPeer,
    parent: Option<StationId>,
    mut first: Option<early_links::EarlyDial>,
) {
    let mut stop = shared.stop.clone();
    let mut backoff = Backoff::default();
    let mut parent_down_since: Option<Instant> = None;
    loop {
        if shared.stopping() {
            return;
        }
        let mut delay_ms = IN_SESSION_RECHECK_MS;
        let parent_connected = parent
            .as_ref()
            .is_some_and(|parent| shared.is_in_session(parent));
        if parent_connected {
            parent_down_since = None;
        } else if parent_down_since.is_none() {
            parent_down_since = Some(Instant::now());
        }
        let fallback_waits = peer.role == PeerRole::Fallback
            && (parent_connected
                || parent_down_since.is_some_and(|since| {
                    since.elapsed() < Duration::from_millis(FALLBACK_AFTER_MS)
                }));
        if !fallback_waits && !shared.is_in_session(&peer.station) {
            let dialled = match first.take() {
                Some(dial) => dial.link(&peer).await,
                None => {
                    shared
                        .endpoint
                        .connect(peer.address, Some(&peer.station))
                        .await
                }
            };
            match dialled {
                Ok(link) => {
                    if let Some((link, admission)) = admit_link(&shared, link, Opener::Us) {
                        let outcome = run_admitted(&shared, link, peer.role, admission).await;
                        // Only a session the peer greeted proves the link
                        // works; a link refused at once keeps backing off.
                        if outcome.greeted {
                            backoff.reset();
                        }
                    }
                    delay_ms = backoff.next_delay_ms(rand::random());
                }
                // A dial that crossed the peer's and lost is no failure:
                // the link it lost to is in session (or about to be: the
                // peer may refuse ours before we admitted its link).
                Err(error)
                    if shared.is_in_session(&peer.station)
                        || matches!(error, TransportError::DuplicateLink { .. }) =>
                {
                    debug!(peer = %peer.station, %error, "extra link refused while in session");
                    delay_ms = backoff.next_delay_ms(rand::random());
                }
                Err(error) => {
                    note_connect_failure(&shared, &peer, &error);
                    delay_ms = backoff.next_delay_ms(rand::random());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            _ = stop.changed() => return,
        }
    }
}

fn note_connect_failure(shared: &Shared, peer: &DialledPeer, error: &TransportError) {
    debug!(peer = %peer.station, address = %peer.address, %error, "connect failed");
    shared
        .board
        .update(&peer.station, peer.role, Some(peer.address), |status| {
            status.connect_failures += 1;
            status.last_error = Some(error.to_string());
        });
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the reader task hands to the session.
enum ReadInput {
    Bytes(Vec<u8>),
    Finished,
    Failed(String),
}

/// How a session went, for the dialler's backoff.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SessionOutcome {
    /// The peer's hello was accepted: the link worked.
    greeted: bool,
}

/// Drives one session over one link until either side closes it or a newer
/// link from the same station supersedes it.
async fn run_session(
    shared: &Arc<Shared>,
    link: PeerLink,
    role: PeerRole,
    superseded: &mut watch::Receiver<bool>,
) -> SessionOutcome {
    let PeerLink {
        peer_station,
        peer_tier,
        remote_addr,
        send,
        recv,
        connection,
    } = link;
    let board = &shared.board;
    let mut stop = shared.stop.clone();
    let mut changes = shared.changes.subscribe();
    info!(peer = %peer_station, %remote_addr, ?role, "link up; starting sync session");
    board.update(&peer_station, role, Some(remote_addr), |status| {
        status.connected = true;
        status.tier = Some(peer_tier);
        status.connected_since_unix_ms = Some(unix_ms());
        status.last_seen_unix_ms = Some(unix_ms());
        status.sessions += 1;
        status.up_to_date = false;
    });
    board.link_up(&peer_station, &connection);

    let (read_sender, mut reads) = mpsc::channel(READ_QUEUE_LEN);
    let reader = tokio::spawn(read_loop(recv, read_sender));
    let (write_sender, writes) = mpsc::channel::<Outgoing>(WRITE_QUEUE_LEN);
    let mut writer = tokio::spawn(write_loop(send, writes));

    let certified = CertifiedPeer {
        station: peer_station.clone(),
        tier: peer_tier,
    };
    let mut session = Some(Session::new(
        shared.local.clone(),
        certified,
        shared.local_tier,
        shared.now_ms(),
        shared.session_config.clone(),
    ));
    let mut output_pending = true;
    // The last batch this session wrote: its bytes wait until it is durable.
    let mut owed: u64 = OWED_FROM_THE_START;
    let mut timeout_ms: Option<u64> = Some(shared.now_ms());
    let mut closed = false;
    let mut link_error: Option<String> = None;
    let mut stop_requested = false;
    let mut was_superseded = false;
    let mut outcome = SessionOutcome::default();
    let mut cold_sync =
        crate::net::cold_sync::ColdSyncProgress::new(shared.progress.clone(), peer_station.clone());

    while !closed || output_pending {
        let deadline = timeout_ms.map(|at| shared.epoch + Duration::from_millis(at));
        let input = tokio::select! {
            read = reads.recv(), if !closed => match read {
                Some(ReadInput::Bytes(bytes)) => {
                    board.update(&peer_station, role, Some(remote_addr), |status| status.last_seen_unix_ms = Some(unix_ms()));
                    SessionInput::Bytes(bytes)
                }
                Some(ReadInput::Finished) => SessionInput::StreamFinished,
                Some(ReadInput::Failed(reason)) => {
                    link_error = Some(reason.clone());
                    SessionInput::Close(reason)
                }
                None => SessionInput::Close("reader stopped".to_string()),
            },
            changed = changes.recv(), if !closed => match changed.map(|first| queued_batches(first, &mut changes)) {
                Ok(Ok(batches)) => SessionInput::Changed(batches),
                Ok(Err(missed)) | Err(broadcast::error::RecvError::Lagged(missed)) => {
                    SessionInput::Close(format!("fell {missed} change batches behind; reconnecting to catch up"))
                }
                Err(broadcast::error::RecvError::Closed) => SessionInput::Close("node is stopping".to_string()),
            },
            _ = sleep_until_deadline(deadline), if !closed => SessionInput::Timeout,
            permit = write_sender.reserve(), if output_pending => match permit {
                Ok(permit) => {
                    let Some(current) = session.take() else { break };
                    let Some((next, mut out)) = step(shared, current, SessionInput::Transmit, &mut owed).await else {
                        link_error = Some("the store is closed".to_string());
                        break;
                    };
                    session = Some(next);
                    output_pending = out.transmit.is_some();
                    if let Some(bytes) = out.transmit.clone() {
                        permit.send(Outgoing { bytes, durable: out.durable.take() });
                    }
                    absorb(board, &peer_station, role, remote_addr, &out);
                    cold_sync.observe(&out.status);
                    outcome.greeted |= out.status.peer_tier.is_some();
                    closed |= out.closed;
                    timeout_ms = out.timeout_ms;
                    continue;
                }
                Err(_) => {
                    // The writer ended (it failed); its result says why.
                    link_error = Some(match (&mut writer).await {
                        Ok(Err(reason)) => reason,
                        _ => "the writer stopped".to_string(),
                    });
                    break;
                }
            },
            written = &mut writer => {
                let reason = match written {
                    Ok(Ok(())) => "writer finished early".to_string(),
                    Ok(Err(reason)) => reason,
                    Err(join) => join.to_string(),
                };
                link_error = Some(reason);
                break;
            }
            _ = stop.changed(), if !stop_requested => {
                stop_requested = true;
                SessionInput::Close("node is stopping".to_string())
            }
            // The connection is already closed: no goodbye can get through.
            // (A dropped sender means the slot is gone: stop all the same.)
            _ = until_true(superseded) => {
                was_superseded = true;
                break;
            }
        };
        let Some(current) = session.take() else { break };
        let Some((next, out)) = step(shared, current, input, &mut owed).await else {
            link_error = Some("the store is closed".to_string());
            break;
        };
        session = Some(next);
        // Any input may have produced output; the next permit asks for it.
        output_pending = true;
        absorb(board, &peer_station, role, remote_addr, &out);
        cold_sync.observe(&out.status);
        outcome.greeted |= out.status.peer_tier.is_some();
        closed |= out.closed;
        timeout_ms = out.timeout_ms;
    }
    // Reads and writes fail once the connection is closed under them; that
    // is the supersede, not an error of this link. Nor is the peer closing
    // it because another link between us wins (it refused this one, or a
    // crossing dial of its own replaced it there before we saw that dial):
    // the stations are linked.
    was_superseded |= *superseded.borrow();
    let lost_a_crossing = closed_for_another_link(&connection);
    if was_superseded || lost_a_crossing {
        link_error = None;
    }
    // Closed because the county revoked the peer: say so, not "closed".
    if let Some(entry) = peer_certificate(&connection)
        .and_then(|certificate| shared.endpoint.revocations().revoking(&certificate))
    {
        link_error = Some(format!(
            "certificate of {peer_station} was revoked by the county: {}",
            entry.reason
        ));
    }

    // Let the goodbye go out, then end the stream and the connection.
    drop(write_sender);
    if !writer.is_finished() && !was_superseded {
        let _ = tokio::time::timeout(Duration::from_millis(GOODBYE_GRACE_MS), &mut writer).await;
    }
    writer.abort();
    reader.abort();
    connection.close(CLOSE_SHUTDOWN.into(), b"session closed");
    log_transport(&peer_station, &connection);
    board.link_down(&peer_station, &connection);
    let _ = shared
        .store
        .call({
            let peer = peer_station.clone();
            move |replica| replica.peer_disconnected(&peer)
        })
        .await;
    cold_sync.end(link_error.as_deref());
    board.update(&peer_station, role, Some(remote_addr), |status| {
        status.connected = false;
        status.up_to_date = false;
        status.connected_since_unix_ms = None;
        if let Some(reason) = &link_error {
            status.last_error = Some(reason.clone());
        }
    });
    if was_superseded {
        info!(peer = %peer_station, "sync session ended: superseded by a newer link from the same station");
    } else if lost_a_crossing {
        info!(peer = %peer_station, "sync session ended: our dial crossed the peer's, and the peer keeps its own link");
    } else {
        info!(peer = %peer_station, error = ?link_error, "sync session ended");
    }
    outcome
}

/// What the link cost on the wire, beyond the sync bytes the session
/// counts: where a quiet link's bytes go (handshake, probes, losses).
fn log_transport(peer: &StationId, connection: &quinn::Connection) {
    let stats = connection.stats();
    debug!(
        %peer,
        udp_tx_bytes = stats.udp_tx.bytes,
        udp_tx_datagrams = stats.udp_tx.datagrams,
        udp_rx_bytes = stats.udp_rx.bytes,
        udp_rx_datagrams = stats.udp_rx.datagrams,
        mtu = stats.path.current_mtu,
        mtu_probes_sent = stats.path.sent_plpmtud_probes,
        mtu_probes_lost = stats.path.lost_plpmtud_probes,
        lost_packets = stats.path.lost_packets,
        lost_bytes = stats.path.lost_bytes,
        rtt_us = stats.path.rtt.as_micros() as u64,
        acks_sent = stats.frame_tx.acks,
        pings_sent = stats.frame_tx.ping,
        crypto_frames_sent = stats.frame_tx.crypto,
        stream_frames_sent = stats.frame_tx.stream,
        "link closed: transport figures"
    );
}

/// Returns once `flag` is true, or once its sender is gone (whoever held
/// it is done, which the callers treat alike).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    loop {
        // The borrow ends before the await: a watch borrow is not `Send`.
        if *flag.borrow_and_update() {
            return;
        }
        if flag.changed().await.is_err() {
            return;
        }
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Folds a step's events and status into the board.
fn absorb(
    board: &PeerStatusBoard,
    peer: &StationId,
    role: PeerRole,
    address: SocketAddr,
    out: &StepOutput,
) {
    board.update(peer, role, Some(address), |status| {
        for event in &out.events {
            match event {
                SessionEvent::Closed { reason } if reason.is_error() => {
                    warn!(%peer, %reason, "sync session closed");
                    status.last_error = Some(reason.to_string());
                }
                SessionEvent::RefusedByUs { document, reason } => {
                    // A refused change is an event a clerk or auditor must be
                    // able to find later, not only while the link is up.
                    warn!(%peer, %document, %reason, "refused changes from peer; nothing applied");
                    status.last_error = Some(format!("{document}: {reason}"));
                    status.last_refused = status.last_error.clone();
                }
                SessionEvent::RefusedByPeer { document, reason } => {
                    warn!(%peer, %document, %reason, "peer refused our changes");
                    status.last_error = Some(format!("{document}: {reason}"));
                }
                _ => {}
            }
        }
        status.up_to_date = out.status.up_to_date && out.status.documents_refused == 0;
        status.documents_refused = out.status.documents_refused;
        status.documents_pending = out.status.documents_pending;
        status.documents_in_flight = out.status.documents_in_flight;
        status.documents_synced = out.status.documents_synced;
        status.changes_applied = out.status.changes_applied;
        status.bytes_sent = out.status.bytes_sent;
        status.bytes_received = out.status.bytes_received;
        if out.intake.is_some() {
            status.intake = out.intake.clone();
        }
    });
}

async fn read_loop(mut recv: quinn::RecvStream, sender: mpsc::Sender<ReadInput>) {
    loop {
        let input = match recv.read_chunk(READ_CHUNK_BYTES_MAX, true).await {
            Ok(Some(chunk)) => ReadInput::Bytes(chunk.bytes.to_vec()),
            Ok(None) => ReadInput::Finished,
            Err(error) => ReadInput::Failed(error.to_string()),
        };
        let last = !matches!(input, ReadInput::Bytes(_));
        if sender.send(input).await.is_err() || last {
            return;
        }
    }
}

/// Writes buffers in order; finishes the stream when the sender is dropped.
/// A buffer a session produced, and the flush it must wait for.
struct Outgoing {
    bytes: Vec<u8>,
    durable: Option<crate::store::Durable>,
}

/// Writes the session's buffers in order, each only once the batch it
/// answers is durable (see `step`); a failed flush ends the link unsent.
async fn write_loop(
    mut send: quinn::SendStream,
    mut buffers: mpsc::Receiver<Outgoing>,
) -> Result<(), String> {
    write_when_durable(&mut send, &mut buffers).await?;
    let _ = send.finish();
    // Wait (bounded) until the peer has the goodbye before the connection closes.
    let _ = tokio::time::timeout(Duration::from_millis(GOODBYE_GRACE_MS), send.stopped()).await;
    Ok(())
}

/// The writer's loop, until the session drops its sender.
async fn write_when_durable<W: tokio::io::AsyncWrite + Unpin>(
    send: &mut W,
    buffers: &mut mpsc::Receiver<Outgoing>,
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let stall = Duration::from_millis(WRITE_STALL_TIMEOUT_MS);
    while let Some(Outgoing { bytes, durable }) = buffers.recv().await {
        if let Some(durable) = durable {
            durable.flushed().await?;
        }
        match tokio::time::timeout(stall, send.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => {
                return Err(format!(
                    "the peer read nothing for {} s; closing the link",
                    WRITE_STALL_TIMEOUT_MS / 1000
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
