//! The CLI's client for a running node's local API.
//!
//! Data commands (`civsync volunteer add`, `civsync stats`, ...) go through
//! the API rather than opening the store, so a clerk can use them while the
//! node serves and syncs; the store has exactly one writer.

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// How long the CLI waits for the node before giving up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    /// The node's bearer token (its data directory's `api-token`).
    token: Option<String>,
}

impl ApiClient {
    pub fn new(base: &str) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        })
    }

    /// Send this bearer token with every request.
    pub fn with_token(mut self, token: Option<String>) -> ApiClient {
        self.token = token;
        self
    }

    /// A client of the node whose data directory is `data_dir`, with its
    /// token.
    pub fn for_data_dir(base: &str, data_dir: &std::path::Path) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(base)?.with_token(crate::access::token::read(data_dir)?))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{}", self.base, path.trim_start_matches('/'))
    }

    async fn finish<T: DeserializeOwned>(
        &self,
        response: reqwest::Result<reqwest::Response>,
    ) -> anyhow::Result<T> {
        let response = response.with_context(|| self.not_answering())?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            if bytes.is_empty() {
                return serde_json::from_value(Value::Null).context("empty answer");
            }
            return serde_json::from_slice(&bytes)
                .context("the node answered with something that is not JSON");
        }
        Err(refusal(status, &bytes))
    }

    fn not_answering(&self) -> String {
        format!(
            "the node's API at {} does not answer; is `civsync run` running?",
            self.base
        )
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let response = self
            .request(reqwest::Method::GET, path)
            .query(query)
            .send()
            .await;
        self.finish(response).await
    }

    /// GET raw bytes (CSV, XLSX, text).
    pub async fn get_bytes(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<u8>> {
        let response = self
            .request(reqwest::Method::GET, path)
            .query(query)
            .send()
            .await
            .with_context(|| self.not_answering())?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        Ok(bytes.to_vec())
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &B,
    ) -> anyhow::Result<T> {
        let response = self
            .request(reqwest::Method::POST, path)
            .query(query)
            .json(body)
            .send()
            .await;
        self.finish(response).await
    }

    /// POST a body as is: a file to import (`application/octet-stream`), or
    /// JSON read from a file (`application/json`).
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<T> {
        let response = self
            .request(reqwest::Method::POST, path)
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await;
        self.finish(response).await
    }
}

/// How long the CLI waits for a whole backup to arrive.
pub const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

impl ApiClient {
    /// POST `body` as JSON and write the answer's bytes into `out` as they
    /// come, at most `max` of them; returns the answer's headers and the
    /// bytes written. For backups: the timeout is [`BACKUP_TIMEOUT`].
    pub async fn post_to_writer<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        out: &mut (impl std::io::Write + ?Sized),
        max: u64,
    ) -> anyhow::Result<(reqwest::header::HeaderMap, u64)> {
        let mut response = self
            .request(reqwest::Method::POST, path)
            .timeout(BACKUP_TIMEOUT)
            .json(body)
            .send()
            .await
            .with_context(|| self.not_answering())?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await?;
            return Err(refusal(status, &bytes));
        }
        let headers = response.headers().clone();
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await? {
            written += chunk.len() as u64;
            if written > max {
                anyhow::bail!("the node sent more than {max} bytes");
            }
            out.write_all(&chunk)?;
        }
        Ok((headers, written))
    }

    /// DELETE; the node answers 204 with no body.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let response = self.request(reqwest::Method::DELETE, path).send().await;
        let _: Value = self.finish(response).await?;
        Ok(())
    }
}

/// A refused request as a clerk should read it: the API's
/// `{"error":{"field","reason"}}` when there is one, else the body as text.
fn refusal(status: reqwest::StatusCode, bytes: &[u8]) -> anyhow::Error {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match (
        body["error"]["field"].as_str(),
        body["error"]["reason"].as_str(),
    ) {
        (Some(field), Some(reason)) => {
            anyhow::anyhow!("refused ({}): {field}: {reason}", status.as_u16())
        }
        _ => anyhow::anyhow!(
            "refused ({}): {}",
            status.as_u16(),
            String::from_utf8_lossy(bytes)
        ),
    }
}
