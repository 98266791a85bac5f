//! A userspace UDP relay that impairs a link: cut, loss, delay, jitter,
//! duplication and reordering.
//!
//! It sits between a dialling node and the office it dials (QUIC is UDP), so
//! the demo can cut a village off for real and the fault tests can make a
//! link bad in ways `tc netem` would (that kernel module is not available on
//! every machine). Each client address gets its own upstream socket, so
//! several dialling nodes can share one relay.

use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
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

#[derive(Clone)]
pub struct Relay {
    pub listen: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    /// Relay datagrams arriving at `listen` to `upstream` and back.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Relay> {
        let socket = Arc::new(UdpSocket::bind(listen).await?);
        let relay = Relay {
            listen: socket.local_addr()?,
            impairment: Arc::new(Mutex::new(Impairment::default())),
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        let task = tokio::spawn(downstream_loop(
            socket,
            upstream,
            relay.impairment.clone(),
            relay.tasks.clone(),
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
        let (socket, bytes) = (socket.clone(), bytes.clone());
        if delay.is_zero() {
            // Awaited, not try_send: a fresh socket's readiness is unknown
            // and try_send would drop the first datagram.
            let _ = socket.send_to(&bytes, to).await;
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = socket.send_to(&bytes, to).await;
            });
        }
    }
}

async fn downstream_loop(
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
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
                ));
                tasks.lock().expect("relay task list").push(task);
                outbound
            }
        };
        forward(outbound, upstream, buffer[..len].to_vec(), &impairment).await;
    }
}

async fn upstream_loop(
    outbound: Arc<UdpSocket>,
    downstream: Arc<UdpSocket>,
    client: SocketAddr,
    impairment: Arc<Mutex<Impairment>>,
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
}
