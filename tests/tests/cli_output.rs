//! What `civsync` prints against a real node: by default a table a clerk
//! reads (Chinese headers, a 合计 line, counts), with `--json` the API's
//! answer unchanged for scripts; and a refused Chinese value is answered
//! with the Chinese choices.

use civsync_tests::{civsync, civsync_binary, TestNode};
use serde_json::Value;
use std::process::Command;

const MONTH: &str = "2025-06";

#[test]
fn stats_print_a_chinese_table_by_default_and_the_api_json_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let volunteers = vec![
        node.register_volunteer(1).unwrap(),
        node.register_volunteer(2).unwrap(),
    ];
    node.record_activity("A1", "2025-06-10", &volunteers)
        .unwrap();
    node.record_activity("A2", "2025-06-11", &volunteers[..1])
        .unwrap();
    let data_dir = node.dir.to_string_lossy().into_owned();

    let table = civsync(&["stats", "-d", &data_dir, "--month", MONTH]).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("统计表") && lines[0].ends_with("(2025-06)"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("站点") && lines[1].contains("服务时长"),
        "the Chinese header: {table}"
    );
    assert!(
        lines[2].starts_with("station") && lines[2].contains("hours_centi"),
        "the API's keys under it: {table}"
    );
    let total = lines
        .iter()
        .find(|l| l.starts_with("合计"))
        .unwrap_or_else(|| panic!("no 合计 line: {table}"));
    // 2 activities, 3 service records of 1.5 hours.
    let figures: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(&figures[1..5], ["站", "2", "3", "4.50"], "{table}");
    assert!(serde_json::from_str::<Value>(&table).is_err());

    let json = civsync(&["stats", "-d", &data_dir, "--month", MONTH, "--json"]).unwrap();
    let stats: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(stats, node.get(&format!("stats?month={MONTH}")).unwrap());
    assert_eq!(stats["totals"]["activities"], 2, "{json}");
    assert_eq!(stats["totals"]["hours_centi"], 450, "{json}");

    // The roster: masked ID numbers and a count, or the API's list.
    let roster = civsync(&["volunteer", "list", "-d", &data_dir]).unwrap();
    assert!(
        roster.lines().next().unwrap().starts_with("编号"),
        "{roster}"
    );
    assert!(roster.contains("共 2 名志愿者"), "{roster}");
    assert!(!roster.contains(&civsync_tests::id_number(1)), "{roster}");
    let listed: Value =
        serde_json::from_str(&civsync(&["volunteer", "list", "-d", &data_dir, "--json"]).unwrap())
            .unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    node.stop().unwrap();
}

#[test]
fn a_refused_chinese_value_is_answered_with_the_chinese_choices() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let number = node.register_volunteer(1).unwrap();
    let data_dir = node.dir.to_string_lossy().into_owned();
    let record = format!("{number}=2");
    let add = |category: &str| {
        Command::new(civsync_binary())
            .args([
                "activity",
                "add",
                "--name",
                "敬老院探访",
                "--date",
                "2025-06-12",
                "--form",
                "帮",
                "--category",
                category,
                "--record",
                &record,
                "-d",
                &data_dir,
            ])
            .output()
            .unwrap()
    };
    let refused = add("助老助残");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("category"), "{stderr}");
    assert!(stderr.contains("扶老助残 (elder_care)"), "{stderr}");
    assert!(stderr.contains("理论宣讲 (theory)"), "{stderr}");

    let accepted = add("扶老助残");
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(
        accepted.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(
        stdout.starts_with("已记录活动") && stdout.contains("(帮, 扶老助残)"),
        "{stdout}"
    );
    node.stop().unwrap();
}
