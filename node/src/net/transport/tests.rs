use super::*;
use crate::net::pki::{
    issue_node_certificate, issue_node_certificate_for_period, now_unix_s, ValidityPeriod,
    CA_CERT_FILE, CA_KEY_FILE,
};
use rcgen::{CertificateParams, Ia5String, IsCa, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::PrivateKeyDer;
use std::path::PathBuf;

const WAIT: Duration = Duration::from_secs(5);

fn id(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

/// A county CA in a temporary directory, issuing node identities.
struct County {
    root: tempfile::TempDir,
    ca_dir: PathBuf,
}

impl County {
    fn new(county: &str) -> County {
        let root = tempfile::tempdir().unwrap();
        let ca_dir = root.path().join("ca");
        crate::net::pki::init_county_ca(&ca_dir, &id(county), 3650).unwrap();
        County { root, ca_dir }
    }

    fn node_dir(&self, station: &str) -> PathBuf {
        self.root.path().join(station.replace('/', "_"))
    }

    fn node(&self, station: &str, tier: Tier) -> NodeIdentity {
        let dir = self.node_dir(station);
        issue_node_certificate(&self.ca_dir, &id(station), tier, &dir, 365).unwrap();
        NodeIdentity::load(&dir).unwrap()
    }

    fn expired_node(&self, station: &str, tier: Tier) -> NodeIdentity {
        let dir = self.node_dir(station);
        let now = now_unix_s();
        let period = ValidityPeriod {
            not_before_unix_s: now - 10 * 86_400,
            not_after_unix_s: now - 3_600,
        };
        issue_node_certificate_for_period(&self.ca_dir, &id(station), tier, &dir, period).unwrap();
        // Loading checks validity too: load as of a moment it was valid.
        NodeIdentity::load_at(&dir, now - 86_400).unwrap()
    }

    /// A certificate signed by this county's CA with hand-made names,
    /// which `issue_node_certificate` would never produce.
    fn forged_node(&self, names: Vec<SanType>, claimed: &str) -> NodeIdentity {
        let ca_pem = std::fs::read_to_string(self.ca_dir.join(CA_CERT_FILE)).unwrap();
        let ca_key =
            KeyPair::from_pem(&std::fs::read_to_string(self.ca_dir.join(CA_KEY_FILE)).unwrap())
                .unwrap();
        let ca = CertificateParams::from_ca_cert_pem(&ca_pem)
            .unwrap()
            .self_signed(&ca_key)
            .unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::ExplicitNoCa;
        params.subject_alt_names = names;
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf = params.signed_by(&key, &ca, &ca_key).unwrap();
        let (ca_cert, ca_identity) =
            crate::net::pki::load_ca_certificate(&self.ca_dir.join(CA_CERT_FILE)).unwrap();
        NodeIdentity {
            station: id(claimed),
            tier: Tier::Township,
            county: ca_identity.station,
            not_after_unix_s: now_unix_s() + 86_400,
            cert_chain: vec![leaf.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            ca_cert,
        }
    }
}

fn uri(text: &str) -> SanType {
    SanType::URI(Ia5String::try_from(text).unwrap())
}

fn bind(identity: &NodeIdentity) -> NodeEndpoint {
    NodeEndpoint::bind("127.0.0.1:0".parse().unwrap(), identity).unwrap()
}

async fn next_accepted(endpoint: &NodeEndpoint) -> Result<PeerLink, TransportError> {
    tokio::time::timeout(WAIT, endpoint.accept())
        .await
        .expect("accept timed out")
        .expect("endpoint closed")
}

/// Both ends fail: the connecting side's `connect` and the accepting
/// side's next `accept`.
async fn assert_refused(
    from: &NodeEndpoint,
    to: &NodeEndpoint,
    expected: Option<&StationId>,
) -> String {
    let addr = to.local_addr().unwrap();
    let connected = from.connect(addr, expected).await;
    let accepted = next_accepted(to).await;
    assert!(
        accepted.is_err(),
        "acceptor took a link it should refuse: {accepted:?}"
    );
    match connected {
        Ok(link) => panic!("connect succeeded with {}", link.peer_station),
        Err(error) => error.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_its_address_resets_its_peers_dead_connections() {
    let county = County::new("xh");
    let township_identity = county.node("xh/t03", Tier::Township);
    let township = bind(&township_identity);
    let address = township.local_addr().unwrap();
    // The village reaches the township through a relay, so the
    // township's end can vanish without a word reaching the village.
    let relay = crate::net::relay::Relay::start("127.0.0.1:0".parse().unwrap(), address)
        .await
        .unwrap();
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let link = village
        .connect(relay.listen, Some(&id("xh/t03")))
        .await
        .unwrap();
    let accepted = next_accepted(&township).await.unwrap();

    relay.set_cut(true);
    drop(accepted);
    township.close();
    drop(township);
    // The restart, on the same address (once the old socket is gone).
    let mut attempts = 0;
    let restarted = loop {
        match NodeEndpoint::bind(address, &township_identity) {
            Ok(endpoint) => break endpoint,
            Err(error) => {
                attempts += 1;
                assert!(attempts < 250, "cannot rebind {address}: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    relay.set_cut(false);
    let started = std::time::Instant::now();
    let idle = Duration::from_millis(u64::from(IDLE_TIMEOUT_MS));
    let ended = tokio::time::timeout(idle, link.connection.closed())
        .await
        .expect("the dead connection lingered until the idle timeout");
    let took = started.elapsed();
    assert!(matches!(ended, quinn::ConnectionError::Reset), "{ended:?}");
    assert!(
        took < Duration::from_millis(2 * KEEP_ALIVE_INTERVAL_MS + 2_000),
        "reset after {took:?}"
    );
    // And the restarted township takes the village's next link.
    let again = village.connect(address, Some(&id("xh/t03"))).await.unwrap();
    assert_eq!(again.peer_station, id("xh/t03"));
    assert_eq!(
        next_accepted(&restarted).await.unwrap().peer_station,
        id("xh/t03/v12")
    );
    relay.stop();
}

#[test]
fn the_stateless_reset_key_follows_the_private_key() {
    use quinn::crypto::HmacKey;
    let county = County::new("xh");
    let identity = county.node("xh/t03", Tier::Township);
    let other = county.node("xh/t04", Tier::Township);
    let sign = |key: &StatelessResetKey| {
        let mut out = [0_u8; 32];
        key.sign(b"connection id", &mut out);
        out
    };
    let key = StatelessResetKey::of(&identity);
    assert_eq!(key.signature_len(), 32);
    // The same after a restart (a new load of the same identity) ...
    assert_eq!(sign(&key), sign(&StatelessResetKey::of(&identity)));
    // ... and another node's differs.
    assert_ne!(sign(&key), sign(&StatelessResetKey::of(&other)));
    let signature = sign(&key);
    assert!(key.verify(b"connection id", &signature).is_ok());
    assert!(key.verify(b"another id", &signature).is_err());
}

#[tokio::test]
async fn a_link_closed_because_another_wins_is_told_apart_from_a_refusal() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let township_addr = township.local_addr().unwrap();
    for (code, duplicate) in [
        (CLOSE_LINK_DUPLICATE, true),
        (CLOSE_SUPERSEDED, true),
        (CLOSE_LINK_REFUSED, false),
        (CLOSE_SETUP_FAILED, false),
    ] {
        let (connected, accepted) = tokio::join!(
            village.connect(township_addr, None),
            next_accepted(&township)
        );
        accepted
            .unwrap()
            .connection
            .close(VarInt::from_u32(code), b"closed by the test");
        match connected {
            Ok(link) => {
                link.connection.closed().await;
                assert_eq!(
                    closed_for_another_link(&link.connection),
                    duplicate,
                    "code {code}"
                );
            }
            // Closed before the dialler read the answer: the error says
            // which it was.
            Err(error) => assert_eq!(
                matches!(error, TransportError::DuplicateLink { .. }),
                duplicate,
                "code {code}: {error}"
            ),
        }
    }
}

#[tokio::test]
async fn nodes_of_one_county_link_up_and_see_each_others_station_and_tier() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let township_addr = township.local_addr().unwrap();

    let expected = id("xh/t03");
    let (connected, accepted) = tokio::join!(
        village.connect(township_addr, Some(&expected)),
        next_accepted(&township)
    );
    let mut up = connected.unwrap();
    let mut down = accepted.unwrap();
    assert_eq!(
        (up.peer_station.clone(), up.peer_tier),
        (id("xh/t03"), Tier::Township)
    );
    assert_eq!(
        (down.peer_station.clone(), down.peer_tier),
        (id("xh/t03/v12"), Tier::Village)
    );
    assert_eq!(up.remote_addr, township_addr);
    assert_eq!(down.remote_addr, village.local_addr().unwrap());

    // The streams carry exactly the bytes written, prefaces stripped.
    up.send.write_all(b"hello from v12").await.unwrap();
    let mut buffer = [0_u8; 14];
    down.recv.read_exact(&mut buffer).await.unwrap();
    assert_eq!(&buffer, b"hello from v12");
    down.send.write_all(b"ok").await.unwrap();
    down.send.finish().unwrap();
    let rest = up.recv.read_to_end(64).await.unwrap();
    assert_eq!(rest, b"ok");

    // Without an expected station any county peer is accepted.
    let (connected, accepted) = tokio::join!(
        village.connect(township_addr, None),
        next_accepted(&township)
    );
    assert_eq!(connected.unwrap().peer_station, id("xh/t03"));
    assert_eq!(accepted.unwrap().peer_station, id("xh/t03/v12"));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_in_both_directions() {
    let county = County::new("xh");
    // Same county name, different CA: only the key makes a CA.
    let impostor_county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let impostor = bind(&impostor_county.node("xh/t03/v12", Tier::Village));

    let reason = assert_refused(&impostor, &township, None).await;
    assert!(reason.contains("invalid peer certificate"), "{reason}");
    assert_refused(&township, &impostor, None).await;
}

#[tokio::test]
async fn an_expired_certificate_is_refused_in_both_directions() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let expired = bind(&county.expired_node("xh/t03/v12", Tier::Village));

    assert_refused(&expired, &township, None).await;
    let reason = assert_refused(&township, &expired, None).await;
    assert!(reason.to_lowercase().contains("expired"), "{reason}");
}

#[tokio::test]
async fn a_peer_other_than_the_expected_station_is_refused() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let village = bind(&county.node("xh/t04/v01", Tier::Village));
    let addr = township.local_addr().unwrap();

    let error = village
        .connect(addr, Some(&id("xh/t04")))
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Handshake { .. }), "{error}");
    assert!(error.to_string().contains("xh/t04"), "{error}");
    let accepted = next_accepted(&township).await;
    assert!(accepted.is_err(), "{accepted:?}");
}

#[tokio::test]
async fn certificates_without_a_station_or_outside_the_county_are_refused() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let nameless = bind(&county.forged_node(vec![uri("civsync://tier/township")], "xh/t09"));
    let outsider = bind(&county.forged_node(
        vec![
            uri("civsync://station/yc/t01"),
            uri("civsync://tier/township"),
        ],
        "yc/t01",
    ));

    assert_refused(&nameless, &township, None).await;
    assert_refused(&township, &nameless, None).await;
    assert_refused(&outsider, &township, None).await;
    let reason = assert_refused(&township, &outsider, None).await;
    assert!(reason.contains("yc/t01"), "{reason}");
}

#[tokio::test]
async fn a_stream_without_the_preface_is_refused_and_accepting_goes_on() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let addr = township.local_addr().unwrap();

    let config = village.client_config(None).unwrap();
    let connection = village
        .endpoint
        .connect_with(config, addr, SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(b"\xff\x00garbage that is not a preface")
        .await
        .unwrap();
    let error = next_accepted(&township).await.unwrap_err();
    assert!(
        matches!(error, TransportError::BadPreface { .. }),
        "{error}"
    );
    let closed = tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap();
    assert!(closed.to_string().contains("preface"), "{closed}");

    let (connected, accepted) = tokio::join!(village.connect(addr, None), next_accepted(&township));
    assert!(connected.is_ok() && accepted.is_ok());
}

#[tokio::test]
async fn incoming_connections_beyond_the_limit_are_refused_until_one_closes() {
    let county = County::new("xh");
    let limits = TransportLimits {
        incoming_connections_max: 1,
        ..TransportLimits::default()
    };
    let township = NodeEndpoint::bind_with_limits(
        "127.0.0.1:0".parse().unwrap(),
        &county.node("xh/t03", Tier::Township),
        limits,
    )
    .unwrap();
    let first = bind(&county.node("xh/t03/v01", Tier::Village));
    let second = bind(&county.node("xh/t03/v02", Tier::Village));
    let addr = township.local_addr().unwrap();

    let (connected, accepted) = tokio::join!(first.connect(addr, None), next_accepted(&township));
    let link = connected.unwrap();
    let _accepted = accepted.unwrap();
    let error = second.connect(addr, None).await.unwrap_err();
    assert!(matches!(error, TransportError::Handshake { .. }), "{error}");
    let over = next_accepted(&township).await.unwrap_err();
    assert!(
        matches!(over, TransportError::OverCapacity { max: 1, .. }),
        "{over}"
    );

    link.connection
        .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"done");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (connected, _) = tokio::join!(second.connect(addr, None), township.accept());
        if connected.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_one_stream_per_connection_is_allowed() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let (connected, accepted) = tokio::join!(
        village.connect(township.local_addr().unwrap(), None),
        next_accepted(&township)
    );
    let link = connected.unwrap();
    let _accepted = accepted.unwrap();
    // A second bidirectional stream never opens: the peer allows one.
    let second = tokio::time::timeout(Duration::from_millis(300), link.connection.open_bi()).await;
    assert!(second.is_err(), "a second stream opened");
    let uni = tokio::time::timeout(Duration::from_millis(300), link.connection.open_uni()).await;
    assert!(uni.is_err(), "a unidirectional stream opened");
}

/// A revocation set holding the county's list revoking `station`.
fn revoking(county: &County, station: &str, reason: &str) -> RevocationSet {
    crate::net::revocation::revoke_at_county(
        &county.ca_dir,
        &id(station),
        None,
        reason,
        now_unix_s() + 1,
    )
    .unwrap();
    let signed = std::fs::read_to_string(
        county
            .ca_dir
            .join(crate::net::revocation::REVOCATION_LIST_FILE),
    )
    .unwrap();
    let (ca_cert, _) =
        crate::net::pki::load_ca_certificate(&county.ca_dir.join(CA_CERT_FILE)).unwrap();
    let set = RevocationSet::default();
    set.accept_signed(&signed, &ca_cert).unwrap();
    set
}

fn bind_revoking(identity: &NodeIdentity, revocations: RevocationSet) -> NodeEndpoint {
    NodeEndpoint::bind_with(
        "127.0.0.1:0".parse().unwrap(),
        identity,
        TransportLimits::default(),
        revocations,
    )
    .unwrap()
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_at_the_handshake_naming_the_reason() {
    let county = County::new("xh");
    let stolen_identity = county.node("xh/t03/v12", Tier::Village);
    let honest = bind(&county.node("xh/t03/v13", Tier::Village));
    let stolen = bind(&stolen_identity);
    let revocations = revoking(&county, "xh/t03/v12", "office PC stolen on 1 Dec");
    let township = bind_revoking(&county.node("xh/t03", Tier::Township), revocations.clone());
    let addr = township.local_addr().unwrap();

    // The thief dials the township: refused, and told why.
    let reason = assert_refused(&stolen, &township, None).await;
    assert!(
        reason.contains("revoked") && reason.contains("office PC stolen on 1 Dec"),
        "{reason}"
    );
    // The township dials the stolen PC (as a sibling would): refused too.
    let reason = assert_refused(&township, &stolen, None).await;
    assert!(reason.contains("revoked"), "{reason}");
    // Everyone else links up as before.
    let (connected, accepted) = tokio::join!(honest.connect(addr, None), next_accepted(&township));
    connected.unwrap();
    assert_eq!(accepted.unwrap().peer_station, id("xh/t03/v13"));
}

#[tokio::test]
async fn a_list_put_in_force_later_applies_to_the_next_handshake() {
    let county = County::new("xh");
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let revocations = RevocationSet::default();
    let township = bind_revoking(&county.node("xh/t03", Tier::Township), revocations.clone());
    let addr = township.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(village.connect(addr, None), next_accepted(&township));
    connected.unwrap();
    accepted.unwrap();

    let list = revoking(&county, "xh/t03/v12", "broken beyond repair").list();
    revocations.accept((*list.unwrap()).clone()).unwrap();
    let reason = assert_refused(&village, &township, None).await;
    assert!(reason.contains("broken beyond repair"), "{reason}");
}

#[test]
fn past_the_per_source_limit_a_connection_is_refused_whatever_else() {
    let limits = TransportLimits {
        retry_above_handshakes: 4,
        handshakes_per_source_max: 2,
        ..TransportLimits::default()
    };
    for (in_progress, validated) in [(2, false), (2, true), (10, true), (10, false)] {
        assert_eq!(
            judge_incoming(in_progress, 2, validated, &limits),
            IncomingVerdict::Refuse { max: 2 }
        );
    }
    assert_eq!(
        judge_incoming(3, 3, true, &limits),
        IncomingVerdict::Refuse { max: 2 }
    );
}

#[test]
fn past_the_retry_threshold_an_unproven_address_must_retry_first() {
    let limits = TransportLimits {
        retry_above_handshakes: 4,
        handshakes_per_source_max: 2,
        ..TransportLimits::default()
    };
    assert_eq!(
        judge_incoming(3, 1, false, &limits),
        IncomingVerdict::Accept
    );
    assert_eq!(judge_incoming(4, 1, false, &limits), IncomingVerdict::Retry);
    assert_eq!(
        judge_incoming(40, 0, false, &limits),
        IncomingVerdict::Retry
    );
    // An address proven by a Retry is let through (its token came back).
    assert_eq!(
        judge_incoming(40, 1, true, &limits),
        IncomingVerdict::Accept
    );
    // The defaults: Retry first, well before the per-source limit of a
    // shared (NATed) address is the only thing left.
    let defaults = TransportLimits::default();
    assert!(defaults.retry_above_handshakes <= defaults.incoming_handshakes_max);
    assert_eq!(
        judge_incoming(RETRY_ABOVE_HANDSHAKES, 0, false, &defaults),
        IncomingVerdict::Retry
    );
    assert_eq!(
        judge_incoming(0, HANDSHAKES_PER_SOURCE_MAX, true, &defaults),
        IncomingVerdict::Refuse {
            max: HANDSHAKES_PER_SOURCE_MAX
        }
    );
}

#[tokio::test]
async fn a_connection_asked_to_retry_proves_its_address_and_links_up() {
    let county = County::new("xh");
    let limits = TransportLimits {
        retry_above_handshakes: 0,
        ..TransportLimits::default()
    };
    let township = NodeEndpoint::bind_with_limits(
        "127.0.0.1:0".parse().unwrap(),
        &county.node("xh/t03", Tier::Township),
        limits,
    )
    .unwrap();
    let village = bind(&county.node("xh/t03/v01", Tier::Village));
    let addr = township.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(village.connect(addr, None), next_accepted(&township));
    connected.unwrap();
    assert_eq!(accepted.unwrap().peer_station, id("xh/t03/v01"));
    let (refused, retried) = township.handshakes_refused();
    assert_eq!((refused, retried), (0, 1));
}

/// Two up-to-date nodes reconnecting exchange a handshake and a few dozen
/// bytes of sync, then nothing: that link must cost little on the wire.
/// Path MTU probes (1.3–1.4 KB each, four a side, right after the
/// handshake) were most of it, so a quiet link must send none. QUIC itself
/// pads every datagram carrying a client Initial, and the server's first
/// flight, to 1,200 B: three of those are 3.6 KB before anything else.
#[tokio::test]
async fn a_quiet_link_sends_no_mtu_probes_and_stays_under_5_kb_on_the_wire() {
    let county = County::new("xh");
    let township = bind(&county.node("xh/t03", Tier::Township));
    let village = bind(&county.node("xh/t03/v12", Tier::Village));
    let township_addr = township.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(
        village.connect(township_addr, None),
        next_accepted(&township)
    );
    let mut up = connected.unwrap();
    let mut down = accepted.unwrap();
    // About what two up-to-date nodes say to each other (69 B in all).
    up.send.write_all(&[7; 35]).await.unwrap();
    let mut buffer = [0_u8; 35];
    down.recv.read_exact(&mut buffer).await.unwrap();
    down.send.write_all(&buffer[..34]).await.unwrap();
    up.recv.read_exact(&mut buffer[..34]).await.unwrap();
    // Probes go out right after the handshake, a round trip apart: on
    // loopback they would all be done well within this.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (up_stats, down_stats) = (up.connection.stats(), down.connection.stats());
    assert_eq!(
        (
            up_stats.path.sent_plpmtud_probes,
            down_stats.path.sent_plpmtud_probes
        ),
        (0, 0),
        "MTU probes sent (connecting side, accepting side)"
    );
    let total = up_stats.udp_tx.bytes + down_stats.udp_tx.bytes;
    assert!(
        total <= 5_000,
        "a quiet link put {total} B on the wire: {} B up, {} B down",
        up_stats.udp_tx.bytes,
        down_stats.udp_tx.bytes
    );
}
