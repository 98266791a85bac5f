//! The office pages that drive a workflow, through their forms as a browser
//! posts them (session cookie, CSRF token), against a real `civsync run`:
//! a citizen's order from placed to rated, and the sync-status page.

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
