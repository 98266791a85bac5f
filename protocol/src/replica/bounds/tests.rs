use super::attack::{chunk, deflated_zeros, sleb, uleb};
use super::*;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ObjType, ReadDoc, ROOT};
use flate2::write::DeflateEncoder;
use flate2::Compression;
use proptest::prelude::*;
use std::io::Write;

// Column specs as automerge 0.12 writes them: id << 4 | type.
const CHANGE_OBJ_ACTOR_SPEC: u32 = 1;
const CHANGE_INSERT_SPEC: u32 = 3 << 4 | 4;
const CHANGE_ACTION_SPEC: u32 = 4 << 4 | 2;
const CHANGE_PRED_GROUP_SPEC: u32 = 7 << 4;
const CHANGE_PRED_ACTOR_SPEC: u32 = 7 << 4 | 1;
const DOC_CHANGE_ACTOR_SPEC: u32 = 1;
const DOC_OP_ID_ACTOR_SPEC: u32 = 2 << 4 | 1;
const DOC_OP_ACTION_SPEC: u32 = 4 << 4 | 2;

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// An RLE run: `count` copies of the unsigned `value`.
fn rle_run(count: i64, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    sleb(count, &mut out);
    uleb(value, &mut out);
    out
}

/// An RLE null run of `count` rows.
fn rle_nulls(count: u64) -> Vec<u8> {
    let mut out = vec![0];
    uleb(count, &mut out);
    out
}

fn column_set(columns: &[(u32, Vec<u8>)], meta: &mut Vec<u8>, data: &mut Vec<u8>) {
    uleb(columns.len() as u64, meta);
    for (spec, bytes) in columns {
        uleb(u64::from(*spec), meta);
        uleb(bytes.len() as u64, meta);
        data.extend(bytes);
    }
}

fn change_body(columns: &[(u32, Vec<u8>)], extra: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    uleb(0, &mut out); // deps
    uleb(16, &mut out); // actor
    out.extend([7u8; 16]);
    uleb(1, &mut out); // seq
    uleb(1, &mut out); // start op
    sleb(0, &mut out); // timestamp
    uleb(0, &mut out); // message
    uleb(0, &mut out); // other actors
    let mut data = Vec::new();
    column_set(columns, &mut out, &mut data);
    out.extend(data);
    out.extend(extra);
    out
}

fn document_body(change_columns: &[(u32, Vec<u8>)], op_columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    uleb(1, &mut out); // actors
    uleb(16, &mut out);
    out.extend([7u8; 16]);
    uleb(0, &mut out); // heads
    let mut change_data = Vec::new();
    let mut op_data = Vec::new();
    column_set(change_columns, &mut out, &mut change_data);
    column_set(op_columns, &mut out, &mut op_data);
    out.extend(change_data);
    out.extend(op_data);
    out
}

fn header_len_bytes(chunk_bytes: &[u8]) -> usize {
    let mut pos = 9;
    uleb_from_slice(chunk_bytes, &mut pos).unwrap();
    pos
}

fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16].as_slice())
}

/// Three actors editing a map, a list and a text concurrently, merging
/// now and then.
fn busy_document() -> AutoCommit {
    let mut a = AutoCommit::new().with_actor(actor(1));
    let text = a.put_object(ROOT, "text", ObjType::Text).unwrap();
    let list = a.put_object(ROOT, "list", ObjType::List).unwrap();
    a.put(ROOT, "title", "civsync").unwrap();
    a.commit();
    let mut b = a.fork().with_actor(actor(2));
    let mut c = a.fork().with_actor(actor(3));
    for round in 0..20u64 {
        a.put(ROOT, "counter", round).unwrap();
        a.splice_text(&text, 0, 0, "abc").unwrap();
        a.commit();
        b.insert(&list, 0, round as i64).unwrap();
        b.put(ROOT, "title", format!("b{round}")).unwrap();
        b.commit();
        c.splice_text(&text, 0, 0, "xyz").unwrap();
        c.put(ROOT, "title", format!("c{round}")).unwrap();
        c.commit();
        if round % 5 == 4 {
            a.merge(&mut b).unwrap();
            a.merge(&mut c).unwrap();
            b.merge(&mut a).unwrap();
            c.merge(&mut a).unwrap();
        }
    }
    a.merge(&mut b).unwrap();
    a.merge(&mut c).unwrap();
    a
}

/// One change inserting many characters, which automerge deflates.
fn big_text_change_document() -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(actor(9));
    let text = doc.put_object(ROOT, "text", ObjType::Text).unwrap();
    let words: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    doc.splice_text(&text, 0, 0, &words).unwrap();
    let list = doc.put_object(ROOT, "list", ObjType::List).unwrap();
    for i in 0..500 {
        doc.insert(&list, i, format!("item {i}")).unwrap();
    }
    doc.commit();
    doc
}

fn concat_raw(changes: &[Change]) -> Vec<u8> {
    changes
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect()
}

fn total_len(changes: &[Change]) -> u64 {
    changes.iter().map(|c| c.len() as u64).sum()
}

#[test]
fn default_limits_are_the_documented_ones() {
    let d = DecodeLimits::DEFAULT;
    assert_eq!(d.inflated_bytes_per_change_max, 8 * 1024 * 1024);
    assert_eq!(d.inflated_bytes_per_document_max, 64 * 1024 * 1024);
    assert_eq!(d.ops_per_change_max, 1_000_000);
    assert_eq!(d.ops_per_document_max, 4_000_000);
    assert_eq!(d.changes_per_document_max, 500_000);
    assert_eq!(d.inflated_bytes_total_max, 128 * 1024 * 1024);
    assert_eq!(d.ops_total_max, 8_000_000);
    assert_eq!(d.chunks_max, 100_000);
    assert_eq!(DecodeLimits::default(), d);
}

#[test]
fn empty_stream_costs_nothing() {
    assert_eq!(
        check_chunks(&[], &DecodeLimits::DEFAULT),
        Ok(DecodeCost::default())
    );
}

#[test]
fn each_honest_change_counts_its_ops() {
    let mut doc = busy_document();
    let changes = doc.get_changes(&[]);
    assert!(changes.len() > 60);
    for change in &changes {
        let raw = change.raw_bytes();
        let cost = check_chunks(raw, &DecodeLimits::DEFAULT).unwrap();
        assert_eq!(cost.ops, change.len() as u64);
        assert_eq!(cost.changes, 1);
        assert_eq!(cost.chunks, 1);
        assert_eq!(
            cost.inflated_bytes,
            (raw.len() - header_len_bytes(raw)) as u64
        );
    }
}

#[test]
fn honest_changes_back_to_back_count_all_ops() {
    let mut doc = busy_document();
    let mut changes = doc.get_changes(&[]);
    let raw = concat_raw(&changes);
    let cost = check_chunks(&raw, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!(cost.chunks, changes.len() as u64);
    assert_eq!(cost.changes, changes.len() as u64);
    assert_eq!(cost.ops, total_len(&changes));

    // The same changes as automerge sends them, deflated where large.
    let sent: Vec<u8> = changes
        .iter_mut()
        .flat_map(|c| c.bytes().to_vec())
        .collect();
    let sent_cost = check_chunks(&sent, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!(sent_cost.ops, cost.ops);
    assert_eq!(sent_cost.inflated_bytes, cost.inflated_bytes);
}

#[test]
fn honest_deflated_change_counts_its_ops() {
    let mut doc = big_text_change_document();
    let mut changes = doc.get_changes(&[]);
    assert_eq!(changes.len(), 1);
    let change = &mut changes[0];
    let ops = change.len() as u64;
    assert!(ops > 20_000);
    let raw = change.raw_bytes().to_vec();
    let sent = change.bytes().to_vec();
    assert_eq!(sent[8], CHUNK_TYPE_DEFLATED_CHANGE);
    assert!(sent.len() < raw.len());
    let cost = check_chunks(&sent, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!(cost.ops, ops);
    assert_eq!(
        cost.inflated_bytes,
        (raw.len() - header_len_bytes(&raw)) as u64
    );
    assert_eq!(check_chunks(&raw, &DecodeLimits::DEFAULT).unwrap().ops, ops);
    // And automerge agrees the deflated chunk is a change.
    assert_eq!(Change::try_from(sent.as_slice()).unwrap().len() as u64, ops);
}

#[test]
fn honest_documents_count_ops_and_changes() {
    for mut doc in [busy_document(), big_text_change_document()] {
        let stats = doc.stats();
        let saved = doc.save();
        let plain = doc.save_nocompress();
        // save() deflates large columns, so both column paths are walked.
        assert!(saved.len() < plain.len());
        for bytes in [&saved, &plain] {
            let cost = check_chunks(bytes, &DecodeLimits::DEFAULT).unwrap();
            assert_eq!(cost.chunks, 1);
            assert_eq!(cost.ops, stats.num_ops);
            assert_eq!(cost.changes, stats.num_changes);
        }
        let saved_cost = check_chunks(&saved, &DecodeLimits::DEFAULT).unwrap();
        let plain_cost = check_chunks(&plain, &DecodeLimits::DEFAULT).unwrap();
        // Only the metadata's LEB128 lengths differ once the deflated
        // columns are inflated: a few bytes at most.
        assert!(
            saved_cost
                .inflated_bytes
                .abs_diff(plain_cost.inflated_bytes)
                <= 64,
            "{} vs {}",
            saved_cost.inflated_bytes,
            plain_cost.inflated_bytes
        );
        assert_eq!(
            plain_cost.inflated_bytes,
            (plain.len() - header_len_bytes(&plain)) as u64
        );
    }
}

#[test]
fn what_passes_still_loads_in_automerge() {
    let mut doc = busy_document();
    let saved = doc.save();
    check_chunks(&saved, &DecodeLimits::DEFAULT).unwrap();
    let loaded = AutoCommit::load(&saved).unwrap();
    assert_eq!(loaded.stats().num_ops, doc.stats().num_ops);
}

#[test]
fn honest_save_after_heads_counts_the_new_changes() {
    let mut doc = busy_document();
    let heads = doc.get_heads();
    let text = doc.put_object(ROOT, "more", ObjType::Text).unwrap();
    for i in 0..10 {
        doc.splice_text(&text, 0, 0, &"civsync ".repeat(i + 1))
            .unwrap();
        doc.commit();
    }
    let after = doc.save_after(&heads);
    let changes = doc.get_changes(&heads);
    assert_eq!(changes.len(), 10);
    let cost = check_chunks(&after, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!(cost.chunks, 10);
    assert_eq!(cost.ops, total_len(&changes));

    // A saved document followed by changes, as a node stores them.
    let mut stored = doc.save();
    let doc_ops = doc.stats().num_ops;
    stored.extend(&after);
    let cost = check_chunks(&stored, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!(cost.chunks, 11);
    assert_eq!(cost.ops, doc_ops + total_len(&changes));
}

#[test]
fn honest_bundle_counts_ops_and_changes() {
    let mut doc = busy_document();
    let changes = doc.get_changes(&[]);
    let bundle = doc.bundle(changes.iter().map(|c| c.hash())).unwrap();
    let bytes = bundle.bytes();
    assert_eq!(bytes[8], CHUNK_TYPE_BUNDLE);
    let cost = check_chunks(bytes, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!(cost.chunks, 1);
    assert_eq!(cost.changes, changes.len() as u64);
    assert_eq!(cost.ops, total_len(&changes));
}

#[test]
fn deflate_bomb_of_4_gib_is_refused() {
    let inflated_bytes: u64 = 4 << 30;
    // All zeros is itself a valid empty change with 4 GiB of extra bytes.
    let bomb = chunk(CHUNK_TYPE_DEFLATED_CHANGE, &deflated_zeros(inflated_bytes));
    assert!(bomb.len() < 8 << 20, "bomb is {} bytes", bomb.len());
    let err = check_chunks(&bomb, &DecodeLimits::DEFAULT).unwrap_err();
    assert_eq!(
        err,
        BoundError::ChangeInflated {
            index: 0,
            inflated_bytes_max: 8 << 20
        }
    );
    assert_eq!(err.to_string(), "change 0: inflates past 8388608 bytes");
}

#[test]
fn inflation_stops_one_byte_past_the_cap() {
    let cap_bytes: u64 = 1 << 20;
    let body = deflated_zeros(64 << 20);
    let meter = Meter::new(cap_bytes);
    let mut src = ByteSource::new(Metered::new(SliceInflater::new(&body[..]), &meter), &meter);
    let limits = ChunkLimits::for_kind(ChunkKind::Change, &DecodeLimits::DEFAULT);
    assert!(matches!(walk_change(&mut src, &limits), Err(Stop::Inflate)));
    // Nothing past the cap was ever inflated, let alone kept.
    assert_eq!(meter.charged_bytes(), cap_bytes + 1);
}

#[test]
fn deflate_bomb_after_honest_changes_is_refused_at_its_index() {
    let mut doc = busy_document();
    let changes = doc.get_changes(&[]);
    let mut stream = concat_raw(&changes[..3]);
    stream.extend(chunk(CHUNK_TYPE_DEFLATED_CHANGE, &deflated_zeros(64 << 20)));
    let limits = DecodeLimits {
        inflated_bytes_per_change_max: 1 << 20,
        ..DecodeLimits::DEFAULT
    };
    let err = check_chunks(&stream, &limits).unwrap_err();
    assert_eq!(
        err,
        BoundError::ChangeInflated {
            index: 3,
            inflated_bytes_max: 1 << 20
        }
    );
    assert_eq!(err.to_string(), "change 3: inflates past 1048576 bytes");
}

#[test]
fn rle_claim_of_many_ops_is_refused() {
    let body = change_body(&[(CHANGE_ACTION_SPEC, rle_run(100_000_000, 1))], &[]);
    let bytes = chunk(CHUNK_TYPE_CHANGE, &body);
    assert!(bytes.len() < 64);
    assert_eq!(
        check_chunks(&bytes, &DecodeLimits::DEFAULT),
        Err(BoundError::ChangeOps {
            index: 0,
            ops: 100_000_000,
            ops_max: 1_000_000
        })
    );
}

#[test]
fn rle_claims_in_any_row_column_are_refused() {
    let literal_then_run = {
        let mut bytes = Vec::new();
        sleb(-2, &mut bytes);
        uleb(1, &mut bytes);
        uleb(2, &mut bytes);
        bytes.extend(rle_run(50_000_000, 3));
        bytes
    };
    let booleans = {
        let mut bytes = Vec::new();
        uleb(30_000_000, &mut bytes);
        uleb(30_000_000, &mut bytes);
        bytes
    };
    let cases = [
        (CHANGE_OBJ_ACTOR_SPEC, rle_nulls(70_000_000), 70_000_000),
        (CHANGE_INSERT_SPEC, booleans, 60_000_000),
        (CHANGE_ACTION_SPEC, literal_then_run, 50_000_002),
    ];
    for (spec, data, ops) in cases {
        let honest = (CHANGE_ACTION_SPEC, rle_run(1, 1));
        let columns = if spec == CHANGE_ACTION_SPEC {
            vec![(spec, data)]
        } else {
            vec![(spec, data), honest]
        };
        let bytes = chunk(CHUNK_TYPE_CHANGE, &change_body(&columns, &[]));
        assert_eq!(
            check_chunks(&bytes, &DecodeLimits::DEFAULT),
            Err(BoundError::ChangeOps {
                index: 0,
                ops,
                ops_max: 1_000_000
            }),
            "spec {spec}"
        );
    }
}

#[test]
fn rle_claim_inside_deflated_change_is_refused() {
    let body = change_body(&[(CHANGE_ACTION_SPEC, rle_run(100_000_000, 1))], &[]);
    let bytes = chunk(CHUNK_TYPE_DEFLATED_CHANGE, &deflate(&body));
    assert_eq!(
        check_chunks(&bytes, &DecodeLimits::DEFAULT),
        Err(BoundError::ChangeOps {
            index: 0,
            ops: 100_000_000,
            ops_max: 1_000_000
        })
    );
}

#[test]
fn pred_entries_claim_is_refused() {
    let columns = [
        (CHANGE_ACTION_SPEC, rle_run(10, 1)),
        (CHANGE_PRED_GROUP_SPEC, rle_run(10, 10_000_000)),
        (CHANGE_PRED_ACTOR_SPEC, rle_run(1, 0)),
    ];
    let bytes = chunk(CHUNK_TYPE_CHANGE, &change_body(&columns, &[]));
    let err = check_chunks(&bytes, &DecodeLimits::DEFAULT).unwrap_err();
    assert_eq!(
        err,
        BoundError::GroupEntries {
            index: 0,
            kind: ChunkKind::Change,
            entries: 100_000_000,
            entries_max: 1_000_000
        }
    );
    assert_eq!(
        err.to_string(),
        "change 0: 100000000 grouped entries exceeds 1000000"
    );

    // Grouped rows count as entries, not as ops.
    let columns = [
        (CHANGE_ACTION_SPEC, rle_run(10, 1)),
        (CHANGE_PRED_GROUP_SPEC, rle_run(10, 1)),
        (CHANGE_PRED_ACTOR_SPEC, rle_run(5_000_000, 0)),
    ];
    let bytes = chunk(CHUNK_TYPE_CHANGE, &change_body(&columns, &[]));
    assert!(matches!(
        check_chunks(&bytes, &DecodeLimits::DEFAULT),
        Err(BoundError::GroupEntries {
            entries: 5_000_000,
            ..
        })
    ));
}

#[test]
fn deflated_column_inside_change_is_inflated_under_the_cap() {
    let column = deflated_zeros(16 << 20);
    let body = change_body(&[(CHANGE_ACTION_SPEC | COLUMN_DEFLATE_BIT, column)], &[]);
    for bytes in [
        chunk(CHUNK_TYPE_CHANGE, &body),
        chunk(CHUNK_TYPE_DEFLATED_CHANGE, &deflate(&body)),
    ] {
        assert_eq!(
            check_chunks(&bytes, &DecodeLimits::DEFAULT),
            Err(BoundError::ChangeInflated {
                index: 0,
                inflated_bytes_max: 8 << 20
            })
        );
    }
    // A small deflated column is walked like a plain one.
    let column = deflate(&rle_run(100_000_000, 1));
    let body = change_body(&[(CHANGE_ACTION_SPEC | COLUMN_DEFLATE_BIT, column)], &[]);
    assert!(matches!(
        check_chunks(&chunk(CHUNK_TYPE_CHANGE, &body), &DecodeLimits::DEFAULT),
        Err(BoundError::ChangeOps {
            ops: 100_000_000,
            ..
        })
    ));
}

#[test]
fn document_claims_are_refused() {
    let ops_claim = document_body(
        &[(DOC_CHANGE_ACTOR_SPEC, rle_run(1, 0))],
        &[(DOC_OP_ID_ACTOR_SPEC, rle_run(120_000_000, 0))],
    );
    let err = check_chunks(
        &chunk(CHUNK_TYPE_DOCUMENT, &ops_claim),
        &DecodeLimits::DEFAULT,
    )
    .unwrap_err();
    assert_eq!(
        err,
        BoundError::DocumentOps {
            index: 0,
            kind: ChunkKind::Document,
            ops: 120_000_000,
            ops_max: 4_000_000
        }
    );
    assert_eq!(err.to_string(), "document 0: 120000000 ops exceeds 4000000");

    // The action column claims more than the op id column: still refused.
    let ops_claim = document_body(
        &[(DOC_CHANGE_ACTOR_SPEC, rle_run(1, 0))],
        &[
            (DOC_OP_ID_ACTOR_SPEC, rle_run(3, 0)),
            (DOC_OP_ACTION_SPEC, rle_run(5_000_000, 1)),
        ],
    );
    assert!(matches!(
        check_chunks(
            &chunk(CHUNK_TYPE_DOCUMENT, &ops_claim),
            &DecodeLimits::DEFAULT
        ),
        Err(BoundError::DocumentOps { ops: 5_000_000, .. })
    ));

    let changes_claim = document_body(&[(DOC_CHANGE_ACTOR_SPEC, rle_run(1_000_000, 0))], &[]);
    let err = check_chunks(
        &chunk(CHUNK_TYPE_DOCUMENT, &changes_claim),
        &DecodeLimits::DEFAULT,
    )
    .unwrap_err();
    assert_eq!(
        err,
        BoundError::DocumentChanges {
            index: 0,
            kind: ChunkKind::Document,
            changes: 1_000_000,
            changes_max: 500_000
        }
    );
    assert_eq!(
        err.to_string(),
        "document 0: 1000000 changes exceeds 500000"
    );

    let bomb = document_body(
        &[],
        &[(
            DOC_OP_ID_ACTOR_SPEC | COLUMN_DEFLATE_BIT,
            deflated_zeros(100 << 20),
        )],
    );
    let err = check_chunks(&chunk(CHUNK_TYPE_DOCUMENT, &bomb), &DecodeLimits::DEFAULT).unwrap_err();
    assert_eq!(
        err,
        BoundError::DocumentInflated {
            index: 0,
            kind: ChunkKind::Document,
            inflated_bytes_max: 64 << 20
        }
    );
    assert_eq!(err.to_string(), "document 0: inflates past 67108864 bytes");
}

#[test]
fn stream_totals_are_enforced() {
    let mut doc = busy_document();
    let changes = doc.get_changes(&[]);
    let stream = concat_raw(&changes);
    let cost = check_chunks(&stream, &DecodeLimits::DEFAULT).unwrap();

    let limits = DecodeLimits {
        ops_total_max: cost.ops - 1,
        ..DecodeLimits::DEFAULT
    };
    let last = changes.len() - 1;
    match check_chunks(&stream, &limits) {
        Err(BoundError::TotalOps {
            index,
            ops,
            ops_max,
        }) => {
            assert!(index <= last);
            assert!(ops > ops_max);
        }
        other => panic!("expected TotalOps, got {other:?}"),
    }

    let limits = DecodeLimits {
        inflated_bytes_total_max: cost.inflated_bytes - 1,
        ..DecodeLimits::DEFAULT
    };
    let err = check_chunks(&stream, &limits).unwrap_err();
    assert_eq!(
        err,
        BoundError::TotalInflated {
            index: last,
            inflated_bytes_max: cost.inflated_bytes - 1
        }
    );

    let limits = DecodeLimits {
        chunks_max: changes.len() - 1,
        ..DecodeLimits::DEFAULT
    };
    let err = check_chunks(&stream, &limits).unwrap_err();
    assert_eq!(
        err,
        BoundError::TooManyChunks {
            chunks_max: changes.len() - 1
        }
    );

    // Exactly at every limit is accepted.
    let limits = DecodeLimits {
        chunks_max: changes.len(),
        ops_total_max: cost.ops,
        inflated_bytes_total_max: cost.inflated_bytes,
        ..DecodeLimits::DEFAULT
    };
    assert_eq!(check_chunks(&stream, &limits), Ok(cost));
}

#[test]
fn per_chunk_limits_apply_exactly() {
    let mut doc = busy_document();
    let stats = doc.stats();
    let saved = doc.save_nocompress();
    let inflated_bytes = (saved.len() - header_len_bytes(&saved)) as u64;
    let at_limit = DecodeLimits {
        ops_per_document_max: stats.num_ops,
        changes_per_document_max: stats.num_changes,
        inflated_bytes_per_document_max: inflated_bytes,
        ..DecodeLimits::DEFAULT
    };
    assert!(check_chunks(&saved, &at_limit).is_ok());
    let ops_under = DecodeLimits {
        ops_per_document_max: stats.num_ops - 1,
        ..at_limit
    };
    assert!(matches!(
        check_chunks(&saved, &ops_under),
        Err(BoundError::DocumentOps { .. })
    ));
    let changes_under = DecodeLimits {
        changes_per_document_max: stats.num_changes - 1,
        ..at_limit
    };
    assert!(matches!(
        check_chunks(&saved, &changes_under),
        Err(BoundError::DocumentChanges { .. })
    ));
    let bytes_under = DecodeLimits {
        inflated_bytes_per_document_max: inflated_bytes - 1,
        ..at_limit
    };
    assert!(matches!(
        check_chunks(&saved, &bytes_under),
        Err(BoundError::DocumentInflated { .. })
    ));
}

#[test]
fn garbled_framing_is_refused() {
    let honest = busy_document().save();
    let framing = |problem| Err(BoundError::Framing { index: 0, problem });
    let limits = DecodeLimits::DEFAULT;

    assert_eq!(
        check_chunks(&honest[..3], &limits),
        framing(FramingError::Truncated)
    );
    assert_eq!(
        check_chunks(&honest[..8], &limits),
        framing(FramingError::Truncated)
    );
    assert_eq!(
        check_chunks(&honest[..9], &limits),
        framing(FramingError::Truncated)
    );
    assert_eq!(
        check_chunks(&honest[..honest.len() - 1], &limits),
        framing(FramingError::Truncated)
    );

    let mut bad_magic = honest.clone();
    bad_magic[0] ^= 0xff;
    assert_eq!(
        check_chunks(&bad_magic, &limits),
        framing(FramingError::BadMagic)
    );

    let mut bad_type = honest.clone();
    bad_type[8] = 7;
    assert_eq!(
        check_chunks(&bad_type, &limits),
        framing(FramingError::UnknownChunkType(7))
    );

    let mut bad_leb = MAGIC_BYTES.to_vec();
    bad_leb.extend([0, 0, 0, 0, CHUNK_TYPE_CHANGE]);
    bad_leb.extend([0xff; 11]);
    assert_eq!(
        check_chunks(&bad_leb, &limits),
        framing(FramingError::BadLeb128)
    );

    let mut huge_len = MAGIC_BYTES.to_vec();
    huge_len.extend([0, 0, 0, 0, CHUNK_TYPE_CHANGE]);
    uleb(u64::MAX, &mut huge_len);
    assert_eq!(
        check_chunks(&huge_len, &limits),
        framing(FramingError::Truncated)
    );

    // A body cut short of its fields, with a header that agrees.
    let body = change_body(&[(CHANGE_ACTION_SPEC, rle_run(3, 1))], &[]);
    for cut in [1, 5, 20, body.len() - 1] {
        let err = check_chunks(&chunk(CHUNK_TYPE_CHANGE, &body[..cut]), &limits);
        assert!(matches!(err, Err(BoundError::Framing { .. })), "cut {cut}");
    }

    let mut too_many_columns = Vec::new();
    uleb(0, &mut too_many_columns);
    uleb(0, &mut too_many_columns);
    uleb(1, &mut too_many_columns);
    uleb(1, &mut too_many_columns);
    sleb(0, &mut too_many_columns);
    uleb(0, &mut too_many_columns);
    uleb(0, &mut too_many_columns);
    uleb(1 << 40, &mut too_many_columns);
    assert_eq!(
        check_chunks(&chunk(CHUNK_TYPE_CHANGE, &too_many_columns), &limits),
        framing(FramingError::TooManyColumns(1 << 40))
    );

    let not_deflate = chunk(CHUNK_TYPE_DEFLATED_CHANGE, &[0xff; 64]);
    assert_eq!(
        check_chunks(&not_deflate, &limits),
        framing(FramingError::BadDeflate)
    );

    // A second chunk's garbage is reported at its own index.
    let mut two = honest.clone();
    two.extend([0x85, 0x6f]);
    assert_eq!(
        check_chunks(&two, &limits),
        Err(BoundError::Framing {
            index: 1,
            problem: FramingError::Truncated
        })
    );
}

fn honest_samples() -> Vec<Vec<u8>> {
    let mut doc = busy_document();
    let mut changes = doc.get_changes(&[]);
    let mut big = big_text_change_document();
    let mut big_changes = big.get_changes(&[]);
    let bundle = doc
        .bundle(changes.iter().map(|c| c.hash()))
        .unwrap()
        .bytes()
        .to_vec();
    vec![
        doc.save(),
        doc.save_nocompress(),
        concat_raw(&changes[..6]),
        changes[40].bytes().to_vec(),
        big_changes[0].bytes().to_vec(),
        big.save(),
        bundle,
    ]
}

fn tight_limits() -> DecodeLimits {
    DecodeLimits {
        chunks_max: 4,
        inflated_bytes_per_change_max: 2048,
        inflated_bytes_per_document_max: 4096,
        ops_per_change_max: 50,
        ops_per_document_max: 200,
        changes_per_document_max: 20,
        inflated_bytes_total_max: 6000,
        ops_total_max: 300,
    }
}

fn arbitrary_chunk_type() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(3u8), any::<u8>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_chunks(&bytes, &DecodeLimits::DEFAULT);
        let _ = check_chunks(&bytes, &tight_limits());
    }

    #[test]
    fn arbitrary_bodies_behind_valid_headers_never_panic(
        chunk_type in arbitrary_chunk_type(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        deflate_body in any::<bool>(),
    ) {
        let body = if deflate_body { deflate(&body) } else { body };
        let bytes = chunk(chunk_type, &body);
        for limits in [DecodeLimits::DEFAULT, tight_limits()] {
            if let Ok(cost) = check_chunks(&bytes, &limits) {
                prop_assert!(cost.ops <= limits.ops_total_max);
                prop_assert!(cost.inflated_bytes <= limits.inflated_bytes_total_max);
            }
        }
    }

    #[test]
    fn arbitrary_columns_never_panic_and_respect_limits(
        chunk_type in prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(3u8)],
        columns in proptest::collection::vec(
            (0u32..200, proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()),
            0..8,
        ),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let columns: Vec<(u32, Vec<u8>)> = columns
            .into_iter()
            .map(|(spec, data, deflated)| {
                if deflated {
                    (spec | COLUMN_DEFLATE_BIT, deflate(&data))
                } else {
                    (spec & !COLUMN_DEFLATE_BIT, data)
                }
            })
            .collect();
        let body = match chunk_type {
            0 | 3 => document_body(&columns, &columns),
            _ => change_body(&columns, &tail),
        };
        let body = if chunk_type == 2 { deflate(&body) } else { body };
        let bytes = chunk(chunk_type, &body);
        for limits in [DecodeLimits::DEFAULT, tight_limits()] {
            if let Ok(cost) = check_chunks(&bytes, &limits) {
                prop_assert!(cost.ops <= limits.ops_total_max);
                prop_assert!(cost.inflated_bytes <= limits.inflated_bytes_total_max);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mangled_honest_chunks_never_panic(
        sample in 0usize..7,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        thread_local! {
            static SAMPLES: Vec<Vec<u8>> = honest_samples();
        }
        let mut bytes = SAMPLES.with(|s| s[sample].clone());
        for (at, xor) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        for limits in [DecodeLimits::DEFAULT, tight_limits()] {
            if let Ok(cost) = check_chunks(&bytes, &limits) {
                prop_assert!(cost.ops <= limits.ops_total_max);
                prop_assert!(cost.chunks <= limits.chunks_max as u64);
            }
        }
    }
}
