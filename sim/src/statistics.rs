//! The county's statistics, recomputed from the documents a node holds.
//!
//! This reads documents through the real layout code only. The aggregates
//! checker compares it against the same figures recomputed from the ground
//! truth; a difference means a record was lost, duplicated or mis-merged on
//! the way up.

use crate::truth::{MonthFigures, Statistics};
use automerge::AutoCommit;
use civsync_protocol::layout;
use civsync_protocol::{DocumentId, DocumentKind};

/// Add the figures of one document to `out`. Documents of other kinds add
/// nothing. A document the layout cannot read is an error naming it.
pub fn add_document(out: &mut Statistics, id: &DocumentId, doc: &AutoCommit) -> Result<(), String> {
    match &id.kind {
        DocumentKind::Activities(month) => {
            let activities = layout::activities(doc).map_err(|e| format!("{id}: {e}"))?;
            for activity in activities.iter().filter(|a| !a.deleted) {
                let figures = out
                    .months
                    .entry((id.owner.clone(), *month))
                    .or_insert_with(MonthFigures::default);
                figures.activities += 1;
                figures.beneficiaries += u64::from(activity.beneficiaries);
                for record in activity
                    .records
                    .iter()
                    .filter(|r| !r.deleted && r.hours.centi > 0)
                {
                    figures.participations += 1;
                    figures.hours_centi += u64::from(record.hours.centi);
                }
            }
        }
        DocumentKind::Roster => {
            let volunteers = layout::volunteers(doc).map_err(|e| format!("{id}: {e}"))?;
            let count = volunteers.iter().filter(|v| !v.deleted).count() as u64;
            if count > 0 {
                *out.volunteers.entry(id.owner.clone()).or_default() += count;
            }
            let teams = layout::teams(doc).map_err(|e| format!("{id}: {e}"))?;
            let count = teams.iter().filter(|t| !t.deleted).count() as u64;
            if count > 0 {
                *out.teams.entry(id.owner.clone()).or_default() += count;
            }
        }
        DocumentKind::Orders(_) | DocumentKind::Approval(_) | DocumentKind::Reference(_) => {}
    }
    Ok(())
}
