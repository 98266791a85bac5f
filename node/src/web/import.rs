//! `/web/import`: a roster (花名册), a team list (志愿服务队), an
//! activity ledger (活动台账) or, for an administrator above the villages,
//! the station list (站点名录) file,
//! uploaded with a progress bar, answered with the per-row report.
//!
//! The browser sends the file's own bytes (the script in `assets`, bound to
//! `form[data-upload]`), so nothing here parses multipart; the handler hands
//! the bytes to the API's import (`POST import/volunteers|teams|activities|stations`)
//! in-process and renders its report as an HTML fragment. Every rule — size,
//! format, rows, fields — is the API's; a refusal is its reason.

use super::internal;
use super::layout::{num, page, shell, text};
use super::Web;
use crate::access::guard::{url_encode, Principal};
use crate::access::Permission;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use civsync_protocol::Tier;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

/// Refused rows listed in the report; the rest are counted.
pub const REFUSALS_SHOWN_MAX: usize = 200;

/// The imports: the page's name, the API's path, what the file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Roster,
    Teams,
    Ledger,
    Stations,
}

impl Kind {
    fn api_path(self) -> &'static str {
        match self {
            Kind::Roster => "import/volunteers",
            Kind::Teams => "import/teams",
            Kind::Ledger => "import/activities",
            Kind::Stations => "import/stations",
        }
    }

    fn page_path(self) -> &'static str {
        match self {
            Kind::Roster => "/web/import/volunteers",
            Kind::Teams => "/web/import/teams",
            Kind::Ledger => "/web/import/activities",
            Kind::Stations => "/web/import/stations",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Roster => "志愿者花名册",
            Kind::Teams => "志愿服务队",
            Kind::Ledger => "活动台账",
            Kind::Stations => "站点名录",
        }
    }

    fn columns(self) -> &'static str {
        match self {
            Kind::Roster => "姓名、性别、身份证号（必填），编号、手机、居住地、技能、服务类别、同意公开、党员、注册日期（可选）",
            Kind::Teams => "队伍名称、服务类别（必填），队伍编号、上级队伍、队长编号、队员编号（可选；多名队员写在一格内，用顿号或分号隔开）；每行一支队伍，队员须已在花名册中",
            Kind::Ledger => "活动名称、活动日期、活动形式、服务类别（必填），活动编号、地点、内容、组织队伍、负责人、受益人数、主题、志愿者编号、服务时长（可选）；每行一名志愿者的一次服务",
            Kind::Stations => "站点编码（完整路径，须在本单位之下）、站点名称（必填），层级（可选：所、站、点，空则按编码的层数）；每行一个站点，已登记的编码按更名处理",
        }
    }
}

pub fn routes() -> Router<Web> {
    let roster = Router::new()
        .route(Kind::Roster.page_path(), post(upload_roster))
        .route(Kind::Teams.page_path(), post(upload_teams))
        .route(Kind::Stations.page_path(), post(upload_stations))
        .layer(DefaultBodyLimit::max(crate::api::IMPORT_BODY_BYTES_MAX));
    let ledger = Router::new()
        .route(Kind::Ledger.page_path(), post(upload_ledger))
        .layer(DefaultBodyLimit::max(
            crate::api::ledger_import::LEDGER_BODY_BYTES_MAX,
        ));
    Router::new()
        .route("/web/import", get(show))
        .merge(roster)
        .merge(ledger)
}

#[derive(Deserialize, Default)]
struct UploadQuery {
    station: Option<String>,
    format: Option<String>,
}

fn upload_form(kind: Kind, above_village: bool, own: &str) -> Markup {
    let report = match kind {
        Kind::Roster => "roster-report",
        Kind::Teams => "teams-report",
        Kind::Ledger => "ledger-report",
        Kind::Stations => "stations-report",
    };
    html! {
        h2 { (kind.label()) }
        p.muted { "CSV 或 Excel（.xlsx）文件，第一行为表头：" (kind.columns()) "。列名也接受英文键名和常见别名，列的顺序不限。" }
        form.record data-upload data-report=(report) method="post" action=(kind.page_path()) {
            @if above_village {
                label { "导入到站点（空则本站 " (own) "）" input name="station" placeholder=(own); }
            }
            label { "文件" input type="file" name="file" accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" required; }
            div.wide {
                button.primary type="submit" { "导入" }
                " " progress hidden max="1" {} " " span.muted data-state role="status" {}
            }
        }
        div id=(report) {}
    }
}

async fn show(State(web): State<Web>, Extension(principal): Extension<Principal>) -> Markup {
    let shell = shell(&web, &principal, "import");
    let config = &web.ctx.config;
    let above_village = config.tier != Tier::Village && config.tier != Tier::Point;
    let own = config.station.as_str();
    let body = html! {
        @if principal.role.may(Permission::Record) {
            p.muted { "同一文件重复导入不会重复登记：已有的编号按更正处理。导入后的数据随下次同步上报。" }
            (upload_form(Kind::Roster, above_village, own))
            (upload_form(Kind::Teams, above_village, own))
            (upload_form(Kind::Ledger, above_village, own))
            @if above_village && principal.role.may(Permission::Administer) {
                // The rows name their stations: no station to import into.
                (upload_form(Kind::Stations, false, own))
            }
        } @else {
            p.error { "当前角色只能查看，不能导入。" }
        }
    };
    page(&shell, "导入", body)
}

async fn upload_roster(
    State(web): State<Web>,
    Query(query): Query<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    upload(&web, Kind::Roster, query, body).await
}

async fn upload_teams(
    State(web): State<Web>,
    Query(query): Query<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    upload(&web, Kind::Teams, query, body).await
}

async fn upload_ledger(
    State(web): State<Web>,
    Query(query): Query<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    upload(&web, Kind::Ledger, query, body).await
}

async fn upload_stations(
    State(web): State<Web>,
    Query(query): Query<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    upload(&web, Kind::Stations, query, body).await
}

async fn upload(
    web: &Web,
    kind: Kind,
    query: UploadQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) => {
            let reason = format!("文件未能接收：{}", rejection.body_text());
            return (rejection.status(), refusal_fragment(&reason)).into_response();
        }
    };
    let mut path = format!(
        "{}?format={}",
        kind.api_path(),
        url_encode(query.format.as_deref().unwrap_or("csv"))
    );
    let station = query.station.as_deref().filter(|s| !s.trim().is_empty());
    if let Some(station) = station.filter(|_| kind != Kind::Stations) {
        path.push_str(&format!("&station={}", url_encode(station.trim())));
    }
    let answer = internal::post_file(web, &path, "application/octet-stream", bytes).await;
    match answer.refusal() {
        Some((field, reason)) => (
            answer.status,
            refusal_fragment(&format!("{field}：{reason}")),
        )
            .into_response(),
        None => (StatusCode::OK, report_fragment(kind, &answer.body)).into_response(),
    }
}

/// A report's field key as the sheet's Chinese header names it.
fn field_label(kind: Kind, field: &str) -> &str {
    match (kind, field) {
        (Kind::Stations, "id") => return "站点编码",
        (Kind::Stations, "name") => return "站点名称",
        (Kind::Stations, "tier") => return "层级",
        _ => {}
    }
    match field {
        "number" => "编号",
        "name" => "姓名/名称",
        "sex" => "性别",
        "birth_date" => "出生日期",
        "residence_area" => "居住地",
        "phone" => "手机",
        "id_number" => "身份证号",
        "skills" => "技能",
        "categories" | "category" => "服务类别",
        "consent" => "同意公开",
        "party_member" => "党员",
        "registered_on" => "注册日期",
        "id" => "活动编号",
        "date" => "活动日期",
        "place" => "地点",
        "content" => "内容",
        "form" => "活动形式",
        "team" => "组织队伍",
        "person_in_charge" => "负责人",
        "beneficiaries" => "受益人数",
        "theme" => "主题",
        "volunteer" => "志愿者编号",
        "hours" => "服务时长",
        "activity" => "同一活动",
        other => other,
    }
}

fn refusal_fragment(reason: &str) -> Markup {
    html! { p.error role="alert" data-outcome="refused" { (reason) } }
}

/// The per-row report: counts, then every refused row with its field and
/// reason, as the spreadsheet numbers rows (header = row 1).
fn report_fragment(kind: Kind, report: &Value) -> Markup {
    let refused = report
        .get("refused")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (rows, accepted) = (num(report, "rows"), num(report, "accepted"));
    html! {
        p.notice role="status" data-outcome="imported" data-rows=(rows) data-accepted=(accepted) data-refused=(refused.len()) {
            (kind.label()) "：共 " (rows) " 行，导入 " (accepted) " 行，未导入 " (refused.len()) " 行。"
            @if kind == Kind::Ledger { " 写入活动 " (report.get("activities").and_then(Value::as_array).map_or(0, Vec::len)) " 场。" }
        }
        @if !refused.is_empty() {
            table #refused-rows {
                thead { tr { th.num { "行号" } th { "字段" } th { "原因" } } }
                tbody {
                    @for row in refused.iter().take(REFUSALS_SHOWN_MAX) {
                        tr { td.num { (num(row, "row")) } td data-field=(text(row, "field")) { (field_label(kind, text(row, "field"))) } td { (text(row, "reason")) } }
                    }
                }
            }
            @if refused.len() > REFUSALS_SHOWN_MAX {
                p.muted { "另有 " (refused.len() - REFUSALS_SHOWN_MAX) " 行未列出；请修正以上各行后重新导入。" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_counts_rows_and_lists_each_refusal_with_its_row_and_field() {
        let report = json!({
            "rows": 3, "accepted": 1,
            "refused": [
                {"row": 3, "field": "id_number", "reason": "校验位错误"},
                {"row": 4, "field": "phone", "reason": "不是手机号"},
            ],
        });
        let html = report_fragment(Kind::Roster, &report).into_string();
        assert!(html.contains("共 3 行，导入 1 行，未导入 2 行"), "{html}");
        assert!(html.contains(
            "<td class=\"num\">3</td><td data-field=\"id_number\">身份证号</td><td>校验位错误</td>"
        ));
        assert!(html.contains("<td class=\"num\">4</td><td data-field=\"phone\">手机</td>"));
        let clean = report_fragment(
            Kind::Roster,
            &json!({"rows": 2, "accepted": 2, "refused": []}),
        )
        .into_string();
        assert!(!clean.contains("refused-rows"));
    }

    #[test]
    fn a_station_list_s_refusals_name_the_station_columns() {
        let report = json!({
            "rows": 2, "accepted": 0,
            "refused": [
                {"row": 2, "field": "id", "reason": "不在本单位之下"},
                {"row": 3, "field": "tier", "reason": "层级不符"},
            ],
        });
        let html = report_fragment(Kind::Stations, &report).into_string();
        assert!(
            html.contains("站点名录：共 2 行，导入 0 行，未导入 2 行"),
            "{html}"
        );
        assert!(
            html.contains("<td data-field=\"id\">站点编码</td>"),
            "{html}"
        );
        assert!(html.contains("<td data-field=\"tier\">层级</td>"), "{html}");
    }
}
