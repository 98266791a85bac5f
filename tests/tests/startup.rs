//! Starting a node whose API port is taken — in practice by another node
//! configured with the same address. The node must stop before it opens its
//! store or syncs anything, say why, and the harness must not mistake the
//! other node's answers for its own.

use civsync_tests::TestNode;

#[test]
fn a_node_whose_api_port_is_taken_stops_at_once_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    first.start().unwrap();
    let mut second = TestNode::init_at(
        &dir.path().join("v2"),
        "xh/t1/v2",
        "village",
        None,
        first.api,
        civsync_tests::free_udp_addr(),
    )
    .unwrap();
    let refused = second
        .start()
        .expect_err("a second node on a taken API port must not count as started");
    let refused = refused.to_string();
    assert!(
        refused.contains("exited at start")
            || refused.contains("is answered by station \"xh/t1/v1\""),
        "{refused}"
    );
    // Whichever the harness saw first, the node itself gave up, naming the
    // port, and the harness no longer counts it as running.
    assert!(!second.is_running());
    let log = std::fs::read_to_string(second.dir.join("node.log")).unwrap();
    assert!(
        log.contains(&format!("cannot listen for the API on {}", first.api)),
        "{log}"
    );
    assert!(
        !log.contains("link up") && !log.contains("statistics index"),
        "the node did work before it found its port taken: {log}"
    );
    // The first node is untouched and still answers as itself.
    assert_eq!(first.get("node").unwrap()["station"], "xh/t1/v1");
    first.stop().unwrap();
}
