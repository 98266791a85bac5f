//! Points (积分): `points rate|balance|history|redeem|transfer|months`.
//!
//! Every command goes through the node's API (`api/points.rs`); the views
//! here print one sentence per write and plain lines per read.

use super::Target;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum PointsCommand {
    /// The rate in force here (the county's); at the county, --set publishes
    /// a new one (administrator).
    Rate {
        /// Points per service hour, 0 to 1,000; 0 turns earning off.
        #[arg(long)]
        set: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// What a volunteer may spend here, and every allotment visible here.
    Balance {
        /// `<home station>:<number>`.
        volunteer: String,
        #[command(flatten)]
        target: Target,
    },
    /// A volunteer's earned months, redemptions and transfers seen here.
    History {
        volunteer: String,
        #[command(flatten)]
        target: Target,
    },
    /// Redeem a volunteer's points at this station's supermarket (爱心超市).
    Redeem {
        volunteer: String,
        #[arg(long)]
        points: u64,
        /// What the volunteer takes, e.g. "大米 5kg".
        #[arg(long)]
        item: String,
        /// The clerk at the counter.
        #[arg(long)]
        clerk: String,
        #[command(flatten)]
        target: Target,
    },
    /// Move a volunteer's points from this station to one above or below it.
    Transfer {
        volunteer: String,
        #[arg(long)]
        points: u64,
        /// The station that receives them.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        target: Target,
    },
    /// Per station of --station's subtree: points earned, spent, moved and
    /// outstanding in a month.
    Months {
        /// YYYY-MM; this month when absent.
        #[arg(long)]
        month: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn points(command: PointsCommand) -> anyhow::Result<()> {
    match command {
        PointsCommand::Rate { set, target } => match set {
            Some(points_per_hour) => {
                let body = serde_json::json!({ "points_per_hour": points_per_hour });
                target.post_and_show("points/rate", &body, rate_view).await
            }
            None => {
                target
                    .get_and_show("points/rate", &target.query(), rate_view)
                    .await
            }
        },
        PointsCommand::Balance { volunteer, target } => {
            let mut query = target.query();
            query.push(("volunteer", volunteer));
            target
                .get_and_show("points/balance", &query, balance_view)
                .await
        }
        PointsCommand::History { volunteer, target } => {
            let mut query = target.query();
            query.push(("volunteer", volunteer));
            target
                .get_and_show("points/history", &query, history_view)
                .await
        }
        PointsCommand::Redeem {
            volunteer,
            points,
            item,
            clerk,
            target,
        } => {
            let body = civsync_protocol::service::points::RedemptionInput {
                volunteer,
                points,
                item,
                clerk,
            };
            target
                .post_and_show("points/redemptions", &body, written_view)
                .await
        }
        PointsCommand::Transfer {
            volunteer,
            points,
            to,
            target,
        } => {
            let body = civsync_protocol::service::points::TransferInput {
                volunteer,
                points,
                to,
            };
            target
                .post_and_show("points/transfers", &body, written_view)
                .await
        }
        PointsCommand::Months { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            target
                .get_and_show("points/months", &query, months_view)
                .await
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.replace(|c: char| c.is_control(), " "),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn rate_view(answer: &Value) -> String {
    let rate = &answer["rate"];
    if rate.is_null() {
        return "no points rate held here yet: the county publishes it\n".into();
    }
    format!(
        "{} points per service hour (set by {})\n",
        text(&rate["points_per_hour"]),
        text(&rate["set_by"])
    )
}

fn balance_view(balance: &Value) -> String {
    let mut out = format!(
        "{} may spend {} of {}'s points here (earned {}, spent {}, {} held in all seen here)\n",
        text(&balance["station"]),
        text(&balance["here"]),
        text(&balance["volunteer"]),
        text(&balance["earned"]),
        text(&balance["spent"]),
        text(&balance["total"]),
    );
    for allotment in balance["allotments"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<24} {:>8}\n",
            text(&allotment["station"]),
            text(&allotment["points"])
        ));
    }
    out
}

fn history_view(answer: &Value) -> String {
    let mut out = String::new();
    for entry in answer["entries"].as_array().into_iter().flatten() {
        let what = match entry["kind"].as_str() {
            Some("earned") => format!("earned at {}", text(&entry["volunteer"])),
            Some("redemption") => format!(
                "{} redeemed at {}: {} (clerk {})",
                text(&entry["date"]),
                text(&entry["station"]),
                text(&entry["item"]),
                text(&entry["clerk"])
            ),
            Some("transfer") => format!(
                "{} moved {} → {}",
                text(&entry["date"]),
                text(&entry["from"]),
                text(&entry["to"])
            ),
            _ => text(&entry["kind"]),
        };
        out.push_str(&format!(
            "{}  {:>8}  {what}\n",
            text(&entry["month"]),
            text(&entry["points"])
        ));
    }
    if out.is_empty() {
        out.push_str("no points entries seen here\n");
    }
    out
}

fn written_view(answer: &Value) -> String {
    let entry = &answer["entry"];
    format!(
        "{} {} points of {}; {} may now spend {} here\n",
        if entry["kind"] == "transfer" {
            "moved"
        } else {
            "redeemed"
        },
        text(&entry["points"]),
        text(&entry["volunteer"]),
        text(&answer["balance"]["station"]),
        text(&answer["balance"]["here"]),
    )
}

fn months_view(answer: &Value) -> String {
    let mut out = format!(
        "{} {}\n{:<24} {:>8} {:>8} {:>8} {:>8} {:>11}\n",
        text(&answer["station"]),
        text(&answer["month"]),
        "station",
        "earned",
        "spent",
        "in",
        "out",
        "outstanding"
    );
    for line in answer["stations"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>11}\n",
            text(&line["station"]),
            text(&line["earned"]),
            text(&line["spent"]),
            text(&line["transferred_in"]),
            text(&line["transferred_out"]),
            text(&line["outstanding"]),
        ));
    }
    out
}
