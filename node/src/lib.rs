//! civsync-node: a civsync node — sled store, QUIC transport, local HTTP API.
//!
//! The binary (`src/main.rs`) is the `civsync` CLI; everything it drives
//! lives in these modules so integration tests can use it too.
//!
//! The folders are layers, by job. Each may use only the layers beneath it
//! (the `layering` test in `tests/` checks every `crate::` path against this
//! table, so it stays true):
//!
//! | layer      | owns                                                          | may use |
//! |------------|---------------------------------------------------------------|---------|
//! | `demo`     | `civsync demo`: a county of node processes on one machine     | everything below |
//! | `cli/`     | the `civsync` commands, their API client and tables            | node, web, api, context, access, files, net, store, base |
//! | `node`     | starts and stops a node: listener, store, peers, web app       | web, api, context, access, net, store, base |
//! | `web/`     | the office web app (pages) and the guarded router of everything | api, context, access, files, net, store, base |
//! | `api/`     | the HTTP API, one file per resource                            | context, access, files, net, store, base |
//! | `context/` | `NodeContext` and the caches queries share                     | access, net, store, base |
//! | `access/`  | accounts, sessions, the API token, the audit log, the guard    | store, base |
//! | `files/`   | spreadsheets in (rosters, ledgers), reports out                | base |
//! | `net/`     | QUIC transport, peers, PKI, the fault relay, local ports        | store, base |
//! | `store/`   | sled under the protocol's `Storage`, the owner thread, bulk builds | base |
//! | base       | `clock`, `config`, `logging`, `progress`, `secrets`             | nothing (each other: config uses none) |

pub mod access;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod demo;
pub mod files;
pub mod logging;
pub mod net;
pub mod node;
pub mod progress;
pub mod secrets;
pub mod store;
pub mod web;
