//! Which stations are retired (撤并) as of which day, for the questions
//! "is this station expected to report in this period?" and "is it quiet?".
//!
//! Invariants:
//! - retiring a station retires its subtree: a village's points and bases
//!   are retired on the earliest `retired_on` of the station and its
//!   ancestors;
//! - a station is expected to report in a month when it existed on at
//!   least one day of it, i.e. the month's first day is before
//!   `retired_on`. So a station retired on 2026-11-15 still owes November,
//!   one retired on 2026-11-01 owes nothing from November on;
//! - retirement changes who is *expected* to report, never the figures:
//!   activities and hours a retired station recorded, before or after its
//!   retirement, count as recorded (nothing is dropped or hidden).

use super::figures::Period;
use crate::identity::station::StationId;
use std::collections::BTreeMap;
use time::{Date, Month as CalendarMonth};

/// Retired stations with their `retired_on`, as the registry says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetiredStations {
    retired_on: BTreeMap<StationId, Date>,
}

impl RetiredStations {
    pub fn new(retired_on: impl IntoIterator<Item = (StationId, Date)>) -> Self {
        RetiredStations {
            retired_on: retired_on.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.retired_on.is_empty()
    }

    /// The day `station` stopped being expected to report: the earliest
    /// retirement of itself or an ancestor. `None` when none is retired.
    pub fn retired_on(&self, station: &StationId) -> Option<Date> {
        if self.retired_on.is_empty() {
            return None;
        }
        station
            .ancestors()
            .iter()
            .chain(std::iter::once(station))
            .filter_map(|s| self.retired_on.get(s).copied())
            .min()
    }

    /// Was `station` still open on the first day of `period`, so that it is
    /// expected to report for it?
    pub fn expected_in(&self, station: &StationId, period: Period) -> bool {
        let Some(retired_on) = self.retired_on(station) else {
            return true;
        };
        let first = period.months()[0];
        match first_day(first) {
            Some(first_day) => first_day < retired_on,
            // A month no calendar holds cannot be after any retirement.
            None => true,
        }
    }
}

fn first_day(month: crate::identity::document_id::Month) -> Option<Date> {
    let calendar = CalendarMonth::try_from(month.month).ok()?;
    Date::from_calendar_date(i32::from(month.year), calendar, 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::document_id::Month;
    use crate::stats::Quarter;
    use time::macros::date;

    fn id(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    #[test]
    fn a_station_owes_every_month_it_was_open_on_at_least_one_day() {
        let retired = RetiredStations::new([(id("xh/t1/v1"), date!(2026 - 11 - 15))]);
        let month = |m| Period::Month(Month::new(2026, m).unwrap());
        assert!(retired.expected_in(&id("xh/t1/v1"), month(10)));
        assert!(
            retired.expected_in(&id("xh/t1/v1"), month(11)),
            "open 11-01..14"
        );
        assert!(!retired.expected_in(&id("xh/t1/v1"), month(12)));
        assert!(retired.expected_in(&id("xh/t1/v2"), month(12)), "a sibling");
        assert!(retired.expected_in(&id("xh/t1"), month(12)), "its parent");

        let on_the_first = RetiredStations::new([(id("xh/t1/v1"), date!(2026 - 11 - 01))]);
        assert!(on_the_first.expected_in(&id("xh/t1/v1"), month(10)));
        assert!(!on_the_first.expected_in(&id("xh/t1/v1"), month(11)));
        let q4 = Period::Quarter(Quarter::new(2026, 4).unwrap());
        assert!(
            on_the_first.expected_in(&id("xh/t1/v1"), q4),
            "open in October"
        );
        let q1 = Period::Quarter(Quarter::new(2027, 1).unwrap());
        assert!(!on_the_first.expected_in(&id("xh/t1/v1"), q1));
    }

    #[test]
    fn retiring_a_station_retires_its_subtree_from_the_earliest_date() {
        let retired = RetiredStations::new([
            (id("xh/t1"), date!(2026 - 06 - 01)),
            (id("xh/t1/v1"), date!(2026 - 03 - 01)),
        ]);
        assert_eq!(
            retired.retired_on(&id("xh/t1/v1/p1")),
            Some(date!(2026 - 03 - 01))
        );
        assert_eq!(
            retired.retired_on(&id("xh/t1/v2")),
            Some(date!(2026 - 06 - 01))
        );
        assert_eq!(retired.retired_on(&id("xh/t2/v1")), None);
        assert_eq!(retired.retired_on(&id("xh")), None);
        assert!(RetiredStations::default().is_empty());
    }
}
