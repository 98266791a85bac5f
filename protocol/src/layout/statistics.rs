//! A county's figures of one month inside a `statistics:<county>:<YYYY-MM>`
//! document: what the offices above the county receive instead of rosters,
//! activities and orders.
//!
//! ```text
//! statistics:<county>:<YYYY-MM>
//!   meta {schema, id, owner, kind}
//!   stations {<station path>: {activities, service_records, ..., teams}}
//! ```
//!
//! One record per station of the county's subtree that has any figure in
//! the month, keyed by its full path, holding that station's figures rolled
//! up over its own subtree. Every field is a whole number, a count or a sum,
//! named in [`STATION_COUNT_FIELDS`]; nothing else is ever written, so the
//! document cannot carry a name, a volunteer's number, an ID digest or a
//! person's standing (the layout test lists every key a write makes). An
//! absent field reads as 0, as in every record of the layout; a station
//! whose figures all went back to 0 keeps its record with zeros written, so
//! readers drop stations whose figures are all 0.
//!
//! Writes touch only fields whose value changed (Automerge makes a new
//! operation for a value written again), so a county that rewrites an
//! unchanged month makes no change at all.

use super::{keys_of, maps_at, put_changed, root_maps, root_records, upsert_record, view, Fields};
use super::{LayoutError, LayoutResult, Scalar};
use crate::identity::station::StationId;
use automerge::{AutoCommit, ReadDoc, ROOT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use view::{maps_for_write, NewRecord};

/// The collection of per-station records.
pub const STATIONS: &str = "stations";
/// Most station records one statistics document holds: a county has under
/// 1,000 stations; more is a foreign or damaged document, refused on read
/// and never written.
pub const STATIONS_PER_STATISTICS_DOCUMENT_MAX: usize = 4_096;

/// The figures of one station for one month, as a statistics document holds
/// them: counts and sums only. Field names are the document's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationCounts {
    pub activities: u64,
    pub service_records: u64,
    pub participations: u64,
    pub hours_centi: u64,
    pub beneficiaries: u64,
    pub late_records: u64,
    pub orders_placed: u64,
    pub orders_dispatched: u64,
    pub orders_taken: u64,
    pub orders_rated: u64,
    pub orders_cancelled: u64,
    pub orders_ratings: u64,
    pub orders_rating_sum: u64,
    pub volunteers_registered: u64,
    pub volunteers_new: u64,
    pub volunteers_active: u64,
    pub teams: u64,
}

/// Every key a station record may hold, in the order written.
pub const STATION_COUNT_FIELDS: [&str; 17] = [
    "activities",
    "service_records",
    "participations",
    "hours_centi",
    "beneficiaries",
    "late_records",
    "orders_placed",
    "orders_dispatched",
    "orders_taken",
    "orders_rated",
    "orders_cancelled",
    "orders_ratings",
    "orders_rating_sum",
    "volunteers_registered",
    "volunteers_new",
    "volunteers_active",
    "teams",
];

impl StationCounts {
    /// The fields as (key, value), in [`STATION_COUNT_FIELDS`] order.
    pub fn fields(&self) -> [(&'static str, u64); 17] {
        let values = [
            self.activities,
            self.service_records,
            self.participations,
            self.hours_centi,
            self.beneficiaries,
            self.late_records,
            self.orders_placed,
            self.orders_dispatched,
            self.orders_taken,
            self.orders_rated,
            self.orders_cancelled,
            self.orders_ratings,
            self.orders_rating_sum,
            self.volunteers_registered,
            self.volunteers_new,
            self.volunteers_active,
            self.teams,
        ];
        let mut out = [("", 0u64); 17];
        for (slot, (key, value)) in out
            .iter_mut()
            .zip(STATION_COUNT_FIELDS.into_iter().zip(values))
        {
            *slot = (key, value);
        }
        out
    }

    fn from_values(values: [u64; 17]) -> StationCounts {
        let [activities, service_records, participations, hours_centi, beneficiaries, late_records, orders_placed, orders_dispatched, orders_taken, orders_rated, orders_cancelled, orders_ratings, orders_rating_sum, volunteers_registered, volunteers_new, volunteers_active, teams] =
            values;
        StationCounts {
            activities,
            service_records,
            participations,
            hours_centi,
            beneficiaries,
            late_records,
            orders_placed,
            orders_dispatched,
            orders_taken,
            orders_rated,
            orders_cancelled,
            orders_ratings,
            orders_rating_sum,
            volunteers_registered,
            volunteers_new,
            volunteers_active,
            teams,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.fields().iter().all(|(_, value)| *value == 0)
    }

    /// Field-wise sum (a prefecture's own line: the sum of its counties).
    pub fn add(&mut self, other: &StationCounts) {
        let mut values = self.fields().map(|(_, value)| value);
        for (value, (_, more)) in values.iter_mut().zip(other.fields()) {
            *value = value.saturating_add(more);
        }
        *self = StationCounts::from_values(values);
    }
}

/// One month of a county's figures: station → counts, stations with any
/// figure only.
pub type MonthCounts = BTreeMap<StationId, StationCounts>;

/// Write the month's figures: every station of `stations`, and zeros for
/// stations the document holds that `stations` no longer lists. Only fields
/// whose value differs from what readers see are written.
pub fn put_statistics(doc: &mut AutoCommit, stations: &MonthCounts) -> LayoutResult<()> {
    let (held, gone) = refuse_too_many(doc, stations)?;
    // Read first: an unchanged month must make no operation, and creating
    // the collection would be one.
    if stations.is_empty() && held.is_empty() {
        return Ok(());
    }
    let all = maps_for_write(doc, &[ROOT], STATIONS)?;
    for (station, counts) in stations {
        upsert_record(doc, &all, station.as_str(), NewRecord::new(scalars(counts)))?;
    }
    for key in gone {
        let existing = maps_at(doc, &all, &key)?;
        put_changed(doc, &existing, scalars(&StationCounts::default()))?;
    }
    Ok(())
}

/// [`put_statistics`] into a document that reads as `written` (what its
/// only writer, the county, last put there): only the stations whose
/// figures differ from `written` are read and written, and a station
/// `stations` no longer lists is written back to zeros. Reading a field
/// seeks through every value the key ever had, and a county rewrites its
/// month every minute: reading every field of every station there was most
/// of a prefecture's simulated time, for the one or two stations that moved.
pub fn put_statistics_changed(
    doc: &mut AutoCommit,
    stations: &MonthCounts,
    written: &MonthCounts,
) -> LayoutResult<()> {
    let zeros = StationCounts::default();
    let changed: Vec<(&StationId, &StationCounts, Option<&StationCounts>)> = stations
        .iter()
        .map(|(station, counts)| (station, counts, written.get(station)))
        .filter(|(_, counts, before)| *before != Some(*counts))
        .chain(
            written
                .iter()
                .filter(|(station, _)| !stations.contains_key(*station))
                .map(|(station, before)| (station, &zeros, Some(before))),
        )
        .collect();
    // Nothing moved: no read of the document at all.
    if changed.is_empty() {
        return Ok(());
    }
    refuse_too_many(doc, stations)?;
    let all = maps_for_write(doc, &[ROOT], STATIONS)?;
    for (station, counts, before) in changed {
        // A station written before reads as `before`: only the fields that
        // differ from it are looked at; a new one gets all of its fields.
        let fields: Vec<(&'static str, Scalar)> = match before {
            Some(before) => counts
                .fields()
                .into_iter()
                .zip(before.fields())
                .filter(|((_, now), (_, was))| now != was)
                .map(|((key, now), _)| (key, Scalar::Uint(now)))
                .collect(),
            None => scalars(counts),
        };
        upsert_record(doc, &all, station.as_str(), NewRecord::new(fields))?;
    }
    Ok(())
}

/// The maps of the stations collection and the stations the document holds
/// that `stations` no longer lists; refused when the month would hold more
/// than [`STATIONS_PER_STATISTICS_DOCUMENT_MAX`] stations.
fn refuse_too_many(
    doc: &AutoCommit,
    stations: &MonthCounts,
) -> LayoutResult<(Vec<automerge::ObjId>, Vec<String>)> {
    let held = root_maps(doc, STATIONS)?;
    let gone: Vec<String> = root_records(doc, STATIONS)?
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| {
            StationId::parse(key)
                .map(|station| !stations.contains_key(&station))
                .unwrap_or(false)
        })
        .collect();
    let total = stations.len() + keys_of(doc, &held).len() - gone.len();
    if stations.len() > STATIONS_PER_STATISTICS_DOCUMENT_MAX
        || total > STATIONS_PER_STATISTICS_DOCUMENT_MAX
    {
        return Err(LayoutError::Malformed {
            path: STATIONS.to_string(),
            reason: format!(
                "{total} stations; a statistics document holds at most \
                 {STATIONS_PER_STATISTICS_DOCUMENT_MAX}"
            ),
        });
    }
    Ok((held, gone))
}

fn scalars(counts: &StationCounts) -> Vec<(&'static str, Scalar)> {
    counts
        .fields()
        .into_iter()
        .map(|(key, value)| (key, Scalar::Uint(value)))
        .collect()
}

/// The month's figures the document holds: stations whose figures are not
/// all 0, in path order. A record whose key is not a station path or whose
/// field is not a whole number makes the document unreadable (it is the
/// county's own reckoning; a part of it is not a figure to show).
pub fn statistics<D: ReadDoc>(doc: &D) -> LayoutResult<MonthCounts> {
    let records = root_records(doc, STATIONS)?;
    if records.len() > STATIONS_PER_STATISTICS_DOCUMENT_MAX {
        return Err(LayoutError::Malformed {
            path: STATIONS.to_string(),
            reason: format!(
                "{} stations; a statistics document holds at most \
                 {STATIONS_PER_STATISTICS_DOCUMENT_MAX}",
                records.len()
            ),
        });
    }
    let mut out = MonthCounts::new();
    for (key, maps) in records {
        let station = StationId::parse(&key).map_err(|e| LayoutError::Malformed {
            path: format!("{STATIONS}.{key}"),
            reason: e.to_string(),
        })?;
        let fields = Fields::new(doc, maps, format!("{STATIONS}.{key}"));
        let mut values = [0u64; 17];
        for (value, name) in values.iter_mut().zip(STATION_COUNT_FIELDS) {
            *value = fields.uint(name)?;
        }
        let counts = StationCounts::from_values(values);
        if !counts.is_zero() {
            out.insert(station, counts);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::document_id::{DocumentId, Month};
    use crate::layout::init_document;
    use automerge::transaction::Transactable;
    use automerge::{ObjType, Value};
    use proptest::prelude::*;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn new_statistics() -> AutoCommit {
        let mut doc = AutoCommit::new();
        let id = DocumentId::statistics(&station("zk/xh"), Month::new(2026, 11).unwrap());
        init_document(&mut doc, &id).unwrap();
        doc.commit();
        doc
    }

    fn counts(seed: u64) -> StationCounts {
        let mut values = [0u64; 17];
        for (i, value) in values.iter_mut().enumerate() {
            *value = seed * 100 + i as u64;
        }
        StationCounts::from_values(values)
    }

    /// Every key path under the root, `a.b.c`, scalars and maps alike.
    fn key_paths(doc: &AutoCommit) -> Vec<String> {
        fn walk(doc: &AutoCommit, obj: &automerge::ObjId, prefix: &str, out: &mut Vec<String>) {
            for key in doc.keys(obj) {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                for (value, id) in doc.get_all(obj, key.as_str()).unwrap() {
                    if let Value::Object(ObjType::Map) = value {
                        walk(doc, &id, &path, out);
                    }
                }
                out.push(path);
            }
        }
        let mut out = Vec::new();
        walk(doc, &ROOT, "", &mut out);
        out
    }

    #[test]
    fn a_month_of_figures_reads_back_as_written() {
        let mut doc = new_statistics();
        let month: MonthCounts = [
            (station("zk/xh"), counts(3)),
            (station("zk/xh/t1"), counts(2)),
            (station("zk/xh/t1/v1"), counts(1)),
        ]
        .into();
        put_statistics(&mut doc, &month).unwrap();
        assert_eq!(statistics(&doc).unwrap(), month);
    }

    #[test]
    fn rewriting_an_unchanged_month_makes_no_operation() {
        let mut doc = new_statistics();
        let month: MonthCounts = [(station("zk/xh"), counts(1))].into();
        put_statistics(&mut doc, &month).unwrap();
        doc.commit();
        let before = doc.get_heads();
        put_statistics(&mut doc, &month).unwrap();
        assert_eq!(
            doc.pending_ops(),
            0,
            "the same figures again wrote something"
        );
        let mut changed = month.clone();
        changed.get_mut(&station("zk/xh")).unwrap().hours_centi += 50;
        put_statistics(&mut doc, &changed).unwrap();
        assert_eq!(
            doc.pending_ops(),
            1,
            "one figure changed: one field written"
        );
        doc.commit();
        assert_ne!(doc.get_heads(), before);
        assert_eq!(statistics(&doc).unwrap(), changed);
    }

    #[test]
    fn a_station_whose_figures_went_to_zero_reads_as_absent() {
        let mut doc = new_statistics();
        let both: MonthCounts = [
            (station("zk/xh"), counts(2)),
            (station("zk/xh/t1"), counts(1)),
        ]
        .into();
        put_statistics(&mut doc, &both).unwrap();
        let one: MonthCounts = [(station("zk/xh"), counts(2))].into();
        put_statistics(&mut doc, &one).unwrap();
        assert_eq!(statistics(&doc).unwrap(), one);
    }

    #[test]
    fn a_rewrite_of_the_stations_that_moved_reads_as_a_whole_rewrite() {
        let first: MonthCounts = [
            (station("zk/xh"), counts(3)),
            (station("zk/xh/t1"), counts(2)),
            (station("zk/xh/t1/v1"), counts(1)),
            (station("zk/xh/t2"), counts(4)),
        ]
        .into();
        let mut next = first.clone();
        next.get_mut(&station("zk/xh")).unwrap().hours_centi += 50;
        next.remove(&station("zk/xh/t2"));
        next.insert(station("zk/xh/t1/v2"), counts(5));
        let mut whole = new_statistics();
        put_statistics(&mut whole, &first).unwrap();
        put_statistics(&mut whole, &next).unwrap();
        let mut changed = new_statistics();
        put_statistics(&mut changed, &first).unwrap();
        changed.commit();
        put_statistics_changed(&mut changed, &next, &first).unwrap();
        assert_eq!(statistics(&changed).unwrap(), next);
        assert_eq!(statistics(&changed).unwrap(), statistics(&whole).unwrap());
        // One hours field, a new station's fields, a gone station's zeros:
        // nothing of the two stations that stood.
        let fields_of_new_station = scalars(&counts(5))
            .iter()
            .filter(|(_, value)| *value != Scalar::Uint(0))
            .count();
        let zeros_of_gone_station = scalars(&counts(4))
            .iter()
            .filter(|(_, value)| *value != Scalar::Uint(0))
            .count();
        assert_eq!(
            changed.pending_ops(),
            1 + 1 + fields_of_new_station + zeros_of_gone_station,
            "the new station's map is one operation more"
        );
        changed.commit();
        let before = changed.get_heads();
        put_statistics_changed(&mut changed, &next, &next).unwrap();
        assert_eq!(changed.pending_ops(), 0, "nothing moved: nothing written");
        assert_eq!(changed.get_heads(), before);
    }

    #[test]
    fn more_stations_than_the_maximum_are_refused_and_nothing_is_written() {
        let mut doc = new_statistics();
        let too_many: MonthCounts = (0..=STATIONS_PER_STATISTICS_DOCUMENT_MAX)
            .map(|i| (station(&format!("zk/xh/t{i}")), counts(1)))
            .collect();
        assert!(put_statistics(&mut doc, &too_many).is_err());
        assert!(put_statistics_changed(&mut doc, &too_many, &MonthCounts::new()).is_err());
        assert_eq!(doc.pending_ops(), 0);
    }

    proptest! {
        /// The statistics document holds counts and nothing else: every key a
        /// write makes is `meta.*`, `stations`, a station path, or one of the
        /// named count fields under a station — never a name, a volunteer
        /// number, an ID digest or a standing.
        #[test]
        fn every_key_written_is_a_station_or_a_named_count(
            stations in proptest::collection::btree_map(
                proptest::collection::vec("[a-z0-9]{1,4}", 0..3),
                proptest::array::uniform17(0u64..1_000_000),
                0..8,
            ),
        ) {
            let mut doc = new_statistics();
            let month: MonthCounts = stations
                .into_iter()
                .map(|(path, values)| {
                    let mut text = "zk/xh".to_string();
                    for segment in path {
                        text.push('/');
                        text.push_str(&segment);
                    }
                    (station(&text), StationCounts::from_values(values))
                })
                .collect();
            put_statistics(&mut doc, &month).unwrap();
            for path in key_paths(&doc) {
                if path.starts_with("meta") || path == STATIONS {
                    continue;
                }
                let rest = path.strip_prefix("stations.").expect("under stations");
                let station_key = month.keys().find(|s| rest == s.as_str()
                    || rest.strip_prefix(s.as_str()).and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|field| STATION_COUNT_FIELDS.contains(&field)));
                prop_assert!(station_key.is_some(), "key {path} is neither a station nor a count");
            }
            let read = statistics(&doc).unwrap();
            let expected: MonthCounts = month.into_iter().filter(|(_, c)| !c.is_zero()).collect();
            prop_assert_eq!(read, expected);
        }
    }
}
