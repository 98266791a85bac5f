//! Identity: who a station is, what a document is, who wrote a change.
//!
//! Owns: `StationId` and `Tier` (a station's path from the top of the
//! deployment), `DocumentId` and `Month` (a document's kind and owner, from
//! which its scope and write authority follow), the Automerge actor id that
//! names a change's station, and the schema version every document carries.
//!
//! May use: nothing else in this crate. Everything else builds on it.
//! Must never use: the domain model, Automerge documents' contents, storage,
//! sync — an identity is decided from the id alone, never from content.

pub mod actor;
pub mod document_id;
pub mod parsed_text;
pub mod schema;
pub mod station;
