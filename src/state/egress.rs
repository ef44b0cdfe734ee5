//! The egress proxy's connections (`egress_event`): one row per connection it refused or
//! carried (crate::egress). Names and ports only, never a header, a path or a body.

use rusqlite::params;
use serde::Serialize;

use super::{q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE egress_event (
            id           INTEGER PRIMARY KEY,
            ts_ms        INTEGER NOT NULL,
            sandbox      TEXT NOT NULL,
            host         TEXT NOT NULL,
            port         INTEGER NOT NULL,
            decision     TEXT NOT NULL CHECK (decision IN ('allowed', 'denied')),
            reason       TEXT NOT NULL DEFAULT '',
            rule_needed  TEXT NOT NULL DEFAULT '',
            bytes        INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX egress_event_sandbox ON egress_event(sandbox, ts_ms);";

/// One connection the egress proxy refused or carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressEvent {
    pub ts_ms: i64,
    pub sandbox: String,
    /// The destination as requested (a name or an address).
    pub host: String,
    pub port: u16,
    pub decision: EgressDecision,
    /// Why it was refused (`not-allowed`, `internal-address`, ...); empty when allowed.
    pub reason: String,
    /// The allow entry that would have permitted it; empty when allowed.
    pub rule_needed: String,
    /// Bytes carried both ways (0 for a refusal).
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressDecision {
    Allowed,
    Denied,
}

impl EgressDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            EgressDecision::Allowed => "allowed",
            EgressDecision::Denied => "denied",
        }
    }
}

impl State {
    /// Records one egress connection.
    pub fn record_egress(&self, e: &EgressEvent) -> Result<(), StateError> {
        self.connection()
            .execute(
                "INSERT INTO egress_event
                 (ts_ms, sandbox, host, port, decision, reason, rule_needed, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.ts_ms,
                    e.sandbox,
                    e.host,
                    e.port,
                    e.decision.as_str(),
                    e.reason,
                    e.rule_needed,
                    i64::try_from(e.bytes).unwrap_or(i64::MAX)
                ],
            )
            .map_err(q("insert egress_event"))?;
        Ok(())
    }

    /// The newest `limit` egress rows, newest first; only `sandbox`'s when given.
    pub fn egress_events(
        &self,
        sandbox: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EgressEvent>, StateError> {
        self.egress_rows(sandbox, None, limit)
    }

    /// The newest `limit` refusals, newest first; only `sandbox`'s when given.
    pub fn egress_denials(
        &self,
        sandbox: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EgressEvent>, StateError> {
        self.egress_rows(sandbox, Some(EgressDecision::Denied), limit)
    }

    fn egress_rows(
        &self,
        sandbox: Option<&str>,
        decision: Option<EgressDecision>,
        limit: usize,
    ) -> Result<Vec<EgressEvent>, StateError> {
        let err = |source| StateError::Query {
            op: "select egress_event",
            source,
        };
        let conn = self.connection();
        let mut stmt = conn
            .prepare(
                "SELECT ts_ms, sandbox, host, port, decision, reason, rule_needed, bytes
                 FROM egress_event WHERE (?1 IS NULL OR sandbox = ?1) AND (?3 IS NULL OR decision = ?3)
                 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(
                params![sandbox, limit as i64, decision.map(|d| d.as_str())],
                |r| {
                    let decision: String = r.get(4)?;
                    Ok(EgressEvent {
                        ts_ms: r.get(0)?,
                        sandbox: r.get(1)?,
                        host: r.get(2)?,
                        port: r.get(3)?,
                        decision: if decision == "allowed" {
                            EgressDecision::Allowed
                        } else {
                            EgressDecision::Denied
                        },
                        reason: r.get(5)?,
                        rule_needed: r.get(6)?,
                        bytes: r.get::<_, i64>(7)?.max(0) as u64,
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::now_ms;

    #[test]
    fn egress_events_come_back_newest_first_and_by_sandbox() {
        let s = State::in_memory();
        let event = |sandbox: &str, host: &str, decision, bytes| EgressEvent {
            ts_ms: now_ms(),
            sandbox: sandbox.into(),
            host: host.into(),
            port: 443,
            decision,
            reason: String::new(),
            rule_needed: String::new(),
            bytes,
        };
        s.record_egress(&event("a", "pypi.org", EgressDecision::Allowed, 1234))
            .unwrap();
        let mut denied = event("a", "evil.test", EgressDecision::Denied, 0);
        denied.reason = "not-allowed".into();
        denied.rule_needed = "evil.test:443".into();
        s.record_egress(&denied).unwrap();
        s.record_egress(&event("b", "pypi.org", EgressDecision::Allowed, 1))
            .unwrap();
        let a = s.egress_events(Some("a"), 10).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], denied);
        assert_eq!(a[1].bytes, 1234);
        assert_eq!(a[1].decision, EgressDecision::Allowed);
        assert_eq!(s.egress_events(None, 10).unwrap().len(), 3);
    }
}
