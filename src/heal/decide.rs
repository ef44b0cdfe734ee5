//! The pure decision core of healing: given the time, what is remembered about a target, its
//! policy and the result of one probe, decide what to do, and compute what to remember next.
//!
//! No I/O, no clock: `now` comes in as Unix milliseconds so sequences over simulated time can be
//! table-tested. The driver (`heal::run_*`) loads the state, calls [`decide`] and [`advance`],
//! performs the decision and stores the new state.
//!
//! The rules, in order, for a failing probe:
//! 1. a quarantined target is never restarted (only `heal --release` lifts quarantine);
//! 2. below `failures` consecutive failures the failure is only counted (a crash — the
//!    container died — counts as reaching the threshold at once);
//! 3. with nothing to restart, crossing the threshold is reported (`clw-health-failed`);
//! 4. inside the backoff after the previous restart, wait (`WaitBackoff { until }`): the last
//!    restart gets its chance before anything else happens;
//! 5. after `quarantine.restarts` restarts within `quarantine.within`, quarantine instead of
//!    restarting again;
//! 6. otherwise restart.
//!
//! A restart does not reset the failure count: a target still failing after a restart is
//! restarted again on its next failing probe once the backoff has passed. Only a passing probe
//! resets it. The backoff after the k-th restart of a streak is `initial * 2^(k-1)`, capped at
//! `max`; the streak (and so the backoff) resets once the target has been healthy for
//! `backoff.max` without interruption.

use std::time::Duration;

use serde::Serialize;

/// What governs one target (a health check, or a sandbox's liveness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failures before the first restart.
    pub failures: u32,
    /// False when the check declares no restart target (report only).
    pub can_restart: bool,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub quarantine_restarts: u32,
    pub quarantine_within: Duration,
}

impl Policy {
    /// The defaults of manifest.md (`backoff {10s, 5m}`, `quarantine {5, 30m}`, 3 failures).
    pub fn defaults() -> Policy {
        Policy {
            failures: 3,
            can_restart: true,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            quarantine_restarts: 5,
            quarantine_within: Duration::from_secs(30 * 60),
        }
    }

    /// The wait after the `streak`-th restart (1-based) of a streak.
    pub fn backoff(&self, streak: u32) -> Duration {
        let shift = streak.saturating_sub(1).min(32);
        self.backoff_initial
            .checked_mul(1u32 << shift.min(31))
            .map(|d| d.min(self.backoff_max))
            .unwrap_or(self.backoff_max)
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    /// The probe failed; the reason (never a secret) is kept as `last_error`.
    Failed(String),
    /// The target is known dead (a container that died and was not stopped on purpose): no
    /// point in waiting for more failures.
    Crashed(String),
}

impl Outcome {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Outcome::Healthy)
    }
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Healthy => None,
            Outcome::Failed(e) | Outcome::Crashed(e) => Some(e),
        }
    }
}

/// What is remembered about a target between probes (persisted in the state database).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TargetState {
    pub consecutive_failures: u32,
    pub last_ok_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Start of the current uninterrupted healthy period.
    pub healthy_since_ms: Option<i64>,
    /// Restarts in the current backoff streak.
    pub streak: u32,
    pub backoff_until_ms: Option<i64>,
    pub quarantined_since_ms: Option<i64>,
    /// Times of restart attempts since the last release, oldest first (the driver may drop
    /// those older than the quarantine window).
    pub restarts: Vec<i64>,
}

/// What to do after one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    /// Healthy: nothing to do.
    Nothing,
    /// Failing, below the threshold: counted.
    CountFailure,
    /// Failing at or above the threshold with no restart target: report `clw-health-failed`.
    Unhealthy,
    Restart,
    /// Failing, but the previous restart's backoff runs until then.
    WaitBackoff {
        until_ms: i64,
    },
    /// Restarted too often: stop restarting, record `clw-quarantined`.
    Quarantine,
    /// Already quarantined: nothing is done until `heal --release`.
    Quarantined,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Nothing => "nothing",
            Decision::CountFailure => "count-failure",
            Decision::Unhealthy => "unhealthy",
            Decision::Restart => "restart",
            Decision::WaitBackoff { .. } => "wait-backoff",
            Decision::Quarantine => "quarantine",
            Decision::Quarantined => "quarantined",
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Restart attempts inside the quarantine window ending at `now`.
pub fn restarts_within(state: &TargetState, policy: &Policy, now_ms: i64) -> usize {
    let from = now_ms.saturating_sub(ms(policy.quarantine_within));
    state.restarts.iter().filter(|&&t| t > from).count()
}

/// The decision for one probe result. Pure.
pub fn decide(now_ms: i64, state: &TargetState, policy: &Policy, outcome: &Outcome) -> Decision {
    if state.quarantined_since_ms.is_some() {
        return Decision::Quarantined;
    }
    let failures = match outcome {
        Outcome::Healthy => return Decision::Nothing,
        Outcome::Failed(_) => state.consecutive_failures.saturating_add(1),
        Outcome::Crashed(_) => state
            .consecutive_failures
            .saturating_add(1)
            .max(policy.failures),
    };
    if failures < policy.failures {
        return Decision::CountFailure;
    }
    if !policy.can_restart {
        return Decision::Unhealthy;
    }
    if let Some(until) = state.backoff_until_ms.filter(|&u| now_ms < u) {
        return Decision::WaitBackoff { until_ms: until };
    }
    if restarts_within(state, policy, now_ms) >= policy.quarantine_restarts as usize {
        return Decision::Quarantine;
    }
    Decision::Restart
}

/// The state after `outcome` was observed and `decision` carried out (a restart attempt counts
/// towards backoff and quarantine whether or not it succeeded). Pure.
pub fn advance(
    now_ms: i64,
    state: &TargetState,
    policy: &Policy,
    outcome: &Outcome,
    decision: Decision,
) -> TargetState {
    let mut next = state.clone();
    match outcome {
        Outcome::Healthy => {
            next.consecutive_failures = 0;
            next.last_ok_ms = Some(now_ms);
            let since = *next.healthy_since_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) >= ms(policy.backoff_max) {
                next.streak = 0;
                next.backoff_until_ms = None;
            }
        }
        Outcome::Failed(e) | Outcome::Crashed(e) => {
            next.consecutive_failures = next.consecutive_failures.saturating_add(1);
            if matches!(outcome, Outcome::Crashed(_)) {
                next.consecutive_failures = next.consecutive_failures.max(policy.failures);
            }
            next.last_failure_ms = Some(now_ms);
            next.last_error = Some(e.clone());
            next.healthy_since_ms = None;
        }
    }
    match decision {
        Decision::Restart => {
            next.streak = next.streak.saturating_add(1);
            next.backoff_until_ms = Some(now_ms.saturating_add(ms(policy.backoff(next.streak))));
            next.restarts.push(now_ms);
        }
        Decision::Quarantine => next.quarantined_since_ms = Some(now_ms),
        _ => {}
    }
    // Only the quarantine window matters; keep the list from growing without bound.
    let from = now_ms.saturating_sub(ms(policy.quarantine_within));
    next.restarts.retain(|&t| t > from);
    next
}

/// `decide` then `advance`.
pub fn step(
    now_ms: i64,
    state: &TargetState,
    policy: &Policy,
    outcome: &Outcome,
) -> (Decision, TargetState) {
    let d = decide(now_ms, state, policy, outcome);
    (d, advance(now_ms, state, policy, outcome, d))
}

/// The state after `heal --release`: quarantine lifted, counters, backoff and the restart
/// history forgotten, so the target starts afresh. Pure.
pub fn release(state: &TargetState) -> TargetState {
    TargetState {
        consecutive_failures: 0,
        streak: 0,
        backoff_until_ms: None,
        quarantined_since_ms: None,
        restarts: Vec::new(),
        ..state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn policy() -> Policy {
        Policy {
            failures: 3,
            can_restart: true,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(40),
            quarantine_restarts: 3,
            quarantine_within: Duration::from_secs(300),
        }
    }

    fn ok() -> Outcome {
        Outcome::Healthy
    }
    fn fail() -> Outcome {
        Outcome::Failed("HTTP 404".into())
    }
    fn crash() -> Outcome {
        Outcome::Crashed("exited with code 137".into())
    }

    /// Runs `(second, outcome)` steps from a fresh state; returns each decision's name.
    fn run(policy: &Policy, steps: &[(i64, Outcome)]) -> (Vec<&'static str>, TargetState) {
        let mut state = TargetState::default();
        let mut out = Vec::new();
        for (t, o) in steps {
            let (d, next) = step(t * S, &state, policy, o);
            out.push(d.as_str());
            state = next;
        }
        (out, state)
    }

    #[test]
    fn backoff_doubles_from_initial_and_is_capped_at_max() {
        let p = policy();
        let secs: Vec<u64> = (1..=6).map(|k| p.backoff(k).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 40, 40, 40]);
        assert_eq!(p.backoff(0).as_secs(), 10);
        assert_eq!(p.backoff(u32::MAX), p.backoff_max);
    }

    /// A case name, `(second, outcome)` steps, and the decisions expected.
    type Case = (&'static str, Vec<(i64, Outcome)>, Vec<&'static str>);

    #[test]
    fn sequences_of_probe_results_give_the_expected_decisions() {
        let p = policy();
        let cases: Vec<Case> = vec![
            (
                "healthy all along does nothing",
                vec![(0, ok()), (60, ok()), (120, ok())],
                vec!["nothing", "nothing", "nothing"],
            ),
            (
                "no restart before the threshold, one restart at it",
                vec![(0, fail()), (60, fail()), (120, fail())],
                vec!["count-failure", "count-failure", "restart"],
            ),
            (
                "a success resets the count",
                vec![
                    (0, fail()),
                    (60, fail()),
                    (120, ok()),
                    (180, fail()),
                    (240, fail()),
                ],
                vec![
                    "count-failure",
                    "count-failure",
                    "nothing",
                    "count-failure",
                    "count-failure",
                ],
            ),
            (
                "still failing inside the backoff waits, after it restarts again",
                vec![
                    (0, fail()),
                    (1, fail()),
                    (2, fail()),
                    (5, fail()),
                    (12, fail()),
                ],
                vec![
                    "count-failure",
                    "count-failure",
                    "restart",
                    "wait-backoff",
                    "restart",
                ],
            ),
            (
                "the second backoff is twice the first",
                vec![
                    (0, fail()),
                    (0, fail()),
                    (0, fail()),
                    (10, fail()),
                    (29, fail()),
                    (30, fail()),
                ],
                vec![
                    "count-failure",
                    "count-failure",
                    "restart",
                    "restart",
                    "wait-backoff",
                    "restart",
                ],
            ),
            (
                "after quarantine.restarts restarts in the window the next due restart quarantines",
                vec![
                    (0, fail()),
                    (0, fail()),
                    (0, fail()),
                    (10, fail()),
                    (30, fail()),
                    (70, fail()),
                    (80, fail()),
                ],
                vec![
                    "count-failure",
                    "count-failure",
                    "restart",
                    "restart",
                    "restart",
                    "quarantine",
                    "quarantined",
                ],
            ),
            (
                "restarts spread wider than the window never quarantine",
                vec![
                    (0, fail()),
                    (0, fail()),
                    (0, fail()),
                    (200, fail()),
                    (400, fail()),
                    (600, fail()),
                    (800, fail()),
                ],
                vec![
                    "count-failure",
                    "count-failure",
                    "restart",
                    "restart",
                    "restart",
                    "restart",
                    "restart",
                ],
            ),
            (
                "a crash restarts at once without waiting for the threshold",
                vec![(0, crash())],
                vec!["restart"],
            ),
            (
                "a crash inside the backoff waits",
                vec![(0, crash()), (3, crash()), (10, crash())],
                vec!["restart", "wait-backoff", "restart"],
            ),
            (
                "a quarantined target stays quarantined even when healthy",
                vec![
                    (0, crash()),
                    (10, crash()),
                    (30, crash()),
                    (70, crash()),
                    (71, ok()),
                    (500, ok()),
                ],
                vec![
                    "restart",
                    "restart",
                    "restart",
                    "quarantine",
                    "quarantined",
                    "quarantined",
                ],
            ),
        ];
        for (name, steps, want) in cases {
            let (got, _) = run(&p, &steps);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_check_without_restart_target_only_reports_past_the_threshold() {
        let p = Policy {
            can_restart: false,
            ..policy()
        };
        let (got, state) = run(&p, &[(0, fail()), (1, fail()), (2, fail()), (3, fail())]);
        assert_eq!(
            got,
            ["count-failure", "count-failure", "unhealthy", "unhealthy"]
        );
        assert!(state.restarts.is_empty());
        assert_eq!(state.quarantined_since_ms, None);
    }

    #[test]
    fn the_backoff_streak_resets_only_after_healthy_for_backoff_max() {
        let p = policy();
        // Two restarts (streak 2), then healthy for 30s (< max 40s): the streak survives, so
        // the next restart waits 40s (third in the streak) afterwards.
        let (_, state) = run(&p, &[(0, crash()), (10, crash()), (31, ok()), (61, ok())]);
        assert_eq!(state.streak, 2);
        let (d, state) = step(62 * S, &state, &p, &crash());
        assert_eq!(d, Decision::Restart);
        assert_eq!(state.backoff_until_ms, Some((62 + 40) * S));

        // Healthy for a full backoff.max resets it: the next restart waits `initial` again.
        let (_, state) = run(&p, &[(0, crash()), (10, crash()), (31, ok()), (71, ok())]);
        assert_eq!(state.streak, 0);
        assert_eq!(state.backoff_until_ms, None);
        let (d, state) = step(400 * S, &state, &p, &crash());
        assert_eq!(d, Decision::Restart);
        assert_eq!(state.backoff_until_ms, Some((400 + 10) * S));
    }

    #[test]
    fn an_interrupted_healthy_period_does_not_reset_the_streak() {
        let p = policy();
        let (_, state) = run(
            &p,
            &[
                (0, crash()),
                (31, ok()),
                (50, fail()),
                (51, ok()),
                (80, ok()),
            ],
        );
        // Healthy since 51 only: 29s < 40s.
        assert_eq!(state.streak, 1);
        assert_eq!(state.healthy_since_ms, Some(51 * S));
    }

    #[test]
    fn counters_and_errors_are_remembered() {
        let p = policy();
        let (_, s) = run(&p, &[(0, ok()), (60, fail()), (120, fail())]);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.last_ok_ms, Some(0));
        assert_eq!(s.last_failure_ms, Some(120 * S));
        assert_eq!(s.last_error.as_deref(), Some("HTTP 404"));
        assert_eq!(s.healthy_since_ms, None);
        let (_, s) = run(&p, &[(0, fail()), (60, ok())]);
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.healthy_since_ms, Some(60 * S));
    }

    #[test]
    fn release_lifts_quarantine_and_starts_afresh() {
        let p = policy();
        let (got, state) = run(
            &p,
            &[(0, crash()), (10, crash()), (30, crash()), (70, crash())],
        );
        assert_eq!(got.last(), Some(&"quarantine"));
        let released = release(&state);
        assert_eq!(released.quarantined_since_ms, None);
        assert!(released.restarts.is_empty());
        assert_eq!(released.last_error, state.last_error);
        // The very next crash restarts again, at once.
        assert_eq!(decide(71 * S, &released, &p, &crash()), Decision::Restart);
    }

    #[test]
    fn restarts_older_than_the_window_are_forgotten() {
        let p = policy();
        let (_, state) = run(&p, &[(0, crash()), (400, crash())]);
        assert_eq!(state.restarts, vec![400 * S]);
    }
}
