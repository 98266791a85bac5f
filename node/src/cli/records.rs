//! A station's records: `volunteer`, `team`, `activity`, and `import` (a roster file).

use super::Target;
use crate::cli::{tables, views};
use anyhow::Context;
use civsync_protocol::domain::input::{
    ActivityInput, HoursInput, ServiceRecordInput, TeamInput, VolunteerInput,
};
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum VolunteerCommand {
    /// Register a volunteer. The ID number is checked, sealed to the county
    /// and masked; it is never stored in clear. It is read from standard input
    /// (`echo 11010519491231002X | civsync volunteer add --name 张伟 --sex 男
    /// --id-number-stdin`) or asked for at a prompt, never taken from the
    /// command line, which shell history and `ps` show to others.
    Add {
        #[arg(long)]
        name: String,
        /// 男/女 or male/female.
        #[arg(long)]
        sex: String,
        /// Read the ID number from the first line of standard input. Without
        /// it, a terminal is prompted and piped input is read all the same.
        #[arg(long)]
        id_number_stdin: bool,
        /// Refused: use --id-number-stdin or the prompt (see above).
        #[arg(long, hide = true, value_name = "REFUSED")]
        id_number: Option<String>,
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
        #[command(flatten)]
        target: Target,
    },
    /// People registered more than once under --station (the county's
    /// office only: it alone opens the sealed ID numbers). Reported, never
    /// merged.
    Duplicates {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
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
    /// Import a station's teams (志愿服务队) from a CSV or XLSX file, one
    /// row a team (队伍名称, 服务类别; 队伍编号, 上级队伍, 队长编号,
    /// 队员编号 optional); prints the report of every row.
    Import {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum ActivityCommand {
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

/// The roster import (flattened into the top level).
#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import a roster of volunteers from a CSV or XLSX file.
    Import {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn volunteer(command: VolunteerCommand) -> anyhow::Result<()> {
    match command {
        VolunteerCommand::Add {
            name,
            sex,
            id_number_stdin,
            id_number,
            phone,
            number,
            skills,
            categories,
            consent,
            target,
        } => {
            if id_number.is_some() {
                anyhow::bail!("{ID_NUMBER_ARGV_REFUSED}");
            }
            let stdin = std::io::stdin();
            let prompt = !id_number_stdin && stdin.is_terminal();
            let id_number = read_id_number(stdin.lock(), prompt)?;
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
            target
                .post_and_show("volunteers", &input, views::volunteer_written)
                .await
        }
        VolunteerCommand::List { target } => {
            target
                .get_and_show("volunteers", &target.query(), views::volunteers_view)
                .await
        }
        VolunteerCommand::Standing { limit, target } => {
            let mut query = target.query();
            query.push(("limit", limit.to_string()));
            target
                .get_and_show("standings", &query, tables::standings_table)
                .await
        }
        VolunteerCommand::Duplicates { target } => {
            target
                .get_and_show("duplicates", &target.query(), tables::duplicates_table)
                .await
        }
    }
}

/// Why `--id-number VALUE` is refused (the value is not repeated).
pub const ID_NUMBER_ARGV_REFUSED: &str =
    "--id-number is refused: an ID number on the command line \
stays in shell history and is shown by `ps` to every user of this computer. Pipe it in \
instead (echo <ID number> | civsync volunteer add ... --id-number-stdin), or leave both \
out and type it at the prompt";

/// The ID number: the first line of `input`, trimmed; `prompt` asks for it
/// on stderr first (a terminal). Never echoed back.
pub fn read_id_number(mut input: impl std::io::BufRead, prompt: bool) -> anyhow::Result<String> {
    if prompt {
        eprint!("身份证号 (ID number): ");
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the ID number from standard input")?;
    let number = line.trim();
    if number.is_empty() {
        anyhow::bail!(
            "no ID number on standard input: pipe it in (echo <ID number> | civsync volunteer add ... --id-number-stdin) or type it at the prompt"
        );
    }
    Ok(number.to_string())
}

pub async fn team(command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Add {
            name,
            category,
            leader,
            members,
            target,
        } => {
            let input = TeamInput {
                name,
                category,
                leader,
                members,
                ..TeamInput::default()
            };
            target
                .post_and_show("teams", &input, views::team_written)
                .await
        }
        TeamCommand::List { target } => {
            target
                .get_and_show("teams", &target.query(), views::teams_view)
                .await
        }
        TeamCommand::Import { file, target } => {
            let report = target
                .post_spreadsheet("import/teams", &file, "team_import")
                .await?;
            target.show(&report, views::import_view);
            Ok(())
        }
    }
}

pub async fn activity(command: ActivityCommand) -> anyhow::Result<()> {
    match command {
        ActivityCommand::Add {
            name,
            date,
            form,
            category,
            place,
            beneficiaries,
            team,
            records,
            target,
        } => {
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
            target
                .post_and_show("activities", &input, views::activity_written)
                .await
        }
        ActivityCommand::Import { file, target } => {
            let report = target
                .post_spreadsheet("import/activities", &file, "ledger_import")
                .await?;
            target.show(&report, views::import_view);
            if !target.json {
                return Ok(());
            }
            // Scripts read the JSON on stdout; the person running them
            // still sees the outcome.
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
        ActivityCommand::List {
            month,
            subtree,
            target,
        } => {
            let mut query = target.query();
            query.extend(month.map(|m| ("month", m)));
            if subtree {
                query.push(("subtree", "true".into()));
            }
            target
                .get_and_show("activities", &query, views::activities_view)
                .await
        }
    }
}

pub async fn import(command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Import { file, target } => {
            let report = target
                .post_spreadsheet("import/volunteers", &file, "roster_import")
                .await?;
            target.show(&report, views::import_view);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_number_is_the_first_line_of_input_trimmed() {
        let input = b"11010519491231002X\nnext line\n";
        assert_eq!(
            read_id_number(&input[..], false).unwrap(),
            "11010519491231002X"
        );
        let error = read_id_number(&b"\n"[..], false).unwrap_err().to_string();
        assert!(error.contains("no ID number on standard input"), "{error}");
    }
}
