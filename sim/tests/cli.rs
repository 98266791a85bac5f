//! The binary's contract: one JSON object with `--json`, exit status,
//! the bug list.

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_civsync-sim"))
}

#[test]
fn json_output_is_one_object_with_the_promised_fields() {
    let output = sim()
        .args([
            "--seed",
            "9",
            "--townships",
            "2",
            "--villages-per-township",
            "2",
            "--days",
            "2",
            "--json",
        ])
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(text.trim().lines().count(), 1, "exactly one line: {text}");
    let value: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    for key in [
        "seed",
        "trace_hash",
        "nodes",
        "simulated_days",
        "writes_acknowledged",
        "messages",
        "bytes_sent",
        "converged_after_s",
        "wall_s",
        "checks",
        "fault_mix",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert_eq!(value["seed"], 9);
    for (name, check) in value["checks"].as_object().expect("checks is an object") {
        assert_eq!(check["passed"], true, "{name}: {}", check["detail"]);
        assert!(check["detail"].is_string());
    }
}

#[test]
fn a_failing_run_exits_non_zero_and_prints_how_to_reproduce() {
    let output = sim()
        .args([
            "--seed",
            "9",
            "--townships",
            "2",
            "--villages-per-township",
            "2",
            "--days",
            "2",
        ])
        .args(["--inject-bug", "miscount-aggregate"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reproduce with: civsync-sim --seed 9"),
        "{stderr}"
    );
}

#[test]
fn bug_names_are_listed_one_per_line() {
    let output = sim()
        .args(["--inject-bug", "list"])
        .output()
        .expect("the binary runs");
    assert!(output.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        [
            "drop-acknowledged-write",
            "skip-document-sync",
            "apply-unauthorized",
            "miscount-aggregate",
            "admit-invented-stations",
            "resurrect-deleted",
            "stale-statistics",
            "trust-unsigned-relays",
            "lose-order-step",
            "skip-allotment-check",
            "keep-replaced-contribution",
            "approve-another-month",
            "miss-edit-after-approval",
            "file-order-twice",
            "hide-withdrawn-menu-items",
        ]
    );
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let output = sim()
        .args(["--townships", "0"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--townships"));
}
