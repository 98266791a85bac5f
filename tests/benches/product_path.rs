//! The product path, end to end: real `civsync run` processes on 127.0.0.1
//! with certificates from `civsync pki`, a synthetic county loaded through
//! the HTTP import endpoints, and sync measured on the UDP path through a
//! counting relay (`civsync_node::net::relay::Relay`, no impairment).
//!
//! The protocol benches (`sync_county`, `reconnect`) hand bytes between
//! replicas in one process; this one pays for what a user pays for too:
//! HTTP, QUIC, mutual TLS, sled, process start. Keeping both lets the gap
//! between protocol and product be read off `BENCHMARKS.md`.
//!
//! Each run, in a fresh folder:
//! 1. load: a county node gets its registry (one `POST import/stations`;
//!    until 2026-12-06 one `POST stations` a station), one roster
//!    file per village (`POST import/volunteers`), one team file per
//!    village (`POST import/teams`) and one ledger file per village
//!    (`POST import/activities`); then it is
//!    restarted twice, timing each start until its API answers;
//! 2. cold township: each township node, empty, starts behind the relay and
//!    syncs its subtree from the county, one township at a time;
//! 3. cold county: the county is replaced by an empty one at the same
//!    address and every township starts at once to refill it;
//! 4. reconnect: one township, already up to date, restarts (five in
//!    turn, one sample each);
//! 5. village push: a village synced from its township records 30
//!    activities, timed until the township lists them all.
//!
//! Scale from the environment (defaults in brackets; the issue's county is
//! 25 townships × 26 villages): `PRODUCT_PATH_TOWNSHIPS` [3],
//! `PRODUCT_PATH_VILLAGES` (per township) [4], `PRODUCT_PATH_VOLUNTEERS`
//! (per village) [150], `PRODUCT_PATH_MONTHS` [3],
//! `PRODUCT_PATH_ACTIVITIES` (per village-month, 5–15 service records
//! each) [10], `PRODUCT_PATH_RUNS` [3].
//!
//! `cargo bench -p civsync-tests --bench product_path --profile ci`: the
//! nodes are the `civsync` binary of the same profile as this bench.

use civsync_node::net::relay::{Relay, Traffic};
use civsync_tests::{certified, civsync_binary, id_number, pki_init, pki_issue, TestNode};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const COUNTY: &str = "xh";
/// Bound of every wait for a sync to finish; a run that needs more failed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound of a wait for one thing through the API (a write to arrive).
const PUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a link is left alone after a measured exchange before its
/// bytes are read, so acknowledgements of the last packets are counted.
const SETTLE: Duration = Duration::from_millis(300);
/// Townships that reconnect in turn, one sample each.
const RECONNECT_SAMPLES: usize = 5;
/// Activities a village pushes in row 5 (a week of offline work).
const PUSHED_ACTIVITIES: usize = 30;
/// Service records of each pushed activity.
const PUSHED_RECORDS: usize = 10;
/// Distinct `id_number` seeds available to the test helpers.
const ID_SEEDS_MAX: usize = 336_000;

#[derive(Debug, Clone)]
struct Scale {
    townships: usize,
    villages: usize,
    volunteers: usize,
    months: usize,
    activities: usize,
    runs: usize,
}

fn env_number(name: &str, default: usize, range: std::ops::RangeInclusive<usize>) -> usize {
    let value = match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    };
    assert!(
        range.contains(&value),
        "{name}={value} is outside {range:?}"
    );
    value
}

impl Scale {
    fn from_env() -> Scale {
        let scale = Scale {
            townships: env_number("PRODUCT_PATH_TOWNSHIPS", 3, 1..=99),
            villages: env_number("PRODUCT_PATH_VILLAGES", 4, 1..=99),
            volunteers: env_number("PRODUCT_PATH_VOLUNTEERS", 150, 15..=1_000),
            months: env_number("PRODUCT_PATH_MONTHS", 3, 1..=11),
            activities: env_number("PRODUCT_PATH_ACTIVITIES", 10, 1..=28),
            runs: env_number("PRODUCT_PATH_RUNS", 3, 1..=50),
        };
        assert!(
            scale.townships * scale.villages * scale.volunteers <= ID_SEEDS_MAX,
            "more volunteers than distinct test ID numbers ({ID_SEEDS_MAX})"
        );
        scale
    }
}

// ---------------------------------------------------------------------------
// The synthetic county.

fn township_id(t: usize) -> String {
    format!("{COUNTY}/t{t}")
}

fn village_id(t: usize, v: usize) -> String {
    format!("{COUNTY}/t{t}/v{v}")
}

/// A (year, month) `back` months before `today`'s month.
fn month_before(today: time::Date, back: usize) -> (i32, u8) {
    let index = today.year() as i64 * 12 + (u8::from(today.month()) as i64 - 1) - back as i64;
    ((index / 12) as i32, (index % 12) as u8 + 1)
}

/// Today at the nodes, which date records in Beijing time: a date after it
/// is refused as in the future.
fn node_today() -> time::Date {
    time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .date()
}

struct Village {
    station: String,
    numbers: Vec<String>,
    roster_csv: String,
    teams_csv: String,
    ledger_csv: String,
}

/// Village `(t, v)`: its roster, teams and `scale.months` months of ledger
/// before the current month, the same for the same scale every run.
fn village(scale: &Scale, t: usize, v: usize, today: time::Date) -> Village {
    let station = village_id(t, v);
    let mut rng = StdRng::seed_from_u64((t * 1_000 + v) as u64);
    let first_seed = ((t - 1) * scale.villages + (v - 1)) * scale.volunteers;
    let numbers: Vec<String> = (0..scale.volunteers)
        .map(|k| format!("V{t}-{v}-{k}"))
        .collect();
    let mut roster_csv = String::from("编号,姓名,性别,身份证号\n");
    for (k, number) in numbers.iter().enumerate() {
        let seed = (first_seed + k) as u64;
        let sex = if seed.is_multiple_of(2) { "女" } else { "男" };
        let _ = writeln!(
            roster_csv,
            "{number},志愿者{seed},{sex},{}",
            id_number(seed)
        );
    }
    // 4.4 teams a village on average, as in the issue's county (2,878 / 650).
    let team_count = if rng.gen_bool(0.43) { 5 } else { 4 };
    let mut teams_csv = String::from("队伍编号,队伍名称,服务类别,队员编号\n");
    for j in 0..team_count {
        let members: Vec<&str> = numbers
            .choose_multiple(&mut rng, 10)
            .map(String::as_str)
            .collect();
        let _ = writeln!(
            teams_csv,
            "T{t}-{v}-{j},服务队{j},health,{}",
            members.join("、")
        );
    }
    let mut ledger_csv = String::from(
        "活动编号,活动名称,活动日期,活动地点,活动形式,服务类别,受益人数,志愿者编号,服务时长\n",
    );
    for back in 1..=scale.months {
        let (year, month) = month_before(today, back);
        for a in 0..scale.activities {
            let day = 1 + (a * 2) % 28;
            let records = rng.gen_range(5..=15).min(numbers.len());
            for number in numbers.choose_multiple(&mut rng, records) {
                let _ = writeln!(
                    ledger_csv,
                    "A{back}-{a},理论宣讲{a},{year}-{month:02}-{day:02},文化广场,讲,理论宣讲,20,{number},1.5"
                );
            }
        }
    }
    Village {
        station,
        numbers,
        roster_csv,
        teams_csv,
        ledger_csv,
    }
}

// ---------------------------------------------------------------------------
// Talking to nodes.

/// POST a file body; panics unless 200 with no refused row.
fn import(node: &TestNode, path: &str, body: &str) -> Value {
    let response = node
        .request(reqwest::Method::POST, path)
        .header("content-type", "text/csv")
        .body(body.to_string())
        .send()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    let report: Value = response.json().unwrap_or(Value::Null);
    assert_eq!(status, 200, "{path}: {report}");
    assert_eq!(
        report["refused"].as_array().map(Vec::len),
        Some(0),
        "{path}: rows refused: {report}"
    );
    report
}

/// Call `done` every `every` until it holds; panics with its last word
/// after `timeout`. Returns how long it took.
fn poll(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<(), String>,
) -> Duration {
    let started = Instant::now();
    loop {
        match done() {
            Ok(()) => return started.elapsed(),
            Err(missing) if started.elapsed() >= timeout => {
                panic!("{what}: not within {timeout:?}: {missing}")
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// `Ok` when `node` holds every document of `expected`. Whether they are
/// complete is the link's `up_to_date`: comparing heads would wait forever
/// on a document the holder went on writing.
fn holds(node: &TestNode, expected: &BTreeSet<String>) -> Result<(), String> {
    let held = node.documents().map_err(|e| e.to_string())?;
    let missing = expected.iter().filter(|id| !held.contains_key(*id)).count();
    if missing == 0 {
        Ok(())
    } else {
        Err(format!("{} lacks {missing} documents", node.station))
    }
}

/// `Ok` when `node`'s link to `peer` is up and has nothing left to exchange.
fn up_to_date_with(node: &TestNode, peer: &str) -> Result<(), String> {
    match node.peer_status(peer).map_err(|e| e.to_string())? {
        Some(status) if status["connected"] == true && status["up_to_date"] == true => Ok(()),
        other => Err(format!("{} with {peer}: {other:?}", node.station)),
    }
}

/// `field` summed over the peers of `node`'s status that `which` picks:
/// the sync payload the node counts itself, to set beside the wire's bytes.
fn status_bytes(node: &TestNode, which: impl Fn(&Value) -> bool, field: &str) -> f64 {
    let status = node.get("status").unwrap_or(Value::Null);
    status["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|peer| which(peer))
        .filter_map(|peer| peer[field].as_u64())
        .sum::<u64>() as f64
}

/// The owner station of a document id (`kind:owner[:rest]`).
fn owner_of(document: &str) -> &str {
    document.split(':').nth(1).unwrap_or_default()
}

fn under(station: &str, ancestor: &str) -> bool {
    station == ancestor || station.starts_with(&format!("{ancestor}/"))
}

/// The summed `elapsed_ms` of every finished `job` in a node's log: the
/// time from the node starting the job (its body received) to its report,
/// so the rest of a request's time is HTTP, queueing and the client.
fn job_time(log: &str, job: &str) -> Duration {
    let millis: u64 = log
        .lines()
        .map(without_colours)
        .filter(|line| line.contains(job))
        .filter_map(|line| {
            let rest = &line[line.find("elapsed_ms=")? + "elapsed_ms=".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum();
    Duration::from_millis(millis)
}

/// A log line without its terminal colour sequences (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for skipped in chars.by_ref() {
                if skipped == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Peak resident set of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

// ---------------------------------------------------------------------------
// One run.

/// Every figure of one run, by name; a name may hold several samples
/// (one per township).
/// Start `node`, poll it every `every` until `ready`, and add `<phase>:
/// time`, then, once the link has settled, what crossed `relay` since the
/// start as `<phase>: bytes up` and `<phase>: bytes down`.
fn timed_start(
    figures: &mut Figures,
    phase: &str,
    node: &mut TestNode,
    relay: &Relay,
    every: Duration,
    mut ready: impl FnMut(&TestNode) -> Result<(), String>,
) {
    let before = relay.traffic();
    let started = Instant::now();
    node.start()
        .unwrap_or_else(|error| panic!("{phase}: start {}: {error:#}", node.station));
    poll(SYNC_TIMEOUT, every, phase, || ready(node));
    figures.add(format!("{phase}: time"), started.elapsed().as_secs_f64());
    std::thread::sleep(SETTLE);
    let traffic = relay.traffic().since(&before);
    figures.add(format!("{phase}: bytes up"), traffic.up_bytes as f64);
    figures.add(format!("{phase}: bytes down"), traffic.down_bytes as f64);
}

#[derive(Default)]
struct Figures(BTreeMap<String, Vec<f64>>);

impl Figures {
    fn add(&mut self, name: impl Into<String>, value: f64) {
        self.0.entry(name.into()).or_default().push(value);
    }

    fn seconds(&mut self, name: &'static str, duration: Duration) {
        self.add(name, duration.as_secs_f64());
    }

    fn traffic(&mut self, up: &'static str, down: &'static str, traffic: Traffic) {
        self.add(up, traffic.up_bytes as f64);
        self.add(down, traffic.down_bytes as f64);
    }
}

/// The median request of the first and of the last tenth of `each`: a
/// request that grows dearer as the county fills shows here, where the
/// phase's total cannot tell it from a uniformly slow one.
fn first_and_last_tenth(figures: &mut Figures, what: &'static str, each: &[Duration]) {
    let tenth = (each.len() / 10).max(1);
    let mut first: Vec<f64> = each[..tenth].iter().map(Duration::as_secs_f64).collect();
    let mut last: Vec<f64> = each[each.len() - tenth..]
        .iter()
        .map(Duration::as_secs_f64)
        .collect();
    figures.add(format!("{what}, first tenth"), median(&mut first));
    figures.add(format!("{what}, last tenth"), median(&mut last));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime for the relays")
}

fn relay_to(runtime: &tokio::runtime::Runtime, upstream: SocketAddr) -> Relay {
    runtime
        .block_on(Relay::start(
            "127.0.0.1:0".parse().expect("literal"),
            upstream,
        ))
        .expect("start a relay on 127.0.0.1")
}

fn one_run(scale: &Scale, runtime: &tokio::runtime::Runtime, figures: &mut Figures) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let root = folder.path();
    let ca = root.join("county-ca");
    pki_init(&ca, COUNTY).expect("pki init");
    let today = node_today();
    let villages: Vec<Vec<Village>> = (1..=scale.townships)
        .map(|t| {
            (1..=scale.villages)
                .map(|v| village(scale, t, v, today))
                .collect()
        })
        .collect();

    // 1. Load the county through its import endpoints.
    let mut county = certified(root, &ca, COUNTY, "county", None);
    county.start().expect("start the county");
    let started = Instant::now();
    let mut stations_csv = String::from("站点编码,站点名称,层级\n");
    for t in 1..=scale.townships {
        stations_csv.push_str(&format!("{},乡镇{t},所\n", township_id(t)));
        for v in 1..=scale.villages {
            stations_csv.push_str(&format!("{},村{t}-{v},站\n", village_id(t, v)));
        }
    }
    let report = import(&county, "import/stations?format=csv", &stations_csv);
    assert_eq!(
        report["accepted"].as_u64(),
        Some((scale.townships * (1 + scale.villages)) as u64),
        "{report}"
    );
    let registry = started.elapsed();
    let started = Instant::now();
    let mut each = Vec::new();
    for village in villages.iter().flatten() {
        let path = format!("import/volunteers?station={}&format=csv", village.station);
        let one = Instant::now();
        import(&county, &path, &village.roster_csv);
        each.push(one.elapsed());
    }
    let rosters = started.elapsed();
    first_and_last_tenth(figures, "load: a roster file", &each);
    let started = Instant::now();
    for village in villages.iter().flatten() {
        let path = format!("import/teams?station={}&format=csv", village.station);
        import(&county, &path, &village.teams_csv);
    }
    let teams = started.elapsed();
    let started = Instant::now();
    let mut each = Vec::new();
    for village in villages.iter().flatten() {
        let path = format!("import/activities?station={}&format=csv", village.station);
        let one = Instant::now();
        import(&county, &path, &village.ledger_csv);
        each.push(one.elapsed());
    }
    let ledgers = started.elapsed();
    first_and_last_tenth(figures, "load: a ledger file", &each);
    figures.seconds("load: registry", registry);
    figures.seconds("load: rosters", rosters);
    figures.seconds("load: teams", teams);
    figures.seconds("load: ledgers", ledgers);
    figures.seconds("load: total", registry + rosters + teams + ledgers);
    let log = std::fs::read_to_string(county.dir.join("node.log")).unwrap_or_default();
    for (job, name) in [
        (
            "roster import",
            "load: rosters, inside the node's import jobs",
        ),
        (
            "ledger import",
            "load: ledgers, inside the node's import jobs",
        ),
    ] {
        figures.seconds(name, job_time(&log, job));
    }
    for name in ["load: first restart answers", "load: later restart answers"] {
        county.stop().expect("stop the county");
        let started = Instant::now();
        county.start().expect("restart the county");
        figures.seconds(name, started.elapsed());
        // The node watches for SIGTERM only once it serves: a SIGTERM in
        // the first milliseconds after its API answers kills it unflushed.
        std::thread::sleep(SETTLE);
    }
    let county_documents = county.documents().expect("the county's documents");

    // 2. Each township, empty, syncs its subtree from the county.
    let county_relay = relay_to(runtime, county.quic);
    let mut townships: Vec<TestNode> = (1..=scale.townships)
        .map(|t| {
            certified(
                root,
                &ca,
                &township_id(t),
                "township",
                Some(county_relay.listen),
            )
        })
        .collect();
    let mut subtree_documents = BTreeSet::new();
    for township in &mut townships {
        let expected: BTreeSet<String> = county_documents
            .keys()
            .filter(|id| under(owner_of(id), &township.station))
            .cloned()
            .collect();
        timed_start(
            figures,
            "cold township",
            township,
            &county_relay,
            Duration::from_millis(20),
            |township| {
                holds(township, &expected)?;
                up_to_date_with(township, COUNTY)
            },
        );
        figures.add("cold township: documents", expected.len() as f64);
        figures.add(
            "cold township: sync bytes received, in status",
            status_bytes(township, |p| p["station"] == COUNTY, "bytes_received"),
        );
        subtree_documents.extend(
            township
                .documents()
                .expect("a township's documents")
                .into_keys(),
        );
        township.stop().expect("stop a township");
    }

    // 3. An empty county at the same address; every township refills it.
    county.stop().expect("stop the loaded county");
    let mut empty_county = TestNode::init_at(
        &root.join("county-refilled"),
        COUNTY,
        "county",
        None,
        county.api,
        county.quic,
    )
    .expect("init the empty county");
    pki_issue(&ca, &empty_county, "county").expect("certificate of the empty county");
    empty_county.start().expect("start the empty county");
    let expected: BTreeSet<String> = subtree_documents
        .into_iter()
        .filter(|id| owner_of(id) != COUNTY)
        .collect();
    let before = county_relay.traffic();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for township in townships.iter_mut() {
            scope.spawn(move || township.start().expect("restart a township"));
        }
    });
    poll(
        SYNC_TIMEOUT,
        Duration::from_millis(50),
        "cold county",
        || {
            let count = empty_county.get("status").map_err(|e| e.to_string())?["documents"]
                .as_u64()
                .unwrap_or(0) as usize;
            if count < expected.len() {
                return Err(format!("{count} of {} documents", expected.len()));
            }
            holds(&empty_county, &expected)?;
            townships
                .iter()
                .try_for_each(|t| up_to_date_with(t, COUNTY))
        },
    );
    figures.seconds("cold county: time", started.elapsed());
    figures.traffic(
        "cold county: bytes up",
        "cold county: bytes down",
        county_relay.traffic().since(&before),
    );
    figures.add("cold county: documents", expected.len() as f64);
    figures.add(
        "cold county: sync bytes received, in status",
        status_bytes(&empty_county, |_| true, "bytes_received"),
    );
    figures.add(
        "cold county: documents the county read back from disk",
        empty_county.get("status").expect("the county's status")["documents_read_from_disk"]
            .as_f64()
            .expect("status counts documents read from disk"),
    );
    figures.add(
        "cold county: county peak RSS (MiB)",
        peak_rss(empty_county.pid().expect("the county runs")) as f64 / (1024.0 * 1024.0),
    );

    // 4. Reconnect, nothing changed: the only link on the relay. One
    // sample is a few milliseconds on a noisy machine: several townships
    // reconnect in turn, the first one last, which stays up for step 5.
    for township in townships.iter_mut() {
        township.stop().expect("stop a township");
    }
    let reconnecting = RECONNECT_SAMPLES.min(townships.len());
    for index in (1..reconnecting).chain([0]) {
        std::thread::sleep(SETTLE);
        let township = &mut townships[index];
        timed_start(
            figures,
            "reconnect",
            township,
            &county_relay,
            Duration::from_millis(2),
            |township| up_to_date_with(township, COUNTY),
        );
        let sync_bytes = township.peer_status(COUNTY).ok().flatten().map_or(0, |p| {
            p["bytes_sent"].as_u64().unwrap_or(0) + p["bytes_received"].as_u64().unwrap_or(0)
        });
        figures.add("reconnect: sync bytes in status", sync_bytes as f64);
        if index != 0 {
            township.stop().expect("stop a township");
        }
    }
    let township = &mut townships[0];

    // 5. A village synced from its township pushes 30 activities.
    let home = &villages[0][0];
    let township_relay = relay_to(runtime, township.quic);
    let mut village_node = certified(
        root,
        &ca,
        &home.station,
        "village",
        Some(township_relay.listen),
    );
    village_node.start().expect("start the village");
    poll(
        SYNC_TIMEOUT,
        Duration::from_millis(50),
        "village sync",
        || {
            up_to_date_with(&village_node, &township.station)?;
            let roster = village_node.get("volunteers").map_err(|e| e.to_string())?;
            match roster.as_array().map(Vec::len) {
                Some(n) if n >= home.numbers.len() => Ok(()),
                other => Err(format!("the village's roster: {other:?}")),
            }
        },
    );
    std::thread::sleep(SETTLE);
    let (year, month) = month_before(today, 0);
    let month = format!("{year}-{month:02}");
    let listed = format!("activities?month={month}&station={}", home.station);
    let before = township_relay.traffic();
    let started = Instant::now();
    for n in 0..PUSHED_ACTIVITIES {
        // Each volunteer serves at most twice a day: 3 hours, far below 24.
        let volunteers: Vec<String> = (0..PUSHED_RECORDS)
            .map(|r| home.numbers[(n * PUSHED_RECORDS + r) % home.numbers.len()].clone())
            .collect();
        village_node
            .record_activity(&format!("P{n}"), &format!("{month}-01"), &volunteers)
            .expect("record a pushed activity");
    }
    let written = started.elapsed();
    poll(
        PUSH_TIMEOUT,
        Duration::from_millis(2),
        "village push",
        || {
            let activities = township.get(&listed).map_err(|e| e.to_string())?;
            let arrived = activities
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["id"].as_str().is_some_and(|id| id.starts_with('P')))
                .count();
            if arrived == PUSHED_ACTIVITIES {
                Ok(())
            } else {
                Err(format!("{arrived} of {PUSHED_ACTIVITIES} at the township"))
            }
        },
    );
    let held = started.elapsed();
    figures.seconds("village push: the 30 writes", written);
    figures.seconds("village push: first write to held", held);
    figures.seconds("village push: last write to held", held - written);
    std::thread::sleep(SETTLE);
    figures.traffic(
        "village push: bytes up",
        "village push: bytes down",
        township_relay.traffic().since(&before),
    );

    for node in [&mut village_node, &mut empty_county]
        .into_iter()
        .chain(townships.iter_mut())
    {
        let _ = node.stop();
    }
    county_relay.stop();
    township_relay.stop();
}

// ---------------------------------------------------------------------------
// Summary.

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn shown(name: &str, value: f64) -> String {
    if name.contains("bytes") {
        format!("{value:.0} B")
    } else if name.contains("RSS") || name.contains("documents") {
        format!("{value:.1}")
    } else {
        format!("{:.1} ms", value * 1_000.0)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this target takes its scale from the
    // environment only.
    let scale = Scale::from_env();
    let load = load_average();
    eprintln!(
        "product_path: {scale:?}; civsync binary {:?}",
        civsync_binary()
    );
    let runtime = runtime();
    let mut all = Figures::default();
    for run in 1..=scale.runs {
        let started = Instant::now();
        let mut figures = Figures::default();
        one_run(&scale, &runtime, &mut figures);
        eprintln!(
            "run {run} of {} took {:.1} s (load average {})",
            scale.runs,
            started.elapsed().as_secs_f64(),
            load_average()
        );
        for (name, values) in figures.0 {
            let mut values = values;
            let per_run = median(&mut values);
            eprintln!("  {name}: {}", shown(&name, per_run));
            all.0.entry(name).or_default().extend(values);
        }
    }
    println!(
        "\nproduct_path, {} runs, {} townships × {} villages, {} volunteers a village, \
         {} months × {} activities; load average at start {load}\n",
        scale.runs,
        scale.townships,
        scale.villages,
        scale.volunteers,
        scale.months,
        scale.activities
    );
    println!("| measure | samples | median | range |\n|---|---|---|---|");
    for (name, mut values) in all.0 {
        let middle = median(&mut values);
        println!(
            "| {name} | {} | {} | {}–{} |",
            values.len(),
            shown(&name, middle),
            shown(&name, values[0]),
            shown(&name, values[values.len() - 1])
        );
    }
}

/// The 1-minute load average, to print beside noisy figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}
