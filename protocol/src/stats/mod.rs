//! Layer: statistics. May use `replica`, `sync` (heads digests), `layout`,
//! `storage`, `domain`, `identity`. Must never use `service` (figures are
//! read from documents, never from the operations that wrote them) and never
//! write a document.
//!
//! County statistics ("每月一统计、每季一通报"), kept up to date incrementally.
//!
//! - [`Contribution`]: what one document adds (computed from it alone).
//! - [`StatsIndex`]: contributions by document plus running totals per station
//!   and per ancestor; applying a changed document costs O(that document).
//! - [`recompute_from_scratch`]: the same [`Statistics`] computed directly
//!   from documents, by a separate code path; the property tests and the
//!   simulator's aggregates checker compare the two.
//! - [`StoredStats`]: the index persisted next to the documents (one entry
//!   per document, tagged with its heads digest), reloaded at start.
//! - [`Freshness`]: per station, the newest change held from it and when it
//!   was last heard from; quiet stations.
//! - [`RetiredStations`]: who is no longer expected to report, from when.
//! - [`list_conflicts`]: conflicting fields across many documents.
//! - [`county_month`] / [`held_statistics`]: a county's figures as its
//!   statistics documents carry them up, and as an office above reads them.
//!
//! Figures of a station are "rolled up" over its subtree: a township's figures
//! include its villages', a county's include everything below it, because a
//! station's path names its ancestors (`xh/t03/v12`).

mod conflicts;
mod contribution;
mod delta;
mod figures;
mod index;
mod published;
mod retired;
mod scan;
mod scratch;
mod stored;

pub use crate::replica::freshness::{Freshness, QuietStation, StationFreshness, DAY_MS};
pub use conflicts::{
    list_conflicts, ConflictListing, DocumentConflict, UnreadableDocument, CONFLICTS_LISTED_MAX,
};
pub use contribution::{
    month_of, ActivitiesContribution, ActivityCounts, CellCounts, Contribution, MonthCount,
    OrderCounts, OrdersContribution, RosterContribution, RosterEntry, VolunteerService,
};
pub use figures::{CategoryCounts, Figures, FormCounts, Period, Quarter, StatsError};
pub use index::{Coverage, StationRow, StatsIndex, StatsSnapshot, VolunteerStanding};
pub use published::{county_month, figures_of, held_statistics, station_counts, HeldStatistics};
pub use retired::RetiredStations;
pub use scratch::{
    recompute_from_scratch, MonthStatistics, ScratchCount, StationStatistics, Statistics,
    VolunteerTally,
};
pub use stored::{
    decode_entry, decode_stored, encode_entry, stats_key, DecodedStored, FoldedOpen, OpenSnapshot,
    StatsOpenReport, StatsRefreshReport, StoredEntry, StoredStats, CONTRIBUTION_FORMAT,
    STATS_BATCH_ENTRIES_MAX, STATS_ENTRY_BYTES_MAX,
};

#[cfg(test)]
mod tests;
