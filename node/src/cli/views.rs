//! What the CLI prints by default for an API answer that has no table in
//! `tables`: the roster, teams, activities, statistics, import reports,
//! conflicts, the revocation list as aligned columns with counts and totals
//! in a footer, and one sentence for each write (`--json` prints the API's
//! answer instead).
//!
//! Like `tables`, they read the API's JSON: a field the node did not send
//! prints as `-`, never a panic. Personal fields print as the API sends
//! them (the ID number only masked). Vocabulary values print as their
//! Chinese label, the key kept where a technician matches it with `--json`.

use crate::cli::columns::{figure, text as column, Table};
use crate::cli::tables::beijing_minute;
use civsync_protocol::domain::model::{Category, Form, OrderStatus, Sex};
use serde_json::Value;

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Hundredths of an hour as `12.50`.
fn centi(centi: u64) -> String {
    format!("{}.{:02}", centi / 100, centi % 100)
}

/// Decimal hours from the JSON (`2.5`) as hundredths, exactly as typed.
fn hours_centi(value: &Value) -> u64 {
    value
        .as_f64()
        .filter(|h| h.is_finite() && *h > 0.0)
        .map_or(0, |h| (h * 100.0).round() as u64)
}

/// A vocabulary key as its Chinese label; an unknown key as it came.
fn label(value: &Value, parse: fn(&str) -> Option<&'static str>) -> String {
    match value.as_str() {
        Some(key) => parse(key).map_or_else(|| key.to_string(), str::to_string),
        None => "-".to_string(),
    }
}

fn category(key: &str) -> Option<&'static str> {
    Category::parse(key).ok().map(Category::label)
}
fn form(key: &str) -> Option<&'static str> {
    Form::parse(key).ok().map(Form::label)
}
fn sex(key: &str) -> Option<&'static str> {
    Sex::parse(key).ok().map(Sex::label)
}
fn order_status(key: &str) -> Option<&'static str> {
    OrderStatus::parse(key).ok().map(OrderStatus::label)
}

fn categories(value: &Value) -> String {
    let labels: Vec<String> = list(value).iter().map(|c| label(c, category)).collect();
    labels.join("、")
}

/// `GET volunteers`: the roster, one line per volunteer, the ID number
/// masked as the API sends it.
pub fn volunteers_view(answer: &Value) -> String {
    let mut table = Table::new(&[
        column("编号", "number"),
        column("姓名", "name"),
        column("性别", "sex"),
        column("身份证号", "id_masked"),
        column("电话", "phone"),
        column("服务类别", "categories"),
        column("所属站点", "home_station"),
        column("注册日期", "registered_on"),
    ]);
    let mut deleted = 0;
    for volunteer in list(answer) {
        let mut name = text(&volunteer["name"]);
        if volunteer["deleted"].as_bool() == Some(true) {
            deleted += 1;
            name.push_str(" [已删除 deleted]");
        }
        table.row(vec![
            text(&volunteer["number"]),
            name,
            label(&volunteer["sex"], sex),
            text(&volunteer["id_masked"]),
            text(&volunteer["phone"]),
            categories(&volunteer["categories"]),
            text(&volunteer["home_station"]),
            text(&volunteer["registered_on"]),
        ]);
    }
    let shown = table.rows();
    table.note(match deleted {
        0 => format!("共 {shown} 名志愿者 ({shown} volunteers)"),
        _ => format!(
            "共 {shown} 名志愿者, 其中 {deleted} 名已删除 ({shown} volunteers, {deleted} deleted)"
        ),
    });
    table.render()
}

/// `GET teams`: one line per team, members counted.
pub fn teams_view(answer: &Value) -> String {
    let mut table = Table::new(&[
        column("编号", "id"),
        column("名称", "name"),
        column("服务类别", "category"),
        column("站点", "station"),
        column("队长", "leader"),
        figure("成员", "members"),
    ]);
    let mut members = 0;
    for team in list(answer) {
        let count = list(&team["members"]).len();
        members += count;
        table.row(vec![
            text(&team["id"]),
            text(&team["name"]),
            label(&team["category"], category),
            text(&team["station"]),
            text(&team["leader"]),
            count.to_string(),
        ]);
    }
    table.total(vec![
        "合计".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        members.to_string(),
    ]);
    let teams = table.rows();
    table.note(format!(
        "共 {teams} 支队伍, {members} 名成员 ({teams} teams, {members} members)"
    ));
    table.render()
}

/// Live service records of an activity and their hours in hundredths.
fn live_records(activity: &Value) -> (u64, u64) {
    list(&activity["records"])
        .iter()
        .filter(|r| r["deleted"].as_bool() != Some(true))
        .fold((0, 0), |(count, hours), record| {
            (count + 1, hours + hours_centi(&record["hours"]))
        })
}

/// `GET activities`: one line per activity with its live service records
/// and hours; totals of records, hours and beneficiaries under the rule.
pub fn activities_view(answer: &Value) -> String {
    let mut table = Table::new(&[
        column("日期", "date"),
        column("编号", "id"),
        column("名称", "name"),
        column("形式", "form"),
        column("服务类别", "category"),
        column("站点", "station"),
        figure("服务记录", "records"),
        figure("时长(小时)", "hours"),
        figure("受益人数", "beneficiaries"),
        column("备注", "late"),
    ]);
    let (mut records, mut hours, mut beneficiaries, mut late) = (0, 0, 0, 0);
    for activity in list(answer) {
        let (count, centis) = live_records(activity);
        let people = activity["beneficiaries"].as_u64().unwrap_or(0);
        let mut remark = Vec::new();
        if activity["late"].as_bool() == Some(true) {
            late += 1;
            remark.push("迟报 late");
        }
        if activity["deleted"].as_bool() == Some(true) {
            remark.push("已删除 deleted");
        } else {
            records += count;
            hours += centis;
            beneficiaries += people;
        }
        table.row(vec![
            text(&activity["date"]),
            text(&activity["id"]),
            text(&activity["name"]),
            label(&activity["form"], form),
            label(&activity["category"], category),
            text(&activity["station"]),
            count.to_string(),
            centi(centis),
            people.to_string(),
            remark.join(", "),
        ]);
    }
    let activities = table.rows();
    table.total(vec![
        "合计".into(),
        String::new(),
        format!("{activities} 项活动"),
        String::new(),
        String::new(),
        String::new(),
        records.to_string(),
        centi(hours),
        beneficiaries.to_string(),
        String::new(),
    ]);
    table.note(format!(
        "共 {activities} 项活动, {records} 条服务记录, {} 小时, 受益 {beneficiaries} 人; {late} 项迟报 \
         ({activities} activities, {records} service records, {} hours, {beneficiaries} beneficiaries, {late} late)",
        centi(hours),
        centi(hours)
    ));
    table.render()
}

/// Columns of `civsync stats`, with the report's Chinese headers.
const STATS_COLUMNS: &[crate::cli::columns::Column] = &[
    column("站点", "station"),
    column("名称", "name"),
    column("层级", "tier"),
    figure("活动", "activities"),
    figure("服务记录", "service_records"),
    figure("服务时长", "hours_centi"),
    figure("受益人数", "beneficiaries"),
    figure("迟报", "late_records"),
    figure("注册志愿者", "volunteers_registered"),
    figure("新注册", "volunteers_new"),
    figure("活跃志愿者", "volunteers_active"),
    figure("队伍", "teams"),
    figure("点单", "orders_placed"),
    figure("评单", "orders_rated"),
    figure("满意度", "satisfaction"),
    figure("覆盖率", "coverage"),
    column("审核", "approval"),
];

fn stats_cells(row: &Value) -> Vec<String> {
    let count = |key: &str| text(&row[key]);
    let approval = match (
        row["approval"]["state"].as_str(),
        row["approval"]["edited_after_approval"].as_bool(),
    ) {
        (Some("approved"), Some(true)) => "审核后有修改".to_string(),
        (Some("approved"), _) => "已审核".to_string(),
        (Some("sent_back"), _) => "已退回".to_string(),
        (Some("unapproved"), _) => "未审核".to_string(),
        (Some(other), _) => other.to_string(),
        (None, _) => String::new(),
    };
    vec![
        text(&row["station"]),
        text(&row["name"]),
        text(&row["tier"]),
        count("activities"),
        count("service_records"),
        row["hours_centi"]
            .as_u64()
            .map_or_else(|| "-".to_string(), centi),
        count("beneficiaries"),
        count("late_records"),
        count("volunteers_registered"),
        count("volunteers_new"),
        count("volunteers_active"),
        count("teams"),
        count("orders_placed"),
        count("orders_rated"),
        row["satisfaction"]
            .as_f64()
            .map_or_else(String::new, |s| format!("{s:.2}")),
        row["coverage"]
            .as_f64()
            .map_or_else(String::new, |c| format!("{:.1}%", c * 100.0)),
        approval,
    ]
}

/// `GET stats`: the title, one line per station of the subtree, the 合计
/// line (the root's figures over the whole subtree), then coverage.
pub fn stats_view(answer: &Value) -> String {
    let mut table = Table::new(STATS_COLUMNS);
    for row in list(&answer["rows"]) {
        table.row(stats_cells(row));
    }
    let mut total = stats_cells(&answer["totals"]);
    total[0] = "合计".to_string();
    total[1] = String::new();
    table.total(total);
    let stations = table.rows();
    table.note(format!(
        "{stations} 个站点; 村站 {} 个, 有活动 {} 个; 乡镇所 {} 个, 有活动 {} 个 \
         ({stations} stations; villages {}, active {}; townships {}, active {})",
        text(&answer["villages"]),
        text(&answer["villages_active"]),
        text(&answer["townships"]),
        text(&answer["townships_active"]),
        text(&answer["villages"]),
        text(&answer["villages_active"]),
        text(&answer["townships"]),
        text(&answer["townships_active"]),
    ));
    format!(
        "{} ({})\n{}",
        text(&answer["title"]),
        text(&answer["period"]),
        table.render()
    )
}

/// An import's report: a summary sentence, then every refused row with
/// the field and the reason, so the clerk fixes them in the file.
pub fn import_view(answer: &Value) -> String {
    let refused = list(&answer["refused"]);
    let mut out = format!(
        "共 {} 行: 接受 {} 行, 拒绝 {} 行 ({} rows: {} accepted, {} refused)\n",
        text(&answer["rows"]),
        text(&answer["accepted"]),
        refused.len(),
        text(&answer["rows"]),
        text(&answer["accepted"]),
        refused.len(),
    );
    if answer.get("activities").is_some() {
        let written = list(&answer["activities"]).len();
        out += &format!(
            "写入 {written} 项活动, 拒绝 {} 项 ({written} activities written, {} refused)\n",
            text(&answer["activities_refused"]),
            text(&answer["activities_refused"]),
        );
    }
    if !refused.is_empty() {
        let mut table = Table::new(&[
            figure("行", "row"),
            column("字段", "field"),
            column("原因", "reason"),
        ]);
        for refusal in refused {
            table.row(vec![
                text(&refusal["row"]),
                text(&refusal["field"]),
                text(&refusal["reason"]),
            ]);
        }
        out += &table.render();
    }
    out
}

/// `GET conflicts`: one line per value of a field concurrent edits left
/// with several, the value readers see now first.
pub fn conflicts_view(answer: &Value) -> String {
    let mut table = Table::new(&[
        column("文档", "document"),
        column("字段", "path"),
        column("取值", "value"),
        column("写入站点", "written_by"),
    ]);
    let conflicts = list(answer);
    for conflict in conflicts {
        for (at, value) in list(&conflict["values"]).iter().enumerate() {
            let (document, path) = if at == 0 {
                (text(&conflict["document"]), text(&conflict["path"]))
            } else {
                (String::new(), String::new())
            };
            table.row(vec![
                document,
                path,
                text(&value["value"]),
                text(&value["written_by"]),
            ]);
        }
    }
    let fields = conflicts.len();
    if fields == 0 {
        return "没有冲突 (no conflicts)\n".to_string();
    }
    table.note(format!(
        "{fields} 个字段有冲突; 选定取值: civsync conflicts --resolve DOCUMENT PATH VALUE \
         ({fields} fields in conflict)"
    ));
    table.render()
}

/// `GET revocations`: the list in force, one line per revoked certificate.
pub fn revocations_view(answer: &Value) -> String {
    let version = answer["version"].as_u64().unwrap_or(0);
    let mut out = if version == 0 {
        "没有吊销名单 (no revocation list in force, version 0)\n".to_string()
    } else {
        format!(
            "吊销名单第 {version} 版, {} 签发于 {} (revocation list version {version} of {})\n",
            text(&answer["county"]),
            beijing_minute(answer["issued_at_unix_s"].as_i64().map(|s| s * 1_000)),
            text(&answer["county"]),
        )
    };
    let entries = list(&answer["entries"]);
    if !entries.is_empty() {
        let mut table = Table::new(&[
            column("站点", "station"),
            column("证书", "certificate_sha256"),
            column("吊销时间", "revoked_at_unix_s"),
            column("原因", "reason"),
        ]);
        for entry in entries {
            let certificate = match entry["certificate_sha256"].as_str() {
                Some(hash) => hash.chars().take(16).collect::<String>() + "…",
                None => "全部 all".to_string(),
            };
            table.row(vec![
                text(&entry["station"]),
                certificate,
                beijing_minute(entry["revoked_at_unix_s"].as_i64().map(|s| s * 1_000)),
                text(&entry["reason"]),
            ]);
        }
        table.note(format!(
            "共 {} 条 ({} entries)",
            entries.len(),
            entries.len()
        ));
        out += &table.render();
    }
    if let Some(refused) = answer["last_refused"].as_str() {
        out += &format!("上次拒收的名单 (last list refused): {refused}\n");
    }
    out
}

/// `POST volunteers`: who was registered, the ID number masked.
pub fn volunteer_written(answer: &Value) -> String {
    format!(
        "已登记志愿者 {} {} ({}, 身份证 {}), 站点 {} (registered)\n",
        text(&answer["number"]),
        text(&answer["name"]),
        label(&answer["sex"], sex),
        text(&answer["id_masked"]),
        text(&answer["home_station"]),
    )
}

/// `POST teams`.
pub fn team_written(answer: &Value) -> String {
    format!(
        "已建立队伍 {} {} ({}), {} 名成员, 站点 {} (team saved)\n",
        text(&answer["id"]),
        text(&answer["name"]),
        label(&answer["category"], category),
        list(&answer["members"]).len(),
        text(&answer["station"]),
    )
}

/// `POST activities`: the activity, its records and hours, late or not.
pub fn activity_written(answer: &Value) -> String {
    let (records, centis) = live_records(answer);
    let late = if answer["late"].as_bool() == Some(true) {
        "; 迟报 (late: recorded more than 10 working days after)"
    } else {
        ""
    };
    format!(
        "已记录活动 {} {} {} ({}, {}): {records} 条服务记录, {} 小时{late} (recorded)\n",
        text(&answer["id"]),
        text(&answer["date"]),
        text(&answer["name"]),
        label(&answer["form"], form),
        label(&answer["category"], category),
        centi(centis),
    )
}

/// An order after placing it or one of its steps: where it stands now.
pub fn order_written(answer: &Value) -> String {
    let mut out = format!(
        "订单 {} ({}, {}): {} {}",
        text(&answer["id"]),
        text(&answer["station"]),
        text(&answer["menu_item"]),
        label(&answer["status"], order_status),
        text(&answer["status"]),
    );
    if let Some(team) = answer["team"].as_str() {
        out += &format!(", 队伍 team {team}");
    }
    if let Some(rating) = answer["rating"].as_u64() {
        out += &format!(", {rating} 星 stars");
    }
    out.push('\n');
    out
}

/// "written" or "unchanged", from a write's `changed` flag.
fn changed(answer: &Value) -> &'static str {
    match answer["changed"].as_bool() {
        Some(false) => "无变化 (unchanged: already so)",
        _ => "已写入 (written)",
    }
}

/// `POST menu`.
pub fn menu_item_written(answer: &Value) -> String {
    format!(
        "服务菜单 {} {} ({}){}: {}\n",
        text(&answer["id"]),
        text(&answer["name"]),
        label(&answer["category"], category),
        if answer["withdrawn"].as_bool() == Some(true) {
            " [已停止 withdrawn]"
        } else {
            ""
        },
        changed(answer),
    )
}

/// `POST themes`.
pub fn theme_written(answer: &Value) -> String {
    format!(
        "{} 月度主题 {}: {}\n",
        text(&answer["month"]),
        text(&answer["title"]),
        changed(answer),
    )
}

/// `POST stations` and `POST stations/retire`.
pub fn station_written(answer: &Value) -> String {
    let retired = &answer["retired"];
    let state = match (
        retired["retired_on"].as_str(),
        retired["merged_into"].as_str(),
    ) {
        (Some(on), Some(into)) => format!(", 撤并于 {on}, 并入 {into} (retired, merged into)"),
        (Some(on), None) => format!(", 撤并于 {on} (retired)"),
        _ => String::new(),
    };
    format!(
        "站点 {} {} ({}), 登记于 {}{state}: {}\n",
        text(&answer["id"]),
        text(&answer["name"]),
        text(&answer["tier"]),
        text(&answer["registered_in"]),
        changed(answer),
    )
}

/// `POST approvals`: the decision in force now.
pub fn decision_written(answer: &Value) -> String {
    let state = match answer["state"].as_str() {
        Some("approved") => "已审核 (approved)".to_string(),
        Some("sent_back") => format!("已退回 (sent back): {}", text(&answer["reason"])),
        _ => text(&answer["state"]),
    };
    format!(
        "{state}, 由 {} 于 {}\n",
        text(&answer["by"]),
        beijing_minute(answer["at_ms"].as_i64()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_roster_shows_chinese_labels_and_the_masked_id_and_counts_volunteers() {
        let answer = json!([
            {"number": "V1", "name": "欧阳娜娜", "sex": "female", "id_masked": "110105************",
             "phone": "13800138000", "categories": ["health", "elder_care"],
             "home_station": "xh/t1/v1", "registered_on": "2026-11-02"},
            {"number": "V2", "name": "Li", "sex": "male", "deleted": true},
        ]);
        let out = volunteers_view(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert!(
            lines[0].starts_with("编号") && lines[1].starts_with("number"),
            "{out}"
        );
        assert!(
            lines[3].contains("女") && lines[3].contains("医疗健身、扶老助残"),
            "{out}"
        );
        assert!(lines[3].contains("110105************"), "{out}");
        assert!(
            lines[4].contains("[已删除 deleted]") && lines[4].contains(" - "),
            "{out}"
        );
        assert_eq!(
            lines[5],
            "共 2 名志愿者, 其中 1 名已删除 (2 volunteers, 1 deleted)"
        );
    }

    #[test]
    fn activities_total_their_live_records_hours_and_beneficiaries() {
        let answer = json!([
            {"id": "A1", "date": "2026-11-20", "name": "健康义诊", "form": "help", "category": "health",
             "station": "xh/t1/v1", "beneficiaries": 30, "late": true,
             "records": [{"volunteer": "V1", "hours": 2.5}, {"volunteer": "V2", "hours": 1.25},
                         {"volunteer": "V3", "hours": 8, "deleted": true}]},
            {"id": "A2", "date": "2026-11-21", "name": "理论宣讲", "form": "lecture", "category": "theory",
             "station": "xh/t1/v2", "beneficiaries": 12, "records": [{"volunteer": "V4", "hours": 1}]},
            {"id": "A3", "name": "已删", "deleted": true, "beneficiaries": 99,
             "records": [{"volunteer": "V5", "hours": 3}]},
        ]);
        let out = activities_view(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 9, "{out}");
        assert!(
            lines[3].contains("帮") && lines[3].contains("医疗健身"),
            "{out}"
        );
        assert!(
            lines[3].contains(" 3.75 ") && lines[3].ends_with("迟报 late"),
            "{out}"
        );
        let total = lines[7];
        assert!(
            total.starts_with("合计") && total.contains("3 项活动"),
            "{out}"
        );
        assert!(
            total.contains(" 3 ") && total.contains(" 4.75 ") && total.ends_with(" 42"),
            "{out}"
        );
        assert!(
            lines[8].starts_with("共 3 项活动, 3 条服务记录, 4.75 小时, 受益 42 人; 1 项迟报"),
            "{out}"
        );
        assert!(activities_view(&json!([])).contains("共 0 项活动"));
    }

    #[test]
    fn stats_print_the_title_each_station_and_the_total_line_in_chinese() {
        let row = |station: &str, name: &str, activities: u64, centi: u64| {
            json!({"station": station, "name": name, "tier": "站", "activities": activities,
                   "service_records": 2, "hours_centi": centi, "beneficiaries": 5,
                   "late_records": 0, "volunteers_registered": 3, "volunteers_new": 1,
                   "volunteers_active": 2, "teams": 1, "orders_placed": 0, "orders_taken": 0,
                   "orders_rated": 0, "satisfaction": null, "coverage": null,
                   "approval": {"state": "approved", "edited_after_approval": false}})
        };
        let mut totals = row("xh/t1", "合计", 3, 1_050);
        totals["coverage"] = json!(0.5);
        let answer = json!({"title": "城关镇 新时代文明实践 2026年11月 统计表", "period": "2026-11",
            "root": "xh/t1", "rows": [row("xh/t1/v1", "东村站", 1, 250), row("xh/t1/v2", "西村站", 2, 800)],
            "totals": totals, "villages": 2, "villages_active": 2, "townships": 0, "townships_active": 0});
        let out = stats_view(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "城关镇 新时代文明实践 2026年11月 统计表 (2026-11)"
        );
        assert!(
            lines[1].starts_with("站点") && lines[1].contains("服务时长"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("station") && lines[2].contains("hours_centi"),
            "{out}"
        );
        assert!(
            lines[4].starts_with("xh/t1/v1") && lines[4].contains("东村站"),
            "{out}"
        );
        assert!(
            lines[4].contains(" 2.50 ") && lines[4].ends_with("已审核"),
            "{out}"
        );
        assert!(
            lines[7].starts_with("合计") && lines[7].contains(" 10.50 "),
            "{out}"
        );
        assert!(lines[7].contains("50.0%"), "{out}");
        assert!(
            lines[8].starts_with("2 个站点; 村站 2 个, 有活动 2 个"),
            "{out}"
        );
        // Columns line up although the names are Chinese.
        let column = |line: &str| crate::cli::columns::width(&line[..line.find("  2 ").unwrap()]);
        assert_eq!(
            column(lines[5]),
            crate::cli::columns::width(&lines[4][..lines[4].find("  1 ").unwrap()]),
            "{out}"
        );
    }

    #[test]
    fn an_import_report_lists_every_refused_row_with_field_and_reason() {
        let answer = json!({"rows": 3, "accepted": 1, "refused": [
            {"row": 3, "field": "category", "reason": "unknown value \"助老助残\"; expected one of ..."},
            {"row": 4, "field": "id_number", "reason": "check digit"}],
            "activities": [{"id": "A1", "month": "2026-11", "rows": [2]}], "activities_refused": 1});
        let out = import_view(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "共 3 行: 接受 1 行, 拒绝 2 行 (3 rows: 1 accepted, 2 refused)"
        );
        assert_eq!(
            lines[1],
            "写入 1 项活动, 拒绝 1 项 (1 activities written, 1 refused)"
        );
        assert!(
            lines[5].trim_start().starts_with("3  category") && lines[5].contains("助老助残"),
            "{out}"
        );
        assert!(
            lines[6].contains("id_number") && lines[6].ends_with("check digit"),
            "{out}"
        );
        assert_eq!(
            import_view(&json!({"rows": 1, "accepted": 1, "refused": []}))
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn writes_are_answered_in_one_sentence_naming_what_was_written() {
        let volunteer = json!({"number": "V1", "name": "张伟", "sex": "male",
            "id_masked": "110105************", "home_station": "xh/t1/v1"});
        assert_eq!(
            volunteer_written(&volunteer),
            "已登记志愿者 V1 张伟 (男, 身份证 110105************), 站点 xh/t1/v1 (registered)\n"
        );
        let order = json!({"id": "O1", "station": "xh/t1/v1", "menu_item": "义诊",
            "status": "dispatched", "team": "xh/t1:T1"});
        assert_eq!(
            order_written(&order),
            "订单 O1 (xh/t1/v1, 义诊): 派单 dispatched, 队伍 team xh/t1:T1\n"
        );
        let station = json!({"id": "xh/t1/v2", "name": "西村站", "tier": "village",
            "registered_in": "xh", "changed": false,
            "retired": {"retired_on": "2026-11-01", "merged_into": "xh/t1/v3"}});
        assert!(station_written(&station).contains("撤并于 2026-11-01, 并入 xh/t1/v3"));
        assert!(station_written(&station).ends_with("无变化 (unchanged: already so)\n"));
        let sent_back = json!({"state": "sent_back", "by": "xh/t1", "at_ms": 1_793_577_600_000i64, "reason": "请补充签到表"});
        assert_eq!(
            decision_written(&sent_back),
            "已退回 (sent back): 请补充签到表, 由 xh/t1 于 2026-11-02 08:00\n"
        );
        assert_eq!(
            volunteer_written(&json!(null)).matches('-').count(),
            5,
            "missing fields print as dashes"
        );
    }
}
