//! Long work a clerk waits for — a roster or ledger import, a cold sync
//! with a peer, a report — as named jobs with counts: what `status` shows,
//! what the log says while it runs, and what `civsync import` draws as a
//! progress bar.
//!
//! A job is started with [`Progress::start`], which hands back a
//! [`ProgressJob`]; the code doing the work reports into it per batch
//! (never per row: each report takes the registry's lock once). The job
//! logs one line at its start, one at each new phase ("checking rows",
//! "storing the roster") and otherwise at most every [`LOG_EVERY_MS`] or
//! every [`LOG_EVERY_PERCENT`] while it runs, and one at its end with its counts
//! and elapsed time. A finished job stays listed for [`FINISHED_KEPT_MS`]
//! with its outcome; at most [`JOBS_KEPT_MAX`] jobs are kept, the oldest
//! finished ones dropped first. A job dropped without `finish` (an error
//! returned early, a panic) ends as failed.
//!
//! Base layer: uses nothing else in the crate, so the store, the peers and
//! the API can all report into it.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Most jobs kept, running and finished.
pub const JOBS_KEPT_MAX: usize = 16;
/// How long a finished job stays listed.
pub const FINISHED_KEPT_MS: u64 = 10 * 60 * 1_000;
/// A running job logs at most this often (unless it passes a tenth).
pub const LOG_EVERY_MS: u64 = 2_000;
/// A running job logs each time it passes another this many percent.
pub const LOG_EVERY_PERCENT: u64 = 10;

/// What the long work is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    RosterImport,
    TeamImport,
    StationImport,
    LedgerImport,
    ColdSync,
    Report,
}

impl JobKind {
    pub fn label(self) -> &'static str {
        match self {
            JobKind::RosterImport => "roster import",
            JobKind::TeamImport => "team import",
            JobKind::StationImport => "station import",
            JobKind::LedgerImport => "ledger import",
            JobKind::ColdSync => "cold sync",
            JobKind::Report => "report",
        }
    }
}

/// What a job counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountUnit {
    Rows,
    Documents,
}

impl CountUnit {
    pub fn word(self) -> &'static str {
        match self {
            CountUnit::Rows => "rows",
            CountUnit::Documents => "documents",
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Finished,
    Failed,
}

/// One job as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub id: u64,
    pub kind: JobKind,
    /// The station imported into, or the peer synced with.
    pub subject: String,
    pub unit: CountUnit,
    pub done: u64,
    /// Absent until known (a file not read yet, a peer not heard yet).
    pub total: Option<u64>,
    /// Bytes read or received so far (0: none counted).
    pub bytes: u64,
    /// What it is doing now ("checking rows", "storing"), or how it ended.
    pub phase: String,
    pub state: JobState,
    pub elapsed_ms: u64,
    /// `rows 41,000 / 100,000, 4.1 MB`.
    pub counts: String,
}

/// `rows 1,234 / 2,600, 4.1 MB`: the unit, done, the total when known (and
/// the percentage when asked), the bytes when any.
pub fn counts_line(
    unit: CountUnit,
    done: u64,
    total: Option<u64>,
    bytes: u64,
    with_percent: bool,
) -> String {
    let mut line = format!("{} {}", unit.word(), thousands(done));
    if let Some(total) = total {
        line.push_str(&format!(" / {}", thousands(total)));
        if with_percent {
            line.push_str(&format!(" ({}%)", percent(done, total)));
        }
    }
    if bytes > 0 {
        line.push_str(&format!(", {}", byte_size(bytes)));
    }
    line
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimal units as the CLI's tables write them, one decimal past bytes:
/// `812 B`, `12.3 KB`, `4.1 MB`.
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1_000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1_000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1_000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Whole percent of `done` in `total`, at most 100 (0 of 0 is done: 100).
pub fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        return 100;
    }
    (done.min(total) as u128 * 100 / total as u128) as u64
}

/// Whether a running job logs now: `LOG_EVERY_MS` since its last line, or
/// it passed into another tenth since then.
pub fn log_is_due(
    since_last_ms: u64,
    last_logged_percent: Option<u64>,
    percent_now: Option<u64>,
) -> bool {
    if since_last_ms >= LOG_EVERY_MS {
        return true;
    }
    match (last_logged_percent, percent_now) {
        (Some(last), Some(now)) => now / LOG_EVERY_PERCENT > last / LOG_EVERY_PERCENT,
        _ => false,
    }
}

struct Entry {
    view: JobView,
    started: Instant,
    finished: Option<Instant>,
    last_logged: Instant,
    last_logged_percent: Option<u64>,
}

impl Entry {
    fn percent(&self) -> Option<u64> {
        self.view.total.map(|total| percent(self.view.done, total))
    }

    fn label(&self) -> String {
        format!("{} {}", self.view.kind.label(), self.view.subject)
    }

    fn refresh(&mut self, now: Instant) {
        let end = self.finished.unwrap_or(now);
        self.view.elapsed_ms = millis(end.saturating_duration_since(self.started));
        self.view.counts = counts_line(
            self.view.unit,
            self.view.done,
            self.view.total,
            self.view.bytes,
            false,
        );
    }

    /// The running line, if one is due or `now_anyway` (a new phase).
    fn log_if_due(&mut self, now: Instant, now_anyway: bool) {
        let since = millis(now.saturating_duration_since(self.last_logged));
        let percent = self.percent();
        if !now_anyway && !log_is_due(since, self.last_logged_percent, percent) {
            return;
        }
        self.last_logged = now;
        self.last_logged_percent = percent;
        let v = &self.view;
        info!(
            job = v.id,
            kind = v.kind.label(),
            done = v.done,
            total = v.total,
            bytes = v.bytes,
            "{}: {}; {}",
            self.label(),
            counts_line(v.unit, v.done, v.total, v.bytes, true),
            v.phase
        );
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Default)]
struct Jobs {
    next_id: u64,
    entries: VecDeque<Entry>,
}

impl Jobs {
    /// Drop finished jobs past their time, then the oldest while over the
    /// bound (finished ones first), leaving room for `room` more.
    fn prune(&mut self, now: Instant, room: usize) {
        let kept = Duration::from_millis(FINISHED_KEPT_MS);
        self.entries.retain(|entry| {
            entry
                .finished
                .is_none_or(|at| now.saturating_duration_since(at) < kept)
        });
        while self.entries.len() + room > JOBS_KEPT_MAX {
            let oldest_finished = self.entries.iter().position(|e| e.finished.is_some());
            if self.entries.remove(oldest_finished.unwrap_or(0)).is_none() {
                break;
            }
        }
    }

    fn entry(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|entry| entry.view.id == id)
    }
}

/// The node's jobs; cheap to clone (one shared registry).
#[derive(Clone, Default)]
pub struct Progress {
    jobs: Arc<Mutex<Jobs>>,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a job and log that it started.
    pub fn start(
        &self,
        kind: JobKind,
        subject: impl Into<String>,
        unit: CountUnit,
        total: Option<u64>,
    ) -> ProgressJob {
        let now = Instant::now();
        let mut jobs = self.lock();
        jobs.prune(now, 1);
        jobs.next_id += 1;
        let id = jobs.next_id;
        let mut entry = Entry {
            view: JobView {
                id,
                kind,
                subject: subject.into(),
                unit,
                done: 0,
                total,
                bytes: 0,
                phase: "started".to_string(),
                state: JobState::Running,
                elapsed_ms: 0,
                counts: String::new(),
            },
            started: now,
            finished: None,
            last_logged: now,
            last_logged_percent: Some(0),
        };
        entry.refresh(now);
        info!(
            job = id,
            kind = kind.label(),
            total,
            "{}: started",
            entry.label()
        );
        jobs.entries.push_back(entry);
        ProgressJob {
            progress: self.clone(),
            id,
            ended: false,
        }
    }

    /// Every job kept, oldest first.
    pub fn snapshot(&self) -> Vec<JobView> {
        let now = Instant::now();
        let mut jobs = self.lock();
        jobs.prune(now, 0);
        jobs.entries
            .iter_mut()
            .map(|entry| {
                entry.refresh(now);
                entry.view.clone()
            })
            .collect()
    }

    /// One job, while it is kept.
    pub fn job(&self, id: u64) -> Option<JobView> {
        self.snapshot().into_iter().find(|view| view.id == id)
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut JobView)) {
        let now = Instant::now();
        let mut jobs = self.lock();
        if let Some(entry) = jobs.entry(id) {
            if entry.finished.is_some() {
                return;
            }
            let phase_before = entry.view.phase.clone();
            change(&mut entry.view);
            entry.refresh(now);
            let new_phase = entry.view.phase != phase_before;
            entry.log_if_due(now, new_phase);
        }
    }

    fn end(&self, id: u64, state: JobState, outcome: String) {
        let now = Instant::now();
        let mut jobs = self.lock();
        let Some(entry) = jobs.entry(id) else { return };
        if entry.finished.is_some() {
            return;
        }
        entry.finished = Some(now);
        entry.view.state = state;
        entry.view.phase = outcome;
        entry.refresh(now);
        let v = &entry.view;
        let line = format!(
            "{}: {} in {:.1} s; {}",
            entry.label(),
            counts_line(v.unit, v.done, v.total, v.bytes, true),
            v.elapsed_ms as f64 / 1_000.0,
            v.phase
        );
        let (id, done, total, bytes, elapsed_ms) = (v.id, v.done, v.total, v.bytes, v.elapsed_ms);
        if state == JobState::Failed {
            warn!(job = id, done, total, bytes, elapsed_ms, "{line}");
        } else {
            info!(job = id, done, total, bytes, elapsed_ms, "{line}");
        }
    }
}

/// A running job: report into it as the work goes, then `finish` or
/// `fail`. Dropped while running, it ends as failed.
pub struct ProgressJob {
    progress: Progress,
    id: u64,
    ended: bool,
}

impl ProgressJob {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A handle that counts into this job from another thread or closure;
    /// it does not end the job.
    pub fn counter(&self) -> JobCounter {
        JobCounter {
            progress: self.progress.clone(),
            id: self.id,
        }
    }

    pub fn set_total(&self, total: u64) {
        self.counter().set_total(total)
    }

    pub fn set_phase(&self, phase: &str) {
        self.counter().set_phase(phase)
    }

    /// `count` more done (one batch).
    pub fn advance(&self, count: u64) {
        self.counter().advance(count)
    }

    /// Done and bytes as counted by the work itself (a sync session).
    pub fn set_counts(&self, done: u64, bytes: u64) {
        self.counter().set_counts(done, bytes)
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.counter().add_bytes(bytes)
    }

    /// Ended well; `outcome` says how (`99,990 accepted, 10 refused`).
    pub fn finish(mut self, outcome: impl Into<String>) {
        self.ended = true;
        self.progress
            .end(self.id, JobState::Finished, outcome.into());
    }

    /// Ended without doing its work; `reason` says why.
    pub fn fail(mut self, reason: impl Into<String>) {
        self.ended = true;
        self.progress.end(self.id, JobState::Failed, reason.into());
    }
}

/// Counts into a job; cheap to clone, `Send`, and without a say in how
/// the job ends (its [`ProgressJob`] has that).
#[derive(Clone)]
pub struct JobCounter {
    progress: Progress,
    id: u64,
}

impl JobCounter {
    pub fn set_total(&self, total: u64) {
        self.progress.update(self.id, |v| v.total = Some(total));
    }

    pub fn set_phase(&self, phase: &str) {
        self.progress
            .update(self.id, |v| v.phase = phase.to_string());
    }

    pub fn advance(&self, count: u64) {
        self.progress
            .update(self.id, |v| v.done = v.done.saturating_add(count));
    }

    pub fn set_counts(&self, done: u64, bytes: u64) {
        self.progress.update(self.id, |v| {
            v.done = done;
            v.bytes = bytes;
        });
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.progress
            .update(self.id, |v| v.bytes = v.bytes.saturating_add(bytes));
    }
}

impl Drop for ProgressJob {
    fn drop(&mut self) {
        if !self.ended {
            self.progress.end(
                self.id,
                JobState::Failed,
                "stopped before the end".to_string(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_reads_unit_counts_of_the_total_and_bytes() {
        assert_eq!(
            counts_line(CountUnit::Documents, 1_234, Some(2_600), 4_100_000, false),
            "documents 1,234 / 2,600, 4.1 MB"
        );
        assert_eq!(
            counts_line(CountUnit::Rows, 41_000, Some(100_000), 0, true),
            "rows 41,000 / 100,000 (41%)"
        );
        assert_eq!(
            counts_line(CountUnit::Rows, 7, None, 812, false),
            "rows 7, 812 B"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(byte_size(999), "999 B");
        assert_eq!(byte_size(12_345), "12.3 KB");
        assert_eq!(byte_size(999_960), "1.0 MB");
        assert_eq!(byte_size(3_000_000_000), "3.0 GB");
        assert_eq!(percent(3, 0), 100);
        assert_eq!(percent(5, 3), 100);
        assert_eq!(percent(99_999, 100_000), 99);
    }

    #[test]
    fn a_running_job_logs_every_two_seconds_or_every_tenth() {
        assert!(!log_is_due(100, Some(0), Some(9)));
        assert!(log_is_due(100, Some(9), Some(10)));
        assert!(log_is_due(LOG_EVERY_MS, Some(41), Some(41)));
        assert!(!log_is_due(LOG_EVERY_MS - 1, None, None));
    }

    #[test]
    fn jobs_count_per_batch_finish_with_their_outcome_and_are_bounded() {
        let progress = Progress::default();
        let job = progress.start(JobKind::RosterImport, "xh/t1/v1", CountUnit::Rows, None);
        job.add_bytes(2_000_000);
        job.set_total(5_000);
        job.advance(2_000);
        job.advance(2_000);
        let running = progress.job(job.id()).unwrap();
        assert_eq!(
            (running.state, running.done, running.total, running.bytes),
            (JobState::Running, 4_000, Some(5_000), 2_000_000)
        );
        assert_eq!(running.counts, "rows 4,000 / 5,000, 2.0 MB");
        let id = job.id();
        job.advance(1_000);
        job.finish("4,990 accepted, 10 refused");
        let finished = progress.job(id).unwrap();
        assert_eq!(finished.state, JobState::Finished);
        assert_eq!(finished.done, 5_000);
        assert_eq!(finished.phase, "4,990 accepted, 10 refused");

        // A job dropped while running ends as failed, and stays listed.
        let dropped = progress.start(JobKind::ColdSync, "xh/t1", CountUnit::Documents, Some(9));
        let dropped_id = dropped.id();
        drop(dropped);
        assert_eq!(progress.job(dropped_id).unwrap().state, JobState::Failed);

        // Past the bound the oldest finished jobs go first; running ones stay.
        let running: Vec<ProgressJob> = (0..JOBS_KEPT_MAX - 1)
            .map(|i| progress.start(JobKind::Report, format!("r{i}"), CountUnit::Rows, None))
            .collect();
        let jobs = progress.snapshot();
        assert_eq!(jobs.len(), JOBS_KEPT_MAX);
        assert!(
            jobs.iter().all(|job| job.id != id),
            "the oldest finished job went first"
        );
        assert!(jobs.iter().any(|job| job.id == dropped_id));
        let one_more = progress.start(JobKind::Report, "last", CountUnit::Rows, None);
        let jobs = progress.snapshot();
        assert_eq!(jobs.len(), JOBS_KEPT_MAX);
        assert!(jobs.iter().all(|job| job.id != dropped_id));
        assert!(jobs.iter().all(|job| job.state == JobState::Running));
        assert!(jobs.iter().any(|job| job.id == one_more.id()));
        assert!(running
            .iter()
            .all(|r| jobs.iter().any(|job| job.id == r.id())));
    }
}
