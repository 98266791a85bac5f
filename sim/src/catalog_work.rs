//! Menus (服务菜单) and monthly themes (一月一主题) through the service
//! functions the API calls (`service::catalog`), under the run's faults.
//!
//! The county publishes each month's theme (`set_theme`), as scheduled by
//! the workload; a township now and then sets a theme of its own for this
//! month or the next, and sets it again with another title (the later one
//! replaces it). Every station — village and township — offers an item of
//! its menu in its first days (`put_menu_item`), and later offers more,
//! renames one or withdraws one. Each office writes only its own documents,
//! so the last write acknowledged to a clerk for a key is what every holder
//! must read in the end; the catalog checker reads it through
//! `themes_for` and `menu_offered_at`, what the API shows.

use crate::config::SimConfig;
use crate::rng::{self, Stream};
use crate::time::{Date, SimMs, DAY_MS, HOUR_MS, RUN_START_UNIX_MS};
use crate::topology::{NodeIndex, Topology};
use crate::workflows::{At, Outcome, Step};
use crate::workload::poisson_in_working_hours;
use civsync_protocol::domain::model::RecordId;
use civsync_protocol::service::catalog::{
    self, CatalogRead, MenuItem, MenuItemInput, Theme, ThemeInput,
};
use civsync_protocol::{Month, StationId, Tier};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Changes a station makes to its menu per week (a new item, a rename or a
/// withdrawal), after the first item.
pub const MENU_CHANGES_PER_STATION_WEEK: f64 = 0.25;
/// Of the changes to a menu that already offers something: the share that
/// changes one of its items rather than adding one.
pub const CHANGE_HELD_ITEM_PROBABILITY: f64 = 0.6;
/// Of those changes: the share that withdraws the item.
pub const WITHDRAW_PROBABILITY: f64 = 0.5;
/// Share of stations that withdraw an item within their first week.
pub const EARLY_WITHDRAWAL_PROBABILITY: f64 = 0.5;
/// Themes a township sets per week after its first (a month's own theme,
/// or another title for one it set).
pub const TOWNSHIP_THEMES_PER_WEEK: f64 = 1.0;

const TOWNSHIP_THEME_TITLES: [&str; 4] = ["乡风文明", "邻里守望", "乡村振兴", "清洁家园"];
const MENU_ITEM_NAMES: [&str; 6] = [
    "上门理发",
    "代购药品",
    "家电维修",
    "陪诊",
    "清扫庭院",
    "法律咨询",
];
const PROVIDERS: [&str; 3] = ["志愿服务队", "党员先锋队", "巾帼服务队"];

/// A step of menus and themes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogStep {
    /// The office sets (or sets again) the theme of `month`.
    SetTheme(Month),
    /// The station offers a new menu item, or renames or withdraws one.
    OfferMenuItem,
    /// The station withdraws an item it offers (one that found no takers).
    WithdrawMenuItem,
}

/// The steps that start on their own (the county's themes come from the
/// workload's schedule): (time, node, step).
pub fn schedule(config: &SimConfig, topology: &Topology) -> Vec<(SimMs, NodeIndex, Step)> {
    let mut rng = rng::stream(config.seed ^ 0xca7a1, Stream::Workflows);
    let horizon = config.days * DAY_MS;
    let mut out = Vec::new();
    let stations = topology
        .of_tier(Tier::Township)
        .chain(topology.of_tier(Tier::Village));
    for node in stations.collect::<Vec<_>>() {
        let first = rng.gen_range(2 * HOUR_MS..2 * DAY_MS).min(horizon - 1);
        out.push((first, node, Step::Catalog(CatalogStep::OfferMenuItem)));
        if rng.gen_bool(EARLY_WITHDRAWAL_PROBABILITY) {
            let at = rng.gen_range(2 * DAY_MS..6 * DAY_MS).min(horizon - 1);
            out.push((at, node, Step::Catalog(CatalogStep::WithdrawMenuItem)));
        }
        poisson_in_working_hours(
            &mut rng,
            MENU_CHANGES_PER_STATION_WEEK / 7.0,
            horizon,
            DAY_MS,
            |at| out.push((at, node, Step::Catalog(CatalogStep::OfferMenuItem))),
        );
    }
    let first_month = Date::of_unix_ms(RUN_START_UNIX_MS as u64).month();
    for township in topology.of_tier(Tier::Township).collect::<Vec<_>>() {
        // Every township sets a theme of its own in its first days.
        let first = rng.gen_range(2 * HOUR_MS..2 * DAY_MS).min(horizon - 1);
        let step = Step::Catalog(CatalogStep::SetTheme(first_month));
        out.push((first, township, step));
        let mut times = Vec::new();
        poisson_in_working_hours(&mut rng, TOWNSHIP_THEMES_PER_WEEK / 7.0, horizon, 0, |at| {
            times.push(at)
        });
        for at in times {
            let month = Date::of_unix_ms(RUN_START_UNIX_MS as u64 + at).month();
            let month = if rng.gen_bool(0.5) {
                month
            } else {
                month.next()
            };
            out.push((at, township, Step::Catalog(CatalogStep::SetTheme(month))));
        }
    }
    out
}

/// Counts reported at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CatalogCounters {
    pub themes_set: u64,
    pub menu_items_offered: u64,
    pub menu_items_renamed: u64,
    pub menu_items_withdrawn: u64,
    /// Writes the service refused, by the field it named.
    pub refused: BTreeMap<String, u64>,
}

/// The draws, and the last value acknowledged to a clerk for every theme
/// and menu item.
pub struct CatalogWork {
    rng: ChaCha8Rng,
    serial: u64,
    pub themes: BTreeMap<(StationId, Month), Theme>,
    pub menu: BTreeMap<(StationId, RecordId), MenuItem>,
    pub counters: CatalogCounters,
}

impl CatalogWork {
    pub fn new(config: &SimConfig) -> CatalogWork {
        CatalogWork {
            rng: rng::stream(config.seed ^ 0xca7a2, Stream::Workflows),
            serial: 0,
            themes: BTreeMap::new(),
            menu: BTreeMap::new(),
            counters: CatalogCounters::default(),
        }
    }

    pub fn run(&mut self, at: At<'_>, step: &CatalogStep) -> Outcome {
        match step {
            CatalogStep::SetTheme(month) => self.set_theme(at, *month),
            CatalogStep::OfferMenuItem => self.offer_menu_item(at, false),
            CatalogStep::WithdrawMenuItem => self.offer_menu_item(at, true),
        }
    }

    fn set_theme(&mut self, at: At<'_>, month: Month) -> Outcome {
        let county = at.topology.nodes[at.node].tier == Tier::County;
        let (title, description) = if county {
            let title = crate::names::MONTHLY_THEMES[(month.month as usize + 11) % 12];
            (title.to_string(), String::new())
        } else {
            let title = TOWNSHIP_THEME_TITLES[self.rng.gen_range(0..TOWNSHIP_THEME_TITLES.len())];
            (
                title.to_string(),
                format!("{month}全镇开展“{title}”主题活动"),
            )
        };
        let input = ThemeInput {
            month: month.to_string(),
            title,
            description,
        };
        match catalog::set_theme(at.replica, &input) {
            Ok(written) => {
                self.counters.themes_set += 1;
                let theme = written.item;
                let owner = theme.owner.clone();
                self.themes.insert((owner.clone(), month), theme);
                Outcome::written(
                    catalog::themes_document(&owner),
                    at.replica,
                    format!("set the theme of {month} at {owner}"),
                )
            }
            Err(error) => self.refused(error.field(), format!("set theme of {month}: {error}")),
        }
    }

    /// Offer, rename or withdraw an item; `withdraw`: withdraw one, if any.
    fn offer_menu_item(&mut self, at: At<'_>, withdraw: bool) -> Outcome {
        let owner = at.replica.local().clone();
        let held: Vec<MenuItem> = catalog::menu_offered_at(at.replica, &owner)
            .items
            .into_iter()
            .filter(|item| item.owner == owner && !item.withdrawn)
            .collect();
        if withdraw && held.is_empty() {
            return Outcome::nothing();
        }
        let change =
            withdraw || (!held.is_empty() && self.rng.gen_bool(CHANGE_HELD_ITEM_PROBABILITY));
        let (input, what) = if change {
            let item = &held[self.rng.gen_range(0..held.len())];
            let withdraw = withdraw || self.rng.gen_bool(WITHDRAW_PROBABILITY);
            let input = MenuItemInput {
                id: Some(item.id.to_string()),
                name: if withdraw {
                    item.name.clone()
                } else {
                    format!("{}（{}）", item.name, self.pick(&PROVIDERS))
                },
                category: item.category.key().to_string(),
                description: item.description.clone(),
                provider: item.provider.clone(),
                withdrawn: withdraw,
            };
            (input, if withdraw { "withdraw" } else { "rename" })
        } else {
            let name = self.pick(&MENU_ITEM_NAMES);
            let categories = civsync_protocol::domain::model::Category::ALL;
            let input = MenuItemInput {
                id: None,
                name: name.to_string(),
                category: categories[self.rng.gen_range(0..categories.len())]
                    .key()
                    .to_string(),
                description: format!("{name}，预约即上门"),
                provider: self.pick(&PROVIDERS).to_string(),
                withdrawn: false,
            };
            (input, "offer")
        };
        self.serial += 1;
        let nonce = (self.rng.gen::<u64>() & 0xffff_ffff_0000_0000) | (self.serial & 0xffff_ffff);
        match catalog::put_menu_item(at.replica, &input, nonce) {
            Ok(written) => {
                let item = written.item;
                match what {
                    "withdraw" => self.counters.menu_items_withdrawn += 1,
                    "rename" => self.counters.menu_items_renamed += 1,
                    _ => self.counters.menu_items_offered += 1,
                }
                let id = item.id.clone();
                self.menu.insert((owner.clone(), id.clone()), item);
                Outcome::written(
                    catalog::menu_document(&owner),
                    at.replica,
                    format!("{what} menu item {id} at {owner}"),
                )
            }
            Err(error) => self.refused(error.field(), format!("{what} a menu item: {error}")),
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.gen_range(0..from.len())]
    }

    fn refused(&mut self, field: &str, reason: String) -> Outcome {
        *self.counters.refused.entry(field.to_string()).or_default() += 1;
        Outcome::refused(reason)
    }
}

/// After the heal: at every honest holder of an office's themes and menu,
/// what the API shows (`themes_for`, `menu_offered_at` for that office)
/// holds every theme and item acknowledged there as its last acknowledged
/// write — a withdrawn item listed, marked withdrawn.
pub fn check(world: &mut crate::world::World) -> crate::checks::CheckResult {
    let mut problems = Vec::new();
    let mut reads = 0usize;
    let mut themes_by_owner: BTreeMap<StationId, Vec<&Theme>> = BTreeMap::new();
    let catalog_work = &world.workflows.catalog;
    for ((owner, _), theme) in &catalog_work.themes {
        themes_by_owner
            .entry(owner.clone())
            .or_default()
            .push(theme);
    }
    let mut menu_by_owner: BTreeMap<StationId, Vec<&MenuItem>> = BTreeMap::new();
    for ((owner, _), item) in &catalog_work.menu {
        menu_by_owner.entry(owner.clone()).or_default().push(item);
    }
    let themes_by_owner: Vec<(StationId, Vec<Theme>)> = themes_by_owner
        .into_iter()
        .map(|(owner, themes)| (owner, themes.into_iter().cloned().collect()))
        .collect();
    let menu_by_owner: Vec<(StationId, Vec<MenuItem>)> = menu_by_owner
        .into_iter()
        .map(|(owner, items)| (owner, items.into_iter().cloned().collect()))
        .collect();
    let counters = world.workflows.catalog.counters.clone();
    for (owner, expected) in &themes_by_owner {
        let document = catalog::themes_document(owner);
        for node in crate::checks::expected_holders(world, &document) {
            let holder = world.topology.nodes[node].station.clone();
            let Some(replica) = world.replica_mut(node) else {
                problems.push(format!("{holder} is down"));
                continue;
            };
            let read = catalog::themes_for(replica, owner, None);
            reads += 1;
            compare(
                &holder,
                owner,
                "theme",
                &read,
                expected,
                &mut problems,
                |t| (t.owner.clone(), t.month.to_string()),
            );
        }
    }
    for (owner, expected) in &menu_by_owner {
        let document = catalog::menu_document(owner);
        for node in crate::checks::expected_holders(world, &document) {
            let holder = world.topology.nodes[node].station.clone();
            let Some(replica) = world.replica_mut(node) else {
                problems.push(format!("{holder} is down"));
                continue;
            };
            let read = catalog::menu_offered_at(replica, owner);
            reads += 1;
            compare(
                &holder,
                owner,
                "menu item",
                &read,
                expected,
                &mut problems,
                |i| (i.owner.clone(), i.id.to_string()),
            );
        }
    }
    let themes: usize = themes_by_owner.iter().map(|(_, t)| t.len()).sum();
    let items: usize = menu_by_owner.iter().map(|(_, i)| i.len()).sum();
    if problems.is_empty() {
        crate::checks::CheckResult::pass(format!(
            "{themes} themes and {items} menu items read as last acknowledged at every holder \
             ({reads} reads through themes_for and menu_offered_at); {} themes set, {} items \
             offered, {} renamed, {} withdrawn; refused by field: {:?}",
            counters.themes_set,
            counters.menu_items_offered,
            counters.menu_items_renamed,
            counters.menu_items_withdrawn,
            counters.refused
        ))
    } else {
        let examples: Vec<String> = problems
            .iter()
            .take(crate::checks::EXAMPLES_MAX)
            .cloned()
            .collect();
        crate::checks::CheckResult::fail(format!(
            "{} reads of {themes} themes and {items} menu items differ from the last \
             acknowledged write: {}",
            problems.len(),
            examples.join("; ")
        ))
    }
}

/// Each expected item is in `read` exactly as acknowledged; the problems
/// found go to `problems`.
fn compare<T: PartialEq + std::fmt::Debug>(
    holder: &StationId,
    owner: &StationId,
    kind: &str,
    read: &CatalogRead<T>,
    expected: &[T],
    problems: &mut Vec<String>,
    key: impl Fn(&T) -> (StationId, String),
) {
    for unreadable in &read.unreadable {
        problems.push(format!(
            "{holder} cannot read {} {:?}: {}",
            unreadable.document, unreadable.key, unreadable.reason
        ));
    }
    for want in expected {
        let wanted_key = key(want);
        match read.items.iter().find(|item| key(item) == wanted_key) {
            Some(found) if found == want => {}
            Some(found) => problems.push(format!(
                "{holder} reads {kind} {} of {owner} as {found:?}, acknowledged as {want:?}",
                wanted_key.1
            )),
            None => problems.push(format!(
                "{holder} does not show {kind} {} of {owner}, acknowledged as {want:?}",
                wanted_key.1
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultMix;

    #[test]
    fn every_station_offers_a_menu_item_and_every_township_sets_themes() {
        let config = SimConfig {
            townships: 3,
            villages_per_township: 2,
            days: 30,
            ..SimConfig::default()
        };
        let topology = Topology::build(&config, &FaultMix::draw(&config));
        let steps = schedule(&config, &topology);
        let offering = |node: NodeIndex| {
            steps.iter().any(|(_, n, step)| {
                *n == node && *step == Step::Catalog(CatalogStep::OfferMenuItem)
            })
        };
        let setting = |node: NodeIndex| {
            steps.iter().any(|(_, n, step)| {
                *n == node && matches!(step, Step::Catalog(CatalogStep::SetTheme(_)))
            })
        };
        for township in topology.of_tier(Tier::Township) {
            assert!(offering(township) && setting(township), "{township}");
        }
        for village in topology.of_tier(Tier::Village) {
            assert!(offering(village) && !setting(village), "{village}");
        }
    }
}
