//! The township's and county's pages: the stations table (`/web/stations`),
//! monthly approval (`/web/approvals`) and reports (`/web/reports`).
//!
//! The stations table is the county's daily view: every station below,
//! its name, when it was last heard from, whether it has gone quiet, this
//! month's figures, coverage and approval state, with a bar chart of hours
//! per station drawn as SVG on the server (no chart library to ship).

use super::internal;
use super::layout::{
    ago, csrf_field, field_error, hours, month_nav, month_or_now, num, other_errors, page, shell,
    text,
};
use super::Web;
use crate::access::guard::Principal;
use crate::access::Permission;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/stations", get(stations))
        .route("/web/approvals", get(approvals).post(decide))
        .route("/web/reports", get(reports))
}

#[derive(Deserialize, Default)]
pub struct MonthQuery {
    pub month: Option<String>,
    pub notice: Option<String>,
}

fn approval_label(state: &str, edited: bool) -> String {
    let word = match state {
        "approved" => "已审核",
        "sent_back" => "已退回",
        _ => "待审核",
    };
    if edited {
        format!("{word}（审核后有修改）")
    } else {
        word.to_string()
    }
}

fn percent(value: Option<f64>) -> String {
    value
        .map(|v| format!("{:.0}%", v * 100.0))
        .unwrap_or_default()
}

/// Bars of hours per station, one row each, scaled to the largest.
fn hours_chart(rows: &[&Value]) -> Markup {
    let largest = rows
        .iter()
        .map(|r| num(r, "hours_centi"))
        .max()
        .unwrap_or(0)
        .max(1);
    let (bar_height, gap, label_width, width) = (18u64, 6u64, 180u64, 720u64);
    let height = rows.len() as u64 * (bar_height + gap) + gap;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } role="img" aria-label="各站点本月服务时长" {
            @for (i, row) in rows.iter().enumerate() {
                @let y = gap + i as u64 * (bar_height + gap);
                @let length = num(row, "hours_centi") * (width - label_width - 80) / largest;
                text x="4" y=(y + 13) font-size="12" { (text(row, "name")) }
                rect x=(label_width) y=(y) width=(length.max(1)) height=(bar_height) fill="#c62828" {}
                text x=(label_width + length + 6) y=(y + 13) font-size="12" { (hours(num(row, "hours_centi"))) " 小时" }
            }
        }
    }
}

async fn stations(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<MonthQuery>,
) -> Response {
    let shell = shell(&web, &principal, "stations");
    let month = month_or_now(query.month.as_deref());
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    let freshness = internal::get(&web, "freshness").await;
    let report = internal::get(&web, &format!("stats?month={month}")).await;
    if let Some((_, reason)) = freshness.refusal().or_else(|| report.refusal()) {
        return super::layout::failure(&shell, "站点看板", &reason).into_response();
    }
    let figures: BTreeMap<&str, &Value> = report
        .body
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().map(|r| (text(r, "station"), r)).collect())
        .unwrap_or_default();
    let rows: Vec<&Value> = freshness
        .body
        .get("stations")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().collect())
        .unwrap_or_default();
    let totals = report.body.get("totals").cloned().unwrap_or(Value::Null);
    let own = web.ctx.config.station.clone();
    let children: Vec<&Value> = figures
        .iter()
        .filter(|(station, _)| {
            civsync_protocol::StationId::parse(station)
                .ok()
                .and_then(|s| s.parent())
                .is_some_and(|parent| parent == own)
        })
        .map(|(_, row)| *row)
        .collect();
    let quiet = rows
        .iter()
        .filter(|r| text(r, "station") != own.as_str())
        .filter(|r| r.get("quiet").and_then(Value::as_bool).unwrap_or(false))
        .count();
    let body = html! {
        (month_nav("/web/stations", &month))
        div.cards {
            div.card { div.value { (num(&totals, "activities")) } div.label { "活动（场）" } }
            div.card { div.value { (hours(num(&totals, "hours_centi"))) } div.label { "服务时长（小时）" } }
            div.card { div.value { (num(&totals, "volunteers_active")) } div.label { "参与服务的志愿者" } }
            div.card { div.value { (percent(totals.get("coverage").and_then(Value::as_f64))) } div.label { "村站覆盖率" } }
            div.card { div.value #quiet-count { (quiet) } div.label { "长期无动态站点" } }
        }
        section {
            h2 { "订单漏斗" }
            p {
                "点单 " strong { (num(&totals, "orders_placed")) }
                " → 接单 " strong { (num(&totals, "orders_taken")) }
                " → 评价 " strong { (num(&totals, "orders_rated")) }
                @if let Some(satisfaction) = totals.get("satisfaction").and_then(Value::as_f64) {
                    "，满意度 " strong { (format!("{satisfaction:.1}")) } " / 5"
                }
            }
        }
        @if !children.is_empty() {
            h2 { "下级本月服务时长" }
            (hours_chart(&children))
        }
        h2 { "站点一览" }
        table #stations {
            thead { tr {
                th { "站点" } th { "编码" } th { "上次联系" } th { "状态" }
                th.num { "活动" } th.num { "时长" } th.num { "志愿者" } th.num { "覆盖率" } th { "审核" }
            } }
            tbody {
                @for row in &rows {
                    @let station = text(row, "station");
                    @let f = figures.get(station).copied().cloned().unwrap_or(Value::Null);
                    // This office is never "quiet" on its own dashboard.
                    @let quiet = station != own.as_str() && row.get("quiet").and_then(Value::as_bool).unwrap_or(false);
                    tr class=@if quiet { "quiet" } data-station=(station) {
                        td { (row.get("name").and_then(Value::as_str).unwrap_or(station)) }
                        td.muted { (station) }
                        td.last-heard {
                            @match row.get("as_of_ms").and_then(Value::as_i64) {
                                _ if station == own.as_str() => "—",
                                Some(at) => { (ago(at, now_ms)) br; span.muted { (super::layout::beijing_time(at)) } }
                                None => "从未",
                            }
                        }
                        td {
                            @if station == own.as_str() { "本节点" }
                            @else if let Some(on) = row.get("retired_on").and_then(Value::as_str) { "已撤并（" (on) "）" }
                            @else if quiet { span.error { "无动态" } }
                            @else { "正常" }
                        }
                        td.num { (num(&f, "activities")) }
                        td.num { (hours(num(&f, "hours_centi"))) }
                        td.num { (num(&f, "volunteers_registered")) }
                        td.num { (percent(f.get("coverage").and_then(Value::as_f64))) }
                        td { @if let Some(mark) = f.get("approval").filter(|m| !m.is_null()) {
                            (approval_label(text(mark, "state"), mark.get("edited_after_approval").and_then(Value::as_bool).unwrap_or(false)))
                        } }
                    }
                }
            }
        }
        p.muted { "“上次联系”取该站最新数据与最近一次直接同步中较晚者；超过 " (num(&freshness.body, "quiet_days_max")) " 天无动态的站点标为“无动态”。" }
    };
    page(&shell, "站点看板", body).into_response()
}

async fn approvals(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<MonthQuery>,
) -> Response {
    let month = month_or_now(query.month.as_deref());
    let notice = query.notice.clone();
    approvals_page(&web, &principal, &month, notice.as_deref(), &[]).await
}

async fn approvals_page(
    web: &Web,
    principal: &Principal,
    month: &str,
    notice: Option<&str>,
    errors: &[(String, String)],
) -> Response {
    let shell = shell(web, principal, "approvals");
    let listed = internal::get(web, &format!("approvals?month={month}")).await;
    if let Some((_, reason)) = listed.refusal() {
        return super::layout::failure(&shell, "月度审核", &reason).into_response();
    }
    let rows = listed.body.as_array().cloned().unwrap_or_default();
    let own = web.ctx.config.station.as_str().to_string();
    let may_decide = principal.role.may(Permission::Approve);
    let body = html! {
        (month_nav("/web/approvals", month))
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        (other_errors(errors, &["reason"]))
        table #approvals {
            thead { tr { th { "站点" } th { "状态" } th.num { "活动" } th.num { "时长" } th { "说明" } @if may_decide { th { "操作" } } } }
            tbody {
                @for row in rows.iter().filter(|r| text(r, "station") != own) {
                    @let station = text(row, "station");
                    @let current = row.get("current").cloned().unwrap_or(Value::Null);
                    @let counts = current.get("counts").cloned().unwrap_or(Value::Null);
                    @let edited = row.get("edited_after_approval").and_then(Value::as_bool).unwrap_or(false);
                    tr data-station=(station) {
                        td { (station) }
                        td.state { (approval_label(text(row, "state"), edited)) }
                        td.num { (num(&counts, "activities")) }
                        td.num { (hours(num(&counts, "hours_centi"))) }
                        td { @if let Some(decision) = row.get("decision").filter(|d| !d.is_null()) {
                            (text(decision, "by")) " · " (super::layout::beijing_time(decision.get("at_ms").and_then(Value::as_i64).unwrap_or(0)))
                            @if !text(decision, "reason").is_empty() { br; "退回原因：" (text(decision, "reason")) }
                        } }
                        @if may_decide { td {
                            form method="post" action="/web/approvals" style="display:inline" {
                                (csrf_field(principal))
                                input type="hidden" name="station" value=(station);
                                input type="hidden" name="month" value=(month);
                                input type="hidden" name="decision" value="approve";
                                button.primary type="submit" data-approve=(station) { "审核通过" }
                            }
                            " "
                            form method="post" action="/web/approvals" style="display:inline" {
                                (csrf_field(principal))
                                input type="hidden" name="station" value=(station);
                                input type="hidden" name="month" value=(month);
                                input type="hidden" name="decision" value="send_back";
                                input name="reason" placeholder="退回原因" size="14";
                                button type="submit" { "退回" }
                            }
                            (field_error(errors, "reason"))
                        } }
                    }
                }
            }
        }
    };
    page(&shell, "月度审核", body).into_response()
}

#[derive(Deserialize)]
struct DecisionForm {
    station: String,
    month: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn decide(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let mut body = json!({"station": form.station, "month": form.month, "decision": form.decision});
    if form.decision == "send_back" {
        body["reason"] = json!(form.reason);
    }
    let answer = internal::post(&web, "approvals", &body).await;
    match answer.refusal() {
        None => {
            let word = if form.decision == "approve" {
                "已审核通过"
            } else {
                "已退回"
            };
            let notice = format!("{} {} {}", form.station, form.month, word);
            Redirect::to(&format!(
                "/web/approvals?month={}&notice={}",
                crate::access::guard::url_encode(&form.month),
                crate::access::guard::url_encode(&notice)
            ))
            .into_response()
        }
        Some(error) => {
            let page = approvals_page(&web, &principal, &form.month, None, &[error]).await;
            (axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

async fn reports(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<MonthQuery>,
) -> Response {
    let shell = shell(&web, &principal, "reports");
    let month = month_or_now(query.month.as_deref());
    let report = internal::get(&web, &format!("reports/monthly?month={month}")).await;
    if let Some((_, reason)) = report.refusal() {
        return super::layout::failure(&shell, "报表", &reason).into_response();
    }
    let rows = report
        .body
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let quarter = civsync_protocol::Month::parse(&month)
        .map(|m| format!("{}Q{}", m.year, (m.month - 1) / 3 + 1))
        .unwrap_or_default();
    let body = html! {
        (month_nav("/web/reports", &month))
        div.toolbar {
            a.download #download-xlsx href={ "/api/v1/reports/monthly?month=" (month) "&format=xlsx" } { "下载月报 Excel" }
            a.download href={ "/api/v1/reports/monthly?month=" (month) "&format=csv" } { "下载月报 CSV" }
            a.download href={ "/api/v1/reports/quarterly?quarter=" (quarter) "&format=xlsx" } { "下载季度通报 Excel（" (quarter) "）" }
        }
        h2 { (text(&report.body, "title")) }
        table #report {
            thead { tr {
                th { "站点" } th { "层级" } th.num { "活动" } th.num { "服务人次" } th.num { "时长" }
                th.num { "受益人数" } th.num { "注册志愿者" } th.num { "新增" } th.num { "点单" } th.num { "满意度" }
            } }
            tbody {
                @for row in &rows {
                    tr {
                        td { (text(row, "name")) } td { (text(row, "tier")) }
                        td.num { (num(row, "activities")) } td.num { (num(row, "participations")) }
                        td.num { (hours(num(row, "hours_centi"))) } td.num { (num(row, "beneficiaries")) }
                        td.num { (num(row, "volunteers_registered")) } td.num { (num(row, "volunteers_new")) }
                        td.num { (num(row, "orders_placed")) }
                        td.num { @if let Some(s) = row.get("satisfaction").and_then(Value::as_f64) { (format!("{s:.1}")) } }
                    }
                }
            }
        }
    };
    page(&shell, "报表", body).into_response()
}
