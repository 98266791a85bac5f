//! `civsync`: run a node of the New Era Civilization Practice network, and
//! talk to it.
//!
//! This file is only the top of the command tree and the runtime; each
//! group of commands lives in `civsync_node::cli`.

use civsync_node::cli::{
    bundles, catalog, orders, points, records, reports, setup, stations, users,
};
use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Setup(setup::SetupCommand),
    /// County certificate authority and node certificates.
    #[command(subcommand)]
    Pki(setup::PkiCommand),
    /// Register and list volunteers.
    #[command(subcommand)]
    Volunteer(records::VolunteerCommand),
    /// Create and list volunteer teams.
    #[command(subcommand)]
    Team(records::TeamCommand),
    /// Record and list activities with service hours.
    #[command(subcommand)]
    Activity(records::ActivityCommand),
    /// Register, rename and list stations (the station registry).
    #[command(subcommand)]
    Station(stations::StationCommand),
    /// Citizens' service orders (四单): place, dispatch, take, rate, cancel.
    #[command(subcommand)]
    Order(orders::OrderCommand),
    /// The service menu (服务菜单) citizens order from: this office's items
    /// and what a station is offered from every office above it.
    #[command(subcommand)]
    Menu(catalog::MenuCommand),
    /// Monthly themes (一月一主题) this office sets for its subtree.
    #[command(subcommand)]
    Theme(catalog::ThemeCommand),
    /// Points (积分): the county's rate, balances, redemptions at a
    /// supermarket (爱心超市), transfers, and each station's month.
    #[command(subcommand)]
    Points(points::PointsCommand),
    /// Work carried on a USB stick where there is no link: export what a
    /// station is missing, import what was brought.
    #[command(subcommand)]
    Bundle(bundles::BundleCommand),
    #[command(flatten)]
    Import(records::ImportCommand),
    #[command(flatten)]
    Report(reports::ReportCommand),
    /// Accounts of this office's web pages: add, list, unlock, password, remove.
    #[command(subcommand)]
    User(users::UserCommand),
    /// The audit log: logins, failed logins, changes and exports, newest first.
    Audit(users::AuditArgs),
    /// Run a small county on this machine: 1 county, 2 townships, 4 villages.
    Demo(civsync_node::demo::DemoArgs),
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
        Command::Setup(command) => setup::setup(command).await,
        Command::Pki(command) => setup::pki(command).await,
        Command::Volunteer(command) => records::volunteer(command).await,
        Command::Team(command) => records::team(command).await,
        Command::Activity(command) => records::activity(command).await,
        Command::Import(command) => records::import(command).await,
        Command::Station(command) => stations::station(command).await,
        Command::Order(command) => orders::order(command).await,
        Command::Menu(command) => catalog::menu(command).await,
        Command::Theme(command) => catalog::theme(command).await,
        Command::Points(command) => points::points(command).await,
        Command::Bundle(command) => bundles::bundle(command).await,
        Command::Report(command) => reports::report(command).await,
        Command::User(command) => users::user(command).await,
        Command::Audit(args) => users::audit(args).await,
        Command::Demo(args) => civsync_node::demo::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command's arguments are consistent (no two `--json`, no
    /// clashing short flags): clap checks it only when a command is built.
    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_data_command_takes_json() {
        for args in [
            &["civsync", "stats", "--json"][..],
            &["civsync", "volunteer", "list", "--json"],
            &["civsync", "team", "list", "--json"],
            &["civsync", "activity", "list", "--json"],
            &["civsync", "conflicts", "--json"],
            &["civsync", "status", "--json"],
            &["civsync", "order", "list", "--json"],
            &["civsync", "pki", "revocations", "--json"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}
