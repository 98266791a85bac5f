//! The page shell every page shares: title, navigation by tier and role,
//! the sync light, the logout button; and the small formatters pages use
//! (Beijing time, "2 小时前", error beside a field).

use crate::access::guard::Principal;
use crate::access::{Permission, Role};
use civsync_protocol::Tier;
use maud::{html, Markup, PreEscaped, DOCTYPE};

pub const HTMX: &str = "/assets/htmx-2.0.11.min.js";
pub const CSS: &str = "/assets/civsync.css";
/// Our own script; a new version gets a new name (it is cached).
pub const SCRIPT: &str = "/assets/civsync-1.js";

/// What the shell needs to know of the node and the person.
pub struct Shell<'a> {
    pub office: &'a str,
    pub tier: Tier,
    pub principal: &'a Principal,
    /// Which navigation entry is lit.
    pub current: &'a str,
}

struct NavItem {
    href: &'static str,
    label: &'static str,
    key: &'static str,
    needs: Permission,
    /// Shown only to these tiers (empty: all).
    tiers: &'static [Tier],
}

const ABOVE_VILLAGE: &[Tier] = &[
    Tier::Township,
    Tier::County,
    Tier::Prefecture,
    Tier::Province,
];

const NAV: &[NavItem] = &[
    NavItem {
        href: "/",
        label: "首页",
        key: "home",
        needs: Permission::Status,
        tiers: &[],
    },
    NavItem {
        href: "/web/stations",
        label: "站点看板",
        key: "stations",
        needs: Permission::Read,
        tiers: ABOVE_VILLAGE,
    },
    NavItem {
        href: "/web/volunteers",
        label: "志愿者",
        key: "volunteers",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/teams",
        label: "队伍",
        key: "teams",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/activities",
        label: "活动记录",
        key: "activities",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/orders",
        label: "服务点单",
        key: "orders",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/import",
        label: "导入",
        key: "import",
        needs: Permission::Record,
        tiers: &[],
    },
    NavItem {
        href: "/web/points",
        label: "积分",
        key: "points",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/catalog",
        label: "菜单主题",
        key: "catalog",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/approvals",
        label: "审核",
        key: "approvals",
        needs: Permission::Read,
        tiers: ABOVE_VILLAGE,
    },
    NavItem {
        href: "/web/reports",
        label: "报表",
        key: "reports",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/bundles",
        label: "U盘传递",
        key: "bundles",
        needs: Permission::Record,
        tiers: &[],
    },
    NavItem {
        href: "/web/sync",
        label: "同步状态",
        key: "sync",
        needs: Permission::Read,
        tiers: &[],
    },
    NavItem {
        href: "/web/registry",
        label: "站点名录",
        key: "registry",
        needs: Permission::Administer,
        tiers: ABOVE_VILLAGE,
    },
    NavItem {
        href: "/web/users",
        label: "账户",
        key: "users",
        needs: Permission::Administer,
        tiers: &[],
    },
    NavItem {
        href: "/web/audit",
        label: "审计日志",
        key: "audit",
        needs: Permission::Audit,
        tiers: &[],
    },
];

pub fn tier_label(tier: Tier) -> &'static str {
    match tier {
        Tier::Village => "新时代文明实践站",
        Tier::Township => "新时代文明实践所",
        Tier::County => "新时代文明实践中心",
        Tier::Prefecture => "市级",
        Tier::Province => "省级",
        Tier::Point => "实践点",
    }
}

/// A whole page.
pub fn page(shell: &Shell, title: &str, body: Markup) -> Markup {
    let role: Role = shell.principal.role;
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (shell.office) }
                link rel="stylesheet" href=(CSS);
                script src=(HTMX) defer {}
                script src=(SCRIPT) defer {}
                @if let Some(csrf) = &shell.principal.csrf {
                    meta name="csrf-token" content=(csrf);
                }
            }
            body hx-headers=(csrf_header(shell.principal)) {
                header.top {
                    div.office { (shell.office) span.tier { (tier_label(shell.tier)) } }
                    nav {
                        @for item in NAV {
                            @if role.may(item.needs) && (item.tiers.is_empty() || item.tiers.contains(&shell.tier)) {
                                a href=(item.href) class=@if item.key == shell.current { "on" } { (item.label) }
                            }
                        }
                    }
                    form.logout method="post" action="/logout" {
                        (csrf_field(shell.principal))
                        span.who { (shell.principal.who) "（" (role.label()) "）" }
                        button type="submit" { "退出" }
                    }
                }
                main { h1 { (title) } (body) }
                footer { "civsync · 新时代文明实践数据同步 · 北京时间" }
            }
        }
    }
}

fn csrf_header(principal: &Principal) -> String {
    match &principal.csrf {
        Some(csrf) => serde_json::json!({ crate::access::guard::CSRF_HEADER: csrf }).to_string(),
        None => "{}".to_string(),
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(principal: &Principal) -> Markup {
    html! {
        @if let Some(csrf) = &principal.csrf {
            input type="hidden" name=(crate::access::guard::CSRF_FIELD) value=(csrf);
        }
    }
}

/// A refusal shown beside the field it names.
pub fn field_error(errors: &[(String, String)], field: &str) -> Markup {
    html! {
        @for (name, reason) in errors {
            @if name == field || name.starts_with(&format!("{field}.")) || name.starts_with(&format!("{field}[")) {
                span.error role="alert" data-field=(field) { (reason) }
            }
        }
    }
}

/// Refusals that name no field of the form, shown above it.
pub fn other_errors(errors: &[(String, String)], fields: &[&str]) -> Markup {
    html! {
        @for (name, reason) in errors {
            @if !fields.iter().any(|f| name == f || name.starts_with(&format!("{f}.")) || name.starts_with(&format!("{f}["))) {
                p.error role="alert" { (name) "：" (reason) }
            }
        }
    }
}

const BEIJING_OFFSET_S: i64 = 8 * 60 * 60;

/// `2026-12-05 18:30`, Beijing time.
pub fn beijing_time(unix_ms: i64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000 + BEIJING_OFFSET_S)
    else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// "刚刚", "5 分钟前", "2 小时前", "3 天前".
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let seconds = (now_ms - then_ms).max(0) / 1000;
    match seconds {
        0..=59 => "刚刚".to_string(),
        60..=3599 => format!("{} 分钟前", seconds / 60),
        3600..=86_399 => format!("{} 小时前", seconds / 3600),
        _ => format!("{} 天前", seconds / 86_400),
    }
}

/// Inline so that a page still reads when the stylesheet is the only
/// thing missing; the stylesheet adds layout.
pub fn raw(text: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(text)
}

/// The shell for `web`'s node and this person.
pub fn shell<'a>(web: &'a super::Web, principal: &'a Principal, current: &'a str) -> Shell<'a> {
    let config = &web.ctx.config;
    Shell {
        office: if config.name.is_empty() {
            config.station.as_str()
        } else {
            &config.name
        },
        tier: config.tier,
        principal,
        current,
    }
}

/// A number field of an API answer (0 when absent).
pub fn num(value: &serde_json::Value, field: &str) -> u64 {
    value.get(field).and_then(|v| v.as_u64()).unwrap_or(0)
}

pub fn text<'a>(value: &'a serde_json::Value, field: &str) -> &'a str {
    value.get(field).and_then(|v| v.as_str()).unwrap_or("")
}

/// Hundredths of an hour as `12.5`.
pub fn hours(centi: u64) -> String {
    let whole = centi / 100;
    match centi % 100 {
        0 => whole.to_string(),
        rest if rest % 10 == 0 => format!("{whole}.{}", rest / 10),
        rest => format!("{whole}.{rest:02}"),
    }
}

/// `2026-11` from a `?month=`, or this month.
pub fn month_or_now(month: Option<&str>) -> String {
    match month.and_then(civsync_protocol::Month::parse) {
        Some(month) => month.to_string(),
        None => crate::clock::this_month().to_string(),
    }
}

/// The month before `month` (`YYYY-MM`).
pub fn previous_month(month: &str) -> String {
    match civsync_protocol::Month::parse(month) {
        Some(m) if m.month == 1 => format!("{:04}-12", m.year - 1),
        Some(m) => format!("{:04}-{:02}", m.year, m.month - 1),
        None => month.to_string(),
    }
}

pub fn next_month(month: &str) -> String {
    match civsync_protocol::Month::parse(month) {
        Some(m) if m.month == 12 => format!("{:04}-01", m.year + 1),
        Some(m) => format!("{:04}-{:02}", m.year, m.month + 1),
        None => month.to_string(),
    }
}

/// Month navigation: ‹ 2026-10 | 2026-11 | 2026-12 ›.
pub fn month_nav(base: &str, month: &str) -> Markup {
    html! {
        div.toolbar {
            a href={ (base) "?month=" (previous_month(month)) } { "‹ 上月" }
            strong { (month) }
            a href={ (base) "?month=" (next_month(month)) } { "下月 ›" }
        }
    }
}

/// An API refusal that ends a page: the reason, in a page.
pub fn failure(shell: &Shell, title: &str, reason: &str) -> Markup {
    page(shell, title, html! { p.error role="alert" { (reason) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_beijing_and_relative_times_read_in_chinese() {
        // 2026-12-05 10:00 UTC is 18:00 in Beijing.
        assert_eq!(beijing_time(1_796_464_800_000), "2026-12-05 18:00");
        assert_eq!(ago(0, 30_000), "刚刚");
        assert_eq!(ago(0, 2 * 3_600_000 + 5), "2 小时前");
        assert_eq!(ago(0, 3 * 86_400_000), "3 天前");
    }

    #[test]
    fn an_error_is_shown_beside_its_field_and_nowhere_else() {
        let errors = vec![("id_number".to_string(), "校验位错误".to_string())];
        let beside = field_error(&errors, "id_number").into_string();
        assert!(beside.contains("校验位错误"));
        assert!(field_error(&errors, "name").into_string().is_empty());
        assert!(other_errors(&errors, &["id_number"])
            .into_string()
            .is_empty());
        assert!(other_errors(&errors, &["name"])
            .into_string()
            .contains("校验位错误"));
    }
}
