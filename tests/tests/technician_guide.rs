//! The county technician's guide (deploy/README.md), followed step by step
//! on real `civsync` processes, for the steps no other test walks through:
//!
//! - Rotating a certificate that is about to end: `civsync pki renew` into
//!   the office's certificate folder, a restart, and the node syncs on with
//!   the new certificate (the old files kept as `*.previous`).
//! - Upgrading the county without stopping the villages: the county node is
//!   stopped (as for a package upgrade) while its township and village go on
//!   recording; started again, it catches up on everything they recorded.
//!
//! Installing from the package is checked by `deploy/check-package.sh`
//! (CI); backup, restore and a lost store by `backup_restore.rs`.

use civsync_tests::{certified, civsync, pki_init, wait_for_records, TestNode};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const MONTH: &str = "2025-06";
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn certificate_days(node: &TestNode) -> i64 {
    let status = node.get("status").unwrap();
    status["certificate_expires_in_days"]
        .as_i64()
        .unwrap_or_else(|| panic!("no certificate days in {status}"))
}

#[test]
fn a_certificate_renewed_in_place_is_used_after_a_restart_and_the_office_syncs_on() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut township = certified(root.path(), &ca, "xh/t1", "township", None);
    let mut village = TestNode::init(
        &root.path().join("v1"),
        "xh/t1/v1",
        "village",
        Some(township.quic),
    )
    .unwrap();
    // The village's certificate ends in 20 days: status warns of it.
    let village_pki = path_text(&village.dir.join("pki"));
    let ca_text = path_text(&ca);
    civsync(&[
        "pki",
        "issue",
        "--ca",
        &ca_text,
        "--station",
        "xh/t1/v1",
        "--tier",
        "village",
        "--out",
        &village_pki,
        "--days",
        "20",
    ])
    .unwrap();
    township.start().unwrap();
    village.start().unwrap();
    let days_before = certificate_days(&village);
    assert!(
        (19..=20).contains(&days_before),
        "a 20-day certificate has {days_before} days left"
    );
    let volunteer = village.register_volunteer(1).unwrap();
    village
        .record_activity(
            "before-renewal",
            "2025-06-02",
            std::slice::from_ref(&volunteer),
        )
        .unwrap();

    // The guide: renew into the office's folder, then restart the node.
    let said = civsync(&[
        "pki",
        "renew",
        "--ca",
        &ca_text,
        "--station",
        "xh/t1/v1",
        "--out",
        &village_pki,
    ])
    .unwrap();
    assert!(
        village.dir.join("pki/node.crt.previous").exists(),
        "the replaced certificate is kept: {said}"
    );
    village.stop().unwrap();
    village.start().unwrap();
    let days_after = certificate_days(&village);
    assert!(
        days_after >= 824,
        "after renewal and restart the node uses the new certificate: {days_after} days left"
    );

    village
        .record_activity(
            "after-renewal",
            "2025-06-03",
            std::slice::from_ref(&volunteer),
        )
        .unwrap();
    let expected: BTreeSet<(String, String)> = ["before-renewal", "after-renewal"]
        .iter()
        .map(|id| ("xh/t1/v1".to_string(), id.to_string()))
        .collect();
    let took = wait_for_records(
        &township,
        MONTH,
        &expected,
        SYNC_TIMEOUT,
        "the township receives records made under the renewed certificate",
        &[&township, &village],
    );
    eprintln!("{took:?}");
}

#[test]
fn the_county_stopped_for_an_upgrade_catches_up_on_what_its_townships_and_villages_recorded_meanwhile(
) {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(root.path(), &ca, "xh", "county", None);
    let mut township = certified(root.path(), &ca, "xh/t1", "township", Some(county.quic));
    let mut village = certified(root.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    county.start().unwrap();
    township.start().unwrap();
    village.start().unwrap();
    let volunteer = village.register_volunteer(1).unwrap();
    let mut expected = BTreeSet::new();
    for n in 0..5 {
        let id = format!("before-{n}");
        village
            .record_activity(&id, "2025-06-04", std::slice::from_ref(&volunteer))
            .unwrap();
        expected.insert(("xh/t1/v1".to_string(), id));
    }
    let took = wait_for_records(
        &county,
        MONTH,
        &expected,
        SYNC_TIMEOUT,
        "before the upgrade",
        &[&county, &township, &village],
    );
    eprintln!("{took:?}");

    // The county's service is stopped for its upgrade; the village records
    // on, and every write is acknowledged as usual.
    county.stop().unwrap();
    for n in 0..10 {
        let id = format!("during-{n}");
        village
            .record_activity(&id, "2025-06-05", std::slice::from_ref(&volunteer))
            .unwrap();
        expected.insert(("xh/t1/v1".to_string(), id));
    }
    let took = wait_for_records(
        &township,
        MONTH,
        &expected,
        SYNC_TIMEOUT,
        "the township keeps receiving while the county is down",
        &[&township, &village],
    );
    eprintln!("{took:?}");

    // The county comes back (on its new binary) and catches up by itself.
    county.start().unwrap();
    let took = wait_for_records(
        &county,
        MONTH,
        &expected,
        SYNC_TIMEOUT,
        "the county catches up after its upgrade",
        &[&county, &township, &village],
    );
    eprintln!("{took:?}");
}
