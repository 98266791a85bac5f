//! `GET /`: what a clerk sees first — this month's figures, the sync light
//! ("上次同步 2 小时前"), what is waiting to go up, and the month's
//! approval state (sent back: with the reason, to correct).

use super::internal;
use super::layout::{ago, hours, num, page, shell, text};
use super::Web;
use crate::access::guard::Principal;
use crate::access::{Permission, Role};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, Markup};
use serde_json::Value;

pub fn routes() -> Router<Web> {
    Router::new().route("/", get(home))
}

/// The sync light of the parent link (or of every peer, above a village).
fn sync_light(status: &Value, now_ms: i64) -> Markup {
    let peers = status
        .get("peers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let upward: Vec<&Value> = peers
        .iter()
        .filter(|p| matches!(text(p, "role"), "parent" | "fallback"))
        .collect();
    let shown = if upward.is_empty() {
        peers.iter().collect()
    } else {
        upward
    };
    html! {
        section.sync {
            h2 { "同步状态" }
            @if shown.is_empty() {
                p { span.light.grey {} "本节点未配置上级或下级，不参与同步。" }
            }
            @for peer in shown {
                @let last = peer.get("last_seen_unix_ms").and_then(Value::as_i64);
                @let connected = peer.get("connected").and_then(Value::as_bool).unwrap_or(false);
                @let pending = num(peer, "documents_pending") + num(peer, "documents_in_flight");
                @let light = match (connected, last) {
                    (true, _) if pending == 0 => "green",
                    (true, _) => "amber",
                    (false, Some(seen)) if now_ms - seen < 24 * 3_600_000 => "amber",
                    _ => "red",
                };
                p.peer data-station=(text(peer, "station")) {
                    span class={ "light " (light) } {}
                    (text(peer, "station")) "："
                    @if connected { "已连接" } @else { "未连接" }
                    "，上次同步 "
                    @match last { Some(seen) => (ago(seen, now_ms)), None => "从未" }
                    @if pending > 0 { "，待同步文档 " (pending) " 个" } @else if connected { "，已是最新" }
                    @if let Some(error) = peer.get("last_error").and_then(Value::as_str) {
                        br; span.muted { "最近错误：" (error) }
                    }
                }
            }
        }
    }
}

async fn home(State(web): State<Web>, Extension(principal): Extension<Principal>) -> Response {
    // The auditor reads the log, nothing personal: start there.
    if principal.role == Role::Auditor {
        return Redirect::to("/web/audit").into_response();
    }
    let shell = shell(&web, &principal, "home");
    let month = crate::clock::this_month().to_string();
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    let status = internal::get(&web, "status").await;
    let stats = internal::get(&web, &format!("stats?month={month}")).await;
    let totals = stats.body.get("totals").cloned().unwrap_or(Value::Null);
    let approvals = internal::get(&web, &format!("approvals?month={month}")).await;
    let own = approvals
        .body
        .as_array()
        .and_then(|rows| rows.first())
        .cloned()
        .unwrap_or(Value::Null);
    let body = html! {
        div.cards {
            div.card { div.value #activities-this-month { (num(&totals, "activities")) } div.label { "本月活动（场）" } }
            div.card { div.value { (hours(num(&totals, "hours_centi"))) } div.label { "本月服务时长（小时）" } }
            div.card { div.value { (num(&totals, "participations")) } div.label { "本月参与人次" } }
            div.card { div.value { (num(&totals, "volunteers_registered")) } div.label { "注册志愿者（人）" } }
            div.card { div.value { (num(&totals, "orders_placed")) } div.label { "本月点单" } }
        }
        @if !stats.ok() { p.error { "统计暂不可用：" (stats.refusal().map(|r| r.1).unwrap_or_default()) } }
        (sync_light(&status.body, now_ms))
        @if let Some(warning) = status.body.get("warning").and_then(Value::as_str) {
            p.error role="alert" { (warning) }
        }
        section {
            h2 { "今日待办" }
            ul {
                @match text(&own, "state") {
                    "sent_back" => li.error { "本月数据被退回：" (own.get("decision").map(|d| text(d, "reason")).unwrap_or("")) "，请更正后重新上报。" },
                    "approved" => li { "本月已审核通过。" },
                    _ => li { "本月数据待上级审核（" (month) "）。" },
                }
                @if principal.role.may(Permission::Record) {
                    li { a href="/web/activities" { "登记今天的活动" } }
                    li { a href="/web/volunteers" { "登记或更正志愿者" } }
                }
                @if principal.role.may(Permission::Approve) && web.ctx.config.tier != civsync_protocol::Tier::Village {
                    li { a href="/web/approvals" { "审核下级上报的月度数据" } }
                }
            }
        }
    };
    page(&shell, "首页", body).into_response()
}
