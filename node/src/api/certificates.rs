//! Volunteers' service certificates (志愿服务证明): issued signed with this
//! node's certificate key, and verified against this node's county CA
//! certificate (`context::certificates` does both).

use crate::api::common::{json_body, ApiError};
use crate::context::certificates;
use crate::context::NodeContext;
use crate::files::report;
use crate::net::pki::{self, NodeIdentity};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use civsync_protocol::domain::model::VolunteerId;
use civsync_protocol::{layout, DocumentId, Station};
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
        .route("/api/v1/certificates/verify", post(verify))
        .route("/api/v1/certificates/{number}", get(certificate))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateQuery {
    station: Option<String>,
    format: Option<String>,
}

type Ctx = State<Arc<NodeContext>>;
type QueryResult = Result<Query<CertificateQuery>, axum::extract::rejection::QueryRejection>;

/// This node's certificate and key, checked as at start (`NodeIdentity::load`).
fn signing_identity(ctx: &NodeContext) -> Result<NodeIdentity, ApiError> {
    let dir = ctx.config.pki_path(&ctx.data_dir);
    NodeIdentity::load(&dir).map_err(|error| {
        ApiError::new(
            StatusCode::CONFLICT,
            "node",
            format!(
                "this node cannot sign certificates: {error} (a node needs its county certificate, civsync pki issue)"
            ),
        )
    })
}

/// `POST /api/v1/certificates/verify`: the body is a certificate's JSON;
/// the answer says `valid`, or each field or reason that is wrong.
async fn verify(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let certificate: report::ServiceCertificate = json_body(body)?;
    let ca_path = ctx.config.pki_path(&ctx.data_dir).join(pki::CA_CERT_FILE);
    let (ca, ca_identity) = pki::load_ca_certificate(&ca_path).map_err(|error| {
        ApiError::new(
            StatusCode::CONFLICT,
            "node",
            format!("this node holds no county CA certificate to verify against: {error}"),
        )
    })?;
    let verdict = certificates::verify_certificate(
        &certificate,
        &ca,
        &ca_identity.station,
        pki::now_unix_s(),
    );
    Ok(Json(verdict).into_response())
}

/// A volunteer's service certificate: their record from the roster of their
/// home station and every activity this node holds that they served on,
/// signed with this node's certificate key. The volunteer is named by
/// number and home station — `{number}?station=`, or `<home station>:<number>`
/// in the path — since numbers are unique only per roster. A bare number
/// names the one volunteer of this node's subtree who has it; when several
/// have it the answer is 409 naming each of them.
async fn certificate(
    State(ctx): Ctx,
    q: QueryResult,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let (qualified, number) = VolunteerId::parse_qualified("number", &number)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.field, e.reason))?;
    let named = match (qualified, &q.station) {
        (Some(home), Some(station)) if home.as_str() != station.as_str() => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "station",
                format!("the path names home station {home}, the query {station}"),
            ))
        }
        (Some(home), _) => Some(home),
        (None, Some(station)) => Some(crate::api::common::station_param(&ctx, Some(station))?),
        (None, None) => None,
    };
    // Only the documents where the volunteer served (the statistics index
    // knows them) are read: a county holds thousands of activity months.
    ctx.refresh_stats().await?;
    let station = match named {
        Some(station) => station,
        None => {
            let candidates = {
                let state = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
                state
                    .index()
                    .volunteers_numbered(&number, &ctx.config.station)
            };
            match candidates.as_slice() {
                // Unknown here: looked up at this node's own station, as
                // before home stations were asked for, so the answer is 404.
                [] => ctx.config.station.clone(),
                [only] => only.home_station.clone(),
                several => {
                    let names: Vec<String> = several.iter().map(|v| v.to_string()).collect();
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "number",
                        format!(
                            "volunteer number {number} is held by {} volunteers of different stations: name one with ?station= or as <home station>:<number>: {}",
                            several.len(),
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    if !ctx.config.station.is_ancestor_or_self_of(&station) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "station",
            format!(
                "{} certifies only volunteers of its own subtree, not of {station}",
                ctx.config.station
            ),
        ));
    }
    let person = VolunteerId::new(station.clone(), number.clone());
    let roster = DocumentId::roster(&station);
    let serving = {
        let state = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
        state.index().documents_serving(&person)
    };
    let lookup = person.clone();
    let (volunteer, activities) = ctx
        .store
        .call(move |replica| {
            let volunteer = replica
                .with_document(&roster, |doc| layout::volunteer(doc, &lookup.number))
                .ok()
                .flatten();
            let mut activities = Vec::new();
            for id in serving {
                if let Ok(Some(Ok(found))) = replica.with_document(&id, layout::activities) {
                    activities.extend(found.into_iter().filter(|a| {
                        a.records
                            .iter()
                            .any(|r| r.volunteer_id(&a.station) == lookup)
                    }));
                }
            }
            (volunteer, activities)
        })
        .await?;
    let volunteer = match volunteer {
        Some(Ok(Some(volunteer))) => volunteer,
        Some(Err(e)) => return Err(ApiError::internal(e.to_string())),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "number",
                format!("unknown volunteer {number} at {station}"),
            ))
        }
    };
    let recording = Station {
        id: ctx.config.station.clone(),
        name: ctx.config.name.clone(),
        tier: ctx.config.tier,
    };
    let mut certificate = report::service_certificate(
        &volunteer,
        activities.iter(),
        &recording,
        crate::clock::today(),
    )
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "number", e.to_string()))?;
    let identity = signing_identity(&ctx)?;
    certificates::seal_certificate(&mut certificate, &identity)
        .map_err(|e| ApiError::internal(format!("cannot sign the certificate: {e}")))?;
    if q.format.as_deref() == Some("text") {
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            report::certificate_text(&certificate),
        )
            .into_response());
    }
    Ok(Json(certificate).into_response())
}

#[cfg(test)]
mod tests;
