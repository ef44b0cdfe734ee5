//! `doctor`: host and engine checks with repair guidance.
//!
//! Each check has a stable id (`kernel.seccomp`, `cgroup.pids`, ...), an outcome
//! (pass / warn / fail / skip with its reason), the evidence it read and, for anything short of
//! a pass, a hint. The checks are pure functions of what was read: host files come through
//! [`HostPaths`] and commands through a [`Runner`], so every check is tested on fixture trees;
//! engine facts arrive as `EngineInfo` and inspected containers. This module gathers the
//! inputs and orders the checks; it must never change the host, the engine or the state
//! database (it opens the database only when it already exists). The one trace it may leave is
//! that of reading a WAL database as a backup does (its `-wal`/`-shm`, see `local_checks`); the
//! empty file `backup.dest` writes to try a destination is removed at once.

mod engine_checks;
mod host_checks;
mod local_checks;
pub mod unit_access;

use std::path::PathBuf;

use serde::Serialize;

use crate::engine::{Engine, EngineError, EngineInfo};
use crate::error::{Coded, ErrorCode};
use crate::host::HostPaths;
use crate::manifest::{Fortress, ManifestError};
use crate::state::State;

pub use engine_checks::{container_checks, engine_rootless, engine_version, Inspected};
pub use host_checks::{cgroup_checks, kernel_seccomp, namespace_checks, systemd_units};
pub use local_checks::{
    backup_dest, backup_sources, manifest_valid, secrets_file, state_integrity,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `cgroup.pids`.
    pub id: &'static str,
    pub outcome: Outcome,
    /// What was found, in one line (for `skip`: the reason).
    pub summary: String,
    /// What was read: files with their content, commands with their status.
    pub evidence: Vec<String>,
    /// The error code a failure corresponds to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// How to repair, for warn and fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(id: &'static str, summary: impl Into<String>) -> Check {
        Check {
            id,
            outcome: Outcome::Pass,
            summary: summary.into(),
            evidence: Vec::new(),
            code: None,
            hint: None,
        }
    }

    pub fn skip(id: &'static str, reason: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Skip,
            ..Check::pass(id, reason)
        }
    }

    pub fn warn(id: &'static str, summary: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Warn,
            hint: Some(hint.into()),
            ..Check::pass(id, summary)
        }
    }

    pub fn fail(
        id: &'static str,
        code: ErrorCode,
        summary: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            outcome: Outcome::Fail,
            code: Some(code),
            hint: Some(hint.into()),
            ..Check::pass(id, summary)
        }
    }

    pub fn with_evidence(mut self, evidence: Vec<String>) -> Check {
        self.evidence = evidence;
        self
    }
}

/// Runs a host command and returns its exit status; `None` when it could not be run at all.
pub type Runner<'a> = &'a (dyn Fn(&str, &[&str]) -> Option<i32> + Sync);

/// The real [`Runner`]: runs the program with its output discarded.
pub fn run_command(program: &str, args: &[&str]) -> Option<i32> {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
}

/// The host as the checks see it.
pub struct HostEnv<'a> {
    pub paths: HostPaths,
    /// The uid this process runs as (probes drop to an unprivileged uid when it is 0).
    pub uid: u32,
    pub run: Runner<'a>,
}

/// Free space a backup destination must have, in bytes.
pub const MIN_BACKUP_FREE: u64 = 100 << 20;

/// Everything `doctor` checks, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == o).count()
    }

    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The report as people read it; hints only with `fix_hints` (failures always name the
    /// error code).
    pub fn render_text(&self, fix_hints: bool) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{}  {:width$}  {}\n",
                c.outcome.label(),
                c.id,
                c.summary
            ));
            if fix_hints {
                for e in &c.evidence {
                    out.push_str(&format!("      evidence: {e}\n"));
                }
            }
            if let Some(code) = c.code {
                out.push_str(&format!("      {}\n", crate::report::tag(code)));
            }
            if let (true, Some(h)) = (fix_hints, &c.hint) {
                for (i, line) in h.lines().enumerate() {
                    let head = if i == 0 { "hint: " } else { "      " };
                    out.push_str(&format!("      {head}{line}\n"));
                }
            }
        }
        out.push_str(&format!(
            "doctor: {} passed, {} warning(s), {} failed, {} skipped{}\n",
            self.count(Outcome::Pass),
            self.count(Outcome::Warn),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip),
            if !fix_hints && self.checks.iter().any(|c| c.hint.is_some()) {
                " (--fix-hints shows how to repair)"
            } else {
                ""
            }
        ));
        out
    }
}

/// What the command edge hands to [`run`].
pub struct Inputs<'a, E: Engine> {
    pub manifest_path: PathBuf,
    pub manifest: Result<&'a Fortress, &'a ManifestError>,
    pub engine: Result<&'a E, &'a EngineError>,
    /// The state database, when there is one: its record of created containers tells the
    /// fortress's sandboxes from containers that only carry their labels.
    pub state: Option<&'a State>,
    pub host: HostEnv<'a>,
    /// `--unit` files to check the agent's access under; empty: the installed units.
    pub units: Vec<PathBuf>,
    /// `--state`, passed on to the restricted run of the access checks.
    pub state_override: Option<PathBuf>,
}

/// Runs every check.
pub async fn run<E: Engine>(inp: Inputs<'_, E>) -> Report {
    let mut checks = vec![manifest_valid(&inp.manifest_path, inp.manifest)];
    let fortress = inp.manifest.ok();

    let (info, engine) = match inp.engine {
        Ok(engine) => match engine.info().await {
            Ok(info) => {
                checks.push(
                    Check::pass(
                        "engine.reachable",
                        format!(
                            "{} {} answers at {}",
                            info.flavor.as_str(),
                            info.version,
                            engine.socket()
                        ),
                    )
                    .with_evidence(vec![format!(
                        "SecurityOptions={:?} CgroupVersion={} kernel={}",
                        info.security_options, info.cgroup_version, info.kernel
                    )]),
                );
                (Some(info), Some(engine))
            }
            Err(e) => {
                checks.push(unreachable(&e));
                (None, None)
            }
        },
        Err(e) => {
            checks.push(unreachable(e));
            (None, None)
        }
    };
    let info: Option<&EngineInfo> = info.as_ref();
    match info {
        Some(i) => {
            checks.push(engine_version(i));
            checks.push(engine_rootless(i));
        }
        None => {
            for id in ["engine.version", "engine.rootless"] {
                checks.push(Check::skip(id, "the engine is unreachable"));
            }
        }
    }
    checks.push(kernel_seccomp(&inp.host.paths, info));
    checks.extend(cgroup_checks(&inp.host.paths, info));
    checks.extend(namespace_checks(&inp.host, info.map(|i| i.rootless)));
    checks.push(secrets_file(fortress, inp.host.uid));
    checks.push(state_integrity(fortress));
    checks.push(backup_dest(fortress, MIN_BACKUP_FREE));
    checks.push(backup_sources(fortress));
    checks.push(match fortress {
        None => Check::skip(
            "unit.access",
            "no valid manifest: what the agent reaches under its unit is unknown",
        ),
        Some(_) => {
            let explicit = !inp.units.is_empty();
            let units = if explicit {
                inp.units.clone()
            } else {
                unit_access::installed(&inp.host.paths)
            };
            let exe = std::env::current_exe().unwrap_or_else(|_| "clw-fortress".into());
            unit_access::check(
                &units,
                explicit,
                inp.host.uid,
                &inp.host.paths,
                &unit_access::Child {
                    exe,
                    manifest: &inp.manifest_path,
                    state: inp.state_override.as_deref(),
                },
            )
        }
    });
    checks.push(systemd_units(&inp.host));

    match (engine, fortress) {
        (Some(engine), Some(f)) => match gather(engine, f, inp.state).await {
            Ok(inspected) => checks.extend(container_checks(&inspected, engine.socket())),
            Err(e) => {
                for id in CONTAINER_CHECKS {
                    checks.push(Check::skip(
                        id,
                        format!("cannot list the containers: {}", crate::report::chain(&e)),
                    ));
                }
            }
        },
        (None, _) => {
            for id in CONTAINER_CHECKS {
                checks.push(Check::skip(id, "the engine is unreachable"));
            }
        }
        (_, None) => {
            for id in CONTAINER_CHECKS {
                checks.push(Check::skip(
                    id,
                    "no valid manifest: the fortress's containers are unknown",
                ));
            }
        }
    }
    Report { checks }
}

/// `doctor --access-only`: only the checks of what the agent reads and writes (the secrets
/// file, the backup destinations and sources), for a run restricted like a unit.
pub fn access_only(
    manifest_path: &std::path::Path,
    manifest: Result<&Fortress, &ManifestError>,
    uid: u32,
) -> Report {
    let fortress = manifest.ok();
    let mut checks = Vec::new();
    if fortress.is_none() {
        checks.push(manifest_valid(manifest_path, manifest));
    }
    checks.push(secrets_file(fortress, uid));
    checks.push(backup_dest(fortress, 0));
    checks.push(backup_sources(fortress));
    Report { checks }
}

const CONTAINER_CHECKS: [&str; 3] = [
    "containers.no-engine-socket",
    "containers.not-privileged",
    "containers.confined",
];

fn unreachable(e: &EngineError) -> Check {
    Check::fail(
        "engine.reachable",
        e.code(),
        crate::report::chain(e),
        e.hint()
            .unwrap_or_else(|| "start the engine or fix --engine / engine.socket".into()),
    )
}

/// The fortress's sandboxes, adopted containers and containers that only carry its labels,
/// inspected: each is checked, whoever created it.
async fn gather<E: Engine>(
    engine: &E,
    f: &Fortress,
    state: Option<&State>,
) -> Result<Vec<Inspected>, EngineError> {
    let mut out = Vec::new();
    for t in crate::status::targets(engine, f, state).await? {
        let Some(c) = t.container else { continue };
        if let Some(i) = engine.inspect(&c.id).await? {
            out.push(Inspected {
                name: c.name.clone(),
                kind: t.kind,
                inspect: i,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_report_shows_hints_only_when_asked_and_always_the_code() {
        let r = Report {
            checks: vec![
                Check::pass("a.ok", "fine"),
                Check::fail("b.bad", ErrorCode::EngineUnsupported, "broken", "fix it")
                    .with_evidence(vec!["read /x: 0".into()]),
                Check::skip("c.none", "no systemd"),
            ],
        };
        assert!(r.failed());
        let plain = r.render_text(false);
        assert!(plain.contains("FAIL  b.bad   broken"), "{plain}");
        assert!(plain.contains("error[clw-engine-unsupported]"), "{plain}");
        assert!(!plain.contains("fix it"), "{plain}");
        assert!(plain.contains("1 passed, 0 warning(s), 1 failed, 1 skipped"));
        let hints = r.render_text(true);
        assert!(hints.contains("hint: fix it"), "{hints}");
        assert!(hints.contains("evidence: read /x: 0"), "{hints}");
    }
}
