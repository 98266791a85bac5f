//! `/web/certificates/{number}`: a volunteer's service certificate
//! (志愿服务证明) as a printable A4 page, with its verification code as a
//! QR code. The certificate is the API's, signed by this node; the page
//! only lays it out. Anyone holding the paper can have the code checked
//! (`civsync certificate verify`, `POST /api/v1/certificates/verify`).

use super::internal;
use super::layout::{hours, num, text, CSS};
use super::Web;
use crate::access::guard::{url_encode, Principal};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, PreEscaped, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<Web> {
    Router::new().route("/web/certificates/{number}", get(certificate))
}

#[derive(Deserialize, Default)]
struct CertificateQuery {
    station: Option<String>,
}

/// What the QR code holds: enough to find and check the certificate.
pub fn qr_text(certificate: &Value) -> String {
    format!(
        "civsync-certificate:{}:{}:{}",
        text(certificate, "verification_code"),
        text(certificate, "recording_station"),
        text(certificate, "volunteer_number")
    )
}

/// The QR code as inline SVG (drawn here; no image library).
pub fn qr_svg(payload: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(120, 120)
            .quiet_zone(true)
            .build(),
    )
}

async fn certificate(
    State(web): State<Web>,
    Extension(principal): Extension<Principal>,
    Path(number): Path<String>,
    Query(query): Query<CertificateQuery>,
) -> Response {
    let mut path = format!("certificates/{}", url_encode(&number));
    if let Some(station) = &query.station {
        path.push_str(&format!("?station={}", url_encode(station)));
    }
    let answer = internal::get(&web, &path).await;
    if let Some((_, reason)) = answer.refusal() {
        let shell = super::layout::shell(&web, &principal, "volunteers");
        return super::layout::failure(&shell, "志愿服务证明", &reason).into_response();
    }
    let c = &answer.body;
    let activities = c
        .get("activities")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let qr = qr_svg(&qr_text(c)).unwrap_or_default();
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                title { "志愿服务证明 · " (text(c, "volunteer_name")) }
                link rel="stylesheet" href=(CSS);
                style { (PreEscaped("@page { size: A4; margin: 18mm; } .a4 { max-width: 174mm; margin: 0 auto; background: #fff; padding: 12mm; border: 1px solid #ddd; } .a4 h1 { text-align: center; font-size: 26px; letter-spacing: 8px; } .a4 .qr { float: right; width: 34mm; } .a4 .sign { margin-top: 14mm; text-align: right; } @media print { .a4 { border: 0; padding: 0; } .noprint { display: none; } }")) }
            }
            body {
                p.noprint style="text-align:center" { button type="button" data-print { "打印" } " " a href="/web/volunteers" { "返回" } }
                div.a4 #certificate {
                    div.qr { (PreEscaped(qr)) }
                    h1 { "志愿服务证明" }
                    p {
                        "兹证明 " strong { (text(c, "volunteer_name")) }
                        "（志愿者编号 " (text(c, "volunteer_number")) "，身份证号 " (text(c, "id_masked")) "）"
                        "在我单位参加志愿服务，累计服务时长 " strong { (hours(num(c, "total_hours_centi"))) } " 小时。明细如下："
                    }
                    table {
                        thead { tr { th { "日期" } th { "活动" } th { "内容" } th.num { "时长（小时）" } } }
                        tbody {
                            @for a in &activities {
                                tr { td { (text(a, "date")) } td { (text(a, "name")) } td { (text(a, "content")) } td.num { (hours(num(a, "hours_centi"))) } }
                            }
                        }
                    }
                    p.sign {
                        (text(c, "recording_station_name")) br;
                        (text(c, "issued_on"))
                    }
                    p.muted {
                        "验证码 " strong #verification-code { (text(c, "verification_code")) }
                        "。本证明由 civsync 节点 " (text(c, "recording_station")) " 以县中心签发的证书数字签名；扫码或凭验证码可核验真伪。"
                    }
                }
            }
        }
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_that_carries_the_verification_code() {
        let certificate = serde_json::json!({
            "verification_code": "402D-C0E8-EE61-EC5C",
            "recording_station": "xh/t1/v1",
            "volunteer_number": "V001",
        });
        let text = qr_text(&certificate);
        assert_eq!(
            text,
            "civsync-certificate:402D-C0E8-EE61-EC5C:xh/t1/v1:V001"
        );
        let svg = qr_svg(&text).unwrap();
        assert!(
            svg.starts_with("<?xml") || svg.starts_with("<svg"),
            "{}",
            &svg[..40]
        );
        assert!(svg.contains("<path") || svg.contains("<rect"));
    }
}
