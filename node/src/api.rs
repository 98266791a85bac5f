//! The local HTTP JSON API under `/api/v1/`, on 127.0.0.1 by default.
//!
//! Handlers are thin: parse and bound the request, run one
//! `civsync_protocol::service` operation on the store's owner thread, map the
//! outcome to a status. Every refusal is a 4xx with
//! `{"error": {"field": ..., "reason": ...}}` and changes nothing.
//!
//! One exception to "on the owner thread": an import into a station whose
//! roster does not exist yet builds the roster on a blocking thread and
//! hands the owner only the finished snapshot to store, so a large file does
//! not hold up every other write.

use crate::node::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use civsync_protocol::domain::input::{ActivityInput, OrderInput, TeamInput, VolunteerInput};
use civsync_protocol::replica::StoreBuiltError;
use civsync_protocol::service::{self, ErrorClass, ServiceError};
use civsync_protocol::{DocumentId, Month, StationId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest JSON body accepted.
pub const JSON_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Largest roster file accepted by the import endpoint.
pub const IMPORT_BODY_BYTES_MAX: usize = crate::import::IMPORT_BYTES_MAX;

/// An API refusal: HTTP status plus the field and reason a clerk can act on.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub field: String,
    pub reason: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    field: &'a str,
    reason: &'a str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "node", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(field = %self.field, reason = %self.reason, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), field = %self.field, reason = %self.reason, "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                field: &self.field,
                reason: &self.reason,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The HTTP status of a refusal of this class, for every service's errors.
pub(crate) fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::BadInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Forbidden => StatusCode::FORBIDDEN,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError::new(status_of(error.class()), error.field(), error.reason())
    }
}

impl From<crate::store::StoreUnavailable> for ApiError {
    fn from(error: crate::store::StoreUnavailable) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", error.to_string())
    }
}

impl From<crate::store::StoreClosed> for ApiError {
    fn from(error: crate::store::StoreClosed) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", error.to_string())
    }
}

/// Read a bounded body and decode JSON, naming the offending field.
pub(crate) fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(body_rejection)?;
    // Structs also deserialise from arrays; a clerk's tool sending one is a mistake.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body",
            "expected a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." || path == "?" {
            "body".to_string()
        } else {
            path
        };
        ApiError::new(StatusCode::BAD_REQUEST, field, error.inner().to_string())
    })
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is larger than the {JSON_BODY_BYTES_MAX} bytes accepted")
    } else {
        rejection.body_text()
    };
    ApiError::new(status, "body", reason)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationQuery {
    /// Station to act on; this node's own when absent.
    pub station: Option<String>,
    pub month: Option<String>,
    #[serde(default)]
    pub subtree: bool,
    pub format: Option<String>,
}

impl StationQuery {
    fn station(&self, ctx: &NodeContext) -> Result<StationId, ApiError> {
        station_param(ctx, self.station.as_deref())
    }

    fn month(&self) -> Result<Month, ApiError> {
        month_param(self.month.as_deref())
    }
}

/// `?station=`: the node's own station when absent.
pub(crate) fn station_param(
    ctx: &NodeContext,
    station: Option<&str>,
) -> Result<StationId, ApiError> {
    match station {
        None => Ok(ctx.config.station.clone()),
        Some(text) => StationId::parse(text)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "station", e.to_string())),
    }
}

/// `?month=YYYY-MM`: this month (Beijing time) when absent.
pub(crate) fn month_param(month: Option<&str>) -> Result<Month, ApiError> {
    match month {
        None => Ok(crate::node::this_month()),
        Some(text) => Month::parse(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "month",
                format!("{text:?} is not YYYY-MM"),
            )
        }),
    }
}

type Ctx = State<Arc<NodeContext>>;
type QueryResult = Result<Query<StationQuery>, axum::extract::rejection::QueryRejection>;

fn query(q: QueryResult) -> Result<StationQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))
}

pub fn router(ctx: Arc<NodeContext>) -> Router {
    let import = Router::new()
        .route("/api/v1/import/volunteers", post(import_volunteers))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES_MAX));
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/node", get(node_info))
        .route(
            "/api/v1/volunteers",
            post(register_volunteer)
                .get(list_volunteers)
                .put(update_volunteer),
        )
        .route("/api/v1/teams", post(put_team).get(list_teams))
        .route(
            "/api/v1/activities",
            post(record_activity).get(list_activities),
        )
        .route(
            "/api/v1/activities/{month}/{id}",
            axum::routing::delete(delete_activity),
        )
        .route("/api/v1/orders", post(place_order).get(list_orders))
        .route("/api/v1/conflicts", get(list_conflicts))
        .route("/api/v1/conflicts/resolve", post(resolve_conflict))
        .route("/api/v1/status", get(status))
        .route("/api/v1/documents", get(list_documents))
        .merge(crate::api_stats::routes())
        .merge(crate::api_approval::routes())
        .merge(crate::api_catalog::routes())
        .merge(crate::api_standings::routes())
        .merge(crate::api_order_flow::routes())
        .merge(crate::api_freshness::routes())
        .merge(crate::api_stations::routes())
        .layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX))
        .merge(import)
        .merge(crate::api_import_activities::routes())
        .fallback(not_found)
        .with_state(ctx)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "path",
        "no such endpoint; see the API reference in README.md",
    )
}

async fn health() -> &'static str {
    "ok"
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

async fn register_volunteer(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: VolunteerInput = json_body(body)?;
    let (key, today, nonce) = (
        ctx.identity_key.clone(),
        crate::node::today(),
        rand::random(),
    );
    let volunteer = ctx
        .store
        .call_durable(move |replica| {
            service::register_volunteer(replica, &station, &input, &key, today, nonce)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(volunteer)).into_response())
}

async fn update_volunteer(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: VolunteerInput = json_body(body)?;
    if input.number.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "number",
            "is required to correct a volunteer",
        ));
    }
    let (key, today) = (ctx.identity_key.clone(), crate::node::today());
    let volunteer = ctx
        .store
        .call_durable(move |replica| {
            service::update_volunteer(replica, &station, &input, &key, today)
        })
        .await??;
    Ok(Json(volunteer).into_response())
}

async fn list_volunteers(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let volunteers = ctx
        .store
        .call(move |replica| service::volunteers(replica, &station))
        .await??;
    Ok(Json(volunteers).into_response())
}

async fn put_team(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: TeamInput = json_body(body)?;
    let nonce = rand::random();
    let team = ctx
        .store
        .call_durable(move |replica| service::put_team(replica, &station, &input, nonce))
        .await??;
    Ok((StatusCode::CREATED, Json(team)).into_response())
}

async fn list_teams(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    Ok(Json(
        ctx.store
            .call(move |replica| service::teams(replica, &station))
            .await??,
    )
    .into_response())
}

async fn record_activity(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: ActivityInput = json_body(body)?;
    let (today, nonce) = (crate::node::today(), rand::random());
    let activity = ctx
        .store
        .call_durable(move |replica| {
            service::record_activity(replica, &station, &input, today, nonce)
        })
        .await??;
    Ok((StatusCode::CREATED, Json(activity)).into_response())
}

async fn delete_activity(
    State(ctx): Ctx,
    q: QueryResult,
    Path((month, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let month = Month::parse(&month).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "month",
            format!("{month:?} is not YYYY-MM"),
        )
    })?;
    let id =
        civsync_protocol::domain::model::RecordId::parse("id", &id).map_err(ServiceError::from)?;
    ctx.store
        .call_durable(move |replica| service::delete_activity(replica, &station, month, &id))
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_activities(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (station, month, subtree) = (q.station(&ctx)?, q.month()?, q.subtree);
    let activities = ctx
        .store
        .call(move |replica| service::activities(replica, &station, month, subtree))
        .await??;
    Ok(Json(activities).into_response())
}

async fn place_order(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let station = query(q)?.station(&ctx)?;
    let input: OrderInput = json_body(body)?;
    let (today, nonce) = (crate::node::today(), rand::random());
    let order = ctx
        .store
        .call_durable(move |replica| service::place_order(replica, &station, &input, today, nonce))
        .await??;
    Ok((StatusCode::CREATED, Json(order)).into_response())
}

async fn list_orders(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let (station, month) = (q.station(&ctx)?, q.month()?);
    Ok(Json(
        ctx.store
            .call(move |replica| service::orders(replica, &station, month))
            .await??,
    )
    .into_response())
}

async fn import_volunteers(
    State(ctx): Ctx,
    q: QueryResult,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let station = q.station(&ctx)?;
    let bytes = body.map_err(body_rejection)?;
    let name = match q.format.as_deref() {
        Some("xlsx") => "upload.xlsx",
        Some("csv") | None => "upload.csv",
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "format",
                format!("unknown format {other:?}; use csv or xlsx"),
            ))
        }
    };
    let rows = crate::import::parse_file_bytes(name, &bytes)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "file", e.to_string()))?;
    let (key, today) = (ctx.identity_key.clone(), crate::node::today());
    let document = DocumentId::roster(&station);
    let asked = station.clone();
    let (held, builder) = ctx
        .store
        .call(move |replica| {
            service::check_station(replica, &asked)?;
            Ok::<_, ServiceError>((replica.holds(&document), replica.document_builder()))
        })
        .await??;
    if held {
        let report = ctx
            .store
            .call_durable(move |replica| {
                service::import_volunteers(replica, &station, rows, &key, today, rand::random)
            })
            .await??;
        return Ok(Json(report).into_response());
    }
    // A new roster: validation and all Automerge work happen here, off the
    // store's owner thread, which then only writes the finished snapshot.
    let built_station = station.clone();
    let (validated, built) = tokio::task::spawn_blocking(move || {
        let validated =
            service::validate_volunteer_rows(&built_station, rows, &key, today, rand::random);
        let built = service::build_new_roster(&builder, &built_station, &validated);
        (validated, built)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the roster build failed: {e}")))?;
    let (built, report) = built?;
    let Some(built) = built else {
        return Ok(Json(report).into_response());
    };
    let report = ctx
        .store
        .call_durable(move |replica| match replica.store_built(built) {
            Ok(()) => Ok(report),
            // Someone created the roster meanwhile: commit the same rows to
            // it the ordinary way, so their duplicates are answered too.
            Err(StoreBuiltError::AlreadyHeld { .. }) => {
                service::import_validated_volunteers(replica, &station, validated)
            }
            Err(other) => Err(ServiceError::Store {
                reason: other.to_string(),
            }),
        })
        .await??;
    Ok(Json(report).into_response())
}

async fn list_conflicts(State(ctx): Ctx, q: QueryResult) -> Result<Response, ApiError> {
    let q = query(q)?;
    let station = q.station(&ctx)?;
    let month = q.month.as_ref().map(|_| q.month()).transpose()?;
    Ok(Json(
        ctx.store
            .call(move |replica| service::conflicts(replica, &station, month))
            .await??,
    )
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveInput {
    document: String,
    path: String,
    value: String,
}

async fn resolve_conflict(
    State(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: ResolveInput = json_body(body)?;
    let document = DocumentId::parse(&input.document)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "document", e.to_string()))?;
    ctx.store
        .call_durable(move |replica| {
            service::resolve_conflict(replica, &document, &input.path, &input.value)
        })
        .await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn status(State(ctx): Ctx) -> Result<Response, ApiError> {
    let report = crate::node::status_report(&ctx).await?;
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
                        .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
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

#[cfg(test)]
mod import_tests;
