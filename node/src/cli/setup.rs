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
    /// Back up a running node into one file (the API and sync go on): every
    /// write acknowledged before it started, checksummed. Keys only with
    /// --with-keys.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory (a new or empty folder):
    /// checks the format and the checksum first, and gives the store a new
    /// Automerge actor. Then start it with `civsync run`.
    Restore {
        /// The backup file `civsync backup` wrote.
        file: PathBuf,
        /// The new data directory; refused unless new or empty.
        #[arg(long, short = 'd')]
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
pub struct BackupArgs {
    /// Where to write the backup; refused if it exists.
    #[arg(long)]
    pub to: PathBuf,
    /// Also put the node key, the certificates, the county ID keys, the API
    /// token and the web accounts into the file (then keep it as safe as
    /// the PC). Without it, a restore needs the office's certificate folder.
    #[arg(long)]
    pub with_keys: bool,
    #[command(flatten)]
    pub target: crate::cli::Target,
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
        SetupCommand::Backup(args) => backup(args).await,
        SetupCommand::Restore { file, data_dir } => restore(&file, &data_dir).await,
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

/// `civsync backup`: stream the node's backup into `<to>.part`, check its
/// checksum, then rename it to `<to>`.
async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    use crate::store::backup::{verify, BACKUP_BYTES_MAX};
    if args.to.exists() {
        anyhow::bail!("{} exists; choose a new file name", args.to.display());
    }
    let mut partial = args.to.clone().into_os_string();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let result = async {
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?
        };
        let body = serde_json::json!({ "with_keys": args.with_keys });
        let mut out = std::io::BufWriter::new(&mut file);
        let (headers, bytes) = args
            .target
            .client()?
            .post_to_writer("backup", &body, &mut out, BACKUP_BYTES_MAX)
            .await?;
        std::io::Write::flush(&mut out)?;
        drop(out);
        file.sync_all()?;
        let (header, sha256) = verify(&partial).with_context(|| {
            format!(
                "the backup received in {} does not check",
                partial.display()
            )
        })?;
        let announced = headers
            .get(crate::api::backup::SHA256_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if announced != sha256 {
            anyhow::bail!("the node announced checksum {announced}, the file has {sha256}");
        }
        std::fs::rename(&partial, &args.to)?;
        anyhow::Ok((header, sha256, bytes))
    }
    .await;
    let (header, sha256, bytes) = match result {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    println!(
        "backup of {} written to {}: {bytes} bytes, sha256 {sha256}",
        header.station,
        args.to.display()
    );
    if header.with_keys {
        println!("WITH KEYS: the file holds the node key, the certificates, the API token and the web accounts; keep it as safe as the office PC");
    } else {
        println!("without keys: a restore needs the office's certificate folder (pki: node.crt, node.key, ca.crt, county-id.pub) copied back, and the web accounts added again");
    }
    Ok(())
}

/// `civsync restore FILE --data-dir DIR`.
async fn restore(file: &std::path::Path, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let (file, data_dir) = (file.to_path_buf(), data_dir.to_path_buf());
    let (header, summary, incarnation) = tokio::task::spawn_blocking({
        let data_dir = data_dir.clone();
        move || crate::store::backup::restore(&file, &data_dir)
    })
    .await??;
    // Keys were carried as pki/...: point the configuration there.
    if header.with_keys {
        let mut config = NodeConfig::load(&data_dir)?;
        if config.pki_dir != std::path::Path::new("pki") {
            config.pki_dir = PathBuf::from("pki");
            config.save(&data_dir)?;
        }
    }
    println!(
        "restored {} ({}) from its backup of unix ms {} into {}: {} entries in {} trees, sha256 {} checked; the store now writes as the new incarnation {incarnation:016x}",
        header.station,
        header.tier,
        header.created_at_ms,
        data_dir.display(),
        summary.entries,
        summary.trees,
        summary.sha256,
    );
    if header.with_keys {
        println!("the backup held the keys: the node key, the certificates, the API token and the web accounts are back");
    } else {
        println!(
            "the backup held no keys. Before `civsync run`: copy the office's certificate folder (node.crt, node.key, ca.crt, county-id.pub; at the county also county-id.key) into {} (or issue new ones there with `civsync pki issue --out {}`); a new API token is made at the first run; add the web accounts again with `civsync user add`",
            data_dir.join("pki").display(),
            data_dir.join("pki").display()
        );
    }
    println!("then start it: civsync run -d {}", data_dir.display());
    Ok(())
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
