//! `/web/points`: a volunteer's points (积分) at this station — what may be
//! spent here, every allotment visible here, the history — with the
//! supermarket's (爱心超市) redemption form and the transfer form; and per
//! station of this office's subtree, a month's points earned, spent and
//! outstanding. Reads and writes are the API's (`points/*`): a refused
//! redemption shows the API's reason (the balance here and where the rest
//! is held) beside the points field.

use super::form::{redirect_with_notice, value, Pairs};
use super::internal;
use super::layout::{csrf_field, field_error, month_or_now, other_errors, page, shell, text};
use super::Web;
use crate::access::guard::{url_encode, Principal};
use crate::access::Permission;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/points", get(show))
        .route("/web/points/redemptions", post(redeem))
        .route("/web/points/transfers", post(transfer))
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    volunteer: Option<String>,
    month: Option<String>,
    notice: Option<String>,
}

/// The form's points as the API's number; what is not a number is sent as
/// 0, which the API refuses naming `points`.
fn points_of(pairs: &Pairs) -> u64 {
    value(pairs, "points").trim().parse().unwrap_or(0)
}

fn redemption_input(pairs: &Pairs) -> Value {
    json!({
        "volunteer": value(pairs, "volunteer").trim(),
        "points": points_of(pairs),
        "item": value(pairs, "item").trim(),
        "clerk": value(pairs, "clerk").trim(),
    })
}

fn transfer_input(pairs: &Pairs) -> Value {
    json!({
        "volunteer": value(pairs, "volunteer").trim(),
        "points": points_of(pairs),
        "to": value(pairs, "to").trim(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Redeem,
    Transfer,
}

struct Filled<'a> {
    form: Which,
    pairs: &'a Pairs,
    errors: &'a [(String, String)],
}

fn number(value: &Value, field: &str) -> String {
    value
        .get(field)
        .map(|v| match v {
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

fn list<'a>(value: &'a Value, field: &str) -> Vec<&'a Value> {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

fn movement(entry: &Value) -> String {
    match text(entry, "kind") {
        "earned" => "服务所得".to_string(),
        "redemption" => format!(
            "{} 在 {} 兑换 {}（经办 {}）",
            text(entry, "date"),
            text(entry, "station"),
            text(entry, "item"),
            text(entry, "clerk")
        ),
        "transfer" => format!(
            "{} 从 {} 划转至 {}",
            text(entry, "date"),
            text(entry, "from"),
            text(entry, "to")
        ),
        other => other.to_string(),
    }
}

async fn render(
    web: &Web,
    principal: &Principal,
    query: &ShowQuery,
    filled: Option<Filled<'_>>,
) -> Markup {
    let shell = shell(web, principal, "points");
    let month = month_or_now(query.month.as_deref());
    let volunteer = filled
        .as_ref()
        .map(|f| value(f.pairs, "volunteer").trim().to_string())
        .or_else(|| query.volunteer.clone())
        .filter(|v| !v.trim().is_empty());
    let (balance, history) = match &volunteer {
        Some(v) => {
            let q = format!("volunteer={}", url_encode(v));
            (
                Some(internal::get(web, &format!("points/balance?{q}")).await),
                Some(internal::get(web, &format!("points/history?{q}")).await),
            )
        }
        None => (None, None),
    };
    let months = internal::get(web, &format!("points/months?month={month}")).await;
    let may_write = principal.role.may(Permission::Record);
    let empty = Vec::new();
    let (redeem_pairs, redeem_errors, transfer_pairs, transfer_errors): (
        &Pairs,
        &[_],
        &Pairs,
        &[_],
    ) = match &filled {
        Some(f) if f.form == Which::Redeem => (f.pairs, f.errors, &empty, &[]),
        Some(f) => (&empty, &[], f.pairs, f.errors),
        None => (&empty, &[], &empty, &[]),
    };
    let shown = volunteer.clone().unwrap_or_default();
    let body = html! {
        @if let Some(notice) = &query.notice { p.notice role="status" id="notice" { (notice) } }
        form method="get" action="/web/points" {
            label { "志愿者（所属站点:编号）" input name="volunteer" value=(shown) placeholder="xh/t1/v1:001"; }
            input type="hidden" name="month" value=(month);
            button type="submit" { "查询" }
        }
        @if let Some(balance) = &balance {
            @if let Some((_, reason)) = balance.refusal() { p.error { (reason) } }
            @else {
                h2 { "积分余额" }
                p #balance {
                    "本站可用 " strong #here { (number(&balance.body, "here")) } " 分；"
                    "本站所见合计 " (number(&balance.body, "total")) " 分（累计获得 "
                    (number(&balance.body, "earned")) "，已兑换 " (number(&balance.body, "spent")) "）"
                }
                table #allotments {
                    thead { tr { th { "存放站点" } th { "积分" } } }
                    tbody { @for a in list(&balance.body, "allotments") {
                        tr { td { (text(a, "station")) } td { (number(a, "points")) } }
                    } }
                }
            }
        }
        @if let Some(history) = &history {
            @if history.ok() {
                h2 { "积分明细" }
                table #history {
                    thead { tr { th { "月份" } th { "积分" } th { "事项" } } }
                    tbody { @for entry in list(&history.body, "entries") {
                        tr { td { (text(entry, "month")) } td { (number(entry, "points")) } td { (movement(entry)) } }
                    } }
                }
            }
        }
        @if may_write {
            h3 { "爱心超市兑换" }
            (other_errors(redeem_errors, &["volunteer", "points", "item", "clerk"]))
            form.record #redeem-form method="post" action="/web/points/redemptions" {
                (csrf_field(principal))
                label { "志愿者 *" input name="volunteer" value=(if redeem_pairs.is_empty() { volunteer.as_deref().unwrap_or("") } else { value(redeem_pairs, "volunteer") }) required; (field_error(redeem_errors, "volunteer")) }
                label { "积分 *" input type="number" min="1" name="points" value=(value(redeem_pairs, "points")) required; (field_error(redeem_errors, "points")) }
                label { "兑换物品 *" input name="item" value=(value(redeem_pairs, "item")) required; (field_error(redeem_errors, "item")) }
                label { "经办人 *" input name="clerk" value=(value(redeem_pairs, "clerk")) required; (field_error(redeem_errors, "clerk")) }
                div.wide { button.primary type="submit" { "兑换" } }
            }
            h3 { "积分划转" }
            p.muted { "积分只能在本站与上级或下级站点之间划转；村与村之间经镇（所）或县（中心）转。" }
            (other_errors(transfer_errors, &["volunteer", "points", "to"]))
            form.record #transfer-form method="post" action="/web/points/transfers" {
                (csrf_field(principal))
                label { "志愿者 *" input name="volunteer" value=(if transfer_pairs.is_empty() { volunteer.as_deref().unwrap_or("") } else { value(transfer_pairs, "volunteer") }) required; (field_error(transfer_errors, "volunteer")) }
                label { "积分 *" input type="number" min="1" name="points" value=(value(transfer_pairs, "points")) required; (field_error(transfer_errors, "points")) }
                label { "转入站点 *" input name="to" value=(value(transfer_pairs, "to")) required; (field_error(transfer_errors, "to")) }
                div.wide { button.primary type="submit" { "划转" } }
            }
        }
        h2 { "各站点本月积分" }
        form method="get" action="/web/points" {
            input type="hidden" name="volunteer" value=(volunteer.as_deref().unwrap_or(""));
            label { "月份" input type="month" name="month" value=(month); }
            button type="submit" { "查看" }
        }
        @if let Some((_, reason)) = months.refusal() { p.error { (reason) } }
        table #months {
            thead { tr { th { "站点" } th { "获得" } th { "兑换" } th { "转入" } th { "转出" } th { "月末结存" } } }
            tbody { @for line in list(&months.body, "stations") {
                tr {
                    td { (text(line, "station")) }
                    td { (number(line, "earned")) } td { (number(line, "spent")) }
                    td { (number(line, "transferred_in")) } td { (number(line, "transferred_out")) }
                    td { (number(line, "outstanding")) }
                }
            } }
        }
    };
    page(&shell, "志愿积分", body)
}

async fn show(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ShowQuery>,
) -> Markup {
    render(&web, &principal, &query, None).await
}

async fn redeem(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "points/redemptions", &redemption_input(&pairs)).await;
    written(&web, &principal, answer, Which::Redeem, &pairs, "已兑换").await
}

async fn transfer(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "points/transfers", &transfer_input(&pairs)).await;
    written(&web, &principal, answer, Which::Transfer, &pairs, "已划转").await
}

async fn written(
    web: &Web,
    principal: &Principal,
    answer: internal::Answer,
    form: Which,
    pairs: &Pairs,
    verb: &str,
) -> Response {
    match answer.refusal() {
        None => {
            let volunteer = value(pairs, "volunteer").trim();
            let notice = format!(
                "{verb} {} 分；本站可用 {} 分",
                number(&answer.body["entry"], "points"),
                number(&answer.body["balance"], "here")
            );
            redirect_with_notice(
                &format!("/web/points?volunteer={}", url_encode(volunteer)),
                &notice,
            )
        }
        Some(error) => {
            let errors = [error];
            let filled = Filled {
                form,
                pairs,
                errors: &errors,
            };
            let page = render(web, principal, &ShowQuery::default(), Some(filled)).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_become_the_apis_redemption_and_transfer_bodies() {
        let pairs: Pairs = vec![
            ("volunteer".into(), " xh/t1/v1:V1 ".into()),
            ("points".into(), "30".into()),
            ("item".into(), " 大米 ".into()),
            ("clerk".into(), "王芳".into()),
            ("to".into(), "xh/t1".into()),
        ];
        let input: civsync_protocol::service::points::RedemptionInput =
            serde_json::from_value(redemption_input(&pairs)).unwrap();
        assert_eq!(
            (input.volunteer.as_str(), input.points, input.item.as_str()),
            ("xh/t1/v1:V1", 30, "大米")
        );
        let input: civsync_protocol::service::points::TransferInput =
            serde_json::from_value(transfer_input(&pairs)).unwrap();
        assert_eq!((input.points, input.to.as_str()), (30, "xh/t1"));
        let typed = vec![("points".into(), "三十".into())];
        assert_eq!(points_of(&typed), 0, "refused by the API naming points");
    }
}
