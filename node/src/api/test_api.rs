//! An in-process node for API tests: the real router over a sled store in a
//! temporary folder, on 127.0.0.1, and an HTTP client that answers
//! `(status, JSON body)`. Test files add the calls they need in their own
//! `impl TestApi` blocks.

use crate::config::NodeConfig;
use crate::context::NodeContext;
use crate::store::Store;
use civsync_protocol::domain::pii::{CountyOpenKey, IdSealer};
use civsync_protocol::replica::ReplicaConfig;
use civsync_protocol::{DocumentId, StationId, Tier};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// A valid resident ID number born in `1980 + serial / 1000`.
pub(crate) fn id_number(serial: u32) -> String {
    civsync_protocol::domain::pii::with_check_digit(&format!(
        "110105{}0101{:03}",
        1980 + serial / 1000,
        serial % 1000
    ))
}

pub(crate) fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

pub(crate) struct TestApi {
    pub(crate) addr: SocketAddr,
    pub(crate) ctx: Arc<NodeContext>,
    pub(crate) http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestApi {
    /// A node of station `at` at `tier`, serving until the test ends. When
    /// `tier` is the one `at`'s depth gives below its first segment (the
    /// county), the node holds a certificate from that county's CA (made
    /// in the test's folder, `county-ca/`), so it can sign certificates.
    pub(crate) async fn start(at: &str, tier: Tier) -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(station(at), tier);
        let county = station(at.split('/').next().unwrap());
        if crate::net::pki::tier_below_county(&county, &station(at)).ok() == Some(tier) {
            let ca_dir = dir.path().join("county-ca");
            crate::net::pki::init_county_ca(&ca_dir, &county, 3650).unwrap();
            let pki = config.pki_path(dir.path());
            crate::net::pki::issue_node_certificate(&ca_dir, &station(at), tier, &pki, 365)
                .unwrap();
        }
        let store = Store::open(
            &dir.path().join("store"),
            station(at),
            ReplicaConfig {
                tier: Some(tier),
                ..ReplicaConfig::default()
            },
        )
        .unwrap();
        let access = Arc::new(crate::access::Access::open(&store, dir.path(), 0, vec![]).unwrap());
        let ctx = Arc::new(NodeContext {
            config,
            data_dir: dir.path().to_path_buf(),
            id_sealer: IdSealer::new(CountyOpenKey::generate([9; 32]).seal_key(), [8; 32])
                .with_home_phone_key(station(at), CountyOpenKey::generate([7; 32]).seal_key()),
            county_id_key: Some(CountyOpenKey::generate([9; 32])),
            phone_reader: civsync_protocol::domain::phone_reader::PhoneReader {
                station: station(at),
                home_key: Some(CountyOpenKey::generate([7; 32])),
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
        let router = crate::api::router(ctx.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        TestApi {
            addr,
            ctx,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _dir: dir,
        }
    }

    /// `path` is after `/api/v1/`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1/{path}", self.addr)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        answer(self.http.post(self.url(path)).json(&body)).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.http.get(self.url(path))).await
    }

    /// Every document's heads at this node.
    pub(crate) async fn heads(&self) -> Vec<(DocumentId, Vec<automerge::ChangeHash>)> {
        self.ctx
            .store
            .call(|replica| {
                replica
                    .documents()
                    .into_iter()
                    .map(|d| {
                        let heads = replica.heads(&d).unwrap().to_vec();
                        (d, heads)
                    })
                    .collect()
            })
            .await
            .unwrap()
    }

    pub(crate) async fn stop(self) {
        self.ctx.store.close().await;
    }
}

/// Send `request`; its status and JSON body (`Null` when not JSON).
pub(crate) async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
