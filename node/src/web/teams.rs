//! `/web/teams`: the station's volunteer teams (志愿服务队) — list, register,
//! correct (`?edit=<id>` fills the form with the team as stored), delete
//! (kept, marked deleted, as the API does).
//!
//! The form's values become the API's `TeamInput` (`POST teams`); the API's
//! refusal is shown beside the field it names, keeping what was typed.

use super::form::{optional, redirect_with_notice, value, Pairs};
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
use civsync_protocol::domain::model::Category;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/teams", get(list).post(put))
        .route("/web/teams/delete", post(delete))
}

const FIELDS: &[&str] = &["id", "name", "category", "parent", "leader", "members"];

#[derive(Deserialize, Default)]
struct ListQuery {
    edit: Option<String>,
    notice: Option<String>,
}

/// Volunteer numbers as a clerk types them: separated by commas (either
/// width), 、 or spaces.
fn numbers(text: &str) -> Vec<&str> {
    text.split([',', '，', '、', ' ', '\u{3000}', ';', '；'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The API body for the form's fields.
fn team_input(pairs: &Pairs) -> Value {
    let optional = |name: &str| optional(pairs, name);
    json!({
        "id": optional("id"),
        "name": value(pairs, "name").trim(),
        "category": value(pairs, "category"),
        "parent": optional("parent"),
        "leader": optional("leader"),
        "members": numbers(value(pairs, "members")),
    })
}

/// A stored team as the form's fields, for correcting it.
fn as_pairs(team: &Value) -> Pairs {
    let members: Vec<&str> = team
        .get("members")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    vec![
        ("id".into(), text(team, "id").into()),
        ("name".into(), text(team, "name").into()),
        ("category".into(), text(team, "category").into()),
        ("parent".into(), text(team, "parent").into()),
        ("leader".into(), text(team, "leader").into()),
        ("members".into(), members.join("、")),
    ]
}

fn form(principal: &Principal, filled: &Pairs, errors: &[(String, String)]) -> Markup {
    let correcting = !value(filled, "id").is_empty();
    html! {
        h2 { @if correcting { "更正队伍 " (value(filled, "id")) } @else { "登记队伍" } }
        (other_errors(errors, FIELDS))
        form.record #team-form method="post" action="/web/teams" {
            (csrf_field(principal))
            @if correcting { input type="hidden" name="id" value=(value(filled, "id")); }
            label { "队伍名称 *" input name="name" value=(value(filled, "name")) required; (field_error(errors, "name")) }
            label { "服务类别 *" select name="category" {
                @for category in Category::ALL {
                    option value=(category.key()) selected[value(filled, "category") == category.key()] { (category.label()) }
                }
            } (field_error(errors, "category")) }
            label { "队长（志愿者编号）" input name="leader" value=(value(filled, "leader")); (field_error(errors, "leader")) }
            label { "上级队伍（站点:队伍编号）" input name="parent" value=(value(filled, "parent")) placeholder="如 xh:T1"; (field_error(errors, "parent")) }
            label.wide { "队员（志愿者编号，用逗号或顿号分隔）" textarea name="members" rows="2" { (value(filled, "members")) } (field_error(errors, "members")) }
            div.wide {
                button.primary type="submit" id="save-team" { @if correcting { "保存更正" } @else { "登记" } }
                @if correcting { " " a href="/web/teams" { "取消" } }
            }
        }
    }
}

async fn render(
    web: &Web,
    principal: &Principal,
    notice: Option<&str>,
    filled: &Pairs,
    errors: &[(String, String)],
) -> Markup {
    let shell = shell(web, principal, "teams");
    let listed = internal::get(web, "teams").await;
    let teams: Vec<Value> = listed
        .body
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.get("deleted").and_then(Value::as_bool).unwrap_or(false))
        .collect();
    // A deleted volunteer stays named in the teams they led or joined (the
    // team keeps its record as written); the page says so.
    let live: BTreeSet<String> = internal::get(web, "volunteers")
        .await
        .body
        .as_array()
        .map(|volunteers| {
            volunteers
                .iter()
                .map(|v| text(v, "number").to_string())
                .collect()
        })
        .unwrap_or_default();
    let may_record = principal.role.may(Permission::Record);
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" id="notice" { (notice) } }
        @if let Some((_, reason)) = listed.refusal() { p.error { (reason) } }
        table #teams {
            thead { tr { th { "编号" } th { "队伍名称" } th { "服务类别" } th { "队长" } th.num { "队员数" } th { "上级队伍" } @if may_record { th {} } } }
            tbody {
                @for team in &teams {
                    tr data-team=(text(team, "id")) {
                        td { (text(team, "id")) }
                        td { (text(team, "name")) }
                        td { (Category::parse(text(team, "category")).map(|c| c.label()).unwrap_or("")) }
                        td {
                            (text(team, "leader"))
                            @if !text(team, "leader").is_empty() && !live.contains(text(team, "leader")) {
                                span.muted { "（已删除）" }
                            }
                        }
                        td.num { (members_cell(team, &live)) }
                        td { (text(team, "parent")) }
                        @if may_record { td {
                            a href={ "/web/teams?edit=" (url_encode(text(team, "id"))) } { "更正" }
                            form method="post" action="/web/teams/delete" data-confirm={ "删除队伍“" (text(team, "name")) "”？删除后仍保留痕迹，队员不受影响。" } {
                                (csrf_field(principal))
                                input type="hidden" name="id" value=(text(team, "id"));
                                button type="submit" { "删除" }
                            }
                        } }
                    }
                }
            }
        }
        @if teams.is_empty() { p.muted { "本站尚未登记队伍。" } }
        @if may_record { (form(principal, filled, errors)) }
    };
    page(&shell, "志愿服务队伍", body)
}

/// Members still in the roster, and how many were deleted since.
fn members_cell(team: &Value, live: &BTreeSet<String>) -> String {
    let members: Vec<&str> = team
        .get("members")
        .and_then(Value::as_array)
        .map(|members| members.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let deleted = members.iter().filter(|m| !live.contains(**m)).count();
    match deleted {
        0 => members.len().to_string(),
        _ => format!("{}（另 {deleted} 人已删除）", members.len() - deleted),
    }
}

async fn list(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Markup {
    let filled = match query.edit.as_deref() {
        Some(id) => internal::get(&web, "teams")
            .await
            .body
            .as_array()
            .and_then(|teams| teams.iter().find(|t| text(t, "id") == id).map(as_pairs))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    render(&web, &principal, query.notice.as_deref(), &filled, &[]).await
}

async fn put(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "teams", &team_input(&pairs)).await;
    match answer.refusal() {
        None => {
            let notice = format!(
                "已保存队伍 {}（编号 {}）",
                text(&answer.body, "name"),
                text(&answer.body, "id")
            );
            redirect_with_notice("/web/teams", &notice)
        }
        Some(error) => {
            let page = render(&web, &principal, None, &pairs, &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    id: String,
}

async fn delete(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let path = format!("teams/{}", url_encode(&form.id));
    let notice = format!("已删除队伍（编号 {}，保留痕迹）", form.id);
    match internal::delete_row(&web, &path, "/web/teams", &notice).await {
        Ok(redirect) => redirect,
        Err(error) => {
            let page = render(&web, &principal, None, &Vec::new(), &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_apis_team_body_and_a_stored_team_fills_the_form_back() {
        let pairs: Pairs = vec![
            ("name".into(), " 东村理论宣讲队 ".into()),
            ("category".into(), "theory".into()),
            ("leader".into(), "001".into()),
            ("members".into(), "001，002、 003 ,".into()),
            ("parent".into(), "".into()),
        ];
        let body = team_input(&pairs);
        assert_eq!(body["name"], "东村理论宣讲队");
        assert_eq!(body["members"], json!(["001", "002", "003"]));
        assert_eq!(body["id"], Value::Null);
        assert_eq!(body["parent"], Value::Null);
        // Deserialises as the API's input: no unknown or mistyped field.
        let input: civsync_protocol::domain::input::TeamInput =
            serde_json::from_value(body).unwrap();
        assert_eq!(input.leader.as_deref(), Some("001"));

        let stored = json!({"id": "T1", "name": "东村理论宣讲队", "category": "theory",
            "station": "xh/t1/v1", "leader": "001", "members": ["001", "002"], "deleted": false});
        let back = team_input(&as_pairs(&stored));
        assert_eq!(back["id"], "T1");
        assert_eq!(back["members"], json!(["001", "002"]));
    }
}
