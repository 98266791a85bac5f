//! The network: QUIC endpoints with mutual TLS (`transport`), the county's
//! certificate authority and node certificates (`pki`), signing with the
//! node's key and checking a signer against the county CA (`seal`), the connection
//! manager that runs one sync session per peer against the store (`peers`)
//! and reports a cold sync's progress (`cold_sync`),
//! a userspace UDP relay that injects faults (`relay`, for the demo and
//! tests), and ports for several nodes on one machine (`local_ports`).
//!
//! Layer: may use `store` and the base modules. Must never use `api`,
//! `context` or `node`: the peer manager is handed a `Store` and reports on
//! a `PeerStatusBoard` that the layers above read.

pub mod bundle_seal;
pub mod change_signing;
pub mod cold_sync;
pub mod local_ports;
pub mod peers;
pub mod pki;
pub mod relay;
pub mod revocation;
pub mod seal;
pub mod transport;
