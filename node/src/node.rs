//! A running node: configuration, identity, store, API server and peers,
//! started together and stopped together.
//!
//! This is the only place that reads the wall clock for domain purposes
//! (`today`, `now_ms`); everything below it gets time passed in.

use crate::config::NodeConfig;
use crate::store::{Store, StoreClosed};
use anyhow::Context;
use civsync_protocol::domain::pii::IdentityKey;
use civsync_protocol::replica::ReplicaConfig;
use civsync_protocol::{Month, StationId, Tier};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Date, OffsetDateTime, UtcOffset};

/// The file (in the PKI folder) holding the county's ID-digest key, hex.
pub const IDENTITY_KEY_FILE: &str = "identity.key";
/// The store folder inside the data directory.
pub const STORE_DIR: &str = "store";

/// Everything a request handler or a peer task needs.
pub struct NodeContext {
    pub config: NodeConfig,
    pub data_dir: PathBuf,
    pub identity_key: IdentityKey,
    pub store: Store,
    /// Per-peer sync status; empty when the node runs without certificates.
    pub peers: crate::peers::PeerStatusBoard,
    /// Statistics index, refreshed incrementally before each query.
    pub stats: crate::api_stats::SharedStats,
    /// The merged station registry, read again only when a registry changed.
    pub registry: crate::api_stations::SharedRegistry,
}

/// China Standard Time: the whole network runs on Beijing time.
fn beijing_now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .to_offset(UtcOffset::from_hms(8, 0, 0).expect("UTC+8 is a valid offset"))
}

/// Today's date in Beijing.
pub fn today() -> Date {
    beijing_now().date()
}

pub fn this_month() -> Month {
    let today = today();
    Month {
        year: today.year() as u16,
        month: u8::from(today.month()),
    }
}

/// Milliseconds since the Unix epoch (for sync sessions and change times).
pub fn now_ms() -> u64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).unwrap_or(0)
}

/// Read the county's ID-digest key; a node initialised without a county PKI
/// makes its own (de-duplication then works within this node only).
pub fn load_identity_key(pki_dir: &Path) -> anyhow::Result<IdentityKey> {
    let path = pki_dir.join(IDENTITY_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => IdentityKey::from_hex(&text)
            .with_context(|| format!("{} does not hold a 64-digit hex key", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "no county identity key; creating one for this node only");
            let key = IdentityKey::from_bytes(rand::random());
            write_secret(&path, key.to_hex().as_bytes())?;
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Write a secret file readable by its owner only (mode 0600 from creation).
pub fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    Ok(())
}

/// `civsync init`: write the configuration and create an empty store.
pub fn init(data_dir: &Path, config: &NodeConfig) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    if data_dir.join(crate::config::CONFIG_FILE).exists() {
        anyhow::bail!(
            "{} already holds a node; use another --data-dir or remove it first",
            data_dir.display()
        );
    }
    config.save(data_dir)?;
    Ok(())
}

/// Station, tier and the clock, for the log line at start.
fn describe(config: &NodeConfig) -> String {
    format!(
        "{} ({}{})",
        config.station,
        config.tier,
        if config.name.is_empty() {
            String::new()
        } else {
            format!(", {}", config.name)
        }
    )
}

/// Open everything and serve until Ctrl-C or SIGTERM.
pub async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let config = NodeConfig::load(data_dir)?;
    let pki_dir = config.pki_path(data_dir);
    let identity_key = load_identity_key(&pki_dir)?;
    // Listen before anything else: a node that cannot have its API (the
    // port is taken, often by another node) must stop before it opens the
    // store or syncs a byte, not after.
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", config.api_listen))?;
    let store = Store::open(
        &data_dir.join(STORE_DIR),
        config.station.clone(),
        ReplicaConfig::default(),
    )
    .with_context(|| {
        format!(
            "cannot open the store in {}",
            data_dir.join(STORE_DIR).display()
        )
    })?;
    let manager = start_peers(&config, &pki_dir, store.clone())?;
    let peers = manager.as_ref().map(|m| m.board()).unwrap_or_default();
    let ctx = Arc::new(NodeContext {
        config: config.clone(),
        data_dir: data_dir.to_path_buf(),
        identity_key,
        store,
        peers,
        stats: Default::default(),
        registry: Default::default(),
    });

    // Build the statistics index now, so the first query answers quickly.
    let reread = crate::api_stats::refresh(&ctx)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.reason))?;
    tracing::info!(documents = reread, "statistics index built");
    tracing::info!(node = %describe(&config), api = %config.api_listen, quic = %config.quic_listen, "node started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api =
        axum::serve(listener, crate::api::router(ctx.clone())).with_graceful_shutdown(async move {
            let mut stop_rx = stop_rx;
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
    let api_task = tokio::spawn(async move { api.await });

    shutdown_signal().await;
    tracing::info!("stopping: finishing requests and flushing the store");
    let _ = stop_tx.send(true);
    let _ = api_task.await;
    if let Some(manager) = manager {
        manager.shutdown().await;
    }
    ctx.store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Bind QUIC and start the connection manager, or run without sync (with a
/// warning) when the node has no certificate yet.
fn start_peers(
    config: &NodeConfig,
    pki_dir: &Path,
    store: Store,
) -> anyhow::Result<Option<crate::peers::PeerManager>> {
    use crate::peers::{DialledPeer, PeerManager, PeerRole};
    if !pki_dir.join("node.crt").exists() {
        tracing::warn!(pki = %pki_dir.display(), "no node certificate: running without sync. Issue one with `civsync pki issue`");
        return Ok(None);
    }
    let identity = crate::pki::NodeIdentity::load(pki_dir).with_context(|| {
        format!(
            "cannot load the node certificate from {}",
            pki_dir.display()
        )
    })?;
    if identity.station() != &config.station {
        anyhow::bail!(
            "the certificate in {} is for station {}, but this node is {}",
            pki_dir.display(),
            identity.station(),
            config.station
        );
    }
    let endpoint = crate::transport::NodeEndpoint::bind(config.quic_listen, &identity)
        .with_context(|| format!("cannot listen for QUIC on {}", config.quic_listen))?;
    let mut dialled = Vec::new();
    if let Some(parent) = &config.parent {
        dialled.push(DialledPeer {
            role: PeerRole::Parent,
            station: parent.station.clone(),
            address: parent.address,
        });
    }
    if let Some(fallback) = &config.fallback {
        dialled.push(DialledPeer {
            role: PeerRole::Fallback,
            station: fallback.station.clone(),
            address: fallback.address,
        });
    }
    for sibling in &config.siblings {
        dialled.push(DialledPeer {
            role: PeerRole::Sibling,
            station: sibling.station.clone(),
            address: sibling.address,
        });
    }
    Ok(Some(PeerManager::start(
        Arc::new(endpoint),
        store,
        config.tier,
        dialled,
        Default::default(),
    )))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// What `civsync status` and `GET /api/v1/status` show.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub station: StationId,
    pub tier: Tier,
    pub documents: usize,
    pub documents_loaded: usize,
    pub peers: Vec<crate::peers::PeerStatus>,
}

pub async fn status_report(ctx: &NodeContext) -> Result<StatusReport, StoreClosed> {
    let (documents, documents_loaded) = ctx
        .store
        .call(|replica| (replica.documents().len(), replica.cached_documents()))
        .await?;
    Ok(StatusReport {
        station: ctx.config.station.clone(),
        tier: ctx.config.tier,
        documents,
        documents_loaded,
        peers: ctx.peers.snapshot(),
    })
}
