//! `GET health` (the word only; see `health.rs`), `GET node`, `GET status`
//! (sync status per peer, days until this node's certificate ends with a
//! warning inside 30 days, the revocation list version in force, the
//! health with its details, the actor and its renewals, the long work
//! running or just finished with its counts) and
//! `GET documents` (every document held, with its heads digest).

use super::common::*;
use crate::context::NodeContext;
use crate::store::StoreClosed;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::Tier;
use civsync_protocol::{DocumentId, StationId};
use serde::Serialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/health", get(super::health::health))
        .route("/api/v1/node", get(node_info))
        .route("/api/v1/status", get(status))
        .route("/api/v1/documents", get(list_documents))
}

#[derive(Serialize)]
struct NodeInfo {
    station: StationId,
    tier: civsync_protocol::Tier,
    name: String,
    version: &'static str,
    documents: usize,
}

async fn node_info(State(ctx): Ctx) -> Result<Json<NodeInfo>, ApiError> {
    let documents = ctx.store.call(|replica| replica.documents().len()).await?;
    Ok(Json(NodeInfo {
        station: ctx.config.station.clone(),
        tier: ctx.config.tier,
        name: ctx.config.name.clone(),
        version: env!("CARGO_PKG_VERSION"),
        documents,
    }))
}

async fn status(State(ctx): Ctx) -> Result<Response, ApiError> {
    let report = status_report(&ctx).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(report)).into_response())
}

#[derive(Serialize)]
struct DocumentSummary {
    id: DocumentId,
    /// Hex digest of the document's heads: equal digests, equal history.
    heads_digest: String,
    changes: u64,
}

/// Every document this node holds, with its heads digest: what an operator
/// (or a test) compares across replicas.
async fn list_documents(State(ctx): Ctx) -> Result<Response, ApiError> {
    let documents = ctx
        .store
        .call(|replica| {
            replica
                .documents()
                .into_iter()
                .map(|id| {
                    let heads_digest = replica
                        .heads_digest(&id)
                        .map(hex::encode)
                        .unwrap_or_default();
                    let changes = replica.change_count(&id).unwrap_or(0);
                    DocumentSummary {
                        id,
                        heads_digest,
                        changes,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(documents).into_response())
}

/// What `civsync status` and `GET /api/v1/status` show.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub station: StationId,
    pub tier: Tier,
    pub documents: usize,
    /// Documents held in memory now.
    pub documents_loaded: usize,
    /// Documents read back from disk since the node started (each a miss
    /// of the in-memory cache): growing with every sync message on a busy
    /// node means its cache is smaller than what it works on.
    pub documents_read_from_disk: u64,
    /// Whole days until this node's certificate ends (negative once it
    /// has); absent without a certificate.
    pub certificate_expires_in_days: Option<i64>,
    /// What the office must act on: the certificate ends within 30 days.
    pub warning: Option<String>,
    /// The county revocation list in force here (0: none yet).
    pub revocation_list_version: u64,
    pub peers: Vec<crate::net::peers::PeerStatus>,
    /// Store writable, disk, certificate, peers: what `GET health` judges.
    pub health: super::health::Health,
    pub actor: ActorStatus,
    /// Long work running or just finished (imports, cold syncs), oldest
    /// first, with counts.
    pub jobs: Vec<crate::progress::JobView>,
}

/// The Automerge actor this node writes with, and the times it took a new
/// one by itself (a peer sent a change by its actor that its store lacked).
#[derive(Debug, Serialize)]
pub struct ActorStatus {
    /// The incarnation (hex); the actor is the station path, 0, and this.
    pub incarnation: String,
    pub renewals: u64,
    /// Unix ms of the last renewal.
    pub renewed_at_unix_ms: Option<u64>,
    pub renewal_peer: Option<String>,
    pub renewal_document: Option<String>,
}

pub async fn status_report(ctx: &NodeContext) -> Result<StatusReport, StoreClosed> {
    let (documents, documents_loaded, documents_read_from_disk) = ctx
        .store
        .call(|replica| {
            (
                replica.documents().len(),
                replica.cached_documents(),
                replica.documents_loaded(),
            )
        })
        .await?;
    let now_unix_s = i64::try_from(crate::clock::now_ms() / 1_000).unwrap_or(i64::MAX);
    let (certificate_expires_in_days, warning) = match &ctx.certificate {
        Some(certificate) => {
            let (days, warning) =
                crate::net::pki::certificate_expiry(now_unix_s, certificate.not_after_unix_s);
            (Some(days), warning)
        }
        None => (None, None),
    };
    let health = super::health::health_of(ctx).await;
    let renewals = ctx.store.actor_renewals();
    let actor = ActorStatus {
        incarnation: format!("{:016x}", ctx.store.incarnation()),
        renewals: renewals.count,
        renewed_at_unix_ms: renewals.last_at_ms,
        renewal_peer: renewals.last_peer,
        renewal_document: renewals.last_document,
    };
    Ok(StatusReport {
        health,
        actor,
        station: ctx.config.station.clone(),
        tier: ctx.config.tier,
        documents,
        documents_loaded,
        documents_read_from_disk,
        certificate_expires_in_days,
        warning,
        revocation_list_version: ctx.revocations.version(),
        peers: ctx.peers.snapshot(),
        jobs: ctx.progress.snapshot(),
    })
}
