//! Calling the JSON API from a page handler, in-process: no socket, no
//! token; the guard has already checked the page's own request, and a
//! page's permission (`/web/x`) is the permission of the API resource it
//! calls (`/api/v1/x`), or one it implies (see `access::roles`).

use super::Web;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// Largest API answer a page reads (a county's freshness table is ~100 KB).
pub const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// An API answer: its status and JSON (or `Null`).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// `None` when the API did it; else its refusal's field and reason, as
    /// the API put them — or, for a failure that names none (a bare 500),
    /// `node` and its status, so no page takes a failure for success.
    pub fn refusal(&self) -> Option<(String, String)> {
        if self.ok() {
            return None;
        }
        let named = self.body.get("error").and_then(|error| {
            Some((
                error.get("field")?.as_str()?.to_string(),
                error.get("reason")?.as_str()?.to_string(),
            ))
        });
        Some(named.unwrap_or_else(|| {
            (
                "node".to_string(),
                format!(
                    "节点未给出结果（HTTP {}），请查看节点日志",
                    self.status.as_u16()
                ),
            )
        }))
    }
}

/// A row's delete button: `DELETE` the API's `path`; when it did, the
/// redirect back to `page` with `notice`, else its refusal, as an error of
/// the page rather than of a form field (the refusal concerns the row, and
/// the form below may hold no such field).
pub async fn delete_row(
    web: &Web,
    path: &str,
    page: &str,
    notice: &str,
) -> Result<axum::response::Response, (String, String)> {
    match call(web, Method::DELETE, path, None).await.refusal() {
        None => Ok(super::form::redirect_with_notice(page, notice)),
        Some((_, reason)) => Err(("delete".to_string(), reason)),
    }
}

/// `path_and_query` starts after `/api/v1/`.
pub async fn call(web: &Web, method: Method, path_and_query: &str, body: Option<&Value>) -> Answer {
    match body {
        Some(value) => {
            let bytes = serde_json::to_vec(value).unwrap_or_default();
            send(
                web,
                method,
                path_and_query,
                Some(("application/json", bytes.into())),
            )
            .await
        }
        None => send(web, method, path_and_query, None).await,
    }
}

/// POST a file's bytes as they came (an import), with their content type.
pub async fn post_file(
    web: &Web,
    path_and_query: &str,
    content_type: &str,
    bytes: axum::body::Bytes,
) -> Answer {
    send(
        web,
        Method::POST,
        path_and_query,
        Some((content_type, bytes)),
    )
    .await
}

async fn send(
    web: &Web,
    method: Method,
    path_and_query: &str,
    body: Option<(&str, axum::body::Bytes)>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/api/v1/{path_and_query}"));
    let body = match body {
        Some((content_type, bytes)) => {
            request = request.header("content-type", content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let request = match request.body(body) {
        Ok(request) => request,
        Err(error) => return failed(error.to_string()),
    };
    let response = match web.api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    match axum::body::to_bytes(response.into_body(), ANSWER_BYTES_MAX).await {
        Ok(bytes) if bytes.is_empty() => Answer {
            status,
            body: Value::Null,
        },
        Ok(bytes) => Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        },
        Err(error) => failed(error.to_string()),
    }
}

/// POST JSON to an endpoint that answers with a file (a bundle): the
/// status, the answer's headers and its bytes, at most `bytes_max`.
pub async fn post_for_file(
    web: &Web,
    path_and_query: &str,
    body: &Value,
    bytes_max: usize,
) -> Result<(axum::http::HeaderMap, axum::body::Bytes), Answer> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/{path_and_query}"))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    let request = request.map_err(|error| failed(error.to_string()))?;
    let response = match web.api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), bytes_max)
        .await
        .map_err(|error| failed(error.to_string()))?;
    if status.is_success() {
        Ok((headers, bytes))
    } else {
        Err(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

pub async fn get(web: &Web, path_and_query: &str) -> Answer {
    call(web, Method::GET, path_and_query, None).await
}

pub async fn post(web: &Web, path_and_query: &str, body: &Value) -> Answer {
    call(web, Method::POST, path_and_query, Some(body)).await
}

fn failed(reason: String) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({"error": {"field": "node", "reason": reason}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_without_an_error_body_is_still_a_refusal() {
        let named = Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: serde_json::json!({"error": {"field": "name", "reason": "is empty"}}),
        };
        assert_eq!(named.refusal(), Some(("name".into(), "is empty".into())));
        let bare = Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: Value::Null,
        };
        let (field, reason) = bare.refusal().unwrap();
        assert_eq!(field, "node");
        assert!(reason.contains("500"), "{reason}");
        let done = Answer {
            status: StatusCode::CREATED,
            body: Value::Null,
        };
        assert_eq!(done.refusal(), None);
    }
}
