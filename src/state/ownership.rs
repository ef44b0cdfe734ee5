//! The containers this fortress created (`created_container`): the record `ownership` checks
//! labels against. Labels can be forged by anyone with engine access; this record cannot.

use rusqlite::{params, OptionalExtension};

use super::{now_ms, q, State, StateError};

pub(super) const MIGRATION: &str = "CREATE TABLE created_container (
            container_id TEXT PRIMARY KEY,
            fortress     TEXT NOT NULL,
            sandbox      TEXT NOT NULL,
            created_ms   INTEGER NOT NULL
        );";

impl State {
    /// Records that this fortress created container `id` for `sandbox`.
    pub fn record_created(
        &self,
        fortress: &str,
        sandbox: &str,
        id: &str,
    ) -> Result<(), StateError> {
        self.connection()
            .execute(
                "INSERT OR REPLACE INTO created_container (container_id, fortress, sandbox, created_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, fortress, sandbox, now_ms()],
            )
            .map_err(q("insert created_container"))?;
        Ok(())
    }

    /// The sandbox this fortress created container `id` for, if it did.
    pub fn created_sandbox(&self, fortress: &str, id: &str) -> Result<Option<String>, StateError> {
        self.connection()
            .query_row(
                "SELECT sandbox FROM created_container WHERE container_id = ?1 AND fortress = ?2",
                params![id, fortress],
                |row| row.get(0),
            )
            .optional()
            .map_err(q("select created_container"))
    }
}
