//! The audit log (`audit`): one row per action taken, by any capability. Rows carry names and
//! outcomes, never a secret value.

use rusqlite::params;
use serde::Serialize;

use super::{now_ms, q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE audit (
            id       INTEGER PRIMARY KEY,
            ts_ms    INTEGER NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            target   TEXT NOT NULL,
            outcome  TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_target ON audit(target, ts_ms);";

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub ts_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
}

impl State {
    /// Records one action. `detail` must not contain a secret value.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<i64, StateError> {
        let conn = self.connection();
        conn.execute(
            "INSERT INTO audit (ts_ms, actor, action, target, outcome, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_ms(), actor, action, target, outcome, detail],
        )
        .map_err(q("insert audit"))?;
        Ok(conn.last_insert_rowid())
    }

    /// The newest `limit` audit rows, newest first; only those of `target` when given.
    pub fn recent_audit(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT id, ts_ms, actor, action, target, outcome, detail FROM audit
                 WHERE (?1 IS NULL OR target = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(q("select audit"))?;
        let rows = stmt
            .query_map(params![target, limit as i64], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    ts_ms: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    outcome: r.get(5)?,
                    detail: r.get(6)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(q("select audit"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rows_come_back_newest_first_and_by_target() {
        let s = State::in_memory();
        s.audit("cli:apply", "create", "a", "ok", "").unwrap();
        s.audit("cli:apply", "create", "b", "failed", "image missing")
            .unwrap();
        s.audit("cli:apply", "update", "a", "ok", "pids 4096 -> 64")
            .unwrap();
        let all = s.recent_audit(None, 10).unwrap();
        assert_eq!(
            all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["update", "create", "create"]
        );
        let a = s.recent_audit(Some("a"), 10).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(s.recent_audit(None, 1).unwrap().len(), 1);
    }
}
