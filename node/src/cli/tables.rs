//! Plain-text tables the CLI prints for answers a clerk scans by eye
//! (`civsync approvals`, `civsync freshness`, `civsync station list`,
//! `civsync status`).
//!
//! They read the API's JSON answer (the CLI is an API client, like any
//! other), so a field the node did not send prints as `-`, never a panic.
//! Times print in Beijing time, to the minute.

use crate::cli::columns::pad;
use crate::progress::{counts_line, CountUnit};
use serde_json::Value;
use std::fmt::Write;
use time::{OffsetDateTime, UtcOffset};

/// Unix ms as `YYYY-MM-DD HH:MM` Beijing time; `-` when absent or absurd.
pub fn beijing_minute(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "-".to_string();
    };
    let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return "-".to_string();
    };
    let at = at.to_offset(UtcOffset::from_hms(8, 0, 0).expect("UTC+8 is a valid offset"));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// Decimal hours of a figures object's `counts.hours_centi`.
fn hours(figures: &Value) -> String {
    match figures["counts"]["hours_centi"].as_u64() {
        Some(centi) => format!("{}.{:02}", centi / 100, centi % 100),
        None => "-".to_string(),
    }
}

fn activities(figures: &Value) -> String {
    text(&figures["counts"]["activities"])
}

/// `GET /api/v1/approvals` as a table, one line per station.
pub fn approvals_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<14} {:<16} {:>6} {:>9} {:>9} {:>9} {:>9}  reason",
        "station", "state", "by", "at", "edited", "appr.act", "cur.act", "appr.hrs", "cur.hrs"
    );
    for line in answer.as_array().map(Vec::as_slice).unwrap_or_default() {
        let decision = &line["decision"];
        let edited = match line["edited_after_approval"].as_bool() {
            Some(true) => "yes",
            Some(false) => "",
            None => "-",
        };
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<14} {:<16} {:>6} {:>9} {:>9} {:>9} {:>9}  {}",
            text(&line["station"]),
            text(&line["state"]),
            text(&decision["by"]),
            beijing_minute(decision["at_ms"].as_i64()),
            edited,
            activities(&line["approved"]),
            activities(&line["current"]),
            hours(&line["approved"]),
            hours(&line["current"]),
            decision["reason"].as_str().unwrap_or(""),
        );
    }
    out
}

/// `GET /api/v1/freshness` as a table, quiet stations marked `QUIET`.
pub fn freshness_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "as of {} (quiet after {} days): {} quiet",
        beijing_minute(answer["as_of_ms"].as_i64()),
        text(&answer["quiet_days_max"]),
        text(&answer["quiet"]),
    );
    let _ = writeln!(
        out,
        "{:<20} {:<16} {:<16} {:<16} {:>7}  flag",
        "station", "name", "newest change", "last heard", "silent"
    );
    for line in answer["stations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let silent = match line["silent_days"].as_i64() {
            Some(days) => format!("{days}d"),
            None => "never".to_string(),
        };
        let flag = match line["retired_on"].as_str() {
            Some(on) if line["still_recording"].as_bool() == Some(true) => {
                format!("retired on {on}, still recording")
            }
            Some(on) => format!("retired on {on}"),
            None if line["quiet"].as_bool() == Some(true) => "QUIET".to_string(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:<16} {:<16} {:>7}  {}",
            text(&line["station"]),
            text(&line["name"]),
            beijing_minute(line["newest_change_ms"].as_i64()),
            beijing_minute(line["last_heard_ms"].as_i64()),
            silent,
            flag,
        );
    }
    out
}

/// `GET /api/v1/stations` as a table, one line per registered station.
pub fn stations_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<20}  name",
        "station", "tier", "registered in"
    );
    for line in answer["stations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let retired = &line["retired"];
        let retired = match (
            retired["retired_on"].as_str(),
            retired["merged_into"].as_str(),
        ) {
            (Some(on), Some(into)) => format!("  [retired on {on}, merged into {into}]"),
            (Some(on), None) => format!("  [retired on {on}]"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<20}  {}{}",
            text(&line["id"]),
            text(&line["tier"]),
            text(&line["registered_in"]),
            text(&line["name"]),
            retired,
        );
    }
    out
}

/// `GET /api/v1/standings`: stars over the subtree, then one line per
/// volunteer, most hours first.
pub fn standings_table(answer: &Value) -> String {
    let mut out = String::new();
    let levels: Vec<String> = answer["star_levels"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(stars, count)| format!("{stars}★ {}", text(count)))
        .collect();
    let _ = writeln!(
        out,
        "{}: {} ({} points an hour)",
        text(&answer["station"]),
        levels.join("  "),
        text(&answer["points_per_hour"]),
    );
    let _ = writeln!(
        out,
        "{:<18} {}  {:<14} {:>8} {:>7} {:>5} {:>7}",
        "volunteer",
        pad("name", 12),
        "home",
        "hours",
        "records",
        "stars",
        "points"
    );
    for row in answer["volunteers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "{:<18} {}  {:<14} {:>8} {:>7} {:>5} {:>7}",
            text(&row["number"]),
            pad(&text(&row["name"]), 12),
            text(&row["home_station"]),
            row["hours"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |h| format!("{h:.2}")),
            text(&row["service_records"]),
            text(&row["star_level"]),
            text(&row["points"]),
        );
    }
    out
}

/// `GET /api/v1/orders`: one line per order, its step in Chinese and
/// English (点单 placed … 评单 rated, 撤单 cancelled).
pub fn orders_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<10} {:<16} {:<14} {:>6}  team / menu item",
        "order", "placed on", "status", "dispatched by", "rating"
    );
    for order in answer.as_array().map(Vec::as_slice).unwrap_or_default() {
        let status = text(&order["status"]);
        let label = match status.as_str() {
            "placed" => "点单 placed",
            "dispatched" => "派单 dispatched",
            "taken" => "接单 taken",
            "rated" => "评单 rated",
            "cancelled" => "撤单 cancelled",
            _ => status.as_str(),
        };
        let _ = writeln!(
            out,
            "{:<18} {:<10} {} {:<14} {:>6}  {} / {}",
            text(&order["id"]),
            text(&order["placed_on"]),
            pad(label, 16),
            text(&order["dispatched_by"]),
            text(&order["rating"]),
            text(&order["team"]),
            text(&order["menu_item"]),
        );
    }
    out
}

/// `GET /api/v1/menu`: what a station is offered, office by office;
/// withdrawn items marked, unreadable ones named after the table.
pub fn menu_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<18} {:<16} {:<20}  name",
        "office", "id", "category", "provider"
    );
    for item in answer["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let withdrawn = if item["withdrawn"].as_bool() == Some(true) {
            "  [withdrawn]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<12} {:<18} {:<16} {}  {}{}",
            text(&item["owner"]),
            text(&item["id"]),
            text(&item["category"]),
            pad(&text(&item["provider"]), 20),
            text(&item["name"]),
            withdrawn,
        );
    }
    unreadable_lines(&mut out, answer);
    out
}

/// `GET /api/v1/themes`: the themes that apply at a station, by office.
pub fn themes_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<12} {:<8}  theme", "office", "month");
    for theme in answer["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "{:<12} {:<8}  {}",
            text(&theme["owner"]),
            text(&theme["month"]),
            text(&theme["title"]),
        );
    }
    unreadable_lines(&mut out, answer);
    out
}

fn unreadable_lines(out: &mut String, answer: &Value) {
    for bad in answer["unreadable"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "cannot read {} {}: {}",
            text(&bad["document"]),
            text(&bad["key"]),
            text(&bad["reason"]),
        );
    }
}

/// Bytes as a clerk reads them: `744 B`, `5.8 KB`, `12.0 MB`.
fn bytes(value: &Value) -> String {
    let Some(bytes) = value.as_u64() else {
        return "-".to_string();
    };
    const KB: u64 = 1_000;
    const MB: u64 = 1_000_000;
    match bytes {
        b if b < KB => format!("{b} B"),
        b if b < MB => format!("{:.1} KB", b as f64 / KB as f64),
        b => format!("{:.1} MB", b as f64 / MB as f64),
    }
}

/// The last error, cut to what fits on one line of a terminal.
fn short_error(value: &Value) -> String {
    const ERROR_CHARS_SHOWN_MAX: usize = 72;
    match value.as_str() {
        None => "-".to_string(),
        Some(error) if error.chars().count() <= ERROR_CHARS_SHOWN_MAX => error.to_string(),
        Some(error) => {
            let cut: String = error.chars().take(ERROR_CHARS_SHOWN_MAX - 3).collect();
            format!("{cut}...")
        }
    }
}

/// `GET /api/v1/status` as a table: the node, then one line per peer with
/// whether the link is up, whether sync has caught up (or what is left),
/// when the peer was last heard, traffic, and the last error.
pub fn status_table(answer: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} documents, {} loaded, {} read from disk since start",
        text(&answer["station"]),
        text(&answer["tier"]),
        text(&answer["documents"]),
        text(&answer["documents_loaded"]),
        text(&answer["documents_read_from_disk"]),
    );
    if let Some(days) = answer["certificate_expires_in_days"].as_i64() {
        let _ = writeln!(
            out,
            "certificate ends in {days} days; revocation list version {}",
            text(&answer["revocation_list_version"])
        );
    }
    if let Some(warning) = answer["warning"].as_str() {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    health_lines(answer, &mut out);
    job_lines(answer, &mut out);
    let peers = answer["peers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if peers.is_empty() {
        out.push_str("no peers yet: this node has no parent configured and nobody has connected\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:<9} {:<5} {:<22} {:<16} {:>6} {:>9} {:>9} {:>9} {:>9}  last error",
        "peer",
        "role",
        "tier",
        "link",
        "sync",
        "last heard",
        "synced",
        "sent",
        "received",
        "wire sent",
        "wire recv"
    );
    for peer in peers {
        let connected = peer["connected"].as_bool() == Some(true);
        let sync = if !connected {
            "-".to_string()
        } else if peer["up_to_date"].as_bool() == Some(true) {
            "up to date".to_string()
        } else {
            format!(
                "{} pending, {} in flight",
                text(&peer["documents_pending"]),
                text(&peer["documents_in_flight"])
            )
        };
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:<9} {:<5} {:<22} {:<16} {:>6} {:>9} {:>9} {:>9} {:>9}  {}",
            text(&peer["station"]),
            text(&peer["role"]),
            text(&peer["tier"]),
            if connected { "up" } else { "DOWN" },
            sync,
            beijing_minute(peer["last_seen_unix_ms"].as_i64()),
            text(&peer["documents_synced"]),
            bytes(&peer["bytes_sent"]),
            bytes(&peer["bytes_received"]),
            // What the link cost on the network (QUIC, TLS and handshakes
            // included): what a metered village link pays for.
            bytes(&peer["transport_bytes_sent"]),
            bytes(&peer["transport_bytes_received"]),
            short_error(&peer["last_error"]),
        );
    }
    for peer in peers {
        intake_lines(peer, &mut out);
    }
    out
}

/// The node's health (word, store round trip, disk) and its actor.
/// One line per long job of `status`: `roster import xh/t1/v1: rows 41,000 /
/// 100,000, 4.1 MB; checking rows (running, 12.3 s)`.
fn job_lines(answer: &Value, out: &mut String) {
    for job in answer["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = writeln!(out, "{}", job_line(job));
    }
}

/// A job of `status` (see `progress::JobView`) as one line.
pub fn job_line(job: &Value) -> String {
    let unit = match job["unit"].as_str() {
        Some("documents") => CountUnit::Documents,
        _ => CountUnit::Rows,
    };
    let counts = counts_line(
        unit,
        job["done"].as_u64().unwrap_or(0),
        job["total"].as_u64(),
        job["bytes"].as_u64().unwrap_or(0),
        false,
    );
    format!(
        "{} {}: {counts}; {} ({}, {:.1} s)",
        text(&job["kind"]).replace('_', " "),
        text(&job["subject"]),
        text(&job["phase"]),
        text(&job["state"]),
        job["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1_000.0,
    )
}

fn health_lines(answer: &Value, out: &mut String) {
    let health = &answer["health"];
    if health.is_object() {
        let disk = match health["disk"]["free_bytes"].as_u64() {
            Some(free) => format!("{} MiB free", free / (1024 * 1024)),
            None => "free space unknown".to_string(),
        };
        let store = if health["store"]["writable"].as_bool() == Some(true) {
            format!("writable ({} ms)", text(&health["store"]["latency_ms"]))
        } else {
            "NOT WRITABLE".to_string()
        };
        let _ = writeln!(
            out,
            "health: {}; store {store}; disk {disk}",
            text(&health["status"])
        );
        for problem in health["problems"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let _ = writeln!(out, "  - {}", text(problem));
        }
    }
    let actor = &answer["actor"];
    if actor.is_object() {
        let _ = write!(out, "actor incarnation {}", text(&actor["incarnation"]));
        match actor["renewals"].as_u64() {
            Some(count) if count > 0 => {
                let _ = writeln!(
                    out,
                    "; renewed by itself {count} time(s), last {} (an old copy of the store met {} on {})",
                    beijing_minute(actor["renewed_at_unix_ms"].as_i64()),
                    text(&actor["renewal_peer"]),
                    text(&actor["renewal_document"]),
                );
            }
            _ => out.push('\n'),
        }
    }
}

/// Below the table, for a peer that was refused something: the whole last
/// error (the table cuts it), and what it brought in and was refused today.
fn intake_lines(peer: &Value, out: &mut String) {
    let station = text(&peer["station"]);
    let intake = &peer["intake"];
    let refused = ["refused_unregistered", "refused_over_quota"]
        .iter()
        .any(|field| intake[field].as_u64().unwrap_or(0) > 0);
    if let Some(error) = peer["last_error"].as_str() {
        if refused || error.chars().count() > 72 {
            let _ = writeln!(out, "{station}: last error: {error}");
        }
    }
    if let Some(refusal) = peer["last_refused"].as_str() {
        if peer["last_error"].as_str() != Some(refusal) {
            let _ = writeln!(out, "{station}: last refused: {refusal}");
        }
    }
    if !refused {
        return;
    }
    let _ = writeln!(
        out,
        "{station}: today {} new documents and {} accepted; refused for now: {} for unregistered stations, {} \
         over the daily quota; last refusal: {}",
        text(&intake["documents_accepted"]),
        bytes(&intake["bytes_accepted"]),
        text(&intake["refused_unregistered"]),
        text(&intake["refused_over_quota"]),
        text(&intake["last_refusal"]),
    );
}

/// `GET duplicates` as text: one block per group of registrations that carry
/// the same ID number, then the seals the county could not open.
pub fn duplicates_table(answer: &Value) -> String {
    let mut out = String::new();
    let groups = answer["groups"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} volunteers checked, {} probable duplicate people",
        text(&answer["volunteers_checked"]),
        groups.len()
    );
    for (index, group) in groups.iter().enumerate() {
        let _ = writeln!(
            out,
            "#{} (matched by {})",
            index + 1,
            text(&group["matched_by"])
        );
        for member in group["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let _ = writeln!(
                out,
                "  {:<18} {:<18} {}  {}",
                text(&member["home_station"]),
                text(&member["number"]),
                pad(&text(&member["name"]), 12),
                text(&member["id_masked"]),
            );
        }
    }
    for seal in answer["unopened"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "not opened: {} {}: {}",
            text(&seal["home_station"]),
            text(&seal["number"]),
            text(&seal["reason"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_print_in_beijing_time_and_absent_ones_as_a_dash() {
        // 2026-11-02 00:00 UTC is 08:00 in Beijing.
        assert_eq!(beijing_minute(Some(1_793_577_600_000)), "2026-11-02 08:00");
        assert_eq!(beijing_minute(None), "-");
        assert_eq!(beijing_minute(Some(i64::MAX)), "-");
    }

    #[test]
    fn menus_and_themes_list_every_item_mark_withdrawn_ones_and_name_unreadable_ones() {
        let menu = json!({
            "items": [
                {"owner": "xh", "id": "M1", "name": "义诊", "category": "health", "provider": "县医院", "withdrawn": false},
                {"owner": "xh/t1", "id": "M2", "name": "助农直播", "category": "poverty_relief", "withdrawn": true},
                {"unexpected": true}
            ],
            "unreadable": [{"document": "reference:xh:menu", "key": "M9", "reason": "category: unknown"}]
        });
        let table = menu_table(&menu);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[1].starts_with("xh ") && lines[1].ends_with("义诊"),
            "{table}"
        );
        assert!(lines[2].ends_with("助农直播  [withdrawn]"), "{table}");
        assert!(!lines[1].contains("withdrawn"));
        assert!(
            lines[3].starts_with('-'),
            "a line without fields prints dashes: {table}"
        );
        assert_eq!(
            lines[4],
            "cannot read reference:xh:menu M9: category: unknown"
        );

        // Columns line up in a terminal whatever the script of the provider.
        let name_column = |line: &str| {
            let before: &str = &line[..line
                .find(if line.contains("义诊") {
                    "义诊"
                } else {
                    "助农直播"
                })
                .unwrap()];
            before
                .chars()
                .map(|c| if c.is_ascii() { 1 } else { 2 })
                .sum::<usize>()
        };
        assert_eq!(name_column(lines[1]), name_column(lines[2]), "{table}");

        let themes = json!({
            "items": [{"owner": "xh", "month": "2026-11", "title": "移风易俗"}],
            "unreadable": []
        });
        let table = themes_table(&themes);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(
            table
                .lines()
                .nth(1)
                .unwrap()
                .ends_with("2026-11   移风易俗"),
            "{table}"
        );
    }

    #[test]
    fn standings_list_stars_then_each_volunteer_and_survive_missing_fields() {
        let answer = json!({
            "station": "xh", "points_per_hour": 10, "star_levels": [3, 1, 0, 0, 0, 0],
            "volunteers": [
                {"number": "V1", "name": "赵敏", "home_station": "xh/t1/v1", "hours": 150.5,
                 "service_records": 40, "star_level": 1, "points": 1505},
                {"number": "V2", "hours": 1.0, "service_records": 1, "star_level": 0, "points": 10}
            ]
        });
        let table = standings_table(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(
            lines[0],
            "xh: 0★ 3  1★ 1  2★ 0  3★ 0  4★ 0  5★ 0 (10 points an hour)"
        );
        assert!(
            lines[2].contains("赵敏") && lines[2].contains("150.50"),
            "{table}"
        );
        assert!(lines[2].ends_with("1505"), "{table}");
        assert!(
            lines[3].starts_with("V2") && lines[3].contains(" - "),
            "{table}"
        );
        assert!(lines[3].ends_with("10"), "{table}");
    }

    #[test]
    fn orders_show_their_step_in_both_languages_and_survive_missing_fields() {
        let orders = json!([
            {"id": "O1", "placed_on": "2026-10-03", "status": "rated", "dispatched_by": "xh",
             "team": "xh:T1", "rating": 4, "menu_item": "健康义诊"},
            {"id": "O2", "placed_on": "2026-10-05", "status": "placed", "dispatched_by": null,
             "team": null, "rating": null, "menu_item": "政策宣讲"},
            {"unexpected": true}
        ]);
        let table = orders_table(&orders);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[1].contains("评单 rated") && lines[1].ends_with("xh:T1 / 健康义诊"),
            "{table}"
        );
        assert!(lines[1].contains(" 4  "), "{table}");
        assert!(
            lines[2].contains("点单 placed") && lines[2].ends_with("- / 政策宣讲"),
            "{table}"
        );
        assert!(lines[3].starts_with('-'), "{table}");
    }

    #[test]
    fn tables_show_each_station_and_survive_missing_fields() {
        let approvals = json!([
            {"station": "xh/t1/v1", "state": "approved", "edited_after_approval": true,
             "decision": {"state": "approved", "by": "xh/t1", "at_ms": 1_793_577_600_000i64},
             "approved": {"counts": {"activities": 1, "hours_centi": 200}},
             "current": {"counts": {"activities": 2, "hours_centi": 650}}},
            {"station": "xh/t1/v2", "state": "sent_back",
             "decision": {"state": "sent_back", "by": "xh", "reason": "请补充签到表"}},
            {"unexpected": true}
        ]);
        let table = approvals_table(&approvals);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].contains("xh/t1/v1") && lines[1].contains("yes"));
        assert!(lines[1].contains("2.00") && lines[1].contains("6.50"));
        assert!(lines[2].ends_with("请补充签到表"));

        let freshness = json!({
            "as_of_ms": 1_793_577_600_000i64, "quiet_days_max": 7, "quiet": 1,
            "stations": [
                {"station": "xh/t1", "name": "城关镇所", "newest_change_ms": 1_793_577_600_000i64, "silent_days": 0, "quiet": false},
                {"station": "xh/t1/v9", "quiet": true}
            ]
        });
        let table = freshness_table(&freshness);
        assert!(table.starts_with("as of 2026-11-02 08:00 (quiet after 7 days): 1 quiet"));
        let quiet: Vec<&str> = table.lines().filter(|l| l.ends_with("QUIET")).collect();
        assert_eq!(quiet.len(), 1);
        assert!(quiet[0].contains("xh/t1/v9") && quiet[0].contains("never"));
        assert!(table
            .lines()
            .any(|l| l.starts_with("xh/t1 ") && l.contains("城关镇所")));
        assert_eq!(freshness_table(&json!(null)).lines().count(), 2);

        let stations = json!({"under": "xh", "stations": [
            {"id": "xh/t1/v1", "name": "东村站", "tier": "village", "registered_in": "xh"},
            {"id": "xh/t1/v2"}
        ]});
        let table = stations_table(&stations);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("xh/t1/v1") && lines[1].ends_with("东村站"));
        assert!(lines[1].contains("village"));
        assert!(lines[2].ends_with('-'), "a missing name prints as a dash");
    }

    #[test]
    fn the_status_table_names_a_peer_refused_for_now_and_why() {
        let status = json!({"station": "xh/t1", "tier": "township", "peers": [
            {"station": "xh/t1/v1", "role": "incoming", "tier": "village", "connected": true,
             "up_to_date": true, "last_error": "roster:xh/t1/v1/s1: refused for now: ...",
             "intake": {"day": 20_412, "documents_accepted": 3, "bytes_accepted": 4_200,
               "refused_unregistered": 10_000, "refused_over_quota": 0,
               "last_refusal": "station xh/t1/v1/s1 is not in the station registry this node holds"}},
            {"station": "xh/t1/v2", "role": "incoming", "connected": false,
             "last_error": "the link was lost",
             "last_refused": "activities:xh/t1/v2:2025-07: over the decode limits",
             "intake": {"documents_accepted": 1, "refused_unregistered": 0, "refused_over_quota": 0}}
        ]});
        let table = status_table(&status);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        assert_eq!(
            lines[6],
            "xh/t1/v2: last refused: activities:xh/t1/v2:2025-07: over the decode limits"
        );
        assert_eq!(
            lines[4],
            "xh/t1/v1: last error: roster:xh/t1/v1/s1: refused for now: ..."
        );
        assert!(lines[5].starts_with("xh/t1/v1: today 3 new documents and 4.2 KB accepted"));
        assert!(lines[5].contains("10000 for unregistered stations, 0 over the daily quota"));
        assert!(lines[5].ends_with("xh/t1/v1/s1 is not in the station registry this node holds"));
    }

    #[test]
    fn the_status_table_says_per_peer_whether_sync_caught_up_and_why_not() {
        let long_error = "x".repeat(200);
        let status = json!({"station": "xh/t1", "tier": "township", "documents": 12,
            "documents_loaded": 3, "documents_read_from_disk": 40, "peers": [
            {"station": "xh", "role": "parent", "tier": "county", "connected": true,
             "up_to_date": true, "last_seen_unix_ms": 1_793_577_600_000i64,
             "documents_synced": 8, "bytes_sent": 744, "bytes_received": 5_785,
             "transport_bytes_sent": 4_400, "transport_bytes_received": 12_345},
            {"station": "xh/t1/v1", "role": "incoming", "tier": "village", "connected": true,
             "up_to_date": false, "documents_pending": 4, "documents_in_flight": 2,
             "bytes_sent": 2_500_000},
            {"station": "xh/t1/v2", "role": "incoming", "connected": false,
             "last_error": long_error},
            {"unexpected": true}
        ]});
        let table = status_table(&status);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        assert_eq!(
            lines[0],
            "xh/t1 (township): 12 documents, 3 loaded, 40 read from disk since start"
        );
        assert!(lines[2].starts_with("xh ") && lines[2].contains("up to date"));
        assert!(lines[2].contains("2026-11-02 08:00"));
        assert!(lines[2].contains("744 B") && lines[2].contains("5.8 KB"));
        assert!(
            lines[2].contains("4.4 KB") && lines[2].contains("12.3 KB"),
            "the bytes on the wire each way: {}",
            lines[2]
        );
        assert!(lines[3].contains("4 pending, 2 in flight") && lines[3].contains("2.5 MB"));
        assert!(lines[4].contains("DOWN") && !lines[4].contains("up to date"));
        assert!(
            lines[4].ends_with("..."),
            "a long error is cut: {}",
            lines[4]
        );
        let cut_error = lines[4].rsplit("  ").next().unwrap_or_default();
        assert_eq!(cut_error.chars().count(), 72, "{}", lines[4]);
        assert!(
            lines[5].starts_with('-'),
            "a malformed peer prints as dashes"
        );

        assert_eq!(
            lines[6],
            format!("xh/t1/v2: last error: {long_error}"),
            "the whole error follows the table"
        );

        let with_jobs = status_table(&json!({"station": "xh", "tier": "county", "peers": [],
            "jobs": [{"kind": "cold_sync", "subject": "xh/t1", "unit": "documents",
                      "done": 1_234, "total": 2_600, "bytes": 4_100_000,
                      "phase": "receiving documents", "state": "running",
                      "elapsed_ms": 12_345}]}));
        assert_eq!(
            with_jobs.lines().nth(1),
            Some("cold sync xh/t1: documents 1,234 / 2,600, 4.1 MB; receiving documents (running, 12.3 s)")
        );

        let alone = status_table(&json!({"station": "xh", "tier": "county", "peers": []}));
        assert!(alone
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("no peers yet")));
    }
}
