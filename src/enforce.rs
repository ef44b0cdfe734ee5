//! Limits enforcement: the declared resource limits, applied to the containers this fortress
//! owns and to the containers its `adopt` selectors match, in one pass (`clw-fortress enforce`,
//! the daemon's sweep) or for one container (the daemon's event path).
//!
//! It owns: which container gets which limits ([`Policy`], pure), what differs ([`decide`],
//! pure, through [`crate::plan::limit_changes`]), the driver that updates limits through the
//! engine, and what goes into the `enforcement` table of the state database (`state::enforcement`).
//!
//! It must not touch anything but resource limits, and only of running or created containers
//! that are either ours (a declared sandbox this fortress created: [`crate::ownership`]) or
//! matched by an adopt selector (manifest.md, "Ownership labels"). It never creates, starts,
//! stops or removes a container: that is `apply`'s job.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::apply::Failure;
use crate::engine::{Container, Engine, EngineError, EventKind, Resources};
use crate::manifest::{Fortress, Selector};
use crate::ownership::{self, Ownership};
use crate::plan::{limit_changes, LimitChange};
use crate::spec;
use crate::state::enforcement::EnforcementRow;
use crate::state::{now_ms, State, StateError};

/// Whose container it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Created by `apply` for a declared sandbox of this fortress.
    Owned,
    /// Created by someone else (e.g. the OpenClaw gateway), matched by an `adopt` selector.
    Adopted,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Owned => "owned",
            Kind::Adopted => "adopted",
        }
    }
}

/// What made the enforcement happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A pass over every container (`enforce`, the daemon's schedule, a resync).
    Sweep,
    /// An engine event about this one container (`create`, `start`, `update`).
    Event(EventKind),
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Sweep => "sweep",
            Trigger::Event(_) => "event",
        }
    }

    /// The event's name, for an event trigger.
    pub fn event(self) -> Option<&'static str> {
        match self {
            Trigger::Sweep => None,
            Trigger::Event(EventKind::Create) => Some("create"),
            Trigger::Event(EventKind::Start) => Some("start"),
            Trigger::Event(EventKind::Update) => Some("update"),
            Trigger::Event(_) => Some("other"),
        }
    }
}

/// The limits one container should have, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub kind: Kind,
    /// The declared sandbox (owned) or the selector as written (adopted).
    pub rule: String,
    pub limits: Resources,
}

/// Who gets which limits, derived purely from the validated manifest and the engine host's CPU
/// count. Rebuilt on every manifest (re)load and engine (re)connect; cheap.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    fortress: String,
    /// Declared sandbox name -> its limits.
    owned: BTreeMap<String, Resources>,
    /// In manifest order: the first selector that matches wins.
    adopt: Vec<(Selector, Resources)>,
    /// Limits whose CPU count was clamped to the host's, for a warning.
    pub clamped: Vec<String>,
}

fn clamp(r: &mut Resources, host_cpus: i64, what: &str, clamped: &mut Vec<String>) {
    if let Some(c) = spec::cap_cpus(r, host_cpus, what) {
        clamped.push(c);
    }
}

/// A selector as the manifest writes it, for reports and the state database.
pub fn selector_text(s: &Selector) -> String {
    match s {
        Selector::Label {
            key,
            value: Some(v),
        } => format!("label {key}={v}"),
        Selector::Label { key, value: None } => format!("label {key}"),
        Selector::NamePrefix(p) => format!("namePrefix {p}"),
    }
}

impl Policy {
    pub fn new(fortress: &Fortress, host_cpus: i64) -> Policy {
        let mut clamped = Vec::new();
        let owned = fortress
            .sandboxes
            .iter()
            .map(|s| {
                let mut r = spec::resources_of(&s.limits);
                clamp(&mut r, host_cpus, &s.name, &mut clamped);
                (s.name.clone(), r)
            })
            .collect();
        let adopt = fortress
            .adopt
            .iter()
            .map(|a| {
                let mut r = spec::resources_of(&a.limits);
                clamp(&mut r, host_cpus, &selector_text(&a.selector), &mut clamped);
                (a.selector.clone(), r)
            })
            .collect();
        Policy {
            fortress: fortress.name.clone(),
            owned,
            adopt,
            clamped,
        }
    }

    pub fn fortress(&self) -> &str {
        &self.fortress
    }

    /// The limits container `name` with `labels` should have, or `None` when it is none of our
    /// business. Ownership is [`crate::ownership`]'s verdict (labels *and* the record of what
    /// this fortress created), never a similar name:
    /// - owned and declared: owned, with the sandbox's limits;
    /// - owned but no longer declared: `None` (an orphan; `apply --prune` decides its fate);
    /// - managed by another fortress: `None`, even if a selector matches, so two fortresses
    ///   on one engine never fight over a container;
    /// - anything else (labels that only claim to be ours included) matched by a selector:
    ///   adopted, first matching selector wins.
    pub fn target(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        ownership: &Ownership,
    ) -> Option<Target> {
        if let Ownership::Owned { sandbox } = ownership {
            return self.owned.get(sandbox).map(|limits| Target {
                kind: Kind::Owned,
                rule: sandbox.clone(),
                limits: *limits,
            });
        }
        if !ownership.adoptable() {
            return None;
        }
        self.adopt
            .iter()
            .find(|(s, _)| s.matches(name, labels))
            .map(|(s, limits)| Target {
                kind: Kind::Adopted,
                rule: selector_text(s),
                limits: *limits,
            })
    }

    /// Whether the policy may have an opinion on container `name` with `labels`, judged from
    /// what they claim, before any inspect or state read: the cheap filter of the sweep and of
    /// engine events (most containers on an engine are none of our business). [`Policy::target`]
    /// decides, with the record.
    pub fn may_cover(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        let claimed = ownership::classify(&self.fortress, labels, None);
        if let Ownership::Unrecorded { sandbox } = &claimed {
            if self.owned.contains_key(sandbox) {
                return true;
            }
        }
        claimed.adoptable() && self.adopt.iter().any(|(s, _)| s.matches(name, labels))
    }
}

/// The limits to change on a container that holds `observed`. Empty means converged.
pub fn decide(target: &Target, observed: &Resources) -> Vec<LimitChange> {
    limit_changes(observed, &target.limits)
}

/// Only running and created containers are enforced: a stopped one gets its limits on `start`
/// (event) or the next sweep, and updating a dead or removing one only produces errors.
pub fn enforceable_state(state: &str) -> bool {
    matches!(state, "running" | "created")
}

/// A correction is recorded as drift when the limits had been right before and somebody
/// loosened them: always for an owned sandbox (apply created it with its limits), and for an
/// adopted container when an `update` event revealed it. An adopted container found off-limits
/// by a sweep or on create/start is an adoption, not drift (it may simply be new).
pub fn is_drift(kind: Kind, trigger: Trigger) -> bool {
    kind == Kind::Owned || trigger == Trigger::Event(EventKind::Update)
}

/// Limits as reported and stored: unlimited is `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitSet {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
}

impl LimitSet {
    pub fn of(r: &Resources) -> LimitSet {
        let n = |v: Option<i64>| v.filter(|v| *v > 0);
        LimitSet {
            memory: n(r.memory),
            memory_swap: n(r.memory_swap),
            nano_cpus: n(r.nano_cpus),
            pids: n(r.pids_limit),
        }
    }

    /// `before` with the declared fields of `target` laid over it.
    fn overlay(before: &Resources, target: &Resources) -> LimitSet {
        LimitSet::of(&Resources {
            memory: target.memory.or(before.memory),
            memory_swap: target.memory_swap.or(before.memory_swap),
            nano_cpus: target.nano_cpus.or(before.nano_cpus),
            pids_limit: target.pids_limit.or(before.pids_limit),
        })
    }
}

/// One limits update this module made (or tried to make).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enforcement {
    pub ts_ms: i64,
    pub container_id: String,
    pub name: String,
    pub kind: Kind,
    pub rule: String,
    /// `sweep` or `event`.
    pub trigger: &'static str,
    /// `create`, `start` or `update` for an event trigger.
    pub event: Option<&'static str>,
    pub drift: bool,
    pub before: LimitSet,
    pub after: LimitSet,
    pub changes: Vec<LimitChange>,
    pub ok: bool,
    pub error: Option<Failure>,
}

/// A container that was checked and already had its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    pub container_id: String,
    pub name: String,
    pub kind: Kind,
    pub rule: String,
}

/// What one container came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Neither owned nor adopted, not running/created, or gone: untouched.
    Ignored,
    Unchanged(Checked),
    Enforced(Box<Enforcement>),
}

/// What one sweep did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub enforced: Vec<Enforcement>,
    pub unchanged: Vec<Checked>,
}

impl SweepReport {
    pub fn failed(&self) -> usize {
        self.enforced.iter().filter(|e| !e.ok).count()
    }
    pub fn succeeded(&self) -> usize {
        self.enforced.iter().filter(|e| e.ok).count()
    }
}

/// Checks one container by id (inspecting it for its current name, labels, state and limits;
/// `state` holds the record of what this fortress created, see [`crate::ownership`]) and
/// updates its limits when they differ from the policy. An engine error on the update is an
/// [`Outcome::Enforced`] with `ok: false`; only a failed inspect is an `Err` (the engine is
/// gone or broken, which the caller handles as a whole).
pub async fn enforce_one<E: Engine>(
    engine: &E,
    policy: &Policy,
    state: Option<&State>,
    id: &str,
    trigger: Trigger,
) -> Result<Outcome, EngineError> {
    let Some(i) = engine.inspect(id).await? else {
        return Ok(Outcome::Ignored);
    };
    if !enforceable_state(&i.state.status) {
        return Ok(Outcome::Ignored);
    }
    let name = i.name.clone();
    let container_id = if i.id.is_empty() {
        id.to_string()
    } else {
        i.id.clone()
    };
    let Some(target) = target_of(policy, state, &i, &container_id) else {
        return Ok(Outcome::Ignored);
    };
    let before = i.resources;
    let changes = decide(&target, &before);
    if changes.is_empty() {
        return Ok(Outcome::Unchanged(Checked {
            container_id,
            name,
            kind: target.kind,
            rule: target.rule,
        }));
    }
    let result = engine.update_resources(&container_id, &target.limits).await;
    let e = Enforcement {
        ts_ms: now_ms(),
        container_id,
        name,
        kind: target.kind,
        rule: target.rule.clone(),
        trigger: trigger.as_str(),
        event: trigger.event(),
        drift: is_drift(target.kind, trigger),
        before: LimitSet::of(&before),
        after: LimitSet::overlay(&before, &target.limits),
        changes,
        ok: result.is_ok(),
        error: result.as_ref().err().map(Failure::of),
    };
    match &result {
        Ok(()) => tracing::info!(
            container = %e.name, kind = e.kind.as_str(), rule = %e.rule, trigger = e.trigger,
            event = e.event.unwrap_or(""), drift = e.drift, changes = %crate::plan::describe_changes(&e.changes),
            "limits enforced"
        ),
        Err(err) => tracing::warn!(
            container = %e.name, kind = e.kind.as_str(), rule = %e.rule,
            error = %crate::report::chain(err), "limits update failed"
        ),
    }
    Ok(Outcome::Enforced(Box::new(e)))
}

/// The limits an inspected container (id `container_id`) should have: its ownership (the
/// state's record, [`crate::ownership`]) and then [`Policy::target`]. `None`: none of ours.
pub fn target_of(
    policy: &Policy,
    state: Option<&State>,
    c: &Container,
    container_id: &str,
) -> Option<Target> {
    let owner = ownership::of_logged(state, &policy.fortress, container_id, &c.labels);
    policy.target(&c.name, &c.labels, &owner)
}

/// One pass over every container on the engine: lists them, then [`enforce_one`] for each
/// running or created container the policy has an opinion on. Containers that vanish between
/// the list and the inspect are skipped.
pub async fn sweep<E: Engine>(
    engine: &E,
    policy: &Policy,
    state: Option<&State>,
) -> Result<SweepReport, EngineError> {
    let mut report = SweepReport::default();
    for c in engine.list(&[]).await? {
        if !enforceable_state(&c.state) || !policy.may_cover(&c.name, &c.labels) {
            continue;
        }
        match enforce_one(engine, policy, state, &c.id, Trigger::Sweep).await? {
            Outcome::Ignored => {}
            Outcome::Unchanged(u) => report.unchanged.push(u),
            Outcome::Enforced(e) => report.enforced.push(*e),
        }
    }
    Ok(report)
}

/// Appends one enforcement to the state database. Names and numbers only, never a secret.
pub fn record(state: &State, e: &Enforcement) -> Result<(), StateError> {
    let json = |v: &LimitSet| serde_json::to_string(v).expect("plain data serialises");
    state.record_enforcement(&EnforcementRow {
        id: 0,
        ts_ms: e.ts_ms,
        container_id: e.container_id.clone(),
        name: e.name.clone(),
        kind: e.kind.as_str().to_string(),
        rule: e.rule.clone(),
        trigger: e.trigger.to_string(),
        event: e.event.map(str::to_string),
        drift: e.drift,
        before: json(&e.before),
        after: json(&e.after),
        outcome: if e.ok { "ok" } else { "failed" }.to_string(),
        error: e.error.as_ref().map(|f| f.message.clone()),
    })
}

/// One row of the `enforcement` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnforcementRecord {
    pub id: i64,
    pub ts_ms: i64,
    pub container_id: String,
    pub name: String,
    /// `owned` or `adopted`.
    pub kind: String,
    pub rule: String,
    /// `sweep` or `event`.
    pub trigger: String,
    pub event: Option<String>,
    pub drift: bool,
    pub before: LimitSet,
    pub after: LimitSet,
    /// `ok` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

/// The newest `limit` enforcements, newest first; only those of container `name` when given.
pub fn recent_enforcements(
    state: &State,
    name: Option<&str>,
    limit: usize,
) -> Result<Vec<EnforcementRecord>, StateError> {
    let parse = |s: &str| serde_json::from_str::<LimitSet>(s).unwrap_or_default();
    Ok(state
        .recent_enforcements(name, limit)?
        .into_iter()
        .map(|r| EnforcementRecord {
            before: parse(&r.before),
            after: parse(&r.after),
            id: r.id,
            ts_ms: r.ts_ms,
            container_id: r.container_id,
            name: r.name,
            kind: r.kind,
            rule: r.rule,
            trigger: r.trigger,
            event: r.event,
            drift: r.drift,
            outcome: r.outcome,
            error: r.error,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Call, FakeEngine};
    use crate::engine::CreateRequest;
    use crate::manifest::{Adopt, Limits};
    use crate::spec::{LABEL_FORTRESS, LABEL_MANAGED, LABEL_SANDBOX};

    use crate::spec::tests::labels;

    fn limits(memory: i64, cpus: f64, pids: i64) -> Limits {
        Limits {
            memory: Some(memory),
            memory_swap: Some(memory),
            cpus: Some(cpus),
            pids: Some(pids),
        }
    }

    fn fortress() -> Fortress {
        Fortress {
            sandboxes: vec![crate::spec::tests::sandbox("sbx-main")],
            adopt: vec![
                Adopt {
                    selector: Selector::Label {
                        key: "openclaw.sandbox".into(),
                        value: Some("1".into()),
                    },
                    limits: limits(128 << 20, 1.0, 100),
                    egress: None,
                },
                Adopt {
                    selector: Selector::NamePrefix("openclaw-sbx-".into()),
                    limits: limits(256 << 20, 8.0, 200),
                    egress: None,
                },
                Adopt {
                    selector: Selector::Label {
                        key: "agent".into(),
                        value: None,
                    },
                    limits: Limits {
                        pids: Some(50),
                        ..Default::default()
                    },
                    egress: None,
                },
            ],
            ..Fortress::for_tests()
        }
    }

    #[test]
    fn each_container_gets_the_limits_of_the_rule_that_owns_or_adopts_it() {
        let p = Policy::new(&fortress(), 2);
        let ours = labels(&[
            (LABEL_MANAGED, "1"),
            (LABEL_FORTRESS, "f"),
            (LABEL_SANDBOX, "sbx-main"),
        ]);
        type Case<'a> = (&'a str, BTreeMap<String, String>, Option<(Kind, &'a str)>);
        let cases: Vec<Case> = vec![
            ("sbx-main", ours.clone(), Some((Kind::Owned, "sbx-main"))),
            (
                "x",
                labels(&[("openclaw.sandbox", "1")]),
                Some((Kind::Adopted, "label openclaw.sandbox=1")),
            ),
            // The label wins over the prefix: manifest order.
            (
                "openclaw-sbx-a",
                labels(&[("openclaw.sandbox", "1")]),
                Some((Kind::Adopted, "label openclaw.sandbox=1")),
            ),
            (
                "openclaw-sbx-a",
                labels(&[]),
                Some((Kind::Adopted, "namePrefix openclaw-sbx-")),
            ),
            (
                "/openclaw-sbx-b",
                labels(&[]),
                Some((Kind::Adopted, "namePrefix openclaw-sbx-")),
            ),
            (
                "y",
                labels(&[("agent", "anything")]),
                Some((Kind::Adopted, "label agent")),
            ),
            // Similar is not the same.
            ("openclaw-sbx", labels(&[]), None),
            ("my-openclaw-sbx-a", labels(&[]), None),
            ("x", labels(&[("openclaw.sandbox", "0")]), None),
            ("x", labels(&[("openclaw.sandbox.x", "1")]), None),
            ("x", labels(&[("agents", "1")]), None),
            // Our label, another fortress: never ours, even when a selector matches.
            (
                "openclaw-sbx-c",
                labels(&[
                    (LABEL_MANAGED, "1"),
                    (LABEL_FORTRESS, "other"),
                    (LABEL_SANDBOX, "sbx-main"),
                ]),
                None,
            ),
            // Ours but no longer declared: an orphan, left to apply --prune.
            (
                "gone",
                labels(&[
                    (LABEL_MANAGED, "1"),
                    (LABEL_FORTRESS, "f"),
                    (LABEL_SANDBOX, "gone"),
                ]),
                None,
            ),
            // A fortress label without managed=1 is not ownership; the name decides nothing.
            (
                "sbx-main",
                labels(&[(LABEL_FORTRESS, "f"), (LABEL_SANDBOX, "sbx-main")]),
                None,
            ),
        ];
        for (name, l, want) in cases {
            // As apply records them: the labelled sandbox is the recorded one.
            let recorded = l.get(LABEL_SANDBOX).map(String::as_str);
            let owner = ownership::classify("f", &l, recorded);
            let got = p.target(name, &l, &owner).map(|t| (t.kind, t.rule));
            assert_eq!(got, want.map(|(k, r)| (k, r.to_string())), "{name} {l:?}");
            assert_eq!(p.may_cover(name, &l), got.is_some(), "{name} {l:?}");
        }
    }

    #[test]
    fn labels_that_only_claim_a_sandbox_get_no_owned_limits_but_adopt_rules_still_apply() {
        let p = Policy::new(&fortress(), 2);
        let claim = labels(&[
            (LABEL_MANAGED, "1"),
            (LABEL_FORTRESS, "f"),
            (LABEL_SANDBOX, "sbx-main"),
        ]);
        for recorded in [None, Some("other")] {
            let owner = ownership::classify("f", &claim, recorded);
            assert_eq!(p.target("sbx-main", &claim, &owner), None, "{owner:?}");
            let t = p.target("openclaw-sbx-x", &claim, &owner).unwrap();
            assert_eq!(
                (t.kind, t.rule.as_str()),
                (Kind::Adopted, "namePrefix openclaw-sbx-")
            );
        }
        // The cheap filter lets the claim through; the record decides.
        assert!(p.may_cover("sbx-main", &claim));
    }

    #[test]
    fn cpus_above_the_host_count_are_clamped_for_adopted_containers_too() {
        let p = Policy::new(&fortress(), 2);
        let t = p
            .target("openclaw-sbx-a", &labels(&[]), &Ownership::Foreign)
            .unwrap();
        assert_eq!(t.limits.nano_cpus, Some(2_000_000_000));
        assert_eq!(p.clamped.len(), 1, "{:?}", p.clamped);
        let t = p
            .target("y", &labels(&[("agent", "")]), &Ownership::Foreign)
            .unwrap();
        assert_eq!(t.limits.nano_cpus, None, "no opinion stays no opinion");
    }

    #[test]
    fn only_running_and_created_containers_are_enforced() {
        for (s, want) in [
            ("running", true),
            ("created", true),
            ("exited", false),
            ("paused", false),
            ("restarting", false),
            ("removing", false),
            ("dead", false),
        ] {
            assert_eq!(enforceable_state(s), want, "{s}");
        }
    }

    #[test]
    fn drift_is_an_owned_correction_or_one_revealed_by_an_update_event() {
        use EventKind::*;
        for (kind, trigger, want) in [
            (Kind::Owned, Trigger::Sweep, true),
            (Kind::Owned, Trigger::Event(Start), true),
            (Kind::Adopted, Trigger::Sweep, false),
            (Kind::Adopted, Trigger::Event(Create), false),
            (Kind::Adopted, Trigger::Event(Update), true),
        ] {
            assert_eq!(is_drift(kind, trigger), want, "{kind:?} {trigger:?}");
        }
    }

    #[test]
    fn undeclared_limits_are_no_opinion_and_unlimited_equals_zero() {
        let t = Target {
            kind: Kind::Adopted,
            rule: "r".into(),
            limits: Resources {
                pids_limit: Some(50),
                ..Default::default()
            },
        };
        let observed = Resources {
            memory: Some(1 << 30),
            pids_limit: Some(0),
            ..Default::default()
        };
        let c = decide(&t, &observed);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].field, c[0].from, c[0].to), ("pids", None, Some(50)));
        let after = LimitSet::overlay(&observed, &t.limits);
        assert_eq!(after.memory, Some(1 << 30));
        assert_eq!(after.pids, Some(50));
    }

    async fn add(
        engine: &FakeEngine,
        name: &str,
        l: BTreeMap<String, String>,
        start: bool,
    ) -> String {
        let id = engine
            .create(&CreateRequest {
                name: name.into(),
                labels: l,
                ..Default::default()
            })
            .await
            .unwrap();
        if start {
            engine.start(&id).await.unwrap();
        }
        id
    }

    #[tokio::test]
    async fn a_sweep_limits_owned_and_adopted_containers_and_nothing_else() {
        let engine = FakeEngine::default();
        let state = State::in_memory();
        let ours = labels(&[
            (LABEL_MANAGED, "1"),
            (LABEL_FORTRESS, "f"),
            (LABEL_SANDBOX, "sbx-main"),
        ]);
        let id = add(&engine, "sbx-main", ours.clone(), true).await;
        state.record_created("f", "sbx-main", &id).unwrap();
        // The same labels on a container this fortress did not create: not owned.
        add(&engine, "sbx-copy", ours, true).await;
        add(&engine, "openclaw-sbx-1", labels(&[]), true).await;
        add(&engine, "created-only", labels(&[("agent", "x")]), false).await;
        add(&engine, "bystander", labels(&[("other", "1")]), true).await;
        let p = Policy::new(&fortress(), 2);
        let r = sweep(&engine, &p, Some(&state)).await.unwrap();
        let mut names: Vec<&str> = r.enforced.iter().map(|e| e.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["created-only", "openclaw-sbx-1", "sbx-main"]);
        assert!(r.enforced.iter().all(|e| e.ok));
        let updated: Vec<String> = engine
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Update(id, _) => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(updated.len(), 3);
        // Converged: the second pass changes nothing and reports every container unchanged.
        let r2 = sweep(&engine, &p, Some(&state)).await.unwrap();
        assert!(r2.enforced.is_empty(), "{:?}", r2.enforced);
        assert_eq!(r2.unchanged.len(), 3);
    }

    #[test]
    fn enforcements_are_recorded_and_read_back_newest_first() {
        let s = State::in_memory();
        let mk = |name: &str, ok: bool| Enforcement {
            ts_ms: 1,
            container_id: format!("id-{name}"),
            name: name.into(),
            kind: Kind::Adopted,
            rule: "label a=1".into(),
            trigger: "event",
            event: Some("create"),
            drift: false,
            before: LimitSet::default(),
            after: LimitSet {
                pids: Some(64),
                ..Default::default()
            },
            changes: vec![],
            ok,
            error: None,
        };
        record(&s, &mk("a", true)).unwrap();
        record(&s, &mk("b", false)).unwrap();
        let all = recent_enforcements(&s, None, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "b");
        assert_eq!(all[0].outcome, "failed");
        assert_eq!(all[1].after.pids, Some(64));
        assert_eq!(all[1].event.as_deref(), Some("create"));
        assert_eq!(recent_enforcements(&s, Some("a"), 10).unwrap().len(), 1);
    }
}
