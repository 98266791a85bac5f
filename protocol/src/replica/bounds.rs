//! One unit: the walk of automerge's storage format — chunk headers,
//! change, document and bundle bodies, column metadata and RLE runs — which
//! only makes sense read whole against the layout below.
//!
//! Bounds on what a peer's automerge bytes may cost before civsync hands them
//! to automerge's decoders.
//!
//! automerge 0.12 inflates deflated chunks and columns with an unbounded
//! `read_to_end`, and its columns are run-length encoded, so a few kilobytes
//! from a peer can stand for gigabytes of bytes or hundreds of millions of
//! ops. [`check_chunks`] walks the same storage layout automerge reads
//! (chunk headers, change/document/bundle bodies, column metadata and the
//! RLE runs of each column) and refuses the bytes before anything large is
//! built. It keeps only the column metadata of the chunk it is walking and a
//! few fixed-size buffers: deflated data is inflated through a metered
//! reader that stops one byte past the budget, and runs are summed, never
//! expanded.
//!
//! Layout walked (all integers LEB128, `u` unsigned, `s` signed):
//!
//! * chunk: magic `85 6f 4a 83`, 4-byte checksum, 1-byte type (0 document,
//!   1 change, 2 deflated change, 3 bundle), `u` body length, body.
//! * change body: deps (`u` count, 32 bytes each), actor (`u` length,
//!   bytes), `u` seq, `u` start op, `s` timestamp, message (`u` length,
//!   bytes), other actors (`u` count, each `u` length and bytes), column
//!   metadata, column data, then extra bytes to the end of the body.
//! * document body: actors, heads (`u` count, 32 bytes each), change column
//!   metadata, op column metadata, change column data, op column data, then
//!   head indices to the end of the body.
//! * bundle body: deps, actors, change column metadata and data, op column
//!   metadata and data, then anything left to the end of the body.
//! * column metadata: `u` count, then per column a `u` spec and a `u` data
//!   length. Spec bits 0..=2 are the column type, bit 3 marks a deflated
//!   column, the bits above are the column id.
//!
//! Rows are counted per column set. Group columns (type 0) own the columns
//! of the same id that follow them, whose rows are grouped entries (pred of
//! a change's ops, succ of a document's ops, deps of a document's
//! changes); value columns (type 7) are raw bytes; every other column has
//! one row per op (or per change), and the set's row count is the largest
//! of them, so no single column can claim more than the limit allows.
//!
//! The checksum is not verified here: automerge verifies it, and a bad
//! checksum costs nothing to refuse.
//!
//! Not bounded here: the bytes a string column's runs stand for once each
//! row's string is looked at (a run of a million copies of a long key), and
//! the op counts a document's changes imply through their `max_op` values
//! rather than through rows. Both are read lazily or without per-op
//! allocation by automerge 0.12 on native targets.

use std::fmt;
use std::io::{self, Read};

use flate2::bufread::DeflateDecoder as SliceInflater;
use flate2::read::DeflateDecoder as StreamInflater;

const MAGIC_BYTES: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

const CHUNK_TYPE_DOCUMENT: u8 = 0;
const CHUNK_TYPE_CHANGE: u8 = 1;
const CHUNK_TYPE_DEFLATED_CHANGE: u8 = 2;
const CHUNK_TYPE_BUNDLE: u8 = 3;

const HASH_LEN_BYTES: u64 = 32;

/// Honest chunks carry at most about sixteen columns per column set; the
/// cap keeps the metadata we hold for one chunk small whatever a peer
/// claims.
pub const COLUMNS_PER_SET_MAX: u64 = 256;

const COLUMN_TYPE_GROUP: u32 = 0;
const COLUMN_TYPE_DELTA: u32 = 3;
const COLUMN_TYPE_BOOLEAN: u32 = 4;
const COLUMN_TYPE_STRING: u32 = 5;
const COLUMN_TYPE_VALUE: u32 = 7;
const COLUMN_DEFLATE_BIT: u32 = 0b1000;

/// Enough to amortise reads without tying memory to what is being read.
const READ_BUFFER_BYTES: usize = 4096;

/// Limits on what one peer's bytes may cost once decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Chunks in one byte stream (a message's change list).
    pub chunks_max: usize,
    /// A change's body after inflating (all columns).
    pub inflated_bytes_per_change_max: u64,
    /// A document or bundle chunk after inflating.
    pub inflated_bytes_per_document_max: u64,
    /// Op rows of one change (sum of RLE runs). Also caps the change's
    /// pred entries, each of which automerge decodes like an op row.
    pub ops_per_change_max: u64,
    /// Op rows of a document or bundle chunk. Also caps its succ and deps
    /// entries.
    pub ops_per_document_max: u64,
    /// Change rows of a document or bundle chunk.
    pub changes_per_document_max: u64,
    /// Inflated bytes of the whole stream.
    pub inflated_bytes_total_max: u64,
    /// Op rows of the whole stream.
    pub ops_total_max: u64,
}

impl DecodeLimits {
    /// Sized so that a civsync node with a few hundred MiB to spare can
    /// decode any one accepted message, while each limit stays well above
    /// what honest editing produces: a change of a million ops is a very
    /// large paste, and a document of four million ops is years of
    /// editing. The stream totals are what one message may cost in all;
    /// bigger histories arrive as several messages.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        chunks_max: 100_000,
        inflated_bytes_per_change_max: 8 * MIB,
        inflated_bytes_per_document_max: 64 * MIB,
        ops_per_change_max: 1_000_000,
        ops_per_document_max: 4_000_000,
        // As many as a sync message may carry (`SYNC_MESSAGE_CHANGES_MAX`).
        changes_per_document_max: 500_000,
        inflated_bytes_total_max: 128 * MIB,
        ops_total_max: 8_000_000,
    };
}

const MIB: u64 = 1024 * 1024;

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the stream would cost once decoded (for logging and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeCost {
    /// Chunks in the stream.
    pub chunks: u64,
    /// Bytes of every chunk body once every deflated part is inflated.
    pub inflated_bytes: u64,
    /// Op rows: one per op of each change, plus the op rows of documents
    /// and bundles.
    pub ops: u64,
    /// Changes: one per change chunk plus the change rows of documents and
    /// bundles.
    pub changes: u64,
}

/// The kind of a chunk, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// Type 1, or type 2 (a deflated change).
    Change,
    /// Type 0.
    Document,
    /// Type 3.
    Bundle,
}

impl fmt::Display for ChunkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkKind::Change => "change",
            ChunkKind::Document => "document",
            ChunkKind::Bundle => "bundle",
        })
    }
}

/// Why a chunk's framing could not be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The bytes end before the chunk, a field or a column does.
    Truncated,
    /// The chunk does not start with automerge's magic bytes.
    BadMagic,
    /// A LEB128 integer runs past 64 bits.
    BadLeb128,
    /// The chunk type byte is not 0, 1, 2 or 3.
    UnknownChunkType(u8),
    /// A column spec does not fit the 32 bits automerge gives it.
    BadColumnSpec(u64),
    /// A column set claims more columns than [`COLUMNS_PER_SET_MAX`].
    TooManyColumns(u64),
    /// A deflated body or column is not a valid deflate stream.
    BadDeflate,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::Truncated => f.write_str("truncated"),
            FramingError::BadMagic => f.write_str("bad magic bytes"),
            FramingError::BadLeb128 => f.write_str("bad LEB128 integer"),
            FramingError::UnknownChunkType(t) => write!(f, "unknown chunk type {t}"),
            FramingError::BadColumnSpec(s) => write!(f, "column spec {s} exceeds 32 bits"),
            FramingError::TooManyColumns(n) => {
                write!(f, "{n} columns exceeds {COLUMNS_PER_SET_MAX}")
            }
            FramingError::BadDeflate => f.write_str("bad deflate stream"),
        }
    }
}

/// Why bytes were refused before decoding. `index` is the position of the
/// offending chunk in the stream, counting from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundError {
    /// The chunk could not be walked at all.
    Framing { index: usize, problem: FramingError },
    /// The stream holds more than `chunks_max` chunks.
    TooManyChunks { chunks_max: usize },
    /// A change body inflates past `inflated_bytes_max`.
    ChangeInflated {
        index: usize,
        inflated_bytes_max: u64,
    },
    /// A change holds more op rows than allowed.
    ChangeOps {
        index: usize,
        ops: u64,
        ops_max: u64,
    },
    /// A document or bundle inflates past `inflated_bytes_max`.
    DocumentInflated {
        index: usize,
        kind: ChunkKind,
        inflated_bytes_max: u64,
    },
    /// A document or bundle holds more op rows than allowed.
    DocumentOps {
        index: usize,
        kind: ChunkKind,
        ops: u64,
        ops_max: u64,
    },
    /// A document or bundle holds more change rows than allowed.
    DocumentChanges {
        index: usize,
        kind: ChunkKind,
        changes: u64,
        changes_max: u64,
    },
    /// Grouped entries (pred of a change, succ of a document's ops, deps of
    /// a document's changes) exceed the chunk's op limit.
    GroupEntries {
        index: usize,
        kind: ChunkKind,
        entries: u64,
        entries_max: u64,
    },
    /// The stream as a whole inflates past `inflated_bytes_max`; `index` is
    /// the chunk at which it did.
    TotalInflated {
        index: usize,
        inflated_bytes_max: u64,
    },
    /// The stream as a whole holds more op rows than allowed.
    TotalOps {
        index: usize,
        ops: u64,
        ops_max: u64,
    },
}

impl fmt::Display for BoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundError::Framing { index, problem } => write!(f, "chunk {index}: {problem}"),
            BoundError::TooManyChunks { chunks_max } => {
                write!(f, "stream: more than {chunks_max} chunks")
            }
            BoundError::ChangeInflated {
                index,
                inflated_bytes_max,
            } => write!(
                f,
                "change {index}: inflates past {inflated_bytes_max} bytes"
            ),
            BoundError::ChangeOps {
                index,
                ops,
                ops_max,
            } => write!(f, "change {index}: {ops} ops exceeds {ops_max}"),
            BoundError::DocumentInflated {
                index,
                kind,
                inflated_bytes_max,
            } => write!(
                f,
                "{kind} {index}: inflates past {inflated_bytes_max} bytes"
            ),
            BoundError::DocumentOps {
                index,
                kind,
                ops,
                ops_max,
            } => write!(f, "{kind} {index}: {ops} ops exceeds {ops_max}"),
            BoundError::DocumentChanges {
                index,
                kind,
                changes,
                changes_max,
            } => write!(f, "{kind} {index}: {changes} changes exceeds {changes_max}"),
            BoundError::GroupEntries {
                index,
                kind,
                entries,
                entries_max,
            } => write!(
                f,
                "{kind} {index}: {entries} grouped entries exceeds {entries_max}"
            ),
            BoundError::TotalInflated {
                index,
                inflated_bytes_max,
            } => write!(
                f,
                "stream: inflates past {inflated_bytes_max} bytes at chunk {index}"
            ),
            BoundError::TotalOps {
                index,
                ops,
                ops_max,
            } => write!(f, "stream: {ops} ops exceeds {ops_max} at chunk {index}"),
        }
    }
}

impl std::error::Error for BoundError {}

/// Walk every chunk in `bytes` (one change, several changes back to back, a
/// whole document, a bundle, or any concatenation of those) and check each
/// against `limits` without materialising anything large.
///
/// Memory stays bounded by a few fixed buffers, the inflater state and the
/// column metadata of one chunk, whatever the bytes claim. Work is bounded
/// by `bytes.len()` plus the inflated byte budget.
pub fn check_chunks(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodeCost, BoundError> {
    let mut cost = DecodeCost::default();
    let mut rest = bytes;
    let mut index = 0usize;
    // Each pass consumes at least a chunk header, so the loop is bounded
    // by the input length.
    while !rest.is_empty() {
        if index >= limits.chunks_max {
            return Err(BoundError::TooManyChunks {
                chunks_max: limits.chunks_max,
            });
        }
        let framing = |problem| BoundError::Framing { index, problem };
        let (chunk_type, body, after) = split_chunk(rest).map_err(framing)?;
        let kind = match chunk_type {
            CHUNK_TYPE_DOCUMENT => ChunkKind::Document,
            CHUNK_TYPE_CHANGE | CHUNK_TYPE_DEFLATED_CHANGE => ChunkKind::Change,
            CHUNK_TYPE_BUNDLE => ChunkKind::Bundle,
            other => return Err(framing(FramingError::UnknownChunkType(other))),
        };
        let chunk_limits = ChunkLimits::for_kind(kind, limits);
        let total_room_bytes = limits
            .inflated_bytes_total_max
            .saturating_sub(cost.inflated_bytes);
        let meter = Meter::new(chunk_limits.inflated_bytes_max.min(total_room_bytes));

        let walked = match chunk_type {
            CHUNK_TYPE_DEFLATED_CHANGE => {
                let mut src =
                    ByteSource::new(Metered::new(SliceInflater::new(body), &meter), &meter);
                walk_change(&mut src, &chunk_limits)
            }
            _ => {
                let mut src = ByteSource::new(Metered::new(body, &meter), &meter);
                match kind {
                    ChunkKind::Change => walk_change(&mut src, &chunk_limits),
                    ChunkKind::Document => walk_document(&mut src, &chunk_limits),
                    ChunkKind::Bundle => walk_bundle(&mut src, &chunk_limits),
                }
            }
        };
        let tally = walked.map_err(|stop| match stop {
            Stop::Bad(problem) => framing(problem),
            Stop::Inflate => {
                if meter.charged_bytes() > chunk_limits.inflated_bytes_max {
                    match kind {
                        ChunkKind::Change => BoundError::ChangeInflated {
                            index,
                            inflated_bytes_max: chunk_limits.inflated_bytes_max,
                        },
                        _ => BoundError::DocumentInflated {
                            index,
                            kind,
                            inflated_bytes_max: chunk_limits.inflated_bytes_max,
                        },
                    }
                } else {
                    BoundError::TotalInflated {
                        index,
                        inflated_bytes_max: limits.inflated_bytes_total_max,
                    }
                }
            }
            Stop::Ops(ops) => match kind {
                ChunkKind::Change => BoundError::ChangeOps {
                    index,
                    ops,
                    ops_max: chunk_limits.ops_max,
                },
                _ => BoundError::DocumentOps {
                    index,
                    kind,
                    ops,
                    ops_max: chunk_limits.ops_max,
                },
            },
            Stop::Changes(changes) => BoundError::DocumentChanges {
                index,
                kind,
                changes,
                changes_max: chunk_limits.changes_max,
            },
            Stop::Entries(entries) => BoundError::GroupEntries {
                index,
                kind,
                entries,
                entries_max: chunk_limits.ops_max,
            },
        })?;

        cost.chunks = cost.chunks.saturating_add(1);
        cost.inflated_bytes = cost.inflated_bytes.saturating_add(meter.charged_bytes());
        cost.ops = cost.ops.saturating_add(tally.ops);
        cost.changes = cost.changes.saturating_add(tally.changes);
        if cost.ops > limits.ops_total_max {
            return Err(BoundError::TotalOps {
                index,
                ops: cost.ops,
                ops_max: limits.ops_total_max,
            });
        }
        rest = after;
        index = index.saturating_add(1);
    }
    Ok(cost)
}

/// Splits one chunk off the front of `bytes`: its type, its body and what
/// follows it.
fn split_chunk(bytes: &[u8]) -> Result<(u8, &[u8], &[u8]), FramingError> {
    let magic = bytes.get(..4).ok_or(FramingError::Truncated)?;
    if magic != MAGIC_BYTES {
        return Err(FramingError::BadMagic);
    }
    // 4 magic bytes, then 4 checksum bytes, then the type byte.
    let chunk_type = *bytes.get(8).ok_or(FramingError::Truncated)?;
    let mut pos = 9usize;
    let body_len_bytes = uleb_from_slice(bytes, &mut pos)?;
    let body_len = usize::try_from(body_len_bytes).map_err(|_| FramingError::Truncated)?;
    let end = pos.checked_add(body_len).ok_or(FramingError::Truncated)?;
    let body = bytes.get(pos..end).ok_or(FramingError::Truncated)?;
    let after = bytes.get(end..).ok_or(FramingError::Truncated)?;
    Ok((chunk_type, body, after))
}

fn uleb_from_slice(bytes: &[u8], pos: &mut usize) -> Result<u64, FramingError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos).ok_or(FramingError::Truncated)?;
        *pos += 1;
        value |= leb_payload(byte, shift)?;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FramingError::BadLeb128)
}

/// The bits `byte` contributes at `shift`, refusing bits that fall past 64.
fn leb_payload(byte: u8, shift: u32) -> Result<u64, FramingError> {
    let payload = u64::from(byte & 0x7f);
    let shifted = payload << shift;
    if shifted >> shift != payload {
        return Err(FramingError::BadLeb128);
    }
    Ok(shifted)
}

/// Per-chunk limits, picked by chunk kind.
struct ChunkLimits {
    inflated_bytes_max: u64,
    ops_max: u64,
    changes_max: u64,
}

impl ChunkLimits {
    fn for_kind(kind: ChunkKind, limits: &DecodeLimits) -> Self {
        match kind {
            ChunkKind::Change => ChunkLimits {
                inflated_bytes_max: limits.inflated_bytes_per_change_max,
                ops_max: limits.ops_per_change_max,
                changes_max: 1,
            },
            ChunkKind::Document | ChunkKind::Bundle => ChunkLimits {
                inflated_bytes_max: limits.inflated_bytes_per_document_max,
                ops_max: limits.ops_per_document_max,
                changes_max: limits.changes_per_document_max,
            },
        }
    }
}

/// Why a walk stopped early. Figures are counted so far, which for RLE
/// rows means at least the limit.
#[derive(Debug)]
enum Stop {
    Bad(FramingError),
    Inflate,
    Ops(u64),
    Changes(u64),
    Entries(u64),
}

impl From<FramingError> for Stop {
    fn from(problem: FramingError) -> Self {
        Stop::Bad(problem)
    }
}

/// What one chunk will cost once decoded.
#[derive(Debug, Default)]
struct ChunkTally {
    ops: u64,
    changes: u64,
}

/// Counts every byte a chunk materialises: raw body bytes as they are
/// read and inflated bytes as they come out of an inflater. Shared by the
/// nested readers of one chunk, hence the cells.
struct Meter {
    charged_bytes: std::cell::Cell<u64>,
    cap_bytes: u64,
    tripped: std::cell::Cell<bool>,
}

impl Meter {
    fn new(cap_bytes: u64) -> Self {
        Meter {
            charged_bytes: std::cell::Cell::new(0),
            cap_bytes,
            tripped: std::cell::Cell::new(false),
        }
    }

    fn charged_bytes(&self) -> u64 {
        self.charged_bytes.get()
    }

    /// How many more bytes may be read: up to one past the cap, so that
    /// exceeding it is observed rather than assumed.
    fn room_bytes(&self) -> u64 {
        self.cap_bytes
            .saturating_add(1)
            .saturating_sub(self.charged_bytes.get())
    }

    fn charge(&self, bytes: u64) -> io::Result<()> {
        let charged = self.charged_bytes.get().saturating_add(bytes);
        self.charged_bytes.set(charged);
        if charged > self.cap_bytes {
            self.tripped.set(true);
            return Err(io::Error::other("inflated byte budget exceeded"));
        }
        Ok(())
    }

    /// A deflated column's compressed bytes were charged as they were read
    /// and its inflated bytes again as they came out; only the latter are
    /// what automerge keeps.
    fn credit(&self, bytes: u64) {
        self.charged_bytes
            .set(self.charged_bytes.get().saturating_sub(bytes));
    }

    fn stop_for(&self, _error: io::Error) -> Stop {
        if self.tripped.get() {
            Stop::Inflate
        } else {
            Stop::Bad(FramingError::BadDeflate)
        }
    }
}

/// A reader that charges the meter for everything it yields and never
/// yields more than one byte past the cap.
struct Metered<'m, R> {
    inner: R,
    meter: &'m Meter,
}

impl<'m, R: Read> Metered<'m, R> {
    fn new(inner: R, meter: &'m Meter) -> Self {
        Metered { inner, meter }
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.meter.room_bytes()).unwrap_or(usize::MAX);
        if room == 0 {
            self.meter.tripped.set(true);
            return Err(io::Error::other("inflated byte budget exceeded"));
        }
        let want = buf.len().min(room);
        let read = self.inner.read(&mut buf[..want])?;
        self.meter.charge(read as u64)?;
        Ok(read)
    }
}

/// A small buffered byte reader with the LEB128 and skipping primitives
/// the walk needs. It also implements `Read`, handing out buffered bytes
/// first, so a column can be read through `take` without losing any.
struct ByteSource<'m, R> {
    inner: R,
    meter: &'m Meter,
    buf: [u8; READ_BUFFER_BYTES],
    pos: usize,
    end: usize,
}

impl<'m, R: Read> ByteSource<'m, R> {
    fn new(inner: R, meter: &'m Meter) -> Self {
        ByteSource {
            inner,
            meter,
            buf: [0; READ_BUFFER_BYTES],
            pos: 0,
            end: 0,
        }
    }

    /// Refills the buffer if it is empty; false at end of input.
    fn fill(&mut self) -> Result<bool, Stop> {
        if self.pos < self.end {
            return Ok(true);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.pos = 0;
                    self.end = read.min(self.buf.len());
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.meter.stop_for(e)),
            }
        }
    }

    fn byte_or_end(&mut self) -> Result<Option<u8>, Stop> {
        if !self.fill()? {
            return Ok(None);
        }
        let byte = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(byte))
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        self.byte_or_end()?
            .ok_or(Stop::Bad(FramingError::Truncated))
    }

    fn skip(&mut self, mut bytes: u64) -> Result<(), Stop> {
        while bytes > 0 {
            if !self.fill()? {
                return Err(Stop::Bad(FramingError::Truncated));
            }
            let buffered = (self.end - self.pos) as u64;
            let step = buffered.min(bytes);
            // step <= buffered, which fits in usize.
            self.pos += step as usize;
            bytes -= step;
        }
        Ok(())
    }

    /// Reads to the end of input, returning how many bytes there were.
    fn drain(&mut self) -> Result<u64, Stop> {
        let mut drained = 0u64;
        while self.fill()? {
            drained = drained.saturating_add((self.end - self.pos) as u64);
            self.pos = self.end;
        }
        Ok(drained)
    }

    fn uleb_or_end(&mut self) -> Result<Option<u64>, Stop> {
        let Some(first) = self.byte_or_end()? else {
            return Ok(None);
        };
        let mut value = leb_payload(first, 0)?;
        if first & 0x80 == 0 {
            return Ok(Some(value));
        }
        for shift in (7..64).step_by(7) {
            let byte = self.byte()?;
            value |= leb_payload(byte, shift)?;
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(Stop::Bad(FramingError::BadLeb128))
    }

    fn uleb(&mut self) -> Result<u64, Stop> {
        self.uleb_or_end()?
            .ok_or(Stop::Bad(FramingError::Truncated))
    }

    fn sleb_or_end(&mut self) -> Result<Option<i64>, Stop> {
        let Some(first) = self.byte_or_end()? else {
            return Ok(None);
        };
        let mut value = 0i64;
        let mut shift = 0u32;
        let mut byte = first;
        loop {
            if shift >= 64 {
                return Err(Stop::Bad(FramingError::BadLeb128));
            }
            value |= i64::from(byte & 0x7f).wrapping_shl(shift);
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= (-1i64).wrapping_shl(shift);
                }
                return Ok(Some(value));
            }
            byte = self.byte()?;
        }
    }

    fn sleb(&mut self) -> Result<i64, Stop> {
        self.sleb_or_end()?
            .ok_or(Stop::Bad(FramingError::Truncated))
    }

    /// Skips a `u` length and that many bytes (actor ids, messages,
    /// strings).
    fn skip_prefixed(&mut self) -> Result<(), Stop> {
        let len = self.uleb()?;
        self.skip(len)
    }

    /// Skips a `u` count of fixed-size items.
    fn skip_counted(&mut self, item_bytes: u64) -> Result<(), Stop> {
        let count = self.uleb()?;
        let bytes = count
            .checked_mul(item_bytes)
            .ok_or(Stop::Bad(FramingError::Truncated))?;
        self.skip(bytes)
    }

    /// Skips a `u` count of length-prefixed items. Each item is at least one
    /// byte, so the loop ends with the input.
    fn skip_counted_prefixed(&mut self) -> Result<(), Stop> {
        let count = self.uleb()?;
        for _ in 0..count {
            self.skip_prefixed()?;
        }
        Ok(())
    }
}

impl<R: Read> Read for ByteSource<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.end {
            let n = out.len().min(self.end - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

/// One column's metadata entry.
#[derive(Debug, Clone, Copy)]
struct ColumnMeta {
    spec: u32,
    data_bytes: u64,
}

impl ColumnMeta {
    fn id(&self) -> u32 {
        self.spec >> 4
    }
    fn column_type(&self) -> u32 {
        self.spec & 0b111
    }
    fn deflated(&self) -> bool {
        self.spec & COLUMN_DEFLATE_BIT != 0
    }
}

fn read_column_meta<R: Read>(src: &mut ByteSource<'_, R>) -> Result<Vec<ColumnMeta>, Stop> {
    let count = src.uleb()?;
    if count > COLUMNS_PER_SET_MAX {
        return Err(Stop::Bad(FramingError::TooManyColumns(count)));
    }
    // count <= COLUMNS_PER_SET_MAX, so the allocation is small.
    let mut columns = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let spec = src.uleb()?;
        let spec = u32::try_from(spec).map_err(|_| Stop::Bad(FramingError::BadColumnSpec(spec)))?;
        let data_bytes = src.uleb()?;
        columns.push(ColumnMeta { spec, data_bytes });
    }
    Ok(columns)
}

/// Rows found in one column set.
#[derive(Debug, Default)]
struct SetTally {
    /// The most rows any row-per-item column holds. automerge sizes a set
    /// by one such column (the action column of a change, the op id actor
    /// column of a document) and pads or refuses the rest; taking the
    /// largest bounds whichever it picks.
    rows: u64,
    /// The most entries any group holds, by its counts or by the rows of
    /// the columns grouped under it.
    entries: u64,
}

/// Walks a column set's data, which follows in metadata order. `rows_stop`
/// names the limit a set of too many rows breaks.
fn walk_columns<R: Read>(
    src: &mut ByteSource<'_, R>,
    columns: &[ColumnMeta],
    rows_max: u64,
    rows_stop: fn(u64) -> Stop,
    entries_max: u64,
) -> Result<SetTally, Stop> {
    let meter = src.meter;
    let mut tally = SetTally::default();
    for (position, column) in columns.iter().enumerate() {
        let grouped = column.column_type() != COLUMN_TYPE_GROUP
            && columns[..position]
                .iter()
                .any(|c| c.id() == column.id() && c.column_type() == COLUMN_TYPE_GROUP);
        let mut take = (&mut *src).take(column.data_bytes);
        let column_tally = if column.deflated() {
            let inflater = StreamInflater::new(&mut take);
            let mut inflated = ByteSource::new(Metered::new(inflater, meter), meter);
            walk_column(&mut inflated, column.column_type())?
        } else {
            let mut raw = ByteSource::new(&mut take, meter);
            walk_column(&mut raw, column.column_type())?
        };
        // An inflater may stop at the end of its deflate stream before the
        // column's bytes do; the rest still has to be stepped over.
        let mut leftover = ByteSource::new(&mut take, meter);
        leftover.drain()?;
        if take.limit() != 0 {
            return Err(Stop::Bad(FramingError::Truncated));
        }
        if column.deflated() {
            meter.credit(column.data_bytes);
        }

        if column.column_type() == COLUMN_TYPE_GROUP {
            tally.rows = tally.rows.max(column_tally.rows);
            tally.entries = tally.entries.max(column_tally.group_sum);
        } else if grouped {
            tally.entries = tally.entries.max(column_tally.rows);
        } else if column.column_type() != COLUMN_TYPE_VALUE {
            tally.rows = tally.rows.max(column_tally.rows);
        }
        if tally.rows > rows_max {
            return Err(rows_stop(tally.rows));
        }
        if tally.entries > entries_max {
            return Err(Stop::Entries(tally.entries));
        }
    }
    Ok(tally)
}

#[derive(Debug, Default)]
struct ColumnTally {
    rows: u64,
    /// Sum of the values of a group column: how many grouped entries its
    /// rows own.
    group_sum: u64,
}

/// Counts a column's rows from its runs without expanding them. Every
/// iteration consumes at least one byte, so the walk ends with the input.
fn walk_column<R: Read>(
    src: &mut ByteSource<'_, R>,
    column_type: u32,
) -> Result<ColumnTally, Stop> {
    let mut tally = ColumnTally::default();
    match column_type {
        COLUMN_TYPE_VALUE => {
            src.drain()?;
        }
        COLUMN_TYPE_BOOLEAN => {
            // Alternating run lengths of false and true, starting with false.
            while let Some(run) = src.uleb_or_end()? {
                tally.rows = tally.rows.saturating_add(run);
            }
        }
        _ => {
            while let Some(header) = src.sleb_or_end()? {
                if header > 0 {
                    let run = header.unsigned_abs();
                    let value = skip_value(src, column_type)?;
                    tally.rows = tally.rows.saturating_add(run);
                    tally.group_sum = tally.group_sum.saturating_add(run.saturating_mul(value));
                } else if header < 0 {
                    for _ in 0..header.unsigned_abs() {
                        let value = skip_value(src, column_type)?;
                        tally.rows = tally.rows.saturating_add(1);
                        tally.group_sum = tally.group_sum.saturating_add(value);
                    }
                } else {
                    let nulls = src.uleb()?;
                    tally.rows = tally.rows.saturating_add(nulls);
                }
            }
        }
    }
    Ok(tally)
}

/// Steps over one RLE value, returning it when it is an unsigned integer
/// (which is what group counts are) and 0 otherwise.
fn skip_value<R: Read>(src: &mut ByteSource<'_, R>, column_type: u32) -> Result<u64, Stop> {
    match column_type {
        COLUMN_TYPE_STRING => {
            src.skip_prefixed()?;
            Ok(0)
        }
        COLUMN_TYPE_DELTA => {
            src.sleb()?;
            Ok(0)
        }
        _ => src.uleb(),
    }
}

fn walk_change<R: Read>(
    src: &mut ByteSource<'_, R>,
    limits: &ChunkLimits,
) -> Result<ChunkTally, Stop> {
    src.skip_counted(HASH_LEN_BYTES)?; // deps
    src.skip_prefixed()?; // actor
    src.uleb()?; // seq
    src.uleb()?; // start op
    src.sleb()?; // timestamp
    src.skip_prefixed()?; // message
    src.skip_counted_prefixed()?; // other actors
    let columns = read_column_meta(src)?;
    let ops = walk_columns(src, &columns, limits.ops_max, Stop::Ops, limits.ops_max)?;
    src.drain()?; // extra bytes
    Ok(ChunkTally {
        ops: ops.rows,
        changes: 1,
    })
}

fn walk_document<R: Read>(
    src: &mut ByteSource<'_, R>,
    limits: &ChunkLimits,
) -> Result<ChunkTally, Stop> {
    src.skip_counted_prefixed()?; // actors
    src.skip_counted(HASH_LEN_BYTES)?; // heads
    let change_columns = read_column_meta(src)?;
    let op_columns = read_column_meta(src)?;
    let changes = walk_columns(
        src,
        &change_columns,
        limits.changes_max,
        Stop::Changes,
        limits.ops_max,
    )?;
    let ops = walk_columns(src, &op_columns, limits.ops_max, Stop::Ops, limits.ops_max)?;
    src.drain()?; // head indices
    Ok(ChunkTally {
        ops: ops.rows,
        changes: changes.rows,
    })
}

fn walk_bundle<R: Read>(
    src: &mut ByteSource<'_, R>,
    limits: &ChunkLimits,
) -> Result<ChunkTally, Stop> {
    src.skip_counted(HASH_LEN_BYTES)?; // deps
    src.skip_counted_prefixed()?; // actors
    let change_columns = read_column_meta(src)?;
    let changes = walk_columns(
        src,
        &change_columns,
        limits.changes_max,
        Stop::Changes,
        limits.ops_max,
    )?;
    let op_columns = read_column_meta(src)?;
    let ops = walk_columns(src, &op_columns, limits.ops_max, Stop::Ops, limits.ops_max)?;
    src.drain()?;
    Ok(ChunkTally {
        ops: ops.rows,
        changes: changes.rows,
    })
}

#[doc(hidden)]
pub mod attack;
#[cfg(test)]
mod tests;
