//! Sync costs on the synthetic county of the product issue: 25 townships ×
//! 26 villages, 150 volunteers per village, 10 activities per village-month
//! with 5–15 service records each. Real `Replica`s over `MemoryStorage` and
//! real `Session`s, bytes passed straight between them (no network time):
//!
//! - a village pushing one week of offline work (30 activities, ~300
//!   service records) to its township: time, bytes on the wire vs the
//!   records' raw JSON size;
//! - cold sync of one township's subtree into an empty township node;
//! - cold sync of the whole county into an empty county node: time, bytes,
//!   peak RSS.
//!
//! Memory: the source nodes stay resident in this process, so its peak RSS
//! (reset through `/proc/self/clear_refs` before each measured sync) says
//! little about the receiving node. A counting allocator gives the peak of
//! heap bytes allocated during the sync above what was allocated before it:
//! the receiving node plus both sessions (and the source's loaded
//! documents). Both are printed.
//!
//! cargo bench -p civsync-protocol --bench sync_county
//!
//! With `SYNC_COUNTY_SIGNING=ecdsa` every node signs its changes and
//! verifies its peers' at the node's cost (`support/ecdsa_signing.rs`), so
//! the two runs side by side give what signed changes cost these paths.

use civsync_protocol::domain::model::{
    Activity, Category, Form, Hours, RecordId, ServiceRecord, Sex, Volunteer,
};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::session::{CertifiedPeer, Session, SessionConfig};
use civsync_protocol::{layout, DocumentId, Month, StationId, Tier};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use time::macros::date;

#[path = "support/ecdsa_signing.rs"]
mod ecdsa_signing;

type Node = Replica<MemoryStorage>;

/// Does this run sign (`SYNC_COUNTY_SIGNING=ecdsa`)?
fn signing_on() -> bool {
    std::env::var("SYNC_COUNTY_SIGNING").is_ok_and(|value| value == "ecdsa")
}

/// A station's signing, the same key for every copy of its node.
fn sign(replica: &mut Node) {
    static KEYS: std::sync::Mutex<
        std::collections::BTreeMap<String, civsync_protocol::replica::Signing>,
    > = std::sync::Mutex::new(std::collections::BTreeMap::new());
    if !signing_on() {
        return;
    }
    let station = replica.local().clone();
    let tier = replica.config().tier_of(&station);
    let signing = KEYS
        .lock()
        .unwrap()
        .entry(station.to_string())
        .or_insert_with(|| ecdsa_signing::signing(&station, tier))
        .clone();
    replica.set_signing(signing).unwrap();
}

/// The system allocator, counting bytes in use and their peak.
struct Counting;

static HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);
static HEAP_PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let now = HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            HEAP_PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = HEAP_BYTES.fetch_add(grown, Ordering::Relaxed) + grown;
                HEAP_PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
            } else {
                HEAP_BYTES.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a new heap peak from the bytes in use now; returns them.
fn reset_heap_peak() -> usize {
    let now = HEAP_BYTES.load(Ordering::Relaxed);
    HEAP_PEAK_BYTES.store(now, Ordering::Relaxed);
    now
}

/// Peak heap bytes since `reset_heap_peak` returned `base`, above `base`, in MiB.
fn heap_growth_mib(base: usize) -> f64 {
    HEAP_PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(base) as f64 / (1 << 20) as f64
}

const TOWNSHIPS: usize = 25;
const VILLAGES_PER_TOWNSHIP: usize = 26;
const VOLUNTEERS_PER_VILLAGE: usize = 150;
const ACTIVITIES_PER_MONTH: usize = 10;
/// Months of history each village holds before the cold syncs.
const MONTHS: u8 = 3;
/// Bound on pump rounds, so a stall fails instead of spinning.
const ROUNDS_MAX: usize = 100_000;

fn s(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn node(station: &StationId) -> Node {
    let config = ReplicaConfig {
        documents_cached_max: 64,
        ..ReplicaConfig::default()
    };
    let mut replica = Replica::open(MemoryStorage::new(), station.clone(), 7, config).unwrap();
    sign(&mut replica);
    replica
}

/// An activity with `records` service records (volunteers picked by `seed`).
fn activity(
    village: &StationId,
    id: String,
    date: time::Date,
    volunteers: &[RecordId],
    seed: usize,
    records: usize,
) -> Activity {
    Activity {
        id: RecordId::parse("id", &id).unwrap(),
        name: "关爱留守老人".into(),
        date,
        station: village.clone(),
        place: "村文化广场".into(),
        content: "上门探访，打扫卫生，理发".into(),
        form: Form::Help,
        category: Category::ElderCare,
        team: None,
        person_in_charge: "站长".into(),
        beneficiaries: 30,
        theme: None,
        recorded_on: date,
        late: false,
        deleted: false,
        records: (0..records)
            .map(|r| ServiceRecord {
                volunteer: volunteers[(seed * 7 + r) % volunteers.len()].clone(),
                home_station: None,
                hours: Hours {
                    centi: 150 + 50 * (r as u32 % 4),
                },
                recorded_on: date,
                late: false,
                deleted: false,
            })
            .collect(),
    }
}

/// A village's roster and `MONTHS` months of activities, as its own node wrote them.
fn village_history(village: &StationId, index: usize) -> (Node, Vec<RecordId>) {
    let mut replica = node(village);
    let numbers: Vec<RecordId> = (0..VOLUNTEERS_PER_VILLAGE)
        .map(|n| RecordId::parse("n", &format!("V{index:03}n{n:03}")).unwrap())
        .collect();
    replica
        .commit(&DocumentId::roster(village), |doc| {
            for (n, number) in numbers.iter().enumerate() {
                let volunteer = Volunteer {
                    number: number.clone(),
                    name: "王秀英".into(),
                    sex: if n.is_multiple_of(2) {
                        Sex::Female
                    } else {
                        Sex::Male
                    },
                    birth_date: date!(1975 - 03 - 08),
                    residence_area: "东村三组".into(),
                    phone: format!("138{index:03}{n:05}"),
                    phone_seals: Default::default(),
                    id_digest: format!("{index:032x}{n:032x}"),
                    id_sealed: String::new(),
                    id_masked: "4116**********0001".into(),
                    skills: vec!["理发".into()],
                    categories: vec![Category::ElderCare],
                    home_station: village.clone(),
                    registered_on: date!(2025 - 01 - 10),
                    consent: true,
                    party_member: n.is_multiple_of(5),
                    deleted: false,
                };
                layout::put_volunteer(doc, &volunteer)?;
            }
            Ok::<_, layout::LayoutError>(())
        })
        .unwrap();
    for month in 1..=MONTHS {
        let document = DocumentId::activities(village, Month::new(2025, month).unwrap());
        for a in 0..ACTIVITIES_PER_MONTH {
            let date = time::Date::from_calendar_date(
                2025,
                time::Month::try_from(month).unwrap(),
                1 + a as u8,
            )
            .unwrap();
            let seed = a + index;
            let record = activity(
                village,
                format!("A{month}x{a}"),
                date,
                &numbers,
                seed,
                5 + seed % 11,
            );
            replica
                .commit(&document, |doc| layout::put_activity(doc, &record))
                .unwrap();
        }
    }
    (replica, numbers)
}

#[derive(Default, Debug)]
struct Traffic {
    bytes_up: u64,
    bytes_down: u64,
    rounds: usize,
}

/// Run one session pair to quiescence; `lower` dials `upper`.
fn sync(lower: &mut Node, lower_tier: Tier, upper: &mut Node, upper_tier: Tier) -> Traffic {
    let (l, u) = (lower.local().clone(), upper.local().clone());
    let mut down = Session::new(
        l.clone(),
        CertifiedPeer {
            station: u.clone(),
            tier: upper_tier,
        },
        lower_tier,
        0,
        SessionConfig::default(),
    );
    let mut up = Session::new(
        u,
        CertifiedPeer {
            station: l,
            tier: lower_tier,
        },
        upper_tier,
        0,
        SessionConfig::default(),
    );
    let mut traffic = Traffic::default();
    loop {
        traffic.rounds += 1;
        assert!(traffic.rounds < ROUNDS_MAX, "sync did not quiesce");
        let mut moved = false;
        while let Some(bytes) = down.poll_transmit(lower) {
            traffic.bytes_up += bytes.len() as u64;
            up.handle_bytes(&bytes, 1, upper);
            moved = true;
        }
        while let Some(bytes) = up.poll_transmit(upper) {
            traffic.bytes_down += bytes.len() as u64;
            down.handle_bytes(&bytes, 1, lower);
            moved = true;
        }
        while down.poll_event().is_some() {}
        while up.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
    assert!(
        !down.is_closed() && !up.is_closed(),
        "session closed: {:?} / {:?}",
        down.status().last_error,
        up.status().last_error
    );
    lower.peer_disconnected(upper.local());
    let lower_station = lower.local().clone();
    upper.peer_disconnected(&lower_station);
    traffic
}

fn status_mib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// CPU seconds this process used so far (user + system), from
/// `/proc/self/stat`; on a loaded machine it says more than wall time.
fn cpu_s() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> u64 {
    status_mib("VmRSS:")
}

/// Starts a new peak: VmHWM falls back to the current RSS (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// An independent copy of a node (all its writes were flushed).
fn copy(replica: &Node) -> Node {
    let config = ReplicaConfig {
        documents_cached_max: 64,
        ..ReplicaConfig::default()
    };
    let mut copied = Replica::open(
        replica.storage().crashed_copy(),
        replica.local().clone(),
        7,
        config,
    )
    .unwrap();
    sign(&mut copied);
    copied
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    println!(
        "signing: {}",
        if signing_on() {
            "ECDSA P-256 (every change signed and verified)"
        } else {
            "none"
        }
    );
    // One week of offline work pushed from a village to its township.
    let village = s("xh/t00/v00");
    let (mut village_node, numbers) = village_history(&village, 0);
    let mut township = node(&s("xh/t00"));
    sync(
        &mut village_node,
        Tier::Village,
        &mut township,
        Tier::Township,
    );
    let week = DocumentId::activities(&village, Month::new(2025, 4).unwrap());
    let mut raw_json = 0usize;
    let mut records = 0usize;
    for a in 0..30 {
        let date =
            time::Date::from_calendar_date(2025, time::Month::April, 1 + (a % 7) as u8).unwrap();
        let record = activity(&village, format!("W{a}"), date, &numbers, a * 3, 10);
        records += record.records.len();
        raw_json += serde_json::to_vec(&record).unwrap().len();
        village_node
            .commit(&week, |doc| layout::put_activity(doc, &record))
            .unwrap();
    }
    let mut times = Vec::new();
    let mut traffic = Traffic::default();
    for _ in 0..5 {
        let (mut v, mut t) = (copy(&village_node), copy(&township));
        let started = Instant::now();
        traffic = sync(&mut v, Tier::Village, &mut t, Tier::Township);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let wire = traffic.bytes_up + traffic.bytes_down;
    println!(
        "week push: 30 activities, {records} service records, raw JSON {raw_json} B; wire {wire} B ({:.2}x raw: up {} B, down {} B), median {:.1} ms of 5 (runs {times:.1?})",
        wire as f64 / raw_json as f64,
        traffic.bytes_up,
        traffic.bytes_down,
        median(times.clone()),
    );

    // The county: each village pushes its history to its township.
    let started = Instant::now();
    // A smaller county for profiling runs; the recorded figures use all.
    let townships_built = std::env::var("SYNC_COUNTY_TOWNSHIPS")
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(TOWNSHIPS)
        .clamp(1, TOWNSHIPS);
    let mut townships = Vec::new();
    for t in 0..townships_built {
        let mut township = node(&s(&format!("xh/t{t:02}")));
        for v in 0..VILLAGES_PER_TOWNSHIP {
            let (mut village, _) = village_history(
                &s(&format!("xh/t{t:02}/v{v:02}")),
                t * VILLAGES_PER_TOWNSHIP + v,
            );
            sync(&mut village, Tier::Village, &mut township, Tier::Township);
        }
        townships.push(township);
    }
    println!(
        "built the county: {} townships x {} villages, {} documents per township, in {:.1} s",
        townships_built,
        VILLAGES_PER_TOWNSHIP,
        townships[0].documents().len(),
        started.elapsed().as_secs_f64()
    );

    // Cold sync of one township's subtree into an empty township node.
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..3 {
        let mut empty = node(&s("xh/t00"));
        let mut source = copy(&townships[0]);
        let resident = rss_mib();
        reset_peak_rss();
        let heap_base = reset_heap_peak();
        let cpu_before = cpu_s();
        let started = Instant::now();
        traffic = sync(&mut empty, Tier::Township, &mut source, Tier::Township);
        times.push(started.elapsed().as_secs_f64());
        cpu_times.push(cpu_s() - cpu_before);
        peaks.push((
            (heap_growth_mib(heap_base) * 10.0).round() / 10.0,
            peak_rss_mib(),
            resident,
        ));
        assert_eq!(empty.documents().len(), source.documents().len());
        if signing_on() {
            let signed: usize = empty
                .documents()
                .iter()
                .map(|document| empty.signature_count(document).unwrap())
                .sum();
            assert!(signed > 0, "signing is on but no signature arrived");
        }
    }
    println!(
        "cold township subtree: {} documents, {} B down, {} B up, median {:.2} s of 3 (runs {times:.2?}, CPU {cpu_times:.2?} s); \
         (peak heap growth, peak RSS, resident before) per run, MiB: {peaks:?}",
        townships[0].documents().len(),
        traffic.bytes_down,
        traffic.bytes_up,
        median(times.clone())
    );

    // Cold sync of the whole county into an empty county node.
    let rss_before = rss_mib();
    reset_peak_rss();
    let heap_base = reset_heap_peak();
    let mut county = node(&s("xh"));
    let cpu_before = cpu_s();
    let started = Instant::now();
    let (mut down, mut up) = (0u64, 0u64);
    for township in townships.iter_mut() {
        let traffic = sync(township, Tier::Township, &mut county, Tier::County);
        down += traffic.bytes_down;
        up += traffic.bytes_up;
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu_before;
    println!(
        "cold county: {} documents in {:.1} s ({cpu:.1} s CPU), {:.2} MB to the county, {:.2} MB back; peak heap growth {:.1} MiB; \
         peak RSS during the sync {} MiB (resident before: {} MiB, all {townships_built} source townships in memory)",
        county.documents().len(),
        took,
        up as f64 / 1e6,
        down as f64 / 1e6,
        heap_growth_mib(heap_base),
        peak_rss_mib(),
        rss_before
    );
}
