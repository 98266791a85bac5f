//! The figures a station is counted by, and the periods they cover (a
//! month, a quarter).

use super::contribution::{ActivityCounts, OrderCounts};
use crate::domain::model::{Category, Form};
use crate::identity::document_id::{DocumentId, Month};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Calendar quarter, `YYYYQn` (the quarterly bulletin's period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Quarter {
    pub year: u16,
    pub quarter: u8,
}

impl Quarter {
    pub fn new(year: u16, quarter: u8) -> Option<Quarter> {
        (Month::new(year, 1).is_some() && (1..=4).contains(&quarter))
            .then_some(Quarter { year, quarter })
    }

    pub fn of(month: Month) -> Quarter {
        Quarter {
            year: month.year,
            quarter: month.quarter(),
        }
    }

    /// `2026Q4` (a lower-case `q` is accepted too).
    pub fn parse(text: &str) -> Option<Quarter> {
        let (year, quarter) = text.split_once(['Q', 'q'])?;
        if year.len() != 4 || quarter.len() != 1 {
            return None;
        }
        Quarter::new(year.parse().ok()?, quarter.parse().ok()?)
    }

    pub fn months(self) -> [Month; 3] {
        let first = (self.quarter - 1) * 3 + 1;
        [0, 1, 2].map(|offset| Month {
            year: self.year,
            month: first + offset,
        })
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}Q{}", self.year, self.quarter)
    }
}

impl std::str::FromStr for Quarter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quarter::parse(s)
            .ok_or_else(|| format!("quarter {s:?} is not of the form YYYYQn, n from 1 to 4"))
    }
}

/// The period a query covers: a month, or a quarter for the bulletin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Month(Month),
    Quarter(Quarter),
}

impl Period {
    pub fn months(self) -> Vec<Month> {
        match self {
            Period::Month(month) => vec![month],
            Period::Quarter(quarter) => quarter.months().to_vec(),
        }
    }

    pub fn last_month(self) -> Month {
        match self {
            Period::Month(month) => month,
            Period::Quarter(quarter) => quarter.months()[2],
        }
    }

    /// `2026-11` or `2026Q4`.
    pub fn parse(text: &str) -> Option<Period> {
        Month::parse(text)
            .map(Period::Month)
            .or_else(|| Quarter::parse(text).map(Period::Quarter))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Month(month) => month.fmt(f),
            Period::Quarter(quarter) => quarter.fmt(f),
        }
    }
}

/// Activity counts of one service category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    pub category: Category,
    pub counts: ActivityCounts,
}

/// Activity counts of one activity form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormCounts {
    pub form: Form,
    pub counts: ActivityCounts,
}

/// The figures of one station (own, or rolled up over its subtree) for one
/// period: what a monthly table row or a bulletin line shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub counts: ActivityCounts,
    pub orders: OrderCounts,
    /// Live volunteers registered up to the end of the period.
    pub volunteers_registered: u64,
    /// Registered during the period.
    pub volunteers_new: u64,
    /// Distinct volunteers with at least one service record in the period.
    pub volunteers_active: u64,
    /// Live teams now (teams carry no founding date).
    pub teams: u64,
    /// Non-empty categories, in category order.
    pub by_category: Vec<CategoryCounts>,
    /// Non-empty forms, in form order.
    pub by_form: Vec<FormCounts>,
}

impl Figures {
    /// Service hours as a decimal number of hours.
    pub fn hours(&self) -> f64 {
        self.counts.hours_centi as f64 / 100.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// The document could not be read; its last good contribution is kept.
    #[error("document {document} cannot be read for statistics: {reason}")]
    Unreadable {
        document: DocumentId,
        reason: String,
    },
    /// A contribution offered for a document it was not computed from.
    #[error("contribution for {found} offered for document {document}")]
    Mismatch { document: DocumentId, found: String },
    #[error("statistics snapshot is malformed: {reason}")]
    Snapshot { reason: String },
}
