//! Durable activity writes per second through the HTTP API, with 1 and with
//! 16 concurrent writers. The real router and store (sled in a temporary
//! folder, group commit) serve on 127.0.0.1; writers are HTTP clients in the
//! same process. Each write is acknowledged (201) only after its flush.
//! Activities carry no service records (records are usually entered later).
//! Two cases, each on a fresh node: every write into one month's document
//! (the stress case), and dates spread over two years (see [`Spread`]).
//!
//! cargo bench -p civsync-node --bench api_writes

use civsync_node::config::NodeConfig;
use civsync_node::context::NodeContext;
use civsync_node::store::Store;
use civsync_protocol::domain::pii::{CountyOpenKey, IdSealer};
use civsync_protocol::replica::ReplicaConfig;
use civsync_protocol::{StationId, Tier};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes per writer per run (bounded load).
const WRITES_PER_RUN: usize = 3_200;
const RUNS: usize = 3;

async fn serve(dir: &std::path::Path) -> (std::net::SocketAddr, Arc<NodeContext>) {
    let station = StationId::parse("xh/t1/v1").unwrap();
    let config = NodeConfig::new(station.clone(), Tier::Village);
    let store = Store::open(&dir.join("store"), station, ReplicaConfig::default()).unwrap();
    let access = Arc::new(civsync_node::access::Access::open(&store, dir, 0, vec![]).unwrap());
    let ctx = Arc::new(NodeContext {
        config,
        data_dir: dir.to_path_buf(),
        id_sealer: IdSealer::new(CountyOpenKey::generate([9; 32]).seal_key(), [8; 32]),
        county_id_key: Some(CountyOpenKey::generate([9; 32])),
        phone_reader: civsync_protocol::domain::phone_reader::PhoneReader {
            station: civsync_protocol::StationId::parse("xh").unwrap(),
            home_key: None,
            county_key: Some(CountyOpenKey::generate([9; 32])),
        },
        store,
        peers: Default::default(),
        stats: Default::default(),
        registry: Default::default(),
        revocations: Default::default(),
        certificate: None,
        access,
        progress: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = civsync_node::api::router(ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, ctx)
}

/// Where the activities of a run fall.
#[derive(Clone, Copy, Debug)]
enum Spread {
    /// Every write into one month's document, which grows to 19,200
    /// activities over the runs (hundreds of times a real station's month):
    /// the stress case, where Automerge's cost grows with the document.
    OneMonth,
    /// Dates over two years, 24 monthly documents of up to 800 activities
    /// each: still more than a busy station records in a month.
    TwoYears,
}

impl Spread {
    fn date(self, n: usize) -> String {
        match self {
            Spread::OneMonth => format!("2025-06-{:02}", 1 + n % 28),
            Spread::TwoYears => {
                let month = n % 24;
                format!(
                    "{}-{:02}-{:02}",
                    2024 + month / 12,
                    1 + month % 12,
                    1 + (n / 24) % 28
                )
            }
        }
    }
}

async fn run(addr: std::net::SocketAddr, writers: usize, run: usize, spread: Spread) -> f64 {
    let per_writer = WRITES_PER_RUN / writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                for n in 0..per_writer {
                    let body = serde_json::json!({
                        "id": format!("r{run}w{w}n{n}"), "name": "理论宣讲", "date": spread.date(n),
                        "place": "村文化广场", "content": "学习宣讲", "form": "lecture", "category": "theory",
                        "person_in_charge": "李明", "beneficiaries": 40, "records": []
                    });
                    let response = http.post(format!("http://{addr}/api/v1/activities")).json(&body).send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 201);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (per_writer * writers) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for spread in [Spread::OneMonth, Spread::TwoYears] {
            // A fresh node per case, so neither inherits the other's documents.
            let dir = tempfile::tempdir().unwrap();
            let (addr, ctx) = serve(dir.path()).await;
            println!("durable activity writes through the API, {spread:?} ({WRITES_PER_RUN} writes per run, median of {RUNS} runs)");
            let mut results = Vec::new();
            let mut run_number = 0;
            for writers in [1usize, 16] {
                let mut rates = Vec::new();
                for _ in 0..RUNS {
                    rates.push(run(addr, writers, run_number, spread).await);
                    run_number += 1;
                }
                println!("  writers {writers:>2}: median {:>8.0} writes/s   (runs: {:?})", median(rates.clone()), rates.iter().map(|r| r.round()).collect::<Vec<_>>());
                results.push(median(rates));
            }
            println!("  ratio 16 / 1 writers: {:.1}x", results[1] / results[0]);
            tokio::time::sleep(Duration::from_millis(100)).await;
            ctx.store.close().await;
        }
    });
}
