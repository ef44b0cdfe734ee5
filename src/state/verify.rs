//! Verify runs (`verify_run`): one row per sandbox per run, with counts and the ids of the
//! probes that did not pass, never a probe's detail (details are for the report).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE verify_run (
            id            INTEGER PRIMARY KEY,
            ts_ms         INTEGER NOT NULL,
            fortress      TEXT NOT NULL,
            sandbox       TEXT NOT NULL,
            passed        INTEGER NOT NULL,
            failed        INTEGER NOT NULL,
            inconclusive  INTEGER NOT NULL,
            outcome       TEXT NOT NULL,
            not_passed    TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX verify_run_sandbox ON verify_run(sandbox, id);";

/// The record of one verify run of one sandbox, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyRun {
    pub ts_ms: i64,
    pub fortress: String,
    pub sandbox: String,
    pub passed: i64,
    pub failed: i64,
    pub inconclusive: i64,
    /// `pass` or `fail`.
    pub outcome: String,
    /// Ids of the probes that did not pass (never a detail: details are for the report).
    pub not_passed: Vec<String>,
}

impl State {
    /// Appends one sandbox's run.
    pub fn record_verify_run(&self, run: &VerifyRun) -> Result<(), StateError> {
        self.connection()
            .execute(
                "INSERT INTO verify_run (ts_ms, fortress, sandbox, passed, failed, inconclusive, outcome, not_passed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    run.ts_ms,
                    run.fortress,
                    run.sandbox,
                    run.passed,
                    run.failed,
                    run.inconclusive,
                    run.outcome,
                    run.not_passed.join(",")
                ],
            )
            .map_err(q("insert verify_run"))?;
        Ok(())
    }

    /// The newest verify run of `sandbox`.
    pub fn last_verify_run(&self, sandbox: &str) -> Result<Option<VerifyRun>, StateError> {
        self.connection()
            .query_row(
                "SELECT ts_ms, fortress, sandbox, passed, failed, inconclusive, outcome, not_passed
                 FROM verify_run WHERE sandbox = ?1 ORDER BY id DESC LIMIT 1",
                params![sandbox],
                |r| {
                    let np: String = r.get(7)?;
                    Ok(VerifyRun {
                        ts_ms: r.get(0)?,
                        fortress: r.get(1)?,
                        sandbox: r.get(2)?,
                        passed: r.get(3)?,
                        failed: r.get(4)?,
                        inconclusive: r.get(5)?,
                        outcome: r.get(6)?,
                        not_passed: np
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                    })
                },
            )
            .optional()
            .map_err(q("select verify_run"))
    }
}
