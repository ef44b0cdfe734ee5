//! The per-sandbox sample behind the agent's per-sandbox metrics: what each declared sandbox
//! and each adopted container uses against its limits, and what the state database remembers
//! of it (OOM kills, heal restarts, quarantine, the last verify run) and of each backup entry.
//! The `metrics` job gathers one [`Sample`] on a schedule; [`super::metrics::Metrics`] renders
//! the newest one on each scrape.
//!
//! On a schedule rather than per scrape: a scrape must cost no engine call (anyone who can
//! reach the endpoint could otherwise make the agent hammer the engine), and one pass reads
//! the state database once for every series. What moves between two samples is computed at
//! scrape time from the stored timestamps (backup age), so it is never stale by a period.
//!
//! Usage comes from the host's cgroup files only ([`crate::limits::read_host_of`]), never from
//! an exec into the sandbox: an exec costs a process in the sandbox (and counts as a refused
//! fork in one whose pids are used up), so measuring would change what is measured. With a
//! remote engine (or one in another pid namespace) the usage series are absent; the limits,
//! from the engine's inspect, stay.
//!
//! Bounded: declared sandboxes, health checks and backup entries come from the manifest, but
//! anyone with access to the engine can create containers an adopt selector matches (or whose
//! labels claim a sandbox's name), so at most [`ADOPTED_SERIES_MAX`] containers beyond the
//! declared sandboxes are inspected and get series, the declared ones and those already
//! reported first (a burst of new containers cannot push them out); the rest are only counted.
//! A container that is gone is simply absent from the next sample, and so are its series.
//!
//! [`choose`], [`usage_of`] and [`oom_total`] are pure; [`collect`] is the driver. It
//! reads and never acts.

use std::collections::BTreeSet;

use crate::enforce::{self, Kind, Policy};
use crate::engine::{Container, Engine, EngineError};
use crate::error::{Coded, ErrorCode};
use crate::heal::{TargetKey, TargetKind};
use crate::host::HostPaths;
use crate::limits::{self, CgroupUsage};
use crate::manifest::Fortress;
use crate::state::{State, StateError};

/// Containers beyond the declared sandboxes looked at per sample, at most.
pub const ADOPTED_SERIES_MAX: usize = 200;

/// One sandbox's (or adopted container's) figures. `None`: unknown or unlimited, no series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SandboxSample {
    /// The container name (a declared sandbox's name is its container's).
    pub name: String,
    pub kind: Option<Kind>,
    pub memory_bytes: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub pids: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cpu_limit_cores: Option<f64>,
    /// OOM kills the agent diagnosed or the running container's cgroup counts ([`oom_total`]).
    pub oom_kills: u64,
    /// Declared sandboxes only: heal's restart attempts, ever.
    pub heal_restarts: Option<u64>,
    /// Declared sandboxes only: quarantined by heal now.
    pub quarantined: Option<bool>,
    /// Declared sandboxes only: the last verify run, passed or not, and when (unix ms).
    pub verify: Option<(bool, i64)>,
}

/// A `health:` entry's heal counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSample {
    pub name: String,
    pub restarts: u64,
    pub quarantined: bool,
}

/// A backup entry's newest good snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSample {
    pub entry: String,
    /// When it was taken, unix ms.
    pub created_ms: i64,
    pub size_bytes: Option<u64>,
}

/// Everything one pass gathered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    pub fortress: String,
    pub sandboxes: Vec<SandboxSample>,
    pub checks: Vec<CheckSample>,
    pub backups: Vec<BackupSample>,
    /// Containers the policy may cover that were not looked at ([`ADOPTED_SERIES_MAX`]).
    pub dropped: usize,
}

impl Sample {
    /// The containers this sample reports: the next pass looks at them first.
    pub fn reported(&self) -> BTreeSet<String> {
        self.sandboxes.iter().map(|s| s.name.clone()).collect()
    }
}

/// Why a sample could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot list or inspect the containers to sample")]
    Engine(#[source] EngineError),
    #[error("cannot read the state database for the sample")]
    State(#[source] StateError),
}

impl Coded for SampleError {
    fn code(&self) -> ErrorCode {
        match self {
            SampleError::Engine(e) => e.code(),
            SampleError::State(e) => e.code(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SampleError::Engine(e) => e.hint(),
            SampleError::State(e) => e.hint(),
        }
    }
}

/// Which of the containers the policy may cover (`candidates`, by name, any order) are looked
/// at: the `preferred` ones (the declared sandboxes, those reported last time) first, then the
/// others by name, `max` in all. Returns them and how many were left out.
pub fn choose(
    preferred: &BTreeSet<String>,
    candidates: &[String],
    max: usize,
) -> (BTreeSet<String>, usize) {
    let all: BTreeSet<&String> = candidates.iter().collect();
    let (first, rest): (Vec<&String>, Vec<&String>) =
        all.iter().copied().partition(|n| preferred.contains(*n));
    let kept: BTreeSet<String> = first.into_iter().chain(rest).take(max).cloned().collect();
    let dropped = all.len() - kept.len();
    (kept, dropped)
}

/// Usage and limits of `c`: usage from its cgroup counters (`usage`, when they could be read),
/// limits from the cgroup too (what the kernel enforces), else from the engine's inspect.
pub fn usage_of(c: &Container, usage: Option<&CgroupUsage>) -> SandboxSample {
    let engine = enforce::LimitSet::of(&c.resources);
    // A `CpuQuota` without `NanoCpus` is left to the cgroup's figure: its period is not in the
    // inspect view.
    let engine_cpus = engine.nano_cpus.map(|n| n as f64 / 1e9);
    let u = usage.copied().unwrap_or_default();
    SandboxSample {
        name: c.name.clone(),
        memory_bytes: u.memory_current,
        memory_limit_bytes: u.memory_limit.or(engine.memory),
        pids: u.pids_current,
        pids_limit: u.pids_limit.or(engine.pids),
        cpu_limit_cores: u.cpu_limit.or(engine_cpus),
        ..Default::default()
    }
}

/// OOM kills of a target: per container id the highest of the recorded count (`recorded`:
/// what the agent diagnosed on `die`/`oom` events, including Podman's kernel-log evidence)
/// and, for the running container, its cgroup's own counter (`live`: kills inside a container
/// that kept running raise no event), summed over the ids the target has had.
pub fn oom_total(recorded: &[(String, i64)], live: Option<(&str, i64)>) -> u64 {
    let mut total: i64 = 0;
    let mut live_counted = false;
    for (id, count) in recorded {
        let mut n = *count;
        if let Some((live_id, live_n)) = live {
            if live_id == id {
                n = n.max(live_n);
                live_counted = true;
            }
        }
        total = total.saturating_add(n.max(0));
    }
    if let (false, Some((_, n))) = (live_counted, live) {
        total = total.saturating_add(n.max(0));
    }
    u64::try_from(total).unwrap_or(0)
}

/// Gathers one sample: the containers the policy may cover through the engine (one list, one
/// inspect each, at most the declared sandboxes plus [`ADOPTED_SERIES_MAX`]), their cgroup
/// counters from the host, then the state database. `previous` are the containers the last
/// sample reported.
pub async fn collect<E: Engine>(
    engine: &E,
    fortress: &Fortress,
    policy: &Policy,
    state: &State,
    host: &HostPaths,
    previous: &BTreeSet<String>,
) -> Result<Sample, SampleError> {
    let list = engine.list(&[]).await.map_err(SampleError::Engine)?;
    let candidates: Vec<String> = list
        .iter()
        .filter(|c| policy.may_cover(&c.name, &c.labels))
        .map(|c| c.name.clone())
        .collect();
    // Capped before any inspect: anyone with engine access can create containers that a
    // selector matches or whose labels claim a sandbox's name.
    let mut preferred = previous.clone();
    preferred.extend(fortress.sandboxes.iter().map(|s| s.name.clone()));
    let (look, dropped) = choose(
        &preferred,
        &candidates,
        fortress.sandboxes.len() + ADOPTED_SERIES_MAX,
    );

    let mut sandboxes = Vec::new();
    for summary in list.iter().filter(|c| look.contains(&c.name)) {
        let Some(mut c) = engine
            .inspect(&summary.id)
            .await
            .map_err(SampleError::Engine)?
        else {
            continue;
        };
        if c.id.is_empty() {
            c.id = summary.id.clone();
        }
        let Some(t) = enforce::target_of(policy, Some(state), &c, &c.id) else {
            continue;
        };
        let usage = c
            .state
            .running
            .then_some(c.state.pid)
            .flatten()
            .and_then(|pid| limits::read_host_of(host, pid, &c.id))
            .map(|f| CgroupUsage::parse(&f));
        let mut s = usage_of(&c, usage.as_ref());
        s.kind = Some(t.kind);
        let live = usage
            .and_then(|u| u.memory_oom_kills)
            .map(|n| (c.id.as_str(), n));
        s.oom_kills = oom_total(
            &state
                .oom_kills_by_container(&c.name)
                .map_err(SampleError::State)?,
            live,
        );
        sandboxes.push(s);
    }
    // Every declared sandbox has its series, running or not (a quarantined one is stopped).
    for sbx in &fortress.sandboxes {
        if !sandboxes
            .iter()
            .any(|s| s.kind == Some(Kind::Owned) && s.name == sbx.name)
        {
            sandboxes.push(SandboxSample {
                name: sbx.name.clone(),
                kind: Some(Kind::Owned),
                oom_kills: oom_total(
                    &state
                        .oom_kills_by_container(&sbx.name)
                        .map_err(SampleError::State)?,
                    None,
                ),
                ..Default::default()
            });
        }
    }
    let key = |kind, name: &str| TargetKey {
        fortress: fortress.name.clone(),
        kind,
        name: name.to_string(),
    };
    for s in sandboxes.iter_mut().filter(|s| s.kind == Some(Kind::Owned)) {
        let k = key(TargetKind::Sandbox, &s.name);
        let row = state.health_target(&k).map_err(SampleError::State)?;
        s.quarantined = Some(row.is_some_and(|r| r.quarantined_since_ms.is_some()));
        s.heal_restarts = Some(state.restart_count(&k).map_err(SampleError::State)?);
        s.verify = state
            .last_verify_run(&s.name)
            .map_err(SampleError::State)?
            .map(|v| (v.outcome == "pass", v.ts_ms));
    }
    sandboxes.sort_by(|a, b| {
        (&a.name, a.kind.map(Kind::as_str)).cmp(&(&b.name, b.kind.map(Kind::as_str)))
    });

    let mut checks = Vec::new();
    for check in &fortress.health {
        let k = key(TargetKind::Check, &check.name);
        let row = state.health_target(&k).map_err(SampleError::State)?;
        checks.push(CheckSample {
            name: check.name.clone(),
            restarts: state.restart_count(&k).map_err(SampleError::State)?,
            quarantined: row.is_some_and(|r| r.quarantined_since_ms.is_some()),
        });
    }
    let mut backups = Vec::new();
    for entry in &fortress.backups {
        if let Some(snap) = state
            .last_good_snapshot_of_entry(&entry.name)
            .map_err(SampleError::State)?
        {
            backups.push(BackupSample {
                entry: entry.name.clone(),
                created_ms: snap.created_ms,
                size_bytes: snap.size_bytes,
            });
        }
    }
    Ok(Sample {
        fortress: fortress.name.clone(),
        sandboxes,
        checks,
        backups,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Resources;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn containers_reported_before_keep_their_series_when_new_ones_flood_in() {
        let previous: BTreeSet<String> = names(&["zz-gateway"]).into_iter().collect();
        let (kept, dropped) = choose(&previous, &names(&["a1", "a2", "zz-gateway"]), 2);
        assert_eq!(kept, names(&["a1", "zz-gateway"]).into_iter().collect());
        assert_eq!(dropped, 1);
        let (kept, dropped) = choose(&BTreeSet::new(), &names(&["b", "a"]), 5);
        assert_eq!(kept.len(), 2);
        assert_eq!(dropped, 0);
        // A container that is gone is not kept because it was reported before.
        let (kept, _) = choose(&previous, &names(&["a1"]), 5);
        assert_eq!(kept, names(&["a1"]).into_iter().collect());
    }

    fn container(resources: Resources) -> Container {
        Container {
            name: "sbx".into(),
            resources,
            ..Default::default()
        }
    }

    #[test]
    fn limits_come_from_the_cgroup_and_else_from_the_engine() {
        let engine = Resources {
            memory: Some(64 << 20),
            memory_swap: None,
            nano_cpus: Some(500_000_000),
            pids_limit: Some(64),
        };
        // No counters (a stopped container, a remote engine): the engine's figures, no usage.
        let s = usage_of(&container(engine), None);
        assert_eq!(s.memory_limit_bytes, Some(64 << 20));
        assert_eq!(s.pids_limit, Some(64));
        assert_eq!(s.cpu_limit_cores, Some(0.5));
        assert_eq!((s.memory_bytes, s.pids), (None, None));
        // Counters: usage, and the kernel's limits win.
        let u = CgroupUsage {
            memory_current: Some(3 << 20),
            memory_limit: Some(32 << 20),
            pids_current: Some(2),
            pids_limit: Some(32),
            cpu_limit: Some(0.25),
            ..Default::default()
        };
        let s = usage_of(&container(engine), Some(&u));
        assert_eq!(
            (
                s.memory_bytes,
                s.memory_limit_bytes,
                s.pids,
                s.pids_limit,
                s.cpu_limit_cores
            ),
            (Some(3 << 20), Some(32 << 20), Some(2), Some(32), Some(0.25))
        );
        // Unlimited: no limit series.
        let s = usage_of(&container(Resources::default()), None);
        assert_eq!(
            (s.memory_limit_bytes, s.pids_limit, s.cpu_limit_cores),
            (None, None, None)
        );
    }

    #[tokio::test]
    async fn a_flood_of_matching_containers_is_capped_before_any_inspect() {
        use crate::engine::fake::FakeEngine;
        use crate::engine::CreateRequest;
        use crate::manifest::{Adopt, Limits, Selector};
        let fake = FakeEngine::default();
        let mut all = names(&["zz-gateway"]);
        all.extend((0..ADOPTED_SERIES_MAX + 5).map(|i| format!("flood-{i:03}")));
        for name in &all {
            fake.create(&CreateRequest {
                name: name.clone(),
                labels: crate::spec::tests::labels(&[("agent", "1")]),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let fortress = Fortress {
            sandboxes: vec![crate::spec::tests::sandbox("sbx")],
            adopt: vec![Adopt {
                selector: Selector::Label {
                    key: "agent".into(),
                    value: Some("1".into()),
                },
                limits: Limits {
                    pids: Some(32),
                    ..Default::default()
                },
                egress: None,
            }],
            ..Fortress::for_tests()
        };
        let policy = Policy::new(&fortress, 4);
        let state = State::in_memory();
        let dir = tempfile::tempdir().unwrap();
        let previous = names(&["zz-gateway"]).into_iter().collect();
        let s = collect(
            &fake,
            &fortress,
            &policy,
            &state,
            &HostPaths::under(dir.path()),
            &previous,
        )
        .await
        .unwrap();
        let adopted: Vec<&str> = s
            .sandboxes
            .iter()
            .filter(|x| x.kind == Some(Kind::Adopted))
            .map(|x| x.name.as_str())
            .collect();
        // The declared sandbox's place is kept for it (it does not exist here, so 201 looked
        // at), the gateway reported before stays, the last new names by order are left out.
        assert_eq!(adopted.len(), ADOPTED_SERIES_MAX + 1, "{adopted:?}");
        assert!(adopted.contains(&"zz-gateway"));
        assert_eq!(s.dropped, 5);
        assert_eq!(fake.inspect_count("flood-204"), 0, "not inspected");
        let sbx = s.sandboxes.iter().find(|x| x.name == "sbx").unwrap();
        assert_eq!(sbx.kind, Some(Kind::Owned));
        assert_eq!(sbx.quarantined, Some(false));
        assert_eq!(sbx.memory_limit_bytes, None, "no container, no limits");
    }

    #[test]
    fn oom_kills_add_up_over_container_ids_and_the_live_counter_raises_its_own() {
        let recorded = vec![("old".to_string(), 2), ("cur".to_string(), 1)];
        assert_eq!(oom_total(&recorded, None), 3);
        assert_eq!(oom_total(&recorded, Some(("cur", 4))), 6);
        assert_eq!(
            oom_total(&recorded, Some(("cur", 0))),
            3,
            "a reset cgroup counter never lowers the total"
        );
        assert_eq!(oom_total(&recorded, Some(("new", 1))), 4);
        assert_eq!(oom_total(&[], None), 0);
    }
}
