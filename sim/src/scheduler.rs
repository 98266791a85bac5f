//! The discrete-event queue.
//!
//! Events are ordered by (virtual time, sequence number): the sequence number
//! is assigned at scheduling, so two events at the same instant run in the
//! order they were scheduled and the run is deterministic. The loop jumps from
//! event to event; an idle village costs nothing.

use crate::time::SimMs;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Upper bound on queued events; a run that exceeds it has a runaway feedback
/// loop (a session re-arming a zero-delay timer forever, say) and is stopped.
pub const QUEUED_EVENTS_MAX: usize = 20_000_000;

struct Scheduled<E> {
    at: SimMs,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Scheduler<E> {
    queue: BinaryHeap<Scheduled<E>>,
    now: SimMs,
    seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event queue holds {queued} events, more than {max}: runaway event loop")]
pub struct QueueFull {
    pub queued: usize,
    pub max: usize,
}

impl<E> Scheduler<E> {
    pub fn new() -> Scheduler<E> {
        Scheduler {
            queue: BinaryHeap::new(),
            now: 0,
            seq: 0,
        }
    }

    pub fn now(&self) -> SimMs {
        self.now
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Schedule `event` at `at`; an instant in the past runs now.
    pub fn at(&mut self, at: SimMs, event: E) -> Result<(), QueueFull> {
        if self.queue.len() >= QUEUED_EVENTS_MAX {
            return Err(QueueFull {
                queued: self.queue.len(),
                max: QUEUED_EVENTS_MAX,
            });
        }
        self.seq += 1;
        self.queue.push(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
        Ok(())
    }

    pub fn after(&mut self, delay: SimMs, event: E) -> Result<(), QueueFull> {
        self.at(self.now.saturating_add(delay), event)
    }

    /// The next event if it is due no later than `until`; advances the clock.
    pub fn pop_until(&mut self, until: SimMs) -> Option<(SimMs, E)> {
        if self.queue.peek()?.at > until {
            return None;
        }
        let next = self.queue.pop()?;
        debug_assert!(next.at >= self.now, "time never runs backwards");
        self.now = next.at;
        Some((next.at, next.event))
    }

    /// Move the clock forward to `at` with no event (end of a phase).
    pub fn advance_to(&mut self, at: SimMs) {
        debug_assert!(self.queue.peek().is_none_or(|next| next.at >= at));
        self.now = self.now.max(at);
    }
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Scheduler::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_in_scheduling_order() {
        let mut s = Scheduler::new();
        s.at(10, "b").unwrap();
        s.at(5, "a").unwrap();
        s.at(10, "c").unwrap();
        s.at(20, "d").unwrap();
        assert_eq!(s.pop_until(100), Some((5, "a")));
        assert_eq!(s.pop_until(100), Some((10, "b")));
        assert_eq!(s.pop_until(100), Some((10, "c")));
        assert_eq!(s.pop_until(15), None, "d is later than the horizon");
        assert_eq!(s.now(), 10);
        s.at(1, "past runs now").unwrap();
        assert_eq!(s.pop_until(100), Some((10, "past runs now")));
        assert_eq!(s.pop_until(100), Some((20, "d")));
        assert!(s.is_empty());
    }
}
