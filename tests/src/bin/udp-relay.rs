//! A stand-alone impairing UDP relay for the network fault tests: the
//! node's relay (`civsync_node::net::relay::Relay`) as a process, so it can run
//! inside a network namespace.
//!
//! `udp-relay --listen ADDR --upstream ADDR [--loss F] [--delay-ms N]
//! [--jitter-ms N] [--duplicate F]`; runs until killed. On SIGTERM or
//! SIGINT it prints what it relayed each way (`relayed up <bytes> B
//! <datagrams> datagrams, down <bytes> B <datagrams> datagrams`) and exits,
//! so a script can count the bytes a link carried.

use civsync_node::net::relay::{Impairment, Relay, Traffic, DELAY_MAX};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Default)]
struct Options {
    listen: Option<SocketAddr>,
    upstream: Option<SocketAddr>,
    impairment: Impairment,
}

fn share(text: &str, flag: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{flag}: {text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{flag}: {value} is outside 0.0–1.0"))
    }
}

fn millis(text: &str, flag: &str) -> Result<Duration, String> {
    let value: u64 = text
        .parse()
        .map_err(|_| format!("{flag}: {text:?} is not a whole number of ms"))?;
    let delay = Duration::from_millis(value);
    if delay <= DELAY_MAX {
        Ok(delay)
    } else {
        Err(format!(
            "{flag}: {value} ms is above the relay's limit of {DELAY_MAX:?}"
        ))
    }
}

fn parse(arguments: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut rest = arguments.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let address = |v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|_| format!("{flag}: {v:?} is not an address"))
        };
        match flag.as_str() {
            "--listen" => options.listen = Some(address(value)?),
            "--upstream" => options.upstream = Some(address(value)?),
            "--loss" => options.impairment.loss = share(value, flag)?,
            "--duplicate" => options.impairment.duplicate = share(value, flag)?,
            "--delay-ms" => options.impairment.delay = millis(value, flag)?,
            "--jitter-ms" => options.impairment.jitter = millis(value, flag)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&arguments) {
        Ok(Options {
            listen: Some(listen),
            upstream: Some(upstream),
            impairment,
        }) => (listen, upstream, impairment),
        Ok(_) => {
            eprintln!("udp-relay: --listen and --upstream are required");
            std::process::exit(2)
        }
        Err(reason) => {
            eprintln!("udp-relay: {reason}");
            std::process::exit(2)
        }
    };
    let (listen, upstream, impairment) = options;
    let relay = match Relay::start(listen, upstream).await {
        Ok(relay) => relay,
        Err(error) => {
            eprintln!("udp-relay: cannot listen on {listen}: {error}");
            std::process::exit(1)
        }
    };
    relay.set(impairment.clone());
    println!(
        "relaying {} -> {upstream} with {impairment:?}",
        relay.listen
    );
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("udp-relay: cannot watch for SIGTERM: {error}");
                std::process::exit(1)
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("{}", traffic_line(&relay.traffic()));
}

fn traffic_line(traffic: &Traffic) -> String {
    format!(
        "relayed up {} B {} datagrams, down {} B {} datagrams",
        traffic.up_bytes, traffic.up_datagrams, traffic.down_bytes, traffic.down_datagrams
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_traffic_line_names_both_directions() {
        let traffic = Traffic {
            up_bytes: 1200,
            up_datagrams: 3,
            down_bytes: 45,
            down_datagrams: 1,
        };
        assert_eq!(
            traffic_line(&traffic),
            "relayed up 1200 B 3 datagrams, down 45 B 1 datagrams"
        );
    }

    #[test]
    fn parses_every_flag_and_refuses_bad_values() {
        let options = parse(&args(
            "--listen 127.0.0.1:1 --upstream 127.0.0.1:2 --loss 0.05 --delay-ms 20 --jitter-ms 30 --duplicate 0.02",
        ))
        .unwrap();
        assert_eq!(options.impairment.loss, 0.05);
        assert_eq!(options.impairment.delay, Duration::from_millis(20));
        assert_eq!(options.impairment.jitter, Duration::from_millis(30));
        assert_eq!(options.impairment.duplicate, 0.02);
        assert!(parse(&args("--loss 1.5")).unwrap_err().contains("outside"));
        assert!(parse(&args("--delay-ms 99999999"))
            .unwrap_err()
            .contains("limit"));
        assert!(parse(&args("--listen nowhere"))
            .unwrap_err()
            .contains("not an address"));
        assert!(parse(&args("--loss"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(&args("--colour red"))
            .unwrap_err()
            .contains("unknown flag"));
    }
}
