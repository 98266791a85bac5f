//! Every simulated node signs its changes and checks its peers', as a node
//! does, with the protocol's keyed-hash stand-in for certificates: a node
//! holds only its own station's key, so a misbehaving node cannot sign as
//! another station (what the county CA guarantees for real nodes).

use civsync_protocol::replica::{OpenError, Replica, ReplicaConfig, Signing};
use civsync_protocol::storage::MemoryStorage;
use civsync_protocol::sync::signing::keyed_hash::{KeyedHashSigner, KeyedHashVerifier};
use civsync_protocol::{StationId, Tier};
use std::sync::Arc;

/// The secret every simulated station's key derives from (the stand-in for
/// the county CA).
const COUNTY_SECRET: &[u8] = b"civsync simulated county";

/// A replica of `station` that signs as it: what every honest node opens.
pub fn open_replica(
    storage: MemoryStorage,
    station: &StationId,
    tier: Tier,
    incarnation: u64,
    config: ReplicaConfig,
) -> Result<Replica<MemoryStorage>, OpenError> {
    let mut replica = Replica::open(storage, station.clone(), incarnation, config)?;
    replica
        .set_signing(Signing {
            signer: Some(Arc::new(KeyedHashSigner::new(COUNTY_SECRET, station, tier))),
            verifier: Arc::new(KeyedHashVerifier::new(COUNTY_SECRET)),
        })
        .map_err(OpenError::Storage)?;
    Ok(replica)
}
