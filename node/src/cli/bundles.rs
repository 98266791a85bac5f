//! `bundle export|import`: work carried on a USB stick where there is no
//! link (`api/bundles.rs`).
//!
//! Export writes one sealed file into a folder (the stick); import takes in
//! every bundle file in a folder addressed to this office, tells which are
//! for other offices, and never stops at the first refusal: one damaged
//! file must not keep the others off the node.

use super::Target;
use crate::api::bundles::{
    ExportRequest, ImportAnswer, CHANGES_HEADER, DOCUMENTS_HEADER, NAME_HEADER,
};
use crate::net::bundle_seal::{self, BUNDLE_FILE_BYTES_MAX, BUNDLE_FILE_SUFFIX};
use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};

/// Most files looked at in one folder (a stick carries a handful).
const FILES_PER_FOLDER_MAX: usize = 10_000;

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Write what STATION is missing into a folder (a USB stick), sealed so
    /// that only STATION can open it.
    Export {
        /// The station it is for, e.g. xh/t01 (your township).
        #[arg(long = "for")]
        for_station: String,
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Everything, not only what STATION has not acknowledged (when it
        /// says a bundle built on changes it does not hold).
        #[arg(long)]
        full: bool,
        /// STATION's node.crt, needed the first time only (after a bundle
        /// from STATION its certificate is kept).
        #[arg(long)]
        certificate: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Take in every bundle in a folder that is addressed to this office.
    Import {
        /// The folder (the USB stick).
        folder: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn bundle(command: BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Export {
            for_station,
            out,
            full,
            certificate,
            target,
        } => export(for_station, &out, full, certificate.as_deref(), &target).await,
        BundleCommand::Import { folder, target } => import(&folder, &target).await,
    }
}

async fn export(
    for_station: String,
    out: &Path,
    full: bool,
    certificate: Option<&Path>,
    target: &Target,
) -> anyhow::Result<()> {
    let certificate_pem = match certificate {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the certificate {}", path.display()))?,
        ),
        None => None,
    };
    let request = ExportRequest {
        for_station,
        full,
        certificate_pem,
    };
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the folder {}", out.display()))?;
    // Written under a temporary name and renamed when whole, so a stick
    // pulled out early never holds a file that looks complete.
    let partial = out.join(format!(".civsync-bundle-{}.partial", std::process::id()));
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write into {}", out.display()))?;
    let written = target
        .client()?
        .post_to_writer(
            "bundles/export",
            &request,
            &mut file,
            BUNDLE_FILE_BYTES_MAX as u64,
        )
        .await;
    let (headers, bytes) = match written {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    file.sync_all()
        .with_context(|| format!("cannot finish writing {}", partial.display()))?;
    drop(file);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let name = header(NAME_HEADER);
    if name.is_empty() || name.contains('/') || !name.ends_with(BUNDLE_FILE_SUFFIX) {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!("the node named the bundle {name:?}, which is not a bundle file name");
    }
    let path = out.join(&name);
    std::fs::rename(&partial, &path)
        .with_context(|| format!("cannot name the bundle {}", path.display()))?;
    if target.json {
        super::print_json(&serde_json::json!({
            "file": path.display().to_string(),
            "bytes": bytes,
            "documents": header(DOCUMENTS_HEADER).parse::<u64>().unwrap_or(0),
            "changes": header(CHANGES_HEADER).parse::<u64>().unwrap_or(0),
        }));
    } else {
        println!(
            "已导出 exported {} changes of {} documents for {} into {} ({bytes} bytes)",
            header(CHANGES_HEADER),
            header(DOCUMENTS_HEADER),
            request.for_station,
            path.display()
        );
    }
    Ok(())
}

/// The bundle files in `folder`, by name.
fn bundle_files(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(folder)
        .with_context(|| format!("cannot read the folder {}", folder.display()))?;
    for entry in entries.take(FILES_PER_FOLDER_MAX) {
        let path = entry?.path();
        let is_bundle = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with(BUNDLE_FILE_SUFFIX) && !name.starts_with('.'));
        if is_bundle && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

async fn import(folder: &Path, target: &Target) -> anyhow::Result<()> {
    let files = bundle_files(folder)?;
    if files.is_empty() {
        anyhow::bail!(
            "no bundle files (*{BUNDLE_FILE_SUFFIX}) in {}",
            folder.display()
        );
    }
    let station = crate::config::NodeConfig::load(&target.data_dir)
        .ok()
        .map(|config| config.station.to_string());
    let client = target.client()?;
    let mut answers = Vec::new();
    let mut failures = 0usize;
    for path in files {
        let size = std::fs::metadata(&path)?.len();
        if size > BUNDLE_FILE_BYTES_MAX as u64 {
            eprintln!(
                "{}: {size} bytes, larger than a bundle can be; skipped",
                path.display()
            );
            failures += 1;
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // Bundles for other offices share the stick; say so and go on.
        if let (Ok(address), Some(station)) = (bundle_seal::address(&bytes), station.as_deref()) {
            if address.to != station {
                println!(
                    "{}: for {} (from {}), not this office; left alone",
                    path.display(),
                    address.to,
                    address.from
                );
                continue;
            }
        }
        let answer: anyhow::Result<ImportAnswer> = client
            .post_bytes("bundles/import", &[], bytes, "application/octet-stream")
            .await;
        match answer {
            Ok(answer) => {
                if !target.json {
                    println!(
                        "{}: 已导入 from {}: {} changes in {} documents, {} unchanged, {} refused",
                        path.display(),
                        answer.from,
                        answer.changes_applied,
                        answer.documents_changed,
                        answer.documents_unchanged,
                        answer.documents_refused.len()
                    );
                    for refused in &answer.documents_refused {
                        println!("  refused {}: {}", refused.document, refused.reason);
                    }
                }
                if !answer.documents_refused.is_empty() {
                    failures += 1;
                }
                answers.push(serde_json::json!({
                    "file": path.display().to_string(),
                    "answer": answer,
                }));
            }
            Err(error) => {
                eprintln!("{}: refused: {error:#}", path.display());
                failures += 1;
            }
        }
    }
    if target.json {
        super::print_json(&serde_json::Value::Array(answers));
    }
    if failures > 0 {
        anyhow::bail!("{failures} bundle file(s) were refused in whole or in part (see above)");
    }
    Ok(())
}
