//! Points (积分): one earning rule for the county, and spending at a
//! supermarket (爱心超市) that can never overdraw, even offline.
//!
//! ```text
//! reference:<county>:points   items {rate: {points_per_hour}}
//! roster:<station>            points {<writer>|<nonce>: {"kind":"redemption"|"transfer", ...}
//!                                     earned|<writer>|<volunteer>|<YYYY-MM>: <points>}
//! ```
//!
//! **The rate.** The county publishes points per service hour in its own
//! reference document, which flows down the whole county; a station uses
//! the rate of its nearest ancestor (or itself) that published one — the
//! county, since only a county publishes ([`publish_rate`] refuses every
//! other tier). Without a rate held, nothing is credited.
//!
//! **Escrow.** A volunteer's points are split into *allotments*, one per
//! station that holds some of them. Every allotment has one owner, the
//! station, and only entries written by that station decrease it:
//! - *earned*: per volunteer and month, a register `earned|<writer>|…` in
//!   the home station's roster, raised (never lowered) to the month's hours
//!   × the rate by the home station or an office above it; the month's
//!   earned points are the largest register. Credited to the home station.
//! - *redemption* at station S: written by S into `roster:S`; debits S.
//! - *transfer* from A to B, where one is a strict ancestor of the other:
//!   one entry written by A into the roster of the lower one (which both
//!   hold): debits A and credits B in the same value, so the credit is
//!   never seen without the debit. Points between two villages go through
//!   the township or county (village → township, township → village).
//!
//! A value counts only if the station its key names wrote it (the actor of
//! the op), and the document and stations fit the kind; anything else is
//! listed as `disowned` and ignored.
//!
//! **Why no merge overdraws.** A station spends (redeems or transfers out)
//! only after checking, in its own view, that its allotment covers it; its
//! view holds every debit of its allotment (it wrote them all), and every
//! credit it saw stays in every later view (entries are never removed;
//! registers only go up). So in any view that holds all of S's debits —
//! S's own, or any view after a full sync — S's allotment is at least what
//! S last checked minus what S then spent: never negative. Summed over
//! stations, earned − spent = what the allotments hold, since a transfer
//! debits and credits the same amount in one value.

use crate::domain::model::{self, date_format, FieldError, VolunteerId};
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::{StationId, Tier};
use crate::layout;
use crate::replica::{CommitError, Replica};
use crate::service::ErrorClass;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::Date;

/// The reference name of the county's rate document.
pub const RATE_DOCUMENT: &str = "points";
const RATE_KEY: &str = "rate";
/// Highest rate a county may publish: beyond it, a typing error.
pub const POINTS_PER_HOUR_MAX: u32 = 1_000;
/// Most points one redemption or transfer moves.
pub const POINTS_PER_ENTRY_MAX: u64 = 100_000;
/// Most points a volunteer may earn in a month: 24 hours a day, 31 days,
/// at the highest rate. A register above it is disowned.
pub const EARNED_PER_MONTH_MAX: u64 = 24 * 31 * POINTS_PER_HOUR_MAX as u64;
/// Longest item text of a redemption, in characters.
pub const ITEM_CHARS_MAX: usize = 64;
/// Longest clerk name of a redemption, in characters.
pub const CLERK_CHARS_MAX: usize = 32;
/// Most volunteers whose earned points one call credits.
pub const VOLUNTEERS_PER_CREDIT_MAX: usize = 1_000;

const EARNED_PREFIX: &str = "earned";
const SEPARATOR: char = '|';

/// The rate a station uses, and the office that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsRate {
    pub set_by: StationId,
    pub points_per_hour: u32,
}

/// What a supermarket clerk submits for a redemption (兑换).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedemptionInput {
    /// `<home station>:<number>`.
    pub volunteer: String,
    pub points: u64,
    pub item: String,
    pub clerk: String,
}

/// What an office submits to move points of a volunteer it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferInput {
    pub volunteer: String,
    pub points: u64,
    /// A station above or below this one.
    pub to: String,
}

/// What moved points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Movement {
    /// Earned by service in `month`, credited to the home station.
    Earned,
    /// Spent at `station`.
    Redemption {
        station: StationId,
        item: String,
        clerk: String,
        #[serde(with = "date_format")]
        date: Date,
    },
    /// Moved from one allotment to another.
    Transfer {
        from: StationId,
        to: StationId,
        #[serde(with = "date_format")]
        date: Date,
    },
}

/// One entry of a volunteer's points as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsEntry {
    pub volunteer: VolunteerId,
    pub points: u64,
    #[serde(with = "month_text")]
    pub month: Month,
    #[serde(flatten)]
    pub movement: Movement,
}

impl PointsEntry {
    /// (station, signed points) this entry adds to allotments.
    fn effects(&self) -> Vec<(StationId, i64)> {
        let points = self.points as i64;
        match &self.movement {
            Movement::Earned => vec![(self.volunteer.home_station.clone(), points)],
            Movement::Redemption { station, .. } => vec![(station.clone(), -points)],
            Movement::Transfer { from, to, .. } => {
                vec![(from.clone(), -points), (to.clone(), points)]
            }
        }
    }
}

/// A value found in a `points` map that is not counted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disowned {
    pub document: DocumentId,
    pub key: String,
    pub reason: String,
}

/// Every points entry held here (earned months already merged: the largest
/// register), and what was not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub entries: Vec<PointsEntry>,
    pub disowned: Vec<Disowned>,
}

impl Ledger {
    /// Each station's allotment of `volunteer` in this view.
    pub fn allotments(&self, volunteer: &VolunteerId) -> BTreeMap<StationId, i64> {
        let mut out = BTreeMap::new();
        for entry in self.entries.iter().filter(|e| &e.volunteer == volunteer) {
            for (station, points) in entry.effects() {
                let held: &mut i64 = out.entry(station).or_insert(0);
                *held = (*held).saturating_add(points);
            }
        }
        out
    }

    /// Points of `volunteer` earned and spent, in this view.
    pub fn earned_and_spent(&self, volunteer: &VolunteerId) -> (u64, u64) {
        let mut earned = 0;
        let mut spent = 0;
        for entry in self.entries.iter().filter(|e| &e.volunteer == volunteer) {
            match entry.movement {
                Movement::Earned => earned = entry.points.saturating_add(earned),
                Movement::Redemption { .. } => spent = entry.points.saturating_add(spent),
                Movement::Transfer { .. } => {}
            }
        }
        (earned, spent)
    }
}

/// A volunteer's points as this node sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub volunteer: VolunteerId,
    /// This node's station, and what it may spend of the volunteer's points.
    pub station: StationId,
    pub here: i64,
    /// Every allotment visible here (stations of this node's subtree), by
    /// station; zero ones left out.
    pub allotments: Vec<Allotment>,
    /// The sum of the allotments visible here.
    pub total: i64,
    pub earned: u64,
    pub spent: u64,
    pub rate: Option<PointsRate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allotment {
    pub station: StationId,
    pub points: i64,
}

/// A station's points of one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationMonth {
    pub station: StationId,
    /// Earned by volunteers homed here in the month.
    pub earned: u64,
    /// Redeemed here in the month.
    pub spent: u64,
    pub transferred_in: u64,
    pub transferred_out: u64,
    /// What the station's allotments hold at the end of the month.
    pub outstanding: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointsError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("{}", overdraft_reason(.volunteer, *.points, .station, *.here, .elsewhere))]
    Overdraft {
        volunteer: VolunteerId,
        points: u64,
        station: StationId,
        here: i64,
        elsewhere: Vec<Allotment>,
    },
    #[error("the store failed: {reason}")]
    Store { reason: String },
}

fn overdraft_reason(
    volunteer: &VolunteerId,
    points: u64,
    station: &StationId,
    here: i64,
    elsewhere: &[Allotment],
) -> String {
    let rest = if elsewhere.is_empty() {
        "no other allotment is visible here: the rest is held at the home station or an office \
         above it; ask the township or county to transfer points here"
            .to_string()
    } else {
        let held: Vec<String> = elsewhere
            .iter()
            .map(|a| format!("{} at {}", a.points, a.station))
            .collect();
        format!(
            "the rest is held {}; that office must transfer it first",
            held.join(", ")
        )
    };
    format!("{points} asked, but {station} holds {here} of {volunteer}'s points; {rest}")
}

impl PointsError {
    pub fn field(&self) -> &str {
        match self {
            PointsError::Invalid(e) => &e.field,
            PointsError::Overdraft { .. } => "points",
            PointsError::Store { .. } => "store",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            PointsError::Invalid(e) => e.reason.clone(),
            other => other.to_string(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            PointsError::Invalid(_) => ErrorClass::BadInput,
            PointsError::Overdraft { .. } => ErrorClass::Conflict,
            PointsError::Store { .. } => ErrorClass::Internal,
        }
    }
}

impl From<FieldError> for PointsError {
    fn from(error: FieldError) -> Self {
        PointsError::Invalid(error)
    }
}

// ---------------------------------------------------------------- the rate

/// The rate document kept by `county`.
pub fn rate_document(county: &StationId) -> DocumentId {
    DocumentId {
        owner: county.clone(),
        kind: DocumentKind::Reference(RATE_DOCUMENT.to_string()),
    }
}

/// Publish the county's rate. Only a county node publishes (`tier` is the
/// local node's); 0 turns earning off. Returns whether anything changed.
pub fn publish_rate<S: Storage>(
    replica: &mut Replica<S>,
    tier: Tier,
    points_per_hour: u32,
) -> Result<bool, PointsError> {
    if tier != Tier::County {
        return Err(FieldError::new(
            "points_per_hour",
            format!(
                "only the county publishes the points rate; this node is a {}",
                tier.as_str()
            ),
        )
        .into());
    }
    if points_per_hour > POINTS_PER_HOUR_MAX {
        return Err(FieldError::new(
            "points_per_hour",
            format!("is {points_per_hour}; it must be from 0 to {POINTS_PER_HOUR_MAX}"),
        )
        .into());
    }
    let document = rate_document(replica.local());
    let fields = [("points_per_hour", points_per_hour.to_string())];
    let outcome = replica
        .commit(&document, |doc| {
            layout::put_reference_item(doc, RATE_KEY, &fields).map_err(store_error)
        })
        .map_err(commit_error)?;
    Ok(outcome.changes > 0)
}

/// The rate `station` uses: that of its nearest ancestor (or itself) whose
/// rate document is held and readable.
pub fn rate_at<S: Storage>(replica: &mut Replica<S>, station: &StationId) -> Option<PointsRate> {
    let mut documents = replica.documents_where(|document| {
        matches!(&document.kind, DocumentKind::Reference(n) if n == RATE_DOCUMENT)
            && document.owner.is_ancestor_or_self_of(station)
    });
    documents.sort_by_key(|document| std::cmp::Reverse(document.owner.depth()));
    for document in documents {
        let Ok(Some(Ok(items))) = replica.with_document(&document, layout::reference_items) else {
            continue;
        };
        let rate = items
            .iter()
            .find(|(key, _)| key == RATE_KEY)
            .and_then(|(_, fields)| {
                fields
                    .iter()
                    .find(|(field, _)| field == "points_per_hour")
                    .and_then(|(_, value)| value.parse::<u32>().ok())
            })
            .filter(|rate| *rate <= POINTS_PER_HOUR_MAX);
        if let Some(points_per_hour) = rate {
            return Some(PointsRate {
                set_by: document.owner.clone(),
                points_per_hour,
            });
        }
    }
    None
}

/// Points for `hours_centi` hundredths of an hour: whole points, rounded
/// down (a volunteer earns a point once the time for it is served).
pub fn points_for(hours_centi: u64, points_per_hour: u32) -> u64 {
    hours_centi.saturating_mul(u64::from(points_per_hour)) / 100
}

// ---------------------------------------------------------------- writes

/// Raise the earned registers of `volunteer` written by this node to the
/// hours this node sees per month × the rate in force here. Never lowers a
/// register: a deleted activity or a lower rate takes back nothing already
/// credited. Only the home station and the offices above it (who hold the
/// home roster) credit. Returns the months raised, with their new points;
/// one commit or none.
pub fn credit_earned<S: Storage>(
    replica: &mut Replica<S>,
    volunteer: &VolunteerId,
    hours_by_month: &[(Month, u64)],
) -> Result<Vec<(Month, u64)>, PointsError> {
    let local = replica.local().clone();
    if !local.is_ancestor_or_self_of(&volunteer.home_station) {
        return Err(FieldError::new(
            "volunteer",
            format!(
                "{volunteer} is homed at {}, outside this station's subtree: only the home \
                 station and the offices above it credit earned points",
                volunteer.home_station
            ),
        )
        .into());
    }
    let Some(rate) = rate_at(replica, &local) else {
        return Ok(Vec::new());
    };
    let document = DocumentId::roster(&volunteer.home_station);
    let held: BTreeMap<String, u64> = if replica.holds(&document) {
        match replica.with_document(&document, layout::points_values) {
            Ok(Some(Ok(values))) => values
                .into_iter()
                .filter(|v| v.written_by.as_ref() == Some(&local))
                .filter_map(|v| Some((v.key, v.text.parse().ok()?)))
                .collect(),
            Ok(None) => BTreeMap::new(),
            Ok(Some(Err(error))) => return Err(store_error(error)),
            Err(error) => return Err(store_error(error)),
        }
    } else {
        BTreeMap::new()
    };
    let mut raised = Vec::new();
    for (month, hours_centi) in hours_by_month {
        let points = points_for(*hours_centi, rate.points_per_hour).min(EARNED_PER_MONTH_MAX);
        let key = earned_key(&local, volunteer, *month);
        if points > held.get(&key).copied().unwrap_or(0) {
            raised.push((*month, points, key));
        }
    }
    if raised.is_empty() {
        return Ok(Vec::new());
    }
    replica
        .commit(&document, |doc| {
            for (_, points, key) in &raised {
                layout::put_points_entry(doc, key, &points.to_string()).map_err(store_error)?;
            }
            Ok::<_, PointsError>(())
        })
        .map_err(commit_error)?;
    Ok(raised.into_iter().map(|(m, p, _)| (m, p)).collect())
}

/// A redemption at this node's station: refused unless the station's own
/// allotment of the volunteer covers it. One commit or none.
pub fn redeem<S: Storage>(
    replica: &mut Replica<S>,
    input: &RedemptionInput,
    today: Date,
    nonce: u64,
) -> Result<PointsEntry, PointsError> {
    let volunteer = volunteer_field(&input.volunteer)?;
    let points = points_field(input.points)?;
    let item = model::text("item", &input.item, true, ITEM_CHARS_MAX)?;
    let clerk = model::text("clerk", &input.clerk, true, CLERK_CHARS_MAX)?;
    let station = replica.local().clone();
    let entry = PointsEntry {
        volunteer,
        points,
        month: month_of(today)?,
        movement: Movement::Redemption {
            station: station.clone(),
            item,
            clerk,
            date: today,
        },
    };
    spend(replica, entry, &DocumentId::roster(&station), nonce)
}

/// Move points of a volunteer from this node's station to a station above
/// or below it: one entry, written into the lower station's roster, that
/// debits here and credits there. Refused unless this station's allotment
/// covers it. One commit or none.
pub fn transfer<S: Storage>(
    replica: &mut Replica<S>,
    input: &TransferInput,
    today: Date,
    nonce: u64,
) -> Result<PointsEntry, PointsError> {
    let volunteer = volunteer_field(&input.volunteer)?;
    let points = points_field(input.points)?;
    let from = replica.local().clone();
    let to = StationId::parse(input.to.trim())
        .map_err(|e| FieldError::new("to", format!("{:?} is not a station: {e}", input.to)))?;
    let lower = if from.is_strict_ancestor_of(&to) {
        to.clone()
    } else if to.is_strict_ancestor_of(&from) {
        from.clone()
    } else {
        return Err(FieldError::new(
            "to",
            format!(
                "{to} is neither above nor below {from}: points move between a station and an \
                 office above it (through the township or county)"
            ),
        )
        .into());
    };
    let entry = PointsEntry {
        volunteer,
        points,
        month: month_of(today)?,
        movement: Movement::Transfer {
            from,
            to,
            date: today,
        },
    };
    spend(replica, entry, &DocumentId::roster(&lower), nonce)
}

/// Check the local allotment covers `entry`, then write it at a fresh key.
fn spend<S: Storage>(
    replica: &mut Replica<S>,
    entry: PointsEntry,
    document: &DocumentId,
    nonce: u64,
) -> Result<PointsEntry, PointsError> {
    let station = replica.local().clone();
    let ledger = read_ledger(replica, Some(&entry.volunteer))?;
    let allotments = ledger.allotments(&entry.volunteer);
    let here = allotments.get(&station).copied().unwrap_or(0);
    let covered = i64::try_from(entry.points).unwrap_or(i64::MAX) <= here;
    if !covered && !faults::armed(Fault::SkipAllotmentCheck) {
        let elsewhere = allotments
            .into_iter()
            .filter(|(s, points)| s != &station && *points > 0)
            .map(|(station, points)| Allotment { station, points })
            .collect();
        return Err(PointsError::Overdraft {
            volunteer: entry.volunteer.clone(),
            points: entry.points,
            station,
            here,
            elsewhere,
        });
    }
    let key = format!("{station}{SEPARATOR}{nonce:016x}");
    let text = entry_text(&entry);
    replica
        .commit(document, |doc| {
            let taken = layout::points_values(doc)
                .map_err(store_error)?
                .iter()
                .any(|value| value.key == key);
            if taken {
                return Err(
                    FieldError::new("nonce", "an entry with this key exists; retry").into(),
                );
            }
            layout::put_points_entry(doc, &key, &text).map_err(store_error)
        })
        .map_err(commit_error)?;
    Ok(entry)
}

// ---------------------------------------------------------------- reads

/// Every points entry held here (of one volunteer, or all), in document
/// order, earned registers merged per volunteer and month.
pub fn read_ledger<S: Storage>(
    replica: &mut Replica<S>,
    volunteer: Option<&VolunteerId>,
) -> Result<Ledger, PointsError> {
    let documents = replica.documents_where(|d| matches!(d.kind, DocumentKind::Roster));
    let mut ledger = Ledger::default();
    let mut earned: BTreeMap<(VolunteerId, Month), u64> = BTreeMap::new();
    for document in documents {
        let values = match replica.with_document(&document, layout::points_values) {
            Ok(Some(Ok(values))) => values,
            Ok(None) => continue,
            Ok(Some(Err(error))) => return Err(store_error(error)),
            Err(error) => return Err(store_error(error)),
        };
        let mut seen = std::collections::BTreeSet::new();
        for value in values {
            match read_value(&document, &value) {
                Ok(Read::Entry(entry)) => {
                    if volunteer.is_some_and(|v| v != &entry.volunteer) {
                        continue;
                    }
                    // One counted value per key: the writer's own.
                    if seen.insert(value.key.clone()) {
                        ledger.entries.push(entry);
                    }
                }
                Ok(Read::Earned(who, month, points)) => {
                    if volunteer.is_some_and(|v| v != &who) {
                        continue;
                    }
                    if seen.insert(value.key.clone()) {
                        let held = earned.entry((who, month)).or_insert(0);
                        *held = (*held).max(points);
                    }
                }
                Err(reason) => ledger.disowned.push(Disowned {
                    document: document.clone(),
                    key: value.key.clone(),
                    reason,
                }),
            }
        }
    }
    for ((volunteer, month), points) in earned {
        ledger.entries.push(PointsEntry {
            volunteer,
            points,
            month,
            movement: Movement::Earned,
        });
    }
    Ok(ledger)
}

/// A volunteer's points as seen here.
pub fn balance<S: Storage>(
    replica: &mut Replica<S>,
    volunteer: &VolunteerId,
) -> Result<Balance, PointsError> {
    let station = replica.local().clone();
    let ledger = read_ledger(replica, Some(volunteer))?;
    let allotments = ledger.allotments(volunteer);
    let (earned, spent) = ledger.earned_and_spent(volunteer);
    Ok(Balance {
        volunteer: volunteer.clone(),
        here: allotments.get(&station).copied().unwrap_or(0),
        total: allotments.values().sum(),
        allotments: allotments
            .into_iter()
            .filter(|(_, points)| *points != 0)
            .map(|(station, points)| Allotment { station, points })
            .collect(),
        station: station.clone(),
        earned,
        spent,
        rate: rate_at(replica, &station),
    })
}

/// A volunteer's entries seen here, by month (earned first), then date.
pub fn history<S: Storage>(
    replica: &mut Replica<S>,
    volunteer: &VolunteerId,
) -> Result<Vec<PointsEntry>, PointsError> {
    let mut entries = read_ledger(replica, Some(volunteer))?.entries;
    entries.sort_by_key(|entry| {
        let date = match &entry.movement {
            Movement::Earned => None,
            Movement::Redemption { date, .. } | Movement::Transfer { date, .. } => Some(*date),
        };
        (entry.month, date)
    });
    Ok(entries)
}

/// Per station under `root` with any points: earned, spent and moved in
/// `month`, and what its allotments hold at the month's end.
pub fn station_months<S: Storage>(
    replica: &mut Replica<S>,
    root: &StationId,
    month: Month,
) -> Result<Vec<StationMonth>, PointsError> {
    let ledger = read_ledger(replica, None)?;
    let mut out: BTreeMap<StationId, StationMonth> = BTreeMap::new();
    fn line<'a>(
        out: &'a mut BTreeMap<StationId, StationMonth>,
        root: &StationId,
        station: &StationId,
    ) -> Option<&'a mut StationMonth> {
        if !root.is_ancestor_or_self_of(station) {
            return None;
        }
        Some(out.entry(station.clone()).or_insert_with(|| StationMonth {
            station: station.clone(),
            earned: 0,
            spent: 0,
            transferred_in: 0,
            transferred_out: 0,
            outstanding: 0,
        }))
    }
    for entry in ledger.entries.iter().filter(|e| e.month <= month) {
        for (station, points) in entry.effects() {
            if let Some(line) = line(&mut out, root, &station) {
                line.outstanding += points;
            }
        }
        if entry.month != month {
            continue;
        }
        match &entry.movement {
            Movement::Earned => {
                if let Some(line) = line(&mut out, root, &entry.volunteer.home_station) {
                    line.earned += entry.points;
                }
            }
            Movement::Redemption { station, .. } => {
                if let Some(line) = line(&mut out, root, station) {
                    line.spent += entry.points;
                }
            }
            Movement::Transfer { from, to, .. } => {
                if let Some(line) = line(&mut out, root, from) {
                    line.transferred_out += entry.points;
                }
                if let Some(line) = line(&mut out, root, to) {
                    line.transferred_in += entry.points;
                }
            }
        }
    }
    Ok(out.into_values().collect())
}

// ---------------------------------------------------------------- entry text

/// A redemption or transfer as stored: one JSON text, written once.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum EntryText {
    Redemption {
        volunteer: String,
        points: u64,
        station: String,
        item: String,
        clerk: String,
        date: String,
    },
    Transfer {
        volunteer: String,
        points: u64,
        from: String,
        to: String,
        date: String,
    },
}

fn entry_text(entry: &PointsEntry) -> String {
    let volunteer = entry.volunteer.to_string();
    let text = match &entry.movement {
        Movement::Redemption {
            station,
            item,
            clerk,
            date,
        } => EntryText::Redemption {
            volunteer,
            points: entry.points,
            station: station.to_string(),
            item: item.clone(),
            clerk: clerk.clone(),
            date: format_date(*date),
        },
        Movement::Transfer { from, to, date } => EntryText::Transfer {
            volunteer,
            points: entry.points,
            from: from.to_string(),
            to: to.to_string(),
            date: format_date(*date),
        },
        Movement::Earned => unreachable!("earned points are registers, not entries"),
    };
    serde_json::to_string(&text).expect("an entry serialises")
}

enum Read {
    Entry(PointsEntry),
    Earned(VolunteerId, Month, u64),
}

/// Read one value of `document`'s points map, or say why it is not counted.
fn read_value(document: &DocumentId, value: &layout::PointsValue) -> Result<Read, String> {
    let owner = &document.owner;
    let mut parts = value.key.split(SEPARATOR);
    let first = parts.next().unwrap_or("");
    if first == EARNED_PREFIX {
        let (Some(writer), Some(who), Some(month), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("an earned key is earned|<writer>|<volunteer>|<month>".into());
        };
        let writer = StationId::parse(writer).map_err(|e| format!("writer: {e}"))?;
        check_author(value, &writer)?;
        let who = VolunteerId::try_from(who.to_string()).map_err(|e| e.to_string())?;
        let month = Month::parse(month).ok_or("month: not YYYY-MM")?;
        if &who.home_station != owner || !writer.is_ancestor_or_self_of(owner) {
            return Err("earned points are credited in the home roster, by it or above".into());
        }
        let points: u64 = value.text.parse().map_err(|_| "points: not a number")?;
        if points > EARNED_PER_MONTH_MAX {
            return Err(format!("points: over {EARNED_PER_MONTH_MAX} in a month"));
        }
        return Ok(Read::Earned(who, month, points));
    }
    let writer = StationId::parse(first).map_err(|e| format!("writer: {e}"))?;
    check_author(value, &writer)?;
    let text: EntryText =
        serde_json::from_str(&value.text).map_err(|e| format!("unreadable entry: {e}"))?;
    let station = |text: &str| StationId::parse(text).map_err(|e| e.to_string());
    let date = |text: &str| date_format::parse("date", text).map_err(|e| e.reason);
    let (volunteer, points, movement) = match text {
        EntryText::Redemption {
            volunteer,
            points,
            station: at,
            item,
            clerk,
            date: day,
        } => {
            let at = station(&at)?;
            if at != writer || &at != owner {
                return Err("a redemption is written by its station, into its roster".into());
            }
            let movement = Movement::Redemption {
                station: at,
                item,
                clerk,
                date: date(&day)?,
            };
            (volunteer, points, movement)
        }
        EntryText::Transfer {
            volunteer,
            points,
            from,
            to,
            date: day,
        } => {
            let (from, to) = (station(&from)?, station(&to)?);
            let fits = (&from == owner && to.is_strict_ancestor_of(owner))
                || (&to == owner && from.is_strict_ancestor_of(owner));
            if from != writer || !fits {
                return Err(
                    "a transfer is written by its source, into the lower station's roster".into(),
                );
            }
            (
                volunteer,
                points,
                Movement::Transfer {
                    from,
                    to,
                    date: date(&day)?,
                },
            )
        }
    };
    if !(1..=POINTS_PER_ENTRY_MAX).contains(&points) {
        return Err(format!(
            "points: {points} is not from 1 to {POINTS_PER_ENTRY_MAX}"
        ));
    }
    let volunteer = VolunteerId::try_from(volunteer).map_err(|e| e.to_string())?;
    let month = match &movement {
        Movement::Redemption { date, .. } | Movement::Transfer { date, .. } => {
            month_of(*date).map_err(|e| e.reason)?
        }
        Movement::Earned => unreachable!("read_value makes no earned entry here"),
    };
    Ok(Read::Entry(PointsEntry {
        volunteer,
        points,
        month,
        movement,
    }))
}

fn check_author(value: &layout::PointsValue, writer: &StationId) -> Result<(), String> {
    if value.written_by.as_ref() == Some(writer) {
        Ok(())
    } else {
        Err(format!(
            "written by {}, not by {writer} whose key it is",
            value
                .written_by
                .as_ref()
                .map_or("an unknown actor".to_string(), |s| s.to_string())
        ))
    }
}

fn earned_key(writer: &StationId, volunteer: &VolunteerId, month: Month) -> String {
    format!("{EARNED_PREFIX}{SEPARATOR}{writer}{SEPARATOR}{volunteer}{SEPARATOR}{month}")
}

fn volunteer_field(text: &str) -> Result<VolunteerId, FieldError> {
    VolunteerId::try_from(text.trim().to_string())
}

fn points_field(points: u64) -> Result<u64, FieldError> {
    if (1..=POINTS_PER_ENTRY_MAX).contains(&points) {
        Ok(points)
    } else {
        Err(FieldError::new(
            "points",
            format!("is {points}; it must be from 1 to {POINTS_PER_ENTRY_MAX}"),
        ))
    }
}

fn month_of(date: Date) -> Result<Month, FieldError> {
    u16::try_from(date.year())
        .ok()
        .and_then(|year| Month::new(year, date.month() as u8))
        .ok_or_else(|| FieldError::new("date", format!("{} is out of range", format_date(date))))
}

fn format_date(date: Date) -> String {
    date.format(date_format::FORMAT)
        .expect("a date formats as YYYY-MM-DD")
}

fn store_error(error: impl std::fmt::Display) -> PointsError {
    PointsError::Store {
        reason: error.to_string(),
    }
}

fn commit_error(error: CommitError<PointsError>) -> PointsError {
    match error {
        CommitError::Mutate(e) => e,
        other => store_error(other),
    }
}

/// A month as clerks write it, `YYYY-MM`.
mod month_text {
    use crate::identity::document_id::Month;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(month: &Month, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(month)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Month, D::Error> {
        let text = String::deserialize(input)?;
        Month::parse(&text).ok_or_else(|| D::Error::custom(format!("{text:?} is not YYYY-MM")))
    }
}

#[cfg(test)]
mod tests;
