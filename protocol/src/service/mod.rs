//! Service: what a clerk does, as operations over a [`Replica`] — the one
//! write path the HTTP API, the CLI, the benchmarks and the simulator share.
//!
//! Owns: registering volunteers, teams, activities and orders and settling
//! conflicts (this file); `approval` (the rules of a month's approval) and
//! `approval_ops` (approving over a replica); `registry` (the station
//! registry: register, rename, retire); `catalog` (menus and themes sent
//! down); `order_flow` (dispatch, take, rate, cancel); `ledger_import` (an
//! activity ledger's rows → activities).
//!
//! May use: every layer below (`stats`, `replica`, `sync`, `layout`,
//! `storage`, `domain`, `identity`).
//! Must never use: anything outside this crate that does IO; `today`, the
//! clock and id nonces are passed in by the caller.
//!
//! What a clerk does — register volunteers, form teams, record activities,
//! take orders, import a roster, settle conflicts — as operations over a
//! [`Replica`].
//!
//! The HTTP API, the CLI, the benchmarks and the simulator all call these, so
//! there is one write path to test. Each operation validates first, then
//! makes exactly one Automerge commit (or none): a refusal never leaves a
//! partial record. `today` and the id nonce come from the caller.

pub mod approval;
pub mod approval_ops;
pub mod catalog;
pub mod duplicates;
pub mod ledger_import;
pub mod order_flow;
pub mod points;
pub mod registry;
pub mod revocations;
pub mod statistics;
pub mod team_import;

use crate::domain::input::{ActivityInput, OrderInput, TeamInput, VolunteerInput};
use crate::domain::model::{Activity, FieldError, Order, OrderStatus, RecordId, Team, Volunteer};
use crate::domain::pii::IdSealer;
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::StationId;
use crate::layout::{self, FieldConflict, LayoutError};
use crate::replica::{BuiltDocument, CommitError, DocumentBuilder, Replica};
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use time::Date;

/// Rows committed together by an import: large enough that a county-sized
/// import is a few hundred commits, small enough to bound one change.
pub const IMPORT_ROWS_PER_COMMIT: usize = 2_000;

/// Why an operation was refused, in words a clerk can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("{field}: already registered as volunteer {existing}")]
    Duplicate { field: String, existing: RecordId },
    #[error("{field}: unknown {kind} {id}")]
    NotFound {
        field: String,
        kind: &'static str,
        id: String,
    },
    #[error("station: {reason}")]
    Forbidden { reason: String },
    /// A correction of a record that was deleted (or an order that was
    /// cancelled): it stays gone, a form left open cannot bring it back.
    #[error("id: {kind} {id} was {how}; a correction does not bring it back")]
    Deleted {
        kind: &'static str,
        id: String,
        /// "deleted", or "cancelled" for an order.
        how: &'static str,
    },
    #[error("the store failed: {reason}")]
    Store { reason: String },
}

/// How a refusal maps onto an HTTP status, without this crate knowing HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    BadInput,
    Conflict,
    NotFound,
    Forbidden,
    Internal,
}

impl ServiceError {
    pub fn field(&self) -> &str {
        match self {
            ServiceError::Invalid(e) => &e.field,
            ServiceError::Duplicate { field, .. } | ServiceError::NotFound { field, .. } => field,
            ServiceError::Forbidden { .. } => "station",
            ServiceError::Deleted { .. } => "id",
            ServiceError::Store { .. } => "store",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            ServiceError::Invalid(e) => e.reason.clone(),
            ServiceError::Duplicate { existing, .. } => {
                format!("already registered as volunteer {existing}")
            }
            ServiceError::NotFound { kind, id, .. } => format!("unknown {kind} {id}"),
            ServiceError::Forbidden { reason } => reason.clone(),
            ServiceError::Deleted { kind, id, how } => {
                format!("{kind} {id} was {how}; a correction does not bring it back")
            }
            ServiceError::Store { reason } => reason.clone(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            ServiceError::Invalid(_) => ErrorClass::BadInput,
            ServiceError::Duplicate { .. } => ErrorClass::Conflict,
            ServiceError::NotFound { .. } => ErrorClass::NotFound,
            ServiceError::Forbidden { .. } => ErrorClass::Forbidden,
            ServiceError::Deleted { .. } => ErrorClass::Conflict,
            ServiceError::Store { .. } => ErrorClass::Internal,
        }
    }
}

impl From<LayoutError> for ServiceError {
    fn from(error: LayoutError) -> Self {
        match error {
            LayoutError::Invalid(e) => ServiceError::Invalid(e),
            LayoutError::DuplicateVolunteer { existing } => ServiceError::Duplicate {
                field: "id_number".into(),
                existing,
            },
            LayoutError::NotFound { kind, id, .. } => ServiceError::NotFound {
                field: kind.into(),
                kind,
                id,
            },
            other => ServiceError::Store {
                reason: other.to_string(),
            },
        }
    }
}

impl From<CommitError<ServiceError>> for ServiceError {
    fn from(error: CommitError<ServiceError>) -> Self {
        match error {
            CommitError::Mutate(e) => e,
            CommitError::NotWritable { .. } | CommitError::OutOfScope { .. } => {
                ServiceError::Forbidden {
                    reason: error.to_string(),
                }
            }
            other => ServiceError::Store {
                reason: other.to_string(),
            },
        }
    }
}

fn store_error(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Store {
        reason: error.to_string(),
    }
}

/// A node records for its own station and the stations below it.
pub fn check_station<S: Storage>(
    replica: &Replica<S>,
    station: &StationId,
) -> Result<(), ServiceError> {
    check_station_of(replica.local(), station)
}

/// [`check_station`] for a node of station `local`, without its replica
/// (a roster built away from it).
fn check_station_of(local: &StationId, station: &StationId) -> Result<(), ServiceError> {
    if local.is_ancestor_or_self_of(station) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            reason: format!(
                "this node is {local} and records only for it and the stations below it, not {station}"
            ),
        })
    }
}

/// Refuse a correction of a record held as deleted (or cancelled), naming
/// it. Skipped only under the injected fault
/// [`Fault::ResurrectDeleted`](crate::faults::Fault).
fn refuse_if_deleted(
    deleted: bool,
    kind: &'static str,
    id: &RecordId,
    how: &'static str,
) -> Result<(), ServiceError> {
    if deleted && !faults::armed(Fault::ResurrectDeleted) {
        return Err(ServiceError::Deleted {
            kind,
            id: id.to_string(),
            how,
        });
    }
    Ok(())
}

pub(crate) fn month_of(date: Date) -> Month {
    Month {
        year: date.year() as u16,
        month: u8::from(date.month()),
    }
}

/// Register a new volunteer in `station`'s roster. A second registration of
/// the same person (same ID digest) is refused, naming the existing number.
pub fn register_volunteer<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    input: &VolunteerInput,
    key: &IdSealer,
    today: Date,
    nonce: u64,
) -> Result<Volunteer, ServiceError> {
    check_station(replica, station)?;
    let volunteer = input.validate(key, station, today, nonce)?;
    let document = DocumentId::roster(station);
    let outcome = replica.commit(&document, |doc| {
        if layout::volunteer(doc, &volunteer.number)?.is_some() {
            return Err(ServiceError::Invalid(FieldError::new(
                "number",
                format!(
                    "volunteer number {} is already in use at this station",
                    volunteer.number
                ),
            )));
        }
        layout::put_volunteer(doc, &volunteer)?;
        Ok(volunteer.clone())
    })?;
    Ok(outcome.value)
}

/// Correct a registered volunteer's fields (same number, same person); a
/// deleted volunteer is refused ([`ServiceError::Deleted`]).
pub fn update_volunteer<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    input: &VolunteerInput,
    key: &IdSealer,
    today: Date,
) -> Result<Volunteer, ServiceError> {
    check_station(replica, station)?;
    let number = input.number.clone().unwrap_or_default();
    let volunteer = input.validate(key, station, today, 0)?;
    let document = DocumentId::roster(station);
    let outcome = replica.commit(&document, |doc| {
        let Some(existing) = layout::volunteer(doc, &volunteer.number)? else {
            return Err(ServiceError::NotFound {
                field: "number".into(),
                kind: "volunteer",
                id: number.clone(),
            });
        };
        refuse_if_deleted(existing.deleted, "volunteer", &existing.number, "deleted")?;
        let mut corrected = volunteer.clone();
        corrected.registered_on = existing.registered_on;
        layout::put_volunteer(doc, &corrected)?;
        Ok(corrected)
    })?;
    Ok(outcome.value)
}

/// Mark a volunteer of `station`'s roster deleted (kept, never removed: the
/// hours they served stay counted in the activities that name them, and
/// their ID digest stays taken, so the same person registered again is
/// told which number they had). Deleting again changes nothing.
pub fn delete_volunteer<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    number: &RecordId,
) -> Result<Volunteer, ServiceError> {
    let named = Named {
        field: "number",
        kind: "volunteer",
        id: number,
    };
    delete_from_roster(
        replica,
        station,
        named,
        layout::volunteer,
        |held| Volunteer {
            deleted: true,
            ..held
        },
        layout::put_volunteer,
    )
}

/// The record a delete names, for its refusal when the roster lacks it.
struct Named<'a> {
    field: &'static str,
    kind: &'static str,
    id: &'a RecordId,
}

/// One delete of a roster record: read it (`read`), refuse it when absent,
/// mark it (`mark`) and write it back (`write`). Only the flag differs, so
/// only the flag is written: a correction made apart from the delete keeps
/// its other fields.
fn delete_from_roster<S: Storage, R>(
    replica: &mut Replica<S>,
    station: &StationId,
    named: Named<'_>,
    read: impl FnOnce(&automerge::AutoCommit, &RecordId) -> layout::LayoutResult<Option<R>>,
    mark: impl FnOnce(R) -> R,
    write: impl FnOnce(&mut automerge::AutoCommit, &R) -> layout::LayoutResult<()>,
) -> Result<R, ServiceError> {
    check_station(replica, station)?;
    let outcome = replica.commit(&DocumentId::roster(station), |doc| {
        let Some(held) = read(doc, named.id)? else {
            return Err(ServiceError::NotFound {
                field: named.field.into(),
                kind: named.kind,
                id: named.id.to_string(),
            });
        };
        let deleted = mark(held);
        write(doc, &deleted)?;
        Ok(deleted)
    })?;
    Ok(outcome.value)
}

/// Bulk registration: every valid row goes in, every refused row comes back
/// with its row number and reason. Rows are committed in chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub rows: usize,
    pub accepted: usize,
    pub refused: Vec<RowRefusal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRefusal {
    /// As the spreadsheet shows it (header = row 1).
    pub row: usize,
    pub field: String,
    pub reason: String,
}

/// An import's rows after validation: what can be stored, and what was
/// refused before touching any roster. Numbers are drawn here, so the same
/// validated rows stored twice (built, then committed after losing a race)
/// give the same volunteers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRows {
    pub rows: usize,
    pub valid: Vec<(usize, Volunteer)>,
    pub refused: Vec<RowRefusal>,
}

/// Validate every row of an import for `station`; no replica needed, so it
/// may run off the store's owner thread.
pub fn validate_volunteer_rows(
    station: &StationId,
    rows: Vec<(usize, Result<VolunteerInput, FieldError>)>,
    key: &IdSealer,
    today: Date,
    mut next_nonce: impl FnMut() -> u64,
) -> ValidatedRows {
    let mut validated = ValidatedRows {
        rows: rows.len(),
        valid: Vec::new(),
        refused: Vec::new(),
    };
    // One key agreement for the rows' seals, not one per seal.
    let key = &key.batch();
    for (row, input) in rows {
        match input.and_then(|input| input.validate(key, station, today, next_nonce())) {
            Ok(volunteer) => validated.valid.push((row, volunteer)),
            Err(e) => validated.refused.push(RowRefusal {
                row,
                field: e.field,
                reason: e.reason,
            }),
        }
    }
    debug_assert_eq!(
        validated.valid.len() + validated.refused.len(),
        validated.rows
    );
    validated
}

pub fn import_volunteers<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    rows: Vec<(usize, Result<VolunteerInput, FieldError>)>,
    key: &IdSealer,
    today: Date,
    next_nonce: impl FnMut() -> u64,
) -> Result<ImportReport, ServiceError> {
    // import_validated_volunteers checks the station, but refusing before
    // validating spares an HMAC per row of a file that cannot go in.
    check_station(replica, station)?;
    let validated = validate_volunteer_rows(station, rows, key, today, next_nonce);
    import_validated_volunteers(replica, station, validated)
}

/// Commit validated rows to `station`'s roster, new or held, in chunks of
/// [`IMPORT_ROWS_PER_COMMIT`], on the replica's thread.
pub fn import_validated_volunteers<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    validated: ValidatedRows,
) -> Result<ImportReport, ServiceError> {
    check_station(replica, station)?;
    let ValidatedRows {
        rows,
        valid,
        refused,
    } = validated;
    let mut report = ImportReport {
        rows,
        accepted: 0,
        refused,
    };
    let document = DocumentId::roster(station);
    for chunk in valid.chunks(IMPORT_ROWS_PER_COMMIT) {
        let outcome = replica.commit(&document, |doc| {
            let volunteers: Vec<Volunteer> = chunk.iter().map(|(_, v)| v.clone()).collect();
            let answers = layout::put_volunteers(doc, &volunteers)?;
            row_answers(chunk, answers)
        })?;
        let (accepted, refused) = outcome.value;
        report.accepted += accepted;
        report.refused.extend(refused);
    }
    Ok(report.finished())
}

/// Build `station`'s roster from nothing with the validated rows, away from
/// the replica: the answers per row are those of
/// [`import_validated_volunteers`] into a roster that does not exist yet.
/// `None` when no row is valid — an import that accepts nothing creates no
/// roster, as the committed path does not.
pub fn build_new_roster(
    builder: &DocumentBuilder,
    station: &StationId,
    validated: &ValidatedRows,
) -> Result<(Option<BuiltDocument>, ImportReport), ServiceError> {
    check_station_of(builder.local(), station)?;
    let mut report = ImportReport {
        rows: validated.rows,
        accepted: 0,
        refused: validated.refused.clone(),
    };
    if validated.valid.is_empty() {
        return Ok((None, report.finished()));
    }
    let document = DocumentId::roster(station);
    // One change for the whole file: a new roster answers duplicates within
    // the batch itself, so chunking would only add the slower per-row path.
    let (built, (accepted, refused)) = builder.build(&document, |doc| {
        let volunteers: Vec<Volunteer> = validated.valid.iter().map(|(_, v)| v.clone()).collect();
        let answers = layout::put_volunteers(doc, &volunteers)?;
        row_answers(&validated.valid, answers)
    })?;
    report.accepted = accepted;
    report.refused.extend(refused);
    Ok((Some(built), report.finished()))
}

impl ImportReport {
    /// Refusals in row order, every row answered once.
    fn finished(mut self) -> ImportReport {
        self.refused.sort_by_key(|r| r.row);
        debug_assert_eq!(self.accepted + self.refused.len(), self.rows);
        self
    }
}

/// Turn `put_volunteers`' answers into accepted count and refusals by row;
/// a duplicate ID number names the volunteer already holding it.
fn row_answers(
    rows: &[(usize, Volunteer)],
    answers: Vec<Result<(), LayoutError>>,
) -> Result<(usize, Vec<RowRefusal>), ServiceError> {
    assert_eq!(rows.len(), answers.len(), "one answer per volunteer");
    let mut refused = Vec::new();
    let mut accepted = 0;
    for ((row, _), answer) in rows.iter().zip(answers) {
        match answer {
            Ok(()) => accepted += 1,
            Err(LayoutError::DuplicateVolunteer { existing }) => refused.push(RowRefusal {
                row: *row,
                field: "id_number".into(),
                reason: format!("already registered as volunteer {existing}"),
            }),
            Err(other) => return Err(ServiceError::from(other)),
        }
    }
    Ok((accepted, refused))
}

/// Volunteers of one station's roster (deleted ones left out).
pub fn volunteers<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
) -> Result<Vec<Volunteer>, ServiceError> {
    let document = DocumentId::roster(station);
    let found = replica
        .with_document(&document, layout::volunteers)
        .map_err(store_error)?;
    Ok(found
        .transpose()?
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !v.deleted)
        .collect())
}

/// Create or correct a team in `station`'s roster; a correction of a
/// deleted team is refused ([`ServiceError::Deleted`]).
pub fn put_team<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    input: &TeamInput,
    nonce: u64,
) -> Result<Team, ServiceError> {
    check_station(replica, station)?;
    let team = input.validate(station, nonce)?;
    let outcome = replica.commit(&DocumentId::roster(station), |doc| {
        for member in team.members.iter().chain(team.leader.iter()) {
            if layout::volunteer(doc, member)?.is_none() {
                return Err(ServiceError::NotFound {
                    field: "members".into(),
                    kind: "volunteer",
                    id: member.to_string(),
                });
            }
        }
        if let Some(held) = layout::team(doc, &team.id)? {
            refuse_if_deleted(held.deleted, "team", &held.id, "deleted")?;
        }
        layout::put_team(doc, &team)?;
        Ok(team.clone())
    })?;
    Ok(outcome.value)
}

pub fn teams<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
) -> Result<Vec<Team>, ServiceError> {
    let found = replica
        .with_document(&DocumentId::roster(station), layout::teams)
        .map_err(store_error)?;
    Ok(found
        .transpose()?
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.deleted)
        .collect())
}

/// Mark a team of `station`'s roster deleted (kept, never removed: the
/// activities that name it keep counting for it, and a correction made
/// apart from the delete converges to deleted). Deleting again changes
/// nothing.
pub fn delete_team<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    id: &RecordId,
) -> Result<Team, ServiceError> {
    let named = Named {
        field: "id",
        kind: "team",
        id,
    };
    delete_from_roster(
        replica,
        station,
        named,
        layout::team,
        |held| Team {
            deleted: true,
            ..held
        },
        layout::put_team,
    )
}

/// Rosters where a volunteer or team named on an activity at `station` may
/// be registered: the station's own, then the recording node's own.
fn candidate_rosters<S: Storage>(replica: &Replica<S>, station: &StationId) -> Vec<DocumentId> {
    let mut out = vec![DocumentId::roster(station)];
    let local = DocumentId::roster(replica.local());
    if !out.contains(&local) {
        out.push(local);
    }
    out
}

/// Everyone an activity names must be known here, and each volunteer is
/// pinned to one person: a number qualified with its home station is
/// looked up in that roster; a bare number in the station's roster and in
/// the recording node's own, and refused as ambiguous when both hold it
/// (numbers are unique only per roster). A volunteer found in the recording
/// node's roster gets that home station written on the record, so hours are
/// never counted for someone else who has the number at the activity's
/// station. Shared by [`record_activity`] and the ledger import, so both
/// refuse alike.
pub fn resolve_named_known<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    activity: &mut Activity,
) -> Result<(), ServiceError> {
    resolve_named_known_in(replica, station, activity, &mut KnownNames::default())
}

/// What rosters answered about volunteer numbers and team ids, kept across
/// the activities of one ledger: a 300-row file names about 130 distinct
/// volunteers, and each lookup in a roster's Automerge map was most of the
/// plan's time. Valid only while the replica takes no write (a ledger is
/// planned in one job on the store's thread, which writes nothing).
#[derive(Debug, Default)]
pub struct KnownNames {
    volunteers: HashMap<(DocumentId, String), bool>,
    teams: HashMap<(DocumentId, String), bool>,
    /// How each roster a plan looked in answers about volunteers.
    rosters: HashMap<DocumentId, RosterNames>,
    /// Distinct volunteer numbers the plan will look up (0: unknown, every
    /// roster answers one number at a time).
    names_expected: usize,
}

/// A roster read whole when it holds at most this many records for each
/// number the plan will look up: one look-up costs about three records'
/// reads (see [`layout::registered_volunteers`]).
pub const ROSTER_RECORDS_READ_WHOLE_PER_NAME: usize = 3;

#[derive(Debug)]
enum RosterNames {
    /// Its registered numbers, read in one pass (empty when not held).
    Whole(HashSet<String>),
    /// Too large for the names looked up: one look-up per number.
    OneByOne,
}

impl KnownNames {
    /// For a plan that will look up `names` distinct volunteer numbers.
    pub fn expecting(names: usize) -> KnownNames {
        KnownNames {
            names_expected: names,
            ..KnownNames::default()
        }
    }

    /// Is `number` registered (and not deleted) in `roster`? A roster small
    /// enough for the names expected is read whole at its first look-up.
    fn volunteer<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        roster: &DocumentId,
        number: &RecordId,
    ) -> Result<bool, ServiceError> {
        if self.names_expected == 0 {
            self.rosters
                .entry(roster.clone())
                .or_insert(RosterNames::OneByOne);
        }
        if !self.rosters.contains_key(roster) {
            let names_expected = self.names_expected;
            let names = replica
                .with_document(roster, |doc| {
                    let small = layout::volunteer_records(doc).is_ok_and(|records| {
                        records <= ROSTER_RECORDS_READ_WHOLE_PER_NAME.saturating_mul(names_expected)
                    });
                    if !small {
                        return RosterNames::OneByOne;
                    }
                    // A record that does not read fails only the activities
                    // naming it, as a look-up would: such a roster is asked
                    // number by number.
                    layout::registered_volunteers(doc)
                        .map_or(RosterNames::OneByOne, RosterNames::Whole)
                })
                .map_err(store_error)?
                .unwrap_or_else(|| RosterNames::Whole(HashSet::new()));
            self.rosters.insert(roster.clone(), names);
        }
        match &self.rosters[roster] {
            RosterNames::Whole(registered) => Ok(registered.contains(number.as_str())),
            RosterNames::OneByOne => KnownNames::lookup(
                replica,
                &mut self.volunteers,
                roster,
                number,
                layout::volunteer_registered,
            ),
        }
    }

    fn lookup<S: Storage>(
        replica: &mut Replica<S>,
        memo: &mut HashMap<(DocumentId, String), bool>,
        roster: &DocumentId,
        key: &RecordId,
        read: fn(&automerge::AutoCommit, &RecordId) -> layout::LayoutResult<bool>,
    ) -> Result<bool, ServiceError> {
        let memo_key = (roster.clone(), key.as_str().to_string());
        if let Some(found) = memo.get(&memo_key) {
            return Ok(*found);
        }
        let found = replica
            .with_document(roster, |doc| read(doc, key))
            .map_err(store_error)?
            .transpose()?
            .unwrap_or(false);
        memo.insert(memo_key, found);
        Ok(found)
    }
}

/// [`resolve_named_known`] with the answers of earlier activities of the
/// same plan remembered in `known`.
pub fn resolve_named_known_in<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    activity: &mut Activity,
    known: &mut KnownNames,
) -> Result<(), ServiceError> {
    let rosters = candidate_rosters(replica, station);
    for (index, record) in activity.records.iter_mut().enumerate() {
        let field = || format!("records[{index}].volunteer");
        let looked_in: Vec<DocumentId> = match &record.home_station {
            Some(home) => vec![DocumentId::roster(home)],
            None => rosters.clone(),
        };
        let mut found_in = Vec::new();
        for roster in &looked_in {
            let found = known.volunteer(replica, roster, &record.volunteer)?;
            if found {
                found_in.push(roster.owner.clone());
            }
        }
        match found_in.as_slice() {
            [] => {
                let id = match &record.home_station {
                    Some(home) => format!("{home}:{}", record.volunteer),
                    None => record.volunteer.to_string(),
                };
                return Err(ServiceError::NotFound {
                    field: field(),
                    kind: "volunteer",
                    id,
                });
            }
            [home] => record.home_station = (home != station).then(|| home.clone()),
            several => {
                let names: Vec<String> = several
                    .iter()
                    .map(|home| format!("{home}:{}", record.volunteer))
                    .collect();
                return Err(ServiceError::Invalid(FieldError::new(
                    field(),
                    format!(
                        "volunteer number {} is registered at {} stations: name one of {}",
                        record.volunteer,
                        several.len(),
                        names.join(", ")
                    ),
                )));
            }
        }
    }
    if let Some(team) = &activity.team {
        let mut exists = false;
        for roster in &rosters {
            exists |=
                KnownNames::lookup(replica, &mut known.teams, roster, team, layout::team_exists)?;
        }
        if !exists {
            return Err(ServiceError::NotFound {
                field: "team".into(),
                kind: "team",
                id: team.to_string(),
            });
        }
    }
    Ok(())
}

/// Record (or, with an existing id, correct) an activity with its service
/// records, in the station's document for the activity's month. A
/// correction of an activity deleted there is refused
/// ([`ServiceError::Deleted`]): it never brings the activity back.
pub fn record_activity<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    input: &ActivityInput,
    today: Date,
    nonce: u64,
) -> Result<Activity, ServiceError> {
    check_station(replica, station)?;
    let mut activity = input.validate(station, today, nonce)?;
    resolve_named_known(replica, station, &mut activity)?;
    let document = DocumentId::activities(station, month_of(activity.date));
    let outcome = replica.commit(&document, |doc| {
        if let Some(held) = layout::activity(doc, &activity.id)? {
            refuse_if_deleted(held.deleted, "activity", &held.id, "deleted")?;
        }
        layout::put_activity(doc, &activity)?;
        Ok(activity.clone())
    })?;
    Ok(outcome.value)
}

/// Mark an activity deleted (kept, never removed).
pub fn delete_activity<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Month,
    id: &RecordId,
) -> Result<(), ServiceError> {
    check_station(replica, station)?;
    replica.commit(&DocumentId::activities(station, month), |doc| {
        Ok(layout::delete_activity(doc, id)?)
    })?;
    Ok(())
}

/// Activities of a station's month; with `subtree`, of every station below
/// it that this node holds too.
pub fn activities<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Month,
    subtree: bool,
) -> Result<Vec<Activity>, ServiceError> {
    let documents = replica.documents_where(|d| {
        d.kind == DocumentKind::Activities(month)
            && if subtree {
                station.is_ancestor_or_self_of(&d.owner)
            } else {
                d.owner == *station
            }
    });
    let mut out = Vec::new();
    for document in documents {
        if let Some(found) = replica
            .with_document(&document, layout::activities)
            .map_err(store_error)?
        {
            out.extend(found?.into_iter().filter(|a| !a.deleted));
        }
    }
    Ok(out)
}

/// A citizen orders a service from the menu (群众点单). Placing again under
/// a held order's id corrects it, except a cancelled order (撤单 is the
/// order's delete), which is refused ([`ServiceError::Deleted`]).
pub fn place_order<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    input: &OrderInput,
    today: Date,
    nonce: u64,
) -> Result<Order, ServiceError> {
    check_station(replica, station)?;
    let order = input.validate(station, today, nonce)?;
    let document = DocumentId::orders(station, month_of(order.placed_on));
    replica.commit(&document, |doc| {
        if let Some(held) = layout::order(doc, &order.id)? {
            let cancelled = held.status == OrderStatus::Cancelled;
            refuse_if_deleted(cancelled, "order", &held.id, "cancelled")?;
        }
        layout::put_order(doc, &order)?;
        Ok(())
    })?;
    Ok(order)
}

pub fn orders<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Month,
) -> Result<Vec<Order>, ServiceError> {
    let found = replica
        .with_document(&DocumentId::orders(station, month), layout::orders)
        .map_err(store_error)?;
    Ok(found.transpose()?.unwrap_or_default())
}

/// A conflict in one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentConflict {
    pub document: DocumentId,
    #[serde(flatten)]
    pub conflict: FieldConflict,
}

/// Every field with concurrent values in the documents this node holds
/// within `station`'s subtree (optionally only one month).
pub fn conflicts<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Option<Month>,
) -> Result<Vec<DocumentConflict>, ServiceError> {
    let documents = replica.documents_where(|d| {
        station.is_ancestor_or_self_of(&d.owner) && (month.is_none() || d.month() == month)
    });
    let mut out = Vec::new();
    for document in documents {
        if let Some(found) = replica
            .with_document(&document, layout::conflicts)
            .map_err(store_error)?
        {
            out.extend(found?.into_iter().map(|conflict| DocumentConflict {
                document: document.clone(),
                conflict,
            }));
        }
    }
    Ok(out)
}

/// A clerk picks one of the conflicting values; the pick syncs like any edit.
pub fn resolve_conflict<S: Storage>(
    replica: &mut Replica<S>,
    document: &DocumentId,
    path: &str,
    value: &str,
) -> Result<(), ServiceError> {
    if !replica.holds(document) {
        return Err(ServiceError::NotFound {
            field: "document".into(),
            kind: "document",
            id: document.to_string(),
        });
    }
    replica.commit(document, |doc| {
        Ok(layout::resolve_conflict(doc, path, value)?)
    })?;
    Ok(())
}

#[cfg(test)]
mod deletion_tests;
#[cfg(test)]
mod tests;
