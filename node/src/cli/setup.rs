//! Setting a node up and running it: `init`, `run`, `renew-actor`, `pki`.

use crate::config::{NodeConfig, PeerConfig};
use crate::context::{COUNTY_ID_PRIVATE_FILE, COUNTY_ID_PUBLIC_FILE};
use anyhow::Context;
use civsync_protocol::domain::pii::CountyOpenKey;
use civsync_protocol::{StationId, Tier};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Commands that set up or run this node (flattened into the top level).
#[derive(Subcommand)]
pub enum SetupCommand {
    /// Create a node: its station, tier, parent and listening addresses.
    Init(InitArgs),
    /// Run the node: serve the local API and sync with peers until Ctrl-C.
    Run {
        #[arg(
            long,
            short = 'd',
            env = "CIVSYNC_DATA_DIR",
            default_value = "civsync-data"
        )]
        data_dir: PathBuf,
    },
    /// After restoring a store from a backup: give this node a new Automerge
    /// actor, so changes made since the backup are never reused. Run it with
    /// the node stopped, before `civsync run`.
    RenewActor {
        #[arg(
            long,
            short = 'd',
            env = "CIVSYNC_DATA_DIR",
            default_value = "civsync-data"
        )]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
pub struct InitArgs {
    #[arg(
        long,
        short = 'd',
        env = "CIVSYNC_DATA_DIR",
        default_value = "civsync-data"
    )]
    pub data_dir: PathBuf,
    /// Full station path, e.g. xh/t03/v12 (county xh, township t03, village v12).
    #[arg(long)]
    pub station: StationId,
    /// province, prefecture, county, township, village or point.
    #[arg(long)]
    pub tier: Tier,
    /// Human name, e.g. 东村新时代文明实践站.
    #[arg(long, default_value = "")]
    pub name: String,
    /// The parent's QUIC address, e.g. 10.1.2.3:7401 (its station is this station's parent).
    #[arg(long)]
    pub parent_address: Option<SocketAddr>,
    /// A fallback office to dial when the parent is down: STATION=ADDRESS.
    #[arg(long)]
    pub fallback: Option<String>,
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub api_listen: SocketAddr,
    /// QUIC listener for children and siblings. Default: every interface
    /// (port 7401) for a township or above, or a village with siblings;
    /// 127.0.0.1 for a village or point (nobody dials it).
    #[arg(long)]
    pub quic_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create the county certificate authority (run once, at the county).
    Init {
        /// Folder for ca.crt, ca.key, county-id.pub and county-id.key (keep
        /// ca.key and county-id.key offline).
        #[arg(long)]
        dir: PathBuf,
        /// The county's station path, e.g. xh.
        #[arg(long)]
        county: StationId,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a node certificate for one station, signed by the county CA.
    Issue {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        station: StationId,
        #[arg(long)]
        tier: Tier,
        /// Folder to write node.crt, node.key, ca.crt and county-id.pub into
        /// (usually <data-dir>/pki); for a county office also county-id.key.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Issue a fresh certificate for a station into its PKI folder: for the
    /// key already there (or a new one with --new-key; a folder without a
    /// key gets one, as with issue). Replaced files are kept as *.previous.
    Renew {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        station: StationId,
        /// The station's PKI folder (node.crt, node.key, ca.crt).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Make a new key pair too (the old key may have been copied).
        #[arg(long)]
        new_key: bool,
    },
    /// Revoke a station's certificates (a stolen or broken office PC): adds
    /// it to the county's signed revocation list in the CA folder
    /// (revocations.json). Then publish that file to the county node.
    Revoke {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        station: StationId,
        /// Why, shown on every node that refuses the certificate.
        #[arg(long)]
        reason: String,
        /// Revoke only this certificate file (default: every certificate
        /// of the station issued up to now).
        #[arg(long)]
        certificate: Option<PathBuf>,
    },
    /// Give a signed revocation list (from `pki revoke`) to the running
    /// county node, which sends it down the whole county.
    PublishRevocations {
        /// The signed list, e.g. <ca folder>/revocations.json.
        #[arg(long)]
        file: PathBuf,
        /// The county node's data directory.
        #[arg(
            long,
            short = 'd',
            env = "CIVSYNC_DATA_DIR",
            default_value = "civsync-data"
        )]
        data_dir: PathBuf,
        /// Talk to this API instead, e.g. http://127.0.0.1:7400.
        #[arg(long, env = "CIVSYNC_API")]
        api: Option<String>,
        /// Print the API's JSON answer instead of the list as a table.
        #[arg(long)]
        json: bool,
    },
    /// The revocation list in force at a running node.
    Revocations {
        #[arg(
            long,
            short = 'd',
            env = "CIVSYNC_DATA_DIR",
            default_value = "civsync-data"
        )]
        data_dir: PathBuf,
        #[arg(long, env = "CIVSYNC_API")]
        api: Option<String>,
        /// Print the API's JSON answer instead of the list as a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn setup(command: SetupCommand) -> anyhow::Result<()> {
    match command {
        SetupCommand::Init(args) => {
            let mut config = NodeConfig::new(args.station.clone(), args.tier);
            config.name = args.name;
            config.api_listen = args.api_listen;
            config.quic_listen = args.quic_listen;
            if let Some(address) = args.parent_address {
                let station = args
                    .station
                    .parent()
                    .context("a station at the top has no parent to dial")?;
                config.parent = Some(PeerConfig { station, address });
            }
            if let Some(fallback) = args.fallback {
                let (station, address) = fallback
                    .split_once('=')
                    .context("--fallback takes STATION=ADDRESS")?;
                config.fallback = Some(PeerConfig {
                    station: StationId::parse(station)?,
                    address: address.parse().context("--fallback address")?,
                });
            }
            crate::node::init(&args.data_dir, &config)?;
            println!(
                "initialised {} ({}) in {}",
                config.station,
                config.tier,
                args.data_dir.display()
            );
            Ok(())
        }
        SetupCommand::Run { data_dir } => crate::node::run(&data_dir).await,
        SetupCommand::RenewActor { data_dir } => {
            let store = data_dir.join(crate::context::STORE_DIR);
            let incarnation = crate::store::renew_incarnation(&store).with_context(|| {
                format!("cannot renew the actor of the store in {}", store.display())
            })?;
            println!(
                "the store in {} now writes as incarnation {incarnation:016x}",
                store.display()
            );
            Ok(())
        }
    }
}

pub async fn pki(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init { dir, county, days } => {
            crate::net::pki::init_county_ca(&dir, &county, days)?;
            let key = CountyOpenKey::generate(rand::random());
            crate::secrets::write_secret(
                &dir.join(COUNTY_ID_PRIVATE_FILE),
                key.to_hex().as_bytes(),
            )?;
            std::fs::write(dir.join(COUNTY_ID_PUBLIC_FILE), key.seal_key().to_hex()).with_context(
                || format!("cannot write the county ID key into {}", dir.display()),
            )?;
            println!(
                "county CA and ID key pair for {county} written to {} (keep ca.key and {COUNTY_ID_PRIVATE_FILE} off the offices' PCs)",
                dir.display()
            );
            Ok(())
        }
        PkiCommand::Issue {
            ca,
            station,
            tier,
            out,
            days,
        } => {
            crate::net::pki::issue_node_certificate(&ca, &station, tier, &out, days)?;
            let public = std::fs::read(ca.join(COUNTY_ID_PUBLIC_FILE)).with_context(|| {
                format!("cannot read the county's public ID key in {}", ca.display())
            })?;
            std::fs::write(out.join(COUNTY_ID_PUBLIC_FILE), public)
                .with_context(|| format!("cannot write into {}", out.display()))?;
            // Only the county's own office opens seals; every other office
            // gets the public key alone, so its disk confirms no ID number.
            let private = (tier == Tier::County).then_some(COUNTY_ID_PRIVATE_FILE);
            if let Some(file) = private {
                let key = std::fs::read(ca.join(file)).with_context(|| {
                    format!(
                        "cannot read the county's private ID key in {}",
                        ca.display()
                    )
                })?;
                crate::secrets::write_secret(&out.join(file), &key)?;
            }
            println!(
                "certificate for {station} ({tier}) written to {} with the county's public ID key{}",
                out.display(),
                if private.is_some() { " and its private ID key (county office only)" } else { "" }
            );
            Ok(())
        }
        PkiCommand::Renew {
            ca,
            station,
            out,
            days,
            new_key,
        } => {
            wait_past_revocation(&ca, &station).await;
            let renewed =
                crate::net::pki::renew_node_certificate(&ca, &station, &out, days, new_key)?;
            // A renewed folder holds the county's public ID key, as an issued
            // one does; the private one is never copied by a renewal.
            let public_key = out.join(COUNTY_ID_PUBLIC_FILE);
            if !public_key.exists() {
                let public = std::fs::read(ca.join(COUNTY_ID_PUBLIC_FILE)).with_context(|| {
                    format!("cannot read the county's public ID key in {}", ca.display())
                })?;
                std::fs::write(&public_key, public)
                    .with_context(|| format!("cannot write into {}", out.display()))?;
            }
            println!(
                "certificate for {station} ({}) renewed in {}, valid until unix time {}{}; restart the node to use it",
                renewed.issued.tier,
                out.display(),
                renewed.issued.validity.not_after_unix_s,
                if renewed.new_key { ", with a new key" } else { "" },
            );
            Ok(())
        }
        PkiCommand::Revoke {
            ca,
            station,
            reason,
            certificate,
        } => {
            let revoked = crate::net::revocation::revoke_at_county(
                &ca,
                &station,
                certificate.as_deref(),
                &reason,
                crate::net::pki::now_unix_s(),
            )?;
            println!(
                "revocation list version {} ({} entries) written to {}\nnow publish it at the county node: civsync pki publish-revocations --file {} -d <county data dir>",
                revoked.list.version,
                revoked.list.entries.len(),
                revoked.path.display(),
                revoked.path.display(),
            );
            Ok(())
        }
        PkiCommand::PublishRevocations {
            file,
            data_dir,
            api,
            json,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let target = crate::cli::Target {
                data_dir,
                api,
                station: None,
                json,
            };
            let answer: serde_json::Value = target
                .client()?
                .post_bytes("revocations", &[], bytes, "application/json")
                .await?;
            target.show(&answer, crate::cli::views::revocations_view);
            Ok(())
        }
        PkiCommand::Revocations {
            data_dir,
            api,
            json,
        } => {
            let target = crate::cli::Target {
                data_dir,
                api,
                station: None,
                json,
            };
            target
                .get_and_show("revocations", &[], crate::cli::views::revocations_view)
                .await
        }
    }
}

/// A station-wide revocation covers certificates issued up to its second:
/// a renewal in that same second would be revoked at birth, so wait it out.
async fn wait_past_revocation(ca: &std::path::Path, station: &StationId) {
    if let Some(revoked_at) = crate::net::revocation::latest_station_revocation(ca, station) {
        let wait_s = revoked_at + 1 - crate::net::pki::now_unix_s();
        if wait_s > 0 {
            let wait_s = u64::try_from(wait_s.min(2)).unwrap_or(2);
            tokio::time::sleep(std::time::Duration::from_secs(wait_s)).await;
        }
    }
}
