use super::*;

fn id(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_and_node_files_are_written_with_private_keys_at_0600() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    let node_dir = root.path().join("v12");
    let ca = init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    assert_eq!(mode_of(&ca.key_path), 0o600);
    assert_eq!(mode_of(&ca.cert_path) & 0o600, 0o600);
    let node =
        issue_node_certificate(&ca_dir, &id("xh/t03/v12"), Tier::Village, &node_dir, 365).unwrap();
    assert_eq!(mode_of(&node.key_path), 0o600);
    assert_eq!(
        fs::read(node_dir.join(CA_CERT_FILE)).unwrap(),
        fs::read(&ca.cert_path).unwrap()
    );
    // No temporary files are left behind.
    let mut names: Vec<String> = fs::read_dir(&node_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec![CA_CERT_FILE, NODE_CERT_FILE, NODE_KEY_FILE]);
}

#[test]
fn node_identity_reads_back_station_tier_and_county() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    init_county_ca(&ca_dir, &id("zk/xh"), 3650).unwrap();
    issue_node_certificate(
        &ca_dir,
        &id("zk/xh/t03"),
        Tier::Township,
        &root.path().join("t03"),
        365,
    )
    .unwrap();
    let identity = NodeIdentity::load(&root.path().join("t03")).unwrap();
    assert_eq!(identity.station, id("zk/xh/t03"));
    assert_eq!(identity.tier, Tier::Township);
    assert_eq!(identity.county, id("zk/xh"));
    assert_eq!(identity.cert_chain.len(), 1);
    let read = read_certificate_identity(&identity.cert_chain[0]).unwrap();
    assert!(!read.is_ca);
    assert!(read.not_after_unix_s > now_unix_s() + 364 * SECONDS_PER_DAY);
    let (_, ca) = load_ca_certificate(&ca_dir.join(CA_CERT_FILE)).unwrap();
    assert!(ca.is_ca);
    assert_eq!((ca.station, ca.tier), (id("zk/xh"), Tier::County));
}

#[test]
fn the_county_itself_can_hold_a_node_certificate_next_to_its_ca() {
    let root = tempfile::tempdir().unwrap();
    init_county_ca(root.path(), &id("xh"), 3650).unwrap();
    issue_node_certificate(root.path(), &id("xh"), Tier::County, root.path(), 365).unwrap();
    let identity = NodeIdentity::load(root.path()).unwrap();
    assert_eq!((identity.station, identity.tier), (id("xh"), Tier::County));
}

#[test]
fn issuing_outside_the_county_or_at_the_wrong_tier_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    let out = root.path().join("out");
    let error =
        issue_node_certificate(&ca_dir, &id("yc/t01"), Tier::Township, &out, 365).unwrap_err();
    assert!(matches!(error, PkiError::OutsideCounty { .. }), "{error}");
    // A shared string prefix is not ancestry.
    let error =
        issue_node_certificate(&ca_dir, &id("xhx/t01"), Tier::Township, &out, 365).unwrap_err();
    assert!(matches!(error, PkiError::OutsideCounty { .. }), "{error}");
    let error =
        issue_node_certificate(&ca_dir, &id("xh/t01"), Tier::Village, &out, 365).unwrap_err();
    assert!(
        matches!(
            error,
            PkiError::TierMismatch {
                expected: Tier::Township,
                requested: Tier::Village,
                ..
            }
        ),
        "{error}"
    );
    let error =
        issue_node_certificate(&ca_dir, &id("xh/a/b/c/d"), Tier::Point, &out, 365).unwrap_err();
    assert!(
        matches!(error, PkiError::TooDeep { levels: 4, .. }),
        "{error}"
    );
    // Nothing was written by the refused attempts.
    assert!(!out.join(NODE_KEY_FILE).exists());
}

#[test]
fn existing_files_are_never_overwritten() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    let ca_before = fs::read(ca_dir.join(CA_KEY_FILE)).unwrap();
    let error = init_county_ca(&ca_dir, &id("xh"), 3650).unwrap_err();
    assert!(matches!(error, PkiError::AlreadyExists { .. }), "{error}");
    assert_eq!(fs::read(ca_dir.join(CA_KEY_FILE)).unwrap(), ca_before);

    let out = root.path().join("t01");
    issue_node_certificate(&ca_dir, &id("xh/t01"), Tier::Township, &out, 365).unwrap();
    let key_before = fs::read(out.join(NODE_KEY_FILE)).unwrap();
    let error =
        issue_node_certificate(&ca_dir, &id("xh/t01"), Tier::Township, &out, 365).unwrap_err();
    assert!(matches!(error, PkiError::AlreadyExists { .. }), "{error}");
    assert_eq!(fs::read(out.join(NODE_KEY_FILE)).unwrap(), key_before);
}

#[test]
fn validity_is_bounded_and_may_not_outlive_the_ca() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    assert!(matches!(
        init_county_ca(&ca_dir, &id("xh"), 0),
        Err(PkiError::BadValidityDays { .. })
    ));
    assert!(matches!(
        init_county_ca(&ca_dir, &id("xh"), VALIDITY_DAYS_MAX + 1),
        Err(PkiError::BadValidityDays { .. })
    ));
    init_county_ca(&ca_dir, &id("xh"), 30).unwrap();
    let error = issue_node_certificate(
        &ca_dir,
        &id("xh/t01"),
        Tier::Township,
        &root.path().join("t"),
        31,
    )
    .unwrap_err();
    assert!(matches!(error, PkiError::OutlivesCa { .. }), "{error}");
    let now = now_unix_s();
    let empty = ValidityPeriod {
        not_before_unix_s: now,
        not_after_unix_s: now,
    };
    let error = issue_node_certificate_for_period(
        &ca_dir,
        &id("xh/t01"),
        Tier::Township,
        root.path(),
        empty,
    )
    .unwrap_err();
    assert!(matches!(error, PkiError::EmptyValidity { .. }), "{error}");
}

#[test]
fn loading_names_the_file_and_the_problem() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    let node_dir = root.path().join("t01");
    let error = NodeIdentity::load(&node_dir).unwrap_err();
    assert!(
        matches!(&error, PkiError::Missing { path } if path.ends_with(CA_CERT_FILE)),
        "{error}"
    );

    init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    issue_node_certificate(&ca_dir, &id("xh/t01"), Tier::Township, &node_dir, 365).unwrap();

    // A readable key is refused, and the message says how to fix it.
    let key_path = node_dir.join(NODE_KEY_FILE);
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o640)).unwrap();
    let error = NodeIdentity::load(&node_dir).unwrap_err();
    assert!(
        matches!(&error, PkiError::KeyFileTooOpen { mode: 0o640, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chmod 600"));
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();

    // Garbage in place of the certificate.
    let cert_path = node_dir.join(NODE_CERT_FILE);
    let good_cert = fs::read(&cert_path).unwrap();
    fs::write(
        &cert_path,
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let error = NodeIdentity::load(&node_dir).unwrap_err();
    assert!(
        matches!(&error, PkiError::BadPem { path, .. } if path == &cert_path),
        "{error}"
    );
    fs::write(&cert_path, b"no pem here").unwrap();
    let error = NodeIdentity::load(&node_dir).unwrap_err();
    assert!(
        matches!(&error, PkiError::CertificateCount { count: 0, .. }),
        "{error}"
    );
    fs::write(&cert_path, &good_cert).unwrap();

    // A key that belongs to another certificate.
    let other_dir = root.path().join("t02");
    issue_node_certificate(&ca_dir, &id("xh/t02"), Tier::Township, &other_dir, 365).unwrap();
    fs::remove_file(&key_path).unwrap();
    fs::copy(other_dir.join(NODE_KEY_FILE), &key_path).unwrap();
    let error = NodeIdentity::load(&node_dir).unwrap_err();
    assert!(matches!(&error, PkiError::KeyMismatch { .. }), "{error}");

    assert!(NodeIdentity::load(&other_dir).is_ok());
}

#[test]
fn a_certificate_from_another_ca_or_expired_does_not_load() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    let other_ca_dir = root.path().join("other-ca");
    init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    init_county_ca(&other_ca_dir, &id("xh"), 3650).unwrap();
    let node_dir = root.path().join("t01");
    issue_node_certificate(&other_ca_dir, &id("xh/t01"), Tier::Township, &node_dir, 365).unwrap();
    fs::remove_file(node_dir.join(CA_CERT_FILE)).unwrap();
    fs::copy(ca_dir.join(CA_CERT_FILE), node_dir.join(CA_CERT_FILE)).unwrap();
    let error = NodeIdentity::load(&node_dir).unwrap_err();
    assert!(matches!(&error, PkiError::NotIssuedByCa { .. }), "{error}");

    let expired_dir = root.path().join("t02");
    let now = now_unix_s();
    let past = ValidityPeriod {
        not_before_unix_s: now - 10 * SECONDS_PER_DAY,
        not_after_unix_s: now - 3600,
    };
    issue_node_certificate_for_period(&ca_dir, &id("xh/t02"), Tier::Township, &expired_dir, past)
        .unwrap();
    let error = NodeIdentity::load(&expired_dir).unwrap_err();
    assert!(
        matches!(&error, PkiError::NotIssuedByCa { reason, .. } if reason.contains("xpired")),
        "{error}"
    );
    // The same files were fine while the certificate was valid.
    assert!(NodeIdentity::load_at(&expired_dir, now - 2 * SECONDS_PER_DAY).is_ok());
}

#[test]
fn identity_reading_refuses_certificates_without_our_names() {
    let plain = rcgen::generate_simple_self_signed(vec!["example.org".to_string()]).unwrap();
    assert_eq!(
        read_certificate_identity(plain.cert.der()),
        Err(IdentityError::NoStation)
    );
    assert!(matches!(
        read_certificate_identity(b"garbage"),
        Err(IdentityError::NotX509 { .. })
    ));

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![
        SanType::URI(Ia5String::try_from("civsync://station/xh/t01").unwrap()),
        SanType::URI(Ia5String::try_from("civsync://station/xh/t02").unwrap()),
        SanType::URI(Ia5String::try_from("civsync://tier/township").unwrap()),
    ];
    let two = params.clone().self_signed(&key).unwrap();
    assert_eq!(
        read_certificate_identity(two.der()),
        Err(IdentityError::ManyStations)
    );
    params.subject_alt_names = vec![
        SanType::URI(Ia5String::try_from("civsync://station/xh/t01").unwrap()),
        SanType::URI(Ia5String::try_from("civsync://tier/mayor").unwrap()),
    ];
    let bad_tier = params.clone().self_signed(&key).unwrap();
    assert!(matches!(
        read_certificate_identity(bad_tier.der()),
        Err(IdentityError::BadTier { .. })
    ));
    params.subject_alt_names = vec![SanType::URI(
        Ia5String::try_from("civsync://station/xh//t01").unwrap(),
    )];
    let bad_station = params.self_signed(&key).unwrap();
    assert!(matches!(
        read_certificate_identity(bad_station.der()),
        Err(IdentityError::BadStation(_))
    ));
}

#[test]
fn tiers_follow_depth_below_the_county() {
    assert_eq!(
        tier_below_county(&id("xh"), &id("xh")).unwrap(),
        Tier::County
    );
    assert_eq!(
        tier_below_county(&id("zk/xh"), &id("zk/xh/t1")).unwrap(),
        Tier::Township
    );
    assert_eq!(
        tier_below_county(&id("xh"), &id("xh/t1/v1")).unwrap(),
        Tier::Village
    );
    assert_eq!(
        tier_below_county(&id("xh"), &id("xh/t1/v1/p1")).unwrap(),
        Tier::Point
    );
}

#[test]
fn the_expiry_warning_starts_thirty_days_before_the_end() {
    let now = 1_800_000_000;
    let day = SECONDS_PER_DAY;
    let (days, warning) = certificate_expiry(now, now + 31 * day);
    assert_eq!((days, warning), (31, None));
    assert_eq!(certificate_expiry(now, now + 30 * day + 1).1, None);
    let (days, warning) = certificate_expiry(now, now + 30 * day);
    assert_eq!(days, 30);
    assert!(warning.unwrap().contains("expires in 30 days"));
    let (days, warning) = certificate_expiry(now, now + day / 2);
    assert_eq!(days, 0);
    assert!(warning.unwrap().contains("expires in 0 days"));
    let (days, warning) = certificate_expiry(now, now - 1);
    assert_eq!(days, -1);
    assert!(warning.unwrap().contains("has expired"));
}

#[test]
fn renewal_keeps_the_key_unless_asked_and_keeps_the_replaced_files() {
    let root = tempfile::tempdir().unwrap();
    let ca_dir = root.path().join("ca");
    let node_dir = root.path().join("v1");
    init_county_ca(&ca_dir, &id("xh"), 3650).unwrap();
    issue_node_certificate(&ca_dir, &id("xh/t1/v1"), Tier::Village, &node_dir, 10).unwrap();
    let key_before = fs::read(node_dir.join(NODE_KEY_FILE)).unwrap();
    let cert_before = fs::read(node_dir.join(NODE_CERT_FILE)).unwrap();

    let renewed = renew_node_certificate(&ca_dir, &id("xh/t1/v1"), &node_dir, 400, false).unwrap();
    assert!(!renewed.new_key);
    assert_eq!(renewed.issued.tier, Tier::Village);
    assert_eq!(fs::read(node_dir.join(NODE_KEY_FILE)).unwrap(), key_before);
    assert_ne!(
        fs::read(node_dir.join(NODE_CERT_FILE)).unwrap(),
        cert_before
    );
    assert_eq!(
        fs::read(node_dir.join("node.crt.previous")).unwrap(),
        cert_before
    );
    let identity = NodeIdentity::load(&node_dir).unwrap();
    assert!(identity.not_after_unix_s > now_unix_s() + 399 * SECONDS_PER_DAY);

    let renewed = renew_node_certificate(&ca_dir, &id("xh/t1/v1"), &node_dir, 400, true).unwrap();
    assert!(renewed.new_key);
    assert_ne!(fs::read(node_dir.join(NODE_KEY_FILE)).unwrap(), key_before);
    assert_eq!(mode_of(&node_dir.join(NODE_KEY_FILE)), 0o600);
    assert_eq!(
        fs::read(node_dir.join("node.key.previous")).unwrap(),
        key_before
    );
    NodeIdentity::load(&node_dir).expect("the new key and certificate belong together");

    // An empty folder (the replacement PC): a first certificate, as `issue`.
    let fresh = root.path().join("v1-new");
    let renewed = renew_node_certificate(&ca_dir, &id("xh/t1/v1"), &fresh, 400, false).unwrap();
    assert!(renewed.new_key && renewed.previous.is_empty());
    NodeIdentity::load(&fresh).unwrap();
    // Outside the county: refused, naming it.
    let error = renew_node_certificate(&ca_dir, &id("zz/t1"), &fresh, 400, false).unwrap_err();
    assert!(matches!(error, PkiError::OutsideCounty { .. }), "{error}");
}
