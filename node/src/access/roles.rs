//! Roles and what each may do, decided per route by method and path.
//!
//! The table fails closed: a route nobody listed needs `Administer`. A
//! small office may give one person every job by making them `admin`; the
//! auditor is kept apart (等保 2.0 separates the audit role): it reads the
//! audit log and the node's status, and nothing personal.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the office: accounts, stations, menus, certificates; and may do
    /// what a clerk and an approver do.
    Admin,
    /// Records volunteers, teams, activities and orders; imports.
    Clerk,
    /// Approves or sends back a station's month.
    Approver,
    /// Reads the audit log.
    Auditor,
}

pub const ROLES: [Role; 4] = [Role::Admin, Role::Clerk, Role::Approver, Role::Auditor];

impl Role {
    pub fn key(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clerk => "clerk",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "管理员",
            Role::Clerk => "录入员",
            Role::Approver => "审核员",
            Role::Auditor => "审计员",
        }
    }

    /// The English key or the Chinese label.
    pub fn parse(text: &str) -> Result<Role, String> {
        let text = text.trim();
        ROLES
            .into_iter()
            .find(|role| role.key() == text || role.label() == text)
            .ok_or_else(|| {
                let choices: Vec<String> = ROLES
                    .iter()
                    .map(|role| format!("{} ({})", role.label(), role.key()))
                    .collect();
                format!(
                    "{text:?} is not a role; expected one of {}",
                    choices.join(", ")
                )
            })
    }

    pub fn may(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Clerk => matches!(permission, Read | Record | Status),
            Role::Approver => matches!(permission, Read | Approve | Status),
            Role::Auditor => matches!(permission, Audit | Status),
        }
    }
}

/// What a route does, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// The node's own status and health: no personal data.
    Status,
    /// Read records, statistics, reports.
    Read,
    /// Write records: volunteers, teams, activities, orders, imports.
    Record,
    /// Decide a station's month.
    Approve,
    /// Accounts, the station registry, menus and themes, revocations.
    Administer,
    /// Read the audit log.
    Audit,
}

/// The permission a request needs. `path` is the URI path, without query.
pub fn permission_for(method: &axum::http::Method, path: &str) -> Permission {
    use axum::http::Method;
    let reads = *method == Method::GET || *method == Method::HEAD;
    let api = path.strip_prefix("/api/v1/");
    let web = path.strip_prefix("/web/");
    let resource = api.or(web).unwrap_or(path);
    let first = resource.split('/').next().unwrap_or("");
    match (first, reads) {
        ("status" | "health" | "node", true) => Permission::Status,
        ("audit", _) => Permission::Audit,
        ("users", _) => Permission::Administer,
        ("approvals", false) => Permission::Approve,
        ("stations" | "menu" | "themes" | "revocations", false) => Permission::Administer,
        // A station list is the registry's, whichever path carries it.
        ("import", false) if resource == "import/stations" => Permission::Administer,
        // Carrying a bundle to or from the township is the clerk's errand.
        (
            "volunteers" | "teams" | "activities" | "orders" | "import" | "conflicts" | "bundles",
            false,
        ) => Permission::Record,
        // A supermarket clerk redeems, an office clerk moves points; the
        // county's rate is an administrator's (the fall-through below).
        ("points", false) if resource != "points/rate" => Permission::Record,
        // Checking a certificate someone shows reads nothing of ours.
        ("certificates", false) if resource == "certificates/verify" => Permission::Read,
        (_, true) => Permission::Read,
        (_, false) => Permission::Administer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn a_clerk_records_but_neither_approves_nor_administers() {
        let record = permission_for(&Method::POST, "/api/v1/activities");
        assert_eq!(record, Permission::Record);
        assert!(Role::Clerk.may(record));
        for deletion in ["/api/v1/volunteers/V1", "/api/v1/teams/T1"] {
            assert_eq!(
                permission_for(&Method::DELETE, deletion),
                Permission::Record
            );
            assert!(!Role::Approver.may(permission_for(&Method::DELETE, deletion)));
        }
        assert!(!Role::Clerk.may(permission_for(&Method::POST, "/api/v1/approvals")));
        assert!(!Role::Clerk.may(permission_for(&Method::POST, "/api/v1/stations")));
        assert!(!Role::Clerk.may(permission_for(&Method::GET, "/api/v1/audit")));
    }

    #[test]
    fn a_clerk_imports_records_but_only_an_administrator_imports_the_station_list() {
        for path in ["/api/v1/import/volunteers", "/api/v1/import/teams"] {
            assert!(Role::Clerk.may(permission_for(&Method::POST, path)));
        }
        let stations = permission_for(&Method::POST, "/api/v1/import/stations");
        assert_eq!(stations, Permission::Administer);
        assert!(!Role::Clerk.may(stations));
    }

    #[test]
    fn an_approver_approves_but_does_not_record() {
        assert!(Role::Approver.may(permission_for(&Method::POST, "/api/v1/approvals")));
        assert!(!Role::Approver.may(permission_for(&Method::POST, "/api/v1/volunteers")));
        assert!(!Role::Approver.may(permission_for(
            &Method::DELETE,
            "/api/v1/activities/2026-11/a1"
        )));
    }

    #[test]
    fn an_auditor_reads_the_audit_log_and_status_but_no_personal_data() {
        assert!(Role::Auditor.may(permission_for(&Method::GET, "/api/v1/audit")));
        assert!(Role::Auditor.may(permission_for(&Method::GET, "/api/v1/status")));
        assert!(!Role::Auditor.may(permission_for(&Method::GET, "/api/v1/volunteers")));
        assert!(!Role::Auditor.may(permission_for(&Method::GET, "/web/volunteers")));
    }

    #[test]
    fn a_clerk_redeems_and_transfers_points_but_only_an_administrator_sets_the_rate() {
        assert!(Role::Clerk.may(permission_for(&Method::POST, "/api/v1/points/redemptions")));
        assert!(Role::Clerk.may(permission_for(&Method::POST, "/web/points/transfers")));
        let rate = permission_for(&Method::POST, "/api/v1/points/rate");
        assert_eq!(rate, Permission::Administer);
        assert!(!Role::Clerk.may(rate));
    }

    #[test]
    fn an_unlisted_change_needs_an_administrator() {
        let unknown = permission_for(&Method::POST, "/api/v1/something-new");
        assert_eq!(unknown, Permission::Administer);
        assert!(!Role::Clerk.may(unknown));
        assert!(Role::Admin.may(unknown));
    }

    #[test]
    fn roles_parse_from_chinese_or_english_and_refusals_list_both() {
        assert_eq!(Role::parse("审核员"), Ok(Role::Approver));
        assert_eq!(Role::parse("clerk"), Ok(Role::Clerk));
        let refusal = Role::parse("boss").unwrap_err();
        assert!(refusal.contains("管理员 (admin)"), "{refusal}");
    }
}
