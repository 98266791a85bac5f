//! Monthly approval in the API: approve a station's month or send it back,
//! and see where every month of a subtree stands.
//!
//! - `POST /api/v1/approvals` `{station, month, decision: approve|send_back,
//!   reason?}`: this node decides on `station`'s month. Only the next level
//!   up approves; any level above may send back, with a reason.
//! - `GET /api/v1/approvals?station=&month=`: for the station (this node's
//!   own by default) and every known station below it: state, by whom and
//!   when, whether the month was edited after approval, the approved
//!   figures next to the current ones.
//!
//! Authority is the protocol's (`service::approval_ops`): a refusal is a 4xx
//! naming the field (`station` when this node is not the one to decide,
//! `reason` when a send-back has none) and writes nothing. The decision's
//! time is the time the store's owner ran it (the node's clock).

use crate::api::common::{month_param, station_param, ApiError};
use crate::context::NodeContext;
use crate::files::report::{ApprovalMark, StatisticsReport};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use civsync_protocol::service::approval::ApprovalStatus;
use civsync_protocol::service::approval_ops::{self, StatusCache};
use civsync_protocol::stats::Period;
use civsync_protocol::StationId;
use serde::Deserialize;
use std::sync::Arc;

/// Longest reason accepted before validation (the protocol bounds it in
/// characters; this bounds the bytes we even look at).
pub const REASON_BYTES_MAX: usize = 16 * 1024;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new().route("/api/v1/approvals", get(list).post(decide))
}

/// What a clerk submits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionInput {
    station: String,
    month: String,
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecisionKind {
    Approve,
    SendBack,
}

fn decision_kind(text: &str) -> Result<DecisionKind, ApiError> {
    match text {
        "approve" => Ok(DecisionKind::Approve),
        "send_back" | "send-back" => Ok(DecisionKind::SendBack),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "decision",
            format!("unknown decision {other:?}; use approve or send_back"),
        )),
    }
}

async fn decide(
    State(ctx): State<Arc<NodeContext>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: DecisionInput = crate::api::common::json_body(body)?;
    let station = station_param(&ctx, Some(&input.station))?;
    let month = month_param(Some(&input.month))?;
    let kind = decision_kind(&input.decision)?;
    let reason = input.reason.unwrap_or_default();
    if reason.len() > REASON_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
            format!("{} bytes; at most {REASON_BYTES_MAX}", reason.len()),
        ));
    }
    if kind == DecisionKind::Approve && !reason.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
            "only a send-back carries a reason",
        ));
    }
    let decision = ctx
        .store
        .call_durable(move |replica| {
            let at_ms = replica.now_ms();
            match kind {
                DecisionKind::Approve => {
                    approval_ops::approve_month(replica, &station, month, at_ms)
                }
                DecisionKind::SendBack => {
                    approval_ops::send_back_month(replica, &station, month, &reason, at_ms)
                }
            }
        })
        .await??;
    Ok((StatusCode::CREATED, Json(decision)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    station: Option<String>,
    month: Option<String>,
}

async fn list(
    State(ctx): State<Arc<NodeContext>>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let station = station_param(&ctx, q.station.as_deref())?;
    let month = month_param(q.month.as_deref())?;
    // Current figures from the statistics index (brought up to date first),
    // so a county's listing does not read every document of the month.
    ctx.refresh_stats().await?;
    let stats = ctx.stats.clone();
    let listed = ctx
        .store
        .call(move |replica| {
            let state = stats.lock().unwrap_or_else(|p| p.into_inner());
            let mut cache = status_cache();
            approval_ops::subtree_approvals(
                replica,
                &station,
                month,
                Some(state.index()),
                &mut cache,
            )
        })
        .await??;
    Ok(Json(listed).into_response())
}

/// The month statuses this process has read, by the digests they were read
/// at. Shared by every node in the process (tests run several): a status is
/// a function of the two documents' heads, whoever holds them, so an entry
/// is right for any node whose digests match it.
fn status_cache() -> std::sync::MutexGuard<'static, StatusCache> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<StatusCache>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn mark(status: &ApprovalStatus) -> ApprovalMark {
    ApprovalMark {
        state: status.state,
        edited_after_approval: status.edited_after_approval,
    }
}

/// Mark each row of a monthly report with its station's approval state
/// (a quarterly bulletin spans three months and is left unmarked).
pub async fn mark_report(ctx: &NodeContext, report: &mut StatisticsReport) -> Result<(), ApiError> {
    let Some(month) = Period::parse(&report.period).and_then(|p| match p {
        Period::Month(month) => Some(month),
        Period::Quarter(_) => None,
    }) else {
        return Ok(());
    };
    let stations: Vec<StationId> = report.rows.iter().map(|r| r.station.clone()).collect();
    let marks = ctx
        .store
        .call(move |replica| {
            let mut cache = status_cache();
            stations
                .iter()
                .map(|s| cache.status(replica, s, month).map(|s| mark(&s)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
    for (row, mark) in report.rows.iter_mut().zip(marks) {
        row.approval = Some(mark);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
