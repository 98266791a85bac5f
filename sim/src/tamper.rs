//! The injected bug `apply-unauthorized`: a forged change written straight
//! into the county's store, bypassing the receive path's authority check,
//! as a buggy import or repair tool would. The authority checker must find
//! it. Only the simulator does this; production code has no such path.

use automerge::transaction::Transactable;
use automerge::ROOT;
use civsync_protocol::identity::actor::actor_for;
use civsync_protocol::replica::layout::{increment_key, index_key, seal};
use civsync_protocol::replica::Replica;
use civsync_protocol::storage::{MemoryStorage, Storage, WriteBatch};
use civsync_protocol::{DocumentId, StationId};

/// The reopened replica and what was done; or, on failure, the replica if it
/// is still usable and the reason.
type Tampered =
    Result<(Box<Replica<MemoryStorage>>, String), (Option<Box<Replica<MemoryStorage>>>, String)>;

/// Append a change by `forger`'s actor to `document` in the replica's store
/// and reopen the replica on it.
pub fn inject_forged_change(
    replica: Replica<MemoryStorage>,
    document: &DocumentId,
    forger: &StationId,
    incarnation: u64,
) -> Tampered {
    let Some(entry) = replica.index_entry(document).cloned() else {
        return Err((
            Some(Box::new(replica)),
            format!("{document} is not held yet"),
        ));
    };
    let mut replica = replica;
    let copy = match replica.with_document(document, |doc| doc.clone()) {
        Ok(Some(copy)) => copy,
        other => {
            return Err((
                Some(Box::new(replica)),
                format!("{document} does not load: {other:?}"),
            ))
        }
    };
    let mut forged = copy;
    let before = forged.get_heads();
    forged.set_actor(actor_for(forger, 0xf0f0));
    if let Err(error) = forged.put(ROOT, "forged_by_tamper", forger.as_str()) {
        return Err((Some(Box::new(replica)), error.to_string()));
    }
    forged.commit();
    let increment = forged.save_after(&before);
    let local = replica.local().clone();
    let config = replica.config().clone();
    let mut storage = replica.into_storage();
    let sealed = seal(&increment);
    let mut updated = entry.clone();
    updated.next_increment += 1;
    updated.increments_bytes += sealed.len() as u64;
    updated.change_count += 1;
    updated.set_heads(forged.get_heads());
    let mut batch = WriteBatch::new();
    batch.put(increment_key(document, entry.next_increment), sealed);
    batch.put(index_key(document), seal(&updated.encode()));
    if let Err(error) = storage.apply(batch).and_then(|_| storage.flush()) {
        return Err((None, error.to_string()));
    }
    match Replica::open(storage, local, incarnation, config) {
        Ok(replica) => Ok((
            Box::new(replica),
            format!("change by {forger} written into {document} at the county"),
        )),
        Err(error) => Err((None, error.to_string())),
    }
}
