//! The secrets file: its safety checks (manifest.md rule 5) and its `KEY=VALUE` parser.
//! Values are held as `SecretString` and never printed, logged or stored.
//! (Placeholder interface; the full module lands with the manifest work.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::error::{Coded, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read the secrets file {0}")]
    Read(PathBuf),
}

impl Coded for SecretsError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SecretsInsecure
    }
}

pub struct SecretMap(BTreeMap<String, SecretString>);

impl SecretMap {
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }
}

pub fn read(path: &Path, _uid: u32) -> Result<SecretMap, SecretsError> {
    Err(SecretsError::Read(path.to_path_buf()))
}
