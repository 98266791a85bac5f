//! Personal information: the ID-card number never rests or travels in clear.
//!
//! The national records standard keys volunteers by a unified volunteer
//! number; the Personal Information Protection Law asks for the minimum. We
//! keep only (a) an HMAC-SHA-256 of the normalised ID number under a secret
//! key held per county, which finds duplicate registrations without revealing
//! the number, and (b) a masked form a clerk can recognise.

use crate::domain::model::FieldError;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const IDENTITY_KEY_BYTES: usize = 32;

/// The county's secret for ID-number digests. Every node of a county holds
/// the same key (distributed with its certificate), so digests match across
/// the county and nowhere else.
#[derive(Clone)]
pub struct IdentityKey([u8; IDENTITY_KEY_BYTES]);

impl IdentityKey {
    pub fn from_bytes(bytes: [u8; IDENTITY_KEY_BYTES]) -> IdentityKey {
        IdentityKey(bytes)
    }

    pub fn from_hex(text: &str) -> Option<IdentityKey> {
        let text = text.trim();
        if text.len() != IDENTITY_KEY_BYTES * 2 {
            return None;
        }
        let mut bytes = [0u8; IDENTITY_KEY_BYTES];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(IdentityKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Digest of a (validated, normalised) ID number.
    pub fn digest(&self, id_number: &IdNumber) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id_number.0.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(..)")
    }
}

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

    /// First four and last four characters, the rest starred.
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..4], "*".repeat(10), &self.0[14..])
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
fn check_character(first_17: &[u8]) -> u8 {
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

    const VALID: &str = "11010519491231002X";

    #[test]
    fn valid_numbers_parse_and_mask() {
        let id = IdNumber::parse("id_number", VALID).unwrap();
        assert_eq!(id.masked(), "1101**********002X");
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
    fn digests_depend_on_the_key_and_are_stable() {
        let id = IdNumber::parse("id", VALID).unwrap();
        let lower = IdNumber::parse("id", &VALID.to_lowercase()).unwrap();
        let a = IdentityKey::from_bytes([1; 32]);
        let b = IdentityKey::from_bytes([2; 32]);
        assert_eq!(a.digest(&id), a.digest(&lower));
        assert_ne!(a.digest(&id), b.digest(&id));
        assert_eq!(a.digest(&id).len(), 64);
        assert!(!a.digest(&id).contains(VALID));
        assert_eq!(
            IdentityKey::from_hex(&a.to_hex()).unwrap().digest(&id),
            a.digest(&id)
        );
    }
}
