//! A running node: configuration, identity, store, API server and peers,
//! started together and stopped together.
//!
//! This is the only place that reads the wall clock for domain purposes
//! (`today`, `now_ms`); everything below it gets time passed in.

use crate::config::NodeConfig;
use crate::context::{load_county_id_keys, NodeContext, STORE_DIR};
use crate::store::Store;
use anyhow::Context;
use civsync_protocol::service::statistics::{publishes_statistics, STATISTICS_REWRITE_INTERVAL_MS};
use std::path::Path;
use std::sync::Arc;

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
    crate::access::token::ApiToken::load_or_create(data_dir)?;
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
    // Before anything that takes time: a SIGTERM while the store opens
    // (systemd stopping a node that is still starting, an office PC shut
    // down at boot) is then kept until the start is done and stops the node
    // cleanly, instead of killing it mid-open by the default action.
    let stop_signals = StopSignals::install().context("cannot listen for stop signals")?;
    let config = NodeConfig::load(data_dir)?;
    let pki_dir = config.pki_path(data_dir);
    let (id_sealer, county_id_key) = load_county_id_keys(&pki_dir, config.tier)?;
    let phone_key = crate::context::load_phone_key(&pki_dir)?;
    let id_sealer = id_sealer.with_home_phone_key(config.station.clone(), phone_key.seal_key());
    let phone_reader = civsync_protocol::domain::phone_reader::PhoneReader {
        station: config.station.clone(),
        home_key: Some(phone_key),
        county_key: county_id_key.clone(),
    };
    // Listen before anything else: a node that cannot have its API (the
    // port is taken, often by another node) must stop before it opens the
    // store or syncs a byte, not after.
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", config.api_listen))?;
    let revocations = crate::net::revocation::RevocationSet::default();
    // The links to the parent and siblings are dialled before the store
    // opens: their handshakes overlap sled's open (a reconnect's first
    // milliseconds). No session starts before the store is open.
    let bound = bind_peers(&config, &pki_dir, &revocations)?;
    let store = Store::open(
        &data_dir.join(STORE_DIR),
        config.station.clone(),
        config.replica_config(),
    )
    .with_context(|| {
        format!(
            "cannot open the store in {}",
            data_dir.join(STORE_DIR).display()
        )
    })?;
    // Sign from the first write on, before any peer or clerk can reach the
    // store; without a certificate the node syncs nothing and signs nothing.
    match crate::net::change_signing::node_signing(&pki_dir, &revocations) {
        Ok(Some(signing)) => store.set_signing(signing).await?,
        Ok(None) => {}
        Err(reason) => anyhow::bail!("cannot sign changes with the node key: {reason}"),
    }
    let progress = crate::progress::Progress::default();
    let (manager, certificate) = match bound {
        Some(bound) => (
            Some(crate::net::peers::PeerManager::start_reporting(
                bound.endpoint,
                store.clone(),
                config.tier,
                bound.dialled,
                Default::default(),
                progress.clone(),
                bound.early,
            )),
            Some(bound.certificate),
        ),
        None => (None, None),
    };
    let peers = manager.as_ref().map(|m| m.board()).unwrap_or_default();
    let access = crate::access::Access::open(
        &store,
        data_dir,
        config.api_listen.port(),
        config.api_host_names.clone(),
    )
    .context("cannot open the accounts and the audit log")?;
    match access.audit.prune(crate::clock::now_ms()) {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "audit entries past their retention removed"),
        Err(reason) => tracing::warn!(%reason, "could not prune the audit log"),
    }
    if access.accounts.is_empty() {
        tracing::info!("no accounts yet: add one with `civsync user add NAME --role admin` to use the web pages");
    }
    let ctx = Arc::new(NodeContext {
        config: config.clone(),
        data_dir: data_dir.to_path_buf(),
        id_sealer,
        county_id_key,
        phone_reader,
        store,
        peers,
        stats: Default::default(),
        registry: Default::default(),
        revocations,
        certificate,
        access: Arc::new(access),
        progress,
    });

    // The persisted statistics index is opened beside the start, off the
    // store's thread, once the links have had their first exchange: on two
    // cores its fold would take the CPU a reconnect needs. Documents that
    // moved since it was saved are read by the periodic refresh, not here:
    // a county refilled by its townships would read them one job after
    // another while they arrive. A statistics query that comes first opens
    // and refreshes it itself (its refresh does) and answers after it.
    let index_built = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(INDEX_BUILD_AFTER_MS)).await;
            match ctx.open_stats().await {
                Ok(reread) => tracing::info!(documents = reread, "statistics index opened"),
                Err(error) => tracing::warn!(%error, "statistics index not opened"),
            }
        })
    };
    points_rate_at_start(&ctx).await?;
    tracing::info!(node = %describe(&config), api = %config.api_listen, quic = %config.quic_listen_address(), "node started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api = axum::serve(
        listener,
        crate::web::app(ctx.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let api_task = tokio::spawn(async move { api.await });
    let statistics_task = publishes_statistics(config.tier).then(|| {
        let ctx = ctx.clone();
        tokio::spawn(async move { keep_statistics_current(&ctx).await })
    });
    let index_task = {
        let ctx = ctx.clone();
        tokio::spawn(async move { keep_index_persisted(&ctx).await })
    };

    stop_signals.received().await;
    tracing::info!("stopping: finishing requests and flushing the store");
    let _ = stop_tx.send(true);
    let _ = api_task.await;
    if let Some(task) = statistics_task {
        task.abort();
        let _ = task.await;
    }
    index_task.abort();
    let _ = index_task.await;
    // A stop right after the start: the save below builds it if need be.
    index_built.abort();
    let _ = index_built.await;
    // What this run wrote or received, counted once more and persisted, so
    // the next start reuses every entry instead of reading documents again.
    match ctx.refresh_stats().await {
        Ok(reread) => tracing::info!(documents = reread, "statistics index saved"),
        Err(error) => {
            tracing::warn!(%error, "statistics index not saved; the next start reads the changed documents again")
        }
    }
    if let Some(manager) = manager {
        manager.shutdown().await;
    }
    ctx.store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A county publishes its points rate at its first start — the
/// `points_per_hour` of an older civsync.toml, else the default — and later
/// only by `civsync points rate --set`. Anywhere else a configured rate is
/// ignored, and the log says so: every station uses its county's rate.
async fn points_rate_at_start(ctx: &NodeContext) -> anyhow::Result<()> {
    use civsync_protocol::service::points;
    let config = &ctx.config;
    if config.tier != civsync_protocol::Tier::County {
        if let Some(points_per_hour) = config.points_per_hour {
            tracing::warn!(
                points_per_hour,
                "points_per_hour in civsync.toml is ignored: every station uses the rate its county publishes"
            );
        }
        return Ok(());
    }
    let initial = config
        .points_per_hour
        .unwrap_or(crate::config::POINTS_PER_HOUR_DEFAULT);
    let (tier, station) = (config.tier, config.station.clone());
    let published = ctx
        .store
        .call_durable(move |replica| {
            if points::rate_at(replica, &station).is_some_and(|rate| rate.set_by == station) {
                return Ok(None);
            }
            points::publish_rate(replica, tier, initial).map(|_| Some(initial))
        })
        .await
        .context("the store closed while publishing the points rate")?
        .map_err(|error| anyhow::anyhow!("cannot publish the points rate: {error}"))?;
    if let Some(points_per_hour) = published {
        tracing::info!(points_per_hour, "the county's points rate published");
    }
    Ok(())
}

/// How often the statistics index takes in what changed and persists its
/// entries, whatever the tier: a bulk import or a cold sync is then counted
/// within seconds, not by the first query after a restart.
const INDEX_PERSIST_INTERVAL_MS: u64 = 10_000;
/// The statistics index is opened this long after the start (see `run`).
const INDEX_BUILD_AFTER_MS: u64 = 500;

/// Keep the statistics index current and persisted in the background (a
/// refresh with nothing changed reads nothing).
async fn keep_index_persisted(ctx: &NodeContext) {
    let every = std::time::Duration::from_millis(INDEX_PERSIST_INTERVAL_MS);
    loop {
        tokio::time::sleep(every).await;
        match ctx.refresh_stats().await {
            Ok(0) => {}
            Ok(reread) => {
                tracing::debug!(documents = reread, "statistics index brought up to date")
            }
            Err(_) => return, // the store closed: the node is stopping
        }
    }
}

/// A county's statistics documents follow its figures: at start (every
/// month compared with its document once) and then every
/// `STATISTICS_REWRITE_INTERVAL_MS`, so the offices above receive at most
/// one rewrite per interval however many writes and syncs came in between.
async fn keep_statistics_current(ctx: &NodeContext) {
    let every = std::time::Duration::from_millis(STATISTICS_REWRITE_INTERVAL_MS as u64);
    loop {
        match ctx.publish_statistics().await {
            Ok(Ok(report)) if !report.months_written.is_empty() => {
                let months: Vec<String> = report
                    .months_written
                    .iter()
                    .map(|m| m.to_string())
                    .collect();
                tracing::info!(months = %months.join(","), "statistics documents rewritten");
            }
            Ok(Ok(_)) => {}
            Ok(Err(reason)) => tracing::warn!(%reason, "statistics documents not rewritten"),
            Err(error) => {
                tracing::warn!(%error, "statistics documents not rewritten: the store is unavailable");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// The QUIC endpoint, bound, and the dials to the parent and siblings,
/// started: what the peer manager takes once the store is open.
struct BoundPeers {
    endpoint: Arc<crate::net::transport::NodeEndpoint>,
    dialled: Vec<crate::net::peers::DialledPeer>,
    early: crate::net::peers::EarlyLinks,
    certificate: crate::context::OwnCertificate,
}

/// Load the node certificate, bind the QUIC endpoint and start dialling;
/// `None` without a certificate (the node then syncs nothing).
fn bind_peers(
    config: &NodeConfig,
    pki_dir: &Path,
    revocations: &crate::net::revocation::RevocationSet,
) -> anyhow::Result<Option<BoundPeers>> {
    use crate::net::peers::{DialledPeer, EarlyLinks, PeerRole};
    if !pki_dir.join("node.crt").exists() {
        tracing::warn!(pki = %pki_dir.display(), "no node certificate: running without sync. Issue one with `civsync pki issue`");
        return Ok(None);
    }
    let identity = crate::net::pki::NodeIdentity::load(pki_dir).with_context(|| {
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
    let certificate = crate::context::OwnCertificate {
        county: identity.county.clone(),
        ca_cert: identity.ca_cert.clone(),
        not_after_unix_s: identity.not_after_unix_s,
    };
    let (_, warning) = crate::net::pki::certificate_expiry(
        crate::net::pki::now_unix_s(),
        identity.not_after_unix_s,
    );
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    let quic_listen = config.quic_listen_address();
    let endpoint = crate::net::transport::NodeEndpoint::bind_with(
        quic_listen,
        &identity,
        Default::default(),
        revocations.clone(),
    )
    .with_context(|| format!("cannot listen for QUIC on {quic_listen}"))?;
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
    let endpoint = Arc::new(endpoint);
    let early = EarlyLinks::dial(&endpoint, &dialled);
    Ok(Some(BoundPeers {
        endpoint,
        dialled,
        early,
        certificate,
    }))
}

/// Ctrl-C and SIGTERM, listened for from the moment they are installed:
/// a signal that arrives before [`StopSignals::received`] is awaited is
/// kept, not lost and not fatal.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    async fn received(self) {
        #[cfg(unix)]
        {
            let StopSignals {
                mut interrupt,
                mut terminate,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
