//! The ground truth: every write acknowledged to a clerk, anywhere.
//!
//! A write enters the log only after the replica committed and flushed it
//! (that is what "acknowledged" means to the clerk). For each write we keep
//! the heads the document had right after the commit: a local commit makes
//! its change the document's only head, so "the county holds these heads"
//! is exactly "the county holds this write".
//!
//! The log also keeps the current value of every counted field as the clerks
//! wrote them, from which the statistics are recomputed independently of
//! any replica. Counted fields have a single writer at a time (hours: the
//! village; beneficiaries: the township after the village created the
//! record), so their final value does not depend on merge order.
//!
//! Deletion is final: once a clerk's delete of an activity is acknowledged
//! the activity is deleted in the truth for good, whatever correction is
//! acknowledged after it (one the product took from a node that had not
//! seen the delete yet; delete wins).

use crate::time::SimMs;
use crate::topology::NodeIndex;
use crate::workload::{Change, Edit};
use automerge::ChangeHash;
use civsync_protocol::domain::model::{Activity, RecordId};
use civsync_protocol::{DocumentId, Month, StationId};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct AcknowledgedWrite {
    pub node: NodeIndex,
    pub at: SimMs,
    pub document: DocumentId,
    pub heads: Vec<ChangeHash>,
    pub what: String,
}

/// The counted fields of one activity.
#[derive(Debug, Clone, Default)]
struct ActivityTruth {
    station: Option<StationId>,
    month: Option<Month>,
    beneficiaries: u64,
    hours_centi: BTreeMap<RecordId, u64>,
    deleted: bool,
}

impl ActivityTruth {
    /// What a clerk's recording (by form or by ledger import) says of the
    /// delete flag and each volunteer's hours (a deleted record counts 0).
    fn take_deleted_and_hours(&mut self, activity: &Activity) {
        self.deleted |= activity.deleted;
        for record in &activity.records {
            let centi = if record.deleted {
                0
            } else {
                u64::from(record.hours.centi)
            };
            self.hours_centi.insert(record.volunteer.clone(), centi);
        }
    }
}

/// Statistics of one station's month, as the county reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MonthFigures {
    pub activities: u64,
    pub participations: u64,
    pub hours_centi: u64,
    pub beneficiaries: u64,
}

impl std::ops::AddAssign for MonthFigures {
    fn add_assign(&mut self, other: MonthFigures) {
        self.activities += other.activities;
        self.participations += other.participations;
        self.hours_centi += other.hours_centi;
        self.beneficiaries += other.beneficiaries;
    }
}

/// Figures by station and month, and volunteers and teams by station.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    pub months: BTreeMap<(StationId, Month), MonthFigures>,
    pub volunteers: BTreeMap<StationId, u64>,
    pub teams: BTreeMap<StationId, u64>,
}

impl Statistics {
    /// Keep only stations under (or at) `top`.
    pub fn under(&self, top: &StationId) -> Statistics {
        Statistics {
            months: self
                .months
                .iter()
                .filter(|((s, _), _)| top.is_ancestor_or_self_of(s))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            volunteers: self
                .volunteers
                .iter()
                .filter(|(s, _)| top.is_ancestor_or_self_of(s))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            teams: self
                .teams
                .iter()
                .filter(|(s, _)| top.is_ancestor_or_self_of(s))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    pub fn total(&self) -> MonthFigures {
        let mut total = MonthFigures::default();
        for figures in self.months.values() {
            total += *figures;
        }
        total
    }

    /// The first difference between `self` (expected) and `other`, readably.
    pub fn first_difference(&self, other: &Statistics) -> Option<String> {
        let keys: std::collections::BTreeSet<_> =
            self.months.keys().chain(other.months.keys()).collect();
        for key in keys {
            let a = self.months.get(key).copied().unwrap_or_default();
            let b = other.months.get(key).copied().unwrap_or_default();
            if a != b {
                return Some(format!(
                    "{} {}: expected {:?}, found {:?}",
                    key.0, key.1, a, b
                ));
            }
        }
        for (what, mine, theirs) in [
            ("volunteers", &self.volunteers, &other.volunteers),
            ("teams", &self.teams, &other.teams),
        ] {
            let keys: std::collections::BTreeSet<_> = mine.keys().chain(theirs.keys()).collect();
            for key in keys {
                let a = mine.get(key).copied().unwrap_or_default();
                let b = theirs.get(key).copied().unwrap_or_default();
                if a != b {
                    return Some(format!("{what} of {key}: expected {a}, found {b}"));
                }
            }
        }
        None
    }
}

#[derive(Debug, Default)]
pub struct Truth {
    pub writes: Vec<AcknowledgedWrite>,
    activities: BTreeMap<(DocumentId, RecordId), ActivityTruth>,
    volunteers: BTreeMap<StationId, BTreeMap<RecordId, bool>>,
    teams: BTreeMap<StationId, BTreeMap<RecordId, bool>>,
    /// Activities a clerk's acknowledged write deleted.
    deletes: std::collections::BTreeSet<(DocumentId, RecordId)>,
}

impl Truth {
    pub fn acknowledge(&mut self, node: NodeIndex, at: SimMs, edit: &Edit, heads: Vec<ChangeHash>) {
        debug_assert!(!heads.is_empty(), "a committed document has heads");
        self.writes.push(AcknowledgedWrite {
            node,
            at,
            document: edit.document.clone(),
            heads,
            what: edit.describe(),
        });
        match &edit.change {
            crate::workload::Change::Volunteer(v) => {
                self.volunteers
                    .entry(v.home_station.clone())
                    .or_default()
                    .insert(v.number.clone(), v.deleted);
            }
            Change::Volunteers(volunteers) => {
                for v in volunteers {
                    self.volunteers
                        .entry(v.home_station.clone())
                        .or_default()
                        .insert(v.number.clone(), v.deleted);
                }
            }
            Change::Team(t) => {
                self.teams
                    .entry(t.station.clone())
                    .or_default()
                    .insert(t.id.clone(), t.deleted);
            }
            Change::Activity {
                activity,
                correction_by,
            } => {
                let key = (edit.document.clone(), activity.id.clone());
                let entry = self.activities.entry(key).or_default();
                match correction_by {
                    // The township corrects beneficiaries only; its copy of the
                    // hours may be stale and the layout does not rewrite them.
                    Some(civsync_protocol::Tier::Township) => {
                        entry.beneficiaries = u64::from(activity.beneficiaries)
                    }
                    _ => {
                        if correction_by.is_none() {
                            entry.beneficiaries = u64::from(activity.beneficiaries);
                            entry.station = Some(activity.station.clone());
                            entry.month = edit.document.month();
                        }
                        entry.take_deleted_and_hours(activity);
                    }
                }
            }
            Change::DeleteActivity { snapshot } => {
                let key = (edit.document.clone(), snapshot.id.clone());
                self.activities.entry(key.clone()).or_default().deleted = true;
                self.deletes.insert(key);
            }
            // Taken only where the delete had not arrived: it may change
            // the beneficiaries, never bring the activity back.
            Change::StaleCorrection { activity } => {
                let key = (edit.document.clone(), activity.id.clone());
                let entry = self.activities.entry(key).or_default();
                entry.beneficiaries = u64::from(activity.beneficiaries);
            }
        }
    }

    /// A team's delete is final, like an activity's.
    pub fn team_deleted(&mut self, station: &StationId, id: &RecordId) {
        self.teams
            .entry(station.clone())
            .or_default()
            .insert(id.clone(), true);
    }

    /// A volunteer's delete is final too.
    pub fn volunteer_deleted(&mut self, station: &StationId, number: &RecordId) {
        self.volunteers
            .entry(station.clone())
            .or_default()
            .insert(number.clone(), true);
    }

    /// An activity a ledger import wrote: counted as a clerk's recording.
    pub fn activity_imported(&mut self, document: &DocumentId, activity: &Activity) {
        let entry = self
            .activities
            .entry((document.clone(), activity.id.clone()))
            .or_default();
        entry.station = Some(activity.station.clone());
        entry.month = document.month();
        entry.beneficiaries = u64::from(activity.beneficiaries);
        entry.take_deleted_and_hours(activity);
    }

    /// Every activity a clerk's acknowledged delete removed, with whether
    /// the truth still holds it deleted (it must: deletion is final).
    pub fn deleted_activities(&self) -> Vec<(&DocumentId, &RecordId, bool)> {
        self.activities
            .iter()
            .filter(|(key, _)| self.deletes.contains(key))
            .map(|((document, id), truth)| (document, id, truth.deleted))
            .collect()
    }

    pub fn statistics(&self) -> Statistics {
        let mut out = Statistics::default();
        for ((document, _), activity) in &self.activities {
            if activity.deleted {
                continue;
            }
            let (Some(station), Some(month)) = (activity.station.clone(), activity.month) else {
                debug_assert!(
                    false,
                    "a correction was acknowledged for an activity never recorded: {document}"
                );
                continue;
            };
            let figures = out.months.entry((station, month)).or_default();
            figures.activities += 1;
            figures.beneficiaries += activity.beneficiaries;
            for centi in activity.hours_centi.values().filter(|c| **c > 0) {
                figures.participations += 1;
                figures.hours_centi += centi;
            }
        }
        for (station, volunteers) in &self.volunteers {
            out.volunteers.insert(
                station.clone(),
                volunteers.values().filter(|deleted| !**deleted).count() as u64,
            );
        }
        for (station, teams) in &self.teams {
            out.teams.insert(
                station.clone(),
                teams.values().filter(|deleted| !**deleted).count() as u64,
            );
        }
        out
    }
}
