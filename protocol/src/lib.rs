//! civsync-protocol: the sans-IO core of civsync.
//!
//! Everything here is deterministic: no sockets, no async runtime, no disk,
//! no clock reads, no OS randomness. Time and randomness are passed in. The
//! node (`civsync-node`) wires this to QUIC, sled and HTTP; the simulator
//! (`civsync-sim`) drives the same code over a simulated network.

pub mod activity_import;
pub mod actor;
pub mod approval;
pub mod approval_service;
pub mod authority;
pub mod catalog;
pub mod digest;
pub mod document_id;
pub mod input;
pub mod layout;
pub mod model;
pub mod order_flow;
pub mod pii;
pub mod registry_service;
pub mod replica;
pub mod schema;
pub mod service;
pub mod session;
pub mod station;
pub mod stats;
pub mod storage;
pub mod sync_host;
#[cfg(test)]
mod test_support;
pub mod wire;

pub use document_id::{DocumentId, DocumentIdError, DocumentKind, Month};
pub use station::{Station, StationId, StationIdError, Tier};
