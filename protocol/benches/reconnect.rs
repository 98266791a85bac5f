//! Reconnect cost of two up-to-date nodes sharing many documents.
//!
//! Run with `cargo bench -p civsync-protocol --bench reconnect`. Two
//! sessions are wired back to back over digest-only hosts (no document needs
//! to sync, so the store is not what is measured): a township and its county
//! sharing 10,000 activity documents. Reported: round trips (flights each way
//! until both sides are silent), application bytes each way, frames, and wall
//! time per reconnect (median of several runs), for the up-to-date case and
//! for one changed document among the 10,000.

use civsync_protocol::sync::host::{
    heads_digest, HeadsDigest, HostError, ReceiveError, ReceiveOutcome, SyncHost,
};
use civsync_protocol::sync::session::{CertifiedPeer, Session, SessionConfig};
use civsync_protocol::sync::signing::PayloadFormat;
use civsync_protocol::{DocumentId, Month, StationId, Tier};
use std::time::{Duration, Instant};

const DOCUMENTS: usize = 10_000;
const RUNS: usize = 21;
const ROUND_TRIPS_MAX: usize = 1_000;

/// Knows only (document, digest) pairs; answers every sync call with nothing.
struct DigestHost {
    local: StationId,
    shared: Vec<(DocumentId, HeadsDigest)>,
    sync_calls: usize,
}

impl SyncHost for DigestHost {
    fn local_station(&self) -> &StationId {
        &self.local
    }
    fn shared_documents(&mut self, _: &StationId) -> Vec<(DocumentId, HeadsDigest)> {
        self.shared.clone()
    }
    fn generate_sync_message(
        &mut self,
        _: &StationId,
        _: &DocumentId,
        _: PayloadFormat,
    ) -> Result<Option<Vec<u8>>, HostError> {
        self.sync_calls += 1;
        Ok(None)
    }
    fn receive_sync_message(
        &mut self,
        _: &StationId,
        _: &DocumentId,
        _: &[u8],
        _: PayloadFormat,
    ) -> Result<ReceiveOutcome, ReceiveError> {
        self.sync_calls += 1;
        Ok(ReceiveOutcome::default())
    }
    fn reset_sync_state(&mut self, _: &StationId, _: &DocumentId) {}
}

fn station(text: &str) -> StationId {
    StationId::parse(text).expect("valid station")
}

fn shared_documents() -> Vec<(DocumentId, HeadsDigest)> {
    (0..DOCUMENTS)
        .map(|i| {
            let (village, month) = (i % 500, i / 500);
            let month = Month::new(2020 + (month / 12) as u16, (month % 12 + 1) as u8)
                .expect("valid month");
            let id = DocumentId::activities(&station(&format!("xh/t1/v{village}")), month);
            let mut head = [0u8; 32];
            head[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (id, heads_digest(&[automerge::ChangeHash(head)]))
        })
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Figures {
    round_trips: usize,
    county_to_township_bytes: u64,
    township_to_county_bytes: u64,
    frames_each_way: u64,
    sync_calls: usize,
    elapsed: Duration,
}

fn drain(session: &mut Session, host: &mut DigestHost) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = session.poll_transmit(host) {
        out.extend(bytes);
    }
    out
}

fn reconnect(
    county_shared: &[(DocumentId, HeadsDigest)],
    township_shared: &[(DocumentId, HeadsDigest)],
) -> Figures {
    let mut county_host = DigestHost {
        local: station("xh"),
        shared: county_shared.to_vec(),
        sync_calls: 0,
    };
    let mut township_host = DigestHost {
        local: station("xh/t1"),
        shared: township_shared.to_vec(),
        sync_calls: 0,
    };
    let started = Instant::now();
    let mut county = Session::new(
        station("xh"),
        CertifiedPeer {
            station: station("xh/t1"),
            tier: Tier::Township,
        },
        Tier::County,
        0,
        SessionConfig::default(),
    );
    let mut township = Session::new(
        station("xh/t1"),
        CertifiedPeer {
            station: station("xh"),
            tier: Tier::County,
        },
        Tier::Township,
        0,
        SessionConfig::default(),
    );
    let mut round_trips = 0;
    loop {
        let down = drain(&mut county, &mut county_host);
        let up = drain(&mut township, &mut township_host);
        if down.is_empty() && up.is_empty() {
            break;
        }
        round_trips += 1;
        assert!(round_trips < ROUND_TRIPS_MAX, "sessions never went quiet");
        township.handle_bytes(&down, 0, &mut township_host);
        county.handle_bytes(&up, 0, &mut county_host);
    }
    let elapsed = started.elapsed();
    let (county_status, township_status) = (county.status(), township.status());
    assert!(
        county_status.up_to_date && township_status.up_to_date,
        "both sides up to date"
    );
    Figures {
        round_trips,
        county_to_township_bytes: county_status.bytes_sent,
        township_to_county_bytes: township_status.bytes_sent,
        frames_each_way: county_status.frames_sent.max(township_status.frames_sent),
        sync_calls: county_host.sync_calls + township_host.sync_calls,
        elapsed,
    }
}

fn median_run(
    county_shared: &[(DocumentId, HeadsDigest)],
    township_shared: &[(DocumentId, HeadsDigest)],
) -> Figures {
    let mut runs: Vec<Figures> = (0..RUNS)
        .map(|_| reconnect(county_shared, township_shared))
        .collect();
    runs.sort_by_key(|figures| figures.elapsed);
    let median = runs[RUNS / 2];
    // Traffic is deterministic; only the time varies between runs.
    assert!(runs
        .iter()
        .all(|figures| figures.round_trips == median.round_trips
            && figures.county_to_township_bytes == median.county_to_township_bytes));
    median
}

fn main() {
    let shared = shared_documents();
    let mut one_changed = shared.clone();
    one_changed[4321].1 = [0xee; 16];
    let rows = [
        ("up to date", median_run(&shared, &shared)),
        ("1 document changed", median_run(&shared, &one_changed)),
    ];
    println!("reconnect of a county and a township sharing {DOCUMENTS} documents ({RUNS} runs, median time)");
    println!(
        "{:<20} {:>11} {:>12} {:>12} {:>14} {:>10} {:>12}",
        "case", "round trips", "bytes down", "bytes up", "frames (max)", "sync calls", "time (ms)"
    );
    for (case, figures) in rows {
        println!(
            "{:<20} {:>11} {:>12} {:>12} {:>14} {:>10} {:>12.3}",
            case,
            figures.round_trips,
            figures.county_to_township_bytes,
            figures.township_to_county_bytes,
            figures.frames_each_way,
            figures.sync_calls,
            figures.elapsed.as_secs_f64() * 1000.0
        );
    }
}
