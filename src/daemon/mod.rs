//! The long-running agent (`clw-fortress daemon`): one tokio process that watches engine
//! events, runs the periodic jobs, reloads the manifest on SIGHUP and stops on SIGTERM/SIGINT.
//!
//! It owns the process lifecycle: signals, systemd notifications, the metrics endpoint, the
//! job timetable and the manifest reload. The engine connection and the event path are in
//! `events` (connect through a [`connect::Connect`] factory, resync, classify each event once)
//! and `reconcile` (one reconcile per container, concurrent and de-duplicated). It must not
//! decide what to enforce or how: that is `enforce` (policy and driver) and the pure parts here
//! (`react`, `backoff`, `jobs::Timetable`, `reconcile::Queue`); this module is the thin shell
//! that wires them to the engine, the clock and the state database. Generic over the engine,
//! so the unit tests below drive it with the fake.

pub mod backoff;
pub mod connect;
pub mod egress;
mod events;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod ratelimit;
pub mod react;
pub mod reconcile;
pub mod sample;
pub mod tick;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Local;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};

use crate::enforce::{self, Enforcement, Policy};
use crate::engine::Engine;
use crate::error::{Coded, ErrorCode};
use crate::host::HostPaths;
use crate::manifest::Fortress;
use crate::report::{chain, ErrorReport};
use crate::state::State;

use connect::Connect;
use jobs::{Job, JobError, JobResult, JobRunner, Timetable};
use metrics::Metrics;

/// The limits sweep when `schedules.limits` is not set: every five minutes.
pub const DEFAULT_LIMITS_SCHEDULE: &str = "0 */5 * * * *";

/// The name of the limits sweep job (the same work as `clw-fortress enforce`).
pub const LIMITS_JOB: &str = "limits";

/// The job that runs due health probes, liveness checks, backups and verify (see `tick`).
pub const TICK_JOB: &str = "tick";

/// The job that gathers the per-sandbox metrics (see `sample`).
pub const METRICS_JOB: &str = "metrics";

/// How often the per-sandbox metrics are gathered when `metrics.listen` is set: as often as
/// Prometheus scrapes by default, so a scrape sees figures at most one period old.
pub const METRICS_SCHEDULE: &str = "*/15 * * * * *";

/// The longest the scheduler sleeps before looking at the wall clock again, so a clock step
/// (NTP, suspend) delays a fire by at most this much.
const MAX_SCHEDULER_SLEEP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen for metrics on {addr}")]
    MetricsListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Coded for DaemonError {
    fn code(&self) -> ErrorCode {
        match self {
            DaemonError::MetricsListen { .. } => ErrorCode::ConfigInvalid,
            DaemonError::Signal { .. } => ErrorCode::PermissionDenied,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            DaemonError::MetricsListen { addr, .. } => Some(format!(
                "another process holds {addr}, or this user may not bind it; change metrics.listen"
            )),
            DaemonError::Signal { .. } => None,
        }
    }
}

/// Loads and validates the manifest: at start and on every SIGHUP.
pub type Loader = Arc<dyn Fn() -> Result<Fortress, ErrorReport> + Send + Sync>;

/// What the command line hands the daemon (the engine comes as a [`Connect`] beside it).
pub struct Options {
    /// The manifest as loaded at start.
    pub fortress: Fortress,
    /// Loads it again on SIGHUP.
    pub load: Loader,
    /// Where the host's `/proc` is (the pinned-bind re-check looks into containers through it).
    pub host: HostPaths,
}

/// The jobs and their cron expressions for `fortress` (the metrics job only when metrics are
/// served).
pub fn job_schedules(fortress: &Fortress) -> Vec<(String, String)> {
    let mut jobs = vec![
        (
            LIMITS_JOB.to_string(),
            fortress
                .schedules
                .limits
                .clone()
                .unwrap_or_else(|| DEFAULT_LIMITS_SCHEDULE.to_string()),
        ),
        (TICK_JOB.to_string(), tick::TICK_SCHEDULE.to_string()),
    ];
    if fortress.metrics.is_some() {
        jobs.push((METRICS_JOB.to_string(), METRICS_SCHEDULE.to_string()));
    }
    jobs
}

/// The engine while connected, and its host's CPU count.
struct Conn<E> {
    engine: Arc<E>,
    ncpu: i64,
}

impl<E> Clone for Conn<E> {
    fn clone(&self) -> Self {
        Conn {
            engine: self.engine.clone(),
            ncpu: self.ncpu,
        }
    }
}

/// What the tasks of the daemon share.
struct Shared<E> {
    fortress: RwLock<Arc<Fortress>>,
    conn: RwLock<Option<Conn<E>>>,
    state: State,
    /// When each health check, liveness, backup and verify last ran (see `tick`).
    due: Mutex<tick::Due>,
    metrics: Arc<Metrics>,
    host: HostPaths,
    /// The egress proxies inside the running sandboxes that declare an allow-list.
    egress: egress::Listeners,
}

impl<E: Engine> Shared<E> {
    fn fortress(&self) -> Arc<Fortress> {
        self.fortress.read().expect("fortress lock").clone()
    }

    fn conn(&self) -> Option<Conn<E>> {
        self.conn.read().expect("conn lock").clone()
    }

    fn set_conn(&self, c: Option<Conn<E>>) {
        self.metrics.set_engine_up(c.is_some());
        *self.conn.write().expect("conn lock") = c;
    }

    fn policy(&self, ncpu: i64) -> Policy {
        Policy::new(&self.fortress(), ncpu)
    }

    /// Records one enforcement in the state database and the metrics. A database failure is
    /// logged: the limits are already applied, and stopping enforcement over a log row would
    /// be the wrong trade.
    fn record(&self, e: &Enforcement) {
        self.metrics.enforcement(e);
        if let Err(err) = enforce::record(&self.state, e) {
            tracing::error!(
                "cannot record the enforcement of {}: {}",
                e.name,
                chain(&err)
            );
        }
    }

    /// Health probes, liveness, backups and verify that are due (the same code as `heal`,
    /// `backup run` and `verify` in timer mode).
    async fn tick(&self) -> JobResult {
        let conn = self.conn().ok_or(JobError::NotConnected)?;
        let fortress = self.fortress();
        tick::run(
            &*conn.engine,
            &self.state,
            &fortress,
            &self.due,
            Local::now(),
        )
        .await
        .summary()
    }

    /// Gathers the per-sandbox metrics. Says nothing when it worked (it runs every 15 s; the
    /// job's run counter and duration show it).
    async fn sample(&self) -> JobResult {
        let conn = self.conn().ok_or(JobError::NotConnected)?;
        let fortress = self.fortress();
        let sample = sample::collect(
            &*conn.engine,
            &fortress,
            &self.policy(conn.ncpu),
            &self.state,
            &self.host,
            &self.metrics.sampled(),
        )
        .await
        .map_err(JobError::Sample)?;
        self.metrics.set_sample(sample);
        Ok(String::new())
    }

    /// The limits sweep: the same code as `clw-fortress enforce`.
    async fn sweep(&self) -> JobResult {
        let conn = self.conn().ok_or(JobError::NotConnected)?;
        let policy = self.policy(conn.ncpu);
        let report = enforce::sweep(&*conn.engine, &policy, Some(&self.state))
            .await
            .map_err(JobError::Engine)?;
        self.metrics
            .sweep_finished(chrono::Utc::now().timestamp_millis());
        for e in &report.enforced {
            self.record(e);
        }
        self.egress_sweep(&*conn.engine).await;
        let summary = format!(
            "limits sweep: {} enforced, {} failed, {} already as declared",
            report.succeeded(),
            report.failed(),
            report.unchanged.len()
        );
        let problems: Vec<ErrorReport> = report
            .enforced
            .iter()
            .filter_map(|e| {
                e.error.as_ref().map(|f| ErrorReport {
                    message: format!("{}: {}", e.name, f.message),
                    ..f.report()
                })
            })
            .collect();
        if problems.is_empty() {
            Ok(summary)
        } else {
            Err(JobError::Problems { summary, problems })
        }
    }
}

impl<E: Engine> Shared<E> {
    /// Opens the egress listener of every running owned sandbox that declares an allow-list
    /// and has none (a start the events did not bring, a reload that changed a list), and
    /// closes those whose container no longer runs. Failures are logged: the sandbox then has
    /// no way out, which is the safe side.
    async fn egress_sweep(&self, engine: &E) {
        let fortress = self.fortress();
        if fortress.sandboxes.iter().all(|s| s.egress.is_none()) && self.egress.count().await == 0 {
            return;
        }
        let Ok(list) = engine.list(&[]).await else {
            return;
        };
        let mut running = Vec::new();
        // Inspect only what could be under an allow-list: this fortress's labels, or a name
        // and labels an adopt rule with egress selects (the listing has both).
        let candidate = |s: &crate::engine::ContainerSummary| {
            s.labels.get(crate::spec::LABEL_FORTRESS) == Some(&fortress.name)
                || fortress
                    .adopt
                    .iter()
                    .any(|a| a.egress.is_some() && a.selector.matches(&s.name, &s.labels))
        };
        for s in list.iter().filter(|s| s.state == "running" && candidate(s)) {
            let Ok(Some(c)) = engine.inspect(&s.id).await else {
                continue;
            };
            let owner =
                crate::ownership::of_logged(Some(&self.state), &fortress.name, &c.id, &c.labels);
            let Some((name, policy, adopted)) =
                egress::policy_for(&fortress, &c.name, &c.labels, &owner)
            else {
                continue;
            };
            if adopted {
                egress::detach(engine, &c).await;
            }
            running.push(c.id.clone());
            if let Err(e) = self.egress.ensure(&fortress, &name, Some(policy), &c).await {
                tracing::error!(sandbox = %name, "egress: cannot listen inside the sandbox: {e}");
            }
        }
        self.egress.retain(&running).await;
    }
}

/// The agent without its process plumbing (signals, schedules, metrics server): the state it
/// shares and its jobs. What the unit tests drive.
struct Agent<E> {
    shared: Arc<Shared<E>>,
    runner: Arc<JobRunner>,
}

impl<E: Engine + 'static> Agent<E> {
    fn new(fortress: Fortress, state: State, host: HostPaths, metrics: Arc<Metrics>) -> Agent<E> {
        let egress = egress::Listeners::new(state.path().to_path_buf(), metrics.clone());
        let shared = Arc::new(Shared {
            fortress: RwLock::new(Arc::new(fortress)),
            conn: RwLock::new(None),
            egress,
            state,
            due: Mutex::new(tick::Due::new(Local::now())),
            metrics: metrics.clone(),
            host,
        });
        let limits_job = {
            let shared = shared.clone();
            Job::new(LIMITS_JOB, move || {
                let shared = shared.clone();
                async move { shared.sweep().await }
            })
        };
        let tick_job = {
            let shared = shared.clone();
            Job::new(TICK_JOB, move || {
                let shared = shared.clone();
                async move { shared.tick().await }
            })
        };
        let metrics_job = {
            let shared = shared.clone();
            Job::new(METRICS_JOB, move || {
                let shared = shared.clone();
                async move { shared.sample().await }
            })
        };
        let runner = Arc::new(JobRunner::new(
            vec![limits_job, tick_job, metrics_job],
            metrics,
        ));
        Agent { shared, runner }
    }

    /// Connects through `connect` and handles the engine's events until aborted; `ready`
    /// fires after the first resync.
    fn watch<C: Connect<Engine = E>>(
        &self,
        connect: C,
        ready: oneshot::Sender<()>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(events::watch_engine(
            self.shared.clone(),
            self.runner.clone(),
            connect,
            ready,
        ))
    }
}

/// Runs the agent until SIGTERM or SIGINT, with the engine `connect` gives. Returns an error
/// only when it cannot start.
pub async fn run<C: Connect>(opts: Options, connect: C) -> Result<(), ErrorReport> {
    let fortress = opts.fortress.clone();
    let state = State::open(&fortress.state_path).map_err(|e| ErrorReport::from_error(&e))?;
    let metrics = Arc::new(Metrics::new());
    let report = |e: DaemonError| ErrorReport::from_error(&e);
    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| {
            report(DaemonError::Signal {
                signal: name,
                source,
            })
        })
    };
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;

    let server = match &fortress.metrics {
        Some(m) => {
            let listener = metrics::bind(m.listen).await.map_err(|source| {
                report(DaemonError::MetricsListen {
                    addr: m.listen,
                    source,
                })
            })?;
            tracing::info!("metrics on http://{}/metrics", m.listen);
            Some(tokio::spawn(metrics::serve(listener, metrics.clone())))
        }
        None => None,
    };

    let agent: Agent<C::Engine> =
        Agent::new(fortress.clone(), state, opts.host.clone(), metrics.clone());
    let (schedules_tx, schedules_rx) = watch::channel(job_schedules(&fortress));
    let (ready_tx, mut ready_rx) = oneshot::channel::<()>();
    let socket = connect.socket().to_string();
    let watcher = agent.watch(connect, ready_tx);
    let scheduler = tokio::spawn(schedule_loop(agent.runner.clone(), schedules_rx));

    let watchdog = notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut ready = false;
    notify::status(&format!("waiting for the engine at {socket}"));
    tracing::info!(
        fortress = %fortress.name,
        socket = %socket,
        jobs = ?agent.runner.names(),
        "agent started"
    );

    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                break;
            }
            _ = hup.recv() => {
                notify::reloading();
                reload(&agent, &opts.load, &socket, &schedules_tx);
                let f = agent.shared.fortress();
                notify::ready(&format!(
                    "enforcing fortress {}: {} sandbox(es), {} adopt rule(s)",
                    f.name, f.sandboxes.len(), f.adopt.len()
                ));
            }
            r = &mut ready_rx, if !ready => {
                ready = true;
                if r.is_ok() {
                    let f = agent.shared.fortress();
                    notify::ready(&format!(
                        "enforcing fortress {}: {} sandbox(es), {} adopt rule(s)",
                        f.name, f.sandboxes.len(), f.adopt.len()
                    ));
                }
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify::watchdog(),
        }
    }
    notify::stopping();
    tracing::info!("stopped");
    watcher.abort();
    scheduler.abort();
    if let Some(s) = server {
        s.abort();
    }
    Ok(())
}

/// SIGHUP: load the manifest again; an invalid one keeps the previous one in force. Returns
/// whether the new one took over.
fn reload<E: Engine + 'static>(
    agent: &Agent<E>,
    load: &Loader,
    socket: &str,
    schedules: &watch::Sender<Vec<(String, String)>>,
) -> bool {
    let shared = &agent.shared;
    let old = shared.fortress();
    match load() {
        Ok(new) => {
            if new.engine.socket != old.engine.socket {
                tracing::warn!(
                    "engine.socket changed; the agent keeps {socket} until it is restarted"
                );
            }
            if new.engine.flavor != old.engine.flavor {
                tracing::warn!("engine.flavor changed; the agent keeps the one it started with until it is restarted");
            }
            if new.state_path != old.state_path {
                tracing::warn!(
                    "state.path changed; the agent keeps {} until it is restarted",
                    old.state_path.display()
                );
            }
            if new.metrics != old.metrics {
                tracing::warn!(
                    "metrics.listen changed; it takes effect when the agent is restarted"
                );
            }
            for w in &new.warnings {
                tracing::warn!("{w}");
            }
            let _ = schedules.send(job_schedules(&new));
            tracing::info!(
                fortress = %new.name,
                sandboxes = new.sandboxes.len(),
                adopt = new.adopt.len(),
                "manifest reloaded"
            );
            *shared.fortress.write().expect("fortress lock") = Arc::new(new);
            shared.metrics.reload(true);
            // New limits take effect now, not at the next scheduled sweep.
            agent.runner.try_start(LIMITS_JOB);
            true
        }
        Err(r) => {
            let mut lines = vec![r.headline()];
            lines.extend(r.details.iter().cloned());
            tracing::error!(
                "manifest reload failed; still enforcing the previous manifest: {}",
                lines.join("; ")
            );
            shared.metrics.reload(false);
            false
        }
    }
}

/// Fires the jobs on their schedules (wall clock, local time, like systemd timers).
async fn schedule_loop(runner: Arc<JobRunner>, mut specs: watch::Receiver<Vec<(String, String)>>) {
    loop {
        let current = specs.borrow_and_update().clone();
        let mut table = match Timetable::new(&current, &Local::now()) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(
                    "no periodic jobs run: {}",
                    crate::report::headline(e.code(), &chain(&e))
                );
                if specs.changed().await.is_err() {
                    return;
                }
                continue;
            }
        };
        loop {
            let Some(wake) = table.next_wake() else {
                if specs.changed().await.is_err() {
                    return;
                }
                break;
            };
            let wait = (wake - Local::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(MAX_SCHEDULER_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {
                    for name in table.due(&Local::now()) {
                        runner.try_start(&name);
                    }
                }
                changed = specs.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{Call, FakeEngine};
    use crate::engine::{CreateRequest, EngineError, EngineResult, Event, EventKind};
    use crate::manifest::{Adopt, Limits, Selector};
    use crate::spec::{LABEL_FORTRESS, LABEL_MANAGED, LABEL_SANDBOX};
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::time::Instant;

    #[test]
    fn the_limits_sweep_runs_every_five_minutes_unless_scheduled() {
        let mut f = crate::manifest::Fortress {
            file: "/f".into(),
            state_path: "/s".into(),
            ..crate::manifest::Fortress::for_tests()
        };
        assert_eq!(
            job_schedules(&f)[0],
            (LIMITS_JOB.to_string(), "0 */5 * * * *".to_string())
        );
        assert_eq!(job_schedules(&f)[1].0, TICK_JOB);
        assert_eq!(job_schedules(&f).len(), 2, "no metrics job without metrics");
        f.schedules.limits = Some("0 0 * * * *".into());
        assert_eq!(job_schedules(&f)[0].1, "0 0 * * * *");
        f.metrics = Some(crate::manifest::Metrics {
            listen: "127.0.0.1:9464".parse().unwrap(),
        });
        assert_eq!(
            job_schedules(&f)[2],
            (METRICS_JOB.to_string(), METRICS_SCHEDULE.to_string())
        );
    }

    /// A connect factory over one shared fake: each attempt fails or succeeds as scripted
    /// (`true` fails; once the script is used up every attempt succeeds).
    struct Scripted {
        engine: Arc<FakeEngine>,
        fail: Mutex<VecDeque<bool>>,
        attempts: Arc<AtomicUsize>,
    }

    impl Connect for Scripted {
        type Engine = Arc<FakeEngine>;
        async fn connect(&self) -> EngineResult<Arc<FakeEngine>> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.fail.lock().unwrap().pop_front().unwrap_or(false) {
                return Err(EngineError::BadSocket("fake://gone".into()));
            }
            Ok(self.engine.clone())
        }
        fn socket(&self) -> &str {
            "fake://"
        }
    }

    const ADOPT_LABEL: &str = "agent";

    /// Adopts containers labelled `agent=1` with a pids limit; one declared sandbox `sbx`.
    fn fortress(pids: i64) -> Fortress {
        Fortress {
            sandboxes: vec![crate::spec::tests::sandbox("sbx")],
            adopt: vec![Adopt {
                selector: Selector::Label {
                    key: ADOPT_LABEL.into(),
                    value: Some("1".into()),
                },
                limits: Limits {
                    pids: Some(pids),
                    ..Default::default()
                },
                egress: None,
            }],
            ..Fortress::for_tests()
        }
    }

    use crate::spec::tests::labels;

    fn adopted() -> BTreeMap<String, String> {
        labels(&[(ADOPT_LABEL, "1")])
    }

    fn owned() -> BTreeMap<String, String> {
        labels(&[
            (LABEL_MANAGED, "1"),
            (LABEL_FORTRESS, "f"),
            (LABEL_SANDBOX, "sbx"),
        ])
    }

    /// A running container on the fake, without limits; returns its id.
    async fn add(
        fake: &FakeEngine,
        name: &str,
        labels: BTreeMap<String, String>,
        binds: Vec<crate::engine::BindMount>,
    ) -> String {
        let id = fake
            .create(&CreateRequest {
                name: name.into(),
                labels,
                binds,
                ..Default::default()
            })
            .await
            .unwrap();
        fake.set_running(name, true);
        id
    }

    fn event(kind: EventKind, id: &str, name: &str, labels: BTreeMap<String, String>) -> Event {
        Event {
            kind,
            id: id.into(),
            name: name.into(),
            labels,
            time_nano: 1,
        }
    }

    fn updated(calls: &[Call], id: &str, pids: i64) -> bool {
        calls
            .iter()
            .any(|c| matches!(c, Call::Update(i, r) if i == id && r.pids_limit == Some(pids)))
    }

    /// Fails the test instead of hanging: on paused time this fires only once nothing else
    /// can happen before it.
    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(600), f)
            .await
            .unwrap_or_else(|_| panic!("{what} never happened"))
    }

    struct Harness {
        agent: Agent<Arc<FakeEngine>>,
        fake: Arc<FakeEngine>,
        attempts: Arc<AtomicUsize>,
        metrics: Arc<Metrics>,
        watcher: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.watcher.abort();
        }
    }

    /// An agent over `fake` with `fortress`, connecting as `fail` says; returns once the first
    /// resync is done.
    async fn start(fake: Arc<FakeEngine>, fortress: Fortress, fail: &[bool]) -> Harness {
        start_with(fake, fortress, fail, |_| {}).await
    }

    /// [`start`], with `prepare` run on the state database before the agent connects.
    async fn start_with(
        fake: Arc<FakeEngine>,
        fortress: Fortress,
        fail: &[bool],
        prepare: impl FnOnce(&State),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        prepare(&state);
        let metrics = Arc::new(Metrics::new());
        let host = HostPaths::under(dir.path());
        let agent = Agent::new(fortress, state, host, metrics.clone());
        let attempts = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = oneshot::channel();
        let watcher = agent.watch(
            Scripted {
                engine: fake.clone(),
                fail: Mutex::new(fail.iter().copied().collect()),
                attempts: attempts.clone(),
            },
            ready_tx,
        );
        within("the first resync", ready_rx).await.unwrap();
        Harness {
            agent,
            fake,
            attempts,
            metrics,
            watcher,
            _dir: dir,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_engine_goes_away_the_agent_reconnects_and_resyncs_with_a_sweep() {
        let fake = Arc::new(FakeEngine::default());
        let a = add(&fake, "a", adopted(), vec![]).await;
        let first = fake.event_feed();
        let second = fake.event_feed();
        // The engine is not there at start, then is; later it goes away and is not there for
        // one more attempt.
        let h = start(fake.clone(), fortress(64), &[true, false, true, false]).await;
        assert_eq!(h.attempts.load(Ordering::SeqCst), 2);
        assert!(updated(&h.fake.calls(), &a, 64), "the first sweep limits a");

        // Created without an event reaching the agent: only a sweep can find it.
        let b = add(&fake, "b", adopted(), vec![]).await;
        drop(first);
        within(
            "the resync sweep after the reconnect",
            h.fake.until(|c| updated(c, &b, 64)),
        )
        .await;
        assert_eq!(
            h.attempts.load(Ordering::SeqCst),
            4,
            "failed once, then connected"
        );
        assert!(h
            .metrics
            .render()
            .contains("clw_fortress_engine_reconnects_total 1"));

        // The new connection's events are handled.
        let c = add(&fake, "c", adopted(), vec![]).await;
        second
            .send(Ok(event(EventKind::Start, &c, "c", adopted())))
            .unwrap();
        within(
            "the start event of c",
            h.fake.until(|calls| updated(calls, &c, 64)),
        )
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_puts_the_new_manifest_in_force_and_a_broken_one_keeps_the_old() {
        let fake = Arc::new(FakeEngine::default());
        let a = add(&fake, "a", adopted(), vec![]).await;
        let feed = fake.event_feed();
        let h = start(fake.clone(), fortress(64), &[]).await;
        assert!(updated(&h.fake.calls(), &a, 64));

        let next: Arc<Mutex<Result<Fortress, ErrorReport>>> =
            Arc::new(Mutex::new(Ok(fortress(32))));
        let load: Loader = {
            let next = next.clone();
            Arc::new(move || next.lock().unwrap().clone())
        };
        let (schedules, _rx) = watch::channel(Vec::new());
        assert!(reload(&h.agent, &load, "fake://", &schedules));
        within("the new limits on a", h.fake.until(|c| updated(c, &a, 32))).await;

        *next.lock().unwrap() = Err(ErrorReport::new(ErrorCode::ConfigInvalid, "broken"));
        assert!(!reload(&h.agent, &load, "fake://", &schedules));
        // Still the second manifest: a new container gets its limits.
        let b = add(&fake, "b", adopted(), vec![]).await;
        feed.send(Ok(event(EventKind::Start, &b, "b", adopted())))
            .unwrap();
        within("the start event of b", h.fake.until(|c| updated(c, &b, 32))).await;
        assert!(!updated(&h.fake.calls(), &b, 64));
        let text = h.metrics.render();
        assert!(
            text.contains(r#"clw_fortress_manifest_reloads_total{outcome="ok"} 1"#)
                && text.contains(r#"clw_fortress_manifest_reloads_total{outcome="failed"} 1"#),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_whose_inspect_is_slow_does_not_delay_another_containers_limits() {
        let fake = Arc::new(FakeEngine::default());
        let feed = fake.event_feed();
        let h = start(fake.clone(), fortress(64), &[]).await;
        let slow = add(&fake, "slow", adopted(), vec![]).await;
        let quick = add(&fake, "quick", adopted(), vec![]).await;
        fake.delay_inspect("slow", Duration::from_secs(30));
        let t0 = Instant::now();
        for (id, name) in [(&slow, "slow"), (&quick, "quick")] {
            feed.send(Ok(event(EventKind::Start, id, name, adopted())))
                .unwrap();
        }
        // Paused time: the timeout fires before the slow inspect returns, unless quick's limits
        // are applied while slow's inspect is still going.
        tokio::time::timeout(
            Duration::from_secs(1),
            h.fake.until(|c| updated(c, &quick, 64)),
        )
        .await
        .expect("quick was limited without waiting for slow");
        assert!(!updated(&h.fake.calls(), &slow, 64));
        within("slow's limits", h.fake.until(|c| updated(c, &slow, 64))).await;
        assert!(t0.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_of_an_owned_sandbox_whose_bind_source_moved_stops_it_as_a_breach() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["ws", "other"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let bind = |name: &str| crate::engine::BindMount {
            source: d.join(name).display().to_string(),
            target: "/ws".into(),
            read_only: false,
        };
        let fake = Arc::new(FakeEngine::default());
        let feed = fake.event_feed();
        let h = start(fake.clone(), fortress(64), &[]).await;
        let sbx = add(&fake, "sbx", owned(), vec![bind("ws")]).await;
        h.agent
            .shared
            .state
            .record_created("f", "sbx", &sbx)
            .unwrap();
        // Labelled like the sandbox but not created by this fortress: not ours to stop, and
        // limited only because an adopt rule matches it (crate::ownership).
        let mut forged_labels = owned();
        forged_labels.extend(adopted());
        let forged = add(&fake, "forged", forged_labels.clone(), vec![bind("ws")]).await;

        // Its sources as created: started, limited, left running.
        feed.send(Ok(event(EventKind::Start, &sbx, "sbx", owned())))
            .unwrap();
        within("the limits of sbx", h.fake.until(|c| updated(c, &sbx, 64))).await;

        std::fs::rename(d.join("ws"), d.join("ws-old")).unwrap();
        std::os::unix::fs::symlink(d.join("other"), d.join("ws")).unwrap();
        for (id, name, l) in [(&forged, "forged", forged_labels), (&sbx, "sbx", owned())] {
            feed.send(Ok(event(EventKind::Start, id, name, l))).unwrap();
        }
        within(
            "the stop of sbx",
            h.fake.until(|c| c.contains(&Call::Stop(sbx.clone()))),
        )
        .await;
        within(
            "the forged container's limits",
            h.fake.until(|c| updated(c, &forged, 64)),
        )
        .await;
        assert!(!h.fake.calls().contains(&Call::Stop(forged.clone())));

        let state = &h.agent.shared.state;
        let audit = state.recent_audit(Some("sbx"), 10).unwrap();
        let entry = audit
            .iter()
            .find(|a| a.action == "stop")
            .expect("the stop is audited");
        assert_eq!(entry.outcome, "clw-isolation-breach");
        assert_eq!(entry.actor, "daemon");
        assert!(entry.detail.contains("replaced by a symlink"), "{entry:?}");
        assert!(
            state.last_stop("sbx").unwrap().is_some(),
            "recorded as a deliberate stop, so nothing heals it"
        );
        assert!(h
            .metrics
            .render()
            .contains("clw_fortress_isolation_breaches_total 1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sandbox_started_while_the_agent_was_away_is_rechecked_when_it_connects() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(d.join("other")).unwrap();
        std::os::unix::fs::symlink(d.join("other"), d.join("ws")).unwrap();
        let fake = Arc::new(FakeEngine::default());
        let sbx = add(
            &fake,
            "sbx",
            owned(),
            vec![crate::engine::BindMount {
                source: d.join("ws").display().to_string(),
                target: "/ws".into(),
                read_only: false,
            }],
        )
        .await;
        let _feed = fake.event_feed();
        // The record exists before the agent connects (apply wrote it); the agent's own
        // state handle is the same database file.
        let h = start_with(fake.clone(), fortress(64), &[], |state| {
            state.record_created("f", "sbx", &sbx).unwrap()
        })
        .await;
        within(
            "the stop of sbx",
            h.fake.until(|c| c.contains(&Call::Stop(sbx.clone()))),
        )
        .await;
        let audit = h.agent.shared.state.recent_audit(Some("sbx"), 10).unwrap();
        assert!(
            audit.iter().any(|a| a.outcome == "clw-isolation-breach"),
            "{audit:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_metrics_job_reports_each_sandbox_and_forgets_a_container_that_is_gone() {
        let fake = Arc::new(FakeEngine::default());
        let a = add(&fake, "a", adopted(), vec![]).await;
        let sbx = add(&fake, "sbx", owned(), vec![]).await;
        let _feed = fake.event_feed();
        let mut f = fortress(64);
        f.metrics = Some(crate::manifest::Metrics {
            listen: "127.0.0.1:0".parse().unwrap(),
        });
        let h = start_with(fake.clone(), f, &[], |state| {
            state.record_created("f", "sbx", &sbx).unwrap();
            state
                .record_verify_run(&crate::state::verify::VerifyRun {
                    ts_ms: 1_700_000_000_000,
                    fortress: "f".into(),
                    sandbox: "sbx".into(),
                    passed: 3,
                    failed: 1,
                    inconclusive: 0,
                    outcome: "fail".into(),
                    not_passed: vec!["net-raw".into()],
                })
                .unwrap();
        })
        .await;
        // Started right after the resync sweep, which gave `a` its pids limit.
        let text = within("the first sample", async {
            loop {
                let text = h.metrics.render();
                if text.contains("clw_fortress_sandbox_pids_limit") {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        for line in [
            r#"clw_fortress_sandbox_pids_limit{fortress="f",sandbox="a",kind="adopted"} 64"#,
            r#"clw_fortress_sandbox_oom_kills_total{fortress="f",sandbox="sbx",kind="owned"} 0"#,
            r#"clw_fortress_sandbox_heal_restarts_total{fortress="f",sandbox="sbx",kind="owned"} 0"#,
            r#"clw_fortress_sandbox_quarantined{fortress="f",sandbox="sbx",kind="owned"} 0"#,
            r#"clw_fortress_sandbox_verify_passed{fortress="f",sandbox="sbx",kind="owned"} 0"#,
            r#"clw_fortress_sandbox_verify_timestamp_seconds{fortress="f",sandbox="sbx",kind="owned"} 1700000000"#,
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        assert!(
            !text.contains(r#"clw_fortress_sandbox_heal_restarts_total{fortress="f",sandbox="a""#),
            "heal counters are the declared sandboxes': {text}"
        );

        fake.remove(&a).await.unwrap();
        let run = h.agent.runner.try_start(METRICS_JOB).expect("not running");
        assert_eq!(run.await.unwrap().unwrap(), "");
        let text = h.metrics.render();
        assert!(!text.contains(r#"sandbox="a""#), "{text}");
        assert!(text.contains(r#"sandbox="sbx""#), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_owned_sandbox_is_reconciled_once_for_diagnosis_and_healing() {
        let fake = Arc::new(FakeEngine::default());
        let feed = fake.event_feed();
        let h = start(fake.clone(), fortress(64), &[]).await;
        let sbx = add(&fake, "sbx", owned(), vec![]).await;
        h.agent
            .shared
            .state
            .record_created("f", "sbx", &sbx)
            .unwrap();
        fake.set_running("sbx", false);
        let before = fake.inspect_count("sbx");
        let mut died = owned();
        died.insert("exitCode".into(), "3".into());
        feed.send(Ok(event(EventKind::Die, &sbx, "sbx", died)))
            .unwrap();
        within(
            "the heal restart",
            h.fake.until(|c| c.contains(&Call::Restart("sbx".into()))),
        )
        .await;
        // One inspect for the death (diagnosis and healing share it), one after the restart
        // to see the sandbox run with its binds pinned.
        assert_eq!(fake.inspect_count("sbx") - before, 2);
    }
}
