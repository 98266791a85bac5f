//! The wall clock, in Beijing time: the only place that reads it for domain
//! purposes (`today`, `now_ms`). Everything below the node — the protocol,
//! the store's replica — gets time passed in, which is what lets the
//! simulation run the same code on virtual time.

use civsync_protocol::Month;
use time::{Date, OffsetDateTime, UtcOffset};

/// China Standard Time: the whole network runs on Beijing time.
fn beijing_now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .to_offset(UtcOffset::from_hms(8, 0, 0).expect("UTC+8 is a valid offset"))
}

/// Today's date in Beijing.
pub fn today() -> Date {
    beijing_now().date()
}

pub fn this_month() -> Month {
    let today = today();
    Month {
        year: today.year() as u16,
        month: u8::from(today.month()),
    }
}

/// Milliseconds since the Unix epoch (for sync sessions and change times).
pub fn now_ms() -> u64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).unwrap_or(0)
}
