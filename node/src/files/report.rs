//! Reports a county office hands on: the monthly statistics table per
//! station ("每月一统计"), the quarterly bulletin ("每季一通报"), as CSV and
//! XLSX with Chinese headers, and a volunteer's service certificate
//! (志愿服务证明) as text and JSON with a verification code.
//!
//! Everything is built from the statistics index and domain values; nothing
//! here reads a clock (the issue date is passed in) or a store. The JSON
//! structs are what the API serves; the CSV/XLSX writers only lay them out.
//!
//! A certificate is signed by the issuing node (the signing itself, with
//! the node's certificate key, is done above this layer; see
//! `context::certificates`). What is signed is laid out here: the SHA-256
//! of every field's canonical JSON, one per activity line, listed in a
//! [`CertificateSeal`]; the signature covers that list
//! ([`seal_message`]). A verifier recomputes the digests from the fields it
//! reads, so an altered certificate is answered with the very fields that
//! changed ([`changed_fields`]). The printed verification code is derived
//! from the signature ([`verification_code_of`]): short, and checkable
//! against the JSON.

use civsync_protocol::domain::model::{date_format, Activity, Hours, Volunteer, VolunteerId};
use civsync_protocol::service::approval::ApprovalState;
use civsync_protocol::stats::{Figures, Period, StatsIndex};
use civsync_protocol::{Station, StationId, Tier};
use rust_xlsxwriter::{Format, Workbook};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use time::Date;

/// Most station rows one report holds (a county has under 1,000 stations).
pub const REPORT_ROWS_MAX: usize = 20_000;
/// Most activity lines on one certificate.
pub const CERTIFICATE_ACTIVITIES_MAX: usize = 10_000;
/// Hex digits of SHA-256 kept in a verification code.
pub const VERIFICATION_HEX_DIGITS: usize = 16;
/// What a seal's message starts with: the layout's name and version, so a
/// signature over anything else never reads as one over a certificate.
pub const SEAL_MESSAGE_HEADER: &str = "civsync service certificate seal 1\n";

/// Column headers of the statistics table, in order.
pub const HEADERS: [&str; 19] = [
    "站点编码",
    "站点",
    "层级",
    "活动场次",
    "服务记录",
    "参与人次",
    "服务时长(小时)",
    "受益群众",
    "迟报记录",
    "注册志愿者",
    "新增志愿者",
    "活跃志愿者",
    "队伍",
    "群众点单",
    "接单",
    "评单",
    "满意度",
    "覆盖率",
    "审核",
];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report would have {rows} rows; at most {max} are allowed")]
    TooManyRows { rows: usize, max: usize },
    #[error("volunteer {number} has {count} activities; a certificate lists at most {max}")]
    TooManyActivities {
        number: String,
        count: usize,
        max: usize,
    },
    #[error("volunteer {number} is deleted; no certificate can be issued")]
    VolunteerDeleted { number: String },
    #[error("writing CSV failed: {0}")]
    Csv(String),
    #[error("writing XLSX failed: {0}")]
    Xlsx(String),
}

impl From<rust_xlsxwriter::XlsxError> for ReportError {
    fn from(error: rust_xlsxwriter::XlsxError) -> Self {
        ReportError::Xlsx(error.to_string())
    }
}

impl From<csv::Error> for ReportError {
    fn from(error: csv::Error) -> Self {
        ReportError::Csv(error.to_string())
    }
}

// ---------------------------------------------------------------- tables

/// One line of the statistics table: a station's figures rolled up over its
/// subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub station: StationId,
    pub name: String,
    /// Chinese tier name (中心 / 所 / 站), empty if unknown.
    pub tier: String,
    pub activities: u64,
    pub service_records: u64,
    pub participations: u64,
    pub hours_centi: u64,
    pub beneficiaries: u64,
    pub late_records: u64,
    pub volunteers_registered: u64,
    pub volunteers_new: u64,
    pub volunteers_active: u64,
    pub teams: u64,
    pub orders_placed: u64,
    pub orders_taken: u64,
    pub orders_rated: u64,
    /// Mean rating 1–5, if any order was rated.
    pub satisfaction: Option<f64>,
    /// Share of villages below with at least one activity (not for villages).
    pub coverage: Option<f64>,
    /// Newest sign of life from the station held here (ms since the epoch):
    /// the figures are "as of" then. JSON only; not a table column.
    pub as_of_ms: Option<i64>,
    /// The station's monthly approval, on monthly tables (the API fills it
    /// from the approval documents; a bulletin and the total line have none).
    #[serde(default)]
    pub approval: Option<ApprovalMark>,
}

/// A report row's approval: the state, and whether the month changed after
/// it was approved (the change is in the figures, not yet approved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalMark {
    pub state: ApprovalState,
    pub edited_after_approval: bool,
}

impl ApprovalMark {
    /// The 审核 column.
    pub fn chinese(self) -> &'static str {
        match (self.state, self.edited_after_approval) {
            (ApprovalState::Approved, false) => "已审核",
            (ApprovalState::Approved, true) => "审核后有修改",
            (ApprovalState::SentBack, _) => "已退回",
            (ApprovalState::Unapproved, _) => "未审核",
        }
    }
}

impl ReportRow {
    fn new(
        station: StationId,
        name: String,
        tier: Option<Tier>,
        figures: &Figures,
        coverage: Option<f64>,
    ) -> ReportRow {
        ReportRow {
            station,
            name,
            tier: tier.map(|t| t.chinese().to_string()).unwrap_or_default(),
            activities: figures.counts.activities,
            service_records: figures.counts.service_records,
            participations: figures.counts.participations,
            hours_centi: figures.counts.hours_centi,
            beneficiaries: figures.counts.beneficiaries,
            late_records: figures.counts.late_records,
            volunteers_registered: figures.volunteers_registered,
            volunteers_new: figures.volunteers_new,
            volunteers_active: figures.volunteers_active,
            teams: figures.teams,
            orders_placed: figures.orders.placed,
            orders_taken: figures.orders.taken,
            orders_rated: figures.orders.rated,
            satisfaction: figures.orders.satisfaction(),
            coverage,
            as_of_ms: None,
            approval: None,
        }
    }

    pub fn hours(&self) -> f64 {
        self.hours_centi as f64 / 100.0
    }

    /// The row as text cells, in [`HEADERS`] order.
    fn cells(&self) -> Vec<String> {
        vec![
            self.station.to_string(),
            self.name.clone(),
            self.tier.clone(),
            self.activities.to_string(),
            self.service_records.to_string(),
            self.participations.to_string(),
            centi_text(self.hours_centi),
            self.beneficiaries.to_string(),
            self.late_records.to_string(),
            self.volunteers_registered.to_string(),
            self.volunteers_new.to_string(),
            self.volunteers_active.to_string(),
            self.teams.to_string(),
            self.orders_placed.to_string(),
            self.orders_taken.to_string(),
            self.orders_rated.to_string(),
            self.satisfaction
                .map(|s| format!("{s:.2}"))
                .unwrap_or_default(),
            self.coverage.map(percent).unwrap_or_default(),
            self.approval
                .map(|a| a.chinese().to_string())
                .unwrap_or_default(),
        ]
    }
}

/// Decimal hours; sums beyond what [`Hours`] holds are printed directly.
fn hours_text(centi: u64, hours: Hours) -> String {
    if u64::from(hours.centi) == centi {
        hours.to_string()
    } else {
        format!("{}.{:02}", centi / 100, centi % 100)
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// The monthly statistics table or the quarterly bulletin of a subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticsReport {
    pub title: String,
    /// `2026-11` or `2026Q4`.
    pub period: String,
    pub root: StationId,
    /// Every station of the subtree, in path order (a township before its
    /// villages), with figures rolled up over its own subtree.
    pub rows: Vec<ReportRow>,
    /// The root's figures: the sum over the whole subtree.
    pub totals: ReportRow,
    pub villages: u64,
    pub villages_active: u64,
    pub townships: u64,
    pub townships_active: u64,
}

fn period_title(period: Period) -> String {
    match period {
        Period::Month(month) => format!("{}年{}月 统计表", month.year, month.month),
        Period::Quarter(quarter) => format!("{}年第{}季度 通报", quarter.year, quarter.quarter),
    }
}

/// Build the table for `root`'s subtree over a month or a quarter.
/// `registry` names stations and their tiers; stations seen in the index but
/// missing from it appear with their path as the name.
pub fn statistics_report(
    index: &StatsIndex,
    root: &StationId,
    period: Period,
    registry: &[Station],
) -> Result<StatisticsReport, ReportError> {
    let table = index.station_table(root, period, registry);
    if table.len() > REPORT_ROWS_MAX {
        return Err(ReportError::TooManyRows {
            rows: table.len(),
            max: REPORT_ROWS_MAX,
        });
    }
    let by_id: HashMap<&StationId, &Station> = registry.iter().map(|s| (&s.id, s)).collect();
    let has_children = |station: &StationId| {
        table
            .iter()
            .any(|row| station.is_strict_ancestor_of(&row.station))
    };
    let rows: Vec<ReportRow> = table
        .iter()
        .map(|row| {
            let village = row.tier == Some(Tier::Village)
                || (row.tier.is_none() && !has_children(&row.station));
            let coverage = if village {
                None
            } else {
                index
                    .coverage(&row.station, period, registry)
                    .village_share()
            };
            let name = row.name.clone().unwrap_or_else(|| row.station.to_string());
            let mut line =
                ReportRow::new(row.station.clone(), name, row.tier, &row.subtree, coverage);
            line.as_of_ms = row.freshness.latest_ms();
            line
        })
        .collect();
    let coverage = index.coverage(root, period, registry);
    let root_name = by_id
        .get(root)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| root.to_string());
    let totals = ReportRow::new(
        root.clone(),
        "合计".to_string(),
        by_id.get(root).map(|s| s.tier),
        &index.figures(root, period),
        coverage.village_share(),
    );
    Ok(StatisticsReport {
        title: format!("{root_name} 新时代文明实践 {}", period_title(period)),
        period: period.to_string(),
        root: root.clone(),
        rows,
        totals,
        villages: coverage.villages,
        villages_active: coverage.villages_active,
        townships: coverage.townships,
        townships_active: coverage.townships_active,
    })
}

/// The table of `root`'s subtree at an office above the county, from the
/// counties' statistics documents: `rows` are the station lines the counties
/// published (each rolled up over its own subtree), `totals` the root's
/// line (a county's own, or the sum of the counties below the root).
/// Coverage is not published, so it is left empty.
pub fn published_report(
    root: &StationId,
    period: Period,
    rows: Vec<(StationId, Figures)>,
    totals: &Figures,
    registry: &[Station],
) -> Result<StatisticsReport, ReportError> {
    if rows.len() > REPORT_ROWS_MAX {
        return Err(ReportError::TooManyRows {
            rows: rows.len(),
            max: REPORT_ROWS_MAX,
        });
    }
    let by_id: HashMap<&StationId, &Station> = registry.iter().map(|s| (&s.id, s)).collect();
    let rows = rows
        .into_iter()
        .map(|(station, figures)| {
            let known = by_id.get(&station);
            let name = known
                .map(|s| s.name.clone())
                .unwrap_or_else(|| station.to_string());
            ReportRow::new(station, name, known.map(|s| s.tier), &figures, None)
        })
        .collect();
    let root_name = by_id
        .get(root)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| root.to_string());
    let totals = ReportRow::new(
        root.clone(),
        "合计".to_string(),
        by_id.get(root).map(|s| s.tier),
        totals,
        None,
    );
    Ok(StatisticsReport {
        title: format!("{root_name} 新时代文明实践 {}", period_title(period)),
        period: period.to_string(),
        root: root.clone(),
        rows,
        totals,
        villages: 0,
        villages_active: 0,
        townships: 0,
        townships_active: 0,
    })
}

/// The CSV form: a UTF-8 byte-order mark (so spreadsheet programs read the
/// Chinese headers right), the header line, one line per station, and a
/// final 合计 line.
pub fn write_csv<W: Write>(report: &StatisticsReport, out: W) -> Result<(), ReportError> {
    let mut out = out;
    out.write_all("\u{feff}".as_bytes())
        .map_err(|e| ReportError::Csv(e.to_string()))?;
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADERS)?;
    for row in report.rows.iter().chain(std::iter::once(&report.totals)) {
        writer.write_record(row.cells())?;
    }
    writer
        .flush()
        .map_err(|e| ReportError::Csv(e.to_string()))?;
    Ok(())
}

/// The XLSX form: title in the first row, headers in the second, one row
/// per station, then 合计. Counts are numbers, not text, so a clerk can sum.
pub fn xlsx_bytes(report: &StatisticsReport) -> Result<Vec<u8>, ReportError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("统计表")?;
    let bold = Format::new().set_bold();
    let hours_format = Format::new().set_num_format("0.00");
    let percent_format = Format::new().set_num_format("0.0%");
    sheet.write_string_with_format(0, 0, &report.title, &bold)?;
    for (column, header) in HEADERS.iter().enumerate() {
        sheet.write_string_with_format(1, column as u16, *header, &bold)?;
    }
    let lines = report.rows.iter().chain(std::iter::once(&report.totals));
    for (at, row) in lines.enumerate() {
        let line = u32::try_from(at + 2).map_err(|_| ReportError::TooManyRows {
            rows: at,
            max: REPORT_ROWS_MAX,
        })?;
        sheet.write_string(line, 0, row.station.as_str())?;
        sheet.write_string(line, 1, &row.name)?;
        sheet.write_string(line, 2, &row.tier)?;
        let counts = [row.activities, row.service_records, row.participations];
        for (offset, value) in counts.iter().enumerate() {
            sheet.write_number(line, 3 + offset as u16, *value as f64)?;
        }
        sheet.write_number_with_format(line, 6, row.hours(), &hours_format)?;
        let rest = [
            row.beneficiaries,
            row.late_records,
            row.volunteers_registered,
            row.volunteers_new,
            row.volunteers_active,
            row.teams,
            row.orders_placed,
            row.orders_taken,
            row.orders_rated,
        ];
        for (offset, value) in rest.iter().enumerate() {
            sheet.write_number(line, 7 + offset as u16, *value as f64)?;
        }
        if let Some(satisfaction) = row.satisfaction {
            sheet.write_number(line, 16, satisfaction)?;
        }
        if let Some(coverage) = row.coverage {
            sheet.write_number_with_format(line, 17, coverage, &percent_format)?;
        }
        if let Some(approval) = row.approval {
            sheet.write_string(line, 18, approval.chinese())?;
        }
    }
    sheet.set_column_width(0, 18)?;
    sheet.set_column_width(1, 16)?;
    Ok(workbook.save_to_buffer()?)
}

// ---------------------------------------------------------------- certificate

/// One activity on a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateActivity {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub name: String,
    pub content: String,
    pub station: StationId,
    pub hours_centi: u64,
}

/// A volunteer's service certificate (志愿服务证明).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCertificate {
    pub volunteer_name: String,
    /// The ID number masked; the full number never appears.
    pub id_masked: String,
    /// The unified volunteer number.
    pub volunteer_number: String,
    /// Where the volunteer is registered: the issuer must be this station
    /// or above it.
    pub home_station: StationId,
    pub total_hours_centi: u64,
    /// Oldest first.
    pub activities: Vec<CertificateActivity>,
    pub recording_station: StationId,
    pub recording_station_name: String,
    /// `YYYY-MM-DD`.
    pub issued_on: String,
    /// Four groups of four hex digits (e.g. `402D-C0E8-EE61-EC5C`) derived
    /// from the seal's signature ([`verification_code_of`]); empty until sealed.
    pub verification_code: String,
    /// The issuing node's signature and certificate; absent until sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<CertificateSeal>,
}

/// What makes a certificate verifiable with only the county CA certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSeal {
    /// `ECDSA-P256-SHA256`.
    pub algorithm: String,
    /// The issuing node's certificate (PEM), chained to the county CA.
    pub issuer_certificate: String,
    /// SHA-256 (hex) of each signed field's canonical JSON, by field name;
    /// `activities[i]` per activity line. See [`certificate_fields`].
    pub fields: BTreeMap<String, String>,
    /// The signature (ASN.1 DER, hex) over [`seal_message`] of `fields`.
    pub signature: String,
}

/// Issue a certificate from the volunteer's record and the activities they
/// served on (others in `activities` are ignored, as are deleted activities
/// and deleted service records). A service record counts only for the
/// person it names — home station and number — so another station's
/// volunteer with the same number never adds hours. Not yet sealed: the
/// caller signs it.
pub fn service_certificate<'a>(
    volunteer: &Volunteer,
    activities: impl IntoIterator<Item = &'a Activity>,
    recording_station: &Station,
    issued_on: Date,
) -> Result<ServiceCertificate, ReportError> {
    if volunteer.deleted {
        return Err(ReportError::VolunteerDeleted {
            number: volunteer.number.to_string(),
        });
    }
    let person = VolunteerId::new(volunteer.home_station.clone(), volunteer.number.clone());
    let mut lines = Vec::new();
    for activity in activities {
        if activity.deleted {
            continue;
        }
        let Some(record) = activity
            .records
            .iter()
            .find(|r| !r.deleted && r.volunteer_id(&activity.station) == person)
        else {
            continue;
        };
        if lines.len() == CERTIFICATE_ACTIVITIES_MAX {
            return Err(ReportError::TooManyActivities {
                number: volunteer.number.to_string(),
                count: lines.len() + 1,
                max: CERTIFICATE_ACTIVITIES_MAX,
            });
        }
        lines.push((
            activity.date,
            activity.id.clone(),
            CertificateActivity {
                date: date_format::format(activity.date),
                name: activity.name.clone(),
                content: activity.content.clone(),
                station: activity.station.clone(),
                hours_centi: u64::from(record.hours.centi),
            },
        ));
    }
    lines.sort_by(|a, b| (a.0, &a.1, &a.2.station).cmp(&(b.0, &b.1, &b.2.station)));
    let activities: Vec<CertificateActivity> = lines.into_iter().map(|(_, _, line)| line).collect();
    Ok(ServiceCertificate {
        volunteer_name: volunteer.name.clone(),
        id_masked: volunteer.id_masked.clone(),
        volunteer_number: volunteer.number.to_string(),
        home_station: volunteer.home_station.clone(),
        total_hours_centi: activities.iter().map(|a| a.hours_centi).sum(),
        activities,
        recording_station: recording_station.id.clone(),
        recording_station_name: recording_station.name.clone(),
        issued_on: date_format::format(issued_on),
        verification_code: String::new(),
        seal: None,
    })
}

fn digest_of<T: Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("certificate fields always serialise");
    hex::encode(Sha256::digest(&json))
}

/// The name of activity line `index` among a seal's fields.
pub fn activity_field(index: usize) -> String {
    format!("activities[{index}]")
}

/// Every signed field of the certificate and the SHA-256 (hex) of its
/// canonical JSON: each field but the code and the seal, and one entry per
/// activity line (so an added, removed or altered line is named).
pub fn certificate_fields(certificate: &ServiceCertificate) -> BTreeMap<String, String> {
    let c = certificate;
    let mut fields = BTreeMap::from([
        ("volunteer_name".to_string(), digest_of(&c.volunteer_name)),
        ("id_masked".to_string(), digest_of(&c.id_masked)),
        (
            "volunteer_number".to_string(),
            digest_of(&c.volunteer_number),
        ),
        ("home_station".to_string(), digest_of(&c.home_station)),
        (
            "total_hours_centi".to_string(),
            digest_of(&c.total_hours_centi),
        ),
        (
            "recording_station".to_string(),
            digest_of(&c.recording_station),
        ),
        (
            "recording_station_name".to_string(),
            digest_of(&c.recording_station_name),
        ),
        ("issued_on".to_string(), digest_of(&c.issued_on)),
    ]);
    for (index, line) in c.activities.iter().enumerate() {
        fields.insert(activity_field(index), digest_of(line));
    }
    fields
}

/// The bytes a seal's signature covers: a header, then `name=digest` a
/// line, in name order. Names and digests are checked to hold neither `=`
/// nor a line break before this is trusted (see [`changed_fields`]).
pub fn seal_message(fields: &BTreeMap<String, String>) -> Vec<u8> {
    let mut message = SEAL_MESSAGE_HEADER.as_bytes().to_vec();
    for (name, digest) in fields {
        message.extend_from_slice(name.as_bytes());
        message.push(b'=');
        message.extend_from_slice(digest.as_bytes());
        message.push(b'\n');
    }
    message
}

/// The printed verification code of a signature: its SHA-256, first 16
/// hex digits, upper case, in groups of four.
pub fn verification_code_of(signature: &[u8]) -> String {
    let digest = Sha256::digest(signature);
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.as_bytes()[..VERIFICATION_HEX_DIGITS]
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("-")
}

/// What differs between the fields a seal signed and the certificate as
/// read, field by field: `(field, what happened)`. Empty when nothing
/// changed. A seal whose field list is not one this layout produces (an
/// unknown name, a gap in the activity lines, a digest that is not 64 hex
/// digits) is reported as `seal.fields`.
pub fn changed_fields(
    certificate: &ServiceCertificate,
    signed: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let now = certificate_fields(certificate);
    let signed_lines = (0..)
        .take_while(|i| signed.contains_key(&activity_field(*i)))
        .count();
    let expected: BTreeSet<String> = now
        .keys()
        .filter(|name| !name.starts_with("activities["))
        .cloned()
        .chain((0..signed_lines).map(activity_field))
        .collect();
    let malformed = signed.iter().any(|(name, digest)| {
        !expected.contains(name)
            || digest.len() != 64
            || !digest.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if malformed {
        return vec![(
            "seal.fields".to_string(),
            "not a field list this node issues (unknown names, a gap in the activity lines, or a digest that is not 64 hex digits)".to_string(),
        )];
    }
    let mut changed = Vec::new();
    for (name, digest) in &now {
        match signed.get(name) {
            Some(signed_digest) if signed_digest == digest => {}
            Some(_) => changed.push((
                name.clone(),
                "changed since signing: the signature does not cover this value".to_string(),
            )),
            None => changed.push((
                name.clone(),
                if name.starts_with("activities[") {
                    "added since signing: the signature covers no such line".to_string()
                } else {
                    "not covered by the signature".to_string()
                },
            )),
        }
    }
    for name in signed.keys() {
        if !now.contains_key(name) {
            changed.push((
                name.clone(),
                "removed since signing: the signature covers a line that is not here".to_string(),
            ));
        }
    }
    changed
}

fn centi_text(centi: u64) -> String {
    hours_text(
        centi,
        Hours {
            centi: u32::try_from(centi).unwrap_or(u32::MAX),
        },
    )
}

/// The certificate as printable text.
pub fn certificate_text(certificate: &ServiceCertificate) -> String {
    let mut text = String::new();
    text.push_str("志愿服务证明\n\n");
    text.push_str(&format!(
        "兹证明 {}（志愿者编号 {}，身份证号 {}）参加志愿服务 {} 次，累计志愿服务时长 {} 小时。\n\n",
        certificate.volunteer_name,
        certificate.volunteer_number,
        if certificate.id_masked.is_empty() {
            "未登记"
        } else {
            &certificate.id_masked
        },
        certificate.activities.len(),
        centi_text(certificate.total_hours_centi),
    ));
    text.push_str("服务记录：\n");
    for line in &certificate.activities {
        text.push_str(&format!(
            "  {}  {}  {}  {} 小时  （{}）\n",
            line.date,
            line.name,
            line.content,
            centi_text(line.hours_centi),
            line.station
        ));
    }
    text.push_str(&format!(
        "\n记录单位：{}（{}）\n出具日期：{}\n验证码：{}\n",
        certificate.recording_station_name,
        certificate.recording_station,
        certificate.issued_on,
        certificate.verification_code
    ));
    text
}

#[cfg(test)]
mod tests;
