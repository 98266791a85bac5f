//! Binding of Automerge actors to stations.
//!
//! Every change carries its actor id. We make the actor id itself say which
//! station wrote the change: `station path bytes ‖ 0x00 ‖ 8-byte incarnation`.
//! A receiver can then check write authority per change with no lookup. The
//! incarnation is drawn fresh whenever a node is initialised or restored from
//! a backup (reusing an actor after a restore would duplicate sequence
//! numbers and corrupt history).

use crate::identity::station::StationId;
use automerge::ActorId;

const SEPARATOR: u8 = 0;
const INCARNATION_BYTES: usize = 8;

/// The actor a node of `station` writes with, for one incarnation of its store.
pub fn actor_for(station: &StationId, incarnation: u64) -> ActorId {
    let mut bytes = Vec::with_capacity(station.as_str().len() + 1 + INCARNATION_BYTES);
    bytes.extend_from_slice(station.as_str().as_bytes());
    bytes.push(SEPARATOR);
    bytes.extend_from_slice(&incarnation.to_be_bytes());
    ActorId::from(bytes)
}

/// The station an actor writes for, or `None` for an actor not made by
/// `actor_for` (such changes are never authorised).
pub fn station_of(actor: &ActorId) -> Option<StationId> {
    let bytes = actor.to_bytes();
    if bytes.len() < INCARNATION_BYTES + 2 {
        return None;
    }
    let split = bytes.len() - INCARNATION_BYTES - 1;
    if bytes[split] != SEPARATOR {
        return None;
    }
    let path = std::str::from_utf8(&bytes[..split]).ok()?;
    StationId::parse(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let station = StationId::parse("xh/t03/v12").unwrap();
        let actor = actor_for(&station, 0xdead_beef);
        assert_eq!(station_of(&actor), Some(station));
    }

    #[test]
    fn foreign_actors_belong_to_no_station() {
        assert_eq!(station_of(&ActorId::random()), None);
        assert_eq!(station_of(&ActorId::from(vec![0u8; 3])), None);
        let mut bytes = b"xh/t03".to_vec();
        bytes.push(1);
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(station_of(&ActorId::from(bytes)), None);
    }
}
