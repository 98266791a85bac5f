//! Monthly approval as clerk operations over a [`Replica`]: approve a
//! month, send it back, and list where every month of a subtree stands.
//!
//! [`crate::service::approval`] decides on one approval document; this module
//! gathers what a decision needs from the store — the station's figures for
//! the month, the heads of its activities document, the standing of the
//! stations directly below — and makes exactly one commit (or none).
//!
//! Invariants:
//!
//! - **The approver is this node.** A decision is always made by
//!   `replica.local()`; a station can never decide on its own month (and
//!   `DocumentId::writable_by` refuses such a change from any peer too).
//! - **Figures and heads come from one read.** The approved figures are
//!   computed from the very documents whose heads are recorded, in the same
//!   call on the store's owner, so "edited after approval" means exactly
//!   "changed since these figures were taken".
//! - **Figures are the station's subtree for the month**, computed by the
//!   same [`StatsIndex`] code as the statistics tables, so an approved
//!   figure and a table figure agree when nothing changed in between.
//! - **Stations below are those this node knows**: the owners of documents
//!   it holds. A village that never synced anything is not waited for (there
//!   is no registry yet); its month can still be approved on its own.

use crate::domain::model::FieldError;
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::StationId;
use crate::replica::Replica;
use crate::service::approval::{self, ApprovalError, ApprovalRequest, ApprovalStatus, Decision};
use crate::service::ServiceError;
use crate::stats::{Figures, Period, StatsIndex};
use crate::storage::Storage;
use crate::sync::host::HeadsDigest;
use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Most stations one listing returns (a county has under 1,000).
pub const APPROVAL_STATIONS_MAX: usize = 20_000;
/// Most station-months a [`StatusCache`] keeps; past it, it starts over.
pub const STATUS_CACHE_ENTRIES_MAX: usize = 50_000;

/// Where one station's month stands, with the figures as they are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationApproval {
    #[serde(flatten)]
    pub status: ApprovalStatus,
    /// The approved figures, when approved (the stored ones: an edit made
    /// after the approval is not in them).
    pub approved: Option<Figures>,
    /// The station's subtree figures for the month as this node holds them.
    pub current: Figures,
}

impl From<ApprovalError> for ServiceError {
    fn from(error: ApprovalError) -> Self {
        match error {
            ApprovalError::NotAnAncestor { .. } | ApprovalError::NotNextLevel { .. } => {
                ServiceError::Forbidden {
                    reason: error.to_string(),
                }
            }
            ApprovalError::VillagesNotApproved { .. } => {
                ServiceError::Invalid(FieldError::new("station", error.to_string()))
            }
            ApprovalError::Invalid(field) => ServiceError::Invalid(field),
            ApprovalError::WrongDocument { .. }
            | ApprovalError::Malformed { .. }
            | ApprovalError::Layout(_) => ServiceError::Store {
                reason: error.to_string(),
            },
        }
    }
}

fn store_error(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Store {
        reason: error.to_string(),
    }
}

/// `root` and every station at or below it that owns a document held here,
/// with the stations between them, in path order.
pub fn known_stations<S: Storage>(
    replica: &Replica<S>,
    root: &StationId,
) -> Result<Vec<StationId>, ServiceError> {
    let mut known = BTreeSet::from([root.clone()]);
    for document in replica.documents_owned_within(root) {
        let mut station = Some(document.owner);
        while let Some(s) = station {
            if s == *root || !known.insert(s.clone()) {
                break;
            }
            station = s.parent();
        }
        if known.len() > APPROVAL_STATIONS_MAX {
            return Err(ServiceError::Invalid(FieldError::new(
                "station",
                format!("more than {APPROVAL_STATIONS_MAX} stations below {root}; ask for a smaller subtree"),
            )));
        }
    }
    Ok(known.into_iter().collect())
}

/// A statistics index over what the figures of `root`'s subtree for
/// `month` need: rosters (registrations, teams), and that month's
/// activities and orders.
fn month_index<S: Storage>(
    replica: &mut Replica<S>,
    root: &StationId,
    month: Month,
) -> Result<StatsIndex, ServiceError> {
    let mut index = StatsIndex::new();
    let needed = replica.documents_where(|id| {
        root.is_ancestor_or_self_of(&id.owner)
            && match id.kind {
                DocumentKind::Roster => true,
                DocumentKind::Activities(m) | DocumentKind::Orders(m) => m == month,
                DocumentKind::Approval(_)
                | DocumentKind::Statistics(_)
                | DocumentKind::Reference(_) => false,
            }
    });
    for id in needed {
        // An unreadable document is named, not skipped: approving figures
        // that silently miss a document would be approving a wrong number.
        match replica.with_document(&id, |doc| index.apply_document(&id, doc)) {
            Ok(Some(Ok(()))) | Ok(None) => {}
            Ok(Some(Err(error))) => return Err(store_error(error)),
            Err(error) => return Err(store_error(format!("{id}: {error}"))),
        }
    }
    Ok(index)
}

/// Where `station`'s month stands, read from the documents held here.
pub fn month_status<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Month,
) -> Result<ApprovalStatus, ServiceError> {
    let approval_id = DocumentId::approval(station, month);
    if !replica.holds(&approval_id) {
        // No decision was ever made: unapproved, whatever the activities
        // say. Not loading them keeps the monthly table (one status per
        // station) from loading every station's activities document.
        return undecided(station, month);
    }
    let activities = DocumentId::activities(station, month);
    let heads = replica.heads(&activities).unwrap_or(&[]).to_vec();
    // Read from the approval document alone first (no copy of it): a
    // send-back needs nothing more, nor an approval whose recorded heads
    // are exactly the heads held now (nothing missing, nothing edited).
    // Only an approval whose heads differ needs the activities document,
    // to tell an edit from changes not yet received.
    let nothing = AutoCommit::new();
    let quick = replica
        .with_document(&approval_id, |approval| {
            approval::approval_status(approval, station, month, &nothing, &[])
        })
        .map_err(store_error)?;
    let Some(quick) = quick else {
        // Listed by the index a moment ago; gone now: no decision.
        return undecided(station, month);
    };
    let mut quick = quick?;
    match &quick.decision {
        Some(Decision::Approved {
            activities_heads, ..
        }) => {
            // Both sorted: `approve` sorts what it records, the index keeps heads sorted.
            let held: Vec<String> = heads.iter().map(ToString::to_string).collect();
            // The injected defect stops here whatever the heads say.
            if held == *activities_heads || faults::armed(Fault::MissEditAfterApproval) {
                quick.approved_records_missing = false;
                quick.edited_after_approval = false;
                return Ok(quick);
            }
        }
        Some(Decision::SentBack { .. }) | None => return Ok(quick),
    }
    let approval = replica
        .with_document(&approval_id, AutoCommit::clone)
        .map_err(store_error)?
        .unwrap_or_default();
    let status = replica
        .with_document(&activities, |doc| {
            approval::approval_status(&approval, station, month, doc, &heads)
        })
        .map_err(store_error)?;
    match status {
        Some(status) => Ok(status?),
        None => Ok(approval::approval_status(
            &approval,
            station,
            month,
            &AutoCommit::new(),
            &[],
        )?),
    }
}

/// Month statuses remembered with the heads digests of the approval and
/// activities documents they were read at. A status is a function of those
/// two documents, so equal digests give an equal status and a moved digest
/// misses by construction: nothing to invalidate. It spares the monthly
/// table (one status per station, every request) from loading every
/// station's approval document each time.
#[derive(Debug, Default)]
pub struct StatusCache {
    entries: HashMap<(StationId, Month), CachedStatus>,
}

#[derive(Debug)]
struct CachedStatus {
    approval: Option<HeadsDigest>,
    activities: Option<HeadsDigest>,
    status: ApprovalStatus,
}

impl StatusCache {
    /// [`month_status`], read again only if either document moved.
    pub fn status<S: Storage>(
        &mut self,
        replica: &mut Replica<S>,
        station: &StationId,
        month: Month,
    ) -> Result<ApprovalStatus, ServiceError> {
        let approval = replica.heads_digest(&DocumentId::approval(station, month));
        let activities = replica.heads_digest(&DocumentId::activities(station, month));
        let key = (station.clone(), month);
        if let Some(hit) = self.entries.get(&key) {
            if hit.approval == approval && hit.activities == activities {
                return Ok(hit.status.clone());
            }
        }
        let status = month_status(replica, station, month)?;
        if self.entries.len() >= STATUS_CACHE_ENTRIES_MAX {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            CachedStatus {
                approval,
                activities,
                status: status.clone(),
            },
        );
        Ok(status)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Only a station above may decide; said before anything is read, in the
/// approval's words rather than the store's ("out of scope").
fn check_above(approver: &StationId, station: &StationId) -> Result<(), ServiceError> {
    if approver.is_strict_ancestor_of(station) {
        Ok(())
    } else {
        Err(ApprovalError::NotAnAncestor {
            approver: approver.clone(),
            station: station.clone(),
        }
        .into())
    }
}

/// This node approves `station`'s month: the figures of its subtree as held
/// now, once every known station directly below is cleanly approved.
pub fn approve_month<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Month,
    at_ms: i64,
) -> Result<Decision, ServiceError> {
    let approver = replica.local().clone();
    check_above(&approver, station)?;
    let mut children = Vec::new();
    for child in known_stations(replica, station)? {
        if child.parent().as_ref() == Some(station) {
            children.push(month_status(replica, &child, month)?);
        }
    }
    // The injected defect figures the month after the one approved.
    let figured = if faults::armed(Fault::ApproveAnotherMonth) {
        month.next()
    } else {
        month
    };
    let figures = month_index(replica, station, figured)?.figures(station, Period::Month(figured));
    let activities_heads = replica
        .heads(&DocumentId::activities(station, month))
        .unwrap_or(&[])
        .to_vec();
    let request = ApprovalRequest {
        approver,
        station: station.clone(),
        month,
        figures,
        activities_heads,
        at_ms,
    };
    let outcome = replica.commit(&DocumentId::approval(station, month), |doc| {
        approval::approve(doc, &request, &children).map_err(ServiceError::from)
    })?;
    Ok(outcome.value)
}

/// This node sends `station`'s month back with a reason.
pub fn send_back_month<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Month,
    reason: &str,
    at_ms: i64,
) -> Result<Decision, ServiceError> {
    let by = replica.local().clone();
    check_above(&by, station)?;
    let outcome = replica.commit(&DocumentId::approval(station, month), |doc| {
        approval::send_back(doc, &by, station, month, reason, at_ms).map_err(ServiceError::from)
    })?;
    Ok(outcome.value)
}

/// Where the month of `root` and of every known station below it stands,
/// in path order, with approved and current figures side by side. The
/// current figures come from `current` when given (the node's statistics
/// index, kept up to date incrementally), else from the documents (a whole
/// subtree's month read once).
pub fn subtree_approvals<S: Storage>(
    replica: &mut Replica<S>,
    root: &StationId,
    month: Month,
    current: Option<&StatsIndex>,
    cache: &mut StatusCache,
) -> Result<Vec<StationApproval>, ServiceError> {
    if !replica.local().is_ancestor_or_self_of(root) {
        return Err(ServiceError::Forbidden {
            reason: format!(
                "this node is {} and holds approvals only for it and the stations below it, not {root}",
                replica.local()
            ),
        });
    }
    let stations = known_stations(replica, root)?;
    let read;
    let index = match current {
        Some(index) => index,
        None => {
            read = month_index(replica, root, month)?;
            &read
        }
    };
    let mut out = Vec::with_capacity(stations.len());
    for station in stations {
        let status = cache.status(replica, &station, month)?;
        out.push(StationApproval {
            approved: status.approved_figures().cloned(),
            current: index.figures(&station, Period::Month(month)),
            status,
        });
    }
    Ok(out)
}

/// The status of a month on which no decision exists: unapproved.
fn undecided(station: &StationId, month: Month) -> Result<ApprovalStatus, ServiceError> {
    let nothing = AutoCommit::new();
    Ok(approval::approval_status(
        &nothing,
        station,
        month,
        &nothing,
        &[],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::input::ActivityInput;
    use crate::replica::ReplicaConfig;
    use crate::service::approval::ApprovalState;
    use crate::service::{self, ErrorClass};
    use crate::storage::MemoryStorage;
    use time::macros::date;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn nov() -> Month {
        Month::new(2026, 11).unwrap()
    }

    fn node(at: &str) -> Replica<MemoryStorage> {
        Replica::open(
            MemoryStorage::new(),
            station(at),
            3,
            ReplicaConfig::default(),
        )
        .unwrap()
    }

    /// An activity reaching `beneficiaries` people: the figure the tests
    /// follow (service records would need registered volunteers).
    fn record(replica: &mut Replica<MemoryStorage>, at: &str, id: &str, beneficiaries: u32) {
        let input: ActivityInput = serde_json::from_value(serde_json::json!({
            "id": id, "name": "理论宣讲", "date": "2026-11-03", "place": "村文化广场",
            "content": "学习宣讲", "form": "lecture", "category": "theory",
            "person_in_charge": "李明", "beneficiaries": beneficiaries, "records": []
        }))
        .unwrap();
        service::record_activity(replica, &station(at), &input, date!(2026 - 11 - 05), 1).unwrap();
    }

    #[test]
    fn a_township_approves_a_village_then_the_county_the_township() {
        // The county node holds everything (it records for its subtree).
        let mut county = node("xh");
        record(&mut county, "xh/t1/v1", "A1", 20);
        record(&mut county, "xh/t1/v2", "A2", 30);
        let error = approve_month(&mut county, &station("xh/t1/v1"), nov(), 1_000).unwrap_err();
        assert_eq!(error.class(), ErrorClass::Forbidden, "{error}");
        assert!(error.reason().contains("next level up"), "{error}");

        let mut township = node("xh/t1");
        record(&mut township, "xh/t1/v1", "A1", 20);
        record(&mut township, "xh/t1/v2", "A2", 30);
        let decision = approve_month(&mut township, &station("xh/t1/v1"), nov(), 1_000).unwrap();
        assert!(
            matches!(&decision, Decision::Approved { figures, .. } if figures.counts.beneficiaries == 20)
        );
        let listed = subtree_approvals(
            &mut township,
            &station("xh/t1"),
            nov(),
            None,
            &mut StatusCache::default(),
        )
        .unwrap();
        let stations: Vec<&str> = listed.iter().map(|a| a.status.station.as_str()).collect();
        assert_eq!(stations, ["xh/t1", "xh/t1/v1", "xh/t1/v2"]);
        assert_eq!(listed[1].status.state, ApprovalState::Approved);
        assert_eq!(listed[1].approved.as_ref(), Some(&listed[1].current));
        assert_eq!(listed[2].status.state, ApprovalState::Unapproved);
        assert_eq!(listed[0].current.counts.beneficiaries, 50, "rolled up");

        // The status read without the activities document (heads unchanged)
        // equals the one read with it.
        let approval_doc = township
            .with_document(
                &DocumentId::approval(&station("xh/t1/v1"), nov()),
                AutoCommit::clone,
            )
            .unwrap()
            .unwrap();
        let activities = DocumentId::activities(&station("xh/t1/v1"), nov());
        let heads = township.heads(&activities).unwrap().to_vec();
        let full = township
            .with_document(&activities, |doc| {
                approval::approval_status(&approval_doc, &station("xh/t1/v1"), nov(), doc, &heads)
            })
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(full.is_cleanly_approved());
        assert_eq!(
            month_status(&mut township, &station("xh/t1/v1"), nov()).unwrap(),
            full
        );
        // And the current figures from a statistics index are the same.
        let index = month_index(&mut township, &station("xh/t1"), nov()).unwrap();
        assert_eq!(
            subtree_approvals(
                &mut township,
                &station("xh/t1"),
                nov(),
                Some(&index),
                &mut StatusCache::default()
            )
            .unwrap(),
            listed
        );
    }

    #[test]
    fn the_status_cache_answers_until_a_document_moves() {
        let mut township = node("xh/t1");
        record(&mut township, "xh/t1/v1", "A1", 20);
        let mut cache = StatusCache::default();
        let v1 = station("xh/t1/v1");
        assert_eq!(
            cache.status(&mut township, &v1, nov()).unwrap().state,
            ApprovalState::Unapproved
        );
        approve_month(&mut township, &v1, nov(), 1_000).unwrap();
        let approved = cache.status(&mut township, &v1, nov()).unwrap();
        assert!(
            approved.is_cleanly_approved(),
            "the approval moved a digest"
        );
        record(&mut township, "xh/t1/v1", "A2", 5);
        let edited = cache.status(&mut township, &v1, nov()).unwrap();
        assert!(edited.edited_after_approval, "the edit moved a digest");
        assert_eq!(edited, month_status(&mut township, &v1, nov()).unwrap());
        assert_eq!(cache.len(), 1, "one entry per station-month");
    }

    #[test]
    fn a_township_month_waits_for_its_known_villages() {
        let mut county = node("xh");
        record(&mut county, "xh/t1/v1", "A1", 20);
        record(&mut county, "xh/t1/v2", "A2", 30);
        let error = approve_month(&mut county, &station("xh/t1"), nov(), 1_000).unwrap_err();
        assert_eq!(
            (error.class(), error.field()),
            (ErrorClass::BadInput, "station")
        );
        assert!(
            error.reason().contains("xh/t1/v1") && error.reason().contains("xh/t1/v2"),
            "{error}"
        );
        assert_eq!(
            month_status(&mut county, &station("xh/t1"), nov())
                .unwrap()
                .state,
            ApprovalState::Unapproved,
            "nothing written"
        );
    }

    #[test]
    fn a_village_cannot_decide_on_its_township_or_itself() {
        let mut village = node("xh/t1/v1");
        record(&mut village, "xh/t1/v1", "A1", 20);
        for target in ["xh/t1", "xh/t1/v1"] {
            let error = approve_month(&mut village, &station(target), nov(), 1).unwrap_err();
            assert_eq!(
                (error.class(), error.field()),
                (ErrorClass::Forbidden, "station")
            );
            assert!(error.reason().contains("not above"), "{error}");
            let error = send_back_month(&mut village, &station(target), nov(), "x", 1).unwrap_err();
            assert_eq!(error.class(), ErrorClass::Forbidden);
        }
        let mine = month_status(&mut village, &station("xh/t1/v1"), nov()).unwrap();
        assert_eq!(mine.state, ApprovalState::Unapproved);
    }

    #[test]
    fn an_edit_after_approval_is_flagged_and_a_send_back_keeps_its_reason() {
        let mut township = node("xh/t1");
        record(&mut township, "xh/t1/v1", "A1", 20);
        approve_month(&mut township, &station("xh/t1/v1"), nov(), 1_000).unwrap();
        record(&mut township, "xh/t1/v1", "A9", 40);
        let listed = subtree_approvals(
            &mut township,
            &station("xh/t1/v1"),
            nov(),
            None,
            &mut StatusCache::default(),
        )
        .unwrap();
        assert_eq!(listed.len(), 1);
        let village = &listed[0];
        assert!(village.status.edited_after_approval);
        assert_eq!(village.approved.as_ref().unwrap().counts.beneficiaries, 20);
        assert_eq!(village.current.counts.beneficiaries, 60);

        let error =
            send_back_month(&mut township, &station("xh/t1/v1"), nov(), " ", 2_000).unwrap_err();
        assert_eq!(error.field(), "reason");
        send_back_month(
            &mut township,
            &station("xh/t1/v1"),
            nov(),
            "请补充签到表",
            2_000,
        )
        .unwrap();
        let now = month_status(&mut township, &station("xh/t1/v1"), nov()).unwrap();
        assert_eq!(now.state, ApprovalState::SentBack);
        assert!(
            matches!(&now.decision, Some(Decision::SentBack { reason, by, .. }) if reason == "请补充签到表" && by.as_str() == "xh/t1")
        );
    }
}
