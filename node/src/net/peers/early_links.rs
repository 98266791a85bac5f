//! Links dialled before the manager starts: a node dials its parent and
//! siblings while its store opens, so the QUIC and TLS handshake (about
//! 3 ms of a 16 ms reconnect) overlaps sled's open instead of following it.
//! The link only carries the stream preface until the manager takes it;
//! no session runs and no byte of sync is sent before the store is open.

use super::{DialledPeer, PeerRole};
use crate::net::transport::{NodeEndpoint, PeerLink, TransportError};
use civsync_protocol::StationId;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

type Dial = JoinHandle<Result<PeerLink, TransportError>>;

/// Dials under way, by the station dialled.
#[derive(Default)]
pub struct EarlyLinks {
    dials: BTreeMap<StationId, Dial>,
}

impl EarlyLinks {
    /// Start dialling every peer in `dialled` but the fallback, which is
    /// dialled only once the parent has been down a while.
    pub fn dial(endpoint: &Arc<NodeEndpoint>, dialled: &[DialledPeer]) -> EarlyLinks {
        let dials = dialled
            .iter()
            .filter(|peer| peer.role != PeerRole::Fallback)
            .map(|peer| {
                let endpoint = endpoint.clone();
                let (address, station) = (peer.address, peer.station.clone());
                let dial =
                    tokio::spawn(async move { endpoint.connect(address, Some(&station)).await });
                (peer.station.clone(), dial)
            })
            .collect();
        EarlyLinks { dials }
    }

    /// The dial to `station` started early, if any; taken once.
    pub(super) fn take(&mut self, station: &StationId) -> Option<EarlyDial> {
        self.dials.remove(station).map(EarlyDial)
    }

    pub fn is_empty(&self) -> bool {
        self.dials.is_empty()
    }
}

/// One dial started before the manager.
pub(super) struct EarlyDial(Dial);

impl EarlyDial {
    /// The link, or why the dial failed (a dial task that panicked or was
    /// cancelled is a failed connect, retried with the usual backoff).
    pub(super) async fn link(self, peer: &DialledPeer) -> Result<PeerLink, TransportError> {
        self.0.await.unwrap_or_else(|error| {
            Err(TransportError::Connect {
                addr: peer.address,
                reason: format!("the early dial did not finish: {error}"),
            })
        })
    }
}
