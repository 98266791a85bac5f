//! What clerks submit — through the HTTP API, the CLI or an imported roster —
//! and its validation into domain values.
//!
//! Inputs are deliberately loose (text where a clerk types text) so that every
//! refusal can name the field and the reason, rather than failing somewhere
//! inside a deserialiser. `today` is the recording node's date, passed in.

use crate::domain::model::{
    self, date_format, Activity, Category, FieldError, Form, Hours, Order, OrderStatus, RecordId,
    ServiceRecord, Sex, Team, Validated, Volunteer, CONTENT_CHARS_MAX, TEXT_CHARS_MAX,
};
use crate::domain::pii::{IdNumber, IdSealer};
use crate::identity::station::StationId;
use serde::{Deserialize, Serialize};
use time::Date;

/// Hours as a JSON number (`1.5`) or text (`"1.5"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HoursInput {
    Number(f64),
    Text(String),
}

impl HoursInput {
    pub fn validate(&self, field: &str) -> Validated<Hours> {
        match self {
            HoursInput::Number(value) => Hours::from_f64(field, *value),
            HoursInput::Text(text) => Hours::parse(field, text),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolunteerInput {
    /// Unified volunteer number; generated when absent.
    pub number: Option<String>,
    pub name: String,
    pub sex: String,
    /// Taken from the ID number when absent.
    pub birth_date: Option<String>,
    pub residence_area: String,
    pub phone: String,
    /// Resident ID number: validated, sealed to the county and masked, never stored.
    pub id_number: String,
    pub skills: Vec<String>,
    pub categories: Vec<String>,
    pub consent: bool,
    pub party_member: bool,
    /// Registration date; today when absent.
    pub registered_on: Option<String>,
}

impl VolunteerInput {
    pub fn validate(
        &self,
        key: &IdSealer,
        home: &StationId,
        today: Date,
        nonce: u64,
    ) -> Validated<Volunteer> {
        let number = match self
            .number
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(number) => RecordId::parse("number", number)?,
            None => RecordId::generate("V", nonce),
        };
        let id_number = IdNumber::parse("id_number", &self.id_number)?;
        let birth_text = self
            .birth_date
            .clone()
            .unwrap_or_else(|| id_number.birth_date_text());
        let birth_date = model::not_in_future(
            "birth_date",
            date_format::parse("birth_date", &birth_text)?,
            today,
        )?;
        let registered_on = match &self.registered_on {
            Some(text) => model::not_in_future(
                "registered_on",
                date_format::parse("registered_on", text)?,
                today,
            )?,
            None => today,
        };
        let categories = self
            .categories
            .iter()
            .map(|c| Category::parse(c).map_err(|e| FieldError::new("categories", e.reason)))
            .collect::<Result<Vec<_>, _>>()?;
        if categories.len() > model::TAGS_MAX {
            return Err(FieldError::new(
                "categories",
                format!("at most {} categories", model::TAGS_MAX),
            ));
        }
        Ok(Volunteer {
            number,
            name: model::text("name", &self.name, true, 50)?,
            sex: Sex::parse(&self.sex)?,
            birth_date,
            residence_area: model::text(
                "residence_area",
                &self.residence_area,
                false,
                TEXT_CHARS_MAX,
            )?,
            phone: String::new(),
            phone_seals: key.seal_phone(home, &model::phone("phone", &self.phone)?),
            id_digest: String::new(),
            id_sealed: key.seal(&id_number),
            id_masked: id_number.masked(),
            skills: model::tags("skills", &self.skills)?,
            categories,
            home_station: home.clone(),
            registered_on,
            consent: self.consent,
            party_member: self.party_member,
            deleted: false,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecordInput {
    /// `<number>`, or `<home station>:<number>` for a volunteer registered
    /// at another station than the activity's.
    pub volunteer: String,
    pub hours: HoursInput,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityInput {
    /// Generated when absent; give it to correct an existing activity.
    pub id: Option<String>,
    pub name: String,
    pub date: String,
    pub place: String,
    pub content: String,
    pub form: String,
    pub category: String,
    pub team: Option<String>,
    pub person_in_charge: String,
    pub beneficiaries: u32,
    pub theme: Option<String>,
    pub records: Vec<ServiceRecordInput>,
}

impl ActivityInput {
    /// The input that records `activity` again as it stands — what a form
    /// left open on it submits: every field, its live service records
    /// (qualified `<home>:<number>` when the volunteer is another
    /// station's), the id given so it is a correction.
    pub fn resubmitting(activity: &Activity) -> ActivityInput {
        ActivityInput {
            id: Some(activity.id.to_string()),
            name: activity.name.clone(),
            date: date_format::format(activity.date),
            place: activity.place.clone(),
            content: activity.content.clone(),
            form: activity.form.key().to_string(),
            category: activity.category.key().to_string(),
            team: activity.team.as_ref().map(ToString::to_string),
            person_in_charge: activity.person_in_charge.clone(),
            beneficiaries: activity.beneficiaries,
            theme: activity.theme.clone(),
            records: activity
                .records
                .iter()
                .filter(|r| !r.deleted)
                .map(|r| ServiceRecordInput {
                    volunteer: match &r.home_station {
                        Some(home) => format!("{home}:{}", r.volunteer),
                        None => r.volunteer.to_string(),
                    },
                    hours: HoursInput::Text(r.hours.to_string()),
                })
                .collect(),
        }
    }

    /// The activity's date alone, to find its month's document before the
    /// full validation.
    pub fn date(&self, today: Date) -> Validated<Date> {
        model::not_in_future("date", date_format::parse("date", &self.date)?, today)
    }

    pub fn validate(&self, station: &StationId, today: Date, nonce: u64) -> Validated<Activity> {
        let date = self.date(today)?;
        let id = match self.id.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(id) => RecordId::parse("id", id)?,
            None => RecordId::generate("A", nonce),
        };
        if self.beneficiaries > model::BENEFICIARIES_MAX {
            return Err(FieldError::new(
                "beneficiaries",
                format!("at most {}", model::BENEFICIARIES_MAX),
            ));
        }
        let late = model::is_late(date, today);
        let records = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (home, volunteer) = model::VolunteerId::parse_qualified(
                    &format!("records[{i}].volunteer"),
                    &r.volunteer,
                )?;
                Ok(ServiceRecord {
                    volunteer,
                    // Kept even when it is the activity's station, so the
                    // lookup (`service::resolve_named_known`) knows the clerk
                    // named the roster; that one is dropped before storing.
                    home_station: home,
                    hours: r.hours.validate(&format!("records[{i}].hours"))?,
                    recorded_on: today,
                    late,
                    deleted: false,
                })
            })
            .collect::<Validated<Vec<_>>>()?;
        Ok(Activity {
            id,
            name: model::text("name", &self.name, true, TEXT_CHARS_MAX)?,
            date,
            station: station.clone(),
            place: model::text("place", &self.place, false, TEXT_CHARS_MAX)?,
            content: model::text("content", &self.content, false, CONTENT_CHARS_MAX)?,
            form: Form::parse(&self.form)?,
            category: Category::parse(&self.category)?,
            team: self
                .team
                .as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(|t| RecordId::parse("team", t.trim()))
                .transpose()?,
            person_in_charge: model::text("person_in_charge", &self.person_in_charge, false, 50)?,
            beneficiaries: self.beneficiaries,
            theme: self
                .theme
                .as_deref()
                .map(|t| model::text("theme", t, false, TEXT_CHARS_MAX))
                .transpose()?,
            recorded_on: today,
            late,
            deleted: false,
            records,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeamInput {
    pub id: Option<String>,
    pub name: String,
    pub category: String,
    pub parent: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<String>,
}

impl TeamInput {
    pub fn validate(&self, station: &StationId, nonce: u64) -> Validated<Team> {
        let id = match self.id.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(id) => RecordId::parse("id", id)?,
            None => RecordId::generate("T", nonce),
        };
        Ok(Team {
            id,
            name: model::text("name", &self.name, true, TEXT_CHARS_MAX)?,
            category: Category::parse(&self.category)?,
            station: station.clone(),
            parent: self
                .parent
                .as_deref()
                .map(|p| model::text("parent", p, false, 200))
                .transpose()?,
            leader: self
                .leader
                .as_deref()
                .map(|l| RecordId::parse("leader", l))
                .transpose()?,
            members: self
                .members
                .iter()
                .map(|m| RecordId::parse("members", m))
                .collect::<Validated<_>>()?,
            deleted: false,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderInput {
    pub id: Option<String>,
    pub menu_item: String,
    pub requester: String,
    pub placed_on: Option<String>,
}

impl OrderInput {
    pub fn validate(&self, station: &StationId, today: Date, nonce: u64) -> Validated<Order> {
        let placed_on = match &self.placed_on {
            Some(text) => {
                model::not_in_future("placed_on", date_format::parse("placed_on", text)?, today)?
            }
            None => today,
        };
        Ok(Order {
            id: match self.id.as_deref().filter(|i| !i.trim().is_empty()) {
                Some(id) => RecordId::parse("id", id.trim())?,
                None => RecordId::generate("O", nonce),
            },
            station: station.clone(),
            menu_item: model::text("menu_item", &self.menu_item, true, TEXT_CHARS_MAX)?,
            requester: model::text("requester", &self.requester, true, 50)?,
            placed_on,
            status: OrderStatus::Placed,
            dispatched_by: None,
            team: None,
            rating: None,
            comment: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn key() -> IdSealer {
        IdSealer::new(
            crate::domain::pii::CountyOpenKey::generate([7; 32]).seal_key(),
            [1; 32],
        )
    }

    fn home() -> StationId {
        StationId::parse("xh/t1/v1").unwrap()
    }

    fn volunteer_input() -> VolunteerInput {
        VolunteerInput {
            name: "张伟".into(),
            sex: "男".into(),
            id_number: "11010519491231002X".into(),
            phone: "138 0000 0000".into(),
            categories: vec!["health".into()],
            consent: true,
            ..VolunteerInput::default()
        }
    }

    #[test]
    fn a_volunteer_keeps_no_clear_id_number() {
        let v = volunteer_input()
            .validate(&key(), &home(), date!(2026 - 11 - 23), 42)
            .unwrap();
        assert_eq!(v.number.as_str(), "V000000000000002a");
        assert_eq!(v.birth_date, date!(1949 - 12 - 31));
        assert_eq!(v.id_masked, "110105************");
        let stored = serde_json::to_string(&v).unwrap();
        assert!(!stored.contains("11010519491231002X"));
        assert_eq!(v.registered_on, date!(2026 - 11 - 23));
    }

    /// A field name and a way to break that field.
    type BreakCase = (&'static str, Box<dyn Fn(&mut VolunteerInput)>);

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<BreakCase> = vec![
            ("name", Box::new(|v| v.name = " ".into())),
            ("sex", Box::new(|v| v.sex = "x".into())),
            ("id_number", Box::new(|v| v.id_number = "123".into())),
            ("phone", Box::new(|v| v.phone = "12".into())),
            (
                "categories",
                Box::new(|v| v.categories = vec!["juggling".into()]),
            ),
            (
                "birth_date",
                Box::new(|v| v.birth_date = Some("2030-01-01".into())),
            ),
            ("number", Box::new(|v| v.number = Some("has space".into()))),
        ];
        for (field, break_it) in cases {
            let mut input = volunteer_input();
            break_it(&mut input);
            let error = input
                .validate(&key(), &home(), date!(2026 - 11 - 23), 1)
                .unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn an_activity_resubmitted_as_it_stands_validates_to_the_same_activity() {
        let input = ActivityInput {
            name: "健康义诊".into(),
            date: "2026-11-02".into(),
            place: "村委会".into(),
            form: "帮".into(),
            category: "health".into(),
            beneficiaries: 40,
            theme: Some("移风易俗".into()),
            records: vec![
                ServiceRecordInput {
                    volunteer: "V1".into(),
                    hours: HoursInput::Number(2.5),
                },
                ServiceRecordInput {
                    volunteer: "xh/t1:V9".into(),
                    hours: HoursInput::Text("1.25".into()),
                },
            ],
            ..ActivityInput::default()
        };
        let stored = input.validate(&home(), date!(2026 - 11 - 05), 9).unwrap();
        let again = ActivityInput::resubmitting(&stored)
            .validate(&home(), date!(2026 - 11 - 05), 10)
            .unwrap();
        assert_eq!(again, stored);
    }

    #[test]
    fn activities_flag_late_records_and_refuse_future_dates() {
        let mut input = ActivityInput {
            name: "健康义诊".into(),
            date: "2026-11-02".into(),
            form: "帮".into(),
            category: "health".into(),
            beneficiaries: 40,
            records: vec![
                ServiceRecordInput {
                    volunteer: "V1".into(),
                    hours: HoursInput::Number(2.5),
                },
                ServiceRecordInput {
                    volunteer: "V2".into(),
                    hours: HoursInput::Text("1.25".into()),
                },
            ],
            ..ActivityInput::default()
        };
        let on_time = input.validate(&home(), date!(2026 - 11 - 05), 9).unwrap();
        assert!(!on_time.late);
        assert_eq!(on_time.records[1].hours.centi, 125);
        let late = input.validate(&home(), date!(2026 - 11 - 23), 9).unwrap();
        assert!(late.late && late.records.iter().all(|r| r.late));
        input.records[0].hours = HoursInput::Number(-1.0);
        assert_eq!(
            input
                .validate(&home(), date!(2026 - 11 - 23), 9)
                .unwrap_err()
                .field,
            "records[0].hours"
        );
        input.records[0].hours = HoursInput::Number(25.0);
        assert_eq!(
            input
                .validate(&home(), date!(2026 - 11 - 23), 9)
                .unwrap_err()
                .field,
            "records[0].hours"
        );
        input.date = "2026-12-01".into();
        assert_eq!(
            input
                .validate(&home(), date!(2026 - 11 - 23), 9)
                .unwrap_err()
                .field,
            "date"
        );
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let error =
            serde_json::from_str::<ActivityInput>(r#"{"name":"x","colour":"red"}"#).unwrap_err();
        assert!(error.to_string().contains("colour"));
    }
}
