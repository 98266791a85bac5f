//! Virtual time, node clocks and the calendar.
//!
//! The simulation runs on one global virtual clock in milliseconds since the
//! start of the run. No node ever sees it: each node reads its own clock,
//! which has an offset and a drift (parts per million) and is what its sync
//! session is given as `now_ms` and what its clerk writes as a record's date.
//! The drift is bounded well below 100%, so every node clock is strictly
//! increasing in global time and a timer deadline on a node clock maps back to
//! exactly one global instant.

/// Global virtual time, milliseconds since the start of the run.
pub type SimMs = u64;

pub const SECOND_MS: SimMs = 1_000;
pub const MINUTE_MS: SimMs = 60 * SECOND_MS;
pub const HOUR_MS: SimMs = 60 * MINUTE_MS;
pub const DAY_MS: SimMs = 24 * HOUR_MS;

/// Largest drift accepted, in parts per million (1% — far worse than any PC).
pub const DRIFT_PPM_MAX: i64 = 10_000;

/// Unix time of the run's start: 2026-10-26 00:00 China Standard Time (a Monday), so a 30-day
/// run crosses a month boundary and exercises per-month documents.
pub const RUN_START_UNIX_MS: i64 = 1_792_944_000_000;

/// One node's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClock {
    pub offset_ms: i64,
    pub drift_ppm: i64,
}

impl NodeClock {
    pub const EXACT: NodeClock = NodeClock {
        offset_ms: 0,
        drift_ppm: 0,
    };

    pub fn new(offset_ms: i64, drift_ppm: i64) -> NodeClock {
        assert!(
            drift_ppm.abs() <= DRIFT_PPM_MAX,
            "drift {drift_ppm} ppm out of range"
        );
        NodeClock {
            offset_ms,
            drift_ppm,
        }
    }

    /// The node's reading (Unix milliseconds) at global instant `at`.
    pub fn local_unix_ms(&self, at: SimMs) -> u64 {
        let at = at as i128;
        let local = RUN_START_UNIX_MS as i128
            + at
            + at * self.drift_ppm as i128 / 1_000_000
            + self.offset_ms as i128;
        local.max(0) as u64
    }

    /// The first global instant at which the node's clock reads at least
    /// `local_unix_ms`; never earlier than `not_before`.
    pub fn global_at(&self, local_unix_ms: u64, not_before: SimMs) -> SimMs {
        let target = local_unix_ms as i128 - RUN_START_UNIX_MS as i128 - self.offset_ms as i128;
        let estimate = target * 1_000_000 / (1_000_000 + self.drift_ppm as i128);
        let mut at = estimate.max(not_before as i128) as SimMs;
        // Integer division may leave the estimate a few milliseconds off.
        while self.local_unix_ms(at) < local_unix_ms {
            at += 1;
        }
        while at > not_before && self.local_unix_ms(at - 1) >= local_unix_ms {
            at -= 1;
        }
        at
    }
}

/// A civil date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// The date of a Unix-milliseconds reading, in China Standard Time (UTC+8).
    pub fn of_unix_ms(unix_ms: u64) -> Date {
        let days = (unix_ms as i64 + 8 * HOUR_MS as i64).div_euclid(DAY_MS as i64);
        Date::from_days(days)
    }

    /// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    pub fn month(&self) -> civsync_protocol::Month {
        civsync_protocol::Month::new(self.year as u16, self.month)
            .expect("simulated dates lie in 2000-2200")
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_starts_on_the_stated_day() {
        assert_eq!(
            Date::of_unix_ms(NodeClock::EXACT.local_unix_ms(0)).to_string(),
            "2026-10-26"
        );
        assert_eq!(
            Date::of_unix_ms(NodeClock::EXACT.local_unix_ms(6 * DAY_MS)).to_string(),
            "2026-11-01"
        );
        assert_eq!(Date::from_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_days(19_782).to_string(), "2024-02-29");
    }

    #[test]
    fn timers_map_back_to_the_first_instant_the_clock_reaches() {
        for clock in [
            NodeClock::EXACT,
            NodeClock::new(-90_000, 300),
            NodeClock::new(45_000, -2_000),
        ] {
            for at in [0, 1, 999, 86_400_123, 30 * DAY_MS + 7] {
                let reading = clock.local_unix_ms(at);
                let back = clock.global_at(reading, 0);
                assert!(back <= at);
                assert_eq!(
                    clock.local_unix_ms(back),
                    reading.max(clock.local_unix_ms(back))
                );
                assert!(back == 0 || clock.local_unix_ms(back - 1) < reading);
            }
        }
    }

    #[test]
    fn node_clocks_never_run_backwards() {
        let clock = NodeClock::new(-5_000, -DRIFT_PPM_MAX);
        let mut last = 0;
        for at in (0..10_000_000).step_by(997) {
            let now = clock.local_unix_ms(at);
            assert!(now >= last);
            last = now;
        }
    }
}
