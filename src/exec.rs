//! `exec`: run a command in a sandbox with its `secretEnv` injected for that exec only.
//!
//! A brokered name (crate::broker) is injected as its sentinel, never as its value: the
//! sentinel is derived from the sandbox's seed in the state database, so exec refuses a
//! brokered sandbox when the state database cannot be opened rather than fall back to the
//! value.
//!
//! Secrets are read from the secrets file at the moment of the exec (so a rotated key is used
//! at once), passed to the engine in the exec's own environment, and dropped. They are never
//! part of the container's config (so `docker inspect` never shows them), never written to
//! disk, never logged; the audit row names the keys only.
//!
//! "For that exec only" includes what the command leaves behind: it runs under a small `sh`
//! wrapper ([`WRAPPER`]) that, once the command returns, kills every process the exec started
//! and that is still there (a `cmd &` it forgot, a daemon it spawned), before the exec ends.
//! So no process outlives the exec holding a secret in its environment, and verify's
//! `secrets.env-clean` can demand that no process holds one at all.

use secrecy::ExposeSecret;

use crate::broker;
use crate::engine::{Engine, EngineError, ExecOutput, ExecRequest};
use crate::error::{Coded, ErrorCode};
use crate::manifest::Fortress;
use crate::secrets::{self, SecretsError};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no sandbox named {sandbox:?} in fortress {fortress}")]
    UnknownSandbox { sandbox: String, fortress: String },
    #[error("sandbox {0} does not exist on the engine")]
    Missing(String),
    #[error("sandbox {0} is not running")]
    NotRunning(String),
    #[error("container {name} ({id}) is not a sandbox this fortress created: {why}; nothing was run and no secret was read")]
    NotOwned {
        name: String,
        id: String,
        why: String,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("sandbox {sandbox} declares secretEnv but the manifest has no secrets file")]
    NoSecretsFile { sandbox: String },
    #[error("secret {key} named by sandbox {sandbox} is not in the secrets file")]
    MissingSecret { sandbox: String, key: String },
    #[error("sandbox {sandbox} brokers {names} and the state database (which holds the seed of their sentinels) is not open; nothing was run")]
    BrokerNeedsState { sandbox: String, names: String },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Coded for ExecError {
    fn code(&self) -> ErrorCode {
        match self {
            ExecError::UnknownSandbox { .. }
            | ExecError::NoSecretsFile { .. }
            | ExecError::MissingSecret { .. } => ErrorCode::ConfigInvalid,
            ExecError::Missing(_) | ExecError::NotRunning(_) => ErrorCode::SandboxFailure,
            ExecError::NotOwned { .. } => ErrorCode::IsolationBreach,
            ExecError::BrokerNeedsState { .. } => ErrorCode::PermissionDenied,
            ExecError::State(e) => e.code(),
            ExecError::Secrets(e) => e.code(),
            ExecError::Engine(e) => e.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            ExecError::Missing(_) | ExecError::NotRunning(_) => {
                Some("run `clw-fortress apply` to create and start it".into())
            }
            ExecError::NotOwned { .. } => Some(
                "inspect it (`docker inspect`), remove it if you did not create it, then \
                 `clw-fortress apply` creates the real sandbox"
                    .into(),
            ),
            ExecError::BrokerNeedsState { .. } => Some(
                "run exec as the user that runs apply, or pass --state with the fortress's \
                 state database"
                    .into(),
            ),
            ExecError::Secrets(e) => e.hint(),
            ExecError::Engine(e) => e.hint(),
            _ => None,
        }
    }
}

/// The environment variable marking every process of one exec (a random value per exec).
pub const EXEC_MARK: &str = "CLW_FORTRESS_EXEC";

/// Runs `"$@"`, then kills every process of the exec still alive, and exits with the
/// command's status. An exec's process leads its own session (runc and crun make it a session
/// leader; measured with Docker 20.10 and Podman 4.3), so what the command starts shares that
/// session unless it calls `setsid`; everything it starts also inherits [`EXEC_MARK`] unless
/// it clears its environment. A process with either is killed (the session only when this
/// shell leads it, so the rule never reaches beyond the exec), repeatedly until none is left
/// (a process forking while it is killed). One that left the session *and* cleared its
/// environment escapes; it no longer holds the secrets in its environment either. POSIX `sh`
/// and `kill` only (`grep` when present, for the mark).
pub const WRAPPER: &str = r#""$@"
rc=$?
me=$$
read -r st 2>/dev/null < /proc/$me/stat
st=${st##*) }; set -- $st; sid=$4
[ "$sid" = "$me" ] || sid=""
mark="${CLW_FORTRESS_EXEC:-}"
command -v grep >/dev/null 2>&1 || mark=""
i=0
while [ $i -lt 20 ]; do
  i=$((i+1)); found=""
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$me" ] && continue
    read -r st 2>/dev/null < "$d/stat" || continue
    st=${st##*) }; set -- $st
    [ "$1" = Z ] && continue
    if [ -n "$sid" ] && [ "$4" = "$sid" ]; then kill -9 "$p" 2>/dev/null && found=1
    elif [ -n "$mark" ] && grep -qsF "CLW_FORTRESS_EXEC=$mark" "$d/environ" 2>/dev/null; then kill -9 "$p" 2>/dev/null && found=1
    fi
  done
  [ -n "$found" ] || break
done
exit $rc
"#;

/// The exec's command line: [`WRAPPER`] running `cmd`.
fn wrapped(cmd: &[String]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        WRAPPER.to_string(),
        "clw-fortress-exec".to_string(),
    ];
    argv.extend(cmd.iter().cloned());
    argv
}

/// Runs `cmd` in `sandbox` and returns its output and exit code.
pub async fn run<E: Engine>(
    engine: &E,
    fortress: &Fortress,
    sandbox: &str,
    cmd: Vec<String>,
    stdin: Option<Vec<u8>>,
    uid: u32,
    state: Option<&State>,
) -> Result<ExecOutput, ExecError> {
    let sbx = fortress
        .sandboxes
        .iter()
        .find(|s| s.name == sandbox)
        .ok_or_else(|| ExecError::UnknownSandbox {
            sandbox: sandbox.into(),
            fortress: fortress.name.clone(),
        })?;
    let inspected = engine
        .inspect(sandbox)
        .await?
        .ok_or_else(|| ExecError::Missing(sandbox.into()))?;
    // Only a container this fortress created gets a command, let alone a secret: a container
    // of the same name with copied labels is someone else's (crate::ownership).
    let id = inspected.id.clone();
    let ownership = crate::ownership::of(state, &fortress.name, &id, &inspected.labels)?;
    if let Some(why) = ownership.refusal(sandbox) {
        return Err(ExecError::NotOwned {
            name: sandbox.into(),
            id: id.chars().take(12).collect(),
            why,
        });
    }
    if !inspected.is_running() {
        return Err(ExecError::NotRunning(sandbox.into()));
    }
    let mut env = Vec::new();
    if !sbx.secret_env.is_empty() {
        let file = fortress
            .secrets_file
            .as_deref()
            .ok_or_else(|| ExecError::NoSecretsFile {
                sandbox: sandbox.into(),
            })?;
        let seed = if sbx.broker.is_empty() {
            None
        } else {
            let state = state.ok_or_else(|| ExecError::BrokerNeedsState {
                sandbox: sandbox.into(),
                names: sbx.broker.keys().cloned().collect::<Vec<_>>().join(","),
            })?;
            Some(state.broker_seed(sandbox)?)
        };
        let map = secrets::read(file, fortress.secrets_uid(uid))?;
        for key in &sbx.secret_env {
            let value = map.get(key).ok_or_else(|| ExecError::MissingSecret {
                sandbox: sandbox.into(),
                key: key.clone(),
            })?;
            let value = value.expose_secret();
            let injected = match &seed {
                Some(seed) if sbx.broker.contains_key(key) => {
                    broker::sentinel(seed, sandbox, key, value)
                }
                _ => value.to_string(),
            };
            env.push((key.clone(), injected));
        }
    }
    env.push((EXEC_MARK.to_string(), crate::verify::random_nonce()));
    let req = ExecRequest {
        cmd: wrapped(&cmd),
        env,
        stdin,
        ..Default::default()
    };
    let out = engine.exec(sandbox, &req).await;
    if let Some(state) = state {
        let detail = format!(
            "argv0={} secrets=[{}] brokered=[{}] exit={}",
            cmd.first().map(String::as_str).unwrap_or(""),
            sbx.secret_env.join(","),
            sbx.broker.keys().cloned().collect::<Vec<_>>().join(","),
            out.as_ref()
                .map(|o| o.exit_code.to_string())
                .unwrap_or_else(|_| "-".into())
        );
        let outcome = if out.is_ok() { "ok" } else { "failed" };
        let _ = state.audit("cli:exec", "exec", sandbox, outcome, &detail);
    }
    Ok(out?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_under_the_wrapper_with_its_argv_untouched() {
        let cmd = vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo 'a b'; sleep 300 &".to_string(),
        ];
        let argv = wrapped(&cmd);
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(argv[2], WRAPPER);
        assert_eq!(&argv[4..], &cmd[..]);
    }

    /// The wrapper on this host's `sh`: the command's exit status comes back, and a
    /// background process it left is gone when the wrapper returns.
    #[test]
    fn the_wrapper_returns_the_status_and_ends_what_the_command_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; exit 7", pidfile.display());
        let out = std::process::Command::new("setsid")
            .args(wrapped(&["sh".into(), "-c".into(), script]))
            .env(EXEC_MARK, "t3st")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{out:?}");
        let pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .to_string();
        // Killed: gone, or a zombie until its reaper collects it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("");
        assert!(stat.is_empty() || state == "Z", "{pid} still runs: {stat}");
    }
}
