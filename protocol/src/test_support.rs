//! Helpers shared by the unit tests of several modules.

use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use crate::replica::{Replica, ReplicaConfig};
use crate::storage::MemoryStorage;
use crate::sync::host::SyncHost;
use crate::sync::signing::PayloadFormat;

pub(crate) fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

/// An empty node of station `at`, in memory.
pub(crate) fn node(at: &str) -> Replica<MemoryStorage> {
    Replica::open(
        MemoryStorage::new(),
        station(at),
        5,
        ReplicaConfig::default(),
    )
    .unwrap()
}

/// Every document's heads, to show a refusal wrote nothing.
pub(crate) fn all_heads(
    replica: &Replica<MemoryStorage>,
) -> Vec<(DocumentId, Vec<automerge::ChangeHash>)> {
    replica
        .documents()
        .into_iter()
        .map(|d| {
            let heads = replica.heads(&d).unwrap().to_vec();
            (d, heads)
        })
        .collect()
}

/// Run Automerge's sync for one document between two neighbouring nodes
/// until neither has anything to send.
pub(crate) fn sync_document(
    a: &mut Replica<MemoryStorage>,
    b: &mut Replica<MemoryStorage>,
    document: &DocumentId,
) {
    let (a_station, b_station) = (a.local().clone(), b.local().clone());
    for _ in 0..20 {
        let mut moved = false;
        if let Some(message) = a
            .generate_sync_message(&b_station, document, PayloadFormat::Signed)
            .unwrap()
        {
            b.receive_sync_message(&a_station, document, &message, PayloadFormat::Signed)
                .unwrap();
            moved = true;
        }
        if let Some(message) = b
            .generate_sync_message(&a_station, document, PayloadFormat::Signed)
            .unwrap()
        {
            a.receive_sync_message(&b_station, document, &message, PayloadFormat::Signed)
                .unwrap();
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("{document} did not converge");
}

/// The county key pair the unit tests seal to.
pub(crate) fn county_key() -> crate::domain::pii::CountyOpenKey {
    crate::domain::pii::CountyOpenKey::generate([3; 32])
}

/// A sealer to [`county_key`], seeded for repeatable tests.
pub(crate) fn sealer() -> crate::domain::pii::IdSealer {
    crate::domain::pii::IdSealer::new(county_key().seal_key(), [4; 32])
}

/// The county secret the keyed-hash stand-in certifies stations with.
pub(crate) const SIGNING_ROOT_SECRET: &[u8] = b"xh county";

/// An empty node of station `at` that signs its changes and checks its
/// peers' with the keyed-hash stand-in for certificates.
pub(crate) fn signed_node_with(
    at: &str,
    incarnation: u64,
    config: ReplicaConfig,
) -> Replica<MemoryStorage> {
    use crate::sync::signing::keyed_hash::{KeyedHashSigner, KeyedHashVerifier};
    let mut node = Replica::open(MemoryStorage::new(), station(at), incarnation, config).unwrap();
    let tier = node.config().tier_of(&station(at));
    node.set_signing(crate::replica::Signing {
        signer: Some(std::sync::Arc::new(KeyedHashSigner::new(
            SIGNING_ROOT_SECRET,
            &station(at),
            tier,
        ))),
        verifier: std::sync::Arc::new(KeyedHashVerifier::new(SIGNING_ROOT_SECRET)),
    })
    .unwrap();
    node
}
