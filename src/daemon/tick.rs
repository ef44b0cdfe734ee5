//! The daemon's share of heal, backup and verify: a `tick` job, fired every few seconds, runs
//! whatever is due. Health checks and sandbox liveness have schedules of their own (`every:` or
//! `cron:`), backups a cron each, verify `schedules.verify`; a cron timetable of fixed jobs
//! cannot express per-target intervals, so the tick decides per target with [`Due`] (pure,
//! tested with fixed clocks) and calls the same library functions as `heal`, `backup run` and
//! `verify` do in timer mode.
//!
//! It must not run one target twice at once: the tick is a job of the runner, which never
//! starts a run while the previous one is going.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Local};

use super::jobs::JobError;
use crate::engine::Engine;
use crate::error::{Coded, ErrorCode};
use crate::manifest::{Fortress, Schedule};
use crate::report::{chain, ErrorReport};
use crate::state::{now_ms, State};

/// How often the tick fires (cron, seconds first): the granularity of every per-target
/// schedule the daemon runs, so `every: 5s` means five seconds. A tick with nothing due costs
/// a few comparisons and logs nothing above debug.
pub const TICK_SCHEDULE: &str = "* * * * * *";

/// Sandboxes without a `liveness.every` are still checked for being up this often, as a
/// backstop for a `die` event the daemon missed (it was down, or reconnecting).
const DEFAULT_LIVENESS_EVERY: Duration = Duration::from_secs(60);

/// When each target last ran, and when the daemon started (the base of cron schedules).
#[derive(Debug)]
pub struct Due {
    started: DateTime<Local>,
    last: HashMap<String, DateTime<Local>>,
}

impl Due {
    pub fn new(started: DateTime<Local>) -> Due {
        Due {
            started,
            last: HashMap::new(),
        }
    }

    /// Whether `key` is due at `now`; when it is, `now` becomes its last run. An `Every`
    /// target runs at once the first time (a probe should not wait a whole interval after a
    /// restart of the agent); a cron target at its first fire after the agent started.
    pub fn take(&mut self, key: &str, schedule: &Schedule, now: DateTime<Local>) -> bool {
        let last = self.last.get(key).copied();
        let due = match schedule {
            Schedule::Every(every) => {
                last.is_none_or(|l| (now - l).to_std().unwrap_or(Duration::ZERO) >= *every)
            }
            Schedule::Cron(expr) => cron::Schedule::from_str(expr)
                .ok()
                .and_then(|s| s.after(&last.unwrap_or(self.started)).next())
                .is_some_and(|next| next <= now),
        };
        if due {
            self.last.insert(key.to_string(), now);
        }
        due
    }
}

/// What one tick did, for the job's log line.
#[derive(Debug, Default)]
pub struct TickReport {
    pub probes: usize,
    pub backups: usize,
    pub verified: usize,
    /// One report per target that failed, each with its own code.
    pub problems: Vec<ErrorReport>,
}

/// `e` as a problem of the target `what` (`health web`, `backup memory`, ...).
fn problem(what: String, e: &(impl Coded + ?Sized)) -> ErrorReport {
    ErrorReport {
        hint: e.hint(),
        ..ErrorReport::new(e.code(), format!("{what}: {}", chain(e)))
    }
}

impl TickReport {
    /// The job's result: empty when nothing was due (the runner logs that at debug only).
    pub fn summary(self) -> Result<String, JobError> {
        if self.probes == 0 && self.backups == 0 && self.verified == 0 && self.problems.is_empty() {
            return Ok(String::new());
        }
        let s = format!(
            "tick: {} probe(s), {} backup run(s), {} sandbox(es) verified",
            self.probes, self.backups, self.verified
        );
        if self.problems.is_empty() {
            Ok(s)
        } else {
            Err(JobError::Problems {
                summary: s,
                problems: self.problems,
            })
        }
    }
}

/// Runs every target that is due at `now`.
pub async fn run<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
    due: &Mutex<Due>,
    now: DateTime<Local>,
) -> TickReport {
    let mut report = TickReport::default();
    let take = |key: String, schedule: &Schedule| {
        due.lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&key, schedule, now)
    };

    for check in &fortress.health {
        if take(format!("health:{}", check.name), &check.schedule) {
            report.probes += 1;
            if let Err(e) = crate::heal::run_check(engine, state, fortress, check, now_ms()).await {
                report
                    .problems
                    .push(problem(format!("health {}", check.name), &e));
            }
        }
    }
    for sandbox in &fortress.sandboxes {
        let every = sandbox
            .liveness
            .as_ref()
            .map(|l| l.every)
            .unwrap_or(DEFAULT_LIVENESS_EVERY);
        if take(
            format!("liveness:{}", sandbox.name),
            &Schedule::Every(every),
        ) {
            report.probes += 1;
            if let Err(e) =
                crate::heal::run_sandbox(engine, state, fortress, sandbox, now_ms()).await
            {
                report
                    .problems
                    .push(problem(format!("liveness {}", sandbox.name), &e));
            }
        }
    }
    for entry in &fortress.backups {
        let Some(cron) = &entry.schedule else {
            continue;
        };
        if take(
            format!("backup:{}", entry.name),
            &Schedule::Cron(cron.clone()),
        ) {
            report.backups += 1;
            let opts = crate::backup::RunOptions {
                only: Some(entry.name.clone()),
                actor: "daemon:backup".into(),
                owner: crate::backup::file_owner(fortress),
                ..Default::default()
            };
            match crate::backup::run_scheduled(
                fortress.backups.clone(),
                fortress.state_path.clone(),
                opts,
            )
            .await
            {
                Ok(r) if r.failed() > 0 => report.problems.push(ErrorReport::new(
                    ErrorCode::BackupFailed,
                    format!("backup {}: {} source(s) failed", entry.name, r.failed()),
                )),
                Ok(_) => {}
                Err(e) => report
                    .problems
                    .push(problem(format!("backup {}", entry.name), &e)),
            }
        }
    }
    if let Some(cron) = &fortress.schedules.verify {
        if take("verify".to_string(), &Schedule::Cron(cron.clone())) {
            match verify_all(engine, state, fortress).await {
                Ok((n, failing)) => {
                    report.verified += n;
                    if !failing.is_empty() {
                        report.problems.push(ErrorReport::new(
                            ErrorCode::IsolationBreach,
                            format!("verify failed for {}", failing.join(", ")),
                        ));
                    }
                }
                Err(e) => report.problems.push(problem("verify".into(), &e)),
            }
        }
    }
    report
}

/// The verify suite over every declared sandbox, recorded in the state database (as `verify`
/// does). Returns how many were verified and which did not pass.
async fn verify_all<E: Engine>(
    engine: &E,
    state: &State,
    fortress: &Fortress,
) -> Result<(usize, Vec<String>), crate::verify::VerifyError> {
    use crate::verify;
    let info = engine.info().await?;
    let targets = verify::targets(engine, fortress, Some(state), None, false).await?;
    let inputs = verify::inputs_for(
        fortress,
        info.ncpu,
        nix::unistd::getuid().as_raw(),
        verify::Options::default(),
    );
    let mut failing = Vec::new();
    for t in &targets {
        let (results, _) = verify::verify_target(engine, t, &inputs).await;
        if let Err(e) = verify::record(state, &fortress.name, &t.name, &results, false) {
            tracing::warn!(
                "could not record the verify run of {}: {}",
                t.name,
                chain(&e)
            );
        }
        if !verify::passed(&results, false) {
            failing.push(t.name.clone());
        }
    }
    Ok((targets.len(), failing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Local> {
        Local.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap()
    }

    #[test]
    fn an_every_target_runs_at_once_then_each_interval() {
        let mut d = Due::new(at(10, 0, 0));
        let every = Schedule::Every(Duration::from_secs(30));
        assert!(d.take("a", &every, at(10, 0, 0)));
        assert!(!d.take("a", &every, at(10, 0, 10)));
        assert!(!d.take("a", &every, at(10, 0, 29)));
        assert!(d.take("a", &every, at(10, 0, 30)));
        assert!(!d.take("a", &every, at(10, 0, 40)));
    }

    #[test]
    fn a_cron_target_runs_at_its_first_fire_after_the_start_and_once_per_fire() {
        let mut d = Due::new(at(2, 59, 0));
        let daily3 = Schedule::Cron("0 0 3 * * *".into());
        assert!(!d.take("b", &daily3, at(2, 59, 50)));
        assert!(d.take("b", &daily3, at(3, 0, 5)));
        assert!(!d.take("b", &daily3, at(3, 0, 15)), "once per fire");
        assert!(!d.take("b", &daily3, at(23, 0, 0)));
    }

    #[test]
    fn targets_are_independent() {
        let mut d = Due::new(at(10, 0, 0));
        let every = Schedule::Every(Duration::from_secs(60));
        assert!(d.take("a", &every, at(10, 0, 0)));
        assert!(d.take("b", &every, at(10, 0, 10)));
        assert!(!d.take("a", &every, at(10, 0, 20)));
    }

    #[test]
    fn a_tick_with_problems_is_a_failed_run() {
        let idle = TickReport::default();
        assert_eq!(idle.summary().unwrap(), "", "an idle tick says nothing");
        let ok = TickReport {
            probes: 2,
            ..Default::default()
        };
        assert!(ok.summary().unwrap().contains("2 probe(s)"));
        let bad = TickReport {
            probes: 1,
            problems: vec![ErrorReport::new(
                ErrorCode::HealthFailed,
                "health web: down",
            )],
            ..Default::default()
        };
        let err = bad.summary().unwrap_err();
        assert_eq!(err.code(), ErrorCode::HealthFailed);
        assert_eq!(
            err.to_string(),
            "tick: 1 probe(s), 0 backup run(s), 0 sandbox(es) verified; \
             error[clw-health-failed]: health web: down"
        );
    }
}
