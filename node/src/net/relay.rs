//! A userspace UDP relay that impairs a link: cut, loss, delay, jitter,
//! duplication and reordering.
//!
//! It sits between a dialling node and the office it dials (QUIC is UDP), so
//! the demo can cut a village off for real and the fault tests can make a
//! link bad in ways `tc netem` would (that kernel module is not available on
//! every machine). Each client address gets its own upstream socket, so
//! several dialling nodes can share one relay.
//!
//! It also counts what it passes on each way ([`Relay::traffic`]): a node's
//! own `status` counts only sync payload, while the UDP path also carries
//! QUIC framing, the TLS handshake and acknowledgements, which is what a
//! township's metered link pays for.

use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Largest datagram relayed (QUIC keeps below 1,500 bytes; be generous).
pub const DATAGRAM_BYTES_MAX: usize = 65_535;
/// Most distinct clients one relay serves.
pub const CLIENTS_MAX: usize = 256;
/// Longest delay accepted, so a mistaken setting cannot hold packets forever.
pub const DELAY_MAX: Duration = Duration::from_secs(10);

/// How the link misbehaves. The default passes everything straight through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Impairment {
    /// Drop everything, both ways (a cut cable).
    pub cut: bool,
    /// Share of datagrams dropped, 0.0–1.0.
    pub loss: f64,
    pub delay: Duration,
    /// Extra random delay up to this much; packets overtake each other.
    pub jitter: Duration,
    /// Share of datagrams sent twice.
    pub duplicate: f64,
}

/// Datagrams and their UDP payload bytes sent on, each way. "Up" is from
/// the dialling clients to the upstream, "down" back to the clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub up_bytes: u64,
    pub up_datagrams: u64,
    pub down_bytes: u64,
    pub down_datagrams: u64,
}

impl Traffic {
    /// What passed between `earlier` (a snapshot of the same relay) and this one.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            up_bytes: self.up_bytes.saturating_sub(earlier.up_bytes),
            up_datagrams: self.up_datagrams.saturating_sub(earlier.up_datagrams),
            down_bytes: self.down_bytes.saturating_sub(earlier.down_bytes),
            down_datagrams: self.down_datagrams.saturating_sub(earlier.down_datagrams),
        }
    }
}

/// One direction's totals. Counted when a datagram is actually sent on, so
/// dropped ones are not counted and duplicated ones count twice: the
/// figures are what the far side's link carried.
#[derive(Debug, Default)]
struct Counter {
    bytes: AtomicU64,
    datagrams: AtomicU64,
}

impl Counter {
    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.datagrams.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.datagrams.load(Ordering::Relaxed),
        )
    }
}

#[derive(Clone)]
pub struct Relay {
    pub listen: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    up: Arc<Counter>,
    down: Arc<Counter>,
}

impl Relay {
    /// Relay datagrams arriving at `listen` to `upstream` and back.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Relay> {
        let socket = Arc::new(UdpSocket::bind(listen).await?);
        let relay = Relay {
            listen: socket.local_addr()?,
            impairment: Arc::new(Mutex::new(Impairment::default())),
            tasks: Arc::new(Mutex::new(Vec::new())),
            up: Arc::default(),
            down: Arc::default(),
        };
        let task = tokio::spawn(downstream_loop(
            socket,
            upstream,
            relay.impairment.clone(),
            relay.tasks.clone(),
            (relay.up.clone(), relay.down.clone()),
        ));
        relay.tasks.lock().expect("relay task list").push(task);
        Ok(relay)
    }

    pub fn set(&self, impairment: Impairment) {
        *self.impairment.lock().expect("relay impairment") = impairment;
    }

    pub fn set_cut(&self, cut: bool) {
        self.impairment.lock().expect("relay impairment").cut = cut;
    }

    /// Everything sent on since the relay started.
    pub fn traffic(&self) -> Traffic {
        let (up_bytes, up_datagrams) = self.up.read();
        let (down_bytes, down_datagrams) = self.down.read();
        Traffic {
            up_bytes,
            up_datagrams,
            down_bytes,
            down_datagrams,
        }
    }

    pub fn stop(&self) {
        for task in self.tasks.lock().expect("relay task list").drain(..) {
            task.abort();
        }
    }
}

/// Send `bytes` to `to` unless the impairment drops it; maybe late, maybe twice.
async fn forward(
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    bytes: Vec<u8>,
    impairment: &Mutex<Impairment>,
    counter: &Arc<Counter>,
) {
    let setting = impairment.lock().expect("relay impairment").clone();
    // Decide everything before awaiting: the RNG is not Send.
    let plan: Vec<Duration> = {
        let mut rng = rand::thread_rng();
        if setting.cut || (setting.loss > 0.0 && rng.gen_bool(setting.loss.clamp(0.0, 1.0))) {
            return;
        }
        let copies = if setting.duplicate > 0.0 && rng.gen_bool(setting.duplicate.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let jitter_ms = setting.jitter.as_millis() as u64;
                let extra = if jitter_ms > 0 {
                    Duration::from_millis(rng.gen_range(0..=jitter_ms))
                } else {
                    Duration::ZERO
                };
                (setting.delay + extra).min(DELAY_MAX)
            })
            .collect()
    };
    for delay in plan {
        let (socket, bytes, counter) = (socket.clone(), bytes.clone(), counter.clone());
        if delay.is_zero() {
            // Awaited, not try_send: a fresh socket's readiness is unknown
            // and try_send would drop the first datagram.
            if let Ok(sent) = socket.send_to(&bytes, to).await {
                counter.add(sent);
            }
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(sent) = socket.send_to(&bytes, to).await {
                    counter.add(sent);
                }
            });
        }
    }
}

async fn downstream_loop(
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    (up, down): (Arc<Counter>, Arc<Counter>),
) {
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        let Ok((len, client)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let outbound = match clients.get(&client) {
            Some(outbound) => outbound.clone(),
            None => {
                if clients.len() >= CLIENTS_MAX {
                    tracing::warn!(%client, "relay: too many clients; dropping");
                    continue;
                }
                // Any local address: the upstream may be on loopback or across a link.
                let bind: SocketAddr = if upstream.is_ipv6() {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                }
                .parse()
                .expect("literal");
                let Ok(outbound) = UdpSocket::bind(bind).await else {
                    continue;
                };
                let outbound = Arc::new(outbound);
                clients.insert(client, outbound.clone());
                let task = tokio::spawn(upstream_loop(
                    outbound.clone(),
                    socket.clone(),
                    client,
                    impairment.clone(),
                    down.clone(),
                ));
                tasks.lock().expect("relay task list").push(task);
                outbound
            }
        };
        forward(outbound, upstream, buffer[..len].to_vec(), &impairment, &up).await;
    }
}

async fn upstream_loop(
    outbound: Arc<UdpSocket>,
    downstream: Arc<UdpSocket>,
    client: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    down: Arc<Counter>,
) {
    let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        let Ok((len, _)) = outbound.recv_from(&mut buffer).await else {
            continue;
        };
        forward(
            downstream.clone(),
            client,
            buffer[..len].to_vec(),
            &impairment,
            &down,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                let _ = socket.send_to(&buffer[..len], from).await;
            }
        });
        addr
    }

    /// Generous for answers (a loaded CI machine is slow); short where
    /// silence is the expected outcome.
    const ANSWER_WAIT: Duration = Duration::from_secs(3);
    const SILENCE_WAIT: Duration = Duration::from_millis(300);

    async fn round_trip(
        client: &UdpSocket,
        to: SocketAddr,
        payload: &[u8],
        wait: Duration,
    ) -> Option<Vec<u8>> {
        client.send_to(payload, to).await.unwrap();
        let mut buffer = [0u8; 2048];
        match tokio::time::timeout(wait, client.recv_from(&mut buffer)).await {
            Ok(Ok((len, _))) => Some(buffer[..len].to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn relays_cuts_and_heals() {
        let server = echo_server().await;
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(
            round_trip(&client, relay.listen, b"hello", ANSWER_WAIT)
                .await
                .as_deref(),
            Some(&b"hello"[..])
        );
        relay.set_cut(true);
        assert_eq!(
            round_trip(&client, relay.listen, b"lost", SILENCE_WAIT).await,
            None
        );
        relay.set_cut(false);
        assert_eq!(
            round_trip(&client, relay.listen, b"back", ANSWER_WAIT)
                .await
                .as_deref(),
            Some(&b"back"[..])
        );
        relay.set(Impairment {
            duplicate: 1.0,
            ..Impairment::default()
        });
        // Duplicated both ways: the request twice, each echoed twice.
        client.send_to(b"twice", relay.listen).await.unwrap();
        let mut count = 0;
        let mut buffer = [0u8; 64];
        while count < 4 {
            match tokio::time::timeout(ANSWER_WAIT, client.recv_from(&mut buffer)).await {
                Ok(Ok(_)) => count += 1,
                _ => break,
            }
        }
        // No fifth copy either.
        if tokio::time::timeout(SILENCE_WAIT, client.recv_from(&mut buffer))
            .await
            .is_ok()
        {
            count += 1;
        }
        assert_eq!(count, 4);
        relay.stop();
    }

    /// The relay's traffic once it equals `expected`, or whatever it is
    /// after [`ANSWER_WAIT`]: a datagram is counted just after it is sent,
    /// so the echo can reach the client a moment before its count moves.
    async fn traffic_when(relay: &Relay, expected: Traffic) -> Traffic {
        let started = std::time::Instant::now();
        loop {
            let now = relay.traffic();
            if now == expected || started.elapsed() >= ANSWER_WAIT {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn counts_what_it_sends_on_each_way() {
        let server = echo_server().await;
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for size in [100, 200, 300] {
            let payload = vec![7u8; size];
            assert_eq!(
                round_trip(&client, relay.listen, &payload, ANSWER_WAIT).await,
                Some(payload)
            );
        }
        let three = Traffic {
            up_bytes: 600,
            up_datagrams: 3,
            down_bytes: 600,
            down_datagrams: 3,
        };
        assert_eq!(traffic_when(&relay, three).await, three);

        // Dropped datagrams are not counted.
        relay.set_cut(true);
        assert_eq!(
            round_trip(&client, relay.listen, &[1u8; 40], SILENCE_WAIT).await,
            None
        );
        assert_eq!(relay.traffic(), three);

        // Duplicates count twice: the request twice, each echoed twice.
        relay.set(Impairment {
            duplicate: 1.0,
            ..Impairment::default()
        });
        client.send_to(&[2u8; 50], relay.listen).await.unwrap();
        let expected = Traffic {
            up_bytes: 600 + 2 * 50,
            up_datagrams: 5,
            down_bytes: 600 + 4 * 50,
            down_datagrams: 7,
        };
        let after = traffic_when(&relay, expected).await;
        assert_eq!(after, expected);
        assert_eq!(
            after.since(&three),
            Traffic {
                up_bytes: 100,
                up_datagrams: 2,
                down_bytes: 200,
                down_datagrams: 4,
            }
        );
        relay.stop();
    }
}
