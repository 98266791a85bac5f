//! What a node shows and decides: `stats`, `report`, `certificate`, `approve`,
//! `send-back`, `approvals`, `freshness`, `status`, `conflicts`.

use super::{print_json, Target};
use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;
use std::path::PathBuf;

/// Figures, reports and decisions (flattened into the top level).
#[derive(Subcommand)]
pub enum ReportCommand {
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
}

pub async fn report(command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Stats { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            let stats: Value = target.client()?.get("stats", &query).await?;
            print_json(&stats);
            Ok(())
        }
        ReportCommand::Report {
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
        ReportCommand::Certificate { number, target } => {
            let mut query = target.query();
            query.push(("format", "text".into()));
            let bytes = target
                .client()?
                .get_bytes(&format!("certificates/{number}"), &query)
                .await?;
            println!("{}", String::from_utf8_lossy(&bytes));
            Ok(())
        }
        ReportCommand::Approve { month, target } => {
            let body = serde_json::json!({
                "station": target.required_station()?, "month": month, "decision": "approve",
            });
            let answer: Value = target.client()?.post("approvals", &[], &body).await?;
            print_json(&answer);
            Ok(())
        }
        ReportCommand::SendBack {
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
        ReportCommand::Approvals {
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
                print!("{}", crate::cli::tables::approvals_table(&answer));
            }
            Ok(())
        }
        ReportCommand::Freshness { json, target } => {
            let answer: Value = target.client()?.get("freshness", &target.query()).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", crate::cli::tables::freshness_table(&answer));
            }
            Ok(())
        }
        ReportCommand::Status { json, target } => {
            let status: Value = target.client()?.get("status", &[]).await?;
            if json {
                print_json(&status);
            } else {
                print!("{}", crate::cli::tables::status_table(&status));
            }
            Ok(())
        }
        ReportCommand::Conflicts { resolve, target } => {
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
    }
}
