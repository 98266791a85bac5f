//! What offices send down: `menu add|list`, `theme set|list`.

use super::Target;
use crate::cli::{tables, views};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum MenuCommand {
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
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum ThemeCommand {
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
        #[command(flatten)]
        target: Target,
    },
}

pub async fn menu(command: MenuCommand) -> anyhow::Result<()> {
    match command {
        MenuCommand::Add {
            id,
            name,
            category,
            description,
            provider,
            withdrawn,
            target,
        } => {
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
            target
                .post_and_show("menu", &body, views::menu_item_written)
                .await
        }
        MenuCommand::List { target } => {
            target
                .get_and_show("menu", &target.query(), tables::menu_table)
                .await
        }
    }
}

pub async fn theme(command: ThemeCommand) -> anyhow::Result<()> {
    match command {
        ThemeCommand::Set {
            month,
            title,
            description,
            target,
        } => {
            anyhow::ensure!(
                target.station.is_none(),
                "--station does not apply here: an office sets its own themes"
            );
            let body = civsync_protocol::service::catalog::ThemeInput {
                month,
                title,
                description,
            };
            target
                .post_and_show("themes", &body, views::theme_written)
                .await
        }
        ThemeCommand::List { month, target } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            target
                .get_and_show("themes", &query, tables::themes_table)
                .await
        }
    }
}
