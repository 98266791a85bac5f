//! Citizens' service orders (四单): `order place|list|dispatch|take|rate|cancel`.

use super::Target;
use crate::cli::{tables, views};
use crate::config::NodeConfig;
use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum OrderCommand {
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

pub async fn order(command: OrderCommand) -> anyhow::Result<()> {
    match command {
        OrderCommand::Place {
            menu_item,
            requester,
            placed_on,
            id,
            target,
        } => {
            let body = civsync_protocol::domain::input::OrderInput {
                id,
                menu_item,
                requester,
                placed_on,
            };
            target
                .post_and_show("orders", &body, views::order_written)
                .await
        }
        OrderCommand::List { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            target
                .get_and_show("orders", &query, tables::orders_table)
                .await
        }
        OrderCommand::Dispatch {
            order,
            team,
            target,
        } => {
            let body = order_step_body(&target, order, [("team", Value::from(team))])?;
            target
                .post_and_show("orders/dispatch", &body, views::order_written)
                .await
        }
        OrderCommand::Take { order, target } => {
            let body = order_step_body(&target, order, [])?;
            target
                .post_and_show("orders/take", &body, views::order_written)
                .await
        }
        OrderCommand::Rate {
            order,
            rating,
            comment,
            target,
        } => {
            let fields = [
                ("rating", Value::from(rating)),
                ("comment", Value::from(comment)),
            ];
            let body = order_step_body(&target, order, fields)?;
            target
                .post_and_show("orders/rate", &body, views::order_written)
                .await
        }
        OrderCommand::Cancel {
            order,
            reason,
            target,
        } => {
            let body = order_step_body(&target, order, [("reason", Value::from(reason))])?;
            target
                .post_and_show("orders/cancel", &body, views::order_written)
                .await
        }
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
