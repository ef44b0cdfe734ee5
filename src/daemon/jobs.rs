//! Periodic jobs: named async functions run on cron schedules, never two runs of one job at
//! once. Other capabilities (heal, backup, verify) plug in as more [`Job`]s.
//!
//! The timetable (which job fires when) is pure and tested with fixed clocks; the runner is a
//! thin shell that spawns a job unless its previous run is still going (then it skips and logs:
//! a sweep that outlasts its period must not pile up behind itself). A failure that repeats
//! run after run is logged once per quiet window (`ratelimit`), and once more when it ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone};

use super::metrics::Metrics;
use super::ratelimit::Warnings;
use crate::engine::EngineError;
use crate::error::{Coded, ErrorCode};
use crate::report::{chain, headline, ErrorReport};

/// Why a job run failed. Each variant carries the typed error or the per-item reports, so the
/// log line and the metrics say which `clw-*` code it was.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the engine is not connected")]
    NotConnected,
    #[error("cannot list or inspect the engine's containers")]
    Engine(#[source] EngineError),
    #[error(transparent)]
    Sample(super::sample::SampleError),
    /// The run went through, but some items failed (one report each).
    #[error("{summary}; {}", problems.iter().map(ErrorReport::headline).collect::<Vec<_>>().join("; "))]
    Problems {
        summary: String,
        problems: Vec<ErrorReport>,
    },
}

impl Coded for JobError {
    fn code(&self) -> ErrorCode {
        match self {
            JobError::NotConnected => ErrorCode::EngineUnreachable,
            JobError::Engine(e) => e.code(),
            JobError::Sample(e) => e.code(),
            // The first problem's code: problems are listed in the order the run met them.
            JobError::Problems { problems, .. } => problems
                .first()
                .map(|p| p.code)
                .unwrap_or(ErrorCode::SandboxFailure),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            JobError::Engine(e) => e.hint(),
            JobError::Sample(e) => e.hint(),
            JobError::Problems { problems, .. } => problems.first().and_then(|p| p.hint.clone()),
            JobError::NotConnected => None,
        }
    }
}

/// A cron expression of a job that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("schedule of job {job} ({expr:?}) does not parse")]
pub struct ScheduleError {
    pub job: String,
    pub expr: String,
    #[source]
    pub source: cron::error::Error,
}

impl Coded for ScheduleError {
    fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }
}

/// What a job run says about itself: a one-line summary, or why it failed.
pub type JobResult = Result<String, JobError>;
pub type JobFuture = Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// A named unit of periodic work.
#[derive(Clone)]
pub struct Job {
    pub name: &'static str,
    run: Arc<dyn Fn() -> JobFuture + Send + Sync>,
}

impl Job {
    pub fn new<F, Fut>(name: &'static str, f: F) -> Job
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        Job {
            name,
            run: Arc::new(move || Box::pin(f())),
        }
    }
}

/// When each job fires next. Fires that were missed (the process slept, the clock jumped) are
/// not caught up one by one: a job that is due runs once and moves to its next fire after now.
pub struct Timetable<Tz: TimeZone> {
    entries: Vec<(String, cron::Schedule, Option<DateTime<Tz>>)>,
}

impl<Tz: TimeZone> Timetable<Tz> {
    /// `specs` are (job name, cron expression); expressions were validated with the manifest,
    /// so one that does not parse here is a bug, reported as an error.
    pub fn new(specs: &[(String, String)], now: &DateTime<Tz>) -> Result<Self, ScheduleError> {
        let mut entries = Vec::new();
        for (name, expr) in specs {
            let s = cron::Schedule::from_str(expr).map_err(|source| ScheduleError {
                job: name.clone(),
                expr: expr.clone(),
                source,
            })?;
            let next = s.after(now).next();
            entries.push((name.clone(), s, next));
        }
        Ok(Timetable { entries })
    }

    /// The earliest next fire of any job; `None` when no job will ever fire again.
    pub fn next_wake(&self) -> Option<DateTime<Tz>> {
        self.entries.iter().filter_map(|(_, _, n)| n.clone()).min()
    }

    /// The jobs due at `now`, in declaration order; each moves on to its next fire after now.
    pub fn due(&mut self, now: &DateTime<Tz>) -> Vec<String> {
        let mut out = Vec::new();
        for (name, schedule, next) in &mut self.entries {
            if next.as_ref().is_some_and(|n| n <= now) {
                out.push(name.clone());
                *next = schedule.after(now).next();
            }
        }
        out
    }
}

/// Clears a job's running flag however its run ends (done, panicked or aborted at shutdown).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Starts jobs by name, one run of each at a time.
pub struct JobRunner {
    jobs: BTreeMap<&'static str, (Job, Arc<AtomicBool>)>,
    metrics: Arc<Metrics>,
    /// A job fails the same way every run while the engine is away (the tick: every second).
    warnings: Arc<Warnings>,
}

impl JobRunner {
    pub fn new(jobs: Vec<Job>, metrics: Arc<Metrics>) -> JobRunner {
        JobRunner {
            jobs: jobs
                .into_iter()
                .map(|j| (j.name, (j, Arc::new(AtomicBool::new(false)))))
                .collect(),
            metrics,
            warnings: Arc::new(Warnings::default()),
        }
    }

    /// Whether a run of `name` is going now.
    pub fn is_running(&self, name: &str) -> bool {
        self.jobs
            .get(name)
            .is_some_and(|(_, r)| r.load(Ordering::SeqCst))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.keys().copied().collect()
    }

    /// Spawns a run of `name`, or returns `None` (and logs) when its previous run is still
    /// going or no such job exists. The handle yields the run's result.
    pub fn try_start(&self, name: &str) -> Option<tokio::task::JoinHandle<JobResult>> {
        let Some((job, running)) = self.jobs.get(name) else {
            tracing::error!(job = name, "no such job");
            return None;
        };
        let skipped = format!("{name}:skipped");
        if running.swap(true, Ordering::SeqCst) {
            let text = "skipped: the previous run is still going";
            if let Some(note) = self.warnings.allow(&skipped, text) {
                tracing::warn!(job = name, "{text}{note}");
            }
            self.metrics.job_run(job.name, "skipped", None);
            return None;
        }
        if let Some(note) = self.warnings.cleared(&skipped) {
            tracing::info!(job = name, "started again; {note}");
        }
        let guard = Running(running.clone());
        let run = job.run.clone();
        let metrics = self.metrics.clone();
        let warnings = self.warnings.clone();
        let name = job.name;
        Some(tokio::spawn(async move {
            let _guard = guard;
            let started = Instant::now();
            tracing::debug!(job = name, "started");
            let result = run().await;
            let took = started.elapsed();
            if result.is_ok() {
                if let Some(note) = warnings.cleared(name) {
                    tracing::info!(job = name, "ran again without failing; {note}");
                }
            }
            match &result {
                // A run with nothing to say (an idle tick) stays out of the info log.
                Ok(summary) if summary.is_empty() => {
                    tracing::debug!(job = name, seconds = took.as_secs_f64(), "nothing due");
                    metrics.job_run(name, "ok", Some(took));
                }
                Ok(summary) => {
                    tracing::info!(job = name, seconds = took.as_secs_f64(), "{summary}");
                    metrics.job_run(name, "ok", Some(took));
                }
                Err(e) => {
                    let text = format!("failed: {}", headline(e.code(), &chain(e)));
                    if let Some(note) = warnings.allow(name, &text) {
                        tracing::warn!(job = name, seconds = took.as_secs_f64(), "{text}{note}");
                    }
                    metrics.job_run(name, "failed", Some(took));
                }
            }
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn specs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn each_job_fires_on_its_own_schedule() {
        let t0 = at("2026-01-01T00:00:30Z");
        let mut t = Timetable::new(
            &specs(&[("limits", "0 */5 * * * *"), ("verify", "0 0 * * * *")]),
            &t0,
        )
        .unwrap();
        assert_eq!(t.next_wake(), Some(at("2026-01-01T00:05:00Z")));
        assert!(t.due(&at("2026-01-01T00:04:59Z")).is_empty());
        assert_eq!(t.due(&at("2026-01-01T00:05:00Z")), ["limits"]);
        assert_eq!(t.next_wake(), Some(at("2026-01-01T00:10:00Z")));
        // At the full hour both are due, in declaration order.
        assert_eq!(t.due(&at("2026-01-01T01:00:00Z")), ["limits", "verify"]);
    }

    #[test]
    fn missed_fires_run_once_not_once_per_missed_period() {
        let t0 = at("2026-01-01T00:00:00Z");
        let mut t = Timetable::new(&specs(&[("limits", "0 */5 * * * *")]), &t0).unwrap();
        // The machine slept for an hour: one run, then the next regular fire.
        assert_eq!(t.due(&at("2026-01-01T01:02:00Z")), ["limits"]);
        assert!(t.due(&at("2026-01-01T01:02:00Z")).is_empty());
        assert_eq!(t.next_wake(), Some(at("2026-01-01T01:05:00Z")));
    }

    #[test]
    fn a_schedule_that_does_not_parse_names_its_job() {
        let err = match Timetable::new(&specs(&[("limits", "bogus")]), &Utc::now()) {
            Err(e) => e,
            Ok(_) => panic!("accepted a bogus schedule"),
        };
        assert!(err.to_string().contains("limits"), "{err}");
        assert_eq!(err.code(), ErrorCode::ConfigInvalid);
    }

    #[tokio::test]
    async fn a_job_still_running_is_skipped_not_started_twice() {
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let job = {
            let runs = runs.clone();
            Job::new("slow", move || {
                let runs = runs.clone();
                let mut rx = release_rx.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    while !*rx.borrow() {
                        rx.changed().await.map_err(|_| JobError::NotConnected)?;
                    }
                    Ok("done".to_string())
                }
            })
        };
        let metrics = Arc::new(Metrics::new());
        let runner = JobRunner::new(vec![job], metrics.clone());
        let first = runner.try_start("slow").expect("first run starts");
        // Let it begin, then fire again while it waits.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(runner.try_start("slow").is_none(), "second run skipped");
        release_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), "done");
        // Finished: the next fire starts a run again.
        let again = runner
            .try_start("slow")
            .expect("runs again after the first ended");
        assert!(again.await.unwrap().is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let text = metrics.render();
        assert!(
            text.contains(r#"clw_fortress_job_runs_total{job="slow",outcome="skipped"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_aborted_run_frees_its_job() {
        let job = Job::new("hang", || async {
            std::future::pending::<()>().await;
            Ok(String::new())
        });
        let runner = JobRunner::new(vec![job], Arc::new(Metrics::new()));
        let h = runner.try_start("hang").unwrap();
        h.abort();
        let _ = h.await;
        assert!(runner.try_start("hang").is_some());
    }
}
