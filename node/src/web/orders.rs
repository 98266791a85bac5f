//! `/web/orders`: citizens' service orders (四单) of a month at this
//! station — place one (点单), dispatch it to a team (派单), take it (接单),
//! rate it (评单), cancel it (撤单). Every step is the API's
//! (`POST orders`, `orders/dispatch|take|rate|cancel`); a step out of turn
//! comes back as the API's refusal, shown above the table.

use super::form::{redirect_with_notice, value, Pairs};
use super::internal;
use super::layout::{
    csrf_field, field_error, month_nav, month_or_now, other_errors, page, shell, text,
};
use super::Web;
use crate::access::guard::Principal;
use crate::access::Permission;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use civsync_protocol::domain::model::OrderStatus;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/orders", get(list).post(place))
        .route("/web/orders/step", post(step))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    month: Option<String>,
    notice: Option<String>,
}

fn status_label(status: &str) -> &'static str {
    OrderStatus::parse(status).map(|s| s.label()).unwrap_or("")
}

/// The buttons for the steps an order in `status` may take next.
fn step_forms(principal: &Principal, month: &str, order: &Value, teams: &[Value]) -> Markup {
    let (id, station, status) = (
        text(order, "id"),
        text(order, "station"),
        text(order, "status"),
    );
    let hidden = html! {
        (csrf_field(principal))
        input type="hidden" name="month" value=(month);
        input type="hidden" name="station" value=(station);
        input type="hidden" name="order" value=(id);
    };
    html! {
        @if matches!(status, "placed" | "dispatched") {
            form method="post" action="/web/orders/step" style="display:inline" {
                (hidden) input type="hidden" name="step" value="dispatch";
                select name="team" { @for team in teams { option value={ (text(team, "station")) ":" (text(team, "id")) } { (text(team, "name")) } } }
                button type="submit" { "派单" }
            }
            " "
        }
        @if status == "dispatched" {
            form method="post" action="/web/orders/step" style="display:inline" {
                (hidden) input type="hidden" name="step" value="take";
                button type="submit" { "接单" }
            }
            " "
        }
        @if status == "taken" {
            form method="post" action="/web/orders/step" style="display:inline" {
                (hidden) input type="hidden" name="step" value="rate";
                select name="rating" { @for stars in (1..=5).rev() { option value=(stars) { (stars) " 星" } } }
                input name="comment" placeholder="评价" size="10";
                button type="submit" { "评单" }
            }
        }
        @if matches!(status, "placed" | "dispatched") {
            form method="post" action="/web/orders/step" style="display:inline" {
                (hidden) input type="hidden" name="step" value="cancel";
                input name="reason" placeholder="撤单原因" size="8";
                button type="submit" { "撤单" }
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
    let shell = shell(web, principal, "orders");
    let listed = internal::get(web, &format!("orders?month={month}")).await;
    let teams = internal::get(web, "teams")
        .await
        .body
        .as_array()
        .cloned()
        .unwrap_or_default();
    let menu = internal::get(web, "menu").await;
    let items: Vec<String> = menu
        .body
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|i| !i.get("withdrawn").and_then(Value::as_bool).unwrap_or(false))
                .map(|i| text(i, "name").to_string())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let orders = listed.body.as_array().cloned().unwrap_or_default();
    let may_record = principal.role.may(Permission::Record);
    let body = html! {
        (month_nav("/web/orders", month))
        @if let Some(notice) = notice { p.notice role="status" id="notice" { (notice) } }
        @if let Some((_, reason)) = listed.refusal() { p.error { (reason) } }
        (other_errors(errors, &["menu_item", "requester"]))
        table #orders {
            thead { tr { th { "日期" } th { "服务项目" } th { "点单人" } th { "环节" } th { "承接队伍" } th { "评价" } @if may_record { th { "下一步" } } } }
            tbody {
                @for order in &orders {
                    tr data-order=(text(order, "id")) {
                        td { (text(order, "placed_on")) }
                        td { (text(order, "menu_item")) }
                        td { (text(order, "requester")) }
                        td.status { (status_label(text(order, "status"))) }
                        td { (text(order, "team")) }
                        td { @if let Some(stars) = order.get("rating").and_then(Value::as_u64) { (stars) " 星 " } (text(order, "comment")) }
                        @if may_record { td { (step_forms(principal, month, order, &teams)) } }
                    }
                }
            }
        }
        @if orders.is_empty() { p.muted { "本月尚无点单。" } }
        @if may_record {
            h2 { "群众点单" }
            form.record method="post" action="/web/orders" {
                (csrf_field(principal))
                label { "服务项目 *"
                    input name="menu_item" list="menu-items" value=(value(filled, "menu_item")) required;
                    datalist #menu-items { @for item in &items { option value=(item) {} } }
                    (field_error(errors, "menu_item"))
                }
                label { "点单人 *" input name="requester" value=(value(filled, "requester")) required; (field_error(errors, "requester")) }
                div.wide { button.primary type="submit" { "点单" } }
            }
        }
    };
    page(&shell, "服务点单", body)
}

async fn list(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Markup {
    let month = month_or_now(query.month.as_deref());
    render(
        &web,
        &principal,
        &month,
        query.notice.as_deref(),
        &Vec::new(),
        &[],
    )
    .await
}

async fn place(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let body = json!({"menu_item": value(&pairs, "menu_item").trim(), "requester": value(&pairs, "requester").trim()});
    let answer = internal::post(&web, "orders", &body).await;
    match answer.refusal() {
        None => redirect_with_notice("/web/orders", "已点单"),
        Some(error) => {
            let month = month_or_now(None);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&web, &principal, &month, None, &pairs, &[error]).await,
            )
                .into_response()
        }
    }
}

/// The API body of one step from its form.
fn step_body(pairs: &Pairs) -> Option<(&'static str, Value)> {
    let (station, order) = (value(pairs, "station"), value(pairs, "order"));
    Some(match value(pairs, "step") {
        "dispatch" => (
            "orders/dispatch",
            json!({"station": station, "order": order, "team": value(pairs, "team")}),
        ),
        "take" => ("orders/take", json!({"station": station, "order": order})),
        "rate" => (
            "orders/rate",
            json!({"station": station, "order": order, "rating": value(pairs, "rating").parse::<u8>().unwrap_or(0), "comment": value(pairs, "comment")}),
        ),
        "cancel" => (
            "orders/cancel",
            json!({"station": station, "order": order, "reason": value(pairs, "reason")}),
        ),
        _ => return None,
    })
}

async fn step(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let month = month_or_now(Some(value(&pairs, "month")));
    let Some((path, body)) = step_body(&pairs) else {
        let error = (
            "step".to_string(),
            "unknown step; use dispatch, take, rate or cancel".to_string(),
        );
        return (
            StatusCode::BAD_REQUEST,
            render(&web, &principal, &month, None, &Vec::new(), &[error]).await,
        )
            .into_response();
    };
    let answer = internal::post(&web, path, &body).await;
    match answer.refusal() {
        None => {
            let notice = format!("订单已{}", status_label(text(&answer.body, "status")));
            redirect_with_notice(&format!("/web/orders?month={month}"), &notice)
        }
        Some(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&web, &principal, &month, None, &Vec::new(), &[error]).await,
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_form_becomes_the_apis_body_and_an_unknown_step_none() {
        let pairs: Pairs = vec![
            ("station".into(), "xh/t1/v1".into()),
            ("order".into(), "O1".into()),
            ("step".into(), "rate".into()),
            ("rating".into(), "5".into()),
            ("comment".into(), "很好".into()),
        ];
        let (path, body) = step_body(&pairs).unwrap();
        assert_eq!(path, "orders/rate");
        assert_eq!(
            body,
            json!({"station": "xh/t1/v1", "order": "O1", "rating": 5, "comment": "很好"})
        );
        let unknown: Pairs = vec![("step".into(), "delete".into())];
        assert!(step_body(&unknown).is_none());
    }
}
