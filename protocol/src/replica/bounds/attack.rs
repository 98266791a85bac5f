//! Hostile automerge chunks, small on the wire and huge once decoded, for
//! the tests of the decode bounds: this crate's, and the multi-process test
//! in which a certified but hostile peer sends them. Nothing here is used
//! by a node; it builds bytes only.

use flate2::write::DeflateEncoder;
use flate2::Compression;
use std::io::Write;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_TYPE_CHANGE: u8 = 1;
const CHUNK_TYPE_DEFLATED_CHANGE: u8 = 2;
/// The op action column of a change, as automerge 0.12 writes its spec:
/// column id 4, type 2 (unsigned LEB, run-length encoded).
const CHANGE_ACTION_SPEC: u64 = 4 << 4 | 2;

pub(crate) fn uleb(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn sleb(mut value: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A chunk with a zero checksum: the bounds refuse it before anyone would
/// look at the checksum.
pub(crate) fn chunk(chunk_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend([0, 0, 0, 0, chunk_type]);
    uleb(body.len() as u64, &mut out);
    out.extend(body);
    out
}

/// A deflated change chunk whose body inflates to `inflated_bytes` zero
/// bytes (about 1,000 times its size on the wire), built without ever
/// holding the inflated bytes.
pub fn deflate_bomb_change(inflated_bytes: u64) -> Vec<u8> {
    chunk(CHUNK_TYPE_DEFLATED_CHANGE, &deflated_zeros(inflated_bytes))
}

/// `zeros_bytes` zero bytes deflated, without ever holding them.
pub(crate) fn deflated_zeros(zeros_bytes: u64) -> Vec<u8> {
    let block = vec![0u8; 1 << 20];
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    let mut left = zeros_bytes;
    while left > 0 {
        let step = left.min(block.len() as u64) as usize;
        encoder
            .write_all(&block[..step])
            .expect("writing to a Vec cannot fail");
        left -= step as u64;
    }
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// A change chunk of a few dozen bytes whose action column claims `ops` op
/// rows in one run-length run.
pub fn run_length_ops_change(ops: u64) -> Vec<u8> {
    let mut body = Vec::new();
    uleb(0, &mut body); // deps
    uleb(16, &mut body); // actor
    body.extend([7u8; 16]);
    uleb(1, &mut body); // seq
    uleb(1, &mut body); // start op
    sleb(0, &mut body); // timestamp
    uleb(0, &mut body); // message
    uleb(0, &mut body); // other actors
    let mut run = Vec::new();
    sleb(i64::try_from(ops).unwrap_or(i64::MAX), &mut run);
    uleb(1, &mut run);
    uleb(1, &mut body); // one column
    uleb(CHANGE_ACTION_SPEC, &mut body);
    uleb(run.len() as u64, &mut body);
    body.extend(run);
    chunk(CHUNK_TYPE_CHANGE, &body)
}
