//! Monthly approval of a station's figures, bottom-up (as DHIS2 does it).
//!
//! A village's month is approved by its township; a township's month by the
//! county, and only once every village month under it is approved; any higher
//! level may send a month back with a reason. The decision lives in the
//! document `approval:<station>:<YYYY-MM>`, which the station's ancestors may
//! write (see `document_id.rs`).
//!
//! ```text
//! approval:<station>:<YYYY-MM>
//!   meta {...}
//!   decision: "<JSON of Decision>"          the current decision
//!   history:<at_ms, 13 digits>-<station>: "<JSON of Decision>"   every decision ever made
//! ```
//!
//! Design choices, and why:
//! - A decision is ONE scalar (JSON text), so two concurrent decisions never
//!   mix fields (the state of one with the figures of the other). Both stay
//!   visible as a conflict on `decision`; [`approval_status`] picks a
//!   winner deterministically, and a send-back beats an approval: a higher
//!   level's objection must not be hidden by a concurrent approval.
//! - Keys sit at the document root, not in a nested map: two nodes creating
//!   a nested map concurrently would each make their own, and one would hide
//!   the other's decision.
//! - A decision counts only if the station it names as `by` is the station
//!   whose actor wrote it: a township may write its village's approval
//!   document, but a "send-back by the county" it wrote is listed in
//!   `disowned`, never in force.
//! - An approval stores the approved figures and the heads of the station's
//!   activities document at that moment. A later edit is kept (nothing is
//!   ever lost) but flagged `edited_after_approval`, and the approved figures
//!   stay the stored ones until the month is approved again.

use crate::domain::model::{text, FieldError, TEXT_CHARS_MAX};
use crate::identity::actor::station_of;
use crate::identity::document_id::{DocumentId, Month};
use crate::identity::schema::META_KEY;
use crate::identity::station::StationId;
use crate::layout::{init_document, LayoutError};
use crate::stats::Figures;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjId, ReadDoc, ScalarValue, Value, ROOT};
use serde::{Deserialize, Serialize};

pub const DECISION_KEY: &str = "decision";
pub const HISTORY_PREFIX: &str = "history:";
/// Longest decision text we read; a larger one is damage, not data.
pub const DECISION_BYTES_MAX: usize = 256 * 1024;
/// Most history entries returned by [`approval_history`] (newest kept).
pub const HISTORY_ENTRIES_MAX: usize = 1_000;
/// Most activities heads one approval may record.
pub const APPROVED_HEADS_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error(
        "station {approver} is not above {station}; only a higher level may approve or send back"
    )]
    NotAnAncestor {
        approver: StationId,
        station: StationId,
    },
    #[error("station {approver} may not approve {station}: approval is by the next level up, {expected}")]
    NotNextLevel {
        approver: StationId,
        station: StationId,
        expected: StationId,
    },
    #[error(
        "cannot approve yet: these months below are not approved: {}",
        list(missing)
    )]
    VillagesNotApproved { missing: Vec<StationId> },
    #[error("this is document {found}, not {expected}")]
    WrongDocument { expected: DocumentId, found: String },
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("approval document field {path} is malformed: {reason}")]
    Malformed { path: String, reason: String },
    #[error("{0}")]
    Layout(#[from] LayoutError),
}

fn list(stations: &[StationId]) -> String {
    stations
        .iter()
        .map(StationId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<automerge::AutomergeError> for ApprovalError {
    fn from(error: automerge::AutomergeError) -> Self {
        ApprovalError::Layout(LayoutError::from(error))
    }
}

/// One decision on a station's month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Decision {
    Approved {
        by: StationId,
        at_ms: i64,
        figures: Figures,
        /// Hex heads of the activities document when approved.
        activities_heads: Vec<String>,
    },
    SentBack {
        by: StationId,
        at_ms: i64,
        reason: String,
    },
}

impl Decision {
    pub fn by(&self) -> &StationId {
        match self {
            Decision::Approved { by, .. } | Decision::SentBack { by, .. } => by,
        }
    }

    pub fn at_ms(&self) -> i64 {
        match self {
            Decision::Approved { at_ms, .. } | Decision::SentBack { at_ms, .. } => *at_ms,
        }
    }

    pub fn state(&self) -> ApprovalState {
        match self {
            Decision::Approved { .. } => ApprovalState::Approved,
            Decision::SentBack { .. } => ApprovalState::SentBack,
        }
    }

    /// Winner among concurrent decisions: a send-back first, then the later,
    /// then the higher station path. Same answer on every replica.
    fn precedence(&self) -> (bool, i64, &StationId) {
        (
            matches!(self, Decision::SentBack { .. }),
            self.at_ms(),
            self.by(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Unapproved,
    Approved,
    SentBack,
}

/// Where a station's month stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStatus {
    pub station: StationId,
    pub month: Month,
    pub state: ApprovalState,
    /// The decision in force, if any.
    pub decision: Option<Decision>,
    /// Approved, but the activities document changed since: the change is
    /// kept, the approved figures are the stored ones until re-approved.
    pub edited_after_approval: bool,
    /// Approved, but this node does not yet hold every activities change the
    /// approver saw (it will arrive by sync).
    pub approved_records_missing: bool,
    /// Decisions made concurrently with the one in force (shown to a clerk).
    pub concurrent: Vec<Decision>,
    /// Decisions naming as `by` a station other than the one that wrote
    /// them: kept for the record, never in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disowned: Vec<Decision>,
}

impl ApprovalStatus {
    /// The figures that count as approved: the stored ones.
    pub fn approved_figures(&self) -> Option<&Figures> {
        match &self.decision {
            Some(Decision::Approved { figures, .. }) => Some(figures),
            _ => None,
        }
    }

    /// Approved and nothing changed since: what a parent's approval needs.
    pub fn is_cleanly_approved(&self) -> bool {
        self.state == ApprovalState::Approved && !self.edited_after_approval
    }
}

/// An approval about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub approver: StationId,
    pub station: StationId,
    pub month: Month,
    /// The station's figures for the month as the approver sees them now.
    pub figures: Figures,
    /// Heads of `activities:<station>:<month>` as the approver holds it
    /// (empty if there is no such document).
    pub activities_heads: Vec<ChangeHash>,
    pub at_ms: i64,
}

/// Approve a month. `children` are the statuses of the months of the
/// stations directly below `station` (a township's villages; empty for a
/// village); each must be approved and unchanged since.
pub fn approve(
    doc: &mut AutoCommit,
    request: &ApprovalRequest,
    children: &[ApprovalStatus],
) -> Result<Decision, ApprovalError> {
    check_above(&request.approver, &request.station)?;
    let expected = request
        .station
        .parent()
        .expect("a station with an ancestor has a parent");
    if request.approver != expected {
        return Err(ApprovalError::NotNextLevel {
            approver: request.approver.clone(),
            station: request.station.clone(),
            expected,
        });
    }
    if request.activities_heads.len() > APPROVED_HEADS_MAX {
        return Err(FieldError::new(
            "activities_heads",
            format!(
                "{} heads; at most {APPROVED_HEADS_MAX}",
                request.activities_heads.len()
            ),
        )
        .into());
    }
    if let Some(stray) = children
        .iter()
        .find(|c| c.station.parent().as_ref() != Some(&request.station))
    {
        return Err(FieldError::new(
            "children",
            format!(
                "{} is not directly below {}",
                stray.station, request.station
            ),
        )
        .into());
    }
    let missing: Vec<StationId> = children
        .iter()
        .filter(|c| c.month != request.month || !c.is_cleanly_approved())
        .map(|c| c.station.clone())
        .collect();
    if !missing.is_empty() {
        return Err(ApprovalError::VillagesNotApproved { missing });
    }
    let mut heads = request.activities_heads.clone();
    heads.sort();
    let decision = Decision::Approved {
        by: request.approver.clone(),
        at_ms: request.at_ms,
        figures: request.figures.clone(),
        activities_heads: heads.iter().map(ChangeHash::to_string).collect(),
    };
    write(doc, &request.station, request.month, &decision)?;
    Ok(decision)
}

/// Send a month back to the station with a reason a clerk can act on.
pub fn send_back(
    doc: &mut AutoCommit,
    by: &StationId,
    station: &StationId,
    month: Month,
    reason: &str,
    at_ms: i64,
) -> Result<Decision, ApprovalError> {
    check_above(by, station)?;
    let reason = text("reason", reason, true, TEXT_CHARS_MAX)?;
    let decision = Decision::SentBack {
        by: by.clone(),
        at_ms,
        reason,
    };
    write(doc, station, month, &decision)?;
    Ok(decision)
}

fn check_above(approver: &StationId, station: &StationId) -> Result<(), ApprovalError> {
    if approver.is_strict_ancestor_of(station) {
        Ok(())
    } else {
        Err(ApprovalError::NotAnAncestor {
            approver: approver.clone(),
            station: station.clone(),
        })
    }
}

fn check_document<D: ReadDoc>(
    doc: &D,
    station: &StationId,
    month: Month,
) -> Result<(), ApprovalError> {
    let expected = DocumentId::approval(station, month);
    let Some((_, meta)) = doc.get(ROOT, META_KEY)? else {
        return Ok(());
    };
    let found = match doc.get(&meta, "id")? {
        Some((Value::Scalar(scalar), _)) => match scalar.as_ref() {
            ScalarValue::Str(id) => id.to_string(),
            _ => return Err(malformed("meta.id", "expected text")),
        },
        None => return Ok(()),
        Some(_) => return Err(malformed("meta.id", "expected text")),
    };
    if found == expected.to_string() {
        Ok(())
    } else {
        Err(ApprovalError::WrongDocument { expected, found })
    }
}

fn write(
    doc: &mut AutoCommit,
    station: &StationId,
    month: Month,
    decision: &Decision,
) -> Result<(), ApprovalError> {
    check_document(doc, station, month)?;
    init_document(doc, &DocumentId::approval(station, month))?;
    let json =
        serde_json::to_string(decision).map_err(|e| malformed(DECISION_KEY, &e.to_string()))?;
    debug_assert!(
        json.len() <= DECISION_BYTES_MAX,
        "a decision we write must be one we can read back"
    );
    doc.put(ROOT, DECISION_KEY, json.as_str())?;
    let history_key = format!(
        "{HISTORY_PREFIX}{:013}-{}",
        decision.at_ms().max(0),
        decision.by()
    );
    doc.put(ROOT, history_key.as_str(), json.as_str())?;
    Ok(())
}

fn malformed(path: &str, reason: &str) -> ApprovalError {
    ApprovalError::Malformed {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_decision(path: &str, value: &Value<'_>) -> Result<Decision, ApprovalError> {
    let Value::Scalar(scalar) = value else {
        return Err(malformed(path, "expected text"));
    };
    let ScalarValue::Str(json) = scalar.as_ref() else {
        return Err(malformed(path, "expected text"));
    };
    if json.len() > DECISION_BYTES_MAX {
        return Err(malformed(
            path,
            &format!("{} bytes; at most {DECISION_BYTES_MAX}", json.len()),
        ));
    }
    serde_json::from_str(json).map_err(|e| malformed(path, &e.to_string()))
}

/// Where the month of `station` stands. `activities` is the station's
/// activities document for the month as this node holds it and
/// `activities_heads` its heads (pass an empty document and `&[]` if there
/// is none).
pub fn approval_status<D: ReadDoc, A: ReadDoc>(
    doc: &D,
    station: &StationId,
    month: Month,
    activities: &A,
    activities_heads: &[ChangeHash],
) -> Result<ApprovalStatus, ApprovalError> {
    check_document(doc, station, month)?;
    let mut decisions = Vec::new();
    let mut disowned = Vec::new();
    for (value, op) in doc.get_all(ROOT, DECISION_KEY)? {
        let decision = parse_decision(DECISION_KEY, &value)?;
        if written_by(&op).as_ref() == Some(decision.by()) {
            decisions.push(decision);
        } else {
            disowned.push(decision);
        }
    }
    decisions.sort_by(|a, b| b.precedence().cmp(&a.precedence()));
    let mut status = ApprovalStatus {
        station: station.clone(),
        month,
        state: ApprovalState::Unapproved,
        decision: None,
        edited_after_approval: false,
        approved_records_missing: false,
        concurrent: Vec::new(),
        disowned,
    };
    let mut decisions = decisions.into_iter();
    let Some(decision) = decisions.next() else {
        return Ok(status);
    };
    status.concurrent = decisions.collect();
    status.state = decision.state();
    if let Decision::Approved {
        activities_heads: approved,
        ..
    } = &decision
    {
        let approved: Vec<ChangeHash> = approved
            .iter()
            .map(|hex| {
                hex.parse()
                    .map_err(|_| malformed("decision.activities_heads", "not a change hash"))
            })
            .collect::<Result<_, _>>()?;
        // Holding every approved change, the document equals what was
        // approved exactly when the heads are equal; anything more is an
        // edit made after (or concurrently with) the approval.
        status.approved_records_missing = !activities.get_missing_deps(&approved).is_empty();
        let mut current = activities_heads.to_vec();
        current.sort();
        let mut approved = approved;
        approved.sort();
        status.edited_after_approval = !status.approved_records_missing && current != approved;
        // While approved changes are missing we cannot tell an edit from a
        // change not yet received: `approved_records_missing` says so, and
        // the flag is decided once sync brings them.
    }
    status.decision = Some(decision);
    Ok(status)
}

/// The station whose actor wrote the value with op id `op`.
fn written_by(op: &ObjId) -> Option<StationId> {
    match op {
        ObjId::Id(_, actor, _) => station_of(actor),
        ObjId::Root => None,
    }
}

/// Every decision ever written on this month, oldest first (at most
/// [`HISTORY_ENTRIES_MAX`], the newest).
pub fn approval_history<D: ReadDoc>(doc: &D) -> Result<Vec<Decision>, ApprovalError> {
    let keys: Vec<String> = doc
        .keys(ROOT)
        .filter(|k| k.starts_with(HISTORY_PREFIX))
        .collect();
    let skip = keys.len().saturating_sub(HISTORY_ENTRIES_MAX);
    let mut out = Vec::new();
    for key in keys.into_iter().skip(skip) {
        if let Some((value, _)) = doc.get(ROOT, key.as_str())? {
            out.push(parse_decision(&key, &value)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Activity, Category, Form, Hours, RecordId, ServiceRecord};
    use crate::identity::actor::actor_for;
    use crate::layout::{conflicts, put_activity};
    use crate::stats::{Period, StatsIndex};
    use time::macros::date;

    fn station(text: &str) -> StationId {
        StationId::parse(text).unwrap()
    }

    fn nov() -> Month {
        Month::new(2026, 11).unwrap()
    }

    fn node_doc(writer: &str) -> AutoCommit {
        AutoCommit::new().with_actor(actor_for(&station(writer), 7))
    }

    fn activity(id: &str, hours_centi: u32) -> Activity {
        Activity {
            id: RecordId::parse("id", id).unwrap(),
            name: "宣讲".into(),
            date: date!(2026 - 11 - 03),
            station: station("xh/t1/v1"),
            place: "广场".into(),
            content: "内容".into(),
            form: Form::Lecture,
            category: Category::Theory,
            team: None,
            person_in_charge: "李明".into(),
            beneficiaries: 30,
            theme: None,
            recorded_on: date!(2026 - 11 - 03),
            late: false,
            deleted: false,
            records: vec![ServiceRecord {
                volunteer: RecordId::parse("v", "V1").unwrap(),
                home_station: None,
                hours: Hours { centi: hours_centi },
                recorded_on: date!(2026 - 11 - 03),
                late: false,
                deleted: false,
            }],
        }
    }

    /// The village's activities for November, and its live figures.
    fn village_month() -> (AutoCommit, Figures) {
        let mut activities = node_doc("xh/t1/v1");
        put_activity(&mut activities, &activity("A1", 200)).unwrap();
        activities.commit();
        let figures = live_figures(&activities);
        (activities, figures)
    }

    fn live_figures(activities: &AutoCommit) -> Figures {
        let id = DocumentId::activities(&station("xh/t1/v1"), nov());
        let index = StatsIndex::from_documents([(&id, activities)]);
        index.own_figures(&station("xh/t1/v1"), Period::Month(nov()))
    }

    fn request(
        approver: &str,
        at: &str,
        figures: Figures,
        heads: Vec<ChangeHash>,
    ) -> ApprovalRequest {
        ApprovalRequest {
            approver: station(approver),
            station: station(at),
            month: nov(),
            figures,
            activities_heads: heads,
            at_ms: 1_000,
        }
    }

    fn status(doc: &AutoCommit, at: &str, activities: &mut AutoCommit) -> ApprovalStatus {
        let heads = activities.get_heads();
        approval_status(doc, &station(at), nov(), &*activities, &heads).unwrap()
    }

    #[test]
    fn a_township_approves_its_village_month_with_the_figures() {
        let (mut activities, figures) = village_month();
        let mut approval = node_doc("xh/t1");
        assert_eq!(
            status(&approval, "xh/t1/v1", &mut activities).state,
            ApprovalState::Unapproved
        );
        let heads = activities.get_heads();
        approve(
            &mut approval,
            &request("xh/t1", "xh/t1/v1", figures.clone(), heads),
            &[],
        )
        .unwrap();
        let now = status(&approval, "xh/t1/v1", &mut activities);
        assert!(now.is_cleanly_approved(), "{now:?}");
        assert_eq!(now.approved_figures().unwrap().counts.hours_centi, 200);
        assert_eq!(now.approved_figures(), Some(&figures));
        assert_eq!(approval_history(&approval).unwrap().len(), 1);
    }

    #[test]
    fn only_the_next_level_up_approves() {
        let (mut activities, figures) = village_month();
        let heads = activities.get_heads();
        let mut approval = node_doc("xh");
        for (approver, expected) in [
            ("xh/t1/v2", "not above"),
            ("xh/t1/v1", "not above"),
            ("xh/t2", "not above"),
        ] {
            let error = approve(
                &mut approval,
                &request(approver, "xh/t1/v1", figures.clone(), heads.clone()),
                &[],
            )
            .unwrap_err();
            assert!(
                matches!(error, ApprovalError::NotAnAncestor { .. }),
                "{approver}: {error}"
            );
            assert!(error.to_string().contains(expected));
        }
        let error = approve(
            &mut approval,
            &request("xh", "xh/t1/v1", figures, heads),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            error,
            ApprovalError::NotNextLevel {
                approver: station("xh"),
                station: station("xh/t1/v1"),
                expected: station("xh/t1"),
            }
        );
        assert_eq!(
            status(&approval, "xh/t1/v1", &mut activities).state,
            ApprovalState::Unapproved,
            "nothing written"
        );
    }

    #[test]
    fn a_township_month_waits_for_all_its_villages() {
        let (mut activities, figures) = village_month();
        let heads = activities.get_heads();
        let mut v1 = node_doc("xh/t1");
        approve(
            &mut v1,
            &request("xh/t1", "xh/t1/v1", figures.clone(), heads),
            &[],
        )
        .unwrap();
        let v1_status = status(&v1, "xh/t1/v1", &mut activities);
        let empty = AutoCommit::new();
        let v2_status =
            approval_status(&AutoCommit::new(), &station("xh/t1/v2"), nov(), &empty, &[]).unwrap();

        let mut township = node_doc("xh");
        let ask = request("xh", "xh/t1", figures.clone(), vec![]);
        let error = approve(&mut township, &ask, &[v1_status.clone(), v2_status]).unwrap_err();
        assert_eq!(
            error,
            ApprovalError::VillagesNotApproved {
                missing: vec![station("xh/t1/v2")]
            }
        );
        assert!(error.to_string().contains("xh/t1/v2"));

        let mut v2 = node_doc("xh/t1");
        approve(
            &mut v2,
            &request("xh/t1", "xh/t1/v2", Figures::default(), vec![]),
            &[],
        )
        .unwrap();
        let v2_status = approval_status(&v2, &station("xh/t1/v2"), nov(), &empty, &[]).unwrap();
        assert!(v2_status.is_cleanly_approved());
        approve(&mut township, &ask, &[v1_status, v2_status]).unwrap();
        let township_status =
            approval_status(&township, &station("xh/t1"), nov(), &empty, &[]).unwrap();
        assert_eq!(township_status.state, ApprovalState::Approved);
        // A village of another township is not a child.
        let stray = approval_status(&v2, &station("xh/t1/v2"), nov(), &empty, &[]).unwrap();
        let mut other = node_doc("xh");
        let error = approve(
            &mut other,
            &request("xh", "xh/t2", figures, vec![]),
            &[stray],
        )
        .unwrap_err();
        assert!(
            matches!(error, ApprovalError::Invalid(ref e) if e.field == "children"),
            "{error}"
        );
    }

    #[test]
    fn a_month_sent_back_says_why_and_can_be_approved_again() {
        let (mut activities, figures) = village_month();
        let mut approval = node_doc("xh");
        let error = send_back(
            &mut approval,
            &station("xh"),
            &station("xh/t1/v1"),
            nov(),
            "  ",
            2_000,
        )
        .unwrap_err();
        assert!(
            matches!(error, ApprovalError::Invalid(ref e) if e.field == "reason"),
            "{error}"
        );
        send_back(
            &mut approval,
            &station("xh"),
            &station("xh/t1/v1"),
            nov(),
            "服务时长与签到表不符",
            2_000,
        )
        .unwrap();
        let now = status(&approval, "xh/t1/v1", &mut activities);
        assert_eq!(now.state, ApprovalState::SentBack);
        assert!(
            matches!(&now.decision, Some(Decision::SentBack { reason, .. }) if reason == "服务时长与签到表不符")
        );
        assert!(now.approved_figures().is_none());
        let heads = activities.get_heads();
        let mut again = request("xh/t1", "xh/t1/v1", figures, heads);
        again.at_ms = 3_000;
        // The township's node writes the re-approval (the county's sent it back).
        let mut approval = approval.fork().with_actor(actor_for(&station("xh/t1"), 7));
        approve(&mut approval, &again, &[]).unwrap();
        assert!(status(&approval, "xh/t1/v1", &mut activities).is_cleanly_approved());
        assert_eq!(approval_history(&approval).unwrap().len(), 2);
        let error = send_back(
            &mut approval,
            &station("xh/t1/v1"),
            &station("xh/t1/v1"),
            nov(),
            "x",
            4_000,
        )
        .unwrap_err();
        assert!(matches!(error, ApprovalError::NotAnAncestor { .. }));
    }

    #[test]
    fn an_edit_after_approval_is_kept_flagged_and_left_out_of_the_approved_figures() {
        let (mut activities, figures) = village_month();
        let mut approval = node_doc("xh/t1");
        let heads = activities.get_heads();
        approve(
            &mut approval,
            &request("xh/t1", "xh/t1/v1", figures.clone(), heads),
            &[],
        )
        .unwrap();
        put_activity(&mut activities, &activity("A2", 500)).unwrap();
        activities.commit();
        let now = status(&approval, "xh/t1/v1", &mut activities);
        assert_eq!(now.state, ApprovalState::Approved);
        assert!(now.edited_after_approval && !now.is_cleanly_approved());
        assert_eq!(
            now.approved_figures().unwrap().counts.hours_centi,
            200,
            "approved figures are the stored ones"
        );
        assert_eq!(
            live_figures(&activities).counts.hours_centi,
            700,
            "the edit is kept"
        );
        // Re-approval takes the edit in.
        let heads = activities.get_heads();
        let mut again = request("xh/t1", "xh/t1/v1", live_figures(&activities), heads);
        again.at_ms = 5_000;
        approve(&mut approval, &again, &[]).unwrap();
        let now = status(&approval, "xh/t1/v1", &mut activities);
        assert!(now.is_cleanly_approved());
        assert_eq!(now.approved_figures().unwrap().counts.hours_centi, 700);
    }

    #[test]
    fn concurrent_approval_and_village_edit_merge_to_approved_but_edited() {
        let (mut village, figures) = village_month();
        let mut township = village.fork().with_actor(actor_for(&station("xh/t1"), 8));
        // The township approves what it holds while the village, offline,
        // adds a record.
        let mut approval = node_doc("xh/t1");
        let township_heads = township.get_heads();
        approve(
            &mut approval,
            &request("xh/t1", "xh/t1/v1", figures, township_heads),
            &[],
        )
        .unwrap();
        put_activity(&mut village, &activity("A2", 300)).unwrap();
        village.commit();
        // Before the village's edit arrives the township sees a clean approval.
        assert!(status(&approval, "xh/t1/v1", &mut township).is_cleanly_approved());
        township.merge(&mut village).unwrap();
        let after = status(&approval, "xh/t1/v1", &mut township);
        assert!(after.edited_after_approval, "{after:?}");
        assert_eq!(after.approved_figures().unwrap().counts.hours_centi, 200);
        assert_eq!(live_figures(&township).counts.hours_centi, 500);

        // A county node holding the approval but not yet the approved records.
        let empty = AutoCommit::new();
        let county = approval_status(&approval, &station("xh/t1/v1"), nov(), &empty, &[]).unwrap();
        assert!(county.approved_records_missing && !county.edited_after_approval);
    }

    #[test]
    fn a_concurrent_send_back_beats_an_approval_on_every_replica() {
        let (mut activities, figures) = village_month();
        let heads = activities.get_heads();
        let mut base = node_doc("xh/t1");
        init_document(
            &mut base,
            &DocumentId::approval(&station("xh/t1/v1"), nov()),
        )
        .unwrap();
        base.commit();
        let mut township = base.fork().with_actor(actor_for(&station("xh/t1"), 9));
        let mut county = base.fork().with_actor(actor_for(&station("xh"), 9));
        let mut approve_late = request("xh/t1", "xh/t1/v1", figures, heads);
        approve_late.at_ms = 9_000; // later clock, still loses to the send-back
        approve(&mut township, &approve_late, &[]).unwrap();
        send_back(
            &mut county,
            &station("xh"),
            &station("xh/t1/v1"),
            nov(),
            "请核实受益人数",
            1_000,
        )
        .unwrap();
        let mut one = township.fork();
        one.merge(&mut county).unwrap();
        let mut two = county.fork();
        two.merge(&mut township).unwrap();
        for merged in [&one, &two] {
            let now = status(merged, "xh/t1/v1", &mut activities);
            assert_eq!(now.state, ApprovalState::SentBack);
            assert_eq!(now.concurrent.len(), 1);
            assert_eq!(now.concurrent[0].state(), ApprovalState::Approved);
            assert_eq!(
                approval_history(merged).unwrap().len(),
                2,
                "both decisions are kept"
            );
            let listed = conflicts(merged).unwrap();
            assert_eq!(
                listed.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
                [DECISION_KEY]
            );
        }
        assert_eq!(
            status(&one, "xh/t1/v1", &mut activities),
            status(&two, "xh/t1/v1", &mut activities)
        );
    }

    #[test]
    fn a_decision_in_another_stations_name_is_disowned() {
        let (mut activities, _) = village_month();
        // The township writes a "send-back by the county".
        let mut approval = node_doc("xh/t1");
        send_back(
            &mut approval,
            &station("xh"),
            &station("xh/t1/v1"),
            nov(),
            "伪造",
            1_000,
        )
        .unwrap();
        let now = status(&approval, "xh/t1/v1", &mut activities);
        assert_eq!(now.state, ApprovalState::Unapproved, "{now:?}");
        assert_eq!(now.disowned.len(), 1);
        assert_eq!(now.disowned[0].by(), &station("xh"));
        // Its own decision counts.
        send_back(
            &mut approval,
            &station("xh/t1"),
            &station("xh/t1/v1"),
            nov(),
            "请核实",
            2_000,
        )
        .unwrap();
        let now = status(&approval, "xh/t1/v1", &mut activities);
        assert_eq!(now.state, ApprovalState::SentBack);
        assert!(now.disowned.is_empty(), "overwritten by the township's own");
    }

    #[test]
    fn damaged_or_foreign_documents_are_named() {
        let (mut activities, _) = village_month();
        let mut doc = node_doc("xh/t1");
        doc.put(ROOT, DECISION_KEY, "{not json").unwrap();
        let heads = activities.get_heads();
        let error =
            approval_status(&doc, &station("xh/t1/v1"), nov(), &activities, &heads).unwrap_err();
        assert!(
            matches!(&error, ApprovalError::Malformed { path, .. } if path == DECISION_KEY),
            "{error}"
        );

        let mut other = node_doc("xh/t1");
        init_document(
            &mut other,
            &DocumentId::approval(&station("xh/t1/v2"), nov()),
        )
        .unwrap();
        let error = send_back(
            &mut other,
            &station("xh"),
            &station("xh/t1/v1"),
            nov(),
            "x",
            1,
        )
        .unwrap_err();
        assert!(
            matches!(error, ApprovalError::WrongDocument { .. }),
            "{error}"
        );
    }
}
