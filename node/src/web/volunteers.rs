//! `/web/volunteers`: search the roster, register a volunteer (errors shown
//! beside the field they concern), correct or delete one (kept, marked
//! deleted, as the API does), and the roster import with its report.
//!
//! The form's values become the API's `VolunteerInput`; nothing here
//! validates: the API's refusal names the field and the page puts the
//! reason beside it, keeping what the clerk typed.

use super::form::{optional, redirect_with_notice, value, values, Pairs};
use super::internal;
use super::layout::{csrf_field, field_error, other_errors, page, shell, text};
use super::Web;
use crate::access::guard::{url_encode, Principal};
use crate::access::Permission;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use civsync_protocol::domain::model::{Category, Sex};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/volunteers", get(list).post(register))
        .route("/web/volunteers/delete", post(delete))
}

/// Rows shown at once; the search narrows a large roster.
pub const ROWS_SHOWN_MAX: usize = 500;

const FIELDS: &[&str] = &[
    "number",
    "name",
    "sex",
    "id_number",
    "phone",
    "residence_area",
    "birth_date",
    "skills",
    "categories",
    "consent",
    "party_member",
];

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    notice: Option<String>,
    /// A volunteer number: the form opens filled with that volunteer.
    edit: Option<String>,
}

/// The API body for the form's fields.
fn volunteer_input(pairs: &Pairs) -> Value {
    let optional = |name: &str| optional(pairs, name);
    json!({
        "number": optional("number"),
        "name": value(pairs, "name").trim(),
        "sex": value(pairs, "sex"),
        "id_number": value(pairs, "id_number").trim(),
        "phone": value(pairs, "phone").trim(),
        "residence_area": value(pairs, "residence_area").trim(),
        "birth_date": optional("birth_date"),
        "skills": value(pairs, "skills")
            .split([',', '，', '、'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>(),
        "categories": values(pairs, "categories"),
        "consent": value(pairs, "consent") == "on",
        "party_member": value(pairs, "party_member") == "on",
    })
}

/// A stored volunteer as the form's fields, for correcting it. The ID
/// number is stored sealed and shown masked, so it is never filled in: a
/// correction asks for it again.
fn as_pairs(volunteer: &Value) -> Pairs {
    let mut pairs: Pairs = vec![("correct".into(), "1".into())];
    for field in [
        "number",
        "name",
        "sex",
        "phone",
        "residence_area",
        "birth_date",
    ] {
        pairs.push((field.into(), text(volunteer, field).into()));
    }
    let list = |field: &str| -> Vec<String> {
        volunteer
            .get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    pairs.push(("skills".into(), list("skills").join("、")));
    for category in list("categories") {
        pairs.push(("categories".into(), category));
    }
    for flag in ["consent", "party_member"] {
        if volunteer.get(flag).and_then(Value::as_bool) == Some(true) {
            pairs.push((flag.into(), "on".into()));
        }
    }
    pairs
}

fn form(principal: &Principal, filled: &Pairs, errors: &[(String, String)]) -> Markup {
    let chosen = values(filled, "categories");
    let correcting = value(filled, "correct") == "1";
    html! {
        h2 { @if correcting { "更正志愿者 " (value(filled, "number")) } @else { "登记志愿者" } }
        (other_errors(errors, FIELDS))
        form.record #volunteer-form method="post" action="/web/volunteers" {
            (csrf_field(principal))
            @if correcting {
                input type="hidden" name="correct" value="1";
                input type="hidden" name="number" value=(value(filled, "number"));
                // The number is not editable here; a refusal naming it
                // (not found) still shows.
                div.wide { (field_error(errors, "number")) }
            }
            label { "姓名 *" input name="name" value=(value(filled, "name")) required; (field_error(errors, "name")) }
            label { "性别 *" select name="sex" {
                @for sex in Sex::ALL { option value=(sex.key()) selected[value(filled, "sex") == sex.key()] { (sex.label()) } }
            } (field_error(errors, "sex")) }
            label { @if correcting { "身份证号 *（更正须重新输入，本机只存密文）" } @else { "身份证号 *" } input name="id_number" id="id_number" value=(value(filled, "id_number")) maxlength="18" autocomplete="off" required; (field_error(errors, "id_number")) }
            label { "手机号 *" input name="phone" value=(value(filled, "phone")) maxlength="15" required; (field_error(errors, "phone")) }
            label { "居住地 *" input name="residence_area" value=(value(filled, "residence_area")) required; (field_error(errors, "residence_area")) }
            @if !correcting { label { "志愿者编号（空则自动生成）" input name="number" value=(value(filled, "number")); (field_error(errors, "number")) } }
            label { "技能（逗号分隔）" input name="skills" value=(value(filled, "skills")); (field_error(errors, "skills")) }
            fieldset.wide {
                legend { "服务类别" }
                @for category in Category::ALL {
                    label style="display:inline-flex;flex-direction:row;gap:4px;margin-right:12px" {
                        input type="checkbox" name="categories" value=(category.key()) checked[chosen.contains(&category.key())];
                        (category.label())
                    }
                }
                (field_error(errors, "categories"))
            }
            label { span { input type="checkbox" name="consent" checked[value(filled, "consent") == "on"]; " 本人同意其记录在本站以外展示" } }
            label { span { input type="checkbox" name="party_member" checked[value(filled, "party_member") == "on"]; " 中共党员" } }
            div.wide {
                button.primary type="submit" id="register" { @if correcting { "保存更正" } @else { "登记" } }
                @if correcting { " " a href="/web/volunteers" { "取消" } }
            }
        }
    }
}

async fn render(
    web: &Web,
    principal: &Principal,
    search: &str,
    notice: Option<&str>,
    filled: &Pairs,
    errors: &[(String, String)],
) -> Markup {
    let shell = shell(web, principal, "volunteers");
    let listed = internal::get(web, "volunteers").await;
    let all = listed.body.as_array().cloned().unwrap_or_default();
    let needle = search.trim();
    let matching: Vec<&Value> = all
        .iter()
        .filter(|v| !v.get("deleted").and_then(Value::as_bool).unwrap_or(false))
        .filter(|v| {
            needle.is_empty()
                || text(v, "name").contains(needle)
                || text(v, "number").contains(needle)
        })
        .collect();
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" id="notice" { (notice) } }
        @if let Some((_, reason)) = listed.refusal() { p.error { (reason) } }
        div.toolbar {
            form method="get" action="/web/volunteers" {
                input name="q" value=(needle) placeholder="按姓名或编号搜索";
                " " button type="submit" { "搜索" }
            }
            span.muted { "共 " (matching.len()) " 人" @if matching.len() > ROWS_SHOWN_MAX { "，显示前 " (ROWS_SHOWN_MAX) " 人" } }
        }
        table #volunteers {
            thead { tr { th { "编号" } th { "姓名" } th { "性别" } th { "身份证号" } th { "手机" } th { "居住地" } th { "服务类别" } th { "登记日期" } th {} } }
            tbody {
                @for v in matching.iter().take(ROWS_SHOWN_MAX) {
                    tr {
                        td { (text(v, "number")) }
                        td { (text(v, "name")) }
                        td { (Sex::parse(text(v, "sex")).map(|s| s.label()).unwrap_or("")) }
                        td { (text(v, "id_masked")) }
                        td { (text(v, "phone")) }
                        td { (text(v, "residence_area")) }
                        td { @for c in v.get("categories").and_then(Value::as_array).cloned().unwrap_or_default() {
                            (Category::parse(c.as_str().unwrap_or("")).map(|c| c.label()).unwrap_or("")) " "
                        } }
                        td { (text(v, "registered_on")) }
                        td {
                            a href={ "/web/certificates/" (url_encode(text(v, "number"))) "?station=" (url_encode(text(v, "home_station"))) } { "服务证明" }
                            @if principal.role.may(Permission::Record) {
                                " " a href={ "/web/volunteers?edit=" (url_encode(text(v, "number"))) } { "更正" }
                                form method="post" action="/web/volunteers/delete" data-confirm={ "删除志愿者 " (text(v, "name")) "（编号 " (text(v, "number")) "）？删除后仍保留痕迹，其服务时长照常统计。" } {
                                    (csrf_field(principal))
                                    input type="hidden" name="number" value=(text(v, "number"));
                                    button type="submit" { "删除" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if principal.role.may(Permission::Record) { (form(principal, filled, errors)) }
    };
    page(&shell, "志愿者", body)
}

async fn list(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Markup {
    let filled = match query.edit.as_deref() {
        Some(number) => internal::get(&web, "volunteers")
            .await
            .body
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|v| text(v, "number") == number)
                    .map(as_pairs)
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    render(
        &web,
        &principal,
        query.q.as_deref().unwrap_or(""),
        query.notice.as_deref(),
        &filled,
        &[],
    )
    .await
}

async fn register(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let correcting = value(&pairs, "correct") == "1";
    let answer = if correcting {
        internal::call(
            &web,
            axum::http::Method::PUT,
            "volunteers",
            Some(&volunteer_input(&pairs)),
        )
        .await
    } else {
        internal::post(&web, "volunteers", &volunteer_input(&pairs)).await
    };
    match answer.refusal() {
        None => {
            let notice = format!(
                "{}志愿者 {}（编号 {}）",
                if correcting { "已更正" } else { "已登记" },
                text(&answer.body, "name"),
                text(&answer.body, "number")
            );
            redirect_with_notice("/web/volunteers", &notice)
        }
        Some(error) => {
            let page = render(&web, &principal, "", None, &pairs, &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    number: String,
}

async fn delete(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let path = format!("volunteers/{}", url_encode(&form.number));
    let notice = format!("已删除志愿者（编号 {}，保留痕迹）", form.number);
    match internal::delete_row(&web, &path, "/web/volunteers", &notice).await {
        Ok(redirect) => redirect,
        Err(error) => {
            let page = render(&web, &principal, "", None, &Vec::new(), &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_apis_volunteer_body() {
        let pairs: Pairs = vec![
            ("name".into(), " 王芳 ".into()),
            ("sex".into(), "female".into()),
            ("id_number".into(), "11010519491231002X".into()),
            ("categories".into(), "theory".into()),
            ("categories".into(), "health".into()),
            ("skills".into(), "唱歌，剪纸、 ".into()),
            ("consent".into(), "on".into()),
        ];
        let body = volunteer_input(&pairs);
        assert_eq!(body["name"], "王芳");
        assert_eq!(body["categories"], json!(["theory", "health"]));
        assert_eq!(body["skills"], json!(["唱歌", "剪纸"]));
        assert_eq!(body["consent"], true);
        assert_eq!(body["party_member"], false);
        assert_eq!(body["number"], Value::Null);
        // Deserialises as the API's input: no unknown or mistyped field.
        let input: civsync_protocol::domain::input::VolunteerInput =
            serde_json::from_value(body).unwrap();
        assert_eq!(input.id_number, "11010519491231002X");
    }
}
