//! One unit: the mapping of every record kind (volunteer, team, activity,
//! order, meta) to Automerge shares the field readers and writers at its
//! top and the logical-map rules of `view.rs`; registry entries are already
//! apart (`registry.rs`). Splitting the record kinds into files is noted in
//! ARCHITECTURE.md as the next cut.
//!
//! Layer: the document layout. May use `domain` and `identity`. Must never
//! use `replica`, `sync`, `stats` or `service`: it maps one Automerge
//! document to model values and back, and knows nothing of where the
//! document is kept or how it travels.
//!
//! How the domain model lives in Automerge documents.
//!
//! ```text
//! roster:<station>                 activities:<station>:<YYYY-MM>
//!   meta {schema,id,owner,kind}      meta {...}
//!   volunteers {<number>: {..}}      activities {<id>: {.., records {<volunteer>: {..}}}}
//!   id_digests {<hmac>: <number>}    days {<YYYY-MM-DD>: {<id>: true}}
//!   teams {<id>: {.., members {<number>: true}}}
//!   points {<key>: <entry>}        (`points.rs`: 积分 entries, one writer per key)
//!
//! orders:<station>:<YYYY-MM>       approval:<station>:<YYYY-MM>      reference:<station>:<name>
//!   orders {<id>: {..}}              approval {state, by, at, ...}     items {<key>: {..}}
//!
//! statistics:<county>:<YYYY-MM>    (`statistics.rs`: counts per station, no people)
//!   stations {<station>: {activities, hours_centi, ..}}
//! ```
//!
//! Every record is a map of scalar fields (a `&str` put is an atomic string,
//! not collaborative text), so concurrent edits of *different* fields merge
//! and concurrent edits of the *same* field leave both values visible to
//! [`conflicts`] until a clerk picks one. Writes only touch fields whose
//! value changed, which keeps changes small and avoids false conflicts; a new
//! record is created in one batch (Automerge's per-operation cost is most of
//! a write's cost). Records are never removed: deletion is a `deleted` flag,
//! so a deletion can never be undone by a stale replica and nothing recorded
//! is ever lost.
//!
//! Every map is read as a *logical map* ([`view`]): two nodes that created
//! the same map while apart each made their own object under one key, and a
//! reader must see the union, never just Automerge's winner.

mod points;
mod registry;
mod statistics;
mod view;

pub use points::{points_values, put_points_entry, PointsValue, POINTS};

pub use registry::{
    is_registry, put_registry_entry, put_registry_retirement, registry_document, registry_entries,
    registry_len, registry_lists, RegistryEntries, Retirement, UnreadableEntry, REGISTRY,
};

pub use statistics::{
    put_statistics, put_statistics_changed, statistics, MonthCounts, StationCounts, STATIONS,
    STATIONS_PER_STATISTICS_DOCUMENT_MAX, STATION_COUNT_FIELDS,
};

pub(crate) use view::{keys_of, maps_at, records, root_maps, scalar_at};

use crate::domain::model::{
    date_format, Activity, Category, FieldError, Form, Hours, Order, OrderStatus, RecordId,
    ServiceRecord, Sex, Team, Volunteer, HOURS_PER_DAY_CENTI_MAX, SERVICE_RECORDS_PER_ACTIVITY_MAX,
};
use crate::domain::phone::PhoneSeals;
use crate::faults::{self, Fault};
use crate::identity::actor::station_of;
use crate::identity::document_id::DocumentId;
use crate::identity::schema::{current_schema, META_KEY, SCHEMA_KEY};
use crate::identity::station::StationId;
use automerge::transaction::Transactable;
use automerge::{
    AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, ScalarValueRef, Value, ValueRef, ROOT,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use time::Date;
use view::{all_values_at, maps_for_write, put_field, NewRecord};

pub const VOLUNTEERS: &str = "volunteers";
pub const ID_DIGESTS: &str = "id_digests";
pub const TEAMS: &str = "teams";
pub const MEMBERS: &str = "members";
pub const ACTIVITIES: &str = "activities";
pub const RECORDS: &str = "records";
/// Index of an activities document: `days {<date>: {<activity id>: true}}`.
pub const DAYS: &str = "days";
pub const ORDERS: &str = "orders";
pub const APPROVAL: &str = "approval";
pub const ITEMS: &str = "items";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Input that the domain rules refuse.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// A second registration of the same person.
    #[error("id_number: this person is already registered as volunteer {existing}")]
    DuplicateVolunteer { existing: RecordId },
    #[error("{kind} {id} does not exist in {document}")]
    NotFound {
        kind: &'static str,
        id: String,
        document: String,
    },
    /// The document holds something this code cannot read (a damaged or
    /// foreign document); names where.
    #[error("document field {path} is malformed: {reason}")]
    Malformed { path: String, reason: String },
    #[error("automerge refused the operation: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for LayoutError {
    fn from(error: automerge::AutomergeError) -> Self {
        LayoutError::Automerge(error.to_string())
    }
}

impl LayoutError {
    /// The field a clerk should look at, for API error bodies.
    pub fn field(&self) -> &str {
        match self {
            LayoutError::Invalid(error) => &error.field,
            LayoutError::DuplicateVolunteer { .. } => "id_number",
            LayoutError::NotFound { kind, .. } => kind,
            LayoutError::Malformed { .. } | LayoutError::Automerge(_) => "document",
        }
    }
}

pub type LayoutResult<T> = Result<T, LayoutError>;

/// Write the `meta` map of a new document, in one batch. Idempotent.
pub fn init_document(doc: &mut AutoCommit, id: &DocumentId) -> LayoutResult<()> {
    if doc.get(ROOT, META_KEY)?.is_some() {
        return Ok(());
    }
    let meta = NewRecord::new(vec![
        (SCHEMA_KEY, s(current_schema())),
        ("id", s(id.to_string())),
        ("owner", s(id.owner.as_str())),
        ("kind", s(id.kind.name())),
    ]);
    view::create_record(doc, &[ROOT], META_KEY, meta)?;
    Ok(())
}

// ---------------------------------------------------------------- scalars

/// A field value as we store it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Uint(u64),
    Bool(bool),
}

impl Scalar {
    fn into_automerge(self) -> ScalarValue {
        match self {
            Scalar::Str(s) => ScalarValue::Str(s.into()),
            Scalar::Uint(n) => ScalarValue::Uint(n),
            Scalar::Bool(b) => ScalarValue::Boolean(b),
        }
    }

    pub(crate) fn from_value_ref(value: &ValueRef<'_>) -> Option<Scalar> {
        match value {
            ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(Scalar::Str(s.to_string())),
            ValueRef::Scalar(ScalarValueRef::Uint(n)) => Some(Scalar::Uint(*n)),
            ValueRef::Scalar(ScalarValueRef::Int(n)) if *n >= 0 => Some(Scalar::Uint(*n as u64)),
            ValueRef::Scalar(ScalarValueRef::Boolean(b)) => Some(Scalar::Bool(*b)),
            _ => None,
        }
    }

    pub(crate) fn from_value(value: &Value<'_>) -> Option<Scalar> {
        match value {
            Value::Scalar(scalar) => match scalar.as_ref() {
                ScalarValue::Str(s) => Some(Scalar::Str(s.to_string())),
                ScalarValue::Uint(n) => Some(Scalar::Uint(*n)),
                ScalarValue::Int(n) if *n >= 0 => Some(Scalar::Uint(*n as u64)),
                ScalarValue::Boolean(b) => Some(Scalar::Bool(*b)),
                _ => None,
            },
            Value::Object(_) => None,
        }
    }

    /// The value an absent field reads as.
    pub(crate) fn is_default(&self) -> bool {
        match self {
            Scalar::Str(s) => s.is_empty(),
            Scalar::Uint(n) => *n == 0,
            Scalar::Bool(b) => !b,
        }
    }

    pub(crate) fn display(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Uint(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn s(text: impl Into<String>) -> Scalar {
    Scalar::Str(text.into())
}

/// Put only the fields whose value differs from what readers see.
fn put_changed(
    doc: &mut AutoCommit,
    maps: &[ObjId],
    fields: Vec<(&'static str, Scalar)>,
) -> LayoutResult<()> {
    for (key, value) in fields {
        put_field(doc, maps, key, &value)?;
    }
    Ok(())
}

/// Reads typed fields out of one logical record map, naming the path on
/// failure. The fields are read in one pass over each object up front:
/// one Automerge `get` costs about as much as that whole pass, and a
/// record is read for most of its fields.
struct Fields {
    /// (field, value readers see), the first object holding a field wins;
    /// `None` for a value that is not one of our scalars.
    entries: Vec<(String, Option<Scalar>)>,
    path: String,
}

impl Fields {
    fn new<D: ReadDoc>(doc: &D, maps: Vec<ObjId>, path: String) -> Self {
        let mut entries: Vec<(String, Option<Scalar>)> = Vec::new();
        for (index, map) in maps.iter().enumerate() {
            for item in doc.map_range(map, ..) {
                if index > 0 && entries.iter().any(|(k, _)| *k == item.key) {
                    continue;
                }
                entries.push((item.key.to_string(), Scalar::from_value_ref(&item.value)));
            }
        }
        Fields { entries, path }
    }
    fn scalar(&self, key: &str) -> LayoutResult<Option<Scalar>> {
        Ok(self
            .entries
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone()))
    }
    fn malformed(&self, key: &str, reason: &str) -> LayoutError {
        LayoutError::Malformed {
            path: format!("{}.{key}", self.path),
            reason: reason.to_string(),
        }
    }
    fn str(&self, key: &str) -> LayoutResult<String> {
        match self.scalar(key)? {
            Some(Scalar::Str(s)) => Ok(s),
            None => Ok(String::new()),
            Some(_) => Err(self.malformed(key, "expected text")),
        }
    }
    fn opt_str(&self, key: &str) -> LayoutResult<Option<String>> {
        let value = self.str(key)?;
        Ok((!value.is_empty()).then_some(value))
    }
    fn uint(&self, key: &str) -> LayoutResult<u64> {
        match self.scalar(key)? {
            Some(Scalar::Uint(n)) => Ok(n),
            None => Ok(0),
            Some(_) => Err(self.malformed(key, "expected a whole number")),
        }
    }
    fn bool(&self, key: &str) -> LayoutResult<bool> {
        match self.scalar(key)? {
            Some(Scalar::Bool(b)) => Ok(b),
            None => Ok(false),
            Some(_) => Err(self.malformed(key, "expected true or false")),
        }
    }
    fn date(&self, key: &str) -> LayoutResult<Date> {
        let text = self.str(key)?;
        date_format::parse(key, &text).map_err(|e| self.malformed(key, &e.reason))
    }
    fn station(&self, key: &str) -> LayoutResult<StationId> {
        StationId::parse(&self.str(key)?).map_err(|e| self.malformed(key, &e.to_string()))
    }
    fn opt_station(&self, key: &str) -> LayoutResult<Option<StationId>> {
        self.opt_str(key)?
            .map(|text| StationId::parse(&text).map_err(|e| self.malformed(key, &e.to_string())))
            .transpose()
    }
    fn record_id(&self, key: &str) -> LayoutResult<RecordId> {
        RecordId::parse(key, &self.str(key)?).map_err(|e| self.malformed(key, &e.reason))
    }
    fn opt_record_id(&self, key: &str) -> LayoutResult<Option<RecordId>> {
        self.opt_str(key)?
            .map(|text| RecordId::parse(key, &text).map_err(|e| self.malformed(key, &e.reason)))
            .transpose()
    }
    fn list(&self, key: &str) -> LayoutResult<Vec<String>> {
        Ok(self
            .str(key)?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
    fn parse<T>(&self, key: &str, parse: fn(&str) -> Result<T, FieldError>) -> LayoutResult<T> {
        parse(&self.str(key)?).map_err(|e| self.malformed(key, &e.reason))
    }
}

/// The logical map of one record, `collection.<key>` at the root.
fn record_at<D: ReadDoc>(doc: &D, collection: &str, key: &str) -> LayoutResult<Vec<ObjId>> {
    let all = root_maps(doc, collection)?;
    maps_at(doc, &all, key)
}

/// Every record of a root collection, with its logical map, sorted by key.
fn root_records<D: ReadDoc>(doc: &D, collection: &str) -> LayoutResult<Vec<(String, Vec<ObjId>)>> {
    let all = root_maps(doc, collection)?;
    records(doc, &all)
}

/// Write a record: into its existing objects field by field, or, when no
/// object holds it yet, created whole in one batch.
fn upsert_record(
    doc: &mut AutoCommit,
    collection: &[ObjId],
    key: &str,
    record: NewRecord,
) -> LayoutResult<Vec<ObjId>> {
    let existing = maps_at(doc, collection, key)?;
    if existing.is_empty() {
        return Ok(vec![view::create_record(doc, collection, key, record)?]);
    }
    put_changed(doc, &existing, record.fields)?;
    Ok(existing)
}

/// The `deleted` field of a volunteer, team or activity as a write puts
/// it: only when set. Deletion is one way: a write whose record says "not
/// deleted" leaves the field alone, so no correction — from a stale form,
/// an import, a replica that has not seen the delete — clears a flag it
/// sees set, and one made concurrently with the delete never touches the
/// flag at all: after the merge the delete's `true` is the only value
/// there, on every replica (delete wins). The injected fault
/// [`Fault::ResurrectDeleted`] writes `false` over it again.
fn deleted_flag(deleted: bool) -> Option<(&'static str, Scalar)> {
    (deleted || faults::armed(Fault::ResurrectDeleted))
        .then_some(("deleted", Scalar::Bool(deleted)))
}

// ---------------------------------------------------------------- volunteers

fn volunteer_fields(v: &Volunteer) -> Vec<(&'static str, Scalar)> {
    vec![
        ("number", s(v.number.as_str())),
        ("name", s(&v.name)),
        ("sex", s(v.sex.key())),
        ("birth_date", s(date_format::format(v.birth_date))),
        ("residence_area", s(&v.residence_area)),
        ("phone", s(&v.phone)),
        ("phone_masked", s(&v.phone_seals.masked)),
        ("phone_sealed", s(&v.phone_seals.county)),
        ("phone_home_sealed", s(&v.phone_seals.home)),
        ("id_digest", s(&v.id_digest)),
        ("id_sealed", s(&v.id_sealed)),
        ("id_masked", s(&v.id_masked)),
        ("skills", s(v.skills.join(","))),
        (
            "categories",
            s(v.categories
                .iter()
                .map(|c| c.key())
                .collect::<Vec<_>>()
                .join(",")),
        ),
        ("home_station", s(v.home_station.as_str())),
        ("registered_on", s(date_format::format(v.registered_on))),
        ("consent", Scalar::Bool(v.consent)),
        ("party_member", Scalar::Bool(v.party_member)),
    ]
    .into_iter()
    .chain(deleted_flag(v.deleted))
    .collect()
}

/// The volunteer already holding `digest`, if it is someone other than
/// `number`.
fn digest_taken_by<D: ReadDoc>(
    doc: &D,
    digests: &[ObjId],
    digest: &str,
    number: &RecordId,
) -> LayoutResult<Option<RecordId>> {
    let Some(existing) = scalar_at(doc, digests, digest)? else {
        return Ok(None);
    };
    let existing = existing.display();
    if existing == number.as_str() {
        return Ok(None);
    }
    RecordId::parse("number", &existing)
        .map(Some)
        .map_err(|e| LayoutError::Malformed {
            path: format!("{ID_DIGESTS}.{digest}"),
            reason: e.reason,
        })
}

/// Register or update a volunteer. A different volunteer already holding the
/// same ID digest in this roster is refused, naming them.
pub fn put_volunteer(doc: &mut AutoCommit, volunteer: &Volunteer) -> LayoutResult<()> {
    let digests = maps_for_write(doc, &[ROOT], ID_DIGESTS)?;
    if !volunteer.id_digest.is_empty() {
        if let Some(existing) =
            digest_taken_by(doc, &digests, &volunteer.id_digest, &volunteer.number)?
        {
            return Err(LayoutError::DuplicateVolunteer { existing });
        }
        put_field(
            doc,
            &digests,
            &volunteer.id_digest,
            &s(volunteer.number.as_str()),
        )?;
    }
    let all = maps_for_write(doc, &[ROOT], VOLUNTEERS)?;
    upsert_record(
        doc,
        &all,
        volunteer.number.as_str(),
        NewRecord::new(volunteer_fields(volunteer)),
    )?;
    Ok(())
}

/// Register many volunteers at once (a roster import). Each gets the answer
/// [`put_volunteer`] would give, in order, and the accepted ones are written
/// as few Automerge operations as possible: into a roster that holds no
/// volunteers yet, the whole collection and its digest index are created in
/// one batch each (about 40 µs a volunteer instead of 400 µs field by field).
pub fn put_volunteers(
    doc: &mut AutoCommit,
    volunteers: &[Volunteer],
) -> LayoutResult<Vec<Result<(), LayoutError>>> {
    let collection_exists = !root_maps(doc, VOLUNTEERS)?.is_empty();
    let digests_exist = !root_maps(doc, ID_DIGESTS)?.is_empty();
    if collection_exists || digests_exist {
        return Ok(volunteers.iter().map(|v| put_volunteer(doc, v)).collect());
    }
    // A new roster: only this batch can collide with itself.
    let mut answers = Vec::with_capacity(volunteers.len());
    let mut digest_owner: BTreeMap<&str, &RecordId> = BTreeMap::new();
    let mut new_records: BTreeMap<&str, &Volunteer> = BTreeMap::new();
    for volunteer in volunteers {
        if !volunteer.id_digest.is_empty() {
            if let Some(existing) = digest_owner.get(volunteer.id_digest.as_str()) {
                if **existing != volunteer.number {
                    answers.push(Err(LayoutError::DuplicateVolunteer {
                        existing: (*existing).clone(),
                    }));
                    continue;
                }
            }
            digest_owner.insert(&volunteer.id_digest, &volunteer.number);
        }
        // A repeated number: the later row corrects the earlier, as
        // put_volunteer would.
        new_records.insert(volunteer.number.as_str(), volunteer);
        answers.push(Ok(()));
    }
    // A corrected row may have changed its digest: index only the digests
    // of the records that stay.
    let kept: HashSet<&str> = new_records.values().map(|v| v.id_digest.as_str()).collect();
    view::create_scalar_map(
        doc,
        ID_DIGESTS,
        digest_owner
            .into_iter()
            .filter(|(digest, _)| kept.contains(digest))
            .map(|(digest, number)| (digest.to_string(), s(number.as_str())))
            .collect(),
    )?;
    view::create_collection(
        doc,
        VOLUNTEERS,
        new_records
            .into_iter()
            .map(|(number, v)| (number.to_string(), NewRecord::new(volunteer_fields(v))))
            .collect(),
    )?;
    Ok(answers)
}

/// The volunteer number registered under an ID digest in this roster.
pub fn volunteer_by_digest<D: ReadDoc>(doc: &D, digest: &str) -> LayoutResult<Option<RecordId>> {
    let digests = root_maps(doc, ID_DIGESTS)?;
    Ok(
        scalar_at(doc, &digests, digest)?
            .and_then(|v| RecordId::parse("number", &v.display()).ok()),
    )
}

fn read_volunteer<D: ReadDoc>(doc: &D, key: &str, maps: Vec<ObjId>) -> LayoutResult<Volunteer> {
    let f = Fields::new(doc, maps, format!("{VOLUNTEERS}.{key}"));
    Ok(Volunteer {
        number: f.record_id("number")?,
        name: f.str("name")?,
        sex: f.parse("sex", Sex::parse)?,
        birth_date: f.date("birth_date")?,
        residence_area: f.str("residence_area")?,
        phone: f.str("phone")?,
        phone_seals: PhoneSeals {
            masked: f.str("phone_masked")?,
            county: f.str("phone_sealed")?,
            home: f.str("phone_home_sealed")?,
        },
        id_digest: f.str("id_digest")?,
        id_sealed: f.str("id_sealed")?,
        id_masked: f.str("id_masked")?,
        skills: f.list("skills")?,
        categories: f
            .list("categories")?
            .iter()
            .map(|c| Category::parse(c))
            .collect::<Result<_, _>>()?,
        home_station: f.station("home_station")?,
        registered_on: f.date("registered_on")?,
        consent: f.bool("consent")?,
        party_member: f.bool("party_member")?,
        deleted: f.bool("deleted")?,
    })
}

pub fn volunteer<D: ReadDoc>(doc: &D, number: &RecordId) -> LayoutResult<Option<Volunteer>> {
    let maps = record_at(doc, VOLUNTEERS, number.as_str())?;
    if maps.is_empty() {
        return Ok(None);
    }
    Ok(Some(read_volunteer(doc, number.as_str(), maps)?))
}

/// Every volunteer in the roster, deleted ones included, ordered by number.
pub fn volunteers<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<Volunteer>> {
    root_records(doc, VOLUNTEERS)?
        .into_iter()
        .map(|(key, maps)| read_volunteer(doc, &key, maps))
        .collect()
}

// ---------------------------------------------------------------- teams

fn team_fields(team: &Team) -> Vec<(&'static str, Scalar)> {
    vec![
        ("id", s(team.id.as_str())),
        ("name", s(&team.name)),
        ("category", s(team.category.key())),
        ("station", s(team.station.as_str())),
        ("parent", s(team.parent.clone().unwrap_or_default())),
        (
            "leader",
            s(team
                .leader
                .as_ref()
                .map(|l| l.as_str().to_string())
                .unwrap_or_default()),
        ),
    ]
    .into_iter()
    .chain(deleted_flag(team.deleted))
    .collect()
}

pub fn put_team(doc: &mut AutoCommit, team: &Team) -> LayoutResult<()> {
    let all = maps_for_write(doc, &[ROOT], TEAMS)?;
    let mut record = NewRecord::new(team_fields(team));
    record.flags = vec![(
        MEMBERS,
        team.members
            .iter()
            .map(|m| (m.as_str().to_string(), Scalar::Bool(true)))
            .collect(),
    )];
    let existing = maps_at(doc, &all, team.id.as_str())?;
    if existing.is_empty() {
        view::create_record(doc, &all, team.id.as_str(), record)?;
        return Ok(());
    }
    put_changed(doc, &existing, record.fields)?;
    // Members are only ever added here: removal is `set_team_member`, so
    // a stale full list cannot undo a concurrent removal's sibling edits.
    let members = maps_for_write(doc, &existing, MEMBERS)?;
    for member in &team.members {
        if scalar_at(doc, &members, member.as_str())?.is_none() {
            put_field(doc, &members, member.as_str(), &Scalar::Bool(true))?;
        }
    }
    Ok(())
}

/// Add or remove one member without rewriting the others (concurrent
/// membership edits at two nodes then merge).
pub fn set_team_member(
    doc: &mut AutoCommit,
    team: &RecordId,
    member: &RecordId,
    present: bool,
) -> LayoutResult<()> {
    let all = maps_for_write(doc, &[ROOT], TEAMS)?;
    let record = maps_at(doc, &all, team.as_str())?;
    if record.is_empty() {
        return Err(LayoutError::NotFound {
            kind: "team",
            id: team.to_string(),
            document: "roster".into(),
        });
    }
    let members = maps_for_write(doc, &record, MEMBERS)?;
    // An explicit membership edit always writes, so it supersedes
    // whatever this node has seen, even an equal value.
    let mut written = false;
    for map in &members {
        if doc.get(map, member.as_str())?.is_some() {
            doc.put(map, member.as_str(), present)?;
            written = true;
        }
    }
    if !written {
        doc.put(&members[0], member.as_str(), present)?;
    }
    Ok(())
}

fn read_team<D: ReadDoc>(doc: &D, key: &str, maps: Vec<ObjId>) -> LayoutResult<Team> {
    let member_maps = maps_at(doc, &maps, MEMBERS)?;
    let f = Fields::new(doc, maps, format!("{TEAMS}.{key}"));
    let mut members = Vec::new();
    for number in keys_of(doc, &member_maps) {
        if scalar_at(doc, &member_maps, &number)? == Some(Scalar::Bool(true)) {
            members.push(
                RecordId::parse("members", &number).map_err(|e| f.malformed(MEMBERS, &e.reason))?,
            );
        }
    }
    Ok(Team {
        id: f.record_id("id")?,
        name: f.str("name")?,
        category: f.parse("category", Category::parse)?,
        station: f.station("station")?,
        parent: f.opt_str("parent")?,
        leader: f.opt_record_id("leader")?,
        members,
        deleted: f.bool("deleted")?,
    })
}

pub fn team<D: ReadDoc>(doc: &D, id: &RecordId) -> LayoutResult<Option<Team>> {
    let maps = record_at(doc, TEAMS, id.as_str())?;
    if maps.is_empty() {
        return Ok(None);
    }
    Ok(Some(read_team(doc, id.as_str(), maps)?))
}

pub fn teams<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<Team>> {
    root_records(doc, TEAMS)?
        .into_iter()
        .map(|(key, maps)| read_team(doc, &key, maps))
        .collect()
}

// ---------------------------------------------------------------- activities

fn activity_fields(a: &Activity) -> Vec<(&'static str, Scalar)> {
    vec![
        ("id", s(a.id.as_str())),
        ("name", s(&a.name)),
        ("date", s(date_format::format(a.date))),
        ("station", s(a.station.as_str())),
        ("place", s(&a.place)),
        ("content", s(&a.content)),
        ("form", s(a.form.key())),
        ("category", s(a.category.key())),
        (
            "team",
            s(a.team
                .as_ref()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default()),
        ),
        ("person_in_charge", s(&a.person_in_charge)),
        ("beneficiaries", Scalar::Uint(u64::from(a.beneficiaries))),
        ("theme", s(a.theme.clone().unwrap_or_default())),
        ("recorded_on", s(date_format::format(a.recorded_on))),
        ("late", Scalar::Bool(a.late)),
    ]
    .into_iter()
    .chain(deleted_flag(a.deleted))
    .collect()
}

fn record_fields(r: &ServiceRecord) -> Vec<(&'static str, Scalar)> {
    vec![
        ("volunteer", s(r.volunteer.as_str())),
        (
            "home_station",
            s(r.home_station
                .as_ref()
                .map(|h| h.as_str().to_string())
                .unwrap_or_default()),
        ),
        ("hours_centi", Scalar::Uint(u64::from(r.hours.centi))),
        ("recorded_on", s(date_format::format(r.recorded_on))),
        ("late", Scalar::Bool(r.late)),
        ("deleted", Scalar::Bool(r.deleted)),
    ]
}

/// Hours already logged on `date` in this document, per volunteer
/// (`<home station>:<number>`: two people sharing a number are two), on
/// activities other than `except_activity`.
fn hours_on_day<D: ReadDoc>(
    doc: &D,
    date: Date,
    except_activity: &RecordId,
) -> LayoutResult<BTreeMap<String, u32>> {
    // Called on every activity write: only activities listed under that
    // day in the `days` index are read, so the cost follows the day, not
    // the month. The index may list an activity whose date was corrected
    // since; its own date decides.
    let date_text = date_format::format(date);
    let mut hours: BTreeMap<String, u32> = BTreeMap::new();
    let activities = root_maps(doc, ACTIVITIES)?;
    let days = root_maps(doc, DAYS)?;
    let candidates: Vec<String> = if days.is_empty() {
        // A document written before the index existed: read them all.
        keys_of(doc, &activities)
    } else {
        keys_of(doc, &maps_at(doc, &days, &date_text)?)
    };
    for key in candidates {
        if key == except_activity.as_str() {
            continue;
        }
        let maps = maps_at(doc, &activities, &key)?;
        if maps.is_empty() {
            continue;
        }
        let record_maps = maps_at(doc, &maps, RECORDS)?;
        let activity = Fields::new(doc, maps, format!("{ACTIVITIES}.{key}"));
        if activity.str("date")? != date_text || activity.bool("deleted")? {
            continue;
        }
        let station = activity.station("station")?;
        for (volunteer, entry) in records(doc, &record_maps)? {
            let record = Fields::new(
                doc,
                entry,
                format!("{ACTIVITIES}.{key}.{RECORDS}.{volunteer}"),
            );
            if !record.bool("deleted")? {
                let centi = u32::try_from(record.uint("hours_centi")?).unwrap_or(u32::MAX);
                let home = record
                    .opt_station("home_station")?
                    .unwrap_or_else(|| station.clone());
                let total = hours.entry(format!("{home}:{volunteer}")).or_default();
                *total = total.saturating_add(centi);
            }
        }
    }
    Ok(hours)
}

/// Does a new activity need listing under its day? Only its live service
/// records count towards anyone's hours: one without them adds nothing to
/// the daily-hours check until a later write gives it records, and every
/// later write of a held activity lists it. (Most activities are entered
/// before their records; skipping the listing saves a third of such a
/// write's operations.)
fn needs_day_listing(activity: &Activity) -> bool {
    activity.records.iter().any(|r| !r.deleted)
}

/// List `activity` under its day in the `days` index (never unlisted: a
/// stale entry costs one extra read, a missing one a wrong check).
fn index_day(doc: &mut AutoCommit, activity: &Activity) -> LayoutResult<()> {
    if root_maps(doc, DAYS)?.is_empty() {
        // A document from before the index: list what it already holds
        // first, or the check would stop seeing those activities.
        for (key, maps) in root_records(doc, ACTIVITIES)? {
            if let Some(Scalar::Str(date)) = scalar_at(doc, &maps, "date")? {
                let days = maps_for_write(doc, &[ROOT], DAYS)?;
                let day = maps_for_write(doc, &days, &date)?;
                put_field(doc, &day, &key, &Scalar::Bool(true))?;
            }
        }
    }
    let days = maps_for_write(doc, &[ROOT], DAYS)?;
    let day = maps_for_write(doc, &days, &date_format::format(activity.date))?;
    if scalar_at(doc, &day, activity.id.as_str())?.is_none() {
        put_field(doc, &day, activity.id.as_str(), &Scalar::Bool(true))?;
        // put_field skips a default (false) value; true is always written.
    }
    Ok(())
}

/// Is the record `collection.<key>` present and not deleted?
fn live_record<D: ReadDoc>(doc: &D, collection: &str, key: &str) -> LayoutResult<bool> {
    let maps = record_at(doc, collection, key)?;
    if maps.is_empty() {
        return Ok(false);
    }
    not_deleted(doc, maps, collection, key)
}

/// The liveness rule of a record found in `maps`, for a look-up and a
/// whole read alike.
fn not_deleted<D: ReadDoc>(
    doc: &D,
    maps: Vec<ObjId>,
    collection: &str,
    key: &str,
) -> LayoutResult<bool> {
    let f = Fields::new(doc, maps, format!("{collection}.{key}"));
    Ok(!f.bool("deleted")?)
}

/// Is a volunteer registered (and not deleted) in this roster?
pub fn volunteer_registered<D: ReadDoc>(doc: &D, number: &RecordId) -> LayoutResult<bool> {
    live_record(doc, VOLUNTEERS, number.as_str())
}

/// Every volunteer number registered (not deleted) in this roster, with
/// [`volunteer_registered`]'s answer for each, in one pass over the
/// collection: a look-up seeks the collection, the record and its fields
/// (three Automerge seeks), this reads each record's fields once.
pub fn registered_volunteers<D: ReadDoc>(doc: &D) -> LayoutResult<HashSet<String>> {
    let mut live = HashSet::new();
    for (number, maps) in root_records(doc, VOLUNTEERS)? {
        if not_deleted(doc, maps, VOLUNTEERS, &number)? {
            live.insert(number);
        }
    }
    Ok(live)
}

/// Volunteer records in this roster, deleted ones included, without
/// reading them: what [`registered_volunteers`] would read.
pub fn volunteer_records<D: ReadDoc>(doc: &D) -> LayoutResult<usize> {
    Ok(root_maps(doc, VOLUNTEERS)?
        .iter()
        .map(|map| doc.length(map))
        .sum())
}

/// Does this roster hold the team (not deleted)?
pub fn team_exists<D: ReadDoc>(doc: &D, id: &RecordId) -> LayoutResult<bool> {
    live_record(doc, TEAMS, id.as_str())
}

/// Refuse an activity whose records break the rules: too many, a volunteer
/// listed twice, or more than 24 hours on the day given what `logged`
/// (hours on that day elsewhere, per volunteer) already holds.
fn check_activity(activity: &Activity, logged: &BTreeMap<String, u32>) -> LayoutResult<()> {
    if activity.records.len() > SERVICE_RECORDS_PER_ACTIVITY_MAX {
        return Err(FieldError::new(
            "records",
            format!(
                "{} service records; at most {SERVICE_RECORDS_PER_ACTIVITY_MAX} per activity",
                activity.records.len()
            ),
        )
        .into());
    }
    for (index, record) in activity.records.iter().enumerate() {
        if activity.records[..index]
            .iter()
            .any(|r| r.volunteer == record.volunteer)
        {
            return Err(FieldError::new(
                format!("records[{index}].volunteer"),
                format!("volunteer {} is listed twice", record.volunteer),
            )
            .into());
        }
        if record.deleted {
            continue;
        }
        let other = logged
            .get(&record.volunteer_id(&activity.station).to_string())
            .copied()
            .unwrap_or(0);
        if other + record.hours.centi > HOURS_PER_DAY_CENTI_MAX {
            return Err(FieldError::new(
                format!("records[{index}].hours"),
                format!(
                    "volunteer {} would have {} hours on {}; at most 24 a day",
                    record.volunteer,
                    Hours {
                        centi: other + record.hours.centi
                    },
                    date_format::format(activity.date)
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// An activity and its service records as one new record.
fn new_activity(activity: &Activity) -> NewRecord {
    let mut new = NewRecord::new(activity_fields(activity));
    new.children = vec![(
        RECORDS,
        activity
            .records
            .iter()
            .map(|r| {
                (
                    r.volunteer.as_str().to_string(),
                    NewRecord::new(record_fields(r)),
                )
            })
            .collect(),
    )];
    new
}

/// Record or correct an activity and its service records. Checks that no
/// volunteer exceeds 24 hours on one day across this station's activities.
pub fn put_activity(doc: &mut AutoCommit, activity: &Activity) -> LayoutResult<()> {
    let logged = if activity.records.iter().any(|r| !r.deleted) {
        hours_on_day(doc, activity.date, &activity.id)?
    } else {
        BTreeMap::new()
    };
    check_activity(activity, &logged)?;
    let all = maps_for_write(doc, &[ROOT], ACTIVITIES)?;
    let existing = maps_at(doc, &all, activity.id.as_str())?;
    if existing.is_empty() {
        if needs_day_listing(activity) {
            index_day(doc, activity)?;
        }
        view::create_record(doc, &all, activity.id.as_str(), new_activity(activity))?;
        return Ok(());
    }
    // A correction may move records this input does not mention to a new
    // date: an activity already held is always listed.
    index_day(doc, activity)?;
    put_changed(doc, &existing, activity_fields(activity))?;
    let records = maps_for_write(doc, &existing, RECORDS)?;
    for record in &activity.records {
        upsert_record(
            doc,
            &records,
            record.volunteer.as_str(),
            NewRecord::new(record_fields(record)),
        )?;
    }
    Ok(())
}

/// Record many activities at once (a month's sheet brought in from
/// spreadsheets). Each gets the answer [`put_activity`] would give in
/// order; into a document that holds no activities yet, the accepted ones
/// are created as one collection in one batch, with the daily-hours rule
/// checked in memory across the batch.
pub fn put_activities(
    doc: &mut AutoCommit,
    activities: &[Activity],
) -> LayoutResult<Vec<Result<(), LayoutError>>> {
    if !root_maps(doc, ACTIVITIES)?.is_empty() {
        return Ok(activities.iter().map(|a| put_activity(doc, a)).collect());
    }
    let mut answers = Vec::with_capacity(activities.len());
    let mut accepted: BTreeMap<&str, Activity> = BTreeMap::new();
    for activity in activities {
        // Hours on that day in the other accepted activities of the batch
        // (a repeated id corrects the earlier one, as put_activity would).
        let mut logged: BTreeMap<String, u32> = BTreeMap::new();
        for other in accepted.values() {
            if other.date != activity.date || other.id == activity.id || other.deleted {
                continue;
            }
            for record in other.records.iter().filter(|r| !r.deleted) {
                let total = logged
                    .entry(record.volunteer_id(&other.station).to_string())
                    .or_default();
                *total = total.saturating_add(record.hours.centi);
            }
        }
        let answer = check_activity(activity, &logged);
        if answer.is_ok() {
            let mut merged = activity.clone();
            // As in the document, a correction never removes a record it
            // does not mention.
            if let Some(earlier) = accepted.get(activity.id.as_str()) {
                for record in &earlier.records {
                    if !merged
                        .records
                        .iter()
                        .any(|r| r.volunteer == record.volunteer)
                    {
                        merged.records.push(record.clone());
                    }
                }
            }
            accepted.insert(activity.id.as_str(), merged);
        }
        answers.push(answer);
    }
    if !accepted.is_empty() {
        let mut days: BTreeMap<String, Vec<(String, Scalar)>> = BTreeMap::new();
        for activity in accepted.values().filter(|a| needs_day_listing(a)) {
            days.entry(date_format::format(activity.date))
                .or_default()
                .push((activity.id.to_string(), Scalar::Bool(true)));
        }
        if days.is_empty() {
            // Nothing to list: the collection is made by the first
            // activity with records.
        } else if root_maps(doc, DAYS)?.is_empty() {
            view::create_collection(
                doc,
                DAYS,
                days.into_iter()
                    .map(|(day, ids)| {
                        (
                            day,
                            NewRecord {
                                entries: ids,
                                ..NewRecord::default()
                            },
                        )
                    })
                    .collect(),
            )?;
        } else {
            for activity in accepted.values().filter(|a| needs_day_listing(a)) {
                index_day(doc, activity)?;
            }
        }
        view::create_collection(
            doc,
            ACTIVITIES,
            accepted
                .into_iter()
                .map(|(id, activity)| (id.to_string(), new_activity(&activity)))
                .collect(),
        )?;
    }
    Ok(answers)
}

/// Mark an activity (and so its records) deleted. Kept, never removed.
pub fn delete_activity(doc: &mut AutoCommit, id: &RecordId) -> LayoutResult<()> {
    let maps = record_at(doc, ACTIVITIES, id.as_str())?;
    if maps.is_empty() {
        return Err(LayoutError::NotFound {
            kind: "activity",
            id: id.to_string(),
            document: "activities".into(),
        });
    }
    put_changed(doc, &maps, vec![("deleted", Scalar::Bool(true))])
}

fn read_activity<D: ReadDoc>(doc: &D, key: &str, maps: Vec<ObjId>) -> LayoutResult<Activity> {
    let record_maps = maps_at(doc, &maps, RECORDS)?;
    let mut records = Vec::new();
    for (volunteer, entry) in view::records(doc, &record_maps)? {
        let r = Fields::new(
            doc,
            entry,
            format!("{ACTIVITIES}.{key}.{RECORDS}.{volunteer}"),
        );
        let centi = r.uint("hours_centi")?;
        records.push(ServiceRecord {
            volunteer: r.record_id("volunteer")?,
            home_station: r.opt_station("home_station")?,
            hours: Hours {
                centi: u32::try_from(centi).map_err(|_| r.malformed("hours_centi", "too large"))?,
            },
            recorded_on: r.date("recorded_on")?,
            late: r.bool("late")?,
            deleted: r.bool("deleted")?,
        });
    }
    let f = Fields::new(doc, maps, format!("{ACTIVITIES}.{key}"));
    Ok(Activity {
        id: f.record_id("id")?,
        name: f.str("name")?,
        date: f.date("date")?,
        station: f.station("station")?,
        place: f.str("place")?,
        content: f.str("content")?,
        form: f.parse("form", Form::parse)?,
        category: f.parse("category", Category::parse)?,
        team: f.opt_record_id("team")?,
        person_in_charge: f.str("person_in_charge")?,
        beneficiaries: u32::try_from(f.uint("beneficiaries")?)
            .map_err(|_| f.malformed("beneficiaries", "too large"))?,
        theme: f.opt_str("theme")?,
        recorded_on: f.date("recorded_on")?,
        late: f.bool("late")?,
        deleted: f.bool("deleted")?,
        records,
    })
}

pub fn activity<D: ReadDoc>(doc: &D, id: &RecordId) -> LayoutResult<Option<Activity>> {
    let maps = record_at(doc, ACTIVITIES, id.as_str())?;
    if maps.is_empty() {
        return Ok(None);
    }
    Ok(Some(read_activity(doc, id.as_str(), maps)?))
}

/// Every activity in the document, deleted ones included, ordered by id.
pub fn activities<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<Activity>> {
    root_records(doc, ACTIVITIES)?
        .into_iter()
        .map(|(key, maps)| read_activity(doc, &key, maps))
        .collect()
}

// ---------------------------------------------------------------- orders

pub fn put_order(doc: &mut AutoCommit, order: &Order) -> LayoutResult<()> {
    let all = maps_for_write(doc, &[ROOT], ORDERS)?;
    let fields = vec![
        ("id", s(order.id.as_str())),
        ("station", s(order.station.as_str())),
        ("menu_item", s(&order.menu_item)),
        ("requester", s(&order.requester)),
        ("placed_on", s(date_format::format(order.placed_on))),
        ("status", s(order.status.key())),
        (
            "dispatched_by",
            s(order
                .dispatched_by
                .as_ref()
                .map(|d| d.as_str().to_string())
                .unwrap_or_default()),
        ),
        ("team", s(order.team.clone().unwrap_or_default())),
        ("rating", Scalar::Uint(u64::from(order.rating.unwrap_or(0)))),
        ("comment", s(&order.comment)),
    ];
    upsert_record(doc, &all, order.id.as_str(), NewRecord::new(fields))?;
    Ok(())
}

fn read_order<D: ReadDoc>(doc: &D, key: &str, maps: Vec<ObjId>) -> LayoutResult<Order> {
    let f = Fields::new(doc, maps, format!("{ORDERS}.{key}"));
    let rating = f.uint("rating")?;
    Ok(Order {
        id: f.record_id("id")?,
        station: f.station("station")?,
        menu_item: f.str("menu_item")?,
        requester: f.str("requester")?,
        placed_on: f.date("placed_on")?,
        status: f.parse("status", OrderStatus::parse)?,
        dispatched_by: f
            .opt_str("dispatched_by")?
            .map(|d| StationId::parse(&d).map_err(|e| f.malformed("dispatched_by", &e.to_string())))
            .transpose()?,
        team: f.opt_str("team")?,
        rating: (1..=5).contains(&rating).then_some(rating as u8),
        comment: f.str("comment")?,
    })
}

/// One order, if the document holds it.
pub fn order<D: ReadDoc>(doc: &D, id: &RecordId) -> LayoutResult<Option<Order>> {
    let maps = record_at(doc, ORDERS, id.as_str())?;
    if maps.is_empty() {
        return Ok(None);
    }
    Ok(Some(read_order(doc, id.as_str(), maps)?))
}

pub fn orders<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<Order>> {
    root_records(doc, ORDERS)?
        .into_iter()
        .map(|(key, maps)| read_order(doc, &key, maps))
        .collect()
}

// ---------------------------------------------------------------- reference items

/// Put one item (a menu entry, a monthly theme, a registry entry) into a
/// reference document as a flat map of text fields.
pub fn put_reference_item(
    doc: &mut AutoCommit,
    key: &str,
    fields: &[(&'static str, String)],
) -> LayoutResult<()> {
    let all = maps_for_write(doc, &[ROOT], ITEMS)?;
    let fields = fields.iter().map(|(k, v)| (*k, s(v.clone()))).collect();
    upsert_record(doc, &all, key, NewRecord::new(fields))?;
    Ok(())
}

/// One item of a reference document: its key and its (field, text) pairs.
pub type ReferenceItem = (String, Vec<(String, String)>);

/// Every item of a reference document, ordered by key.
pub fn reference_items<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<ReferenceItem>> {
    let mut out = Vec::new();
    for (key, maps) in root_records(doc, ITEMS)? {
        let mut fields = Vec::new();
        for field in keys_of(doc, &maps) {
            let value = scalar_at(doc, &maps, &field)?;
            fields.push((field, value.map(|v| v.display()).unwrap_or_default()));
        }
        out.push((key, fields));
    }
    Ok(out)
}

// ---------------------------------------------------------------- conflicts

/// One value among several that concurrent edits left on one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictValue {
    pub value: String,
    /// The station whose node wrote it (from the change's actor).
    pub written_by: Option<StationId>,
}

/// A field with more than one concurrent value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    /// `activities.<id>.place`, `volunteers.<number>.phone`, ...
    pub path: String,
    /// The value readers see now (Automerge's deterministic winner) first.
    pub values: Vec<ConflictValue>,
}

/// Every field of the document holding more than one distinct concurrent
/// value, in path order. Maps that concurrent creations split are not
/// conflicts — readers see their union — but their fields can be.
pub fn conflicts<D: ReadDoc>(doc: &D) -> LayoutResult<Vec<FieldConflict>> {
    let mut out = Vec::new();
    collect_conflicts(doc, &[ROOT], String::new(), 0, &mut out)?;
    Ok(out)
}

/// Deepest map nesting we walk (records → records map → record → field).
const CONFLICT_DEPTH_MAX: usize = 6;

fn collect_conflicts<D: ReadDoc>(
    doc: &D,
    maps: &[ObjId],
    prefix: String,
    depth: usize,
    out: &mut Vec<FieldConflict>,
) -> LayoutResult<()> {
    if depth > CONFLICT_DEPTH_MAX {
        return Ok(());
    }
    for key in keys_of(doc, maps) {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let mut children = Vec::new();
        let mut values: Vec<ConflictValue> = Vec::new();
        for (value, id) in all_values_at(doc, maps, &key)? {
            if matches!(value, Value::Object(ObjType::Map)) {
                children.push(id);
                continue;
            }
            let written_by = match &id {
                automerge::ObjId::Id(_, actor, _) => station_of(actor),
                automerge::ObjId::Root => None,
            };
            let value = Scalar::from_value(&value)
                .map(|v| v.display())
                .unwrap_or_else(|| "(other)".into());
            values.push(ConflictValue { value, written_by });
        }
        let mut distinct: Vec<&str> = values.iter().map(|v| v.value.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > 1 {
            out.push(FieldConflict { path, values });
        } else if !children.is_empty() {
            collect_conflicts(doc, &children, path, depth + 1, out)?;
        }
    }
    Ok(())
}

/// Settle a conflict by writing the value a clerk picked into every object
/// holding the field (a write supersedes every concurrent value it has
/// seen). `path` is as listed by [`conflicts`]; the value keeps the type of
/// the field.
pub fn resolve_conflict(doc: &mut AutoCommit, path: &str, value: &str) -> LayoutResult<()> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let field = parts.pop().filter(|f| !f.is_empty()).ok_or_else(|| {
        LayoutError::Invalid(FieldError::new(
            "path",
            format!("{path:?} does not name a field"),
        ))
    })?;
    let mut maps = vec![ROOT];
    for part in parts {
        maps = maps_at(doc, &maps, part)?;
        if maps.is_empty() {
            return Err(LayoutError::NotFound {
                kind: "field",
                id: path.to_string(),
                document: "document".into(),
            });
        }
    }
    let candidates: Vec<Scalar> = all_values_at(doc, &maps, field)?
        .iter()
        .filter_map(|(v, _)| Scalar::from_value(v))
        .collect();
    let mut distinct: Vec<String> = candidates.iter().map(Scalar::display).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(FieldError::new("path", format!("{path} has no conflict to resolve")).into());
    }
    let picked = candidates
        .into_iter()
        .find(|c| c.display() == value)
        .ok_or_else(|| {
            LayoutError::Invalid(FieldError::new(
                "value",
                format!("{value:?} is not one of the conflicting values"),
            ))
        })?;
    for map in &maps {
        if doc.get(map, field)?.is_some() {
            doc.put(map, field, picked.clone().into_automerge())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
