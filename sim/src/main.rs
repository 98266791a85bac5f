//! `civsync-sim`: run one simulated county and check it.
//!
//! Exit status 0 only if every checker passed. A failing run prints the
//! command line that reproduces it.

use civsync_sim::config::{FaultLevel, InjectedBug, SimConfig};
use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

/// A county is hundreds of thousands of small allocations made and freed
/// per simulated hour (automerge's columns, sync messages, chunks): the
/// system allocator spent a fifth of a run in malloc and free and held
/// freed memory it could not give back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "civsync-sim",
    about = "Deterministic simulation of a county of civsync nodes running the real protocol code"
)]
struct Args {
    /// All randomness derives from this seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Put this many counties under a prefecture node (0: a single county).
    #[arg(long, default_value_t = 0)]
    prefecture_counties: usize,
    #[arg(long, default_value_t = 3)]
    townships: usize,
    #[arg(long, default_value_t = 5)]
    villages_per_township: usize,
    #[arg(long, default_value_t = 14)]
    days: u64,
    #[arg(long, default_value_t = 20)]
    volunteers_per_village: usize,
    #[arg(long, default_value_t = 3)]
    activities_per_village_per_week: usize,
    /// Share of villages that go offline once during the run.
    #[arg(long, default_value_t = 0.3)]
    offline_fraction: f64,
    #[arg(long, default_value_t = 3)]
    max_offline_days: u64,
    /// Villages that forge changes and documents.
    #[arg(long, default_value_t = 0)]
    misbehaving: usize,
    /// Townships that forge changes as their villages and as the county.
    #[arg(long, default_value_t = 0)]
    misbehaving_townships: usize,
    /// Ceiling of the seed's fault mix: none, mild or harsh.
    #[arg(long, default_value = "harsh")]
    faults: FaultLevel,
    /// Share of villages with a fallback link to the county.
    #[arg(long, default_value_t = 0.1)]
    fallback_fraction: f64,
    /// Villages of a township also link to their neighbours.
    #[arg(long)]
    siblings: bool,
    /// Convergence must come within this many simulated seconds after the final heal.
    #[arg(long, default_value_t = 3600)]
    liveness_bound_s: u64,
    /// Break one thing on purpose (`list` prints the names).
    #[arg(long)]
    inject_bug: Option<String>,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let inject_bug = match args.inject_bug.as_deref() {
        None => None,
        Some("list") => {
            for bug in InjectedBug::ALL {
                println!("{}", bug.name());
            }
            return ExitCode::SUCCESS;
        }
        Some(name) => match InjectedBug::parse(name) {
            Some(bug) => Some(bug),
            None => {
                eprintln!("unknown --inject-bug {name:?}; `--inject-bug list` prints the names");
                return ExitCode::from(2);
            }
        },
    };
    let config = SimConfig {
        seed: args.seed,
        prefecture_counties: args.prefecture_counties,
        townships: args.townships,
        villages_per_township: args.villages_per_township,
        days: args.days,
        volunteers_per_village: args.volunteers_per_village,
        activities_per_village_per_week: args.activities_per_village_per_week,
        offline_fraction: args.offline_fraction,
        max_offline_days: args.max_offline_days,
        misbehaving: args.misbehaving,
        misbehaving_townships: args.misbehaving_townships,
        faults: args.faults,
        fallback_fraction: args.fallback_fraction,
        siblings: args.siblings,
        liveness_bound_s: args.liveness_bound_s,
        inject_bug,
    };
    if let Err(problem) = config.validate() {
        eprintln!("{problem}");
        return ExitCode::from(2);
    }
    let start = Instant::now();
    let report = civsync_sim::run(&config, || start.elapsed().as_secs_f64());
    let peak_rss_kib = peak_rss_kib();
    if args.json {
        let mut value = serde_json::to_value(&report).expect("the report serialises");
        value["peak_rss_kib"] = serde_json::json!(peak_rss_kib);
        println!("{value}");
    } else {
        print_summary(&report, peak_rss_kib);
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        eprintln!("FAILED: {}", report.failed_checks().join(", "));
        eprintln!("reproduce with: {}", report.reproduce);
        ExitCode::FAILURE
    }
}

fn print_summary(report: &civsync_sim::Report, peak_rss_kib: Option<u64>) {
    println!(
        "civsync-sim seed {}: {} nodes, {} simulated days",
        report.seed, report.nodes, report.simulated_days
    );
    println!(
        "fault mix: {}",
        serde_json::to_string(&report.fault_mix).unwrap_or_default()
    );
    if let Some(bug) = &report.injected_bug {
        println!("injected bug: {bug}");
    }
    let c = &report.counters;
    println!(
        "writes acknowledged {} (refused {}, node down {}), messages {}, bytes sent {}, events {}",
        report.writes_acknowledged,
        c.writes_refused,
        c.writes_skipped_node_down,
        report.messages,
        report.bytes_sent,
        c.events
    );
    println!(
        "connections opened {}, cut {}, stale chunks dropped {}, crashes {}, offline periods {}, partitions {}, refusals {}",
        c.connections_opened, c.connections_cut, c.stale_chunks_dropped, c.crashes, c.offline_periods, c.partitions, c.refused_by_receiver
    );
    println!(
        "documents loaded from storage {} (by the checkers {})",
        c.documents_loaded, c.documents_loaded_by_checks
    );
    let w = &report.workflows;
    println!(
        "orders placed {}, steps {} (refused {:?}); redemptions {} ({} points, {} refused as overdrafts), transfers {}",
        w.orders_placed,
        w.order_steps_acknowledged,
        w.order_steps_refused,
        w.redemptions,
        w.points_redeemed,
        w.redemptions_refused_overdraft,
        w.transfers
    );
    println!(
        "ledger imports {} ({} rows: {} accepted in {} activities; refused by reason {:?})",
        w.ledgers.imports,
        w.ledgers.rows,
        w.ledgers.rows_accepted,
        w.ledgers.activities_accepted,
        w.ledgers.rows_refused
    );
    match report.converged_after_s {
        Some(s) => println!("converged {s:.0} s after the final heal"),
        None => println!("did not converge"),
    }
    let profile: Vec<String> = report
        .wall_profile_s
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    println!("wall seconds by event kind: {}", profile.join(", "));
    let p = &report.parallelism;
    println!(
        "parallelism: the events took {:.1} s one after another; split by node in windows of the quickest link ({} ms), 2 cores need at least {:.1} s ({:.2}×), unbounded cores {:.1} s",
        p.serial_s,
        p.window_ms,
        p.cores_2_s,
        if p.serial_s > 0.0 { p.cores_2_s / p.serial_s } else { 1.0 },
        p.unbounded_s
    );
    for (name, check) in &report.checks {
        println!(
            "  {:<12} {}  {}",
            name,
            if check.passed { "ok  " } else { "FAIL" },
            check.detail
        );
    }
    let rss = peak_rss_kib
        .map(|k| format!(", peak RSS {:.0} MiB", k as f64 / 1024.0))
        .unwrap_or_default();
    println!(
        "wall {:.2} s, simulated/wall {:.0}×{rss}, trace hash {}",
        report.wall_s, report.simulated_to_wall_ratio, report.trace_hash
    );
}

/// Peak resident set size of this process (VmHWM), where the OS tells it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
