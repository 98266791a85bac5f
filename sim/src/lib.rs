//! civsync-sim: a deterministic discrete-event simulation of a whole county
//! (or prefecture) of civsync nodes running the real sync session and
//! replica code over a simulated network, with faults, a synthetic workload
//! and checkers of the properties the product promises.

pub mod canonical;
pub mod config;
pub mod names;
pub mod network;
pub mod rng;
pub mod scheduler;
pub mod statistics;
pub mod time;
pub mod topology;
pub mod truth;
pub mod workload;
