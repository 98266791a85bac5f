//! The simulated network: connections as ordered, reliable byte streams.
//!
//! A connection is what a QUIC stream gives the session: bytes arrive in
//! order, without loss or duplication, in chunks of any size, after latency,
//! jitter and serialisation at the link's bandwidth. Everything unreliable
//! happens *across* connections: a connection can be cut mid-sync, and bytes
//! still in flight on a cut connection may arrive after a new connection has
//! opened on the same link. Those carry their dead connection's id and are
//! dropped on arrival, as QUIC drops packets of a closed connection.
//!
//! A one-way partition stalls one direction: bytes queue at the sender and
//! leave when the partition heals (or are lost with the connection).

use crate::time::SimMs;
use crate::topology::LinkSpec;
use rand::Rng;

pub type ConnectionId = u64;

/// Direction of travel: 0 = dialer → listener, 1 = listener → dialer. The
/// receiving side of direction `d` is side `1 - d`... kept as the sender's
/// side index to make the code read as "side s sends".
pub type Side = usize;
pub const DIALER: Side = 0;
pub const LISTENER: Side = 1;

/// Bytes a sender may queue on a stalled direction before the connection is
/// considered dead (a real transport would time out long before).
pub const STALLED_BYTES_MAX: usize = 64 * 1024 * 1024;

/// One chunk scheduled for arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub at: SimMs,
    pub chunk: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct Direction {
    /// The link is busy serialising earlier bytes until then.
    busy_until: SimMs,
    /// Arrival time of the last chunk: later chunks never arrive before it.
    last_arrival: SimMs,
    stalled: bool,
    held: Vec<u8>,
}

/// The transport half of a connection (the sessions live with the world).
#[derive(Debug, Clone)]
pub struct Stream {
    directions: [Direction; 2],
    pub bytes_sent: u64,
    pub chunks_sent: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{held} bytes held on a stalled direction, more than {max}")]
pub struct Overflow {
    pub held: usize,
    pub max: usize,
}

impl Stream {
    pub fn new(now: SimMs) -> Stream {
        let direction = Direction {
            busy_until: now,
            last_arrival: now,
            stalled: false,
            held: Vec::new(),
        };
        Stream {
            directions: [direction.clone(), direction],
            bytes_sent: 0,
            chunks_sent: 0,
        }
    }

    pub fn is_stalled(&self, from: Side) -> bool {
        self.directions[from].stalled
    }

    /// Side `from` writes `bytes`. Returns the chunks to deliver to the other
    /// side and when, in order; nothing while the direction is stalled.
    pub fn send<R: Rng>(
        &mut self,
        from: Side,
        bytes: &[u8],
        now: SimMs,
        link: &LinkSpec,
        chunk_bytes_max: usize,
        rng: &mut R,
    ) -> Result<Vec<Arrival>, Overflow> {
        let direction = &mut self.directions[from];
        if direction.stalled {
            direction.held.extend_from_slice(bytes);
            if direction.held.len() > STALLED_BYTES_MAX {
                return Err(Overflow {
                    held: direction.held.len(),
                    max: STALLED_BYTES_MAX,
                });
            }
            return Ok(Vec::new());
        }
        Ok(self.transmit(from, bytes, now, link, chunk_bytes_max, rng))
    }

    fn transmit<R: Rng>(
        &mut self,
        from: Side,
        bytes: &[u8],
        now: SimMs,
        link: &LinkSpec,
        chunk_bytes_max: usize,
        rng: &mut R,
    ) -> Vec<Arrival> {
        assert!(chunk_bytes_max > 0);
        let direction = &mut self.directions[from];
        let mut arrivals = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = rng.gen_range(1..=chunk_bytes_max).min(bytes.len() - at);
            let start = direction.busy_until.max(now);
            direction.busy_until =
                start + (len as u64).div_ceil(link.bandwidth_bytes_per_ms.max(1));
            let jitter = if link.jitter_ms == 0 {
                0
            } else {
                rng.gen_range(0..=link.jitter_ms)
            };
            let arrival =
                (direction.busy_until + link.latency_ms + jitter).max(direction.last_arrival);
            direction.last_arrival = arrival;
            arrivals.push(Arrival {
                at: arrival,
                chunk: bytes[at..at + len].to_vec(),
            });
            at += len;
        }
        self.bytes_sent += bytes.len() as u64;
        self.chunks_sent += arrivals.len() as u64;
        debug_assert!(
            arrivals.windows(2).all(|w| w[0].at <= w[1].at),
            "a stream delivers in order"
        );
        arrivals
    }

    pub fn stall(&mut self, from: Side) {
        self.directions[from].stalled = true;
    }

    /// Resume a stalled direction; the bytes held meanwhile leave now.
    pub fn resume<R: Rng>(
        &mut self,
        from: Side,
        now: SimMs,
        link: &LinkSpec,
        chunk_bytes_max: usize,
        rng: &mut R,
    ) -> Vec<Arrival> {
        let direction = &mut self.directions[from];
        direction.stalled = false;
        let held = std::mem::take(&mut direction.held);
        if held.is_empty() {
            return Vec::new();
        }
        self.transmit(from, &held, now, link, chunk_bytes_max, rng)
    }

    /// Bytes sent but not yet arrived, or held; for quiescence detection.
    pub fn held_bytes(&self) -> usize {
        self.directions.iter().map(|d| d.held.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::{Stream, DIALER, LISTENER};
    use crate::topology::{LinkKind, LinkSpec};
    use proptest::prelude::*;
    use rand::Rng;
    use rand::SeedableRng;

    fn link(latency_ms: u64, jitter_ms: u64, bandwidth: u64) -> LinkSpec {
        LinkSpec {
            dialer: 1,
            listener: 0,
            kind: LinkKind::Parent,
            latency_ms,
            jitter_ms,
            bandwidth_bytes_per_ms: bandwidth,
        }
    }

    proptest! {
        #[test]
        fn a_stream_delivers_every_byte_once_in_order(
            seed in any::<u64>(),
            writes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
            chunk_max in 1usize..200,
            jitter in 0u64..50,
            stall_at in 0usize..20,
        ) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let link = link(10, jitter, 3);
            let mut stream = Stream::new(0);
            let mut arrivals = Vec::new();
            let mut now = 0;
            for (i, write) in writes.iter().enumerate() {
                if i == stall_at { stream.stall(DIALER); }
                arrivals.extend(stream.send(DIALER, write, now, &link, chunk_max, &mut rng).unwrap());
                now += rng.gen_range(0..30);
            }
            arrivals.extend(stream.resume(DIALER, now, &link, chunk_max, &mut rng));
            prop_assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
            prop_assert!(arrivals.iter().all(|a| !a.chunk.is_empty() && a.chunk.len() <= chunk_max));
            let received: Vec<u8> = arrivals.into_iter().flat_map(|a| a.chunk).collect();
            let written: Vec<u8> = writes.concat();
            prop_assert_eq!(received, written);
        }
    }

    #[test]
    fn bandwidth_and_latency_delay_arrival() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut stream = Stream::new(0);
        let arrivals = stream
            .send(DIALER, &[0; 1000], 0, &link(50, 0, 10), 1000, &mut rng)
            .unwrap();
        // 1000 bytes at 10 B/ms then 50 ms latency (each chunk rounds up a millisecond).
        let last = arrivals.last().unwrap().at;
        assert!((150..150 + arrivals.len() as u64).contains(&last), "{last}");
        let stalled = {
            stream.stall(LISTENER);
            stream
                .send(LISTENER, b"held", 0, &link(50, 0, 10), 1000, &mut rng)
                .unwrap()
        };
        assert!(stalled.is_empty());
        assert_eq!(stream.held_bytes(), 4);
    }
}
