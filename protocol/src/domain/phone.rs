//! Phone numbers: readable where someone must call the volunteer — the home
//! station, and the county — and masked at every office in between.
//!
//! A roster travels from the village to its township and the county, and a
//! township PC sits in an office open to many people. What the township
//! needs of a phone is to tell two volunteers apart and to see that one is
//! on file; it dispatches orders to stations, not to people. So a roster
//! written since phones were sealed keeps a phone only as
//!
//! - a masked form (`138****5678`), shown everywhere;
//! - a seal to the county's ID key (the same HPKE scheme as ID numbers, with
//!   its own `info`, so a phone seal never opens as an ID number): the county
//!   reads every phone of its volunteers, and a village whose store is lost
//!   gets them back from the county, never from nobody;
//! - a seal to the home station's own phone key, an X25519 pair that never
//!   leaves that station's PC (`pki/phone.key`): the clerk who registered
//!   the volunteer reads the number. When another office registers a
//!   volunteer for a station, it cannot seal to that station's key, and the
//!   home station sees the masked form until it corrects the record.
//!
//! Rosters written before hold the phone in clear (`Volunteer::phone`); they
//! stay readable, and a correction seals them.

use crate::domain::seal_batch::{self, SealBatch};
use hpke::{Deserializable, OpModeR};
use seal_rng::ChaCha20Rng;
use serde::{Deserialize, Serialize};

type SealKem = hpke::kem::X25519HkdfSha256;
type SealKdf = hpke::kdf::HkdfSha256;
type SealAead = hpke::aead::ChaCha20Poly1305;

/// What a phone seal starts with: the scheme, so a later one can be told
/// apart. Seals share a key agreement within an import (`seal_batch`).
pub const PHONE_SEALED_PREFIX: &str = "phone2:";
/// A phone seal written before batches (one HPKE single-shot seal each).
/// Still opened; never written.
pub const SINGLE_PHONE_SEALED_PREFIX: &str = "phone1:";
/// Binds a seal to phones, apart from ID numbers: HPKE's `info` of a
/// single-shot seal, the associated data of a batch seal.
const PHONE_SEAL_INFO: &[u8] = b"civsync phone number v1";
/// Longest phone `model::phone` accepts, in digits.
pub const PHONE_DIGITS_MAX: usize = 15;
/// What a seal adds around the digits (`seal_batch`).
pub const SEAL_OVERHEAD_BYTES: usize = seal_batch::OVERHEAD_BYTES;
/// Encapsulated key (32) + tag (16), around the digits of a single seal.
const SINGLE_SEAL_OVERHEAD_BYTES: usize = 32 + 16;

/// A phone as a roster written since sealing holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneSeals {
    /// `138****5678`: what every holder may show.
    #[serde(default)]
    pub masked: String,
    /// Sealed to the county's ID key.
    #[serde(default)]
    pub county: String,
    /// Sealed to the home station's phone key; empty when another office
    /// wrote the record.
    #[serde(default)]
    pub home: String,
}

impl PhoneSeals {
    pub fn is_empty(&self) -> bool {
        self.masked.is_empty() && self.county.is_empty() && self.home.is_empty()
    }
}

/// `13812345678` → `138****5678`; shorter numbers keep only their last four
/// digits. The masked form is as long as the number.
pub fn mask(digits: &str) -> String {
    let count = digits.chars().count();
    let kept_front = if count >= 11 { 3 } else { 0 };
    let kept_back = 4.min(count);
    digits
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i < kept_front || i >= count - kept_back {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// Seal validated phone digits to the X25519 public key `public` (checked
/// when it was read: `pii::CountySealKey`) on their own, drawing the
/// ephemeral key from `rng`.
pub fn seal(public: &[u8; 32], digits: &str, rng: &mut ChaCha20Rng) -> String {
    seal_in(&mut SealBatch::start(public, rng), digits).expect("a fresh batch has every index left")
}

/// Seal validated phone digits in an import's `batch`; `None` when the
/// batch is used up.
pub(crate) fn seal_in(batch: &mut SealBatch, digits: &str) -> Option<String> {
    debug_assert!(digits.len() <= PHONE_DIGITS_MAX && digits.bytes().all(|b| b.is_ascii_digit()));
    let sealed = batch.seal(PHONE_SEAL_INFO, digits.as_bytes())?;
    Some(format!("{PHONE_SEALED_PREFIX}{}", hex(&sealed)))
}

/// Why a phone seal did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneSealError {
    #[error("a phone seal is not {PHONE_SEALED_PREFIX} followed by hex bytes of a sealed phone")]
    Shape,
    #[error("the phone seal does not open with this key (sealed to another key, or altered)")]
    WrongKey,
    #[error("the phone seal opens to something that is not phone digits")]
    NotDigits,
}

/// Open a phone seal to the X25519 private key `private` (checked when it
/// was made or read: `pii::CountyOpenKey::open_phone`), made in a batch or
/// (before batches) on its own.
pub fn open(private: &[u8; 32], sealed: &str) -> Result<String, PhoneSealError> {
    let clear = if let Some(hex) = sealed.strip_prefix(PHONE_SEALED_PREFIX) {
        let bytes = from_hex(hex)
            .filter(|b| {
                (SEAL_OVERHEAD_BYTES..=SEAL_OVERHEAD_BYTES + PHONE_DIGITS_MAX).contains(&b.len())
            })
            .ok_or(PhoneSealError::Shape)?;
        seal_batch::open(private, PHONE_SEAL_INFO, &bytes).ok_or(PhoneSealError::WrongKey)?
    } else {
        open_single(private, sealed)?
    };
    let digits = String::from_utf8(clear).map_err(|_| PhoneSealError::NotDigits)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneSealError::NotDigits);
    }
    Ok(digits)
}

fn open_single(private: &[u8; 32], sealed: &str) -> Result<Vec<u8>, PhoneSealError> {
    let bytes = sealed
        .strip_prefix(SINGLE_PHONE_SEALED_PREFIX)
        .and_then(from_hex)
        .filter(|b| {
            (SINGLE_SEAL_OVERHEAD_BYTES..=SINGLE_SEAL_OVERHEAD_BYTES + PHONE_DIGITS_MAX)
                .contains(&b.len())
        })
        .ok_or(PhoneSealError::Shape)?;
    let encapped = <SealKem as hpke::Kem>::EncappedKey::from_bytes(&bytes[..32])
        .map_err(|_| PhoneSealError::Shape)?;
    let private = <SealKem as hpke::Kem>::PrivateKey::from_bytes(private)
        .expect("checked when the key was made or read");
    hpke::single_shot_open::<SealAead, SealKdf, SealKem>(
        &OpModeR::Base,
        &private,
        &encapped,
        PHONE_SEAL_INFO,
        &bytes[32..],
        &[],
    )
    .map_err(|_| PhoneSealError::WrongKey)
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pii::CountyOpenKey;
    use seal_rng::rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([3; 32])
    }

    #[test]
    fn masks_keep_the_operator_prefix_and_last_four_digits_only() {
        assert_eq!(mask("13812345678"), "138****5678");
        assert_eq!(mask("01012345678"), "010****5678");
        assert_eq!(mask("6543210"), "***3210");
        assert_eq!(mask("861381234567899"), "861********7899");
        assert_eq!(mask("123"), "123");
    }

    #[test]
    fn a_seal_opens_only_with_its_key_and_never_as_an_id_number() {
        let county = CountyOpenKey::generate([1; 32]);
        let other = CountyOpenKey::generate([2; 32]);
        let public = county.seal_key().to_bytes();
        let sealed = seal(&public, "13812345678", &mut rng());
        assert!(sealed.starts_with(PHONE_SEALED_PREFIX));
        assert!(!sealed.contains("13812345678"));
        assert_eq!(county.open_phone(&sealed).unwrap(), "13812345678");
        assert_eq!(other.open_phone(&sealed), Err(PhoneSealError::WrongKey));
        assert!(county.open(&sealed).is_err(), "a phone seal is no ID seal");
        let mut altered = sealed.clone();
        altered.replace_range(altered.len() - 2.., "00");
        assert_eq!(county.open_phone(&altered), Err(PhoneSealError::WrongKey));
        assert_eq!(county.open_phone("phone1:zz"), Err(PhoneSealError::Shape));
        let two = seal(&public, "13812345678", &mut rng());
        let mut again = rng();
        let _ = seal(&public, "1", &mut again);
        let three = seal(&public, "13812345678", &mut again);
        assert_eq!(sealed, two, "deterministic for one rng state");
        assert_ne!(sealed, three, "randomised across draws");
    }

    #[test]
    fn phone_seals_written_before_batches_still_open() {
        use hpke::{OpModeS, Serializable};
        let county = CountyOpenKey::generate([1; 32]);
        let public =
            <SealKem as hpke::Kem>::PublicKey::from_bytes(&county.seal_key().to_bytes()).unwrap();
        let (encapped, ciphertext) = hpke::single_shot_seal::<SealAead, SealKdf, SealKem, _>(
            &OpModeS::Base,
            &public,
            PHONE_SEAL_INFO,
            b"13812345678",
            &[],
            &mut rng(),
        )
        .unwrap();
        let mut bytes = encapped.to_bytes().to_vec();
        bytes.extend_from_slice(&ciphertext);
        let sealed = format!("{SINGLE_PHONE_SEALED_PREFIX}{}", hex(&bytes));
        assert_eq!(county.open_phone(&sealed).unwrap(), "13812345678");
        let other = CountyOpenKey::generate([2; 32]);
        assert_eq!(other.open_phone(&sealed), Err(PhoneSealError::WrongKey));
    }
}
