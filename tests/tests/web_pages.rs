//! The office pages that drive a workflow, through their forms as a browser
//! posts them (session cookie, CSRF token), against a real `civsync run`:
//! a citizen's order from placed to rated, the sync-status page, a roster
//! and a ledger through the import page, teams, menus, themes and the
//! station registry through theirs (its list also as a file on the import
//! page), and a volunteer and a team deleted.

use civsync_tests::web::{add_user, WebSession};
use civsync_tests::TestNode;
use serde_json::json;

#[test]
fn an_order_goes_from_placed_to_rated_through_the_pages_and_a_step_out_of_turn_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let (status, team) = node
        .post(
            "teams",
            &json!({"id": "T1", "name": "东村志愿服务队", "category": "health"}),
        )
        .unwrap();
    assert_eq!(status, 201, "{team}");
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    let mut session = WebSession::new(&node);
    assert_eq!(session.login("wang", "dongcun2026").unwrap().status, 303);
    let page = session.get("/web/orders").unwrap();
    assert_eq!(page.status, 200);
    let csrf = page.csrf().unwrap();

    let placed = session
        .post_form(
            "/web/orders",
            &[
                ("menu_item", "义诊"),
                ("requester", "张大爷"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(placed.status, 303, "{}", placed.body);
    let month = civsync_node::clock::this_month().to_string();
    let orders = node.get(&format!("orders?month={month}")).unwrap();
    let order = orders[0]["id"].as_str().unwrap().to_string();
    assert_eq!(orders[0]["status"], "placed");

    let step = |fields: &[(&str, &str)]| {
        let mut all = vec![
            ("station", "xh/t1/v1"),
            ("order", order.as_str()),
            ("month", month.as_str()),
            ("csrf", csrf.as_str()),
        ];
        all.extend_from_slice(fields);
        session.post_form("/web/orders/step", &all).unwrap()
    };
    // Rating before anyone took it is out of turn: refused, nothing written.
    let early = step(&[("step", "rate"), ("rating", "5")]);
    assert_eq!(early.status, 422, "{}", early.body);
    assert!(
        early.body.contains("status"),
        "the refusal names the field: {}",
        early.body
    );
    assert_eq!(
        node.get(&format!("orders?month={month}")).unwrap()[0]["status"],
        "placed"
    );

    assert_eq!(
        step(&[("step", "dispatch"), ("team", "xh/t1/v1:T1")]).status,
        303
    );
    assert_eq!(step(&[("step", "take")]).status, 303);
    assert_eq!(
        step(&[("step", "rate"), ("rating", "4"), ("comment", "及时")]).status,
        303
    );
    let rated = &node.get(&format!("orders?month={month}")).unwrap()[0];
    assert_eq!(rated["status"], "rated", "{rated}");
    assert_eq!(rated["rating"], 4);
    let listed = session.get(&format!("/web/orders?month={month}")).unwrap();
    assert!(
        listed.body.contains("评单") && listed.body.contains("4 星"),
        "{}",
        listed.body
    );

    // The sync page of a node without certificates says so, in Chinese.
    let sync = session.get("/web/sync").unwrap();
    assert_eq!(sync.status, 200);
    assert!(sync.body.contains("没有同步对象"), "{}", sync.body);
}

#[test]
fn a_roster_and_a_ledger_uploaded_on_the_import_page_are_stored_every_refused_row_is_reported_and_a_volunteer_is_corrected(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    let mut session = WebSession::new(&node);
    assert_eq!(session.login("wang", "dongcun2026").unwrap().status, 303);
    let page = session.get("/web/import").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-upload"), "{}", page.body);
    let csrf = page.csrf().unwrap();

    let roster = "编号,姓名,性别,身份证号,手机\n\
        001,王芳,女,110105198001010016,13800000001\n\
        002,李强,男,110105199002020026,13800000002\n\
        003,赵六,男,110105199002020027,13800000003\n";
    // Without the CSRF token the upload is refused and nothing is stored.
    let forged = session
        .post_file(
            "/web/import/volunteers?format=csv",
            None,
            roster.as_bytes().to_vec(),
        )
        .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(node.get("volunteers").unwrap().as_array().unwrap().len(), 0);

    let imported = session
        .post_file(
            "/web/import/volunteers?format=csv",
            Some(&csrf),
            roster.as_bytes().to_vec(),
        )
        .unwrap();
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(
        imported.body.contains("共 3 行，导入 2 行，未导入 1 行"),
        "{}",
        imported.body
    );
    // Row 4 of the sheet (header = row 1) has a wrong check digit.
    assert!(
        imported
            .body
            .contains("<td class=\"num\">4</td><td data-field=\"id_number\">身份证号</td>"),
        "{}",
        imported.body
    );
    let volunteers = node.get("volunteers").unwrap();
    let numbers: Vec<&str> = volunteers
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["001", "002"]);

    let today = civsync_node::clock::today().to_string();
    let ledger = format!(
        "活动编号,活动名称,活动日期,活动形式,服务类别,志愿者编号,服务时长\n\
         A1,理论宣讲进村,{today},讲,理论宣讲,001,2\n\
         A1,理论宣讲进村,{today},讲,理论宣讲,002,1.5\n"
    );
    let imported = session
        .post_file(
            "/web/import/activities?format=csv",
            Some(&csrf),
            ledger.into_bytes(),
        )
        .unwrap();
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(
        imported.body.contains("共 2 行，导入 2 行，未导入 0 行"),
        "{}",
        imported.body
    );
    assert!(imported.body.contains("写入活动 1 场"), "{}", imported.body);
    let month = civsync_node::clock::this_month().to_string();
    let activities = node.get(&format!("activities?month={month}")).unwrap();
    assert_eq!(activities.as_array().unwrap().len(), 1, "{activities}");

    // Correct a volunteer through the form the list's 更正 link opens: the
    // ID number is asked again (it is stored sealed), the rest is filled in.
    let edit = session.get("/web/volunteers?edit=001").unwrap();
    assert!(
        edit.body.contains("更正志愿者 001") && edit.body.contains("value=\"王芳\""),
        "{}",
        edit.body
    );
    let corrected = session
        .post_form(
            "/web/volunteers",
            &[
                ("correct", "1"),
                ("number", "001"),
                ("name", "王芳芳"),
                ("sex", "female"),
                ("id_number", "110105198001010016"),
                ("phone", "13800000001"),
                ("residence_area", "东村"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(corrected.status, 303, "{}", corrected.body);
    let volunteers = node.get("volunteers").unwrap();
    let first = &volunteers.as_array().unwrap()[0];
    assert_eq!(
        (first["number"].as_str(), first["name"].as_str()),
        (Some("001"), Some("王芳芳"))
    );
    assert_eq!(
        volunteers.as_array().unwrap().len(),
        2,
        "corrected, not added"
    );

    // A file that is not a spreadsheet is refused with the API's reason.
    let garbage = session
        .post_file(
            "/web/import/volunteers?format=xlsx",
            Some(&csrf),
            b"not a workbook".to_vec(),
        )
        .unwrap();
    assert!((400..500).contains(&garbage.status), "{}", garbage.body);
    assert!(
        garbage.body.contains("data-outcome=\"refused\""),
        "{}",
        garbage.body
    );
}

#[test]
fn teams_menus_themes_and_the_registry_are_kept_through_their_pages_and_a_clerk_may_not_administer()
{
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("t1"), "xh/t1", "township", None).unwrap();
    node.start().unwrap();
    add_user(&node, "li", "admin", "zhenli2026").unwrap();
    add_user(&node, "wang", "clerk", "zhenwang2026").unwrap();
    let mut admin = WebSession::new(&node);
    assert_eq!(admin.login("li", "zhenli2026").unwrap().status, 303);
    let csrf = admin.get("/web/registry").unwrap().csrf().unwrap();

    // Registry: register, a refusal beside its field, retire, un-retire.
    let registered = admin
        .post_form(
            "/web/registry",
            &[
                ("id", "xh/t1/v9"),
                ("name", "新村"),
                ("tier", "village"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(registered.status, 303, "{}", registered.body);
    let outside = admin
        .post_form(
            "/web/registry",
            &[
                ("id", "xh/t2/v1"),
                ("name", "外镇"),
                ("tier", "village"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(outside.status, 422, "{}", outside.body);
    assert!(
        outside.body.contains("data-field=\"id\""),
        "{}",
        outside.body
    );
    let stations = node.get("stations").unwrap();
    let ids: Vec<&str> = stations["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["xh/t1/v9"], "{stations}");
    let yesterday = civsync_node::clock::today()
        .previous_day()
        .unwrap()
        .to_string();
    let retired = admin
        .post_form(
            "/web/registry/retire",
            &[
                ("id", "xh/t1/v9"),
                ("retired_on", &yesterday),
                ("merged_into", ""),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(retired.status, 303, "{}", retired.body);
    assert_eq!(
        node.get("stations").unwrap()["stations"][0]["retired"]["retired_on"],
        yesterday.as_str()
    );
    let listed = admin.get("/web/registry").unwrap();
    assert!(listed.body.contains("已撤并"), "{}", listed.body);

    // The station list as a file, on the import page: one row in, one
    // outside this township refused and named by its column.
    let import_page = admin.get("/web/import").unwrap();
    assert!(
        import_page.body.contains("action=\"/web/import/stations\""),
        "{}",
        import_page.body
    );
    let list = "站点编码,站点名称\nxh/t1/v5,五村站\nxh/t2/v1,外镇村\n";
    let imported = admin
        .post_file(
            "/web/import/stations?format=csv",
            Some(&csrf),
            list.as_bytes().to_vec(),
        )
        .unwrap();
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(
        imported
            .body
            .contains("站点名录：共 2 行，导入 1 行，未导入 1 行")
            && imported
                .body
                .contains("<td class=\"num\">3</td><td data-field=\"id\">站点编码</td>"),
        "{}",
        imported.body
    );
    let five = node.get("stations").unwrap();
    assert!(
        five["stations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "xh/t1/v5" && s["name"] == "五村站" && s["tier"] == "village"),
        "{five}"
    );

    // Menu and theme.
    let item = admin
        .post_form(
            "/web/catalog/menu",
            &[
                ("name", "法律咨询"),
                ("category", "law"),
                ("provider", "镇司法所"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(item.status, 303, "{}", item.body);
    let menu = node.get("menu").unwrap();
    assert_eq!(menu["items"][0]["name"], "法律咨询", "{menu}");
    let month = civsync_node::clock::this_month().to_string();
    let theme = admin
        .post_form(
            "/web/catalog/theme",
            &[("month", &month), ("title", "移风易俗"), ("csrf", &csrf)],
        )
        .unwrap();
    assert_eq!(theme.status, 303, "{}", theme.body);
    let shown = admin.get("/web/catalog").unwrap();
    assert!(
        shown.body.contains("法律咨询") && shown.body.contains("移风易俗"),
        "{}",
        shown.body
    );

    // Teams: register, then correct through the edit form.
    let team = admin
        .post_form(
            "/web/teams",
            &[
                ("id", "T7"),
                ("name", "镇法律服务队"),
                ("category", "law"),
                ("members", ""),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(team.status, 303, "{}", team.body);
    let edit = admin.get("/web/teams?edit=T7").unwrap();
    assert!(
        edit.body.contains("更正队伍 T7") && edit.body.contains("镇法律服务队"),
        "{}",
        edit.body
    );
    let corrected = admin
        .post_form(
            "/web/teams",
            &[
                ("id", "T7"),
                ("name", "镇法律援助队"),
                ("category", "law"),
                ("members", ""),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(corrected.status, 303, "{}", corrected.body);
    let teams = node.get("teams").unwrap();
    assert_eq!(teams.as_array().unwrap().len(), 1, "{teams}");
    assert_eq!(teams[0]["name"], "镇法律援助队");

    // A clerk sees the registry's navigation entry nowhere and may not write it.
    let mut clerk = WebSession::new(&node);
    assert_eq!(clerk.login("wang", "zhenwang2026").unwrap().status, 303);
    let home = clerk.get("/web/teams").unwrap();
    assert!(!home.body.contains("/web/registry"), "{}", home.body);
    let clerk_csrf = home.csrf().unwrap();
    let refused = clerk
        .post_form(
            "/web/registry",
            &[
                ("id", "xh/t1/v8"),
                ("name", "旧村"),
                ("tier", "village"),
                ("csrf", &clerk_csrf),
            ],
        )
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    // Nor import the station list: no form, and the upload is refused.
    let clerk_import = clerk.get("/web/import").unwrap();
    assert!(
        clerk_import.body.contains("/web/import/volunteers")
            && !clerk_import.body.contains("/web/import/stations"),
        "{}",
        clerk_import.body
    );
    let refused_file = clerk
        .post_file(
            "/web/import/stations?format=csv",
            Some(&clerk_csrf),
            "站点编码,站点名称\nxh/t1/v8,旧村\n".as_bytes().to_vec(),
        )
        .unwrap();
    assert_eq!(refused_file.status, 403, "{}", refused_file.body);
    assert_eq!(
        node.get("stations").unwrap()["stations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn every_page_forbids_inline_script_and_framing() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    let mut session = WebSession::new(&node);
    assert_eq!(session.login("wang", "dongcun2026").unwrap().status, 303);
    // A month with an activity, so its row's delete form is on the page.
    let (status, recorded) = node
        .post(
            "activities",
            &json!({"name": "宣讲", "date": civsync_node::clock::today().to_string(),
                "place": "礼堂", "content": "宣讲", "form": "lecture", "category": "theory",
                "person_in_charge": "李明", "beneficiaries": 0, "records": []}),
        )
        .unwrap();
    assert_eq!(status, 201, "{recorded}");
    for path in [
        "/",
        "/web/volunteers",
        "/web/activities",
        "/web/orders",
        "/web/sync",
        "/web/import",
        "/web/teams",
        "/web/catalog",
        "/web/points",
        "/web/points?volunteer=xh%2Ft1%2Fv1%3A001",
    ] {
        let response = session
            .http
            .get(format!("{}{path}", session.base))
            .header("cookie", session.cookie.clone().unwrap())
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let policy = response
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(policy.contains("script-src 'self'"), "{path}: {policy:?}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy:?}"
        );
        let body = response.text().unwrap();
        assert!(!body.contains("<script>"), "{path} has an inline script");
        assert_eq!(
            inline_handler(&body),
            None,
            "{path} has an inline event handler"
        );
    }
}

/// The first `on…=` attribute (an inline event handler) in `html`, if any.
fn inline_handler(html: &str) -> Option<String> {
    html.match_indices(" on").find_map(|(at, _)| {
        let rest = &html[at + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        (name.len() > 2 && rest[name.len()..].starts_with('=')).then_some(name)
    })
}

#[test]
fn an_activity_is_corrected_through_its_form_and_one_the_form_cannot_hold_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    for (number, id) in [("001", "110105198001010016"), ("002", "110105199002020026")] {
        let (status, body) = node
            .post(
                "volunteers",
                &json!({"number": number, "name": format!("志愿者{number}"), "sex": "female",
                    "id_number": id, "phone": "13800000001", "residence_area": "东村"}),
            )
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let today = civsync_node::clock::today().to_string();
    let activity = |id: &str, hours: [&str; 2]| {
        json!({"id": id, "name": "宣讲", "date": today, "place": "礼堂", "content": "宣讲",
            "form": "lecture", "category": "theory", "person_in_charge": "李明",
            "beneficiaries": 30, "team": null, "records": [
                {"volunteer": "001", "hours": hours[0]}, {"volunteer": "002", "hours": hours[1]}]})
    };
    assert_eq!(
        node.post("activities", &activity("A1", ["2", "2"]))
            .unwrap()
            .0,
        201
    );
    assert_eq!(
        node.post("activities", &activity("A2", ["2", "1.5"]))
            .unwrap()
            .0,
        201
    );
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    let mut session = WebSession::new(&node);
    assert_eq!(session.login("wang", "dongcun2026").unwrap().status, 303);
    let month = civsync_node::clock::this_month().to_string();

    let edit = session
        .get(&format!("/web/activities?month={month}&edit=A1"))
        .unwrap();
    assert!(edit.body.contains("更正活动 A1"), "{}", edit.body);
    let csrf = edit.csrf().unwrap();
    let corrected = session
        .post_form(
            "/web/activities",
            &[
                ("correct", "1"),
                ("id", "A1"),
                ("team", ""),
                ("theme", ""),
                ("name", "理论宣讲进村"),
                ("date", &today),
                ("place", "礼堂"),
                ("content", "宣讲"),
                ("form", "lecture"),
                ("category", "theory"),
                ("person_in_charge", "李明"),
                ("beneficiaries", "30"),
                ("hours", "2"),
                ("volunteer", "001"),
                ("volunteer", "002"),
                ("csrf", &csrf),
            ],
        )
        .unwrap();
    assert_eq!(corrected.status, 303, "{}", corrected.body);
    let listed = node.get(&format!("activities?month={month}")).unwrap();
    let a1: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == "A1")
        .collect();
    assert_eq!(a1.len(), 1, "corrected in place: {listed}");
    assert_eq!(a1[0]["name"], "理论宣讲进村");
    assert_eq!(a1[0]["records"].as_array().unwrap().len(), 2);

    // Different hours per person: the one-hours form would flatten them.
    let refused = session
        .get(&format!("/web/activities?month={month}&edit=A2"))
        .unwrap();
    assert!(
        refused.body.contains("各人服务时长不同"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("更正活动 A2"), "{}", refused.body);
}

#[test]
fn a_clerk_deletes_a_volunteer_and_a_team_through_their_pages_and_the_audit_log_names_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let kept = node.register_volunteer(1).unwrap();
    let leaving = node.register_volunteer(2).unwrap();
    let (status, body) = node
        .post(
            "teams",
            &json!({"id": "T1", "name": "东村文艺队", "category": "culture",
                    "leader": leaving, "members": [kept, leaving]}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    add_user(&node, "wang", "clerk", "dongcun2026").unwrap();
    let mut clerk = WebSession::new(&node);
    assert_eq!(clerk.login("wang", "dongcun2026").unwrap().status, 303);

    // Each row offers a delete that asks first.
    let roster = clerk.get("/web/volunteers").unwrap();
    assert!(
        roster.body.contains("action=\"/web/volunteers/delete\"")
            && roster.body.contains("data-confirm=\"删除志愿者"),
        "{}",
        roster.body
    );
    let csrf = roster.csrf().unwrap();
    let deleted = clerk
        .post_form(
            "/web/volunteers/delete",
            &[("number", &leaving), ("csrf", &csrf)],
        )
        .unwrap();
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let numbers: Vec<String> = node
        .get("volunteers")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        numbers,
        std::slice::from_ref(&kept),
        "{leaving} is no longer listed"
    );

    // The team keeps naming its deleted leader and member, and says so.
    let teams = clerk.get("/web/teams").unwrap();
    assert!(
        teams.body.contains("action=\"/web/teams/delete\""),
        "{}",
        teams.body
    );
    assert!(
        teams
            .body
            .contains(&format!("{leaving}<span class=\"muted\">（已删除）</span>")),
        "the deleted leader is marked: {}",
        teams.body
    );
    assert!(
        teams.body.contains("1（另 1 人已删除）"),
        "one member left of two: {}",
        teams.body
    );
    let deleted = clerk
        .post_form("/web/teams/delete", &[("id", "T1"), ("csrf", &csrf)])
        .unwrap();
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(node.get("teams").unwrap(), json!([]));
    assert!(clerk
        .get("/web/teams")
        .unwrap()
        .body
        .contains("本站尚未登记队伍"));

    // An unknown team is refused on the page, naming it.
    let refused = clerk
        .post_form("/web/teams/delete", &[("id", "T9"), ("csrf", &csrf)])
        .unwrap();
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("T9"), "{}", refused.body);
    // Without the CSRF token nothing is deleted.
    let forged = clerk
        .post_form("/web/volunteers/delete", &[("number", &kept)])
        .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(node.get("volunteers").unwrap().as_array().unwrap().len(), 1);

    let audit =
        civsync_tests::civsync(&["audit", "--json", "--data-dir", node.dir.to_str().unwrap()])
            .unwrap();
    for path in ["POST /web/volunteers/delete", "POST /web/teams/delete"] {
        assert!(audit.contains(path), "{path} is in the audit log: {audit}");
    }
}
