//! The bearer token of this node's scripts and `civsync` commands.
//!
//! A secret file in the data directory, readable by the node's user only:
//! whoever can read it can already read the store, so it grants the
//! administrator role. Created at `init` (or at the first `run` of a data
//! directory made by an earlier release); `civsync` reads it itself, so
//! commands work unchanged for the node's admin.

use anyhow::Context;
use std::path::Path;

pub const TOKEN_FILE: &str = "api-token";
/// 64 hex characters; a longer header is refused before comparing.
pub const TOKEN_CHARS: usize = 64;

pub struct ApiToken(String);

impl ApiToken {
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<ApiToken> {
        let path = data_dir.join(TOKEN_FILE);
        if let Some(token) = read(data_dir)? {
            return Ok(ApiToken(token));
        }
        let bytes: [u8; 32] = rand::random();
        let token = hex::encode(bytes);
        crate::secrets::write_secret(&path, token.as_bytes())?;
        Ok(ApiToken(token))
    }

    /// Does this `Authorization: Bearer` value hold the token?
    pub fn accepts(&self, presented: &str) -> bool {
        presented.len() == TOKEN_CHARS && super::sessions::same_secret(presented, &self.0)
    }
}

/// The token in `data_dir`, if there is one (for the CLI).
pub fn read(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.len() != TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "{} is not an API token (64 hex characters); remove it and restart the node to make a new one",
                    path.display()
                );
            }
            Ok(Some(token))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_kept_private_and_accepted_only_whole() {
        let dir = tempfile::tempdir().unwrap();
        let token = ApiToken::load_or_create(dir.path()).unwrap();
        let again = ApiToken::load_or_create(dir.path()).unwrap();
        assert_eq!(token.0, again.0);
        assert!(token.accepts(&token.0));
        assert!(!token.accepts(&token.0[..63]));
        assert!(!token.accepts(&"0".repeat(TOKEN_CHARS)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
    }
}
