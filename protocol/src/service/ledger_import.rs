//! Import of an activity ledger (活动台账): spreadsheet rows, one per
//! service record, into activities of a station's month documents.
//!
//! The file is read elsewhere (the node reads CSV and XLSX into
//! [`LedgerRow`]s); this module groups rows into activities, validates
//! them exactly as the one-by-one path does ([`ActivityInput::validate`],
//! [`service::resolve_named_known`], and the daily-hours rule of
//! [`layout::put_activities`], which is [`layout::put_activity`]'s answer
//! in file order), and writes one commit per month document.
//!
//! Invariants:
//!
//! - **Every row is answered exactly once**: accepted (listed under its
//!   activity) or refused with the field and the reason.
//! - **An activity is all or nothing.** Any bad row refuses the whole
//!   activity: the bad row gets its own reason, the others name it; no
//!   record of a refused activity is written. The valid activities go in.
//! - **One commit per month document**, none for a month with nothing
//!   accepted. A month the station does not hold yet may be built away from
//!   the replica with [`put_month`] (the node does, on every core).
//! - **Re-importing is harmless.** Rows with the same `id` are one activity
//!   and a second import corrects it to the same values. Rows without an id
//!   are grouped by (name, date, place) and get an id derived from the
//!   station and those three ([`derived_id`]), so the same rows give the
//!   same activity again, never a copy. A re-import keeps when each held
//!   activity and service record was first recorded (and so its late mark),
//!   and does not bring back an activity a clerk deleted.
//! - **Bounded**: [`LEDGER_ROWS_MAX`] rows, [`LEDGER_ACTIVITIES_MAX`]
//!   activities, [`LEDGER_RECORDS_PER_ACTIVITY_MAX`] records per activity;
//!   a file over a file-wide limit is refused whole, naming the limit.

use crate::domain::input::{ActivityInput, HoursInput, ServiceRecordInput};
use crate::domain::model::{Activity, FieldError, RecordId, SERVICE_RECORDS_PER_ACTIVITY_MAX};
use crate::identity::document_id::{DocumentId, Month};
use crate::identity::station::StationId;
use crate::layout::{self, LayoutError};
use crate::replica::Replica;
use crate::service::{self, RowRefusal, ServiceError};
use crate::storage::Storage;
use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use time::Date;

/// Most rows (service records and activities without records) in one file:
/// a busy county's year of village ledgers.
pub const LEDGER_ROWS_MAX: usize = 100_000;
/// Most activities in one file.
pub const LEDGER_ACTIVITIES_MAX: usize = 20_000;
/// Most service records one activity of a ledger may carry: what one
/// activity may carry anywhere.
pub const LEDGER_RECORDS_PER_ACTIVITY_MAX: usize = SERVICE_RECORDS_PER_ACTIVITY_MAX;

/// One spreadsheet row, cells as the clerk typed them (trimmed by the
/// reader); an absent column is an empty cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerRow {
    /// As the spreadsheet shows it (header = row 1).
    pub row: usize,
    pub id: String,
    pub name: String,
    pub date: String,
    pub place: String,
    pub content: String,
    pub form: String,
    pub category: String,
    pub team: String,
    pub person_in_charge: String,
    pub beneficiaries: String,
    pub theme: String,
    pub volunteer: String,
    pub hours: String,
}

/// The activity-level cells of a row, by the field names clerks see.
const ACTIVITY_FIELDS: usize = 11;

impl LedgerRow {
    fn activity_fields(&self) -> [(&'static str, &str); ACTIVITY_FIELDS] {
        [
            ("id", &self.id),
            ("name", &self.name),
            ("date", &self.date),
            ("place", &self.place),
            ("content", &self.content),
            ("form", &self.form),
            ("category", &self.category),
            ("team", &self.team),
            ("person_in_charge", &self.person_in_charge),
            ("beneficiaries", &self.beneficiaries),
            ("theme", &self.theme),
        ]
    }
}

/// A file over a file-wide limit: refused whole, nothing written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the ledger has more than {max} rows (LEDGER_ROWS_MAX); split the file")]
    TooManyRows { max: usize },
    #[error("the ledger has more than {max} activities (LEDGER_ACTIVITIES_MAX); split the file")]
    TooManyActivities { max: usize },
}

impl From<LedgerError> for ServiceError {
    fn from(error: LedgerError) -> Self {
        ServiceError::Invalid(FieldError::new("file", error.to_string()))
    }
}

/// The id of an activity given without one: the same station, name, date
/// and place give the same id, so a re-import corrects it in place.
pub fn derived_id(station: &StationId, name: &str, date: &str, place: &str) -> RecordId {
    let mut hash = Sha256::new();
    for part in [station.as_str(), name, date, place] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    RecordId::generate("AL", u64::from_le_bytes(first))
}

/// Rows grouped into one activity, before validation.
#[derive(Debug, Clone)]
struct Group {
    rows: Vec<usize>,
    /// Activity-level cells: the first non-empty value of each, and the row
    /// that gave it (a later empty cell means "as above").
    fields: [(String, usize); ACTIVITY_FIELDS],
    /// (row, record) in file order.
    records: Vec<(usize, ServiceRecordInput)>,
    refused: Vec<RowRefusal>,
}

impl Group {
    fn new(first: &LedgerRow) -> Group {
        Group {
            rows: Vec::new(),
            fields: first
                .activity_fields()
                .map(|(_, value)| (value.to_string(), first.row)),
            records: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn field(&self, name: &str) -> &str {
        let at = ACTIVITY_NAMES.iter().position(|n| *n == name);
        debug_assert!(at.is_some(), "{name} is an activity field");
        at.map_or("", |at| self.fields[at].0.as_str())
    }

    fn row_of_field(&self, name: &str) -> usize {
        ACTIVITY_NAMES
            .iter()
            .position(|n| *n == name)
            .map_or(self.rows[0], |at| self.fields[at].1)
    }

    fn refuse(&mut self, row: usize, field: &str, reason: String) {
        self.refused.push(RowRefusal {
            row,
            field: field.into(),
            reason,
        });
    }

    fn add(&mut self, row: &LedgerRow) {
        self.rows.push(row.row);
        for (at, (name, value)) in row.activity_fields().into_iter().enumerate() {
            let held = &mut self.fields[at];
            if value.is_empty() {
                continue;
            }
            if held.0.is_empty() {
                *held = (value.to_string(), row.row);
            } else if held.0 != value {
                let reason = format!(
                    "{value:?} differs from {:?} on row {} of the same activity",
                    held.0, held.1
                );
                self.refuse(row.row, name, reason);
            }
        }
        if row.volunteer.is_empty() {
            if !row.hours.is_empty() {
                self.refuse(
                    row.row,
                    "volunteer",
                    "hours are given without a volunteer".into(),
                );
            }
            return;
        }
        if self.records.len() >= LEDGER_RECORDS_PER_ACTIVITY_MAX {
            self.refuse(
                row.row,
                "volunteer",
                format!(
                    "more than {LEDGER_RECORDS_PER_ACTIVITY_MAX} service records in one activity \
                     (LEDGER_RECORDS_PER_ACTIVITY_MAX)"
                ),
            );
            return;
        }
        self.records.push((
            row.row,
            ServiceRecordInput {
                volunteer: row.volunteer.clone(),
                hours: HoursInput::Text(row.hours.clone()),
            },
        ));
    }

    /// The input the one-by-one path would be given for this activity.
    fn input(&self, station: &StationId) -> Result<ActivityInput, RowRefusal> {
        let beneficiaries = match self.field("beneficiaries") {
            "" => 0,
            text => text.parse::<u32>().map_err(|_| RowRefusal {
                row: self.row_of_field("beneficiaries"),
                field: "beneficiaries".into(),
                reason: format!("{text:?} is not a whole number of people"),
            })?,
        };
        let id = match self.field("id") {
            "" => derived_id(
                station,
                self.field("name"),
                self.field("date"),
                self.field("place"),
            )
            .to_string(),
            given => given.to_string(),
        };
        let optional = |name| Some(self.field(name).to_string()).filter(|t| !t.is_empty());
        Ok(ActivityInput {
            id: Some(id),
            name: self.field("name").into(),
            date: self.field("date").into(),
            place: self.field("place").into(),
            content: self.field("content").into(),
            form: self.field("form").into(),
            category: self.field("category").into(),
            team: optional("team"),
            person_in_charge: self.field("person_in_charge").into(),
            beneficiaries,
            theme: optional("theme"),
            records: self.records.iter().map(|(_, r)| r.clone()).collect(),
        })
    }

    fn row_map(&self) -> RowMap {
        RowMap {
            rows: self.rows.clone(),
            record_rows: self.records.iter().map(|(row, _)| *row).collect(),
            field_rows: self.fields.each_ref().map(|(_, row)| *row),
        }
    }
}

/// Where an activity's values came from in the spreadsheet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowMap {
    /// Every row of the activity, in file order.
    rows: Vec<usize>,
    /// The row of each service record, by index in the activity's records.
    record_rows: Vec<usize>,
    /// The row that gave each activity-level field.
    field_rows: [usize; ACTIVITY_FIELDS],
}

impl RowMap {
    /// The row and column a validation field (`date`, `records[2].hours`)
    /// names.
    fn locate(&self, field: &str) -> (usize, String) {
        if let Some((index, column)) = field
            .strip_prefix("records[")
            .and_then(|rest| rest.split_once("]."))
        {
            if let Some(row) = index
                .parse::<usize>()
                .ok()
                .and_then(|i| self.record_rows.get(i))
            {
                return (*row, column.to_string());
            }
        }
        let at = ACTIVITY_NAMES.iter().position(|n| *n == field);
        (
            at.map_or(self.rows[0], |at| self.field_rows[at]),
            field.to_string(),
        )
    }

    fn refuse(&self, field: &str, reason: String) -> Vec<RowRefusal> {
        let (row, column) = self.locate(field);
        refuse_activity(
            &self.rows,
            vec![RowRefusal {
                row,
                field: column,
                reason,
            }],
        )
    }
}

const ACTIVITY_NAMES: [&str; ACTIVITY_FIELDS] = [
    "id",
    "name",
    "date",
    "place",
    "content",
    "form",
    "category",
    "team",
    "person_in_charge",
    "beneficiaries",
    "theme",
];

/// Group rows into activities in the order they first appear: by id, or
/// without one by (name, date, place).
fn group_rows(rows: &[LedgerRow]) -> Result<Vec<Group>, LedgerError> {
    if rows.len() > LEDGER_ROWS_MAX {
        return Err(LedgerError::TooManyRows {
            max: LEDGER_ROWS_MAX,
        });
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    for row in rows {
        let key = if row.id.is_empty() {
            (
                String::new(),
                row.name.clone(),
                row.date.clone(),
                row.place.clone(),
            )
        } else {
            (row.id.clone(), String::new(), String::new(), String::new())
        };
        let at = match by_key.get(&key) {
            Some(at) => *at,
            None => {
                if groups.len() >= LEDGER_ACTIVITIES_MAX {
                    return Err(LedgerError::TooManyActivities {
                        max: LEDGER_ACTIVITIES_MAX,
                    });
                }
                groups.push(Group::new(row));
                by_key.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[at].add(row);
    }
    debug_assert_eq!(
        groups.iter().map(|g| g.rows.len()).sum::<usize>(),
        rows.len(),
        "every row in one group"
    );
    Ok(groups)
}

/// An activity that passed validation, with the rows it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedActivity {
    pub activity: Activity,
    rows: RowMap,
    /// Held already exactly as the file says: answered, not written again
    /// (so a re-import makes no change at all).
    unchanged: bool,
}

impl PlannedActivity {
    /// Every row of the activity, in file order.
    pub fn rows(&self) -> &[usize] {
        &self.rows.rows
    }
}

/// The valid activities of one month document, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthBatch {
    pub document: DocumentId,
    /// Whether the replica held the document when the import was planned.
    pub held: bool,
    pub activities: Vec<PlannedActivity>,
}

/// A validated ledger: what to write per month, and what was refused
/// before writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPlan {
    pub rows: usize,
    pub months: Vec<MonthBatch>,
    pub refused: Vec<RowRefusal>,
    pub activities_refused: usize,
}

/// An activity written, with its rows (so a clerk sees the id a row
/// without one was given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedActivity {
    pub id: RecordId,
    /// `YYYY-MM`.
    pub month: String,
    pub rows: Vec<usize>,
}

/// What one month's write answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthWritten {
    pub accepted: Vec<AcceptedActivity>,
    pub refused: Vec<RowRefusal>,
    pub activities_refused: usize,
}

/// The answer to an import: every row accepted or refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityImportReport {
    pub rows: usize,
    /// Rows accepted (their activities written).
    pub accepted: usize,
    /// Refused rows in row order: a bad row with its own field and reason,
    /// the other rows of its activity with field `activity` naming it.
    pub refused: Vec<RowRefusal>,
    pub activities: Vec<AcceptedActivity>,
    pub activities_refused: usize,
}

impl ActivityImportReport {
    /// A report of what the plan refused, before any month is written.
    pub fn of_plan(plan: &LedgerPlan) -> ActivityImportReport {
        ActivityImportReport {
            rows: plan.rows,
            accepted: 0,
            refused: plan.refused.clone(),
            activities: Vec::new(),
            activities_refused: plan.activities_refused,
        }
    }

    pub fn add(&mut self, written: MonthWritten) {
        self.accepted += written.accepted.iter().map(|a| a.rows.len()).sum::<usize>();
        self.activities.extend(written.accepted);
        self.refused.extend(written.refused);
        self.activities_refused += written.activities_refused;
    }

    /// Rows and activities in file order, every row answered once.
    pub fn finished(mut self) -> ActivityImportReport {
        self.refused.sort_by_key(|r| r.row);
        self.activities.sort_by_key(|a| a.rows[0]);
        debug_assert_eq!(self.accepted + self.refused.len(), self.rows);
        debug_assert!(
            self.refused.windows(2).all(|w| w[0].row < w[1].row),
            "no row answered twice"
        );
        self
    }
}

/// Every row of a refused activity: the bad rows with their own reasons,
/// the others pointing at the first bad row.
fn refuse_activity(rows: &[usize], mut bad: Vec<RowRefusal>) -> Vec<RowRefusal> {
    assert!(!bad.is_empty(), "a refused activity names a bad row");
    bad.sort_by_key(|r| r.row);
    bad.dedup_by_key(|r| r.row);
    let first = bad[0].clone();
    let mut out = bad;
    for row in rows {
        if !out.iter().any(|r| r.row == *row) {
            out.push(RowRefusal {
                row: *row,
                field: "activity".into(),
                reason: format!(
                    "refused with its activity: row {} {}: {}",
                    first.row, first.field, first.reason
                ),
            });
        }
    }
    debug_assert_eq!(out.len(), rows.len());
    out
}

/// Group, validate and check every activity of a ledger for `station`, as
/// [`service::record_activity`] would, and split the valid ones by month.
/// Reads the replica (rosters, held activities); writes nothing.
pub fn plan_ledger<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    rows: &[LedgerRow],
    today: Date,
) -> Result<LedgerPlan, ServiceError> {
    service::check_station(replica, station)?;
    let groups = group_rows(rows)?;
    let mut plan = LedgerPlan {
        rows: rows.len(),
        months: Vec::new(),
        refused: Vec::new(),
        activities_refused: 0,
    };
    let mut months: BTreeMap<Month, usize> = BTreeMap::new();
    let distinct: HashSet<&str> = rows.iter().map(|row| row.volunteer.trim()).collect();
    let mut known = service::KnownNames::expecting(distinct.len());
    for group in groups {
        match plan_activity(replica, station, &group, today, &mut known)? {
            Ok(planned) => {
                let month = service::month_of(planned.activity.date);
                let at = *months.entry(month).or_insert_with(|| {
                    let document = DocumentId::activities(station, month);
                    plan.months.push(MonthBatch {
                        held: replica.holds(&document),
                        document,
                        activities: Vec::new(),
                    });
                    plan.months.len() - 1
                });
                plan.months[at].activities.push(planned);
            }
            Err(bad) => {
                plan.activities_refused += 1;
                plan.refused.extend(refuse_activity(&group.rows, bad));
            }
        }
    }
    Ok(plan)
}

/// One activity: `Ok(Ok)` valid, `Ok(Err)` refused rows, `Err` a store
/// failure that is no row's fault.
fn plan_activity<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    group: &Group,
    today: Date,
    known: &mut service::KnownNames,
) -> Result<Result<PlannedActivity, Vec<RowRefusal>>, ServiceError> {
    if !group.refused.is_empty() {
        return Ok(Err(group.refused.clone()));
    }
    let map = group.row_map();
    let refusal = |field: &str, reason: String| {
        let (row, column) = map.locate(field);
        vec![RowRefusal {
            row,
            field: column,
            reason,
        }]
    };
    let input = match group.input(station) {
        Ok(input) => input,
        Err(bad) => return Ok(Err(vec![bad])),
    };
    // The id is always given (or derived), so the nonce draws nothing.
    let mut activity = match input.validate(station, today, 0) {
        Ok(activity) => activity,
        Err(e) => return Ok(Err(refusal(&e.field, e.reason))),
    };
    match service::resolve_named_known_in(replica, station, &mut activity, known) {
        Ok(()) => {}
        Err(e @ (ServiceError::NotFound { .. } | ServiceError::Invalid(_))) => {
            return Ok(Err(refusal(e.field(), e.reason())))
        }
        Err(other) => return Err(other),
    }
    let document = DocumentId::activities(station, service::month_of(activity.date));
    let held = replica
        .with_document(&document, |doc| layout::activity(doc, &activity.id))
        .map_err(|e| ServiceError::Store {
            reason: e.to_string(),
        })?
        .transpose()?
        .flatten();
    let mut unchanged = false;
    if let Some(held) = held {
        if held.deleted {
            return Ok(Err(refusal(
                "id",
                format!(
                    "activity {} was deleted at this station; an import does not bring it back",
                    held.id
                ),
            )));
        }
        keep_first_recording(&mut activity, &held);
        unchanged = same_records(&activity, &held);
    }
    Ok(Ok(PlannedActivity {
        activity,
        rows: map,
        unchanged,
    }))
}

/// A re-imported activity keeps when it and each of its held records were
/// first recorded, and so their late marks: importing a file twice must
/// not make on-time records late.
fn keep_first_recording(activity: &mut Activity, held: &Activity) {
    debug_assert_eq!(activity.id, held.id);
    activity.recorded_on = held.recorded_on;
    activity.late = held.late;
    for record in &mut activity.records {
        if let Some(before) = held
            .records
            .iter()
            .find(|r| r.volunteer == record.volunteer)
        {
            record.recorded_on = before.recorded_on;
            record.late = before.late;
        }
    }
}

/// Equal activities, whatever order their records were read in.
fn same_records(activity: &Activity, held: &Activity) -> bool {
    let sorted = |a: &Activity| {
        let mut a = a.clone();
        a.records.sort_by(|x, y| x.volunteer.cmp(&y.volunteer));
        a
    };
    sorted(activity) == sorted(held)
}

/// Write one month's activities into its document (new or held) with the
/// answers [`layout::put_activity`] would give one by one in file order.
/// Runs inside a commit or a [`crate::replica::DocumentBuilder`] build.
pub fn put_month(doc: &mut AutoCommit, batch: &MonthBatch) -> Result<MonthWritten, ServiceError> {
    let month = batch
        .document
        .month()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let to_write: Vec<&PlannedActivity> =
        batch.activities.iter().filter(|p| !p.unchanged).collect();
    let activities: Vec<Activity> = to_write.iter().map(|p| p.activity.clone()).collect();
    let answers = layout::put_activities(doc, &activities)?;
    assert_eq!(answers.len(), to_write.len(), "one answer each");
    let mut answers = answers.into_iter();
    let mut written = MonthWritten::default();
    for planned in &batch.activities {
        let answer = if planned.unchanged {
            Ok(())
        } else {
            answers.next().expect("one answer per activity written")
        };
        match answer {
            Ok(()) => written.accepted.push(AcceptedActivity {
                id: planned.activity.id.clone(),
                month: month.clone(),
                rows: planned.rows().to_vec(),
            }),
            Err(LayoutError::Invalid(e)) => {
                written.activities_refused += 1;
                written
                    .refused
                    .extend(planned.rows.refuse(&e.field, e.reason));
            }
            Err(other) => return Err(ServiceError::from(other)),
        }
    }
    debug_assert!(answers.next().is_none());
    Ok(written)
}

/// Commit one month's batch to the replica (the ordinary way).
pub fn commit_month<S: Storage>(
    replica: &mut Replica<S>,
    batch: &MonthBatch,
) -> Result<MonthWritten, ServiceError> {
    if batch.activities.iter().all(|p| p.unchanged) {
        // Nothing to write: answer without a commit (none for an empty batch).
        let mut written = MonthWritten::default();
        for planned in &batch.activities {
            written.accepted.push(AcceptedActivity {
                id: planned.activity.id.clone(),
                month: batch
                    .document
                    .month()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                rows: planned.rows().to_vec(),
            });
        }
        return Ok(written);
    }
    let outcome = replica.commit(&batch.document, |doc| put_month(doc, batch))?;
    Ok(outcome.value)
}

/// The whole import on the replica's thread: plan, then one commit per
/// month. The node builds new months on other threads instead.
pub fn import_ledger<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    rows: &[LedgerRow],
    today: Date,
) -> Result<ActivityImportReport, ServiceError> {
    let plan = plan_ledger(replica, station, rows, today)?;
    let mut report = ActivityImportReport::of_plan(&plan);
    for batch in &plan.months {
        report.add(commit_month(replica, batch)?);
    }
    Ok(report.finished())
}

#[cfg(test)]
mod tests;
