//! Write authority: may a change be applied here?
//!
//! A change made by a station's actor, for a document, arriving from a peer,
//! is applied by the local node only if all of these hold:
//!
//! 1. the document is in the local node's scope and in the peer's scope
//!    (a peer never sends what it may not hold), each side with its tier
//!    (personal documents stop at the county tier);
//! 2. the actor's station may write the document (owner or an ancestor);
//! 3. the peer may carry the actor's changes: the actor's station is in the
//!    peer's subtree (changes travel up from where they were made), or the
//!    peer is an ancestor of the local node (a parent relays what its
//!    ancestors wrote down to its children).
//!
//! Rule 3 is what stops a village from forging a county actor to rewrite the
//! county's menu: the actor id alone proves nothing, the certified identity of
//! the peer that carried it does. A consequence: a village that learned a
//! county change over a fallback link cannot pass it to its township; the
//! township gets it from its own parent instead.

use crate::identity::actor::station_of;
use crate::identity::document_id::DocumentId;
use crate::identity::station::{StationId, Tier};
use automerge::ActorId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("document {document} is outside the scope of station {station}")]
    OutOfScope {
        document: DocumentId,
        station: StationId,
    },
    #[error("change by actor {actor} belongs to no station; only civsync actors may write")]
    UnknownActor { actor: String },
    #[error("station {writer} may not write document {document} (only its owner and the owner's ancestors may)")]
    NotWritable {
        document: DocumentId,
        writer: StationId,
    },
    #[error("peer {peer} may not relay changes made by station {writer} (only from its own subtree, or from a parent)")]
    NotCarriable { peer: StationId, writer: StationId },
}

/// A station and its tier: one side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side<'a> {
    pub station: &'a StationId,
    pub tier: Tier,
}

impl<'a> Side<'a> {
    pub fn new(station: &'a StationId, tier: Tier) -> Side<'a> {
        Side { station, tier }
    }
}

/// Check rules 1–3 for one change's actor. `local` is this node and `peer`
/// the certified station and tier of the connection the change came over.
pub fn check_change(
    document: &DocumentId,
    actor: &ActorId,
    peer: Side,
    local: Side,
) -> Result<(), AuthorityError> {
    check_document(document, peer, local)?;
    let (peer, local) = (peer.station, local.station);
    let writer = station_of(actor).ok_or_else(|| AuthorityError::UnknownActor {
        actor: actor.to_hex_string(),
    })?;
    if !document.writable_by(&writer) {
        return Err(AuthorityError::NotWritable {
            document: document.clone(),
            writer,
        });
    }
    if !(peer.is_ancestor_or_self_of(&writer) || peer.is_strict_ancestor_of(local)) {
        return Err(AuthorityError::NotCarriable {
            peer: peer.clone(),
            writer,
        });
    }
    Ok(())
}

/// Rule 1 alone: may this document be exchanged between `local` and `peer`?
pub fn check_document(
    document: &DocumentId,
    peer: Side,
    local: Side,
) -> Result<(), AuthorityError> {
    for side in [local, peer] {
        if !document.in_scope_of(side.station, side.tier) {
            return Err(AuthorityError::OutOfScope {
                document: document.clone(),
                station: side.station.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::actor::actor_for;
    use crate::identity::document_id::Month;

    fn s(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    /// A side at the county tier or below (the tier does not matter here).
    fn c(station: &StationId) -> Side<'_> {
        Side::new(station, Tier::County)
    }

    #[test]
    fn village_changes_travel_up() {
        let doc = DocumentId::roster(&s("xh/t1/v1"));
        let village = actor_for(&s("xh/t1/v1"), 1);
        assert_eq!(
            check_change(&doc, &village, c(&s("xh/t1/v1")), c(&s("xh/t1"))),
            Ok(())
        );
        assert_eq!(
            check_change(&doc, &village, c(&s("xh/t1")), c(&s("xh"))),
            Ok(())
        );
    }

    #[test]
    fn county_changes_travel_down_through_parents() {
        let menu = DocumentId::reference(&s("xh"), "menu").unwrap();
        let county = actor_for(&s("xh"), 7);
        assert_eq!(
            check_change(&menu, &county, c(&s("xh/t1")), c(&s("xh/t1/v1"))),
            Ok(())
        );
    }

    #[test]
    fn a_village_cannot_forge_a_county_actor() {
        let menu = DocumentId::reference(&s("xh"), "menu").unwrap();
        let forged = actor_for(&s("xh"), 7);
        assert!(matches!(
            check_change(&menu, &forged, c(&s("xh/t1/v1")), c(&s("xh/t1"))),
            Err(AuthorityError::NotCarriable { .. })
        ));
    }

    #[test]
    fn a_village_cannot_write_its_neighbour() {
        let neighbour = DocumentId::activities(&s("xh/t1/v2"), Month::new(2026, 11).unwrap());
        let village = actor_for(&s("xh/t1/v1"), 1);
        // Carried by the village itself: the document is not even in its scope.
        assert!(matches!(
            check_change(&neighbour, &village, c(&s("xh/t1/v1")), c(&s("xh/t1"))),
            Err(AuthorityError::OutOfScope { .. })
        ));
        // Smuggled through the township: the writer may not write it.
        assert!(matches!(
            check_change(&neighbour, &village, c(&s("xh/t1")), c(&s("xh"))),
            Err(AuthorityError::NotWritable { .. })
        ));
    }

    #[test]
    fn foreign_actors_are_refused() {
        let doc = DocumentId::roster(&s("xh/t1/v1"));
        assert!(matches!(
            check_change(&doc, &ActorId::random(), c(&s("xh/t1/v1")), c(&s("xh/t1"))),
            Err(AuthorityError::UnknownActor { .. })
        ));
    }

    #[test]
    fn a_county_never_passes_personal_documents_to_its_prefecture() {
        let (county, prefecture) = (s("zk/xh"), s("zk"));
        let roster = DocumentId::roster(&s("zk/xh/t1/v1"));
        let village = actor_for(&s("zk/xh/t1/v1"), 1);
        assert!(matches!(
            check_change(
                &roster,
                &village,
                c(&county),
                Side::new(&prefecture, Tier::Prefecture)
            ),
            Err(AuthorityError::OutOfScope { station, .. }) if station == prefecture
        ));
        let approval = DocumentId::approval(&s("zk/xh/t1/v1"), Month::new(2026, 11).unwrap());
        assert_eq!(
            check_document(
                &approval,
                Side::new(&prefecture, Tier::Prefecture),
                c(&county)
            ),
            Ok(())
        );
    }
}
