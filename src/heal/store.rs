//! Healing's tables in the state database: per-target counters (`health_target`), the restart
//! log (`health_restart`) and deliberate stops (`deliberate_stop`). Loading and saving only; it
//! decides nothing. Rows carry names, times and probe errors, never a secret value.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::decide::TargetState;
use crate::state::{State, StateError};

/// What a target is: a `health:` entry, or a sandbox (liveness and crashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Check,
    Sandbox,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Check => "check",
            TargetKind::Sandbox => "sandbox",
        }
    }
    fn parse(s: &str) -> TargetKind {
        if s == "sandbox" {
            TargetKind::Sandbox
        } else {
            TargetKind::Check
        }
    }
}

/// One target's identity: the fortress it belongs to, its kind and its name (the health check's
/// `name`, or the sandbox's container name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TargetKey {
    pub fortress: String,
    pub kind: TargetKind,
    pub name: String,
}

impl std::fmt::Display for TargetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

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

fn q(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
    move |source| StateError::Query { op, source }
}

/// The remembered state of `key` (the default for a target never seen). `restarts` holds the
/// attempts since the last release that are newer than `since_ms`.
pub fn load(state: &State, key: &TargetKey, since_ms: i64) -> Result<TargetState, StateError> {
    let conn = state.connection();
    let row = conn
        .query_row(
            "SELECT consecutive_failures, last_ok_ms, last_failure_ms, last_error,
                    healthy_since_ms, streak, backoff_until_ms, quarantined_since_ms, released_ms
             FROM health_target WHERE fortress = ?1 AND kind = ?2 AND name = ?3",
            params![key.fortress, key.kind.as_str(), key.name],
            |r| {
                Ok((
                    TargetState {
                        consecutive_failures: r.get::<_, i64>(0)?.clamp(0, u32::MAX as i64) as u32,
                        last_ok_ms: r.get(1)?,
                        last_failure_ms: r.get(2)?,
                        last_error: r.get(3)?,
                        healthy_since_ms: r.get(4)?,
                        streak: r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
                        backoff_until_ms: r.get(6)?,
                        quarantined_since_ms: r.get(7)?,
                        restarts: Vec::new(),
                    },
                    r.get::<_, Option<i64>>(8)?,
                ))
            },
        )
        .optional()
        .map_err(q("select health_target"))?;
    let Some((mut s, released)) = row else {
        return Ok(TargetState::default());
    };
    let from = since_ms.max(released.unwrap_or(i64::MIN));
    let mut stmt = conn
        .prepare(
            "SELECT ts_ms FROM health_restart
             WHERE fortress = ?1 AND kind = ?2 AND name = ?3 AND ts_ms > ?4 ORDER BY ts_ms",
        )
        .map_err(q("select health_restart"))?;
    s.restarts = stmt
        .query_map(
            params![key.fortress, key.kind.as_str(), key.name, from],
            |r| r.get(0),
        )
        .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())
        .map_err(q("select health_restart"))?;
    Ok(s)
}

/// Stores the counters of `key` (the restart log is written by [`log_restart`]).
pub fn save(state: &State, key: &TargetKey, s: &TargetState) -> Result<(), StateError> {
    state
        .connection()
        .execute(
            "INSERT INTO health_target (fortress, kind, name, consecutive_failures, last_ok_ms,
                 last_failure_ms, last_error, healthy_since_ms, streak, backoff_until_ms,
                 quarantined_since_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (fortress, kind, name) DO UPDATE SET
                 consecutive_failures = excluded.consecutive_failures,
                 last_ok_ms = excluded.last_ok_ms,
                 last_failure_ms = excluded.last_failure_ms,
                 last_error = excluded.last_error,
                 healthy_since_ms = excluded.healthy_since_ms,
                 streak = excluded.streak,
                 backoff_until_ms = excluded.backoff_until_ms,
                 quarantined_since_ms = excluded.quarantined_since_ms",
            params![
                key.fortress,
                key.kind.as_str(),
                key.name,
                s.consecutive_failures,
                s.last_ok_ms,
                s.last_failure_ms,
                s.last_error,
                s.healthy_since_ms,
                s.streak,
                s.backoff_until_ms,
                s.quarantined_since_ms
            ],
        )
        .map_err(q("upsert health_target"))?;
    Ok(())
}

/// Appends one restart attempt to the log.
pub fn log_restart(
    state: &State,
    key: &TargetKey,
    ts_ms: i64,
    outcome: &str,
    detail: &str,
) -> Result<(), StateError> {
    state
        .connection()
        .execute(
            "INSERT INTO health_restart (fortress, kind, name, ts_ms, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.fortress,
                key.kind.as_str(),
                key.name,
                ts_ms,
                outcome,
                detail
            ],
        )
        .map_err(q("insert health_restart"))?;
    Ok(())
}

/// Marks `key` released at `now_ms`: restarts before it no longer count towards quarantine.
pub fn mark_released(state: &State, key: &TargetKey, now_ms: i64) -> Result<(), StateError> {
    state
        .connection()
        .execute(
            "UPDATE health_target SET released_ms = ?4
             WHERE fortress = ?1 AND kind = ?2 AND name = ?3",
            params![key.fortress, key.kind.as_str(), key.name, now_ms],
        )
        .map_err(q("update health_target"))?;
    Ok(())
}

/// Every target ever seen, optionally of one fortress, ordered by fortress, kind and name.
pub fn all(state: &State, fortress: Option<&str>) -> Result<Vec<TargetStatus>, StateError> {
    // The connection lock is taken per statement: `load` takes it too.
    let keys = {
        let conn = state.connection();
        let mut stmt = conn
            .prepare(
                "SELECT fortress, kind, name FROM health_target
                 WHERE (?1 IS NULL OR fortress = ?1) ORDER BY fortress, kind, name",
            )
            .map_err(q("select health_target"))?;
        let rows = stmt
            .query_map(params![fortress], |r| {
                Ok(TargetKey {
                    fortress: r.get(0)?,
                    kind: TargetKind::parse(&r.get::<_, String>(1)?),
                    name: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(q("select health_target"))?;
        rows
    };
    keys.into_iter()
        .map(|key| {
            let s = load(state, &key, i64::MIN)?;
            let restarts_total: i64 = state
                .connection()
                .query_row(
                    "SELECT count(*) FROM health_restart
                     WHERE fortress = ?1 AND kind = ?2 AND name = ?3",
                    params![key.fortress, key.kind.as_str(), key.name],
                    |r| r.get(0),
                )
                .map_err(q("count health_restart"))?;
            Ok(TargetStatus {
                key,
                state: s,
                restarts_total: restarts_total.max(0) as u64,
            })
        })
        .collect()
}

/// Remembers that `container` (id `id`) was stopped on purpose at `at_ms` (engine clock).
pub fn record_stop(state: &State, container: &str, id: &str, at_ms: i64) -> Result<(), StateError> {
    state
        .connection()
        .execute(
            "INSERT INTO deliberate_stop (container, container_id, at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (container) DO UPDATE SET
                 container_id = excluded.container_id, at_ms = excluded.at_ms",
            params![container, id, at_ms],
        )
        .map_err(q("upsert deliberate_stop"))?;
    Ok(())
}

/// Puts back the deliberate-stop record `previous` of `container` (none: removes it).
pub fn restore_stop(
    state: &State,
    container: &str,
    previous: Option<(String, i64)>,
) -> Result<(), StateError> {
    match previous {
        Some((id, at_ms)) => record_stop(state, container, &id, at_ms),
        None => {
            state
                .connection()
                .execute(
                    "DELETE FROM deliberate_stop WHERE container = ?1",
                    params![container],
                )
                .map_err(q("delete deliberate_stop"))?;
            Ok(())
        }
    }
}

/// The last deliberate stop of `container`: `(id, at_ms)`.
pub fn last_stop(state: &State, container: &str) -> Result<Option<(String, i64)>, StateError> {
    state
        .connection()
        .query_row(
            "SELECT container_id, at_ms FROM deliberate_stop WHERE container = ?1",
            params![container],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(q("select deliberate_stop"))
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
        log_restart(&s, &k, 10, "ok", "").unwrap();
        log_restart(&s, &k, 20, "failed", "no such container").unwrap();
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
        mark_released(&s, &k, 25).unwrap();
        assert!(load(&s, &k, 0).unwrap().restarts.is_empty());
        let listed = all(&s, Some("f")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].restarts_total, 2);
        assert!(all(&s, Some("other")).unwrap().is_empty());
    }

    #[test]
    fn the_last_deliberate_stop_wins() {
        let s = State::in_memory();
        assert_eq!(last_stop(&s, "c").unwrap(), None);
        record_stop(&s, "c", "id1", 5).unwrap();
        record_stop(&s, "c", "id2", 7).unwrap();
        assert_eq!(last_stop(&s, "c").unwrap(), Some(("id2".into(), 7)));
    }
}
