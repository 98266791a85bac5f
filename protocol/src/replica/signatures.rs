//! The side table of change signatures, and the credentials that vouch for
//! them: signing local changes, attaching signatures to outgoing sync
//! messages, and checking them on the way in (see `sync::signing`).
//!
//! Stored beside the documents, never inside them:
//!
//! | key                                   | value                         |
//! |---------------------------------------|-------------------------------|
//! | `sig|<document id>|<change hash, 32>` | credential id (32) ‖ signature |
//! | `sigc|<document id>|<change hash, 32>` | the same, for a change a later change of its station depends on directly |
//! | `cred|<credential id, 32>`            | the credential's bytes        |
//! | `signs|<station>`                     | empty: a signed change of this station was taken |
//!
//! A signature is stored in the same batch as its change; credentials and
//! the `signs|` marks ride on the next flush (a credential kept without its
//! change costs nothing; a lost mark is set again by the next signed
//! change). Signatures are never deleted: compaction rewrites a document's
//! changes, not their hashes. A signature moves from `sig|` to `sigc|` once
//! a later change of its station, signed or vouched for, depends on it
//! directly: that change vouches for it, so a whole document goes with the
//! `sig|` entries alone, while a message of some changes still finds every
//! signature it needs.

use super::layout::{seal, unseal, CorruptValue};
use super::{chunks, Replica};
use crate::identity::actor::station_of;
use crate::identity::document_id::DocumentId;
use crate::identity::station::StationId;
use crate::storage::{Storage, StorageError, WriteBatch};
use crate::sync::authority::{check_signed_change, check_unsigned_change, AuthorityError, Side};
use crate::sync::host::ReceiveError;
use crate::sync::signing::{
    credential_id, ChangeSigner, ChangeVerifier, CredentialEntry, CredentialId, SignatureEntry,
    SignedSyncMessage, VerifiedWriter,
};
use automerge::{ActorId, ChangeHash};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

pub const SIGNATURE_PREFIX: &[u8] = b"sig|";
pub const COVERED_SIGNATURE_PREFIX: &[u8] = b"sigc|";
pub const CREDENTIAL_PREFIX: &[u8] = b"cred|";
pub const SIGNER_PREFIX: &[u8] = b"signs|";

/// How this replica signs its own changes and checks its peers'.
#[derive(Clone)]
pub struct Signing {
    /// `None`: this replica writes unsigned changes (a test, a tool).
    pub signer: Option<Arc<dyn ChangeSigner>>,
    pub verifier: Arc<dyn ChangeVerifier>,
}

/// The replica's signing state (in memory; what must last is stored).
#[derive(Default)]
pub(super) struct SignatureBook {
    pub(super) signing: Option<Signing>,
    /// Stations a signed change was taken from (`signs|`).
    pub(super) signers_seen: BTreeSet<StationId>,
    /// Credentials sent whole to each connected peer, so later messages
    /// name them by id; forgotten when the link ends or a document is
    /// refused (the peer may have dropped what we sent).
    pub(super) credentials_sent: BTreeMap<StationId, BTreeSet<CredentialId>>,
    /// Credentials this replica accepted, shared with its preparer.
    pub(super) accepted: Arc<AcceptedCredentials>,
    /// Changes a checked signature vouched for before they arrived.
    pub(super) vouched_ahead: VouchedAhead,
}

/// Most credentials [`AcceptedCredentials`] keeps: a county has ~700
/// offices. Past it, a message naming another credential by id has its
/// signatures checked on the replica's thread, as before preparing.
pub const ACCEPTED_CREDENTIALS_MAX: usize = 4096;

/// The credentials a replica accepted from its peers, by id, so that a
/// preparer on another thread can check the signatures of a message that
/// names them by id (a link sends each credential whole once, then its id).
/// An id is the hash of its bytes, so an entry cannot lie about which
/// credential it is; whether the credential is valid is still judged by
/// the replica.
#[derive(Default)]
pub struct AcceptedCredentials {
    by_id: Mutex<BTreeMap<CredentialId, Arc<Vec<u8>>>>,
}

impl AcceptedCredentials {
    fn accept(&self, id: CredentialId, credential: &Arc<Vec<u8>>) {
        let Ok(mut by_id) = self.by_id.lock() else {
            return;
        };
        if by_id.len() < ACCEPTED_CREDENTIALS_MAX {
            by_id.entry(id).or_insert_with(|| credential.clone());
        }
    }

    pub(super) fn get(&self, id: &CredentialId) -> Option<Arc<Vec<u8>>> {
        self.by_id.lock().ok()?.get(id).cloned()
    }
}

/// Signatures a preparer found to match, each under the credential it
/// named: `(change, credential id, signature)`, by change.
pub(super) type MatchedSignatures = BTreeMap<ChangeHash, (CredentialId, Vec<u8>)>;

/// A change received, as the authority rules need it.
#[derive(Clone)]
pub(super) struct Incoming {
    pub(super) hash: ChangeHash,
    pub(super) actor: ActorId,
    pub(super) deps: Vec<ChangeHash>,
}

/// What changes of their own station a set of roots reaches through
/// dependencies within one message.
struct Reach {
    /// Changes of the message reached from a root of their own station
    /// (a root only when another root reaches it).
    reached: BTreeSet<ChangeHash>,
    /// Dependencies the walk named that the message does not carry, with
    /// the station whose root named them: a change's hash covers its
    /// dependencies' hashes, so the root vouches for them too, whoever
    /// wrote them.
    beyond: BTreeSet<(ChangeHash, StationId)>,
}

/// Walk from each root through the dependencies carried in `changes`.
/// Each station's walk visits a change at most once: O(changes × stations
/// of the roots).
fn reach(changes: &[Incoming], roots: &BTreeMap<ChangeHash, StationId>) -> Reach {
    let by_hash: BTreeMap<ChangeHash, &Incoming> =
        changes.iter().map(|change| (change.hash, change)).collect();
    let mut reach = Reach {
        reached: BTreeSet::new(),
        beyond: BTreeSet::new(),
    };
    let mut visited: BTreeMap<&StationId, BTreeSet<ChangeHash>> = BTreeMap::new();
    for (root, station) in roots {
        let Some(root) = by_hash.get(root) else {
            continue;
        };
        let seen = visited.entry(station).or_default();
        let mut stack: Vec<ChangeHash> = root.deps.clone();
        while let Some(hash) = stack.pop() {
            if !seen.insert(hash) {
                continue;
            }
            let Some(change) = by_hash.get(&hash) else {
                reach.beyond.insert((hash, station.clone()));
                continue;
            };
            if station_of(&change.actor).as_ref() == Some(station) {
                reach.reached.insert(hash);
            }
            stack.extend(change.deps.iter().copied());
        }
    }
    reach
}

/// The changes of an outgoing message whose signature must go with it:
/// of the changes `signed` (a signature held), those no other signed
/// change of their own station reaches within the message. The receiver
/// vouches for the rest from the signatures sent (`judge_incoming`), so a
/// clerk's burst of 30 changes to one document goes with one signature,
/// not 30.
pub(super) fn signatures_needed(
    changes: &[Incoming],
    signed: &BTreeSet<ChangeHash>,
) -> BTreeSet<ChangeHash> {
    let roots: BTreeMap<ChangeHash, StationId> = changes
        .iter()
        .filter(|change| signed.contains(&change.hash))
        .filter_map(|change| Some((change.hash, station_of(&change.actor)?)))
        .collect();
    let reached = reach(changes, &roots).reached;
    signed
        .iter()
        .filter(|hash| !reached.contains(hash))
        .copied()
        .collect()
}

/// Most changes [`VouchedAhead`] remembers: only dependencies a message
/// lacked and the replica does not hold are noted (a Bloom-filter false
/// positive, about 1 change in 100), and each is needed for one round trip,
/// until the change comes; ~150 B an entry (kept in order and for look-up),
/// so at most ~2.5 MiB.
pub const VOUCHED_AHEAD_MAX: usize = 16_384;

/// Changes a checked signature vouched for before they arrived: a sender
/// left them out of the message whose signed change depends on them (its
/// Bloom filter said we held them), and they come alone, asked for by
/// hash, from a relay that holds no signature of their own (it was sent
/// only the chain's last one). Oldest first; past the bound the oldest are
/// forgotten, and such a change is then judged as unsigned, as before.
#[derive(Default)]
pub(super) struct VouchedAhead {
    oldest_first: VecDeque<(ChangeHash, StationId)>,
    noted: BTreeSet<(ChangeHash, StationId)>,
}

impl VouchedAhead {
    fn note(&mut self, change: ChangeHash, station: StationId) {
        if !self.noted.insert((change, station.clone())) {
            return;
        }
        self.oldest_first.push_back((change, station));
        if self.oldest_first.len() > VOUCHED_AHEAD_MAX {
            if let Some(oldest) = self.oldest_first.pop_front() {
                self.noted.remove(&oldest);
            }
        }
        debug_assert_eq!(self.oldest_first.len(), self.noted.len());
    }

    fn vouches(&self, change: ChangeHash, station: &StationId) -> bool {
        self.noted.contains(&(change, station.clone()))
    }
}

/// The checked signatures of one incoming message, by change hash.
#[derive(Default)]
pub(super) struct SignatureTable {
    entries: BTreeMap<ChangeHash, CheckedSignature>,
}

struct CheckedSignature {
    writer: Result<VerifiedWriter, String>,
    credential: Arc<Vec<u8>>,
    credential_id: CredentialId,
    signature: Vec<u8>,
    /// The preparer found this very signature to match under this very
    /// credential (`SignatureTable::note_matched`).
    matched_ahead: bool,
}

impl SignatureTable {
    /// Note which of this table's signatures a preparer already found to
    /// match, so the replica does not check them again. Only an entry the
    /// same as the one checked counts.
    pub(super) fn note_matched(&mut self, matched: &MatchedSignatures) {
        for (change, signed) in &mut self.entries {
            if let Some((credential_id, signature)) = matched.get(change) {
                signed.matched_ahead =
                    *credential_id == signed.credential_id && *signature == signed.signature;
            }
        }
    }
}

fn signature_key(document: &DocumentId, change: &ChangeHash) -> Vec<u8> {
    let mut key = signature_prefix(document);
    key.extend_from_slice(&change.0);
    key
}

fn signature_prefix(document: &DocumentId) -> Vec<u8> {
    prefixed(SIGNATURE_PREFIX, document)
}

fn covered_signature_key(document: &DocumentId, change: &ChangeHash) -> Vec<u8> {
    let mut key = prefixed(COVERED_SIGNATURE_PREFIX, document);
    key.extend_from_slice(&change.0);
    key
}

fn prefixed(prefix: &[u8], document: &DocumentId) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(document.to_string().as_bytes());
    key.push(b'|');
    key
}

/// Of `changes` (new in one batch, each signed or vouched for), those a
/// later one of the same station depends on directly: their signatures go
/// under `sigc|`.
pub(super) fn covered_within(changes: &[Incoming]) -> BTreeSet<ChangeHash> {
    let station_by_hash: BTreeMap<ChangeHash, Option<StationId>> = changes
        .iter()
        .map(|change| (change.hash, station_of(&change.actor)))
        .collect();
    let mut covered = BTreeSet::new();
    for change in changes {
        let Some(station) = station_of(&change.actor) else {
            continue;
        };
        for dep in &change.deps {
            if station_by_hash.get(dep) == Some(&Some(station.clone())) {
                covered.insert(*dep);
            }
        }
    }
    covered
}

fn credential_key(id: &CredentialId) -> Vec<u8> {
    let mut key = CREDENTIAL_PREFIX.to_vec();
    key.extend_from_slice(id);
    key
}

fn signer_key(station: &StationId) -> Vec<u8> {
    let mut key = SIGNER_PREFIX.to_vec();
    key.extend_from_slice(station.to_string().as_bytes());
    key
}

fn signature_value(credential: &CredentialId, signature: &[u8]) -> Vec<u8> {
    let mut value = credential.to_vec();
    value.extend_from_slice(signature);
    seal(&value)
}

impl<S: Storage> Replica<S> {
    /// Sign this replica's changes from now on and check its peers'. Stores
    /// the signer's credential and reads which stations were seen signing.
    pub fn set_signing(&mut self, signing: Signing) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        if let Some(signer) = &signing.signer {
            let credential = signer.credential();
            let key = credential_key(&credential_id(credential));
            // Kept by an earlier start: no write, and no flush to wait for.
            let kept = self.storage.get(&key)?;
            if kept.as_deref().and_then(|value| unseal(&key, value).ok()) != Some(credential) {
                batch.put(key, seal(credential));
            }
            self.signatures.signers_seen.insert(self.local.clone());
        }
        for (key, _) in self.storage.scan_prefix(SIGNER_PREFIX)? {
            if let Some(station) = std::str::from_utf8(&key[SIGNER_PREFIX.len()..])
                .ok()
                .and_then(|text| StationId::parse(text).ok())
            {
                self.signatures.signers_seen.insert(station);
            }
        }
        if !batch.is_empty() {
            self.storage.apply(batch)?;
            self.storage.flush()?;
        }
        self.signatures.signing = Some(signing);
        Ok(())
    }

    /// Does this replica sign its changes?
    pub fn signs(&self) -> bool {
        self.signatures
            .signing
            .as_ref()
            .is_some_and(|signing| signing.signer.is_some())
    }

    /// The signature entries of `changes`, made by this replica just now,
    /// for the batch that stores them. None without a signer.
    pub(super) fn sign_local(
        &self,
        document: &DocumentId,
        changes: &[ChangeHash],
        covered: &BTreeSet<ChangeHash>,
    ) -> WriteBatch {
        let mut batch = WriteBatch::new();
        let Some(signer) = self
            .signatures
            .signing
            .as_ref()
            .and_then(|signing| signing.signer.as_ref())
        else {
            return batch;
        };
        let id = credential_id(signer.credential());
        for change in changes {
            let signature = signer.sign(change);
            let key = if covered.contains(change) {
                covered_signature_key(document, change)
            } else {
                signature_key(document, change)
            };
            batch.put(key, signature_value(&id, &signature));
        }
        batch
    }

    /// The signature entries of a local commit's new changes `made`, each
    /// under `sigc|` when a later one depends on it directly, and the
    /// moves of the `sig|` entries they cover in `doc` (the document after
    /// the commit). Empty without a signer.
    pub(super) fn commit_signatures(
        &self,
        document: &DocumentId,
        made: &[Incoming],
        doc: &mut automerge::AutoCommit,
    ) -> Result<WriteBatch, StorageError> {
        if !self.signs() {
            return Ok(WriteBatch::new());
        }
        let (covered, moves) = self.covered_signatures(document, made, doc)?;
        let hashes: Vec<ChangeHash> = made.iter().map(|change| change.hash).collect();
        let mut batch = self.sign_local(document, &hashes, &covered);
        batch.extend(moves);
        Ok(batch)
    }

    /// The signatures a batch of new changes covers: of `changes` (each
    /// signed or vouched for), the ones a later one of the same station
    /// depends on directly (to store under `sigc|`), and the moves to
    /// `sigc|` of held changes' `sig|` entries on the same rule.
    /// `doc`: the document with `changes` applied, which tells the station
    /// of each change this replica holds.
    pub(super) fn covered_signatures(
        &self,
        document: &DocumentId,
        changes: &[Incoming],
        doc: &mut automerge::AutoCommit,
    ) -> Result<(BTreeSet<ChangeHash>, WriteBatch), StorageError> {
        let mut station_of_held = |hash: &ChangeHash| {
            doc.get_change_meta_by_hash(hash)
                .and_then(|meta| station_of(&meta.actor))
        };
        let covered = covered_within(changes);
        let new: BTreeSet<ChangeHash> = changes.iter().map(|change| change.hash).collect();
        let mut moves = WriteBatch::new();
        let mut moved = BTreeSet::new();
        for change in changes {
            let Some(station) = station_of(&change.actor) else {
                continue;
            };
            for dep in &change.deps {
                if new.contains(dep)
                    || moved.contains(dep)
                    || station_of_held(dep).as_ref() != Some(&station)
                {
                    continue;
                }
                let key = signature_key(document, dep);
                let Some(value) = self.storage.get(&key)? else {
                    continue;
                };
                let Ok(payload) = unseal(&key, &value) else {
                    continue; // damaged: left where it is, and named when sent
                };
                moves.delete(key);
                moves.put(covered_signature_key(document, dep), seal(payload));
                moved.insert(*dep);
            }
        }
        Ok((covered, moves))
    }

    /// The stored signature of a change, if any: (credential id, signature).
    fn stored_signature(
        &self,
        document: &DocumentId,
        change: &ChangeHash,
    ) -> Result<Option<(CredentialId, Vec<u8>)>, ReceiveError> {
        let read = |key: &Vec<u8>| {
            self.storage
                .get(key)
                .map_err(|error| Self::storage_refusal(document, error))
        };
        let mut key = signature_key(document, change);
        let mut value = read(&key)?;
        if value.is_none() {
            key = covered_signature_key(document, change);
            value = read(&key)?;
        }
        let Some(value) = value else {
            return Ok(None);
        };
        let payload =
            unseal(&key, &value).map_err(|error| Self::storage_refusal(document, error))?;
        if payload.len() <= 32 {
            return Err(Self::storage_refusal(
                document,
                CorruptValue::new(&key, "shorter than a credential id and a signature"),
            ));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&payload[..32]);
        Ok(Some((id, payload[32..].to_vec())))
    }

    fn stored_credential(&self, id: &CredentialId) -> Option<Vec<u8>> {
        let key = credential_key(id);
        let value = self.storage.get(&key).ok()??;
        unseal(&key, &value).ok().map(<[u8]>::to_vec)
    }

    /// Wrap Automerge's message for `peer` with the signatures of the
    /// changes it carries.
    pub(super) fn signed_envelope(
        &mut self,
        peer: &StationId,
        document: &DocumentId,
        message: &automerge::sync::Message,
    ) -> Result<Vec<u8>, String> {
        let mut hashes: Vec<ChangeHash> = Vec::new();
        let mut carried: Vec<Incoming> = Vec::new();
        for chunk in message.changes.iter() {
            if chunks::document_then_changes(chunk).is_some() {
                // A whole document (with the increments stored after its
                // snapshot): every change held, so every signature held,
                // without loading it again.
                hashes = self
                    .storage
                    .scan_prefix(&signature_prefix(document))
                    .map_err(|error| error.to_string())?
                    .into_iter()
                    .filter_map(|(key, _)| {
                        let raw: [u8; 32] =
                            key.get(key.len().checked_sub(32)?..)?.try_into().ok()?;
                        Some(ChangeHash(raw))
                    })
                    .collect();
                carried.clear();
                break;
            }
            carried.extend(
                chunks::changes_in(chunk, usize::MAX)?
                    .iter()
                    .map(|change| Incoming {
                        hash: change.hash(),
                        actor: change.actor_id().clone(),
                        deps: change.deps().to_vec(),
                    }),
            );
        }
        if carried.is_empty() {
            return self.envelope_of(Some(peer), document, hashes, message.clone().encode());
        }
        let mut held = self.held_signatures(document, carried.iter().map(|change| change.hash))?;
        // A signature whose credential is lost goes unsent (`envelope_with`),
        // so it must not vouch for the ones under it either.
        let mut credential_held: BTreeMap<CredentialId, bool> = BTreeMap::new();
        let mut signed = BTreeSet::new();
        for (hash, id, _) in &held {
            let sendable = *credential_held.entry(*id).or_insert_with(|| {
                self.credential_sent(Some(peer), id) || self.stored_credential(id).is_some()
            });
            if sendable {
                signed.insert(*hash);
            }
        }
        let needed = signatures_needed(&carried, &signed);
        held.retain(|(hash, _, _)| needed.contains(hash));
        self.envelope_with(Some(peer), document, held, message.clone().encode())
    }

    /// The stored signatures of `hashes` that are held: (change,
    /// credential id, signature).
    fn held_signatures(
        &self,
        document: &DocumentId,
        hashes: impl IntoIterator<Item = ChangeHash>,
    ) -> Result<Vec<(ChangeHash, CredentialId, Vec<u8>)>, String> {
        let mut held = Vec::new();
        for hash in hashes {
            if let Some((id, signature)) = self
                .stored_signature(document, &hash)
                .map_err(|error| error.to_string())?
            {
                held.push((hash, id, signature));
            }
        }
        Ok(held)
    }

    /// Was the credential `id` sent whole on the link to `peer` already?
    fn credential_sent(&self, peer: Option<&StationId>, id: &CredentialId) -> bool {
        peer.is_some_and(|peer| {
            self.signatures
                .credentials_sent
                .get(peer)
                .is_some_and(|sent| sent.contains(id))
        })
    }

    /// A [`SignedSyncMessage`] around `payload` with the signatures held of
    /// `hashes`. To a linked `peer`, a credential already sent on the link
    /// is named by id; without one (a bundle) every credential goes whole.
    pub(super) fn envelope_of(
        &mut self,
        peer: Option<&StationId>,
        document: &DocumentId,
        hashes: Vec<ChangeHash>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let held = self.held_signatures(document, hashes)?;
        self.envelope_with(peer, document, held, payload)
    }

    /// [`Replica::envelope_of`] with the signatures read already.
    fn envelope_with(
        &mut self,
        peer: Option<&StationId>,
        document: &DocumentId,
        held: Vec<(ChangeHash, CredentialId, Vec<u8>)>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let mut credentials: Vec<CredentialEntry> = Vec::new();
        let mut credential_index: BTreeMap<CredentialId, u16> = BTreeMap::new();
        let mut signatures = Vec::new();
        for (hash, id, signature) in held {
            let index = match credential_index.get(&id) {
                Some(index) => *index,
                None => {
                    let entry = if self.credential_sent(peer, &id) {
                        CredentialEntry::Known(id)
                    } else {
                        let Some(bytes) = self.stored_credential(&id) else {
                            // A signature whose credential we lost: sent
                            // unsigned, and judged as such.
                            tracing::warn!(document = %document, "a signature's credential is not held; the change goes unsigned");
                            continue;
                        };
                        if let Some(peer) = peer {
                            self.signatures
                                .credentials_sent
                                .entry(peer.clone())
                                .or_default()
                                .insert(id);
                        }
                        CredentialEntry::Whole(bytes)
                    };
                    let index = u16::try_from(credentials.len())
                        .map_err(|_| "too many credentials in one message".to_string())?;
                    credentials.push(entry);
                    credential_index.insert(id, index);
                    index
                }
            };
            signatures.push(SignatureEntry {
                change: hash.0,
                credential: index,
                signature,
            });
        }
        Ok(SignedSyncMessage {
            automerge: payload,
            credentials,
            signatures,
        }
        .encode())
    }

    /// Check the credentials of an incoming envelope and index its
    /// signatures by change. A credential refused makes its signatures
    /// refusals (the changes they sign are refused with its reason); a
    /// credential named by id that this replica does not hold is a
    /// malformed message (the peer thinks it sent it: it will resend it on
    /// the next link).
    pub(super) fn check_envelope(
        &mut self,
        document: &DocumentId,
        envelope: &SignedSyncMessage,
    ) -> Result<SignatureTable, ReceiveError> {
        let verifier = match &self.signatures.signing {
            Some(signing) => signing.verifier.clone(),
            // No verifier: every change is judged as unsigned.
            None => return Ok(SignatureTable::default()),
        };
        let mut resolved = Vec::with_capacity(envelope.credentials.len());
        let mut keep = WriteBatch::new();
        for entry in &envelope.credentials {
            let (bytes, id) = match entry {
                CredentialEntry::Whole(bytes) => (bytes.clone(), credential_id(bytes)),
                CredentialEntry::Known(id) => match self.stored_credential(id) {
                    Some(bytes) => (bytes, *id),
                    None => {
                        return Err(Self::malformed(
                            document,
                            "a signature names a credential this node does not hold",
                        ))
                    }
                },
            };
            let writer = verifier.check_credential(&bytes, self.now_ms);
            if writer.is_ok() && matches!(entry, CredentialEntry::Whole(_)) {
                keep.put(credential_key(&id), seal(&bytes));
            }
            let bytes = Arc::new(bytes);
            if writer.is_ok() {
                self.signatures.accepted.accept(id, &bytes);
            }
            resolved.push((bytes, id, writer));
        }
        if !keep.is_empty() {
            if let Err(error) = self.storage.apply(keep) {
                tracing::warn!(%error, "could not keep a peer's credential");
            } else {
                self.unflushed = true;
            }
        }
        let mut table = SignatureTable::default();
        for entry in &envelope.signatures {
            let (credential, id, writer) = &resolved[usize::from(entry.credential)];
            table.entries.insert(
                ChangeHash(entry.change),
                CheckedSignature {
                    writer: writer.clone(),
                    credential: credential.clone(),
                    credential_id: *id,
                    signature: entry.signature.clone(),
                    matched_ahead: false,
                },
            );
        }
        Ok(table)
    }

    /// Rules 1–3 (`authority`) for the changes of one message this replica
    /// does not hold. A signed change is judged by its signature. An
    /// unsigned change is **vouched for** by a signed change of its own
    /// station that depends on it in this message (a change's hash covers
    /// its dependencies' hashes, so signing a change signs the history
    /// under it: a sender sends only the last signature of a station's
    /// chain, and a station that upgraded vouches for its own older,
    /// unsigned changes), or by one that named it before it arrived
    /// ([`VouchedAhead`]), and is then judged as signed; any other unsigned
    /// change is judged by the rules for unsigned changes. A signed
    /// change's station is noted as signing. `held`: does this replica
    /// hold a change (dependencies it holds need no vouching ahead).
    pub(super) fn judge_incoming(
        &mut self,
        document: &DocumentId,
        changes: &[Incoming],
        peer: &StationId,
        table: &SignatureTable,
        held: &mut dyn FnMut(&ChangeHash) -> bool,
    ) -> Result<BTreeSet<ChangeHash>, AuthorityError> {
        let mut signers: BTreeMap<ChangeHash, StationId> = BTreeMap::new();
        for change in changes {
            if let Some(signed) = table.entries.get(&change.hash) {
                let writer = self.check_signature(&change.hash, &change.actor, signed)?;
                signers.insert(change.hash, writer);
            }
        }
        let mut roots = signers.clone();
        for change in changes {
            if let Some(station) = station_of(&change.actor) {
                if !signers.contains_key(&change.hash)
                    && self.signatures.vouched_ahead.vouches(change.hash, &station)
                {
                    roots.insert(change.hash, station);
                }
            }
        }
        let Reach { reached, beyond } = reach(changes, &roots);
        let vouched: BTreeSet<ChangeHash> = roots
            .keys()
            .chain(&reached)
            .filter(|hash| !signers.contains_key(hash))
            .copied()
            .collect();
        let peer_side = self.peer_side(peer);
        let local_side = Side::new(&self.local, self.tier);
        for change in changes {
            if let Some(writer) = signers.get(&change.hash) {
                check_signed_change(document, writer, peer_side, local_side)?;
            } else if vouched.contains(&change.hash) {
                let writer =
                    station_of(&change.actor).expect("vouched only for changes of a station");
                check_signed_change(document, &writer, peer_side, local_side)?;
            } else if crate::faults::armed(crate::faults::Fault::TrustUnsignedRelays) {
                crate::sync::authority::check_change(
                    document,
                    &change.actor,
                    peer_side,
                    local_side,
                )?;
            } else {
                let seen = &self.signatures.signers_seen;
                check_unsigned_change(
                    document,
                    &change.actor,
                    peer_side,
                    local_side,
                    self.config.unsigned_changes,
                    |writer| seen.contains(writer),
                )?;
            }
        }
        for (change, station) in beyond {
            if !held(&change) {
                self.signatures.vouched_ahead.note(change, station);
            }
        }
        let vouching: BTreeSet<ChangeHash> = signers.keys().chain(&vouched).copied().collect();
        let mut marks = WriteBatch::new();
        for writer in signers.into_values() {
            if !self.signatures.signers_seen.contains(&writer) {
                marks.put(signer_key(&writer), Vec::new());
                self.signatures.signers_seen.insert(writer);
            }
        }
        if !marks.is_empty() && self.storage.apply(marks).is_ok() {
            self.unflushed = true;
        }
        Ok(vouching)
    }

    /// The station a signed change proves, or why it proves nothing.
    fn check_signature(
        &self,
        hash: &ChangeHash,
        actor: &ActorId,
        signed: &CheckedSignature,
    ) -> Result<StationId, AuthorityError> {
        let writer = station_of(actor).ok_or_else(|| AuthorityError::UnknownActor {
            actor: actor.to_hex_string(),
        })?;
        let certified = signed
            .writer
            .as_ref()
            .map_err(|reason| AuthorityError::BadCredential {
                writer: writer.to_string(),
                reason: reason.clone(),
            })?;
        if certified.station != writer {
            return Err(AuthorityError::SignerIsNotWriter {
                change: hash.to_string(),
                signer: certified.station.clone(),
                writer,
            });
        }
        if signed.matched_ahead {
            return Ok(writer);
        }
        let verifier = self
            .signatures
            .signing
            .as_ref()
            .map(|signing| signing.verifier.clone())
            .expect("a table with entries was checked by a verifier");
        if !verifier.signature_matches(&signed.credential, hash, &signed.signature) {
            return Err(AuthorityError::BadSignature {
                change: hash.to_string(),
                writer,
            });
        }
        Ok(writer)
    }

    /// The signature entries of received changes, for the batch that
    /// stores them (only changes the table holds a signature of).
    pub(super) fn received_signatures(
        document: &DocumentId,
        changes: impl IntoIterator<Item = ChangeHash>,
        table: &SignatureTable,
        covered: &BTreeSet<ChangeHash>,
    ) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for change in changes {
            if let Some(signed) = table.entries.get(&change) {
                let key = if covered.contains(&change) {
                    covered_signature_key(document, &change)
                } else {
                    signature_key(document, &change)
                };
                batch.put(
                    key,
                    signature_value(&signed.credential_id, &signed.signature),
                );
            }
        }
        batch
    }

    /// Forget which credentials `peer` was sent (its link ended, or it
    /// refused something and may not have kept them).
    pub(super) fn forget_credentials_sent(&mut self, peer: &StationId) {
        self.signatures.credentials_sent.remove(peer);
    }

    /// Keep a credential checked elsewhere (a bundle sender's certificate),
    /// so bundles can be sealed back to its holder. Rides on the next flush.
    pub fn keep_credential(&mut self, credential: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.put(credential_key(&credential_id(credential)), seal(credential));
        self.storage.apply(batch)?;
        self.unflushed = true;
        Ok(())
    }

    /// Every credential this replica keeps (its own, and its writers' and
    /// bundle senders'): where a bundle's recipient certificate is found.
    pub fn credentials(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        Ok(self
            .storage
            .scan_prefix(CREDENTIAL_PREFIX)?
            .into_iter()
            .filter_map(|(key, value)| unseal(&key, &value).ok().map(<[u8]>::to_vec))
            .collect())
    }

    /// How many changes of `document` this replica holds a signature of.
    pub fn signature_count(&self, document: &DocumentId) -> Result<usize, StorageError> {
        let covered = prefixed(COVERED_SIGNATURE_PREFIX, document);
        Ok(self.storage.scan_prefix(&signature_prefix(document))?.len()
            + self.storage.scan_prefix(&covered)?.len())
    }

    /// How many of those go with `document` sent whole (`sig|`).
    pub fn uncovered_signature_count(&self, document: &DocumentId) -> Result<usize, StorageError> {
        Ok(self.storage.scan_prefix(&signature_prefix(document))?.len())
    }
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod tests;
