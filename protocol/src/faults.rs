//! Injected faults: deliberate defects in product code that the simulator
//! switches on, one at a time, to show that each of its checkers catches a
//! real bug of the product rather than one of its own.
//!
//! Layer: the bottom; uses nothing else in the crate. Used by `layout`,
//! `stats` and `service`, at the few places a fault breaks them
//! (`StaleStatistics` in `service/statistics.rs`, `LoseOrderStep` in
//! `service/order_flow.rs`, `SkipAllotmentCheck` in `service/points.rs`,
//! `KeepReplacedContribution` in `stats/index.rs`, `ApproveAnotherMonth`
//! and `MissEditAfterApproval` in `service/approval_ops.rs`,
//! `FileOrderTwice` in `service/order_flow.rs`, `HideWithdrawnMenuItems`
//! in `service/catalog.rs`).
//!
//! Without the `injected-faults` feature (every node build) [`armed`] is a
//! constant `false` and the faulty branches compile away. With it (the
//! simulator's build) a fault is armed per thread, only by [`arm`], and only
//! while the guard it returns lives; nothing else arms one, so a node
//! binary built in the same workspace run still never takes a faulty
//! branch. The simulation is single-threaded, so a run stays deterministic.

/// A deliberate defect of the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A correction is not refused for a deleted record and writes every
    /// field, the `deleted` flag included: the record comes back.
    ResurrectDeleted,
    /// The statistics count the first live activity of every activities
    /// document twice.
    MiscountAggregate,
    /// A county writes a month's statistics document once and never again:
    /// the offices above it keep the figures of that first write.
    StaleStatistics,
    /// Unsigned changes relayed by a peer are judged by the hop rule alone,
    /// whether their station signs or not: a township can write as its
    /// villages and as the county again.
    TrustUnsignedRelays,
    /// A step of an order taken at an office above its village (a
    /// dispatch at the township or county) is answered as done but never
    /// written: the clerk was told, no node ever holds it.
    LoseOrderStep,
    /// A redemption or transfer is written without checking that the
    /// station's allotment covers it: an offline supermarket overdraws.
    SkipAllotmentCheck,
    /// The statistics index adds a document's new contribution without
    /// taking its old one away: every document read again after it changed
    /// is counted once more, while a rebuild from nothing counts it once.
    KeepReplacedContribution,
    /// An approval stores the figures of the month after the one approved,
    /// beside the heads of the approved month's activities.
    ApproveAnotherMonth,
    /// A month's standing reads an approved month as unchanged since,
    /// whatever was edited after the approval.
    MissEditAfterApproval,
    /// A step an office takes on an order is filed again in the orders
    /// document of the month after: the order is held twice.
    FileOrderTwice,
    /// The menu offered at a station leaves out withdrawn items instead of
    /// listing them marked: a clerk no longer sees why an item is gone, and
    /// orders already placed for it lose their meaning.
    HideWithdrawnMenuItems,
}

impl Fault {
    fn bit(self) -> u16 {
        match self {
            Fault::ResurrectDeleted => 1,
            Fault::MiscountAggregate => 2,
            Fault::StaleStatistics => 4,
            Fault::TrustUnsignedRelays => 8,
            Fault::LoseOrderStep => 16,
            Fault::SkipAllotmentCheck => 32,
            Fault::KeepReplacedContribution => 64,
            Fault::ApproveAnotherMonth => 128,
            Fault::MissEditAfterApproval => 256,
            Fault::FileOrderTwice => 512,
            Fault::HideWithdrawnMenuItems => 1024,
        }
    }
}

#[cfg(feature = "injected-faults")]
mod switch {
    use std::cell::Cell;

    thread_local! {
        pub(super) static ARMED: Cell<u16> = const { Cell::new(0) };
    }
}

/// Is `fault` armed on this thread? Always `false` without the
/// `injected-faults` feature.
#[inline]
pub fn armed(fault: Fault) -> bool {
    #[cfg(feature = "injected-faults")]
    {
        switch::ARMED.with(|armed| armed.get() & fault.bit() != 0)
    }
    #[cfg(not(feature = "injected-faults"))]
    {
        let _ = fault.bit();
        false
    }
}

/// Arms `fault` on this thread until the guard is dropped (`None` arms
/// nothing). Only the simulator calls it.
#[cfg(feature = "injected-faults")]
pub fn arm(fault: Option<Fault>) -> Armed {
    let bits = fault.map_or(0, Fault::bit);
    let previous = switch::ARMED.with(|armed| armed.replace(bits));
    Armed { previous }
}

/// Disarms on drop (restores what was armed before).
#[cfg(feature = "injected-faults")]
#[must_use = "the fault is disarmed when this guard is dropped"]
pub struct Armed {
    previous: u16,
}

#[cfg(feature = "injected-faults")]
impl Drop for Armed {
    fn drop(&mut self) {
        switch::ARMED.with(|armed| armed.set(self.previous));
    }
}

#[cfg(all(test, feature = "injected-faults"))]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_armed_only_while_its_guard_lives() {
        assert!(!armed(Fault::ResurrectDeleted));
        {
            let _guard = arm(Some(Fault::ResurrectDeleted));
            assert!(armed(Fault::ResurrectDeleted));
            assert!(!armed(Fault::MiscountAggregate));
        }
        assert!(!armed(Fault::ResurrectDeleted));
    }
}
