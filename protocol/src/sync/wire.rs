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
//! field. Message type bytes are never reused.
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
pub const PROTOCOL_VERSION: u16 = 3;
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
mod tests {
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
        assert!(
            full.len() <= FRAME_HEADER_BYTES + 1 + BUCKET_BITMAP_BYTES + 2 + DIGEST_BUCKETS * 16
        );
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
                "peer speaks protocol version {}; this node speaks version {}",
                PROTOCOL_VERSION_MIN - 1,
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
}
