//! civsync-sim: a deterministic discrete-event simulation of a whole county
//! (or prefecture) of civsync nodes running the real sync session and
//! replica code over a simulated network, with faults, a synthetic workload
//! and checkers of the properties the product promises.
//!
//! [`run`] is the whole simulation; the binary only parses flags and prints.

pub mod approval_checks;
pub mod approvals;
pub mod canonical;
pub mod catalog_work;
pub mod checks;
pub mod config;
pub mod faults;
pub mod host;
pub mod index_checks;
pub mod ledger_imports;
pub mod misbehaviour;
pub mod names;
pub mod network;
pub mod parallelism;
pub mod registry;
pub mod rng;
pub mod roster_deletions;
pub mod scheduler;
pub mod signing;
pub mod statistics;
pub mod tamper;
pub mod team_deletions;
pub mod time;
pub mod topology;
pub mod trace;
pub mod truth;
pub mod volunteer_deletions;
pub mod workflow_checks;
pub mod workflows;
pub mod workload;
pub mod world;

use checks::CheckResult;
use config::{FaultMix, SimConfig};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything a run reports. With `--json` this is printed as one object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub trace_hash: String,
    pub nodes: usize,
    pub simulated_days: u64,
    pub writes_acknowledged: u64,
    pub messages: u64,
    pub bytes_sent: u64,
    /// Seconds from the final heal to convergence; `None` if it never came.
    pub converged_after_s: Option<f64>,
    pub wall_s: f64,
    pub simulated_to_wall_ratio: f64,
    pub checks: BTreeMap<String, CheckResult>,
    pub fault_mix: FaultMix,
    pub counters: world::Counters,
    /// Orders placed and stepped, redemptions and transfers.
    pub workflows: workflows::WorkflowCounters,
    /// Where the wall time went, by kind of event (and the final checks).
    pub wall_profile_s: BTreeMap<String, f64>,
    /// What running the events on two cores could gain at best.
    pub parallelism: parallelism::ParallelismReport,
    pub injected_bug: Option<String>,
    pub passed: bool,
    pub reproduce: String,
}

impl Report {
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(_, c)| !c.passed)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Run one simulation. `wall_clock` measures elapsed seconds for the report
/// only; nothing in the simulation reads it.
pub fn run(config: &SimConfig, wall_clock: impl Fn() -> f64) -> Report {
    let started = wall_clock();
    // A product defect is armed for this run only, on this thread (the
    // simulation is single-threaded), and disarmed when the guard drops.
    let _armed = civsync_protocol::faults::arm(config.inject_bug.and_then(|b| b.product_fault()));
    let mut world = world::World::new(config.clone());
    world.run();
    let loaded_before_checks = world.documents_loaded_by_running_replicas();
    world.counters.documents_loaded += loaded_before_checks;
    let checks_started = wall_clock();
    let checks: BTreeMap<String, CheckResult> = checks::run_all(&mut world)
        .into_iter()
        .map(|(name, result)| (name.to_string(), result))
        .collect();
    world.counters.documents_loaded_by_checks =
        world.documents_loaded_by_running_replicas() - loaded_before_checks;
    let mut wall_profile_s: BTreeMap<String, f64> = world
        .profile
        .iter()
        .map(|(kind, seconds)| {
            let kind = if checks.contains_key(*kind) {
                format!("check_{kind}")
            } else {
                kind.to_string()
            };
            (kind, *seconds)
        })
        .collect();
    wall_profile_s.insert("checks".to_string(), wall_clock() - checks_started);
    let wall_s = wall_clock() - started;
    let simulated_s = world.now() as f64 / 1000.0;
    let passed = checks.values().all(|c| c.passed);
    Report {
        seed: config.seed,
        trace_hash: world.trace.hex(),
        nodes: world.node_count(),
        simulated_days: config.days,
        writes_acknowledged: world.counters.writes_acknowledged,
        messages: world.counters.messages,
        bytes_sent: world.counters.bytes_sent,
        converged_after_s: world
            .converged_at
            .map(|at| (at - world.heal_at) as f64 / 1000.0),
        wall_s,
        simulated_to_wall_ratio: if wall_s > 0.0 {
            simulated_s / wall_s
        } else {
            0.0
        },
        checks,
        fault_mix: world.mix.clone(),
        counters: world.counters.clone(),
        workflows: world.workflows.counters.clone(),
        wall_profile_s,
        parallelism: world.parallelism.finish(),
        injected_bug: config.inject_bug.map(|b| b.name().to_string()),
        passed,
        reproduce: config.command_line(),
    }
}
