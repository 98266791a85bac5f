//! Statistics, approval and report endpoints of the API.

use crate::node::NodeContext;
use axum::Router;
use std::sync::Arc;

pub fn routes() -> Router<Arc<NodeContext>> {
    Router::new()
}
