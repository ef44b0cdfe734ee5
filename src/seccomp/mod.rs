//! Seccomp profiles: the typed Docker/OCI profile model, the generated policies, and the
//! validation every profile passes before an engine sees it.

use crate::error::{Coded, ErrorCode};
use crate::manifest::SeccompSource;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile is invalid: {0}")]
    Invalid(String),
}

impl Coded for SeccompError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SeccompInvalid
    }
}

/// The effective profile of a sandbox as compact JSON, validated.
pub fn effective_profile_json(source: &SeccompSource) -> Result<String, SeccompError> {
    let _ = source;
    todo!("seccomp helper")
}
