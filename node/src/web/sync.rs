//! `/web/sync`: this node's links — each peer, whether it is connected and
//! up to date, what is waiting, when it was last heard from, traffic, and
//! the last error or refusal with what to do about it, in words a county
//! technician can act on by phone.

use super::internal;
use super::layout::{ago, num, page, shell, text};
use super::Web;
use crate::access::guard::Principal;
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, Markup};
use serde_json::Value;

pub fn routes() -> Router<Web> {
    Router::new().route("/web/sync", get(sync))
}

fn role_label(role: &str) -> &'static str {
    match role {
        "parent" => "上级",
        "fallback" => "备用上级",
        "sibling" => "同级",
        "child" => "下级",
        _ => "",
    }
}

/// What the office should do about a link's last error.
pub fn advice(error: &str) -> &'static str {
    let error = error.to_ascii_lowercase();
    if error.contains("revoked") {
        "该证书已被县中心吊销：请联系县中心技术人员。"
    } else if error.contains("certificate") || error.contains("tls") || error.contains("ca ") {
        "证书问题：请核对本节点与对方的证书是否由同一县中心签发、是否过期（civsync pki renew）。"
    } else if error.contains("timed out")
        || error.contains("unreachable")
        || error.contains("refused")
        || error.contains("lost")
    {
        "网络不通：请检查网络连接与对方地址、端口；恢复后会自动同步，数据不会丢失。"
    } else if error.contains("version") {
        "软件版本不兼容：请按县中心通知升级 civsync。"
    } else if error.contains("quota")
        || error.contains("registry")
        || error.contains("unregistered")
    {
        "对方发送的数据超出限额或站点未登记：请在站点登记中登记该站点，或联系县中心。"
    } else {
        "如持续出现，请将此信息告知县中心技术人员。"
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KB", n as f64 / 1024.0),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

async fn sync(State(web): State<Web>, Extension(principal): Extension<Principal>) -> Markup {
    let shell = shell(&web, &principal, "sync");
    let status = internal::get(&web, "status").await;
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    let peers = status
        .body
        .get("peers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let body = html! {
        @if let Some((_, reason)) = status.refusal() { p.error { (reason) } }
        @if let Some(warning) = status.body.get("warning").and_then(Value::as_str) { p.error role="alert" { (warning) } }
        p.muted {
            "本节点持有文档 " (num(&status.body, "documents")) " 个；县中心证书吊销名单版本 " (num(&status.body, "revocation_list_version")) "。"
            @if let Some(days) = status.body.get("certificate_expires_in_days").and_then(Value::as_i64) { "本节点证书 " (days) " 天后到期。" }
        }
        @if peers.is_empty() { p { "本节点没有同步对象（未配置证书或上下级）。" } }
        table #peers {
            thead { tr { th { "对方" } th { "关系" } th { "状态" } th { "上次联系" } th.num { "待同步" } th.num { "已同步文档" } th.num { "收 / 发" } th.num title="含加密与握手，即线路实际流量" { "线路收 / 发" } th { "最近问题与处理建议" } } }
            tbody {
                @for peer in &peers {
                    @let connected = peer.get("connected").and_then(Value::as_bool).unwrap_or(false);
                    @let current = peer.get("up_to_date").and_then(Value::as_bool).unwrap_or(false);
                    tr data-station=(text(peer, "station")) {
                        td { (text(peer, "station")) }
                        td { (role_label(text(peer, "role"))) }
                        td { @if connected && current { span.light.green {} "已是最新" } @else if connected { span.light.amber {} "同步中" } @else { span.light.red {} "未连接" } }
                        td { @match peer.get("last_seen_unix_ms").and_then(Value::as_i64) { Some(at) => (ago(at, now_ms)), None => "从未" } }
                        td.num { (num(peer, "documents_pending") + num(peer, "documents_in_flight")) }
                        td.num { (num(peer, "documents_synced")) }
                        td.num { (bytes(num(peer, "bytes_received"))) " / " (bytes(num(peer, "bytes_sent"))) }
                        td.num { (bytes(num(peer, "transport_bytes_received"))) " / " (bytes(num(peer, "transport_bytes_sent"))) }
                        td {
                            @for field in ["last_error", "last_refused"] {
                                @if let Some(problem) = peer.get(field).and_then(Value::as_str).filter(|p| !p.is_empty()) {
                                    div { span.muted { (problem) } br; (advice(problem)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&shell, "同步状态", body)
}

#[cfg(test)]
mod tests {
    use super::advice;

    #[test]
    fn each_kind_of_error_gets_its_own_advice() {
        assert!(advice("certificate revoked: stolen PC").contains("吊销"));
        assert!(advice("connection lost: timed out").contains("网络不通"));
        assert!(advice("TLS handshake failed: unknown CA").contains("证书"));
        assert!(advice("daily quota of documents used up").contains("限额"));
        assert!(advice("something else").contains("县中心技术人员"));
    }
}
