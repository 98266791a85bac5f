//! The office web app in a real browser: headless Chromium driven over
//! WebDriver (chromedriver) against real `civsync run` processes of a
//! county, a township and a village that sync over QUIC.
//!
//! A village clerk logs in, is told beside the field that an ID number's
//! check digit is wrong, registers the volunteer, records an activity and
//! sees it in the month. After sync the county sees the village in its
//! stations table as heard from today; the township approves the village's
//! month; the county downloads the monthly XLSX report, which is read back.
//! Five wrong passwords lock an account.
//!
//! Without Chromium and chromedriver (Debian: `chromium`,
//! `chromium-driver`) the test says SKIPPED on stderr and passes; CI
//! installs both. With `CIVSYNC_SCREENSHOTS=<dir>` it saves the pages the
//! README shows.

use civsync_tests::web::add_user;
use civsync_tests::{free_tcp_addr, id_number, pki_init, pki_issue, wait_until, TestNode};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking harness call from inside the async test.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn certified(
    root: &Path,
    ca: &Path,
    station: &str,
    tier: &str,
    parent: Option<std::net::SocketAddr>,
) -> TestNode {
    let node =
        TestNode::init(&root.join(station.replace('/', "-")), station, tier, parent).unwrap();
    pki_issue(ca, &node, tier).unwrap();
    node
}

async fn browser(port: u16) -> Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=zh-CN",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last_error = String::new();
    for _ in 0..50 {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return client,
            Err(error) => last_error = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start a browser: {last_error}");
}

async fn log_in(browser: &Client, node: &TestNode, name: &str, password: &str) {
    browser.delete_all_cookies().await.unwrap();
    browser
        .goto(&format!("http://{}/login", node.api))
        .await
        .unwrap();
    browser
        .find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    submit(browser, "#login").await;
}

/// The element `css` selects, waited for; else a panic showing the page.
async fn element(browser: &Client, css: &str) -> fantoccini::elements::Element {
    let waited = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    match waited {
        Ok(element) => element,
        Err(error) => {
            // Say what the page showed instead.
            let shown = match browser.find(Locator::Css("main")).await {
                Ok(main) => main.text().await.unwrap_or_default(),
                Err(_) => browser.source().await.unwrap_or_default(),
            };
            let url = browser
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            panic!("{css}: {error}\nthe page at {url} showed:\n{shown}")
        }
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    element(browser, css).await.text().await.unwrap()
}

/// Click a form's submit button and wait until the browser has left the
/// page (the button is gone), so the next step reads the answer, never the
/// page the form was on.
async fn submit(browser: &Client, css: &str) {
    let button = element(browser, css).await;
    button.click().await.unwrap();
    for _ in 0..100 {
        if button.is_displayed().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("submitting with {css} did not leave the page within 10 s");
}

async fn fill(browser: &Client, name: &str, value: &str) {
    let field = browser
        .find(Locator::Css(&format!("[name='{name}']")))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn screenshot(browser: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("CIVSYNC_SCREENSHOTS") {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(PathBuf::from(dir).join(name), png).unwrap();
    }
}

#[test]
fn a_clerk_records_in_the_browser_and_the_county_sees_approves_and_downloads_it() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("SKIPPED: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver); the browser test did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    pki_init(&ca, "xh").unwrap();
    let mut county = certified(dir.path(), &ca, "xh", "county", None);
    county.start().unwrap();
    let mut township = certified(dir.path(), &ca, "xh/t1", "township", Some(county.quic));
    township.start().unwrap();
    let mut village = certified(dir.path(), &ca, "xh/t1/v1", "village", Some(township.quic));
    village.start().unwrap();
    add_user(&village, "clerk", "clerk", "dongcun2026").unwrap();
    add_user(&township, "approver", "approver", "chengguan1").unwrap();
    add_user(&county, "admin", "admin", "xinhua2026").unwrap();

    let port = free_tcp_addr().port();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The harness's HTTP client blocks: it runs on this runtime's workers
    // only inside `block_in_place`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let browser = browser(port).await;

        // The village clerk logs in and lands on the home page.
        log_in(&browser, &village, "clerk", "dongcun2026").await;
        assert!(text_of(&browser, "main h1").await.contains("首页"));

        // A wrong check digit: the error is beside the ID number field.
        browser
            .goto(&format!("http://{}/web/volunteers", village.api))
            .await
            .unwrap();
        let good = id_number(11);
        let last = good.chars().last().unwrap();
        let wrong = format!("{}{}", &good[..17], if last == '0' { '1' } else { '0' });
        fill(&browser, "name", "王芳").await;
        fill(&browser, "id_number", &wrong).await;
        fill(&browser, "phone", "13800138000").await;
        fill(&browser, "residence_area", "东村").await;
        submit(&browser, "#register").await;
        let error = text_of(&browser, "span.error[data-field='id_number']").await;
        assert!(
            !error.is_empty(),
            "the refusal is shown beside the ID number"
        );
        assert_eq!(
            blocking(|| village.get("volunteers"))
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            0
        );
        // The form kept what was typed; correct the number and register.
        fill(&browser, "id_number", &good).await;
        submit(&browser, "#register").await;
        assert!(text_of(&browser, "#notice").await.contains("已登记志愿者"));
        let roster = browser
            .find(Locator::Id("volunteers"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(roster.contains("王芳"), "{roster}");

        // Record an activity with the volunteer ticked, and see it in the month.
        browser
            .goto(&format!("http://{}/web/activities", village.api))
            .await
            .unwrap();
        fill(&browser, "name", "重阳敬老理论宣讲").await;
        fill(&browser, "place", "东村文化礼堂").await;
        fill(&browser, "person_in_charge", "李明").await;
        fill(&browser, "hours", "2.5").await;
        fill(&browser, "content", "为老人讲解惠老政策").await;
        fill(&browser, "beneficiaries", "40").await;
        browser
            .find(Locator::Css("input[name='volunteer']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        screenshot(&browser, "village-activity-form.png").await;
        submit(&browser, "#record").await;
        assert!(text_of(&browser, "#notice").await.contains("已登记活动"));
        let month = text_of(&browser, "#activities").await;
        assert!(
            month.contains("重阳敬老理论宣讲") && month.contains("王芳 2.5h"),
            "{month}"
        );

        // The volunteer's service certificate, printable, with its code.
        let number = blocking(|| village.get("volunteers")).unwrap()[0]["number"]
            .as_str()
            .unwrap()
            .to_string();
        browser
            .goto(&format!(
                "http://{}/web/certificates/{number}?station=xh/t1/v1",
                village.api
            ))
            .await
            .unwrap();
        let code = text_of(&browser, "#verification-code").await;
        assert_eq!(code.len(), 19, "a four-group code: {code}");
        let page = text_of(&browser, "#certificate").await;
        assert!(page.contains("王芳") && page.contains("2.5"), "{page}");
        assert!(
            browser.find(Locator::Css("#certificate svg")).await.is_ok(),
            "the QR code is drawn"
        );
        screenshot(&browser, "service-certificate.png").await;

        // A roster file through the import page: the page's own script sends
        // it (CSRF header, progress bar) and shows the per-row report.
        let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::fs::write(
            file.path(),
            "编号,姓名,性别,身份证号,手机\n101,李强,男,110105199002020026,13800000002\n102,赵六,男,110105199002020027,13800000003\n",
        )
        .unwrap();
        browser
            .goto(&format!("http://{}/web/import", village.api))
            .await
            .unwrap();
        element(&browser, "form[data-report='roster-report'] input[type='file']")
            .await
            .send_keys(&file.path().display().to_string())
            .await
            .unwrap();
        element(&browser, "form[data-report='roster-report'] button[type='submit']")
            .await
            .click()
            .await
            .unwrap();
        let report = text_of(&browser, "#roster-report p[data-outcome='imported']").await;
        assert!(report.contains("共 2 行，导入 1 行，未导入 1 行"), "{report}");
        let refused = text_of(&browser, "#refused-rows").await;
        assert!(refused.contains("身份证号"), "{refused}");
        screenshot(&browser, "village-import.png").await;

        // Sync carries it to the county.
        let this_month = civsync_node::clock::this_month().to_string();
        blocking(|| {
            wait_until(SYNC_TIMEOUT, || {
                let stats = county
                    .get(&format!("stats?month={this_month}"))
                    .map_err(|e| e.to_string())?;
                match stats["totals"]["activities"].as_u64() {
                    Some(n) if n >= 1 => Ok(()),
                    _ => Err(format!(
                        "the county has no activity yet: {}",
                        stats["totals"]
                    )),
                }
            })
        })
        .unwrap();

        // The county's stations table: the village, heard from today.
        log_in(&browser, &county, "admin", "xinhua2026").await;
        browser
            .goto(&format!("http://{}/web/stations", county.api))
            .await
            .unwrap();
        let row = text_of(&browser, "tr[data-station='xh/t1/v1'] td.last-heard").await;
        assert!(
            row.contains("刚刚") || row.contains("分钟前"),
            "last heard: {row}"
        );
        let today =
            civsync_protocol::domain::model::date_format::format(civsync_node::clock::today());
        assert!(
            row.contains(&today),
            "the Beijing date of today is shown: {row}"
        );
        screenshot(&browser, "county-dashboard.png").await;

        // The township approves the village's month.
        log_in(&browser, &township, "approver", "chengguan1").await;
        blocking(|| {
            wait_until(SYNC_TIMEOUT, || {
                let listed = township
                    .get(&format!("approvals?month={this_month}"))
                    .map_err(|e| e.to_string())?;
                let has = listed.as_array().into_iter().flatten().any(|r| {
                    r["station"] == "xh/t1/v1"
                        && r["current"]["counts"]["activities"].as_u64() >= Some(1)
                });
                if has {
                    Ok(())
                } else {
                    Err(format!("the township lacks the village's month: {listed}"))
                }
            })
        })
        .unwrap();
        browser
            .goto(&format!("http://{}/web/approvals", township.api))
            .await
            .unwrap();
        submit(&browser, "button[data-approve='xh/t1/v1']").await;
        let notice = text_of(&browser, "p.notice").await;
        assert!(notice.contains("已审核通过"), "{notice}");
        let state = text_of(&browser, "tr[data-station='xh/t1/v1'] td.state").await;
        assert_eq!(state, "已审核");

        // The county downloads the monthly report as XLSX and reads it back.
        log_in(&browser, &county, "admin", "xinhua2026").await;
        browser
            .goto(&format!("http://{}/web/reports", county.api))
            .await
            .unwrap();
        let href = element(&browser, "#download-xlsx")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        let cookie = browser
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == "civsync_session")
            .expect("the session cookie");
        let url = format!("http://{}{href}", county.api);
        let xlsx = tokio::task::spawn_blocking(move || {
            reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(url)
                .header("cookie", format!("civsync_session={}", cookie.value()))
                .send()
                .unwrap()
                .bytes()
                .unwrap()
        })
        .await
        .unwrap();
        use calamine::Reader;
        let mut workbook: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.to_vec()))
                .expect("an XLSX file");
        let sheet = workbook.worksheet_range_at(0).expect("a sheet").unwrap();
        let village_row = sheet
            .rows()
            .find(|row| row.iter().any(|cell| *cell == "xh/t1/v1"))
            .map(|row| row.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        let village_row = village_row.expect("the village has a row in the county's report");
        assert!(
            village_row.iter().any(|c| c == "2.5"),
            "its 2.5 hours: {village_row:?}"
        );

        // Five wrong passwords lock the county's account, in the browser too.
        for _ in 0..5 {
            log_in(&browser, &county, "admin", "wrong-guess-1").await;
        }
        log_in(&browser, &county, "admin", "xinhua2026").await;
        let refusal = text_of(&browser, "#login-error").await;
        assert!(refusal.contains("锁定"), "{refusal}");

        browser.close().await.unwrap();
    });
}
