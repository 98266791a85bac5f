//! The middleware in front of every route of the node's HTTP server.
//!
//! In order, each a refusal that changes nothing:
//! 1. **Host** must be an IP literal, `localhost` or a configured name, with
//!    the API's port: a page on `evil.example` that rebinds its name to
//!    127.0.0.1 sends `Host: evil.example` and is refused, so it can read
//!    nothing even without a login.
//! 2. **Origin**, when sent, must be this server; a browser's
//!    `Sec-Fetch-Site: cross-site` on a change is refused.
//! 3. **Content-Type**: API changes must be `application/json` (imports: a
//!    file type). The three types a page may send cross-site without a
//!    preflight (`text/plain`, form, multipart) never reach a JSON handler.
//! 4. **Who**: a bearer token (scripts, the CLI) or a session cookie; a
//!    browser without one is sent to the login page, a script gets 401.
//! 5. **CSRF**: a change made with a session cookie carries the session's
//!    token (header `x-csrf-token`, form field or query `csrf`).
//! 6. **Role**: the account's role must grant the route's permission.
//!
//! Then the request runs, and every change, export and refusal of steps
//! 4–6 is appended to the audit log with who, from where and the status.

use super::roles::{permission_for, Role};
use super::sessions::{same_secret, COOKIE_NAME};
use super::{Access, AuditEntry};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest form body the guard reads to find its CSRF field; page forms
/// are a few hundred bytes (file uploads send the token in the query).
pub const FORM_BODY_BYTES_MAX: usize = 64 * 1024;
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "csrf";

/// Who made a request, for handlers and the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The account name, or `api-token`.
    pub who: String,
    pub role: Role,
    /// The session's CSRF token, for the forms a page renders; `None` for
    /// the bearer token.
    pub csrf: Option<String>,
}

pub const TOKEN_PRINCIPAL: &str = "api-token";

/// Routes anyone may reach: the login page, its assets, health.
fn is_public(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("GET" | "POST", "/login") | ("GET", "/api/v1/health") | ("GET", "/favicon.ico")
    ) || (method == Method::GET && path.starts_with("/assets/"))
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A read that takes data away: reports, exports, certificates.
fn is_export(method: &Method, path: &str) -> bool {
    *method == Method::GET
        && (path.contains("/reports/")
            || path.contains("/export")
            || path.starts_with("/api/v1/certificates/")
            || path.starts_with("/api/v1/duplicates")
            || path.starts_with("/web/certificates/"))
}

/// A refusal: JSON for the API, a short Chinese page for browsers.
fn refuse(path: &str, status: StatusCode, field: &str, reason: &str) -> Response {
    if is_api(path) {
        let body = serde_json::json!({"error": {"field": field, "reason": reason}});
        return (status, axum::Json(body)).into_response();
    }
    let page = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>拒绝访问</title>\
         <body><h1>拒绝访问（{}）</h1><p>{}</p><p><a href=\"/\">返回首页</a></p></body></html>",
        status.as_u16(),
        html_escape(reason)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Is `host` (the Host header) one this server answers to?
pub fn host_allowed(host: &str, port: u16, names: &[String]) -> bool {
    let (name, host_port) = match host.rsplit_once(':') {
        // `[::1]:7400`, `127.0.0.1:7400`, `localhost:7400`
        Some((name, p)) if !name.is_empty() && !p.contains(']') => (name, p.parse::<u16>().ok()),
        _ => (host, Some(80)),
    };
    if host_port != Some(port) {
        return false;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(bare))
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    url_form_pairs(query.as_bytes())
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// `a=1&b=%E4%B8%AD`, decoded.
pub fn url_form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded_pairs(bytes)
}

fn serde_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{}", String::from_utf8_lossy(bytes))
            .parse()
            .unwrap_or_else(|_| axum::http::Uri::from_static("/")),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

fn content_type_refusal(method: &Method, path: &str, headers: &HeaderMap) -> Option<String> {
    if !is_api(path) || *method == Method::DELETE || !changes_something(method) {
        return None;
    }
    let content_type = header_text(headers, header::CONTENT_TYPE)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let takes_file = path.starts_with("/api/v1/import/") || path == "/api/v1/bundles/import";
    let simple = matches!(
        content_type.as_str(),
        "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
    );
    if takes_file {
        return simple.then(|| {
            format!("an import takes the file's own type (e.g. application/octet-stream), not {content_type}")
        });
    }
    (content_type != "application/json").then(|| {
        if content_type.is_empty() {
            "this endpoint takes a JSON body: send Content-Type: application/json".to_string()
        } else {
            format!("this endpoint takes a JSON body (Content-Type: application/json), not {content_type}")
        }
    })
}

/// The guard itself; see the module comment for the order of checks.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let from = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default();
    let headers = request.headers().clone();

    let host = header_text(&headers, header::HOST).unwrap_or("");
    if !host_allowed(host, access.api_port, &access.host_names) {
        tracing::warn!(%from, "request refused: Host is not this node (DNS rebinding?)");
        return refuse(
            &path,
            StatusCode::MISDIRECTED_REQUEST,
            "host",
            "this node answers only to its own address (an IP, localhost or a configured name, with its port)",
        );
    }
    if let Some(origin) = header_text(&headers, header::ORIGIN) {
        let own = [format!("http://{host}"), format!("https://{host}")];
        if !own.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            tracing::warn!(%from, "request refused: sent from another site's page");
            return refuse(
                &path,
                StatusCode::FORBIDDEN,
                "origin",
                "a request from another site's page is refused",
            );
        }
    }
    if changes_something(&method) && header_text(&headers, "sec-fetch-site") == Some("cross-site") {
        return refuse(
            &path,
            StatusCode::FORBIDDEN,
            "origin",
            "a change sent from another site's page is refused",
        );
    }
    if let Some(reason) = content_type_refusal(&method, &path, &headers) {
        return refuse(
            &path,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            &reason,
        );
    }
    if is_public(&method, &path) {
        return next.run(request).await;
    }

    let now_ms = crate::clock::now_ms();
    let bearer = header_text(&headers, header::AUTHORIZATION)
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let principal = if let Some(presented) = bearer {
        if !access.token.accepts(presented) {
            let query = request.uri().query().map(str::to_string);
            audit(
                &access,
                now_ms,
                "?",
                &from,
                &method,
                &path,
                query.as_deref(),
                "401 wrong token",
            )
            .await;
            return refuse(
                &path,
                StatusCode::UNAUTHORIZED,
                "authorization",
                "the bearer token is not this node's (see the api-token file in its data directory)",
            );
        }
        Principal {
            who: TOKEN_PRINCIPAL.to_string(),
            role: Role::Admin,
            csrf: None,
        }
    } else if let Some(session) =
        cookie_value(&headers, COOKIE_NAME).and_then(|id| access.sessions.touch(id, now_ms))
    {
        Principal {
            who: session.account,
            role: session.role,
            csrf: Some(session.csrf),
        }
    } else if is_api(&path) {
        return refuse(
            &path,
            StatusCode::UNAUTHORIZED,
            "authorization",
            "log in first: send Authorization: Bearer <token> (the api-token file in the node's data directory) or a session cookie",
        );
    } else {
        let next_page = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let target = format!(
            "/login?next={}",
            url_encode(
                if next_page.starts_with('/') && !next_page.starts_with("//") {
                    &next_page
                } else {
                    "/"
                }
            )
        );
        return Redirect::to(&target).into_response();
    };

    // CSRF: a cookie travels by itself; the token does not.
    let (request, csrf_ok) = match &principal.csrf {
        Some(expected) if changes_something(&method) => check_csrf(request, expected).await,
        _ => (Some(request), true),
    };
    let Some(request) = request else {
        return refuse(
            &path,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            &format!("a form has at most {FORM_BODY_BYTES_MAX} bytes"),
        );
    };
    if !csrf_ok {
        let query = request.uri().query().map(str::to_string);
        audit(
            &access,
            now_ms,
            &principal.who,
            &from,
            &method,
            &path,
            query.as_deref(),
            "403 csrf",
        )
        .await;
        return refuse(
            &path,
            StatusCode::FORBIDDEN,
            "csrf",
            "the form is stale or came from another page; reload the page and try again (页面已过期，请刷新后重试)",
        );
    }

    let permission = permission_for(&method, &path);
    if !principal.role.may(permission) {
        let query = request.uri().query().map(str::to_string);
        audit(
            &access,
            now_ms,
            &principal.who,
            &from,
            &method,
            &path,
            query.as_deref(),
            "403 role",
        )
        .await;
        return refuse(
            &path,
            StatusCode::FORBIDDEN,
            "role",
            &format!(
                "the role {} ({}) may not do this",
                principal.role.label(),
                principal.role.key()
            ),
        );
    }

    let recorded = changes_something(&method) || is_export(&method, &path);
    let target = query_value(request.uri().query(), "station").unwrap_or_default();
    let mut request = request;
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    if recorded {
        let entry = AuditEntry {
            at_ms: now_ms,
            who: principal.who,
            from,
            action: format!("{method} {path}"),
            target,
            outcome: response.status().as_u16().to_string(),
        };
        append(&access, entry).await;
    }
    response
}

/// Read the CSRF token from the header, the query, or (for a form) the
/// body, which is read (bounded) and put back for the handler.
async fn check_csrf(request: Request, expected: &str) -> (Option<Request>, bool) {
    if let Some(token) = header_text(request.headers(), CSRF_HEADER) {
        let ok = same_secret(token, expected);
        return (Some(request), ok);
    }
    if let Some(token) = query_value(request.uri().query(), CSRF_FIELD) {
        let ok = same_secret(&token, expected);
        return (Some(request), ok);
    }
    let is_form = header_text(request.headers(), header::CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (Some(request), false);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_BODY_BYTES_MAX).await else {
        return (None, false);
    };
    let ok = url_form_pairs(&bytes)
        .iter()
        .any(|(key, value)| key == CSRF_FIELD && same_secret(value, expected));
    let request = Request::from_parts(parts, Body::from(bytes));
    (Some(request), ok)
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    access: &Arc<Access>,
    now_ms: u64,
    who: &str,
    from: &str,
    method: &Method,
    path: &str,
    query: Option<&str>,
    outcome: &str,
) {
    let entry = AuditEntry {
        at_ms: now_ms,
        who: who.to_string(),
        from: from.to_string(),
        action: format!("{method} {path}"),
        target: query_value(query, "station").unwrap_or_default(),
        outcome: outcome.to_string(),
    };
    append(access, entry).await;
}

/// Append on a blocking thread (the append flushes to disk). A failure is
/// logged as an error: the request has already been answered.
pub async fn append(access: &Arc<Access>, entry: AuditEntry) {
    let access = access.clone();
    let result = tokio::task::spawn_blocking(move || access.audit.append(entry)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => tracing::error!(%reason, "could not write the audit log"),
        Err(error) => tracing::error!(%error, "could not write the audit log"),
    }
}

pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_this_nodes_addresses_with_its_port() {
        let names = vec!["civsync.xh.local".to_string()];
        assert!(host_allowed("127.0.0.1:7400", 7400, &names));
        assert!(host_allowed("localhost:7400", 7400, &names));
        assert!(host_allowed("[::1]:7400", 7400, &names));
        assert!(host_allowed("192.168.1.20:7400", 7400, &names));
        assert!(host_allowed("civsync.xh.local:7400", 7400, &names));
        assert!(!host_allowed("evil.example:7400", 7400, &names));
        assert!(!host_allowed("127.0.0.1:7401", 7400, &names));
        assert!(!host_allowed("127.0.0.1", 7400, &names));
        assert!(!host_allowed("", 7400, &names));
    }

    #[test]
    fn api_changes_take_json_and_imports_a_file_type() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(content_type_refusal(&Method::POST, "/api/v1/volunteers", &headers).is_some());
        assert!(
            content_type_refusal(&Method::POST, "/api/v1/import/volunteers", &headers).is_some()
        );
        // Reads and deletions carry no body.
        assert!(content_type_refusal(&Method::GET, "/api/v1/volunteers", &headers).is_none());
        assert!(
            content_type_refusal(&Method::DELETE, "/api/v1/activities/x/y", &headers).is_none()
        );
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(content_type_refusal(&Method::POST, "/api/v1/volunteers", &headers).is_none());
        headers.insert(
            header::CONTENT_TYPE,
            "application/octet-stream".parse().unwrap(),
        );
        assert!(
            content_type_refusal(&Method::POST, "/api/v1/import/volunteers", &headers).is_none()
        );
        assert!(content_type_refusal(&Method::POST, "/api/v1/volunteers", &headers).is_some());
        // Pages post forms.
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert!(content_type_refusal(&Method::POST, "/web/volunteers", &headers).is_none());
    }

    #[test]
    fn cookies_and_forms_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; civsync_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_value(&headers, COOKIE_NAME), Some("abc"));
        assert_eq!(cookie_value(&headers, "c"), None);
        let pairs = url_form_pairs("csrf=x%2By&name=%E7%8E%8B".as_bytes());
        assert_eq!(pairs[0], ("csrf".into(), "x+y".into()));
        assert_eq!(pairs[1], ("name".into(), "王".into()));
        assert_eq!(url_encode("/web/x?a=1"), "/web/x%3Fa%3D1");
    }
}
