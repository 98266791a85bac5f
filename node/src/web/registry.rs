//! `/web/registry`: the station registry (站点名录) of this office's subtree
//! — every registered station with its tier, the registry it comes from and
//! its retirement (撤并); for an administrator, register or rename a station
//! and retire or un-retire one. The rules (a station of our own subtree, the
//! tier its depth says, a retirement date not ahead) are the API's
//! (`POST stations`, `POST stations/retire`); its refusal is shown beside
//! the field it names.

use super::form::{optional, redirect_with_notice, value, Pairs};
use super::internal;
use super::layout::{csrf_field, field_error, other_errors, page, shell, text, tier_label};
use super::Web;
use crate::access::guard::Principal;
use crate::access::Permission;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use civsync_protocol::Tier;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/registry", get(show).post(register))
        .route("/web/registry/retire", post(retire))
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    notice: Option<String>,
}

fn station_input(pairs: &Pairs) -> Value {
    json!({
        "id": value(pairs, "id").trim(),
        "name": value(pairs, "name").trim(),
        "tier": value(pairs, "tier"),
    })
}

/// An empty date un-retires (a clerk's mistake undone).
fn retire_input(pairs: &Pairs) -> Value {
    let optional = |name: &str| optional(pairs, name);
    json!({
        "id": value(pairs, "id").trim(),
        "retired_on": optional("retired_on"),
        "merged_into": optional("merged_into"),
    })
}

fn tier_name(key: &str) -> &'static str {
    Tier::parse(key).map(tier_label).unwrap_or("")
}

async fn render(
    web: &Web,
    principal: &Principal,
    notice: Option<&str>,
    filled: &Pairs,
    errors: &[(String, String)],
) -> Markup {
    let shell = shell(web, principal, "registry");
    let listed = internal::get(web, "stations").await;
    let stations = listed
        .body
        .get("stations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let may_write = principal.role.may(Permission::Administer);
    let retiring = value(filled, "form") == "retire";
    let (register_errors, retire_errors): (&[_], &[_]) = if retiring {
        (&[], errors)
    } else {
        (errors, &[])
    };
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" id="notice" { (notice) } }
        @if let Some((_, reason)) = listed.refusal() { p.error { (reason) } }
        (other_errors(retire_errors, &[]))
        table #registry {
            thead { tr { th { "编码" } th { "名称" } th { "层级" } th { "登记于" } th { "状态" } @if may_write { th { "撤并" } } } }
            tbody {
                @for station in &stations {
                    @let retired = station.get("retired");
                    tr data-station=(text(station, "id")) class=@if retired.is_some() { "muted" } {
                        td { (text(station, "id")) }
                        td { (text(station, "name")) }
                        td { (tier_name(text(station, "tier"))) }
                        td.muted { (text(station, "registered_in")) }
                        td { @match retired {
                            Some(r) => { "已撤并（" (text(r, "retired_on")) @if !text(r, "merged_into").is_empty() { "，并入 " (text(r, "merged_into")) } "）" }
                            None => "在用",
                        } }
                        @if may_write { td {
                            form method="post" action="/web/registry/retire" style="display:inline" {
                                (csrf_field(principal))
                                input type="hidden" name="id" value=(text(station, "id"));
                                @if retired.is_some() {
                                    input type="hidden" name="retired_on" value="";
                                    button type="submit" { "撤销撤并" }
                                } @else {
                                    input type="date" name="retired_on" required;
                                    " " input name="merged_into" placeholder="并入站点（可空）" size="12";
                                    " " button type="submit" { "撤并" }
                                }
                            }
                        } }
                    }
                }
            }
        }
        @if stations.is_empty() { p.muted { "名录中尚无下级站点。" } }
        @if may_write {
            h2 { "登记或更名站点" }
            p.muted { "编码为完整路径（如 " (web.ctx.config.station.as_str()) "/v01），须在本单位之下；同一编码再次提交即为更名。" }
            (other_errors(register_errors, &["id", "name", "tier"]))
            form.record #station-form method="post" action="/web/registry" {
                (csrf_field(principal))
                label { "编码 *" input name="id" value=(if retiring { "" } else { value(filled, "id") }) required; (field_error(register_errors, "id")) }
                label { "名称 *" input name="name" value=(value(filled, "name")) required; (field_error(register_errors, "name")) }
                label { "层级 *" select name="tier" {
                    @for tier in Tier::ALL {
                        option value=(tier.as_str()) selected[value(filled, "tier") == tier.as_str()] { (tier_label(tier)) }
                    }
                } (field_error(register_errors, "tier")) }
                div.wide { button.primary type="submit" { "登记" } }
            }
        }
    };
    page(&shell, "站点名录", body)
}

async fn show(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ShowQuery>,
) -> Markup {
    render(&web, &principal, query.notice.as_deref(), &Vec::new(), &[]).await
}

async fn register(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "stations", &station_input(&pairs)).await;
    done(&web, &principal, answer, pairs, |body| {
        format!("已登记 {}（{}）", text(body, "name"), text(body, "id"))
    })
    .await
}

async fn retire(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(mut pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "stations/retire", &retire_input(&pairs)).await;
    pairs.push(("form".into(), "retire".into()));
    done(&web, &principal, answer, pairs, |body| {
        if body.get("retired").is_some() {
            format!("已撤并 {}", text(body, "id"))
        } else {
            format!("已撤销 {} 的撤并", text(body, "id"))
        }
    })
    .await
}

async fn done(
    web: &Web,
    principal: &Principal,
    answer: internal::Answer,
    pairs: Pairs,
    notice: impl Fn(&Value) -> String,
) -> Response {
    match answer.refusal() {
        None => redirect_with_notice("/web/registry", &notice(&answer.body)),
        Some((field, reason)) => {
            // A retirement's refusal is shown above the table: its row has
            // no room for a message.
            let error = if value(&pairs, "form") == "retire" {
                (format!("{}（{}）", value(&pairs, "id"), field), reason)
            } else {
                (field, reason)
            };
            let page = render(web, principal, None, &pairs, &[error]).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_become_the_apis_station_and_retirement_bodies() {
        let register: civsync_protocol::service::registry::StationInput =
            serde_json::from_value(station_input(&vec![
                ("id".into(), " xh/t1/v9 ".into()),
                ("name".into(), "新村".into()),
                ("tier".into(), "village".into()),
            ]))
            .unwrap();
        assert_eq!(register.id, "xh/t1/v9");
        let retire: civsync_protocol::service::registry::RetireInput =
            serde_json::from_value(retire_input(&vec![
                ("id".into(), "xh/t1/v9".into()),
                ("retired_on".into(), "2026-11-30".into()),
                ("merged_into".into(), "".into()),
            ]))
            .unwrap();
        assert_eq!(retire.retired_on.as_deref(), Some("2026-11-30"));
        assert_eq!(retire.merged_into, None);
        let undo: civsync_protocol::service::registry::RetireInput =
            serde_json::from_value(retire_input(&vec![
                ("id".into(), "xh/t1/v9".into()),
                ("retired_on".into(), "".into()),
            ]))
            .unwrap();
        assert_eq!(undo.retired_on, None);
    }
}
