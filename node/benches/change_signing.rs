//! What signed changes cost a node: signing one change hash with the node
//! key and verifying one signature under a writer's certificate (ECDSA
//! P-256, ring), the certificate check a message's credential costs, and
//! from these what a cold county (every change of every document verified
//! once) and a village's week (its changes signed) pay.
//!
//! cargo bench -p civsync-node --bench change_signing

use automerge::ChangeHash;
use civsync_node::net::change_signing::{NodeChangeSigner, NodeChangeVerifier};
use civsync_node::net::pki::{self, NodeIdentity};
use civsync_node::net::revocation::RevocationSet;
use civsync_protocol::sync::signing::{ChangeSigner, ChangeVerifier};
use civsync_protocol::{StationId, Tier};
use std::time::Instant;

/// Operations per timed run, and runs (median reported).
const OPERATIONS: usize = 2_000;
const RUNS: usize = 7;
/// The cold county of the in-process benchmark: 2,625 documents, ~22,600
/// changes (899 per township of 105 documents × 25).
const COLD_COUNTY_CHANGES: f64 = 22_475.0;
/// A village's week: 30 activities, about one change each plus corrections.
const WEEK_CHANGES: f64 = 60.0;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn per_operation_us(mut run: impl FnMut(usize)) -> f64 {
    let runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for n in 0..OPERATIONS {
                run(n);
            }
            started.elapsed().as_secs_f64() * 1e6 / OPERATIONS as f64
        })
        .collect();
    median(runs)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let county = StationId::parse("xh").unwrap();
    let ca = dir.path().join("ca");
    pki::init_county_ca(&ca, &county, 3650).unwrap();
    let node_dir = dir.path().join("v1");
    pki::issue_node_certificate(
        &ca,
        &StationId::parse("xh/t1/v1").unwrap(),
        Tier::Village,
        &node_dir,
        825,
    )
    .unwrap();
    let identity = NodeIdentity::load(&node_dir).unwrap();
    let signer = NodeChangeSigner::new(&identity).unwrap();
    let verifier =
        NodeChangeVerifier::new(identity.ca_cert.clone(), county, RevocationSet::default());
    let now_ms = civsync_node::clock::now_ms() as i64;
    verifier
        .check_credential(signer.credential(), now_ms)
        .unwrap();

    let hash = |n: usize| {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(n as u64).to_le_bytes());
        ChangeHash(bytes)
    };
    let signatures: Vec<Vec<u8>> = (0..OPERATIONS).map(|n| signer.sign(&hash(n))).collect();
    let sign_us = per_operation_us(|n| {
        std::hint::black_box(signer.sign(&hash(n)));
    });
    let verify_us = per_operation_us(|n| {
        assert!(verifier.signature_matches(signer.credential(), &hash(n), &signatures[n]));
    });
    let credential_us = per_operation_us(|_| {
        std::hint::black_box(
            verifier
                .check_credential(signer.credential(), now_ms)
                .unwrap(),
        );
    });
    println!("change signing (ECDSA P-256, median of {RUNS} runs of {OPERATIONS})");
    println!("  sign one change        {sign_us:8.1} µs");
    println!("  verify one signature   {verify_us:8.1} µs");
    println!("  check one certificate  {credential_us:8.1} µs (once per writer per message)");
    println!(
        "  cold county: {COLD_COUNTY_CHANGES} changes verified = {:.2} s on one core",
        COLD_COUNTY_CHANGES * verify_us / 1e6
    );
    println!(
        "  a village's week: {WEEK_CHANGES} changes signed = {:.1} ms; verified at the township = {:.1} ms",
        WEEK_CHANGES * sign_us / 1e3,
        WEEK_CHANGES * verify_us / 1e3
    );
}
