//! What every resource of the API shares: the error answer
//! (`{"error": {"field", "reason"}}`), bounded JSON bodies, and the
//! `?station=` / `?month=` parameters.

use crate::context::NodeContext;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use civsync_protocol::service::{ErrorClass, ServiceError};
use civsync_protocol::{Month, StationId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest JSON body accepted.
pub const JSON_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Largest roster file accepted by the import endpoint.
pub const IMPORT_BODY_BYTES_MAX: usize = crate::files::roster::IMPORT_BYTES_MAX;

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
        // The clerk's answer names the value they sent ("\"12\" is not a
        // phone number"); the log never does: it is kept for months and read
        // by whoever runs the office PC.
        let reason = reason_without_values(&self.reason);
        if self.status.is_server_error() {
            tracing::error!(field = %self.field, %reason, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), field = %self.field, %reason, "request refused");
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

/// Shortest run of digits (an `X` may end it) taken for a number someone
/// sent: ID numbers have 18 characters, phone numbers 7 to 15 digits.
const LOGGED_DIGITS_MAX: usize = 4;

/// A refusal's reason fit for the log: the kind of refusal without the value
/// that was refused. Every quoted span (`"..."`, as `{value:?}` and serde
/// print a string; `` `...` `` as serde prints other values) and every run
/// of more than [`LOGGED_DIGITS_MAX`] digits becomes `…`; limits and counts
/// ("at most 24 a day") stay readable.
pub(crate) fn reason_without_values(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut chars = reason.chars().peekable();
    let mut digits = String::new();
    let flush_digits = |digits: &mut String, out: &mut String| {
        if digits.chars().count() > LOGGED_DIGITS_MAX {
            out.push('…');
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || (c == 'X' || c == 'x') && !digits.is_empty() {
            digits.push(c);
            continue;
        }
        flush_digits(&mut digits, &mut out);
        if c == '"' || c == '`' {
            // Skip to the closing quote (a backslash escapes the next char).
            let mut escaped = false;
            for inner in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if inner == '\\' {
                    escaped = true;
                } else if inner == c {
                    break;
                }
            }
            out.push(c);
            out.push('…');
            out.push(c);
            continue;
        }
        out.push(c);
    }
    flush_digits(&mut digits, &mut out);
    out
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

pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
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
    pub(crate) fn station(&self, ctx: &NodeContext) -> Result<StationId, ApiError> {
        station_param(ctx, self.station.as_deref())
    }

    pub(crate) fn month(&self) -> Result<Month, ApiError> {
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
        None => Ok(crate::clock::this_month()),
        Some(text) => Month::parse(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "month",
                format!("{text:?} is not YYYY-MM"),
            )
        }),
    }
}

pub(crate) type Ctx = State<Arc<NodeContext>>;
pub(crate) type QueryResult = Result<Query<StationQuery>, axum::extract::rejection::QueryRejection>;

pub(crate) fn query(q: QueryResult) -> Result<StationQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))
}

/// A file refused while reading: 413 when refused for its size (bytes,
/// rows, columns, inflated size), 422 for its content; the field is `file`.
pub(crate) fn file_refusal(too_large: bool, reason: String) -> ApiError {
    let status = if too_large {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ApiError::new(status, "file", reason)
}

/// The name an import reads its body as, from `?format=`: the file
/// readers tell a workbook from CSV by it.
pub fn upload_name(format: Option<&str>) -> Result<&'static str, ApiError> {
    match format {
        Some("xlsx") => Ok("upload.xlsx"),
        Some("csv") | None => Ok("upload.csv"),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "format",
            format!("unknown format {other:?}; use csv or xlsx"),
        )),
    }
}

/// An import's file turned into rows off the async runtime (a workbook is
/// unzipped and laid out, which takes seconds at a county's size); a file
/// refused whole answers 413 for its size or 422 for its content.
pub(crate) async fn read_import_file<T: Send + 'static>(
    what: &'static str,
    parse: impl FnOnce() -> Result<T, crate::files::roster::ImportError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(parse)
        .await
        .map_err(|e| ApiError::internal(format!("the {what} file could not be read: {e}")))?
        .map_err(|e| file_refusal(e.is_too_large(), e.to_string()))
}

/// How an import's progress job ends: rows accepted and refused.
pub(crate) fn accepted_and_refused(report: &civsync_protocol::service::ImportReport) -> String {
    use crate::progress::thousands;
    format!(
        "{} accepted, {} refused",
        thousands(report.accepted as u64),
        thousands(report.refused.len() as u64)
    )
}

/// End an import's progress job with its outcome and answer with it: the
/// summary of a report, or for a refusal the field only (its reason may
/// quote a cell of the file, and the job list is shown to every role).
pub fn end_import_job<R: Serialize>(
    job: crate::progress::ProgressJob,
    outcome: Result<R, ApiError>,
    summary: impl FnOnce(&R) -> String,
) -> Result<Response, ApiError> {
    match outcome {
        Ok(report) => {
            job.finish(summary(&report));
            Ok(Json(report).into_response())
        }
        Err(error) => {
            job.fail(format!(
                "refused ({}): {}",
                error.status.as_u16(),
                error.field
            ));
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reason_without_values;

    #[test]
    fn a_logged_reason_keeps_the_kind_of_refusal_and_drops_the_value() {
        assert_eq!(
            reason_without_values(r#""138-0013 8000" is not a phone number (7 to 15 digits)"#),
            r#""…" is not a phone number (7 to 15 digits)"#
        );
        assert_eq!(
            reason_without_values("invalid type: integer `110105194912310021`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(
            reason_without_values(r#"entry "a \"b\" c" may not contain a comma"#),
            r#"entry "…" may not contain a comma"#
        );
        assert_eq!(
            reason_without_values("ID 11010519491231002X, phone 13800138000"),
            "ID …, phone …"
        );
        assert_eq!(
            reason_without_values("hours must be at most 24 a day, got 25"),
            "hours must be at most 24 a day, got 25"
        );
    }
}
