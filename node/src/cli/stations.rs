//! The station registry: `station add|retire|unretire|import|list`.

use super::Target;
use crate::cli::{tables, views};
use anyhow::Context;
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
