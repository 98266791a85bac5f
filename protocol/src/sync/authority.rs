//! Write authority: may a change be applied here?
//!
//! A change made by a station's actor, for a document, arriving from a peer,
//! is applied by the local node only if all of these hold:
//!
//! 1. the document is in the local node's scope and in the peer's scope
//!    (a peer never sends what it may not hold), each side with its tier
//!    (personal documents stop at the county tier);
//! 2. the actor's station may write the document (owner or an ancestor);
//! 3. the writer is proven: the change is **signed** by the writer's node
//!    key under a credential the county CA issued to the actor's station
//!    (`signing.rs`; checked by the replica before it asks here) — then any
//!    peer may carry it, so a county that lost its store refills from its
//!    townships ([`check_signed_change`]); or, for an **unsigned** change
//!    (written by a release before signing), by the link it came over
//!    ([`check_unsigned_change`]): from the writer itself always; relayed,
//!    only while `UnsignedChanges::HopByHop` holds and the writer's station
//!    has never been seen signing, and then by the rule before signatures —
//!    the writer in the peer's subtree, or the peer an ancestor of ours.
//!
//! The hop rule alone let an ancestor write as anyone below it, or as the
//! county into its subtree; a signature cannot be forged by a township, and
//! a station seen signing is held to it.

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
    #[error("peer {peer} relayed an unsigned change said to be by station {writer}, which signs its changes: refused as a possible forgery")]
    UnsignedFromSigner { peer: StationId, writer: StationId },
    #[error("peer {peer} relayed an unsigned change by station {writer}: unsigned changes are taken only from their writer's own link")]
    UnsignedRelayed { peer: StationId, writer: StationId },
    #[error("change {change} is signed under a certificate of station {signer} but written as station {writer}")]
    SignerIsNotWriter {
        change: String,
        signer: StationId,
        writer: StationId,
    },
    #[error("the signature of change {change} by station {writer} does not verify")]
    BadSignature { change: String, writer: StationId },
    #[error("the certificate signing changes of station {writer} is refused: {reason}")]
    BadCredential { writer: String, reason: String },
}

/// What becomes of an unsigned change relayed by a peer that did not write
/// it (a change from its writer's own link is judged as before signing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnsignedChanges {
    /// The rule before signatures (rule 3 of the hop-by-hop era), while the
    /// writer's station has never been seen signing: offices upgrade one at
    /// a time, and an older village's changes still reach the county
    /// through an upgraded township.
    #[default]
    HopByHop,
    /// Refused: every office runs a release that signs.
    FromWriterOnly,
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

/// Rules 1–3 for a change whose signature verified under a credential of
/// `writer`, the station of its actor: whoever carried it.
pub fn check_signed_change(
    document: &DocumentId,
    writer: &StationId,
    peer: Side,
    local: Side,
) -> Result<(), AuthorityError> {
    check_document(document, peer, local)?;
    if !document.writable_by(writer) {
        return Err(AuthorityError::NotWritable {
            document: document.clone(),
            writer: writer.clone(),
        });
    }
    Ok(())
}

/// Rules 1–3 for an unsigned change. `writer_signs`: this node has taken
/// a signed change of the actor's station before.
pub fn check_unsigned_change(
    document: &DocumentId,
    actor: &ActorId,
    peer: Side,
    local: Side,
    policy: UnsignedChanges,
    writer_signs: impl FnOnce(&StationId) -> bool,
) -> Result<(), AuthorityError> {
    check_document(document, peer, local)?;
    let writer = station_of(actor).ok_or_else(|| AuthorityError::UnknownActor {
        actor: actor.to_hex_string(),
    })?;
    if !document.writable_by(&writer) {
        return Err(AuthorityError::NotWritable {
            document: document.clone(),
            writer,
        });
    }
    if *peer.station == writer {
        return Ok(());
    }
    if policy == UnsignedChanges::FromWriterOnly {
        return Err(AuthorityError::UnsignedRelayed {
            peer: peer.station.clone(),
            writer,
        });
    }
    if writer_signs(&writer) {
        return Err(AuthorityError::UnsignedFromSigner {
            peer: peer.station.clone(),
            writer,
        });
    }
    check_change(document, actor, peer, local)
}

/// Check rules 1–3 for one change's actor by the hop rule alone. `local` is this node and `peer`
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
    fn a_signed_change_is_taken_from_any_carrier_that_may_hold_it() {
        let roster = DocumentId::roster(&s("xh/t1/v1"));
        // The county's own write, handed back up by its township.
        assert_eq!(
            check_signed_change(&roster, &s("xh"), c(&s("xh/t1")), c(&s("xh"))),
            Ok(())
        );
        // Signed or not, a writer outside the owner's ancestry writes nothing.
        assert!(matches!(
            check_signed_change(&roster, &s("xh/t2"), c(&s("xh/t1")), c(&s("xh"))),
            Err(AuthorityError::NotWritable { .. })
        ));
    }

    #[test]
    fn an_unsigned_change_is_relayed_only_by_the_hop_rule_and_never_for_a_signer() {
        let roster = DocumentId::roster(&s("xh/t1/v1"));
        let village = actor_for(&s("xh/t1/v1"), 1);
        let (township, county) = (s("xh/t1"), s("xh"));
        let hop = UnsignedChanges::HopByHop;
        // From the writer itself: as before signing, whatever the policy.
        for policy in [hop, UnsignedChanges::FromWriterOnly] {
            assert_eq!(
                check_unsigned_change(
                    &roster,
                    &village,
                    c(&s("xh/t1/v1")),
                    c(&township),
                    policy,
                    |_| true
                ),
                Ok(())
            );
        }
        // Relayed from an older village that never signed: the hop rule.
        assert_eq!(
            check_unsigned_change(&roster, &village, c(&township), c(&county), hop, |_| false),
            Ok(())
        );
        // The village is seen signing: a relayed unsigned change is a forgery.
        assert!(matches!(
            check_unsigned_change(&roster, &village, c(&township), c(&county), hop, |_| true),
            Err(AuthorityError::UnsignedFromSigner { .. })
        ));
        assert!(matches!(
            check_unsigned_change(
                &roster,
                &village,
                c(&township),
                c(&county),
                UnsignedChanges::FromWriterOnly,
                |_| false
            ),
            Err(AuthorityError::UnsignedRelayed { .. })
        ));
        // The hop rule still refuses what it refused.
        let menu = DocumentId::reference(&county, "menu").unwrap();
        assert!(matches!(
            check_unsigned_change(
                &menu,
                &actor_for(&county, 1),
                c(&s("xh/t1/v1")),
                c(&township),
                hop,
                |_| false
            ),
            Err(AuthorityError::NotCarriable { .. })
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
