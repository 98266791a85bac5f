//! The node's health: can it do its job? `GET health` answers anyone with a
//! status word only (`ok`, `warning`, `failing`) and 200, or 503 when
//! failing; the details (store write round trip and its latency, disk space
//! left in the data directory, days left on the certificate, peers
//! reachable and last heard) are in `GET status` and `civsync status`,
//! which need a login or the token.
//!
//! Failing (503): the store does not take a durable write, the data
//! directory's disk has less than `DISK_FREE_FAILING_BYTES` left, or the
//! certificate has ended. Warning (200): less than
//! `DISK_FREE_WARNING_BYTES` left, the certificate ends within 30 days, the
//! disk space cannot be read, or no configured peer is connected (a village
//! works offline; that is not a failure).

use super::common::*;
use crate::context::NodeContext;
use crate::store::WriteProbe;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::path::Path;

/// Below this much free space in the data directory the node fails: a
/// write could not be made durable, or sled could not compact.
pub const DISK_FREE_FAILING_BYTES: u64 = 256 * 1024 * 1024;
/// Below this much free space the node warns.
pub const DISK_FREE_WARNING_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthWord {
    Ok,
    Warning,
    Failing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerHealth {
    pub station: String,
    pub connected: bool,
    /// Unix ms of the last bytes received from it.
    pub last_heard_unix_ms: Option<u64>,
}

/// What `GET status` carries under `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: HealthWord,
    /// One sentence per problem, worst first.
    pub problems: Vec<String>,
    pub store: WriteProbe,
    /// Absent when it could not be read.
    pub disk: Option<DiskSpace>,
    pub certificate_expires_in_days: Option<i64>,
    pub peers: Vec<PeerHealth>,
}

/// Judge what was measured (pure).
pub fn judge(
    store: WriteProbe,
    disk: Option<DiskSpace>,
    certificate_expires_in_days: Option<i64>,
    peers: Vec<PeerHealth>,
) -> Health {
    let mut failing = Vec::new();
    let mut warnings = Vec::new();
    if !store.writable {
        failing.push(format!(
            "the store does not take a durable write: {}",
            store.error.as_deref().unwrap_or("unknown reason")
        ));
    }
    match &disk {
        Some(disk) if disk.free_bytes < DISK_FREE_FAILING_BYTES => failing.push(format!(
            "the data directory's disk is nearly full: {} MiB left (at least {} MiB needed)",
            disk.free_bytes / (1024 * 1024),
            DISK_FREE_FAILING_BYTES / (1024 * 1024)
        )),
        Some(disk) if disk.free_bytes < DISK_FREE_WARNING_BYTES => warnings.push(format!(
            "the data directory's disk is filling up: {} MiB left",
            disk.free_bytes / (1024 * 1024)
        )),
        Some(_) => {}
        None => warnings.push("the free space of the data directory's disk cannot be read".into()),
    }
    match certificate_expires_in_days {
        Some(days) if days < 0 => failing.push(format!(
            "the certificate ended {} days ago: no peer accepts this node; renew it (civsync pki renew)",
            -days
        )),
        Some(days) if days <= crate::net::pki::EXPIRY_WARNING_DAYS => warnings.push(format!(
            "the certificate ends in {days} days; renew it (civsync pki renew)"
        )),
        _ => {}
    }
    if !peers.is_empty() && !peers.iter().any(|peer| peer.connected) {
        warnings.push("no peer is connected now; records wait here until one is".into());
    }
    let status = if !failing.is_empty() {
        HealthWord::Failing
    } else if !warnings.is_empty() {
        HealthWord::Warning
    } else {
        HealthWord::Ok
    };
    failing.extend(warnings);
    Health {
        status,
        problems: failing,
        store,
        disk,
        certificate_expires_in_days,
        peers,
    }
}

/// Free and total bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> Option<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid,
    // writable statvfs that outlives the call.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if result != 0 {
        return None;
    }
    let fragment = stat.f_frsize as u64;
    Some(DiskSpace {
        free_bytes: (stat.f_bavail as u64).saturating_mul(fragment),
        total_bytes: (stat.f_blocks as u64).saturating_mul(fragment),
    })
}

/// Measure and judge this node's health.
pub async fn health_of(ctx: &NodeContext) -> Health {
    let store = ctx.store.probe_write().await;
    let data_dir = ctx.data_dir.clone();
    let disk = tokio::task::spawn_blocking(move || disk_space(&data_dir))
        .await
        .ok()
        .flatten();
    let now_unix_s = i64::try_from(crate::clock::now_ms() / 1_000).unwrap_or(i64::MAX);
    let certificate_days = ctx.certificate.as_ref().map(|certificate| {
        crate::net::pki::certificate_expiry(now_unix_s, certificate.not_after_unix_s).0
    });
    let peers = ctx
        .peers
        .snapshot()
        .into_iter()
        .map(|peer| PeerHealth {
            station: peer.station.to_string(),
            connected: peer.connected,
            last_heard_unix_ms: peer.last_seen_unix_ms,
        })
        .collect();
    judge(store, disk, certificate_days, peers)
}

/// The HTTP status for a health word: 503 only when failing.
pub fn http_status(word: HealthWord) -> StatusCode {
    match word {
        HealthWord::Failing => StatusCode::SERVICE_UNAVAILABLE,
        HealthWord::Ok | HealthWord::Warning => StatusCode::OK,
    }
}

#[derive(Serialize)]
struct HealthWordOnly {
    status: HealthWord,
}

/// `GET health`: anyone may ask; the word only.
pub async fn health(State(ctx): Ctx) -> Response {
    let health = health_of(&ctx).await;
    (
        http_status(health.status),
        [(header::CACHE_CONTROL, "no-store")],
        Json(HealthWordOnly {
            status: health.status,
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_api::TestApi;
    use civsync_protocol::Tier;

    fn writable() -> WriteProbe {
        WriteProbe {
            writable: true,
            latency_ms: 3,
            error: None,
        }
    }

    fn roomy() -> Option<DiskSpace> {
        Some(DiskSpace {
            free_bytes: 50 * 1024 * 1024 * 1024,
            total_bytes: 100 * 1024 * 1024 * 1024,
        })
    }

    fn peer(connected: bool) -> PeerHealth {
        PeerHealth {
            station: "xh/t1".into(),
            connected,
            last_heard_unix_ms: Some(1),
        }
    }

    #[test]
    fn a_node_with_room_a_writable_store_and_a_valid_certificate_is_ok() {
        let health = judge(writable(), roomy(), Some(400), vec![peer(true)]);
        assert_eq!(health.status, HealthWord::Ok, "{:?}", health.problems);
        assert_eq!(http_status(health.status), StatusCode::OK);
    }

    #[test]
    fn each_condition_that_stops_the_node_is_a_503_naming_it() {
        let unwritable = WriteProbe {
            writable: false,
            latency_ms: 5_000,
            error: Some("no answer within 5000 ms".into()),
        };
        let full = Some(DiskSpace {
            free_bytes: 10 * 1024 * 1024,
            total_bytes: 100 * 1024 * 1024 * 1024,
        });
        let cases = [
            (judge(unwritable, roomy(), Some(400), vec![]), "store"),
            (judge(writable(), full, Some(400), vec![]), "nearly full"),
            (
                judge(writable(), roomy(), Some(-2), vec![]),
                "ended 2 days ago",
            ),
        ];
        for (health, named) in cases {
            assert_eq!(health.status, HealthWord::Failing);
            assert_eq!(http_status(health.status), StatusCode::SERVICE_UNAVAILABLE);
            assert!(health.problems[0].contains(named), "{:?}", health.problems);
        }
    }

    #[test]
    fn what_the_office_should_act_on_soon_is_a_warning_not_a_failure() {
        let filling = Some(DiskSpace {
            free_bytes: 1024 * 1024 * 1024,
            total_bytes: 100 * 1024 * 1024 * 1024,
        });
        let cases = [
            judge(writable(), filling, Some(400), vec![]),
            judge(writable(), roomy(), Some(10), vec![]),
            judge(writable(), roomy(), Some(400), vec![peer(false)]),
            judge(writable(), None, Some(400), vec![]),
        ];
        for health in cases {
            assert_eq!(health.status, HealthWord::Warning, "{:?}", health.problems);
            assert_eq!(http_status(health.status), StatusCode::OK);
        }
    }

    #[test]
    fn the_data_directorys_disk_space_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk_space(dir.path()).expect("statvfs of a temporary folder");
        assert!(disk.total_bytes > 0 && disk.free_bytes <= disk.total_bytes);
        assert!(disk_space(&dir.path().join("missing")).is_none());
    }

    #[tokio::test]
    async fn health_answers_200_then_503_once_the_store_no_longer_takes_writes() {
        let api = TestApi::start("xh/t1/v1", Tier::Village).await;
        let response = api.http.get(api.url("health")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["status"] == "ok" || body["status"] == "warning",
            "{body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 1, "the word only: {body}");

        api.ctx.store.close().await;
        tokio::time::sleep(std::time::Duration::from_millis(
            crate::store::PROBE_EVERY_MS + 100,
        ))
        .await;
        let response = api.http.get(api.url("health")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 503);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"status": "failing"}));
        let health = health_of(&api.ctx).await;
        assert!(!health.store.writable);
        assert!(
            health.problems[0].contains("store"),
            "{:?}",
            health.problems
        );
    }
}
