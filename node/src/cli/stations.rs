//! The station registry: `station add|retire|unretire|import|list`.

use super::Target;
use crate::cli::{tables, views};
use clap::Subcommand;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum StationCommand {
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
    /// Register or rename the stations of a CSV or XLSX file (columns
    /// 站点编码/id and 站点名称/name, 层级/tier optional) in one commit;
    /// refused rows are listed with their reason, the rest kept.
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
        #[command(flatten)]
        target: Target,
    },
}

pub async fn station(command: StationCommand) -> anyhow::Result<()> {
    match command {
        StationCommand::Add {
            id,
            name,
            tier,
            target,
        } => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here; --id names the station"
            );
            let body = civsync_protocol::service::registry::StationInput { id, name, tier };
            let answer: Value = target.client()?.post("stations", &[], &body).await?;
            target.show(&answer, views::station_written);
            Ok(())
        }
        StationCommand::Retire {
            id,
            on,
            merged_into,
            target,
        } => {
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
            target.show(&answer, views::station_written);
            Ok(())
        }
        StationCommand::Unretire { id, target } => {
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
            target.show(&answer, views::station_written);
            Ok(())
        }
        StationCommand::Import { file, target } => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here; each row's code names its station"
            );
            let report = target
                .post_spreadsheet("import/stations", &file, "station_import")
                .await?;
            target.show(&report, views::import_view);
            Ok(())
        }
        StationCommand::List { target } => {
            let query: Vec<(&str, String)> = target
                .station
                .iter()
                .map(|s| ("under", s.to_string()))
                .collect();
            target
                .get_and_show("stations", &query, tables::stations_table)
                .await
        }
    }
}
