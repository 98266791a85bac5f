//! The half of the `deletions` checker shared by teams and volunteers: a
//! record of a roster whose delete a clerk was told of reads deleted at
//! every honest holder of that roster.

use crate::world::World;
use automerge::AutoCommit;
use civsync_protocol::domain::model::RecordId;
use civsync_protocol::layout::LayoutResult;
use civsync_protocol::{DocumentId, StationId};
use std::collections::BTreeSet;

/// `kind` names the record in problems ("team", "volunteer"); `deleted`
/// reads the record's deleted flag, `None` when the roster lacks it. The
/// problems found are pushed; returns how many records came back and how
/// many reads were made.
pub fn check(
    world: &mut World,
    kind: &str,
    told: &[(StationId, RecordId)],
    deleted: impl Fn(&AutoCommit, &RecordId) -> LayoutResult<Option<bool>>,
    problems: &mut Vec<String>,
) -> (usize, usize) {
    let mut reads = 0;
    let mut came_back = BTreeSet::new();
    for (owner, id) in told {
        let roster = DocumentId::roster(owner);
        for node in crate::checks::expected_holders(world, &roster) {
            let station = world.topology.nodes[node].station.clone();
            let Some(replica) = world.replica_mut(node) else {
                problems.push(format!("{station} is down"));
                continue;
            };
            match replica.with_document(&roster, |doc| deleted(doc, id)) {
                // Not held: the convergence checker's to report.
                Ok(None) => {}
                Ok(Some(Ok(Some(true)))) => reads += 1,
                Ok(Some(Ok(Some(false)))) => {
                    reads += 1;
                    came_back.insert((owner.clone(), id.clone()));
                    problems.push(format!(
                        "{station} reads {kind} {id} of {owner} as live after its delete"
                    ));
                }
                Ok(Some(Ok(None))) => problems.push(format!(
                    "{station} holds {roster} without {kind} {id}, deleted there"
                )),
                Ok(Some(Err(error))) => problems.push(format!("{station}: {roster}: {error}")),
                Err(error) => problems.push(format!("{station}: {roster} does not load: {error}")),
            }
        }
    }
    (came_back.len(), reads)
}
