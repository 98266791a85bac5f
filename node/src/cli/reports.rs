//! What a node shows and decides: `stats`, `report`, `certificate`, `approve`,
//! `send-back`, `approvals`, `freshness`, `status`, `conflicts`.

use super::Target;
use crate::cli::{tables, views};
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
    /// A volunteer's service certificate (志愿服务证明), signed by the node,
    /// with its verification code; `certificate verify FILE` checks one.
    Certificate(CertificateArgs),
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
        #[command(flatten)]
        target: Target,
    },
    /// How fresh each station's data is here; quiet stations are flagged.
    Freshness {
        #[command(flatten)]
        target: Target,
    },
    /// Sync status: peers, last seen, backlog, last error.
    Status {
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

/// `civsync certificate V1 [--out FILE]` or `civsync certificate verify FILE`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CertificateArgs {
    #[command(subcommand)]
    verify: Option<CertificateCommand>,
    /// The volunteer's number, or `<home station>:<number>` (numbers are
    /// unique only per station: a number two stations use must name one,
    /// here or with `--station`).
    #[arg(required = true)]
    number: Option<String>,
    /// Also write the signed certificate's JSON here (what `verify` reads).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

#[derive(Subcommand)]
pub enum CertificateCommand {
    /// Check a certificate's JSON: valid, or what was altered or is wrong.
    /// Needs only the county CA certificate; exits 1 when not valid.
    Verify {
        /// The certificate's JSON (`civsync certificate V1 --out FILE`).
        file: PathBuf,
        /// The county CA certificate; by default the one in the data
        /// directory's PKI folder.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A node's data directory, whose PKI folder holds the county CA.
        #[arg(
            long,
            short = 'd',
            env = "CIVSYNC_DATA_DIR",
            default_value = "civsync-data"
        )]
        data_dir: PathBuf,
    },
}

/// Largest certificate file `verify` reads (the API's body bound).
pub const CERTIFICATE_FILE_BYTES_MAX: u64 = crate::api::JSON_BODY_BYTES_MAX as u64;

async fn certificate(args: CertificateArgs) -> anyhow::Result<()> {
    if let Some(CertificateCommand::Verify { file, ca, data_dir }) = args.verify {
        return verify_certificate_file(&file, ca, &data_dir);
    }
    let number = args.number.context("name the volunteer's number")?;
    let mut target = args.target;
    // A qualified number travels as `?station=`: a station path has slashes.
    let number = match number.rsplit_once(':') {
        Some((home, bare)) => {
            let home = civsync_protocol::StationId::parse(home)
                .with_context(|| format!("{number}: not <home station>:<number>"))?;
            if target.station.as_ref().is_some_and(|s| *s != home) {
                anyhow::bail!("{number} names home station {home}, --station another");
            }
            target.station = Some(home);
            bare.to_string()
        }
        None => number,
    };
    // One request: each issue is signed anew (the code differs), so the
    // printed text is made from the very JSON written to --out.
    let json: Value = target
        .client()?
        .get(&format!("certificates/{number}"), &target.query())
        .await?;
    let certificate: crate::files::report::ServiceCertificate =
        serde_json::from_value(json.clone()).context("the node sent no certificate")?;
    if let Some(out) = &args.out {
        let mut text = serde_json::to_string_pretty(&json)?;
        text.push('\n');
        std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if target.json {
        super::print_json(&json);
    } else {
        println!("{}", crate::files::report::certificate_text(&certificate));
    }
    Ok(())
}

fn verify_certificate_file(
    file: &std::path::Path,
    ca: Option<PathBuf>,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::net::pki;
    let ca_path = match ca {
        Some(path) => path,
        None => crate::config::NodeConfig::load(data_dir)
            .with_context(|| {
                format!(
                    "no --ca given and no node in {} to take the county CA from",
                    data_dir.display()
                )
            })?
            .pki_path(data_dir)
            .join(pki::CA_CERT_FILE),
    };
    let (ca, ca_identity) = pki::load_ca_certificate(&ca_path)?;
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size > CERTIFICATE_FILE_BYTES_MAX {
        anyhow::bail!(
            "{}: {size} bytes; a certificate is at most {CERTIFICATE_FILE_BYTES_MAX}",
            file.display()
        );
    }
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let certificate: crate::files::report::ServiceCertificate = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a certificate's JSON", file.display()))?;
    let verdict = crate::context::certificates::verify_certificate(
        &certificate,
        &ca,
        &ca_identity.station,
        pki::now_unix_s(),
    );
    println!("{}", verdict.summary);
    for problem in &verdict.problems {
        println!("  {}: {}", problem.field, problem.reason);
    }
    if !verdict.valid {
        std::process::exit(1);
    }
    Ok(())
}

pub async fn report(command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Stats { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            target
                .get_and_show("stats", &query, views::stats_view)
                .await
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
                if target.json {
                    eprintln!("wrote {}", file.display());
                } else {
                    println!("wrote {}", file.display());
                }
            }
            if target.json {
                super::print_json(&json);
            } else {
                println!("{}", json["title"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        ReportCommand::Certificate(args) => certificate(args).await,
        ReportCommand::Approve { month, target } => {
            let body = serde_json::json!({
                "station": target.required_station()?, "month": month, "decision": "approve",
            });
            let answer: Value = target.client()?.post("approvals", &[], &body).await?;
            target.show(&answer, views::decision_written);
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
            target.show(&answer, views::decision_written);
            Ok(())
        }
        ReportCommand::Approvals { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            target
                .get_and_show("approvals", &query, tables::approvals_table)
                .await
        }
        ReportCommand::Freshness { target } => {
            target
                .get_and_show("freshness", &target.query(), tables::freshness_table)
                .await
        }
        ReportCommand::Status { target } => {
            target
                .get_and_show("status", &[], tables::status_table)
                .await
        }
        ReportCommand::Conflicts { resolve, target } => {
            let client = target.client()?;
            match resolve {
                Some(parts) => {
                    let body = serde_json::json!({"document": parts[0], "path": parts[1], "value": parts[2]});
                    let _: Value = client.post("conflicts/resolve", &[], &body).await?;
                    println!("resolved {} {}", parts[0], parts[1]);
                }
                None => target.show(
                    &client.get::<Value>("conflicts", &target.query()).await?,
                    views::conflicts_view,
                ),
            }
            Ok(())
        }
    }
}
