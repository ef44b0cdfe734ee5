//! What healing remembers, in `decide`'s terms: a target's [`TargetState`] is its
//! `health_target` row plus the restarts logged since its last release. The SQL is in
//! `state::health`; this file only converts.

use serde::Serialize;

use super::decide::TargetState;
use crate::state::health::HealthRow;
pub use crate::state::health::{TargetKey, TargetKind};
use crate::state::{State, StateError};

/// A target's counters as `status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatus {
    #[serde(flatten)]
    pub key: TargetKey,
    #[serde(flatten)]
    pub state: TargetState,
    /// Every restart attempt ever logged for it (also before a release).
    pub restarts_total: u64,
}

/// The remembered state of `key` (the default for a target never seen). `restarts` holds the
/// attempts since the last release that are newer than `since_ms`.
pub fn load(state: &State, key: &TargetKey, since_ms: i64) -> Result<TargetState, StateError> {
    let Some(row) = state.health_target(key)? else {
        return Ok(TargetState::default());
    };
    let from = since_ms.max(row.released_ms.unwrap_or(i64::MIN));
    Ok(TargetState {
        consecutive_failures: row.consecutive_failures,
        last_ok_ms: row.last_ok_ms,
        last_failure_ms: row.last_failure_ms,
        last_error: row.last_error,
        healthy_since_ms: row.healthy_since_ms,
        streak: row.streak,
        backoff_until_ms: row.backoff_until_ms,
        quarantined_since_ms: row.quarantined_since_ms,
        restarts: state.restart_times(key, from)?,
    })
}

/// Stores the counters of `key` (the restart log is written by [`State::log_restart`]).
pub fn save(state: &State, key: &TargetKey, s: &TargetState) -> Result<(), StateError> {
    state.save_health_target(
        key,
        &HealthRow {
            consecutive_failures: s.consecutive_failures,
            last_ok_ms: s.last_ok_ms,
            last_failure_ms: s.last_failure_ms,
            last_error: s.last_error.clone(),
            healthy_since_ms: s.healthy_since_ms,
            streak: s.streak,
            backoff_until_ms: s.backoff_until_ms,
            quarantined_since_ms: s.quarantined_since_ms,
            released_ms: None,
        },
    )
}

/// Every target ever seen, optionally of one fortress, ordered by fortress, kind and name.
pub fn all(state: &State, fortress: Option<&str>) -> Result<Vec<TargetStatus>, StateError> {
    state
        .health_targets(fortress)?
        .into_iter()
        .map(|key| {
            Ok(TargetStatus {
                state: load(state, &key, i64::MIN)?,
                restarts_total: state.restart_count(&key)?,
                key,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> TargetKey {
        TargetKey {
            fortress: "f".into(),
            kind: TargetKind::Check,
            name: name.into(),
        }
    }

    #[test]
    fn a_target_never_seen_starts_from_the_default() {
        let s = State::in_memory();
        assert_eq!(load(&s, &key("x"), 0).unwrap(), TargetState::default());
    }

    #[test]
    fn counters_and_restart_log_round_trip() {
        let s = State::in_memory();
        let k = key("gw");
        let st = TargetState {
            consecutive_failures: 4,
            last_ok_ms: Some(1),
            last_failure_ms: Some(9),
            last_error: Some("HTTP 503".into()),
            healthy_since_ms: None,
            streak: 2,
            backoff_until_ms: Some(50),
            quarantined_since_ms: Some(40),
            restarts: vec![],
        };
        save(&s, &k, &st).unwrap();
        s.log_restart(&k, 10, "ok", "").unwrap();
        s.log_restart(&k, 20, "failed", "no such container")
            .unwrap();
        let back = load(&s, &k, 0).unwrap();
        assert_eq!(back.restarts, vec![10, 20]);
        assert_eq!(
            TargetState {
                restarts: vec![],
                ..back
            },
            st
        );
        // The window bound and the release both cut the restart history.
        assert_eq!(load(&s, &k, 15).unwrap().restarts, vec![20]);
        s.mark_released(&k, 25).unwrap();
        assert!(load(&s, &k, 0).unwrap().restarts.is_empty());
        let listed = all(&s, Some("f")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].restarts_total, 2);
        assert!(all(&s, Some("other")).unwrap().is_empty());
    }
}
