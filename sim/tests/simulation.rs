//! End-to-end properties of the simulator itself: determinism, a faulty
//! county passing every checker, and every injected bug caught by its
//! checker (and only when injected).

use civsync_sim::config::{FaultLevel, InjectedBug, SimConfig};
use civsync_sim::{run, Report};

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        townships: 2,
        villages_per_township: 3,
        days: 4,
        volunteers_per_village: 8,
        activities_per_village_per_week: 4,
        offline_fraction: 0.3,
        max_offline_days: 2,
        faults: FaultLevel::Harsh,
        ..SimConfig::default()
    }
}

fn simulate(config: &SimConfig) -> Report {
    config.validate().expect("test configurations are valid");
    run(config, || 0.0)
}

#[test]
fn same_seed_same_trace_hash_and_a_different_seed_differs() {
    let first = simulate(&small(11));
    let again = simulate(&small(11));
    let other = simulate(&small(12));
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first.messages, again.messages);
    assert_eq!(first.writes_acknowledged, again.writes_acknowledged);
    assert_ne!(first.trace_hash, other.trace_hash);
    assert!(first.messages > 0 && first.writes_acknowledged > 0);
}

#[test]
fn a_small_county_with_faults_and_a_liar_passes_every_checker() {
    for seed in [3, 4] {
        let config = SimConfig {
            misbehaving: 1,
            days: 6,
            ..small(seed)
        };
        let report = simulate(&config);
        assert!(
            report.passed,
            "seed {seed}: {:?}\nreproduce: {}",
            report.checks, report.reproduce
        );
        for name in [
            "convergence",
            "liveness",
            "durability",
            "aggregates",
            "scope",
            "authority",
            "deletions",
            "catalog",
            "orders",
            "balances",
            "approved-figures",
            "index",
            "run",
        ] {
            assert!(
                report.checks[name].passed,
                "{name} must be checked and pass"
            );
        }
        assert!(report.converged_after_s.is_some());
        // The orders and balances checkers had something to check.
        assert!(report.workflows.orders_placed > 0 && report.workflows.redemptions > 0);
    }
}

#[test]
fn every_injected_bug_is_caught_by_its_checker_and_only_with_the_bug() {
    let county = small(5);
    let clean_county = simulate(&county);
    assert!(clean_county.passed, "{:?}", clean_county.checks);
    // Statistics go only to an office above the county.
    let prefecture = SimConfig {
        prefecture_counties: 2,
        townships: 2,
        villages_per_township: 2,
        ..small(5)
    };
    let clean_prefecture = simulate(&prefecture);
    assert!(clean_prefecture.passed, "{:?}", clean_prefecture.checks);
    // Townships approve a village's month about once a fortnight, from the
    // third day: two weeks make a few approvals, and edits after them (and
    // a few withdrawn menu items).
    let approving = SimConfig {
        days: 14,
        ..small(5)
    };
    let clean_approving = simulate(&approving);
    assert!(clean_approving.passed, "{:?}", clean_approving.checks);
    assert!(clean_approving.workflows.approvals.approvals > 0);
    // Stations withdraw menu items within their first week.
    assert!(clean_approving.workflows.catalog.menu_items_withdrawn > 0);
    for bug in InjectedBug::ALL {
        let (config, clean) = if bug.needs_prefecture() {
            (&prefecture, &clean_prefecture)
        } else if matches!(bug.caught_by(), "approved-figures" | "catalog") {
            (&approving, &clean_approving)
        } else {
            (&county, &clean_county)
        };
        let report = simulate(&SimConfig {
            inject_bug: Some(bug),
            ..config.clone()
        });
        let checker = bug.caught_by();
        assert!(
            !report.checks[checker].passed,
            "{} must fail {checker}: {:?}",
            bug.name(),
            report.checks[checker]
        );
        assert!(
            clean.checks[checker].passed,
            "{checker} passes without {}",
            bug.name()
        );
        assert!(!report.passed);
        assert!(report
            .reproduce
            .contains(&format!("--inject-bug {}", bug.name())));
    }
}

#[test]
fn a_prefecture_of_counties_converges() {
    let config = SimConfig {
        prefecture_counties: 2,
        townships: 2,
        villages_per_township: 2,
        ..small(8)
    };
    let report = simulate(&config);
    assert_eq!(report.nodes, 1 + 2 + 4 + 8);
    assert!(report.passed, "{:?}", report.checks);
}
