//! `GET/POST /login` and `POST /logout`.
//!
//! The login form is public; the guard has already refused it from another
//! site's page (Origin), so nobody can log a clerk into an attacker's
//! account. The session cookie is HttpOnly (no script reads it) and
//! SameSite=Strict (no other site's page sends it).

use super::layout::CSS;
use super::Web;
use crate::access::accounts::LoginRefusal;
use crate::access::guard::{append, cookie_value};
use crate::access::sessions::COOKIE_NAME;
use crate::access::AuditEntry;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use std::net::SocketAddr;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize, Default)]
struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Only a path of this site: never `//evil.example` or `https://...`.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/"
    }
}

fn form(office: &str, next: &str, name: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "登录 · " (office) }
                link rel="stylesheet" href=(CSS);
            }
            body {
                form.login method="post" action="/login" {
                    h1 { "登录" }
                    p.muted { (office) }
                    @if let Some(error) = error { p.error role="alert" id="login-error" { (error) } }
                    input type="hidden" name="next" value=(next);
                    label { "用户名" input name="name" id="name" value=(name) autocomplete="username" required autofocus; }
                    label { "密码" input name="password" id="password" type="password" autocomplete="current-password" required; }
                    button.primary type="submit" id="login" { "登录" }
                    p.muted { "连续输错 5 次密码，账户锁定 15 分钟。" }
                }
            }
        }
    }
}

fn office_name(web: &Web) -> String {
    let config = &web.ctx.config;
    if config.name.is_empty() {
        config.station.to_string()
    } else {
        config.name.clone()
    }
}

async fn login_page(State(web): State<Web>, Query(next): Query<Next>) -> Markup {
    let next = next.next.unwrap_or_else(|| "/".into());
    form(&office_name(&web), safe_next(&next), "", None)
}

async fn login(
    State(web): State<Web>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form_in): Form<LoginForm>,
) -> Response {
    let from = connect.map(|c| c.0 .0.ip().to_string()).unwrap_or_default();
    let now = crate::clock::now_ms();
    let office = office_name(&web);
    let next = safe_next(&form_in.next).to_string();
    if !web.ctx.access.admit_login(now) {
        let page = form(
            &office,
            &next,
            &form_in.name,
            Some("登录尝试过于频繁，请一分钟后再试"),
        );
        return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
    }
    let access = web.ctx.access.clone();
    let (name, password) = (form_in.name.clone(), form_in.password);
    let checked =
        tokio::task::spawn_blocking(move || access.accounts.login(&name, &password, now)).await;
    let outcome = match checked {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => {
            tracing::error!(%error, "login failed: the account store");
            let page = form(
                &office,
                &next,
                &form_in.name,
                Some("系统错误，请联系管理员"),
            );
            return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
        }
        Err(error) => {
            tracing::error!(%error, "login failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let record = |outcome: &str| AuditEntry {
        at_ms: now,
        who: form_in.name.clone(),
        from: from.clone(),
        action: "login".into(),
        target: String::new(),
        outcome: outcome.into(),
    };
    match outcome {
        Ok(account) => {
            append(&web.ctx.access, record("ok")).await;
            let (id, _) = web
                .ctx
                .access
                .sessions
                .start(&account.name, account.role, now);
            let cookie = format!(
                "{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                crate::access::sessions::LIFETIME_MS / 1000
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(refusal) => {
            let word = match &refusal {
                LoginRefusal::Wrong { attempts_left: 0 } => "failed, now locked",
                LoginRefusal::Wrong { .. } => "failed",
                LoginRefusal::Locked { .. } => "refused: locked",
            };
            append(&web.ctx.access, record(word)).await;
            let page = form(&office, &next, &form_in.name, Some(&refusal.message(now)));
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
    }
}

/// The guard has checked the session and its CSRF token, and records the
/// logout in the audit log.
async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers, COOKIE_NAME) {
        web.ctx.access.sessions.end(id);
    }
    let expired = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_login_only_a_page_of_this_site_is_opened() {
        assert_eq!(
            safe_next("/web/activities?month=2026-11"),
            "/web/activities?month=2026-11"
        );
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
    }
}
