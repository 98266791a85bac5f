//! `/web/bundles` (U盘传递): where there is no link, a clerk exports what
//! the township is missing onto a USB stick and imports what the township
//! sent back — the same work a sync does, carried by hand
//! (`api/bundles.rs`).
//!
//! Export is a plain form whose answer is the sealed file, downloaded by
//! the browser; import sends the file's own bytes (the upload script in
//! `assets`) and shows what each document did. Every rule is the API's.

use super::form::{optional, value, Pairs};
use super::internal;
use super::layout::{csrf_field, num, page, shell, text};
use super::Web;
use crate::access::guard::Principal;
use crate::access::Permission;
use crate::net::bundle_seal::BUNDLE_FILE_BYTES_MAX;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{html, Markup};
use serde_json::Value;

pub fn routes() -> Router<Web> {
    let import = Router::new()
        .route("/web/bundles/import", post(import))
        .layer(DefaultBodyLimit::max(BUNDLE_FILE_BYTES_MAX));
    Router::new()
        .route("/web/bundles", get(show))
        .route("/web/bundles/export", post(export))
        .merge(import)
}

fn export_form(principal: &Principal, default_for: &str, refusal: Option<&str>) -> Markup {
    html! {
        h2 { "导出数据包（带往上级）" }
        p.muted { "把对方还没有的数据写入一个加密文件，存到U盘带去。只有对方的节点能打开；文件被改动过会被拒收。重复导入不会重复记录。" }
        @if let Some(reason) = refusal { p.error role="alert" data-outcome="refused" { (reason) } }
        form.record method="post" action="/web/bundles/export" {
            (csrf_field(principal))
            label { "对方站点" input name="for" value=(default_for) required; }
            label { "对方证书（仅第一次需要：粘贴对方 node.crt 的内容）" textarea name="certificate_pem" rows="3" {} }
            label.check { input type="checkbox" name="full" value="true"; " 全部导出（对方提示“需要全部导出”时勾选）" }
            div.wide { button.primary type="submit" { "导出并下载" } }
        }
    }
}

fn import_form() -> Markup {
    html! {
        h2 { "导入数据包（从U盘带回）" }
        p.muted { "选择U盘上发给本站的 .civsync-bundle 文件。导入后，本站下次导出时会自动只带新数据。" }
        form.record data-upload data-report="bundle-report" method="post" action="/web/bundles/import" {
            label { "文件" input type="file" name="file" accept=".civsync-bundle" required; }
            div.wide {
                button.primary type="submit" { "导入" }
                " " progress hidden max="1" {} " " span.muted data-state role="status" {}
            }
        }
        div id="bundle-report" {}
    }
}

fn body(web: &Web, principal: &Principal, refusal: Option<&str>) -> Markup {
    let own = &web.ctx.config.station;
    let parent = own.parent().map(|p| p.to_string()).unwrap_or_default();
    html! {
        @if principal.role.may(Permission::Record) {
            (export_form(principal, &parent, refusal))
            (import_form())
        } @else {
            p.error { "当前角色只能查看，不能导出或导入数据包。" }
        }
    }
}

async fn show(State(web): State<Web>, Extension(principal): Extension<Principal>) -> Markup {
    let shell = shell(&web, &principal, "bundles");
    page(&shell, "U盘传递", body(&web, &principal, None))
}

async fn export(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Form(pairs): Form<Pairs>,
) -> Response {
    let request = serde_json::json!({
        "for": value(&pairs, "for").trim(),
        "full": value(&pairs, "full") == "true",
        "certificate_pem": optional(&pairs, "certificate_pem"),
    });
    match internal::post_for_file(&web, "bundles/export", &request, BUNDLE_FILE_BYTES_MAX).await {
        Ok((headers, bytes)) => {
            let disposition = headers
                .get(header::CONTENT_DISPOSITION)
                .cloned()
                .unwrap_or_else(|| header::HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/octet-stream"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                Body::from(bytes),
            )
                .into_response()
        }
        Err(answer) => {
            let (field, reason) = answer
                .refusal()
                .unwrap_or_else(|| ("node".into(), "未能导出".into()));
            let shell = shell(&web, &principal, "bundles");
            let shown = format!("{}：{reason}", field_label(&field));
            (
                answer.status,
                page(&shell, "U盘传递", body(&web, &principal, Some(&shown))),
            )
                .into_response()
        }
    }
}

fn field_label(field: &str) -> &str {
    match field {
        "for" => "对方站点",
        "certificate_pem" => "对方证书",
        "certificate" => "本站证书",
        "bundle" => "数据包",
        other => other,
    }
}

async fn import(State(web): State<Web>, body: Result<Bytes, BytesRejection>) -> Response {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) => {
            let reason = format!("文件未能接收：{}", rejection.body_text());
            return (rejection.status(), refusal_fragment(&reason)).into_response();
        }
    };
    let answer =
        internal::post_file(&web, "bundles/import", "application/octet-stream", bytes).await;
    match answer.refusal() {
        Some((field, reason)) => (
            answer.status,
            refusal_fragment(&format!("{}：{reason}", field_label(&field))),
        )
            .into_response(),
        None => (StatusCode::OK, report_fragment(&answer.body)).into_response(),
    }
}

fn refusal_fragment(reason: &str) -> Markup {
    html! { p.error role="alert" data-outcome="refused" { (reason) } }
}

/// What the import did: counts, then each refused document with why.
fn report_fragment(report: &Value) -> Markup {
    let refused = report
        .get("documents_refused")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    html! {
        p.notice role="status" data-outcome="imported" data-changes=(num(report, "changes_applied")) data-refused=(refused.len()) {
            "来自 " (text(report, "from")) "：写入 " (num(report, "changes_applied")) " 项更改，涉及 "
            (num(report, "documents_changed")) " 个文档；" (num(report, "documents_unchanged")) " 个文档已是最新；拒收 " (refused.len()) " 个。"
        }
        @if !refused.is_empty() {
            table #refused-documents {
                thead { tr { th { "文档" } th { "原因" } } }
                tbody {
                    @for entry in &refused {
                        tr { td { (text(entry, "document")) } td { (text(entry, "reason")) } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_counts_changes_and_lists_each_refused_document_with_why() {
        let html = report_fragment(&json!({
            "from": "xh/t1/v1", "changes_applied": 9, "documents_changed": 2,
            "documents_unchanged": 1,
            "documents_refused": [{"document": "roster:xh/t1/v2", "reason": "signature does not verify"}],
        }))
        .into_string();
        assert!(
            html.contains(
                "来自 xh/t1/v1：写入 9 项更改，涉及 2 个文档；1 个文档已是最新；拒收 1 个。"
            ),
            "{html}"
        );
        assert!(html.contains("<td>roster:xh/t1/v2</td><td>signature does not verify</td>"));
        let clean = report_fragment(&json!({"from": "xh/t1", "changes_applied": 0,
            "documents_changed": 0, "documents_unchanged": 3, "documents_refused": []}))
        .into_string();
        assert!(!clean.contains("refused-documents"));
    }
}
