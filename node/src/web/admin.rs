//! `/web/users` (administrators: add an account, unlock one) and
//! `/web/audit` (auditors and administrators: the audit log, filtered).

use super::internal;
use super::layout::{beijing_time, csrf_field, field_error, other_errors, page, shell, text};
use super::Web;
use crate::access::guard::{url_encode, Principal};
use crate::access::roles::ROLES;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/users", get(users).post(add_user))
        .route("/web/users/unlock", post(unlock))
        .route("/web/audit", get(audit))
}

#[derive(Deserialize, Default)]
struct Notice {
    notice: Option<String>,
}

async fn users_page(
    web: &Web,
    principal: &Principal,
    notice: Option<&str>,
    errors: &[(String, String)],
) -> Markup {
    let shell = shell(web, principal, "users");
    let listed = internal::get(web, "users").await;
    let accounts = listed.body.as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        table #users {
            thead { tr { th { "用户名" } th { "角色" } th { "状态" } th { "上次登录" } th {} } }
            tbody {
                @for a in &accounts {
                    @let locked = a.get("locked").and_then(Value::as_bool).unwrap_or(false);
                    tr {
                        td { (text(a, "name")) }
                        td { (text(a, "role_label")) }
                        td { @if locked { span.error { "已锁定" } } @else { "正常" } }
                        td { @match a.get("last_login_ms").and_then(Value::as_i64).filter(|ms| *ms > 0) { Some(ms) => (beijing_time(ms)), None => "从未" } }
                        td { @if locked {
                            form method="post" action="/web/users/unlock" { (csrf_field(principal)) input type="hidden" name="name" value=(text(a, "name")); button type="submit" { "解锁" } }
                        } }
                    }
                }
            }
        }
        h2 { "新增账户" }
        (other_errors(errors, &["name", "role", "password"]))
        form.record method="post" action="/web/users" {
            (csrf_field(principal))
            label { "用户名" input name="name" required; (field_error(errors, "name")) }
            label { "角色" select name="role" { @for role in ROLES { option value=(role.key()) { (role.label()) } } } (field_error(errors, "role")) }
            label { "初始密码（至少 8 位，含字母和数字）" input name="password" type="password" autocomplete="new-password" required; (field_error(errors, "password")) }
            div.wide { button.primary type="submit" { "新增" } }
        }
    };
    page(&shell, "账户管理", body)
}

async fn users(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(notice): Query<Notice>,
) -> Markup {
    users_page(&web, &principal, notice.notice.as_deref(), &[]).await
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    role: String,
    password: String,
}

async fn add_user(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<NewUser>,
) -> Response {
    let body = json!({"name": form.name, "role": form.role, "password": form.password});
    let answer = internal::post(&web, "users", &body).await;
    match answer.refusal() {
        None => Redirect::to(&format!(
            "/web/users?notice={}",
            url_encode(&format!("已新增账户 {}", form.name))
        ))
        .into_response(),
        Some(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            users_page(&web, &principal, None, &[error]).await,
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn unlock(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<Named>,
) -> Response {
    let answer = internal::post(
        &web,
        &format!("users/{}/unlock", url_encode(&form.name)),
        &json!({}),
    )
    .await;
    match answer.refusal() {
        None => Redirect::to(&format!(
            "/web/users?notice={}",
            url_encode(&format!("已解锁 {}", form.name))
        ))
        .into_response(),
        Some(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            users_page(&web, &principal, None, &[error]).await,
        )
            .into_response(),
    }
}

#[derive(Deserialize, Default)]
struct AuditFilter {
    who: Option<String>,
    action: Option<String>,
}

async fn audit(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(filter): Query<AuditFilter>,
) -> Markup {
    let shell = shell(&web, &principal, "audit");
    let mut query = vec!["limit=500".to_string()];
    if let Some(who) = filter.who.as_deref().filter(|w| !w.is_empty()) {
        query.push(format!("who={}", url_encode(who)));
    }
    if let Some(action) = filter.action.as_deref().filter(|a| !a.is_empty()) {
        query.push(format!("action={}", url_encode(action)));
    }
    let listed = internal::get(&web, &format!("audit?{}", query.join("&"))).await;
    let entries = listed.body.as_array().cloned().unwrap_or_default();
    let body = html! {
        form.toolbar method="get" action="/web/audit" {
            input name="who" value=(filter.who.clone().unwrap_or_default()) placeholder="用户";
            input name="action" value=(filter.action.clone().unwrap_or_default()) placeholder="操作（如 login、POST）";
            button type="submit" { "筛选" }
            span.muted { "最近 " (entries.len()) " 条；日志只增不删，保留 400 天。" }
        }
        @if let Some((_, reason)) = listed.refusal() { p.error { (reason) } }
        table #audit {
            thead { tr { th { "时间" } th { "用户" } th { "来源" } th { "操作" } th { "对象" } th { "结果" } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (beijing_time(e.get("at_ms").and_then(Value::as_i64).unwrap_or(0))) }
                        td { (text(e, "who")) } td { (text(e, "from")) } td { (text(e, "action")) }
                        td { (text(e, "target")) } td { (text(e, "outcome")) }
                    }
                }
            }
        }
    };
    page(&shell, "审计日志", body)
}
