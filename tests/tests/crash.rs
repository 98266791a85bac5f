//! Crash durability: a `civsync run` process receiving concurrent writes over
//! the API is killed with SIGKILL at random moments, 24 times. After every
//! restart the store must open cleanly and hold every write that was
//! acknowledged (HTTP 201) before the kill, and nothing that was never sent.

use civsync_tests::{activity_body, volunteer_body, TestNode};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KILLS: usize = 24;
const WRITERS: usize = 6;
/// Writes attempted per writer per round at most (bounds each round).
const WRITES_PER_WRITER_MAX: usize = 400;
/// A fixed past month, so no record is ever "in the future".
const MONTH: &str = "2025-06";

#[derive(Default)]
struct Ledger {
    /// Acknowledged before the kill: must be present afterwards.
    acknowledged_activities: BTreeSet<String>,
    acknowledged_volunteers: BTreeSet<String>,
    /// Everything ever sent: nothing else may appear.
    attempted_activities: BTreeSet<String>,
}

fn write_until_killed(
    node_api: std::net::SocketAddr,
    token: String,
    writer: usize,
    round: usize,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap();
    for n in 0..WRITES_PER_WRITER_MAX {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if n % 4 == 3 {
            let seed = (round * WRITERS * WRITES_PER_WRITER_MAX
                + writer * WRITES_PER_WRITER_MAX
                + n) as u64;
            let response = http
                .post(format!("http://{node_api}/api/v1/volunteers"))
                .bearer_auth(&token)
                .json(&volunteer_body(seed))
                .send();
            match response {
                Ok(r) if r.status().as_u16() == 201 => {
                    let body: Value = r.json().unwrap_or(Value::Null);
                    if let Some(number) = body["number"].as_str() {
                        ledger
                            .lock()
                            .unwrap()
                            .acknowledged_volunteers
                            .insert(number.to_string());
                    }
                }
                Ok(r) => panic!(
                    "unexpected refusal of a valid volunteer: {} {:?}",
                    r.status(),
                    r.text()
                ),
                Err(_) => return, // the node is gone
            }
        } else {
            let id = format!("c{round}-{writer}-{n}");
            ledger
                .lock()
                .unwrap()
                .attempted_activities
                .insert(id.clone());
            let day = 1 + (n % 28);
            let body = activity_body(&id, &format!("{MONTH}-{day:02}"), &[], 1.0);
            match http
                .post(format!("http://{node_api}/api/v1/activities"))
                .bearer_auth(&token)
                .json(&body)
                .send()
            {
                Ok(r) if r.status().as_u16() == 201 => {
                    ledger.lock().unwrap().acknowledged_activities.insert(id);
                }
                Ok(r) => panic!(
                    "unexpected refusal of a valid activity: {} {:?}",
                    r.status(),
                    r.text()
                ),
                Err(_) => return,
            }
        }
    }
}

fn check(node: &TestNode, ledger: &Ledger, kill: usize) {
    let activities = node
        .get(&format!("activities?month={MONTH}"))
        .expect("list activities after restart");
    let present: BTreeSet<String> = activities
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = ledger
        .acknowledged_activities
        .difference(&present)
        .collect();
    assert!(
        lost.is_empty(),
        "after kill {kill}: acknowledged activities lost: {lost:?}"
    );
    let invented: Vec<_> = present.difference(&ledger.attempted_activities).collect();
    assert!(
        invented.is_empty(),
        "after kill {kill}: activities never written appeared: {invented:?}"
    );
    let volunteers = node
        .get("volunteers")
        .expect("list volunteers after restart");
    let numbers: BTreeSet<String> = volunteers
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<_> = ledger
        .acknowledged_volunteers
        .difference(&numbers)
        .collect();
    assert!(
        lost.is_empty(),
        "after kill {kill}: acknowledged volunteers lost: {lost:?}"
    );
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut acknowledged_total = 0;
    for kill in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (ledger, stop, api, token) =
                    (ledger.clone(), stop.clone(), node.api, node.token());
                std::thread::spawn(move || {
                    write_until_killed(api, token, writer, kill, ledger, stop)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        node.kill();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().expect("writer thread");
        }
        node.start()
            .unwrap_or_else(|e| panic!("store did not reopen after kill {kill}: {e}"));
        let ledger = ledger.lock().unwrap();
        check(&node, &ledger, kill);
        acknowledged_total =
            ledger.acknowledged_activities.len() + ledger.acknowledged_volunteers.len();
    }
    // The test means something only if writes were acknowledged and then checked.
    assert!(
        acknowledged_total > KILLS * 5,
        "too few acknowledged writes to mean anything: {acknowledged_total}"
    );
    println!("{KILLS} kills, {acknowledged_total} acknowledged writes, all present");
    node.stop().unwrap();
}
