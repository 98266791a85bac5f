//! Identities that travel as text (`StationId`, and in `domain` `RecordId`
//! and `VolunteerId`) are parsed straight from the `&str` a deserializer
//! holds. Going through an owned `String` first (`serde(try_from)`) cost
//! one more allocation per identity, and a restart decodes some 300,000 of
//! them from the persisted statistics entries. What is accepted, and every
//! refusal's text, stay those of the type's own parser.

use serde::de::{Deserializer, Error, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Deserialize a `T` written as a string, parsed by `parse`; a refusal is
/// the deserializer's custom error carrying `parse`'s message.
pub fn deserialize_parsed<'de, D, T, E, F>(
    deserializer: D,
    expecting: &'static str,
    parse: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
    F: FnOnce(&str) -> Result<T, E>,
{
    deserializer.deserialize_str(ParsedText {
        expecting,
        parse,
        parsed: PhantomData,
    })
}

struct ParsedText<T, F> {
    expecting: &'static str,
    parse: F,
    parsed: PhantomData<fn() -> T>,
}

impl<'de, T, E, F> Visitor<'de> for ParsedText<T, F>
where
    E: fmt::Display,
    F: FnOnce(&str) -> Result<T, E>,
{
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_str<R: Error>(self, text: &str) -> Result<T, R> {
        (self.parse)(text).map_err(R::custom)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::model::{RecordId, VolunteerId};
    use crate::identity::station::StationId;

    #[test]
    fn identities_decode_from_json_and_postcard_as_their_parsers_accept() {
        let volunteer: VolunteerId = serde_json::from_str("\"xh/t1/v2:A-07\"").unwrap();
        assert_eq!(volunteer.home_station.as_str(), "xh/t1/v2");
        assert_eq!(volunteer.number.as_str(), "A-07");
        let bytes = postcard::to_allocvec(&volunteer).unwrap();
        let back: VolunteerId = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, volunteer);
        let station: StationId = postcard::from_bytes(
            &postcard::to_allocvec(&StationId::parse("xh/t1").unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(station.as_str(), "xh/t1");
        let record: RecordId = serde_json::from_str("\"n-001\"").unwrap();
        assert_eq!(record.as_str(), "n-001");
    }

    #[test]
    fn identities_the_parsers_refuse_are_refused_with_the_parsers_reason() {
        let refused = serde_json::from_str::<VolunteerId>("\"007\"").unwrap_err();
        assert!(
            refused.to_string().contains("names no home station"),
            "{refused}"
        );
        let refused = serde_json::from_str::<StationId>("\"xh//v1\"").unwrap_err();
        assert!(refused.to_string().contains("segment"), "{refused}");
        let refused = serde_json::from_str::<RecordId>("\"n 1\"").unwrap_err();
        assert!(refused.to_string().contains("character"), "{refused}");
        let refused =
            postcard::from_bytes::<StationId>(&postcard::to_allocvec("xh/t1/v1:x").unwrap())
                .unwrap_err();
        assert!(
            matches!(refused, postcard::Error::SerdeDeCustom),
            "{refused:?}"
        );
        // Not text at all: the expectation names what was wanted.
        let refused = serde_json::from_str::<VolunteerId>("17").unwrap_err();
        assert!(
            refused.to_string().contains("<home station>:<number>"),
            "{refused}"
        );
    }
}
