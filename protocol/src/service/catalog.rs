//! What offices send down their subtree: service menus (服务菜单) citizens
//! order from, and monthly themes (一月一主题) activities follow.
//!
//! ```text
//! reference:<owner>:menu     items {<item id>: {name, category, description, provider, withdrawn}}
//! reference:<owner>:themes   items {<YYYY-MM>: {theme, month, description}}
//! ```
//!
//! Reference data flows down the owner's subtree (and up to its
//! ancestors), so a village holds the menus and themes of its township and
//! county as soon as it has synced once, and keeps them offline.
//!
//! Rules kept here:
//! - a node writes only its own documents (`reference:<local>:…`): a county
//!   menu is the county's, a township adds its own items beside it;
//! - what a station is offered is the union over itself and its ancestors,
//!   county first: an item is identified by its owner and id, so two offices
//!   never overwrite each other's items;
//! - a withdrawn menu item stays listed (marked): orders already placed for
//!   it keep their meaning, and a clerk sees why it is no longer offered;
//! - a theme is keyed by its month, so setting it again corrects it;
//! - every text is trimmed and bounded, every document holds at most
//!   [`MENU_ITEMS_MAX`] / [`THEMES_MAX`] items; a refusal names the field
//!   and writes nothing;
//! - an item that cannot be read (written by a newer or foreign program) is
//!   reported with its document, key and reason, and never hides the rest.

use crate::domain::model::{self, Category, FieldError, RecordId};
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind, Month};
use crate::identity::station::StationId;
use crate::layout;
use crate::replica::{CommitError, Replica};
use crate::service::ErrorClass;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};

/// The reference name of menu documents.
pub const MENU: &str = "menu";
/// The reference name of monthly theme documents.
pub const THEMES: &str = "themes";
/// Items one office's menu may hold (a county menu has about 100).
pub const MENU_ITEMS_MAX: usize = 1_000;
/// Themes one office may hold: fifty years of months.
pub const THEMES_MAX: usize = 600;
/// Longest menu item name or theme title, in characters.
pub const TITLE_CHARS_MAX: usize = 64;
/// Longest description, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 500;
/// Longest provider (the team or unit that serves the item), in characters.
pub const PROVIDER_CHARS_MAX: usize = 64;

/// What a clerk submits to add or change a menu item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MenuItemInput {
    /// Given to change an existing item; drawn when absent.
    pub id: Option<String>,
    pub name: String,
    pub category: String,
    pub description: String,
    pub provider: String,
    pub withdrawn: bool,
}

/// One item of a menu, with the office whose menu it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    pub owner: StationId,
    pub id: RecordId,
    pub name: String,
    pub category: Category,
    pub description: String,
    pub provider: String,
    pub withdrawn: bool,
}

/// What a clerk submits to set a month's theme.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThemeInput {
    /// `YYYY-MM`.
    pub month: String,
    pub title: String,
    pub description: String,
}

/// A month's theme, with the office that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Theme {
    pub owner: StationId,
    #[serde(with = "month_text")]
    pub month: Month,
    pub title: String,
    pub description: String,
}

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written<T> {
    #[serde(flatten)]
    pub item: T,
    /// False when the document already said exactly this (nothing written).
    pub changed: bool,
}

/// An item that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableItem {
    pub document: DocumentId,
    /// `None`: the whole document could not be read.
    pub key: Option<String>,
    pub reason: String,
}

/// What a station is offered: items in office order (the county first),
/// then by id; and what could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRead<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<UnreadableItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("the document {document} already holds {max} items")]
    Full { document: DocumentId, max: usize },
    #[error("the store failed: {reason}")]
    Store { reason: String },
}

impl CatalogError {
    pub fn field(&self) -> &str {
        match self {
            CatalogError::Invalid(e) => &e.field,
            CatalogError::Full { .. } => "id",
            CatalogError::Store { .. } => "store",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            CatalogError::Invalid(e) => e.reason.clone(),
            other => other.to_string(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            CatalogError::Invalid(_) | CatalogError::Full { .. } => ErrorClass::BadInput,
            CatalogError::Store { .. } => ErrorClass::Internal,
        }
    }
}

impl From<FieldError> for CatalogError {
    fn from(error: FieldError) -> Self {
        CatalogError::Invalid(error)
    }
}

/// The menu document kept by `owner`.
pub fn menu_document(owner: &StationId) -> DocumentId {
    reference(owner, MENU)
}

/// The themes document kept by `owner`.
pub fn themes_document(owner: &StationId) -> DocumentId {
    reference(owner, THEMES)
}

fn reference(owner: &StationId, name: &str) -> DocumentId {
    DocumentId {
        owner: owner.clone(),
        kind: DocumentKind::Reference(name.to_string()),
    }
}

impl MenuItemInput {
    /// The item as `owner` would write it; `nonce` draws an id when none
    /// was given.
    pub fn validate(&self, owner: &StationId, nonce: u64) -> Result<MenuItem, FieldError> {
        let id = match self
            .id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
        {
            Some(id) => RecordId::parse("id", id)?,
            None => RecordId::generate("M", nonce),
        };
        Ok(MenuItem {
            owner: owner.clone(),
            id,
            name: model::text("name", &self.name, true, TITLE_CHARS_MAX)?,
            category: Category::parse(&self.category)?,
            description: model::text(
                "description",
                &self.description,
                false,
                DESCRIPTION_CHARS_MAX,
            )?,
            provider: model::text("provider", &self.provider, false, PROVIDER_CHARS_MAX)?,
            withdrawn: self.withdrawn,
        })
    }
}

impl ThemeInput {
    pub fn validate(&self, owner: &StationId) -> Result<Theme, FieldError> {
        let month = Month::parse(self.month.trim()).ok_or_else(|| {
            FieldError::new(
                "month",
                format!("{:?} is not a month (YYYY-MM)", self.month),
            )
        })?;
        Ok(Theme {
            owner: owner.clone(),
            month,
            title: model::text("title", &self.title, true, TITLE_CHARS_MAX)?,
            description: model::text(
                "description",
                &self.description,
                false,
                DESCRIPTION_CHARS_MAX,
            )?,
        })
    }
}

/// Add or change an item of this node's menu. Validates first; then one
/// commit or none.
pub fn put_menu_item<S: Storage>(
    replica: &mut Replica<S>,
    input: &MenuItemInput,
    nonce: u64,
) -> Result<Written<MenuItem>, CatalogError> {
    let owner = replica.local().clone();
    let item = input.validate(&owner, nonce)?;
    let fields = [
        ("name", item.name.clone()),
        ("category", item.category.key().to_string()),
        ("description", item.description.clone()),
        ("provider", item.provider.clone()),
        (
            "withdrawn",
            if item.withdrawn { "yes" } else { "" }.to_string(),
        ),
    ];
    let changed = put_item(
        replica,
        &menu_document(&owner),
        item.id.as_str(),
        &fields,
        MENU_ITEMS_MAX,
    )?;
    Ok(Written { item, changed })
}

/// Set (or correct) a month's theme in this node's themes document.
pub fn set_theme<S: Storage>(
    replica: &mut Replica<S>,
    input: &ThemeInput,
) -> Result<Written<Theme>, CatalogError> {
    let owner = replica.local().clone();
    let theme = input.validate(&owner)?;
    let month = theme.month.to_string();
    // `theme` and `month` are the fields the county's themes have always
    // been written with; `description` is read as empty where absent.
    let fields = [
        ("theme", theme.title.clone()),
        ("month", month.clone()),
        ("description", theme.description.clone()),
    ];
    let changed = put_item(
        replica,
        &themes_document(&owner),
        &month,
        &fields,
        THEMES_MAX,
    )?;
    Ok(Written {
        item: theme,
        changed,
    })
}

/// Write one item, refusing a new key into a full document.
fn put_item<S: Storage>(
    replica: &mut Replica<S>,
    document: &DocumentId,
    key: &str,
    fields: &[(&'static str, String)],
    items_max: usize,
) -> Result<bool, CatalogError> {
    debug_assert!(document.writable_by(replica.local()));
    let outcome = replica
        .commit(document, |doc| {
            let items = layout::reference_items(doc).map_err(store_error)?;
            let known = items.iter().any(|(k, _)| k == key);
            if !known && items.len() >= items_max {
                return Err(CatalogError::Full {
                    document: document.clone(),
                    max: items_max,
                });
            }
            layout::put_reference_item(doc, key, fields).map_err(store_error)
        })
        .map_err(commit_error)?;
    Ok(outcome.changes > 0)
}

/// The menu offered at `station`: the items of its own menu and of every
/// ancestor's held here, withdrawn ones included (marked).
pub fn menu_offered_at<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
) -> CatalogRead<MenuItem> {
    let mut read = read_catalog(replica, station, MENU, read_menu_item);
    if faults::armed(Fault::HideWithdrawnMenuItems) {
        read.items.retain(|item| !item.withdrawn);
    }
    read
}

/// The themes that apply at `station` (its own and every ancestor's held
/// here), optionally of one month only, in office order then month order.
pub fn themes_for<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    month: Option<Month>,
) -> CatalogRead<Theme> {
    let mut read = read_catalog(replica, station, THEMES, read_theme);
    if let Some(month) = month {
        read.items.retain(|theme| theme.month == month);
    }
    read
}

/// Reads one item (owner, key, fields) of a catalog document, or says why not.
type ItemReader<T> = fn(&StationId, &str, &[(String, String)]) -> Result<T, String>;

fn read_catalog<S: Storage, T>(
    replica: &mut Replica<S>,
    station: &StationId,
    name: &str,
    read_item: ItemReader<T>,
) -> CatalogRead<T> {
    let mut documents = replica.documents_where(|document| {
        matches!(&document.kind, DocumentKind::Reference(n) if n == name)
            && document.owner.is_ancestor_or_self_of(station)
    });
    // The county first: an office reads its parents' items before its own.
    documents.sort_by_key(|document| document.owner.depth());
    let mut out = CatalogRead {
        items: Vec::new(),
        unreadable: Vec::new(),
    };
    for document in documents {
        let whole = |reason: String| UnreadableItem {
            document: document.clone(),
            key: None,
            reason,
        };
        match replica.with_document(&document, layout::reference_items) {
            Ok(Some(Ok(items))) => {
                for (key, fields) in items {
                    match read_item(&document.owner, &key, &fields) {
                        Ok(item) => out.items.push(item),
                        Err(reason) => out.unreadable.push(UnreadableItem {
                            document: document.clone(),
                            key: Some(key),
                            reason,
                        }),
                    }
                }
            }
            // Listed a moment ago on the owner thread: cannot vanish.
            Ok(None) => {}
            Ok(Some(Err(error))) => out.unreadable.push(whole(error.to_string())),
            Err(error) => out.unreadable.push(whole(error.to_string())),
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(field, _)| field == name)
        .map_or("", |(_, value)| value.as_str())
}

fn read_menu_item(
    owner: &StationId,
    key: &str,
    fields: &[(String, String)],
) -> Result<MenuItem, String> {
    let input = MenuItemInput {
        id: Some(key.to_string()),
        name: field(fields, "name").to_string(),
        category: field(fields, "category").to_string(),
        description: field(fields, "description").to_string(),
        provider: field(fields, "provider").to_string(),
        withdrawn: !field(fields, "withdrawn").is_empty(),
    };
    // Read back through the same checks it was written with: what another
    // program wrote outside the bounds is reported, not shown.
    input
        .validate(owner, 0)
        .map_err(|e| format!("{}: {}", e.field, e.reason))
}

fn read_theme(owner: &StationId, key: &str, fields: &[(String, String)]) -> Result<Theme, String> {
    let input = ThemeInput {
        month: key.to_string(),
        title: field(fields, "theme").to_string(),
        description: field(fields, "description").to_string(),
    };
    input
        .validate(owner)
        .map_err(|e| format!("{}: {}", e.field, e.reason))
}

fn store_error(error: impl std::fmt::Display) -> CatalogError {
    CatalogError::Store {
        reason: error.to_string(),
    }
}

fn commit_error(error: CommitError<CatalogError>) -> CatalogError {
    match error {
        CommitError::Mutate(e) => e,
        other => store_error(other),
    }
}

/// A month as clerks write it, `YYYY-MM`.
mod month_text {
    use crate::identity::document_id::Month;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(month: &Month, out: S) -> Result<S::Ok, S::Error> {
        out.collect_str(month)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Month, D::Error> {
        let text = String::deserialize(input)?;
        Month::parse(&text).ok_or_else(|| D::Error::custom(format!("{text:?} is not YYYY-MM")))
    }
}

#[cfg(test)]
mod tests;
