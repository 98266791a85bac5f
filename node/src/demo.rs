//! `civsync demo`: a small county on this machine, end to end.
//!
//! One county, two townships and four villages run as separate `civsync run`
//! processes talking QUIC over 127.0.0.1 with certificates from a county CA
//! made for the occasion. Villages record volunteers and activities; one
//! village's link runs through a relay that the demo cuts, so that village
//! keeps recording offline while the county's figures stand still, and the
//! figures catch up once the link heals. Ctrl-C stops every process.

use crate::cli::client::ApiClient;
use crate::config::{NodeConfig, PeerConfig};
use crate::net::local_ports::{tcp_port_is_free, udp_port_is_free, PortPicker};
use crate::net::relay::Relay;
use anyhow::{bail, Context};
use civsync_protocol::domain::input::{
    ActivityInput, HoursInput, ServiceRecordInput, TeamInput, VolunteerInput,
};
use civsync_protocol::domain::pii::with_check_digit;
use civsync_protocol::{Month, StationId, Tier};
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The demo's certificates last a year, so its status shows no expiry
/// warning (those start 30 days before the end).
const DEMO_CERTIFICATE_DAYS: u32 = 365;

/// How long the demo waits for the county to see a village's records.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a node process may take to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Stop every node when the script ends, instead of keeping the county
    /// running for the web pages until Ctrl-C (for scripts and CI).
    #[arg(long)]
    pub exit: bool,
    /// Kept for scripts written for earlier releases: the county now keeps
    /// running by default.
    #[arg(long, hide = true)]
    pub keep_running: bool,
    /// Put the nodes' data here instead of a temporary folder (kept afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Volunteers registered per village.
    #[arg(long, default_value_t = 6)]
    pub volunteers_per_village: usize,
    /// Activities recorded per village while everyone is connected.
    #[arg(long, default_value_t = 3)]
    pub activities_per_village: usize,
}

struct Office {
    station: StationId,
    tier: Tier,
    name: &'static str,
    dir: PathBuf,
    api: SocketAddr,
    quic: SocketAddr,
    process: Option<Child>,
}

const OFFICES: [(&str, Tier, &str); 7] = [
    ("xh", Tier::County, "新华区新时代文明实践中心"),
    ("xh/t1", Tier::Township, "城关镇新时代文明实践所"),
    ("xh/t2", Tier::Township, "河口镇新时代文明实践所"),
    ("xh/t1/v1", Tier::Village, "东村新时代文明实践站"),
    ("xh/t1/v2", Tier::Village, "西村新时代文明实践站"),
    ("xh/t2/v3", Tier::Village, "南湾村新时代文明实践站"),
    ("xh/t2/v4", Tier::Village, "北岭村新时代文明实践站"),
];
/// The village whose link the demo cuts.
const CUT_VILLAGE: &str = "xh/t2/v4";

const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "秀英", "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "桂兰", "建国",
];
const ACTIVITIES: [(&str, &str, &str); 5] = [
    ("党的理论宣讲进村", "lecture", "theory"),
    ("健康义诊", "help", "health"),
    ("文艺汇演", "entertain", "culture"),
    ("移风易俗倡议", "advocate", "customs_reform"),
    ("关爱留守老人", "help", "elder_care"),
];

/// Free ports for the offices' APIs and QUIC endpoints, from outside the
/// kernel's ephemeral range (`local_ports`): the relay's upstream sockets
/// and every QUIC client bind port 0, and must not take the port of an
/// office that has not started yet. Where the range leaves no room, ports
/// come from `bind(0)`, and the probe sockets stay open until every office
/// has its ports, so no two offices get one port.
struct PortProbes {
    picker: Option<PortPicker>,
    tcp: Vec<std::net::TcpListener>,
    udp: Vec<std::net::UdpSocket>,
}

impl PortProbes {
    fn new() -> PortProbes {
        PortProbes {
            picker: PortPicker::outside_ephemeral(std::process::id()),
            tcp: Vec::new(),
            udp: Vec::new(),
        }
    }

    fn tcp(&mut self) -> anyhow::Result<SocketAddr> {
        if let Some(port) = self.picker.as_mut().and_then(|p| p.pick(tcp_port_is_free)) {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = probe.local_addr()?;
        self.tcp.push(probe);
        Ok(addr)
    }

    fn udp(&mut self) -> anyhow::Result<SocketAddr> {
        if let Some(port) = self.picker.as_mut().and_then(|p| p.pick(udp_port_is_free)) {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let addr = probe.local_addr()?;
        self.udp.push(probe);
        Ok(addr)
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp;
    let root = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("civsync-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let (mut offices, relay_listen) = prepare(&root).await?;
    let relay = start_processes(&root, &mut offices, relay_listen).await;
    let outcome = match relay {
        Ok(relay) => {
            tokio::select! {
                result = script(&args, &offices, &relay) => result,
                _ = tokio::signal::ctrl_c() => { println!("\nCtrl-C: stopping the county"); Ok(()) }
            }
        }
        Err(error) => Err(error),
    };
    if outcome.is_ok() && !args.exit {
        print_web_addresses(&offices);
        println!(
            "\nThe county keeps running (data in {}). Press Ctrl-C to stop.",
            root.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    stop_all(&mut offices).await;
    if outcome.is_err() {
        println!("node logs are in {}", root.display());
        if args.dir.is_none() {
            // Keep the logs of a failed run for whoever reads the error.
            let kept =
                std::env::temp_dir().join(format!("civsync-demo-failed-{}", std::process::id()));
            let _ = std::fs::rename(&root, &kept);
            println!("(moved to {})", kept.display());
        }
    }
    outcome
}

/// CA, certificates and configuration of every office.
/// The offices, and the address of the relay in front of the cut village's
/// township (all ports distinct).
async fn prepare(root: &Path) -> anyhow::Result<(Vec<Office>, SocketAddr)> {
    let ca = root.join("county-ca");
    let county = StationId::parse("xh")?;
    crate::net::pki::init_county_ca(&ca, &county, DEMO_CERTIFICATE_DAYS)?;
    let identity = civsync_protocol::domain::pii::CountyOpenKey::generate(rand::random());
    let mut offices = Vec::new();
    let mut probes = PortProbes::new();
    for (station, tier, name) in OFFICES {
        let station = StationId::parse(station)?;
        let dir = root.join(station.as_str().replace('/', "-"));
        crate::net::pki::issue_node_certificate(
            &ca,
            &station,
            tier,
            &dir.join("pki"),
            DEMO_CERTIFICATE_DAYS,
        )?;
        // As `pki issue` does: the public ID key everywhere, the private
        // one at the county only.
        std::fs::write(
            dir.join("pki").join(crate::context::COUNTY_ID_PUBLIC_FILE),
            identity.seal_key().to_hex(),
        )?;
        if tier == Tier::County {
            crate::secrets::write_secret(
                &dir.join("pki").join(crate::context::COUNTY_ID_PRIVATE_FILE),
                identity.to_hex().as_bytes(),
            )?;
        }
        offices.push(Office {
            station,
            tier,
            name,
            dir,
            api: probes.tcp()?,
            quic: probes.udp()?,
            process: None,
        });
    }
    let relay_listen = probes.udp()?;
    Ok((offices, relay_listen))
}

async fn start_processes(
    root: &Path,
    offices: &mut [Office],
    relay_listen: SocketAddr,
) -> anyhow::Result<Relay> {
    let quic_of: BTreeMap<StationId, SocketAddr> = offices
        .iter()
        .map(|o| (o.station.clone(), o.quic))
        .collect();
    let cut = StationId::parse(CUT_VILLAGE)?;
    let cut_parent = cut.parent().context("the cut village has a parent")?;
    let relay = Relay::start(relay_listen, quic_of[&cut_parent]).await?;
    let exe = std::env::current_exe().context("cannot find the civsync executable")?;
    println!("Starting a demo county in {}:", root.display());
    for office in offices.iter_mut() {
        let mut config = NodeConfig::new(office.station.clone(), office.tier);
        config.name = office.name.to_string();
        config.api_listen = office.api;
        config.quic_listen = Some(office.quic);
        if let Some(parent) = office.station.parent() {
            let address = if office.station == cut {
                relay.listen
            } else {
                quic_of[&parent]
            };
            config.parent = Some(PeerConfig {
                station: parent,
                address,
            });
        }
        crate::node::init(&office.dir, &config)?;
        let log = std::fs::File::create(office.dir.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("run")
            .arg("--data-dir")
            .arg(&office.dir)
            .env("RUST_LOG", "info,quinn=warn,rustls=warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the node of {}", office.station))?;
        office.process = Some(child);
        println!(
            "  {:<10} {:<9} {}  api http://{}  quic {}",
            office.station,
            office.tier.chinese(),
            office.name,
            office.api,
            office.quic
        );
    }
    for office in offices.iter() {
        wait_healthy(office).await?;
    }
    Ok(relay)
}

async fn wait_healthy(office: &Office) -> anyhow::Result<()> {
    let client = self::client(office)?;
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if client.get::<Value>("node", &[]).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "the node of {} did not start within {:?}; see {}",
        office.station,
        START_TIMEOUT,
        office.dir.join("node.log").display()
    )
}

async fn stop_all(offices: &mut [Office]) {
    for office in offices.iter_mut() {
        if let Some(child) = &office.process {
            if let Some(pid) = child.id() {
                // SIGTERM: the node finishes requests and flushes its store.
                // SAFETY: kill(2) with a pid we spawned and a valid signal has no memory effects.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
    }
    for office in offices.iter_mut() {
        if let Some(mut child) = office.process.take() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
    println!("All {} nodes stopped.", offices.len());
}

fn client(office: &Office) -> anyhow::Result<ApiClient> {
    ApiClient::for_data_dir(&format!("http://{}", office.api), &office.dir)
}

fn this_month_dates() -> (Month, Vec<String>) {
    let today = crate::clock::today();
    let month = Month {
        year: today.year() as u16,
        month: u8::from(today.month()),
    };
    let days: Vec<String> = (1..=today.day())
        .map(|d| format!("{month}-{d:02}"))
        .collect();
    (month, days)
}

/// Register volunteers and a team at a village; returns volunteer numbers.
async fn seed_village(
    office: &Office,
    index: usize,
    volunteers: usize,
) -> anyhow::Result<Vec<String>> {
    let api = client(office)?;
    let mut numbers = Vec::new();
    for n in 0..volunteers {
        let seed = index * 100 + n;
        let first_17 = format!(
            "411602{:04}{:02}{:02}{:03}",
            1960 + seed % 40,
            1 + seed % 12,
            1 + seed % 28,
            seed % 1000
        );
        let input = VolunteerInput {
            name: format!(
                "{}{}",
                SURNAMES[seed % SURNAMES.len()],
                GIVEN[(seed / 3) % GIVEN.len()]
            ),
            sex: if seed.is_multiple_of(2) { "女" } else { "男" }.into(),
            id_number: with_check_digit(&first_17),
            phone: format!("1380000{:04}", seed),
            categories: vec![ACTIVITIES[seed % ACTIVITIES.len()].2.into()],
            consent: true,
            ..VolunteerInput::default()
        };
        let created: Value = api.post("volunteers", &[], &input).await?;
        numbers.push(
            created["number"]
                .as_str()
                .context("volunteer number in answer")?
                .to_string(),
        );
    }
    let team = TeamInput {
        name: format!(
            "{}志愿服务队",
            office.name.trim_end_matches("新时代文明实践站")
        ),
        category: "culture".into(),
        leader: numbers.first().cloned(),
        members: numbers.clone(),
        ..TeamInput::default()
    };
    let _: Value = api.post("teams", &[], &team).await?;
    Ok(numbers)
}

async fn record_activities(
    office: &Office,
    numbers: &[String],
    count: usize,
    salt: usize,
) -> anyhow::Result<()> {
    let api = client(office)?;
    let (_, days) = this_month_dates();
    for i in 0..count {
        let (name, form, category) = ACTIVITIES[(salt + i) % ACTIVITIES.len()];
        let records = numbers
            .iter()
            .enumerate()
            .filter(|(n, _)| (n + i + salt).is_multiple_of(2))
            .map(|(n, v)| ServiceRecordInput {
                volunteer: v.clone(),
                hours: HoursInput::Number(1.0 + ((n + i) % 4) as f64 * 0.5),
            })
            .collect();
        let input = ActivityInput {
            name: name.into(),
            date: days[(salt * 3 + i) % days.len()].clone(),
            place: "村文化广场".into(),
            content: format!("{name}，{}", office.name),
            form: form.into(),
            category: category.into(),
            person_in_charge: "站长".into(),
            beneficiaries: 20 + ((salt + i) * 7 % 60) as u32,
            records,
            ..ActivityInput::default()
        };
        let _: Value = api.post("activities", &[], &input).await?;
    }
    Ok(())
}

/// Per-village figures as the county sees them this month.
#[derive(Debug, Default, Clone, PartialEq)]
struct Row {
    volunteers: usize,
    activities: usize,
    records: usize,
    hours_centi: u64,
    beneficiaries: u64,
}

async fn county_view(
    county: &Office,
    villages: &[&Office],
) -> anyhow::Result<BTreeMap<StationId, Row>> {
    let api = client(county)?;
    let (month, _) = this_month_dates();
    let activities: Value = api
        .get(
            "activities",
            &[("month", month.to_string()), ("subtree", "true".into())],
        )
        .await?;
    let mut rows: BTreeMap<StationId, Row> = villages
        .iter()
        .map(|v| (v.station.clone(), Row::default()))
        .collect();
    for activity in activities.as_array().into_iter().flatten() {
        let Some(station) = activity["station"]
            .as_str()
            .and_then(|s| StationId::parse(s).ok())
        else {
            continue;
        };
        let row = rows.entry(station).or_default();
        row.activities += 1;
        row.beneficiaries += activity["beneficiaries"].as_u64().unwrap_or(0);
        for record in activity["records"].as_array().into_iter().flatten() {
            row.records += 1;
            row.hours_centi += (record["hours"].as_f64().unwrap_or(0.0) * 100.0).round() as u64;
        }
    }
    for village in villages {
        let volunteers: Value = api
            .get("volunteers", &[("station", village.station.to_string())])
            .await?;
        rows.entry(village.station.clone()).or_default().volunteers =
            volunteers.as_array().map_or(0, Vec::len);
    }
    Ok(rows)
}

fn print_table(title: &str, rows: &BTreeMap<StationId, Row>, offices: &[Office]) {
    println!("\n{title}");
    let header = [
        "站点",
        "名称",
        "志愿者",
        "活动",
        "服务记录",
        "服务时长(小时)",
        "受益群众",
    ];
    let widths = [10, 24, 8, 6, 10, 16, 10];
    let line = |cells: [String; 7]| {
        let mut out = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            if i < 2 {
                out.push_str(&crate::cli::columns::pad(cell, widths[i]));
            } else {
                let shown = crate::cli::columns::width(cell);
                out.push_str(&" ".repeat(widths[i].saturating_sub(shown)));
                out.push_str(cell);
            }
        }
        println!("{out}");
    };
    line(header.map(str::to_string));
    let mut total = Row::default();
    for (station, row) in rows {
        let name = offices
            .iter()
            .find(|o| &o.station == station)
            .map_or("", |o| o.name);
        line([
            station.to_string(),
            name.trim_end_matches("新时代文明实践站").to_string(),
            row.volunteers.to_string(),
            row.activities.to_string(),
            row.records.to_string(),
            format!("{:.1}", row.hours_centi as f64 / 100.0),
            row.beneficiaries.to_string(),
        ]);
        total.volunteers += row.volunteers;
        total.activities += row.activities;
        total.records += row.records;
        total.hours_centi += row.hours_centi;
        total.beneficiaries += row.beneficiaries;
    }
    line([
        "合计".to_string(),
        String::new(),
        total.volunteers.to_string(),
        total.activities.to_string(),
        total.records.to_string(),
        format!("{:.1}", total.hours_centi as f64 / 100.0),
        total.beneficiaries.to_string(),
    ]);
}

/// Poll the county until `done` holds for its view, or time out.
async fn wait_for_county(
    county: &Office,
    villages: &[&Office],
    done: impl Fn(&BTreeMap<StationId, Row>) -> bool,
) -> anyhow::Result<(BTreeMap<StationId, Row>, Duration)> {
    let started = Instant::now();
    loop {
        let view = county_view(county, villages).await?;
        if done(&view) {
            return Ok((view, started.elapsed()));
        }
        if started.elapsed() > CONVERGE_TIMEOUT {
            print_table("County view when giving up:", &view, &[]);
            bail!("the county did not receive every village's records within {CONVERGE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The county sends down a theme for the month and two menu items.
async fn publish_menu_and_theme(county: &Office, month: Month) -> anyhow::Result<()> {
    let api = client(county)?;
    let theme = serde_json::json!({"month": month.to_string(), "title": "移风易俗 树文明新风"});
    let _: Value = api.post("themes", &[], &theme).await?;
    for (id, name, category, provider) in [
        ("M1", "健康义诊", "health", "县医院志愿服务队"),
        ("M2", "政策宣讲", "theory", "县理论宣讲团"),
    ] {
        let item =
            serde_json::json!({"id": id, "name": name, "category": category, "provider": provider});
        let _: Value = api.post("menu", &[], &item).await?;
    }
    println!(
        "\nThe county sets the theme of {month} and publishes 2 service menu items (`civsync theme set`, `civsync menu add`)."
    );
    Ok(())
}

/// Waits until `village` holds the county's menu, then prints it.
async fn show_menu_arrived(village: &Office) -> anyhow::Result<()> {
    let api = client(village)?;
    let started = Instant::now();
    loop {
        let menu: Value = api.get("menu", &[]).await?;
        if menu["items"].as_array().map_or(0, Vec::len) >= 2 {
            println!(
                "\nThe menu reached {} through its township in {:.1} s (`civsync menu list` there):\n{}",
                village.station,
                started.elapsed().as_secs_f64(),
                crate::cli::tables::menu_table(&menu).trim_end()
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "the county's menu did not reach {} within 60 s",
                village.station
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The demo's login at every office (an administrator: it sees every page).
pub const DEMO_ACCOUNT: &str = "demo";
pub const DEMO_PASSWORD: &str = "civsync2026";

/// An administrator account at every office, for the web pages.
async fn add_demo_accounts(offices: &[Office]) -> anyhow::Result<()> {
    for office in offices {
        let body =
            serde_json::json!({"name": DEMO_ACCOUNT, "role": "admin", "password": DEMO_PASSWORD});
        let _: Value = client(office)?
            .post("users", &[], &body)
            .await
            .with_context(|| format!("adding the demo account at {}", office.station))?;
    }
    Ok(())
}

fn print_web_addresses(offices: &[Office]) {
    println!("\nOpen the offices' web pages (用户 {DEMO_ACCOUNT}，密码 {DEMO_PASSWORD}):");
    for office in offices {
        if office.tier == Tier::County || office.station.as_str() == "xh/t1/v1" {
            println!("  {:<28} http://{}/", office.name, office.api);
        }
    }
    println!("  (every other office too: see the addresses at the top)");
}

async fn script(args: &DemoArgs, offices: &[Office], relay: &Relay) -> anyhow::Result<()> {
    add_demo_accounts(offices).await?;
    let county = offices
        .iter()
        .find(|o| o.tier == Tier::County)
        .context("county")?;
    let villages: Vec<&Office> = offices.iter().filter(|o| o.tier == Tier::Village).collect();
    let cut = villages
        .iter()
        .find(|v| v.station.as_str() == CUT_VILLAGE)
        .context("cut village")?;

    let (month, _) = this_month_dates();
    publish_menu_and_theme(county, month).await?;
    println!(
        "\nVillages register {} volunteers each and record {} activities:",
        args.volunteers_per_village, args.activities_per_village
    );
    let mut numbers = BTreeMap::new();
    for (index, village) in villages.iter().enumerate() {
        let registered = seed_village(village, index, args.volunteers_per_village).await?;
        record_activities(village, &registered, args.activities_per_village, index).await?;
        numbers.insert(village.station.clone(), registered);
    }
    let expected = args.activities_per_village;
    let (before, took) = wait_for_county(county, &villages, |view| {
        view.values()
            .all(|row| row.activities == expected && row.volunteers == args.volunteers_per_village)
    })
    .await?;
    print_table(
        &format!(
            "County {} sees (synced in {:.1} s):",
            county.station,
            took.as_secs_f64()
        ),
        &before,
        offices,
    );

    show_menu_arrived(villages[0]).await?;

    println!(
        "\nThe link of {} is cut. It keeps recording offline: 2 more activities.",
        cut.station
    );
    relay.set_cut(true);
    record_activities(cut, &numbers[&cut.station], 2, 7).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = county_view(county, &villages).await?;
    print_table(
        "County sees while the village is offline (unchanged):",
        &during,
        offices,
    );
    if during[&cut.station].activities != expected {
        bail!("the county saw records of a village whose link was cut; the cut did not hold");
    }

    println!("\nThe link of {} comes back.", cut.station);
    relay.set_cut(false);
    let (after, took) = wait_for_county(county, &villages, |view| {
        view[&cut.station].activities == expected + 2
    })
    .await?;
    print_table(
        &format!(
            "County sees after the reconnect (caught up in {:.1} s):",
            took.as_secs_f64()
        ),
        &after,
        offices,
    );
    let standings: Value = client(county)?
        .get("standings", &[("limit", "5".to_string())])
        .await?;
    println!(
        "\nCounty volunteer standings (`civsync volunteer standing --limit 5`):\n{}",
        crate::cli::tables::standings_table(&standings).trim_end()
    );
    let status: Value = client(county)?.get("status", &[]).await?;
    println!(
        "\nCounty sync status (`civsync status`):\n{}",
        crate::cli::tables::status_table(&status)
    );
    Ok(())
}
