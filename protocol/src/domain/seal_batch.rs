//! Many seals under one HPKE key agreement.
//!
//! A roster import seals every row's ID number (and phone) to the county's
//! public key. An HPKE single-shot seal per value costs two X25519
//! multiplications, about 0.1–0.16 ms on an office PC, and that was most
//! of an import's time (150 rows: 24 of 26 ms). A batch does the key
//! agreement once (RFC 9180 `SetupBaseS`), takes a ChaCha20-Poly1305 key
//! from it by secret export (RFC 9180 §5.3), and seals each value under
//! that key with its index in the batch as the nonce.
//!
//! What stays true: a seal opens only with the county's private key, and
//! confirms nothing to whoever holds the public key (the batch key comes
//! from a fresh ephemeral secret, dropped with the batch). What a batch
//! gives away: its seals carry the same encapsulated key, so one can tell
//! they were written by one import — which the roster they sit in already
//! says. A nonce is never reused under a key: indices only count up, a
//! batch seals no more than `u32::MAX` values, and every batch draws a
//! fresh key. The value's purpose (ID number, phone) is the associated
//! data, so a phone seal never opens as an ID number.
//!
//! Bytes of a seal: encapsulated key (32) ‖ index (4, big-endian) ‖
//! ciphertext ‖ tag (16).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use seal_rng::ChaCha20Rng;

type SealKem = hpke::kem::X25519HkdfSha256;
type SealKdf = hpke::kdf::HkdfSha256;
type SealAead = hpke::aead::ChaCha20Poly1305;

/// HPKE's `info` for a batch's key agreement.
const BATCH_INFO: &[u8] = b"civsync seal batch v2";
/// What the batch key is exported under.
const EXPORT_CONTEXT: &[u8] = b"civsync seal batch key v2";
const ENCAPPED_BYTES: usize = 32;
const INDEX_BYTES: usize = 4;
const TAG_BYTES: usize = 16;
/// Bytes a seal adds around its value.
pub const OVERHEAD_BYTES: usize = ENCAPPED_BYTES + INDEX_BYTES + TAG_BYTES;

/// One key agreement with one recipient, and the seals made under it.
pub struct SealBatch {
    encapped: [u8; ENCAPPED_BYTES],
    cipher: ChaCha20Poly1305,
    next_index: u32,
}

impl SealBatch {
    /// A fresh ephemeral key agreed with the X25519 public key `public`
    /// (checked when it was read), drawn from `rng`.
    pub fn start(public: &[u8; 32], rng: &mut ChaCha20Rng) -> SealBatch {
        let public = <SealKem as hpke::Kem>::PublicKey::from_bytes(public)
            .expect("checked when the key was read");
        let (encapped, context) = hpke::setup_sender::<SealAead, SealKdf, SealKem, _>(
            &OpModeS::Base,
            &public,
            BATCH_INFO,
            rng,
        )
        .expect("a key agreement with a valid X25519 key cannot fail");
        let mut key = [0u8; 32];
        context
            .export(EXPORT_CONTEXT, &mut key)
            .expect("32 bytes is well within HKDF-SHA256's export length");
        let mut encapped_bytes = [0u8; ENCAPPED_BYTES];
        encapped_bytes.copy_from_slice(&encapped.to_bytes());
        SealBatch {
            encapped: encapped_bytes,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            next_index: 0,
        }
    }

    /// The seal of `clear` for `purpose`, or `None` once the batch has
    /// used every index (start another).
    pub fn seal(&mut self, purpose: &[u8], clear: &[u8]) -> Option<Vec<u8>> {
        let index = self.next_index;
        self.next_index = index.checked_add(1)?;
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce(index),
                Payload {
                    msg: clear,
                    aad: purpose,
                },
            )
            .expect("ChaCha20-Poly1305 seals any value shorter than 256 GiB");
        let mut out = Vec::with_capacity(OVERHEAD_BYTES + clear.len());
        out.extend_from_slice(&self.encapped);
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&ciphertext);
        debug_assert_eq!(out.len(), OVERHEAD_BYTES + clear.len());
        Some(out)
    }
}

/// The value of a seal made by [`SealBatch::seal`] for `purpose`, opened
/// with the X25519 private key `private`; `None` when it was sealed to
/// another key or for another purpose, or altered, or too short.
pub fn open(private: &[u8; 32], purpose: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD_BYTES {
        return None;
    }
    let (encapped, rest) = sealed.split_at(ENCAPPED_BYTES);
    let (index, ciphertext) = rest.split_at(INDEX_BYTES);
    let encapped = <SealKem as hpke::Kem>::EncappedKey::from_bytes(encapped).ok()?;
    let private = <SealKem as hpke::Kem>::PrivateKey::from_bytes(private).ok()?;
    let context = hpke::setup_receiver::<SealAead, SealKdf, SealKem>(
        &OpModeR::Base,
        &private,
        &encapped,
        BATCH_INFO,
    )
    .ok()?;
    let mut key = [0u8; 32];
    context.export(EXPORT_CONTEXT, &mut key).ok()?;
    let index = u32::from_be_bytes(index.try_into().ok()?);
    ChaCha20Poly1305::new(Key::from_slice(&key))
        .decrypt(
            &nonce(index),
            Payload {
                msg: ciphertext,
                aad: purpose,
            },
        )
        .ok()
}

/// The 96-bit nonce of the value at `index`: unique under a batch key.
fn nonce(index: u32) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[8..].copy_from_slice(&index.to_be_bytes());
    *Nonce::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pii::CountyOpenKey;
    use seal_rng::rand_core::SeedableRng;

    fn keys(seed: u8) -> ([u8; 32], [u8; 32]) {
        let county = CountyOpenKey::generate([seed; 32]);
        (county.seal_key().to_bytes(), *county.secret_bytes())
    }

    #[test]
    fn every_seal_of_a_batch_opens_alone_and_only_for_its_purpose_and_key() {
        let (public, private) = keys(1);
        let (_, other_private) = keys(2);
        let mut batch = SealBatch::start(&public, &mut ChaCha20Rng::from_seed([5; 32]));
        let sealed: Vec<Vec<u8>> = (0..5u8)
            .map(|i| batch.seal(b"id", &[b'0' + i; 18]).unwrap())
            .collect();
        // Opened out of order, each on its own: no state is carried.
        for i in [3usize, 0, 4, 1, 2] {
            assert_eq!(
                open(&private, b"id", &sealed[i]).unwrap(),
                vec![b'0' + i as u8; 18]
            );
            assert_eq!(open(&private, b"phone", &sealed[i]), None, "purpose");
            assert_eq!(open(&other_private, b"id", &sealed[i]), None, "key");
        }
        assert!(sealed.iter().all(|s| s[..32] == sealed[0][..32]));
        for (i, s) in sealed.iter().enumerate() {
            assert_eq!(s[32..36], (i as u32).to_be_bytes(), "a nonce each");
        }
        assert_ne!(sealed[0][36..], sealed[1][36..]);
        // Every byte matters: the key, the index, the ciphertext, the tag.
        for at in [0, 33, 35, 40, sealed[2].len() - 1] {
            let mut altered = sealed[2].clone();
            altered[at] ^= 1;
            assert_eq!(open(&private, b"id", &altered), None, "byte {at}");
        }
        assert_eq!(
            open(&private, b"id", &sealed[2][..OVERHEAD_BYTES - 1]),
            None
        );
    }

    #[test]
    fn a_batch_never_reuses_an_index_and_stops_at_the_last() {
        let (public, private) = keys(1);
        let mut batch = SealBatch::start(&public, &mut ChaCha20Rng::from_seed([5; 32]));
        batch.next_index = u32::MAX - 1;
        let last = batch.seal(b"id", b"x").unwrap();
        assert_eq!(last[32..36], (u32::MAX - 1).to_be_bytes());
        assert_eq!(open(&private, b"id", &last).unwrap(), b"x");
        assert_eq!(batch.seal(b"id", b"y"), None);
        assert_eq!(batch.seal(b"id", b"y"), None);
    }

    #[test]
    fn two_batches_agree_on_different_keys() {
        let (public, _) = keys(1);
        let mut rng = ChaCha20Rng::from_seed([5; 32]);
        let a = SealBatch::start(&public, &mut rng)
            .seal(b"id", b"x")
            .unwrap();
        let b = SealBatch::start(&public, &mut rng)
            .seal(b"id", b"x")
            .unwrap();
        assert_ne!(a[..32], b[..32]);
        assert_ne!(a[36..], b[36..]);
    }
}
