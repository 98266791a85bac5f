//! The office web server's protections, against a real `civsync run`:
//! what a web page in the clerk's browser, a DNS-rebinding page, a script
//! without the token, a wrong role and a password guesser can do — nothing
//! — and that each of them is refused without changing a record, and
//! recorded in the audit log.

use civsync_tests::web::{add_user, WebSession};
use civsync_tests::{civsync, id_number, volunteer_body, TestNode};
use serde_json::Value;

fn volunteers(node: &TestNode) -> usize {
    node.get("volunteers").unwrap().as_array().unwrap().len()
}

fn village(dir: &std::path::Path) -> TestNode {
    let mut node = TestNode::init(&dir.join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    node
}

#[test]
fn a_cross_origin_post_a_foreign_host_and_no_credentials_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = village(dir.path());
    let url = format!("http://{}/api/v1/volunteers", node.api);
    let body = serde_json::to_vec(&volunteer_body(1)).unwrap();
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();

    // A page on another site posts text/plain (no preflight), without the token.
    let cross_site = http
        .post(&url)
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    // Even with the token, text/plain never reaches the JSON handler.
    let plain = node
        .request(reqwest::Method::POST, "volunteers")
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(plain.status().as_u16(), 415);
    // A rebinding page's requests carry its own name as Host.
    let rebound = node
        .request(reqwest::Method::GET, "volunteers")
        .header("host", format!("evil.example:{}", node.api.port()))
        .send()
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 421);
    // A script without the token.
    let anonymous = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let refusal: Value = anonymous.json().unwrap();
    assert_eq!(refusal["error"]["field"], "authorization");
    // A wrong token.
    let wrong = http.get(&url).bearer_auth("0".repeat(64)).send().unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // A browser without a session is sent to the login page.
    let page = WebSession::new(&node).get("/web/volunteers").unwrap();
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=/web/volunteers")
    );

    assert_eq!(volunteers(&node), 0, "nothing was written");
    // The same body with the token and JSON is accepted: the refusals above
    // were the protections, not a broken body.
    let (status, answer) = node.post("volunteers", &volunteer_body(1)).unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(volunteers(&node), 1);
}

#[test]
fn a_form_without_the_sessions_csrf_token_is_refused_and_one_with_it_records() {
    let dir = tempfile::tempdir().unwrap();
    let node = village(dir.path());
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    let mut session = WebSession::new(&node);
    let login = session.login("wang", "dongcun2026").unwrap();
    assert_eq!(login.status, 303, "{}", login.body);
    let page = session.get("/web/volunteers").unwrap();
    assert_eq!(page.status, 200);
    let csrf = page.csrf().expect("the page carries a CSRF token");
    let id = id_number(7);
    let fields = [
        ("name", "王芳"),
        ("sex", "female"),
        ("id_number", id.as_str()),
        ("phone", "13800138000"),
        ("residence_area", "东村"),
    ];
    let forged = session.post_form("/web/volunteers", &fields).unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(volunteers(&node), 0);
    let mut with_token = fields.to_vec();
    with_token.push(("csrf", csrf.as_str()));
    let sent = session.post_form("/web/volunteers", &with_token).unwrap();
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(volunteers(&node), 1);
}

#[test]
fn a_clerk_may_record_but_not_approve_or_add_accounts_and_an_auditor_reads_no_roster() {
    let dir = tempfile::tempdir().unwrap();
    let node = village(dir.path());
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    add_user(&node, "audit", "auditor", "shenji2026").unwrap();
    let mut clerk = WebSession::new(&node);
    assert_eq!(clerk.login("wang", "dongcun2026").unwrap().status, 303);
    let csrf = clerk.get("/").unwrap().csrf().unwrap();
    let refused = clerk
        .post_form(
            "/web/users",
            &[
                ("name", "x"),
                ("role", "admin"),
                ("password", "abc12345"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = clerk
        .post_form(
            "/web/approvals",
            &[
                ("station", "xh/t1/v1"),
                ("month", "2026-11"),
                ("decision", "approve"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    let accounts = node.get("users").unwrap();
    assert_eq!(
        accounts.as_array().unwrap().len(),
        2,
        "no account added: {accounts}"
    );

    let mut auditor = WebSession::new(&node);
    assert_eq!(auditor.login("audit", "shenji2026").unwrap().status, 303);
    assert_eq!(auditor.get("/web/volunteers").unwrap().status, 403);
    let log = auditor.get("/web/audit").unwrap();
    assert_eq!(log.status, 200);
    assert!(
        log.body.contains("POST /web/users"),
        "the refusal is in the audit log"
    );
    assert!(log.body.contains("403 role"));
}

#[test]
fn five_wrong_passwords_lock_the_account_until_an_administrator_unlocks_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = village(dir.path());
    add_user(&node, "li", "approver", "xicun2026a").unwrap();
    let mut session = WebSession::new(&node);
    for _ in 0..5 {
        let page = session.login("li", "wrongpass1").unwrap();
        assert_eq!(page.status, 401);
        assert!(session.cookie.is_none());
    }
    let locked = session.login("li", "xicun2026a").unwrap();
    assert_eq!(
        locked.status, 401,
        "the right password is refused while locked"
    );
    assert!(locked.body.contains("已锁定"), "{}", locked.body);
    civsync(&[
        "user",
        "unlock",
        "li",
        "--data-dir",
        node.dir.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(session.login("li", "xicun2026a").unwrap().status, 303);
    let audit = civsync(&[
        "audit",
        "--json",
        "--action",
        "login",
        "--data-dir",
        node.dir.to_str().unwrap(),
    ])
    .unwrap();
    let entries: Value = serde_json::from_str(&audit).unwrap();
    let outcomes: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.starts_with("failed")).count(),
        5,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"refused: locked"));
    assert_eq!(outcomes.first(), Some(&"ok"), "newest first: {outcomes:?}");
}
