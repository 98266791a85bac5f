//! Logging: human-readable lines by default, JSON lines with `--log-json`.
//! The level follows `RUST_LOG` (default `info`). Logs go to stderr so that
//! command output on stdout stays clean for scripts. Colours only on a
//! terminal: a service's log file (journald, `node.log`) is read as text.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,quinn=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
