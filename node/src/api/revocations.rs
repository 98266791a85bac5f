//! The county's certificate revocation list in the API.
//!
//! - `GET /api/v1/revocations`: the list in force here — `version` (0: none
//!   yet), `county`, `issued_at_unix_s`, `entries` [{station,
//!   certificate_sha256?, reason, revoked_at_unix_s}] — and `last_refused`,
//!   why the last list found in the county's document was not put in force.
//! - `POST /api/v1/revocations` with the signed file `civsync pki revoke`
//!   wrote (`{list, signature}`), at the county node only: verified under
//!   the county CA certificate in this node's PKI folder, stored in
//!   `reference:<county>:revocations` only if newer than the list held, and
//!   put in force at once. Every node below takes it from that document.
//!   A refusal names `signature`, `version`, `county`, `station`, … and
//!   writes nothing.

use crate::api::common::{body_rejection, status_of, ApiError};
use crate::context::NodeContext;
use crate::net::revocation::{verify_revocation_list, RevocationError, RevokedCertificate};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::service::revocations::{put_revocation_list, RevocationStoreError};
use civsync_protocol::StationId;
use serde::Serialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/revocations", get(in_force).post(store_list))
}

type Ctx = State<Arc<NodeContext>>;

impl From<RevocationError> for ApiError {
    fn from(error: RevocationError) -> Self {
        let status = match error {
            RevocationError::NotNewer { .. } => StatusCode::CONFLICT,
            RevocationError::Pki(_) | RevocationError::Write { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, error.field(), error.to_string())
    }
}

impl From<RevocationStoreError> for ApiError {
    fn from(error: RevocationStoreError) -> Self {
        ApiError::new(status_of(error.class()), error.field(), error.to_string())
    }
}

#[derive(Serialize)]
struct InForce {
    version: u64,
    county: Option<StationId>,
    issued_at_unix_s: Option<i64>,
    entries: Vec<RevokedCertificate>,
    last_refused: Option<String>,
}

async fn in_force(State(ctx): Ctx) -> Json<InForce> {
    let list = ctx.revocations.list();
    Json(InForce {
        version: list.as_ref().map_or(0, |list| list.version),
        county: list.as_ref().map(|list| list.county.clone()),
        issued_at_unix_s: list.as_ref().map(|list| list.issued_at_unix_s),
        entries: list.map(|list| list.entries.clone()).unwrap_or_default(),
        last_refused: ctx.revocations.last_refusal(),
    })
}

async fn store_list(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<InForce>), ApiError> {
    let bytes = body.map_err(body_rejection)?;
    let Some(certificate) = &ctx.certificate else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "certificate",
            "this node runs without a certificate, so it has no county CA to verify a list with",
        ));
    };
    if ctx.config.station != certificate.county {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "station",
            format!(
                "only the county node ({}) stores revocation lists; this node is {}",
                certificate.county, ctx.config.station
            ),
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "body", "not UTF-8 text"))?;
    let list = verify_revocation_list(text, &certificate.ca_cert)?;
    let version = list.version;
    let signed = text.to_string();
    ctx.store
        .call(move |replica| put_revocation_list(replica, version, &signed))
        .await??;
    // In force here at once; the follower would take it within seconds.
    match ctx.revocations.accept(list) {
        Ok(()) | Err(RevocationError::NotNewer { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok((StatusCode::CREATED, in_force(State(ctx)).await))
}
