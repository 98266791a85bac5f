//! The station tree and the links between nodes.
//!
//! Stations are named by path (`xh/t03/v12`; under a prefecture
//! `zk/c02/t03/v12`), so the tree is not limited to three tiers. Every node
//! links to its parent; some villages also have a fallback link straight to
//! their county; optionally villages of a township link to their neighbours.
//! The lower end of a link is the one that dials (as a village dials its
//! township), which decides who creates the connection.

use crate::config::{FaultMix, SimConfig};
use crate::names;
use crate::rng::{self, Stream};
use civsync_protocol::{StationId, Tier};
use rand::Rng;
use std::collections::BTreeMap;

pub type NodeIndex = usize;
pub type LinkIndex = usize;

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub station: StationId,
    pub tier: Tier,
    pub name: String,
    pub parent: Option<NodeIndex>,
    pub children: Vec<NodeIndex>,
    /// On a slow, lossy line (long latency, little bandwidth).
    pub slow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    Parent,
    Fallback,
    Sibling,
}

#[derive(Debug, Clone)]
pub struct LinkSpec {
    /// The dialling end (lower in the tree, or the first sibling).
    pub dialer: NodeIndex,
    pub listener: NodeIndex,
    pub kind: LinkKind,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Bytes per millisecond (1 = 8 kbit/s, 1_000 = 8 Mbit/s).
    pub bandwidth_bytes_per_ms: u64,
}

pub struct Topology {
    pub nodes: Vec<NodeSpec>,
    pub links: Vec<LinkSpec>,
    pub by_station: BTreeMap<StationId, NodeIndex>,
    /// Links touching each node.
    pub links_of: Vec<Vec<LinkIndex>>,
}

impl Topology {
    pub fn build(config: &SimConfig, mix: &FaultMix) -> Topology {
        let mut rng = rng::stream(config.seed, Stream::Topology);
        let mut nodes: Vec<NodeSpec> = Vec::new();
        let push = |nodes: &mut Vec<NodeSpec>,
                    station: StationId,
                    tier: Tier,
                    name: String,
                    parent: Option<NodeIndex>| {
            let index = nodes.len();
            nodes.push(NodeSpec {
                station,
                tier,
                name,
                parent,
                children: Vec::new(),
                slow: false,
            });
            if let Some(parent) = parent {
                nodes[parent].children.push(index);
            }
            index
        };
        let station =
            |text: String| StationId::parse(&text).expect("generated station ids are valid");
        let mut counties = Vec::new();
        if config.prefecture_counties == 0 {
            counties.push(push(
                &mut nodes,
                station("xh".into()),
                Tier::County,
                "新华县新时代文明实践中心".into(),
                None,
            ));
        } else {
            let prefecture = push(
                &mut nodes,
                station("zk".into()),
                Tier::Prefecture,
                "周口市".into(),
                None,
            );
            for c in 0..config.prefecture_counties {
                let id = nodes[prefecture]
                    .station
                    .child(&format!("c{:02}", c + 1))
                    .expect("valid");
                counties.push(push(
                    &mut nodes,
                    id,
                    Tier::County,
                    format!("第{}县新时代文明实践中心", c + 1),
                    Some(prefecture),
                ));
            }
        }
        let mut village_counter = 0;
        for &county in &counties {
            for t in 0..config.townships {
                let id = nodes[county]
                    .station
                    .child(&format!("t{:02}", t + 1))
                    .expect("valid");
                let name = format!("{}新时代文明实践所", names::township_name(t));
                let township = push(&mut nodes, id, Tier::Township, name, Some(county));
                for v in 0..config.villages_per_township {
                    let id = nodes[township]
                        .station
                        .child(&format!("v{:02}", v + 1))
                        .expect("valid");
                    let name = format!("{}新时代文明实践站", names::village_name(village_counter));
                    village_counter += 1;
                    push(&mut nodes, id, Tier::Village, name, Some(township));
                }
            }
        }
        for node in nodes.iter_mut() {
            node.slow =
                node.tier == Tier::Village && rng.gen_bool(mix.slow_peer_fraction.clamp(0.0, 1.0));
        }

        let mut links = Vec::new();
        let mut link = |rng: &mut rand_chacha::ChaCha8Rng,
                        dialer: NodeIndex,
                        listener: NodeIndex,
                        kind: LinkKind,
                        slow: bool| {
            let (latency_ms, bandwidth) = if slow {
                (mix.latency_ms * 8 + 200, rng.gen_range(2..=20))
            } else {
                (mix.latency_ms, rng.gen_range(200..=2_000))
            };
            links.push(LinkSpec {
                dialer,
                listener,
                kind,
                latency_ms,
                jitter_ms: if slow {
                    mix.jitter_ms * 4
                } else {
                    mix.jitter_ms
                },
                bandwidth_bytes_per_ms: bandwidth,
            });
        };
        for index in 0..nodes.len() {
            if let Some(parent) = nodes[index].parent {
                link(&mut rng, index, parent, LinkKind::Parent, nodes[index].slow);
                if nodes[index].tier == Tier::Village && rng.gen_bool(config.fallback_fraction) {
                    let county = nodes[parent].parent.expect("a township has a county");
                    link(
                        &mut rng,
                        index,
                        county,
                        LinkKind::Fallback,
                        nodes[index].slow,
                    );
                }
            }
        }
        if config.siblings {
            for index in 0..nodes.len() {
                if nodes[index].tier != Tier::Township {
                    continue;
                }
                let children = nodes[index].children.clone();
                for pair in children.windows(2) {
                    link(
                        &mut rng,
                        pair[0],
                        pair[1],
                        LinkKind::Sibling,
                        nodes[pair[0]].slow || nodes[pair[1]].slow,
                    );
                }
            }
        }
        let mut links_of = vec![Vec::new(); nodes.len()];
        for (index, spec) in links.iter().enumerate() {
            links_of[spec.dialer].push(index);
            links_of[spec.listener].push(index);
        }
        let by_station = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.station.clone(), i))
            .collect();
        Topology {
            nodes,
            links,
            by_station,
            links_of,
        }
    }

    pub fn of_tier(&self, tier: Tier) -> impl Iterator<Item = NodeIndex> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.tier == tier)
            .map(|(i, _)| i)
    }

    /// The county above a node (itself if it is one); `None` above counties.
    pub fn county_of(&self, node: NodeIndex) -> Option<NodeIndex> {
        let mut at = node;
        loop {
            match self.nodes[at].tier {
                Tier::County => return Some(at),
                Tier::Province | Tier::Prefecture => return None,
                _ => at = self.nodes[at].parent?,
            }
        }
    }

    /// The top node of the tree (county, or prefecture above counties).
    pub fn root(&self) -> NodeIndex {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_county_tree_has_the_asked_shape() {
        let config = SimConfig {
            townships: 4,
            villages_per_township: 6,
            fallback_fraction: 0.0,
            ..SimConfig::default()
        };
        let mix = FaultMix::draw(&config);
        let topology = Topology::build(&config, &mix);
        assert_eq!(topology.nodes.len(), 1 + 4 + 24);
        assert_eq!(topology.links.len(), 4 + 24);
        assert_eq!(topology.of_tier(Tier::Village).count(), 24);
        for (index, node) in topology.nodes.iter().enumerate() {
            if let Some(parent) = node.parent {
                assert!(topology.nodes[parent]
                    .station
                    .is_strict_ancestor_of(&node.station));
                assert_eq!(topology.county_of(index), Some(0));
            }
        }
    }

    #[test]
    fn a_prefecture_adds_a_tier_on_top() {
        let config = SimConfig {
            prefecture_counties: 3,
            townships: 2,
            villages_per_township: 2,
            ..SimConfig::default()
        };
        let topology = Topology::build(&config, &FaultMix::draw(&config));
        assert_eq!(topology.nodes[0].tier, Tier::Prefecture);
        assert_eq!(topology.nodes.len(), 1 + 3 + 6 + 12);
        let village = topology.of_tier(Tier::Village).next().unwrap();
        assert_eq!(topology.nodes[village].station.depth(), 4);
        assert_eq!(topology.county_of(0), None);
    }
}
