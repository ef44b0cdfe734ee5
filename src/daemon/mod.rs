//! The long-running agent (`clw-fortress daemon`): one tokio process that watches engine
//! events, runs the periodic jobs, reloads the manifest on SIGHUP and stops on SIGTERM/SIGINT.
//!
//! It owns the process lifecycle: the engine connection (reconnect with capped backoff, resync
//! with a full sweep), the job timetable, signals, systemd notifications and the metrics
//! endpoint. It must not decide what to enforce or how: that is `enforce` (policy and driver)
//! and the pure parts here (`react`, `backoff`, `jobs::Timetable`); this file is the thin shell
//! that wires them to the engine, the clock and the state database.

pub mod backoff;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod react;
pub mod tick;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Local;
use futures_util::StreamExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};

use crate::enforce::{self, Enforcement, Outcome, Policy};
use crate::engine::{DockerEngine, Engine, Event, Flavor};
use crate::error::{Coded, ErrorCode};
use crate::manifest::Fortress;
use crate::report::{chain, ErrorReport};
use crate::state::State;

use backoff::Backoff;
use jobs::{Job, JobResult, JobRunner, Timetable};
use metrics::Metrics;

/// The limits sweep when `schedules.limits` is not set: every five minutes.
pub const DEFAULT_LIMITS_SCHEDULE: &str = "0 */5 * * * *";

/// The name of the limits sweep job (the same work as `clw-fortress enforce`).
pub const LIMITS_JOB: &str = "limits";

/// The job that runs due health probes, liveness checks, backups and verify (see `tick`).
pub const TICK_JOB: &str = "tick";

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

/// What the command line hands the daemon.
pub struct Options {
    /// The manifest as loaded at start.
    pub fortress: Fortress,
    /// Loads it again on SIGHUP.
    pub load: Loader,
    /// The engine socket URL, resolved once at start (a change needs a restart).
    pub socket: String,
    /// The declared `engine.flavor` at start; `None` for `auto` (a change needs a restart).
    pub flavor: Option<Flavor>,
    /// Where Podman-bound seccomp profiles would go (the engine adapter wants one).
    pub profile_dir: PathBuf,
}

/// The jobs and their cron expressions for `fortress`. Heal, backup and verify join here as
/// their capabilities land.
pub fn job_schedules(fortress: &Fortress) -> Vec<(String, String)> {
    vec![
        (
            LIMITS_JOB.to_string(),
            fortress
                .schedules
                .limits
                .clone()
                .unwrap_or_else(|| DEFAULT_LIMITS_SCHEDULE.to_string()),
        ),
        (TICK_JOB.to_string(), tick::TICK_SCHEDULE.to_string()),
    ]
}

#[derive(Clone)]
struct Conn {
    engine: DockerEngine,
    ncpu: i64,
}

/// What the tasks of the daemon share.
struct Shared {
    fortress: RwLock<Arc<Fortress>>,
    conn: RwLock<Option<Conn>>,
    state: State,
    /// When each health check, liveness, backup and verify last ran (see `tick`).
    due: Mutex<tick::Due>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn fortress(&self) -> Arc<Fortress> {
        self.fortress.read().expect("fortress lock").clone()
    }

    fn conn(&self) -> Option<Conn> {
        self.conn.read().expect("conn lock").clone()
    }

    fn set_conn(&self, c: Option<Conn>) {
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
        let conn = self
            .conn()
            .ok_or_else(|| "the engine is not connected".to_string())?;
        let fortress = self.fortress();
        tick::run(
            &conn.engine,
            &self.state,
            &fortress,
            &self.due,
            Local::now(),
        )
        .await
        .summary()
    }

    /// The limits sweep: the same code as `clw-fortress enforce`.
    async fn sweep(&self) -> JobResult {
        let conn = self
            .conn()
            .ok_or_else(|| "the engine is not connected".to_string())?;
        let policy = self.policy(conn.ncpu);
        let report = enforce::sweep(&conn.engine, &policy, Some(&self.state))
            .await
            .map_err(|e| chain(&e))?;
        self.metrics
            .sweep_finished(chrono::Utc::now().timestamp_millis());
        for e in &report.enforced {
            self.record(e);
        }
        let summary = format!(
            "limits sweep: {} enforced, {} failed, {} already as declared",
            report.succeeded(),
            report.failed(),
            report.unchanged.len()
        );
        if report.failed() > 0 {
            Err(summary)
        } else {
            Ok(summary)
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT. Returns an error only when it cannot start.
pub async fn run(opts: Options) -> Result<(), ErrorReport> {
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

    let shared = Arc::new(Shared {
        fortress: RwLock::new(Arc::new(fortress.clone())),
        conn: RwLock::new(None),
        state,
        due: Mutex::new(tick::Due::new(Local::now())),
        metrics: metrics.clone(),
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
    let runner = Arc::new(JobRunner::new(vec![limits_job, tick_job], metrics.clone()));
    let (schedules_tx, schedules_rx) = watch::channel(job_schedules(&fortress));
    let (ready_tx, mut ready_rx) = oneshot::channel::<()>();

    let watcher = tokio::spawn(watch_engine(
        shared.clone(),
        runner.clone(),
        opts.socket.clone(),
        opts.flavor,
        opts.profile_dir.clone(),
        ready_tx,
    ));
    let scheduler = tokio::spawn(schedule_loop(runner.clone(), schedules_rx));

    let watchdog = notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut ready = false;
    notify::status(&format!("waiting for the engine at {}", opts.socket));
    tracing::info!(
        fortress = %fortress.name,
        socket = %opts.socket,
        jobs = ?runner.names(),
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
            _ = hup.recv() => reload(&shared, &opts, &schedules_tx, &runner),
            r = &mut ready_rx, if !ready => {
                ready = true;
                if r.is_ok() {
                    let f = shared.fortress();
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

/// SIGHUP: load the manifest again; an invalid one keeps the previous one in force.
fn reload(
    shared: &Shared,
    opts: &Options,
    schedules: &watch::Sender<Vec<(String, String)>>,
    runner: &JobRunner,
) {
    notify::reloading();
    let old = shared.fortress();
    match (opts.load)() {
        Ok(new) => {
            if new.engine.socket != old.engine.socket {
                tracing::warn!(
                    "engine.socket changed; the agent keeps {} until it is restarted",
                    opts.socket
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
            runner.try_start(LIMITS_JOB);
        }
        Err(r) => {
            let mut lines = vec![r.headline()];
            lines.extend(r.details.iter().cloned());
            tracing::error!(
                "manifest reload failed; still enforcing the previous manifest: {}",
                lines.join("; ")
            );
            shared.metrics.reload(false);
        }
    }
    let f = shared.fortress();
    notify::ready(&format!(
        "enforcing fortress {}: {} sandbox(es), {} adopt rule(s)",
        f.name,
        f.sandboxes.len(),
        f.adopt.len()
    ));
}

/// Fires the jobs on their schedules (wall clock, local time, like systemd timers).
async fn schedule_loop(runner: Arc<JobRunner>, mut specs: watch::Receiver<Vec<(String, String)>>) {
    loop {
        let current = specs.borrow_and_update().clone();
        let mut table = match Timetable::new(&current, &Local::now()) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("no periodic jobs run: {e}");
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

/// Connects, resyncs with a full sweep, then handles events until the engine goes away; then
/// reconnects with capped exponential backoff. Runs until aborted.
async fn watch_engine(
    shared: Arc<Shared>,
    runner: Arc<JobRunner>,
    socket: String,
    flavor: Option<Flavor>,
    profile_dir: PathBuf,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Backoff::engine();
    let mut lost_once = false;
    loop {
        let connected =
            match DockerEngine::connect_expecting(&socket, profile_dir.clone(), flavor).await {
                Ok(engine) => engine.info().await.map(|i| (engine, i.ncpu)),
                Err(e) => Err(e),
            };
        let (engine, ncpu) = match connected {
            Ok(c) => c,
            Err(e) => {
                let delay = backoff.next_delay();
                // Unreachable, or another flavor than engine.flavor declares: both may be a
                // moment of an engine being switched, so both are retried.
                let what = e.code().as_str();
                tracing::warn!(
                    "engine at {socket} not usable ({}: {}); retrying in {delay:?}",
                    what,
                    chain(&e)
                );
                notify::status(&format!(
                    "engine at {socket} not usable ({what}); retrying in {delay:?}"
                ));
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        // Subscribe before the sweep, so a container created while the sweep runs is seen by
        // one or the other. The pump polls the stream at once; events queue in the channel.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut stream = engine.events();
        let pump = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        shared.set_conn(Some(Conn {
            engine: engine.clone(),
            ncpu,
        }));
        let policy = shared.policy(ncpu);
        for c in &policy.clamped {
            tracing::warn!("cpus above the engine host's count, clamped: {c}");
        }
        if lost_once {
            shared.metrics.reconnected();
            tracing::warn!("engine reconnected at {socket}; resyncing with a full sweep");
        } else {
            tracing::info!("engine connected at {socket}; initial sweep");
        }
        resync(&runner).await;
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        notify::status(&format!("watching engine events at {socket}"));

        let mut deaths = crate::heal::DeathWatch::default();
        let why = loop {
            // A `die` is healed once its stop window has passed without a `stop` (a deliberate
            // `docker stop` is not a crash); sleep until the earliest such deadline.
            let deadline = deaths.next_deadline();
            let wait = deadline
                .map(|d| Duration::from_millis((d - crate::state::now_ms()).max(0) as u64))
                .unwrap_or(MAX_SCHEDULER_SLEEP);
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Ok(ev)) => {
                        // Who gets which limits, decided once per event for both uses.
                        let policy = shared.policy(ncpu);
                        observe_death(&shared, &mut deaths, &ev);
                        diagnose_limits(&shared, &engine, &policy, &ev).await;
                        handle_event(&shared, &engine, &policy, ev).await;
                    }
                    Some(Err(e)) => break chain(&e),
                    None => break "the event stream ended".to_string(),
                },
                _ = tokio::time::sleep(wait), if deadline.is_some() => {
                    heal_deaths(&shared, &engine, &mut deaths).await;
                }
            }
        };
        pump.abort();
        shared.set_conn(None);
        lost_once = true;
        let delay = backoff.next_delay();
        tracing::warn!("lost the engine at {socket} ({why}); reconnecting in {delay:?}");
        notify::status(&format!("lost the engine at {socket}; reconnecting"));
        tokio::time::sleep(delay).await;
    }
}

/// A full sweep through the limits job, waiting for a run already going to finish first (it
/// may have started before the engine was back and found nothing to talk to).
async fn resync(runner: &JobRunner) {
    loop {
        if !runner.is_running(LIMITS_JOB) {
            if let Some(h) = runner.try_start(LIMITS_JOB) {
                let _ = h.await;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Feeds an event to the crash detector (records deliberate stops of managed sandboxes).
fn observe_death(shared: &Shared, deaths: &mut crate::heal::DeathWatch, ev: &Event) {
    if let Err(e) = crate::heal::observe_event(&shared.state, deaths, ev, crate::state::now_ms()) {
        tracing::warn!(container = %ev.name, "cannot record the event for healing: {}", chain(&e));
    }
}

/// Restarts the sandboxes that died and were not stopped on purpose, under the heal policy.
async fn heal_deaths(shared: &Shared, engine: &DockerEngine, deaths: &mut crate::heal::DeathWatch) {
    let fortress = shared.fortress();
    match crate::heal::on_due(
        engine,
        &shared.state,
        &fortress,
        deaths,
        crate::state::now_ms(),
    )
    .await
    {
        Ok(reports) => {
            for r in reports {
                tracing::warn!("crashed sandbox handled: {r:?}");
            }
        }
        Err(e) => tracing::error!("cannot heal a crashed sandbox: {}", chain(&e)),
    }
}

/// On `die` and `oom` of an owned or adopted container, finds which limit it ran into (OOM
/// kill, pids exhaustion, CPU throttling) and records it as `clw-sandbox-limit-exceeded`.
async fn diagnose_limits(shared: &Shared, engine: &DockerEngine, policy: &Policy, ev: &Event) {
    use crate::engine::EventKind;
    if !matches!(ev.kind, EventKind::Die | EventKind::Oom) {
        return;
    }
    if !policy.may_cover(&ev.name, &ev.labels) {
        return;
    }
    let events = crate::limits::diagnose(engine, &ev.id).await;
    if events.is_empty() {
        return;
    }
    for e in &events {
        tracing::warn!(container = %ev.name, "{}", crate::report::headline(e.code, &e.message));
    }
    if let Err(e) = crate::limits::record_limit_events(&shared.state, &ev.id, &ev.name, &events) {
        tracing::warn!(
            "cannot record the limit events of {}: {}",
            ev.name,
            chain(&e)
        );
    }
}

fn now_nano() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

async fn handle_event(shared: &Shared, engine: &DockerEngine, policy: &Policy, ev: Event) {
    shared
        .metrics
        .event(react::lag_seconds(ev.time_nano, now_nano()));
    let Some(trigger) = react::reaction(policy, &ev) else {
        return;
    };
    match enforce::enforce_one(engine, policy, Some(&shared.state), &ev.id, trigger).await {
        Ok(Outcome::Enforced(e)) => shared.record(&e),
        Ok(Outcome::Unchanged(_) | Outcome::Ignored) => {}
        Err(e) => tracing::warn!(
            container = %ev.name,
            "cannot check the limits after a {:?} event: {}",
            ev.kind,
            chain(&e)
        ),
    }
    // Engine::socket is only for the log line's sake: which engine the event came from.
    tracing::trace!(socket = engine.socket(), id = %ev.id, "event handled");
}

#[cfg(test)]
mod tests {
    use super::*;

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
        f.schedules.limits = Some("0 0 * * * *".into());
        assert_eq!(job_schedules(&f)[0].1, "0 0 * * * *");
    }
}
