//! The engine connection and the path of its events: connect (retrying with capped backoff),
//! subscribe, resync with a full sweep, then classify each event once and hand its work to
//! the per-container queue (`reconcile`), until the engine goes away; then again.
//!
//! Its warnings go through `ratelimit`: an engine that stays away, or comes and goes, logs
//! each kind of warning once per quiet window, not once per attempt.
//!
//! The loop here does no engine call itself: it reads events, feeds the heal death watch,
//! queues work and starts reconciles, so a slow engine answer about one container never holds
//! up the events of another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::connect::Connect;
use super::jobs::JobRunner;
use super::ratelimit::Warnings;
use super::reconcile::{self, Queue};
use super::{notify, react, Conn, Shared, LIMITS_JOB};
use crate::engine::{Engine, EngineResult, Event};
use crate::error::Coded;
use crate::heal::DeathWatch;
use crate::report::chain;
use crate::spec::{LABEL_FORTRESS, LABEL_MANAGED};

/// Events read ahead of the loop. The stream is polled at once (so a container created during
/// the resync sweep is seen by one or the other); beyond this the engine's stream waits.
const EVENT_BUFFER: usize = 256;

/// Containers reconciled at the same time.
const WORKERS: usize = 8;

/// Containers waiting for a reconcile before the loop stops reading events (each waits once,
/// however many events it had).
const QUEUE_CAPACITY: usize = 1024;

/// The rate-limit scope of "engine not usable" (cleared by a connection).
const UNUSABLE: &str = "engine-unusable";
/// The scope of what each connection logs ("lost the engine", "reconnected", clamped CPU
/// limits), never cleared: a flapping engine repeats them; each window lets the next through.
const FLAPPING: &str = "engine-flapping";

/// Connects, resyncs with a full sweep, then handles events until the engine goes away; then
/// reconnects with capped exponential backoff. Runs until aborted.
pub(super) async fn watch_engine<C: Connect>(
    shared: Arc<Shared<C::Engine>>,
    runner: Arc<JobRunner>,
    connect: C,
    ready: oneshot::Sender<()>,
) {
    let socket = connect.socket().to_string();
    let mut ready = Some(ready);
    let mut backoff = Backoff::engine();
    let mut lost_once = false;
    // While the engine is away every attempt fails the same way; a flapping engine is lost
    // and found again every few hundred milliseconds.
    let warnings = Warnings::default();
    loop {
        let connected = match connect.connect().await {
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
                let text = format!("engine at {socket} not usable ({}: {})", what, chain(&e));
                if let Some(note) = warnings.allow(UNUSABLE, &text) {
                    tracing::warn!("{text}; retrying in {delay:?}{note}");
                }
                notify::status(&format!(
                    "engine at {socket} not usable ({what}); retrying in {delay:?}"
                ));
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        let engine = Arc::new(engine);
        // Subscribe before the sweep, so a container created while the sweep runs is seen by
        // one or the other. The pump polls the stream at once; events queue in the channel.
        let (tx, mut rx) = mpsc::channel(EVENT_BUFFER);
        let mut stream = engine.events();
        let pump = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        shared.set_conn(Some(Conn {
            engine: engine.clone(),
            ncpu,
        }));
        for c in &shared.policy(ncpu).clamped {
            let text = format!("cpus above the engine host's count, clamped: {c}");
            if let Some(note) = warnings.allow(FLAPPING, &text) {
                tracing::warn!("{text}{note}");
            }
        }
        let quieted = warnings
            .cleared(UNUSABLE)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        if lost_once {
            shared.metrics.reconnected();
            let text = format!("engine reconnected at {socket}; resyncing with a full sweep");
            if let Some(note) = warnings.allow(FLAPPING, &text) {
                tracing::warn!("{text}{quieted}{note}");
            }
        } else {
            tracing::info!("engine connected at {socket}; initial sweep{quieted}");
        }
        resync(&runner).await;
        if shared.fortress().metrics.is_some() && !runner.is_running(super::METRICS_JOB) {
            // The per-sandbox series at once, not at the next quarter minute.
            runner.try_start(super::METRICS_JOB);
        }
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        notify::status(&format!("watching engine events at {socket}"));

        let recheck = running_sandboxes(&shared, &*engine).await;
        let why = dispatch(&shared, &engine, ncpu, recheck, &mut rx).await;
        pump.abort();
        shared.set_conn(None);
        lost_once = true;
        let delay = backoff.next_delay();
        let text = format!("lost the engine at {socket} ({why})");
        if let Some(note) = warnings.allow(FLAPPING, &text) {
            tracing::warn!("{text}; reconnecting in {delay:?}{note}");
        }
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

/// The pinned-bind re-check of every running container labelled as this fortress's sandbox:
/// it may have been started while the agent was away (the reconcile decides, with the state's
/// record, which are really owned).
async fn running_sandboxes<E: Engine>(shared: &Shared<E>, engine: &E) -> Vec<react::Work> {
    let fortress = shared.fortress();
    let labels = [
        format!("{LABEL_MANAGED}=1"),
        format!("{LABEL_FORTRESS}={}", fortress.name),
    ];
    match engine.list(&labels).await {
        Ok(list) => list
            .into_iter()
            .filter(|c| c.state == "running")
            .map(|c| react::Work::recheck(&c.id, &c.name))
            .collect(),
        Err(e) => {
            tracing::warn!(
                "cannot list the sandboxes to re-check their bind sources: {}",
                chain(&e)
            );
            Vec::new()
        }
    }
}

/// Reads the events of one connection until it ends, and runs the work they ask for (and
/// `first`, queued before any event). Returns why it ended. Reconciles still running then are dropped with it (aborted): the engine they
/// talk to is gone, and the resync after the reconnect covers what they would have done.
async fn dispatch<E: Engine + 'static>(
    shared: &Arc<Shared<E>>,
    engine: &Arc<E>,
    ncpu: i64,
    first: Vec<react::Work>,
    rx: &mut mpsc::Receiver<EngineResult<Event>>,
) -> String {
    // The death watch's clock: tokio's monotonic one (the stop window is a duration, and tests
    // run it on paused time).
    let epoch = Instant::now();
    let clock_ms = move || i64::try_from(epoch.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut deaths = DeathWatch::default();
    let mut queue = Queue::new(WORKERS, QUEUE_CAPACITY);
    let mut tasks = JoinSet::new();
    let mut handling: HashMap<tokio::task::Id, String> = HashMap::new();
    for work in first {
        queue.push(work);
    }
    loop {
        while let Some(work) = queue.take_ready() {
            let (s, e) = (shared.clone(), engine.clone());
            let id = work.id.clone();
            let handle = tasks.spawn(async move {
                let name = work.name.clone();
                let errors = reconcile::reconcile(&s, &*e, ncpu, work).await;
                reconcile::report(&name, &errors);
            });
            handling.insert(handle.id(), id);
        }
        // A `die` is healed once its stop window has passed without a `stop` (a deliberate
        // `docker stop` is not a crash); sleep until the earliest such deadline.
        let deadline = deaths
            .next_deadline()
            .map(|d| epoch + Duration::from_millis(u64::try_from(d).unwrap_or(0)));
        tokio::select! {
            m = rx.recv(), if !queue.is_full() => match m {
                Some(Ok(ev)) => {
                    shared
                        .metrics
                        .event(react::lag_seconds(ev.time_nano, now_nano()));
                    observe_death(shared, &mut deaths, &ev, clock_ms());
                    if let Some(work) = react::work(&shared.policy(ncpu), &ev) {
                        queue.push(work);
                    }
                }
                Some(Err(e)) => return chain(&e),
                None => return "the event stream ended".to_string(),
            },
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = match &done {
                    Ok((task, ())) => *task,
                    Err(e) => {
                        tracing::error!("a reconcile ended abnormally: {e}");
                        e.id()
                    }
                };
                if let Some(id) = handling.remove(&task) {
                    queue.done(&id);
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(epoch)), if deadline.is_some() => {
                let policy = shared.policy(ncpu);
                for death in deaths.due(clock_ms()) {
                    if let Some(work) = react::death_work(&policy, death) {
                        queue.push(work);
                    }
                }
            }
        }
    }
}

/// Feeds an event to the crash detector (records deliberate stops of managed sandboxes).
fn observe_death<E>(shared: &Shared<E>, deaths: &mut DeathWatch, ev: &Event, now_ms: i64) {
    if let Err(e) = crate::heal::observe_event(&shared.state, deaths, ev, now_ms) {
        tracing::warn!(container = %ev.name, "cannot record the event for healing: {}", chain(&e));
    }
}

fn now_nano() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}
