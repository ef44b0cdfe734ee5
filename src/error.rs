//! The stable `clw-*` error codes, their exit statuses and their long descriptions.
//!
//! Every module error maps onto one [`ErrorCode`]; the command edge prints the code as the
//! headline `error[<code>]` and exits with [`ErrorCode::exit_status`]. Codes are part of the
//! public contract (users search for them): never rename one, only add.

use std::fmt;

/// A stable error identifier (errors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    ConfigInvalid,
    BindForbidden,
    SecretsInsecure,
    EngineUnreachable,
    EngineUnsupported,
    SandboxFailure,
    SeccompInvalid,
    SandboxLimitExceeded,
    IsolationBreach,
    HealthFailed,
    Quarantined,
    BackupFailed,
    StateCorrupt,
    PermissionDenied,
}

/// Process exit statuses (cli.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FOUND_FAILURES: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    pub const ENGINE: u8 = 3;
    pub const PARTIAL: u8 = 4;

    /// The status of a command made of independent operations (`apply`, `enforce`,
    /// `backup run`): 0 when none failed; 4 (partial) when some failed and others were done;
    /// the first failure's own status when nothing could be done.
    pub fn of_operations(done: usize, first_failure: Option<super::ErrorCode>) -> u8 {
        match first_failure {
            None => OK,
            Some(_) if done > 0 => PARTIAL,
            Some(code) => code.exit_status(),
        }
    }
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::ConfigInvalid,
        ErrorCode::BindForbidden,
        ErrorCode::SecretsInsecure,
        ErrorCode::EngineUnreachable,
        ErrorCode::EngineUnsupported,
        ErrorCode::SandboxFailure,
        ErrorCode::SeccompInvalid,
        ErrorCode::SandboxLimitExceeded,
        ErrorCode::IsolationBreach,
        ErrorCode::HealthFailed,
        ErrorCode::Quarantined,
        ErrorCode::BackupFailed,
        ErrorCode::StateCorrupt,
        ErrorCode::PermissionDenied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ConfigInvalid => "clw-config-invalid",
            ErrorCode::BindForbidden => "clw-bind-forbidden",
            ErrorCode::SecretsInsecure => "clw-secrets-insecure",
            ErrorCode::EngineUnreachable => "clw-engine-unreachable",
            ErrorCode::EngineUnsupported => "clw-engine-unsupported",
            ErrorCode::SandboxFailure => "clw-sandbox-failure",
            ErrorCode::SeccompInvalid => "clw-seccomp-invalid",
            ErrorCode::SandboxLimitExceeded => "clw-sandbox-limit-exceeded",
            ErrorCode::IsolationBreach => "clw-isolation-breach",
            ErrorCode::HealthFailed => "clw-health-failed",
            ErrorCode::Quarantined => "clw-quarantined",
            ErrorCode::BackupFailed => "clw-backup-failed",
            ErrorCode::StateCorrupt => "clw-state-corrupt",
            ErrorCode::PermissionDenied => "clw-permission-denied",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        let s = s.trim();
        let s = s
            .strip_prefix("error[")
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s || c.as_str().trim_start_matches("clw-") == s)
    }

    /// The exit status of a command that stops with this error.
    pub fn exit_status(self) -> u8 {
        match self {
            ErrorCode::ConfigInvalid
            | ErrorCode::BindForbidden
            | ErrorCode::SecretsInsecure
            | ErrorCode::SeccompInvalid => exit::INVALID_INPUT,
            ErrorCode::EngineUnreachable
            | ErrorCode::EngineUnsupported
            | ErrorCode::SandboxFailure
            | ErrorCode::PermissionDenied => exit::ENGINE,
            ErrorCode::SandboxLimitExceeded
            | ErrorCode::IsolationBreach
            | ErrorCode::HealthFailed
            | ErrorCode::Quarantined
            | ErrorCode::BackupFailed
            | ErrorCode::StateCorrupt => exit::FOUND_FAILURES,
        }
    }

    /// The long description served by `clw-fortress explain`.
    pub fn explain(self) -> &'static str {
        match self {
            ErrorCode::ConfigInvalid => include_str!("explain/config-invalid.md"),
            ErrorCode::BindForbidden => include_str!("explain/bind-forbidden.md"),
            ErrorCode::SecretsInsecure => include_str!("explain/secrets-insecure.md"),
            ErrorCode::EngineUnreachable => include_str!("explain/engine-unreachable.md"),
            ErrorCode::EngineUnsupported => include_str!("explain/engine-unsupported.md"),
            ErrorCode::SandboxFailure => include_str!("explain/sandbox-failure.md"),
            ErrorCode::SeccompInvalid => include_str!("explain/seccomp-invalid.md"),
            ErrorCode::SandboxLimitExceeded => include_str!("explain/sandbox-limit-exceeded.md"),
            ErrorCode::IsolationBreach => include_str!("explain/isolation-breach.md"),
            ErrorCode::HealthFailed => include_str!("explain/health-failed.md"),
            ErrorCode::Quarantined => include_str!("explain/quarantined.md"),
            ErrorCode::BackupFailed => include_str!("explain/backup-failed.md"),
            ErrorCode::StateCorrupt => include_str!("explain/state-corrupt.md"),
            ErrorCode::PermissionDenied => include_str!("explain/permission-denied.md"),
        }
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every module error so the command edge can print a code and a hint.
pub trait Coded: std::error::Error {
    fn code(&self) -> ErrorCode;
    /// One line of repair guidance, where there is one.
    fn hint(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_operations_exit_partial_only_when_some_were_done() {
        assert_eq!(exit::of_operations(3, None), exit::OK);
        assert_eq!(exit::of_operations(0, None), exit::OK);
        assert_eq!(
            exit::of_operations(2, Some(ErrorCode::EngineUnreachable)),
            exit::PARTIAL
        );
        assert_eq!(
            exit::of_operations(0, Some(ErrorCode::EngineUnreachable)),
            exit::ENGINE
        );
        assert_eq!(
            exit::of_operations(0, Some(ErrorCode::BackupFailed)),
            exit::FOUND_FAILURES
        );
    }

    #[test]
    fn every_code_round_trips_through_its_name() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert_eq!(ErrorCode::parse(&format!("error[{}]", c.as_str())), Some(c));
        }
    }

    #[test]
    fn every_code_has_a_long_description_with_the_four_sections() {
        for c in ErrorCode::ALL {
            let text = c.explain();
            assert!(text.starts_with(&format!("# {}", c.as_str())), "{c}");
            for section in [
                "## Symptom",
                "## Likely causes",
                "## How to confirm",
                "## How to fix",
            ] {
                assert!(text.contains(section), "{c} lacks {section}");
            }
        }
    }

    #[test]
    fn invalid_input_codes_exit_with_two() {
        for c in [
            ErrorCode::ConfigInvalid,
            ErrorCode::BindForbidden,
            ErrorCode::SecretsInsecure,
            ErrorCode::SeccompInvalid,
        ] {
            assert_eq!(c.exit_status(), 2);
        }
        assert_eq!(ErrorCode::EngineUnreachable.exit_status(), 3);
    }
}
