//! Personal information: the ID-card number never rests or travels in clear,
//! and nothing an office below the county holds can confirm a guess at it.
//!
//! The national records standard keys volunteers by a unified volunteer
//! number; the Personal Information Protection Law asks for the minimum. A
//! roster keeps only
//!
//! (a) the number **sealed to the county's public key** (HPKE, RFC 9180:
//!     X25519, HKDF-SHA256, ChaCha20-Poly1305, base mode). Sealing is
//!     randomised, so two seals of one number differ and a seal confirms
//!     nothing to whoever holds only the public key; the county alone holds
//!     the private key, opens seals to find the same person registered twice
//!     (by an HMAC digest under a key derived from that private key, computed
//!     in memory) and for exports;
//! (b) a masked form keeping only the six region characters
//!     (`110105************`). With the birth date and sex stored beside it,
//!     a thief still faces the three sequence digits, one of whose parity the
//!     sex fixes, and the check character they determine: 500 equally likely
//!     numbers, each of which nothing on the PC can confirm.
//!
//! Rosters written before sealing hold an HMAC digest under the old county
//! key (`id_digest`) and the old eight-character mask; they stay readable,
//! and the county still matches equal old digests as duplicates, but no new
//! write makes one and no office reads the old key any more.

use crate::domain::model::FieldError;
use crate::domain::phone::{self, PhoneSeals};
use crate::domain::seal_batch::{self, SealBatch};
use crate::identity::station::StationId;
use hmac::{Hmac, Mac};
use hpke::{Deserializable, Kem as _, OpModeR, Serializable};
use seal_rng::rand_core::SeedableRng;
use seal_rng::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

type SealKem = hpke::kem::X25519HkdfSha256;
type SealKdf = hpke::kdf::HkdfSha256;
type SealAead = hpke::aead::ChaCha20Poly1305;

/// Bytes of an X25519 key, public or private.
pub const COUNTY_ID_KEY_BYTES: usize = 32;
/// What a seal starts with: the scheme, so a later one can be told apart.
/// Seals share a key agreement within an import (`domain::seal_batch`).
pub const SEALED_PREFIX: &str = "hpke2:";
/// A seal written before batches: one HPKE single-shot seal each. Still
/// opened; never written.
pub const SINGLE_SEALED_PREFIX: &str = "hpke1:";
/// Binds a seal to this use of the key: HPKE's `info` of a single-shot
/// seal, the associated data of a batch seal.
const SEAL_INFO: &[u8] = b"civsync resident id number v1";
/// A seal's bytes: the batch's overhead around the 18 characters.
pub const SEALED_BYTES: usize = seal_batch::OVERHEAD_BYTES + 18;
/// Encapsulated key (32) + ID number (18) + tag (16).
const SINGLE_SEALED_BYTES: usize = 32 + 18 + 16;

fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.trim()).ok()
}

fn key_from_hex(text: &str) -> Option<[u8; COUNTY_ID_KEY_BYTES]> {
    from_hex(text)?.try_into().ok()
}

/// The county's public key for ID numbers. Every office holds it (written
/// by `pki issue`); it seals, and confirms nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct CountySealKey([u8; COUNTY_ID_KEY_BYTES]);

impl CountySealKey {
    pub fn from_hex(text: &str) -> Option<CountySealKey> {
        let bytes = key_from_hex(text)?;
        <SealKem as hpke::Kem>::PublicKey::from_bytes(&bytes).ok()?;
        Some(CountySealKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// The raw X25519 public key.
    pub fn to_bytes(&self) -> [u8; COUNTY_ID_KEY_BYTES] {
        self.0
    }

    /// Seal a (validated, normalised) ID number on its own (a batch of
    /// one), drawing the ephemeral key from `rng`. Never the same text
    /// twice for a fresh `rng` state.
    pub fn seal(&self, id_number: &IdNumber, rng: &mut ChaCha20Rng) -> String {
        let sealed = SealBatch::start(&self.0, rng)
            .seal(SEAL_INFO, id_number.0.as_bytes())
            .expect("a fresh batch has every index left");
        format!("{SEALED_PREFIX}{}", to_hex(&sealed))
    }
}

impl std::fmt::Debug for CountySealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountySealKey({})", self.to_hex())
    }
}

/// Why a seal could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("id_sealed is not {SEALED_PREFIX} followed by {SEALED_BYTES} hex bytes (nor an earlier {SINGLE_SEALED_PREFIX} seal)")]
    Shape,
    #[error(
        "id_sealed does not open with this county's key (sealed to another county, or altered)"
    )]
    WrongKey,
    #[error("id_sealed opens to something that is not an ID number: {0}")]
    NotAnIdNumber(String),
}

/// The county's private key for ID numbers. Only the county's PC holds it
/// (`pki init` makes it; `pki issue` copies it to the county's own office
/// and nowhere else).
#[derive(Clone)]
pub struct CountyOpenKey([u8; COUNTY_ID_KEY_BYTES]);

impl CountyOpenKey {
    /// A key pair derived from 32 random bytes (the caller draws them).
    pub fn generate(seed: [u8; 32]) -> CountyOpenKey {
        let (private, _) = SealKem::derive_keypair(&seed);
        let bytes = private.to_bytes();
        let mut out = [0u8; COUNTY_ID_KEY_BYTES];
        out.copy_from_slice(&bytes);
        CountyOpenKey(out)
    }

    pub fn from_hex(text: &str) -> Option<CountyOpenKey> {
        let bytes = key_from_hex(text)?;
        <SealKem as hpke::Kem>::PrivateKey::from_bytes(&bytes).ok()?;
        Some(CountyOpenKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    fn private(&self) -> <SealKem as hpke::Kem>::PrivateKey {
        <SealKem as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .expect("checked when the key was made or read")
    }

    /// The public half, for every office of the county.
    pub fn seal_key(&self) -> CountySealKey {
        let public = SealKem::sk_to_pk(&self.private());
        let mut out = [0u8; COUNTY_ID_KEY_BYTES];
        out.copy_from_slice(&public.to_bytes());
        CountySealKey(out)
    }

    /// Open a phone seal made to our public key (`domain::phone`).
    pub fn open_phone(&self, sealed: &str) -> Result<String, phone::PhoneSealError> {
        phone::open(&self.0, sealed)
    }

    #[cfg(test)]
    pub(crate) fn secret_bytes(&self) -> &[u8; COUNTY_ID_KEY_BYTES] {
        &self.0
    }

    /// Open a seal made to our public key, by an import's batch or
    /// (before batches) on its own.
    pub fn open(&self, sealed: &str) -> Result<IdNumber, SealError> {
        let clear = if let Some(hex) = sealed.strip_prefix(SEALED_PREFIX) {
            let bytes = from_hex(hex)
                .filter(|b| b.len() == SEALED_BYTES)
                .ok_or(SealError::Shape)?;
            seal_batch::open(&self.0, SEAL_INFO, &bytes).ok_or(SealError::WrongKey)?
        } else {
            self.open_single(sealed)?
        };
        let text =
            String::from_utf8(clear).map_err(|_| SealError::NotAnIdNumber("not text".into()))?;
        IdNumber::parse("id_sealed", &text).map_err(|e| SealError::NotAnIdNumber(e.reason))
    }

    fn open_single(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = sealed
            .strip_prefix(SINGLE_SEALED_PREFIX)
            .and_then(from_hex)
            .filter(|b| b.len() == SINGLE_SEALED_BYTES)
            .ok_or(SealError::Shape)?;
        let encapped = <SealKem as hpke::Kem>::EncappedKey::from_bytes(&bytes[..32])
            .map_err(|_| SealError::Shape)?;
        hpke::single_shot_open::<SealAead, SealKdf, SealKem>(
            &OpModeR::Base,
            &self.private(),
            &encapped,
            SEAL_INFO,
            &bytes[32..],
            &[],
        )
        .map_err(|_| SealError::WrongKey)
    }

    /// The de-duplication digest of an ID number: HMAC-SHA-256 under a key
    /// derived from the private key, so only the county can compute it.
    /// Equal numbers give equal digests; computed in memory, never stored
    /// below the county.
    pub fn dedup_digest(&self, id_number: &IdNumber) -> String {
        let key = Sha256::new()
            .chain_update(b"civsync id-number dedup key v1")
            .chain_update(self.0)
            .finalize();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(id_number.0.as_bytes());
        to_hex(&mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for CountyOpenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountyOpenKey(..)")
    }
}

/// What a registration seals with: the county's public key and a random
/// stream seeded once by the caller (the node from the OS, the simulation
/// from its seed — the protocol draws no randomness itself). Clones share
/// the stream, so no two seals ever reuse an ephemeral key.
#[derive(Clone)]
pub struct IdSealer {
    key: CountySealKey,
    /// This office's own phone key (public half), for the volunteers it
    /// registers at its own station.
    home_phone_key: Option<(StationId, CountySealKey)>,
    rng: Arc<Mutex<ChaCha20Rng>>,
    /// Set on a sealer made by [`IdSealer::batch`]: its seals share one key
    /// agreement per recipient. Unset, every seal is a batch of one.
    batches: Option<Arc<Mutex<Batches>>>,
}

/// The open batches of one import, one per recipient.
#[derive(Default)]
struct Batches {
    county: Option<SealBatch>,
    home: Option<SealBatch>,
}

#[derive(Clone, Copy)]
enum Recipient {
    County,
    Home,
}

impl IdSealer {
    pub fn new(key: CountySealKey, seed: [u8; 32]) -> IdSealer {
        IdSealer {
            key,
            home_phone_key: None,
            rng: Arc::new(Mutex::new(ChaCha20Rng::from_seed(seed))),
            batches: None,
        }
    }

    /// Also seal phones of `station`'s own volunteers to its phone key.
    pub fn with_home_phone_key(mut self, station: StationId, key: CountySealKey) -> IdSealer {
        self.home_phone_key = Some((station, key));
        self
    }

    /// A sealer for one import: its seals (and its clones') share one key
    /// agreement per recipient, which makes a roster's seals about 40×
    /// cheaper (`domain::seal_batch` says what that gives away: that they
    /// were written together). The batch ends when the last clone drops.
    pub fn batch(&self) -> IdSealer {
        IdSealer {
            batches: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// The stored forms of validated phone digits of a volunteer of `home`
    /// (nothing for no phone).
    pub fn seal_phone(&self, home: &StationId, digits: &str) -> PhoneSeals {
        if digits.is_empty() {
            return PhoneSeals::default();
        }
        let home_seal = match &self.home_phone_key {
            Some((station, key)) if station == home => {
                self.seal_to(Recipient::Home, &key.0, |batch| {
                    phone::seal_in(batch, digits)
                })
            }
            _ => String::new(),
        };
        PhoneSeals {
            masked: phone::mask(digits),
            county: self.seal_to(Recipient::County, &self.key.0, |batch| {
                phone::seal_in(batch, digits)
            }),
            home: home_seal,
        }
    }

    pub fn key(&self) -> &CountySealKey {
        &self.key
    }

    pub fn seal(&self, id_number: &IdNumber) -> String {
        self.seal_to(Recipient::County, &self.key.0, |batch| {
            let sealed = batch.seal(SEAL_INFO, id_number.0.as_bytes())?;
            Some(format!("{SEALED_PREFIX}{}", to_hex(&sealed)))
        })
    }

    /// `seal` in this import's batch for `recipient` (public key `public`),
    /// starting one when there is none or it is used up; in a batch of its
    /// own outside an import.
    fn seal_to(
        &self,
        recipient: Recipient,
        public: &[u8; COUNTY_ID_KEY_BYTES],
        seal: impl Fn(&mut SealBatch) -> Option<String>,
    ) -> String {
        // A panic elsewhere while sealing leaves the stream and the batches
        // usable: the stream only moves forward, an index is taken before
        // its value is sealed.
        let start = || {
            let mut rng = self.rng.lock().unwrap_or_else(|poison| poison.into_inner());
            SealBatch::start(public, &mut rng)
        };
        let Some(batches) = &self.batches else {
            return seal(&mut start()).expect("a fresh batch has every index left");
        };
        let mut batches = batches.lock().unwrap_or_else(|poison| poison.into_inner());
        let slot = match recipient {
            Recipient::County => &mut batches.county,
            Recipient::Home => &mut batches.home,
        };
        let batch = slot.get_or_insert_with(start);
        if let Some(sealed) = seal(batch) {
            return sealed;
        }
        *batch = start();
        seal(batch).expect("a fresh batch has every index left")
    }
}

impl std::fmt::Debug for IdSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdSealer({:?})", self.key)
    }
}

/// Characters of the ID number a masked form keeps: the region code.
pub const MASK_KEPT_CHARS: usize = 6;

/// A resident identity card number (18 characters, GB 11643 checksum). Held
/// only transiently while a registration is processed; not `Serialize`.
pub struct IdNumber(String);

impl IdNumber {
    pub fn parse(field: &str, text: &str) -> Result<IdNumber, FieldError> {
        let normalised: String = text.trim().to_ascii_uppercase();
        let bad = |reason: &str| FieldError::new(field, reason.to_string());
        if normalised.len() != 18 {
            return Err(bad("an ID number has 18 characters"));
        }
        let bytes = normalised.as_bytes();
        if !bytes[..17].iter().all(u8::is_ascii_digit)
            || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
        {
            return Err(bad("an ID number is 17 digits followed by a digit or X"));
        }
        if check_character(&bytes[..17]) != bytes[17] {
            return Err(bad(
                "the ID number's check digit does not match; please re-check the number",
            ));
        }
        Ok(IdNumber(normalised))
    }

    /// The six region characters, the rest starred: with the birth date
    /// and sex stored beside it, 500 numbers remain possible.
    pub fn masked(&self) -> String {
        format!(
            "{}{}",
            &self.0[..MASK_KEPT_CHARS],
            "*".repeat(18 - MASK_KEPT_CHARS)
        )
    }

    /// The birth date encoded in the number (YYYYMMDD at positions 7–14).
    pub fn birth_date_text(&self) -> String {
        format!("{}-{}-{}", &self.0[6..10], &self.0[10..12], &self.0[12..14])
    }
}

impl std::fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

/// The check character (GB 11643) that follows 17 digits.
pub fn check_character(first_17: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first_17
        .iter()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// Make a valid ID number from 17 leading digits (test data, simulations).
pub fn with_check_digit(first_17: &str) -> String {
    format!("{first_17}{}", check_character(first_17.as_bytes()) as char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "11010519491231002X";

    fn county(seed: u8) -> CountyOpenKey {
        CountyOpenKey::generate([seed; 32])
    }

    #[test]
    fn valid_numbers_parse_and_mask_to_the_region() {
        let id = IdNumber::parse("id_number", VALID).unwrap();
        assert_eq!(id.masked(), "110105************");
        assert_eq!(id.birth_date_text(), "1949-12-31");
        assert!(
            !format!("{id:?}").contains("19491231"),
            "debug output must not leak the number"
        );
        assert_eq!(with_check_digit(&VALID[..17]), VALID);
    }

    #[test]
    fn bad_numbers_are_refused_with_a_reason() {
        assert!(IdNumber::parse("id_number", "123")
            .unwrap_err()
            .reason
            .contains("18 characters"));
        assert!(IdNumber::parse("id_number", "11010519491231002Y").is_err());
        let error = IdNumber::parse("id_number", "110105194912310021").unwrap_err();
        assert_eq!(error.field, "id_number");
        assert!(error.reason.contains("check digit"));
    }

    #[test]
    fn a_seal_opens_at_its_county_and_nowhere_else() {
        let id = IdNumber::parse("id", VALID).unwrap();
        let sealer = IdSealer::new(county(1).seal_key(), [5; 32]);
        let sealed = sealer.seal(&id);
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.to_uppercase().contains(VALID));
        assert_eq!(county(1).open(&sealed).unwrap().0, VALID);
        assert_eq!(county(2).open(&sealed).unwrap_err(), SealError::WrongKey);
        assert_eq!(county(1).open("hpke1:00").unwrap_err(), SealError::Shape);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            county(1)
                .open(&String::from_utf8(altered).unwrap())
                .unwrap_err(),
            SealError::WrongKey
        );
    }

    #[test]
    fn sealing_is_randomised_and_digests_match_only_under_one_county() {
        let id = IdNumber::parse("id", VALID).unwrap();
        let lower = IdNumber::parse("id", &VALID.to_lowercase()).unwrap();
        let sealer = IdSealer::new(county(1).seal_key(), [5; 32]);
        let (a, b) = (sealer.seal(&id), sealer.clone().seal(&id));
        assert_ne!(a, b, "a clone shares the stream: no ephemeral key reused");
        let digest = |s: &str| county(1).dedup_digest(&county(1).open(s).unwrap());
        assert_eq!(digest(&a), digest(&b));
        assert_eq!(county(1).dedup_digest(&lower), digest(&a));
        assert_ne!(county(2).dedup_digest(&id), digest(&a));
    }

    #[test]
    fn an_imports_seals_share_one_key_agreement_and_each_opens_alone() {
        let ids: Vec<IdNumber> = [
            "41160219800615123",
            "11010519491231002",
            "44030519900101001",
        ]
        .iter()
        .map(|digits| IdNumber::parse("id", &with_check_digit(digits)).unwrap())
        .collect();
        let home = StationId::parse("xh/t1/v1").unwrap();
        let sealer = IdSealer::new(county(1).seal_key(), [5; 32])
            .with_home_phone_key(home.clone(), county(4).seal_key());
        let batch = sealer.batch();
        let sealed: Vec<String> = ids.iter().map(|id| batch.clone().seal(id)).collect();
        let phones = batch.seal_phone(&home, "13812345678");
        let encapped = |s: &str| {
            let hex = s.split_once(':').unwrap().1;
            hex[..64].to_string()
        };
        assert!(sealed.iter().all(|s| encapped(s) == encapped(&sealed[0])));
        assert_eq!(
            encapped(&phones.county),
            encapped(&sealed[0]),
            "one agreement per recipient, whatever the value"
        );
        assert_ne!(encapped(&phones.home), encapped(&sealed[0]));
        for (id, sealed) in ids.iter().zip(&sealed).rev() {
            assert_eq!(county(1).open(sealed).unwrap().0, id.0);
            assert_eq!(county(2).open(sealed).unwrap_err(), SealError::WrongKey);
        }
        assert_eq!(county(1).open_phone(&phones.county).unwrap(), "13812345678");
        assert_eq!(county(4).open_phone(&phones.home).unwrap(), "13812345678");
        assert!(
            county(1).open_phone(&sealed[0]).is_err(),
            "an ID seal is no phone seal"
        );
        // Outside a batch, every seal agrees its own key.
        assert_ne!(
            encapped(&sealer.seal(&ids[0])),
            encapped(&sealer.seal(&ids[0]))
        );
        // Another import, another key.
        assert_ne!(
            encapped(&sealer.batch().seal(&ids[0])),
            encapped(&sealed[0])
        );
    }

    #[test]
    fn seals_written_before_batches_still_open() {
        use hpke::OpModeS;
        let id = IdNumber::parse("id", VALID).unwrap();
        let public =
            <SealKem as hpke::Kem>::PublicKey::from_bytes(&county(1).seal_key().0).unwrap();
        let (encapped, ciphertext) = hpke::single_shot_seal::<SealAead, SealKdf, SealKem, _>(
            &OpModeS::Base,
            &public,
            SEAL_INFO,
            VALID.as_bytes(),
            &[],
            &mut ChaCha20Rng::from_seed([6; 32]),
        )
        .unwrap();
        let mut bytes = encapped.to_bytes().to_vec();
        bytes.extend_from_slice(&ciphertext);
        let sealed = format!("{SINGLE_SEALED_PREFIX}{}", to_hex(&bytes));
        assert_eq!(county(1).open(&sealed).unwrap().0, id.0);
        assert_eq!(county(2).open(&sealed).unwrap_err(), SealError::WrongKey);
        let as_batch = format!("{SEALED_PREFIX}{}", to_hex(&bytes));
        assert_eq!(county(1).open(&as_batch).unwrap_err(), SealError::Shape);
    }

    #[test]
    fn keys_survive_their_hex_form() {
        let key = county(3);
        let read = CountyOpenKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(read.seal_key(), key.seal_key());
        assert_eq!(
            CountySealKey::from_hex(&key.seal_key().to_hex()).unwrap(),
            key.seal_key()
        );
        assert!(CountySealKey::from_hex("00").is_none());
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    proptest! {
        #[test]
        fn every_valid_number_seals_opens_and_masks(digits in "[0-9]{17}", seed in any::<[u8; 32]>()) {
            let text = with_check_digit(&digits);
            let id = IdNumber::parse("id", &text).unwrap();
            let masked = id.masked();
            prop_assert_eq!(masked.len(), 18);
            prop_assert_eq!(&masked[..6], &text[..6]);
            prop_assert!(masked[6..].bytes().all(|b| b == b'*'));
            let sealed = IdSealer::new(county(7).seal_key(), seed).seal(&id);
            prop_assert_eq!(county(7).open(&sealed).unwrap().0, text);
            prop_assert!(county(8).open(&sealed).is_err());
        }
    }
}
