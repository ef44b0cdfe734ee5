//! Limit events (`limit_event`): one row per limit a sandbox ran into (`crate::limits`
//! diagnoses them). The counters are cumulative per container, so a row is only added when its
//! count is above the last recorded one for the same container and resource.

use rusqlite::params;
use serde::Serialize;

use super::{now_ms, q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE limit_event (
            id            INTEGER PRIMARY KEY,
            ts_ms         INTEGER NOT NULL,
            container_id  TEXT NOT NULL,
            target        TEXT NOT NULL,
            resource      TEXT NOT NULL,
            usage         INTEGER,
            lim           INTEGER,
            unit          TEXT NOT NULL,
            count         INTEGER NOT NULL,
            message       TEXT NOT NULL
        );
        CREATE INDEX limit_event_target ON limit_event(target, ts_ms);";

/// A recorded limit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredLimitEvent {
    pub id: i64,
    pub ts_ms: i64,
    pub container_id: String,
    pub target: String,
    pub resource: String,
    pub usage: Option<i64>,
    pub limit: Option<i64>,
    pub unit: String,
    pub count: i64,
    pub message: String,
}

/// What [`State::record_limit_event`] stores; the database assigns the id, the time is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLimitEvent<'a> {
    pub container_id: &'a str,
    /// The sandbox or adopted container's name.
    pub target: &'a str,
    pub resource: &'a str,
    pub usage: Option<i64>,
    pub limit: Option<i64>,
    pub unit: &'a str,
    pub count: i64,
    pub message: &'a str,
}

impl State {
    /// Records `e` unless a row of the same container and resource already has a count at or
    /// above it (the same event seen again). Returns whether a row was added.
    pub fn record_limit_event(&self, e: &NewLimitEvent<'_>) -> Result<bool, StateError> {
        let conn = self.connection();
        let last: Option<i64> = conn
            .query_row(
                "SELECT MAX(count) FROM limit_event WHERE container_id = ?1 AND resource = ?2",
                params![e.container_id, e.resource],
                |r| r.get(0),
            )
            .map_err(q("select limit_event"))?;
        if last.is_some_and(|c| c >= e.count) {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO limit_event
                 (ts_ms, container_id, target, resource, usage, lim, unit, count, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                now_ms(),
                e.container_id,
                e.target,
                e.resource,
                e.usage,
                e.limit,
                e.unit,
                e.count,
                e.message
            ],
        )
        .map_err(q("insert limit_event"))?;
        Ok(true)
    }

    /// The memory events (OOM kills) recorded for `target`: per container id, the highest
    /// count (the counters are cumulative per container, so the highest is its total).
    pub fn oom_kills_by_container(&self, target: &str) -> Result<Vec<(String, i64)>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT container_id, MAX(count) FROM limit_event
                 WHERE target = ?1 AND resource = 'memory' GROUP BY container_id ORDER BY container_id",
            )
            .map_err(q("select limit_event"))?;
        let rows = stmt
            .query_map(params![target], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(q("select limit_event"))?;
        Ok(rows)
    }

    /// The newest `limit` recorded events, newest first; only those of `target` when given.
    pub fn recent_limit_events(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredLimitEvent>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT id, ts_ms, container_id, target, resource, usage, lim, unit, count, message
                 FROM limit_event WHERE (?1 IS NULL OR target = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(q("select limit_event"))?;
        let rows = stmt
            .query_map(params![target, limit as i64], |r| {
                Ok(StoredLimitEvent {
                    id: r.get(0)?,
                    ts_ms: r.get(1)?,
                    container_id: r.get(2)?,
                    target: r.get(3)?,
                    resource: r.get(4)?,
                    usage: r.get(5)?,
                    limit: r.get(6)?,
                    unit: r.get(7)?,
                    count: r.get(8)?,
                    message: r.get(9)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(q("select limit_event"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory<'a>(container_id: &'a str, target: &'a str, count: i64) -> NewLimitEvent<'a> {
        NewLimitEvent {
            container_id,
            target,
            resource: "memory",
            usage: None,
            limit: Some(64 << 20),
            unit: "bytes",
            count,
            message: "oom",
        }
    }

    #[test]
    fn oom_kills_are_the_highest_count_per_container_of_a_target() {
        let s = State::in_memory();
        assert!(s.oom_kills_by_container("sbx").unwrap().is_empty());
        s.record_limit_event(&memory("c1", "sbx", 1)).unwrap();
        s.record_limit_event(&memory("c1", "sbx", 3)).unwrap();
        s.record_limit_event(&memory("c2", "sbx", 1)).unwrap();
        s.record_limit_event(&memory("c3", "other", 5)).unwrap();
        s.record_limit_event(&NewLimitEvent {
            resource: "pids",
            unit: "pids",
            count: 9,
            ..memory("c1", "sbx", 0)
        })
        .unwrap();
        assert_eq!(
            s.oom_kills_by_container("sbx").unwrap(),
            [("c1".to_string(), 3), ("c2".to_string(), 1)]
        );
    }
}
