//! Restart actions: a container through the engine, a systemd unit through `systemctl`.
//!
//! Each restart is checked, not assumed: a container must be running after the engine's
//! restart returns, a unit must be `active` per `systemctl is-active` after `systemctl restart`
//! exits 0. `systemctl` is looked up on `PATH` (so tests can put a stub first). This module
//! restarts what it is told to; whether to restart is `decide`'s job.

use std::time::Duration;

use tokio::process::Command;

use crate::engine::{Engine, EngineError};
use crate::error::{Coded, ErrorCode};
use crate::manifest::RestartTarget;
use crate::pin::Recheck;

/// How long the engine may take to stop a container before it kills it, in seconds.
pub const CONTAINER_STOP_TIMEOUT_S: i64 = 10;
/// How long one `systemctl` invocation may take.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("cannot restart container {container}")]
    Engine {
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("container {0} is not running after its restart")]
    NotRunning(String),
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}", humantime::format_duration(*timeout))]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed with {status}: {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("unit {unit} is not active after its restart (is-active: {state})")]
    NotActive { unit: String, state: String },
    #[error("container {container} came back with other bind sources than it was created with, so it was stopped: {}", breaches.join("; "))]
    MountedOther {
        container: String,
        breaches: Vec<String>,
    },
}

impl Coded for RestartError {
    fn code(&self) -> ErrorCode {
        match self {
            RestartError::Engine { source, .. } => source.code(),
            RestartError::Failed { stderr, .. }
                if stderr.contains("Access denied") || stderr.contains("authentication") =>
            {
                ErrorCode::PermissionDenied
            }
            RestartError::MountedOther { .. } => ErrorCode::IsolationBreach,
            _ => ErrorCode::HealthFailed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RestartError::Spawn { .. } => {
                Some("systemctl must be on PATH for systemdUnit restarts".into())
            }
            RestartError::NotActive { unit, .. } => Some(format!(
                "see why with `journalctl -u {unit}` (`journalctl --user -u {unit}` for a user unit)"
            )),
            _ => None,
        }
    }
}

/// The `systemctl` arguments for `verb` on `unit` (`--user` for user units).
pub fn systemctl_args(verb: &str, unit: &str, user: bool) -> Vec<String> {
    let mut args = Vec::new();
    if user {
        args.push("--user".to_string());
    }
    args.push(verb.to_string());
    args.push(unit.to_string());
    args
}

async fn systemctl(args: &[String]) -> Result<std::process::Output, RestartError> {
    let command = format!("systemctl {}", args.join(" "));
    let child = Command::new("systemctl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(SYSTEMCTL_TIMEOUT, child).await {
        Err(_) => Err(RestartError::Timeout {
            command,
            timeout: SYSTEMCTL_TIMEOUT,
        }),
        Ok(Err(source)) => Err(RestartError::Spawn { command, source }),
        Ok(Ok(out)) => Ok(out),
    }
}

/// `systemctl [--user] restart <unit>`, then `systemctl [--user] is-active <unit>`.
pub async fn restart_unit(unit: &str, user: bool) -> Result<(), RestartError> {
    let args = systemctl_args("restart", unit, user);
    let out = systemctl(&args).await?;
    if !out.status.success() {
        return Err(RestartError::Failed {
            command: format!("systemctl {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let out = systemctl(&systemctl_args("is-active", unit, user)).await?;
    if !out.status.success() {
        return Err(RestartError::NotActive {
            unit: unit.to_string(),
            state: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        });
    }
    Ok(())
}

/// Restarts `container` through the engine and checks that it runs afterwards.
pub async fn restart_container<E: Engine>(engine: &E, container: &str) -> Result<(), RestartError> {
    let err = |source| RestartError::Engine {
        container: container.to_string(),
        source,
    };
    engine
        .restart(container, CONTAINER_STOP_TIMEOUT_S)
        .await
        .map_err(err)?;
    // The engine resolved every bind source again for this start: a source swapped for a
    // symlink since the container was created (crate::pin) would now mount something else.
    let proc = std::path::Path::new("/proc");
    match crate::pin::recheck_started(engine, container, proc)
        .await
        .map_err(err)?
    {
        Recheck::Gone | Recheck::NotRunning => Err(RestartError::NotRunning(container.to_string())),
        Recheck::Pinned => Ok(()),
        Recheck::Breached(breaches) => {
            let _ = engine.stop(container, 0).await;
            Err(RestartError::MountedOther {
                container: container.to_string(),
                breaches,
            })
        }
    }
}

/// Restarts what `target` names.
pub async fn restart<E: Engine>(engine: &E, target: &RestartTarget) -> Result<(), RestartError> {
    match target {
        RestartTarget::Container(c) => restart_container(engine, c).await,
        RestartTarget::SystemdUnit { unit, user } => restart_unit(unit, *user).await,
    }
}

/// How a restart target is shown in reports and audit rows.
pub fn describe(target: &RestartTarget) -> String {
    match target {
        RestartTarget::Container(c) => format!("container {c}"),
        RestartTarget::SystemdUnit { unit, user: true } => format!("user unit {unit}"),
        RestartTarget::SystemdUnit { unit, user: false } => format!("unit {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_units_get_the_user_flag_first() {
        assert_eq!(
            systemctl_args("restart", "openclaw-gateway.service", true),
            ["--user", "restart", "openclaw-gateway.service"]
        );
        assert_eq!(
            systemctl_args("is-active", "x.service", false),
            ["is-active", "x.service"]
        );
    }
}
