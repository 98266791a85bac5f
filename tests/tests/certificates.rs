//! A service certificate issued by a real node process, written by
//! `civsync certificate V --out FILE` and checked by `civsync certificate
//! verify FILE` with only the county CA certificate: genuine is valid, an
//! altered one is refused naming what changed, a certificate signed by a
//! key the county CA never certified is refused as such.

use civsync_tests::{civsync_binary, pki_init, pki_issue, TestNode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// Run `civsync` with `args`; (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(civsync_binary()).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn a_certificate_from_a_node_verifies_on_the_command_line_and_forgeries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("county-ca");
    pki_init(&ca_dir, "xh").unwrap();
    let mut county = TestNode::init(&dir.path().join("xh"), "xh", "county", None).unwrap();
    pki_issue(&ca_dir, &county, "county").unwrap();
    county.start().unwrap();

    let (status, body) = county
        .post(
            "volunteers?station=xh/t1/v1",
            &json!({"number": "V1", "name": "赵敏", "sex": "女",
                    "id_number": civsync_tests::id_number(1)}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = county
        .post(
            "activities?station=xh/t1/v1",
            &civsync_tests::activity_body("A1", "2026-10-03", &["V1".to_string()], 2.5),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");

    let file = dir.path().join("V1.json");
    let data_dir = text(&county.dir);
    let (code, stdout, stderr) = run(&[
        "certificate",
        "V1",
        "--station",
        "xh/t1/v1",
        "-d",
        &data_dir,
        "--out",
        &text(&file),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("志愿服务证明"), "{stdout}");
    let issued: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let printed_code = issued["verification_code"].as_str().unwrap();
    assert!(stdout.contains(printed_code), "{stdout}");

    // Genuine: valid, with the CA file alone and with a node's data directory.
    let ca_file = text(&ca_dir.join("ca.crt"));
    let (code, stdout, stderr) = run(&["certificate", "verify", &text(&file), "--ca", &ca_file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("valid: 2.50 hours for volunteer V1 of xh/t1/v1, signed by station xh"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["certificate", "verify", &text(&file), "-d", &data_dir]);
    assert_eq!(code, 0, "{stdout}");

    // The same through the node's API.
    let (status, verdict) = county.post("certificates/verify", &issued).unwrap();
    assert_eq!(
        (status, verdict["valid"].clone()),
        (200, json!(true)),
        "{verdict}"
    );

    // Hours changed in the file.
    let mut forged = issued.clone();
    forged["total_hours_centi"] = json!(25_000);
    forged["activities"][0]["hours_centi"] = json!(25_000);
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let (code, stdout, _) = run(&[
        "certificate",
        "verify",
        &text(&forged_file),
        "--ca",
        &ca_file,
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("NOT VALID: signature does not match the content (fields changed since signing: activities[0], total_hours_centi)"),
        "{stdout}"
    );
    let (status, verdict) = county.post("certificates/verify", &forged).unwrap();
    assert_eq!(
        (status, verdict["valid"].clone()),
        (200, json!(false)),
        "{verdict}"
    );

    // Signed by a key from a CA the county never made, for the same county name.
    let rogue_ca = dir.path().join("rogue-ca");
    pki_init(&rogue_ca, "xh").unwrap();
    let rogue = TestNode::init(&dir.path().join("rogue"), "xh", "county", None).unwrap();
    pki_issue(&rogue_ca, &rogue, "county").unwrap();
    let mut rogue = rogue;
    rogue.start().unwrap();
    let (status, body) = rogue
        .post(
            "volunteers?station=xh/t1/v1",
            &json!({"number": "V1", "name": "赵敏", "sex": "女",
                    "id_number": civsync_tests::id_number(1)}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let rogue_file = dir.path().join("rogue.json");
    let (code, stdout, stderr) = run(&[
        "certificate",
        "V1",
        "--station",
        "xh/t1/v1",
        "-d",
        &text(&rogue.dir),
        "--out",
        &text(&rogue_file),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = run(&[
        "certificate",
        "verify",
        &text(&rogue_file),
        "--ca",
        &ca_file,
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("issuer certificate not signed by this county's CA (xh)"),
        "{stdout}"
    );
    rogue.stop().unwrap();
    county.stop().unwrap();
}
