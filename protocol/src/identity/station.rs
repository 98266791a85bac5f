//! Stations and tiers.
//!
//! A station is named by its full path from the top of the deployment
//! (`xh/t03/v12`: county `xh`, township `t03`, village `v12`). Because the
//! path carries the whole ancestor chain, "is A an ancestor of B" is a prefix
//! test and needs no registry: scope and write authority can be decided from a
//! document id alone, when the document is created. Nothing here assumes three
//! tiers; a prefecture or province simply adds a segment on top.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest station path we accept, in bytes.
pub const STATION_PATH_BYTES_MAX: usize = 160;
/// Deepest tree we accept (province → ... → point is 6).
pub const STATION_DEPTH_MAX: usize = 8;
/// Longest single segment of a path.
pub const STATION_SEGMENT_BYTES_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StationIdError {
    #[error("station id is empty")]
    Empty,
    #[error("station id is {len} bytes; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("station id has {depth} levels; at most {max} are allowed")]
    TooDeep { depth: usize, max: usize },
    #[error("station id segment {segment:?} is empty or longer than {max} bytes")]
    BadSegmentLength { segment: String, max: usize },
    #[error("station id segment {segment:?} has character {character:?}; use a-z, A-Z, 0-9, '-' and '_'")]
    BadCharacter { segment: String, character: char },
}

/// Full path of a station, e.g. `xh/t03/v12`. Ordered, cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct StationId(String);

impl<'de> Deserialize<'de> for StationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::parsed_text::deserialize_parsed(deserializer, "a station path", StationId::parse)
    }
}

impl StationId {
    pub fn parse(text: &str) -> Result<StationId, StationIdError> {
        if text.is_empty() {
            return Err(StationIdError::Empty);
        }
        if text.len() > STATION_PATH_BYTES_MAX {
            return Err(StationIdError::TooLong {
                len: text.len(),
                max: STATION_PATH_BYTES_MAX,
            });
        }
        let depth = text.split('/').count();
        if depth > STATION_DEPTH_MAX {
            return Err(StationIdError::TooDeep {
                depth,
                max: STATION_DEPTH_MAX,
            });
        }
        for segment in text.split('/') {
            if segment.is_empty() || segment.len() > STATION_SEGMENT_BYTES_MAX {
                return Err(StationIdError::BadSegmentLength {
                    segment: segment.to_string(),
                    max: STATION_SEGMENT_BYTES_MAX,
                });
            }
            if let Some(character) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(StationIdError::BadCharacter {
                    segment: segment.to_string(),
                    character,
                });
            }
        }
        Ok(StationId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of levels: a county at the top of its deployment has depth 1.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    pub fn parent(&self) -> Option<StationId> {
        self.0
            .rfind('/')
            .map(|at| StationId(self.0[..at].to_string()))
    }

    /// The last path segment: the station's own code.
    pub fn code(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    pub fn child(&self, code: &str) -> Result<StationId, StationIdError> {
        StationId::parse(&format!("{}/{}", self.0, code))
    }

    /// Ancestors from the top down, not including `self`.
    pub fn ancestors(&self) -> Vec<StationId> {
        let mut out = Vec::with_capacity(self.depth());
        for (at, _) in self.0.match_indices('/') {
            out.push(StationId(self.0[..at].to_string()));
        }
        out
    }

    /// True if `self` is `other` or lies above it in the tree.
    pub fn is_ancestor_or_self_of(&self, other: &StationId) -> bool {
        other.0 == self.0
            || (other.0.len() > self.0.len()
                && other.0.starts_with(&self.0)
                && other.0.as_bytes()[self.0.len()] == b'/')
    }

    pub fn is_strict_ancestor_of(&self, other: &StationId) -> bool {
        self != other && self.is_ancestor_or_self_of(other)
    }
}

impl TryFrom<String> for StationId {
    type Error = StationIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        StationId::parse(&value)
    }
}

impl From<StationId> for String {
    fn from(value: StationId) -> Self {
        value.0
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StationId({})", self.0)
    }
}

impl std::str::FromStr for StationId {
    type Err = StationIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StationId::parse(s)
    }
}

/// Administrative level of a station. Ordered from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Province,
    Prefecture,
    /// 新时代文明实践中心: county, district or county-level city.
    County,
    /// 文明实践所: township or street.
    Township,
    /// 文明实践站: village or urban community.
    Village,
    /// 实践点 / 基地: points and bases below a village.
    Point,
}

impl Tier {
    pub const ALL: [Tier; 6] = [
        Tier::Province,
        Tier::Prefecture,
        Tier::County,
        Tier::Township,
        Tier::Village,
        Tier::Point,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Province => "province",
            Tier::Prefecture => "prefecture",
            Tier::County => "county",
            Tier::Township => "township",
            Tier::Village => "village",
            Tier::Point => "point",
        }
    }

    /// The key as certificates, documents and `civsync.toml` carry it; never
    /// the Chinese label (a certificate's tier is read strictly).
    pub fn parse(text: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|tier| tier.as_str() == text)
    }

    /// What a person types: the key or the Chinese label (`站`, `所`, `中心`).
    pub fn parse_input(text: &str) -> Option<Tier> {
        let text = text.trim();
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == text || tier.chinese() == text)
    }

    /// The refusal of an unknown tier, every choice as `中文 (english)`.
    pub fn unknown(text: &str) -> String {
        let choices: Vec<String> = Tier::ALL
            .iter()
            .map(|tier| format!("{} ({})", tier.chinese(), tier.as_str()))
            .collect();
        format!(
            "unknown tier {text:?}; expected one of {}",
            choices.join(", ")
        )
    }

    /// The tier of a station `levels` below (negative: above) one of this
    /// tier: one tier per level of the tree, as the registry assigns them.
    /// `None` off either end.
    pub fn shifted(self, levels: isize) -> Option<Tier> {
        let at = Tier::ALL.iter().position(|t| *t == self)? as isize + levels;
        usize::try_from(at)
            .ok()
            .and_then(|at| Tier::ALL.get(at).copied())
    }

    pub fn chinese(self) -> &'static str {
        match self {
            Tier::Province => "省",
            Tier::Prefecture => "市",
            Tier::County => "中心",
            Tier::Township => "所",
            Tier::Village => "站",
            Tier::Point => "点",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::parse_input(s).ok_or_else(|| Tier::unknown(s))
    }
}

/// A station as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    pub id: StationId,
    pub name: String,
    pub tier: Tier,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    #[test]
    fn a_tier_is_typed_as_its_key_or_its_chinese_label_and_a_refusal_lists_both() {
        assert_eq!("站".parse::<Tier>(), Ok(Tier::Village));
        assert_eq!("township".parse::<Tier>(), Ok(Tier::Township));
        assert_eq!(Tier::parse("站"), None, "certificates carry the key only");
        let error = "村".parse::<Tier>().unwrap_err();
        assert!(
            error.contains("中心 (county), 所 (township), 站 (village), 点 (point)"),
            "{error}"
        );
    }

    #[test]
    fn ancestry_is_a_path_prefix_on_segment_boundaries() {
        assert!(id("xh").is_ancestor_or_self_of(&id("xh/t03/v12")));
        assert!(id("xh/t03").is_ancestor_or_self_of(&id("xh/t03/v12")));
        assert!(id("xh/t03").is_ancestor_or_self_of(&id("xh/t03")));
        assert!(!id("xh/t03").is_strict_ancestor_of(&id("xh/t03")));
        // A shared string prefix is not ancestry.
        assert!(!id("xh/t0").is_ancestor_or_self_of(&id("xh/t03/v12")));
        assert!(!id("xh/t03/v12").is_ancestor_or_self_of(&id("xh/t03")));
        assert!(!id("xh/t04").is_ancestor_or_self_of(&id("xh/t03/v12")));
    }

    #[test]
    fn ancestors_and_parent() {
        let v = id("zk/xh/t03/v12");
        assert_eq!(v.ancestors(), vec![id("zk"), id("zk/xh"), id("zk/xh/t03")]);
        assert_eq!(v.parent(), Some(id("zk/xh/t03")));
        assert_eq!(id("zk").parent(), None);
        assert_eq!(v.code(), "v12");
        assert_eq!(v.depth(), 4);
    }

    #[test]
    fn bad_ids_are_refused_with_the_reason() {
        assert_eq!(StationId::parse(""), Err(StationIdError::Empty));
        assert!(matches!(
            StationId::parse("xh//v1"),
            Err(StationIdError::BadSegmentLength { .. })
        ));
        assert!(matches!(
            StationId::parse("xh/v 1"),
            Err(StationIdError::BadCharacter { character: ' ', .. })
        ));
        assert!(matches!(
            StationId::parse("a/b/c/d/e/f/g/h/i"),
            Err(StationIdError::TooDeep { depth: 9, .. })
        ));
        assert!(matches!(
            StationId::parse(&"a".repeat(40)),
            Err(StationIdError::BadSegmentLength { .. })
        ));
    }

    proptest! {
        #[test]
        fn every_ancestor_contains_the_station(segments in proptest::collection::vec("[a-z0-9]{1,6}", 1..7)) {
            let station = id(&segments.join("/"));
            for ancestor in station.ancestors() {
                prop_assert!(ancestor.is_strict_ancestor_of(&station));
                prop_assert!(!station.is_ancestor_or_self_of(&ancestor));
            }
            prop_assert_eq!(station.ancestors().len() + 1, station.depth());
        }
    }
}
