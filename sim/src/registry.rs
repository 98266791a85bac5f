//! The station registry (`service::registry`) worked as clerks work it,
//! racing everything else: each township registers its villages on the
//! first morning; townships rename their villages now and then, and so does
//! the county (into the closest registry it holds that lists the village,
//! so the two offices sometimes rename the same village apart); a township
//! now and then retires (撤并) a village into a neighbour or itself, and
//! undoes it some days later.
//!
//! Nothing here keeps a truth of its own: a rename or retirement taken
//! apart is settled by the registry's own merge (the closest registry
//! wins, concurrent values are kept), so every node reading the same
//! registry documents reads the same view — the convergence checker
//! compares those documents at every holder.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{SimMs, DAY_MS, HOUR_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workflows::{At, Outcome, Step};
use crate::workload::{poisson_in_working_hours, to_date};
use civsync_protocol::domain::model::date_format;
use civsync_protocol::layout::registry_document;
use civsync_protocol::service::registry::{self, RegistryError, RetireInput, StationInput};
use civsync_protocol::Tier;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Renames a township makes of each of its villages per week.
pub const RENAMES_PER_VILLAGE_WEEK: f64 = 0.1;
/// Share of renames the county makes rather than the township.
pub const COUNTY_RENAMES_PROBABILITY: f64 = 0.3;
/// Retirements of each village per week.
pub const RETIREMENTS_PER_VILLAGE_WEEK: f64 = 0.03;
/// Share of retirements undone a few days later.
pub const UNDONE_PROBABILITY: f64 = 0.5;

const NEW_NAMES: [&str; 4] = ["新村", "社区", "新区", "居委会"];

/// One thing a clerk does to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryStep {
    /// The township registers every village below it.
    RegisterVillages,
    /// This node (the township or the county) renames `village`.
    Rename { village: NodeIndex },
    /// The township retires `village` into a neighbour or itself.
    Retire { village: NodeIndex },
    /// The township undoes `village`'s retirement.
    Undo { village: NodeIndex },
}

/// The registry work that starts on its own: (time, node, step).
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed ^ 0x4e915, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    for township in topology.of_tier(Tier::Township) {
        let at = rng.gen_range(0..2 * HOUR_MS);
        out.push((at, township, Step::Registry(RegistryStep::RegisterVillages)));
    }
    for village in topology.of_tier(Tier::Village) {
        let township = topology.nodes[village]
            .parent
            .expect("a village has a township");
        let county = topology.county_of(village).unwrap_or(township);
        let mut renames = Vec::new();
        poisson_in_working_hours(
            &mut rng,
            RENAMES_PER_VILLAGE_WEEK / 7.0,
            horizon,
            DAY_MS,
            |at| renames.push(at),
        );
        for at in renames {
            let by = if rng.gen_bool(COUNTY_RENAMES_PROBABILITY) {
                county
            } else {
                township
            };
            out.push((at, by, Step::Registry(RegistryStep::Rename { village })));
        }
        poisson_in_working_hours(
            &mut rng,
            RETIREMENTS_PER_VILLAGE_WEEK / 7.0,
            horizon,
            DAY_MS,
            |at| {
                out.push((
                    at,
                    township,
                    Step::Registry(RegistryStep::Retire { village }),
                ))
            },
        );
    }
    out
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RegistryCounters {
    pub registered: u64,
    pub renamed: u64,
    pub retired: u64,
    pub undone: u64,
    /// Refused at the node that tried, by step and the field refused.
    pub refused: BTreeMap<String, u64>,
}

/// The registry work's draws and counts.
pub struct RegistryWork {
    rng: ChaCha8Rng,
    pub counters: RegistryCounters,
}

impl RegistryWork {
    pub fn new(config: &SimConfig) -> RegistryWork {
        RegistryWork {
            rng: rng::stream(config.seed ^ 0x4e916, Stream::Workflows),
            counters: RegistryCounters::default(),
        }
    }

    pub fn run(&mut self, mut at: At<'_>, step: &RegistryStep) -> Outcome {
        match step {
            RegistryStep::RegisterVillages => {
                let villages = at.topology.nodes[at.node].children.clone();
                let mut last = None;
                for village in villages {
                    let spec = &at.topology.nodes[village];
                    let input = StationInput {
                        id: spec.station.to_string(),
                        name: spec.name.clone(),
                        tier: Tier::Village.as_str().to_string(),
                    };
                    last = Some(self.register(&mut at, input, "register"));
                }
                last.unwrap_or_else(Outcome::nothing)
            }
            RegistryStep::Rename { village } => {
                let spec = &at.topology.nodes[*village];
                let suffix = NEW_NAMES[self.rng.gen_range(0..NEW_NAMES.len())];
                let input = StationInput {
                    id: spec.station.to_string(),
                    name: format!("{}{suffix}", spec.name),
                    tier: Tier::Village.as_str().to_string(),
                };
                self.register(&mut at, input, "rename")
            }
            RegistryStep::Retire { village } => {
                let township = at.node;
                let siblings = &at.topology.nodes[township].children;
                let successor = siblings[self.rng.gen_range(0..siblings.len())];
                // Its own township when the draw falls on the village itself.
                let successor = if successor == *village {
                    township
                } else {
                    successor
                };
                let input = RetireInput {
                    id: at.topology.nodes[*village].station.to_string(),
                    retired_on: Some(date_format::format(to_date(&at.today))),
                    merged_into: Some(at.topology.nodes[successor].station.to_string()),
                };
                let outcome = self.retire(at, input, "retire");
                if outcome.written.is_some() && self.rng.gen_bool(UNDONE_PROBABILITY) {
                    let delay = self.rng.gen_range(DAY_MS..4 * DAY_MS);
                    let step = Step::Registry(RegistryStep::Undo { village: *village });
                    return Outcome {
                        follow_ups: vec![(delay, township, step)],
                        ..outcome
                    };
                }
                outcome
            }
            RegistryStep::Undo { village } => {
                let input = RetireInput {
                    id: at.topology.nodes[*village].station.to_string(),
                    retired_on: None,
                    merged_into: None,
                };
                self.retire(at, input, "undo")
            }
        }
    }

    fn register(&mut self, at: &mut At<'_>, input: StationInput, what: &'static str) -> Outcome {
        let tier = at.topology.nodes[at.node].tier;
        match registry::register_station(&mut *at.replica, tier, &input) {
            Ok(registered) => {
                if what == "register" {
                    self.counters.registered += 1;
                } else {
                    self.counters.renamed += 1;
                }
                let document = registry_document(&registered.entry.registered_in);
                let text = format!(
                    "{what} {} as {} at {}",
                    input.id,
                    input.name,
                    at.replica.local()
                );
                Outcome::written(document, at.replica, text)
            }
            Err(error) => self.refused(what, &error),
        }
    }

    fn retire(&mut self, at: At<'_>, input: RetireInput, what: &'static str) -> Outcome {
        match registry::retire_station(at.replica, &input, to_date(&at.today)) {
            Ok(registered) => {
                if what == "undo" {
                    self.counters.undone += 1;
                } else {
                    self.counters.retired += 1;
                }
                let document = registry_document(&registered.entry.registered_in);
                let text = format!("{what} {} at {}", input.id, at.replica.local());
                Outcome::written(document, at.replica, text)
            }
            Err(error) => self.refused(what, &error),
        }
    }

    fn refused(&mut self, what: &str, error: &RegistryError) -> Outcome {
        *self
            .counters
            .refused
            .entry(format!("{what}: {}", error.field()))
            .or_default() += 1;
        Outcome::refused(format!("{what}: {error}"))
    }
}
