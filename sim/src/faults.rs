//! The fault schedule, drawn up front from the fault stream.
//!
//! Offline periods come from the flags; crashes, connection cuts and
//! partitions from the seed's fault mix. Every fault ends by the final heal
//! at the end of the simulated days; nothing is scheduled after it.

use crate::config::{FaultMix, SimConfig};
use crate::network::Side;
use crate::rng::{self, Stream};
use crate::time::{SimMs, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::topology::{LinkIndex, LinkKind, NodeIndex, Topology};
use civsync_protocol::Tier;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKind {
    /// Every link into nodes of this tier is cut (e.g. all townships lose
    /// their county).
    Tier(Tier),
    /// A township and its villages are cut off from everything else.
    Subtree(NodeIndex),
    /// Bytes from one side of these links stall; the other way still flows.
    OneWay { links: Vec<LinkIndex>, from: Side },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Cut { link: LinkIndex },
    Crash { node: NodeIndex, down_ms: SimMs },
    Offline { node: NodeIndex, for_ms: SimMs },
    Partition { kind: PartitionKind, for_ms: SimMs },
}

impl PartitionKind {
    /// Does this partition block `link`, and in which directions?
    /// Returns (blocks dialer→listener, blocks listener→dialer).
    pub fn blocks(&self, topology: &Topology, link: LinkIndex) -> (bool, bool) {
        let spec = &topology.links[link];
        match self {
            PartitionKind::Tier(tier) => {
                let cut =
                    spec.kind != LinkKind::Sibling && topology.nodes[spec.listener].tier == *tier;
                (cut, cut)
            }
            PartitionKind::Subtree(root) => {
                let root = &topology.nodes[*root].station;
                let inside = |n: NodeIndex| root.is_ancestor_or_self_of(&topology.nodes[n].station);
                let cut = inside(spec.dialer) != inside(spec.listener);
                (cut, cut)
            }
            PartitionKind::OneWay { links, from } => {
                if links.contains(&link) {
                    (
                        *from == crate::network::DIALER,
                        *from == crate::network::LISTENER,
                    )
                } else {
                    (false, false)
                }
            }
        }
    }
}

/// Poisson arrival times of `per_day` over `horizon`.
fn arrivals(rng: &mut ChaCha8Rng, per_day: f64, horizon: SimMs) -> Vec<SimMs> {
    let mut out = Vec::new();
    if per_day <= 0.0 {
        return out;
    }
    let mut at = 0.0;
    loop {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        at += -u.ln() / per_day * DAY_MS as f64;
        if at >= horizon as f64 {
            return out;
        }
        out.push(at as SimMs);
    }
}

/// The whole schedule, sorted by time. `honest_villages` excludes the
/// misbehaving ones (their links and power are left alone).
pub fn schedule(config: &SimConfig, mix: &FaultMix, topology: &Topology) -> Vec<(SimMs, Fault)> {
    let mut rng = rng::stream(config.seed, Stream::Faults);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();

    let mut villages: Vec<NodeIndex> = topology.of_tier(Tier::Village).collect();
    villages.shuffle(&mut rng);
    let offline = ((villages.len() as f64) * config.offline_fraction).round() as usize;
    for &village in villages.iter().take(offline) {
        if config.max_offline_days == 0 {
            break;
        }
        let for_ms = rng.gen_range(HOUR_MS..=config.max_offline_days * DAY_MS);
        let at = rng.gen_range(0..horizon);
        out.push((
            at,
            Fault::Offline {
                node: village,
                for_ms,
            },
        ));
    }
    for node in 0..topology.nodes.len() {
        for at in arrivals(&mut rng, mix.crashes_per_node_day, horizon) {
            let down_ms = rng.gen_range(MINUTE_MS..=6 * HOUR_MS);
            out.push((at, Fault::Crash { node, down_ms }));
        }
    }
    for link in 0..topology.links.len() {
        for at in arrivals(&mut rng, mix.connection_drops_per_link_day, horizon) {
            out.push((at, Fault::Cut { link }));
        }
    }
    let townships: Vec<NodeIndex> = topology.of_tier(Tier::Township).collect();
    for at in arrivals(&mut rng, mix.partitions_per_day, horizon) {
        let for_ms = rng.gen_range(10 * MINUTE_MS..=12 * HOUR_MS);
        let kind = if rng.gen_bool(mix.one_way_partition_fraction) {
            let township = townships[rng.gen_range(0..townships.len())];
            let links: Vec<LinkIndex> = topology.links_of[township].clone();
            PartitionKind::OneWay {
                links,
                from: rng.gen_range(0..2),
            }
        } else if rng.gen_bool(0.3) {
            PartitionKind::Tier([Tier::County, Tier::Township][rng.gen_range(0..2)])
        } else {
            PartitionKind::Subtree(townships[rng.gen_range(0..townships.len())])
        };
        out.push((at, Fault::Partition { kind, for_ms }));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_fraction_is_honoured_and_faults_end_by_the_horizon() {
        let config = SimConfig {
            townships: 2,
            villages_per_township: 10,
            offline_fraction: 0.3,
            ..SimConfig::default()
        };
        let mix = FaultMix::draw(&config);
        let topology = Topology::build(&config, &mix);
        let faults = schedule(&config, &mix, &topology);
        let offline = faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Offline { .. }))
            .count();
        assert_eq!(offline, 6);
        assert!(faults.iter().all(|(at, _)| *at < config.days * DAY_MS));
    }

    #[test]
    fn partitions_block_the_right_links() {
        let config = SimConfig {
            townships: 2,
            villages_per_township: 2,
            fallback_fraction: 0.0,
            ..SimConfig::default()
        };
        let mix = FaultMix::draw(&config);
        let topology = Topology::build(&config, &mix);
        let township = topology.of_tier(Tier::Township).next().unwrap();
        let cut: Vec<LinkIndex> = (0..topology.links.len())
            .filter(|l| PartitionKind::Subtree(township).blocks(&topology, *l).0)
            .collect();
        assert_eq!(
            cut.len(),
            1,
            "only the township's uplink leaves its subtree"
        );
        let tier: usize = (0..topology.links.len())
            .filter(|l| PartitionKind::Tier(Tier::County).blocks(&topology, *l).0)
            .count();
        assert_eq!(tier, 2);
    }
}
