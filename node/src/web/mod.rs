//! The office web app every node serves at its API address, and the one
//! router that puts the pages, the JSON API and the guard together.
//!
//! Pages are rendered on the server (maud: HTML built by type-checked Rust
//! macros, every value escaped) with a vendored htmx for partial updates;
//! there is no build step, no CDN and no script of our own beyond a few
//! lines, so a village PC with no network and an old browser gets the same
//! app. Pages are clients of the JSON API, called in-process (`internal`):
//! a form becomes the API's JSON body, the API's `{"error": {"field",
//! "reason"}}` is shown beside that field. So every rule the API keeps, the
//! pages keep, and there is one place to test it.
//!
//! Layer: above `api` (which it calls) and `access` (whose guard it puts in
//! front of everything); below `node`, which serves `app`. The guard checks
//! every request, API and page alike, before any handler runs.

pub mod activities;
pub mod admin;
pub mod assets;
pub mod bundles;
pub mod catalog;
pub mod certificate;
pub mod dashboard;
pub mod form;
pub mod home;
pub mod import;
pub mod internal;
pub mod layout;
pub mod login;
pub mod orders;
pub mod points;
pub mod registry;
pub mod sync;
pub mod teams;
pub mod volunteers;

use crate::context::NodeContext;
use axum::Router;
use std::sync::Arc;

/// What every page handler gets: the node, and the API to call.
#[derive(Clone)]
pub struct Web {
    pub ctx: Arc<NodeContext>,
    pub api: Router,
}

/// The node's whole HTTP server: pages, assets and the API, behind the
/// guard (Host, Origin, content type, login, CSRF, role, audit).
pub fn app(ctx: Arc<NodeContext>) -> Router {
    let web = Web {
        ctx: ctx.clone(),
        api: crate::api::router(ctx.clone()),
    };
    let pages = Router::new()
        .merge(login::routes())
        .merge(home::routes())
        .merge(volunteers::routes())
        .merge(activities::routes())
        .merge(dashboard::routes())
        .merge(admin::routes())
        .merge(certificate::routes())
        .merge(orders::routes())
        .merge(sync::routes())
        .merge(teams::routes())
        .merge(catalog::routes())
        .merge(points::routes())
        .merge(registry::routes())
        .merge(assets::routes())
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::access::guard::FORM_BODY_BYTES_MAX,
        ))
        // Uploads carry a file, under the import's own limit (set inside).
        .merge(import::routes())
        .merge(bundles::routes())
        .layer(axum::middleware::from_fn(assets::security_headers))
        .with_state(web.clone());
    pages
        .merge(web.api)
        .layer(axum::middleware::from_fn_with_state(
            ctx.access.clone(),
            crate::access::guard::guard,
        ))
}
