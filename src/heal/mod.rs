//! Self-healing: health probes, restarts with exponential backoff, quarantine.
//!
//! It owns the `health:` entries and every sandbox's liveness (running, the engine's
//! healthcheck, `liveness.exec`), the per-target counters in the state database, and the
//! restarts they lead to. The decision is pure ([`decide`]); this module is the thin driver:
//! load the target's state, probe, decide, act, store, audit.
//!
//! Entry points shared by the timer-mode command (`clw-fortress heal`) and the daemon:
//! - [`run_once`]: one pass over every health check and sandbox;
//! - [`run_check`] / [`run_sandbox`]: one target, for the daemon's per-target schedules;
//! - [`observe_event`] + [`on_due`] (or [`on_container_died`]): the crash path from engine events;
//! - [`release`], [`quarantined`], [`targets`]: lifting quarantine and showing counters.
//!
//! It must not create, recreate or remove containers (that is `apply`), and never restarts or
//! stops a container that is not this fortress's (a sandbox it created, [`crate::ownership`])
//! or named by a `restart:` target; a container holding a sandbox's name that this fortress did
//! not create is left alone, whatever its labels say.

pub mod decide;
pub mod probe;
pub mod restart;
pub mod store;
pub mod watch;

use serde::Serialize;

pub use decide::{decide, Decision, Outcome, Policy, TargetState};
pub use store::{TargetKey, TargetKind, TargetStatus};
pub use watch::{Death, DeathWatch, Seen, DEFAULT_STOP_WINDOW};

use crate::engine::{Container, Engine, Event};
use crate::error::{exit, Coded, ErrorCode};
use crate::manifest::{Fortress, HealthCheck, Probe, RestartTarget, Sandbox};
use crate::ownership::{self, Ownership};
use crate::spec::LABEL_FORTRESS;
use crate::state::{State, StateError};

/// The audit actor of every healing action.
pub const ACTOR: &str = "heal";

#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no target named {target:?} is quarantined in fortress {fortress}")]
    NotQuarantined {
        target: String,
        fortress: String,
        quarantined: Vec<String>,
    },
    #[error("no sandbox named {sandbox:?} in fortress {fortress}")]
    UnknownSandbox { sandbox: String, fortress: String },
    #[error("sandbox {0} does not exist on the engine")]
    Missing(String),
    #[error(
        "container {name} ({id}) is not a sandbox this fortress created: {why}; it was left alone"
    )]
    NotOwned {
        name: String,
        id: String,
        why: String,
    },
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

impl Coded for HealError {
    fn code(&self) -> ErrorCode {
        match self {
            HealError::State(e) => e.code(),
            HealError::NotQuarantined { .. } | HealError::UnknownSandbox { .. } => {
                ErrorCode::ConfigInvalid
            }
            HealError::Missing(_) => ErrorCode::SandboxFailure,
            HealError::NotOwned { .. } => ErrorCode::IsolationBreach,
            HealError::Engine(e) => e.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            HealError::State(e) => e.hint(),
            HealError::NotQuarantined { quarantined, .. } if quarantined.is_empty() => {
                Some("nothing is quarantined".into())
            }
            HealError::NotQuarantined { quarantined, .. } => {
                Some(format!("quarantined: {}", quarantined.join(", ")))
            }
            HealError::UnknownSandbox { .. } => {
                Some("name a sandbox declared in the manifest".into())
            }
            HealError::Missing(_) => Some("`clw-fortress apply` creates it".into()),
            HealError::NotOwned { .. } => Some(
                "inspect it (`docker inspect`), remove it if you did not create it, then \
                 `clw-fortress apply` creates the real sandbox"
                    .into(),
            ),
            HealError::Engine(e) => e.hint(),
        }
    }
}

/// The outcome of one restart attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestartReport {
    /// `container X`, `unit U`, `user unit U`.
    pub target: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What happened to one target in one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    #[serde(flatten)]
    pub target: TargetKey,
    /// What was probed, e.g. `GET http://127.0.0.1:8080/`.
    pub probe: String,
    pub healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `None` when the target was skipped (see `skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartReport>,
    pub consecutive_failures: u32,
    pub threshold: u32,
    /// Restart attempts inside the quarantine window, after this probe.
    pub restarts_in_window: usize,
    pub quarantine_restarts: u32,
    /// `clw-health-failed` or `clw-quarantined` when one applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
}

impl TargetReport {
    /// Still failing after this probe: unhealthy and not fixed by a successful restart, or
    /// quarantined.
    pub fn failing(&self) -> bool {
        match self.decision {
            None | Some(Decision::Nothing) => false,
            Some(Decision::Restart) => !self.restart.as_ref().is_some_and(|r| r.ok),
            Some(_) => true,
        }
    }
}

/// One pass over a fortress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealReport {
    pub fortress: String,
    pub at_ms: i64,
    pub targets: Vec<TargetReport>,
}

impl HealReport {
    /// 0 when every target is healthy, skipped, or was restarted successfully in this pass;
    /// 1 when any target is still failing (below the threshold, waiting out a backoff, with
    /// nothing to restart, a failed restart) or is quarantined.
    pub fn exit_status(&self) -> u8 {
        if self.targets.iter().any(TargetReport::failing) {
            exit::FOUND_FAILURES
        } else {
            exit::OK
        }
    }
}

/// The policy of a health check.
pub fn check_policy(check: &HealthCheck) -> Policy {
    Policy {
        failures: check.failures,
        can_restart: check.restart.is_some(),
        backoff_initial: check.backoff_initial,
        backoff_max: check.backoff_max,
        quarantine_restarts: check.quarantine_restarts,
        quarantine_within: check.quarantine_within,
    }
}

/// The policy of a sandbox: `liveness.failures` (default 3) with the backoff and quarantine of
/// the health check that restarts this sandbox's container, if one does, else the manifest
/// defaults (backoff 10s..5m, quarantine 5 restarts within 30m).
pub fn sandbox_policy(fortress: &Fortress, sandbox: &Sandbox) -> Policy {
    let target = RestartTarget::Container(sandbox.name.clone());
    let base = fortress
        .health
        .iter()
        .find(|h| h.restart.as_ref() == Some(&target))
        .map(check_policy)
        .unwrap_or_else(Policy::defaults);
    Policy {
        failures: sandbox.liveness.as_ref().map_or(3, |l| l.failures),
        can_restart: true,
        ..base
    }
}

fn key(fortress: &Fortress, kind: TargetKind, name: &str) -> TargetKey {
    TargetKey {
        fortress: fortress.name.clone(),
        kind,
        name: name.to_string(),
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why the container `inspected` (found under the name of declared sandbox `sandbox`) is not
/// the one this fortress created for it; `None` when it is.
fn refusal(
    state: &State,
    fortress: &Fortress,
    sandbox: &str,
    inspected: &Container,
) -> Result<Option<(String, String)>, HealError> {
    let owner = ownership::of(
        Some(state),
        &fortress.name,
        &inspected.id,
        &inspected.labels,
    )?;
    Ok(owner
        .refusal(sandbox)
        .map(|why| (inspected.id.clone(), why)))
}

/// `Some(why)` when `target` names a declared sandbox whose container this fortress did not
/// create: such a container is never restarted, whichever path asks for it.
async fn restart_refused<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    target: &RestartTarget,
) -> Result<Option<String>, HealError> {
    let RestartTarget::Container(name) = target else {
        return Ok(None);
    };
    if !fortress.sandboxes.iter().any(|s| &s.name == name) {
        return Ok(None);
    }
    let Some(inspected) = engine.inspect(name).await? else {
        return Ok(None);
    };
    Ok(
        refusal(state, fortress, name, &inspected)?.map(|(id, why)| {
            HealError::NotOwned {
                name: name.clone(),
                id: id.chars().take(12).collect(),
                why,
            }
            .to_string()
        }),
    )
}

/// Loads, decides, acts, stores and audits one probe result.
#[allow(clippy::too_many_arguments)]
async fn act<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    key: TargetKey,
    policy: &Policy,
    probe: String,
    outcome: Outcome,
    target: Option<&RestartTarget>,
    now_ms: i64,
) -> Result<TargetReport, HealError> {
    let since = now_ms.saturating_sub(ms(policy.quarantine_within));
    let prev = store::load(state, &key, since)?;
    let decision = decide::decide(now_ms, &prev, policy, &outcome);
    let next = decide::advance(now_ms, &prev, policy, &outcome, decision);
    let reason = outcome.error().unwrap_or("").to_string();
    let mut code = None;
    let mut restart_report = None;
    match (decision, target) {
        (Decision::Restart, Some(t)) => {
            let what = restart::describe(t);
            let error = match restart_refused(engine, state, fortress, t).await? {
                Some(refused) => {
                    tracing::error!(target = %key, "not restarting {what}: {refused}");
                    Some(refused)
                }
                None => {
                    tracing::warn!(target = %key, %reason, "restarting {what}");
                    match restart::restart(engine, t).await {
                        Ok(()) => None,
                        Err(e) => {
                            if let restart::RestartError::MountedOther { container, .. } = &e {
                                // Stopped with another source mounted: recorded as a stop on
                                // purpose, so neither a pass nor the agent starts it again
                                // with that source (`apply` re-pins and starts it).
                                let at = chrono::Utc::now().timestamp_millis();
                                state.record_stop(container, "", at)?;
                            }
                            Some(crate::report::chain(&e).to_string())
                        }
                    }
                }
            };
            let outcome_s = if error.is_none() { "ok" } else { "failed" };
            let detail = match &error {
                None => format!("{what}: {reason}"),
                Some(e) => format!("{what}: {reason}; restart failed: {e}"),
            };
            state.log_restart(&key, now_ms, outcome_s, &detail)?;
            state.audit(ACTOR, "restart", &key.name, outcome_s, &detail)?;
            restart_report = Some(RestartReport {
                target: what,
                ok: error.is_none(),
                error,
            });
        }
        (Decision::Quarantine, _) => {
            let detail = format!(
                "{} restarts within {}; last error: {reason}",
                decide::restarts_within(&prev, policy, now_ms),
                humantime::format_duration(policy.quarantine_within)
            );
            tracing::error!(target = %key, "quarantined: {detail}");
            state.audit(
                ACTOR,
                "quarantine",
                &key.name,
                ErrorCode::Quarantined.as_str(),
                &detail,
            )?;
            code = Some(ErrorCode::Quarantined);
        }
        (Decision::Quarantined, _) => code = Some(ErrorCode::Quarantined),
        (Decision::Unhealthy, _) => {
            // Audit the crossing once, not every failing probe after it.
            if prev.consecutive_failures < policy.failures {
                state.audit(
                    ACTOR,
                    "health-failed",
                    &key.name,
                    ErrorCode::HealthFailed.as_str(),
                    &format!(
                        "{} consecutive failures: {reason}",
                        next.consecutive_failures
                    ),
                )?;
            }
            code = Some(ErrorCode::HealthFailed);
        }
        (Decision::WaitBackoff { .. }, _) => code = Some(ErrorCode::HealthFailed),
        _ => {}
    }
    if restart_report.as_ref().is_some_and(|r| !r.ok) {
        code = Some(ErrorCode::HealthFailed);
    }
    store::save(state, &key, &next)?;
    Ok(TargetReport {
        target: key,
        probe,
        healthy: outcome.is_healthy(),
        error: outcome.error().map(str::to_string),
        decision: Some(decision),
        skipped: None,
        restart: restart_report,
        consecutive_failures: next.consecutive_failures,
        threshold: policy.failures,
        restarts_in_window: decide::restarts_within(&next, policy, now_ms),
        quarantine_restarts: policy.quarantine_restarts,
        code,
    })
}

fn skipped(key: TargetKey, probe: String, policy: &Policy, why: String) -> TargetReport {
    TargetReport {
        target: key,
        probe,
        healthy: false,
        error: None,
        decision: None,
        skipped: Some(why),
        restart: None,
        consecutive_failures: 0,
        threshold: policy.failures,
        restarts_in_window: 0,
        quarantine_restarts: policy.quarantine_restarts,
        code: None,
    }
}

fn describe_probe(probe: &Probe) -> String {
    match probe {
        Probe::Http { url, .. } => format!("GET {url}"),
        Probe::Exec {
            container, command, ..
        } => format!("exec in {container}: {}", command.join(" ")),
    }
}

/// Probes one health check once and applies its restart policy.
pub async fn run_check<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    check: &HealthCheck,
    now_ms: i64,
) -> Result<TargetReport, HealError> {
    let outcome = match &check.probe {
        Probe::Http {
            url,
            insecure_tls,
            timeout,
        } => probe::http(url, *insecure_tls, *timeout).await,
        Probe::Exec {
            container,
            command,
            timeout,
        } => probe::exec(engine, container, command, *timeout).await,
    };
    act(
        engine,
        state,
        fortress,
        key(fortress, TargetKind::Check, &check.name),
        &check_policy(check),
        describe_probe(&check.probe),
        outcome,
        check.restart.as_ref(),
        now_ms,
    )
    .await
}

/// True when `container` was stopped on purpose after it last started.
fn stopped_deliberately(
    state: &State,
    container: &str,
    started_at_ms: Option<i64>,
) -> Result<bool, HealError> {
    Ok(state
        .last_stop(container)?
        .is_some_and(|(_, at)| started_at_ms.is_none_or(|s| at >= s)))
}

/// Probes one sandbox's liveness once and applies its policy: a container that is down (and was
/// not stopped on purpose) counts as crashed, a running one is checked against the engine's
/// healthcheck and its `liveness.exec`.
pub async fn run_sandbox<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    sandbox: &Sandbox,
    now_ms: i64,
) -> Result<TargetReport, HealError> {
    let k = key(fortress, TargetKind::Sandbox, &sandbox.name);
    let policy = sandbox_policy(fortress, sandbox);
    let desc = match &sandbox.liveness {
        Some(l) => format!("running, engine health, exec {}", l.exec.join(" ")),
        None => "running, engine health".to_string(),
    };
    let inspected = match engine.inspect(&sandbox.name).await {
        Ok(i) => i,
        Err(e) => {
            return Ok(skipped(
                k,
                desc,
                &policy,
                format!("cannot inspect: {}", crate::report::chain(&e)),
            ))
        }
    };
    if let Some(i) = &inspected {
        if let Some((_, why)) = refusal(state, fortress, &sandbox.name, i)? {
            return Ok(skipped(
                k,
                desc,
                &policy,
                format!("not the sandbox this fortress created ({why}); left alone"),
            ));
        }
    }
    let outcome = match probe::observe(inspected.as_ref()) {
        probe::Observed::Missing => {
            return Ok(skipped(
                k,
                desc,
                &policy,
                "not created (`clw-fortress apply` creates it)".into(),
            ))
        }
        probe::Observed::Down {
            exit_code,
            oom,
            started_at_ms,
        } => {
            if stopped_deliberately(state, &sandbox.name, started_at_ms)? {
                return Ok(skipped(k, desc, &policy, "stopped deliberately".into()));
            }
            Outcome::Crashed(format!(
                "not running (exit code {exit_code}{})",
                if oom { ", OOM-killed" } else { "" }
            ))
        }
        probe::Observed::EngineUnhealthy(last) => Outcome::Failed(if last.is_empty() {
            "the engine's healthcheck reports unhealthy".into()
        } else {
            format!("the engine's healthcheck reports unhealthy: {last}")
        }),
        probe::Observed::Running => match &sandbox.liveness {
            Some(l) => probe::exec(engine, &sandbox.name, &l.exec, l.timeout).await,
            None => Outcome::Healthy,
        },
    };
    act(
        engine,
        state,
        fortress,
        k,
        &policy,
        desc,
        outcome,
        Some(&RestartTarget::Container(sandbox.name.clone())),
        now_ms,
    )
    .await
}

/// One pass: every health check, then every sandbox, each probed once with its policy applied.
/// The same code serves `clw-fortress heal` (timer mode) and the daemon.
pub async fn run_once<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    now_ms: i64,
) -> Result<HealReport, HealError> {
    let mut targets = Vec::new();
    for check in &fortress.health {
        targets.push(run_check(engine, state, fortress, check, now_ms).await?);
    }
    for sandbox in &fortress.sandboxes {
        targets.push(run_sandbox(engine, state, fortress, sandbox, now_ms).await?);
    }
    Ok(HealReport {
        fortress: fortress.name.clone(),
        at_ms: now_ms,
        targets,
    })
}

/// Feeds one engine event to `watch`, recording a deliberate stop of a sandbox a fortress of
/// this database created in the state database so neither the crash path nor a later pass
/// heals it. The event does not say which fortress is watching, so the record is checked for
/// the fortress its labels name ([`crate::ownership`]): a container that only carries the
/// labels records nothing.
pub fn observe_event(
    state: &State,
    watch: &mut DeathWatch,
    event: &Event,
    now_ms: i64,
) -> Result<Seen, HealError> {
    let seen = watch.observe(event, now_ms);
    if let Seen::DeliberateStop { id, name, at_ms } = &seen {
        let claimed = event.labels.get(LABEL_FORTRESS).map_or("", String::as_str);
        if let Ownership::Owned { .. } = ownership::of(Some(state), claimed, id, &event.labels)? {
            state.record_stop(name, id, *at_ms)?;
        }
    }
    Ok(seen)
}

/// `Ok` when `sandbox` is declared in `fortress` (checked before any engine is contacted).
pub fn declared(fortress: &Fortress, sandbox: &str) -> Result<(), HealError> {
    if fortress.sandboxes.iter().any(|s| s.name == sandbox) {
        return Ok(());
    }
    Err(HealError::UnknownSandbox {
        sandbox: sandbox.into(),
        fortress: fortress.name.clone(),
    })
}

/// Stops a sandbox on purpose (only the container this fortress created for it, else
/// [`HealError::NotOwned`]): records the deliberate stop first, then asks the engine to stop
/// it, so neither the agent's crash path nor a heal pass restarts it until it is started again.
/// Engine-neutral, unlike watching for a `stop` event: Podman 4.3's compat stream does not reliably
/// carry one (measured: mostly only `died`, 143 graceful, 137 timed out) and it keeps no
/// stopped-by-user state, so its death looks like a crash. A failed stop takes the
/// record back: a later real crash must still be healed.
pub async fn stop_sandbox<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    sandbox: &str,
    timeout_s: i64,
    now_ms: i64,
) -> Result<String, HealError> {
    declared(fortress, sandbox)?;
    let inspected = engine
        .inspect(sandbox)
        .await?
        .filter(|i| !i.id.is_empty())
        .ok_or_else(|| HealError::Missing(sandbox.into()))?;
    if let Some((id, why)) = refusal(state, fortress, sandbox, &inspected)? {
        return Err(HealError::NotOwned {
            name: sandbox.into(),
            id: id.chars().take(12).collect(),
            why,
        });
    }
    let id = inspected.id;
    let previous = state.last_stop(sandbox)?;
    state.record_stop(sandbox, &id, now_ms)?;
    if let Err(e) = engine.stop(&id, timeout_s).await {
        state.restore_stop(sandbox, previous)?;
        state.audit(ACTOR, "stop", sandbox, "failed", &crate::report::chain(&e))?;
        return Err(e.into());
    }
    state.audit(ACTOR, "stop", sandbox, "ok", "stopped deliberately")?;
    Ok(id)
}

/// Heals a crashed sandbox at once, under the same backoff and quarantine rules as a failing
/// probe. Returns `None` for a container that is not a sandbox `fortress` created (whatever its
/// labels say), no longer exists,
/// runs again already, or was stopped on purpose.
pub async fn on_container_died<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    death: &Death,
    now_ms: i64,
) -> Result<Option<TargetReport>, HealError> {
    let Some(sandbox) = fortress.sandboxes.iter().find(|s| s.name == death.name) else {
        return Ok(None);
    };
    if !ownership::of(Some(state), &fortress.name, &death.id, &death.labels)?.owns(&sandbox.name) {
        return Ok(None);
    }
    let inspected = match engine.inspect(&death.id).await {
        Ok(Some(i)) => i,
        // Gone (removed) or the engine is away: nothing to restart now; a pass will see it.
        Ok(None) | Err(_) => return Ok(None),
    };
    let probe::Observed::Down { started_at_ms, .. } = probe::observe(Some(&inspected)) else {
        return Ok(None);
    };
    if stopped_deliberately(state, &sandbox.name, started_at_ms)? {
        return Ok(None);
    }
    let reason = match death.exit_code {
        Some(c) => format!("died with exit code {c}"),
        None => "died".to_string(),
    };
    act(
        engine,
        state,
        fortress,
        key(fortress, TargetKind::Sandbox, &sandbox.name),
        &sandbox_policy(fortress, sandbox),
        "engine event die".into(),
        Outcome::Crashed(reason),
        Some(&RestartTarget::Container(sandbox.name.clone())),
        now_ms,
    )
    .await
    .map(Some)
}

/// Heals every death whose stop window has passed (call when `watch.next_deadline()` is due).
pub async fn on_due<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    watch: &mut DeathWatch,
    now_ms: i64,
) -> Result<Vec<TargetReport>, HealError> {
    let mut out = Vec::new();
    for death in watch.due(now_ms) {
        out.extend(on_container_died(engine, state, fortress, &death, now_ms).await?);
    }
    Ok(out)
}

/// Lifts the quarantine of every target of `fortress` named `target` (a health check or a
/// sandbox): counters, backoff and the restart window start afresh.
pub fn release(
    state: &State,
    fortress: &str,
    target: &str,
    now_ms: i64,
) -> Result<Vec<TargetKey>, HealError> {
    let all = store::all(state, Some(fortress))?;
    let quarantined: Vec<&TargetStatus> = all
        .iter()
        .filter(|t| t.state.quarantined_since_ms.is_some())
        .collect();
    let matching: Vec<&TargetStatus> = quarantined
        .iter()
        .copied()
        .filter(|t| t.key.name == target)
        .collect();
    if matching.is_empty() {
        return Err(HealError::NotQuarantined {
            target: target.to_string(),
            fortress: fortress.to_string(),
            quarantined: quarantined.iter().map(|t| t.key.name.clone()).collect(),
        });
    }
    let mut released = Vec::new();
    for t in matching {
        store::save(state, &t.key, &decide::release(&t.state))?;
        state.mark_released(&t.key, now_ms)?;
        state.audit(ACTOR, "release", &t.key.name, "ok", "quarantine lifted")?;
        released.push(t.key.clone());
    }
    Ok(released)
}

/// Every quarantined target, of every fortress in this state database (for `status`).
pub fn quarantined(state: &State) -> Result<Vec<TargetStatus>, HealError> {
    Ok(store::all(state, None)?
        .into_iter()
        .filter(|t| t.state.quarantined_since_ms.is_some())
        .collect())
}

/// The counters of every target seen, optionally of one fortress (for `status`).
pub fn targets(state: &State, fortress: Option<&str>) -> Result<Vec<TargetStatus>, HealError> {
    Ok(store::all(state, fortress)?)
}
