//! The apply driver: observe the engine, ask the planner, execute its actions.
//!
//! Order of each action is chosen so that a crash at any point leaves a state the next run
//! converges from: a container is created, then started, and removed again if the start fails
//! (a created-but-never-started container would otherwise look converged-but-stopped); a
//! recreate removes the old container before creating the new one, so a crash in between
//! leaves "absent", which the next run creates. Names are unique per engine, so no step can
//! produce a duplicate.

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::error::{Coded, ErrorCode};
use crate::manifest::{Fortress, SeccompSource};
use crate::ownership::{self, Ownership};
use crate::plan::{Action, Observed, Plan};
use crate::report::ErrorReport;
use crate::seccomp::{self, SeccompError};
use crate::spec::{self, Desired, LABEL_FORTRESS};
use crate::state::State;

/// Seccomp profiles that failed generation or validation, per sandbox.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|(s, e)| format!("sandbox {s}: {e}")).collect::<Vec<_>>().join("; "))]
pub struct PrepareError {
    pub problems: Vec<(String, SeccompError)>,
}

impl Coded for PrepareError {
    fn code(&self) -> ErrorCode {
        self.problems
            .first()
            .map(|(_, e)| e.code())
            .unwrap_or(ErrorCode::SeccompInvalid)
    }
    fn hint(&self) -> Option<String> {
        self.problems.first().and_then(|(_, e)| e.hint())
    }
}

/// The desired container of every sandbox, with its seccomp profile generated and validated.
/// Runs before any engine call, so a bad profile never reaches the engine.
pub fn prepare(fortress: &Fortress) -> Result<Vec<Desired>, PrepareError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let bundle = crate::broker::ca::bundle_of(&fortress.state_path);
    for s in &fortress.sandboxes {
        match seccomp::sandbox_profile_json(s) {
            Ok(json) => out.push(spec::desired(&fortress.name, s, Some(json), Some(&bundle))),
            Err(e) => problems.push((s.name.clone(), e)),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PrepareError { problems })
    }
}

/// Profiles named by path are re-read on every run; say which ones, for the plan header.
pub fn profile_files(fortress: &Fortress) -> Vec<String> {
    fortress
        .sandboxes
        .iter()
        .filter_map(|s| match &s.seccomp {
            SeccompSource::Profile(p) => Some(p.display().to_string()),
            SeccompSource::Policy { .. } => None,
        })
        .collect()
}

/// The containers that matter to this fortress: those whose labels claim it (owned or not, see
/// [`crate::ownership`]), and any holding a declared name.
pub async fn observe<E: Engine>(
    engine: &E,
    fortress: &str,
    desired: &[Desired],
    state: Option<&State>,
) -> Result<Vec<Observed>, EngineError> {
    let names: BTreeSet<&str> = desired.iter().map(|d| d.sandbox.as_str()).collect();
    let mut out = Vec::new();
    for c in engine.list(&[]).await? {
        let ownership = ownership::of_logged(state, fortress, &c.id, &c.labels);
        let claimed = !matches!(
            ownership,
            Ownership::Foreign | Ownership::OtherFortress { .. }
        );
        if !claimed && !names.contains(c.name.as_str()) {
            continue;
        }
        // Removed between list and inspect: it no longer exists, which is what we observe.
        let Some(i) = engine.inspect(&c.id).await? else {
            continue;
        };
        out.push(Observed {
            id: c.id,
            name: c.name,
            labels: c.labels,
            ownership,
            running: i.state.running,
            resources: i.resources,
            security: Some(i.security),
        });
    }
    Ok(out)
}

/// The outcome of one action.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub action: Action,
    pub ok: bool,
    /// `None` when ok.
    pub error: Option<Failure>,
}

/// Why one action failed: the error's code, its chain on one line and its hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn of(e: &(impl Coded + ?Sized)) -> Failure {
        Failure {
            code: e.code(),
            message: crate::report::chain(e),
            hint: e.hint(),
        }
    }

    /// The failure as a report to print (the chain is already in the message).
    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            hint: self.hint.clone(),
            ..ErrorReport::new(self.code, self.message.clone())
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub conflicts: Vec<crate::plan::Conflict>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.ok).count() + self.conflicts.len()
    }
    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.ok).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot create the bind source directory {path}")]
    CreateSource {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bind sources changed since validation: {}", problems.join("; "))]
    SourceMoved { problems: Vec<String> },
    #[error("container {id} mounts other objects than the validated bind sources, so it was removed: {}", breaches.join("; "))]
    MountedOther { id: String, breaches: Vec<String> },
    #[error("{primary}; removing the half-made container {id} also failed: {cleanup}")]
    Cleanup {
        primary: EngineError,
        id: String,
        cleanup: EngineError,
    },
}

impl Coded for ActionError {
    fn code(&self) -> ErrorCode {
        match self {
            ActionError::Engine(e) => e.code(),
            ActionError::CreateSource { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ErrorCode::PermissionDenied
            }
            ActionError::CreateSource { .. } => ErrorCode::SandboxFailure,
            ActionError::SourceMoved { .. } | ActionError::MountedOther { .. } => {
                ErrorCode::IsolationBreach
            }
            ActionError::Cleanup { primary, .. } => primary.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            ActionError::Engine(e) | ActionError::Cleanup { primary: e, .. } => e.hint(),
            ActionError::CreateSource { .. } => None,
            ActionError::SourceMoved { .. } | ActionError::MountedOther { .. } => Some(
                "something replaced a bind source after validation: find out what wrote \
                 there, then run `clw-fortress validate` and apply again"
                    .into(),
            ),
        }
    }
}

/// Creates the broker CA (and its bundle, the bind source of every sandbox with a brokered
/// secret) when one of them needs it and it is missing. Run by `apply` before creating.
pub fn ensure_broker_ca(
    fortress: &crate::manifest::Fortress,
) -> Result<(), crate::broker::ca::CaError> {
    if fortress.sandboxes.iter().all(|s| s.broker.is_empty()) {
        return Ok(());
    }
    crate::broker::ca::Ca::ensure(
        &crate::broker::ca::dir_of(&fortress.state_path),
        &fortress.name,
        std::path::Path::new(crate::broker::ca::SYSTEM_ROOTS),
    )
    .map(|_| ())
}

/// Draws new sentinels for every sandbox with a brokered secret (crate::broker): each apply
/// rotates them. A failure is logged and audited; the old sentinels stay valid.
pub fn rotate_sentinels(fortress: &crate::manifest::Fortress, state: &State, actor: &str) {
    for s in fortress.sandboxes.iter().filter(|s| !s.broker.is_empty()) {
        let names = s.broker.keys().cloned().collect::<Vec<_>>().join(",");
        let outcome = match state.rotate_broker_seed(&s.name) {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(sandbox = %s.name, error = %crate::report::chain(&e), "the brokered secrets' sentinels were not rotated");
                "failed"
            }
        };
        let _ = state.audit(
            actor,
            "rotate-sentinels",
            &s.name,
            outcome,
            &format!("brokered=[{names}]"),
        );
    }
}

/// Executes `plan`, recording every action in `state`. Continues past a failed action: one
/// sandbox's problem must not leave the others unconverged.
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &Plan,
    desired: &[Desired],
    state: &State,
    actor: &str,
) -> Report {
    let mut report = Report {
        conflicts: plan.conflicts.clone(),
        ..Default::default()
    };
    for c in &plan.conflicts {
        let _ = state.audit(actor, "conflict", &c.sandbox, "refused", &c.reason);
    }
    for action in &plan.actions {
        let result = run_action(engine, action, desired).await;
        if let Ok((_, Some(id))) = &result {
            let d = find(desired, action.target());
            let fortress = d
                .request
                .labels
                .get(LABEL_FORTRESS)
                .cloned()
                .unwrap_or_default();
            if let Err(e) = state.record_created(&fortress, &d.sandbox, id) {
                tracing::warn!(target = action.target(), error = %crate::report::chain(&e), "the created container could not be recorded; exec will refuse it until it is recreated");
            }
        }
        let (ok, error, detail) = match &result {
            Ok((detail, _)) => (true, None, detail.clone()),
            Err(e) => (false, Some(Failure::of(e)), crate::report::chain(e)),
        };
        match &result {
            Ok(_) => tracing::info!(action = action.verb(), target = action.target(), "done"),
            Err(e) => {
                tracing::warn!(action = action.verb(), target = action.target(), error = %crate::report::chain(e), "failed")
            }
        }
        let _ = state.audit(
            actor,
            action.verb(),
            action.target(),
            if ok { "ok" } else { "failed" },
            &detail,
        );
        report.outcomes.push(Outcome {
            action: action.clone(),
            ok,
            error,
        });
    }
    report
}

fn find<'a>(desired: &'a [Desired], sandbox: &str) -> &'a Desired {
    desired
        .iter()
        .find(|d| d.sandbox == sandbox)
        .expect("the planner only names declared sandboxes")
}

/// Performs one action: its audit detail, and the id of the container it created, if any.
async fn run_action<E: Engine>(
    engine: &E,
    action: &Action,
    desired: &[Desired],
) -> Result<(String, Option<String>), ActionError> {
    match action {
        Action::Create { sandbox } => {
            let id = create_and_start(engine, find(desired, sandbox)).await?;
            Ok((format!("id {}", short(&id)), Some(id)))
        }
        Action::Recreate {
            sandbox,
            id,
            reason,
        } => {
            engine.remove(id).await?;
            let new = create_and_start(engine, find(desired, sandbox)).await?;
            Ok((
                format!("{reason}; id {} -> {}", short(id), short(&new)),
                Some(new),
            ))
        }
        Action::Start { id, .. } => {
            engine.start(id).await?;
            Ok((String::new(), None))
        }
        Action::UpdateLimits {
            sandbox,
            id,
            changes,
        } => {
            engine
                .update_resources(id, &find(desired, sandbox).request.resources)
                .await?;
            Ok((crate::plan::describe_changes(changes), None))
        }
        Action::Remove { id, .. } => {
            engine.remove(id).await?;
            Ok((String::new(), None))
        }
    }
}

/// Creates the missing `create: true` bind sources, then the container, then starts it; a
/// container that cannot start is removed again so that nothing half-made stays behind.
async fn create_and_start<E: Engine>(engine: &E, d: &Desired) -> Result<String, ActionError> {
    let owner = created_dir_owner(&d.request.user, nix::unistd::geteuid().as_raw());
    for b in &d.request.binds {
        let path = std::path::Path::new(&b.source);
        if !path.exists() {
            // Only `create: true` sources may be missing after validation; 0700 because the
            // directory is the agent's private state.
            let io = |source| ActionError::CreateSource {
                path: b.source.clone(),
                source,
            };
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io)?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io)?;
            }
        }
    }
    // Pinned right before create; checked against the mounts right after start (crate::pin).
    let pins = crate::pin::pin(&d.request.binds)
        .map_err(|problems| ActionError::SourceMoved { problems })?;
    let id = engine.create(&d.request).await?;
    if let Err(primary) = engine.start(&id).await {
        return match engine.remove(&id).await {
            Ok(()) => Err(ActionError::Engine(primary)),
            Err(cleanup) => Err(ActionError::Cleanup {
                primary,
                id,
                cleanup,
            }),
        };
    }
    let pid = engine
        .inspect(&id)
        .await?
        .and_then(|i| i.state.pid)
        .unwrap_or(0);
    if pid > 0 {
        let (breaches, unknown) = crate::pin::check_mounted(Path::new("/proc"), pid, &pins);
        if !unknown.is_empty() {
            tracing::warn!(sandbox = %d.sandbox, unknown = ?unknown, "the mounted bind sources could not be compared from the host (no access to the container's root)");
        }
        if !breaches.is_empty() {
            let _ = engine.remove(&id).await;
            return Err(ActionError::MountedOther { id, breaches });
        }
    }
    Ok(id)
}

/// Who should own a bind source that apply creates. Run by the user who owns the agent's
/// state (the normal case), the directory is already theirs. Run as root (a system service),
/// a 0700 root-owned directory would be unusable to a sandbox running as `uid[:gid]`, so it is
/// handed to that user. A user given by name is resolved only inside the image, so it cannot
/// be mapped here: the directory stays root's and `verify`'s `fs.rw-binds` reports it.
pub fn created_dir_owner(user: &str, running_uid: u32) -> Option<(u32, u32)> {
    if running_uid != 0 {
        return None;
    }
    let (u, g) = user.split_once(':').unwrap_or((user, user));
    let uid: u32 = u.parse().ok()?;
    let gid: u32 = g.parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Call, FakeEngine};
    use crate::plan::plan;
    use crate::spec::tests::sandbox;

    fn desired(name: &str) -> Desired {
        spec::desired("f", &sandbox(name), Some("{}".into()), None)
    }

    #[test]
    fn created_sources_go_to_the_sandbox_user_only_when_running_as_root() {
        for (user, running, want) in [
            ("1000:1000", 0, Some((1000, 1000))),
            ("1000", 0, Some((1000, 1000))),
            ("1000:2000", 0, Some((1000, 2000))),
            ("1000:1000", 1000, None),
            ("node", 0, None),
            ("0:0", 0, None),
        ] {
            assert_eq!(
                created_dir_owner(user, running),
                want,
                "{user} as {running}"
            );
        }
    }

    /// The plan of fortress `f` against what the fake engine holds now.
    async fn plan_now(engine: &FakeEngine, d: &[Desired], state: &State) -> Plan {
        plan(
            d,
            &observe(engine, "f", d, Some(state)).await.unwrap(),
            false,
        )
    }

    #[tokio::test]
    async fn a_container_that_cannot_start_is_removed_again() {
        let engine = FakeEngine::default();
        engine.fail_start("a");
        let d = vec![desired("a")];
        let state = State::in_memory();
        let p = plan_now(&engine, &d, &state).await;
        let r = execute(&engine, &p, &d, &state, "test").await;
        assert_eq!(r.failed(), 1);
        assert!(engine.containers().is_empty(), "nothing half-made stays");
        let calls = engine.calls();
        assert!(matches!(calls.last(), Some(Call::Remove(_))), "{calls:?}");
    }

    #[tokio::test]
    async fn a_second_run_performs_no_action() {
        let engine = FakeEngine::default();
        let d = vec![desired("a"), desired("b")];
        let state = State::in_memory();
        let p = plan_now(&engine, &d, &state).await;
        assert_eq!(
            execute(&engine, &p, &d, &state, "test").await.succeeded(),
            2
        );
        let p2 = plan_now(&engine, &d, &state).await;
        assert!(p2.is_noop(), "{p2:?}");
        assert_eq!(p2.unchanged.len(), 2);
        assert_eq!(state.recent_audit(None, 10).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn one_failure_does_not_stop_the_other_sandboxes() {
        let engine = FakeEngine::default();
        engine.fail_create("a");
        let d = vec![desired("a"), desired("b")];
        let state = State::in_memory();
        let p = plan_now(&engine, &d, &state).await;
        let r = execute(&engine, &p, &d, &state, "test").await;
        assert_eq!((r.succeeded(), r.failed()), (1, 1));
        assert_eq!(engine.containers(), vec!["b".to_string()]);
    }
}
