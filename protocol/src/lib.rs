//! civsync-protocol: the sans-IO core of civsync.
//!
//! Everything here is deterministic: no sockets, no async runtime, no disk,
//! no clock reads, no OS randomness. Time and randomness are passed in. The
//! node (`civsync-node`) wires this to QUIC, sled and HTTP; the simulator
//! (`civsync-sim`) drives the same code over a simulated network.
//!
//! The folders are layers. Each may use only the layers listed beneath it
//! (the `layering` test in `tests/` checks every `crate::` path against this
//! table, so it stays true):
//!
//! | layer       | owns                                                        | may use |
//! |-------------|-------------------------------------------------------------|---------|
//! | `service/`  | what a clerk does: register, record, orders, approvals, registry, menus, ledger import | everything below |
//! | `stats/`    | figures per document, the incremental index, conflicts       | replica, sync, layout, storage, domain, identity, faults |
//! | `replica/`  | the document store logic over `Storage`; implements `SyncHost` | sync, layout, storage, domain, identity, faults |
//! | `sync/`     | authority, the host trait, digest, wire, the session machine | identity |
//! | `layout/`   | model ↔ Automerge                                           | domain, identity, faults |
//! | `storage`   | the `Storage` trait and `MemoryStorage`                     | nothing |
//! | `domain/`   | model, validated input, personal data (ID numbers)           | identity |
//! | `identity/` | station ids, document ids, actors, schema version           | nothing |
//! | `faults`    | defects the simulator injects (feature `injected-faults`)    | nothing |

pub mod domain;
pub mod faults;
pub mod identity;
pub mod layout;
pub mod replica;
pub mod service;
pub mod stats;
pub mod storage;
pub mod sync;
#[cfg(test)]
mod test_support;

pub use identity::document_id::{DocumentId, DocumentIdError, DocumentKind, Month};
pub use identity::station::{Station, StationId, StationIdError, Tier};
