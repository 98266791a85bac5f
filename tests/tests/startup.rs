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

/// The `field=value` of the last "statistics index loaded" line of a log.
fn last_index_load(log: &str, field: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("statistics index loaded"))?;
    let at = line.find(&format!("{field}="))? + field.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_node_stopped_right_after_a_bulk_import_starts_without_reading_its_documents_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let mut roster = String::from("姓名,性别,身份证号\n");
    for seed in 0..40 {
        roster.push_str(&format!(
            "志愿者{seed},女,{}\n",
            civsync_tests::id_number(seed)
        ));
    }
    let (status, report) = node
        .request(reqwest::Method::POST, "import/volunteers?format=csv")
        .header("content-type", "application/octet-stream")
        .body(roster.into_bytes())
        .send()
        .map(|response| {
            let status = response.status().as_u16();
            (status, response.text().unwrap_or_default())
        })
        .unwrap();
    assert!(status == 200 || status == 201, "{status} {report}");
    // Stopped at once: no query came in between to count the import.
    node.stop().unwrap();
    node.start().unwrap();
    // The index is built beside the start: the API answers first.
    civsync_tests::wait_until(std::time::Duration::from_secs(30), || {
        match node.log().matches("statistics index loaded").count() {
            2 => Ok(()),
            seen => Err(format!("{seen} index loads in the log, expected 2")),
        }
    })
    .unwrap();
    let log = node.log();
    let documents = last_index_load(&log, "documents").expect("the index was loaded");
    assert!(documents >= 1, "{log}");
    assert_eq!(
        last_index_load(&log, "read_again"),
        Some(0),
        "the start read documents again instead of reusing the saved index:\n{log}"
    );
    assert_eq!(last_index_load(&log, "reused"), Some(documents), "{log}");
    node.stop().unwrap();
}

#[test]
fn a_node_sent_sigterm_while_it_is_still_starting_stops_cleanly_and_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.spawn().unwrap();
    // The API port is bound before the store opens, the statistics index
    // is built and the peers start: from the first accepted connection the
    // node is mid-start. Before the stop signals were installed first, a
    // SIGTERM here killed the process by the signal's default action.
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(node.api).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the node never bound its API port: {}",
            node.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    node.stop()
        .expect("a SIGTERM during the start must end in a clean exit");
    let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap();
    assert!(
        log.contains("stopping: finishing requests and flushing the store"),
        "{log}"
    );
    node.start().unwrap();
    assert_eq!(node.get("node").unwrap()["station"], "xh/t1/v1");
    node.stop().unwrap();
}
