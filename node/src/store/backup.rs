//! Backups of a node: one file holding every sled tree of the store,
//! written by the store's owner thread in one pass (no write interleaves),
//! and the data directory's configuration — with the keys only when asked.
//!
//! Format (version [`FORMAT_VERSION`]): `MAGIC`, the version (u32 BE), the
//! header (u32 BE length + JSON [`BackupHeader`]), then records — `F` a file
//! (u16 name length, name, u32 length, bytes), `T` a tree (u16 name length,
//! name), `E` an entry of the last tree (u32 key length, key, u32 value
//! length, value), `Z` the end (u64 count of `E` records) — and last the
//! SHA-256 of every byte before it. Every length is bounded on both sides.
//!
//! [`restore`] reads the file twice: first the version and the checksum
//! over the whole file (nothing is written before both pass), then the
//! records, into a new folder beside the target that is renamed into place
//! only when complete; the restored store always takes a new incarnation.

use super::{SledStorage, TREE_NAME};
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 15] = b"CIVSYNC-BACKUP\0";
pub const FORMAT_VERSION: u32 = 1;
/// A backup larger than this is refused on writing and on reading.
pub const BACKUP_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;
pub const HEADER_BYTES_MAX: u32 = 64 * 1024;
pub const FILE_BYTES_MAX: u32 = 1024 * 1024;
pub const NAME_BYTES_MAX: u16 = 200;
pub const KEY_BYTES_MAX: u32 = 64 * 1024;
pub const VALUE_BYTES_MAX: u32 = 512 * 1024 * 1024;
pub const FILES_MAX: usize = 64;
const CHECKSUM_BYTES: u64 = 32;

/// What the file says about itself, readable before anything is restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupHeader {
    pub station: String,
    pub tier: String,
    pub created_at_ms: u64,
    pub node_version: String,
    /// The node key, certificates, county ID keys, the API token and the
    /// web accounts are inside.
    pub with_keys: bool,
    /// A sentence for whoever restores it.
    pub note: String,
}

/// What a written or restored backup holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupSummary {
    pub bytes: u64,
    /// Hex SHA-256 of the content (the file's last 32 bytes).
    pub sha256: String,
    pub trees: usize,
    pub entries: u64,
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the store could not be read: {0}")]
    Store(String),
    #[error("the backup would pass {BACKUP_BYTES_MAX} bytes")]
    TooLarge,
    #[error("not a civsync backup (its first bytes are not the backup mark)")]
    NotABackup,
    #[error("backup format version {found}; this civsync reads up to {FORMAT_VERSION}: restore it with a newer civsync")]
    TooNew { found: u32 },
    #[error("the checksum does not match: the file is damaged or incomplete (expected {expected}, computed {computed}); nothing was written")]
    Checksum { expected: String, computed: String },
    #[error("the backup is malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    Target(String),
}

/// A writer that hashes and counts what passes through, and stops at the
/// size bound.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.written + bytes.len() as u64 > BACKUP_BYTES_MAX - CHECKSUM_BYTES {
            return Err(std::io::Error::other(BackupError::TooLarge.to_string()));
        }
        let n = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn put_name(out: &mut impl Write, name: &[u8]) -> Result<(), BackupError> {
    let length = u16::try_from(name.len())
        .ok()
        .filter(|n| *n <= NAME_BYTES_MAX)
        .ok_or_else(|| BackupError::Malformed(format!("a name of {} bytes", name.len())))?;
    out.write_all(&length.to_be_bytes())?;
    out.write_all(name)?;
    Ok(())
}

fn put_bytes(out: &mut impl Write, bytes: &[u8], max: u32) -> Result<(), BackupError> {
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|n| *n <= max)
        .ok_or(BackupError::TooLarge)?;
    out.write_all(&length.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

/// Is `name` a file name a backup may carry: `a`, or `a/b`, each part of
/// letters, digits, `.`, `_`, `-`, not starting with a dot.
pub fn valid_file_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// Write the backup into `file`: header, `files` (name relative to the
/// data directory, bytes), then every tree of `storage` except those in
/// `skip_trees`. Run it on the store's owner thread, so no document write
/// interleaves. `file` is synced before this returns.
pub fn write_backup(
    storage: &SledStorage,
    header: &BackupHeader,
    files: &[(String, Vec<u8>)],
    skip_trees: &[&str],
    file: std::fs::File,
) -> Result<BackupSummary, BackupError> {
    let mut out = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        written: 0,
    };
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_be_bytes())?;
    let header_bytes =
        serde_json::to_vec(header).map_err(|error| BackupError::Store(error.to_string()))?;
    put_bytes(&mut out, &header_bytes, HEADER_BYTES_MAX)?;
    for (name, bytes) in files {
        if !valid_file_name(name) {
            return Err(BackupError::Malformed(format!("file name {name:?}")));
        }
        out.write_all(b"F")?;
        put_name(&mut out, name.as_bytes())?;
        put_bytes(&mut out, bytes, FILE_BYTES_MAX)?;
    }
    let db = storage.db();
    let mut trees = 0;
    let mut entries = 0u64;
    for name in db.tree_names() {
        if skip_trees.iter().any(|skip| skip.as_bytes() == &name[..]) {
            continue;
        }
        let tree = db
            .open_tree(&name)
            .map_err(|error| BackupError::Store(error.to_string()))?;
        out.write_all(b"T")?;
        put_name(&mut out, &name)?;
        trees += 1;
        for item in tree.iter() {
            let (key, value) = item.map_err(|error| BackupError::Store(error.to_string()))?;
            out.write_all(b"E")?;
            put_bytes(&mut out, &key, KEY_BYTES_MAX)?;
            put_bytes(&mut out, &value, VALUE_BYTES_MAX)?;
            entries += 1;
        }
    }
    out.write_all(b"Z")?;
    out.write_all(&entries.to_be_bytes())?;
    let checksum = out.hasher.clone().finalize();
    let bytes = out.written + CHECKSUM_BYTES;
    let mut inner = out.inner;
    inner.write_all(&checksum)?;
    let file = inner.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    Ok(BackupSummary {
        bytes,
        sha256: hex(&checksum),
        trees,
        entries,
        files: files.iter().map(|(name, _)| name.clone()).collect(),
    })
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Check the mark, the version and the checksum of the backup at `path`,
/// reading it once; returns its header and checksum. Writes nothing.
pub fn verify(path: &Path) -> Result<(BackupHeader, String), BackupError> {
    let size = std::fs::metadata(path)?.len();
    if size > BACKUP_BYTES_MAX {
        return Err(BackupError::TooLarge);
    }
    let minimum = MAGIC.len() as u64 + 4 + 4 + 1 + 8 + CHECKSUM_BYTES;
    if size < minimum {
        return Err(BackupError::NotABackup);
    }
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut start = [0u8; 19];
    reader.read_exact(&mut start)?;
    if &start[..15] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let found = u32::from_be_bytes([start[15], start[16], start[17], start[18]]);
    if found > FORMAT_VERSION || found == 0 {
        return Err(BackupError::TooNew { found });
    }
    let mut hasher = Sha256::new();
    hasher.update(start);
    let mut left = size - CHECKSUM_BYTES - start.len() as u64;
    let mut buffer = vec![0u8; 1 << 20];
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        reader.read_exact(&mut buffer[..want])?;
        hasher.update(&buffer[..want]);
        left -= want as u64;
    }
    let mut expected = [0u8; 32];
    reader.read_exact(&mut expected)?;
    let computed = hasher.finalize();
    if computed[..] != expected[..] {
        return Err(BackupError::Checksum {
            expected: hex(&expected),
            computed: hex(&computed),
        });
    }
    let header = read_header(&mut BufReader::new(std::fs::File::open(path)?))?;
    Ok((header, hex(&expected)))
}

fn read_header(reader: &mut impl Read) -> Result<BackupHeader, BackupError> {
    let mut start = [0u8; 19];
    reader.read_exact(&mut start)?;
    let length = read_u32(reader)?;
    if length > HEADER_BYTES_MAX {
        return Err(BackupError::Malformed(format!(
            "a header of {length} bytes"
        )));
    }
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes)?;
    serde_json::from_slice(&bytes)
        .map_err(|error| BackupError::Malformed(format!("the header: {error}")))
}

fn read_u32(reader: &mut impl Read) -> Result<u32, BackupError> {
    let mut raw = [0u8; 4];
    reader.read_exact(&mut raw)?;
    Ok(u32::from_be_bytes(raw))
}

fn read_sized(reader: &mut impl Read, max: u32, what: &str) -> Result<Vec<u8>, BackupError> {
    let length = read_u32(reader)?;
    if length > max {
        return Err(BackupError::Malformed(format!(
            "{what} of {length} bytes (at most {max})"
        )));
    }
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_name(reader: &mut impl Read) -> Result<Vec<u8>, BackupError> {
    let mut raw = [0u8; 2];
    reader.read_exact(&mut raw)?;
    let length = u16::from_be_bytes(raw);
    if length > NAME_BYTES_MAX {
        return Err(BackupError::Malformed(format!("a name of {length} bytes")));
    }
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Files restored with owner-only permissions: keys and the token.
fn is_secret(name: &str) -> bool {
    name.ends_with(".key") || name == "api-token"
}

/// Restore the backup at `backup` into `target`, which must not exist or be
/// an empty folder. Verifies first (nothing is written if the version or the
/// checksum is wrong); builds the data directory in a folder beside
/// `target` and renames it into place when complete; gives the store a new
/// incarnation. Returns the header, what was restored, and the incarnation.
pub fn restore(
    backup: &Path,
    target: &Path,
) -> Result<(BackupHeader, BackupSummary, u64), BackupError> {
    if target.exists() {
        let mut listing = std::fs::read_dir(target)
            .map_err(|error| BackupError::Target(format!("{}: {error}", target.display())))?;
        if listing.next().is_some() {
            return Err(BackupError::Target(format!(
                "{} is not empty; restore into a new or empty folder (this never overwrites a node)",
                target.display()
            )));
        }
    }
    let (header, sha256) = verify(backup)?;
    let staging = staging_folder(target)?;
    let result = restore_into(backup, &staging);
    let summary = match result {
        Ok(summary) => summary,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    let store = staging.join(super::STORE_DIR);
    let incarnation = match super::renew_incarnation(&store) {
        Ok(incarnation) => incarnation,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(BackupError::Store(error.to_string()));
        }
    };
    if target.exists() {
        std::fs::remove_dir(target)?;
    }
    std::fs::rename(&staging, target)?;
    Ok((header, BackupSummary { sha256, ..summary }, incarnation))
}

fn staging_folder(target: &Path) -> Result<PathBuf, BackupError> {
    let name = target
        .file_name()
        .ok_or_else(|| BackupError::Target(format!("{} names no folder", target.display())))?;
    let parent = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let staging = parent.join(format!(
        ".{}.restoring-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir(&staging)?;
    Ok(staging)
}

/// Create `path` (never over an existing file) with `mode` and `bytes`.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Batches of this many entries while restoring a tree.
const RESTORE_BATCH_ENTRIES: usize = 4096;

fn restore_into(backup: &Path, folder: &Path) -> Result<BackupSummary, BackupError> {
    let size = std::fs::metadata(backup)?.len();
    let file = std::fs::File::open(backup)?;
    let mut reader = BufReader::with_capacity(1 << 20, file.take(size - CHECKSUM_BYTES));
    read_header(&mut reader)?;
    let store = folder.join(super::STORE_DIR);
    let db = sled::Config::new()
        .path(&store)
        .cache_capacity(super::SLED_CACHE_BYTES)
        .open()
        .map_err(|error| BackupError::Store(error.to_string()))?;
    let mut files = Vec::new();
    let mut trees = 0;
    let mut entries = 0u64;
    let mut tree: Option<sled::Tree> = None;
    let mut batch = sled::Batch::default();
    let mut batched = 0usize;
    let store_error = |error: sled::Error| BackupError::Store(error.to_string());
    loop {
        let mut tag = [0u8; 1];
        reader.read_exact(&mut tag)?;
        match tag[0] {
            b'F' => {
                let name = String::from_utf8(read_name(&mut reader)?)
                    .map_err(|_| BackupError::Malformed("a file name is not text".into()))?;
                if !valid_file_name(&name) || files.len() >= FILES_MAX {
                    return Err(BackupError::Malformed(format!("file {name:?}")));
                }
                let bytes = read_sized(&mut reader, FILE_BYTES_MAX, "a file")?;
                let path = folder.join(&name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mode = if is_secret(&name) { 0o600 } else { 0o644 };
                write_new_file(&path, &bytes, mode)?;
                files.push(name);
            }
            b'T' => {
                if let Some(tree) = &tree {
                    tree.apply_batch(std::mem::take(&mut batch))
                        .map_err(store_error)?;
                    batched = 0;
                }
                let name = read_name(&mut reader)?;
                tree = Some(db.open_tree(name).map_err(store_error)?);
                trees += 1;
            }
            b'E' => {
                let Some(current) = &tree else {
                    return Err(BackupError::Malformed("an entry before any tree".into()));
                };
                let key = read_sized(&mut reader, KEY_BYTES_MAX, "a key")?;
                let value = read_sized(&mut reader, VALUE_BYTES_MAX, "a value")?;
                batch.insert(key, value);
                batched += 1;
                entries += 1;
                if batched >= RESTORE_BATCH_ENTRIES {
                    current
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(store_error)?;
                    batched = 0;
                }
            }
            b'Z' => {
                let mut raw = [0u8; 8];
                reader.read_exact(&mut raw)?;
                if u64::from_be_bytes(raw) != entries {
                    return Err(BackupError::Malformed("the entry count differs".into()));
                }
                break;
            }
            other => {
                return Err(BackupError::Malformed(format!("record type {other}")));
            }
        }
    }
    if let Some(tree) = &tree {
        tree.apply_batch(batch).map_err(store_error)?;
    }
    let mut rest = [0u8; 1];
    if reader.read(&mut rest)? != 0 {
        return Err(BackupError::Malformed("bytes after the end".into()));
    }
    if db
        .tree_names()
        .iter()
        .all(|name| &name[..] != TREE_NAME.as_bytes())
    {
        return Err(BackupError::Malformed("no document tree".into()));
    }
    db.flush().map_err(store_error)?;
    drop(db);
    Ok(BackupSummary {
        bytes: size,
        sha256: String::new(),
        trees,
        entries,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_inside_the_data_directory() {
        assert!(valid_file_name("civsync.toml"));
        assert!(valid_file_name("pki/node.key"));
        for bad in [
            "../x",
            "pki/../../x",
            "/etc/passwd",
            "a/b/c",
            ".hidden",
            "pki/",
            "",
        ] {
            assert!(!valid_file_name(bad), "{bad}");
        }
    }
}
