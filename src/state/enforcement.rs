//! Limits enforcement (`enforcement`): every limits update of an owned or adopted container,
//! with the limits before and after as JSON text (`enforce::LimitSet`). Names and numbers only,
//! never a secret.

use rusqlite::params;

use super::{q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE enforcement (
            id           INTEGER PRIMARY KEY,
            ts_ms        INTEGER NOT NULL,
            container_id TEXT NOT NULL,
            name         TEXT NOT NULL,
            kind         TEXT NOT NULL,
            rule         TEXT NOT NULL,
            trigger      TEXT NOT NULL,
            event        TEXT,
            drift        INTEGER NOT NULL,
            before       TEXT NOT NULL,
            after        TEXT NOT NULL,
            outcome      TEXT NOT NULL,
            error        TEXT
        );
        CREATE INDEX enforcement_name ON enforcement(name, ts_ms);";

/// One `enforcement` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforcementRow {
    /// Assigned by the database; ignored by [`State::record_enforcement`].
    pub id: i64,
    pub ts_ms: i64,
    pub container_id: String,
    pub name: String,
    /// `owned` or `adopted`.
    pub kind: String,
    pub rule: String,
    /// `sweep` or `event`.
    pub trigger: String,
    pub event: Option<String>,
    pub drift: bool,
    /// JSON of the limits before the update.
    pub before: String,
    /// JSON of the limits after it.
    pub after: String,
    /// `ok` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

impl State {
    /// Appends one enforcement.
    pub fn record_enforcement(&self, e: &EnforcementRow) -> Result<(), StateError> {
        self.connection()
            .execute(
                "INSERT INTO enforcement (ts_ms, container_id, name, kind, rule, trigger, event,
                                          drift, before, after, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    e.ts_ms,
                    e.container_id,
                    e.name,
                    e.kind,
                    e.rule,
                    e.trigger,
                    e.event,
                    e.drift,
                    e.before,
                    e.after,
                    e.outcome,
                    e.error,
                ],
            )
            .map_err(q("insert enforcement"))?;
        Ok(())
    }

    /// The newest `limit` enforcements, newest first; only those of container `name` when given.
    pub fn recent_enforcements(
        &self,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EnforcementRow>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT id, ts_ms, container_id, name, kind, rule, trigger, event, drift, before,
                        after, outcome, error
                 FROM enforcement WHERE (?1 IS NULL OR name = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(q("select enforcement"))?;
        let rows = stmt
            .query_map(params![name, limit as i64], |r| {
                Ok(EnforcementRow {
                    id: r.get(0)?,
                    ts_ms: r.get(1)?,
                    container_id: r.get(2)?,
                    name: r.get(3)?,
                    kind: r.get(4)?,
                    rule: r.get(5)?,
                    trigger: r.get(6)?,
                    event: r.get(7)?,
                    drift: r.get(8)?,
                    before: r.get(9)?,
                    after: r.get(10)?,
                    outcome: r.get(11)?,
                    error: r.get(12)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(q("select enforcement"))?;
        Ok(rows)
    }
}
