//! Document ids, and the two rules that follow from them: scope (which node
//! holds a document) and write authority (which station may change it).
//!
//! A document id names its kind and its owner station's full path, so both
//! rules are decided when the document is created and never by looking inside
//! it or filtering at sync time:
//!
//! - roster / activities / orders / approval documents carry personal or
//!   operational data of one station; they live at the owner and its
//!   ancestors (data flows up, never sideways or down);
//! - personal data (roster, activities with their service records, orders
//!   with their requesters) stops at the county: an ancestor above the
//!   county tier (prefecture, province) never holds it, and receives only
//!   statistics. Which ancestor is the county cannot be read from a path (a
//!   deployment may add levels on top), so the holder's tier — from its
//!   configuration, or for a peer from its certificate — is an input;
//! - reference documents (station registry, menus, themes, dispatches) are
//!   written above and read below: they live at the owner, its whole subtree
//!   and its ancestors;
//! - statistics documents carry a county's figures of one month (counts and
//!   sums per station, no people) to the offices above it: they live at the
//!   owner and its ancestors, never its subtree (a township computes its own
//!   figures from the documents it holds), and only the owner writes them.
//!
//! Any station may write a document it owns or that is owned below it, except
//! an approval (only above its owner) and statistics (only the owner).

use crate::identity::station::{StationId, StationIdError, Tier};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const DOCUMENT_ID_BYTES_MAX: usize = 256;
pub const REFERENCE_NAME_BYTES_MAX: usize = 32;

/// Calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    pub year: u16,
    pub month: u8,
}

impl Month {
    pub fn new(year: u16, month: u8) -> Option<Month> {
        ((2000..=2200).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        Month::new(year.parse().ok()?, month.parse().ok()?)
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn quarter(self) -> u8 {
        (self.month - 1) / 3 + 1
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Month::parse(s).ok_or_else(|| format!("month {s:?} is not of the form YYYY-MM"))
    }
}

/// What a document holds. The kind decides the scope rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocumentKind {
    /// Volunteers registered at the station and the station's teams.
    Roster,
    /// Activities held by the station in one month, with their service records.
    Activities(Month),
    /// Citizens' service orders placed at the station in one month (四单).
    Orders(Month),
    /// Approval state of the station's month (village → township → county).
    Approval(Month),
    /// A county's figures of one month, per station of its subtree: what the
    /// offices above the county (prefecture, province) receive instead of
    /// rosters, activities and orders.
    Statistics(Month),
    /// Reference data written at the owner and read by its whole subtree:
    /// `registry`, `menu`, `themes`, `dispatches`, `categories`.
    Reference(String),
}

impl DocumentKind {
    /// The word written as `meta.kind` and before the first `:` of an id.
    pub fn name(&self) -> &'static str {
        match self {
            DocumentKind::Roster => "roster",
            DocumentKind::Activities(_) => "activities",
            DocumentKind::Orders(_) => "orders",
            DocumentKind::Approval(_) => "approval",
            DocumentKind::Statistics(_) => "statistics",
            DocumentKind::Reference(_) => "reference",
        }
    }

    pub fn flows_down(&self) -> bool {
        matches!(self, DocumentKind::Reference(_))
    }

    /// Does this kind hold people's personal data (volunteers, who served,
    /// who asked for a service)? Such documents stop at the county tier.
    /// Approval documents hold decisions and figures, not people.
    pub fn is_personal(&self) -> bool {
        matches!(
            self,
            DocumentKind::Roster | DocumentKind::Activities(_) | DocumentKind::Orders(_)
        )
    }

    pub fn month(&self) -> Option<Month> {
        match self {
            DocumentKind::Activities(m)
            | DocumentKind::Orders(m)
            | DocumentKind::Approval(m)
            | DocumentKind::Statistics(m) => Some(*m),
            DocumentKind::Roster | DocumentKind::Reference(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentIdError {
    #[error("document id is {len} bytes; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("document id {id:?} is not of the form kind:station[:qualifier]")]
    Shape { id: String },
    #[error("document id {id:?} has unknown kind {kind:?}")]
    UnknownKind { id: String, kind: String },
    #[error("document id {id:?} has bad month {month:?}; expected YYYY-MM")]
    BadMonth { id: String, month: String },
    #[error("document id {id:?} has bad reference name {name:?}")]
    BadReferenceName { id: String, name: String },
    #[error("document id {id:?} has a bad station: {source}")]
    BadStation { id: String, source: StationIdError },
}

/// May a node of this tier hold personal documents owned by stations below
/// it? The county and everything below: personal data stops at the county.
pub fn holds_others_personal_data(tier: Tier) -> bool {
    tier >= Tier::County
}

/// `roster:xh/t03/v12`, `activities:xh/t03/v12:2026-11`, `reference:xh:menu`.
/// The text form is also the storage key and the sort order of digests.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId {
    pub owner: StationId,
    pub kind: DocumentKind,
}

impl DocumentId {
    pub fn roster(owner: &StationId) -> DocumentId {
        DocumentId {
            owner: owner.clone(),
            kind: DocumentKind::Roster,
        }
    }
    pub fn activities(owner: &StationId, month: Month) -> DocumentId {
        DocumentId {
            owner: owner.clone(),
            kind: DocumentKind::Activities(month),
        }
    }
    pub fn orders(owner: &StationId, month: Month) -> DocumentId {
        DocumentId {
            owner: owner.clone(),
            kind: DocumentKind::Orders(month),
        }
    }
    pub fn approval(owner: &StationId, month: Month) -> DocumentId {
        DocumentId {
            owner: owner.clone(),
            kind: DocumentKind::Approval(month),
        }
    }
    pub fn statistics(owner: &StationId, month: Month) -> DocumentId {
        DocumentId {
            owner: owner.clone(),
            kind: DocumentKind::Statistics(month),
        }
    }
    pub fn reference(owner: &StationId, name: &str) -> Result<DocumentId, DocumentIdError> {
        let id = DocumentId {
            owner: owner.clone(),
            kind: DocumentKind::Reference(name.to_string()),
        };
        if !valid_reference_name(name) {
            return Err(DocumentIdError::BadReferenceName {
                id: id.to_string(),
                name: name.to_string(),
            });
        }
        Ok(id)
    }

    pub fn parse(text: &str) -> Result<DocumentId, DocumentIdError> {
        if text.len() > DOCUMENT_ID_BYTES_MAX {
            return Err(DocumentIdError::TooLong {
                len: text.len(),
                max: DOCUMENT_ID_BYTES_MAX,
            });
        }
        let shape = || DocumentIdError::Shape {
            id: text.to_string(),
        };
        let mut parts = text.split(':');
        let kind = parts.next().ok_or_else(shape)?;
        let station = parts.next().ok_or_else(shape)?;
        let qualifier = parts.next();
        if parts.next().is_some() {
            return Err(shape());
        }
        let owner = StationId::parse(station).map_err(|source| DocumentIdError::BadStation {
            id: text.to_string(),
            source,
        })?;
        let month = |q: Option<&str>| -> Result<Month, DocumentIdError> {
            let q = q.ok_or_else(shape)?;
            Month::parse(q).ok_or_else(|| DocumentIdError::BadMonth {
                id: text.to_string(),
                month: q.to_string(),
            })
        };
        let kind = match kind {
            "roster" if qualifier.is_none() => DocumentKind::Roster,
            "activities" => DocumentKind::Activities(month(qualifier)?),
            "orders" => DocumentKind::Orders(month(qualifier)?),
            "approval" => DocumentKind::Approval(month(qualifier)?),
            "statistics" => DocumentKind::Statistics(month(qualifier)?),
            "reference" => {
                let name = qualifier.ok_or_else(shape)?;
                if !valid_reference_name(name) {
                    return Err(DocumentIdError::BadReferenceName {
                        id: text.to_string(),
                        name: name.to_string(),
                    });
                }
                DocumentKind::Reference(name.to_string())
            }
            "roster" => return Err(shape()),
            other => {
                return Err(DocumentIdError::UnknownKind {
                    id: text.to_string(),
                    kind: other.to_string(),
                })
            }
        };
        Ok(DocumentId { owner, kind })
    }

    /// Does a node of station `holder`, of tier `holder_tier`, keep (and
    /// receive) this document? Personal documents reach an ancestor only if
    /// it is at the county tier or below.
    pub fn in_scope_of(&self, holder: &StationId, holder_tier: Tier) -> bool {
        if self.kind.is_personal()
            && holder != &self.owner
            && !holds_others_personal_data(holder_tier)
        {
            return false;
        }
        holder.is_ancestor_or_self_of(&self.owner)
            || (self.kind.flows_down() && self.owner.is_ancestor_or_self_of(holder))
    }

    /// May a change made by station `writer` be applied to this document?
    /// The owner or an ancestor; for an approval only an ancestor, so a
    /// station can never approve (or un-send-back) its own month, not even
    /// by writing the document by hand; for statistics only the owner: the
    /// figures are the county's own reckoning, and nobody else (a township
    /// below, a prefecture above) may change what it reported.
    pub fn writable_by(&self, writer: &StationId) -> bool {
        match self.kind {
            DocumentKind::Approval(_) => writer.is_strict_ancestor_of(&self.owner),
            DocumentKind::Statistics(_) => writer == &self.owner,
            _ => writer.is_ancestor_or_self_of(&self.owner),
        }
    }

    pub fn month(&self) -> Option<Month> {
        self.kind.month()
    }
}

fn valid_reference_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= REFERENCE_NAME_BYTES_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DocumentKind::Roster => write!(f, "roster:{}", self.owner),
            DocumentKind::Activities(m) => write!(f, "activities:{}:{m}", self.owner),
            DocumentKind::Orders(m) => write!(f, "orders:{}:{m}", self.owner),
            DocumentKind::Approval(m) => write!(f, "approval:{}:{m}", self.owner),
            DocumentKind::Statistics(m) => write!(f, "statistics:{}:{m}", self.owner),
            DocumentKind::Reference(name) => write!(f, "reference:{}:{name}", self.owner),
        }
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl std::str::FromStr for DocumentId {
    type Err = DocumentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocumentId::parse(s)
    }
}

impl Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DocumentId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    #[test]
    fn text_form_round_trips() {
        for text in [
            "roster:xh/t03/v12",
            "activities:xh/t03/v12:2026-11",
            "orders:xh/t01:2026-01",
            "approval:xh/t03:2026-12",
            "statistics:zk/xh:2026-12",
            "reference:xh:menu",
        ] {
            assert_eq!(DocumentId::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_ids_name_what_is_wrong() {
        assert!(matches!(
            DocumentId::parse("roster"),
            Err(DocumentIdError::Shape { .. })
        ));
        assert!(matches!(
            DocumentId::parse("roster:xh:extra"),
            Err(DocumentIdError::Shape { .. })
        ));
        assert!(matches!(
            DocumentId::parse("notes:xh"),
            Err(DocumentIdError::UnknownKind { .. })
        ));
        assert!(matches!(
            DocumentId::parse("activities:xh:2026-13"),
            Err(DocumentIdError::BadMonth { .. })
        ));
        assert!(matches!(
            DocumentId::parse("reference:xh:Menu"),
            Err(DocumentIdError::BadReferenceName { .. })
        ));
        assert!(matches!(
            DocumentId::parse("roster:x h"),
            Err(DocumentIdError::BadStation { .. })
        ));
    }

    #[test]
    fn personal_data_flows_up_never_sideways_or_down() {
        let roster = DocumentId::roster(&station("xh/t03/v12"));
        assert!(roster.in_scope_of(&station("xh/t03/v12"), Tier::County));
        assert!(roster.in_scope_of(&station("xh/t03"), Tier::County));
        assert!(roster.in_scope_of(&station("xh"), Tier::County));
        assert!(
            !roster.in_scope_of(&station("xh/t03/v13"), Tier::County),
            "sibling village"
        );
        assert!(
            !roster.in_scope_of(&station("xh/t04"), Tier::County),
            "other township"
        );
        assert!(
            !roster.in_scope_of(&station("xh/t03/v12/p1"), Tier::County),
            "point below the village"
        );
    }

    #[test]
    fn personal_data_stops_at_the_county() {
        let month = Month::new(2026, 11).unwrap();
        let village = station("zk/xh/t03/v12");
        let prefecture = station("zk");
        for document in [
            DocumentId::roster(&village),
            DocumentId::activities(&village, month),
            DocumentId::orders(&village, month),
            DocumentId::roster(&station("zk/xh")),
        ] {
            assert!(document.in_scope_of(&station("zk/xh"), Tier::County));
            assert!(
                !document.in_scope_of(&prefecture, Tier::Prefecture),
                "{document} reached the prefecture"
            );
            assert!(!document.in_scope_of(&prefecture, Tier::Province));
        }
        assert!(
            DocumentId::approval(&village, month).in_scope_of(&prefecture, Tier::Prefecture),
            "approvals hold decisions, not people"
        );
        assert!(
            DocumentId::roster(&prefecture).in_scope_of(&prefecture, Tier::Prefecture),
            "an office above the county keeps its own roster"
        );
    }

    #[test]
    fn statistics_reach_the_county_and_the_offices_above_it_but_not_its_subtree() {
        let statistics = DocumentId::statistics(&station("zk/xh"), Month::new(2026, 11).unwrap());
        assert!(statistics.in_scope_of(&station("zk/xh"), Tier::County));
        assert!(
            statistics.in_scope_of(&station("zk"), Tier::Prefecture),
            "the prefecture receives the county's figures"
        );
        assert!(
            !statistics.in_scope_of(&station("sd"), Tier::Province),
            "a province that is not above the county"
        );
        assert!(
            DocumentId::statistics(&station("sd/zk/xh"), Month::new(2026, 11).unwrap())
                .in_scope_of(&station("sd"), Tier::Province),
            "the province above the prefecture"
        );
        assert!(
            !statistics.in_scope_of(&station("zk/xh/t03"), Tier::Township),
            "a township computes its own figures"
        );
        assert!(!statistics.in_scope_of(&station("zk/xh/t03/v12"), Tier::Village));
        assert!(
            !statistics.in_scope_of(&station("zk/other"), Tier::County),
            "a neighbouring county does not"
        );
    }

    #[test]
    fn only_the_owner_county_writes_its_statistics() {
        let statistics = DocumentId::statistics(&station("zk/xh"), Month::new(2026, 11).unwrap());
        assert!(statistics.writable_by(&station("zk/xh")));
        assert!(
            !statistics.writable_by(&station("zk/xh/t03")),
            "a township may not write the county's figures"
        );
        assert!(!statistics.writable_by(&station("zk/xh/t03/v12")));
        assert!(
            !statistics.writable_by(&station("zk")),
            "the prefecture reads, never rewrites, what a county reported"
        );
        assert!(!statistics.writable_by(&station("zk/other")));
    }

    #[test]
    fn reference_data_flows_down_the_subtree_only() {
        let menu = DocumentId::reference(&station("zk/xh"), "menu").unwrap();
        assert!(menu.in_scope_of(&station("zk/xh/t03/v12"), Tier::County));
        assert!(
            menu.in_scope_of(&station("zk"), Tier::Prefecture),
            "the prefecture above sees it"
        );
        assert!(
            !menu.in_scope_of(&station("zk/other"), Tier::County),
            "a neighbouring county does not"
        );
        let township_menu = DocumentId::reference(&station("xh/t03"), "menu").unwrap();
        assert!(!township_menu.in_scope_of(&station("xh/t04/v1"), Tier::County));
    }

    #[test]
    fn only_owner_and_ancestors_write() {
        let activities =
            DocumentId::activities(&station("xh/t03/v12"), Month::new(2026, 11).unwrap());
        assert!(activities.writable_by(&station("xh/t03/v12")));
        assert!(activities.writable_by(&station("xh/t03")));
        assert!(activities.writable_by(&station("xh")));
        assert!(!activities.writable_by(&station("xh/t03/v13")));
        assert!(!activities.writable_by(&station("xh/t03/v12/p1")));
        let menu = DocumentId::reference(&station("xh"), "menu").unwrap();
        assert!(
            !menu.writable_by(&station("xh/t03")),
            "a township cannot edit the county menu"
        );
        let approval = DocumentId::approval(&station("xh/t03/v12"), Month::new(2026, 11).unwrap());
        assert!(
            !approval.writable_by(&station("xh/t03/v12")),
            "a village cannot approve its own month"
        );
        assert!(approval.writable_by(&station("xh/t03")));
        assert!(approval.writable_by(&station("xh")));
        assert!(!approval.writable_by(&station("xh/t04")));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,300}") {
            let _ = DocumentId::parse(&text);
        }

        #[test]
        fn writers_always_hold_what_they_may_write(
            owner in proptest::collection::vec("[a-z]{1,3}", 1..5),
            writer in proptest::collection::vec("[a-z]{1,3}", 1..5),
        ) {
            let owner = station(&owner.join("/"));
            let writer = station(&writer.join("/"));
            let month = Month::new(2026, 11).unwrap();
            for doc in [DocumentId::roster(&owner), DocumentId::reference(&owner, "menu").unwrap(), DocumentId::approval(&owner, month), DocumentId::statistics(&owner, month)] {
                if doc.writable_by(&writer) {
                    prop_assert!(doc.in_scope_of(&writer, Tier::County));
                }
            }
        }
    }
}
