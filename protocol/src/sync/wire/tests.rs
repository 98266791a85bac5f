use super::*;
use proptest::prelude::*;

fn station(text: &str) -> StationId {
    StationId::parse(text).unwrap()
}

fn samples() -> Vec<Message> {
    let doc = DocumentId::roster(&station("xh/t1/v1"));
    vec![
        Message::Hello {
            versions: VersionRange::OURS,
            station: station("xh/t1"),
            tier: Tier::Township,
        },
        Message::HelloRejected {
            protocol_version: PROTOCOL_VERSION,
            reason: "no".into(),
        },
        Message::ScopeRoot {
            documents: 10_000,
            root: [7; 16],
        },
        Message::BucketHashes {
            hashes: vec![[1; 16]; DIGEST_BUCKETS],
        },
        Message::BucketHashes {
            hashes: sparse_hashes(&[0, 7, 8, 200, 255]),
        },
        Message::BucketHashes {
            hashes: vec![EMPTY_BUCKET; DIGEST_BUCKETS],
        },
        Message::BucketContents {
            bucket: 3,
            entries: vec![(doc.clone(), [9; 16])],
            last: true,
        },
        Message::Sync {
            document: doc.clone(),
            reply: true,
            message_bytes: 5,
            offset: 2,
            chunk: vec![1, 2, 3],
        },
        Message::Sync {
            document: doc.clone(),
            reply: false,
            message_bytes: 0,
            offset: 0,
            chunk: vec![],
        },
        Message::SyncQuiet {
            document: doc.clone(),
        },
        Message::Refused {
            document: doc,
            reason: "not yours".into(),
        },
        Message::Ping { nonce: 42 },
        Message::Pong { nonce: u64::MAX },
        Message::Goodbye {
            reason: "bye".into(),
        },
    ]
}

fn decode_all(bytes: &[u8], chunk: usize) -> Result<Vec<Message>, WireError> {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        decoder.push(piece);
        while let Some(message) = decoder.pop()? {
            out.push(message);
        }
    }
    decoder.finish()?;
    Ok(out)
}

#[test]
fn every_message_round_trips_one_byte_at_a_time() {
    let messages = samples();
    let mut stream = Vec::new();
    for message in &messages {
        stream.extend(encode_frame(message).unwrap());
    }
    assert_eq!(decode_all(&stream, 1).unwrap(), messages);
    assert_eq!(decode_all(&stream, stream.len()).unwrap(), messages);
}

/// Bucket hashes with entries only in `buckets`.
fn sparse_hashes(buckets: &[usize]) -> Vec<BucketHash> {
    let mut hashes = vec![EMPTY_BUCKET; DIGEST_BUCKETS];
    for &bucket in buckets {
        hashes[bucket] = [bucket as u8 ^ 0x5a; 16];
    }
    hashes
}

#[test]
fn bucket_hashes_cost_only_the_buckets_that_hold_entries() {
    let few = encode_frame(&Message::BucketHashes {
        hashes: sparse_hashes(&[1, 2, 3, 4, 5]),
    })
    .unwrap();
    // Header, type, bitmap, length, five hashes.
    assert_eq!(
        few.len(),
        FRAME_HEADER_BYTES + 1 + BUCKET_BITMAP_BYTES + 1 + 5 * 16
    );
    let full = encode_frame(&Message::BucketHashes {
        hashes: vec![[3; 16]; DIGEST_BUCKETS],
    })
    .unwrap();
    assert!(full.len() <= FRAME_HEADER_BYTES + 1 + BUCKET_BITMAP_BYTES + 2 + DIGEST_BUCKETS * 16);
}

#[test]
fn sparse_bucket_hashes_that_disagree_with_their_bitmap_are_refused() {
    let decode = |body: BucketHashesSparseBody| {
        let mut payload = vec![message_type::BUCKET_HASHES_SPARSE];
        payload.extend(postcard::to_allocvec(&body).unwrap());
        decode_payload(&payload)
    };
    let mut present = [0_u8; BUCKET_BITMAP_BYTES];
    present[0] = 0b11;
    let one_short = decode(BucketHashesSparseBody {
        present,
        hashes: vec![[1; 16]],
    });
    assert!(
        matches!(&one_short, Err(WireError::Undecodable { reason, .. }) if reason.contains("2 buckets marked present but 1")),
        "{one_short:?}"
    );
    let empty_marked = decode(BucketHashesSparseBody {
        present,
        hashes: vec![[1; 16], EMPTY_BUCKET],
    });
    assert!(
        matches!(&empty_marked, Err(WireError::Undecodable { reason, .. }) if reason.contains("bucket 1")),
        "{empty_marked:?}"
    );
    // The retired dense type is unknown now.
    assert_eq!(
        decode_payload(&[message_type::BUCKET_HASHES_DENSE_RETIRED]),
        Err(WireError::UnknownMessageType {
            found: message_type::BUCKET_HASHES_DENSE_RETIRED
        })
    );
}

#[test]
fn oversized_frames_are_refused_on_both_sides_naming_size_and_limit() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&((FRAME_BYTES_MAX + 1) as u32).to_be_bytes());
    let error = decoder.pop().unwrap_err();
    assert_eq!(
        error,
        WireError::FrameTooLarge {
            bytes: FRAME_BYTES_MAX + 1,
            max: FRAME_BYTES_MAX
        }
    );
    assert!(error.to_string().contains(&FRAME_BYTES_MAX.to_string()));
    // The decoder stays failed: a stream cannot be resynchronised.
    decoder.push(&encode_frame(&Message::Ping { nonce: 1 }).unwrap());
    assert!(decoder.pop().is_err());

    let doc = DocumentId::roster(&station("xh"));
    let big = Message::Sync {
        document: doc,
        reply: false,
        message_bytes: (SYNC_CHUNK_BYTES_MAX + 1) as u32,
        offset: 0,
        chunk: vec![0; SYNC_CHUNK_BYTES_MAX + 1],
    };
    assert!(encode_frame(&big).is_err());
    let entries =
        vec![(DocumentId::roster(&station("xh")), [0; 16]); BUCKET_ENTRIES_PER_FRAME_MAX + 1];
    let too_many = Message::BucketContents {
        bucket: 0,
        entries,
        last: false,
    };
    assert!(matches!(
        encode_frame(&too_many),
        Err(WireError::Unencodable { .. })
    ));
}

#[test]
fn truncation_unknown_types_and_garbage_are_typed_errors() {
    let frame = encode_frame(&Message::Ping { nonce: 5 }).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame[..frame.len() - 1]);
    assert_eq!(decoder.pop(), Ok(None));
    assert_eq!(
        decoder.finish(),
        Err(WireError::Truncated {
            have: frame.len() - 1,
            need: frame.len()
        })
    );

    let mut decoder = FrameDecoder::new();
    decoder.push(&[0, 0, 0, 1, 200]);
    assert_eq!(
        decoder.pop(),
        Err(WireError::UnknownMessageType { found: 200 })
    );

    let mut decoder = FrameDecoder::new();
    decoder.push(&[0, 0, 0, 0]);
    assert_eq!(decoder.pop(), Err(WireError::EmptyFrame));

    let mut decoder = FrameDecoder::new();
    decoder.push(&[0, 0, 0, 3, message_type::SYNC_QUIET, 0xff, 0xff]);
    assert!(matches!(
        decoder.pop(),
        Err(WireError::Undecodable {
            message_type: 7,
            ..
        })
    ));

    // A document id that does not parse is undecodable, not a panic.
    let mut payload = vec![message_type::SYNC_QUIET];
    payload.extend(postcard::to_allocvec(&"notes:xh").unwrap());
    assert!(matches!(
        decode_payload(&payload),
        Err(WireError::Undecodable { .. })
    ));
}

/// A hello payload as version `max` would send it: the range, the
/// station and tier, then `appended` (fields of later versions).
fn hello_payload(max: u16, min: u16, appended: &[u8]) -> Vec<u8> {
    let mut payload = vec![message_type::HELLO];
    payload.extend(
        postcard::to_allocvec(&HelloBody {
            protocol_version: max,
            protocol_version_min: min,
            station: station("xh/t1"),
            tier: Tier::Township,
        })
        .unwrap(),
    );
    payload.extend(appended);
    payload
}

#[test]
fn a_newer_peer_that_still_speaks_our_version_is_understood() {
    let payload = hello_payload(PROTOCOL_VERSION + 2, PROTOCOL_VERSION, &[0xde, 0xad]);
    let Ok(Message::Hello {
        versions,
        station: s,
        tier,
    }) = decode_payload(&payload)
    else {
        panic!(
            "a compatible newer hello must decode: {:?}",
            decode_payload(&payload)
        );
    };
    assert_eq!((s, tier), (station("xh/t1"), Tier::Township));
    assert_eq!(
        versions.negotiate(VersionRange::OURS),
        Some(PROTOCOL_VERSION)
    );
}

#[test]
fn a_peer_with_no_version_in_common_is_an_incompatible_version() {
    let newer = VersionRange {
        min: PROTOCOL_VERSION + 1,
        max: PROTOCOL_VERSION + 2,
    };
    assert_eq!(
        decode_payload(&hello_payload(newer.max, newer.min, &[])),
        Err(WireError::IncompatibleVersion {
            found: newer,
            supported: VersionRange::OURS
        })
    );
    // Version 2 and older sent one version and then the station: their
    // hello is refused by its first field, whatever follows.
    let mut older = vec![message_type::HELLO];
    older.extend(postcard::to_allocvec(&(PROTOCOL_VERSION_MIN - 1)).unwrap());
    older.extend([0xde, 0xad]);
    let refused = decode_payload(&older).unwrap_err();
    assert_eq!(
        refused,
        WireError::IncompatibleVersion {
            found: VersionRange::exactly(PROTOCOL_VERSION_MIN - 1),
            supported: VersionRange::OURS
        }
    );
    assert_eq!(
        refused.to_string(),
        format!(
            "peer speaks protocol version {}; this node speaks versions {} to {}",
            PROTOCOL_VERSION_MIN - 1,
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION
        )
    );
}

#[test]
fn a_hello_whose_range_is_upside_down_is_undecodable() {
    let payload = hello_payload(PROTOCOL_VERSION, PROTOCOL_VERSION + 1, &[]);
    assert!(matches!(
        decode_payload(&payload),
        Err(WireError::Undecodable {
            message_type: message_type::HELLO,
            ..
        })
    ));
}

proptest! {
    #[test]
    fn negotiation_is_symmetric_and_picks_the_highest_common_version(
        a_min in 0u16..20, a_len in 0u16..5, b_min in 0u16..20, b_len in 0u16..5,
    ) {
        let a = VersionRange { min: a_min, max: a_min + a_len };
        let b = VersionRange { min: b_min, max: b_min + b_len };
        let agreed = a.negotiate(b);
        prop_assert_eq!(agreed, b.negotiate(a));
        let common: Vec<u16> = (a.min..=a.max).filter(|v| (b.min..=b.max).contains(v)).collect();
        prop_assert_eq!(agreed, common.last().copied());
    }
}

#[test]
fn sync_fragment_limits_are_checked_on_decode() {
    let doc = DocumentId::roster(&station("xh"));
    let body = SyncBody {
        document: doc,
        reply: false,
        message_bytes: (SYNC_MESSAGE_BYTES_MAX + 1) as u32,
        offset: 0,
        chunk: vec![1],
    };
    let mut payload = vec![message_type::SYNC];
    payload.extend(postcard::to_allocvec(&body).unwrap());
    assert!(matches!(
        decode_payload(&payload),
        Err(WireError::Undecodable { .. })
    ));
}

proptest! {
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes_and_chunking(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..64,
    ) {
        let _ = decode_all(&bytes, chunk);
    }

    #[test]
    fn decoder_never_panics_on_valid_headers_with_arbitrary_payloads(
        payloads in proptest::collection::vec(
            (0u8..14, proptest::collection::vec(any::<u8>(), 0..200)), 0..8),
        chunk in 1usize..32,
    ) {
        let mut stream = Vec::new();
        for (message_type, body) in payloads {
            stream.extend(((body.len() + 1) as u32).to_be_bytes());
            stream.push(message_type);
            stream.extend(body);
        }
        let _ = decode_all(&stream, chunk);
    }

    #[test]
    fn valid_streams_decode_identically_under_any_chunking(
        picks in proptest::collection::vec(0usize..12, 0..20),
        chunk in 1usize..100,
    ) {
        let all = samples();
        let messages: Vec<Message> = picks.iter().map(|&i| all[i].clone()).collect();
        let mut stream = Vec::new();
        for message in &messages {
            stream.extend(encode_frame(message).unwrap());
        }
        prop_assert_eq!(decode_all(&stream, chunk).unwrap(), messages);
    }
}
