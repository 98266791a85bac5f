//! How much of a run could run on several cores at once: a bound measured
//! from the events as they ran, before anyone splits the world.
//!
//! A conservative parallel simulation may run together the events of
//! different nodes that fall within one window of the quickest link's
//! latency: nothing one node does there can reach another node before the
//! window ends. Each window then costs at least its busiest node's share
//! (events of one node stay in order), and on `cores` cores at least its
//! total over `cores`; events that touch more than one node (dials, cuts,
//! faults, the final heal) run alone. Summed over the run, that is a lower
//! bound on the wall time of any such split, so `serial / bound` is an upper
//! bound on its speed-up. It is optimistic on purpose: a clerk's work is
//! counted as its node's alone, although it also moves shared bookkeeping
//! (the workload, the ground truth) that a split would have to partition.
//!
//! Measured from wall time per event for the report only; nothing in the
//! simulation reads it, so the trace hash does not depend on it.

use crate::time::SimMs;
use crate::topology::NodeIndex;
use std::collections::HashMap;

/// Cores the report's bound is given for: the machine the goals name.
pub const CORES: f64 = 2.0;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ParallelismReport {
    /// The window: the quickest link's latency.
    pub window_ms: SimMs,
    /// Wall seconds the events took one after another, as they ran.
    pub serial_s: f64,
    /// The least wall time of any split onto `CORES` cores.
    pub cores_2_s: f64,
    /// The least wall time with as many cores as nodes.
    pub unbounded_s: f64,
}

pub struct ParallelismBound {
    window_ms: SimMs,
    window: Option<SimMs>,
    per_node_s: HashMap<NodeIndex, f64>,
    window_total_s: f64,
    window_alone_s: f64,
    report: ParallelismReport,
}

impl ParallelismBound {
    pub fn new(window_ms: SimMs) -> ParallelismBound {
        assert!(window_ms > 0, "a link has some latency");
        ParallelismBound {
            window_ms,
            window: None,
            per_node_s: HashMap::new(),
            window_total_s: 0.0,
            window_alone_s: 0.0,
            report: ParallelismReport {
                window_ms,
                ..ParallelismReport::default()
            },
        }
    }

    /// One event at `at`, of `node` alone or (None) touching several, that
    /// took `seconds`. Events come in the order they ran.
    pub fn event(&mut self, at: SimMs, node: Option<NodeIndex>, seconds: f64) {
        let window = at / self.window_ms;
        if self.window != Some(window) {
            self.close_window();
            self.window = Some(window);
        }
        self.report.serial_s += seconds;
        self.window_total_s += seconds;
        match node {
            Some(node) => *self.per_node_s.entry(node).or_default() += seconds,
            None => self.window_alone_s += seconds,
        }
    }

    fn close_window(&mut self) {
        let busiest_s = self.per_node_s.values().copied().fold(0.0, f64::max);
        let shared_s = self.window_total_s - self.window_alone_s;
        self.report.cores_2_s += self.window_alone_s + busiest_s.max(shared_s / CORES);
        self.report.unbounded_s += self.window_alone_s + busiest_s;
        self.per_node_s.clear();
        self.window_total_s = 0.0;
        self.window_alone_s = 0.0;
    }

    pub fn finish(&mut self) -> ParallelismReport {
        self.close_window();
        self.window = None;
        self.report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_s_events_never_overlap_and_other_nodes_share_the_cores() {
        let mut bound = ParallelismBound::new(50);
        // Window 0: node 1 twice (1 + 1 s), node 2 once (1 s).
        bound.event(0, Some(1), 1.0);
        bound.event(10, Some(2), 1.0);
        bound.event(49, Some(1), 1.0);
        // Window 1: three nodes of 1 s each.
        bound.event(50, Some(1), 1.0);
        bound.event(60, Some(2), 1.0);
        bound.event(70, Some(3), 1.0);
        let report = bound.finish();
        assert_eq!(report.serial_s, 6.0);
        // Window 0: the busiest node's 2 s; window 1: 3 s over 2 cores.
        assert_eq!(report.cores_2_s, 2.0 + 1.5);
        assert_eq!(report.unbounded_s, 2.0 + 1.0);
    }

    #[test]
    fn an_event_of_several_nodes_runs_alone_and_windows_do_not_mix() {
        let mut bound = ParallelismBound::new(50);
        bound.event(0, Some(1), 1.0);
        bound.event(0, None, 2.0);
        bound.event(0, Some(2), 1.0);
        // The next window's event of another node cannot join window 0.
        bound.event(100, Some(3), 1.0);
        let report = bound.finish();
        assert_eq!(report.serial_s, 5.0);
        assert_eq!(report.cores_2_s, 2.0 + 1.0 + 1.0);
        assert_eq!(report.unbounded_s, 2.0 + 1.0 + 1.0);
    }
}
