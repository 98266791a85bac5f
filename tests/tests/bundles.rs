//! A village with no link sends its week on a USB stick: exported as a
//! sealed bundle into a folder standing in for the stick, imported at the
//! township, synced on to the county; the receipt goes back the same way.
//! Real processes, real certificates, the `civsync bundle` commands.

use civsync_tests::{certified, civsync, pki_init, wait_until, TestNode};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

fn data_dir(node: &TestNode) -> String {
    node.dir.to_string_lossy().into_owned()
}

/// The documents of the village's own (its roster and its months).
fn village_documents(node: &TestNode) -> BTreeMap<String, String> {
    node.documents()
        .unwrap()
        .into_iter()
        .filter(|(id, _)| id.ends_with("xh/t1/v1") || id.contains("xh/t1/v1:"))
        .collect()
}

fn export(
    node: &TestNode,
    to: &str,
    stick: &Path,
    certificate: Option<&Path>,
) -> serde_json::Value {
    let stick = stick.to_string_lossy().into_owned();
    let dir = data_dir(node);
    let certificate = certificate.map(|path| path.to_string_lossy().into_owned());
    let mut args = vec![
        "bundle", "export", "--for", to, "--out", &stick, "-d", &dir, "--json",
    ];
    if let Some(certificate) = &certificate {
        args.extend(["--certificate", certificate.as_str()]);
    }
    serde_json::from_str(&civsync(&args).unwrap()).unwrap()
}

fn import(node: &TestNode, stick: &Path) -> anyhow::Result<String> {
    let stick = stick.to_string_lossy().into_owned();
    let dir = data_dir(node);
    civsync(&["bundle", "import", &stick, "-d", &dir])
}

#[test]
fn a_villages_week_on_a_usb_stick_reaches_the_county_through_its_township() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(root.path(), &ca, "xh", "county", None);
    let mut township = certified(root.path(), &ca, "xh/t1", "township", Some(county.quic));
    // The village has no link at all.
    let mut village = certified(root.path(), &ca, "xh/t1/v1", "village", None);
    for node in [&mut county, &mut township, &mut village] {
        node.start().unwrap();
    }
    // A week of work: a volunteer, an activity a day.
    let number = village.register_volunteer(7).unwrap();
    for day in 0..7 {
        village
            .record_activity(
                &format!("week-{day}"),
                &format!("2026-11-{:02}", 23 + day),
                std::slice::from_ref(&number),
            )
            .unwrap();
    }
    let week = village_documents(&village);
    assert!(week.len() >= 2, "{week:?}");

    // Market day. The first bundle for the township needs its certificate
    // (the township's node.crt, which the technician hands out).
    let stick = root.path().join("usb-stick");
    let exported = export(
        &village,
        "xh/t1",
        &stick,
        Some(&township.dir.join("pki").join("node.crt")),
    );
    assert!(exported["changes"].as_u64().unwrap() >= 8, "{exported}");
    let files: Vec<_> = std::fs::read_dir(&stick).unwrap().collect();
    assert_eq!(files.len(), 1, "one sealed file on the stick");

    // At the township.
    let said = import(&township, &stick).unwrap();
    assert!(said.contains("0 refused"), "{said}");
    // The county sees the week, through the township's link.
    wait_until(SYNC_TIMEOUT, || {
        township.holds_all_of(&week)?;
        county.holds_all_of(&week)
    })
    .unwrap_or_else(|missing| panic!("{missing}\ntownship log:\n{}", township.log()));
    let county_week: Vec<_> = county
        .activity_keys("2026-11", true)
        .unwrap()
        .into_iter()
        .filter(|(station, _)| station == "xh/t1/v1")
        .collect();
    assert_eq!(county_week.len(), 7, "{county_week:?}");

    // The same stick again: nothing new, nothing refused.
    let again = import(&township, &stick).unwrap();
    assert!(again.contains(": 0 changes in 0 documents"), "{again}");

    // A byte changed on the stick: refused, naming why, nothing taken.
    let damaged = root.path().join("damaged-stick");
    std::fs::create_dir_all(&damaged).unwrap();
    let file = files[0].as_ref().unwrap().path();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(damaged.join(file.file_name().unwrap()), bytes).unwrap();
    let refused = import(&township, &damaged).unwrap_err().to_string();
    assert!(
        refused.contains("changed after xh/t1/v1 signed it"),
        "{refused}"
    );
    // The county is not who the bundle is for: it leaves it alone.
    let elsewhere = import(&county, &stick).unwrap();
    assert!(
        elsewhere.contains("not this office; left alone"),
        "{elsewhere}"
    );

    // The receipt goes back the same way; the township now keeps the
    // village's certificate (no --certificate needed).
    let back = root.path().join("stick-back");
    export(&township, "xh/t1/v1", &back, None);
    let said = import(&village, &back).unwrap();
    assert!(said.contains("0 refused"), "{said}");
    // So the village's next bundle holds only what is new: nothing.
    let next = root.path().join("next-week");
    let nothing = export(&village, "xh/t1", &next, None);
    assert_eq!(nothing["changes"], 0, "{nothing}");
}

#[test]
fn a_clerk_carries_a_bundle_through_the_web_pages() {
    use civsync_tests::web::{add_user, WebSession};
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut township = certified(root.path(), &ca, "xh/t1", "township", None);
    let mut village = certified(root.path(), &ca, "xh/t1/v1", "village", None);
    for node in [&mut township, &mut village] {
        node.start().unwrap();
    }
    add_user(&village, "wang", "clerk", "dongcun2026").unwrap();
    add_user(&township, "li", "clerk", "zhen2026ab").unwrap();
    let number = village.register_volunteer(3).unwrap();
    village
        .record_activity("web-week", "2026-11-30", std::slice::from_ref(&number))
        .unwrap();

    let mut at_village = WebSession::new(&village);
    at_village.login("wang", "dongcun2026").unwrap();
    let page = at_village.get("/web/bundles").unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("value=\"xh/t1\""),
        "the township is the default: {}",
        page.body
    );
    let csrf = page.csrf().unwrap();
    let certificate = std::fs::read_to_string(township.dir.join("pki").join("node.crt")).unwrap();
    let (status, disposition, file) = at_village
        .post_form_for_file(
            "/web/bundles/export",
            &[
                ("csrf", &csrf),
                ("for", "xh/t1"),
                ("certificate_pem", &certificate),
            ],
        )
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&file));
    assert!(
        disposition
            .as_deref()
            .is_some_and(|d| d.contains("xh_t1_v1-to-xh_t1-") && d.contains(".civsync-bundle")),
        "{disposition:?}"
    );

    let mut at_township = WebSession::new(&township);
    at_township.login("li", "zhen2026ab").unwrap();
    let page = at_township.get("/web/bundles").unwrap();
    let csrf = page.csrf().unwrap();
    let report = at_township
        .post_file("/web/bundles/import", Some(&csrf), file)
        .unwrap();
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(
        report.body.contains("来自 xh/t1/v1：写入 "),
        "{}",
        report.body
    );
    assert!(report.body.contains("拒收 0 个"), "{}", report.body);
    let at_township_now = township.activity_keys("2026-11", true).unwrap();
    assert!(
        at_township_now.contains(&("xh/t1/v1".to_string(), "web-week".to_string())),
        "{at_township_now:?}"
    );

    // A station whose certificate is not kept here: the page says what to do.
    let refused = at_township
        .post_form_for_file(
            "/web/bundles/export",
            &[("csrf", &csrf), ("for", "xh/t1/v9")],
        )
        .unwrap();
    let shown = String::from_utf8_lossy(&refused.2);
    assert_eq!(refused.0, 422, "{shown}");
    assert!(
        shown.contains("对方证书：no valid certificate of xh/t1/v9"),
        "{shown}"
    );
}
