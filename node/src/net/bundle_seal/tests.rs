use super::*;
use crate::net::pki;
use civsync_protocol::sync::bundle::{BundledDocument, BUNDLE_FORMAT_VERSION};
use civsync_protocol::Tier;

struct County {
    _dir: tempfile::TempDir,
    ca_dir: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl County {
    fn new() -> County {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        pki::init_county_ca(&ca_dir, &StationId::parse("xh").unwrap(), 3650).unwrap();
        let root = dir.path().to_path_buf();
        County {
            _dir: dir,
            ca_dir,
            root,
        }
    }

    fn issue(&self, station: &str, tier: Tier) -> NodeIdentity {
        let at = self.root.join(station.replace('/', "-"));
        pki::issue_node_certificate(
            &self.ca_dir,
            &StationId::parse(station).unwrap(),
            tier,
            &at,
            825,
        )
        .unwrap();
        NodeIdentity::load(&at).unwrap()
    }
}

fn keys(identity: NodeIdentity) -> BundleKeys {
    BundleKeys::new(identity, RevocationSet::default())
}

fn leaf(identity: &NodeIdentity) -> Vec<u8> {
    identity.cert_chain[0].as_ref().to_vec()
}

fn contents(from: &str, to: &str) -> BundleContents {
    BundleContents {
        version: BUNDLE_FORMAT_VERSION,
        from: from.into(),
        to: to.into(),
        created_ms: 1_764_900_000_000,
        documents: vec![BundledDocument {
            document: "roster:xh/t1/v1".into(),
            envelope: b"a week of work".to_vec(),
        }],
        holds: Vec::new(),
    }
}

fn now() -> i64 {
    crate::clock::now_ms() as i64 / 1000
}

#[test]
fn a_sealed_bundle_opens_only_at_its_recipient_and_hides_its_contents() {
    let county = County::new();
    let village = county.issue("xh/t1/v1", Tier::Village);
    let township = county.issue("xh/t1", Tier::Township);
    let other = county.issue("xh/t2", Tier::Township);
    let township_certificate = leaf(&township);
    let village_certificate = leaf(&village);
    let file = keys(village)
        .seal(&contents("xh/t1/v1", "xh/t1"), &township_certificate, now())
        .unwrap();
    assert!(
        !file.windows(14).any(|window| window == b"a week of work"),
        "the contents are not in the clear"
    );
    assert_eq!(
        address(&file).unwrap(),
        BundleAddress {
            from: "xh/t1/v1".into(),
            to: "xh/t1".into(),
            created_ms: 1_764_900_000_000
        }
    );
    let (opened, sender) = keys(township).open(&file, now()).unwrap();
    assert_eq!(opened.documents[0].1, b"a week of work".to_vec());
    assert_eq!(sender, village_certificate);
    let refused = keys(other).open(&file, now()).unwrap_err();
    assert!(
        refused.contains("this bundle is for station xh/t1, not for this office (xh/t2)"),
        "{refused}"
    );
}

#[test]
fn a_changed_byte_anywhere_is_refused_before_the_contents_are_decoded() {
    let county = County::new();
    let village = county.issue("xh/t1/v1", Tier::Village);
    let township = county.issue("xh/t1", Tier::Township);
    let file = keys(village)
        .seal(&contents("xh/t1/v1", "xh/t1"), &leaf(&township), now())
        .unwrap();
    let township = keys(township);
    // Every byte of the header tail, the ciphertext and the signature.
    let header_end = file.len() - 2 - 64;
    for at in (20..file.len()).step_by(7) {
        let mut changed = file.clone();
        changed[at] ^= 0x01;
        let refused = township.open(&changed, now()).unwrap_err();
        assert!(!refused.is_empty(), "byte {at}");
        if (header_end - 40..header_end).contains(&at) {
            assert!(
                refused.contains("changed after xh/t1/v1 signed it"),
                "byte {at}: {refused}"
            );
        }
    }
    for cut in [0, 10, 16, 40, file.len() - 1] {
        assert!(township.open(&file[..cut], now()).is_err(), "cut at {cut}");
    }
}

#[test]
fn a_bundle_from_another_county_or_claiming_another_sender_is_refused_naming_why() {
    let county = County::new();
    let township = county.issue("xh/t1", Tier::Township);
    let foreign_county = County::new();
    let foreign = foreign_county.issue("xh/t1/v1", Tier::Village);
    let file = keys(foreign)
        .seal(&contents("xh/t1/v1", "xh/t1"), &leaf(&township), now())
        .unwrap_err();
    // The foreign node cannot even seal to our township: our certificate
    // is not of its CA.
    assert!(file.contains("not signed by this county's CA"), "{file}");
    let village = county.issue("xh/t1/v1", Tier::Village);
    let neighbour = county.issue("xh/t1/v2", Tier::Village);
    // A neighbour's key sealing contents that claim to be the village's.
    let claimed = keys(neighbour)
        .seal(&contents("xh/t1/v1", "xh/t1"), &leaf(&township), now())
        .unwrap();
    let township_certificate = leaf(&township);
    let refused = keys(township).open(&claimed, now()).unwrap_err();
    assert!(
        refused
            .contains("says it is from xh/t1/v1 but is signed under the certificate of xh/t1/v2"),
        "{refused}"
    );
    // Sealing to a certificate of another station than the contents name.
    let refused = keys(village)
        .seal(&contents("xh/t1/v1", "xh/t2"), &township_certificate, now())
        .unwrap_err();
    assert!(
        refused.contains("is of station xh/t1, not of xh/t2"),
        "{refused}"
    );
}

#[test]
fn the_file_name_says_who_for_whom_and_when() {
    let name = file_name(
        &StationId::parse("xh/t1/v1").unwrap(),
        &StationId::parse("xh/t1").unwrap(),
        1_764_900_000_000,
    );
    assert_eq!(name, "xh_t1_v1-to-xh_t1-20251205T020000Z.civsync-bundle");
}
