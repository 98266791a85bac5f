//! `civsync import`'s progress bar on a terminal. The work happens in the
//! node, so while the file goes up and is imported the CLI polls the
//! node's `status` for the job the import started (the first job of its
//! kind newer than any listed before the upload) and draws its rows and
//! phase with `indicatif`. When stderr is not a terminal nothing is drawn
//! or polled: the node's log carries the counts.

use crate::cli::client::ApiClient;
use crate::progress::byte_size;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

/// How often the node's status is asked while an import runs.
pub const STATUS_POLL_MS: u64 = 250;

/// Run `work` (the upload and the node's answer), drawing the progress of
/// the node's job of `kind` (`roster_import`, `ledger_import`) meanwhile.
pub async fn while_importing<T>(
    client: &ApiClient,
    kind: &str,
    file_bytes: u64,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    // A node too old to list jobs, or not answering: the import says why.
    let Ok(before) = newest_job_id(client).await else {
        return work.await;
    };
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(spinner_style());
    bar.set_message(format!("sending {}", byte_size(file_bytes)));
    bar.enable_steady_tick(Duration::from_millis(100));
    let poll = async {
        loop {
            tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)).await;
            if let Some(job) = our_job(client, kind, before).await {
                draw(&bar, &job);
            }
        }
    };
    let result = tokio::select! {
        result = work => result,
        () = poll => unreachable!("the poll loop never ends"),
    };
    match (&result, our_job(client, kind, before).await) {
        (Ok(_), Some(job)) => {
            draw(&bar, &job);
            bar.finish_with_message(text(&job["phase"]));
        }
        _ => bar.finish_and_clear(),
    }
    result
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid progress template")
}

fn bar_style(unit: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{spinner}} [{{bar:32}}] {{human_pos}} / {{human_len}} {unit} ({{percent}}%) {{msg}} ({{elapsed}})"
    ))
    .expect("a valid progress template")
    .progress_chars("=> ")
}

/// The bar as the node's job stands.
fn draw(bar: &ProgressBar, job: &Value) {
    if let Some(total) = job["total"].as_u64() {
        if bar.length() != Some(total) {
            bar.set_style(bar_style(job["unit"].as_str().unwrap_or("rows")));
            bar.set_length(total);
        }
        bar.set_position(job["done"].as_u64().unwrap_or(0));
    }
    bar.set_message(text(&job["phase"]));
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_string()
}

async fn jobs(client: &ApiClient) -> anyhow::Result<Vec<Value>> {
    let status: Value = client.get("status", &[]).await?;
    match status["jobs"].as_array() {
        Some(jobs) => Ok(jobs.clone()),
        None => anyhow::bail!("the node lists no jobs"),
    }
}

async fn newest_job_id(client: &ApiClient) -> anyhow::Result<u64> {
    Ok(jobs(client)
        .await?
        .iter()
        .filter_map(|job| job["id"].as_u64())
        .max()
        .unwrap_or(0))
}

/// The first job of `kind` started after `before`.
async fn our_job(client: &ApiClient, kind: &str, before: u64) -> Option<Value> {
    jobs(client).await.ok()?.into_iter().find(|job| {
        job["kind"].as_str() == Some(kind) && job["id"].as_u64().is_some_and(|id| id > before)
    })
}
