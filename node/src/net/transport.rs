//! QUIC transport between nodes of one county, authenticated both ways.
//!
//! Every node presents its county-issued certificate (see `pki`) and verifies
//! the peer's: the chain must end at the county CA (the only trust anchor),
//! be valid now, and name a station inside the CA's county. The peer's
//! station and tier are read from the certificate, never from anything the
//! peer says later. Station paths contain '/', so the TLS server name is a
//! fixed placeholder and is never checked; instead the connecting side may
//! state which station it expects, and the handshake fails if the
//! certificate names another.
//!
//! A link is one QUIC connection carrying one bidirectional stream, opened by
//! the connecting side. Because QUIC announces a stream to the acceptor only
//! once data flows on it, the connecting side writes `STREAM_PREFACE` and the
//! acceptor answers `STREAM_ACCEPT`; both are consumed here, so the streams
//! handed out carry only session bytes. `connect` returns only after the
//! answer arrived, which also proves the acceptor accepted our certificate
//! (in TLS 1.3 the client finishes its handshake before the server has
//! judged the client's certificate).
//!
//! Restarts: the key of QUIC stateless resets, and the key that makes our
//! connection ids recognisable, are derived from the node's private key, so
//! they are the same after a restart. A node that was killed
//! and restarted on the same address answers its peers' packets for the
//! dead connections with a reset they recognise, and they drop those
//! connections at once and dial again, instead of waiting for the idle
//! timeout (children dial their parent, so nothing else tells a child that
//! its parent came back).
//!
//! Limits: incoming connections held at once, handshakes in progress, one
//! bidirectional stream and no unidirectional ones per connection, bounded
//! receive windows, a deadline on connection set-up, keep-alive and an idle
//! timeout so a vanished peer is noticed.

use crate::net::pki::{
    read_certificate_identity, CertificateIdentity, IdentityError, NodeIdentity,
};
use crate::net::revocation::RevocationSet;
use civsync_protocol::{StationId, Tier};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, Semaphore};
use tracing::{debug, warn};

/// Application protocol negotiated in TLS; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"civsync/1";
/// Written by the connecting side first on the link's stream.
pub const STREAM_PREFACE: &[u8; 4] = b"CSY1";
/// Answered by the accepting side once it has accepted the link.
pub const STREAM_ACCEPT: &[u8; 4] = b"CSYA";
/// TLS server name sent by the connecting side. Not checked: identity is
/// the station in the certificate (station paths are not DNS names).
const SERVER_NAME: &str = "civsync-node";

/// Close code: normal shutdown.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// Close code: the stream did not start with `STREAM_PREFACE`/`STREAM_ACCEPT`.
pub const CLOSE_BAD_PREFACE: u32 = 1;
/// Close code: the link could not be set up (identity unreadable, timeout).
pub const CLOSE_SETUP_FAILED: u32 = 2;
/// Close code: a newer link from the same station replaced this one (the
/// peer restarted, or a second node holds its certificate).
pub const CLOSE_SUPERSEDED: u32 = 3;
/// Close code: the peers layer refused the link before any session ran on
/// it (its links keep flapping).
pub const CLOSE_LINK_REFUSED: u32 = 4;
/// Close code: the peers layer closed the link because a link between the
/// same two stations is in session and wins over it (two dials crossed).
/// Not an error: the stations are linked, by the other link.
pub const CLOSE_LINK_DUPLICATE: u32 = 5;
/// Close code: the county revoked the peer's certificate; the reason says
/// which entry of the revocation list.
pub const CLOSE_REVOKED: u32 = 6;

/// Did the peer close `connection` because another link between us wins?
/// Either it refused this one for a link in session
/// ([`CLOSE_LINK_DUPLICATE`]), or a newer link replaced this one
/// ([`CLOSE_SUPERSEDED`]): when two dials cross, the side whose dial wins
/// may set it up before the other side has seen it, and then replaces the
/// losing link instead of refusing it. Either way the stations are linked.
pub fn closed_for_another_link(connection: &quinn::Connection) -> bool {
    matches!(
        connection.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if close.error_code == VarInt::from_u32(CLOSE_LINK_DUPLICATE)
                || close.error_code == VarInt::from_u32(CLOSE_SUPERSEDED)
    )
}

pub const KEEP_ALIVE_INTERVAL_MS: u64 = 5_000;
pub const IDLE_TIMEOUT_MS: u32 = 30_000;
/// Deadline for the whole set-up: QUIC and TLS handshake plus preface exchange.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Incoming connections held at once; more are refused until one closes.
/// A county center with ~650 villages falling back to it still fits.
pub const INCOMING_CONNECTIONS_MAX: usize = 1_024;
/// Incoming connections whose handshake is still in progress.
pub const INCOMING_HANDSHAKES_MAX: usize = 64;
/// Handshakes in progress beyond which a new incoming connection must first
/// prove it can receive at its source address (a QUIC Retry, one round
/// trip): a flood of spoofed sources then costs us no TLS work.
pub const RETRY_ABOVE_HANDSHAKES: usize = 16;
/// Handshakes in progress from one IP address; more are refused (and
/// counted). A village behind a carrier's NAT shares its address with
/// others, so this is generous; one LAN neighbour cannot fill the table.
pub const HANDSHAKES_PER_SOURCE_MAX: usize = 8;
/// Accepted links waiting for `accept()`; set-up of more waits meanwhile.
pub const ACCEPTED_QUEUE_LEN: usize = 16;
/// Flow-control window of the link's stream and of the whole connection:
/// how much a peer may send before we read it.
pub const STREAM_RECEIVE_WINDOW_BYTES: u32 = 1 << 20;
pub const CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 2 << 20;
pub const SEND_WINDOW_BYTES: u64 = 2 << 20;

/// Limits of one endpoint; `Default` gives the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportLimits {
    pub incoming_connections_max: usize,
    pub incoming_handshakes_max: usize,
    pub retry_above_handshakes: usize,
    pub handshakes_per_source_max: usize,
    pub handshake_timeout_ms: u64,
    pub keep_alive_interval_ms: u64,
    pub idle_timeout_ms: u32,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            incoming_connections_max: INCOMING_CONNECTIONS_MAX,
            incoming_handshakes_max: INCOMING_HANDSHAKES_MAX,
            retry_above_handshakes: RETRY_ABOVE_HANDSHAKES,
            handshakes_per_source_max: HANDSHAKES_PER_SOURCE_MAX,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
            keep_alive_interval_ms: KEEP_ALIVE_INTERVAL_MS,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot configure TLS: {reason}")]
    Config { reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("link with {addr} refused or broken during set-up: {reason}")]
    Handshake { addr: SocketAddr, reason: String },
    #[error("link with {addr} closed by the peer: another link between us wins")]
    DuplicateLink { addr: SocketAddr },
    #[error("link with {addr} not set up within {timeout_ms} ms")]
    HandshakeTimeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("{addr} did not start the stream with the civsync preface")]
    BadPreface { addr: SocketAddr },
    #[error("refused connection from {addr}: already {max} incoming connections")]
    OverCapacity { addr: SocketAddr, max: usize },
    #[error(
        "refused connection from {addr}: already {max} handshakes in progress from that address"
    )]
    TooManyHandshakesFromSource { addr: SocketAddr, max: usize },
}

/// Why a peer's certificate was refused after its chain checked out.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    #[error("certificate does not say which station holds it: {0}")]
    Identity(IdentityError),
    #[error("certificate is for station {station}, outside county {county}")]
    OutsideCounty {
        station: StationId,
        county: StationId,
    },
    #[error("certificate is for station {actual}, but {expected} was expected at this address")]
    UnexpectedStation {
        expected: StationId,
        actual: StationId,
    },
    #[error("certificate of {station} was revoked by the county: {reason}")]
    Revoked { station: StationId, reason: String },
}

// rustls shows a custom certificate error with `Debug`, and that text is what
// both ends of a refused handshake get to log: make it the readable sentence.
impl fmt::Debug for PeerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An authenticated link to a peer: one connection, one stream each way.
#[derive(Debug)]
pub struct PeerLink {
    pub peer_station: StationId,
    pub peer_tier: Tier,
    pub remote_addr: SocketAddr,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    pub connection: quinn::Connection,
}

/// A node's QUIC endpoint: accepts links from peers and opens links to them.
pub struct NodeEndpoint {
    endpoint: quinn::Endpoint,
    identity: NodeIdentity,
    trust: Arc<CountyTrust>,
    transport: Arc<TransportConfig>,
    limits: TransportLimits,
    accepted: Mutex<mpsc::Receiver<Result<PeerLink, TransportError>>>,
    acceptor: tokio::task::JoinHandle<()>,
    handshakes: Arc<HandshakeCounts>,
}

impl fmt::Debug for NodeEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeEndpoint")
            .field("station", &self.identity.station)
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Drop for NodeEndpoint {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl NodeEndpoint {
    /// Binds a UDP socket at `addr` (port 0 picks one) and starts accepting.
    /// Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, identity: &NodeIdentity) -> Result<NodeEndpoint, TransportError> {
        NodeEndpoint::bind_with_limits(addr, identity, TransportLimits::default())
    }

    pub fn bind_with_limits(
        addr: SocketAddr,
        identity: &NodeIdentity,
        limits: TransportLimits,
    ) -> Result<NodeEndpoint, TransportError> {
        NodeEndpoint::bind_with(addr, identity, limits, RevocationSet::default())
    }

    /// As `bind_with_limits`, refusing every certificate `revocations`
    /// revokes (now or once a newer list is put in force).
    pub fn bind_with(
        addr: SocketAddr,
        identity: &NodeIdentity,
        limits: TransportLimits,
        revocations: RevocationSet,
    ) -> Result<NodeEndpoint, TransportError> {
        assert!(limits.incoming_connections_max > 0 && limits.incoming_handshakes_max > 0);
        assert!(limits.handshakes_per_source_max > 0);
        assert!(limits.keep_alive_interval_ms < u64::from(limits.idle_timeout_ms));
        let trust = Arc::new(CountyTrust::new(identity, revocations)?);
        let transport = Arc::new(transport_config(limits));
        let mut server_config =
            quinn::ServerConfig::with_crypto(Arc::new(server_crypto(identity, &trust)?));
        server_config.transport_config(transport.clone());
        server_config.max_incoming(limits.incoming_handshakes_max);
        let socket = std::net::UdpSocket::bind(addr)
            .map_err(|source| TransportError::Bind { addr, source })?;
        let mut endpoint_config =
            quinn::EndpointConfig::new(Arc::new(StatelessResetKey::of(identity)));
        let connection_id_key = connection_id_key(identity);
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(
                connection_id_key,
            ))
        });
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| TransportError::Bind { addr, source })?;
        let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE_LEN);
        let handshakes = Arc::new(HandshakeCounts::default());
        let acceptor = tokio::spawn(run_acceptor(
            endpoint.clone(),
            limits,
            sender,
            handshakes.clone(),
        ));
        Ok(NodeEndpoint {
            endpoint,
            identity: identity.clone(),
            trust,
            transport,
            limits,
            accepted: Mutex::new(receiver),
            acceptor,
            handshakes,
        })
    }

    /// The revocation list this endpoint's verifiers consult.
    pub fn revocations(&self) -> &RevocationSet {
        &self.trust.revocations
    }

    /// The county CA certificate and county this endpoint trusts.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// Incoming connections refused because their source address had too
    /// many handshakes in progress, and those asked to Retry, so far.
    pub fn handshakes_refused(&self) -> (u64, u64) {
        (
            self.handshakes.refused_per_source.load(Ordering::Relaxed),
            self.handshakes.retried.load(Ordering::Relaxed),
        )
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn station(&self) -> &StationId {
        &self.identity.station
    }

    /// Opens a link to the node at `addr`. With `expected`, the link is
    /// refused unless the peer's certificate names exactly that station.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: Option<&StationId>,
    ) -> Result<PeerLink, TransportError> {
        let config = self.client_config(expected)?;
        let connecting = self
            .endpoint
            .connect_with(config, addr, SERVER_NAME)
            .map_err(|error| TransportError::Connect {
                addr,
                reason: error.to_string(),
            })?;
        let timeout_ms = self.limits.handshake_timeout_ms;
        let set_up = async {
            let connection = connecting
                .await
                .map_err(|error| TransportError::Handshake {
                    addr,
                    reason: error.to_string(),
                })?;
            let peer = peer_identity(&connection, addr)?;
            let broken = |error: &dyn fmt::Display| set_up_error(&connection, addr, error);
            let (mut send, mut recv) =
                connection.open_bi().await.map_err(|error| broken(&error))?;
            send.write_all(STREAM_PREFACE)
                .await
                .map_err(|error| broken(&error))?;
            let mut answer = [0_u8; STREAM_ACCEPT.len()];
            recv.read_exact(&mut answer)
                .await
                .map_err(|error| broken(&error))?;
            if &answer != STREAM_ACCEPT {
                connection.close(VarInt::from_u32(CLOSE_BAD_PREFACE), b"bad stream answer");
                return Err(TransportError::BadPreface { addr });
            }
            debug!(%addr, peer = %peer.station, "link opened");
            Ok(PeerLink {
                peer_station: peer.station,
                peer_tier: peer.tier,
                remote_addr: addr,
                send,
                recv,
                connection,
            })
        };
        match tokio::time::timeout(Duration::from_millis(timeout_ms), set_up).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::HandshakeTimeout { addr, timeout_ms }),
        }
    }

    /// The next link a peer opened to us, or an error describing a failed
    /// attempt (already logged; errors are dropped when nobody collects them
    /// fast enough). `None` once the endpoint is closed.
    pub async fn accept(&self) -> Option<Result<PeerLink, TransportError>> {
        self.accepted.lock().await.recv().await
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.acceptor.abort();
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
    }

    /// Waits until every connection has been closed cleanly (after `close`).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }

    /// A client configuration for one connection: the expected station is
    /// part of the certificate check, so it is built per connection.
    fn client_config(
        &self,
        expected: Option<&StationId>,
    ) -> Result<quinn::ClientConfig, TransportError> {
        let verifier = Arc::new(PeerServerVerifier {
            trust: self.trust.clone(),
            expected: expected.cloned(),
        });
        let mut crypto = rustls::ClientConfig::builder_with_provider(self.trust.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(
                self.identity.cert_chain.clone(),
                self.identity.key.clone_key(),
            )
            .map_err(config_error)?;
        crypto.alpn_protocols = vec![ALPN.to_vec()];
        // A resumed session would skip the certificate check (and its clock).
        crypto.resumption = rustls::client::Resumption::disabled();
        let quic = QuicClientConfig::try_from(crypto).map_err(config_error)?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(self.transport.clone());
        Ok(config)
    }
}

fn config_error(error: impl fmt::Display) -> TransportError {
    TransportError::Config {
        reason: error.to_string(),
    }
}

fn handshake_error(addr: SocketAddr, error: impl fmt::Display) -> TransportError {
    TransportError::Handshake {
        addr,
        reason: error.to_string(),
    }
}

/// A stream error during set-up says only "connection lost"; the reason the
/// peer gave when it closed (e.g. it refused our certificate) is more useful.
fn set_up_error(
    connection: &quinn::Connection,
    addr: SocketAddr,
    error: &dyn fmt::Display,
) -> TransportError {
    if closed_for_another_link(connection) {
        return TransportError::DuplicateLink { addr };
    }
    let reason = match connection.close_reason() {
        Some(close) => close.to_string(),
        None => error.to_string(),
    };
    TransportError::Handshake { addr, reason }
}

fn transport_config(limits: TransportLimits) -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW_BYTES))
        .send_window(SEND_WINDOW_BYTES)
        .datagram_receive_buffer_size(None)
        // Path MTU discovery sends four padded pings a side (11 KB) right
        // after every handshake and again every 10 minutes: 70% of a quiet
        // reconnect's bytes. Larger datagrams would save about half a
        // percent of a bulk transfer, which pays only past ~2 MB on one
        // link; most links are quiet, and 1,200 B datagrams fit any path.
        .mtu_discovery_config(None)
        .keep_alive_interval(Some(Duration::from_millis(limits.keep_alive_interval_ms)))
        .max_idle_timeout(Some(VarInt::from_u32(limits.idle_timeout_ms).into()));
    config
}

fn server_crypto(
    identity: &NodeIdentity,
    trust: &Arc<CountyTrust>,
) -> Result<QuicServerConfig, TransportError> {
    let inner =
        WebPkiClientVerifier::builder_with_provider(trust.roots.clone(), trust.provider.clone())
            .build()
            .map_err(config_error)?;
    let verifier = Arc::new(PeerClientVerifier {
        trust: trust.clone(),
        inner,
    });
    let mut crypto = rustls::ServerConfig::builder_with_provider(trust.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(config_error)?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption: every connection shows and checks certificates afresh.
    crypto.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    crypto.send_tls13_tickets = 0;
    QuicServerConfig::try_from(crypto).map_err(config_error)
}

/// Accepts incoming connections until the endpoint closes. Each set-up runs
/// in its own task under a deadline, so a slow or silent peer delays nobody.
async fn run_acceptor(
    endpoint: quinn::Endpoint,
    limits: TransportLimits,
    sender: mpsc::Sender<Result<PeerLink, TransportError>>,
    handshakes: Arc<HandshakeCounts>,
) {
    let connection_slots = Arc::new(Semaphore::new(limits.incoming_connections_max));
    while let Some(incoming) = endpoint.accept().await {
        let addr = incoming.remote_address();
        let (in_progress, from_source) = handshakes.counts(addr.ip());
        match judge_incoming(
            in_progress,
            from_source,
            incoming.remote_address_validated(),
            &limits,
        ) {
            IncomingVerdict::Accept => {}
            IncomingVerdict::Retry => {
                handshakes.retried.fetch_add(1, Ordering::Relaxed);
                debug!(%addr, in_progress, "asking an incoming connection to prove its address (Retry)");
                // Fails only if the address was validated already, which
                // the verdict ruled out; then the packet is simply dropped.
                let _ = incoming.retry();
                continue;
            }
            IncomingVerdict::Refuse { max } => {
                let refused = handshakes
                    .refused_per_source
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                warn!(%addr, max, refused, "refusing incoming connection: too many handshakes in progress from its address");
                incoming.refuse();
                let _ = sender.try_send(Err(TransportError::TooManyHandshakesFromSource {
                    addr,
                    max,
                }));
                continue;
            }
        }
        let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
            let max = limits.incoming_connections_max;
            warn!(%addr, max, "refusing incoming connection: too many connections");
            incoming.refuse();
            let _ = sender.try_send(Err(TransportError::OverCapacity { addr, max }));
            continue;
        };
        let sender = sender.clone();
        let handshake = HandshakeGuard::start(&handshakes, addr.ip());
        tokio::spawn(async move {
            let timeout_ms = limits.handshake_timeout_ms;
            let set_up = tokio::time::timeout(
                Duration::from_millis(timeout_ms),
                accept_link(incoming, addr),
            );
            let result = match set_up.await {
                Ok(result) => result,
                Err(_) => Err(TransportError::HandshakeTimeout { addr, timeout_ms }),
            };
            drop(handshake);
            match result {
                Ok(link) => {
                    debug!(%addr, peer = %link.peer_station, "link accepted");
                    // The slot is held for as long as the connection lives,
                    // whatever the owner of the link does with its parts.
                    let connection = link.connection.clone();
                    tokio::spawn(async move {
                        connection.closed().await;
                        drop(slot);
                    });
                    let _ = sender.send(Ok(link)).await;
                }
                Err(error) => {
                    warn!(%addr, %error, "incoming link refused");
                    let _ = sender.try_send(Err(error));
                }
            }
        });
    }
}

/// What to do with a new incoming connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingVerdict {
    Accept,
    /// Send a QUIC Retry: the peer must echo a token to the address it
    /// claims before we spend any TLS work on it.
    Retry,
    /// Refuse: its address already has `max` handshakes in progress.
    Refuse {
        max: usize,
    },
}

/// The admission rule under handshake floods, pure: with `in_progress`
/// handshakes running (`from_source` of them from the new connection's IP
/// address), refuse it past the per-source limit, else make it prove its
/// address once past the Retry threshold, else accept.
pub fn judge_incoming(
    in_progress: usize,
    from_source: usize,
    address_validated: bool,
    limits: &TransportLimits,
) -> IncomingVerdict {
    if from_source >= limits.handshakes_per_source_max {
        IncomingVerdict::Refuse {
            max: limits.handshakes_per_source_max,
        }
    } else if !address_validated && in_progress >= limits.retry_above_handshakes {
        IncomingVerdict::Retry
    } else {
        IncomingVerdict::Accept
    }
}

/// Handshakes in progress, in total and per source IP, and what was turned
/// away.
#[derive(Debug, Default)]
struct HandshakeCounts {
    in_progress: AtomicUsize,
    per_source: std::sync::Mutex<HashMap<IpAddr, usize>>,
    refused_per_source: AtomicU64,
    retried: AtomicU64,
}

impl HandshakeCounts {
    fn per_source(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_source
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn counts(&self, source: IpAddr) -> (usize, usize) {
        let from_source = self.per_source().get(&source).copied().unwrap_or(0);
        (self.in_progress.load(Ordering::Relaxed), from_source)
    }
}

/// One handshake in progress, counted until dropped (whatever way the
/// set-up ends: done, refused, timed out or its task aborted).
struct HandshakeGuard {
    counts: Arc<HandshakeCounts>,
    source: IpAddr,
}

impl HandshakeGuard {
    fn start(counts: &Arc<HandshakeCounts>, source: IpAddr) -> HandshakeGuard {
        counts.in_progress.fetch_add(1, Ordering::Relaxed);
        *counts.per_source().entry(source).or_insert(0) += 1;
        HandshakeGuard {
            counts: counts.clone(),
            source,
        }
    }
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        self.counts.in_progress.fetch_sub(1, Ordering::Relaxed);
        let mut per_source = self.counts.per_source();
        if let Some(count) = per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                per_source.remove(&self.source);
            }
        }
    }
}

async fn accept_link(
    incoming: quinn::Incoming,
    addr: SocketAddr,
) -> Result<PeerLink, TransportError> {
    let connection = incoming
        .await
        .map_err(|error| handshake_error(addr, error))?;
    let peer = peer_identity(&connection, addr)?;
    let broken = |error: &dyn fmt::Display| set_up_error(&connection, addr, error);
    let (mut send, mut recv) = connection
        .accept_bi()
        .await
        .map_err(|error| broken(&error))?;
    let mut preface = [0_u8; STREAM_PREFACE.len()];
    recv.read_exact(&mut preface)
        .await
        .map_err(|error| broken(&error))?;
    if &preface != STREAM_PREFACE {
        connection.close(VarInt::from_u32(CLOSE_BAD_PREFACE), b"bad stream preface");
        return Err(TransportError::BadPreface { addr });
    }
    send.write_all(STREAM_ACCEPT)
        .await
        .map_err(|error| broken(&error))?;
    Ok(PeerLink {
        peer_station: peer.station,
        peer_tier: peer.tier,
        remote_addr: addr,
        send,
        recv,
        connection,
    })
}

/// The peer's identity from the certificate the handshake verified.
fn peer_identity(
    connection: &quinn::Connection,
    addr: SocketAddr,
) -> Result<CertificateIdentity, TransportError> {
    let refuse = |reason: String| {
        connection.close(
            VarInt::from_u32(CLOSE_SETUP_FAILED),
            b"peer identity unreadable",
        );
        TransportError::Handshake { addr, reason }
    };
    let Some(identity) = connection.peer_identity() else {
        return Err(refuse("peer presented no certificate".to_string()));
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return Err(refuse(
            "peer identity is not a certificate chain".to_string(),
        ));
    };
    let Some(leaf) = chain.first() else {
        return Err(refuse(
            "peer presented an empty certificate chain".to_string(),
        ));
    };
    read_certificate_identity(leaf).map_err(|error| refuse(error.to_string()))
}

/// What both verifiers share: the county CA as sole trust anchor, the county
/// it covers, and the crypto provider.
#[derive(Debug)]
struct CountyTrust {
    roots: Arc<RootCertStore>,
    county: StationId,
    provider: Arc<CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
    /// Consulted at every handshake, so a list put in force applies to the
    /// next one without rebuilding any TLS configuration.
    revocations: RevocationSet,
}

impl CountyTrust {
    fn new(
        identity: &NodeIdentity,
        revocations: RevocationSet,
    ) -> Result<CountyTrust, TransportError> {
        let mut roots = RootCertStore::empty();
        roots.add(identity.ca_cert.clone()).map_err(config_error)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        Ok(CountyTrust {
            roots: Arc::new(roots),
            county: identity.county.clone(),
            provider,
            algorithms,
            revocations,
        })
    }

    /// The checks on top of the chain: the certificate names a station in
    /// our county (and the expected one, if any), and is not revoked.
    fn check_identity(
        &self,
        end_entity: &CertificateDer<'_>,
        expected: Option<&StationId>,
    ) -> Result<CertificateIdentity, PeerRefusal> {
        let identity = read_certificate_identity(end_entity).map_err(PeerRefusal::Identity)?;
        if !self.county.is_ancestor_or_self_of(&identity.station) {
            return Err(PeerRefusal::OutsideCounty {
                station: identity.station,
                county: self.county.clone(),
            });
        }
        if let Some(expected) = expected {
            if expected != &identity.station {
                return Err(PeerRefusal::UnexpectedStation {
                    expected: expected.clone(),
                    actual: identity.station,
                });
            }
        }
        if let Some(entry) = self.revocations.revoking(end_entity) {
            return Err(PeerRefusal::Revoked {
                station: identity.station,
                reason: entry.reason,
            });
        }
        Ok(identity)
    }
}

fn refusal_error(refusal: PeerRefusal) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        refusal,
    ))))
}

/// Verifies the accepting node's certificate, on the connecting side.
#[derive(Debug)]
struct PeerServerVerifier {
    trust: Arc<CountyTrust>,
    expected: Option<StationId>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        if let Err(error) = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.trust.roots,
            intermediates,
            now,
            self.trust.algorithms.all,
        ) {
            warn!(%error, county = %self.trust.county, "refusing peer certificate: not valid under our county CA");
            return Err(error);
        }
        match self
            .trust
            .check_identity(end_entity, self.expected.as_ref())
        {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(refusal) => {
                warn!(%refusal, "refusing peer certificate");
                Err(refusal_error(refusal))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.trust.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.trust.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust.algorithms.supported_schemes()
    }
}

/// Verifies the connecting node's certificate, on the accepting side:
/// rustls' WebPKI client verifier for the chain, then our identity checks.
#[derive(Debug)]
struct PeerClientVerifier {
    trust: Arc<CountyTrust>,
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(error) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            warn!(%error, county = %self.trust.county, "refusing peer certificate: not valid under our county CA");
            return Err(error);
        }
        match self.trust.check_identity(end_entity, None) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(refusal) => {
                warn!(%refusal, "refusing peer certificate");
                Err(refusal_error(refusal))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

mod restart_keys;
use restart_keys::{connection_id_key, StatelessResetKey};

#[cfg(test)]
mod tests;
