//! What a node shows of a volunteer's phone: the number where one of its
//! keys opens a seal (the home station, the county), the masked form
//! elsewhere (`domain::phone` says why).

use crate::domain::model::Volunteer;
use crate::domain::pii::CountyOpenKey;
use crate::identity::station::StationId;

/// The keys one node holds to read phones: its own station's phone key,
/// and at the county the county's ID key.
#[derive(Clone)]
pub struct PhoneReader {
    pub station: StationId,
    pub home_key: Option<CountyOpenKey>,
    pub county_key: Option<CountyOpenKey>,
}

impl PhoneReader {
    /// Put into `volunteer.phone` what this node may show: the number when
    /// one of its keys opens a seal (or the roster is old and holds it in
    /// clear), the masked form otherwise. Seals are never shown.
    pub fn reveal(&self, volunteer: &mut Volunteer) {
        let seals = std::mem::take(&mut volunteer.phone_seals);
        if !volunteer.phone.is_empty() {
            return;
        }
        let at_home = volunteer.home_station == self.station;
        let from_home = self
            .home_key
            .as_ref()
            .filter(|_| at_home && !seals.home.is_empty())
            .and_then(|key| key.open_phone(&seals.home).ok());
        let from_county = || {
            self.county_key
                .as_ref()
                .filter(|_| !seals.county.is_empty())
                .and_then(|key| key.open_phone(&seals.county).ok())
        };
        volunteer.phone = from_home.or_else(from_county).unwrap_or(seals.masked);
    }
}
