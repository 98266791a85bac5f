//! What a misbehaving node forges.
//!
//! A misbehaving village serves, through its host wrapper, documents whose
//! changes carry other stations' actors (`actor::actor_for` is public: any
//! node can *claim* any actor), a document outside its scope, and documents
//! of stations it invented below itself (its own to write, but no registry
//! lists those stations). Its
//! honest peers must refuse every one of them; the authority and scope
//! checkers then confirm that nothing forged was applied anywhere.

use crate::host::Forgery;
use crate::topology::{NodeIndex, Topology};
use crate::workload::THEMES;
use automerge::AutoCommit;
use civsync_protocol::identity::actor::actor_for;
use civsync_protocol::layout;
use civsync_protocol::{DocumentId, Month, StationId, Tier};

/// The incarnation forged actors claim (any value works; that is the point).
const FORGED_INCARNATION: u64 = 0x0bad_0bad;
/// Stations a misbehaving village invents below itself.
const INVENTED_STATIONS: usize = 3;

fn forged_document(
    document: &DocumentId,
    claimed: &StationId,
    key: &str,
    text: &str,
) -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(actor_for(claimed, FORGED_INCARNATION));
    // Layout errors cannot happen on a fresh document; an empty forgery
    // would still be a forgery, so they are ignored.
    let _ = layout::init_document(&mut doc, document);
    let _ = layout::put_reference_item(&mut doc, key, &[("theme", text.to_string())]);
    doc.commit();
    doc
}

pub fn forge(topology: &Topology, village: NodeIndex) -> Forgery {
    let mut forgery = Forgery::default();
    let me = &topology.nodes[village];
    let township = me.parent.expect("a village has a township");
    let county = topology
        .county_of(village)
        .expect("a village lies under a county");
    let county_station = &topology.nodes[county].station;
    let month = Month::new(2026, 11).expect("valid month");

    // 1. The county's themes, rewritten with a claimed county actor: the
    //    village may hold the document but may not carry county changes up.
    let themes = DocumentId::reference(county_station, THEMES).expect("valid reference name");
    forgery.documents.insert(
        themes.clone(),
        forged_document(&themes, county_station, "2026-11", "伪造的月度主题"),
    );

    // 2. Its own orders of the month, "written" by a sibling village: a
    //    sibling may not write this document.
    let sibling = topology.nodes[township]
        .children
        .iter()
        .copied()
        .find(|c| *c != village);
    let claimed = sibling
        .map(|s| topology.nodes[s].station.clone())
        .unwrap_or_else(|| topology.nodes[township].station.clone());
    let orders = DocumentId::orders(&me.station, month);
    forgery.documents.insert(
        orders.clone(),
        forged_document(&orders, &claimed, "forged", "冒名记录"),
    );

    // 3. A roster of a village in another township: outside its scope.
    let foreign = topology.of_tier(Tier::Village).find(|v| {
        topology.nodes[*v].parent != Some(township) && topology.county_of(*v) == Some(county)
    });
    // 4. Rosters of stations it made up below itself, written by itself.
    for n in 0..INVENTED_STATIONS {
        let invented = StationId::parse(&format!("{}/invented{n}", me.station))
            .expect("a valid station below the village");
        let roster = DocumentId::roster(&invented);
        forgery.documents.insert(
            roster.clone(),
            forged_document(&roster, &me.station, "invented", "虚构的站点"),
        );
    }

    if let Some(foreign) = foreign {
        let station = &topology.nodes[foreign].station;
        let roster = DocumentId::roster(station);
        forgery.documents.insert(
            roster.clone(),
            forged_document(&roster, station, "forged", "越权文档"),
        );
    }
    forgery
}

/// What a misbehaving township forges: a reference document "written" by
/// its first village, sent up to the county, and one "written" by the
/// county, sent down to its villages. Both are unsigned (it holds neither
/// key) and new (nothing honest is hidden by them); every receiver must
/// refuse them as unsigned changes relayed by a station that did not
/// write them.
pub fn forge_as_township(topology: &Topology, township: NodeIndex) -> Forgery {
    let mut forgery = Forgery::default();
    let me = &topology.nodes[township];
    let county = topology
        .county_of(township)
        .expect("a township lies under a county");
    let county_station = &topology.nodes[county].station;
    let village = me
        .children
        .first()
        .map(|child| topology.nodes[*child].station.clone())
        .expect("a township has villages");
    for claimed in [&village, county_station] {
        let notice = DocumentId::reference(claimed, "forged-notice").expect("valid reference name");
        forgery.documents.insert(
            notice.clone(),
            forged_document(&notice, claimed, "notice", "伪造的通知"),
        );
    }
    forgery
}
