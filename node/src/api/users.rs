//! `GET/POST users`, `POST users/{name}/password`, `POST users/{name}/unlock`,
//! `DELETE users/{name}`: the office's accounts, for administrators.
//!
//! Passwords arrive in the JSON body (never in a URL, which logs keep) and
//! are hashed on a blocking thread: argon2 takes tens of milliseconds on
//! purpose, which the async runtime must not spend.

use super::common::*;
use crate::access::guard::{append, Principal};
use crate::access::{AccountError, AuditEntry, Role};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<crate::context::NodeContext>> {
    Router::new()
        .route("/api/v1/users", get(list).post(add))
        .route("/api/v1/users/{name}", delete(remove))
        .route("/api/v1/users/{name}/password", post(set_password))
        .route("/api/v1/users/{name}/unlock", post(unlock))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    role: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        let (status, field) = match &error {
            AccountError::Invalid(reason) if reason.contains("password") => {
                (StatusCode::UNPROCESSABLE_ENTITY, "password")
            }
            AccountError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "name"),
            AccountError::Exists(_) => (StatusCode::CONFLICT, "name"),
            AccountError::Unknown(_) => (StatusCode::NOT_FOUND, "name"),
            AccountError::TooMany => (StatusCode::UNPROCESSABLE_ENTITY, "name"),
            AccountError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "accounts"),
        };
        ApiError::new(status, field, error.to_string())
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?
        .map_err(ApiError::from)
}

async fn list(State(ctx): Ctx) -> Result<Response, ApiError> {
    let access = ctx.access.clone();
    let now = crate::clock::now_ms();
    let accounts = blocking(move || access.accounts.list(now)).await?;
    Ok(Json(accounts).into_response())
}

async fn add(State(ctx): Ctx, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let account: NewAccount = json_body(body)?;
    let role = Role::parse(&account.role)
        .map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "role", reason))?;
    let access = ctx.access.clone();
    let now = crate::clock::now_ms();
    let view = blocking(move || {
        access
            .accounts
            .add(&account.name, role, &account.password, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn set_password(
    State(ctx): Ctx,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let new: NewPassword = json_body(body)?;
    let access = ctx.access.clone();
    let who = name.clone();
    blocking(move || access.accounts.set_password(&who, &new.password)).await?;
    ctx.access.sessions.end_all_of(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unlock(
    State(ctx): Ctx,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let access = ctx.access.clone();
    let who = name.clone();
    blocking(move || access.accounts.unlock(&who)).await?;
    tracing::info!(by = %principal.who, "account unlocked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove(State(ctx): Ctx, Path(name): Path<String>) -> Result<Response, ApiError> {
    let access = ctx.access.clone();
    let who = name.clone();
    blocking(move || access.accounts.remove(&who)).await?;
    ctx.access.sessions.end_all_of(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Record a login event (the guard records requests; logins are made by
/// the login page, which is public).
pub async fn audit_login(ctx: &crate::context::NodeContext, who: &str, from: &str, outcome: &str) {
    let entry = AuditEntry {
        at_ms: crate::clock::now_ms(),
        who: who.to_string(),
        from: from.to_string(),
        action: "login".to_string(),
        target: String::new(),
        outcome: outcome.to_string(),
    };
    append(&ctx.access, entry).await;
}
