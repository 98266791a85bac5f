//! `NodeContext`: what every request handler and peer task of a running
//! node shares — configuration, the county's ID-digest key, the store, the
//! peer board, and the caches queries refresh (statistics, registry).
//!
//! Layer: above `store`, `net`, `files`, `config`, `clock`; below `api`,
//! `node`, `cli`, `demo`, which all use it and which it never uses.

pub mod certificates;
pub mod registry;
pub mod stats;

use crate::config::NodeConfig;
use crate::secrets::write_secret;
use crate::store::{Store, StoreClosed};
use anyhow::Context;
use civsync_protocol::domain::pii::IdentityKey;
use civsync_protocol::service::registry::RegistryRead;
use civsync_protocol::stats::RetiredStations;
use civsync_protocol::Station;
use std::path::{Path, PathBuf};

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
    pub peers: crate::net::peers::PeerStatusBoard,
    /// Statistics index, refreshed incrementally before each query.
    pub stats: crate::context::stats::SharedStats,
    /// The merged station registry, read again only when a registry changed.
    pub registry: crate::context::registry::SharedRegistry,
    /// The county's revocation list in force here (empty without one).
    pub revocations: crate::net::revocation::RevocationSet,
    /// This node's certificate; `None` when it runs without one.
    pub certificate: Option<OwnCertificate>,
}

/// What queries need of this node's certificate: the county CA that
/// verifies revocation lists, and when the certificate ends.
#[derive(Debug, Clone)]
pub struct OwnCertificate {
    pub county: civsync_protocol::StationId,
    pub ca_cert: rustls::pki_types::CertificateDer<'static>,
    pub not_after_unix_s: i64,
}

impl NodeContext {
    /// Bring the statistics index up to date with the store; returns the
    /// documents read again (see `stats::refresh`).
    pub async fn refresh_stats(&self) -> Result<usize, StoreClosed> {
        stats::refresh(&self.stats, &self.store).await
    }

    /// Every registry held, merged (see `registry::read`).
    pub async fn read_registry(&self) -> Result<RegistryRead, StoreClosed> {
        registry::read(&self.registry, &self.store).await
    }

    /// The stations this node knows by registry, and itself: its tier from
    /// its configuration, its name from there unless that is empty.
    pub async fn registry(&self) -> Result<Vec<Station>, StoreClosed> {
        Ok(self.registry_retiring().await?.0)
    }

    /// [`NodeContext::registry`], and which of its stations are retired.
    pub async fn registry_retiring(&self) -> Result<(Vec<Station>, RetiredStations), StoreClosed> {
        registry::registry_retiring(&self.registry, &self.store, &self.config).await
    }
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
