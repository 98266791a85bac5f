//! One unit with `scan.rs`, its one-pass reader: `scan` walks a document
//! into the `Fields` this file defines, so neither stands alone.
//!
//! What one document adds to the statistics: its [`Contribution`].
//!
//! A contribution is computed from one document alone and is small: an
//! activities document (one station-month) gives counts per category × form
//! and the hours of each volunteer who served; a roster gives registrations
//! per month, teams and each volunteer's home station; an orders document
//! gives the four-order counts. The index (`index.rs`) keeps the last
//! contribution of every document and, when a document changes, subtracts the
//! old one and adds the new, so the cost of an update follows the size of the
//! changed document, never the size of the county.
//!
//! Reading: activities and rosters are read field by field in one pass over
//! each record map (`map_range`), as the layout's own readers do, but only
//! the fields the figures need are read and checked, without building model
//! values; maps split by concurrent creation are read as the layout's
//! logical maps. The from-scratch recomputation reads through `layout`, so
//! the property test also holds this reader to the layout.
//!
//! Invariants: records flagged `deleted` (and service records of a deleted
//! activity) contribute nothing; every list is sorted and holds no zero
//! entries, so two contributions of equal content compare equal.

use super::scan::{scan, CollectionShape, ScannedRecord};
use crate::domain::model::{date_format, Category, Form, OrderStatus, RecordId, VolunteerId};
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::StationId;
use crate::layout::{self, LayoutError};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValueRef, ValueRef, ROOT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::Date;

/// Activity figures of one station-month (or a sum of them).
///
/// `participations` (参与人次) and `service_records` (服务记录) coincide under
/// the current layout, which keeps one service record per volunteer per
/// activity; they are separate figures because the bulletins report both and
/// a future layout (several shifts per volunteer) would make them differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCounts {
    pub activities: u64,
    pub service_records: u64,
    pub participations: u64,
    pub hours_centi: u64,
    pub beneficiaries: u64,
    /// Activity records and service records flagged as recorded late.
    pub late_records: u64,
}

impl ActivityCounts {
    pub fn add(&mut self, other: &ActivityCounts) {
        self.activities += other.activities;
        self.service_records += other.service_records;
        self.participations += other.participations;
        self.hours_centi += other.hours_centi;
        self.beneficiaries += other.beneficiaries;
        self.late_records += other.late_records;
    }

    /// Remove counts that were added before. Underflow means the index lost
    /// track of what it added: a bug, caught in debug builds.
    pub fn subtract(&mut self, other: &ActivityCounts) {
        self.activities = checked_less(self.activities, other.activities);
        self.service_records = checked_less(self.service_records, other.service_records);
        self.participations = checked_less(self.participations, other.participations);
        self.hours_centi = checked_less(self.hours_centi, other.hours_centi);
        self.beneficiaries = checked_less(self.beneficiaries, other.beneficiaries);
        self.late_records = checked_less(self.late_records, other.late_records);
    }

    pub fn is_zero(&self) -> bool {
        *self == ActivityCounts::default()
    }

    /// `self - other`, or `None` where `other` holds more than `self`.
    fn less(&self, other: &ActivityCounts) -> Option<ActivityCounts> {
        Some(ActivityCounts {
            activities: self.activities.checked_sub(other.activities)?,
            service_records: self.service_records.checked_sub(other.service_records)?,
            participations: self.participations.checked_sub(other.participations)?,
            hours_centi: self.hours_centi.checked_sub(other.hours_centi)?,
            beneficiaries: self.beneficiaries.checked_sub(other.beneficiaries)?,
            late_records: self.late_records.checked_sub(other.late_records)?,
        })
    }
}

/// Four-order figures (四单): placed, dispatched, taken, rated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    /// Every order placed, cancelled ones included.
    pub placed: u64,
    /// Orders that reached dispatch (dispatched, taken or rated).
    pub dispatched: u64,
    /// Orders a team took (taken or rated).
    pub taken: u64,
    pub rated: u64,
    pub cancelled: u64,
    /// Orders that carry a 1–5 star rating.
    pub ratings: u64,
    /// Sum of those ratings (satisfaction = sum / ratings).
    pub rating_sum: u64,
}

impl OrderCounts {
    pub fn add(&mut self, other: &OrderCounts) {
        self.placed += other.placed;
        self.dispatched += other.dispatched;
        self.taken += other.taken;
        self.rated += other.rated;
        self.cancelled += other.cancelled;
        self.ratings += other.ratings;
        self.rating_sum += other.rating_sum;
    }

    pub fn subtract(&mut self, other: &OrderCounts) {
        self.placed = checked_less(self.placed, other.placed);
        self.dispatched = checked_less(self.dispatched, other.dispatched);
        self.taken = checked_less(self.taken, other.taken);
        self.rated = checked_less(self.rated, other.rated);
        self.cancelled = checked_less(self.cancelled, other.cancelled);
        self.ratings = checked_less(self.ratings, other.ratings);
        self.rating_sum = checked_less(self.rating_sum, other.rating_sum);
    }

    pub fn is_zero(&self) -> bool {
        *self == OrderCounts::default()
    }

    /// Mean rating, 1.0–5.0, if anything was rated.
    pub fn satisfaction(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.rating_sum as f64 / self.ratings as f64)
    }
}

pub(crate) fn checked_less(total: u64, part: u64) -> u64 {
    debug_assert!(
        part <= total,
        "statistics underflow: removing {part} from {total}"
    );
    total.saturating_sub(part)
}

/// Cells as a contribution lists them: sorted, no zero cell.
pub(crate) fn cells_listed(cells: BTreeMap<(Category, Form), ActivityCounts>) -> Vec<CellCounts> {
    cells
        .into_iter()
        .filter(|(_, counts)| !counts.is_zero())
        .map(|((category, form), counts)| CellCounts {
            category,
            form,
            counts,
        })
        .collect()
}

/// Activity counts of one category × form cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellCounts {
    pub category: Category,
    pub form: Form,
    pub counts: ActivityCounts,
}

/// One volunteer's service in one activities document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolunteerService {
    /// Home station and number: two stations' "001" are two people.
    pub volunteer: VolunteerId,
    pub hours_centi: u64,
    pub service_records: u64,
}

/// What an `activities:<station>:<month>` document contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivitiesContribution {
    pub station: StationId,
    pub month: Month,
    /// Sorted by (category, form); no zero cells.
    pub cells: Vec<CellCounts>,
    /// Sorted by volunteer (home station, then number); only volunteers
    /// with at least one live record.
    pub volunteers: Vec<VolunteerService>,
}

impl ActivitiesContribution {
    pub fn totals(&self) -> ActivityCounts {
        let mut total = ActivityCounts::default();
        for cell in &self.cells {
            total.add(&cell.counts);
        }
        total
    }

    /// This contribution with some records' shares `before` replaced by
    /// their shares `after` (see [`activity_share`]). `None` when a share
    /// removed was never counted here: the caller then reads the document
    /// whole.
    pub(crate) fn moved(
        &self,
        before: &[ActivitiesContribution],
        after: &[ActivitiesContribution],
    ) -> Option<ActivitiesContribution> {
        let mut cells: BTreeMap<(Category, Form), ActivityCounts> = self
            .cells
            .iter()
            .map(|cell| ((cell.category, cell.form), cell.counts))
            .collect();
        let mut volunteers: BTreeMap<VolunteerId, (u64, u64)> = self
            .volunteers
            .iter()
            .map(|v| (v.volunteer.clone(), (v.hours_centi, v.service_records)))
            .collect();
        for share in before {
            for cell in &share.cells {
                let counts = cells.get_mut(&(cell.category, cell.form))?;
                *counts = counts.less(&cell.counts)?;
            }
            for service in &share.volunteers {
                let (hours_centi, records) = volunteers.get_mut(&service.volunteer)?;
                *hours_centi = hours_centi.checked_sub(service.hours_centi)?;
                *records = records.checked_sub(service.service_records)?;
            }
        }
        for share in after {
            for cell in &share.cells {
                cells
                    .entry((cell.category, cell.form))
                    .or_default()
                    .add(&cell.counts);
            }
            for service in &share.volunteers {
                let (hours_centi, records) =
                    volunteers.entry(service.volunteer.clone()).or_default();
                *hours_centi += service.hours_centi;
                *records += service.service_records;
            }
        }
        let mut kept = Vec::with_capacity(volunteers.len());
        for (volunteer, (hours_centi, service_records)) in volunteers {
            match (hours_centi, service_records) {
                (0, 0) => {}
                // Hours left with no record to carry them: not a sum of shares.
                (_, 0) => return None,
                _ => kept.push(VolunteerService {
                    volunteer,
                    hours_centi,
                    service_records,
                }),
            }
        }
        Some(ActivitiesContribution {
            station: self.station.clone(),
            month: self.month,
            cells: cells_listed(cells),
            volunteers: kept,
        })
    }
}

/// New registrations in one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthCount {
    pub month: Month,
    pub volunteers: u64,
}

/// A registered volunteer's number and home station (no personal data: the
/// index is persisted and may be served; names stay in the roster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub number: RecordId,
    pub home_station: StationId,
}

/// What a `roster:<station>` document contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterContribution {
    pub station: StationId,
    /// Sorted by month; no zero months.
    pub registrations: Vec<MonthCount>,
    pub teams: u64,
    /// Sorted by number, then home station; live volunteers only.
    pub volunteers: Vec<RosterEntry>,
}

impl RosterContribution {
    /// As [`ActivitiesContribution::moved`], for rosters.
    pub(crate) fn moved(
        &self,
        before: &[RosterContribution],
        after: &[RosterContribution],
    ) -> Option<RosterContribution> {
        let mut registrations: BTreeMap<Month, u64> = self
            .registrations
            .iter()
            .map(|count| (count.month, count.volunteers))
            .collect();
        let mut teams = self.teams;
        let mut volunteers = self.volunteers.clone();
        for share in before {
            for count in &share.registrations {
                let volunteers = registrations.get_mut(&count.month)?;
                *volunteers = volunteers.checked_sub(count.volunteers)?;
            }
            teams = teams.checked_sub(share.teams)?;
            for entry in &share.volunteers {
                let at = volunteers.iter().position(|held| held == entry)?;
                volunteers.remove(at);
            }
        }
        for share in after {
            for count in &share.registrations {
                *registrations.entry(count.month).or_default() += count.volunteers;
            }
            teams += share.teams;
            volunteers.extend(share.volunteers.iter().cloned());
        }
        volunteers.sort_by(|a, b| (&a.number, &a.home_station).cmp(&(&b.number, &b.home_station)));
        Some(RosterContribution {
            station: self.station.clone(),
            registrations: registrations
                .into_iter()
                .filter(|(_, volunteers)| *volunteers > 0)
                .map(|(month, volunteers)| MonthCount { month, volunteers })
                .collect(),
            teams,
            volunteers,
        })
    }
}

/// What an `orders:<station>:<month>` document contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersContribution {
    pub station: StationId,
    pub month: Month,
    pub counts: OrderCounts,
}

/// One document's share of the statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contribution {
    Activities(ActivitiesContribution),
    Roster(RosterContribution),
    Orders(OrdersContribution),
    /// Approval and reference documents carry no figures.
    Nothing,
}

/// The month a date falls in. Dates outside the years [`Month`] accepts
/// (2000–2200) are clamped to its ends: a registration dated 1998 still counts
/// in the totals, as registered before any month we report on.
pub fn month_of(date: Date) -> Month {
    let year = date.year().clamp(2000, 2200) as u16;
    let month = if date.year() < 2000 {
        1
    } else if date.year() > 2200 {
        12
    } else {
        u8::from(date.month())
    };
    Month::new(year, month).unwrap_or(Month {
        year: 2000,
        month: 1,
    })
}

impl Contribution {
    /// Compute a document's contribution from the document alone.
    pub fn of<D: ReadDoc>(id: &DocumentId, doc: &D) -> Result<Contribution, LayoutError> {
        match &id.kind {
            DocumentKind::Activities(month) => Ok(Contribution::Activities(activities(
                &id.owner, *month, doc,
            )?)),
            DocumentKind::Roster => Ok(Contribution::Roster(roster(&id.owner, doc)?)),
            DocumentKind::Orders(month) => {
                Ok(Contribution::Orders(orders(&id.owner, *month, doc)?))
            }
            DocumentKind::Approval(_)
            | DocumentKind::Statistics(_)
            | DocumentKind::Reference(_) => Ok(Contribution::Nothing),
        }
    }

    pub fn station(&self) -> Option<&StationId> {
        match self {
            Contribution::Activities(a) => Some(&a.station),
            Contribution::Roster(r) => Some(&r.station),
            Contribution::Orders(o) => Some(&o.station),
            Contribution::Nothing => None,
        }
    }
}

fn malformed(path: String, reason: &str) -> LayoutError {
    LayoutError::Malformed {
        path,
        reason: reason.to_string(),
    }
}

/// The logical map at `key` under the logical map `parents` (see the
/// layout's `view`: every map object that concurrent creations left there,
/// the winner first). Empty if none.
fn child_maps<D: ReadDoc>(
    doc: &D,
    parents: &[ObjId],
    key: &str,
) -> Result<Vec<ObjId>, LayoutError> {
    layout::maps_at(doc, parents, key)
}

/// Every record of a logical collection map with its own logical map, in
/// key order. One pass over each object; only a key that concurrent
/// creations split costs a second look.
fn record_maps<D: ReadDoc>(
    doc: &D,
    collection: &[ObjId],
) -> Result<Vec<(String, Vec<ObjId>)>, LayoutError> {
    match collection {
        [] => Ok(Vec::new()),
        [only] => {
            let mut out = Vec::new();
            for item in doc.map_range(only, ..) {
                if item.conflict {
                    let maps = layout::maps_at(doc, collection, &item.key)?;
                    if !maps.is_empty() {
                        out.push((item.key.to_string(), maps));
                    }
                } else if matches!(item.value, ValueRef::Object(ObjType::Map)) {
                    out.push((item.key.to_string(), vec![item.id()]));
                }
            }
            Ok(out)
        }
        many => layout::records(doc, many),
    }
}

/// The wanted fields of one record, keyed by the wanted name (static: no
/// allocation per field read).
pub(crate) type Fields = Vec<(&'static str, Field)>;

/// One scalar field as read in a single pass over a record map.
pub(crate) enum Field {
    Text(String),
    Count(u64),
    Flag(bool),
    Map(Vec<ObjId>),
    Other,
}

/// The fields named in `wanted` of one logical record map: a field reads
/// from the first object holding it; a nested map is the union over all.
fn read_fields<D: ReadDoc>(doc: &D, maps: &[ObjId], wanted: &[&'static str]) -> Fields {
    let mut out: Fields = Vec::new();
    for obj in maps {
        for item in doc.map_range(obj, ..) {
            let Some(name) = wanted.iter().find(|w| **w == item.key) else {
                continue;
            };
            let existing = out.iter_mut().find(|(k, _)| k == name);
            let field = match &item.value {
                ValueRef::Scalar(ScalarValueRef::Str(text)) => Field::Text(text.to_string()),
                ValueRef::Scalar(ScalarValueRef::Uint(n)) => Field::Count(*n),
                ValueRef::Scalar(ScalarValueRef::Int(n)) if *n >= 0 => Field::Count(*n as u64),
                ValueRef::Scalar(ScalarValueRef::Boolean(b)) => Field::Flag(*b),
                ValueRef::Object(ObjType::Map) => {
                    // Concurrently created nested maps: take them all.
                    let nested = match layout::maps_at(doc, std::slice::from_ref(obj), &item.key) {
                        Ok(nested) => nested,
                        Err(_) => vec![item.id()],
                    };
                    match existing {
                        Some((_, Field::Map(found))) => {
                            found.extend(nested);
                            continue;
                        }
                        Some(_) => continue,
                        None => Field::Map(nested),
                    }
                }
                // As in the layout, a scalar of another type reads as absent.
                ValueRef::Scalar(_) => continue,
                _ => Field::Other,
            };
            if existing.is_none() {
                out.push((name, field));
            }
        }
    }
    out
}

/// Typed access to fields read by [`read_fields`], with the layout's rules:
/// a missing text is empty, a missing flag false, a missing count 0.
struct Record {
    path: String,
    fields: Fields,
}

impl Record {
    fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, f)| f)
    }
    fn text(&self, key: &str) -> Result<&str, LayoutError> {
        match self.field(key) {
            Some(Field::Text(text)) => Ok(text),
            None => Ok(""),
            Some(_) => Err(malformed(format!("{}.{key}", self.path), "expected text")),
        }
    }
    fn count(&self, key: &str) -> Result<u64, LayoutError> {
        match self.field(key) {
            Some(Field::Count(n)) => Ok(*n),
            None => Ok(0),
            Some(_) => Err(malformed(
                format!("{}.{key}", self.path),
                "expected a whole number",
            )),
        }
    }
    fn flag(&self, key: &str) -> Result<bool, LayoutError> {
        match self.field(key) {
            Some(Field::Flag(b)) => Ok(*b),
            None => Ok(false),
            Some(_) => Err(malformed(
                format!("{}.{key}", self.path),
                "expected true or false",
            )),
        }
    }
    fn map(&self, key: &str) -> Result<&[ObjId], LayoutError> {
        match self.field(key) {
            Some(Field::Map(maps)) => Ok(maps),
            None => Ok(&[]),
            Some(_) => Err(malformed(format!("{}.{key}", self.path), "expected a map")),
        }
    }
    fn parsed<T>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, crate::domain::model::FieldError>,
    ) -> Result<T, LayoutError> {
        parse(self.text(key)?).map_err(|e| malformed(format!("{}.{key}", self.path), &e.reason))
    }
    fn record_id(&self, key: &str) -> Result<RecordId, LayoutError> {
        RecordId::parse(key, self.text(key)?)
            .map_err(|e| malformed(format!("{}.{key}", self.path), &e.reason))
    }
}

const ACTIVITY_FIELDS: &[&str] = &[
    "deleted",
    "late",
    "beneficiaries",
    "category",
    "form",
    layout::RECORDS,
];
const RECORD_FIELDS: &[&str] = &[
    "volunteer",
    "home_station",
    "hours_centi",
    "late",
    "deleted",
];
const VOLUNTEER_FIELDS: &[&str] = &["number", "home_station", "registered_on", "deleted"];
const TEAM_FIELDS: &[&str] = &["deleted"];

/// What the figures read of an activities document.
pub(crate) const ACTIVITIES_SHAPE: [CollectionShape; 1] = [CollectionShape {
    name: layout::ACTIVITIES,
    fields: ACTIVITY_FIELDS,
    nested: Some((layout::RECORDS, RECORD_FIELDS)),
}];

/// What the figures read of a roster: volunteers first, then teams.
pub(crate) const ROSTER_SHAPE: [CollectionShape; 2] = [
    CollectionShape {
        name: layout::VOLUNTEERS,
        fields: VOLUNTEER_FIELDS,
        nested: None,
    },
    CollectionShape {
        name: layout::TEAMS,
        fields: TEAM_FIELDS,
        nested: None,
    },
];

/// A record read by the scan: no path, since an error found in it sends
/// the document down the record-by-record path, which names it.
fn scanned(fields: Fields) -> Record {
    Record {
        path: String::new(),
        fields,
    }
}

fn activities<D: ReadDoc>(
    station: &StationId,
    month: Month,
    doc: &D,
) -> Result<ActivitiesContribution, LayoutError> {
    match activities_scanned(station, month, doc) {
        Some(Ok(contribution)) => Ok(contribution),
        _ => activities_by_record(station, month, doc),
    }
}

/// The fast path: `None` when the scan gives up, an error when a record is
/// malformed (the caller then reads record by record for the error's path).
pub(crate) fn activities_scanned<D: ReadDoc>(
    station: &StationId,
    month: Month,
    doc: &D,
) -> Option<Result<ActivitiesContribution, LayoutError>> {
    let mut collections = scan(doc, &ACTIVITIES_SHAPE)?;
    let found = collections.pop().unwrap_or_default();
    let read = found
        .into_iter()
        .map(|r| (scanned(r.fields), r.nested))
        .collect();
    let given = |_: &Record, nested: Vec<Fields>| Ok(nested.into_iter().map(scanned).collect());
    Some(fold_activities(station, month, read, given, fault_armed()))
}

/// The record-by-record path, following the layout's logical maps.
pub(crate) fn activities_by_record<D: ReadDoc>(
    station: &StationId,
    month: Month,
    doc: &D,
) -> Result<ActivitiesContribution, LayoutError> {
    let all = child_maps(doc, &[ROOT], layout::ACTIVITIES)?;
    let mut read = Vec::new();
    for (key, maps) in record_maps(doc, &all)? {
        let activity = Record {
            path: format!("{}.{key}", layout::ACTIVITIES),
            fields: read_fields(doc, &maps, ACTIVITY_FIELDS),
        };
        read.push((activity, Vec::new()));
    }
    let lookup = |activity: &Record, _: Vec<Fields>| {
        let records = activity.map(layout::RECORDS)?;
        record_maps(doc, records)?
            .into_iter()
            .map(|(volunteer_key, maps)| {
                Ok(Record {
                    path: format!("{}.{}.{volunteer_key}", activity.path, layout::RECORDS),
                    fields: read_fields(doc, &maps, RECORD_FIELDS),
                })
            })
            .collect()
    };
    fold_activities(station, month, read, lookup, fault_armed())
}

/// The injected fault of the simulation's sweep: whole reads only, so a
/// record's share (below) stays the record's own figures.
fn fault_armed() -> bool {
    faults::armed(Fault::MiscountAggregate)
}

/// Sum activities and their service records. `records_of` gives an
/// activity's service records; it is asked only for live activities, after
/// their own fields were checked, so both readers report the same error.
fn fold_activities(
    station: &StationId,
    month: Month,
    activities: Vec<(Record, Vec<Fields>)>,
    mut records_of: impl FnMut(&Record, Vec<Fields>) -> Result<Vec<Record>, LayoutError>,
    count_first_twice: bool,
) -> Result<ActivitiesContribution, LayoutError> {
    let mut cells: BTreeMap<(Category, Form), ActivityCounts> = BTreeMap::new();
    let mut volunteers: BTreeMap<VolunteerId, VolunteerService> = BTreeMap::new();
    let mut counted_twice = !count_first_twice;
    for (activity, nested) in activities {
        if activity.flag("deleted")? {
            continue;
        }
        let category = activity.parsed("category", Category::parse)?;
        let form = activity.parsed("form", Form::parse)?;
        let beneficiaries = activity.count("beneficiaries")?;
        if beneficiaries > u64::from(u32::MAX) {
            return Err(malformed(
                format!("{}.beneficiaries", activity.path),
                "too large",
            ));
        }
        let cell = cells.entry((category, form)).or_default();
        cell.activities += 1;
        if !counted_twice {
            // The injected fault: the first live activity counted twice.
            counted_twice = true;
            cell.activities += 1;
        }
        cell.beneficiaries += beneficiaries;
        cell.late_records += u64::from(activity.flag("late")?);
        for record in records_of(&activity, nested)? {
            if record.flag("deleted")? {
                continue;
            }
            // Absent: the activity's station, as `ServiceRecord::volunteer_id`.
            let home_station = match record.text("home_station")? {
                "" => station.clone(),
                home => StationId::parse(home).map_err(|e| {
                    malformed(format!("{}.home_station", record.path), &e.to_string())
                })?,
            };
            let volunteer = VolunteerId::new(home_station, record.record_id("volunteer")?);
            let hours_centi = record.count("hours_centi")?;
            if hours_centi > u64::from(u32::MAX) {
                return Err(malformed(
                    format!("{}.hours_centi", record.path),
                    "too large",
                ));
            }
            cell.service_records += 1;
            cell.participations += 1;
            cell.hours_centi += hours_centi;
            cell.late_records += u64::from(record.flag("late")?);
            match volunteers.get_mut(&volunteer) {
                Some(service) => {
                    service.hours_centi += hours_centi;
                    service.service_records += 1;
                }
                None => {
                    volunteers.insert(
                        volunteer.clone(),
                        VolunteerService {
                            volunteer,
                            hours_centi,
                            service_records: 1,
                        },
                    );
                }
            }
        }
    }
    Ok(ActivitiesContribution {
        station: station.clone(),
        month,
        cells: cells_listed(cells),
        volunteers: volunteers.into_values().collect(),
    })
}

fn roster<D: ReadDoc>(station: &StationId, doc: &D) -> Result<RosterContribution, LayoutError> {
    match roster_scanned(station, doc) {
        Some(Ok(contribution)) => Ok(contribution),
        _ => roster_by_record(station, doc),
    }
}

/// The fast path, as [`activities_scanned`].
pub(crate) fn roster_scanned<D: ReadDoc>(
    station: &StationId,
    doc: &D,
) -> Option<Result<RosterContribution, LayoutError>> {
    let mut collections = scan(doc, &ROSTER_SHAPE)?;
    let teams = collections.pop().unwrap_or_default();
    let volunteers = collections.pop().unwrap_or_default();
    Some(fold_roster(
        station,
        volunteers.into_iter().map(|r| scanned(r.fields)).collect(),
        teams.into_iter().map(|r| scanned(r.fields)).collect(),
    ))
}

/// The record-by-record path, following the layout's logical maps.
pub(crate) fn roster_by_record<D: ReadDoc>(
    station: &StationId,
    doc: &D,
) -> Result<RosterContribution, LayoutError> {
    let read = |collection: &str, wanted: &[&'static str]| -> Result<Vec<Record>, LayoutError> {
        let all = child_maps(doc, &[ROOT], collection)?;
        Ok(record_maps(doc, &all)?
            .into_iter()
            .map(|(key, maps)| Record {
                path: format!("{collection}.{key}"),
                fields: read_fields(doc, &maps, wanted),
            })
            .collect())
    };
    let volunteers = read(layout::VOLUNTEERS, VOLUNTEER_FIELDS)?;
    let teams = read(layout::TEAMS, TEAM_FIELDS)?;
    fold_roster(station, volunteers, teams)
}

/// One activity's share of its document's contribution: the whole fold
/// over that record alone (empty for a deleted activity).
pub(crate) fn activity_share(
    station: &StationId,
    month: Month,
    record: ScannedRecord,
) -> Result<ActivitiesContribution, LayoutError> {
    let given = |_: &Record, nested: Vec<Fields>| Ok(nested.into_iter().map(scanned).collect());
    fold_activities(
        station,
        month,
        vec![(scanned(record.fields), record.nested)],
        given,
        false,
    )
}

/// One volunteer's share of the roster's contribution.
pub(crate) fn volunteer_share(
    station: &StationId,
    record: ScannedRecord,
) -> Result<RosterContribution, LayoutError> {
    fold_roster(station, vec![scanned(record.fields)], Vec::new())
}

/// One team's share of the roster's contribution.
pub(crate) fn team_share(
    station: &StationId,
    record: ScannedRecord,
) -> Result<RosterContribution, LayoutError> {
    fold_roster(station, Vec::new(), vec![scanned(record.fields)])
}

fn fold_roster(
    station: &StationId,
    volunteer_records: Vec<Record>,
    team_records: Vec<Record>,
) -> Result<RosterContribution, LayoutError> {
    let mut registrations: BTreeMap<Month, u64> = BTreeMap::new();
    let mut volunteers = Vec::new();
    for volunteer in volunteer_records {
        if volunteer.flag("deleted")? {
            continue;
        }
        let registered_on =
            date_format::parse("registered_on", volunteer.text("registered_on")?)
                .map_err(|e| malformed(format!("{}.registered_on", volunteer.path), &e.reason))?;
        let home_station = StationId::parse(volunteer.text("home_station")?)
            .map_err(|e| malformed(format!("{}.home_station", volunteer.path), &e.to_string()))?;
        *registrations.entry(month_of(registered_on)).or_default() += 1;
        volunteers.push(RosterEntry {
            number: volunteer.record_id("number")?,
            home_station,
        });
    }
    // By number, then home station: two records of one number (malformed,
    // but readable) sort alike whichever order they were read in.
    volunteers.sort_by(|a, b| (&a.number, &a.home_station).cmp(&(&b.number, &b.home_station)));
    let mut teams = 0;
    for team in team_records {
        teams += u64::from(!team.flag("deleted")?);
    }
    Ok(RosterContribution {
        station: station.clone(),
        registrations: registrations
            .into_iter()
            .map(|(month, volunteers)| MonthCount { month, volunteers })
            .collect(),
        teams,
        volunteers,
    })
}

fn orders<D: ReadDoc>(
    station: &StationId,
    month: Month,
    doc: &D,
) -> Result<OrdersContribution, LayoutError> {
    let mut counts = OrderCounts::default();
    for order in layout::orders(doc)? {
        counts.placed += 1;
        match order.status {
            OrderStatus::Placed => {}
            OrderStatus::Dispatched => counts.dispatched += 1,
            OrderStatus::Taken => {
                counts.dispatched += 1;
                counts.taken += 1;
            }
            OrderStatus::Rated => {
                counts.dispatched += 1;
                counts.taken += 1;
                counts.rated += 1;
                if let Some(rating) = order.rating {
                    counts.ratings += 1;
                    counts.rating_sum += u64::from(rating);
                }
            }
            OrderStatus::Cancelled => counts.cancelled += 1,
        }
    }
    Ok(OrdersContribution {
        station: station.clone(),
        month,
        counts,
    })
}

/// `old` and `new` without the volunteer entries equal in both, matched
/// one to one along their sorted lists (`None`: the contribution as it is).
/// Folding out the one and in the other then moves the index as folding
/// the whole of both does: an entry in both adds and removes the same.
pub(super) fn without_common_volunteers(
    old: &Contribution,
    new: &Contribution,
) -> (Option<Contribution>, Option<Contribution>) {
    match (old, new) {
        (Contribution::Activities(old), Contribution::Activities(new)) => {
            let (old_only, new_only) = unmatched(&old.volunteers, &new.volunteers, |a, b| {
                a.volunteer.cmp(&b.volunteer)
            });
            (
                Some(Contribution::Activities(ActivitiesContribution {
                    station: old.station.clone(),
                    month: old.month,
                    cells: old.cells.clone(),
                    volunteers: old_only,
                })),
                Some(Contribution::Activities(ActivitiesContribution {
                    station: new.station.clone(),
                    month: new.month,
                    cells: new.cells.clone(),
                    volunteers: new_only,
                })),
            )
        }
        (Contribution::Roster(old), Contribution::Roster(new)) => {
            let (old_only, new_only) = unmatched(&old.volunteers, &new.volunteers, |a, b| {
                (&a.number, &a.home_station).cmp(&(&b.number, &b.home_station))
            });
            (
                Some(Contribution::Roster(RosterContribution {
                    station: old.station.clone(),
                    registrations: old.registrations.clone(),
                    teams: old.teams,
                    volunteers: old_only,
                })),
                Some(Contribution::Roster(RosterContribution {
                    station: new.station.clone(),
                    registrations: new.registrations.clone(),
                    teams: new.teams,
                    volunteers: new_only,
                })),
            )
        }
        _ => (None, None),
    }
}

/// The entries of `old` and of `new` not matched by an equal entry of the
/// other, walking both in `order` (a list out of that order only leaves
/// more unmatched, never a wrong match).
fn unmatched<T: Clone + PartialEq>(
    old: &[T],
    new: &[T],
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> (Vec<T>, Vec<T>) {
    let (mut old_only, mut new_only) = (Vec::new(), Vec::new());
    let (mut o, mut n) = (0, 0);
    while o < old.len() && n < new.len() {
        if old[o] == new[n] {
            o += 1;
            n += 1;
            continue;
        }
        match order(&old[o], &new[n]) {
            std::cmp::Ordering::Less => {
                old_only.push(old[o].clone());
                o += 1;
            }
            std::cmp::Ordering::Greater => {
                new_only.push(new[n].clone());
                n += 1;
            }
            // Same key, different figures: both move.
            std::cmp::Ordering::Equal => {
                old_only.push(old[o].clone());
                new_only.push(new[n].clone());
                o += 1;
                n += 1;
            }
        }
    }
    old_only.extend_from_slice(&old[o..]);
    new_only.extend_from_slice(&new[n..]);
    (old_only, new_only)
}
