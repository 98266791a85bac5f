//! `civsync`: run a node of the New Era Civilization Practice network, and
//! talk to it.

use anyhow::Context;
use civsync_node::client::ApiClient;
use civsync_node::config::{NodeConfig, PeerConfig};
use civsync_protocol::domain::input::{
    ActivityInput, HoursInput, ServiceRecordInput, TeamInput, VolunteerInput,
};
use civsync_protocol::{StationId, Tier};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "civsync",
    version,
    about = "Offline-first sync node for county, township and village civilization-practice offices"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Target {
    /// The node's data directory (its civsync.toml says where its API listens).
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
    /// Act on this station instead of the node's own (a station below it).
    #[arg(long)]
    station: Option<StationId>,
}

impl Target {
    fn client(&self) -> anyhow::Result<ApiClient> {
        let base = match &self.api {
            Some(api) => api.clone(),
            None => format!("http://{}", NodeConfig::load(&self.data_dir)?.api_listen),
        };
        ApiClient::new(&base)
    }

    /// POST `body` to the node and print its answer.
    async fn post_and_print<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<()> {
        let answer: Value = self.client()?.post(path, &self.query(), body).await?;
        print_json(&answer);
        Ok(())
    }

    /// POST a spreadsheet (CSV, or XLSX by its extension) to an import
    /// endpoint and return the node's report.
    async fn post_spreadsheet(&self, path: &str, file: &std::path::Path) -> anyhow::Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut query = self.query();
        let is_xlsx = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
        query.push(("format", if is_xlsx { "xlsx" } else { "csv" }.to_string()));
        self.client()?.post_bytes(path, &query, bytes).await
    }

    /// GET from the node and print its answer.
    async fn get_and_print(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<()> {
        let answer: Value = self.client()?.get(path, query).await?;
        print_json(&answer);
        Ok(())
    }

    /// `--station`, which a decision on a month must name.
    fn required_station(&self) -> anyhow::Result<String> {
        match &self.station {
            Some(station) => Ok(station.to_string()),
            None => anyhow::bail!("--station is required: the station whose month is decided"),
        }
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        self.station
            .iter()
            .map(|s| ("station", s.to_string()))
            .collect()
    }
}

#[derive(Subcommand)]
enum Command {
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
    /// County certificate authority and node certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Register and list volunteers.
    #[command(subcommand)]
    Volunteer(VolunteerCommand),
    /// Create and list volunteer teams.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Record and list activities with service hours.
    #[command(subcommand)]
    Activity(ActivityCommand),
    /// Register, rename and list stations (the station registry).
    #[command(subcommand)]
    Station(StationCommand),
    /// Citizens' service orders (四单): place, dispatch, take, rate, cancel.
    #[command(subcommand)]
    Order(OrderCommand),
    /// The service menu (服务菜单) citizens order from: this office's items
    /// and what a station is offered from every office above it.
    #[command(subcommand)]
    Menu(MenuCommand),
    /// Monthly themes (一月一主题) this office sets for its subtree.
    #[command(subcommand)]
    Theme(ThemeCommand),
    /// Import a roster of volunteers from a CSV or XLSX file.
    Import {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Monthly statistics of a station and everything below it.
    Stats {
        /// YYYY-MM; this month when absent.
        #[arg(long)]
        month: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Write the monthly table or the quarterly bulletin as CSV and XLSX.
    Report {
        /// YYYY-MM.
        #[arg(long, conflicts_with = "quarter")]
        month: Option<String>,
        /// YYYYQn, e.g. 2026Q4.
        #[arg(long)]
        quarter: Option<String>,
        /// Folder to write the files into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// A volunteer's service certificate (志愿服务证明), with its verification code.
    Certificate {
        number: String,
        #[command(flatten)]
        target: Target,
    },
    /// Approve a station's month (as the level above it): its figures as
    /// this node holds them now become the approved ones.
    Approve {
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        #[command(flatten)]
        target: Target,
    },
    /// Send a station's month back to it with a reason.
    SendBack {
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        /// What the station must fix, in words it can act on.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Where the month of a station and of every station below it stands.
    Approvals {
        /// YYYY-MM; this month when absent.
        #[arg(long)]
        month: Option<String>,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// How fresh each station's data is here; quiet stations are flagged.
    Freshness {
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Sync status: peers, last seen, backlog, last error.
    Status {
        /// Print the API's JSON answer instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Fields that concurrent edits left with two values; pick one.
    Conflicts {
        /// Resolve: document id, field path and the value to keep.
        #[arg(long, num_args = 3, value_names = ["DOCUMENT", "PATH", "VALUE"])]
        resolve: Option<Vec<String>>,
        #[command(flatten)]
        target: Target,
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
    /// Run a small county on this machine: 1 county, 2 townships, 4 villages.
    Demo(civsync_node::demo::DemoArgs),
}

#[derive(Args)]
struct InitArgs {
    #[arg(
        long,
        short = 'd',
        env = "CIVSYNC_DATA_DIR",
        default_value = "civsync-data"
    )]
    data_dir: PathBuf,
    /// Full station path, e.g. xh/t03/v12 (county xh, township t03, village v12).
    #[arg(long)]
    station: StationId,
    /// province, prefecture, county, township, village or point.
    #[arg(long)]
    tier: Tier,
    /// Human name, e.g. 东村新时代文明实践站.
    #[arg(long, default_value = "")]
    name: String,
    /// The parent's QUIC address, e.g. 10.1.2.3:7401 (its station is this station's parent).
    #[arg(long)]
    parent_address: Option<SocketAddr>,
    /// A fallback office to dial when the parent is down: STATION=ADDRESS.
    #[arg(long)]
    fallback: Option<String>,
    #[arg(long, default_value = "127.0.0.1:7400")]
    api_listen: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:7401")]
    quic_listen: SocketAddr,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create the county certificate authority (run once, at the county).
    Init {
        /// Folder for ca.crt, ca.key and identity.key (keep ca.key offline).
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
        /// Folder to write node.crt, node.key, ca.crt and identity.key into
        /// (usually <data-dir>/pki).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum VolunteerCommand {
    /// Register a volunteer. The ID number is checked, digested and masked; it is never stored.
    Add {
        #[arg(long)]
        name: String,
        /// 男/女 or male/female.
        #[arg(long)]
        sex: String,
        #[arg(long)]
        id_number: String,
        #[arg(long, default_value = "")]
        phone: String,
        #[arg(long)]
        number: Option<String>,
        /// Comma-separated skills.
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Comma-separated service categories (health, culture, 理论宣讲, ...).
        #[arg(long, value_delimiter = ',')]
        categories: Vec<String>,
        #[arg(long)]
        consent: bool,
        #[command(flatten)]
        target: Target,
    },
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Volunteers of --station's subtree (this node's own by default), most
    /// hours first: hours, service records, star level, points (积分).
    Standing {
        /// How many to list (1 to 1,000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum TeamCommand {
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        category: String,
        #[arg(long)]
        leader: Option<String>,
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    List {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum ActivityCommand {
    /// Record an activity; each --record is VOLUNTEER=HOURS.
    Add {
        #[arg(long)]
        name: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// lecture/appraise/help/entertain/advocate/celebrate/create or 讲评帮乐倡庆创.
        #[arg(long)]
        form: String,
        #[arg(long)]
        category: String,
        #[arg(long, default_value = "")]
        place: String,
        #[arg(long, default_value_t = 0)]
        beneficiaries: u32,
        #[arg(long)]
        team: Option<String>,
        #[arg(long = "record")]
        records: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    List {
        #[arg(long)]
        month: Option<String>,
        /// Include every station below.
        #[arg(long)]
        subtree: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Import an activity ledger (活动台账) from a CSV or XLSX file, one row
    /// per service record; prints the report of every row.
    Import {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum OrderCommand {
    /// A citizen orders a service (点单) at --station (this node's by default).
    Place {
        #[arg(long)]
        menu_item: String,
        #[arg(long)]
        requester: String,
        /// YYYY-MM-DD; today when absent.
        #[arg(long)]
        placed_on: Option<String>,
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Orders placed at --station in a month.
    List {
        /// YYYY-MM; this month when absent.
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Hand an order to a team (派单), as this node's station.
    Dispatch {
        /// The order's id.
        order: String,
        /// The team, as <station>:<team id>, e.g. xh/t1:T1.
        #[arg(long)]
        team: String,
        #[command(flatten)]
        target: Target,
    },
    /// Record that the team took the order (接单).
    Take {
        order: String,
        #[command(flatten)]
        target: Target,
    },
    /// Record the citizen's rating (评单), 1 to 5 stars.
    Rate {
        order: String,
        #[arg(long)]
        rating: u8,
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        target: Target,
    },
    /// Withdraw an order not yet taken (撤单), with the reason.
    Cancel {
        order: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum MenuCommand {
    /// Add an item to this office's menu, or change one (by --id).
    Add {
        /// Give it to change an existing item; drawn when absent.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: String,
        /// Service category, e.g. health, theory, elder_care.
        #[arg(long)]
        category: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The team or unit that serves it.
        #[arg(long, default_value = "")]
        provider: String,
        /// Stop offering it (it stays listed, marked).
        #[arg(long)]
        withdrawn: bool,
        #[command(flatten)]
        target: Target,
    },
    /// What --station (this node's own by default) is offered.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum ThemeCommand {
    /// Set or correct this office's theme of a month.
    Set {
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// The themes that apply at --station (this node's own by default).
    List {
        /// YYYY-MM; every month when absent.
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum StationCommand {
    /// Register a station below this node, or rename one.
    Add {
        /// Full station path, e.g. xh/t03/v12.
        #[arg(long)]
        id: String,
        /// Human name, e.g. 东村新时代文明实践站.
        #[arg(long)]
        name: String,
        /// Its tier: one level below this node's per path segment.
        #[arg(long)]
        tier: String,
        #[command(flatten)]
        target: Target,
    },
    /// Register stations from a CSV file with the header `id,name,tier`,
    /// one request per row; refused rows are listed and the rest kept.
    Import {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Retire (撤并) a registered station below this node as of a date;
    /// its history is kept and still counts, it is no longer expected to
    /// report after that date.
    Retire {
        /// Full station path, e.g. xh/t03/v12.
        id: String,
        /// The day it closed, YYYY-MM-DD.
        #[arg(long)]
        on: String,
        /// The station that took over its work (same parent's subtree).
        #[arg(long)]
        merged_into: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Undo a retirement made by mistake.
    Unretire {
        /// Full station path, e.g. xh/t03/v12.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Registered stations under --station (this node's own by default).
    List {
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Rows `civsync station import` reads from one file.
const STATION_IMPORT_ROWS_MAX: usize = civsync_protocol::service::registry::REGISTRY_STATIONS_MAX;

/// Read `id,name,tier` rows; a malformed file is refused before anything
/// is sent.
fn station_rows(
    file: &std::path::Path,
) -> anyhow::Result<Vec<civsync_protocol::service::registry::StationInput>> {
    let mut reader =
        csv::Reader::from_path(file).with_context(|| format!("cannot read {}", file.display()))?;
    let header = reader.headers()?.clone();
    let columns: Vec<&str> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim())
        .collect();
    anyhow::ensure!(
        columns == ["id", "name", "tier"],
        "{}: the header must be id,name,tier, not {}",
        file.display(),
        columns.join(",")
    );
    let mut rows = Vec::new();
    for (at, record) in reader.records().enumerate() {
        anyhow::ensure!(
            at < STATION_IMPORT_ROWS_MAX,
            "{}: more than {STATION_IMPORT_ROWS_MAX} rows",
            file.display()
        );
        // Every row has the header's three fields (the reader refuses others).
        let record = record.with_context(|| format!("{}: line {}", file.display(), at + 2))?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        rows.push(civsync_protocol::service::registry::StationInput {
            id: field(0),
            name: field(1),
            tier: field(2),
        });
    }
    Ok(rows)
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn main() {
    let cli = Cli::parse();
    civsync_node::logging::init(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(execute(cli.command)) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => {
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
            civsync_node::node::init(&args.data_dir, &config)?;
            println!(
                "initialised {} ({}) in {}",
                config.station,
                config.tier,
                args.data_dir.display()
            );
            Ok(())
        }
        Command::Run { data_dir } => civsync_node::node::run(&data_dir).await,
        Command::Pki(PkiCommand::Init { dir, county, days }) => {
            civsync_node::pki::init_county_ca(&dir, &county, days)?;
            let key = civsync_protocol::domain::pii::IdentityKey::from_bytes(rand::random());
            civsync_node::node::write_secret(
                &dir.join(civsync_node::node::IDENTITY_KEY_FILE),
                key.to_hex().as_bytes(),
            )?;
            println!("county CA for {county} written to {}", dir.display());
            Ok(())
        }
        Command::Pki(PkiCommand::Issue {
            ca,
            station,
            tier,
            out,
            days,
        }) => {
            civsync_node::pki::issue_node_certificate(&ca, &station, tier, &out, days)?;
            let key = std::fs::read(ca.join(civsync_node::node::IDENTITY_KEY_FILE)).with_context(
                || format!("cannot read the county identity key in {}", ca.display()),
            )?;
            civsync_node::node::write_secret(
                &out.join(civsync_node::node::IDENTITY_KEY_FILE),
                &key,
            )?;
            println!(
                "certificate for {station} ({tier}) written to {}",
                out.display()
            );
            Ok(())
        }
        Command::Volunteer(VolunteerCommand::Add {
            name,
            sex,
            id_number,
            phone,
            number,
            skills,
            categories,
            consent,
            target,
        }) => {
            let input = VolunteerInput {
                number,
                name,
                sex,
                id_number,
                phone,
                skills,
                categories,
                consent,
                ..VolunteerInput::default()
            };
            target.post_and_print("volunteers", &input).await
        }
        Command::Volunteer(VolunteerCommand::List { target }) => {
            target.get_and_print("volunteers", &target.query()).await
        }
        Command::Volunteer(VolunteerCommand::Standing {
            limit,
            json,
            target,
        }) => {
            let mut query = target.query();
            query.push(("limit", limit.to_string()));
            let answer: Value = target.client()?.get("standings", &query).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::standings_table(&answer));
            }
            Ok(())
        }
        Command::Team(TeamCommand::Add {
            name,
            category,
            leader,
            members,
            target,
        }) => {
            let input = TeamInput {
                name,
                category,
                leader,
                members,
                ..TeamInput::default()
            };
            target.post_and_print("teams", &input).await
        }
        Command::Team(TeamCommand::List { target }) => {
            target.get_and_print("teams", &target.query()).await
        }
        Command::Activity(ActivityCommand::Add {
            name,
            date,
            form,
            category,
            place,
            beneficiaries,
            team,
            records,
            target,
        }) => {
            let records = records
                .iter()
                .map(|r| {
                    let (volunteer, hours) = r
                        .split_once('=')
                        .context("--record takes VOLUNTEER=HOURS")?;
                    Ok(ServiceRecordInput {
                        volunteer: volunteer.to_string(),
                        hours: HoursInput::Text(hours.to_string()),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let input = ActivityInput {
                name,
                date,
                form,
                category,
                place,
                beneficiaries,
                team,
                records,
                ..ActivityInput::default()
            };
            target.post_and_print("activities", &input).await
        }
        Command::Activity(ActivityCommand::Import { file, target }) => {
            let report = target.post_spreadsheet("import/activities", &file).await?;
            print_json(&report);
            eprintln!(
                "{} rows: {} accepted, {} refused; {} activities written, {} refused",
                report["rows"],
                report["accepted"],
                report["refused"].as_array().map_or(0, Vec::len),
                report["activities"].as_array().map_or(0, Vec::len),
                report["activities_refused"],
            );
            Ok(())
        }
        Command::Activity(ActivityCommand::List {
            month,
            subtree,
            target,
        }) => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            if subtree {
                query.push(("subtree", "true".into()));
            }
            let list: Value = target.client()?.get("activities", &query).await?;
            print_json(&list);
            Ok(())
        }
        Command::Station(StationCommand::Add {
            id,
            name,
            tier,
            target,
        }) => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here; --id names the station"
            );
            let body = civsync_protocol::service::registry::StationInput { id, name, tier };
            let answer: Value = target.client()?.post("stations", &[], &body).await?;
            print_json(&answer);
            Ok(())
        }
        Command::Station(StationCommand::Retire {
            id,
            on,
            merged_into,
            target,
        }) => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here; ID names the station"
            );
            let body = civsync_protocol::service::registry::RetireInput {
                id,
                retired_on: Some(on),
                merged_into,
            };
            let answer: Value = target.client()?.post("stations/retire", &[], &body).await?;
            print_json(&answer);
            Ok(())
        }
        Command::Station(StationCommand::Unretire { id, target }) => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here; ID names the station"
            );
            let body = civsync_protocol::service::registry::RetireInput {
                id,
                retired_on: None,
                merged_into: None,
            };
            let answer: Value = target.client()?.post("stations/retire", &[], &body).await?;
            print_json(&answer);
            Ok(())
        }
        Command::Station(StationCommand::Import { file, target }) => {
            let rows = station_rows(&file)?;
            let client = target.client()?;
            let mut refused = 0;
            for (at, row) in rows.iter().enumerate() {
                if let Err(error) = client.post::<_, Value>("stations", &[], row).await {
                    refused += 1;
                    eprintln!("line {} ({}): {error:#}", at + 2, row.id);
                }
            }
            println!(
                "{} of {} stations registered",
                rows.len() - refused,
                rows.len()
            );
            anyhow::ensure!(refused == 0, "{refused} rows refused");
            Ok(())
        }
        Command::Station(StationCommand::List { json, target }) => {
            let query: Vec<(&str, String)> = target
                .station
                .iter()
                .map(|s| ("under", s.to_string()))
                .collect();
            let answer: Value = target.client()?.get("stations", &query).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::stations_table(&answer));
            }
            Ok(())
        }
        Command::Order(OrderCommand::Place {
            menu_item,
            requester,
            placed_on,
            id,
            target,
        }) => {
            let body = civsync_protocol::domain::input::OrderInput {
                id,
                menu_item,
                requester,
                placed_on,
            };
            target.post_and_print("orders", &body).await
        }
        Command::Order(OrderCommand::List {
            month,
            json,
            target,
        }) => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            let answer: Value = target.client()?.get("orders", &query).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::orders_table(&answer));
            }
            Ok(())
        }
        Command::Order(OrderCommand::Dispatch {
            order,
            team,
            target,
        }) => {
            let body = order_step_body(&target, order, [("team", Value::from(team))])?;
            target.post_and_print("orders/dispatch", &body).await
        }
        Command::Order(OrderCommand::Take { order, target }) => {
            let body = order_step_body(&target, order, [])?;
            target.post_and_print("orders/take", &body).await
        }
        Command::Order(OrderCommand::Rate {
            order,
            rating,
            comment,
            target,
        }) => {
            let fields = [
                ("rating", Value::from(rating)),
                ("comment", Value::from(comment)),
            ];
            let body = order_step_body(&target, order, fields)?;
            target.post_and_print("orders/rate", &body).await
        }
        Command::Order(OrderCommand::Cancel {
            order,
            reason,
            target,
        }) => {
            let body = order_step_body(&target, order, [("reason", Value::from(reason))])?;
            target.post_and_print("orders/cancel", &body).await
        }
        Command::Menu(MenuCommand::Add {
            id,
            name,
            category,
            description,
            provider,
            withdrawn,
            target,
        }) => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here: an office writes its own menu"
            );
            let body = civsync_protocol::service::catalog::MenuItemInput {
                id,
                name,
                category,
                description,
                provider,
                withdrawn,
            };
            target.post_and_print("menu", &body).await
        }
        Command::Menu(MenuCommand::List { json, target }) => {
            let answer: Value = target.client()?.get("menu", &target.query()).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::menu_table(&answer));
            }
            Ok(())
        }
        Command::Theme(ThemeCommand::Set {
            month,
            title,
            description,
            target,
        }) => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here: an office sets its own themes"
            );
            let body = civsync_protocol::service::catalog::ThemeInput {
                month,
                title,
                description,
            };
            target.post_and_print("themes", &body).await
        }
        Command::Theme(ThemeCommand::List {
            month,
            json,
            target,
        }) => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            let answer: Value = target.client()?.get("themes", &query).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::themes_table(&answer));
            }
            Ok(())
        }
        Command::Import { file, target } => {
            let report = target.post_spreadsheet("import/volunteers", &file).await?;
            print_json(&report);
            Ok(())
        }
        Command::Stats { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            let stats: Value = target.client()?.get("stats", &query).await?;
            print_json(&stats);
            Ok(())
        }
        Command::Report {
            month,
            quarter,
            out,
            target,
        } => {
            let client = target.client()?;
            let (path, mut query) = match (&month, &quarter) {
                (_, Some(quarter)) => ("reports/quarterly", vec![("quarter", quarter.clone())]),
                (Some(month), None) => ("reports/monthly", vec![("month", month.clone())]),
                (None, None) => ("reports/monthly", vec![]),
            };
            query.extend(target.query());
            std::fs::create_dir_all(&out)?;
            let json: Value = client.get(path, &query).await?;
            let stem = format!(
                "civsync-{}-{}",
                json["root"].as_str().unwrap_or("report").replace('/', "-"),
                json["period"].as_str().unwrap_or("period")
            );
            for format in ["csv", "xlsx"] {
                let mut with_format = query.clone();
                with_format.push(("format", format.to_string()));
                let bytes = client.get_bytes(path, &with_format).await?;
                let file = out.join(format!("{stem}.{format}"));
                std::fs::write(&file, bytes)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                println!("wrote {}", file.display());
            }
            println!("{}", json["title"].as_str().unwrap_or_default());
            Ok(())
        }
        Command::Certificate { number, target } => {
            let mut query = target.query();
            query.push(("format", "text".into()));
            let bytes = target
                .client()?
                .get_bytes(&format!("certificates/{number}"), &query)
                .await?;
            println!("{}", String::from_utf8_lossy(&bytes));
            Ok(())
        }
        Command::Approve { month, target } => {
            let body = serde_json::json!({
                "station": target.required_station()?, "month": month, "decision": "approve",
            });
            let answer: Value = target.client()?.post("approvals", &[], &body).await?;
            print_json(&answer);
            Ok(())
        }
        Command::SendBack {
            month,
            reason,
            target,
        } => {
            let body = serde_json::json!({
                "station": target.required_station()?, "month": month,
                "decision": "send_back", "reason": reason,
            });
            let answer: Value = target.client()?.post("approvals", &[], &body).await?;
            print_json(&answer);
            Ok(())
        }
        Command::Approvals {
            month,
            json,
            target,
        } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            let answer: Value = target.client()?.get("approvals", &query).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::approvals_table(&answer));
            }
            Ok(())
        }
        Command::Freshness { json, target } => {
            let answer: Value = target.client()?.get("freshness", &target.query()).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", civsync_node::tables::freshness_table(&answer));
            }
            Ok(())
        }
        Command::Status { json, target } => {
            let status: Value = target.client()?.get("status", &[]).await?;
            if json {
                print_json(&status);
            } else {
                print!("{}", civsync_node::tables::status_table(&status));
            }
            Ok(())
        }
        Command::Conflicts { resolve, target } => {
            let client = target.client()?;
            match resolve {
                Some(parts) => {
                    let body = serde_json::json!({"document": parts[0], "path": parts[1], "value": parts[2]});
                    let _: Value = client.post("conflicts/resolve", &[], &body).await?;
                    println!("resolved {} {}", parts[0], parts[1]);
                }
                None => print_json(&client.get::<Value>("conflicts", &target.query()).await?),
            }
            Ok(())
        }
        Command::RenewActor { data_dir } => {
            let store = data_dir.join(civsync_node::node::STORE_DIR);
            let incarnation =
                civsync_node::store::renew_incarnation(&store).with_context(|| {
                    format!("cannot renew the actor of the store in {}", store.display())
                })?;
            println!(
                "the store in {} now writes as incarnation {incarnation:016x}",
                store.display()
            );
            Ok(())
        }
        Command::Demo(args) => civsync_node::demo::run(args).await,
    }
}

/// The body of an order step: the order's station (--station, else this
/// node's own, read from the API), its id, and the step's fields.
fn order_step_body<const N: usize>(
    target: &Target,
    order: String,
    fields: [(&str, Value); N],
) -> anyhow::Result<Value> {
    let station = match &target.station {
        Some(station) => station.to_string(),
        None => NodeConfig::load(&target.data_dir)
            .context("--station names the order's station when --api is used")?
            .station
            .to_string(),
    };
    let mut body = serde_json::json!({"station": station, "order": order});
    for (name, value) in fields {
        body[name] = value;
    }
    Ok(body)
}
