//! Healing's tables: per-target counters (`health_target`), the restart log (`health_restart`)
//! and deliberate stops (`deliberate_stop`). Loading and saving only; what the counters mean
//! is `heal::decide`'s. Rows carry names, times and probe errors, never a secret value.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE health_target (
            fortress             TEXT NOT NULL,
            kind                 TEXT NOT NULL,
            name                 TEXT NOT NULL,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            last_ok_ms           INTEGER,
            last_failure_ms      INTEGER,
            last_error           TEXT,
            healthy_since_ms     INTEGER,
            streak               INTEGER NOT NULL DEFAULT 0,
            backoff_until_ms     INTEGER,
            quarantined_since_ms INTEGER,
            released_ms          INTEGER,
            PRIMARY KEY (fortress, kind, name)
        );
        CREATE TABLE health_restart (
            id       INTEGER PRIMARY KEY,
            fortress TEXT NOT NULL,
            kind     TEXT NOT NULL,
            name     TEXT NOT NULL,
            ts_ms    INTEGER NOT NULL,
            outcome  TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX health_restart_target ON health_restart(fortress, kind, name, ts_ms);
        CREATE TABLE deliberate_stop (
            container    TEXT PRIMARY KEY,
            container_id TEXT NOT NULL,
            at_ms        INTEGER NOT NULL
        );";

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

/// One `health_target` row: a target's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthRow {
    pub consecutive_failures: u32,
    pub last_ok_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    pub last_error: Option<String>,
    pub healthy_since_ms: Option<i64>,
    pub streak: u32,
    pub backoff_until_ms: Option<i64>,
    pub quarantined_since_ms: Option<i64>,
    /// When quarantine was last lifted: restarts before it no longer count. Written only by
    /// [`State::mark_released`].
    pub released_ms: Option<i64>,
}

fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

impl State {
    /// The counters of `key`, if it was ever seen.
    pub fn health_target(&self, key: &TargetKey) -> Result<Option<HealthRow>, StateError> {
        self.connection()
            .query_row(
                "SELECT consecutive_failures, last_ok_ms, last_failure_ms, last_error,
                        healthy_since_ms, streak, backoff_until_ms, quarantined_since_ms, released_ms
                 FROM health_target WHERE fortress = ?1 AND kind = ?2 AND name = ?3",
                params![key.fortress, key.kind.as_str(), key.name],
                |r| {
                    Ok(HealthRow {
                        consecutive_failures: clamp_u32(r.get(0)?),
                        last_ok_ms: r.get(1)?,
                        last_failure_ms: r.get(2)?,
                        last_error: r.get(3)?,
                        healthy_since_ms: r.get(4)?,
                        streak: clamp_u32(r.get(5)?),
                        backoff_until_ms: r.get(6)?,
                        quarantined_since_ms: r.get(7)?,
                        released_ms: r.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(q("select health_target"))
    }

    /// Stores the counters of `key` (`released_ms` is left as it is: see
    /// [`State::mark_released`]).
    pub fn save_health_target(&self, key: &TargetKey, row: &HealthRow) -> Result<(), StateError> {
        self.connection()
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
                    row.consecutive_failures,
                    row.last_ok_ms,
                    row.last_failure_ms,
                    row.last_error,
                    row.healthy_since_ms,
                    row.streak,
                    row.backoff_until_ms,
                    row.quarantined_since_ms
                ],
            )
            .map_err(q("upsert health_target"))?;
        Ok(())
    }

    /// Marks `key` released at `now_ms`: restarts before it no longer count towards quarantine.
    pub fn mark_released(&self, key: &TargetKey, now_ms: i64) -> Result<(), StateError> {
        self.connection()
            .execute(
                "UPDATE health_target SET released_ms = ?4
                 WHERE fortress = ?1 AND kind = ?2 AND name = ?3",
                params![key.fortress, key.kind.as_str(), key.name, now_ms],
            )
            .map_err(q("update health_target"))?;
        Ok(())
    }

    /// Every target ever seen, optionally of one fortress, ordered by fortress, kind and name.
    pub fn health_targets(&self, fortress: Option<&str>) -> Result<Vec<TargetKey>, StateError> {
        let conn = self.connection();
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
        Ok(rows)
    }

    /// Appends one restart attempt of `key` to the log (`outcome` is `ok` or `failed`).
    pub fn log_restart(
        &self,
        key: &TargetKey,
        ts_ms: i64,
        outcome: &str,
        detail: &str,
    ) -> Result<(), StateError> {
        self.connection()
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

    /// The times of the restart attempts of `key` after `after_ms`, oldest first.
    pub fn restart_times(&self, key: &TargetKey, after_ms: i64) -> Result<Vec<i64>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT ts_ms FROM health_restart
                 WHERE fortress = ?1 AND kind = ?2 AND name = ?3 AND ts_ms > ?4 ORDER BY ts_ms",
            )
            .map_err(q("select health_restart"))?;
        let rows = stmt
            .query_map(
                params![key.fortress, key.kind.as_str(), key.name, after_ms],
                |r| r.get(0),
            )
            .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())
            .map_err(q("select health_restart"))?;
        Ok(rows)
    }

    /// Every restart attempt ever logged for `key` (also before a release, failed ones too).
    pub fn restart_count(&self, key: &TargetKey) -> Result<u64, StateError> {
        let n: i64 = self
            .connection()
            .query_row(
                "SELECT count(*) FROM health_restart
                 WHERE fortress = ?1 AND kind = ?2 AND name = ?3",
                params![key.fortress, key.kind.as_str(), key.name],
                |r| r.get(0),
            )
            .map_err(q("count health_restart"))?;
        Ok(n.max(0) as u64)
    }

    /// Remembers that `container` (id `id`) was stopped on purpose at `at_ms` (engine clock).
    pub fn record_stop(&self, container: &str, id: &str, at_ms: i64) -> Result<(), StateError> {
        self.connection()
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
        &self,
        container: &str,
        previous: Option<(String, i64)>,
    ) -> Result<(), StateError> {
        match previous {
            Some((id, at_ms)) => self.record_stop(container, &id, at_ms),
            None => {
                self.connection()
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
    pub fn last_stop(&self, container: &str) -> Result<Option<(String, i64)>, StateError> {
        self.connection()
            .query_row(
                "SELECT container_id, at_ms FROM deliberate_stop WHERE container = ?1",
                params![container],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(q("select deliberate_stop"))
    }
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
    fn counters_round_trip_and_a_release_is_kept_apart() {
        let s = State::in_memory();
        let k = key("gw");
        assert_eq!(s.health_target(&k).unwrap(), None);
        let row = HealthRow {
            consecutive_failures: 4,
            last_ok_ms: Some(1),
            last_failure_ms: Some(9),
            last_error: Some("HTTP 503".into()),
            healthy_since_ms: None,
            streak: 2,
            backoff_until_ms: Some(50),
            quarantined_since_ms: Some(40),
            released_ms: None,
        };
        s.save_health_target(&k, &row).unwrap();
        assert_eq!(s.health_target(&k).unwrap().as_ref(), Some(&row));
        s.mark_released(&k, 60).unwrap();
        // Saving the counters again keeps the release time.
        s.save_health_target(&k, &HealthRow::default()).unwrap();
        assert_eq!(s.health_target(&k).unwrap().unwrap().released_ms, Some(60));
        assert_eq!(s.health_targets(Some("f")).unwrap(), [k]);
        assert!(s.health_targets(Some("other")).unwrap().is_empty());
    }

    #[test]
    fn the_restart_log_is_windowed_and_counted_per_target() {
        let s = State::in_memory();
        let (a, b) = (key("a"), key("b"));
        s.log_restart(&a, 10, "ok", "").unwrap();
        s.log_restart(&a, 20, "failed", "no such container")
            .unwrap();
        s.log_restart(&b, 30, "ok", "").unwrap();
        assert_eq!(s.restart_times(&a, 0).unwrap(), [10, 20]);
        assert_eq!(s.restart_times(&a, 15).unwrap(), [20]);
        assert_eq!(s.restart_count(&a).unwrap(), 2);
        assert_eq!(s.restart_count(&key("never")).unwrap(), 0);
    }

    #[test]
    fn the_last_deliberate_stop_wins() {
        let s = State::in_memory();
        assert_eq!(s.last_stop("c").unwrap(), None);
        s.record_stop("c", "id1", 5).unwrap();
        s.record_stop("c", "id2", 7).unwrap();
        assert_eq!(s.last_stop("c").unwrap(), Some(("id2".into(), 7)));
        s.restore_stop("c", Some(("id1".into(), 5))).unwrap();
        assert_eq!(s.last_stop("c").unwrap(), Some(("id1".into(), 5)));
        s.restore_stop("c", None).unwrap();
        assert_eq!(s.last_stop("c").unwrap(), None);
    }
}
