//! The sync protocol's wire format: length-delimited, typed frames.
//!
//! A frame is `u32 big-endian payload length ‖ payload`; the payload is one
//! message-type byte followed by the message body encoded with postcard. The
//! payload is at most [`FRAME_BYTES_MAX`] bytes, checked on encode and, as soon
//! as the four length bytes are in, on decode: a peer cannot make us buffer
//! more than one frame.
//!
//! Versioning: each node speaks a range of protocol versions
//! ([`VersionRange::OURS`]), and a session speaks the highest version both
//! ends speak ([`VersionRange::negotiate`]). Offices cannot all upgrade on one
//! day (a village may be offline for a week), so a release that changes the
//! wire keeps speaking the previous version for a while. The
//! [`Message::Hello`] body starts with the highest version, then the lowest,
//! then the station and tier; later versions only ever append fields to it,
//! and a hello's trailing bytes are ignored, so any node can read any newer
//! peer's hello far enough to agree on a version or refuse it with a clear
//! reason. A hello of version 2 or older (no range) is refused by its first
//! field. Message type bytes are never reused. The frames of every version
//! still spoken are frozen in `tests/vectors/wire-vN/` and replayed against
//! this code by `tests/wire_vectors.rs`: a change that fails those tests is
//! a new wire version, never a new recording of an old one.
//!
//! Bucket hashes travel sparse: a bitmap of the buckets that hold entries,
//! then only their hashes (an empty bucket's hash is the known
//! [`EMPTY_BUCKET`]). A village shares a handful of documents, so its digest
//! exchange costs a few hundred bytes instead of 4 KiB each way.
//!
//! Automerge sync messages can be far larger than a frame (a whole document of
//! several MB on a cold sync). They travel as consecutive [`Message::Sync`]
//! fragments carrying the total length and their offset; the receiver
//! reassembles at most one message at a time, at most
//! [`SYNC_MESSAGE_BYTES_MAX`] bytes.

use crate::identity::document_id::DocumentId;
use crate::identity::station::{StationId, Tier};
use crate::sync::digest::{BucketHash, RootHash, DIGEST_BUCKETS, EMPTY_BUCKET};
use crate::sync::host::HeadsDigest;
use serde::{Deserialize, Serialize};

/// Highest version of this wire protocol this node speaks. Bump on any
/// incompatible change.
/// 2: bucket hashes sparse (`BUCKET_HASHES_SPARSE`).
/// 3: the hello carries the range of versions spoken, and may grow.
/// 4: sync payloads are signed envelopes (`signing::SignedSyncMessage`);
///    frames as in 3.
pub const PROTOCOL_VERSION: u16 = 4;
/// Lowest version this node still speaks. Version 3 is the first that can
/// agree on a version, so it is also the floor.
pub const PROTOCOL_VERSION_MIN: u16 = 3;

/// The protocol versions a node speaks, lowest to highest (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: u16,
    pub max: u16,
}

impl VersionRange {
    /// What this node speaks.
    pub const OURS: VersionRange = VersionRange {
        min: PROTOCOL_VERSION_MIN,
        max: PROTOCOL_VERSION,
    };

    /// One version only (a peer older than version 3 says just one).
    pub fn exactly(version: u16) -> VersionRange {
        VersionRange {
            min: version,
            max: version,
        }
    }

    /// The version two nodes speak together: the highest both speak, or
    /// `None` when their ranges do not meet. Symmetric.
    pub fn negotiate(self, other: VersionRange) -> Option<u16> {
        let highest_common = self.max.min(other.max);
        (highest_common >= self.min.max(other.min)).then_some(highest_common)
    }
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "version {}", self.max)
        } else {
            write!(f, "versions {} to {}", self.min, self.max)
        }
    }
}
/// Bytes of the length prefix in front of every frame.
pub const FRAME_HEADER_BYTES: usize = 4;
/// Largest frame payload (type byte + body) we send or accept.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// Largest Automerge sync message we send or reassemble.
pub const SYNC_MESSAGE_BYTES_MAX: usize = 64 << 20;
/// Largest piece of a sync message in one frame: leaves room for the document
/// id and the fragment header within [`FRAME_BYTES_MAX`].
pub const SYNC_CHUNK_BYTES_MAX: usize = FRAME_BYTES_MAX - 4096;
/// Most (document, digest) entries in one bucket-contents frame.
pub const BUCKET_ENTRIES_PER_FRAME_MAX: usize = 2048;
/// Longest human-readable reason (goodbye, refusal, rejected hello) we send
/// or accept.
pub const REASON_BYTES_MAX: usize = 1024;

/// Message type bytes. Never reuse a retired value.
pub mod message_type {
    pub const HELLO: u8 = 1;
    pub const HELLO_REJECTED: u8 = 2;
    pub const SCOPE_ROOT: u8 = 3;
    /// Retired in protocol version 2 (all 256 hashes, dense).
    pub const BUCKET_HASHES_DENSE_RETIRED: u8 = 4;
    pub const BUCKET_CONTENTS: u8 = 5;
    pub const SYNC: u8 = 6;
    pub const SYNC_QUIET: u8 = 7;
    pub const REFUSED: u8 = 8;
    pub const PING: u8 = 9;
    pub const PONG: u8 = 10;
    pub const GOODBYE: u8 = 11;
    pub const BUCKET_HASHES_SPARSE: u8 = 12;
}

/// Bytes of the bitmap naming the non-empty buckets.
const BUCKET_BITMAP_BYTES: usize = DIGEST_BUCKETS / 8;

/// One protocol message. See `session.rs` for when each may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// First frame each way: who we are (must match the transport
    /// certificate) and the protocol versions we speak.
    Hello {
        versions: VersionRange,
        station: StationId,
        tier: Tier,
    },
    /// The peer's hello was refused; the connection is over.
    HelloRejected {
        protocol_version: u16,
        reason: String,
    },
    /// Digest of every document the sender holds in the receiver's scope.
    ScopeRoot {
        documents: u64,
        root: RootHash,
    },
    /// All [`DIGEST_BUCKETS`] bucket hashes, sent when the roots differ.
    BucketHashes {
        hashes: Vec<BucketHash>,
    },
    /// The sender's entries of one differing bucket; `last` ends the bucket.
    BucketContents {
        bucket: u8,
        entries: Vec<(DocumentId, HeadsDigest)>,
        last: bool,
    },
    /// One fragment of an Automerge sync message for `document`. `reply` says
    /// that this message answers one of the receiver's sync messages.
    Sync {
        document: DocumentId,
        reply: bool,
        message_bytes: u32,
        offset: u32,
        chunk: Vec<u8>,
    },
    /// Answers a sync message when the sender has nothing to say back.
    SyncQuiet {
        document: DocumentId,
    },
    /// The sender refused a sync message for `document` and will not sync it
    /// again in this session.
    Refused {
        document: DocumentId,
        reason: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// The sender closes the session.
    Goodbye {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {bytes} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { bytes: usize, max: usize },
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated { have: usize, need: usize },
    #[error("empty frame: no message type")]
    EmptyFrame,
    #[error("unknown message type {found}")]
    UnknownMessageType { found: u8 },
    #[error("message type {message_type} could not be decoded: {reason}")]
    Undecodable { message_type: u8, reason: String },
    #[error("message type {message_type} cannot be sent: {reason}")]
    Unencodable { message_type: u8, reason: String },
    #[error("peer speaks protocol {found}; this node speaks {supported}")]
    IncompatibleVersion {
        found: VersionRange,
        supported: VersionRange,
    },
}

// Bodies as they travel. Field order is part of the wire format.
#[derive(Serialize, Deserialize)]
struct HelloBody {
    protocol_version: u16,
    protocol_version_min: u16,
    station: StationId,
    tier: Tier,
}
#[derive(Serialize, Deserialize)]
struct HelloRejectedBody {
    protocol_version: u16,
    reason: String,
}
#[derive(Serialize, Deserialize)]
struct ScopeRootBody {
    documents: u64,
    root: RootHash,
}
/// Bit `b % 8` of byte `b / 8` set: bucket `b` is not empty, and its hash
/// is the next of `hashes`.
#[derive(Serialize, Deserialize)]
struct BucketHashesSparseBody {
    present: [u8; BUCKET_BITMAP_BYTES],
    hashes: Vec<BucketHash>,
}

impl BucketHashesSparseBody {
    fn from_dense(dense: &[BucketHash]) -> BucketHashesSparseBody {
        debug_assert_eq!(dense.len(), DIGEST_BUCKETS);
        let mut present = [0_u8; BUCKET_BITMAP_BYTES];
        let mut hashes = Vec::new();
        for (bucket, hash) in dense.iter().enumerate() {
            if *hash != EMPTY_BUCKET {
                present[bucket / 8] |= 1 << (bucket % 8);
                hashes.push(*hash);
            }
        }
        BucketHashesSparseBody { present, hashes }
    }

    fn into_dense(self) -> Result<Vec<BucketHash>, String> {
        let marked: usize = self
            .present
            .iter()
            .map(|byte| byte.count_ones() as usize)
            .sum();
        if marked != self.hashes.len() {
            return Err(format!(
                "{marked} buckets marked present but {} hashes given",
                self.hashes.len()
            ));
        }
        let mut given = self.hashes.into_iter();
        let mut dense = Vec::with_capacity(DIGEST_BUCKETS);
        for bucket in 0..DIGEST_BUCKETS {
            if self.present[bucket / 8] & (1 << (bucket % 8)) == 0 {
                dense.push(EMPTY_BUCKET);
                continue;
            }
            match given.next() {
                Some(hash) if hash != EMPTY_BUCKET => dense.push(hash),
                // Non-canonical: the same digest has one encoding only.
                _ => {
                    return Err(format!(
                        "bucket {bucket} marked present with the empty hash"
                    ))
                }
            }
        }
        debug_assert!(given.next().is_none());
        Ok(dense)
    }
}
#[derive(Serialize, Deserialize)]
struct BucketContentsBody {
    bucket: u8,
    entries: Vec<(DocumentId, HeadsDigest)>,
    last: bool,
}
#[derive(Serialize, Deserialize)]
struct SyncBody {
    document: DocumentId,
    reply: bool,
    message_bytes: u32,
    offset: u32,
    chunk: Vec<u8>,
}
/// Borrowing twin of [`SyncBody`] so a 1 MiB chunk is not copied to encode
/// it; `&[u8]` and `Vec<u8>` have the same postcard encoding.
#[derive(Serialize)]
struct SyncBodyOut<'a> {
    document: &'a DocumentId,
    reply: bool,
    message_bytes: u32,
    offset: u32,
    #[serde(with = "bytes_ref")]
    chunk: &'a [u8],
}
mod bytes_ref {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }
}
#[derive(Serialize, Deserialize)]
struct DocumentBody {
    document: DocumentId,
}
#[derive(Serialize, Deserialize)]
struct RefusedBody {
    document: DocumentId,
    reason: String,
}
#[derive(Serialize, Deserialize)]
struct NonceBody {
    nonce: u64,
}
#[derive(Serialize, Deserialize)]
struct ReasonBody {
    reason: String,
}

impl Message {
    pub fn message_type(&self) -> u8 {
        use message_type::*;
        match self {
            Message::Hello { .. } => HELLO,
            Message::HelloRejected { .. } => HELLO_REJECTED,
            Message::ScopeRoot { .. } => SCOPE_ROOT,
            Message::BucketHashes { .. } => BUCKET_HASHES_SPARSE,
            Message::BucketContents { .. } => BUCKET_CONTENTS,
            Message::Sync { .. } => SYNC,
            Message::SyncQuiet { .. } => SYNC_QUIET,
            Message::Refused { .. } => REFUSED,
            Message::Ping { .. } => PING,
            Message::Pong { .. } => PONG,
            Message::Goodbye { .. } => GOODBYE,
        }
    }

    /// Limits that the type system does not express. Checked on both encode
    /// and decode so that we never send what we would refuse.
    fn check_limits(&self) -> Result<(), String> {
        let reason_ok = |reason: &str| {
            if reason.len() > REASON_BYTES_MAX {
                Err(format!(
                    "reason of {} bytes exceeds {REASON_BYTES_MAX}",
                    reason.len()
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Message::HelloRejected { reason, .. }
            | Message::Goodbye { reason }
            | Message::Refused { reason, .. } => reason_ok(reason),
            Message::BucketHashes { hashes } if hashes.len() != DIGEST_BUCKETS => Err(format!(
                "{} bucket hashes; exactly {DIGEST_BUCKETS} expected",
                hashes.len()
            )),
            Message::BucketContents { entries, .. }
                if entries.len() > BUCKET_ENTRIES_PER_FRAME_MAX =>
            {
                Err(format!(
                    "{} bucket entries; at most {BUCKET_ENTRIES_PER_FRAME_MAX}",
                    entries.len()
                ))
            }
            Message::Sync {
                message_bytes,
                offset,
                chunk,
                ..
            } => {
                let total = *message_bytes as usize;
                let end = *offset as usize + chunk.len();
                if total > SYNC_MESSAGE_BYTES_MAX {
                    Err(format!("sync message of {total} bytes exceeds the limit of {SYNC_MESSAGE_BYTES_MAX}"))
                } else if chunk.len() > SYNC_CHUNK_BYTES_MAX {
                    Err(format!(
                        "sync chunk of {} bytes exceeds {SYNC_CHUNK_BYTES_MAX}",
                        chunk.len()
                    ))
                } else if end > total {
                    Err(format!(
                        "sync fragment ends at byte {end}, past the message's {total} bytes"
                    ))
                } else if chunk.is_empty() && total != 0 {
                    Err("empty sync fragment".to_string())
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// Encode `message` as one frame (length prefix included).
pub fn encode_frame(message: &Message) -> Result<Vec<u8>, WireError> {
    let message_type = message.message_type();
    message
        .check_limits()
        .map_err(|reason| WireError::Unencodable {
            message_type,
            reason,
        })?;
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    frame.push(message_type);
    let body = match message {
        Message::Hello {
            versions,
            station,
            tier,
        } => postcard::to_extend(
            &HelloBody {
                protocol_version: versions.max,
                protocol_version_min: versions.min,
                station: station.clone(),
                tier: *tier,
            },
            frame,
        ),
        Message::HelloRejected {
            protocol_version,
            reason,
        } => postcard::to_extend(
            &HelloRejectedBody {
                protocol_version: *protocol_version,
                reason: reason.clone(),
            },
            frame,
        ),
        Message::ScopeRoot { documents, root } => postcard::to_extend(
            &ScopeRootBody {
                documents: *documents,
                root: *root,
            },
            frame,
        ),
        Message::BucketHashes { hashes } => {
            postcard::to_extend(&BucketHashesSparseBody::from_dense(hashes), frame)
        }
        Message::BucketContents {
            bucket,
            entries,
            last,
        } => postcard::to_extend(
            &BucketContentsBody {
                bucket: *bucket,
                entries: entries.clone(),
                last: *last,
            },
            frame,
        ),
        Message::Sync {
            document,
            reply,
            message_bytes,
            offset,
            chunk,
        } => postcard::to_extend(
            &SyncBodyOut {
                document,
                reply: *reply,
                message_bytes: *message_bytes,
                offset: *offset,
                chunk,
            },
            frame,
        ),
        Message::SyncQuiet { document } => postcard::to_extend(
            &DocumentBody {
                document: document.clone(),
            },
            frame,
        ),
        Message::Refused { document, reason } => postcard::to_extend(
            &RefusedBody {
                document: document.clone(),
                reason: reason.clone(),
            },
            frame,
        ),
        Message::Ping { nonce } => postcard::to_extend(&NonceBody { nonce: *nonce }, frame),
        Message::Pong { nonce } => postcard::to_extend(&NonceBody { nonce: *nonce }, frame),
        Message::Goodbye { reason } => postcard::to_extend(
            &ReasonBody {
                reason: reason.clone(),
            },
            frame,
        ),
    };
    let mut frame = body.map_err(|error| WireError::Unencodable {
        message_type,
        reason: error.to_string(),
    })?;
    let payload_bytes = frame.len() - FRAME_HEADER_BYTES;
    if payload_bytes > FRAME_BYTES_MAX {
        return Err(WireError::FrameTooLarge {
            bytes: payload_bytes,
            max: FRAME_BYTES_MAX,
        });
    }
    frame[..FRAME_HEADER_BYTES].copy_from_slice(&(payload_bytes as u32).to_be_bytes());
    Ok(frame)
}

fn body<'a, T: Deserialize<'a>>(message_type: u8, bytes: &'a [u8]) -> Result<T, WireError> {
    let undecodable = |reason: String| WireError::Undecodable {
        message_type,
        reason,
    };
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|error| undecodable(error.to_string()))?;
    if !rest.is_empty() {
        return Err(undecodable(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Decode one frame payload (without its length prefix).
pub fn decode_payload(payload: &[u8]) -> Result<Message, WireError> {
    use message_type::*;
    let (&message_type, bytes) = payload.split_first().ok_or(WireError::EmptyFrame)?;
    if payload.len() > FRAME_BYTES_MAX {
        return Err(WireError::FrameTooLarge {
            bytes: payload.len(),
            max: FRAME_BYTES_MAX,
        });
    }
    let message = match message_type {
        HELLO => {
            // The highest version alone first: a hello of version 2 or
            // older has no range after it, and deserves a version error
            // rather than a garbled body.
            let (found, _) = postcard::take_from_bytes::<u16>(bytes).map_err(|error| {
                WireError::Undecodable {
                    message_type,
                    reason: error.to_string(),
                }
            })?;
            if found < PROTOCOL_VERSION_MIN {
                return Err(WireError::IncompatibleVersion {
                    found: VersionRange::exactly(found),
                    supported: VersionRange::OURS,
                });
            }
            // Trailing bytes are fields a newer version appended.
            let (b, _newer_fields) =
                postcard::take_from_bytes::<HelloBody>(bytes).map_err(|error| {
                    WireError::Undecodable {
                        message_type,
                        reason: error.to_string(),
                    }
                })?;
            if b.protocol_version_min > b.protocol_version {
                return Err(WireError::Undecodable {
                    message_type,
                    reason: format!(
                        "lowest protocol version {} above the highest {}",
                        b.protocol_version_min, b.protocol_version
                    ),
                });
            }
            let versions = VersionRange {
                min: b.protocol_version_min,
                max: b.protocol_version,
            };
            if versions.negotiate(VersionRange::OURS).is_none() {
                return Err(WireError::IncompatibleVersion {
                    found: versions,
                    supported: VersionRange::OURS,
                });
            }
            Message::Hello {
                versions,
                station: b.station,
                tier: b.tier,
            }
        }
        HELLO_REJECTED => {
            let b: HelloRejectedBody = body(message_type, bytes)?;
            Message::HelloRejected {
                protocol_version: b.protocol_version,
                reason: b.reason,
            }
        }
        SCOPE_ROOT => {
            let b: ScopeRootBody = body(message_type, bytes)?;
            Message::ScopeRoot {
                documents: b.documents,
                root: b.root,
            }
        }
        BUCKET_HASHES_SPARSE => Message::BucketHashes {
            hashes: body::<BucketHashesSparseBody>(message_type, bytes)?
                .into_dense()
                .map_err(|reason| WireError::Undecodable {
                    message_type,
                    reason,
                })?,
        },
        BUCKET_CONTENTS => {
            let b: BucketContentsBody = body(message_type, bytes)?;
            Message::BucketContents {
                bucket: b.bucket,
                entries: b.entries,
                last: b.last,
            }
        }
        SYNC => {
            let b: SyncBody = body(message_type, bytes)?;
            Message::Sync {
                document: b.document,
                reply: b.reply,
                message_bytes: b.message_bytes,
                offset: b.offset,
                chunk: b.chunk,
            }
        }
        SYNC_QUIET => Message::SyncQuiet {
            document: body::<DocumentBody>(message_type, bytes)?.document,
        },
        REFUSED => {
            let b: RefusedBody = body(message_type, bytes)?;
            Message::Refused {
                document: b.document,
                reason: b.reason,
            }
        }
        PING => Message::Ping {
            nonce: body::<NonceBody>(message_type, bytes)?.nonce,
        },
        PONG => Message::Pong {
            nonce: body::<NonceBody>(message_type, bytes)?.nonce,
        },
        GOODBYE => Message::Goodbye {
            reason: body::<ReasonBody>(message_type, bytes)?.reason,
        },
        found => return Err(WireError::UnknownMessageType { found }),
    };
    message
        .check_limits()
        .map_err(|reason| WireError::Undecodable {
            message_type,
            reason,
        })?;
    Ok(message)
}

/// Incremental frame decoder: push bytes as they arrive, in any chunking, and
/// pop whole messages. Holds at most one frame plus what was pushed since.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed; compacted lazily.
    consumed: usize,
    /// Set once an error was returned: the stream cannot be resynchronised.
    failed: Option<WireError>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.consumed > 0 && self.consumed == self.buffer.len() {
            self.buffer.clear();
            self.consumed = 0;
        } else if self.consumed >= FRAME_BYTES_MAX {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a message.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.consumed
    }

    /// The next whole message, `Ok(None)` if more bytes are needed. After an
    /// error every later call returns the same error.
    pub fn pop(&mut self) -> Result<Option<Message>, WireError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.pop_inner();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn pop_inner(&mut self) -> Result<Option<Message>, WireError> {
        let available = &self.buffer[self.consumed..];
        if available.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        header.copy_from_slice(&available[..FRAME_HEADER_BYTES]);
        let payload_bytes = u32::from_be_bytes(header) as usize;
        if payload_bytes > FRAME_BYTES_MAX {
            return Err(WireError::FrameTooLarge {
                bytes: payload_bytes,
                max: FRAME_BYTES_MAX,
            });
        }
        if available.len() < FRAME_HEADER_BYTES + payload_bytes {
            return Ok(None);
        }
        let payload = &available[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_bytes];
        let message = decode_payload(payload)?;
        self.consumed += FRAME_HEADER_BYTES + payload_bytes;
        debug_assert!(self.consumed <= self.buffer.len());
        Ok(Some(message))
    }

    /// The stream ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), WireError> {
        let available = &self.buffer[self.consumed..];
        if available.is_empty() {
            return Ok(());
        }
        let need = if available.len() < FRAME_HEADER_BYTES {
            FRAME_HEADER_BYTES
        } else {
            let mut header = [0u8; FRAME_HEADER_BYTES];
            header.copy_from_slice(&available[..FRAME_HEADER_BYTES]);
            FRAME_HEADER_BYTES + u32::from_be_bytes(header) as usize
        };
        Err(WireError::Truncated {
            have: available.len(),
            need,
        })
    }
}

#[cfg(test)]
mod tests;
