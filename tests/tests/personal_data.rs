//! Personal values stay out of a node's log and off the command line:
//! refusals that echo a phone number or an ID number to the clerk are
//! logged without them, and `civsync volunteer add` takes the ID number
//! from standard input, refusing it as an argument.

use civsync_tests::{civsync_binary, id_number, TestNode};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// Run `civsync` with `args` and `stdin`; (exit code, stdout, stderr).
fn run_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(civsync_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The log's text without terminal colour codes (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for inner in chars.by_ref() {
                if inner == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn refused_phone_and_id_numbers_are_answered_to_the_clerk_but_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();

    let phone = "1380013800099999999";
    let (status, body) = node
        .post(
            "volunteers",
            &json!({"name": "张三丰", "sex": "男", "id_number": id_number(7), "phone": phone}),
        )
        .unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "phone");
    // The clerk is told what was wrong with what they sent.
    assert!(
        body["error"]["reason"].as_str().unwrap().contains(phone),
        "{body}"
    );

    // An ID number sent as a JSON number: serde's answer quotes it.
    let id_digits = "110105194912310021";
    let (status, body) = node
        .post_raw(
            "volunteers",
            format!(r#"{{"name":"李四","sex":"男","id_number":{id_digits}}}"#).into_bytes(),
        )
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains(id_digits),
        "{body}"
    );

    // A valid ID number is registered (and nothing of it logged); the same
    // number with a wrong check character is refused.
    let registered = id_number(8);
    let volunteer = json!({"name": "王五", "sex": "男", "id_number": registered});
    assert_eq!(node.post("volunteers", &volunteer).unwrap().0, 201);
    let last = registered.chars().last().unwrap();
    let wrong_check = match last {
        'X' => '0',
        digit => char::from_digit((digit.to_digit(10).unwrap() + 1) % 10, 10).unwrap(),
    };
    let miswritten = format!("{}{wrong_check}", &registered[..17]);
    let (status, body) = node
        .post(
            "volunteers",
            &json!({"name": "王五", "sex": "男", "id_number": miswritten}),
        )
        .unwrap();
    assert_eq!(status, 422, "{body}");

    node.stop().unwrap();
    let log = without_colours(&node.log());
    // The refusals were logged (by field and kind)...
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("request refused"))
        .collect();
    assert_eq!(refusals.len(), 3, "{log}");
    assert!(refusals[0].contains("field=phone"), "{log}");
    assert!(refusals[0].contains("is not a phone number"), "{log}");
    assert!(refusals[1].contains("field=id_number"), "{log}");
    assert!(refusals[2].contains("field=id_number"), "{log}");
    // ...without the values.
    for value in [
        phone,
        "13800138000",
        id_digits,
        registered.as_str(),
        miswritten.as_str(),
        "张三丰",
        "李四",
        "王五",
    ] {
        assert!(
            !log.contains(value),
            "{value:?} appears in the node's log:\n{log}"
        );
    }
}

#[test]
fn volunteer_add_reads_the_id_number_from_stdin_and_refuses_it_as_an_argument() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(&dir.path().join("v1"), "xh/t1/v1", "village", None).unwrap();
    node.start().unwrap();
    let data_dir = node.dir.to_string_lossy().into_owned();

    let first = id_number(11);
    let (code, stdout, stderr) = run_with_stdin(
        &[
            "volunteer",
            "add",
            "--name",
            "张伟",
            "--sex",
            "男",
            "--id-number-stdin",
            "-d",
            &data_dir,
        ],
        &format!("{first}\n"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Piped input is read without the flag too (a script need not say so).
    let second = id_number(12);
    let (code, stdout, stderr) = run_with_stdin(
        &[
            "volunteer",
            "add",
            "--name",
            "李娜",
            "--sex",
            "女",
            "-d",
            &data_dir,
        ],
        &second,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");

    // The argument form is refused, says how to do it instead, and does not
    // repeat the number.
    let third = id_number(13);
    let (code, stdout, stderr) = run_with_stdin(
        &[
            "volunteer",
            "add",
            "--name",
            "赵敏",
            "--sex",
            "女",
            "--id-number",
            &third,
            "-d",
            &data_dir,
        ],
        "",
    );
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("--id-number is refused"), "{stderr}");
    assert!(stderr.contains("--id-number-stdin"), "{stderr}");
    assert!(
        !stderr.contains(&third) && !stdout.contains(&third),
        "{stderr}"
    );

    let volunteers = node.get("volunteers").unwrap();
    let names: Vec<&str> = volunteers
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{volunteers}");
    assert!(
        names.contains(&"张伟") && names.contains(&"李娜"),
        "{volunteers}"
    );
    let masked: Vec<&str> = volunteers
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id_masked"].as_str().unwrap())
        .collect();
    assert!(
        masked.contains(&format!("{}************", &first[..6]).as_str()),
        "{volunteers}"
    );
    node.stop().unwrap();
}
