//! The merged station registry a node's queries share: every registry
//! document held, read again only when one of them changed, completed with
//! this node's own station.

use crate::config::NodeConfig;
use crate::store::{Store, StoreClosed};
use civsync_protocol::service::registry::{self, RegistryCache, RegistryRead};
use civsync_protocol::stats::RetiredStations;
use civsync_protocol::Station;
use std::sync::{Arc, Mutex};

/// The registry cache a node's queries share (see
/// `registry::RegistryCache`).
pub type SharedRegistry = Arc<Mutex<RegistryCache>>;

/// Merge every registry held, on the store's owner thread; log what could
/// not be read (it is left out, never guessed).
pub async fn read(cache: &SharedRegistry, store: &Store) -> Result<RegistryRead, StoreClosed> {
    let cache = cache.clone();
    let read = store
        .call(move |replica| {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            registry::read_registry_cached(replica, &mut cache)
        })
        .await?;
    for problem in &read.unreadable {
        tracing::warn!(
            document = %problem.document,
            key = problem.key.as_deref().unwrap_or("-"),
            reason = %problem.reason,
            "registry entry not readable; left out"
        );
    }
    Ok(read)
}

/// [`read`], completed with this node's own station, and which stations
/// are retired (from when).
pub async fn registry_retiring(
    cache: &SharedRegistry,
    store: &Store,
    config: &NodeConfig,
) -> Result<(Vec<Station>, RetiredStations), StoreClosed> {
    let read = read(cache, store).await?;
    let retired = read.retired();
    Ok((with_own_station(config, read.stations()), retired))
}

fn with_own_station(config: &NodeConfig, mut stations: Vec<Station>) -> Vec<Station> {
    let own = &config.station;
    match stations.iter_mut().find(|s| &s.id == own) {
        Some(listed) => {
            listed.tier = config.tier;
            if !config.name.is_empty() {
                listed.name = config.name.clone();
            }
        }
        None => {
            let at = stations.partition_point(|s| &s.id < own);
            stations.insert(
                at,
                Station {
                    id: own.clone(),
                    name: config.name.clone(),
                    tier: config.tier,
                },
            );
        }
    }
    debug_assert!(stations.windows(2).all(|w| w[0].id < w[1].id));
    stations
}
