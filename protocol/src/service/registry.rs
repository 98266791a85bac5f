//! The station registry as operations over a [`Replica`]: register or
//! rename a station, and read the registry this node knows.
//!
//! A station's registry is the reference document `reference:<owner>:registry`
//! (see `layout::registry`). Reference data flows down, so every node holds
//! the registries of its ancestors, its own, and (being an ancestor of them)
//! those kept below it. Who writes follows `DocumentId::writable_by`: the
//! owner or a station above it.
//!
//! Rules kept here:
//! - a node registers only stations of its own subtree (itself included);
//! - a station's tier follows from its depth: one path segment is one tier,
//!   so a station `n` levels below this node is `n` tiers below this node's
//!   tier (the node's tier is its certificate's, passed in); a tier given
//!   must match it, a blank one is taken from it;
//! - a name is non-empty after trimming, has no control characters and at
//!   most [`STATION_NAME_CHARS_MAX`] characters;
//! - reading merges every registry document held, and for each station the
//!   entry from the *closest* owner (the deepest, the office nearest the
//!   station) wins: a township knows its villages best. So that a rename is
//!   seen, it is written where readers look first: into the closest registry
//!   held here that already lists the station, else into this node's own;
//! - a refusal names the field (`id`, `name`, `tier`, `retired_on`,
//!   `merged_into`) and writes nothing;
//! - retiring (撤并) marks a registered station closed as of `retired_on`,
//!   optionally naming the station that took over its work. Only a node
//!   strictly above the station retires it (an office does not close
//!   itself). The successor must be registered, not retired, not the
//!   station or below it, and inside the subtree of the retired station's
//!   parent (a village's work goes to a neighbour or to its township; the
//!   parent itself is allowed). `retired_on` is at most
//!   [`RETIREMENT_LEAD_DAYS_MAX`] days after today (today passed in).
//!   Un-retiring writes the fields back to empty. The retirement is written
//!   into the same registry a rename would be (the closest listing the
//!   station); when only a registry above this node lists it, the entry is
//!   copied into this node's own registry with the retirement, so the
//!   closest entry carries it. Merging keeps whole entries from the closest
//!   owner, so a retirement written into a *farther* registry than one that
//!   also lists the station is not seen (the service never does that with
//!   the registries it holds);
//! - retirement hides nothing: a retired station stays in the registry and
//!   its documents and figures stay as they are.

use crate::domain::model::{date_format, FieldError};
use crate::identity::document_id::DocumentId;
use crate::identity::station::{Station, StationId, Tier};
use crate::layout::{self, Retirement, UnreadableEntry};
use crate::replica::{CommitError, Replica};
use crate::service::ErrorClass;
use crate::stats::RetiredStations;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::Date;

/// Longest station name accepted, in characters (the longest official
/// names, e.g. `某某县某某镇某某村新时代文明实践站`, are about 20).
pub const STATION_NAME_CHARS_MAX: usize = 64;
/// Entries one registry document may hold: a county has a few hundred
/// villages; this leaves room for points and bases below them.
pub const REGISTRY_STATIONS_MAX: usize = 10_000;
/// How far ahead a retirement may be dated, in days: a merger decided now
/// takes effect within the year; anything later is a typing error.
pub const RETIREMENT_LEAD_DAYS_MAX: i64 = 366;

/// What a clerk submits to register or rename a station.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationInput {
    pub id: String,
    pub name: String,
    pub tier: String,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("id: {reason}")]
    OutsideSubtree { reason: String },
    #[error("id: the registry {document} already holds {max} stations")]
    Full { document: DocumentId, max: usize },
    #[error("the store failed: {reason}")]
    Store { reason: String },
}

impl RegistryError {
    pub fn field(&self) -> &str {
        match self {
            RegistryError::Invalid(e) => &e.field,
            RegistryError::OutsideSubtree { .. } | RegistryError::Full { .. } => "id",
            RegistryError::Store { .. } => "store",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            RegistryError::Invalid(e) => e.reason.clone(),
            RegistryError::OutsideSubtree { reason } | RegistryError::Store { reason } => {
                reason.clone()
            }
            RegistryError::Full { document, max } => {
                format!("the registry {document} already holds {max} stations")
            }
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Invalid(_) | RegistryError::Full { .. } => ErrorClass::BadInput,
            RegistryError::OutsideSubtree { .. } => ErrorClass::Forbidden,
            RegistryError::Store { .. } => ErrorClass::Internal,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(FieldError::new(field, reason))
}

/// The tier of `station`, given that `anchor` (an ancestor of it, or
/// itself) has `anchor_tier`: one tier down per path segment. `None` when
/// that would fall below the lowest tier.
pub fn tier_below(anchor: &StationId, anchor_tier: Tier, station: &StationId) -> Option<Tier> {
    debug_assert!(anchor.is_ancestor_or_self_of(station));
    let levels = station.depth().checked_sub(anchor.depth())?;
    let at = Tier::ALL.iter().position(|t| *t == anchor_tier)?;
    Tier::ALL.get(at + levels).copied()
}

/// Check a submitted station against what this node (`local`, of tier
/// `local_tier`) may register. The name comes back trimmed.
pub fn validate_station(
    input: &StationInput,
    local: &StationId,
    local_tier: Tier,
) -> Result<Station, RegistryError> {
    let id = StationId::parse(input.id.trim()).map_err(|e| invalid("id", e.to_string()))?;
    if !local.is_ancestor_or_self_of(&id) {
        return Err(RegistryError::OutsideSubtree {
            reason: format!(
                "this node is {local} and registers only it and the stations below it, not {id}"
            ),
        });
    }
    let levels = id.depth() - local.depth();
    let expected = tier_below(local, local_tier, &id).ok_or_else(|| {
        invalid(
            "id",
            format!("{id} is {levels} levels below {local} ({local_tier}): below the lowest tier"),
        )
    })?;
    // The depth gives the tier; one written is a check against typing the
    // wrong code, and a blank one (a station list without a tier column)
    // is the depth's.
    let tier = if input.tier.trim().is_empty() {
        expected
    } else {
        Tier::parse_input(&input.tier).ok_or_else(|| invalid("tier", Tier::unknown(&input.tier)))?
    };
    if tier != expected {
        return Err(invalid(
            "tier",
            format!(
                "{id} is {levels} level(s) below {local} ({local_tier}), so its tier is {expected}, not {tier}"
            ),
        ));
    }
    let name = input.name.trim();
    if name.is_empty() {
        return Err(invalid("name", "is empty; give the station's name"));
    }
    let chars = name.chars().count();
    if chars > STATION_NAME_CHARS_MAX {
        return Err(invalid(
            "name",
            format!("is {chars} characters; at most {STATION_NAME_CHARS_MAX} are allowed"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "contains a control character"));
    }
    Ok(Station {
        id,
        name: name.to_string(),
        tier,
    })
}

/// A station as registered, and which registry lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    #[serde(flatten)]
    pub station: Station,
    /// Owner of the registry document the entry comes from.
    pub registered_in: StationId,
    /// Set when the station is retired (撤并); absent when it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retirement>,
}

/// The outcome of a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    #[serde(flatten)]
    pub entry: RegistryEntry,
    /// False when the entry already said exactly this (nothing written).
    pub changed: bool,
}

/// Register `input` as a station, or rename it (see the module comment for
/// where it is written). Validates first; then one commit or none.
pub fn register_station<S: Storage>(
    replica: &mut Replica<S>,
    local_tier: Tier,
    input: &StationInput,
) -> Result<Registered, RegistryError> {
    let local = replica.local().clone();
    let station = validate_station(input, &local, local_tier)?;
    let document = target_document(replica, &station.id)?;
    debug_assert!(document.writable_by(&local));
    debug_assert!(document.owner.is_ancestor_or_self_of(&station.id));
    let owner = document.owner.clone();
    let entry = station.clone();
    let outcome = replica
        .commit(&document, |doc| {
            let listed = layout::registry_lists(doc, &entry.id).map_err(store_error)?;
            if !listed && layout::registry_len(doc).map_err(store_error)? >= REGISTRY_STATIONS_MAX {
                return Err(RegistryError::Full {
                    document: layout::registry_document(&owner),
                    max: REGISTRY_STATIONS_MAX,
                });
            }
            layout::put_registry_entry(doc, &entry).map_err(store_error)
        })
        .map_err(commit_error)?;
    Ok(Registered {
        entry: RegistryEntry {
            station,
            registered_in: document.owner,
            // A rename leaves the retirement as it was; the caller reads
            // the registry for it.
            retired: None,
        },
        changed: outcome.changes > 0,
    })
}

/// What a clerk submits to retire a station (`retired_on` set) or to undo
/// a retirement (`retired_on` absent or null).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireInput {
    pub id: String,
    #[serde(default)]
    pub retired_on: Option<String>,
    #[serde(default)]
    pub merged_into: Option<String>,
}

/// Check a retirement against the merged registry `read` and what this
/// node (`local`) may write; `today` bounds how far ahead it may be dated.
/// Returns the station and its retirement (`None`: un-retire).
pub fn validate_retirement(
    input: &RetireInput,
    local: &StationId,
    read: &RegistryRead,
    today: Date,
) -> Result<(RegistryEntry, Option<Retirement>), RegistryError> {
    let id = StationId::parse(input.id.trim()).map_err(|e| invalid("id", e.to_string()))?;
    if !local.is_strict_ancestor_of(&id) {
        return Err(RegistryError::OutsideSubtree {
            reason: format!("this node is {local} and retires only stations below it, not {id}"),
        });
    }
    let entry = read
        .entry(&id)
        .ok_or_else(|| invalid("id", format!("{id} is not registered; register it first")))?
        .clone();
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    let Some(retired_on) = text(&input.retired_on) else {
        if text(&input.merged_into).is_some() {
            return Err(invalid(
                "merged_into",
                "only a retired station has a successor; give retired_on too",
            ));
        }
        return Ok((entry, None));
    };
    let retired_on =
        date_format::parse("retired_on", &retired_on).map_err(RegistryError::Invalid)?;
    let latest = today.saturating_add(time::Duration::days(RETIREMENT_LEAD_DAYS_MAX));
    if retired_on > latest {
        return Err(invalid(
            "retired_on",
            format!(
                "{} is more than {RETIREMENT_LEAD_DAYS_MAX} days after today ({})",
                date_format::format(retired_on),
                date_format::format(today)
            ),
        ));
    }
    let merged_into = match text(&input.merged_into) {
        None => None,
        Some(text) => Some(validate_successor(&id, &text, local, read)?),
    };
    Ok((
        entry,
        Some(Retirement {
            retired_on,
            merged_into,
        }),
    ))
}

fn validate_successor(
    retired: &StationId,
    text: &str,
    local: &StationId,
    read: &RegistryRead,
) -> Result<StationId, RegistryError> {
    let successor = StationId::parse(text).map_err(|e| invalid("merged_into", e.to_string()))?;
    if retired.is_ancestor_or_self_of(&successor) {
        return Err(invalid(
            "merged_into",
            format!("{successor} is {retired} or below it; name the station that took over"),
        ));
    }
    let parent = retired.parent();
    debug_assert!(parent.is_some(), "a retired station is below this node");
    if !parent.is_some_and(|p| p.is_ancestor_or_self_of(&successor)) {
        return Err(invalid(
            "merged_into",
            format!("{successor} is not under the same parent as {retired}"),
        ));
    }
    // This node itself is always known, registered or not.
    if &successor != local && read.entry(&successor).is_none() {
        return Err(invalid(
            "merged_into",
            format!("{successor} is not registered"),
        ));
    }
    if let Some(on) = read.retired().retired_on(&successor) {
        return Err(invalid(
            "merged_into",
            format!(
                "{successor} is itself retired (on {})",
                date_format::format(on)
            ),
        ));
    }
    Ok(successor)
}

/// Retire a registered station of this node's subtree, or undo its
/// retirement (see the module comment). Validates first; then one commit
/// or none. `today` is this node's date (passed in: no clock read here).
pub fn retire_station<S: Storage>(
    replica: &mut Replica<S>,
    input: &RetireInput,
    today: Date,
) -> Result<Registered, RegistryError> {
    let local = replica.local().clone();
    let read = read_registry(replica);
    let (entry, retirement) = validate_retirement(input, &local, &read, today)?;
    let station = entry.station.clone();
    let document = target_document(replica, &station.id)?;
    debug_assert!(document.writable_by(&local));
    let owner = document.owner.clone();
    let written = retirement.clone();
    let outcome = replica
        .commit(&document, |doc| {
            let listed = layout::registry_lists(doc, &station.id).map_err(store_error)?;
            if !listed {
                // Only a registry above this node lists it: take the entry
                // into this node's own, so the closest entry carries it.
                if layout::registry_len(doc).map_err(store_error)? >= REGISTRY_STATIONS_MAX {
                    return Err(RegistryError::Full {
                        document: layout::registry_document(&owner),
                        max: REGISTRY_STATIONS_MAX,
                    });
                }
                layout::put_registry_entry(doc, &station).map_err(store_error)?;
            }
            let put = layout::put_registry_retirement(doc, &station.id, written.as_ref())
                .map_err(store_error)?;
            debug_assert!(put, "the entry was listed or just written");
            Ok(())
        })
        .map_err(commit_error)?;
    Ok(Registered {
        entry: RegistryEntry {
            station: entry.station,
            registered_in: document.owner,
            retired: retirement,
        },
        changed: outcome.changes > 0,
    })
}

/// Where an entry for `station` is written: the closest registry held here,
/// at or below this node, that already lists it; else this node's own.
fn target_document<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
) -> Result<DocumentId, RegistryError> {
    let local = replica.local().clone();
    let mut owners: Vec<StationId> = station.ancestors();
    owners.push(station.clone());
    for owner in owners.iter().rev() {
        if !local.is_ancestor_or_self_of(owner) {
            break;
        }
        let document = layout::registry_document(owner);
        let lists = replica
            .with_document(&document, |doc| layout::registry_lists(doc, station))
            .map_err(store_error)?;
        if let Some(lists) = lists {
            if lists.map_err(store_error)? {
                return Ok(document);
            }
        }
    }
    Ok(layout::registry_document(&local))
}

fn store_error(error: impl std::fmt::Display) -> RegistryError {
    RegistryError::Store {
        reason: error.to_string(),
    }
}

fn commit_error(error: CommitError<RegistryError>) -> RegistryError {
    match error {
        CommitError::Mutate(e) => e,
        // Neither can happen for a document at or below this node; kept
        // as refusals, not store failures, should the rules change.
        CommitError::NotWritable { .. } | CommitError::OutOfScope { .. } => {
            RegistryError::OutsideSubtree {
                reason: error.to_string(),
            }
        }
        other => store_error(other),
    }
}

/// A registry document, or one of its entries, that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRegistry {
    pub document: DocumentId,
    /// The entry's key; `None` when the whole document was unreadable.
    pub key: Option<String>,
    pub reason: String,
}

/// Every station the registries held here name, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryRead {
    /// One entry per station, in path order.
    pub entries: Vec<RegistryEntry>,
    pub unreadable: Vec<UnreadableRegistry>,
}

impl RegistryRead {
    /// The merged entry of `station`, if registered.
    pub fn entry(&self, station: &StationId) -> Option<&RegistryEntry> {
        self.entries
            .binary_search_by(|e| e.station.id.cmp(station))
            .ok()
            .map(|at| &self.entries[at])
    }

    /// The retired stations, as statistics and freshness take them.
    pub fn retired(&self) -> RetiredStations {
        RetiredStations::new(self.entries.iter().filter_map(|e| {
            e.retired
                .as_ref()
                .map(|r| (e.station.id.clone(), r.retired_on))
        }))
    }

    /// The stations, as the statistics take them.
    pub fn stations(&self) -> Vec<Station> {
        self.entries.iter().map(|e| e.station.clone()).collect()
    }

    /// Entries of `root`'s subtree, `root` included.
    pub fn under<'a>(&'a self, root: &'a StationId) -> impl Iterator<Item = &'a RegistryEntry> {
        self.entries
            .iter()
            .filter(move |e| root.is_ancestor_or_self_of(&e.station.id))
    }
}

/// Merge the entries of several registries (owner, its stations): for each
/// station, the entry of the deepest owner wins. Independent of the order
/// the registries come in. Entries outside their owner's subtree are not
/// taken (the layout reader already drops them; kept as a guard).
pub fn merge_registries<'a>(
    registries: impl IntoIterator<Item = (&'a StationId, &'a [Station])>,
) -> Vec<RegistryEntry> {
    let none = BTreeMap::new();
    merge_registries_retiring(
        registries
            .into_iter()
            .map(|(owner, stations)| (owner, stations, &none)),
    )
}

/// [`merge_registries`] with each registry's retirements: an entry carries
/// the retirement its own registry says, so the closest owner decides
/// name, tier and retirement together.
pub fn merge_registries_retiring<'a>(
    registries: impl IntoIterator<
        Item = (
            &'a StationId,
            &'a [Station],
            &'a BTreeMap<StationId, Retirement>,
        ),
    >,
) -> Vec<RegistryEntry> {
    let mut merged: BTreeMap<StationId, RegistryEntry> = BTreeMap::new();
    for (owner, stations, retirements) in registries {
        for station in stations {
            if !owner.is_ancestor_or_self_of(&station.id) {
                continue;
            }
            let closer = merged
                .get(&station.id)
                .is_none_or(|held| owner.depth() > held.registered_in.depth());
            if closer {
                merged.insert(
                    station.id.clone(),
                    RegistryEntry {
                        station: station.clone(),
                        registered_in: owner.clone(),
                        retired: retirements.get(&station.id).cloned(),
                    },
                );
            }
        }
    }
    merged.into_values().collect()
}

/// `registry` completed with the `seen` stations (those data came from)
/// that it does not name, each with its tier from its depth below `anchor`
/// (of `anchor_tier`) and its path as its name. Once a registry exists,
/// coverage counts the villages it names; this keeps a village that
/// reported but was never registered from dropping out of the count.
/// Stations outside `anchor`'s subtree or below the lowest tier are left
/// out. In path order.
pub fn with_unregistered(
    registry: &[Station],
    seen: impl IntoIterator<Item = StationId>,
    anchor: &StationId,
    anchor_tier: Tier,
) -> Vec<Station> {
    let mut out: BTreeMap<StationId, Station> =
        registry.iter().map(|s| (s.id.clone(), s.clone())).collect();
    for id in seen {
        if out.contains_key(&id) || !anchor.is_ancestor_or_self_of(&id) {
            continue;
        }
        if let Some(tier) = tier_below(anchor, anchor_tier, &id) {
            let name = id.to_string();
            out.insert(id.clone(), Station { id, name, tier });
        }
    }
    out.into_values().collect()
}

/// Read and merge every registry document this node holds.
pub fn read_registry<S: Storage>(replica: &mut Replica<S>) -> RegistryRead {
    let mut read = RegistryRead::default();
    let mut registries: Vec<(StationId, layout::RegistryEntries)> = Vec::new();
    for document in replica.documents_where(layout::is_registry) {
        let owner = document.owner.clone();
        let entries = replica.with_document(&document, |doc| layout::registry_entries(doc, &owner));
        let whole_document = |reason: String| UnreadableRegistry {
            document: document.clone(),
            key: None,
            reason,
        };
        match entries {
            Ok(Some(Ok(mut entries))) => {
                read.unreadable
                    .extend(std::mem::take(&mut entries.unreadable).into_iter().map(
                        |UnreadableEntry { key, reason }| UnreadableRegistry {
                            document: document.clone(),
                            key: Some(key),
                            reason,
                        },
                    ));
                registries.push((owner, entries));
            }
            // Listed a moment ago and on the owner thread: cannot vanish.
            Ok(None) => {}
            Ok(Some(Err(error))) => read.unreadable.push(whole_document(error.to_string())),
            Err(error) => read.unreadable.push(whole_document(error.to_string())),
        }
    }
    read.entries = merge_registries_retiring(
        registries
            .iter()
            .map(|(owner, entries)| (owner, entries.stations.as_slice(), &entries.retirements)),
    );
    read
}

/// The last merged registry read, with the heads of the registry documents
/// it was read from. Statistics and freshness take the registry on every
/// query, and it changes far less often than they are asked for.
#[derive(Debug, Default)]
pub struct RegistryCache {
    read_from: Vec<(DocumentId, Vec<automerge::ChangeHash>)>,
    read: Option<RegistryRead>,
    /// How often the registries were actually read (the rest were served
    /// from the cache).
    pub reads: u64,
}

/// [`read_registry`], served from `cache` while no registry document has
/// changed (none added, none with other heads).
pub fn read_registry_cached<S: Storage>(
    replica: &mut Replica<S>,
    cache: &mut RegistryCache,
) -> RegistryRead {
    let current: Vec<(DocumentId, Vec<automerge::ChangeHash>)> = replica
        .documents_where(layout::is_registry)
        .into_iter()
        .map(|document| {
            let heads = replica.heads(&document).unwrap_or_default().to_vec();
            (document, heads)
        })
        .collect();
    if let Some(read) = &cache.read {
        if cache.read_from == current {
            return read.clone();
        }
    }
    let read = read_registry(replica);
    cache.read_from = current;
    cache.read = Some(read.clone());
    cache.reads += 1;
    read
}

pub mod import;

#[cfg(test)]
mod tests;
