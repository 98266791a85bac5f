//! Village clerks import their activity ledger (活动台账) through the
//! service functions the `POST import/activities` handler calls
//! (`ledger_import::plan_ledger`, then `commit_month` per month), starting
//! from the parsed rows the file reader hands them: a handful of activities
//! of the month with their service records, whether the village is online
//! or not. Some files carry a stale row for an activity the village has
//! since deleted (refused, naming it: an import never brings it back), some
//! a service record typed twice (its activity refused whole). Accepted
//! activities enter the ground truth — the durability checker then wants
//! the write at the county, the aggregates checker counts them — and
//! refused rows are counted by reason.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{Date, SimMs, DAY_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workflows::{At, Outcome, Step};
use crate::workload::{poisson_in_working_hours, to_date};
use civsync_protocol::domain::model::{Activity, Category, Form};
use civsync_protocol::service::ledger_import::{self, LedgerRow};
use civsync_protocol::service::RowRefusal;
use civsync_protocol::Tier;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Ledger files a village imports per week (about one a month).
pub const IMPORTS_PER_VILLAGE_WEEK: f64 = 0.25;
/// Share of files with a row of an activity the village deleted since.
pub const STALE_ROW_PROBABILITY: f64 = 0.4;
/// Share of files with a service record typed twice.
pub const DUPLICATE_ROW_PROBABILITY: f64 = 0.2;
/// Most activities in one file, and most service records per activity.
const ACTIVITIES_PER_FILE_MAX: usize = 4;
const RECORDS_PER_ACTIVITY_MAX: usize = 4;
const HOURS: [&str; 4] = ["1", "1.5", "2", "3"];

/// The imports: (time, village, step).
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed ^ 0x1ed9e, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for village in topology.of_tier(Tier::Village) {
        // Not before the roster is imported (within the first three days).
        poisson_in_working_hours(
            &mut rng,
            IMPORTS_PER_VILLAGE_WEEK / 7.0,
            horizon,
            3 * DAY_MS,
            |at| out.push((at, village, Step::ImportLedger)),
        );
    }
    out
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LedgerCounters {
    pub imports: u64,
    pub rows: u64,
    pub rows_accepted: u64,
    pub activities_accepted: u64,
    /// Refused rows by reason.
    pub rows_refused: BTreeMap<String, u64>,
}

/// The imports' draws.
pub struct LedgerImports {
    rng: ChaCha8Rng,
    serial: u64,
    pub counters: LedgerCounters,
}

impl LedgerImports {
    pub fn new(config: &SimConfig) -> LedgerImports {
        LedgerImports {
            rng: rng::stream(config.seed ^ 0x1ed9f, Stream::Workflows),
            serial: 0,
            counters: LedgerCounters::default(),
        }
    }

    pub fn import(&mut self, at: At<'_>) -> Outcome {
        let station = at.replica.local().clone();
        let rows = self.ledger(&at);
        if rows.is_empty() {
            return Outcome::nothing();
        }
        let today = to_date(&at.today);
        let plan = match ledger_import::plan_ledger(at.replica, &station, &rows, today) {
            Ok(plan) => plan,
            Err(error) => return Outcome::refused(format!("import a ledger: {error}")),
        };
        self.counters.imports += 1;
        self.counters.rows += rows.len() as u64;
        self.count_refused(&plan.refused);
        let mut imported = Vec::new();
        let mut written = None;
        for batch in &plan.months {
            match ledger_import::commit_month(at.replica, batch) {
                Ok(answer) => {
                    self.count_refused(&answer.refused);
                    for accepted in &answer.accepted {
                        self.counters.rows_accepted += accepted.rows.len() as u64;
                        self.counters.activities_accepted += 1;
                        if let Some(planned) = batch
                            .activities
                            .iter()
                            .find(|p| p.activity.id == accepted.id)
                        {
                            imported.push((batch.document.clone(), planned.activity.clone()));
                        }
                    }
                    if !answer.accepted.is_empty() {
                        written = Some(batch.document.clone());
                    }
                }
                Err(error) => {
                    return Outcome::refused(format!("import into {}: {error}", batch.document))
                }
            }
        }
        let Some(document) = written else {
            return Outcome::refused(format!(
                "import of {} rows at {station}: every row refused",
                rows.len()
            ));
        };
        let what = format!(
            "import a ledger of {} rows ({} activities) into {document}",
            rows.len(),
            imported.len()
        );
        Outcome {
            imported_activities: imported,
            ..Outcome::written(document, at.replica, what)
        }
    }

    /// The rows of this month's ledger as the file reader gives them.
    fn ledger(&mut self, at: &At<'_>) -> Vec<LedgerRow> {
        let volunteers = at.workload.volunteers_of(at.node);
        if volunteers.is_empty() {
            return Vec::new();
        }
        let today = at.today;
        let mut rows = Vec::new();
        let activities = self.rng.gen_range(1..=ACTIVITIES_PER_FILE_MAX);
        for _ in 0..activities {
            self.serial += 1;
            let day = self.rng.gen_range(1..=today.day);
            let date = Date { day, ..today };
            let theme = crate::names::MONTHLY_THEMES[(today.month as usize + 11) % 12];
            let name = format!(
                "{}（第{}场）",
                crate::names::activity_title(&mut self.rng, theme),
                self.serial
            );
            let form = Form::ALL[self.rng.gen_range(0..Form::ALL.len())];
            let category = Category::ALL[self.rng.gen_range(0..Category::ALL.len())];
            let activity = LedgerRow {
                name,
                date: format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
                place: "村文明实践站".to_string(),
                content: "按台账补录。".to_string(),
                form: form.key().to_string(),
                category: category.key().to_string(),
                person_in_charge: crate::names::person(&mut self.rng),
                beneficiaries: self.rng.gen_range(10..=120).to_string(),
                theme: theme.to_string(),
                ..LedgerRow::default()
            };
            let served = self
                .rng
                .gen_range(1..=RECORDS_PER_ACTIVITY_MAX.min(volunteers.len()));
            let mut pool: Vec<usize> = (0..volunteers.len()).collect();
            for _ in 0..served {
                let volunteer = &volunteers[pool.swap_remove(self.rng.gen_range(0..pool.len()))];
                rows.push(LedgerRow {
                    volunteer: volunteer.to_string(),
                    hours: HOURS[self.rng.gen_range(0..HOURS.len())].to_string(),
                    ..activity.clone()
                });
            }
        }
        if self.rng.gen_bool(DUPLICATE_ROW_PROBABILITY) {
            let typed_twice = rows[self.rng.gen_range(0..rows.len())].clone();
            rows.push(typed_twice);
        }
        let deleted = at.workload.deleted_of(at.node);
        if !deleted.is_empty() && self.rng.gen_bool(STALE_ROW_PROBABILITY) {
            let (_, snapshot) = &deleted[self.rng.gen_range(0..deleted.len())];
            rows.push(stale_row(snapshot));
        }
        for (at, row) in rows.iter_mut().enumerate() {
            // Row 1 is the header.
            row.row = at + 2;
        }
        rows
    }

    fn count_refused(&mut self, refused: &[RowRefusal]) {
        for refusal in refused {
            let reason = if refusal.field == "id" && refusal.reason.contains("was deleted") {
                "activity deleted at the station"
            } else if refusal.reason.contains("listed twice") {
                "volunteer listed twice"
            } else if refusal.field == "activity" {
                "refused with its activity"
            } else {
                refusal.field.as_str()
            };
            *self
                .counters
                .rows_refused
                .entry(reason.to_string())
                .or_default() += 1;
        }
    }
}

/// A row of an activity as the clerk's old copy of the ledger has it.
fn stale_row(activity: &Activity) -> LedgerRow {
    let date = activity.date;
    LedgerRow {
        id: activity.id.to_string(),
        name: activity.name.clone(),
        date: format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        place: activity.place.clone(),
        content: activity.content.clone(),
        form: activity.form.key().to_string(),
        category: activity.category.key().to_string(),
        person_in_charge: activity.person_in_charge.clone(),
        beneficiaries: activity.beneficiaries.to_string(),
        theme: activity.theme.clone().unwrap_or_default(),
        volunteer: activity
            .records
            .first()
            .map(|r| r.volunteer.to_string())
            .unwrap_or_default(),
        hours: activity
            .records
            .first()
            .map(|r| format!("{}", f64::from(r.hours.centi) / 100.0))
            .unwrap_or_default(),
        ..LedgerRow::default()
    }
}
