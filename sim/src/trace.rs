//! The trace hash: a fingerprint of everything that happened, in order.
//!
//! Every delivered chunk, session event, acknowledged write and fault is fed
//! into one SHA-256. Two runs with the same seed and flags must print the same
//! hash; any hidden nondeterminism (a HashMap iteration, a wall-clock read)
//! shows up as a different hash.

use sha2::{Digest, Sha256};

pub struct Trace {
    hasher: Sha256,
    pub entries: u64,
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            hasher: Sha256::new(),
            entries: 0,
        }
    }

    /// Record one happening: a kind tag, the instant, the nodes or
    /// connection involved, and its bytes.
    pub fn record(&mut self, kind: u8, at: u64, who: u64, bytes: &[u8]) {
        self.hasher.update([kind]);
        self.hasher.update(at.to_le_bytes());
        self.hasher.update(who.to_le_bytes());
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
        self.entries += 1;
    }

    /// Hex of the first 16 bytes of the digest so far.
    pub fn hex(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_both_count() {
        let mut a = Trace::new();
        a.record(1, 0, 0, b"x");
        a.record(2, 0, 0, b"y");
        let mut b = Trace::new();
        b.record(2, 0, 0, b"y");
        b.record(1, 0, 0, b"x");
        assert_ne!(a.hex(), b.hex());
        let mut c = Trace::new();
        c.record(1, 0, 0, b"x");
        c.record(2, 0, 0, b"y");
        assert_eq!(a.hex(), c.hex());
    }
}
