//! The files pages load, embedded in the binary: no CDN, no download at
//! run time, the same bytes on every office PC. Cached for a day; a new
//! htmx comes with a new file name.

use super::Web;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const HTMX_JS: &str = include_str!("../../assets/htmx-2.0.11.min.js");
const CSS: &str = include_str!("../../assets/civsync.css");

pub fn routes() -> Router<Web> {
    Router::new()
        .route(super::layout::HTMX, get(htmx))
        .route(super::layout::CSS, get(css))
}

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX_JS,
    )
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}
