//! The domain: the records the network keeps and the rules a record obeys.
//!
//! Owns: Volunteer, Team, Activity, ServiceRecord, Order and their
//! vocabularies (`model`), what a clerk submits and how it is validated
//! (`input`: every refusal names the field), and ID-card numbers (`pii`:
//! checksum, keyed digest, masking — the clear number is never stored), and
//! phones (`phone`: masked, and sealed to the county and the home station;
//! `phone_reader`: what a node shows); `seal_batch` seals an import's
//! values under one key agreement.
//!
//! May use: `identity`.
//! Must never use: Automerge, storage, sync, statistics — a rule about a
//! record holds wherever the record is kept.

pub mod input;
pub mod model;
pub mod phone;
pub mod phone_reader;
pub mod pii;
pub mod seal_batch;
