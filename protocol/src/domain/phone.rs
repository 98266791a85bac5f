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

use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use seal_rng::ChaCha20Rng;
use serde::{Deserialize, Serialize};

type SealKem = hpke::kem::X25519HkdfSha256;
type SealKdf = hpke::kdf::HkdfSha256;
type SealAead = hpke::aead::ChaCha20Poly1305;

/// What a phone seal starts with: the scheme, so a later one can be told apart.
pub const PHONE_SEALED_PREFIX: &str = "phone1:";
/// HPKE's `info`: binds a seal to phones, apart from ID numbers.
const PHONE_SEAL_INFO: &[u8] = b"civsync phone number v1";
/// Longest phone `model::phone` accepts, in digits.
pub const PHONE_DIGITS_MAX: usize = 15;
/// Encapsulated key (32) + tag (16), around the digits.
const SEAL_OVERHEAD_BYTES: usize = 32 + 16;

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
/// when it was read: `pii::CountySealKey`), drawing the ephemeral key from
/// `rng`.
pub fn seal(public: &[u8; 32], digits: &str, rng: &mut ChaCha20Rng) -> String {
    debug_assert!(digits.len() <= PHONE_DIGITS_MAX && digits.bytes().all(|b| b.is_ascii_digit()));
    let public = <SealKem as hpke::Kem>::PublicKey::from_bytes(public)
        .expect("checked when the key was read");
    let (encapped, ciphertext) = hpke::single_shot_seal::<SealAead, SealKdf, SealKem, _>(
        &OpModeS::Base,
        &public,
        PHONE_SEAL_INFO,
        digits.as_bytes(),
        &[],
        rng,
    )
    .expect("sealing to a valid X25519 key cannot fail");
    let mut bytes = encapped.to_bytes().to_vec();
    bytes.extend_from_slice(&ciphertext);
    format!("{PHONE_SEALED_PREFIX}{}", hex(&bytes))
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

/// Open a seal made by [`seal`], with the X25519 private key `private`
/// (checked when it was made or read: `pii::CountyOpenKey::open_phone`).
pub fn open(private: &[u8; 32], sealed: &str) -> Result<String, PhoneSealError> {
    let bytes = sealed
        .strip_prefix(PHONE_SEALED_PREFIX)
        .and_then(from_hex)
        .filter(|b| {
            (SEAL_OVERHEAD_BYTES..=SEAL_OVERHEAD_BYTES + PHONE_DIGITS_MAX).contains(&b.len())
        })
        .ok_or(PhoneSealError::Shape)?;
    let encapped = <SealKem as hpke::Kem>::EncappedKey::from_bytes(&bytes[..32])
        .map_err(|_| PhoneSealError::Shape)?;
    let private = <SealKem as hpke::Kem>::PrivateKey::from_bytes(private)
        .expect("checked when the key was made or read");
    let clear = hpke::single_shot_open::<SealAead, SealKdf, SealKem>(
        &OpModeR::Base,
        &private,
        &encapped,
        PHONE_SEAL_INFO,
        &bytes[32..],
        &[],
    )
    .map_err(|_| PhoneSealError::WrongKey)?;
    let digits = String::from_utf8(clear).map_err(|_| PhoneSealError::NotDigits)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneSealError::NotDigits);
    }
    Ok(digits)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
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
}
