//! `/web/activities`: a month's activities with who served and for how
//! long; record one (a volunteer picker and hours); delete one (kept,
//! marked deleted, as the API does).

use super::form::{optional, redirect_with_notice, value, Pairs};
use super::internal;
use super::layout::{
    csrf_field, field_error, month_nav, month_or_now, other_errors, page, shell, text,
};
use super::Web;
use crate::access::guard::{url_encode, Principal};
use crate::access::Permission;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use civsync_protocol::domain::model::{Category, Form as ActivityForm};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/activities", get(list).post(record))
        .route("/web/activities/delete", post(delete))
}

const FIELDS: &[&str] = &[
    "name",
    "date",
    "place",
    "content",
    "form",
    "category",
    "person_in_charge",
    "beneficiaries",
    "records",
    "hours",
    "theme",
    "team",
];

#[derive(Deserialize, Default)]
struct ListQuery {
    month: Option<String>,
    notice: Option<String>,
    /// An activity id of the month: the form opens filled with it.
    edit: Option<String>,
}

/// The API body: every ticked volunteer served the hours given.
fn activity_input(pairs: &Pairs) -> Value {
    let hours = value(pairs, "hours").trim().to_string();
    let records: Vec<Value> = pairs
        .iter()
        .filter(|(key, _)| key == "volunteer")
        .map(|(_, number)| json!({"volunteer": number, "hours": hours}))
        .collect();
    let beneficiaries = value(pairs, "beneficiaries").trim();
    let optional = |name: &str| optional(pairs, name);
    json!({
        "id": optional("id"),
        "team": optional("team"),
        "theme": optional("theme"),
        "name": value(pairs, "name").trim(),
        "date": value(pairs, "date").trim(),
        "place": value(pairs, "place").trim(),
        "content": value(pairs, "content").trim(),
        "form": value(pairs, "form"),
        "category": value(pairs, "category"),
        "person_in_charge": value(pairs, "person_in_charge").trim(),
        "beneficiaries": if beneficiaries.is_empty() { 0 } else { beneficiaries.parse::<u32>().unwrap_or(u32::MAX) },
        "records": records,
    })
}

/// A stored activity as the form's fields, for correcting it; `Err` with
/// the reason when the form cannot hold it without losing something (the
/// form gives every ticked volunteer the same hours and lists only this
/// station's roster).
fn as_pairs(activity: &Value, own_station: &str) -> Result<Pairs, &'static str> {
    let live: Vec<&Value> = activity
        .get("records")
        .and_then(Value::as_array)
        .map(|records| {
            records
                .iter()
                .filter(|r| !r.get("deleted").and_then(Value::as_bool).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default();
    let hours: Vec<f64> = live
        .iter()
        .map(|r| r.get("hours").and_then(Value::as_f64).unwrap_or(0.0))
        .collect();
    if hours.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err("此活动各人服务时长不同，网页表单只能填一个时长；请用台账导入或接口更正。");
    }
    if live.iter().any(|r| {
        !matches!(
            r.get("home_station").and_then(Value::as_str),
            None | Some("")
        ) && text(r, "home_station") != own_station
    }) {
        return Err("此活动含外站志愿者，网页表单只列本站花名册；请用台账导入或接口更正。");
    }
    let mut pairs: Pairs = vec![("correct".into(), "1".into())];
    for field in [
        "id",
        "name",
        "date",
        "place",
        "content",
        "form",
        "category",
        "person_in_charge",
        "team",
        "theme",
    ] {
        pairs.push((field.into(), text(activity, field).into()));
    }
    let beneficiaries = activity
        .get("beneficiaries")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    pairs.push(("beneficiaries".into(), beneficiaries.to_string()));
    if let Some(first) = hours.first() {
        pairs.push(("hours".into(), first.to_string()));
    }
    for record in live {
        pairs.push(("volunteer".into(), text(record, "volunteer").into()));
    }
    Ok(pairs)
}

fn form(
    principal: &Principal,
    volunteers: &[Value],
    filled: &Pairs,
    errors: &[(String, String)],
) -> Markup {
    let today = civsync_protocol::domain::model::date_format::format(crate::clock::today());
    let date = if value(filled, "date").is_empty() {
        today.as_str()
    } else {
        value(filled, "date")
    };
    let ticked: Vec<&str> = filled
        .iter()
        .filter(|(k, _)| k == "volunteer")
        .map(|(_, v)| v.as_str())
        .collect();
    let correcting = value(filled, "correct") == "1";
    html! {
        h2 { @if correcting { "更正活动 " (value(filled, "id")) } @else { "登记活动" } }
        (other_errors(errors, FIELDS))
        form.record #activity-form method="post" action="/web/activities" {
            (csrf_field(principal))
            @if correcting {
                // Carried so a correction keeps what the form does not show.
                @for field in ["correct", "id", "team", "theme"] {
                    input type="hidden" name=(field) value=(value(filled, field));
                }
            }
            label { "活动名称 *" input name="name" value=(value(filled, "name")) required; (field_error(errors, "name")) }
            label { "日期 *" input name="date" type="date" value=(date) required; (field_error(errors, "date")) }
            label { "地点 *" input name="place" value=(value(filled, "place")) required; (field_error(errors, "place")) }
            label { "负责人 *" input name="person_in_charge" value=(value(filled, "person_in_charge")) required; (field_error(errors, "person_in_charge")) }
            label { "形式 *" select name="form" {
                @for f in ActivityForm::ALL { option value=(f.key()) selected[value(filled, "form") == f.key()] { (f.label()) } }
            } (field_error(errors, "form")) }
            label { "类别 *" select name="category" {
                @for c in Category::ALL { option value=(c.key()) selected[value(filled, "category") == c.key()] { (c.label()) } }
            } (field_error(errors, "category")) }
            label { "受益人数" input name="beneficiaries" type="number" min="0" value=(value(filled, "beneficiaries")); (field_error(errors, "beneficiaries")) }
            label { "每人服务时长（小时）*" input name="hours" value=(value(filled, "hours")) placeholder="如 2.5" required; (field_error(errors, "hours")) }
            label.wide { "活动内容 *" textarea name="content" rows="2" required { (value(filled, "content")) } (field_error(errors, "content")) }
            fieldset.wide {
                legend { "参加的志愿者（" (volunteers.len()) " 人可选）" }
                input type="search" placeholder="筛选姓名" data-filter;
                div.picker {
                    @for v in volunteers {
                        label { input type="checkbox" name="volunteer" value=(text(v, "number")) checked[ticked.contains(&text(v, "number"))]; (text(v, "name")) " " span.muted { (text(v, "number")) } }
                    }
                }
                (field_error(errors, "records"))
            }
            div.wide {
                button.primary type="submit" id="record" { @if correcting { "保存更正" } @else { "登记活动" } }
                @if correcting { " " a href="/web/activities" { "取消" } }
            }
        }
    }
}

async fn render(
    web: &Web,
    principal: &Principal,
    month: &str,
    notice: Option<&str>,
    filled: &Pairs,
    errors: &[(String, String)],
) -> Markup {
    let shell = shell(web, principal, "activities");
    let listed = internal::get(web, &format!("activities?month={month}")).await;
    let volunteers = internal::get(web, "volunteers").await;
    let people: Vec<Value> = volunteers
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !v.get("deleted").and_then(Value::as_bool).unwrap_or(false))
        .collect();
    let name_of = |number: &str| {
        people
            .iter()
            .find(|v| text(v, "number") == number)
            .map(|v| text(v, "name").to_string())
            .unwrap_or_else(|| number.to_string())
    };
    let mut activities = listed.body.as_array().cloned().unwrap_or_default();
    activities.sort_by(|a, b| text(b, "date").cmp(text(a, "date")));
    let may_record = principal.role.may(Permission::Record);
    let body = html! {
        (month_nav("/web/activities", month))
        @if let Some(notice) = notice { p.notice role="status" id="notice" { (notice) } }
        @if let Some((_, reason)) = listed.refusal() { p.error { (reason) } }
        table #activities {
            thead { tr { th { "日期" } th { "活动" } th { "地点" } th { "形式" } th { "类别" } th { "志愿者与时长" } th.num { "受益" } @if may_record { th {} } } }
            tbody {
                @for a in &activities {
                    tr data-activity=(text(a, "id")) {
                        td { (text(a, "date")) @if a.get("late").and_then(Value::as_bool).unwrap_or(false) { br; span.muted { "补录" } } }
                        td { (text(a, "name")) }
                        td { (text(a, "place")) }
                        td { (ActivityForm::parse(text(a, "form")).map(|f| f.label()).unwrap_or("")) }
                        td { (Category::parse(text(a, "category")).map(|c| c.label()).unwrap_or("")) }
                        td { @for r in a.get("records").and_then(Value::as_array).cloned().unwrap_or_default().iter().filter(|r| !r.get("deleted").and_then(Value::as_bool).unwrap_or(false)) {
                            (name_of(text(r, "volunteer"))) " " (r.get("hours").and_then(Value::as_f64).unwrap_or(0.0)) "h；"
                        } }
                        td.num { (a.get("beneficiaries").and_then(Value::as_u64).unwrap_or(0)) }
                        @if may_record { td {
                            a href={ "/web/activities?month=" (month) "&edit=" (url_encode(text(a, "id"))) } { "更正" }
                            form method="post" action="/web/activities/delete" data-confirm="删除这条活动记录？删除后仍保留痕迹。" {
                                (csrf_field(principal))
                                input type="hidden" name="month" value=(month);
                                input type="hidden" name="id" value=(text(a, "id"));
                                button type="submit" { "删除" }
                            }
                        } }
                    }
                }
            }
        }
        @if activities.is_empty() { p.muted { "本月尚无活动记录。" } }
        @if may_record { (form(principal, &people, filled, errors)) }
    };
    page(&shell, "活动记录", body)
}

async fn list(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Markup {
    let month = month_or_now(query.month.as_deref());
    let (filled, errors) = match query.edit.as_deref() {
        None => (Vec::new(), Vec::new()),
        Some(id) => {
            let listed = internal::get(&web, &format!("activities?month={month}")).await;
            let own = web.ctx.config.station.as_str();
            match listed
                .body
                .as_array()
                .and_then(|all| all.iter().find(|a| text(a, "id") == id))
                .map(|a| as_pairs(a, own))
            {
                Some(Ok(pairs)) => (pairs, Vec::new()),
                Some(Err(reason)) => (Vec::new(), vec![("edit".to_string(), reason.to_string())]),
                None => (
                    Vec::new(),
                    vec![("edit".to_string(), format!("本月没有编号为 {id} 的活动"))],
                ),
            }
        }
    };
    render(
        &web,
        &principal,
        &month,
        query.notice.as_deref(),
        &filled,
        &errors,
    )
    .await
}

async fn record(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "activities", &activity_input(&pairs)).await;
    match answer.refusal() {
        None => {
            let date = text(&answer.body, "date");
            let month = date.get(..7).unwrap_or("").to_string();
            let verb = if value(&pairs, "correct") == "1" {
                "已更正"
            } else {
                "已登记"
            };
            let notice = format!("{verb}活动：{}（{}）", text(&answer.body, "name"), date);
            redirect_with_notice(&format!("/web/activities?month={month}"), &notice)
        }
        Some(error) => {
            let month = month_or_now(value(&pairs, "date").get(..7));
            let page = render(&web, &principal, &month, None, &pairs, &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    month: String,
    id: String,
}

async fn delete(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let path = format!(
        "activities/{}/{}",
        url_encode(&form.month),
        url_encode(&form.id)
    );
    let page = format!("/web/activities?month={}", url_encode(&form.month));
    match internal::delete_row(&web, &path, &page, "已删除（保留痕迹）").await {
        Ok(redirect) => redirect,
        Err(error) => {
            let page = render(&web, &principal, &form.month, None, &Vec::new(), &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticked_volunteers_each_get_the_hours_given() {
        let pairs: Pairs = vec![
            ("name".into(), "理论宣讲".into()),
            ("date".into(), "2026-12-01".into()),
            ("hours".into(), "2.5".into()),
            ("volunteer".into(), "V1".into()),
            ("volunteer".into(), "V2".into()),
            ("beneficiaries".into(), "30".into()),
        ];
        let body = activity_input(&pairs);
        assert_eq!(
            body["records"],
            json!([{"volunteer": "V1", "hours": "2.5"}, {"volunteer": "V2", "hours": "2.5"}])
        );
        assert_eq!(body["beneficiaries"], 30);
        let input: civsync_protocol::domain::input::ActivityInput =
            serde_json::from_value(body).unwrap();
        assert_eq!(input.records.len(), 2);
    }

    #[test]
    fn a_stored_activity_fills_the_form_back_unless_the_form_would_lose_something() {
        let stored = json!({"id": "A1", "name": "宣讲", "date": "2026-12-01", "place": "礼堂",
            "content": "宣讲", "form": "lecture", "category": "theory", "team": "T1",
            "person_in_charge": "李明", "beneficiaries": 30, "records": [
                {"volunteer": "001", "hours": 2.5},
                {"volunteer": "002", "hours": 2.5},
                {"volunteer": "003", "hours": 1.0, "deleted": true}]});
        let pairs = as_pairs(&stored, "xh/t1/v1").unwrap();
        let body = activity_input(&pairs);
        assert_eq!(
            (body["id"].as_str(), body["team"].as_str()),
            (Some("A1"), Some("T1"))
        );
        assert_eq!(
            body["records"],
            json!([{"volunteer": "001", "hours": "2.5"}, {"volunteer": "002", "hours": "2.5"}])
        );
        let mut mixed = stored.clone();
        mixed["records"][1]["hours"] = json!(1.5);
        assert!(as_pairs(&mixed, "xh/t1/v1").is_err());
        let mut visiting = stored;
        visiting["records"][0]["home_station"] = json!("xh/t1");
        assert!(as_pairs(&visiting, "xh/t1/v1").is_err());
    }
}
