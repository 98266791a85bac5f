//! The office's accounts and its audit log: `user add|list|unlock|password|remove`
//! and `audit`. They go through the running node's API with its token, like
//! every data command; passwords are read from a prompt (or stdin), never
//! from the command line, where `ps` and the shell history would keep them.

use super::{print_json, Target};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add an account: admin (管理员), clerk (录入员), approver (审核员)
    /// or auditor (审计员). The password is asked for (or read from stdin).
    Add {
        name: String,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        target: Target,
    },
    /// The accounts of this office (no password hashes).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Unlock an account locked after five wrong passwords.
    Unlock {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set a new password (asked for, or read from stdin); logs the
    /// account out everywhere.
    Password {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove an account; its audit entries stay.
    Remove {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only this account's entries.
    #[arg(long)]
    who: Option<String>,
    /// Only actions containing this text (e.g. login, POST, approvals).
    #[arg(long)]
    action: Option<String>,
    /// At most this many entries, newest first (up to 1,000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    target: Target,
}

/// A password from the terminal without echo, twice; or one line of stdin.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name} (密码): "))
            .context("cannot read the password")?;
        let second =
            rpassword::prompt_password("Again (再次输入): ").context("cannot read the password")?;
        if first != second {
            anyhow::bail!("the two passwords differ");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, role, target } => {
            let password = read_password(&name)?;
            let body = json!({"name": name, "role": role, "password": password});
            let answer: Value = target.client()?.post("users", &[], &body).await?;
            println!(
                "added {} ({})",
                answer["name"].as_str().unwrap_or(""),
                answer["role_label"].as_str().unwrap_or("")
            );
        }
        UserCommand::List { target } => {
            let answer: Value = target.client()?.get("users", &[]).await?;
            if target.json {
                print_json(&answer);
            } else {
                println!("{:<20} {:<10} {:<8}", "name", "role", "state");
                for account in answer.as_array().into_iter().flatten() {
                    println!(
                        "{:<20} {:<10} {:<8}",
                        account["name"].as_str().unwrap_or(""),
                        account["role"].as_str().unwrap_or(""),
                        if account["locked"].as_bool() == Some(true) {
                            "locked"
                        } else {
                            "ok"
                        }
                    );
                }
            }
        }
        UserCommand::Unlock { name, target } => {
            let _: Value = target
                .client()?
                .post(&format!("users/{name}/unlock"), &[], &json!({}))
                .await?;
            println!("unlocked {name}");
        }
        UserCommand::Password { name, target } => {
            let password = read_password(&name)?;
            let _: Value = target
                .client()?
                .post(
                    &format!("users/{name}/password"),
                    &[],
                    &json!({"password": password}),
                )
                .await?;
            println!("password of {name} changed; its sessions ended");
        }
        UserCommand::Remove { name, target } => {
            target.client()?.delete(&format!("users/{name}")).await?;
            println!("removed {name}");
        }
    }
    Ok(())
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(who) = args.who {
        query.push(("who", who));
    }
    if let Some(action) = args.action {
        query.push(("action", action));
    }
    let answer: Value = args.target.client()?.get("audit", &query).await?;
    if args.target.json {
        print_json(&answer);
        return Ok(());
    }
    for entry in answer.as_array().into_iter().flatten() {
        let at = entry["at_ms"].as_i64().unwrap_or(0);
        println!(
            "{}  {:<16} {:<15} {:<40} {:<10} {}",
            crate::web::layout::beijing_time(at),
            entry["who"].as_str().unwrap_or(""),
            entry["from"].as_str().unwrap_or(""),
            entry["action"].as_str().unwrap_or(""),
            entry["target"].as_str().unwrap_or(""),
            entry["outcome"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
