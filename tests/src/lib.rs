//! Support for the multi-process integration tests in `tests/tests/`: find
//! the `civsync` binary, start nodes as child processes on 127.0.0.1, talk
//! to their API, kill them.
//!
//! Every test node listens on loopback only, and every wait is bounded.

pub mod layering;
pub mod web;

use anyhow::{bail, Context};
use civsync_node::net::local_ports::{tcp_port_is_free, udp_port_is_free, PortPicker};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node may take to answer after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a starting node's API is asked whether it answers: every
/// `START_POLL_FINE` for the first `START_POLL_FINE_FOR`, then every
/// `START_POLL_COARSE` (a node starting slowly under load).
pub const START_POLL_FINE: Duration = Duration::from_millis(1);
pub const START_POLL_FINE_FOR: Duration = Duration::from_secs(2);
pub const START_POLL_COARSE: Duration = Duration::from_millis(50);
/// Per-request timeout of the test client.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `civsync` binary of this build profile. Built (once per test process;
/// a no-op when up to date) because `cargo test -p civsync-tests` alone does
/// not rebuild another package's binary, and a stale one tests old code.
pub fn civsync_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> → target/<profile>/civsync
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target profile folder");
            // `debug` is cargo's dev profile; any other folder names its profile
            // (`release`, or `ci`: release with assertions on).
            let profile = profile_dir
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| *n != "debug")
                .map(str::to_string);
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root");
            let mut build = Command::new(env!("CARGO"));
            clear_environment_of_this_test(&mut build);
            build.current_dir(workspace).args([
                "build",
                "--quiet",
                "-p",
                "civsync-node",
                "--bin",
                "civsync",
            ]);
            if let Some(profile) = profile {
                build.args(["--profile", &profile]);
            }
            let status = build
                .status()
                .expect("run cargo build for the civsync binary");
            assert!(status.success(), "building the civsync binary failed");
            profile_dir.join("civsync")
        })
        .clone()
}

/// Environment variables `cargo test` sets for the test process to describe
/// this package. They must not reach the nested `cargo build`: build scripts
/// watch some of them (ring's reruns when `CARGO_MANIFEST_DIR` or
/// `CARGO_PKG_NAME` changes), so inheriting them made the nested build
/// rebuild ring, rustls, quinn and civsync-node, and the next `cargo test`
/// rebuild them all back: about two minutes of every run.
const TEST_ENVIRONMENT_PREFIXES: [&str; 5] = [
    "CARGO_MANIFEST_",
    "CARGO_PKG_",
    "CARGO_BIN_EXE_",
    "CARGO_CRATE_",
    "CARGO_TARGET_TMPDIR",
];

/// Remove from `command` what `cargo test` told this process about its own
/// package; keep the rest (toolchain, `CARGO_HOME`, `CARGO_TARGET_DIR`, ...).
fn clear_environment_of_this_test(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if is_test_environment(name) {
            command.env_remove(name);
        }
    }
}

fn is_test_environment(name: &str) -> bool {
    TEST_ENVIRONMENT_PREFIXES
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || name == "OUT_DIR"
}

/// A free port of 127.0.0.1, never the same twice in this process, and
/// never one the kernel hands out by itself (see `local_ports`): a port is
/// released before the node it is for binds it, and several nodes are
/// initialised before any starts.
fn fresh_port(is_free: impl FnMut(u16) -> bool) -> SocketAddr {
    static PICKER: Mutex<Option<PortPicker>> = Mutex::new(None);
    let mut picker = PICKER.lock().unwrap_or_else(|p| p.into_inner());
    let picker = picker.get_or_insert_with(|| {
        PortPicker::outside_ephemeral(std::process::id())
            .expect("the ephemeral port range leaves no room for test ports")
    });
    let port = picker
        .pick(is_free)
        .expect("every port outside the ephemeral range handed out or busy");
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn free_tcp_addr() -> SocketAddr {
    fresh_port(tcp_port_is_free)
}

pub fn free_udp_addr() -> SocketAddr {
    fresh_port(udp_port_is_free)
}

/// Run `civsync` with arguments to completion; fail with its output if it fails.
pub fn civsync(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(civsync_binary())
        .args(args)
        .output()
        .context("run civsync")?;
    if !output.status.success() {
        bail!(
            "civsync {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A node's data directory and addresses, and its process while it runs.
pub struct TestNode {
    pub station: String,
    pub dir: PathBuf,
    pub api: SocketAddr,
    pub quic: SocketAddr,
    process: Option<Child>,
    http: reqwest::blocking::Client,
}

impl TestNode {
    /// `civsync init` a node in `dir` (no parent unless given).
    pub fn init(
        dir: &Path,
        station: &str,
        tier: &str,
        parent: Option<SocketAddr>,
    ) -> anyhow::Result<TestNode> {
        TestNode::init_at(dir, station, tier, parent, free_tcp_addr(), free_udp_addr())
    }

    /// Start `civsync run` and wait until the API answers as this node.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.start_wrapped(&[])
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (bounded).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.process.take() {
            // SAFETY: kill(2) on our own child with a valid signal.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!(
                            "node {} exited with {status} on SIGTERM; log:\n{}",
                            self.station,
                            self.log()
                        );
                    }
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            bail!("node {} did not stop within 15 s of SIGTERM", self.station);
        }
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1/{path}", self.api)
    }

    /// The node's API token (`civsync init` writes it into the data
    /// directory), as scripts and the CLI send it.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("api-token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }

    /// A request to the node's API with its token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.token())
    }

    /// GET; `Err` on transport failure or a non-2xx status.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.request(reqwest::Method::GET, path).send()?;
        let status = response.status();
        let text = response.text()?;
        if !status.is_success() {
            bail!("GET {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POST JSON; returns (status, body).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.post_raw(path, serde_json::to_vec(body)?)
    }

    pub fn post_raw(&self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let response = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A valid resident ID number made from a seed (test data only); distinct
/// seeds below 336,000 give distinct numbers.
pub fn id_number(seed: u64) -> String {
    assert!(seed < 336_000, "id_number seeds must stay below 336,000");
    let first_17 = format!(
        "4116021980{:02}{:02}{:03}",
        1 + seed % 12,
        1 + (seed / 12) % 28,
        seed / 336
    );
    civsync_protocol::domain::pii::with_check_digit(&first_17[..17])
}

/// A volunteer registration body.
pub fn volunteer_body(seed: u64) -> Value {
    serde_json::json!({"name": format!("志愿者{seed}"), "sex": if seed.is_multiple_of(2) { "女" } else { "男" }, "id_number": id_number(seed)})
}

/// An activity body with one service record for each volunteer given.
pub fn activity_body(id: &str, date: &str, volunteers: &[String], hours: f64) -> Value {
    let records: Vec<Value> = volunteers
        .iter()
        .map(|v| serde_json::json!({"volunteer": v, "hours": hours}))
        .collect();
    serde_json::json!({"id": id, "name": format!("活动{id}"), "date": date, "form": "help", "category": "health",
        "beneficiaries": 10, "records": records})
}

// ---------------------------------------------------------------------------
// County helpers: certificates, replica comparison, bounded waits.

/// `civsync pki init`: a county CA (and county identity key) in `ca_dir`.
pub fn pki_init(ca_dir: &Path, county: &str) -> anyhow::Result<()> {
    let ca = ca_dir.to_string_lossy().into_owned();
    civsync(&["pki", "init", "--dir", &ca, "--county", county])?;
    Ok(())
}

/// `civsync pki issue` a certificate for `node`'s station into `<node dir>/pki`:
/// with it, the node syncs when it runs.
pub fn pki_issue(ca_dir: &Path, node: &TestNode, tier: &str) -> anyhow::Result<()> {
    let ca = ca_dir.to_string_lossy().into_owned();
    let out = node.dir.join("pki").to_string_lossy().into_owned();
    civsync(&[
        "pki",
        "issue",
        "--ca",
        &ca,
        "--station",
        &node.station,
        "--tier",
        tier,
        "--out",
        &out,
    ])?;
    Ok(())
}

/// A node of `station` in its own folder under `root`, with a certificate
/// from the CA in `ca` (not started).
pub fn certified(
    root: &Path,
    ca: &Path,
    station: &str,
    tier: &str,
    parent: Option<SocketAddr>,
) -> TestNode {
    let node = TestNode::init(&root.join(station.replace('/', "-")), station, tier, parent)
        .unwrap_or_else(|e| panic!("init {station}: {e}"));
    pki_issue(ca, &node, tier).unwrap_or_else(|e| panic!("certificate for {station}: {e}"));
    node
}

/// Poll `done` every 100 ms until it holds or `timeout` passes; returns how
/// long it took, or the last description `done` gave of what is missing.
pub fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<(), String>,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        match done() {
            Ok(()) => return Ok(started.elapsed()),
            Err(missing) if started.elapsed() >= timeout => {
                return Err(format!("not within {timeout:?}: {missing}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl TestNode {
    /// Every document this node holds: id → heads digest (hex).
    pub fn documents(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let listed = self.get("documents")?;
        let Some(documents) = listed.as_array() else {
            bail!("documents of {}: not a list: {listed}", self.station)
        };
        documents
            .iter()
            .map(|d| match (d["id"].as_str(), d["heads_digest"].as_str()) {
                (Some(id), Some(digest)) => Ok((id.to_string(), digest.to_string())),
                _ => bail!("documents of {}: malformed entry {d}", self.station),
            })
            .collect()
    }

    /// (station, activity id) of every activity of `month` this node lists,
    /// its whole subtree's when `subtree`.
    pub fn activity_keys(
        &self,
        month: &str,
        subtree: bool,
    ) -> anyhow::Result<std::collections::BTreeSet<(String, String)>> {
        let listed = self.get(&format!("activities?month={month}&subtree={subtree}"))?;
        let Some(activities) = listed.as_array() else {
            bail!("activities of {}: not a list: {listed}", self.station)
        };
        activities
            .iter()
            .map(|a| match (a["station"].as_str(), a["id"].as_str()) {
                (Some(station), Some(id)) => Ok((station.to_string(), id.to_string())),
                _ => bail!("activities of {}: malformed entry {a}", self.station),
            })
            .collect()
    }

    /// Record an activity; `Ok` only when the node acknowledged it (201).
    pub fn record_activity(
        &self,
        id: &str,
        date: &str,
        volunteers: &[String],
    ) -> anyhow::Result<()> {
        let (status, body) = self.post("activities", &activity_body(id, date, volunteers, 1.5))?;
        if status != 201 {
            bail!("{} refused activity {id}: {status} {body}", self.station);
        }
        Ok(())
    }

    /// Register a volunteer; returns the volunteer number the node gave.
    pub fn register_volunteer(&self, seed: u64) -> anyhow::Result<String> {
        let (status, body) = self.post("volunteers", &volunteer_body(seed))?;
        if status != 201 {
            bail!("{} refused volunteer {seed}: {status} {body}", self.station);
        }
        body["number"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no volunteer number in {body}"))
    }

    /// `Ok` when this node holds every document of `reference` (id → heads
    /// digest, as [`TestNode::documents`] gives) with the same digest; else
    /// which it lacks or differs on.
    pub fn holds_all_of(
        &self,
        reference: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), String> {
        let held = self.documents().map_err(|e| e.to_string())?;
        let missing: Vec<&String> = reference
            .iter()
            .filter(|(id, digest)| held.get(*id) != Some(*digest))
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} lacks or differs on {missing:?}", self.station))
        }
    }

    /// This node's status entry for peer `station`, if it knows the peer.
    pub fn peer_status(&self, station: &str) -> anyhow::Result<Option<Value>> {
        let status = self.get("status")?;
        Ok(status["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["station"].as_str() == Some(station))
            .cloned())
    }
}

/// `Ok` when every document held by more than one of `nodes` has the same
/// heads digest everywhere; otherwise which document differs where.
pub fn replicas_agree(nodes: &[&TestNode]) -> Result<(), String> {
    let mut seen: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for node in nodes {
        let documents = node.documents().map_err(|e| e.to_string())?;
        for (id, digest) in documents {
            seen.entry(id)
                .or_default()
                .push((node.station.clone(), digest));
        }
    }
    let differing: Vec<String> = seen
        .iter()
        .filter(|(_, replicas)| replicas.iter().any(|(_, d)| d != &replicas[0].1))
        .map(|(id, replicas)| format!("{id}: {replicas:?}"))
        .collect();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(format!("replicas differ: {}", differing.join("; ")))
    }
}

/// (station, activity id) pairs, as `TestNode::activity_keys` lists them.
pub type ActivityKeys = BTreeSet<(String, String)>;

/// Wait until `node` lists every key of `expected` for `month` (its whole
/// subtree). On failure, panics describing every node of `everyone` (what it
/// holds, its peers, its log), since a record may be stuck anywhere on the
/// way. Returns how long it took.
pub fn wait_for_records(
    node: &TestNode,
    month: &str,
    expected: &ActivityKeys,
    timeout: Duration,
    what: &str,
    everyone: &[&TestNode],
) -> Duration {
    wait_until(timeout, || {
        let present = node.activity_keys(month, true).map_err(|e| e.to_string())?;
        let missing: Vec<_> = expected.difference(&present).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} lacks {} records, e.g. {:?}",
                node.station,
                missing.len(),
                &missing[..missing.len().min(5)]
            ))
        }
    })
    .unwrap_or_else(|e| panic!("{what}: {e}\n{}", describe_nodes(everyone)))
}

/// What each of `nodes` holds, how it sees its peers, and the end of its
/// log: printed when a wait fails, so a failure in CI can be read without
/// running it again.
pub fn describe_nodes(nodes: &[&TestNode]) -> String {
    let mut out = String::new();
    for node in nodes {
        out.push_str(&format!("===== {} =====\n", node.station));
        match node.documents() {
            Ok(documents) => out.push_str(&format!("documents: {documents:?}\n")),
            Err(error) => out.push_str(&format!("documents: unavailable ({error})\n")),
        }
        match node.get("status") {
            Ok(status) => {
                for peer in status["peers"].as_array().into_iter().flatten() {
                    out.push_str(&format!("peer: {peer}\n"));
                }
            }
            Err(error) => out.push_str(&format!("status: unavailable ({error})\n")),
        }
        out.push_str(&node.log());
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// Nodes at chosen addresses, run through a wrapper (e.g. `ip netns exec NS`).

impl TestNode {
    /// `civsync init` a node listening at exactly `api` and `quic` (addresses
    /// that may exist only inside a network namespace).
    pub fn init_at(
        dir: &Path,
        station: &str,
        tier: &str,
        parent: Option<SocketAddr>,
        api: SocketAddr,
        quic: SocketAddr,
    ) -> anyhow::Result<TestNode> {
        let (api_text, quic_text) = (api.to_string(), quic.to_string());
        let dir_text = dir.to_string_lossy().into_owned();
        let mut args = vec![
            "init",
            "--data-dir",
            &dir_text,
            "--station",
            station,
            "--tier",
            tier,
            "--api-listen",
            &api_text,
            "--quic-listen",
            &quic_text,
        ];
        let parent_text = parent.map(|p| p.to_string());
        if let Some(parent) = &parent_text {
            args.extend(["--parent-address", parent.as_str()]);
        }
        civsync(&args)?;
        // No pooled connections: a server that refuses an oversized body
        // closes that connection, and a request reusing it would fail with
        // "connection closed before message completed" (seen once in CI).
        let http = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .no_proxy()
            .build()?;
        Ok(TestNode {
            station: station.to_string(),
            dir: dir.to_path_buf(),
            api,
            quic,
            process: None,
            http,
        })
    }

    /// Like [`TestNode::start`], but run `civsync run` through `wrapper`
    /// (a program and its arguments that end by executing the rest, like
    /// `ip netns exec NS`), so the process id is the node's. No wrapper runs
    /// the binary itself.
    pub fn start_wrapped(&mut self, wrapper: &[&str]) -> anyhow::Result<()> {
        self.spawn_wrapped(wrapper)?;
        self.wait_until_answering()
    }

    /// Start `civsync run` and return at once, the node still starting.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        self.spawn_wrapped(&[])
    }

    fn spawn_wrapped(&mut self, wrapper: &[&str]) -> anyhow::Result<()> {
        assert!(
            self.process.is_none(),
            "node {} already running",
            self.station
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))?;
        let mut command = match wrapper.split_first() {
            None => Command::new(civsync_binary()),
            Some((program, arguments)) => {
                let mut command = Command::new(program);
                command.args(arguments).arg(civsync_binary());
                command
            }
        };
        let child = command
            .arg("run")
            .arg("--data-dir")
            .arg(&self.dir)
            .env("RUST_LOG", "info,quinn=warn,rustls=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn civsync run")?;
        self.process = Some(child);
        Ok(())
    }

    /// The exit status once the process has exited, polled for at most
    /// `timeout`; `None` if it is still running (or was never started).
    fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        let child = self.process.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the API address answers, and answers as this station: a
    /// node that lost its port to another node must fail here, not later
    /// with records "acknowledged" by the wrong node.
    fn wait_until_answering(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(Some(status)) = self.process.as_mut().map(|c| c.try_wait().ok().flatten()) {
                self.process = None;
                bail!(
                    "node {} exited at start with {status}; log:\n{}",
                    self.station,
                    self.log()
                );
            }
            if let Ok(node) = self.get("node") {
                let answering = node["station"].as_str().unwrap_or_default().to_string();
                if answering == self.station {
                    return Ok(());
                }
                // Not a node of this test any more: it should be exiting.
                let ended = match self.wait_for_exit(START_TIMEOUT) {
                    Some(status) => format!("it exited with {status}"),
                    None => "it was still running and was killed".to_string(),
                };
                self.kill();
                bail!(
                    "node {}: its API address {} is answered by station {answering:?}; {ended}; log:\n{}",
                    self.station,
                    self.api,
                    self.log()
                );
            }
            // Finely at first: a start is timed by this wait (the product
            // path bench's restarts and reconnects take tens of ms), and a
            // refused connection costs next to nothing.
            std::thread::sleep(if started.elapsed() < START_POLL_FINE_FOR {
                START_POLL_FINE
            } else {
                START_POLL_COARSE
            });
        }
        bail!(
            "node {} did not answer within {START_TIMEOUT:?}; log:\n{}",
            self.station,
            self.log()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nested_build_gets_no_package_variables_and_keeps_cargo_settings() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_BIN_EXE_udp-relay",
            "CARGO_CRATE_NAME",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ] {
            assert!(is_test_environment(name), "{name} must not be inherited");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!is_test_environment(name), "{name} must be inherited");
        }
    }

    #[test]
    fn harness_ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let ephemeral = civsync_node::net::local_ports::ephemeral_ports();
        let ports: Vec<u16> = (0..20)
            .flat_map(|_| [free_tcp_addr().port(), free_udp_addr().port()])
            .collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        for port in ports {
            assert!(!ephemeral.contains(&port), "{port} is in {ephemeral:?}");
        }
    }

    #[test]
    fn what_cargo_test_set_for_this_process_is_removed_from_the_nested_build() {
        // `cargo test` runs this test with its package's variables set.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let mut build = Command::new("cargo");
        clear_environment_of_this_test(&mut build);
        let removed: Vec<String> = build
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
        ] {
            assert!(
                removed.iter().any(|r| r == name),
                "{name} not removed: {removed:?}"
            );
        }
        assert!(
            build.get_envs().all(|(name, _)| name != "CARGO_HOME"),
            "nothing else is touched"
        );
    }
}
