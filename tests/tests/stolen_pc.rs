//! A stolen village PC: its whole data directory — the sled store read
//! through the protocol's replica, and every file of its pki folder — must
//! not reveal any volunteer's ID number, while the county still finds the
//! same person registered in two villages.
//!
//! What the thief tries, for every volunteer, knowing (as the test does) the
//! true number:
//! - every file of the pki folder as a key — its text as hex, its raw bytes —
//!   to open the stored seal, or to compute an HMAC equal to any stored field;
//! - and what is left after reading every stored field: the candidate
//!   18-character numbers consistent with the masked form, the birth date,
//!   the sex (the parity of the 17th digit) and the checksum. At least 100
//!   must remain, none of which anything on the PC can confirm.

use civsync_node::store::SledStorage;
use civsync_protocol::domain::model::{Sex, Volunteer};
use civsync_protocol::domain::pii::{check_character, CountyOpenKey};
use civsync_protocol::replica::{Replica, ReplicaConfig};
use civsync_protocol::{layout, DocumentId, StationId};
use civsync_tests::{certified, describe_nodes, id_number, pki_init, wait_until, TestNode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

fn register(node: &TestNode, number: &str, seed: u64) {
    // The sex as the number says it (an odd 17th digit is a man), as a
    // clerk copies it from the card.
    let male = (id_number(seed).as_bytes()[16] - b'0') % 2 == 1;
    let body = json!({"number": number, "name": format!("志愿者{seed}"),
        "sex": if male { "男" } else { "女" },
        "residence_area": "一村", "id_number": id_number(seed)});
    let (status, answer) = node.post("volunteers", &body).unwrap();
    assert_eq!(status, 201, "{} refused {number}: {answer}", node.station);
}

/// Every candidate number consistent with what the roster stores about a
/// volunteer: every character the mask shows (at its position), the birth
/// date, the sex, the checksum.
fn candidates(volunteer: &Volunteer) -> Vec<String> {
    let mask: Vec<u8> = volunteer.id_masked.bytes().collect();
    assert_eq!(mask.len(), 18, "{}", volunteer.id_masked);
    let birth = volunteer.birth_date;
    let birth_digits = format!(
        "{:04}{:02}{:02}",
        birth.year(),
        u8::from(birth.month()),
        birth.day()
    );
    let shown = |number: &str| {
        number
            .bytes()
            .zip(&mask)
            .all(|(c, m)| *m == b'*' || c == *m)
    };
    // Positions 1–6 region (the digits the mask hides are tried), 7–14
    // birth date, 15–17 sequence (the 17th odd for men), 18 check.
    let hidden_region = mask[..6].iter().filter(|m| **m == b'*').count() as u32;
    let mut out = Vec::new();
    for fill in 0..10u32.pow(hidden_region) {
        let mut digits = format!("{fill:0width$}", width = hidden_region as usize).into_bytes();
        digits.reverse();
        let region: String = mask[..6]
            .iter()
            .map(|m| {
                if *m == b'*' {
                    digits.pop().unwrap() as char
                } else {
                    *m as char
                }
            })
            .collect();
        for sequence in 0..1000u32 {
            if (sequence % 2 == 1) != (volunteer.sex == Sex::Male) {
                continue;
            }
            let first_17 = format!("{region}{birth_digits}{sequence:03}");
            let number = format!("{first_17}{}", check_character(first_17.as_bytes()) as char);
            if shown(&number) {
                out.push(number);
            }
        }
    }
    out
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok())
        .collect()
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_stolen_village_pc_reveals_no_id_number_and_the_county_still_finds_duplicates() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(root.path(), &ca, "xh", "county", None);
    county.start().unwrap();
    let mut township = certified(root.path(), &ca, "xh/t1", "township", Some(county.quic));
    township.start().unwrap();
    let mut v1 = certified(root.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    let mut v2 = certified(root.path(), &ca, "xh/t1/v2", "village", Some(township.quic));
    v1.start().unwrap();
    v2.start().unwrap();

    // Seed 7 is one person registered in both villages, under the same
    // local number; 8 and 9 are other people.
    let people_of_v1 = [("001", 7u64), ("002", 8)];
    for (number, seed) in people_of_v1 {
        register(&v1, number, seed);
    }
    register(&v2, "001", 7);
    register(&v2, "003", 9);

    let everyone = [&county, &township, &v1, &v2];
    wait_until(CONVERGE_TIMEOUT, || {
        let answer = county.get("duplicates").map_err(|e| e.to_string())?;
        if answer["volunteers_checked"] == json!(4) {
            Ok(())
        } else {
            Err(format!("county checked {answer}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", describe_nodes(&everyone)));

    // The county finds the person registered twice, and merges nothing.
    let duplicates = county.get("duplicates").unwrap();
    let groups = duplicates["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{duplicates}");
    let members: Vec<(String, String)> = groups[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["home_station"].as_str().unwrap().into(),
                m["number"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            ("xh/t1/v1".to_string(), "001".to_string()),
            ("xh/t1/v2".into(), "001".into())
        ]
    );
    let listed: Value = county.get("volunteers?station=xh/t1/v2").unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "nothing merged: {listed}"
    );
    // A village cannot look.
    let (status, refusal) = {
        let response = v1
            .request(reqwest::Method::GET, "duplicates")
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    assert_eq!(status, 403, "{refusal}");
    assert!(refusal["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("county"));

    // The thief takes v1's disk.
    v1.stop().unwrap();
    let pki_files: Vec<(String, Vec<u8>)> = std::fs::read_dir(v1.dir.join("pki"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = pki_files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"county-id.pub"), "{names:?}");
    assert!(
        !names.contains(&"county-id.key"),
        "a village holds no private ID key: {names:?}"
    );
    assert!(!names.contains(&"identity.key"), "{names:?}");
    // Every way to read a file as a key.
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, bytes) in &pki_files {
        keys.push((format!("{name} (raw)"), bytes.clone()));
        if let Some(decoded) = std::str::from_utf8(bytes).ok().and_then(hex_bytes) {
            keys.push((format!("{name} (hex)"), decoded));
        }
    }

    let storage = SledStorage::open(&v1.dir.join("store")).unwrap();
    let mut replica = Replica::open(
        storage,
        StationId::parse("xh/t1/v1").unwrap(),
        0x7417,
        ReplicaConfig::default(),
    )
    .unwrap();
    let roster = DocumentId::roster(&StationId::parse("xh/t1/v1").unwrap());
    let volunteers = replica
        .with_document(&roster, layout::volunteers)
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(volunteers.len(), people_of_v1.len());
    for volunteer in &volunteers {
        let seed = people_of_v1
            .iter()
            .find(|(n, _)| *n == volunteer.number.as_str())
            .unwrap()
            .1;
        let truth = id_number(seed);
        let stored = [
            volunteer.id_digest.as_str(),
            volunteer.id_sealed.as_str(),
            volunteer.id_masked.as_str(),
        ];
        assert!(stored
            .iter()
            .all(|field| !field.to_uppercase().contains(&truth)));
        assert!(volunteer.id_sealed.starts_with("hpke2:"), "{volunteer:?}");
        for (name, key) in &keys {
            // As an HMAC key over the true number: matches no stored field.
            let digest = hmac_hex(key, truth.as_bytes());
            assert!(
                !stored.contains(&digest.as_str()),
                "{name} reproduces a stored digest"
            );
            // As the county's private key: opens no seal.
            if let Ok(bytes) = <[u8; 32]>::try_from(&key[..key.len().min(32)]) {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                if let Some(opener) = CountyOpenKey::from_hex(&hex) {
                    assert!(
                        opener.open(&volunteer.id_sealed).is_err(),
                        "{name} opens {}'s seal",
                        volunteer.number
                    );
                }
            }
        }
        let possible = candidates(volunteer);
        assert!(
            possible.contains(&truth),
            "the enumeration must include the truth"
        );
        assert!(
            possible.len() >= 100,
            "{} stored fields leave only {} candidates",
            volunteer.number,
            possible.len()
        );
        eprintln!(
            "{}: mask {}, born {}, {:?}: {} candidates",
            volunteer.number,
            volunteer.id_masked,
            volunteer.birth_date,
            volunteer.sex,
            possible.len()
        );
    }
    county.stop().unwrap();
    township.stop().unwrap();
    v2.stop().unwrap();
}

/// Every phone field a stored roster holds, as text.
fn stored_phone_texts(volunteer: &Volunteer) -> Vec<String> {
    vec![
        volunteer.phone.clone(),
        volunteer.phone_seals.masked.clone(),
        volunteer.phone_seals.county.clone(),
        volunteer.phone_seals.home.clone(),
    ]
}

#[test]
fn phones_are_read_at_the_home_station_and_the_county_and_only_masked_at_the_township() {
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("county-ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(root.path(), &ca, "xh", "county", None);
    county.start().unwrap();
    let mut township = certified(root.path(), &ca, "xh/t1", "township", Some(county.quic));
    township.start().unwrap();
    let mut village = certified(root.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    village.start().unwrap();
    let body = json!({"number": "001", "name": "王秀英", "sex": "女",
        "id_number": id_number(7), "phone": "138 1234 5678"});
    let (status, answer) = village.post("volunteers", &body).unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer["phone"], "13812345678",
        "the clerk sees what she typed"
    );

    let everyone = [&county, &township, &village];
    let phone_at = |node: &TestNode| -> Result<String, String> {
        let listed = node
            .get("volunteers?station=xh/t1/v1")
            .map_err(|e| e.to_string())?;
        let found = listed.as_array().and_then(|all| all.first()).cloned();
        match found {
            Some(volunteer) => {
                let text = volunteer.to_string();
                if text.contains("phone1:") {
                    return Err(format!("{}: a seal left the node: {text}", node.station));
                }
                Ok(volunteer["phone"].as_str().unwrap_or_default().to_string())
            }
            None => Err(format!("{} holds no volunteer yet", node.station)),
        }
    };
    wait_until(CONVERGE_TIMEOUT, || phone_at(&county).map(|_| ()))
        .unwrap_or_else(|e| panic!("{e}\n{}", describe_nodes(&everyone)));
    assert_eq!(phone_at(&village).unwrap(), "13812345678");
    assert_eq!(phone_at(&county).unwrap(), "13812345678");
    assert_eq!(phone_at(&township).unwrap(), "138****5678");

    // The township's disk, read as a thief would: no clear phone anywhere,
    // and none of its keys opens a phone seal.
    township.stop().unwrap();
    let storage = SledStorage::open(&township.dir.join("store")).unwrap();
    let mut replica = Replica::open(
        storage,
        StationId::parse("xh/t1").unwrap(),
        0x7418,
        ReplicaConfig::default(),
    )
    .unwrap();
    let roster = DocumentId::roster(&StationId::parse("xh/t1/v1").unwrap());
    let volunteers = replica
        .with_document(&roster, layout::volunteers)
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(volunteers.len(), 1);
    let stored = stored_phone_texts(&volunteers[0]);
    assert!(
        stored
            .iter()
            .all(|text| !text.contains("5678") || text == "138****5678"),
        "{stored:?}"
    );
    assert!(!stored[2].is_empty() && !stored[3].is_empty(), "{stored:?}");
    for entry in std::fs::read_dir(township.dir.join("pki")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(key) = CountyOpenKey::from_hex(text.trim()) {
            for seal in &stored[2..] {
                assert!(
                    key.open_phone(seal).is_err(),
                    "{} opens a phone seal",
                    path.display()
                );
            }
        }
    }
}
