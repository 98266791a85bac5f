//! `POST backup` (`{"with_keys": bool}`, administrator only): a consistent
//! backup of the node, streamed as the answer. The store's owner thread
//! writes every tree into a temporary file in the data directory in one
//! pass (no write interleaves; every write acknowledged before the request
//! is in it), and that file is streamed and removed. Keys — the node key and
//! certificate folder, the county ID keys, the API token and the web
//! accounts — are included only with `with_keys`, and the header says so.
//! The backup is audit-logged (`backup`, with or without keys, bytes and
//! checksum). Refused with 507 when the disk has not room for it.

use super::common::*;
use crate::access::audit::AuditEntry;
use crate::access::guard::Principal;
use crate::context::{NodeContext, COUNTY_ID_PRIVATE_FILE, COUNTY_ID_PUBLIC_FILE, PHONE_KEY_FILE};
use crate::store::backup::{BackupHeader, BACKUP_BYTES_MAX, FILE_BYTES_MAX};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Answer headers: the checksum and whether keys are inside.
pub const SHA256_HEADER: &str = "x-civsync-backup-sha256";
pub const WITH_KEYS_HEADER: &str = "x-civsync-backup-with-keys";
/// Bytes read from the temporary file per piece of the answer.
const STREAM_CHUNK_BYTES: usize = 256 * 1024;
/// The web accounts' tree (password hashes): only with the keys.
const ACCOUNTS_TREE: &str = "local|accounts";
/// The certificate folder's files a backup with keys carries.
const PKI_FILES: [&str; 6] = [
    "node.key",
    PHONE_KEY_FILE,
    "node.crt",
    "ca.crt",
    COUNTY_ID_PUBLIC_FILE,
    COUNTY_ID_PRIVATE_FILE,
];

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/backup", post(backup))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    #[serde(default)]
    with_keys: bool,
}

/// The files a backup carries, relative to the data directory.
fn files_to_carry(ctx: &NodeContext, with_keys: bool) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let read = |path: &std::path::Path| -> Result<Option<Vec<u8>>, ApiError> {
        match std::fs::metadata(path) {
            Err(_) => Ok(None),
            Ok(meta) if meta.len() > u64::from(FILE_BYTES_MAX) => Err(ApiError::internal(format!(
                "{} is larger than a backup carries",
                path.display()
            ))),
            Ok(_) => std::fs::read(path).map(Some).map_err(|error| {
                ApiError::internal(format!("reading {}: {error}", path.display()))
            }),
        }
    };
    let mut files = Vec::new();
    let config = ctx.data_dir.join(crate::config::CONFIG_FILE);
    if let Some(bytes) = read(&config)? {
        files.push((crate::config::CONFIG_FILE.to_string(), bytes));
    }
    if with_keys {
        if let Some(bytes) = read(&ctx.data_dir.join(crate::access::token::TOKEN_FILE))? {
            files.push((crate::access::token::TOKEN_FILE.to_string(), bytes));
        }
        let pki = ctx.config.pki_path(&ctx.data_dir);
        for name in PKI_FILES {
            if let Some(bytes) = read(&pki.join(name))? {
                files.push((format!("pki/{name}"), bytes));
            }
        }
    }
    Ok(files)
}

async fn backup(
    State(ctx): Ctx,
    principal: Option<Extension<Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: BackupRequest = match body {
        Ok(bytes) if bytes.is_empty() => BackupRequest::default(),
        body => json_body(body)?,
    };
    let with_keys = request.with_keys;
    // Room for a copy of the store, and the health margin left after it.
    let store_bytes = ctx
        .store
        .call(|replica| replica.storage().size_on_disk())
        .await?
        .map_err(|error| ApiError::internal(error.to_string()))?;
    if store_bytes > BACKUP_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "store",
            format!("the store ({store_bytes} bytes) is larger than a backup may be ({BACKUP_BYTES_MAX})"),
        ));
    }
    if let Some(disk) = super::health::disk_space(&ctx.data_dir) {
        let needed = store_bytes + super::health::DISK_FREE_FAILING_BYTES;
        if disk.free_bytes < needed {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk",
                format!(
                    "{} MiB free in the data directory; a backup needs about {} MiB there for a moment",
                    disk.free_bytes / (1024 * 1024),
                    needed / (1024 * 1024)
                ),
            ));
        }
    }
    let files = files_to_carry(&ctx, with_keys)?;
    let now_ms = crate::clock::now_ms();
    let header = BackupHeader {
        station: ctx.config.station.to_string(),
        tier: ctx.config.tier.to_string(),
        created_at_ms: now_ms,
        node_version: env!("CARGO_PKG_VERSION").to_string(),
        with_keys,
        note: if with_keys {
            "WITH KEYS: this file holds the node key, the certificates, the API token and the web accounts; keep it as safe as the office PC".to_string()
        } else {
            "without keys: to restore, copy the office's certificate folder (pki) back into the data directory; the web accounts are not inside".to_string()
        },
    };
    let temporary = ctx
        .data_dir
        .join(format!(".backup-{now_ms}-{}.part", std::process::id()));
    let file = open_private(&temporary).map_err(|error| {
        ApiError::internal(format!("creating {}: {error}", temporary.display()))
    })?;
    let skip = if with_keys {
        Vec::new()
    } else {
        vec![ACCOUNTS_TREE.to_string()]
    };
    let written = ctx.store.backup(header, files, skip, file).await;
    let reader = tokio::fs::File::open(&temporary).await;
    // Streamed from the open file; the name goes at once, so nothing is
    // left behind whatever happens to the answer.
    let _ = std::fs::remove_file(&temporary);
    let summary =
        written.map_err(|error| ApiError::internal(format!("writing the backup: {error}")))?;
    let reader =
        reader.map_err(|error| ApiError::internal(format!("reading the backup: {error}")))?;
    let who = principal
        .map(|Extension(principal)| principal.who)
        .unwrap_or_else(|| crate::access::guard::TOKEN_PRINCIPAL.to_string());
    let entry = AuditEntry {
        at_ms: now_ms,
        who,
        from: String::new(),
        action: "backup".to_string(),
        target: if with_keys {
            "with keys"
        } else {
            "without keys"
        }
        .to_string(),
        outcome: format!("{} bytes, sha256 {}", summary.bytes, summary.sha256),
    };
    crate::access::guard::append(&ctx.access, entry).await;
    tracing::info!(bytes = summary.bytes, entries = summary.entries, with_keys, sha256 = %summary.sha256, "backup written");
    let stream = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut chunk = vec![0u8; STREAM_CHUNK_BYTES];
        match reader.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from(chunk)),
                    Some(reader),
                ))
            }
            Err(error) => Some((Err(error), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, summary.bytes.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        [
            (SHA256_HEADER, summary.sha256),
            (WITH_KEYS_HEADER, with_keys.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
