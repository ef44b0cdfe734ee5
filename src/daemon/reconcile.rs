//! One reconcile per container: the work its events asked for ([`super::react::Work`]), done
//! with one inspect, concurrently with other containers' and never twice at once for one.
//!
//! The model is kube-rs's `Controller::run`: a queue that holds at most one entry per object
//! (a second event for a container that is waiting merges into its entry; one for a container
//! being handled waits and runs once after it), a bounded number of reconciles at a time, and
//! an error policy (here: log each error with its code; the scheduled sweep and the liveness
//! pass are the retries). A slow inspect of one container holds up that container only.
//!
//! [`Queue`] is the bookkeeping (pure, tested); [`reconcile`] is the driver for one container:
//! inspect once, decide ownership once (`ownership::classify` against the state's record),
//! then the pinned-bind re-check, enforcement, limit diagnosis and healing, all handed the same
//! inspect (`engine::snapshot`). It must not decide policy: that is `enforce`, `limits`, `pin`
//! and `heal`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::egress;
use super::react::Work;
use super::Shared;
use crate::enforce::{self, Outcome};
use crate::engine::snapshot::Snapshot;
use crate::engine::{Engine, EngineError};
use crate::error::{Coded, ErrorCode};
use crate::heal::HealError;
use crate::ownership::{self, Ownership};
use crate::pin::{self, Recheck};
use crate::report::{chain, headline};
use crate::state::{now_ms, StateError};

/// The audit actor of what the agent does on its own.
pub const ACTOR: &str = "daemon";

/// Pending work, one entry per container, and the containers being handled.
#[derive(Debug)]
pub struct Queue {
    pending: BTreeMap<String, Work>,
    order: VecDeque<String>,
    running: BTreeSet<String>,
    workers: usize,
    capacity: usize,
}

impl Queue {
    /// At most `workers` reconciles at a time; [`Queue::is_full`] once `capacity` containers
    /// wait (the agent then stops reading events until some are done).
    pub fn new(workers: usize, capacity: usize) -> Queue {
        Queue {
            pending: BTreeMap::new(),
            order: VecDeque::new(),
            running: BTreeSet::new(),
            workers: workers.max(1),
            capacity: capacity.max(1),
        }
    }

    /// Adds work; work for a container that already waits merges into its entry.
    pub fn push(&mut self, work: Work) {
        match self.pending.get_mut(&work.id) {
            Some(w) => w.merge(work),
            None => {
                self.order.push_back(work.id.clone());
                self.pending.insert(work.id.clone(), work);
            }
        }
    }

    /// The oldest waiting work whose container is not being handled, when a worker is free;
    /// its container counts as handled until [`Queue::done`].
    pub fn take_ready(&mut self) -> Option<Work> {
        if self.running.len() >= self.workers {
            return None;
        }
        let pos = self
            .order
            .iter()
            .position(|id| !self.running.contains(id))?;
        let id = self.order.remove(pos)?;
        let work = self.pending.remove(&id)?;
        self.running.insert(id);
        Some(work)
    }

    /// The reconcile of `id` ended (its waiting work, if any, may start now).
    pub fn done(&mut self, id: &str) {
        self.running.remove(id);
    }

    pub fn is_full(&self) -> bool {
        self.pending.len() >= self.capacity
    }

    /// Containers waiting (not counting those being handled).
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

/// What went wrong in one reconcile. The error policy logs each with its code.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot inspect container {container}")]
    Inspect {
        container: String,
        #[source]
        source: EngineError,
    },
    #[error("cannot read which containers this fortress created")]
    Record(#[source] StateError),
    #[error("sandbox {sandbox} started with other bind sources than it was created with, so it was stopped: {}", breaches.join("; "))]
    Breach {
        sandbox: String,
        breaches: Vec<String>,
    },
    #[error("sandbox {sandbox} started with other bind sources than it was created with and could not be stopped: {}", breaches.join("; "))]
    BreachNotStopped {
        sandbox: String,
        breaches: Vec<String>,
        #[source]
        source: EngineError,
    },
    #[error("cannot check the limits of {container} after a {event} event")]
    Enforce {
        container: String,
        event: &'static str,
        #[source]
        source: EngineError,
    },
    #[error("cannot record the limit events of {container}")]
    LimitEvents {
        container: String,
        #[source]
        source: StateError,
    },
    #[error("cannot heal sandbox {sandbox}")]
    Heal {
        sandbox: String,
        #[source]
        source: HealError,
    },
}

impl Coded for ReconcileError {
    fn code(&self) -> ErrorCode {
        match self {
            ReconcileError::Inspect { source, .. } | ReconcileError::Enforce { source, .. } => {
                source.code()
            }
            ReconcileError::Record(e) | ReconcileError::LimitEvents { source: e, .. } => e.code(),
            ReconcileError::Breach { .. } | ReconcileError::BreachNotStopped { .. } => {
                ErrorCode::IsolationBreach
            }
            ReconcileError::Heal { source, .. } => source.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            ReconcileError::Breach { .. } | ReconcileError::BreachNotStopped { .. } => Some(
                "put the bind source back as the directory it was (not a symlink), then `clw-fortress apply`"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The error policy: every error of a reconcile, logged with its code. Nothing is retried
/// here: the scheduled sweep puts limits back, the liveness pass heals what the crash path
/// missed.
pub fn report(name: &str, errors: &[ReconcileError]) {
    for e in errors {
        let line = headline(e.code(), &chain(e));
        if e.code() == ErrorCode::IsolationBreach {
            tracing::error!(container = %name, "{line}");
        } else {
            tracing::warn!(container = %name, "{line}");
        }
    }
}

/// Does `work` for its container: one inspect, one ownership decision, then each part of the
/// work with that inspect. Returns every error met; one failed part does not stop the others.
pub(super) async fn reconcile<E: Engine>(
    shared: &Shared<E>,
    engine: &E,
    ncpu: i64,
    work: Work,
) -> Vec<ReconcileError> {
    let mut errors = Vec::new();
    let inspected = match engine.inspect(&work.id).await {
        Ok(Some(i)) => i,
        // Gone already: nothing to limit, diagnose or heal.
        Ok(None) => return errors,
        Err(source) => {
            errors.push(ReconcileError::Inspect {
                container: work.name.clone(),
                source,
            });
            return errors;
        }
    };
    let fortress = shared.fortress();
    let policy = shared.policy(ncpu);
    let id = inspected.id.clone();
    let name = inspected.name.clone();
    let labels = inspected.labels.clone();
    // An owned sandbox: labelled as this fortress's, recorded as created by it, and still
    // declared. Only such a container is re-checked, stopped or healed.
    let owner =
        ownership::of(Some(&shared.state), &fortress.name, &id, &labels).unwrap_or_else(|e| {
            errors.push(ReconcileError::Record(e));
            ownership::classify(&fortress.name, &labels, None)
        });
    let owned = match &owner {
        Ownership::Owned { sandbox } if fortress.sandboxes.iter().any(|s| &s.name == sandbox) => {
            Some(sandbox.clone())
        }
        _ => None,
    };
    // Egress: an adopted container under an allow-list is detached from its networks on any
    // event; a start gets its listener (an owned sandbox's after the bind re-check below,
    // which may stop it instead); a death closes it.
    let egress = egress::policy_for(&fortress, &name, &labels, &owner);
    if let Some((_, _, true)) = &egress {
        if !inspected.networks.is_empty() {
            egress::detach(engine, &inspected).await;
        }
    }
    let egress_start = match egress {
        Some((who, policy, _)) if work.started && inspected.state.running => {
            Some((who, policy, inspected.clone()))
        }
        _ => None,
    };
    let view = Snapshot::new(engine, inspected);

    if let (true, Some(sandbox)) = (work.started, &owned) {
        match pin::recheck_started(&view, &id, &shared.host.proc).await {
            Ok(Recheck::Breached(breaches)) => {
                errors.push(stop_breached(shared, &view, sandbox, &id, breaches).await);
                // Stopped: nothing else to do for a container that must not run.
                return errors;
            }
            Ok(Recheck::Gone | Recheck::NotRunning | Recheck::Pinned) => {}
            Err(source) => errors.push(ReconcileError::Inspect {
                container: name.clone(),
                source,
            }),
        }
    }

    if let Some((sandbox, policy, container)) = egress_start {
        if let Err(e) = shared
            .egress
            .ensure(&fortress, &sandbox, Some(policy), &container)
            .await
        {
            tracing::error!(sandbox = %sandbox, "egress: cannot listen inside the sandbox: {e}");
        }
    }
    if work.death.is_some() {
        shared.egress.forget(&id).await;
    }

    if let Some(trigger) = work.limits {
        match enforce::enforce_one(&view, &policy, Some(&shared.state), &id, trigger).await {
            Ok(Outcome::Enforced(e)) => shared.record(&e),
            Ok(Outcome::Unchanged(_) | Outcome::Ignored) => {}
            Err(source) => errors.push(ReconcileError::Enforce {
                container: name.clone(),
                event: trigger.event().unwrap_or("sweep"),
                source,
            }),
        }
    }

    if work.diagnose && policy.target(&name, &labels, &owner).is_some() {
        let events = crate::limits::diagnose(&view, &id).await;
        for e in &events {
            tracing::warn!(container = %name, "{}", headline(e.code, &e.message));
        }
        if let Err(source) = crate::limits::record_limit_events(&shared.state, &id, &name, &events)
        {
            errors.push(ReconcileError::LimitEvents {
                container: name.clone(),
                source,
            });
        }
    }

    if let (Some(death), Some(sandbox)) = (&work.death, &owned) {
        match crate::heal::on_container_died(&view, &shared.state, &fortress, death, now_ms()).await
        {
            Ok(Some(r)) => tracing::warn!("crashed sandbox handled: {r:?}"),
            Ok(None) => {}
            Err(source) => errors.push(ReconcileError::Heal {
                sandbox: sandbox.clone(),
                source,
            }),
        }
    }
    tracing::trace!(socket = engine.socket(), id = %id, "reconciled");
    errors
}

/// Stops an owned sandbox whose bind sources moved, and records why: the deliberate stop first
/// (so neither the crash path nor a liveness pass starts it again), then the stop, the audit
/// entry and the metric.
async fn stop_breached<S, E: Engine>(
    shared: &Shared<S>,
    engine: &E,
    sandbox: &str,
    id: &str,
    breaches: Vec<String>,
) -> ReconcileError {
    if let Err(e) = shared.state.record_stop(sandbox, id, now_ms()) {
        tracing::warn!(container = %sandbox, "cannot record the stop: {}", chain(&e));
    }
    let err = match engine.stop(id, 0).await {
        Ok(()) => ReconcileError::Breach {
            sandbox: sandbox.to_string(),
            breaches,
        },
        Err(source) => ReconcileError::BreachNotStopped {
            sandbox: sandbox.to_string(),
            breaches,
            source,
        },
    };
    shared.metrics.isolation_breach();
    if let Err(e) = shared.state.audit(
        ACTOR,
        "stop",
        sandbox,
        ErrorCode::IsolationBreach.as_str(),
        &chain(&err),
    ) {
        tracing::warn!(container = %sandbox, "cannot audit the breach: {}", chain(&e));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::Trigger;

    fn work(id: &str, limits: Option<Trigger>, started: bool) -> Work {
        Work {
            id: id.into(),
            name: id.into(),
            limits,
            started,
            diagnose: false,
            death: None,
        }
    }

    #[test]
    fn work_for_a_waiting_container_merges_into_its_one_entry() {
        let mut q = Queue::new(4, 10);
        q.push(work(
            "a",
            Some(Trigger::Event(crate::engine::EventKind::Create)),
            false,
        ));
        q.push(work("b", None, false));
        q.push(work("a", None, true));
        assert_eq!(q.waiting(), 2);
        let a = q.take_ready().unwrap();
        assert_eq!(a.id, "a", "oldest first");
        assert!(a.started && a.limits.is_some(), "{a:?}");
        assert_eq!(q.take_ready().unwrap().id, "b");
        assert_eq!(q.take_ready(), None);
    }

    #[test]
    fn a_container_being_handled_waits_and_others_pass_it() {
        let mut q = Queue::new(4, 10);
        q.push(work("a", None, false));
        let first = q.take_ready().unwrap();
        // Two more events for `a` while it is handled, and one for `b`.
        q.push(work("a", None, true));
        q.push(work("a", None, false));
        q.push(work("b", None, false));
        assert_eq!(q.take_ready().unwrap().id, "b", "b does not wait for a");
        assert_eq!(q.take_ready(), None, "a runs once at a time");
        q.done(&first.id);
        let again = q.take_ready().unwrap();
        assert_eq!(again.id, "a");
        assert!(again.started, "the coalesced events run once, after");
        assert_eq!(q.take_ready(), None);
    }

    #[test]
    fn at_most_the_workers_run_and_a_full_queue_says_so() {
        let mut q = Queue::new(2, 3);
        for id in ["a", "b", "c"] {
            q.push(work(id, None, false));
        }
        assert!(q.is_full());
        assert!(q.take_ready().is_some() && q.take_ready().is_some());
        assert_eq!(q.take_ready(), None, "two workers busy");
        assert!(!q.is_full());
        q.done("a");
        assert_eq!(q.take_ready().unwrap().id, "c");
    }
}
