//! One unit: the event loop of the simulated county — every event kind
//! (delivery, timers, cuts, crashes, restarts, workload) is dispatched by one
//! `impl World` over the shared node, link and connection tables, and the
//! driver contract below must hold across all of them. Splitting it by event
//! kind is the next cut if it grows.
//!
//! The simulated county: nodes, connections and the event loop.
//!
//! Each node runs the real [`Replica`] over a [`MemoryStorage`] and one real
//! [`Session`] per open connection, driven exactly as the node drives them
//! (the session's driver contract): after every input drain
//! `poll_transmit` into the stream, drain `poll_event`, arm a timer for
//! `poll_timeout`; after anything that may have changed documents, hand
//! `take_changed_documents` to every session of that node.
//!
//! Invariants:
//! - a connection exists in `connections` exactly while both its sessions
//!   live; cutting it discards both sessions and tells both replicas
//!   (`peer_disconnected`); bytes of a dead connection are dropped on arrival;
//! - a crashed node has no replica, only its storage after the crash;
//! - every random draw comes from a seeded stream and every collection that
//!   is iterated is ordered, so a seed reproduces the run bit for bit.

use crate::config::{FaultMix, InjectedBug, SimConfig};
use crate::faults::{self, Fault, PartitionKind};
use crate::host::{Forgery, SimHost};
use crate::index_checks::{IndexWatch, INDEX_LOOK_EVERY_MS};
use crate::network::{Arrival, ConnectionId, Side, Stream, DIALER, LISTENER};
use crate::parallelism::ParallelismBound;
use crate::rng::{self, Stream as RngStream};
use crate::scheduler::Scheduler;
use crate::statistics::{CountyStatistics, STATISTICS_LOOK_EVERY_MS};
use crate::tamper;
use crate::time::{Date, NodeClock, SimMs, DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};
use crate::topology::{LinkIndex, LinkKind, NodeIndex, Topology};
use crate::trace::Trace;
use crate::truth::Truth;
use crate::workflows::{self, Workflows};
use crate::workload::{self, Action, Change, ReadActivity, Workload};
use civsync_protocol::domain::input::ActivityInput;
use civsync_protocol::domain::model::{Activity, RecordId};
use civsync_protocol::layout;
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::service::{self, ServiceError};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::session::{
    CertifiedPeer, CloseReason, Session, SessionConfig, SessionEvent,
};
use civsync_protocol::{DocumentId, StationId, Tier};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Keepalive and idle timeout of sessions in the simulation. A real node
/// pings every 15 s over QUIC; here a dead connection is cut explicitly by
/// the simulator, so the timers only matter for one-way stalls, and
/// stretching them keeps an idle county of hundreds of links cheap.
pub const SIM_KEEPALIVE_MS: u64 = 2 * HOUR_MS;
pub const SIM_IDLE_TIMEOUT_MS: u64 = 6 * HOUR_MS;
/// Documents a simulated replica keeps loaded. A county of 650 villages
/// holds about 4,200 documents after a month (≈90 KiB each loaded); the
/// node's default of 256 would make the county reload documents on most
/// syncs, so the simulated offices are given the memory a county PC has.
/// Below what the county holds, every pass over all its documents (the
/// checkers' and the index's) misses the cache on every document: 4,096
/// made the final checks 16 s instead of 8 at 650 villages.
pub const SIM_DOCUMENTS_CACHED_MAX: usize = 16_384;

/// A simulated office's replica configuration; its tier decides whether it
/// may hold the personal documents below it (a prefecture may not).
pub fn replica_config(tier: Tier, bug: Option<InjectedBug>) -> ReplicaConfig {
    let mut config = ReplicaConfig {
        documents_cached_max: SIM_DOCUMENTS_CACHED_MAX,
        tier: Some(tier),
        // Every simulated office runs a release that signs.
        unsigned_changes: civsync_protocol::sync::authority::UnsignedChanges::FromWriterOnly,
        ..ReplicaConfig::default()
    };
    if bug == Some(InjectedBug::AdmitInventedStations) {
        config.peer_quotas.registration_required_below = Tier::Point;
    }
    config
}

/// A dialer waits this long (at most) before redialling after a cut.
pub const REDIAL_DELAY_MAX_MS: SimMs = 60 * SECOND_MS;
/// How often convergence is probed after the final heal.
pub const PROBE_INTERVAL_MS: SimMs = 10 * SECOND_MS;

/// A receiver's refusal named by its reason, from how each error of
/// `AuthorityError` and `ReceiveError` reads. `not_carriable` is the one
/// refusal honest peers provoke, when a node learned a change over a
/// second path.
fn refusal_reason(reason: &str) -> &'static str {
    const KINDS: [(&str, &str); 8] = [
        ("may not relay changes", "not_carriable"),
        ("is outside the scope of station", "out_of_scope"),
        ("may not write document", "not_writable"),
        ("belongs to no station", "unknown_actor"),
        ("refused for now", "deferred"),
        ("malformed sync message", "malformed"),
        ("has schema version", "schema_too_new"),
        ("storage failed", "storage"),
    ];
    KINDS
        .iter()
        .find(|(text, _)| reason.contains(text))
        .map_or("other", |(_, kind)| kind)
}

fn link_kind_name(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Parent => "parent",
        LinkKind::Fallback => "fallback",
        LinkKind::Sibling => "sibling",
    }
}

// Trace record kinds.
const TRACE_DELIVER: u8 = 1;
const TRACE_STALE: u8 = 2;
const TRACE_WRITE: u8 = 3;
const TRACE_FAULT: u8 = 4;
const TRACE_EVENT: u8 = 5;
const TRACE_OPEN: u8 = 6;
const TRACE_CLOSE: u8 = 7;

#[derive(Debug)]
enum Event {
    Deliver {
        connection: ConnectionId,
        to: Side,
        chunk: Vec<u8>,
    },
    Timer {
        connection: ConnectionId,
        side: Side,
    },
    Dial {
        link: LinkIndex,
    },
    Fault(Fault),
    Restart {
        node: NodeIndex,
    },
    Online {
        node: NodeIndex,
    },
    Heal {
        partition: u64,
    },
    Work {
        node: NodeIndex,
        action: Action,
    },
    Tamper,
    FinalHeal,
    Probe,
    /// A county looks whether its statistics documents are due a rewrite.
    Statistics {
        node: NodeIndex,
    },
    /// A clerk's query at a node whose statistics index is watched.
    IndexLook {
        node: NodeIndex,
    },
}

impl Event {
    fn kind(&self) -> &'static str {
        match self {
            Event::Deliver { .. } => "deliver",
            Event::Timer { .. } => "timer",
            Event::Dial { .. } => "dial",
            Event::Fault(_) | Event::Restart { .. } | Event::Online { .. } | Event::Heal { .. } => {
                "fault"
            }
            Event::Work { .. } => "work",
            Event::Tamper => "tamper",
            Event::FinalHeal => "final_heal",
            Event::Probe => "probe",
            // Not "statistics": that is a checker's name, whose time would
            // overwrite this entry in the profile.
            Event::Statistics { .. } => "statistics_look",
            Event::IndexLook { .. } => "index_look",
        }
    }
}

struct NodeState {
    station: StationId,
    tier: Tier,
    clock: NodeClock,
    incarnation: u64,
    replica: Option<Replica<MemoryStorage>>,
    /// The storage of a crashed node, until it restarts.
    parked: Option<MemoryStorage>,
    /// Overlapping offline periods in force.
    offline: u32,
    misbehaving: bool,
    forgery: Option<Forgery>,
    /// `drop-acknowledged-write`: storage as it was before the last write.
    rollback: Option<MemoryStorage>,
    /// The chunking stream of this node's outgoing bytes.
    rng: ChaCha8Rng,
    /// A county's statistics index and publisher, in a prefecture run
    /// (opened at its first look, dropped in a crash).
    statistics: Option<CountyStatistics>,
}

#[derive(Default)]
struct LinkState {
    current: Option<ConnectionId>,
    dial_pending: bool,
    /// Partitions in force blocking each direction (dialer→, listener→).
    blocked: [u32; 2],
}

struct Connection {
    link: LinkIndex,
    nodes: [NodeIndex; 2],
    sessions: [Session; 2],
    stream: Stream,
    /// The instant a timer event is scheduled for, per side.
    timer: [Option<SimMs>; 2],
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    pub events: u64,
    pub messages: u64,
    pub bytes_sent: u64,
    pub stale_chunks_dropped: u64,
    pub connections_opened: u64,
    pub connections_cut: u64,
    pub sessions_closed: BTreeMap<String, u64>,
    pub refused_by_receiver: u64,
    /// Refusals between honest nodes the authority rules make by design,
    /// by reason and link kind (`not_carriable over fallback`, ...); any
    /// other refusal of an honest peer is a run problem.
    pub refused_by_design: BTreeMap<String, u64>,
    pub writes_acknowledged: u64,
    pub writes_refused: u64,
    /// Stale corrections of a deleted activity refused because the node
    /// had received the delete (the rest were taken: the delete had not
    /// arrived, and wins when it does).
    pub stale_corrections_refused_deleted: u64,
    pub stale_corrections_taken: u64,
    pub writes_skipped_node_down: u64,
    /// Statistics documents a county rewrote (prefecture runs).
    pub statistics_written: u64,
    pub crashes: u64,
    pub restarts: u64,
    /// Documents replicas read back from storage during the run (cache
    /// misses: after a crash, or past `SIM_DOCUMENTS_CACHED_MAX`).
    pub documents_loaded: u64,
    /// The same, by the checkers after the run.
    pub documents_loaded_by_checks: u64,
    pub offline_periods: u64,
    pub partitions: u64,
    pub forged_messages_answered: u64,
}

/// A problem noticed during the run that is itself a failure (a replica
/// that does not reopen, a queue overflow). Reported by the `run` checker.
#[derive(Debug, Clone)]
pub struct RunProblem(pub String);

pub struct World {
    pub config: SimConfig,
    pub mix: FaultMix,
    pub topology: Topology,
    sched: Scheduler<Event>,
    nodes: Vec<NodeState>,
    links: Vec<LinkState>,
    connections: BTreeMap<ConnectionId, Connection>,
    next_connection: ConnectionId,
    partitions: BTreeMap<u64, PartitionKind>,
    next_partition: u64,
    net_rng: ChaCha8Rng,
    workload: Workload,
    /// Orders and points, and what their clerks were told.
    pub workflows: Workflows,
    pub truth: Truth,
    pub trace: Trace,
    pub counters: Counters,
    pub problems: Vec<RunProblem>,
    /// Wall seconds spent per kind of event: measured for the report only,
    /// never read by the simulation.
    pub profile: BTreeMap<&'static str, f64>,
    /// The document hidden by `skip-document-sync`.
    pub hidden: Option<DocumentId>,
    /// `drop-acknowledged-write` fired already.
    dropped_write: bool,
    pub tampered: Option<String>,
    faults_active: bool,
    pub heal_at: SimMs,
    pub converged_at: Option<SimMs>,
    pub last_fault_at: SimMs,
    stopped: bool,
    /// The statistics index of a sample of nodes, kept as the node keeps it.
    pub index_watch: IndexWatch,
    /// What a split of the world by node could gain: measured, never read.
    pub parallelism: ParallelismBound,
}

impl World {
    pub fn new(config: SimConfig) -> World {
        let mix = FaultMix::draw(&config);
        let topology = Topology::build(&config, &mix);
        let mut nodes = Vec::with_capacity(topology.nodes.len());
        let mut misbehaving_rng = rng::stream(config.seed, RngStream::Misbehaviour);
        let mut villages: Vec<NodeIndex> = topology.of_tier(Tier::Village).collect();
        villages.shuffle(&mut misbehaving_rng);
        // The bug that admits invented stations comes with a village that
        // invents them.
        let liars_wanted = if config.inject_bug == Some(InjectedBug::AdmitInventedStations) {
            config.misbehaving.max(1)
        } else {
            config.misbehaving
        };
        let liars: Vec<NodeIndex> = villages.into_iter().take(liars_wanted).collect();
        // The bug that trusts relayed unsigned changes comes with a
        // township that forges them.
        let lying_townships_wanted = if config.inject_bug == Some(InjectedBug::TrustUnsignedRelays)
        {
            config.misbehaving_townships.max(1)
        } else {
            config.misbehaving_townships
        };
        let lying_townships: Vec<NodeIndex> = topology
            .of_tier(Tier::Township)
            .take(lying_townships_wanted)
            .collect();
        for (index, spec) in topology.nodes.iter().enumerate() {
            let mut rng = rng::node_stream(config.seed, index);
            let clock = NodeClock::new(
                if mix.clock_offset_max_ms > 0 {
                    rng.gen_range(-mix.clock_offset_max_ms..=mix.clock_offset_max_ms)
                } else {
                    0
                },
                if mix.clock_drift_max_ppm > 0 {
                    rng.gen_range(-mix.clock_drift_max_ppm..=mix.clock_drift_max_ppm)
                } else {
                    0
                },
            );
            let incarnation: u64 = rng.gen();
            let replica = crate::signing::open_replica(
                MemoryStorage::new(),
                &spec.station,
                spec.tier,
                incarnation,
                crate::world::replica_config(spec.tier, config.inject_bug),
            )
            .expect("an empty store opens");
            let misbehaving = liars.contains(&index) || lying_townships.contains(&index);
            let forgery = if liars.contains(&index) {
                Some(crate::misbehaviour::forge(&topology, index))
            } else if lying_townships.contains(&index) {
                Some(crate::misbehaviour::forge_as_township(&topology, index))
            } else {
                None
            };
            nodes.push(NodeState {
                station: spec.station.clone(),
                tier: spec.tier,
                clock,
                incarnation,
                replica: Some(replica),
                parked: None,
                offline: 0,
                misbehaving,
                forgery,
                rollback: None,
                rng,
                statistics: None,
            });
        }
        let hidden = (config.inject_bug == Some(InjectedBug::SkipDocumentSync)).then(|| {
            let village = topology
                .of_tier(Tier::Village)
                .find(|v| !liars.contains(v))
                .expect("an honest village");
            DocumentId::roster(&topology.nodes[village].station)
        });
        let links = (0..topology.links.len())
            .map(|_| LinkState::default())
            .collect();
        let index_watch = IndexWatch::new(&topology, |n| !nodes[n].misbehaving);
        let quickest_link_ms = topology
            .links
            .iter()
            .map(|l| l.latency_ms)
            .min()
            .unwrap_or(1)
            .max(1);
        World {
            parallelism: ParallelismBound::new(quickest_link_ms),
            net_rng: rng::stream(config.seed, RngStream::Network),
            workload: Workload::new(&config),
            workflows: Workflows::new(&config),
            config,
            mix,
            topology,
            sched: Scheduler::new(),
            nodes,
            links,
            connections: BTreeMap::new(),
            next_connection: 1,
            partitions: BTreeMap::new(),
            next_partition: 1,
            truth: Truth::default(),
            trace: Trace::new(),
            counters: Counters::default(),
            problems: Vec::new(),
            profile: BTreeMap::new(),
            hidden,
            dropped_write: false,
            tampered: None,
            faults_active: true,
            heal_at: 0,
            converged_at: None,
            last_fault_at: 0,
            stopped: false,
            index_watch,
        }
    }

    fn schedule(&mut self, at: SimMs, event: Event) {
        if let Err(full) = self.sched.at(at, event) {
            self.problems.push(RunProblem(full.to_string()));
            self.stopped = true;
        }
    }

    /// Run the days, the final heal and the quiet period; returns when the
    /// county converged or the liveness bound passed.
    pub fn run(&mut self) {
        let horizon = self.config.days * DAY_MS;
        let workflows = workflows::schedule(&self.config, &self.topology)
            .into_iter()
            .map(|(at, node, step)| (at, node, Action::Workflow(step)));
        for (at, node, action) in workload::schedule(&self.config, &self.topology)
            .into_iter()
            .chain(workflows)
        {
            if !self.nodes[node].misbehaving {
                self.schedule(at, Event::Work { node, action });
            }
        }
        for (at, fault) in faults::schedule(&self.config, &self.mix, &self.topology) {
            if let Fault::Crash { node, .. } | Fault::Offline { node, .. } = &fault {
                if self.nodes[*node].misbehaving {
                    continue;
                }
            }
            self.schedule(at, Event::Fault(fault));
        }
        if self.config.inject_bug == Some(InjectedBug::ApplyUnauthorized) {
            self.schedule(horizon / 2, Event::Tamper);
        }
        if self.config.prefecture_counties > 0 {
            for node in self.topology.of_tier(Tier::County).collect::<Vec<_>>() {
                let at = self.net_rng.gen_range(0..STATISTICS_LOOK_EVERY_MS);
                self.schedule(at, Event::Statistics { node });
            }
        }
        // Spread without a random draw: the other streams stay as they were.
        for (nth, node) in self.index_watch.watched().into_iter().enumerate() {
            let at = (nth as SimMs * 7 * MINUTE_MS) % INDEX_LOOK_EVERY_MS;
            self.schedule(at, Event::IndexLook { node });
        }
        for link in 0..self.links.len() {
            let delay = self.net_rng.gen_range(0..REDIAL_DELAY_MAX_MS);
            self.want_dial(link, delay);
        }
        self.schedule(horizon, Event::FinalHeal);
        let deadline = horizon + self.config.liveness_bound_s * SECOND_MS;
        while !self.stopped {
            let Some((at, event)) = self.sched.pop_until(deadline) else {
                break;
            };
            self.counters.events += 1;
            self.handle(at, event);
        }
    }

    fn handle(&mut self, at: SimMs, event: Event) {
        let started = std::time::Instant::now();
        let kind = event.kind();
        let node = self.only_node_of(&event);
        self.handle_event(at, event);
        let seconds = started.elapsed().as_secs_f64();
        *self.profile.entry(kind).or_default() += seconds;
        self.parallelism.event(at, node, seconds);
    }

    /// The one node an event reads and writes, if it is one: what a split
    /// of the world by node could hand to that node's core.
    fn only_node_of(&self, event: &Event) -> Option<NodeIndex> {
        match event {
            Event::Deliver { connection, to, .. } => {
                self.connections.get(connection).map(|c| c.nodes[*to])
            }
            Event::Timer { connection, side } => {
                self.connections.get(connection).map(|c| c.nodes[*side])
            }
            Event::Work { node, .. } | Event::IndexLook { node } | Event::Statistics { node } => {
                Some(*node)
            }
            // Dialling opens a connection between two nodes.
            Event::Restart { .. }
            | Event::Online { .. }
            | Event::Dial { .. }
            | Event::Fault(_)
            | Event::Heal { .. }
            | Event::Tamper
            | Event::FinalHeal
            | Event::Probe => None,
        }
    }

    fn handle_event(&mut self, at: SimMs, event: Event) {
        match event {
            Event::Deliver {
                connection,
                to,
                chunk,
            } => self.deliver(at, connection, to, chunk),
            Event::Timer { connection, side } => self.timer(at, connection, side),
            Event::Dial { link } => {
                self.links[link].dial_pending = false;
                self.dial(link);
            }
            Event::Fault(fault) => {
                if self.faults_active {
                    self.last_fault_at = at;
                    self.fault(fault);
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Online { node } => {
                let state = &mut self.nodes[node];
                state.offline = state.offline.saturating_sub(1);
                if state.offline == 0 {
                    self.dial_links_of(node);
                }
            }
            Event::Heal { partition } => self.heal(partition),
            Event::Work { node, action } => self.work(node, action),
            Event::Tamper => self.tamper(),
            Event::FinalHeal => self.final_heal(),
            Event::Probe => self.probe(),
            Event::Statistics { node } => {
                self.statistics(node);
                let next = self.sched.now() + STATISTICS_LOOK_EVERY_MS;
                self.schedule(next, Event::Statistics { node });
            }
            Event::IndexLook { node } => {
                if let Some(replica) = self.nodes[node].replica.as_mut() {
                    self.index_watch.look(node, replica, at);
                }
                self.schedule(at + INDEX_LOOK_EVERY_MS, Event::IndexLook { node });
            }
        }
    }

    // ------------------------------------------------------------ network

    fn local_now(&self, node: NodeIndex) -> u64 {
        self.nodes[node].clock.local_unix_ms(self.sched.now())
    }

    fn usable(&self, link: LinkIndex) -> bool {
        let spec = &self.topology.links[link];
        let up = |n: NodeIndex| self.nodes[n].replica.is_some() && self.nodes[n].offline == 0;
        up(spec.dialer) && up(spec.listener) && self.links[link].blocked == [0, 0]
    }

    fn want_dial(&mut self, link: LinkIndex, delay: SimMs) {
        if self.links[link].dial_pending || self.links[link].current.is_some() {
            return;
        }
        self.links[link].dial_pending = true;
        let at = self.sched.now() + delay;
        self.schedule(at, Event::Dial { link });
    }

    fn dial_links_of(&mut self, node: NodeIndex) {
        for link in self.topology.links_of[node].clone() {
            let delay = self.net_rng.gen_range(SECOND_MS..REDIAL_DELAY_MAX_MS);
            self.want_dial(link, delay);
        }
    }

    fn dial(&mut self, link: LinkIndex) {
        if self.links[link].current.is_some() || !self.usable(link) {
            return;
        }
        let spec = &self.topology.links[link];
        let nodes = [spec.dialer, spec.listener];
        let config = SessionConfig {
            keepalive_interval_ms: SIM_KEEPALIVE_MS,
            idle_timeout_ms: SIM_IDLE_TIMEOUT_MS,
            ..SessionConfig::default()
        };
        let session = |side: Side| {
            let me = &self.nodes[nodes[side]];
            let peer = &self.nodes[nodes[1 - side]];
            Session::new(
                me.station.clone(),
                CertifiedPeer {
                    station: peer.station.clone(),
                    tier: peer.tier,
                },
                me.tier,
                self.local_now(nodes[side]),
                config.clone(),
            )
        };
        let sessions = [session(DIALER), session(LISTENER)];
        let id = self.next_connection;
        self.next_connection += 1;
        let now = self.sched.now();
        self.connections.insert(
            id,
            Connection {
                link,
                nodes,
                sessions,
                stream: Stream::new(now),
                timer: [None, None],
            },
        );
        self.links[link].current = Some(id);
        self.counters.connections_opened += 1;
        self.trace
            .record(TRACE_OPEN, now, id, &(link as u64).to_le_bytes());
        self.pump(id, DIALER);
        self.pump(id, LISTENER);
    }

    /// Cut a connection: both sessions are discarded, both replicas forget
    /// their in-memory sync states for the peer, and the dialer redials
    /// later if it can.
    fn cut(&mut self, id: ConnectionId, why: &str) {
        let Some(connection) = self.connections.remove(&id) else {
            return;
        };
        self.links[connection.link].current = None;
        self.trace
            .record(TRACE_CLOSE, self.sched.now(), id, why.as_bytes());
        for side in [DIALER, LISTENER] {
            let peer = self.nodes[connection.nodes[1 - side]].station.clone();
            let node = &mut self.nodes[connection.nodes[side]];
            if let Some(replica) = node.replica.as_mut() {
                replica.peer_disconnected(&peer);
            }
            if let Some(forgery) = node.forgery.as_mut() {
                forgery.peer_disconnected(&peer);
            }
        }
        let delay = self.net_rng.gen_range(SECOND_MS..REDIAL_DELAY_MAX_MS);
        self.want_dial(connection.link, delay);
    }

    fn deliver(&mut self, at: SimMs, id: ConnectionId, to: Side, chunk: Vec<u8>) {
        let Some(connection) = self.connections.get(&id) else {
            // A late chunk of a connection that is gone: QUIC drops it.
            self.counters.stale_chunks_dropped += 1;
            self.trace.record(TRACE_STALE, at, id, &chunk);
            return;
        };
        let node = connection.nodes[to];
        self.counters.messages += 1;
        self.trace
            .record(TRACE_DELIVER, at, id * 2 + to as u64, &chunk);
        let now_local = self.local_now(node);
        {
            let World {
                connections,
                nodes,
                hidden,
                ..
            } = self;
            let connection = connections.get_mut(&id).expect("checked above");
            let state = &mut nodes[node];
            let replica = state
                .replica
                .as_mut()
                .expect("a node with a live connection is up");
            let mut host = SimHost {
                replica,
                hidden: hidden.as_ref(),
                forgery: state.forgery.as_mut(),
            };
            connection.sessions[to].handle_bytes(&chunk, now_local, &mut host);
        }
        self.pump(id, to);
        self.propagate(node);
    }

    fn timer(&mut self, at: SimMs, id: ConnectionId, side: Side) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        if connection.timer[side] != Some(at) {
            return;
        }
        connection.timer[side] = None;
        let node = connection.nodes[side];
        let now_local = self.nodes[node].clock.local_unix_ms(at);
        {
            let World {
                connections,
                nodes,
                hidden,
                ..
            } = self;
            let connection = connections.get_mut(&id).expect("checked above");
            let state = &mut nodes[node];
            let replica = state
                .replica
                .as_mut()
                .expect("a node with a live connection is up");
            let mut host = SimHost {
                replica,
                hidden: hidden.as_ref(),
                forgery: state.forgery.as_mut(),
            };
            connection.sessions[side].handle_timeout(now_local, &mut host);
        }
        self.pump(id, side);
        self.propagate(node);
    }

    /// The driver contract for one side after an input: send what the
    /// session has to send, take its events, arm its timer.
    fn pump(&mut self, id: ConnectionId, side: Side) {
        let now = self.sched.now();
        let mut outgoing = Vec::new();
        let mut events = Vec::new();
        let node;
        let deadline_local;
        {
            let World {
                connections,
                nodes,
                hidden,
                ..
            } = self;
            let Some(connection) = connections.get_mut(&id) else {
                return;
            };
            node = connection.nodes[side];
            let state = &mut nodes[node];
            let Some(replica) = state.replica.as_mut() else {
                return;
            };
            let mut host = SimHost {
                replica,
                hidden: hidden.as_ref(),
                forgery: state.forgery.as_mut(),
            };
            let session = &mut connection.sessions[side];
            while let Some(bytes) = session.poll_transmit(&mut host) {
                outgoing.push(bytes);
            }
            while let Some(event) = session.poll_event() {
                events.push(event);
            }
            deadline_local = session.poll_timeout();
        }
        for bytes in outgoing {
            self.send(id, side, &bytes);
        }
        let mut closed = None;
        for event in events {
            self.session_event(id, node, &event);
            if let SessionEvent::Closed { reason } = event {
                closed = Some(reason);
            }
        }
        if let Some(reason) = closed {
            *self
                .counters
                .sessions_closed
                .entry(close_kind(&reason).to_string())
                .or_default() += 1;
            self.cut(id, &reason.to_string());
            return;
        }
        if let Some(deadline_local) = deadline_local {
            let at = self.nodes[node]
                .clock
                .global_at(deadline_local, now)
                .max(now + 1);
            let Some(connection) = self.connections.get_mut(&id) else {
                return;
            };
            if connection.timer[side].is_none_or(|scheduled| at < scheduled) {
                connection.timer[side] = Some(at);
                self.schedule(
                    at,
                    Event::Timer {
                        connection: id,
                        side,
                    },
                );
            }
        }
    }

    fn send(&mut self, id: ConnectionId, side: Side, bytes: &[u8]) {
        let now = self.sched.now();
        let chunk_max = self.mix.chunk_bytes_max;
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        let link = &self.topology.links[connection.link];
        let rng = &mut self.nodes[connection.nodes[side]].rng;
        match connection
            .stream
            .send(side, bytes, now, link, chunk_max, rng)
        {
            Ok(arrivals) => {
                self.counters.bytes_sent += bytes.len() as u64;
                self.deliveries(id, 1 - side, arrivals);
            }
            Err(overflow) => self.cut(id, &overflow.to_string()),
        }
    }

    fn deliveries(&mut self, id: ConnectionId, to: Side, arrivals: Vec<Arrival>) {
        for Arrival { at, chunk } in arrivals {
            self.schedule(
                at,
                Event::Deliver {
                    connection: id,
                    to,
                    chunk,
                },
            );
        }
    }

    fn session_event(&mut self, id: ConnectionId, node: NodeIndex, event: &SessionEvent) {
        let now = self.sched.now();
        match event {
            SessionEvent::RefusedByUs { document, reason } => {
                self.counters.refused_by_receiver += 1;
                self.trace.record(
                    TRACE_EVENT,
                    now,
                    id,
                    format!("refused {document}: {reason}").as_bytes(),
                );
                let Some(connection) = self.connections.get(&id) else {
                    return;
                };
                let peer = if connection.nodes[0] == node {
                    connection.nodes[1]
                } else {
                    connection.nodes[0]
                };
                let kind = self.topology.links[connection.link].kind;
                if self.nodes[peer].misbehaving || self.nodes[node].misbehaving {
                    return;
                }
                // The authority rule refuses, by design, changes an honest
                // peer may not relay (`NotCarriable`): over a fallback link
                // a township's correction the village learned from its
                // township; over a sibling link a county change the sibling
                // learned from its township; over the tree link a county
                // change the village learned over its fallback link. Those
                // changes travel the other path. Nothing else is expected
                // from an honest peer on any link: a document out of scope
                // is never offered (the digest covers shared documents
                // only), an honest writer writes only what it may, honest
                // documents decode and are of stations that exist.
                let why = refusal_reason(reason);
                if why == "not_carriable" {
                    *self
                        .counters
                        .refused_by_design
                        .entry(format!("{why} over {}", link_kind_name(kind)))
                        .or_default() += 1;
                } else {
                    self.problems.push(RunProblem(format!(
                        "{} refused {document} from honest peer {} over a {} link ({why}): {reason}",
                        self.nodes[node].station,
                        self.nodes[peer].station,
                        link_kind_name(kind)
                    )));
                }
            }
            SessionEvent::RefusedByPeer { .. } => {
                if self.nodes[node].misbehaving {
                    self.counters.forged_messages_answered += 1;
                }
            }
            SessionEvent::Closed { reason } => {
                self.trace
                    .record(TRACE_EVENT, now, id, reason.to_string().as_bytes());
            }
            SessionEvent::Connected { .. }
            | SessionEvent::DocumentUpdated { .. }
            | SessionEvent::UpToDate { .. } => {}
        }
    }

    /// Tell every session of `node` about documents that changed there.
    fn propagate(&mut self, node: NodeIndex) {
        let changed = match self.nodes[node].replica.as_mut() {
            Some(replica) => replica.take_changed_documents(),
            None => return,
        };
        if changed.is_empty() {
            return;
        }
        for link in self.topology.links_of[node].clone() {
            let Some(id) = self.links[link].current else {
                continue;
            };
            let side = if self.topology.links[link].dialer == node {
                DIALER
            } else {
                LISTENER
            };
            {
                let World {
                    connections,
                    nodes,
                    hidden,
                    ..
                } = self;
                let Some(connection) = connections.get_mut(&id) else {
                    continue;
                };
                let state = &mut nodes[node];
                let Some(replica) = state.replica.as_mut() else {
                    return;
                };
                let mut host = SimHost {
                    replica,
                    hidden: hidden.as_ref(),
                    forgery: state.forgery.as_mut(),
                };
                for document in &changed {
                    if hidden.as_ref() == Some(document) {
                        continue;
                    }
                    connection.sessions[side].document_changed(document, &mut host);
                }
            }
            self.pump(id, side);
        }
    }

    // ------------------------------------------------------------ faults

    fn fault(&mut self, fault: Fault) {
        let now = self.sched.now();
        self.trace
            .record(TRACE_FAULT, now, 0, format!("{fault:?}").as_bytes());
        match fault {
            Fault::Cut { link } => {
                if let Some(id) = self.links[link].current {
                    self.counters.connections_cut += 1;
                    self.cut(id, "connection cut");
                }
            }
            Fault::Crash { node, down_ms } => self.crash(node, down_ms),
            Fault::Offline { node, for_ms } => {
                self.counters.offline_periods += 1;
                self.nodes[node].offline += 1;
                self.cut_links_of(node, "node offline");
                self.schedule(now + for_ms, Event::Online { node });
            }
            Fault::Partition { kind, for_ms } => {
                self.counters.partitions += 1;
                let id = self.next_partition;
                self.next_partition += 1;
                for link in 0..self.links.len() {
                    let (forward, backward) = kind.blocks(&self.topology, link);
                    if !forward && !backward {
                        continue;
                    }
                    self.links[link].blocked[DIALER] += u32::from(forward);
                    self.links[link].blocked[LISTENER] += u32::from(backward);
                    let Some(connection) = self.links[link].current else {
                        continue;
                    };
                    if forward && backward {
                        self.cut(connection, "partition");
                    } else if let Some(c) = self.connections.get_mut(&connection) {
                        c.stream.stall(if forward { DIALER } else { LISTENER });
                    }
                }
                self.partitions.insert(id, kind);
                self.schedule(now + for_ms, Event::Heal { partition: id });
            }
        }
    }

    fn cut_links_of(&mut self, node: NodeIndex, why: &str) {
        for link in self.topology.links_of[node].clone() {
            if let Some(id) = self.links[link].current {
                self.cut(id, why);
            }
        }
    }

    fn crash(&mut self, node: NodeIndex, down_ms: SimMs) {
        if self.nodes[node].replica.is_none() {
            return;
        }
        self.counters.crashes += 1;
        self.cut_links_of(node, "node crashed");
        self.index_watch.crashed(node);
        let state = &mut self.nodes[node];
        state.statistics = None;
        let replica = state.replica.take().expect("checked above");
        self.counters.documents_loaded += replica.documents_loaded();
        let mut storage = replica.into_storage();
        match state.rollback.take() {
            // The injected bug: the node comes back with an older disk.
            Some(older) => storage = older,
            None => storage.crash(),
        }
        state.parked = Some(storage);
        let at = self.sched.now() + down_ms;
        self.schedule(at, Event::Restart { node });
    }

    fn restart(&mut self, node: NodeIndex) {
        let state = &mut self.nodes[node];
        let Some(storage) = state.parked.take() else {
            return;
        };
        match crate::signing::open_replica(
            storage,
            &state.station,
            state.tier,
            state.incarnation,
            crate::world::replica_config(state.tier, self.config.inject_bug),
        ) {
            Ok(replica) => {
                state.replica = Some(replica);
                self.counters.restarts += 1;
                self.dial_links_of(node);
            }
            Err(error) => {
                self.problems.push(RunProblem(format!(
                    "{} does not reopen after a crash: {error}",
                    state.station
                )));
            }
        }
    }

    fn heal(&mut self, partition: u64) {
        let Some(kind) = self.partitions.remove(&partition) else {
            return;
        };
        let now = self.sched.now();
        let chunk_max = self.mix.chunk_bytes_max;
        for link in 0..self.links.len() {
            let (forward, backward) = kind.blocks(&self.topology, link);
            if !forward && !backward {
                continue;
            }
            let state = &mut self.links[link];
            state.blocked[DIALER] -= u32::from(forward);
            state.blocked[LISTENER] -= u32::from(backward);
            if let Some(id) = state.current {
                for side in [DIALER, LISTENER] {
                    if self.links[link].blocked[side] > 0 {
                        continue;
                    }
                    let Some(connection) = self.connections.get_mut(&id) else {
                        continue;
                    };
                    if !connection.stream.is_stalled(side) {
                        continue;
                    }
                    let rng = &mut self.nodes[connection.nodes[side]].rng;
                    let arrivals = connection.stream.resume(
                        side,
                        now,
                        &self.topology.links[link],
                        chunk_max,
                        rng,
                    );
                    self.deliveries(id, 1 - side, arrivals);
                }
            }
            let delay = self.net_rng.gen_range(SECOND_MS..REDIAL_DELAY_MAX_MS);
            self.want_dial(link, delay);
        }
    }

    fn final_heal(&mut self) {
        let now = self.sched.now();
        self.faults_active = false;
        self.heal_at = now;
        self.trace.record(TRACE_FAULT, now, 0, b"final heal");
        for partition in self.partitions.keys().copied().collect::<Vec<_>>() {
            self.heal(partition);
        }
        for node in 0..self.nodes.len() {
            self.nodes[node].offline = 0;
            self.restart(node);
        }
        for link in 0..self.links.len() {
            let delay = self.net_rng.gen_range(0..REDIAL_DELAY_MAX_MS);
            self.want_dial(link, delay);
        }
        self.schedule(now + PROBE_INTERVAL_MS, Event::Probe);
    }

    fn probe(&mut self) {
        let now = self.sched.now();
        // Quiet only once every county has published its last figures (and
        // they travelled): a prefecture must not be checked against a
        // rewrite still waiting for its interval.
        if crate::checks::heads_agree(self).is_ok() && !self.statistics_behind() {
            self.converged_at = Some(now);
            self.stopped = true;
            return;
        }
        self.schedule(now + PROBE_INTERVAL_MS, Event::Probe);
    }

    // ------------------------------------------------------------ statistics

    /// A county's look at its statistics (see `crate::statistics`): the
    /// product's refresh and publish, then what it wrote goes to its peers.
    fn statistics(&mut self, node: NodeIndex) {
        let local_now_ms = i64::try_from(self.local_now(node)).unwrap_or(i64::MAX);
        let state = &mut self.nodes[node];
        let Some(replica) = state.replica.as_mut() else {
            return;
        };
        replica.set_now_ms(local_now_ms);
        let county = state
            .statistics
            .get_or_insert_with(|| CountyStatistics::open(replica));
        match county.look(replica, local_now_ms) {
            Ok(Some(report)) => {
                self.counters.statistics_written += report.months_written.len() as u64;
            }
            Ok(None) => {}
            Err(problem) => self.problems.push(RunProblem(format!(
                "{} did not publish its statistics: {problem}",
                state.station
            ))),
        }
        self.propagate(node);
    }

    /// Does a county hold figures it has not published yet? (Prefecture
    /// runs only; a county that is down is the convergence check's.)
    fn statistics_behind(&mut self) -> bool {
        if self.config.prefecture_counties == 0 {
            return false;
        }
        let counties: Vec<NodeIndex> = self.topology.of_tier(Tier::County).collect();
        counties.into_iter().any(|node| {
            let state = &mut self.nodes[node];
            match (state.replica.as_mut(), state.statistics.as_mut()) {
                (Some(replica), Some(county)) => county.behind(replica),
                (Some(_), None) => true,
                (None, _) => false,
            }
        })
    }

    // ------------------------------------------------------------ clerks

    fn work(&mut self, node: NodeIndex, action: Action) {
        if let Action::Workflow(step) = action {
            return self.workflow(node, &step);
        }
        if let Action::PublishTheme(month) = action {
            // Through `service::catalog::set_theme`, as the API publishes.
            let step = workflows::Step::Catalog(crate::catalog_work::CatalogStep::SetTheme(month));
            return self.workflow(node, &step);
        }
        let now = self.sched.now();
        let local_now_ms = self.local_now(node);
        let today = Date::of_unix_ms(local_now_ms);
        let World {
            nodes,
            workload,
            topology,
            ..
        } = self;
        let state = &mut nodes[node];
        let Some(replica) = state.replica.as_mut() else {
            self.counters.writes_skipped_node_down += 1;
            return;
        };
        let Some(edit) =
            workload.prepare(topology, node, &action, today, &mut ReplicaReader(replica))
        else {
            return;
        };
        let arm_rollback = self.config.inject_bug == Some(InjectedBug::DropAcknowledgedWrite)
            && !self.dropped_write
            && state.tier == Tier::Village
            && matches!(action, Action::RecordActivity);
        if arm_rollback {
            state.rollback = Some(replica.storage().clone());
        }
        // The change carries the node's own (skewed) clock, as on a real PC.
        replica.set_now_ms(i64::try_from(local_now_ms).unwrap_or(i64::MAX));
        let commit_started = std::time::Instant::now();
        let committed = match &edit.change {
            Change::StaleCorrection { activity } => {
                let written = submit_correction(replica, &edit.document, activity, today);
                match &written {
                    Ok(_) => self.counters.stale_corrections_taken += 1,
                    Err(ServiceError::Deleted { .. }) => {
                        self.counters.stale_corrections_refused_deleted += 1
                    }
                    Err(_) => {}
                }
                written.map_err(|e| e.to_string())
            }
            _ => replica
                .commit(&edit.document, |doc| edit.apply(doc))
                .map(|outcome| outcome.heads)
                .map_err(|e| e.to_string()),
        };
        *self.profile.entry(action.profile_key()).or_default() +=
            commit_started.elapsed().as_secs_f64();
        match committed {
            Ok(heads) => {
                self.counters.writes_acknowledged += 1;
                self.trace
                    .record(TRACE_WRITE, now, node as u64, edit.describe().as_bytes());
                self.truth.acknowledge(node, now, &edit, heads);
                self.workload.acknowledged(node, &edit);
                if let (Change::DeleteActivity { snapshot }, Some(township)) =
                    (&edit.change, self.topology.nodes[node].parent)
                {
                    // The township had the activity open in a form (within
                    // the run's days: nothing is written after the heal).
                    let at = now + self.workload.stale_correction_delay();
                    let horizon = self.config.days * DAY_MS;
                    let action = Action::StaleCorrection {
                        of: node,
                        id: snapshot.id.clone(),
                    };
                    if at < horizon && !self.nodes[township].misbehaving {
                        self.schedule(
                            at,
                            Event::Work {
                                node: township,
                                action,
                            },
                        );
                    }
                }
                if arm_rollback {
                    // Power fails right after the clerk was told "saved".
                    self.dropped_write = true;
                    self.schedule(
                        now,
                        Event::Fault(Fault::Crash {
                            node,
                            down_ms: 10 * MINUTE_MS,
                        }),
                    );
                }
            }
            Err(error) => {
                self.nodes[node].rollback = None;
                self.counters.writes_refused += 1;
                self.trace.record(
                    TRACE_WRITE,
                    now,
                    node as u64,
                    format!("refused: {error}").as_bytes(),
                );
            }
        }
        let propagate_started = std::time::Instant::now();
        self.propagate(node);
        *self.profile.entry("work_propagate").or_default() +=
            propagate_started.elapsed().as_secs_f64();
    }

    /// An order's or points' step through the service layer
    /// (`workflows.rs`); what it brings about is scheduled within the run.
    fn workflow(&mut self, node: NodeIndex, step: &workflows::Step) {
        let now = self.sched.now();
        let local_now_ms = self.local_now(node);
        let Some(replica) = self.nodes[node].replica.as_mut() else {
            self.counters.writes_skipped_node_down += 1;
            return;
        };
        replica.set_now_ms(i64::try_from(local_now_ms).unwrap_or(i64::MAX));
        let started = std::time::Instant::now();
        let at = workflows::At {
            topology: &self.topology,
            workload: &self.workload,
            node,
            replica,
            today: Date::of_unix_ms(local_now_ms),
            now,
        };
        let outcome = self.workflows.run(at, step);
        *self.profile.entry(step.profile_key()).or_default() += started.elapsed().as_secs_f64();
        if let Some((station, team)) = &outcome.deleted_team {
            self.truth.team_deleted(station, team);
        }
        if let Some((station, number)) = &outcome.deleted_volunteer {
            self.truth.volunteer_deleted(station, number);
        }
        for (document, activity) in outcome.imported_activities {
            self.truth.activity_imported(&document, &activity);
            let edit = workload::Edit {
                document,
                change: Change::Activity {
                    activity,
                    correction_by: None,
                },
            };
            // The clerk may correct or delete an imported activity later.
            self.workload.acknowledged(node, &edit);
        }
        if let Some((document, heads, what)) = outcome.written {
            self.counters.writes_acknowledged += 1;
            self.trace
                .record(TRACE_WRITE, now, node as u64, what.as_bytes());
            self.truth.writes.push(crate::truth::AcknowledgedWrite {
                node,
                at: now,
                document,
                heads,
                what,
            });
        } else if let Some(reason) = outcome.refused {
            self.counters.writes_refused += 1;
            let text = format!("refused: {reason}");
            self.trace
                .record(TRACE_WRITE, now, node as u64, text.as_bytes());
        }
        let horizon = self.config.days * DAY_MS;
        for (delay, by, step) in outcome.follow_ups {
            if now + delay < horizon && !self.nodes[by].misbehaving {
                let action = Action::Workflow(step);
                self.schedule(now + delay, Event::Work { node: by, action });
            }
        }
        self.propagate(node);
    }

    fn tamper(&mut self) {
        let county = self
            .topology
            .of_tier(Tier::County)
            .next()
            .expect("a county");
        let village = self
            .topology
            .of_tier(Tier::Village)
            .next()
            .expect("a village");
        let forger = self.nodes[village].station.clone();
        let state = &mut self.nodes[county];
        let Some(replica) = state.replica.take() else {
            // The county is down; try again a little later.
            let at = self.sched.now() + HOUR_MS;
            self.schedule(at, Event::Tamper);
            return;
        };
        self.cut_links_of(county, "tampering");
        let state = &mut self.nodes[county];
        let document = DocumentId::reference(&state.station, workload::THEMES).expect("valid");
        match tamper::inject_forged_change(replica, &document, &forger, state.incarnation) {
            Ok((replica, description)) => {
                state.replica = Some(*replica);
                self.tampered = Some(description);
            }
            Err((replica, problem)) => {
                state.replica = replica.map(|r| *r);
                self.problems.push(RunProblem(format!(
                    "could not inject the forged change: {problem}"
                )));
            }
        }
        self.dial_links_of(county);
    }

    // ------------------------------------------------------------ views for the checkers

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Documents the running replicas have read back from storage since
    /// they last opened.
    pub fn documents_loaded_by_running_replicas(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|state| state.replica.as_ref())
            .map(|replica| replica.documents_loaded())
            .sum()
    }

    pub fn is_honest(&self, node: NodeIndex) -> bool {
        !self.nodes[node].misbehaving
    }

    /// The actor every simulated office writes with: a change by any other
    /// actor was forged (a simulated store keeps its incarnation).
    pub fn genuine_actors(&self) -> std::collections::BTreeSet<automerge::ActorId> {
        self.nodes
            .iter()
            .map(|node| {
                civsync_protocol::identity::actor::actor_for(&node.station, node.incarnation)
            })
            .collect()
    }

    pub fn replica(&self, node: NodeIndex) -> Option<&Replica<MemoryStorage>> {
        self.nodes[node].replica.as_ref()
    }

    pub fn replica_mut(&mut self, node: NodeIndex) -> Option<&mut Replica<MemoryStorage>> {
        self.nodes[node].replica.as_mut()
    }

    pub fn now(&self) -> SimMs {
        self.sched.now()
    }
}

/// A clerk's correction of `activity` from a form, submitted as the API
/// submits it: through `service::record_activity`, which refuses it if this
/// node holds the activity deleted. The heads of the document after the
/// write, or the refusal.
fn submit_correction(
    replica: &mut Replica<MemoryStorage>,
    document: &DocumentId,
    activity: &Activity,
    today: Date,
) -> Result<Vec<automerge::ChangeHash>, ServiceError> {
    let input = ActivityInput::resubmitting(activity);
    let station = activity.station.clone();
    // The id is given: no nonce is drawn.
    service::record_activity(replica, &station, &input, workload::to_date(&today), 0)?;
    Ok(replica
        .heads(document)
        .map(<[_]>::to_vec)
        .unwrap_or_default())
}

/// Reads activities for the clerks through the real layout code.
struct ReplicaReader<'a>(&'a mut Replica<MemoryStorage>);

impl ReadActivity for ReplicaReader<'_> {
    fn activity(&mut self, document: &DocumentId, id: &RecordId) -> Option<Activity> {
        self.0
            .with_document(document, |doc| layout::activity(doc, id).ok().flatten())
            .ok()
            .flatten()
            .flatten()
    }
}

fn close_kind(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::Local { .. } => "local",
        CloseReason::PeerGoodbye { .. } => "peer_goodbye",
        CloseReason::HelloRejectedByUs { .. } => "hello_rejected_by_us",
        CloseReason::HelloRejectedByPeer { .. } => "hello_rejected_by_peer",
        CloseReason::Protocol { .. } => "protocol_error",
        CloseReason::IdleTimeout { .. } => "idle_timeout",
        CloseReason::PeerNotReading { .. } => "peer_not_reading",
        CloseReason::StreamEnded => "stream_ended",
    }
}
