//! `NodeContext`: what every request handler and peer task of a running
//! node shares — configuration, the county's ID keys, the store, the
//! peer board, the progress of long work, and the caches queries refresh (statistics, registry).
//!
//! Layer: above `access`, `store`, `net`, `files`, `config`, `clock`, `progress`; below `api`,
//! `node`, `cli`, `demo`, which all use it and which it never uses.

pub mod certificates;
pub mod registry;
pub mod stats;

use crate::access::Access;
use crate::config::NodeConfig;
use crate::secrets::write_secret;
use crate::store::{Store, StoreClosed};
use anyhow::Context;
use civsync_protocol::domain::phone_reader::PhoneReader;
use civsync_protocol::domain::pii::{CountyOpenKey, CountySealKey, IdSealer};
use civsync_protocol::service::registry::RegistryRead;
use civsync_protocol::stats::RetiredStations;
use civsync_protocol::Station;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file (in the PKI folder) holding the county's public ID key, hex:
/// every office has it, to seal ID numbers to the county.
pub const COUNTY_ID_PUBLIC_FILE: &str = "county-id.pub";
/// The county's private ID key, hex: only the county's own office has it
/// (it opens seals to find duplicates).
pub const COUNTY_ID_PRIVATE_FILE: &str = "county-id.key";
/// This office's own phone key (X25519 private key, hex, mode 0600): it
/// opens the phones of the volunteers this office registered for its own
/// station. Made at the first start; never leaves the PC but in a backup
/// with keys.
pub const PHONE_KEY_FILE: &str = "phone.key";
/// The county-wide digest key of earlier releases. No node reads it; an
/// office below the county should delete it (it confirms old digests).
pub const OLD_IDENTITY_KEY_FILE: &str = "identity.key";
pub use crate::store::STORE_DIR;

/// Everything a request handler or a peer task needs.
pub struct NodeContext {
    pub config: NodeConfig,
    pub data_dir: PathBuf,
    /// Seals ID numbers to the county's public key.
    pub id_sealer: IdSealer,
    /// The county's private ID key: only at the county's office.
    pub county_id_key: Option<CountyOpenKey>,
    /// Opens the phones this office may read (its own station's, and at
    /// the county every one); everything else is shown masked.
    pub phone_reader: PhoneReader,
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
    /// Accounts, sessions, the API token and the audit log.
    pub access: Arc<Access>,
    /// Long work running or just finished (imports, cold syncs), with counts.
    pub progress: crate::progress::Progress,
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

    /// Open the persisted statistics index unless it is open, off the
    /// store's thread; moved documents beyond the first few are left to the
    /// next refresh (see `stats::open_beside_the_store`).
    pub async fn open_stats(&self) -> Result<usize, StoreClosed> {
        stats::open_beside_the_store(&self.stats, &self.store).await
    }

    /// Rewrite this county's statistics documents whose figures changed
    /// (see `stats::publish`); a node of another tier writes nothing.
    pub async fn publish_statistics(
        &self,
    ) -> Result<
        Result<civsync_protocol::service::statistics::PublishReport, String>,
        crate::store::StoreUnavailable,
    > {
        if !civsync_protocol::service::statistics::publishes_statistics(self.config.tier) {
            return Ok(Ok(Default::default()));
        }
        let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
        stats::publish(&self.stats, &self.store, now_ms).await
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

/// This office's phone key, made (mode 0600) when it has none yet.
pub fn load_phone_key(pki_dir: &Path) -> anyhow::Result<CountyOpenKey> {
    let path = pki_dir.join(PHONE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => CountyOpenKey::from_hex(&text)
            .with_context(|| format!("{} does not hold a 64-digit hex key", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = CountyOpenKey::generate(rand::random());
            std::fs::create_dir_all(pki_dir)
                .with_context(|| format!("cannot create {}", pki_dir.display()))?;
            write_secret(&path, key.to_hex().as_bytes())?;
            tracing::info!(path = %path.display(), "made this office's phone key");
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The county's ID keys as this office holds them: the public key (always)
/// and the private key (the county's office only). A node initialised
/// without a county PKI makes a pair of its own (it is then its own county).
pub fn load_county_id_keys(
    pki_dir: &Path,
    tier: civsync_protocol::Tier,
) -> anyhow::Result<(IdSealer, Option<CountyOpenKey>)> {
    let public_path = pki_dir.join(COUNTY_ID_PUBLIC_FILE);
    let private_path = pki_dir.join(COUNTY_ID_PRIVATE_FILE);
    let old = pki_dir.join(OLD_IDENTITY_KEY_FILE);
    if old.exists() && tier != civsync_protocol::Tier::County {
        tracing::warn!(path = %old.display(), "the old county-wide ID digest key is still on this office's disk: delete it (it confirms guessed ID numbers against old rosters)");
    }
    let private = match std::fs::read_to_string(&private_path) {
        Ok(text) => Some(CountyOpenKey::from_hex(&text).with_context(|| {
            format!(
                "{} does not hold a 64-digit hex key",
                private_path.display()
            )
        })?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", private_path.display()))
        }
    };
    let public = match std::fs::read_to_string(&public_path) {
        Ok(text) => CountySealKey::from_hex(&text).with_context(|| {
            format!(
                "{} does not hold a 64-digit hex X25519 public key",
                public_path.display()
            )
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => match &private {
            Some(private) => private.seal_key(),
            None => {
                tracing::warn!(path = %public_path.display(), "no county ID key; creating a pair for this node only");
                let private = CountyOpenKey::generate(rand::random());
                write_secret(&private_path, private.to_hex().as_bytes())?;
                std::fs::write(&public_path, private.seal_key().to_hex())
                    .with_context(|| format!("cannot write {}", public_path.display()))?;
                return Ok((
                    IdSealer::new(private.seal_key(), rand::random()),
                    Some(private),
                ));
            }
        },
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", public_path.display()))
        }
    };
    if let Some(private) = &private {
        anyhow::ensure!(
            private.seal_key() == public,
            "{} and {} are not one key pair",
            private_path.display(),
            public_path.display()
        );
    }
    Ok((IdSealer::new(public, rand::random()), private))
}
