//! How a replica is configured: cache sizes, compaction, the limits on what
//! a peer may send, its tier and the policy for unsigned changes.

use super::bounds::DecodeLimits;
use super::intake::PeerQuotas;
use crate::identity::station::{StationId, Tier};

/// Documents kept loaded at once, by default.
pub const DOCUMENTS_CACHED_MAX: usize = 256;
/// Per-(peer, document) sync states kept in memory at once, by default.
pub const SYNC_STATES_CACHED_MAX: usize = 4096;
/// Compact a document after this many increments, whatever their size.
/// A compaction re-encodes the whole document, so on a large month it is
/// the costliest part of a commit when done often; the increments load in
/// one batch (Automerge applies 20k changes in a batch in ~0.08 s), so a
/// few thousand cost a cold load only milliseconds. The bytes rule below
/// (increments as large as the snapshot) still bounds the space.
pub const COMPACTION_INCREMENTS_MAX: u64 = 2048;
/// Do not compact before the increments reach this many bytes, so that a
/// young document is not rewritten on every commit.
pub const COMPACTION_BYTES_MIN: u64 = 16 * 1024;
/// Largest sync message accepted, in bytes.
pub const SYNC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most changes accepted in one sync message (a whole document included).
pub const SYNC_MESSAGE_CHANGES_MAX: usize = 500_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub documents_cached_max: usize,
    pub sync_states_cached_max: usize,
    pub compaction_increments_max: u64,
    pub compaction_bytes_min: u64,
    pub sync_message_bytes_max: usize,
    pub sync_message_changes_max: usize,
    /// What a peer's changes may cost once inflated and expanded, checked
    /// before automerge decodes them (see `bounds`).
    pub decode_limits: DecodeLimits,
    /// What one peer may bring in per day, and which stations below it must
    /// be registered first (see `intake`).
    pub peer_quotas: PeerQuotas,
    /// The local station's tier: decides whether personal documents of
    /// stations below may be held here (they stop at the county). `None`:
    /// the county is the top of the tree, one tier per level below it.
    pub tier: Option<Tier>,
    /// What becomes of an unsigned change relayed by a peer that did not
    /// write it (see `sync::authority`).
    pub unsigned_changes: crate::sync::authority::UnsignedChanges,
}

impl ReplicaConfig {
    /// The tier of `local` under this configuration.
    pub fn tier_of(&self, local: &StationId) -> Tier {
        self.tier.unwrap_or_else(|| {
            Tier::County
                .shifted(local.depth() as isize - 1)
                .unwrap_or(Tier::Point)
        })
    }
}

impl Default for ReplicaConfig {
    fn default() -> ReplicaConfig {
        ReplicaConfig {
            documents_cached_max: DOCUMENTS_CACHED_MAX,
            sync_states_cached_max: SYNC_STATES_CACHED_MAX,
            compaction_increments_max: COMPACTION_INCREMENTS_MAX,
            compaction_bytes_min: COMPACTION_BYTES_MIN,
            sync_message_bytes_max: SYNC_MESSAGE_BYTES_MAX,
            sync_message_changes_max: SYNC_MESSAGE_CHANGES_MAX,
            decode_limits: DecodeLimits::DEFAULT,
            peer_quotas: PeerQuotas::DEFAULT,
            tier: None,
            unsigned_changes: crate::sync::authority::UnsignedChanges::HopByHop,
        }
    }
}
