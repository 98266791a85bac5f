//! A county keeps its statistics documents current: after its figures
//! change it rewrites the statistics document of every month whose figures
//! differ from what it last wrote, so the offices above the county
//! (prefecture, province), which never hold rosters, activities or orders,
//! receive the county's figures.
//!
//! ```text
//! statistics:<county>:<YYYY-MM>   stations {<station>: {activities, hours_centi, ...}}
//! ```
//!
//! - Only a county-tier node publishes ([`publishes_statistics`]), and only
//!   its own documents (the id's write rule: only the owner writes them).
//! - At most once per [`STATISTICS_REWRITE_INTERVAL_MS`] ([`StatisticsPublisher::due`]):
//!   a village syncing a week of records changes the figures hundreds of
//!   times, and each rewrite is a change the county keeps and sends upward.
//! - A month is compared with what this publisher last wrote before its
//!   document is touched, and only the stations whose figures differ from
//!   it are read and written (`put_statistics_changed`); with nothing
//!   remembered (a cold start) every station is read, and the layout writes
//!   only fields whose value differs from the document's. An unchanged
//!   month makes no change either way.
//! - The months: every month the county's statistics count anything in,
//!   every month remembered, and every month it holds a document for (a
//!   month whose last activity was deleted is written back to zeros).

use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::Tier;
use crate::layout::{self, MonthCounts};
use crate::replica::{CommitError, Replica};
use crate::stats::{county_month, StatsIndex};
use crate::storage::Storage;
use crate::sync::host::HeadsDigest;
use std::collections::{BTreeMap, BTreeSet};

/// Least time between two rewrites of a county's statistics documents.
pub const STATISTICS_REWRITE_INTERVAL_MS: i64 = 60_000;

/// Does a node of this tier publish statistics documents? The county only:
/// it holds every document of its subtree, and it is where personal data
/// stops.
pub fn publishes_statistics(tier: Tier) -> bool {
    tier == Tier::County
}

/// What one [`StatisticsPublisher::publish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Months compared with what was last written.
    pub months_checked: usize,
    /// Months whose document got a change.
    pub months_written: Vec<Month>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statistics of {month} not written: {reason}")]
pub struct PublishError {
    pub month: Month,
    pub reason: String,
}

/// What a county last wrote into each month's statistics document, and
/// when it last published. Kept in memory: a restart starts empty and
/// compares every month with its document once.
#[derive(Debug, Clone, Default)]
pub struct StatisticsPublisher {
    written: BTreeMap<Month, MonthCounts>,
    /// Each month document's heads right after this publisher wrote it:
    /// while they stand, the document reads as `written` (anything that
    /// arrived since, such as the county's own document sent back from
    /// above after a lost disk, moves them).
    heads_written: BTreeMap<Month, HeadsDigest>,
    last_run_ms: Option<i64>,
}

impl StatisticsPublisher {
    pub fn new() -> StatisticsPublisher {
        StatisticsPublisher::default()
    }

    /// Has [`STATISTICS_REWRITE_INTERVAL_MS`] passed since the last run?
    pub fn due(&self, now_ms: i64) -> bool {
        self.last_run_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= STATISTICS_REWRITE_INTERVAL_MS)
    }

    /// Would a run now write anything? (The figures differ from what was
    /// last written, for some month; the simulation waits for this before
    /// it calls the network quiet.)
    pub fn behind(&self, index: &StatsIndex, county: &crate::StationId) -> bool {
        let months: BTreeSet<Month> = index
            .months_of(county)
            .into_iter()
            .chain(self.written.keys().copied())
            .collect();
        months
            .into_iter()
            .any(|month| self.written.get(&month) != Some(&county_month(index, county, month)))
    }

    /// Bring the replica's own statistics documents in line with `index`
    /// (the statistics of this county, refreshed by the caller). One commit
    /// per month whose figures changed; stops at the first failure (the
    /// months before it stay written, the rest are tried at the next run).
    pub fn publish<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        index: &StatsIndex,
        now_ms: i64,
    ) -> Result<PublishReport, PublishError> {
        self.last_run_ms = Some(now_ms);
        let county = replica.local().clone();
        let held: Vec<Month> = replica
            .documents_where(|id| {
                id.owner == county && matches!(id.kind, DocumentKind::Statistics(_))
            })
            .into_iter()
            .filter_map(|id| id.month())
            .collect();
        let months: BTreeSet<Month> = index
            .months_of(&county)
            .into_iter()
            .chain(self.written.keys().copied())
            .chain(held)
            .collect();
        let mut report = PublishReport::default();
        for month in months {
            report.months_checked += 1;
            let figures = county_month(index, &county, month);
            if self.written.get(&month) == Some(&figures) {
                continue;
            }
            let document = DocumentId::statistics(&county, month);
            let held = replica.holds(&document);
            if faults::armed(Fault::StaleStatistics) && held {
                // The injected defect: a month once written is taken to be
                // up to date and never written again.
                self.written.insert(month, figures);
                continue;
            }
            if figures.is_empty() && !held {
                // Nothing to say, and saying it would make a document.
                self.written.insert(month, figures);
                continue;
            }
            let unmoved = replica
                .heads_digest(&document)
                .is_some_and(|now| self.heads_written.get(&month) == Some(&now));
            let outcome = replica
                .commit(&document, |doc| match self.written.get(&month) {
                    Some(written) if unmoved => {
                        layout::put_statistics_changed(doc, &figures, written)
                    }
                    _ => layout::put_statistics(doc, &figures),
                })
                .map_err(|error| PublishError {
                    month,
                    reason: match error {
                        CommitError::Mutate(e) => e.to_string(),
                        other => other.to_string(),
                    },
                })?;
            if outcome.changes > 0 {
                report.months_written.push(month);
            }
            if let Some(digest) = replica.heads_digest(&document) {
                self.heads_written.insert(month, digest);
            }
            self.written.insert(month, figures);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Activity, Category, Form, RecordId};
    use crate::replica::ReplicaConfig;
    use crate::stats::StatsIndex;
    use crate::storage::MemoryStorage;
    use crate::StationId;
    use time::macros::date;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn county() -> Replica<MemoryStorage> {
        let config = ReplicaConfig {
            tier: Some(Tier::County),
            ..ReplicaConfig::default()
        };
        Replica::open(MemoryStorage::new(), station("zk/xh"), 7, config).unwrap()
    }

    fn activity(id: &str, at: &str, beneficiaries: u32) -> Activity {
        Activity {
            id: RecordId::parse("id", id).unwrap(),
            name: "活动".into(),
            date: date!(2026 - 11 - 03),
            station: station(at),
            place: "广场".into(),
            content: "内容".into(),
            form: Form::Lecture,
            category: Category::Theory,
            team: None,
            person_in_charge: "李明".into(),
            beneficiaries,
            theme: None,
            recorded_on: date!(2026 - 11 - 03),
            late: false,
            deleted: false,
            records: vec![],
        }
    }

    fn record(replica: &mut Replica<MemoryStorage>, at: &str, activity: Activity) {
        let document = DocumentId::activities(&station(at), Month::new(2026, 11).unwrap());
        replica
            .commit(&document, |doc| layout::put_activity(doc, &activity))
            .unwrap();
    }

    fn index_of(replica: &mut Replica<MemoryStorage>) -> StatsIndex {
        let mut index = StatsIndex::new();
        for document in replica.documents() {
            replica
                .with_document(&document, |doc| index.apply_document(&document, doc))
                .unwrap()
                .unwrap()
                .unwrap();
        }
        index
    }

    #[test]
    fn a_rewrite_is_due_once_per_interval() {
        let mut publisher = StatisticsPublisher::new();
        assert!(publisher.due(0), "a fresh publisher runs at once");
        publisher.last_run_ms = Some(1_000);
        assert!(!publisher.due(1_000 + STATISTICS_REWRITE_INTERVAL_MS - 1));
        assert!(publisher.due(1_000 + STATISTICS_REWRITE_INTERVAL_MS));
    }

    #[test]
    fn only_the_county_tier_publishes() {
        assert!(publishes_statistics(Tier::County));
        for tier in [
            Tier::Village,
            Tier::Township,
            Tier::Prefecture,
            Tier::Province,
        ] {
            assert!(!publishes_statistics(tier), "{tier}");
        }
    }

    #[test]
    fn a_county_publishes_its_stations_figures_and_an_unchanged_run_writes_nothing() {
        let mut replica = county();
        record(
            &mut replica,
            "zk/xh/t1/v1",
            activity("a1", "zk/xh/t1/v1", 10),
        );
        record(
            &mut replica,
            "zk/xh/t2/v1",
            activity("a2", "zk/xh/t2/v1", 5),
        );
        let index = index_of(&mut replica);
        let mut publisher = StatisticsPublisher::new();
        let month = Month::new(2026, 11).unwrap();
        let report = publisher.publish(&mut replica, &index, 0).unwrap();
        assert_eq!(report.months_written, vec![month]);
        let document = DocumentId::statistics(&station("zk/xh"), month);
        let held = replica
            .with_document(&document, layout::statistics)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(held, county_month(&index, &station("zk/xh"), month));
        assert_eq!(held[&station("zk/xh")].beneficiaries, 15);
        assert_eq!(held[&station("zk/xh/t2")].activities, 1);
        assert!(!publisher.behind(&index, &station("zk/xh")));

        let heads = replica.heads(&document).unwrap().to_vec();
        let again = publisher.publish(&mut replica, &index, 60_000).unwrap();
        assert!(again.months_written.is_empty());
        // A restart remembers nothing: every month is compared with its
        // document, and an unchanged one still makes no change.
        let cold = StatisticsPublisher::new()
            .publish(&mut replica, &index, 0)
            .unwrap();
        assert_eq!(cold.months_checked, 1);
        assert!(cold.months_written.is_empty());
        assert_eq!(replica.heads(&document).unwrap(), heads.as_slice());

        record(
            &mut replica,
            "zk/xh/t1/v1",
            activity("a3", "zk/xh/t1/v1", 1),
        );
        let index = index_of(&mut replica);
        assert!(publisher.behind(&index, &station("zk/xh")));
        let report = publisher.publish(&mut replica, &index, 120_000).unwrap();
        assert_eq!(report.months_written, vec![month]);
        let held = replica
            .with_document(&document, layout::statistics)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(held[&station("zk/xh")].activities, 3);
    }

    #[test]
    fn a_month_document_moved_since_the_last_write_is_read_whole_before_the_next() {
        let mut replica = county();
        record(
            &mut replica,
            "zk/xh/t1/v1",
            activity("a1", "zk/xh/t1/v1", 10),
        );
        let index = index_of(&mut replica);
        let mut publisher = StatisticsPublisher::new();
        let month = Month::new(2026, 11).unwrap();
        publisher.publish(&mut replica, &index, 0).unwrap();
        // Something the publisher did not write arrives in its document (its
        // own old copy, sent back from above after a lost disk): a station
        // that has no figures now.
        let document = DocumentId::statistics(&station("zk/xh"), month);
        let mut arrived = county_month(&index, &station("zk/xh"), month);
        arrived.insert(
            station("zk/xh/t9"),
            layout::StationCounts {
                activities: 4,
                ..Default::default()
            },
        );
        replica
            .commit(&document, |doc| layout::put_statistics(doc, &arrived))
            .unwrap();

        record(
            &mut replica,
            "zk/xh/t1/v1",
            activity("a2", "zk/xh/t1/v1", 1),
        );
        let index = index_of(&mut replica);
        publisher.publish(&mut replica, &index, 60_000).unwrap();
        let held = replica
            .with_document(&document, layout::statistics)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            held,
            county_month(&index, &station("zk/xh"), month),
            "the station that arrived is written back to zeros"
        );
        assert!(!held.contains_key(&station("zk/xh/t9")));
    }

    fn replica_at(at: &str, tier: Tier) -> Replica<MemoryStorage> {
        let config = ReplicaConfig {
            tier: Some(tier),
            ..ReplicaConfig::default()
        };
        Replica::open(MemoryStorage::new(), station(at), 9, config).unwrap()
    }

    #[test]
    fn a_township_may_not_write_the_county_statistics() {
        let mut township = replica_at("zk/xh/t1", Tier::Township);
        let document = DocumentId::statistics(&station("zk/xh"), Month::new(2026, 11).unwrap());
        let figures: MonthCounts = MonthCounts::new();
        let refused = township.commit(&document, |doc| layout::put_statistics(doc, &figures));
        assert!(
            matches!(
                refused,
                Err(CommitError::NotWritable { .. } | CommitError::OutOfScope { .. })
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn the_prefecture_reads_each_county_figures_and_sums_them_for_itself() {
        let month = Month::new(2026, 11).unwrap();
        let mut prefecture = replica_at("zk", Tier::Prefecture);
        let mut expected_total = 0;
        for (name, beneficiaries) in [("zk/xh", 10), ("zk/yc", 7)] {
            let config = ReplicaConfig {
                tier: Some(Tier::County),
                ..ReplicaConfig::default()
            };
            let mut county = Replica::open(MemoryStorage::new(), station(name), 3, config).unwrap();
            let village = format!("{name}/t1/v1");
            record(
                &mut county,
                &village,
                activity("a1", &village, beneficiaries),
            );
            let index = index_of(&mut county);
            StatisticsPublisher::new()
                .publish(&mut county, &index, 0)
                .unwrap();
            let document = DocumentId::statistics(&station(name), month);
            crate::test_support::sync_document(&mut county, &mut prefecture, &document);
            let held = crate::stats::held_statistics(&mut prefecture, &station("zk"), month);
            assert_eq!(
                held.counties[&station(name)],
                county_month(&index, &station(name), month),
                "{name}'s figures as the prefecture reads them"
            );
            expected_total += beneficiaries;
        }
        let held = crate::stats::held_statistics(&mut prefecture, &station("zk"), month);
        assert!(held.unreadable.is_empty());
        let own = held.station(&station("zk"));
        assert_eq!(own.beneficiaries, u64::from(expected_total));
        assert_eq!(own.activities, 2);
        assert!(
            prefecture
                .documents()
                .iter()
                .all(|d| matches!(d.kind, DocumentKind::Statistics(_))),
            "the prefecture holds only the statistics"
        );
    }
}
