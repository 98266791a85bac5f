//! A node's configuration: who it is, where its data lives, whom it talks to.
//!
//! Written once by `civsync init` as `civsync.toml` in the data directory and
//! read at every start. Everything has a default a village office can live
//! with; only the station, its tier and its parent's address are needed.

use civsync_protocol::replica::{PeerQuotas, ReplicaConfig};
use civsync_protocol::sync::authority::UnsignedChanges;
use civsync_protocol::{StationId, Tier};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "civsync.toml";
pub const API_PORT_DEFAULT: u16 = 7400;
pub const QUIC_PORT_DEFAULT: u16 = 7401;
/// Stations silent longer than this are flagged quiet (`quiet_days_max`).
pub const QUIET_DAYS_DEFAULT: u32 = 7;
/// Bounds of `quiet_days_max`: under a day flags every station between two
/// syncs; over a year flags none that matters.
pub const QUIET_DAYS_MIN: u32 = 1;
pub const QUIET_DAYS_MAX: u32 = 366;
/// Points (积分) per service hour a county publishes at its first start
/// when `points_per_hour` is not set: the scheme most counties publish.
pub const POINTS_PER_HOUR_DEFAULT: u32 = 10;
/// Highest `points_per_hour` accepted: beyond it, a typing error.
pub const POINTS_PER_HOUR_MAX: u32 = civsync_protocol::service::points::POINTS_PER_HOUR_MAX;
/// Documents a node keeps in memory, by default, by tier. A county
/// receiving from its 25 townships at once has up to 25 × 2 × 64
/// exchanges open (`DOCUMENTS_IN_FLIGHT_MAX` each way per peer): with the
/// replica's 256 a cold refill read every document back from disk about
/// three times (7,603 reads for 2,600 documents). A township holds ~110
/// documents and its villages' exchanges; a village a handful.
pub const DOCUMENTS_CACHED_COUNTY: usize = 4_096;
pub const DOCUMENTS_CACHED_TOWNSHIP: usize = 1_024;
pub const DOCUMENTS_CACHED_VILLAGE: usize = 256;
/// Bounds of `documents_cached_max`: below, a township's own exchanges
/// thrash; above, a county's every document fits many times over.
pub const DOCUMENTS_CACHED_RANGE: std::ops::RangeInclusive<usize> = 64..=65_536;
/// Most configured peers (parent, fallback, siblings).
pub const PEERS_MAX: usize = 16;
/// Bounds of `[peer_quotas]`: below them an honest township's cold refill
/// (~105 documents, ~1 MB) would not fit in a day; above them the quota
/// bounds nothing a PC's disk could hold.
pub const PEER_DOCUMENTS_PER_DAY_RANGE: std::ops::RangeInclusive<u64> = 128..=1_000_000;
pub const PEER_BYTES_PER_DAY_RANGE: std::ops::RangeInclusive<u64> = (4 << 20)..=(64 << 30);

/// What one peer (a child or sibling; never the parent) may bring in a day:
/// `[peer_quotas]` in civsync.toml. A county technician raises them for a
/// township being refilled from a large backlog; the defaults suit a
/// county's normal day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerQuotasConfig {
    #[serde(default = "default_peer_documents_per_day")]
    pub documents_per_day_max: u64,
    #[serde(default = "default_peer_bytes_per_day")]
    pub bytes_per_day_max: u64,
}

impl Default for PeerQuotasConfig {
    fn default() -> Self {
        PeerQuotasConfig {
            documents_per_day_max: default_peer_documents_per_day(),
            bytes_per_day_max: default_peer_bytes_per_day(),
        }
    }
}

impl PeerQuotasConfig {
    fn is_default(&self) -> bool {
        *self == PeerQuotasConfig::default()
    }

    /// The replica's quotas with these limits.
    pub fn peer_quotas(&self) -> PeerQuotas {
        PeerQuotas {
            documents_per_day_max: self.documents_per_day_max,
            bytes_per_day_max: self.bytes_per_day_max,
            ..PeerQuotas::DEFAULT
        }
    }
}

fn default_peer_documents_per_day() -> u64 {
    PeerQuotas::DEFAULT.documents_per_day_max
}

fn default_peer_bytes_per_day() -> u64 {
    PeerQuotas::DEFAULT.bytes_per_day_max
}

/// A peer this node dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// The station the peer's certificate must carry.
    pub station: StationId,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub station: StationId,
    pub tier: Tier,
    /// Human name, e.g. 东村新时代文明实践站.
    #[serde(default)]
    pub name: String,
    /// Local HTTP API; keep it on loopback unless a firewall is in front.
    pub api_listen: SocketAddr,
    /// Names (besides IP addresses and `localhost`) the web pages and API
    /// answer to, e.g. `civsync.xh.local` on an office LAN; any other Host
    /// header is refused (it is how DNS rebinding reaches a local server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_host_names: Vec<String>,
    /// QUIC listener for children and siblings. When absent, see
    /// [`NodeConfig::quic_listen_address`]: offices that have children or
    /// siblings listen on every interface, the rest on loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_listen: Option<SocketAddr>,
    /// The parent office (township for a village, county for a township).
    #[serde(default)]
    pub parent: Option<PeerConfig>,
    /// Used when the parent is unreachable (e.g. a village dialling the county).
    #[serde(default)]
    pub fallback: Option<PeerConfig>,
    #[serde(default)]
    pub siblings: Vec<PeerConfig>,
    /// Folder with `ca.crt`, `node.crt`, `node.key` and `identity.key`.
    /// Relative paths are relative to the data directory.
    #[serde(default = "default_pki_dir")]
    pub pki_dir: PathBuf,
    /// A station with no sign of life (no change, no sync) for longer than
    /// this many days is flagged quiet; from 1 to 366.
    #[serde(default = "default_quiet_days")]
    pub quiet_days_max: u32,
    /// Kept readable for files written before the county published the
    /// rate: at a county, the rate (0–1,000) it publishes at start when it
    /// holds none yet (`civsync points rate --set` changes it later);
    /// anywhere else ignored, with a warning at start — every station uses
    /// its county's published rate, never its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_per_hour: Option<u32>,
    /// What each child or sibling may bring in a day (`[peer_quotas]`).
    #[serde(default, skip_serializing_if = "PeerQuotasConfig::is_default")]
    pub peer_quotas: PeerQuotasConfig,
    /// An unsigned change (written by a release before signing) relayed by
    /// an office that did not write it: `"hop-by-hop"` (the default, while
    /// offices upgrade one at a time: judged by the rule before signing,
    /// unless its station was seen signing) or `"from-writer-only"` (once
    /// every office of the county runs a release that signs).
    #[serde(default, skip_serializing_if = "is_hop_by_hop")]
    pub unsigned_changes: UnsignedChanges,
    /// Documents kept in memory (64 to 65,536); absent: by tier
    /// ([`NodeConfig::documents_cached`]). A document averages tens of KiB
    /// in memory (a village roster of 150 volunteers ~90 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents_cached_max: Option<usize>,
}

fn is_hop_by_hop(policy: &UnsignedChanges) -> bool {
    *policy == UnsignedChanges::HopByHop
}

fn default_pki_dir() -> PathBuf {
    PathBuf::from("pki")
}

fn default_quiet_days() -> u32 {
    QUIET_DAYS_DEFAULT
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The io error is part of the message, not a chained source: the CLI
    // prints the chain, and would say it twice.
    #[error("cannot read {path}: {io}. Run `civsync init` first, or pass --data-dir")]
    Read { path: PathBuf, io: std::io::Error },
    #[error("{path} is not a valid configuration: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {path}: {io}")]
    Write { path: PathBuf, io: std::io::Error },
}

impl NodeConfig {
    pub fn new(station: StationId, tier: Tier) -> NodeConfig {
        NodeConfig {
            station,
            tier,
            name: String::new(),
            api_listen: SocketAddr::from(([127, 0, 0, 1], API_PORT_DEFAULT)),
            api_host_names: Vec::new(),
            quic_listen: None,
            parent: None,
            fallback: None,
            siblings: Vec::new(),
            pki_dir: default_pki_dir(),
            quiet_days_max: QUIET_DAYS_DEFAULT,
            points_per_hour: None,
            peer_quotas: PeerQuotasConfig::default(),
            unsigned_changes: UnsignedChanges::HopByHop,
            documents_cached_max: None,
        }
    }

    /// Documents kept in memory: `documents_cached_max`, else by tier.
    pub fn documents_cached(&self) -> usize {
        self.documents_cached_max.unwrap_or(match self.tier {
            Tier::Village | Tier::Point => DOCUMENTS_CACHED_VILLAGE,
            Tier::Township => DOCUMENTS_CACHED_TOWNSHIP,
            _ => DOCUMENTS_CACHED_COUNTY,
        })
    }

    /// Where QUIC listens: `quic_listen` if given; otherwise every
    /// interface for an office that has children (a township or above) or
    /// siblings, and loopback only for a village or point without siblings —
    /// nobody dials it, so a LAN neighbour gets no handshake to flood. (A
    /// village with points below it names `quic_listen`.)
    pub fn quic_listen_address(&self) -> SocketAddr {
        if let Some(address) = self.quic_listen {
            return address;
        }
        let dialled_by_others =
            !matches!(self.tier, Tier::Village | Tier::Point) || !self.siblings.is_empty();
        let host = if dialled_by_others {
            [0, 0, 0, 0]
        } else {
            [127, 0, 0, 1]
        };
        SocketAddr::from((host, QUIC_PORT_DEFAULT))
    }

    /// How this node's replica is opened: its tier and the peers' quotas.
    pub fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig {
            tier: Some(self.tier),
            peer_quotas: self.peer_quotas.peer_quotas(),
            unsigned_changes: self.unsigned_changes,
            documents_cached_max: self.documents_cached(),
            ..ReplicaConfig::default()
        }
    }

    /// Every peer this node dials, parent first.
    pub fn dialled_peers(&self) -> Vec<PeerConfig> {
        self.parent
            .iter()
            .chain(self.fallback.iter())
            .chain(self.siblings.iter())
            .cloned()
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(parent) = &self.parent {
            if !parent.station.is_strict_ancestor_of(&self.station) {
                return Err(format!(
                    "parent {} is not above station {}",
                    parent.station, self.station
                ));
            }
        }
        if let Some(fallback) = &self.fallback {
            if !fallback.station.is_strict_ancestor_of(&self.station) {
                return Err(format!(
                    "fallback {} is not above station {}",
                    fallback.station, self.station
                ));
            }
        }
        if !(QUIET_DAYS_MIN..=QUIET_DAYS_MAX).contains(&self.quiet_days_max) {
            return Err(format!(
                "quiet_days_max is {}; it must be from {QUIET_DAYS_MIN} to {QUIET_DAYS_MAX} days",
                self.quiet_days_max
            ));
        }
        if let Some(documents) = self
            .documents_cached_max
            .filter(|d| !DOCUMENTS_CACHED_RANGE.contains(d))
        {
            return Err(format!(
                "documents_cached_max is {documents}; it must be from {} to {}",
                DOCUMENTS_CACHED_RANGE.start(),
                DOCUMENTS_CACHED_RANGE.end()
            ));
        }
        if let Some(points) = self.points_per_hour.filter(|p| *p > POINTS_PER_HOUR_MAX) {
            return Err(format!(
                "points_per_hour is {points}; it must be from 0 to {POINTS_PER_HOUR_MAX}"
            ));
        }
        let quotas = &self.peer_quotas;
        if !PEER_DOCUMENTS_PER_DAY_RANGE.contains(&quotas.documents_per_day_max) {
            return Err(format!(
                "peer_quotas.documents_per_day_max is {}; it must be from {} to {}",
                quotas.documents_per_day_max,
                PEER_DOCUMENTS_PER_DAY_RANGE.start(),
                PEER_DOCUMENTS_PER_DAY_RANGE.end()
            ));
        }
        if !PEER_BYTES_PER_DAY_RANGE.contains(&quotas.bytes_per_day_max) {
            return Err(format!(
                "peer_quotas.bytes_per_day_max is {}; it must be from {} to {} bytes",
                quotas.bytes_per_day_max,
                PEER_BYTES_PER_DAY_RANGE.start(),
                PEER_BYTES_PER_DAY_RANGE.end()
            ));
        }
        if self.dialled_peers().len() > PEERS_MAX {
            return Err(format!(
                "{} peers configured; at most {PEERS_MAX}",
                self.dialled_peers().len()
            ));
        }
        Ok(())
    }

    pub fn load(data_dir: &Path) -> Result<NodeConfig, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|io| ConfigError::Read {
            path: path.clone(),
            io,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|reason| ConfigError::Invalid { path, reason })?;
        Ok(config)
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::create_dir_all(data_dir).map_err(|io| ConfigError::Write {
            path: path.clone(),
            io,
        })?;
        std::fs::write(&path, text).map_err(|io| ConfigError::Write { path, io })
    }

    pub fn pki_path(&self, data_dir: &Path) -> PathBuf {
        if self.pki_dir.is_absolute() {
            self.pki_dir.clone()
        } else {
            data_dir.join(&self.pki_dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(s("xh/t1/v1"), Tier::Village);
        config.parent = Some(PeerConfig {
            station: s("xh/t1"),
            address: "127.0.0.1:7501".parse().unwrap(),
        });
        config.save(dir.path()).unwrap();
        assert_eq!(NodeConfig::load(dir.path()).unwrap(), config);
    }

    #[test]
    fn a_parent_must_be_above() {
        let mut config = NodeConfig::new(s("xh/t1/v1"), Tier::Village);
        config.parent = Some(PeerConfig {
            station: s("xh/t2"),
            address: "127.0.0.1:7501".parse().unwrap(),
        });
        assert!(config.validate().unwrap_err().contains("not above"));
    }

    #[test]
    fn the_quiet_threshold_defaults_to_a_week_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(s("xh"), Tier::County);
        config.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        let without: String = text
            .lines()
            .filter(|line| !line.starts_with("quiet_days_max"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(dir.path().join(CONFIG_FILE), &without).unwrap();
        assert_eq!(
            NodeConfig::load(dir.path()).unwrap().quiet_days_max,
            QUIET_DAYS_DEFAULT
        );
        for (days, ok) in [(0, false), (1, true), (30, true), (366, true), (367, false)] {
            let mut config = NodeConfig::new(s("xh"), Tier::County);
            config.quiet_days_max = days;
            let checked = config.validate();
            assert_eq!(checked.is_ok(), ok, "{days}: {checked:?}");
            if let Err(reason) = checked {
                assert!(reason.contains("quiet_days_max"), "{reason}");
            }
        }
    }

    #[test]
    fn the_document_cache_is_sized_by_tier_unless_set_and_is_bounded() {
        let county = NodeConfig::new(s("xh"), Tier::County);
        let township = NodeConfig::new(s("xh/t1"), Tier::Township);
        let village = NodeConfig::new(s("xh/t1/v1"), Tier::Village);
        assert_eq!(
            county.replica_config().documents_cached_max,
            DOCUMENTS_CACHED_COUNTY
        );
        assert_eq!(
            township.replica_config().documents_cached_max,
            DOCUMENTS_CACHED_TOWNSHIP
        );
        assert_eq!(
            village.replica_config().documents_cached_max,
            DOCUMENTS_CACHED_VILLAGE
        );
        let dir = tempfile::tempdir().unwrap();
        let mut set = village.clone();
        set.documents_cached_max = Some(2_000);
        set.save(dir.path()).unwrap();
        let loaded = NodeConfig::load(dir.path()).unwrap();
        assert_eq!(loaded.replica_config().documents_cached_max, 2_000);
        for (documents, ok) in [(63, false), (64, true), (65_536, true), (65_537, false)] {
            let mut config = village.clone();
            config.documents_cached_max = Some(documents);
            let checked = config.validate();
            assert_eq!(checked.is_ok(), ok, "{documents}: {checked:?}");
            if let Err(reason) = checked {
                assert!(reason.contains("documents_cached_max"), "{reason}");
            }
        }
    }

    #[test]
    fn points_per_hour_is_no_longer_written_but_an_old_file_still_reads_bounded() {
        let dir = tempfile::tempdir().unwrap();
        NodeConfig::new(s("xh"), Tier::County)
            .save(dir.path())
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(
            !text.contains("points_per_hour"),
            "the county publishes the rate"
        );
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("points_per_hour = 12\n{text}"),
        )
        .unwrap();
        assert_eq!(
            NodeConfig::load(dir.path()).unwrap().points_per_hour,
            Some(12)
        );
        for (points, ok) in [(0, true), (10, true), (1_000, true), (1_001, false)] {
            let mut config = NodeConfig::new(s("xh"), Tier::County);
            config.points_per_hour = Some(points);
            let checked = config.validate();
            assert_eq!(checked.is_ok(), ok, "{points}: {checked:?}");
            if let Err(reason) = checked {
                assert!(reason.contains("points_per_hour"), "{reason}");
            }
        }
    }

    #[test]
    fn only_offices_with_children_or_siblings_listen_beyond_loopback_by_default() {
        let public = SocketAddr::from(([0, 0, 0, 0], QUIC_PORT_DEFAULT));
        let loopback = SocketAddr::from(([127, 0, 0, 1], QUIC_PORT_DEFAULT));
        for (station, tier, listen) in [
            ("xh", Tier::County, public),
            ("xh/t1", Tier::Township, public),
            ("xh/t1/v1", Tier::Village, loopback),
            ("xh/t1/v1/p1", Tier::Point, loopback),
        ] {
            let config = NodeConfig::new(s(station), tier);
            assert_eq!(config.quic_listen_address(), listen, "{station}");
        }
        let mut village = NodeConfig::new(s("xh/t1/v1"), Tier::Village);
        village.siblings.push(PeerConfig {
            station: s("xh/t1/v2"),
            address: "10.0.0.2:7401".parse().unwrap(),
        });
        assert_eq!(village.quic_listen_address(), public);
        let named: SocketAddr = "10.0.0.1:7501".parse().unwrap();
        village.quic_listen = Some(named);
        assert_eq!(village.quic_listen_address(), named);
        // A configuration written before this default keeps its address.
        let dir = tempfile::tempdir().unwrap();
        let mut old = NodeConfig::new(s("xh/t1/v1"), Tier::Village);
        old.quic_listen = Some(public);
        old.save(dir.path()).unwrap();
        assert_eq!(
            NodeConfig::load(dir.path()).unwrap().quic_listen_address(),
            public
        );
    }

    #[test]
    fn peer_quotas_default_to_the_replicas_and_are_read_bounded_and_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(s("xh"), Tier::County);
        config.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(
            !text.contains("peer_quotas"),
            "defaults are not written: {text}"
        );
        assert_eq!(config.peer_quotas.peer_quotas(), PeerQuotas::DEFAULT);

        let raised = format!("{text}\n[peer_quotas]\ndocuments_per_day_max = 20000\n");
        std::fs::write(dir.path().join(CONFIG_FILE), raised).unwrap();
        let loaded = NodeConfig::load(dir.path()).unwrap();
        let quotas = loaded.replica_config().peer_quotas;
        assert_eq!(quotas.documents_per_day_max, 20_000);
        assert_eq!(
            quotas.bytes_per_day_max,
            PeerQuotas::DEFAULT.bytes_per_day_max,
            "an unnamed limit keeps its default"
        );

        for (documents, bytes, named) in [
            (
                0,
                PeerQuotas::DEFAULT.bytes_per_day_max,
                "documents_per_day_max",
            ),
            (
                2_000_000,
                PeerQuotas::DEFAULT.bytes_per_day_max,
                "documents_per_day_max",
            ),
            (4_096, 1_000, "bytes_per_day_max"),
        ] {
            let mut config = NodeConfig::new(s("xh"), Tier::County);
            config.peer_quotas = PeerQuotasConfig {
                documents_per_day_max: documents,
                bytes_per_day_max: bytes,
            };
            let reason = config.validate().unwrap_err();
            assert!(reason.contains(named), "{reason}");
        }

        let misspelt = format!("{text}\n[peer_quotas]\ndocuments_per_day = 20000\n");
        std::fs::write(dir.path().join(CONFIG_FILE), misspelt).unwrap();
        let error = NodeConfig::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("documents_per_day"), "{error}");
    }

    #[test]
    fn the_unsigned_changes_policy_defaults_to_hop_by_hop_and_is_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(s("xh"), Tier::County);
        config.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(!text.contains("unsigned_changes"), "{text}");
        assert_eq!(
            config.replica_config().unsigned_changes,
            UnsignedChanges::HopByHop
        );
        let strict = format!("unsigned_changes = \"from-writer-only\"\n{text}");
        std::fs::write(dir.path().join(CONFIG_FILE), strict).unwrap();
        let loaded = NodeConfig::load(dir.path()).unwrap();
        assert_eq!(
            loaded.replica_config().unsigned_changes,
            UnsignedChanges::FromWriterOnly
        );
        let misspelt = format!("unsigned_changes = \"never\"\n{text}");
        std::fs::write(dir.path().join(CONFIG_FILE), misspelt).unwrap();
        let error = NodeConfig::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("unsigned_changes"), "{error}");
    }

    #[test]
    fn a_missing_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let error = NodeConfig::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("civsync init"), "{error}");
    }
}
