//! The domain model: volunteers, teams, activities with service records, and
//! citizens' service orders, with the validation the national rules ask for.
//!
//! Validation is pure: "today" is passed in, never read from a clock. Every
//! failure is a [`FieldError`] naming the field and the reason, so a clerk (or
//! an import report) can act on it. Nothing here touches a document; see
//! `layout` for how these map onto Automerge.

use crate::domain::phone::PhoneSeals;
use crate::identity::parsed_text::deserialize_parsed;
use crate::identity::station::StationId;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Date, Duration, Weekday};

/// Longest free-text field (names, places, content), in characters.
pub const TEXT_CHARS_MAX: usize = 200;
/// Longest description / content field, in characters.
pub const CONTENT_CHARS_MAX: usize = 2_000;
/// Most skills or categories on one volunteer.
pub const TAGS_MAX: usize = 16;
/// Most service records on one activity.
pub const SERVICE_RECORDS_PER_ACTIVITY_MAX: usize = 2_000;
/// Most beneficiaries one activity may claim (a county-wide rally is large).
pub const BENEFICIARIES_MAX: u32 = 1_000_000;
/// Service hours a volunteer may log on one day, in hundredths of an hour.
pub const HOURS_PER_DAY_CENTI_MAX: u32 = 24 * 100;
/// Working days after an activity within which its record is on time.
pub const RECORD_WORKING_DAYS_MAX: u32 = 10;

/// A validation failure: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub type Validated<T> = Result<T, FieldError>;

/// Dates travel and rest as `YYYY-MM-DD`.
pub mod date_format {
    use time::{format_description::FormatItem, macros::format_description, Date};
    pub const FORMAT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

    pub fn parse(field: &str, text: &str) -> super::Validated<Date> {
        Date::parse(text, FORMAT).map_err(|_| {
            super::FieldError::new(
                field,
                format!("{text:?} is not a date of the form YYYY-MM-DD"),
            )
        })
    }

    pub fn format(date: Date) -> String {
        date.format(FORMAT).unwrap_or_else(|_| date.to_string())
    }

    pub fn serialize<S: serde::Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*date))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Date::parse(&text, FORMAT)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not YYYY-MM-DD")))
    }
}

/// Identifier of a record inside a document (volunteer number, team id,
/// activity id): 1–40 of `A-Z a-z 0-9 - _`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct RecordId(String);

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer, "a record id", |text| {
            RecordId::parse("id", text)
        })
    }
}

pub const RECORD_ID_BYTES_MAX: usize = 40;

impl RecordId {
    pub fn parse(field: &str, text: &str) -> Validated<RecordId> {
        if text.is_empty() || text.len() > RECORD_ID_BYTES_MAX {
            return Err(FieldError::new(
                field,
                format!("must be 1 to {RECORD_ID_BYTES_MAX} characters"),
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(FieldError::new(
                field,
                format!("has character {c:?}; use A-Z, a-z, 0-9, '-' and '_'"),
            ));
        }
        Ok(RecordId(text.to_string()))
    }

    /// A fresh id from a random nonce supplied by the caller (the node's RNG,
    /// or the simulation's seeded one), prefixed for readability.
    pub fn generate(prefix: &str, nonce: u64) -> RecordId {
        RecordId(format!("{prefix}{nonce:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RecordId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RecordId::parse("id", &value)
    }
}
impl From<RecordId> for String {
    fn from(value: RecordId) -> Self {
        value.0
    }
}
impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The choices of a vocabulary as a refusal lists them: `中文 (english), ...`.
pub fn choices<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    entries
        .into_iter()
        .map(|(key, label)| format!("{label} ({key})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every closed vocabulary of the model, as (field, [(key, Chinese label)]):
/// what the reference documentation must list.
pub fn vocabularies() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (Sex::FIELD, Sex::entries()),
        (Form::FIELD, Form::entries()),
        (Category::FIELD, Category::entries()),
        (OrderStatus::FIELD, OrderStatus::entries()),
    ]
}

/// Who a volunteer is across the deployment. Volunteer numbers are unique
/// only within one roster (two villages may both import "001"), so every
/// figure, standing and certificate keys a person by the station whose
/// roster holds them and their number there — never by the number alone.
/// Serialised as `<home station>:<number>`, so it can key a JSON map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct VolunteerId {
    pub home_station: StationId,
    pub number: RecordId,
}

impl<'de> Deserialize<'de> for VolunteerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(
            deserializer,
            "a volunteer as <home station>:<number>",
            VolunteerId::parse,
        )
    }
}

impl VolunteerId {
    pub fn new(home_station: StationId, number: RecordId) -> VolunteerId {
        VolunteerId {
            home_station,
            number,
        }
    }

    /// `<home station>:<number>` (`xh/t1/v1:001`), or a bare number, which
    /// names no station (`None`): the caller decides where to look for it.
    pub fn parse_qualified(field: &str, text: &str) -> Validated<(Option<StationId>, RecordId)> {
        match text.rsplit_once(':') {
            None => Ok((None, RecordId::parse(field, text)?)),
            Some((station, number)) => {
                let station = StationId::parse(station).map_err(|e| {
                    FieldError::new(
                        field,
                        format!("{e}; name a volunteer as <number> or <home station>:<number>"),
                    )
                })?;
                Ok((Some(station), RecordId::parse(field, number)?))
            }
        }
    }
}

impl VolunteerId {
    /// `<home station>:<number>`; a bare number is refused.
    pub fn parse(text: &str) -> Validated<VolunteerId> {
        match VolunteerId::parse_qualified("volunteer", text)? {
            (Some(home), number) => Ok(VolunteerId::new(home, number)),
            (None, _) => Err(FieldError::new(
                "volunteer",
                "names no home station; expected <home station>:<number>",
            )),
        }
    }
}

impl TryFrom<String> for VolunteerId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        VolunteerId::parse(&value)
    }
}
impl From<VolunteerId> for String {
    fn from(value: VolunteerId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for VolunteerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.home_station, self.number)
    }
}

/// Defines a closed vocabulary with stable machine keys and Chinese labels.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $field:literal, { $($variant:ident => ($key:literal, $label:literal)),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The field a refusal names.
            pub const FIELD: &'static str = $field;
            pub fn key(self) -> &'static str { match self { $($name::$variant => $key),+ } }
            pub fn label(self) -> &'static str { match self { $($name::$variant => $label),+ } }
            /// Accepts the machine key or the Chinese label; a refusal lists
            /// every choice as `中文 (english)`, since clerks type the Chinese.
            pub fn parse(text: &str) -> Validated<$name> {
                let text = text.trim();
                $name::ALL.iter().copied().find(|v| v.key() == text || v.label() == text).ok_or_else(|| {
                    let choices = choices($name::ALL.iter().map(|v| (v.key(), v.label())));
                    FieldError::new($field, format!("unknown value {text:?}; expected one of {choices}"))
                })
            }
            /// Every entry as (key, Chinese label), in order.
            pub fn entries() -> Vec<(&'static str, &'static str)> {
                $name::ALL.iter().map(|v| (v.key(), v.label())).collect()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.key()) }
        }
    };
}

vocabulary!(
    /// Sex as recorded on the volunteer record.
    Sex, "sex", { Male => ("male", "男"), Female => ("female", "女") }
);

vocabulary!(
    /// Form of an activity: 讲 评 帮 乐 倡, and 庆 创 where counties use them.
    Form, "form", {
        Lecture => ("lecture", "讲"),
        Appraise => ("appraise", "评"),
        Help => ("help", "帮"),
        Entertain => ("entertain", "乐"),
        Advocate => ("advocate", "倡"),
        Celebrate => ("celebrate", "庆"),
        Create => ("create", "创"),
    }
);

vocabulary!(
    /// Service category, as the county sub-teams (分队) are organised.
    Category, "category", {
        Theory => ("theory", "理论宣讲"),
        Culture => ("culture", "文化文艺"),
        Health => ("health", "医疗健身"),
        Education => ("education", "教育服务"),
        Science => ("science", "科技科普"),
        Law => ("law", "法律服务"),
        Ecology => ("ecology", "生态环保"),
        ElderCare => ("elder_care", "扶老助残"),
        CustomsReform => ("customs_reform", "移风易俗"),
        PovertyRelief => ("poverty_relief", "助农帮扶"),
        EmergencyRescue => ("emergency_rescue", "应急救援"),
        Other => ("other", "其他"),
    }
);

vocabulary!(
    /// Where a citizen's order stands in the four-order workflow (四单).
    OrderStatus, "status", {
        Placed => ("placed", "点单"),
        Dispatched => ("dispatched", "派单"),
        Taken => ("taken", "接单"),
        Rated => ("rated", "评单"),
        Cancelled => ("cancelled", "撤单"),
    }
);

/// Service hours in hundredths of an hour: decimal input, exact sums.
/// Travels in JSON as a decimal number of hours (`2.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hours {
    pub centi: u32,
}

impl Serialize for Hours {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Hours::from_f64("hours", value).map_err(serde::de::Error::custom)
    }
}

impl Hours {
    /// Parse decimal hours (`2`, `1.5`, `0.25`): > 0 and ≤ 24, at most two
    /// decimals.
    pub fn parse(field: &str, text: &str) -> Validated<Hours> {
        let text = text.trim();
        let bad = || {
            FieldError::new(
                field,
                format!("{text:?} is not a number of hours like 2 or 1.5"),
            )
        };
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad());
        }
        if whole.starts_with('-') {
            return Err(FieldError::new(field, "hours must be more than 0"));
        }
        if fraction.len() > 2
            || !whole
                .chars()
                .chain(fraction.chars())
                .all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let fraction: u32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
        Hours::from_centi(field, whole.saturating_mul(100).saturating_add(fraction))
    }

    pub fn from_f64(field: &str, value: f64) -> Validated<Hours> {
        if !value.is_finite() {
            return Err(FieldError::new(field, "hours must be a finite number"));
        }
        if value <= 0.0 {
            return Err(FieldError::new(
                field,
                format!("hours must be more than 0, got {value}"),
            ));
        }
        let centi = (value * 100.0).round();
        if centi > f64::from(HOURS_PER_DAY_CENTI_MAX) {
            return Err(FieldError::new(
                field,
                format!("hours must be at most 24 a day, got {value}"),
            ));
        }
        Hours::from_centi(field, centi as u32)
    }

    pub fn from_centi(field: &str, centi: u32) -> Validated<Hours> {
        if centi == 0 {
            return Err(FieldError::new(field, "hours must be more than 0"));
        }
        if centi > HOURS_PER_DAY_CENTI_MAX {
            return Err(FieldError::new(
                field,
                format!("hours must be at most 24 a day, got {}", Hours { centi }),
            ));
        }
        Ok(Hours { centi })
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.centi) / 100.0
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.centi.is_multiple_of(100) {
            write!(f, "{}", self.centi / 100)
        } else if self.centi.is_multiple_of(10) {
            write!(f, "{}.{}", self.centi / 100, (self.centi % 100) / 10)
        } else {
            write!(f, "{}.{:02}", self.centi / 100, self.centi % 100)
        }
    }
}

/// A registered volunteer as stored: keyed by the unified volunteer number;
/// the ID-card number exists only sealed to the county and as a masked form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volunteer {
    pub number: RecordId,
    pub name: String,
    pub sex: Sex,
    #[serde(with = "date_format")]
    pub birth_date: Date,
    pub residence_area: String,
    /// Rosters written before phones were sealed hold the number here; new
    /// writes leave it empty and keep [`Volunteer::phone_seals`]. What a
    /// node shows is put here by `PhoneReader::reveal`.
    pub phone: String,
    /// The phone masked and sealed (`domain::phone`).
    #[serde(default, skip_serializing_if = "PhoneSeals::is_empty")]
    pub phone_seals: PhoneSeals,
    /// Rosters written before sealing: hex HMAC-SHA-256 of the ID number
    /// under the old county-wide key. Empty for every new write.
    pub id_digest: String,
    /// The ID number sealed to the county's public key (`hpke2:<hex>`;
    /// `hpke1:<hex>` before seals were batched):
    /// only the county opens it. Empty in rosters written before sealing.
    #[serde(default)]
    pub id_sealed: String,
    /// `410105************`: the region only (old rosters: `4101**********123X`).
    pub id_masked: String,
    pub skills: Vec<String>,
    pub categories: Vec<Category>,
    pub home_station: StationId,
    #[serde(with = "date_format")]
    pub registered_on: Date,
    /// The volunteer agreed that their record may be shown beyond the station.
    pub consent: bool,
    pub party_member: bool,
    pub deleted: bool,
}

/// A volunteer team: a tree from the county general team (总队) down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: RecordId,
    pub name: String,
    pub category: Category,
    pub station: StationId,
    /// Parent team as `station:team`, possibly at an ancestor station.
    pub parent: Option<String>,
    pub leader: Option<RecordId>,
    pub members: Vec<RecordId>,
    pub deleted: bool,
}

/// One volunteer's service on one activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub volunteer: RecordId,
    /// The station whose roster holds the volunteer, when it is not the
    /// activity's own (a township's volunteer serving at a village); absent
    /// means the activity's station, as in every record written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_station: Option<StationId>,
    pub hours: Hours,
    #[serde(with = "date_format")]
    pub recorded_on: Date,
    /// Recorded more than ten working days after the activity.
    pub late: bool,
    pub deleted: bool,
}

impl ServiceRecord {
    /// The person who served, given the station of the activity the record
    /// is on.
    pub fn volunteer_id(&self, activity_station: &StationId) -> VolunteerId {
        VolunteerId::new(
            self.home_station
                .clone()
                .unwrap_or_else(|| activity_station.clone()),
            self.volunteer.clone(),
        )
    }
}

/// An activity held by a station, with who served and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub id: RecordId,
    pub name: String,
    #[serde(with = "date_format")]
    pub date: Date,
    pub station: StationId,
    pub place: String,
    pub content: String,
    pub form: Form,
    pub category: Category,
    pub team: Option<RecordId>,
    pub person_in_charge: String,
    pub beneficiaries: u32,
    pub theme: Option<String>,
    #[serde(with = "date_format")]
    pub recorded_on: Date,
    pub late: bool,
    pub deleted: bool,
    pub records: Vec<ServiceRecord>,
}

/// A citizen's service order (群众点单 → 派单 → 接单 → 评单).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: RecordId,
    pub station: StationId,
    pub menu_item: String,
    pub requester: String,
    #[serde(with = "date_format")]
    pub placed_on: Date,
    pub status: OrderStatus,
    pub dispatched_by: Option<StationId>,
    /// The team that took it, as `station:team`.
    pub team: Option<String>,
    /// 1 to 5 stars once rated.
    pub rating: Option<u8>,
    pub comment: String,
}

/// Check a free-text field: trimmed, non-empty if `required`, bounded.
pub fn text(field: &str, value: &str, required: bool, chars_max: usize) -> Validated<String> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    let chars = value.chars().count();
    if chars > chars_max {
        return Err(FieldError::new(
            field,
            format!("is {chars} characters; at most {chars_max} are allowed"),
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(value.to_string())
}

/// Mainland mobile or landline digits, optionally with `+86`, spaces or dashes.
pub fn phone(field: &str, value: &str) -> Validated<String> {
    let digits: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = digits.strip_prefix("+86").unwrap_or(&digits).to_string();
    if digits.is_empty() {
        return Ok(digits);
    }
    if !(7..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            format!("{value:?} is not a phone number (7 to 15 digits)"),
        ));
    }
    Ok(digits)
}

/// Check a list of free-text tags.
pub fn tags(field: &str, values: &[String]) -> Validated<Vec<String>> {
    if values.len() > TAGS_MAX {
        return Err(FieldError::new(
            field,
            format!(
                "has {} entries; at most {TAGS_MAX} are allowed",
                values.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let value = text(field, value, true, 40)?;
        if value.contains(',') {
            return Err(FieldError::new(
                field,
                format!("entry {value:?} may not contain a comma"),
            ));
        }
        if !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

/// A date must not lie after `today` (the recording node's date).
pub fn not_in_future(field: &str, date: Date, today: Date) -> Validated<Date> {
    if date > today {
        return Err(FieldError::new(
            field,
            format!(
                "{} is in the future (today is {})",
                date_format::format(date),
                date_format::format(today)
            ),
        ));
    }
    Ok(date)
}

/// Working days (Monday to Friday) from `from` (exclusive) to `to` (inclusive).
/// Public holidays are not modelled: a record is flagged, never refused, so a
/// holiday week costs at most a spurious "late" flag a clerk can read.
pub fn working_days_between(from: Date, to: Date) -> u32 {
    if to <= from {
        return 0;
    }
    let days = (to - from).whole_days();
    let full_weeks = (days / 7) as u32;
    let mut count = full_weeks * 5;
    let mut day = from + Duration::days(i64::from(full_weeks) * 7);
    while day < to {
        day += Duration::days(1);
        if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            count += 1;
        }
    }
    count
}

/// Is a record made on `recorded_on` for an activity on `activity_date` late?
pub fn is_late(activity_date: Date, recorded_on: Date) -> bool {
    working_days_between(activity_date, recorded_on) > RECORD_WORKING_DAYS_MAX
}

/// Star level by accumulated hours: 100 / 300 / 600 / 1,000 / 1,500 hours.
pub fn star_level(total: Hours) -> u8 {
    const THRESHOLDS_HOURS: [u32; 5] = [100, 300, 600, 1_000, 1_500];
    THRESHOLDS_HOURS
        .iter()
        .filter(|&&h| total.centi >= h * 100)
        .count() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    #[test]
    fn hours_parse_decimal_and_refuse_nonsense() {
        assert_eq!(Hours::parse("hours", "2").unwrap().centi, 200);
        assert_eq!(Hours::parse("hours", "1.5").unwrap().centi, 150);
        assert_eq!(Hours::parse("hours", ".25").unwrap().centi, 25);
        assert_eq!(Hours::parse("hours", "24").unwrap().centi, 2400);
        assert_eq!(
            Hours::parse("hours", "0").unwrap_err().reason,
            "hours must be more than 0"
        );
        assert_eq!(
            Hours::parse("hours", "-1").unwrap_err().reason,
            "hours must be more than 0"
        );
        assert!(Hours::parse("hours", "24.01")
            .unwrap_err()
            .reason
            .contains("at most 24"));
        assert!(Hours::parse("hours", "1.234").is_err());
        assert!(Hours::parse("hours", "abc").is_err());
        assert!(Hours::parse("hours", "").is_err());
        assert!(Hours::from_f64("hours", f64::NAN).is_err());
        assert!(Hours::from_f64("hours", -0.5).is_err());
        assert!(Hours::from_f64("hours", 30.0).is_err());
        assert_eq!(Hours::from_f64("hours", 2.5).unwrap().centi, 250);
    }

    #[test]
    fn hours_travel_as_decimal_numbers() {
        let hours = Hours { centi: 250 };
        assert_eq!(serde_json::to_string(&hours).unwrap(), "2.5");
        assert_eq!(serde_json::from_str::<Hours>("2.5").unwrap(), hours);
        assert!(serde_json::from_str::<Hours>("-1").is_err());
    }

    #[test]
    fn hours_display_round_trips() {
        for centi in [1, 10, 25, 100, 150, 2400] {
            let hours = Hours { centi };
            assert_eq!(Hours::parse("h", &hours.to_string()).unwrap(), hours);
        }
    }

    #[test]
    fn vocabulary_accepts_keys_and_chinese_labels() {
        assert_eq!(Form::parse("讲").unwrap(), Form::Lecture);
        assert_eq!(Form::parse("help").unwrap(), Form::Help);
        assert_eq!(Category::parse("扶老助残").unwrap(), Category::ElderCare);
        let error = Form::parse("dance").unwrap_err();
        assert_eq!(error.field, "form");
        assert!(error.reason.contains("lecture"));
    }

    #[test]
    fn a_chinese_label_is_accepted_and_a_wrong_value_is_answered_with_the_chinese_choices() {
        assert_eq!(Category::parse(" 医疗健身 ").unwrap(), Category::Health);
        assert_eq!(Sex::parse("女").unwrap(), Sex::Female);
        assert_eq!(OrderStatus::parse("派单").unwrap(), OrderStatus::Dispatched);
        // A near miss a clerk types (the label is 扶老助残).
        let error = Category::parse("助老助残").unwrap_err();
        assert_eq!(error.field, "category");
        assert!(
            error.reason.starts_with("unknown value \"助老助残\""),
            "{error}"
        );
        for (key, label) in Category::entries() {
            assert!(
                error.reason.contains(&format!("{label} ({key})")),
                "{label} ({key}) missing from: {error}"
            );
        }
        let error = Form::parse("dance").unwrap_err();
        assert!(
            error.reason.contains("讲 (lecture), 评 (appraise)"),
            "{error}"
        );
    }

    #[test]
    fn working_days_skip_weekends() {
        // 2026-11-20 is a Friday.
        assert_eq!(
            working_days_between(date!(2026 - 11 - 20), date!(2026 - 11 - 23)),
            1
        );
        assert_eq!(
            working_days_between(date!(2026 - 11 - 20), date!(2026 - 11 - 20)),
            0
        );
        assert_eq!(
            working_days_between(date!(2026 - 11 - 20), date!(2026 - 12 - 04)),
            10
        );
        assert!(!is_late(date!(2026 - 11 - 20), date!(2026 - 12 - 04)));
        assert!(is_late(date!(2026 - 11 - 20), date!(2026 - 12 - 07)));
    }

    #[test]
    fn future_dates_are_refused() {
        let today = date!(2026 - 11 - 23);
        assert!(not_in_future("date", date!(2026 - 11 - 23), today).is_ok());
        let error = not_in_future("date", date!(2026 - 11 - 24), today).unwrap_err();
        assert_eq!(error.field, "date");
        assert!(error.reason.contains("future"));
    }

    #[test]
    fn stars_follow_the_national_thresholds() {
        let stars = |hours: u32| star_level(Hours { centi: hours * 100 });
        assert_eq!(
            [
                stars(99),
                stars(100),
                stars(300),
                stars(999),
                stars(1_000),
                stars(1_500),
                stars(9_000)
            ],
            [0, 1, 2, 3, 4, 5, 5]
        );
    }

    #[test]
    fn text_and_phone_checks() {
        assert_eq!(text("name", "  张三 ", true, 10).unwrap(), "张三");
        assert_eq!(
            text("name", " ", true, 10).unwrap_err().reason,
            "is required"
        );
        assert!(text("name", &"长".repeat(11), true, 10).is_err());
        assert_eq!(phone("phone", "+86 138-0000-0000").unwrap(), "13800000000");
        assert!(phone("phone", "12ab").is_err());
    }

    proptest! {
        #[test]
        fn working_days_never_exceed_calendar_days(start in 0i64..20_000, span in 0i64..400) {
            let from = date!(2000 - 01 - 01) + Duration::days(start);
            let to = from + Duration::days(span);
            let count = working_days_between(from, to);
            prop_assert!(i64::from(count) <= span);
            prop_assert!(i64::from(count) >= span * 5 / 7 - 2);
        }

        #[test]
        fn hours_parse_never_panics(text in ".{0,12}") {
            if let Ok(hours) = Hours::parse("h", &text) {
                prop_assert!(hours.centi > 0 && hours.centi <= HOURS_PER_DAY_CENTI_MAX);
            }
        }
    }
}
