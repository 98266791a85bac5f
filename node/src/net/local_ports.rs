//! Ports on 127.0.0.1 for several nodes started on one machine (the demo
//! county, the multi-process tests), chosen so that none can be taken by
//! someone else between being chosen and being bound.
//!
//! A node is told its ports before it starts, and the chooser must let go of
//! a port before the node can bind it. Ports found with `bind(0)` lose that
//! race: the kernel offers a released port again to the next `bind(0)`, and
//! any socket bound to port 0 in between — a relay's upstream socket, a QUIC
//! client, another test's endpoint — may get it. So ports are chosen from
//! outside the kernel's ephemeral range, which `bind(0)` and outgoing
//! connections never use: only a [`PortPicker`] hands them out, each once,
//! and each is checked free when handed out.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// Lowest port handed out (well clear of the privileged and registered
/// services' usual ports).
pub const PICKED_PORT_MIN: u16 = 10_000;
/// Fewest ports a range must offer to be used.
pub const PICKED_PORTS_MIN: u16 = 2_000;
/// Linux's default ephemeral range, if the kernel's cannot be read.
const EPHEMERAL_DEFAULT: RangeInclusive<u16> = 32_768..=60_999;

/// The kernel's ephemeral range, from which it picks for `bind(0)` and
/// outgoing connections.
pub fn ephemeral_ports() -> RangeInclusive<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_port_range(&text))
        .unwrap_or(EPHEMERAL_DEFAULT)
}

fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut bounds = text.split_whitespace().map(|bound| bound.parse::<u16>());
    let (low, high) = (bounds.next()?.ok()?, bounds.next()?.ok()?);
    (low <= high).then_some(low..=high)
}

/// Ports to hand out: those below the ephemeral range, or above it when it
/// starts too low to leave room. `None` if neither side has room.
pub fn ports_outside(ephemeral: &RangeInclusive<u16>) -> Option<RangeInclusive<u16>> {
    let (low, high) = (*ephemeral.start(), *ephemeral.end());
    if low >= PICKED_PORT_MIN.saturating_add(PICKED_PORTS_MIN) {
        return Some(PICKED_PORT_MIN..=low - 1);
    }
    if high <= u16::MAX - PICKED_PORTS_MIN {
        return Some(high + 1..=u16::MAX);
    }
    None
}

/// Hands out ports of a range, each at most once.
#[derive(Debug)]
pub struct PortPicker {
    range: RangeInclusive<u16>,
    /// Where the scan starts, so two pickers in two processes at once
    /// (two test binaries run by hand) rarely probe the same ports.
    start: u32,
    handed_out: BTreeSet<u16>,
}

impl PortPicker {
    /// A picker over the ports outside this machine's ephemeral range,
    /// scanning from an offset derived from `seed` (e.g. the process id).
    pub fn outside_ephemeral(seed: u32) -> Option<PortPicker> {
        ports_outside(&ephemeral_ports()).map(|range| PortPicker::over(range, seed))
    }

    pub fn over(range: RangeInclusive<u16>, seed: u32) -> PortPicker {
        let span = PortPicker::span_of(&range);
        PortPicker {
            range,
            start: seed % span,
            handed_out: BTreeSet::new(),
        }
    }

    fn span_of(range: &RangeInclusive<u16>) -> u32 {
        u32::from(range.end() - range.start()) + 1
    }

    /// The next port not handed out before for which `is_free` holds.
    pub fn pick(&mut self, mut is_free: impl FnMut(u16) -> bool) -> Option<u16> {
        let span = PortPicker::span_of(&self.range);
        for step in 0..span {
            let offset = (self.start + step) % span;
            let port = u16::try_from(u32::from(*self.range.start()) + offset)
                .expect("an offset within the range");
            if !self.handed_out.contains(&port) && is_free(port) {
                self.handed_out.insert(port);
                // The next pick scans on from here, not from the start again.
                self.start = (offset + 1) % span;
                debug_assert!(self.range.contains(&port));
                return Some(port);
            }
        }
        None
    }
}

/// Is `port` of 127.0.0.1 free for a TCP listener right now?
pub fn tcp_port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Is `port` of 127.0.0.1 free for a UDP socket right now?
pub fn udp_port_is_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_handed_out_once_each_and_busy_ones_skipped() {
        let mut picker = PortPicker::over(20_000..=20_009, 7);
        let mut probed = Vec::new();
        let picks: Vec<u16> = (0..10)
            .map(|_| {
                picker
                    .pick(|port| {
                        probed.push(port);
                        port != 20_003
                    })
                    .unwrap_or(0)
            })
            .collect();
        let distinct: BTreeSet<u16> = picks.iter().copied().collect();
        assert_eq!(distinct.len(), 10, "{picks:?}");
        // Nine free ports, then none left: the busy one is never handed out.
        assert_eq!(picks.iter().filter(|&&port| port == 0).count(), 1);
        assert!(!picks.contains(&20_003));
        assert!(probed.iter().all(|port| (20_000..=20_009).contains(port)));
        assert_eq!(picker.pick(|_| true), Some(20_003));
        assert_eq!(picker.pick(|_| true), None);
    }

    #[test]
    fn the_ports_handed_out_leave_the_kernel_its_range_wherever_it_is() {
        assert_eq!(ports_outside(&(32_768..=60_999)), Some(10_000..=32_767));
        // Ranges that start low leave room above them only.
        assert_eq!(ports_outside(&(1_024..=50_000)), Some(50_001..=65_535));
        assert_eq!(ports_outside(&(11_000..=60_999)), Some(61_000..=65_535));
        assert_eq!(ports_outside(&(1_024..=65_000)), None);
        let ephemeral = ephemeral_ports();
        let mut picker = PortPicker::outside_ephemeral(std::process::id()).unwrap();
        for _ in 0..50 {
            let port = picker.pick(|_| true).unwrap();
            assert!(!ephemeral.contains(&port), "{port} in {ephemeral:?}");
        }
    }

    #[test]
    fn the_kernel_range_is_read_or_the_default_taken() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32_768..=60_999));
        assert_eq!(parse_port_range("9 8"), None);
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(parse_port_range(""), None);
    }
}
