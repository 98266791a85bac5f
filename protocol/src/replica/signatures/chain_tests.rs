//! One signature for a station's chain of changes: what a sender leaves
//! out, and what a receiver vouches for, in one message or ahead of it.

use super::tests::{
    roster, signed_node, two_changes_on_their_way, village_message_signing, write,
    TwoChangesOnTheirWay,
};
use super::{reach, signatures_needed, Incoming};
use crate::identity::actor::{actor_for, station_of};
use crate::replica::{Replica, ReplicaConfig};
use crate::storage::MemoryStorage;
use crate::sync::authority::UnsignedChanges;
use crate::sync::host::SyncHost;
use crate::sync::signing::PayloadFormat;
use crate::test_support::{signed_node_with, station, sync_document};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ROOT};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// A county that takes unsigned changes only from their writer's own link:
/// every relayed change must be signed or vouched for.
fn strict_county() -> Replica<MemoryStorage> {
    signed_node_with(
        "xh",
        1,
        ReplicaConfig {
            unsigned_changes: UnsignedChanges::FromWriterOnly,
            ..ReplicaConfig::default()
        },
    )
}

#[test]
fn a_clerks_burst_of_changes_goes_with_the_signature_of_its_last_one_and_relays_whole() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    let mut county = strict_county();
    write(&mut village, &roster(), "registered");
    sync_document(&mut village, &mut township, &roster());
    assert_eq!(township.signature_count(&roster()).unwrap(), 1);
    // A day's work, then the link comes up.
    for n in 0..30 {
        write(&mut village, &roster(), &format!("activity {n}"));
    }
    assert_eq!(village.signature_count(&roster()).unwrap(), 31);
    sync_document(&mut village, &mut township, &roster());
    assert_eq!(township.heads(&roster()), village.heads(&roster()));
    assert_eq!(
        township.signature_count(&roster()).unwrap(),
        2,
        "the last change's signature vouches for the 29 under it"
    );
    assert_eq!(
        township.uncovered_signature_count(&roster()).unwrap(),
        1,
        "the first change's signature is covered by the burst's"
    );
    // The township hands the chain on with that one signature.
    sync_document(&mut township, &mut county, &roster());
    assert_eq!(county.heads(&roster()), village.heads(&roster()));
}

#[test]
fn a_document_sent_whole_goes_with_the_signature_of_its_last_change_and_relays_whole() {
    let mut village = signed_node("xh/t1/v1", 1);
    let mut township = signed_node("xh/t1", 1);
    let mut county = strict_county();
    for n in 0..31 {
        write(&mut village, &roster(), &format!("activity {n}"));
    }
    assert_eq!(village.signature_count(&roster()).unwrap(), 31);
    assert_eq!(
        village.uncovered_signature_count(&roster()).unwrap(),
        1,
        "each commit covers the signature of the one before"
    );
    // The township held nothing of it: the document goes whole.
    sync_document(&mut village, &mut township, &roster());
    assert_eq!(township.heads(&roster()), village.heads(&roster()));
    assert_eq!(township.signature_count(&roster()).unwrap(), 1);
    // The township's own correction covers nothing of the village's.
    write(&mut township, &roster(), "township correction");
    sync_document(&mut township, &mut county, &roster());
    assert_eq!(county.heads(&roster()), township.heads(&roster()));
    assert_eq!(county.signature_count(&roster()).unwrap(), 2);
}

#[test]
fn a_change_a_relay_left_out_is_taken_alone_once_a_signed_change_named_it() {
    let TwoChangesOnTheirWay {
        village,
        mut county,
        held,
        second,
        third,
        ..
    } = two_changes_on_their_way(strict_county());
    let relay = station("xh/t1");
    // The township's Bloom filter said the county held the second change:
    // the third came alone, with the only signature the township holds.
    county
        .receive_sync_message(
            &relay,
            &roster(),
            &village_message_signing(std::slice::from_ref(&third), std::slice::from_ref(&third)),
            PayloadFormat::Signed,
        )
        .unwrap();
    assert_eq!(county.heads(&roster()).unwrap(), held.as_slice());
    // A change the signed one does not name, in the village's name and
    // unsigned, is still refused.
    let mut forger = AutoCommit::new().with_actor(actor_for(&station("xh/t1/v1"), 66));
    forger.put(ROOT, "forged", 1i64).unwrap();
    forger.commit();
    let forged = forger.get_last_local_change().unwrap().clone();
    let refused = county
        .receive_sync_message(
            &relay,
            &roster(),
            &village_message_signing(&[forged], &[]),
            PayloadFormat::Signed,
        )
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("unsigned changes are taken only from their writer's own link"),
        "{refused}"
    );
    // The second, asked for by hash, comes alone and unsigned: the third's
    // signature vouched for it before it came.
    county
        .receive_sync_message(
            &relay,
            &roster(),
            &village_message_signing(&[second], &[]),
            PayloadFormat::Signed,
        )
        .unwrap();
    assert_eq!(county.heads(&roster()), village.heads(&roster()));
}

/// Changes with synthetic hashes: change `i` by the township when
/// `by_township[i]`, else by the village, depending on `deps[i]`.
fn graph(by_township: &[bool], deps: &[Vec<usize>]) -> Vec<Incoming> {
    let hash = |index: usize| ChangeHash([index as u8 + 1; 32]);
    by_township
        .iter()
        .enumerate()
        .map(|(index, township)| Incoming {
            hash: hash(index),
            actor: if *township {
                actor_for(&station("xh/t1"), 1)
            } else {
                actor_for(&station("xh/t1/v1"), 1)
            },
            deps: deps[index].iter().map(|dep| hash(*dep)).collect(),
        })
        .collect()
}

proptest! {
    /// Whatever the graph of a message, every change the sender holds a
    /// signature of goes either signed, or vouched for by a signature that
    /// goes; and a single station's chain goes with its last signature.
    #[test]
    fn every_signed_change_goes_signed_or_vouched_for(
        shape in proptest::collection::vec(
            (
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            ),
            1..14,
        ),
    ) {
        let by_township: Vec<bool> = shape.iter().map(|(township, _, _)| *township).collect();
        let deps: Vec<Vec<usize>> = shape
            .iter()
            .enumerate()
            .map(|(index, (_, _, picks))| {
                let picked: BTreeSet<usize> = if index == 0 {
                    BTreeSet::new()
                } else {
                    picks.iter().map(|pick| pick.index(index)).collect()
                };
                picked.into_iter().collect()
            })
            .collect();
        let changes = graph(&by_township, &deps);
        let signed: BTreeSet<ChangeHash> = changes
            .iter()
            .zip(&shape)
            .filter(|(_, (_, signed, _))| *signed)
            .map(|(change, _)| change.hash)
            .collect();
        let needed = signatures_needed(&changes, &signed);
        prop_assert!(needed.is_subset(&signed));
        let roots: BTreeMap<ChangeHash, _> = changes
            .iter()
            .filter(|change| needed.contains(&change.hash))
            .map(|change| (change.hash, station_of(&change.actor).unwrap()))
            .collect();
        let vouched = reach(&changes, &roots).reached;
        for hash in &signed {
            prop_assert!(
                needed.contains(hash) || vouched.contains(hash),
                "a signed change went unsigned and unvouched"
            );
        }
        let one_chain = by_township.iter().all(|township| !*township)
            && deps
                .iter()
                .enumerate()
                .all(|(index, deps)| index == 0 || deps == &vec![index - 1]);
        let last = changes.last().expect("at least one change").hash;
        if one_chain && signed.contains(&last) {
            prop_assert_eq!(needed, BTreeSet::from([last]));
        }
    }
}
