//! A county node's statistics publishing in the simulation: the product's
//! `StoredStats` (the index a node refreshes incrementally) and its
//! `StatisticsPublisher`, driven as the node drives them — refresh, then
//! publish when due. Only in a prefecture run: a county at the top of the
//! tree has nobody to publish to, and the county-only runs stay as they were.

use civsync_protocol::replica::Replica;
use civsync_protocol::service::statistics::{PublishReport, StatisticsPublisher};
use civsync_protocol::stats::StoredStats;
use civsync_protocol::storage::MemoryStorage;

/// How often a county's publishing is looked at in the simulation. Longer
/// than the product's own interval (`STATISTICS_REWRITE_INTERVAL_MS`) so a
/// fortnight of virtual time costs few events; each look still asks the
/// product whether a rewrite is due.
pub const STATISTICS_LOOK_EVERY_MS: u64 = 5 * 60 * 1000;

/// What a county node keeps in memory for its statistics (lost in a crash,
/// like the node's own).
pub struct CountyStatistics {
    stored: StoredStats,
    publisher: StatisticsPublisher,
}

impl CountyStatistics {
    pub fn open(replica: &mut Replica<MemoryStorage>) -> CountyStatistics {
        let (stored, _) = StoredStats::open(replica);
        CountyStatistics {
            stored,
            publisher: StatisticsPublisher::new(),
        }
    }

    /// Refresh the index; publish if the product says a rewrite is due.
    pub fn look(
        &mut self,
        replica: &mut Replica<MemoryStorage>,
        now_ms: i64,
    ) -> Result<Option<PublishReport>, String> {
        self.stored.refresh(replica);
        if !self.publisher.due(now_ms) {
            return Ok(None);
        }
        self.publisher
            .publish(replica, self.stored.index(), now_ms)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Do the county's figures differ from what it last published?
    pub fn behind(&mut self, replica: &mut Replica<MemoryStorage>) -> bool {
        self.stored.refresh(replica);
        self.publisher.behind(self.stored.index(), replica.local())
    }
}
