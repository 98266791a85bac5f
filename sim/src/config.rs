//! What a run simulates: topology and workload (from flags), the fault mix
//! (drawn from the seed: swarm testing), and an optional injected bug.
//!
//! Swarm testing: rather than every run suffering every fault at a fixed
//! rate, each seed switches each fault kind on or off and draws its rate, so
//! a sweep over seeds covers runs dominated by crashes, runs dominated by
//! partitions, quiet runs, and so on. The mix is printed with the result.

use crate::rng::{self, Stream};
use rand::Rng;
use serde::Serialize;

/// Limits on flags, so a typo cannot ask for a billion villages.
pub const TOWNSHIPS_MAX: usize = 200;
pub const VILLAGES_PER_TOWNSHIP_MAX: usize = 200;
pub const PREFECTURE_COUNTIES_MAX: usize = 40;
pub const DAYS_MAX: u64 = 400;
pub const VOLUNTEERS_PER_VILLAGE_MAX: usize = 2_000;
pub const ACTIVITIES_PER_VILLAGE_PER_WEEK_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultLevel {
    /// Offline villages only (from `--offline-fraction`), no other faults.
    None,
    Mild,
    Harsh,
}

impl std::str::FromStr for FaultLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FaultLevel::None),
            "mild" => Ok(FaultLevel::Mild),
            "harsh" => Ok(FaultLevel::Harsh),
            _ => Err(format!(
                "unknown fault level {s:?}; expected none, mild or harsh"
            )),
        }
    }
}

/// A deliberate defect, each of which one checker must catch. Most live in
/// the simulator (the host wrapper, the crash path, the replica's
/// configuration); the ones that break a rule of the product itself
/// (`resurrect-deleted`, `miscount-aggregate`, `stale-statistics`,
/// `trust-unsigned-relays`, `lose-order-step`, `skip-allotment-check`,
/// `keep-replaced-contribution`, `approve-another-month`,
/// `miss-edit-after-approval`, `file-order-twice`,
/// `hide-withdrawn-menu-items`) are armed in the product's
/// own code through `civsync_protocol::faults` (compiled in only with the
/// `injected-faults` feature the simulator turns on), so the checker is
/// shown to catch a bug of the product, not one of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InjectedBug {
    /// A crash rolls a node's storage back past a write already acknowledged
    /// to the clerk. Caught by: durability.
    DropAcknowledgedWrite,
    /// One village's roster is hidden from its sync sessions. Caught by:
    /// convergence.
    SkipDocumentSync,
    /// A forged change is applied straight into the county's copy of a
    /// reference document, bypassing the receive path. Caught by: authority.
    ApplyUnauthorized,
    /// The product's statistics count the first live activity of every
    /// activities document twice (`faults::Fault::MiscountAggregate`).
    /// Caught by: aggregates.
    MiscountAggregate,
    /// Replicas take in documents of stations no registry lists (nothing
    /// below a village need be registered), and one village at least
    /// misbehaves by inventing stations below it. Caught by: authority.
    AdmitInventedStations,
    /// The service takes a correction of a deleted activity and the layout
    /// writes its `deleted: false` over the flag
    /// (`faults::Fault::ResurrectDeleted`): a township's stale form brings
    /// the activity back. Caught by: deletions.
    ResurrectDeleted,
    /// A county writes each month's statistics document once and never
    /// brings it up to date (`faults::Fault::StaleStatistics`): the
    /// prefecture keeps the first figures it received. Needs a prefecture
    /// (`--prefecture-counties`). Caught by: statistics.
    StaleStatistics,
    /// Replicas judge relayed unsigned changes by the hop rule alone
    /// (`faults::Fault::TrustUnsignedRelays`), and a township misbehaves:
    /// its forgeries as a village and as the county are taken. Caught by:
    /// authority (a change by an actor its station never wrote with).
    TrustUnsignedRelays,
    /// A dispatch at the township or county is answered as done but never
    /// written (`faults::Fault::LoseOrderStep`). Caught by: orders (a step
    /// acknowledged to a clerk that no later step saw is not in the
    /// order's agreed state).
    LoseOrderStep,
    /// Redemptions and transfers skip the check that the station's
    /// allotment covers them (`faults::Fault::SkipAllotmentCheck`): a
    /// supermarket overdraws a volunteer's points. Caught by: balances.
    SkipAllotmentCheck,
    /// The statistics index a node keeps adds a changed document's new
    /// contribution without taking its old one away
    /// (`faults::Fault::KeepReplacedContribution`). Caught by: index (the
    /// index kept across refreshes and restarts differs from a count from
    /// scratch over the same replica).
    KeepReplacedContribution,
    /// An approval stores the figures of the month after the one approved
    /// (`faults::Fault::ApproveAnotherMonth`). Caught by: approved-figures
    /// (the figures held as approved are not the village's at approval).
    ApproveAnotherMonth,
    /// A month's standing reads every approval as unchanged since
    /// (`faults::Fault::MissEditAfterApproval`). Caught by:
    /// approved-figures (an edit the approval did not see is not flagged).
    MissEditAfterApproval,
    /// A step an office takes on an order is filed again in the next
    /// month's orders document (`faults::Fault::FileOrderTwice`). Caught
    /// by: orders (an order held twice).
    FileOrderTwice,
    /// The menu offered at a station leaves its withdrawn items out
    /// (`faults::Fault::HideWithdrawnMenuItems`). Caught by: catalog (an
    /// acknowledged withdrawal is not shown, marked, at every holder).
    HideWithdrawnMenuItems,
}

impl InjectedBug {
    pub const ALL: [InjectedBug; 15] = [
        InjectedBug::DropAcknowledgedWrite,
        InjectedBug::SkipDocumentSync,
        InjectedBug::ApplyUnauthorized,
        InjectedBug::MiscountAggregate,
        InjectedBug::AdmitInventedStations,
        InjectedBug::ResurrectDeleted,
        InjectedBug::StaleStatistics,
        InjectedBug::TrustUnsignedRelays,
        InjectedBug::LoseOrderStep,
        InjectedBug::SkipAllotmentCheck,
        InjectedBug::KeepReplacedContribution,
        InjectedBug::ApproveAnotherMonth,
        InjectedBug::MissEditAfterApproval,
        InjectedBug::FileOrderTwice,
        InjectedBug::HideWithdrawnMenuItems,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InjectedBug::DropAcknowledgedWrite => "drop-acknowledged-write",
            InjectedBug::SkipDocumentSync => "skip-document-sync",
            InjectedBug::ApplyUnauthorized => "apply-unauthorized",
            InjectedBug::MiscountAggregate => "miscount-aggregate",
            InjectedBug::AdmitInventedStations => "admit-invented-stations",
            InjectedBug::ResurrectDeleted => "resurrect-deleted",
            InjectedBug::StaleStatistics => "stale-statistics",
            InjectedBug::TrustUnsignedRelays => "trust-unsigned-relays",
            InjectedBug::LoseOrderStep => "lose-order-step",
            InjectedBug::SkipAllotmentCheck => "skip-allotment-check",
            InjectedBug::KeepReplacedContribution => "keep-replaced-contribution",
            InjectedBug::ApproveAnotherMonth => "approve-another-month",
            InjectedBug::MissEditAfterApproval => "miss-edit-after-approval",
            InjectedBug::FileOrderTwice => "file-order-twice",
            InjectedBug::HideWithdrawnMenuItems => "hide-withdrawn-menu-items",
        }
    }

    /// The checker that must fail when this bug is injected.
    pub fn caught_by(self) -> &'static str {
        match self {
            InjectedBug::DropAcknowledgedWrite => "durability",
            InjectedBug::SkipDocumentSync => "convergence",
            InjectedBug::ApplyUnauthorized => "authority",
            InjectedBug::MiscountAggregate => "aggregates",
            InjectedBug::AdmitInventedStations => "authority",
            InjectedBug::ResurrectDeleted => "deletions",
            InjectedBug::StaleStatistics => "statistics",
            InjectedBug::TrustUnsignedRelays => "authority",
            InjectedBug::LoseOrderStep => "orders",
            InjectedBug::SkipAllotmentCheck => "balances",
            InjectedBug::KeepReplacedContribution => "index",
            InjectedBug::ApproveAnotherMonth | InjectedBug::MissEditAfterApproval => {
                "approved-figures"
            }
            InjectedBug::FileOrderTwice => "orders",
            InjectedBug::HideWithdrawnMenuItems => "catalog",
        }
    }

    /// The defect armed in the product's own code, if this bug is one.
    pub fn product_fault(self) -> Option<civsync_protocol::faults::Fault> {
        use civsync_protocol::faults::Fault;
        match self {
            InjectedBug::MiscountAggregate => Some(Fault::MiscountAggregate),
            InjectedBug::ResurrectDeleted => Some(Fault::ResurrectDeleted),
            InjectedBug::StaleStatistics => Some(Fault::StaleStatistics),
            InjectedBug::TrustUnsignedRelays => Some(Fault::TrustUnsignedRelays),
            InjectedBug::LoseOrderStep => Some(Fault::LoseOrderStep),
            InjectedBug::SkipAllotmentCheck => Some(Fault::SkipAllotmentCheck),
            InjectedBug::KeepReplacedContribution => Some(Fault::KeepReplacedContribution),
            InjectedBug::ApproveAnotherMonth => Some(Fault::ApproveAnotherMonth),
            InjectedBug::MissEditAfterApproval => Some(Fault::MissEditAfterApproval),
            InjectedBug::FileOrderTwice => Some(Fault::FileOrderTwice),
            InjectedBug::HideWithdrawnMenuItems => Some(Fault::HideWithdrawnMenuItems),
            InjectedBug::DropAcknowledgedWrite
            | InjectedBug::SkipDocumentSync
            | InjectedBug::ApplyUnauthorized
            | InjectedBug::AdmitInventedStations => None,
        }
    }

    /// Does this bug show only where statistics go above the county (a run
    /// with `--prefecture-counties`)?
    pub fn needs_prefecture(self) -> bool {
        self == InjectedBug::StaleStatistics
    }

    pub fn parse(name: &str) -> Option<InjectedBug> {
        InjectedBug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

/// Everything the flags decide.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    pub seed: u64,
    /// 0: the county is the top of the tree. N > 0: N counties under a
    /// prefecture node.
    pub prefecture_counties: usize,
    pub townships: usize,
    pub villages_per_township: usize,
    pub days: u64,
    pub volunteers_per_village: usize,
    pub activities_per_village_per_week: usize,
    pub offline_fraction: f64,
    pub max_offline_days: u64,
    pub misbehaving: usize,
    /// Townships that forge changes as their villages and as the county.
    pub misbehaving_townships: usize,
    pub faults: FaultLevel,
    /// Fraction of villages that also have a fallback link to the county.
    pub fallback_fraction: f64,
    /// Villages of a township also link to their neighbours.
    pub siblings: bool,
    /// Convergence must happen within this long after the final heal.
    pub liveness_bound_s: u64,
    pub inject_bug: Option<InjectedBug>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            prefecture_counties: 0,
            townships: 3,
            villages_per_township: 5,
            days: 14,
            volunteers_per_village: 20,
            activities_per_village_per_week: 3,
            offline_fraction: 0.3,
            max_offline_days: 3,
            misbehaving: 0,
            misbehaving_townships: 0,
            faults: FaultLevel::Harsh,
            fallback_fraction: 0.1,
            siblings: false,
            liveness_bound_s: 3_600,
            inject_bug: None,
        }
    }
}

impl SimConfig {
    /// Refuse flags outside the limits, naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
        check(
            self.townships >= 1 && self.townships <= TOWNSHIPS_MAX,
            format!("--townships must be 1..={TOWNSHIPS_MAX}"),
        )?;
        check(
            self.villages_per_township >= 1
                && self.villages_per_township <= VILLAGES_PER_TOWNSHIP_MAX,
            format!("--villages-per-township must be 1..={VILLAGES_PER_TOWNSHIP_MAX}"),
        )?;
        check(
            self.prefecture_counties <= PREFECTURE_COUNTIES_MAX,
            format!("--prefecture-counties must be ≤ {PREFECTURE_COUNTIES_MAX}"),
        )?;
        check(
            self.days >= 1 && self.days <= DAYS_MAX,
            format!("--days must be 1..={DAYS_MAX}"),
        )?;
        check(
            self.volunteers_per_village <= VOLUNTEERS_PER_VILLAGE_MAX,
            format!("--volunteers-per-village must be ≤ {VOLUNTEERS_PER_VILLAGE_MAX}"),
        )?;
        check(
            self.activities_per_village_per_week <= ACTIVITIES_PER_VILLAGE_PER_WEEK_MAX,
            format!(
                "--activities-per-village-per-week must be ≤ {ACTIVITIES_PER_VILLAGE_PER_WEEK_MAX}"
            ),
        )?;
        check(
            (0.0..=1.0).contains(&self.offline_fraction),
            "--offline-fraction must be within 0..=1".into(),
        )?;
        check(
            self.max_offline_days <= self.days.max(1) * 2,
            "--max-offline-days is longer than twice the run".into(),
        )?;
        check(
            (0.0..=1.0).contains(&self.fallback_fraction),
            "--fallback-fraction must be within 0..=1".into(),
        )?;
        check(
            self.misbehaving < self.villages_total(),
            "--misbehaving must be fewer than the villages".into(),
        )?;
        check(
            self.misbehaving_townships < self.townships.max(1) * self.prefecture_counties.max(1),
            "--misbehaving-townships must be fewer than the townships".into(),
        )?;
        check(
            !self.inject_bug.is_some_and(InjectedBug::needs_prefecture)
                || self.prefecture_counties > 0,
            "--inject-bug stale-statistics needs --prefecture-counties (statistics go to a prefecture)"
                .into(),
        )?;
        check(
            self.liveness_bound_s >= 60,
            "--liveness-bound-s must be at least 60".into(),
        )?;
        Ok(())
    }

    /// The command line that reproduces this run.
    pub fn command_line(&self) -> String {
        let mut line = format!(
            "civsync-sim --seed {} --townships {} --villages-per-township {} --days {} --volunteers-per-village {} \
             --activities-per-village-per-week {} --offline-fraction {} --max-offline-days {} --misbehaving {} \
             --misbehaving-townships {} --faults {} --fallback-fraction {} --liveness-bound-s {}",
            self.seed,
            self.townships,
            self.villages_per_township,
            self.days,
            self.volunteers_per_village,
            self.activities_per_village_per_week,
            self.offline_fraction,
            self.max_offline_days,
            self.misbehaving,
            self.misbehaving_townships,
            match self.faults {
                FaultLevel::None => "none",
                FaultLevel::Mild => "mild",
                FaultLevel::Harsh => "harsh",
            },
            self.fallback_fraction,
            self.liveness_bound_s,
        );
        if self.prefecture_counties > 0 {
            line.push_str(&format!(
                " --prefecture-counties {}",
                self.prefecture_counties
            ));
        }
        if self.siblings {
            line.push_str(" --siblings");
        }
        if let Some(bug) = self.inject_bug {
            line.push_str(&format!(" --inject-bug {}", bug.name()));
        }
        line
    }

    pub fn counties(&self) -> usize {
        self.prefecture_counties.max(1)
    }

    pub fn villages_total(&self) -> usize {
        self.counties() * self.townships * self.villages_per_township
    }
}

/// The faults this seed suffers, with rates. Drawn once per run.
#[derive(Debug, Clone, Serialize)]
pub struct FaultMix {
    /// Connections cut mid-sync, per link per day.
    pub connection_drops_per_link_day: f64,
    /// Crashes (power cuts) per node per day.
    pub crashes_per_node_day: f64,
    /// Network partitions (a tier, a township, or one direction) per day.
    pub partitions_per_day: f64,
    /// Share of partitions that stall one direction only.
    pub one_way_partition_fraction: f64,
    /// Largest clock offset, milliseconds either way.
    pub clock_offset_max_ms: i64,
    /// Largest clock drift, parts per million either way.
    pub clock_drift_max_ppm: i64,
    /// Share of nodes on a slow, high-latency link.
    pub slow_peer_fraction: f64,
    /// Largest chunk the stream is cut into on delivery.
    pub chunk_bytes_max: usize,
    /// Base one-way latency and jitter of an ordinary link.
    pub latency_ms: u64,
    pub jitter_ms: u64,
}

impl FaultMix {
    pub fn draw(config: &SimConfig) -> FaultMix {
        let mut rng = rng::stream(config.seed, Stream::FaultMix);
        let scale = match config.faults {
            FaultLevel::None => 0.0,
            FaultLevel::Mild => 0.3,
            FaultLevel::Harsh => 1.0,
        };
        // Each kind is on with probability 2/3 (always off with no faults).
        let mut rate = |max: f64| -> f64 {
            let on = rng.gen_bool(2.0 / 3.0);
            let amount: f64 = rng.gen_range(0.2..=1.0);
            if on {
                max * amount * scale
            } else {
                0.0
            }
        };
        let connection_drops_per_link_day = rate(6.0);
        let crashes_per_node_day = rate(0.3);
        let partitions_per_day = rate(4.0);
        let clock_skew = rate(1.0);
        let slow_peer_fraction = rate(0.3);
        let one_way_partition_fraction = rng.gen_range(0.0..=0.5);
        let chunk_bytes_max = [64, 512, 1_400, 16_384][rng.gen_range(0..4)];
        let latency_ms = rng.gen_range(5..=80);
        let jitter_ms = rng.gen_range(0..=latency_ms);
        FaultMix {
            connection_drops_per_link_day,
            crashes_per_node_day,
            partitions_per_day,
            one_way_partition_fraction,
            clock_offset_max_ms: (clock_skew * 6.0 * 3_600_000.0) as i64,
            clock_drift_max_ppm: (clock_skew * 2_000.0) as i64,
            slow_peer_fraction,
            chunk_bytes_max,
            latency_ms,
            jitter_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bug_names_round_trip() {
        for bug in InjectedBug::ALL {
            assert_eq!(InjectedBug::parse(bug.name()), Some(bug));
        }
        assert_eq!(InjectedBug::parse("no-such-bug"), None);
    }

    #[test]
    fn fault_mix_depends_on_the_seed_only() {
        let a = SimConfig {
            seed: 3,
            ..SimConfig::default()
        };
        let b = SimConfig {
            seed: 4,
            ..SimConfig::default()
        };
        assert_eq!(
            format!("{:?}", FaultMix::draw(&a)),
            format!("{:?}", FaultMix::draw(&a))
        );
        assert_ne!(
            format!("{:?}", FaultMix::draw(&a)),
            format!("{:?}", FaultMix::draw(&b))
        );
        let quiet = FaultMix::draw(&SimConfig {
            faults: FaultLevel::None,
            ..a
        });
        assert_eq!(quiet.crashes_per_node_day, 0.0);
        assert_eq!(quiet.partitions_per_day, 0.0);
    }

    #[test]
    fn flags_outside_limits_are_refused() {
        assert!(SimConfig::default().validate().is_ok());
        assert!(SimConfig {
            townships: 0,
            ..SimConfig::default()
        }
        .validate()
        .is_err());
        assert!(SimConfig {
            offline_fraction: 1.5,
            ..SimConfig::default()
        }
        .validate()
        .is_err());
        assert!(SimConfig {
            misbehaving: 1_000,
            ..SimConfig::default()
        }
        .validate()
        .is_err());
    }
}
