//! Bundles for a USB stick (`net::bundle_seal`, `replica::bundles`): the
//! link of a village that has none.
//!
//! - `POST /api/v1/bundles/export` `{"for": "<station>", "full": false,
//!   "certificate_pem": null}`: the sealed file of what that station is
//!   missing, as the answer (`x-civsync-bundle-name`, `-documents`,
//!   `-changes` headers). The recipient's certificate is found among those
//!   this node keeps (its writers', and every bundle sender's), or given
//!   as PEM the first time (the township's `node.crt`). 422 naming the
//!   field when the station, the certificate or the limits refuse.
//! - `POST /api/v1/bundles/import` (the file as the body, at most
//!   `BUNDLE_FILE_BYTES_MAX`): opened, checked and taken in; the answer
//!   says what each document did. 422 naming why when the whole file is
//!   refused (not for this office, changed, another county's).
//!
//! A clerk's job (`Permission::Record`), audit-logged like every write.

use super::common::{json_body, ApiError};
use crate::context::NodeContext;
use crate::net::bundle_seal::{self, BundleKeys, BUNDLE_FILE_BYTES_MAX};
use crate::net::pki::NodeIdentity;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use civsync_protocol::StationId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const NAME_HEADER: &str = "x-civsync-bundle-name";
pub const DOCUMENTS_HEADER: &str = "x-civsync-bundle-documents";
pub const CHANGES_HEADER: &str = "x-civsync-bundle-changes";

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/bundles/export", post(export))
        .route("/api/v1/bundles/import", post(import))
        .layer(DefaultBodyLimit::max(BUNDLE_FILE_BYTES_MAX))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    #[serde(rename = "for")]
    pub for_station: String,
    #[serde(default)]
    pub full: bool,
    #[serde(default)]
    pub certificate_pem: Option<String>,
}

/// What importing a bundle did.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportAnswer {
    pub from: String,
    pub documents_changed: usize,
    pub documents_unchanged: usize,
    pub changes_applied: usize,
    pub documents_refused: Vec<RefusedDocument>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RefusedDocument {
    pub document: String,
    pub reason: String,
}

type Ctx = State<Arc<NodeContext>>;

fn unprocessable(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, field, reason)
}

fn now_unix_s() -> i64 {
    i64::try_from(crate::clock::now_ms() / 1000).unwrap_or(i64::MAX)
}

fn bundle_keys(ctx: &NodeContext) -> Result<Arc<BundleKeys>, ApiError> {
    let pki = ctx.config.pki_path(&ctx.data_dir);
    let identity = NodeIdentity::load(&pki).map_err(|error| {
        ApiError::new(
            StatusCode::CONFLICT,
            "certificate",
            format!("bundles are sealed with this node's certificate: {error}"),
        )
    })?;
    Ok(Arc::new(BundleKeys::new(identity, ctx.revocations.clone())))
}

/// The recipient's certificate: the one given, else one kept here.
async fn recipient_certificate(
    ctx: &NodeContext,
    keys: &BundleKeys,
    to: &StationId,
    given: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    if let Some(pem) = given {
        let certificate = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|error| {
            unprocessable("certificate_pem", format!("not a PEM certificate: {error}"))
        })?;
        return Ok(certificate.as_ref().to_vec());
    }
    let kept = ctx
        .store
        .call(|replica| replica.credentials())
        .await?
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let now = now_unix_s();
    kept.into_iter()
        .find(|certificate| keys.check_certificate(certificate, now).as_ref() == Ok(to))
        .ok_or_else(|| {
            unprocessable(
                "certificate_pem",
                format!(
                    "no valid certificate of {to} is kept here; give its node.crt the first \
                     time (after one bundle from {to}, it is kept)"
                ),
            )
        })
}

async fn export(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ExportRequest = json_body(body)?;
    let to = StationId::parse(request.for_station.trim())
        .map_err(|error| unprocessable("for", error.to_string()))?;
    if to == ctx.config.station {
        return Err(unprocessable("for", "a bundle goes to another station"));
    }
    let keys = bundle_keys(&ctx)?;
    let certificate =
        recipient_certificate(&ctx, &keys, &to, request.certificate_pem.as_deref()).await?;
    let full = request.full;
    let bundle_to = to.clone();
    let export = ctx
        .store
        .call(move |replica| replica.export_bundle(&bundle_to, full))
        .await?
        .map_err(|reason| unprocessable("for", reason))?;
    let name = bundle_seal::file_name(&ctx.config.station, &to, export.contents.created_ms);
    let (documents, changes) = (export.documents, export.changes);
    let file = tokio::task::spawn_blocking(move || {
        keys.seal(&export.contents, &certificate, now_unix_s())
    })
    .await
    .map_err(|error| ApiError::internal(error.to_string()))?
    .map_err(|reason| unprocessable("certificate_pem", reason))?;
    tracing::info!(to = %to, documents, changes, bytes = file.len(), "bundle exported");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::HeaderName::from_static(NAME_HEADER), name),
            (
                header::HeaderName::from_static(DOCUMENTS_HEADER),
                documents.to_string(),
            ),
            (
                header::HeaderName::from_static(CHANGES_HEADER),
                changes.to_string(),
            ),
        ],
        Body::from(file),
    )
        .into_response())
}

async fn import(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let file = body
        .map_err(|rejection| ApiError::new(rejection.status(), "bundle", rejection.body_text()))?;
    let keys = bundle_keys(&ctx)?;
    let (bundle, sender_certificate) =
        tokio::task::spawn_blocking(move || keys.open(&file, now_unix_s()))
            .await
            .map_err(|error| ApiError::internal(error.to_string()))?
            .map_err(|reason| {
                tracing::warn!(%reason, "bundle refused");
                unprocessable("bundle", reason)
            })?;
    let report = ctx
        .store
        .call_durable(move |replica| {
            replica
                .keep_credential(&sender_certificate)
                .map_err(|error| error.to_string())?;
            replica.import_bundle(bundle)
        })
        .await?
        .map_err(|reason| unprocessable("bundle", reason))?;
    let answer = ImportAnswer {
        from: report
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        documents_changed: report.documents_changed,
        documents_unchanged: report.documents_unchanged,
        changes_applied: report.changes_applied,
        documents_refused: report
            .documents_refused
            .into_iter()
            .map(|(document, reason)| RefusedDocument {
                document: document.to_string(),
                reason,
            })
            .collect(),
    };
    tracing::info!(from = %answer.from, changes = answer.changes_applied, refused = answer.documents_refused.len(), "bundle imported");
    Ok((StatusCode::OK, Json(answer)).into_response())
}
