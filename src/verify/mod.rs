//! `verify`: the isolation test suite (verify.md). For each sandbox it checks what the engine
//! was asked for (`inspect`), proves what a process inside can actually do (one exec of a
//! POSIX `sh` script, `probes`, which also runs the syscall probe program, `sysprobe`), asks
//! every socket reachable inside whether it is an engine's (`endpoint`), and searches
//! everything reachable inside for secret values on the host (`scan`), then reports
//! (`report`) and records the run in the state database. `expect` holds what each target
//! must show, `run` one target's run; this module the catalogue's ids, the targets and the
//! record.
//!
//! It owns the probe catalogue and its ids (stable: reports, JUnit names and the state
//! database use them). It must never send a secret value into a sandbox, nor put one in a
//! report, a log line or the database: findings name the key and the place only. It changes
//! nothing in a sandbox except creating and removing its own files: empty probe files, and the
//! syscall probe program for the one run.

pub mod catalogue;
pub mod endpoint;
mod expect;
pub mod inspect;
pub mod probes;
pub mod report;
mod run;
pub mod scan;
pub mod sysprobe;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::error::{Coded, ErrorCode};
use crate::manifest::Fortress;
use crate::state::{State, StateError};

pub use self::expect::{inputs_for, BindExpect, Expect, Inputs, Options, Target};
pub(crate) use self::run::random_nonce;
pub use self::run::{verify_target, RunStats};

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// One probe's result for one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub sandbox: String,
    pub probe: String,
    pub outcome: Outcome,
    pub detail: String,
}

impl ProbeResult {
    pub fn new(probe: &str, outcome: Outcome, detail: impl Into<String>) -> ProbeResult {
        ProbeResult {
            sandbox: String::new(),
            probe: probe.to_string(),
            outcome,
            detail: detail.into(),
        }
    }
}

/// The in-sandbox probe ids, in report order (verify.md).
pub const SANDBOX_PROBES: [&str; 22] = [
    "secrets.file-absent",
    "secrets.deny-absent",
    "secrets.env-clean",
    "secrets.content-scan",
    "fs.ro-binds",
    "fs.rw-binds",
    "fs.root-readonly",
    "fs.no-extra-mounts",
    "fs.masked-paths",
    "engine.no-socket",
    "proc.caps-empty",
    "proc.no-new-privs",
    "proc.seccomp-filter",
    "proc.non-root",
    "proc.pid-namespace",
    "seccomp.denied",
    "limits.memory",
    "limits.pids",
    "limits.cpu",
    "net.none",
    "net.egress-allowed",
    "net.egress-denied",
];

/// The engine-side check ids, in report order.
pub const CONFIG_CHECKS: [&str; 11] = [
    "config.not-privileged",
    "config.namespaces",
    "config.seccomp-confined",
    "config.apparmor",
    "config.no-sensitive-mounts",
    "config.limits-set",
    "config.readonly-root",
    "config.no-new-privileges",
    "config.caps",
    "config.no-devices",
    "config.propagation",
];

/// Probes of a sandbox's egress allow-list; run only where one is declared.
pub const EGRESS_PROBES: [&str; 2] = ["net.egress-allowed", "net.egress-denied"];

/// Probes that need the declared binds; not run for adopted containers.
pub const BIND_PROBES: [&str; 3] = ["fs.ro-binds", "fs.rw-binds", "fs.no-extra-mounts"];

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no sandbox named {sandbox:?} in fortress {fortress}")]
    UnknownSandbox { sandbox: String, fortress: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl Coded for VerifyError {
    fn code(&self) -> ErrorCode {
        match self {
            VerifyError::UnknownSandbox { .. } => ErrorCode::ConfigInvalid,
            VerifyError::Engine(e) => e.code(),
            VerifyError::State(e) => e.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            VerifyError::UnknownSandbox { .. } => {
                Some("`clw-fortress validate` lists the declared sandboxes".into())
            }
            VerifyError::Engine(e) => e.hint(),
            VerifyError::State(e) => e.hint(),
        }
    }
}

/// The targets of a run: every declared sandbox (or just `only`), plus, with `adopted`, every
/// running container matching an `adopt` selector that is neither one of ours nor another
/// fortress's ([`crate::ownership`], with the record in `state`).
pub async fn targets<E: Engine>(
    engine: &E,
    fortress: &Fortress,
    state: Option<&State>,
    only: Option<&str>,
    adopted: bool,
) -> Result<Vec<Target>, VerifyError> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for s in &fortress.sandboxes {
        names.insert(s.name.clone());
        if only.is_some_and(|o| o != s.name) {
            continue;
        }
        out.push(Target {
            name: s.name.clone(),
            container: s.name.clone(),
            expect: Expect::of_sandbox(s),
            adopted: false,
        });
    }
    if adopted && !fortress.adopt.is_empty() {
        for c in engine.list(&[]).await? {
            if names.contains(&c.name) || only.is_some_and(|o| o != c.name) {
                continue;
            }
            if !crate::ownership::of(state, &fortress.name, &c.id, &c.labels)?.adoptable() {
                continue;
            }
            if let Some(a) = fortress
                .adopt
                .iter()
                .find(|a| a.selector.matches(&c.name, &c.labels))
            {
                names.insert(c.name.clone());
                out.push(Target {
                    name: c.name.clone(),
                    container: c.id.clone(),
                    expect: Expect::of_adopted(a),
                    adopted: true,
                });
            }
        }
    }
    if let Some(o) = only {
        if out.is_empty() {
            return Err(VerifyError::UnknownSandbox {
                sandbox: o.to_string(),
                fortress: fortress.name.clone(),
            });
        }
    }
    Ok(out)
}

/// Probes whose failure means the sandbox cannot do what it must (it is down, a declared `rw`
/// bind cannot be written, an allowed destination does not answer through the proxy), not that
/// it can do more than it may.
pub const OPERATIONAL_PROBES: [&str; 3] = ["sandbox.running", "fs.rw-binds", "net.egress-allowed"];

/// The code of a failed run: `clw-sandbox-failure` when every failed probe is operational,
/// `clw-isolation-breach` as soon as one is not (inconclusive alone is a breach not ruled out).
pub fn failure_code(results: &[ProbeResult]) -> ErrorCode {
    let failed: Vec<&ProbeResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .collect();
    if !failed.is_empty()
        && failed
            .iter()
            .all(|r| OPERATIONAL_PROBES.contains(&r.probe.as_str()))
    {
        ErrorCode::SandboxFailure
    } else {
        ErrorCode::IsolationBreach
    }
}

/// Pass, fail and inconclusive counts.
pub fn counts(results: &[ProbeResult]) -> (usize, usize, usize) {
    let n = |o| results.iter().filter(|r| r.outcome == o).count();
    (n(Outcome::Pass), n(Outcome::Fail), n(Outcome::Inconclusive))
}

/// True when the run passes: every probe passed (inconclusive ones too with `allow`).
pub fn passed(results: &[ProbeResult], allow_inconclusive: bool) -> bool {
    results.iter().all(|r| {
        r.outcome == Outcome::Pass || (allow_inconclusive && r.outcome == Outcome::Inconclusive)
    })
}

pub use crate::state::verify::VerifyRun;

/// Records one sandbox's run: counts, outcome and the ids of failed probes only.
pub fn record(
    state: &State,
    fortress: &str,
    sandbox: &str,
    results: &[ProbeResult],
    allow_inconclusive: bool,
) -> Result<(), StateError> {
    let (p, f, i) = counts(results);
    let outcome = if passed(results, allow_inconclusive) {
        "pass"
    } else {
        "fail"
    };
    let not_passed: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| r.probe.as_str())
        .collect();
    state.record_verify_run(&VerifyRun {
        ts_ms: crate::state::now_ms(),
        fortress: fortress.to_string(),
        sandbox: sandbox.to_string(),
        passed: p as i64,
        failed: f as i64,
        inconclusive: i as i64,
        outcome: outcome.to_string(),
        not_passed: not_passed.iter().map(|s| s.to_string()).collect(),
    })
}

/// The newest verify run of `sandbox`, for `status`.
pub fn last_verify(state: &State, sandbox: &str) -> Result<Option<VerifyRun>, StateError> {
    state.last_verify_run(sandbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_run_of_a_sandbox_comes_back_without_details() {
        let s = State::in_memory();
        assert_eq!(last_verify(&s, "a").unwrap(), None);
        let mut results = vec![
            ProbeResult::new("proc.non-root", Outcome::Pass, "uid 1000"),
            ProbeResult::new("limits.pids", Outcome::Fail, "pids.max = max"),
        ];
        record(&s, "f", "a", &results, false).unwrap();
        results[1].outcome = Outcome::Pass;
        record(&s, "f", "a", &results, false).unwrap();
        record(&s, "f", "b", &results[..1], false).unwrap();
        let last = last_verify(&s, "a").unwrap().unwrap();
        assert_eq!(
            (last.passed, last.failed, last.outcome.as_str()),
            (2, 0, "pass")
        );
        results[1].outcome = Outcome::Fail;
        record(&s, "f", "a", &results, false).unwrap();
        let last = last_verify(&s, "a").unwrap().unwrap();
        assert_eq!(last.not_passed, ["limits.pids"]);
        assert_eq!(last.outcome, "fail");
    }

    #[test]
    fn inconclusive_counts_as_failure_unless_allowed() {
        let r = vec![ProbeResult::new(
            "net.none",
            Outcome::Inconclusive,
            "nc missing",
        )];
        assert!(!passed(&r, false));
        assert!(passed(&r, true));
    }
}
