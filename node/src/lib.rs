//! civsync-node: a civsync node — sled store, QUIC transport, local HTTP API.
//!
//! The binary (`src/main.rs`) is the `civsync` CLI; everything it drives
//! lives in these modules so integration tests can use it too.

pub mod api;
pub mod api_approval;
pub mod api_catalog;
pub mod api_freshness;
pub mod api_import_activities;
pub mod api_order_flow;
pub mod api_standings;
pub mod api_stations;
pub mod api_stats;
pub mod bulk;
pub mod client;
pub mod config;
pub mod demo;
pub mod import;
pub mod import_activities;
pub mod local_ports;
pub mod logging;
pub mod node;
pub mod peers;
pub mod pki;
pub mod relay;
pub mod report;
pub mod spreadsheet;
pub mod store;
pub mod tables;
#[cfg(test)]
mod test_api;
pub mod transport;
