//! The `civsync` command line: the commands grouped by what they act on,
//! the client that talks to a running node's API (`client`), and what they
//! print: aligned columns (`columns`), the tables and sentences a clerk
//! reads (`tables`, `views`), or with `--json` the API's answer as it came.
//!
//! Layer: above `node` (it runs one) and the API (it calls one over HTTP);
//! below only `demo`. Data commands go through the API, never the store.

pub mod bundles;
pub mod catalog;
pub mod client;
pub mod columns;
pub mod import_progress;
pub mod orders;
pub mod points;
pub mod records;
pub mod reports;
pub mod setup;
pub mod stations;
pub mod tables;
pub mod users;
pub mod views;

use crate::cli::client::ApiClient;
use crate::config::NodeConfig;
use anyhow::Context;
use civsync_protocol::StationId;
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct Target {
    /// The node's data directory (its civsync.toml says where its API listens).
    #[arg(
        long,
        short = 'd',
        env = "CIVSYNC_DATA_DIR",
        default_value = "civsync-data"
    )]
    pub data_dir: PathBuf,
    /// Talk to this API instead, e.g. http://127.0.0.1:7400.
    #[arg(long, env = "CIVSYNC_API")]
    pub api: Option<String>,
    /// Act on this station instead of the node's own (a station below it).
    #[arg(long)]
    pub station: Option<StationId>,
    /// Print the API's JSON answer, for scripts, instead of a table or a
    /// sentence.
    #[arg(long)]
    pub json: bool,
}

impl Target {
    pub(crate) fn client(&self) -> anyhow::Result<ApiClient> {
        let base = match &self.api {
            Some(api) => api.clone(),
            None => format!("http://{}", NodeConfig::load(&self.data_dir)?.api_listen),
        };
        // The token: given for a remote API, else the node's own file.
        let token = match std::env::var("CIVSYNC_API_TOKEN") {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_string()),
            _ => crate::access::token::read(&self.data_dir)?,
        };
        Ok(ApiClient::new(&base)?.with_token(token))
    }

    /// POST `body` to the node and show its answer (`view`, or `--json`).
    pub(crate) async fn post_and_show<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
        view: fn(&Value) -> String,
    ) -> anyhow::Result<()> {
        let answer: Value = self.client()?.post(path, &self.query(), body).await?;
        self.show(&answer, view);
        Ok(())
    }

    /// The API's answer as JSON with `--json`, else as `view` renders it.
    pub(crate) fn show(&self, answer: &Value, view: fn(&Value) -> String) {
        if self.json {
            print_json(answer);
        } else {
            print!("{}", view(answer));
        }
    }

    /// POST a spreadsheet (CSV, or XLSX by its extension) to an import
    /// endpoint and return the node's report; on a terminal, with a
    /// progress bar of the node's job of `job_kind` meanwhile.
    pub(crate) async fn post_spreadsheet(
        &self,
        path: &str,
        file: &std::path::Path,
        job_kind: &str,
    ) -> anyhow::Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut query = self.query();
        let is_xlsx = file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
        query.push(("format", if is_xlsx { "xlsx" } else { "csv" }.to_string()));
        let client = self.client()?;
        let file_bytes = bytes.len() as u64;
        let upload = client.post_bytes(path, &query, bytes, "application/octet-stream");
        import_progress::while_importing(&client, job_kind, file_bytes, upload).await
    }

    /// GET from the node and show its answer (`view`, or `--json`).
    pub(crate) async fn get_and_show(
        &self,
        path: &str,
        query: &[(&str, String)],
        view: fn(&Value) -> String,
    ) -> anyhow::Result<()> {
        let answer: Value = self.client()?.get(path, query).await?;
        self.show(&answer, view);
        Ok(())
    }

    /// `--station`, which a decision on a month must name.
    pub(crate) fn required_station(&self) -> anyhow::Result<String> {
        match &self.station {
            Some(station) => Ok(station.to_string()),
            None => anyhow::bail!("--station is required: the station whose month is decided"),
        }
    }

    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        self.station
            .iter()
            .map(|s| ("station", s.to_string()))
            .collect()
    }
}

pub(crate) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
