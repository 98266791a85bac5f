//! Long work shows its progress: a roster import large enough to span
//! several batches logs intermediate counts in the node's log, and `status`
//! (the API and `civsync status`) lists the finished job with its final
//! counts. Run without a terminal, `civsync import` prints no bar.

use civsync_tests::{civsync, civsync_binary, id_number, TestNode};
use serde_json::Value;
use std::process::Command;

/// Rows of the roster: ten batches of the import's 2,000.
const ROWS: u64 = 20_000;

/// A roster file of `rows` volunteers with distinct valid ID numbers.
fn roster_csv(rows: u64) -> String {
    let mut text = String::from("编号,姓名,性别,身份证号\n");
    for seed in 0..rows {
        let sex = if seed % 2 == 0 { "女" } else { "男" };
        text.push_str(&format!(
            "{:05},志愿者{seed},{sex},{}\n",
            seed + 1,
            id_number(seed)
        ));
    }
    text
}

/// The `(done, total)` of each log line of the roster import at `station`.
fn logged_counts(log: &str, station: &str) -> Vec<(u64, u64)> {
    let prefix = format!("roster import {station}: rows ");
    log.lines()
        .filter_map(|line| {
            let counts = &line[line.find(&prefix)? + prefix.len()..];
            let (done, rest) = counts.split_once(" / ")?;
            let total = rest.split(' ').next()?;
            let number = |text: &str| text.replace(',', "").parse::<u64>().ok();
            Some((number(done)?, number(total)?))
        })
        .collect()
}

#[test]
fn a_roster_import_of_twenty_thousand_rows_logs_its_progress_and_status_shows_the_final_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let file = dir.path().join("roster.csv");
    let roster = roster_csv(ROWS);
    std::fs::write(&file, &roster).unwrap();
    let data_dir = node.dir.to_string_lossy().into_owned();

    let import = Command::new(civsync_binary())
        .args(["import", &file.to_string_lossy(), "-d", &data_dir, "--json"])
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    let report: Value = serde_json::from_slice(&import.stdout).unwrap();
    assert_eq!(report["accepted"], ROWS, "{report}");
    assert!(
        import.stderr.is_empty(),
        "no bar without a terminal: {}",
        String::from_utf8_lossy(&import.stderr)
    );

    let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap();
    let counts = logged_counts(&log, "xh/t1/v1");
    let intermediate: Vec<&(u64, u64)> = counts
        .iter()
        .filter(|(done, total)| *total == ROWS && *done > 0 && *done < ROWS)
        .collect();
    assert!(
        intermediate.len() >= 3,
        "progress lines while the import ran: {counts:?}\n{log}"
    );
    assert!(
        counts.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "counts only go up: {counts:?}"
    );
    let last = log
        .lines()
        .rev()
        .find(|line| line.contains("roster import xh/t1/v1: rows"))
        .unwrap();
    assert!(
        last.contains("rows 20,000 / 20,000 (100%)") && last.contains("20,000 accepted, 0 refused"),
        "the end line: {last}"
    );
    assert!(last.contains(" s; "), "the end line says how long: {last}");

    let status = node.get("status").unwrap();
    let jobs = status["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|job| job["kind"] == "roster_import" && job["subject"] == "xh/t1/v1")
        .unwrap_or_else(|| panic!("the import in status: {status}"));
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(job["done"], ROWS, "{job}");
    assert_eq!(job["total"], ROWS, "{job}");
    assert_eq!(job["bytes"], roster.len() as u64, "{job}");
    assert_eq!(job["phase"], "20,000 accepted, 0 refused", "{job}");

    let table = civsync(&["status", "-d", &data_dir]).unwrap();
    assert!(
        table.contains(&format!(
            "roster import xh/t1/v1: rows 20,000 / 20,000, {}; 20,000 accepted, 0 refused (finished,",
            civsync_node::progress::byte_size(roster.len() as u64)
        )),
        "{table}"
    );
}
