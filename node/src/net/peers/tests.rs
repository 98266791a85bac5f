use super::change_feed::FeedTiming;
use super::*;
use crate::net::pki::{init_county_ca, issue_node_certificate, NodeIdentity};
use crate::net::relay::Relay;
use crate::net::transport::{CLOSE_SETUP_FAILED, IDLE_TIMEOUT_MS};
use automerge::transaction::Transactable;
use automerge::ROOT;
use civsync_protocol::identity::document_id::Month;
use civsync_protocol::replica::ReplicaConfig;
use quinn::VarInt;
use std::path::Path;

const WAIT: Duration = Duration::from_secs(10);

fn id(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

struct Office {
    store: Store,
    endpoint: Arc<NodeEndpoint>,
    manager: PeerManager,
}

fn identity(root: &Path, station: &str, tier: Tier) -> NodeIdentity {
    identity_in(root, station, tier, "")
}

/// A certificate for `station` in its own folder (`copy` tells copies apart).
fn identity_in(root: &Path, station: &str, tier: Tier, copy: &str) -> NodeIdentity {
    let dir = root.join(format!("{}{copy}", station.replace('/', "_")));
    issue_node_certificate(&root.join("ca"), &id(station), tier, &dir, 30).unwrap();
    NodeIdentity::load(&dir).unwrap()
}

fn office(root: &Path, station: &str, tier: Tier, dialled: Vec<DialledPeer>) -> Office {
    office_at(root, station, tier, dialled, "127.0.0.1:0".parse().unwrap())
}

fn office_at(
    root: &Path,
    station: &str,
    tier: Tier,
    dialled: Vec<DialledPeer>,
    address: SocketAddr,
) -> Office {
    let identity = identity(root, station, tier);
    let store_dir = root.join(format!("{}-store", station.replace('/', "_")));
    let store = Store::open(&store_dir, id(station), ReplicaConfig::default()).unwrap();
    let endpoint = Arc::new(NodeEndpoint::bind(address, &identity).unwrap());
    let manager = PeerManager::start(
        endpoint.clone(),
        store.clone(),
        tier,
        dialled,
        SessionConfig::default(),
    );
    Office {
        store,
        endpoint,
        manager,
    }
}

async fn wait_for_heads(from: &Store, to: &Store, document: &DocumentId) {
    let wanted = heads(from, document).await;
    assert!(wanted.is_some());
    let deadline = Instant::now() + WAIT * 2;
    while heads(to, document).await != wanted {
        assert!(Instant::now() < deadline, "{document} never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for(what: &str, condition: impl FnMut() -> bool) {
    wait_for_within(what, WAIT, condition).await
}

async fn wait_for_within(what: &str, wait: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn heads(store: &Store, document: &DocumentId) -> Option<Vec<automerge::ChangeHash>> {
    let document = document.clone();
    store
        .call(move |replica| replica.heads(&document).map(|heads| heads.to_vec()))
        .await
        .unwrap()
}

/// The county's CA and a township office, with how its villages dial it.
fn township_as_parent(root: &Path) -> (Office, DialledPeer) {
    init_county_ca(&root.join("ca"), &id("xh"), 3650).unwrap();
    let township = office(root, "xh/t03", Tier::Township, vec![]);
    let parent = DialledPeer {
        role: PeerRole::Parent,
        station: id("xh/t03"),
        address: township.endpoint.local_addr().unwrap(),
    };
    (township, parent)
}

fn township_and_village(root: &Path) -> (Office, Office) {
    let (township, parent) = township_as_parent(root);
    let village = office(root, "xh/t03/v12", Tier::Village, vec![parent]);
    (township, village)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_village_commit_reaches_its_township_live() {
    let root = tempfile::tempdir().unwrap();
    let (township, village) = township_and_village(root.path());
    let village_board = village.manager.board();
    let township_board = township.manager.board();
    wait_for("the link", || {
        village_board
            .get(&id("xh/t03"))
            .is_some_and(|status| status.connected && status.up_to_date)
            && township_board
                .get(&id("xh/t03/v12"))
                .is_some_and(|status| status.connected)
    })
    .await;
    let seen_by_village = village_board.get(&id("xh/t03")).unwrap();
    assert_eq!(
        (seen_by_village.tier, seen_by_village.role),
        (Some(Tier::Township), PeerRole::Parent)
    );
    let seen_by_township = township_board.get(&id("xh/t03/v12")).unwrap();
    assert_eq!(
        (seen_by_township.tier, seen_by_township.role),
        (Some(Tier::Village), PeerRole::Incoming)
    );

    let document = DocumentId::activities(&id("xh/t03/v12"), Month::new(2026, 11).unwrap());
    for round in 0..3_i64 {
        village
            .store
            .commit(document.clone(), move |doc| doc.put(ROOT, "round", round))
            .await
            .unwrap();
        let committed = Instant::now();
        let wanted = heads(&village.store, &document).await;
        assert!(wanted.is_some());
        let deadline = committed + WAIT;
        while heads(&township.store, &document).await != wanted {
            assert!(
                Instant::now() < deadline,
                "round {round}: the township never got the change"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let latency = committed.elapsed();
        eprintln!("live push round {round}: {} ms", latency.as_millis());
        assert!(
            latency < Duration::from_secs(1),
            "round {round} took {latency:?}"
        );
    }
    // A clean stop says goodbye: the township sees the village leave
    // without an error.
    village.manager.shutdown().await;
    wait_for("the goodbye", || {
        township_board
            .get(&id("xh/t03/v12"))
            .is_some_and(|status| !status.connected)
    })
    .await;
    let left = township_board.get(&id("xh/t03/v12")).unwrap();
    assert_eq!(left.last_error, None);
    township.manager.shutdown().await;
    village.store.close().await;
    township.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_link_closes_that_session_only() {
    let root = tempfile::tempdir().unwrap();
    let (township, village) = township_and_village(root.path());
    let township_board = township.manager.board();
    wait_for("the village link", || {
        township_board
            .get(&id("xh/t03/v12"))
            .is_some_and(|status| status.connected)
    })
    .await;

    // A certified but broken peer: valid certificate, garbage session bytes.
    let rogue = NodeEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        &identity(root.path(), "xh/t03/v13", Tier::Village),
    )
    .unwrap();
    let mut link = rogue
        .connect(township.endpoint.local_addr().unwrap(), Some(&id("xh/t03")))
        .await
        .unwrap();
    link.send.write_all(&[0xff; 4096]).await.unwrap();
    // The township answers (hello, then goodbye) and ends the stream.
    let answer = tokio::time::timeout(WAIT, link.recv.read_to_end(1 << 20))
        .await
        .unwrap();
    assert!(answer.is_ok(), "{answer:?}");
    wait_for("the rogue's error on the board", || {
        township_board
            .get(&id("xh/t03/v13"))
            .is_some_and(|status| !status.connected && status.last_error.is_some())
    })
    .await;
    let error = township_board
        .get(&id("xh/t03/v13"))
        .unwrap()
        .last_error
        .unwrap();
    assert!(error.contains("protocol"), "{error}");

    // The village is still in session and its changes still arrive.
    assert!(township_board.get(&id("xh/t03/v12")).unwrap().connected);
    let document = DocumentId::roster(&id("xh/t03/v12"));
    village
        .store
        .commit(document.clone(), |doc| doc.put(ROOT, "name", "v12"))
        .await
        .unwrap();
    let wanted = heads(&village.store, &document).await;
    let deadline = Instant::now() + WAIT;
    while heads(&township.store, &document).await != wanted {
        assert!(
            Instant::now() < deadline,
            "the village's change never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    village.manager.shutdown().await;
    township.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_parent_is_down_arrive_when_it_comes_up() {
    let root = tempfile::tempdir().unwrap();
    init_county_ca(&root.path().join("ca"), &id("xh"), 3650).unwrap();
    // The parent's port stays held (by a socket that never answers)
    // until the parent starts on it: released early, any endpoint bound
    // to port 0 meanwhile by a test running beside this one could take it.
    let parent_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let parent_address = parent_port.local_addr().unwrap();
    let parent = DialledPeer {
        role: PeerRole::Parent,
        station: id("xh/t03"),
        address: parent_address,
    };
    let village = office(root.path(), "xh/t03/v12", Tier::Village, vec![parent]);
    let document = DocumentId::activities(&id("xh/t03/v12"), Month::new(2026, 11).unwrap());
    for round in 0..3_i64 {
        village
            .store
            .commit(document.clone(), move |doc| doc.put(ROOT, "round", round))
            .await
            .unwrap();
    }
    let board = village.manager.board();
    // A dial nobody answers fails only at the handshake timeout.
    let handshake = Duration::from_millis(crate::net::transport::HANDSHAKE_TIMEOUT_MS);
    wait_for_within("a failed attempt", handshake + WAIT, || {
        board
            .get(&id("xh/t03"))
            .is_some_and(|status| status.connect_failures >= 1 && status.last_error.is_some())
    })
    .await;
    assert!(!board.get(&id("xh/t03")).unwrap().connected);

    drop(parent_port);
    let township = office_at(
        root.path(),
        "xh/t03",
        Tier::Township,
        vec![],
        parent_address,
    );
    wait_for_heads(&village.store, &township.store, &document).await;
    assert!(board.get(&id("xh/t03")).unwrap().connected);
    village.manager.shutdown().await;
    township.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_village_supersedes_its_silent_old_link_at_once() {
    let root = tempfile::tempdir().unwrap();
    init_county_ca(&root.path().join("ca"), &id("xh"), 3650).unwrap();
    let township = office(root.path(), "xh/t03", Tier::Township, vec![]);
    let township_board = township.manager.board();
    // The first incarnation reaches the township through a relay, so its
    // link can fall silent without a close: as under SIGKILL.
    let relay = Relay::start(
        "127.0.0.1:0".parse().unwrap(),
        township.endpoint.local_addr().unwrap(),
    )
    .await
    .unwrap();
    let through_relay = DialledPeer {
        role: PeerRole::Parent,
        station: id("xh/t03"),
        address: relay.listen,
    };
    let village = office(
        root.path(),
        "xh/t03/v12",
        Tier::Village,
        vec![through_relay],
    );
    wait_for("the first link", || {
        township_board
            .get(&id("xh/t03/v12"))
            .is_some_and(|status| status.connected && status.sessions == 1)
    })
    .await;
    relay.set_cut(true);
    village.manager.shutdown().await;
    village.store.close().await;

    // The restart: same station, same store, dialling directly.
    let restarted_at = Instant::now();
    let parent = DialledPeer {
        role: PeerRole::Parent,
        station: id("xh/t03"),
        address: township.endpoint.local_addr().unwrap(),
    };
    let store = Store::open(
        &root.path().join("xh_t03_v12-store"),
        id("xh/t03/v12"),
        ReplicaConfig::default(),
    )
    .unwrap();
    let identity = identity_in(root.path(), "xh/t03/v12", Tier::Village, "-restarted");
    let endpoint = Arc::new(NodeEndpoint::bind("127.0.0.1:0".parse().unwrap(), &identity).unwrap());
    let village = Office {
        store: store.clone(),
        endpoint: endpoint.clone(),
        manager: PeerManager::start(
            endpoint,
            store,
            Tier::Village,
            vec![parent],
            SessionConfig::default(),
        ),
    };
    let document = DocumentId::roster(&id("xh/t03/v12"));
    village
        .store
        .commit(document.clone(), |doc| doc.put(ROOT, "name", "v12"))
        .await
        .unwrap();
    wait_for_heads(&village.store, &township.store, &document).await;
    let caught_up = restarted_at.elapsed();
    eprintln!(
        "restarted village caught up in {} ms",
        caught_up.as_millis()
    );
    assert!(
        caught_up < Duration::from_millis(u64::from(IDLE_TIMEOUT_MS) / 3),
        "took {caught_up:?}: the old link was waited out"
    );
    let status = township_board.get(&id("xh/t03/v12")).unwrap();
    assert!(status.connected, "{status:?}");
    assert_eq!((status.sessions, status.links_superseded), (2, 1));
    // Being superseded is not an error of the old link.
    assert_eq!(status.last_error, None);
    relay.stop();
    village.manager.shutdown().await;
    township.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_with_one_certificate_are_refused_once_they_flap() {
    let root = tempfile::tempdir().unwrap();
    let (township, village) = township_and_village(root.path());
    let township_board = township.manager.board();
    wait_for("the village link", || {
        township_board
            .get(&id("xh/t03/v12"))
            .is_some_and(|status| status.connected)
    })
    .await;
    let twin = NodeEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        &identity_in(root.path(), "xh/t03/v12", Tier::Village, "-twin"),
    )
    .unwrap();
    // The twin dials again and again (the real village redials each time
    // it is superseded); its links are kept open so they stay in session.
    let mut twin_links = Vec::new();
    let mut refused = None;
    for _ in 0..2 * LINK_SUPERSEDES_MAX + 2 {
        match twin
            .connect(township.endpoint.local_addr().unwrap(), None)
            .await
        {
            Ok(link) => twin_links.push(link),
            Err(error) => {
                refused = Some(error.to_string());
                break;
            }
        }
        let status = township_board.get(&id("xh/t03/v12")).unwrap();
        if status.last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("the flapping refusal on the board", || {
        township_board
            .get(&id("xh/t03/v12"))
            .is_some_and(|status| status.last_error.is_some())
    })
    .await;
    let status = township_board.get(&id("xh/t03/v12")).unwrap();
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("same certificate"), "{error}");
    assert_eq!(status.links_superseded, LINK_SUPERSEDES_MAX as u64);
    if let Some(refused) = refused {
        assert!(refused.contains("same certificate"), "{refused}");
    }
    // In backoff: more links are refused and supersede nothing.
    for _ in 0..3 {
        if let Ok(mut link) = twin
            .connect(township.endpoint.local_addr().unwrap(), None)
            .await
        {
            let closed = tokio::time::timeout(WAIT, link.recv.read_to_end(1 << 20))
                .await
                .unwrap();
            assert!(closed.is_err(), "a twin got a session: {closed:?}");
        }
    }
    let status = township_board.get(&id("xh/t03/v12")).unwrap();
    assert_eq!(status.links_superseded, LINK_SUPERSEDES_MAX as u64);
    drop(twin_links);
    village.manager.shutdown().await;
    township.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_dialling_each_other_settle_on_one_link() {
    let root = tempfile::tempdir().unwrap();
    init_county_ca(&root.path().join("ca"), &id("xh"), 3650).unwrap();
    let sibling = |station: &str, address| DialledPeer {
        role: PeerRole::Sibling,
        station: id(station),
        address,
    };
    // Both endpoints listen before either dials, so the two dials cross.
    // Each binds port 0 and keeps it: two ports found free one after the
    // other may be the same one.
    let bound = |station: &str| {
        let identity = identity(root.path(), station, Tier::Township);
        let store_dir = root
            .path()
            .join(format!("{}-store", station.replace('/', "_")));
        let store = Store::open(&store_dir, id(station), ReplicaConfig::default()).unwrap();
        let endpoint =
            Arc::new(NodeEndpoint::bind("127.0.0.1:0".parse().unwrap(), &identity).unwrap());
        let address = endpoint.local_addr().unwrap();
        (store, endpoint, address)
    };
    let ((store_3, endpoint_3, address_3), (store_4, endpoint_4, address_4)) =
        (bound("xh/t03"), bound("xh/t04"));
    let start = |store: Store, endpoint: Arc<NodeEndpoint>, peer: &str, address| {
        PeerManager::start(
            endpoint,
            store,
            Tier::Township,
            vec![sibling(peer, address)],
            SessionConfig::default(),
        )
    };
    let t03 = start(store_3, endpoint_3, "xh/t04", address_4);
    let t04 = start(store_4, endpoint_4, "xh/t03", address_3);
    let (board_3, board_4) = (t03.board(), t04.board());
    let linked = || {
        board_3
            .get(&id("xh/t04"))
            .is_some_and(|status| status.connected && status.up_to_date)
            && board_4
                .get(&id("xh/t03"))
                .is_some_and(|status| status.connected && status.up_to_date)
    };
    wait_for("the sibling link", linked).await;
    let sessions = |board: &PeerStatusBoard, peer: &str| board.get(&id(peer)).unwrap().sessions;
    // A dial that crossed may still be on its way (a loaded machine
    // sets links up slowly) and replace the link once: let it land.
    tokio::time::sleep(Duration::from_millis(3 * IN_SESSION_RECHECK_MS)).await;
    let settled = (sessions(&board_3, "xh/t04"), sessions(&board_4, "xh/t03"));
    // Stays settled: no side keeps replacing or dropping the link.
    tokio::time::sleep(Duration::from_millis(3 * IN_SESSION_RECHECK_MS)).await;
    assert!(linked());
    assert_eq!(
        (sessions(&board_3, "xh/t04"), sessions(&board_4, "xh/t03")),
        settled
    );
    for (board, peer) in [(&board_3, "xh/t04"), (&board_4, "xh/t03")] {
        let status = board.get(&id(peer)).unwrap();
        assert_eq!(status.last_error, None, "{status:?}");
        assert!(status.sessions <= 2, "{status:?}");
    }
    t03.shutdown().await;
    t04.shutdown().await;
}

/// Two siblings' dials crossed, and the peer set its winning dial up
/// before this side had seen it: the peer replaces (supersedes) the
/// losing link instead of refusing it. The stations are linked by the
/// winner; the closed loser is no error on the status page. A peer
/// closing for any other reason still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_the_peer_replaced_with_its_own_is_no_error() {
    let root = tempfile::tempdir().unwrap();
    init_county_ca(&root.path().join("ca"), &id("xh"), 3650).unwrap();
    let t04 = office(root.path(), "xh/t04", Tier::Township, vec![]);
    let board = t04.manager.board();
    let t03 = NodeEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        &identity(root.path(), "xh/t03", Tier::Township),
    )
    .unwrap();
    for (round, (code, an_error)) in [
        (CLOSE_SUPERSEDED, false),
        (CLOSE_LINK_DUPLICATE, false),
        (CLOSE_SETUP_FAILED, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut link = t03
            .connect(t04.endpoint.local_addr().unwrap(), None)
            .await
            .unwrap();
        // The session is running once its hello arrives.
        let mut hello = [0u8; 1];
        tokio::time::timeout(WAIT, link.recv.read_exact(&mut hello))
            .await
            .unwrap()
            .unwrap();
        link.connection
            .close(VarInt::from_u32(code), b"closed by the test");
        let sessions = round as u64 + 1;
        wait_for("the session to end", || {
            board.get(&id("xh/t03")).is_some_and(|status| {
                status.sessions == sessions
                    && !status.connected
                    && status.last_error.is_some() == an_error
            })
        })
        .await;
        // Settled: the error (or its absence) is not about to change.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = board.get(&id("xh/t03")).unwrap();
        assert_eq!(
            status.last_error.is_some(),
            an_error,
            "code {code}: {status:?}"
        );
    }
    t04.manager.shutdown().await;
}

#[test]
fn crossing_dials_keep_the_link_dialled_by_the_smaller_station_on_both_sides() {
    let (small, large) = (id("xh/t03"), id("xh/t04"));
    let young = CROSSING_WINDOW_MS / 2;
    // Link L1 dialled by the smaller station, L2 by the larger; each side
    // sees them in either order. The survivor must be L1 everywhere.
    let survivor =
        |local: &StationId, peer: &StationId, first: Opener, second: Opener| match judge_new_link(
            local, peer, first, young, second,
        ) {
            LinkVerdict::Supersede => second,
            LinkVerdict::KeepExisting => first,
        };
    // At the smaller station, L1 is ours.
    for (first, second) in [(Opener::Us, Opener::Peer), (Opener::Peer, Opener::Us)] {
        assert_eq!(survivor(&small, &large, first, second), Opener::Us);
    }
    // At the larger station, L1 is the peer's.
    for (first, second) in [(Opener::Us, Opener::Peer), (Opener::Peer, Opener::Us)] {
        assert_eq!(survivor(&large, &small, first, second), Opener::Peer);
    }
}

#[test]
fn a_peer_dialling_again_supersedes_its_link() {
    let (local, peer) = (id("xh/t03"), id("xh/t03/v12"));
    for age in [0, 1, CROSSING_WINDOW_MS, u64::MAX] {
        // It dialled us before and dials again: it lost that link.
        assert_eq!(
            judge_new_link(&local, &peer, Opener::Peer, age, Opener::Peer),
            LinkVerdict::Supersede
        );
        // We hold two dials of our own only if configured twice.
        assert_eq!(
            judge_new_link(&local, &peer, Opener::Us, age, Opener::Us),
            LinkVerdict::KeepExisting
        );
    }
    // A sibling larger than us dials long after our link was up: it
    // restarted. Inside the window it would lose to our dial.
    let larger = id("xh/t04");
    assert_eq!(
        judge_new_link(
            &local,
            &larger,
            Opener::Us,
            CROSSING_WINDOW_MS,
            Opener::Peer
        ),
        LinkVerdict::Supersede
    );
    assert_eq!(
        judge_new_link(
            &local,
            &larger,
            Opener::Us,
            CROSSING_WINDOW_MS - 1,
            Opener::Peer
        ),
        LinkVerdict::KeepExisting
    );
}

#[test]
fn the_supersede_guard_refuses_a_flapping_station_for_the_backoff_then_forgives() {
    let mut guard = SupersedeGuard::default();
    let (twin, other) = (id("xh/t03/v12"), id("xh/t03/v13"));
    let start = 1_000_u64;
    for n in 0..LINK_SUPERSEDES_MAX as u64 {
        assert_eq!(guard.allow(&twin, start + n), Ok(()));
    }
    let refusal = guard.allow(&twin, start + 10).unwrap_err();
    assert!(
        refusal.to_string().contains("same certificate"),
        "{refusal}"
    );
    assert!(matches!(
        refusal,
        LinkRefusal::Flapping { remaining_ms, .. } if remaining_ms == SUPERSEDE_BACKOFF_MS
    ));
    // Other stations are not affected.
    assert_eq!(guard.allow(&other, start + 10), Ok(()));
    // Still refused just before the backoff ends, allowed after.
    let backoff_end = start + 10 + SUPERSEDE_BACKOFF_MS;
    assert!(matches!(
        guard.allow(&twin, backoff_end - 1),
        Err(LinkRefusal::Flapping {
            remaining_ms: 1,
            ..
        })
    ));
    assert_eq!(guard.allow(&twin, backoff_end), Ok(()));
    // Supersedes spread wider than the window never trip it.
    let mut guard = SupersedeGuard::default();
    for n in 0..10 * LINK_SUPERSEDES_MAX as u64 {
        let at = start + n * (SUPERSEDE_WINDOW_MS / LINK_SUPERSEDES_MAX as u64 + 1);
        assert_eq!(guard.allow(&twin, at), Ok(()), "supersede {n}");
    }
    assert!(guard.recent.get(&twin).unwrap().len() <= LINK_SUPERSEDES_MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_address_answered_by_another_station_is_refused() {
    let root = tempfile::tempdir().unwrap();
    init_county_ca(&root.path().join("ca"), &id("xh"), 3650).unwrap();
    let other = office(root.path(), "xh/t04", Tier::Township, vec![]);
    let parent = DialledPeer {
        role: PeerRole::Parent,
        station: id("xh/t03"),
        address: other.endpoint.local_addr().unwrap(),
    };
    let village = office(root.path(), "xh/t03/v12", Tier::Village, vec![parent]);
    let board = village.manager.board();
    wait_for("the refusal", || {
        board
            .get(&id("xh/t03"))
            .is_some_and(|status| status.last_error.is_some())
    })
    .await;
    let status = board.get(&id("xh/t03")).unwrap();
    assert!(!status.connected && status.sessions == 0);
    let error = status.last_error.unwrap();
    assert!(
        error.contains("xh/t04") && error.contains("xh/t03"),
        "{error}"
    );
    assert!(other
        .manager
        .board()
        .get(&id("xh/t03/v12"))
        .is_none_or(|status| status.sessions == 0));
    village.manager.shutdown().await;
    other.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_many_documents_syncs_on_first_contact() {
    const DOCUMENTS: u16 = 120;
    let root = tempfile::tempdir().unwrap();
    init_county_ca(&root.path().join("ca"), &id("xh"), 3650).unwrap();
    let township = office(root.path(), "xh/t03", Tier::Township, vec![]);
    let village_station = id("xh/t03/v12");
    let store_dir = root.path().join("v12-backlog-store");
    let store = Store::open(
        &store_dir,
        village_station.clone(),
        ReplicaConfig::default(),
    )
    .unwrap();
    let mut documents = Vec::new();
    for index in 0..DOCUMENTS {
        let month = Month::new(2000 + index / 12, (index % 12) as u8 + 1).unwrap();
        let document = DocumentId::activities(&village_station, month);
        store
            .commit(document.clone(), move |doc| {
                doc.put(ROOT, "index", i64::from(index))
            })
            .await
            .unwrap();
        documents.push(document);
    }
    let started = Instant::now();
    let parent = DialledPeer {
        role: PeerRole::Parent,
        station: id("xh/t03"),
        address: township.endpoint.local_addr().unwrap(),
    };
    let identity = identity(root.path(), "xh/t03/v12", Tier::Village);
    let endpoint = Arc::new(NodeEndpoint::bind("127.0.0.1:0".parse().unwrap(), &identity).unwrap());
    let manager = PeerManager::start(
        endpoint,
        store.clone(),
        Tier::Village,
        vec![parent],
        SessionConfig::default(),
    );
    for document in &documents {
        wait_for_heads(&store, &township.store, document).await;
    }
    let elapsed = started.elapsed();
    let manager_board = manager.board();
    let status = manager_board.get(&id("xh/t03")).unwrap();
    eprintln!(
        "{DOCUMENTS} documents synced on first contact in {} ms; village sent {} bytes, received {}",
        elapsed.as_millis(),
        status.bytes_sent,
        status.bytes_received
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    // The link's UDP bytes hold the sync bytes plus QUIC's and TLS's.
    assert!(
        status.transport_bytes_sent > status.bytes_sent
            && status.transport_bytes_received > status.bytes_received,
        "{status:?}"
    );
    manager.shutdown().await;
    let ended = manager_board.get(&id("xh/t03")).unwrap();
    assert!(
        ended.transport_bytes_sent >= status.transport_bytes_sent,
        "an ended link keeps its final counts: {ended:?}"
    );
    township.manager.shutdown().await;
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
    let mut backoff = Backoff::default();
    let mut step = BACKOFF_INITIAL_MS;
    for random in [0_u64, u64::MAX, 7, 123_456_789, 0, u64::MAX, 42, 1, 99, 5] {
        let delay = backoff.next_delay_ms(random);
        assert!(
            delay >= step / 2 && delay <= step,
            "delay {delay} outside [{}, {step}]",
            step / 2
        );
        step = (step * 2).min(BACKOFF_CAP_MS);
    }
    assert!(backoff.next_delay_ms(u64::MAX) <= BACKOFF_CAP_MS);
    assert!(backoff.next_delay_ms(0) >= BACKOFF_CAP_MS / 2);
    backoff.reset();
    assert!(backoff.next_delay_ms(u64::MAX) <= BACKOFF_INITIAL_MS);
}

/// Nothing readable on `reader` within a short wait.
async fn nothing_arrives(reader: &mut tokio::io::DuplexStream) {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(50), reader.read(&mut byte)).await;
    assert!(read.is_err(), "bytes left before their flush: {read:?}");
}

#[tokio::test]
async fn a_buffer_leaves_only_once_its_flush_is_done_and_never_after_a_failed_one() {
    use tokio::io::AsyncReadExt;
    let (sender, mut buffers) = mpsc::channel(WRITE_QUEUE_LEN);
    let (first_flushed, first_durable) = crate::store::Durable::pending();
    let (third_flushed, third_durable) = crate::store::Durable::pending();
    for (bytes, durable) in [
        (&b"first"[..], Some(first_durable)),
        (&b"second"[..], None),
        (&b"third"[..], Some(third_durable)),
    ] {
        sender
            .send(Outgoing {
                bytes: bytes.to_vec(),
                durable,
            })
            .await
            .unwrap();
    }
    let (mut link, mut peer) = tokio::io::duplex(1024);
    let writer = tokio::spawn(async move { write_when_durable(&mut link, &mut buffers).await });

    nothing_arrives(&mut peer).await;
    first_flushed.send(Ok(())).unwrap();
    // The second buffer needs no flush of its own, but never overtakes the first.
    let mut got = [0u8; 11];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"firstsecond");
    nothing_arrives(&mut peer).await;

    third_flushed
        .send(Err(civsync_protocol::storage::StorageError::Flush {
            reason: "disk full".to_string(),
        }))
        .unwrap();
    let ended = writer.await.unwrap();
    assert!(
        ended
            .as_ref()
            .is_err_and(|reason| reason.contains("disk full")),
        "{ended:?}"
    );
    // The writer is gone with the link's end: the third buffer never left.
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    drop(sender);
}

/// A store with no peers, and a change feed over it with `timing`.
fn feed_over_store(
    root: &Path,
    timing: FeedTiming,
) -> (
    Store,
    broadcast::Receiver<Arc<Vec<DocumentId>>>,
    watch::Sender<bool>,
) {
    let store = Store::open(
        &root.join("store"),
        id("xh/t03/v12"),
        ReplicaConfig::default(),
    )
    .unwrap();
    let (changes, offered) = broadcast::channel(CHANGE_FEED_LEN);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(change_feed(store.clone(), changes, stopped, timing));
    (store, offered, stop)
}

fn month_of_activities(month: u8) -> DocumentId {
    DocumentId::activities(&id("xh/t03/v12"), Month::new(2026, month).unwrap())
}

async fn commit_to(store: &Store, document: &DocumentId) {
    store
        .commit(document.clone(), |doc| doc.put(ROOT, "held", true))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_change_feed_without_waiting_for_its_poll() {
    let root = tempfile::tempdir().unwrap();
    // A poll that never comes within the test: only the store's wake can
    // bring the change to the feed.
    let timing = FeedTiming {
        fallback_poll: Duration::from_secs(3_600),
        quiet: Duration::from_millis(1),
        linger_max: Duration::from_millis(5),
    };
    let (store, mut offered, stop) = feed_over_store(root.path(), timing);
    for month in [10, 11] {
        let document = month_of_activities(month);
        commit_to(&store, &document).await;
        let batch = tokio::time::timeout(WAIT, offered.recv())
            .await
            .expect("the feed never offered the commit")
            .unwrap();
        assert_eq!(*batch, vec![document]);
    }
    let _ = stop.send(true);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_within_the_quiet_time_go_out_in_one_batch() {
    let root = tempfile::tempdir().unwrap();
    // Quiet and linger far longer than the pause between the two commits.
    let timing = FeedTiming {
        fallback_poll: Duration::from_secs(3_600),
        quiet: Duration::from_secs(2),
        linger_max: Duration::from_secs(4),
    };
    let (store, mut offered, stop) = feed_over_store(root.path(), timing);
    let (first, second) = (month_of_activities(10), month_of_activities(11));
    for document in [&first, &second] {
        commit_to(&store, document).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batch = tokio::time::timeout(WAIT, offered.recv())
        .await
        .expect("the feed never offered the commits")
        .unwrap();
    assert_eq!(*batch, vec![first, second]);
    let _ = stop.send(true);
    store.close().await;
}

#[test]
fn a_session_takes_every_queued_batch_at_once_and_closes_when_it_fell_behind() {
    let (changes, mut receiver) = broadcast::channel(4);
    let batch = |month| Arc::new(vec![month_of_activities(month)]);
    for month in [9, 10, 11] {
        changes.send(batch(month)).unwrap();
    }
    let first = receiver.try_recv().unwrap();
    let taken = queued_batches(first, &mut receiver).unwrap();
    assert_eq!(taken, vec![batch(9), batch(10), batch(11)]);
    assert!(receiver.try_recv().is_err(), "nothing left behind");

    let first = {
        changes.send(batch(1)).unwrap();
        receiver.try_recv().unwrap()
    };
    for month in 2..=7 {
        changes.send(batch(month)).unwrap();
    }
    assert_eq!(queued_batches(first, &mut receiver), Err(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dialled_before_the_store_opens_is_the_dial_loops_first_attempt() {
    let root = tempfile::tempdir().unwrap();
    let (township, parent) = township_as_parent(root.path());
    let identity = identity(root.path(), "xh/t03/v12", Tier::Village);
    let endpoint = Arc::new(NodeEndpoint::bind("127.0.0.1:0".parse().unwrap(), &identity).unwrap());
    let early = EarlyLinks::dial(&endpoint, std::slice::from_ref(&parent));
    let township_board = township.manager.board();
    wait_for("the township to take the early link", || {
        township_board
            .get(&id("xh/t03/v12"))
            .is_some_and(|status| status.sessions == 1)
    })
    .await;

    // The store opens only now, with a change to push.
    let store = Store::open(
        &root.path().join("village-store"),
        id("xh/t03/v12"),
        ReplicaConfig::default(),
    )
    .unwrap();
    let document = DocumentId::activities(&id("xh/t03/v12"), Month::new(2026, 11).unwrap());
    store
        .commit(document.clone(), |doc| doc.put(ROOT, "clerk", 1))
        .await
        .unwrap();
    let manager = PeerManager::start_reporting(
        endpoint,
        store.clone(),
        Tier::Village,
        vec![parent],
        SessionConfig::default(),
        crate::progress::Progress::default(),
        early,
    );
    wait_for_heads(&store, &township.store, &document).await;
    let seen = township_board.get(&id("xh/t03/v12")).unwrap();
    assert_eq!(
        (seen.sessions, seen.links_superseded),
        (1, 0),
        "the village dialled again instead of taking its early link"
    );
    manager.shutdown().await;
    township.manager.shutdown().await;
}
