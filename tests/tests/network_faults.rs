//! Sync through real network faults: every node in its own Linux network
//! namespace, joined by veth pairs, with nftables dropping packets at random
//! and partitioning a village for a while, and a userspace relay adding
//! delay, jitter (reordering), duplication and more loss (`tc netem` is not
//! available everywhere).
//!
//! ```text
//!   county ──veth── township ──veth── (relay in the township's namespace) ── v1
//!                      │  10% random UDP loss both ways (nft)
//!                      └──veth── v2   (partitioned by nft, then lifted)
//! ```
//!
//! The test reaches each node's API over one more veth from the test's own
//! namespace. It needs root, `ip` and `nft`; where it cannot create its
//! namespaces it prints "skipped: ..." and passes. Everything it creates is
//! removed on the way out, failed or not (a Drop guard).

use civsync_tests::{describe_nodes, pki_init, pki_issue, replicas_agree, wait_until, TestNode};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MONTH: &str = "2025-06";
/// Longest wait for every record to reach the county through the faults.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Share of UDP packets the township's namespace drops, each way, in percent.
const LOSS_PERCENT: u32 = 10;
const QUIC_PORT: u16 = 7401;
const API_PORT: u16 = 7400;
const RELAY_PORT: u16 = 7500;

/// Run a command to completion; `Err` with its output when it fails.
fn run(command: &[&str]) -> Result<(), String> {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Namespaces and root-side links of one test run; removed on drop.
struct Network {
    prefix: String,
    namespaces: Vec<String>,
    root_links: Vec<String>,
}

impl Network {
    fn namespace(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn add_namespace(&mut self, node: &str) -> Result<(), String> {
        let name = self.namespace(node);
        run(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])
    }

    /// A veth pair from namespace `a` (None: the test's own) to `b`, with
    /// `address_a`/`address_b` (CIDR) on the two ends.
    fn link(
        &mut self,
        index: usize,
        a: Option<&str>,
        address_a: &str,
        b: &str,
        address_b: &str,
    ) -> Result<(), String> {
        let (end_a, end_b) = (
            format!("{}{index}a", self.prefix),
            format!("{}{index}b", self.prefix),
        );
        let ns_b = self.namespace(b);
        let mut add = vec!["ip", "link", "add", end_a.as_str()];
        let ns_a = a.map(|a| self.namespace(a));
        if let Some(ns_a) = &ns_a {
            add.extend(["netns", ns_a.as_str()]);
        }
        add.extend([
            "type",
            "veth",
            "peer",
            "name",
            end_b.as_str(),
            "netns",
            ns_b.as_str(),
        ]);
        run(&add)?;
        match &ns_a {
            Some(ns_a) => {
                run(&["ip", "-n", ns_a, "addr", "add", address_a, "dev", &end_a])?;
                run(&["ip", "-n", ns_a, "link", "set", &end_a, "up"])?;
            }
            None => {
                self.root_links.push(end_a.clone());
                run(&["ip", "addr", "add", address_a, "dev", &end_a])?;
                run(&["ip", "link", "set", &end_a, "up"])?;
            }
        }
        run(&["ip", "-n", &ns_b, "addr", "add", address_b, "dev", &end_b])?;
        run(&["ip", "-n", &ns_b, "link", "set", &end_b, "up"])
    }

    /// Run `nft` with `rules` (one command per line) inside `node`'s namespace.
    fn nft(&self, node: &str, rules: &str) -> Result<(), String> {
        let namespace = self.namespace(node);
        for rule in rules.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut command = vec!["ip", "netns", "exec", namespace.as_str(), "nft"];
            command.extend(rule.split_whitespace());
            run(&command)?;
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for link in &self.root_links {
            let _ = run(&["ip", "link", "del", link]);
        }
        for namespace in &self.namespaces {
            if let Err(e) = run(&["ip", "netns", "del", namespace]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A child process killed on drop (the relay).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions and no side effects.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root".into());
    }
    for tool in [["ip", "-V"], ["nft", "--version"]] {
        if let Err(e) = run(&tool) {
            return Some(format!("{} is not usable: {e}", tool[0]));
        }
    }
    None
}

fn address(text: &str) -> SocketAddr {
    text.parse().expect("a literal socket address")
}

/// Wait until the county (first of `everyone`) lists every key of `expected`.
fn wait_for_records(
    everyone: &[&TestNode; 4],
    expected: &BTreeSet<(String, String)>,
    what: &str,
) -> Duration {
    let [county, ..] = *everyone;
    civsync_tests::wait_for_records(county, MONTH, expected, CONVERGE_TIMEOUT, what, everyone)
}

#[test]
fn records_arrive_and_replicas_converge_through_loss_partition_and_a_bad_link() {
    if let Some(reason) = cannot_run() {
        println!("skipped: {reason}");
        return;
    }
    let pid = std::process::id();
    // Interface names are at most 15 bytes: "cs" + pid (≤ 7 digits) + index + end.
    let mut network = Network {
        prefix: format!("cs{pid}"),
        namespaces: Vec::new(),
        root_links: Vec::new(),
    };
    // The management subnet lives in the test's own namespace: make it
    // differ between concurrent runs.
    let management = format!("10.232.{}", pid % 250);
    let set_up = (|| -> Result<(), String> {
        for node in ["c", "t", "v1", "v2"] {
            network.add_namespace(node)?;
        }
        network.link(0, Some("c"), "10.231.0.1/30", "t", "10.231.0.2/30")?;
        network.link(1, Some("t"), "10.231.0.5/30", "v1", "10.231.0.6/30")?;
        network.link(2, Some("t"), "10.231.0.9/30", "v2", "10.231.0.10/30")?;
        for (k, node) in ["c", "t", "v1", "v2"].into_iter().enumerate() {
            let (root_end, node_end) = (
                format!("{management}.{}/30", 4 * k + 1),
                format!("{management}.{}/30", 4 * k + 2),
            );
            network.link(3 + k, None, &root_end, node, &node_end)?;
        }
        Ok(())
    })();
    if let Err(reason) = set_up {
        println!("skipped: cannot create network namespaces here: {reason}");
        return;
    }
    let started = Instant::now();
    let api = |k: usize| address(&format!("{management}.{}:{API_PORT}", 4 * k + 2));

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let node =
        |name: &str, station: &str, tier: &str, parent: Option<&str>, k: usize, quic: &str| {
            let node = TestNode::init_at(
                &dir.path().join(name),
                station,
                tier,
                parent.map(address),
                api(k),
                address(quic),
            )
            .unwrap_or_else(|e| panic!("init {station}: {e}"));
            pki_issue(&ca, &node, tier).unwrap();
            node
        };
    let mut county = node("c", "xh", "county", None, 0, "10.231.0.1:7401");
    let mut township = node(
        "t",
        "xh/t1",
        "township",
        Some("10.231.0.1:7401"),
        1,
        "0.0.0.0:7401",
    );
    // v1 dials the relay in the township's namespace, not the township.
    let relay_listen = format!("10.231.0.5:{RELAY_PORT}");
    let mut v1 = node(
        "v1",
        "xh/t1/v1",
        "village",
        Some(&relay_listen),
        2,
        "10.231.0.6:7401",
    );
    let mut v2 = node(
        "v2",
        "xh/t1/v2",
        "village",
        Some("10.231.0.9:7401"),
        3,
        "10.231.0.10:7401",
    );

    let relay_log = std::fs::File::create(dir.path().join("relay.log")).unwrap();
    let township_ns = network.namespace("t");
    let _relay = Process(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &township_ns,
                env!("CARGO_BIN_EXE_udp-relay"),
            ])
            .args([
                "--listen",
                &relay_listen,
                "--upstream",
                &format!("127.0.0.1:{QUIC_PORT}"),
            ])
            .args([
                "--loss",
                "0.05",
                "--delay-ms",
                "20",
                "--jitter-ms",
                "20",
                "--duplicate",
                "0.02",
            ])
            .stdin(Stdio::null())
            .stdout(relay_log.try_clone().unwrap())
            .stderr(relay_log)
            .spawn()
            .expect("start the relay"),
    );
    // Random loss on everything the township sends and receives.
    network
        .nft(
            "t",
            &format!(
                "add table inet loss
                 add chain inet loss input {{ type filter hook input priority 0 ; }}
                 add chain inet loss output {{ type filter hook output priority 0 ; }}
                 add rule inet loss input meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} drop
                 add rule inet loss output meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} drop"
            ),
        )
        .expect("loss rules in the township's namespace");

    for (node, ns) in [
        (&mut county, "c"),
        (&mut township, "t"),
        (&mut v1, "v1"),
        (&mut v2, "v2"),
    ] {
        let namespace = network.namespace(ns);
        node.start_wrapped(&["ip", "netns", "exec", &namespace])
            .unwrap();
    }

    let mut acknowledged = BTreeSet::new();
    let record = |acknowledged: &mut BTreeSet<(String, String)>,
                  village: &TestNode,
                  prefix: &str,
                  count: usize,
                  volunteer: &str| {
        for n in 0..count {
            let id = format!("{prefix}-{n}");
            village
                .record_activity(
                    &id,
                    &format!("{MONTH}-{:02}", 1 + n % 28),
                    &[volunteer.to_string()],
                )
                .unwrap();
            acknowledged.insert((village.station.clone(), id));
        }
    };
    let volunteer_1 = v1.register_volunteer(11).unwrap();
    let volunteer_2 = v2.register_volunteer(12).unwrap();
    record(&mut acknowledged, &v1, "lossy", 10, &volunteer_1);
    record(&mut acknowledged, &v2, "lossy", 10, &volunteer_2);
    let took = wait_for_records(
        &[&county, &township, &v1, &v2],
        &acknowledged,
        "records through loss and the bad link",
    );
    println!(
        "through loss and the bad link: {} records at the county in {:.1} s",
        acknowledged.len(),
        took.as_secs_f64()
    );

    // Partition v2 from its township; it keeps recording.
    network
        .nft(
            "v2",
            "add table inet partition
             add chain inet partition input { type filter hook input priority 0 ; }
             add chain inet partition output { type filter hook output priority 0 ; }
             add rule inet partition input ip saddr 10.231.0.9 drop
             add rule inet partition output ip daddr 10.231.0.9 drop",
        )
        .expect("partition rules in v2's namespace");
    let before = acknowledged.clone();
    record(&mut acknowledged, &v2, "partitioned", 5, &volunteer_2);
    record(&mut acknowledged, &v1, "during-partition", 5, &volunteer_1);
    std::thread::sleep(Duration::from_secs(3));
    let at_county = county.activity_keys(MONTH, true).unwrap();
    let leaked: Vec<_> = acknowledged
        .difference(&before)
        .filter(|(station, _)| station == "xh/t1/v2")
        .filter(|key| at_county.contains(*key))
        .collect();
    assert!(
        leaked.is_empty(),
        "records crossed the partition: {leaked:?}"
    );

    network
        .nft("v2", "delete table inet partition")
        .expect("lift the partition");
    let took = wait_for_records(
        &[&county, &township, &v1, &v2],
        &acknowledged,
        "records made during the partition",
    );
    println!(
        "partition lifted: all {} records at the county in {:.1} s",
        acknowledged.len(),
        took.as_secs_f64()
    );
    assert_eq!(
        county.activity_keys(MONTH, true).unwrap(),
        acknowledged,
        "the county lists records nobody acknowledged"
    );
    let took = wait_until(CONVERGE_TIMEOUT, || {
        replicas_agree(&[&county, &township, &v1, &v2])
    })
    .unwrap_or_else(|e| {
        panic!(
            "replicas did not converge: {e}\n{}",
            describe_nodes(&[&county, &township, &v1, &v2])
        )
    });
    println!(
        "converged {:.1} s later; total {:.1} s",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for node in [&mut v2, &mut v1, &mut township, &mut county] {
        node.stop().unwrap();
    }
}
