//! Sync: how two nodes agree on what they hold and exchange what differs.
//!
//! Owns: `authority` (may this change be applied here, carried by this
//! peer), `host` (the `SyncHost` trait between a session and a document
//! store), `digest` (the scope digest two peers compare), `wire` (framing,
//! versions, bounds), `session` (the sans-IO state machine: bytes and
//! events in, bytes and events out, time passed in), `signing` (signed
//! changes) and `bundle` (what a USB stick carries instead of a session).
//!
//! May use: `identity`.
//! Must never use: `replica` (a session talks to any store through
//! `SyncHost`: the node's, the simulator's, a test's), the domain model or
//! layout (sync moves documents, it does not read them), clocks, sockets.

pub mod authority;
pub mod bundle;
pub mod digest;
pub mod host;
pub mod session;
pub mod signing;
pub mod wire;
