//! Fortress and BindSet manifests: parse (raw serde structs), then validate into the typed
//! [`Fortress`] of `types`. Validation needs no engine and changes nothing on the host.
//!
//! Host facts (home, environment, uid, CPU count) come in through [`LoadContext`] so every rule
//! is unit-tested on fixtures.

pub mod types;

pub use types::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Coded, ErrorCode};

/// Host facts the manifest depends on.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// `~` expands to this.
    pub home: PathBuf,
    /// `${VAR}` expands from this.
    pub env: BTreeMap<String, String>,
    /// The running user (owner check of the secrets file; root's default state path).
    pub uid: u32,
    /// For the "cpus above the host's count" warning.
    pub host_cpus: usize,
}

impl LoadContext {
    pub fn from_process() -> Self {
        todo!("manifest helper")
    }
}

/// One problem found in a manifest or bind set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ErrorCode,
    pub file: PathBuf,
    /// Field path, e.g. `sandboxes[0].binds[1].source`.
    pub field: String,
    /// The offending value as written (never a secret value).
    pub value: String,
    pub message: String,
    /// 1-based line and column, where the parser gives one.
    pub location: Option<(usize, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} problem(s) in {}", problems.len(), file.display())]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl Coded for ManifestError {
    fn code(&self) -> ErrorCode {
        match self {
            ManifestError::Read { .. } => ErrorCode::ConfigInvalid,
            ManifestError::Invalid { problems, .. } => problems
                .first()
                .map(|p| p.code)
                .unwrap_or(ErrorCode::ConfigInvalid),
        }
    }
}

/// Loads, expands and validates a Fortress manifest and the bind sets it names.
pub fn load(path: &Path, ctx: &LoadContext) -> Result<Fortress, ManifestError> {
    let _ = (path, ctx);
    todo!("manifest helper")
}
