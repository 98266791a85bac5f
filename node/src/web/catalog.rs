//! `/web/catalog`: the service menu (服务菜单) and the monthly themes
//! (一月一主题) this station is offered — its own and every office's above
//! it, county first — and, for an administrator, this office's own: add or
//! correct a menu item, withdraw one, set a month's theme. Offices send
//! these down their subtree; a village sees what its township and county
//! set. Writes are the API's (`POST menu`, `POST themes`).

use super::form::{redirect_with_notice, value, Pairs};
use super::internal;
use super::layout::{csrf_field, field_error, month_or_now, other_errors, page, shell, text};
use super::Web;
use crate::access::guard::Principal;
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

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/web/catalog", get(show))
        .route("/web/catalog/menu", post(put_item))
        .route("/web/catalog/theme", post(set_theme))
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    notice: Option<String>,
}

fn menu_input(pairs: &Pairs) -> Value {
    let id = value(pairs, "id").trim();
    json!({
        "id": (!id.is_empty()).then_some(id),
        "name": value(pairs, "name").trim(),
        "category": value(pairs, "category"),
        "description": value(pairs, "description").trim(),
        "provider": value(pairs, "provider").trim(),
        "withdrawn": value(pairs, "withdrawn") == "true",
    })
}

fn theme_input(pairs: &Pairs) -> Value {
    json!({
        "month": value(pairs, "month").trim(),
        "title": value(pairs, "title").trim(),
        "description": value(pairs, "description").trim(),
    })
}

/// Which form a refusal belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Menu,
    Theme,
}

struct Filled<'a> {
    form: Which,
    pairs: &'a Pairs,
    errors: &'a [(String, String)],
}

async fn render(
    web: &Web,
    principal: &Principal,
    notice: Option<&str>,
    filled: Option<Filled<'_>>,
) -> Markup {
    let shell = shell(web, principal, "catalog");
    let own = web.ctx.config.station.as_str().to_string();
    let menu = internal::get(web, "menu").await;
    let themes = internal::get(web, "themes").await;
    let items = |answer: &internal::Answer| -> Vec<Value> {
        answer
            .body
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (menu_items, theme_items) = (items(&menu), items(&themes));
    let may_write = principal.role.may(Permission::Administer);
    let empty = Vec::new();
    let (menu_filled, menu_errors, theme_filled, theme_errors): (&Pairs, &[_], &Pairs, &[_]) =
        match &filled {
            Some(f) if f.form == Which::Menu => (f.pairs, f.errors, &empty, &[]),
            Some(f) => (&empty, &[], f.pairs, f.errors),
            None => (&empty, &[], &empty, &[]),
        };
    let this_month = month_or_now(None);
    let body = html! {
        @if let Some(notice) = notice { p.notice role="status" id="notice" { (notice) } }
        @for answer in [&menu, &themes] { @if let Some((_, reason)) = answer.refusal() { p.error { (reason) } } }
        h2 { "服务菜单" }
        table #menu {
            thead { tr { th { "服务项目" } th { "类别" } th { "提供方" } th { "说明" } th { "发布单位" } @if may_write { th {} } } }
            tbody {
                @for item in &menu_items {
                    @let withdrawn = item.get("withdrawn").and_then(Value::as_bool).unwrap_or(false);
                    tr data-item=(text(item, "id")) class=@if withdrawn { "muted" } {
                        td { (text(item, "name")) @if withdrawn { "（已撤下）" } }
                        td { (Category::parse(text(item, "category")).map(|c| c.label()).unwrap_or("")) }
                        td { (text(item, "provider")) }
                        td { (text(item, "description")) }
                        td { (text(item, "owner")) @if text(item, "owner") == own { "（本单位）" } }
                        @if may_write {
                            td { @if text(item, "owner") == own {
                                form method="post" action="/web/catalog/menu" style="display:inline" {
                                    (csrf_field(principal))
                                    @for field in ["id", "name", "category", "description", "provider"] {
                                        input type="hidden" name=(field) value=(text(item, field));
                                    }
                                    input type="hidden" name="withdrawn" value=(if withdrawn { "false" } else { "true" });
                                    button type="submit" { @if withdrawn { "恢复" } @else { "撤下" } }
                                }
                            } }
                        }
                    }
                }
            }
        }
        @if menu_items.is_empty() { p.muted { "尚无服务菜单。" } }
        @if may_write {
            h3 { "发布本单位的服务项目" }
            (other_errors(menu_errors, &["name", "category", "provider", "description"]))
            form.record #menu-form method="post" action="/web/catalog/menu" {
                (csrf_field(principal))
                label { "服务项目 *" input name="name" value=(value(menu_filled, "name")) required; (field_error(menu_errors, "name")) }
                label { "类别 *" select name="category" {
                    @for category in Category::ALL { option value=(category.key()) selected[value(menu_filled, "category") == category.key()] { (category.label()) } }
                } (field_error(menu_errors, "category")) }
                label { "提供方（队伍或单位）" input name="provider" value=(value(menu_filled, "provider")); (field_error(menu_errors, "provider")) }
                label { "说明" input name="description" value=(value(menu_filled, "description")); (field_error(menu_errors, "description")) }
                div.wide { button.primary type="submit" { "发布" } }
            }
        }
        h2 { "月度主题" }
        table #themes {
            thead { tr { th { "月份" } th { "主题" } th { "说明" } th { "发布单位" } } }
            tbody {
                @for theme in &theme_items {
                    tr { td { (text(theme, "month")) } td { (text(theme, "title")) } td { (text(theme, "description")) } td { (text(theme, "owner")) } }
                }
            }
        }
        @if theme_items.is_empty() { p.muted { "尚无月度主题。" } }
        @if may_write {
            h3 { "设定本单位的月度主题" }
            (other_errors(theme_errors, &["month", "title", "description"]))
            form.record #theme-form method="post" action="/web/catalog/theme" {
                (csrf_field(principal))
                label { "月份 *" input type="month" name="month" value=(if value(theme_filled, "month").is_empty() { this_month.as_str() } else { value(theme_filled, "month") }) required; (field_error(theme_errors, "month")) }
                label { "主题 *" input name="title" value=(value(theme_filled, "title")) required; (field_error(theme_errors, "title")) }
                label.wide { "说明" input name="description" value=(value(theme_filled, "description")); (field_error(theme_errors, "description")) }
                div.wide { button.primary type="submit" { "设定" } }
            }
        }
    };
    page(&shell, "服务菜单与月度主题", body)
}

async fn show(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ShowQuery>,
) -> Markup {
    render(&web, &principal, query.notice.as_deref(), None).await
}

async fn put_item(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "menu", &menu_input(&pairs)).await;
    written(&web, &principal, answer, Which::Menu, &pairs, |body| {
        let verb = if body.get("withdrawn").and_then(Value::as_bool) == Some(true) {
            "已撤下"
        } else {
            "已发布"
        };
        format!("{verb}服务项目 {}", text(body, "name"))
    })
    .await
}

async fn set_theme(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let answer = internal::post(&web, "themes", &theme_input(&pairs)).await;
    written(&web, &principal, answer, Which::Theme, &pairs, |body| {
        format!(
            "已设定 {} 的主题：{}",
            text(body, "month"),
            text(body, "title")
        )
    })
    .await
}

async fn written(
    web: &Web,
    principal: &Principal,
    answer: internal::Answer,
    form: Which,
    pairs: &Pairs,
    notice: impl Fn(&Value) -> String,
) -> Response {
    match answer.refusal() {
        None => redirect_with_notice("/web/catalog", &notice(&answer.body)),
        Some(error) => {
            let errors = [error];
            let filled = Filled {
                form,
                pairs,
                errors: &errors,
            };
            let page = render(web, principal, None, Some(filled)).await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_become_the_apis_menu_and_theme_bodies() {
        let pairs: Pairs = vec![
            ("name".into(), " 义诊 ".into()),
            ("category".into(), "health".into()),
            ("provider".into(), "县医院志愿服务队".into()),
            ("withdrawn".into(), "true".into()),
            ("id".into(), "M1".into()),
        ];
        let body = menu_input(&pairs);
        assert_eq!(body["name"], "义诊");
        assert_eq!(body["withdrawn"], true);
        assert_eq!(body["id"], "M1");
        let input: civsync_protocol::service::catalog::MenuItemInput =
            serde_json::from_value(body).unwrap();
        assert_eq!(input.provider, "县医院志愿服务队");
        let fresh = menu_input(&vec![("name".into(), "宣讲".into())]);
        assert_eq!(fresh["id"], Value::Null);
        assert_eq!(fresh["withdrawn"], false);

        let theme = theme_input(&vec![
            ("month".into(), "2026-12".into()),
            ("title".into(), " 移风易俗 ".into()),
        ]);
        let input: civsync_protocol::service::catalog::ThemeInput =
            serde_json::from_value(theme).unwrap();
        assert_eq!(
            (input.month.as_str(), input.title.as_str()),
            ("2026-12", "移风易俗")
        );
    }
}
