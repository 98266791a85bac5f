//! What a peer may bring in: documents for stations the registry knows, and
//! at most so many new documents and bytes a day.
//!
//! A certified peer may write the documents of its own subtree, so without
//! a bound a village could invent stations below it (`xh/t1/v1/anything`)
//! and fill its township and the county with their documents, or send
//! without end what the decode limits let through one message at a time.
//! Both are refusals for now, never for good: a document refused here is
//! offered again by the peer in a later session, and accepted once its
//! station is registered or the day's quota is fresh (the session reconnects
//! when [`Intake::over_quota_today`] and the registry say so).
//!
//! Rules (the replica applies them to peers that are not its ancestors; what
//! a parent sends comes from above, which the county controls):
//! - a *new* document whose owner is strictly below the certified peer and
//!   of a tier below [`PeerQuotas::registration_required_below`] is refused
//!   unless a registry this node holds lists the owner. Villages and
//!   townships have certificates of their own and are vouched for by them;
//!   points and bases below a village exist only in a registry;
//! - per peer and day (the day of the owner's clock, passed in; days are
//!   counted in UTC), at most `documents_per_day_max` new documents and
//!   `bytes_per_day_max` bytes of accepted sync messages. Counts start again
//!   on a new day. Only accepted messages count: a refused one stores
//!   nothing.
//!
//! Nothing here reads a clock or a document; the replica passes the day and
//! whether the registry lists the station.
//!
//! The day's counts are stored (`intake|<peer>`, riding on the next flush),
//! so a node that restarts — or is made to crash and restart — does not
//! give every peer a fresh quota. A crash may lose the counts of the last
//! unflushed messages, never more.

use crate::identity::station::{StationId, Tier};
use serde::Serialize;
use std::collections::BTreeMap;

/// One day in the owner's clock (Unix ms).
pub const DAY_MS: i64 = 86_400_000;

/// New documents one peer may bring in a day. A village makes a few hundred
/// documents a year (a roster, and per month activities, orders and an
/// approval); a township of 40 villages, some 20,000 a year; a township
/// refilled from nothing is ~105 documents. 4,096 is a month of a large
/// township's backlog, or forty cold refills, in one day.
pub const DOCUMENTS_PER_PEER_PER_DAY_MAX: u64 = 4_096;
/// Bytes of accepted sync messages one peer may bring in a day. A cold
/// township refill is ~1 MB (~10 KB a document); 64 MiB is some 6,000
/// documents' worth, above [`DOCUMENTS_PER_PEER_PER_DAY_MAX`] of them, so
/// the document count binds first for honest peers.
pub const BYTES_PER_PEER_PER_DAY_MAX: u64 = 64 * 1024 * 1024;

/// The per-peer limits of a replica (`ReplicaConfig::peer_quotas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerQuotas {
    pub documents_per_day_max: u64,
    pub bytes_per_day_max: u64,
    /// Stations of a tier below this one, strictly below the certified peer,
    /// must be registered before their documents are taken in.
    pub registration_required_below: Tier,
}

impl PeerQuotas {
    pub const DEFAULT: PeerQuotas = PeerQuotas {
        documents_per_day_max: DOCUMENTS_PER_PEER_PER_DAY_MAX,
        bytes_per_day_max: BYTES_PER_PEER_PER_DAY_MAX,
        registration_required_below: Tier::Village,
    };
}

impl Default for PeerQuotas {
    fn default() -> Self {
        PeerQuotas::DEFAULT
    }
}

/// Why a peer's document was refused for now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeRefusal {
    #[error(
        "station {station} is not in the station registry this node holds: register it, and the peer offers its \
         documents again"
    )]
    UnregisteredStation { station: StationId },
    #[error(
        "over the quota of {max} new documents a day from station {peer}; the rest are taken from tomorrow"
    )]
    DocumentsPerDay { peer: StationId, max: u64 },
    #[error(
        "over the quota of {max} bytes a day from station {peer}; the rest are taken from tomorrow"
    )]
    BytesPerDay { peer: StationId, max: u64 },
}

/// What one peer brought in on one day, as the status page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerIntake {
    /// Days since 1970-01-01 (UTC) these counts are for.
    pub day: i64,
    pub documents_accepted: u64,
    pub bytes_accepted: u64,
    /// New documents refused because their station is not registered.
    pub refused_unregistered: u64,
    /// Messages refused because a daily quota was used up.
    pub refused_over_quota: u64,
    pub last_refusal: Option<String>,
}

/// Bytes of a stored [`PeerIntake`]: a version byte and five u64/i64.
const STORED_BYTES: usize = 1 + 5 * 8;
const STORED_VERSION: u8 = 1;

impl PeerIntake {
    /// The counts as stored (the last refusal's text is not kept: it is
    /// for the status page of the running node).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STORED_BYTES);
        out.push(STORED_VERSION);
        out.extend_from_slice(&self.day.to_be_bytes());
        for count in [
            self.documents_accepted,
            self.bytes_accepted,
            self.refused_unregistered,
            self.refused_over_quota,
        ] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out
    }

    /// Counts stored by [`PeerIntake::encode`], or why they are not.
    pub fn decode(bytes: &[u8]) -> Result<PeerIntake, String> {
        if bytes.len() != STORED_BYTES {
            return Err(format!("{} bytes, expected {STORED_BYTES}", bytes.len()));
        }
        if bytes[0] != STORED_VERSION {
            return Err(format!("unknown version {}", bytes[0]));
        }
        let word = |n: usize| -> [u8; 8] {
            bytes[1 + 8 * n..1 + 8 * (n + 1)]
                .try_into()
                .expect("STORED_BYTES holds five words")
        };
        Ok(PeerIntake {
            day: i64::from_be_bytes(word(0)),
            documents_accepted: u64::from_be_bytes(word(1)),
            bytes_accepted: u64::from_be_bytes(word(2)),
            refused_unregistered: u64::from_be_bytes(word(3)),
            refused_over_quota: u64::from_be_bytes(word(4)),
            last_refusal: None,
        })
    }
}

/// The day of `now_ms` (Unix ms).
pub fn day_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// Must a new document of `owner`, brought by `peer` to `local` (of tier
/// `local_tier`), be registered first?
pub fn registration_required(
    quotas: &PeerQuotas,
    local: &StationId,
    local_tier: Tier,
    peer: &StationId,
    owner: &StationId,
) -> bool {
    if peer.is_strict_ancestor_of(local) || !peer.is_strict_ancestor_of(owner) {
        return false;
    }
    let levels = owner.depth() as isize - local.depth() as isize;
    // A station deeper than any tier is below every tier.
    let tier = local_tier.shifted(levels).unwrap_or(Tier::Point);
    tier > quotas.registration_required_below
}

/// Every peer's counts for its current day. Bounded by the number of
/// certified peers that connect.
#[derive(Debug, Clone, Default)]
pub struct Intake {
    quotas: PeerQuotas,
    peers: BTreeMap<StationId, PeerIntake>,
}

impl Intake {
    pub fn new(quotas: PeerQuotas) -> Intake {
        Intake {
            quotas,
            peers: BTreeMap::new(),
        }
    }

    pub fn quotas(&self) -> &PeerQuotas {
        &self.quotas
    }

    /// Counts of `peer` read back from the store when the replica opens.
    pub fn restore(&mut self, peer: StationId, counts: PeerIntake) {
        self.peers.insert(peer, counts);
    }

    /// `peer`'s counts for `day`, started afresh on a new day.
    fn today(&mut self, peer: &StationId, day: i64) -> &mut PeerIntake {
        let counts = self.peers.entry(peer.clone()).or_default();
        if counts.day != day {
            *counts = PeerIntake {
                day,
                ..PeerIntake::default()
            };
        }
        counts
    }

    /// May `peer` bring in a message of `bytes` (a `new_document` or not)
    /// today? A refusal is counted and remembered.
    pub fn check(
        &mut self,
        peer: &StationId,
        day: i64,
        new_document: bool,
        bytes: u64,
    ) -> Result<(), IntakeRefusal> {
        let quotas = self.quotas;
        let counts = self.today(peer, day);
        let refusal = if new_document && counts.documents_accepted >= quotas.documents_per_day_max {
            IntakeRefusal::DocumentsPerDay {
                peer: peer.clone(),
                max: quotas.documents_per_day_max,
            }
        } else if counts.bytes_accepted.saturating_add(bytes) > quotas.bytes_per_day_max {
            IntakeRefusal::BytesPerDay {
                peer: peer.clone(),
                max: quotas.bytes_per_day_max,
            }
        } else {
            return Ok(());
        };
        counts.refused_over_quota += 1;
        counts.last_refusal = Some(refusal.to_string());
        Err(refusal)
    }

    /// Count a refusal of `station`'s new document: it is not registered.
    pub fn refuse_unregistered(
        &mut self,
        peer: &StationId,
        day: i64,
        station: &StationId,
    ) -> IntakeRefusal {
        let refusal = IntakeRefusal::UnregisteredStation {
            station: station.clone(),
        };
        let counts = self.today(peer, day);
        counts.refused_unregistered += 1;
        counts.last_refusal = Some(refusal.to_string());
        refusal
    }

    /// Count an accepted message.
    pub fn accept(&mut self, peer: &StationId, day: i64, new_document: bool, bytes: u64) {
        let counts = self.today(peer, day);
        counts.documents_accepted += u64::from(new_document);
        counts.bytes_accepted = counts.bytes_accepted.saturating_add(bytes);
    }

    /// A quota refused something from `peer` on `day`: nothing more is
    /// taken from it before the next day.
    pub fn over_quota_today(&self, peer: &StationId, day: i64) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|counts| counts.day == day && counts.refused_over_quota > 0)
    }

    /// Every peer's counts, by station.
    pub fn peers(&self) -> impl Iterator<Item = (&StationId, &PeerIntake)> {
        self.peers.iter()
    }

    pub fn peer(&self, peer: &StationId) -> Option<&PeerIntake> {
        self.peers.get(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn small() -> Intake {
        Intake::new(PeerQuotas {
            documents_per_day_max: 2,
            bytes_per_day_max: 1_000,
            ..PeerQuotas::DEFAULT
        })
    }

    #[test]
    fn stored_counts_read_back_the_same_and_damaged_ones_are_named() {
        let counts = PeerIntake {
            day: 20_000,
            documents_accepted: 7,
            bytes_accepted: 1 << 40,
            refused_unregistered: 2,
            refused_over_quota: 3,
            last_refusal: Some("not kept".to_string()),
        };
        let read = PeerIntake::decode(&counts.encode()).unwrap();
        assert_eq!(
            read,
            PeerIntake {
                last_refusal: None,
                ..counts.clone()
            }
        );
        let short = &counts.encode()[..10];
        assert!(PeerIntake::decode(short).unwrap_err().contains("10 bytes"));
        let mut newer = counts.encode();
        newer[0] = 9;
        assert!(PeerIntake::decode(&newer)
            .unwrap_err()
            .contains("version 9"));
    }

    #[test]
    fn stations_below_a_village_must_be_registered_villages_need_not() {
        let q = PeerQuotas::DEFAULT;
        let (township, village) = (s("xh/t1"), s("xh/t1/v1"));
        // A village brings a point below it to its township.
        assert!(registration_required(
            &q,
            &township,
            Tier::Township,
            &village,
            &s("xh/t1/v1/anything")
        ));
        // Its own documents: its certificate vouches for it.
        assert!(!registration_required(
            &q,
            &township,
            Tier::Township,
            &village,
            &village
        ));
        // A township relays its villages to the county.
        assert!(!registration_required(
            &q,
            &s("xh"),
            Tier::County,
            &township,
            &village
        ));
        // ... and the points below them.
        assert!(registration_required(
            &q,
            &s("xh"),
            Tier::County,
            &township,
            &s("xh/t1/v1/p1")
        ));
        // A parent sending down is not metered.
        assert!(!registration_required(
            &q,
            &village,
            Tier::Village,
            &township,
            &s("xh/t1/v1/p1")
        ));
        // A county that registers every village asks it of townships too.
        let strict = PeerQuotas {
            registration_required_below: Tier::Township,
            ..q
        };
        assert!(registration_required(
            &strict,
            &s("xh"),
            Tier::County,
            &township,
            &village
        ));
    }

    #[test]
    fn documents_past_the_daily_quota_are_refused_and_counted() {
        let mut intake = small();
        let peer = s("xh/t1/v1");
        for _ in 0..2 {
            assert_eq!(intake.check(&peer, 7, true, 10), Ok(()));
            intake.accept(&peer, 7, true, 10);
        }
        assert_eq!(
            intake.check(&peer, 7, true, 10),
            Err(IntakeRefusal::DocumentsPerDay {
                peer: peer.clone(),
                max: 2
            })
        );
        // Changes to documents already held are still taken.
        assert_eq!(intake.check(&peer, 7, false, 10), Ok(()));
        let counts = intake.peer(&peer).unwrap();
        assert_eq!(
            (
                counts.documents_accepted,
                counts.bytes_accepted,
                counts.refused_over_quota
            ),
            (2, 20, 1)
        );
        assert!(counts
            .last_refusal
            .as_deref()
            .unwrap()
            .contains("2 new documents a day"));
        assert!(intake.over_quota_today(&peer, 7));
    }

    #[test]
    fn bytes_past_the_daily_quota_are_refused() {
        let mut intake = small();
        let peer = s("xh/t1/v1");
        assert_eq!(intake.check(&peer, 7, false, 1_000), Ok(()));
        intake.accept(&peer, 7, false, 1_000);
        assert!(matches!(
            intake.check(&peer, 7, false, 1),
            Err(IntakeRefusal::BytesPerDay { max: 1_000, .. })
        ));
    }

    #[test]
    fn quotas_start_again_on_a_new_day_and_per_peer() {
        let mut intake = small();
        let (v1, v2) = (s("xh/t1/v1"), s("xh/t1/v2"));
        intake.accept(&v1, 7, true, 10);
        intake.accept(&v1, 7, true, 10);
        assert!(intake.check(&v1, 7, true, 10).is_err());
        // Another peer has its own quota.
        assert_eq!(intake.check(&v2, 7, true, 10), Ok(()));
        assert!(!intake.over_quota_today(&v2, 7));
        // The next day, by the time passed in.
        assert!(!intake.over_quota_today(&v1, 8));
        assert_eq!(intake.check(&v1, 8, true, 10), Ok(()));
        assert_eq!(intake.peer(&v1).unwrap().day, 8);
        assert_eq!(intake.peer(&v1).unwrap().documents_accepted, 0);
        assert_eq!(day_of(8 * DAY_MS + 5), 8);
    }

    #[test]
    fn an_unregistered_station_is_counted_with_its_name() {
        let mut intake = small();
        let peer = s("xh/t1/v1");
        let refusal = intake.refuse_unregistered(&peer, 3, &s("xh/t1/v1/x"));
        assert!(refusal.to_string().contains("xh/t1/v1/x"));
        let counts = intake.peer(&peer).unwrap();
        assert_eq!(counts.refused_unregistered, 1);
        assert!(!intake.over_quota_today(&peer, 3));
    }
}

#[cfg(test)]
mod session_tests;
