//! The backup catalogue (`backup_snapshot`): one row per snapshot attempt, good or failed;
//! `path` is NULL for a failed one, `deleted_ms` is set when retention removed the file.
//!
//! No file is read or written here. Rows hold paths, sizes and checksums of snapshots, never
//! database contents.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{q, State, StateError};
use crate::error::ErrorCode;

pub(super) const MIGRATION: &str = "CREATE TABLE backup_snapshot (
            id          INTEGER PRIMARY KEY,
            entry       TEXT NOT NULL,
            source      TEXT NOT NULL,
            path        TEXT,
            size_bytes  INTEGER,
            page_count  INTEGER,
            sha256      TEXT,
            duration_ms INTEGER NOT NULL,
            integrity   TEXT NOT NULL,
            created_ms  INTEGER NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
            error_code  TEXT,
            error       TEXT,
            deleted_ms  INTEGER
        );
        CREATE INDEX backup_snapshot_source ON backup_snapshot(source, created_ms);";

/// Outcome of one snapshot attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

/// One catalogue row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub id: i64,
    /// The `backups[].name` it belongs to.
    pub entry: String,
    /// The source database (real path), or the glob that matched nothing.
    pub source: String,
    /// The snapshot file; `None` for a failed attempt.
    pub path: Option<PathBuf>,
    pub size_bytes: Option<u64>,
    pub page_count: Option<u64>,
    pub sha256: Option<String>,
    pub duration_ms: u64,
    /// `ok`, the first line `PRAGMA integrity_check` reported, or `not checked`.
    pub integrity: String,
    pub created_ms: i64,
    /// `created_ms` as RFC 3339 UTC, for people and JSON readers.
    pub created: String,
    pub status: Status,
    /// `clw-backup-failed` for a failed attempt.
    pub error_code: Option<ErrorCode>,
    pub error: Option<String>,
    /// When retention deleted the file.
    pub deleted_ms: Option<i64>,
}

/// What the driver records; the database assigns the id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSnapshot<'a> {
    pub entry: &'a str,
    pub source: &'a str,
    pub path: Option<&'a Path>,
    pub size_bytes: Option<u64>,
    pub page_count: Option<u64>,
    pub sha256: Option<&'a str>,
    pub duration_ms: u64,
    pub integrity: &'a str,
    pub created_ms: i64,
    pub status: Status,
    pub error_code: Option<ErrorCode>,
    pub error: Option<&'a str>,
}

const COLUMNS: &str = "id, entry, source, path, size_bytes, page_count, sha256, duration_ms,
    integrity, created_ms, status, error_code, error, deleted_ms";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Snapshot> {
    let created_ms: i64 = r.get(9)?;
    let status: String = r.get(10)?;
    Ok(Snapshot {
        id: r.get(0)?,
        entry: r.get(1)?,
        source: r.get(2)?,
        path: r.get::<_, Option<String>>(3)?.map(PathBuf::from),
        size_bytes: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        page_count: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        sha256: r.get(6)?,
        duration_ms: r.get::<_, i64>(7)? as u64,
        integrity: r.get(8)?,
        created_ms,
        created: rfc3339(created_ms),
        status: if status == "ok" {
            Status::Ok
        } else {
            Status::Failed
        },
        error_code: r
            .get::<_, Option<String>>(11)?
            .as_deref()
            .and_then(ErrorCode::parse),
        error: r.get(12)?,
        deleted_ms: r.get(13)?,
    })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

impl State {
    /// Appends one attempt; returns its id.
    pub fn insert_snapshot(&self, s: &NewSnapshot<'_>) -> Result<i64, StateError> {
        let conn = self.connection();
        conn.execute(
            "INSERT INTO backup_snapshot (entry, source, path, size_bytes, page_count, sha256,
                duration_ms, integrity, created_ms, status, error_code, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                s.entry,
                s.source,
                s.path.map(|p| p.to_string_lossy().into_owned()),
                s.size_bytes.map(|v| v as i64),
                s.page_count.map(|v| v as i64),
                s.sha256,
                s.duration_ms as i64,
                s.integrity,
                s.created_ms,
                s.status.as_str(),
                s.error_code.map(ErrorCode::as_str),
                s.error,
            ],
        )
        .map_err(q("insert snapshot"))?;
        Ok(conn.last_insert_rowid())
    }

    /// The row `id`, deleted or not.
    pub fn snapshot(&self, id: i64) -> Result<Option<Snapshot>, StateError> {
        self.connection()
            .query_row(
                &format!("SELECT {COLUMNS} FROM backup_snapshot WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(q("select snapshot"))
    }

    /// Rows oldest first; deleted ones only with `include_deleted`; one entry's with `entry`.
    pub fn snapshots(
        &self,
        entry: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<Snapshot>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM backup_snapshot
                 WHERE (?1 IS NULL OR entry = ?1) AND (?2 OR deleted_ms IS NULL)
                 ORDER BY id"
            ))
            .map_err(q("select snapshots"))?;
        stmt.query_map(params![entry, include_deleted], from_row)
            .and_then(|rows| rows.collect())
            .map_err(q("select snapshots"))
    }

    /// The good, not deleted snapshots of one source of one entry: what retention chooses from.
    pub fn good_snapshots(&self, entry: &str, source: &str) -> Result<Vec<Snapshot>, StateError> {
        let conn = self.connection();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM backup_snapshot
                 WHERE entry = ?1 AND source = ?2 AND status = 'ok' AND deleted_ms IS NULL
                 ORDER BY id"
            ))
            .map_err(q("select good snapshots"))?;
        stmt.query_map(params![entry, source], from_row)
            .and_then(|rows| rows.collect())
            .map_err(q("select good snapshots"))
    }

    /// Records that retention removed the file of `id` at `at_ms`.
    pub fn mark_snapshot_deleted(&self, id: i64, at_ms: i64) -> Result<(), StateError> {
        self.connection()
            .execute(
                "UPDATE backup_snapshot SET deleted_ms = ?2 WHERE id = ?1",
                params![id, at_ms],
            )
            .map_err(q("mark snapshot deleted"))?;
        Ok(())
    }

    /// The newest attempt (good or failed, not deleted) for a source, whatever entry took it.
    pub fn last_snapshot_of_source(&self, source: &str) -> Result<Option<Snapshot>, StateError> {
        self.connection()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM backup_snapshot
                     WHERE source = ?1 AND deleted_ms IS NULL
                     ORDER BY created_ms DESC, id DESC LIMIT 1"
                ),
                [source],
                from_row,
            )
            .optional()
            .map_err(q("select last snapshot"))
    }

    /// The newest attempt (good or failed, not deleted) of backup entry `entry`, whatever its
    /// source.
    pub fn last_snapshot_of_entry(&self, entry: &str) -> Result<Option<Snapshot>, StateError> {
        self.connection()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM backup_snapshot
                     WHERE entry = ?1 AND deleted_ms IS NULL
                     ORDER BY created_ms DESC, id DESC LIMIT 1"
                ),
                [entry],
                from_row,
            )
            .optional()
            .map_err(q("select last snapshot of entry"))
    }

    /// The newest good snapshot (not deleted) of backup entry `entry`, whatever its source.
    pub fn last_good_snapshot_of_entry(&self, entry: &str) -> Result<Option<Snapshot>, StateError> {
        self.connection()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM backup_snapshot
                     WHERE entry = ?1 AND status = 'ok' AND deleted_ms IS NULL
                     ORDER BY created_ms DESC, id DESC LIMIT 1"
                ),
                [entry],
                from_row,
            )
            .optional()
            .map_err(q("select last good snapshot of entry"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(source: &'a str, created_ms: i64, status: Status) -> NewSnapshot<'a> {
        NewSnapshot {
            entry: "mem",
            source,
            path: (status == Status::Ok).then_some(Path::new("/b/x.sqlite")),
            size_bytes: Some(4096),
            page_count: Some(1),
            sha256: Some("ab"),
            duration_ms: 3,
            integrity: "ok",
            created_ms,
            status,
            error_code: (status == Status::Failed).then_some(ErrorCode::BackupFailed),
            error: (status == Status::Failed).then_some("database is locked"),
        }
    }

    #[test]
    fn rows_round_trip_and_deleted_ones_leave_the_default_list() {
        let s = State::in_memory();
        let a = s
            .insert_snapshot(&row("/m/a.db", 1_000, Status::Ok))
            .unwrap();
        let b = s
            .insert_snapshot(&row("/m/a.db", 2_000, Status::Failed))
            .unwrap();
        let c = s
            .insert_snapshot(&row("/m/b.db", 3_000, Status::Ok))
            .unwrap();
        let got = s.snapshot(a).unwrap().unwrap();
        assert_eq!(got.path.as_deref(), Some(Path::new("/b/x.sqlite")));
        assert_eq!(got.created, "1970-01-01T00:00:01Z");
        assert_eq!(s.snapshot(b).unwrap().unwrap().status, Status::Failed);
        assert_eq!(s.snapshot(99).unwrap(), None);

        s.mark_snapshot_deleted(a, 5_000).unwrap();
        let ids = |v: Vec<Snapshot>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(s.snapshots(None, false).unwrap()), [b, c]);
        assert_eq!(ids(s.snapshots(None, true).unwrap()), [a, b, c]);
        assert_eq!(
            ids(s.snapshots(Some("other"), true).unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(
            ids(s.good_snapshots("mem", "/m/a.db").unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(ids(s.good_snapshots("mem", "/m/b.db").unwrap()), [c]);
    }

    #[test]
    fn the_last_backup_of_a_source_is_its_newest_attempt_failed_or_not() {
        let s = State::in_memory();
        s.insert_snapshot(&row("/m/a.db", 1_000, Status::Ok))
            .unwrap();
        let failed = s
            .insert_snapshot(&row("/m/a.db", 2_000, Status::Failed))
            .unwrap();
        s.insert_snapshot(&row("/m/b.db", 3_000, Status::Ok))
            .unwrap();
        assert_eq!(
            s.last_snapshot_of_source("/m/a.db").unwrap().unwrap().id,
            failed
        );
        assert_eq!(s.last_snapshot_of_source("/m/none.db").unwrap(), None);
    }

    #[test]
    fn the_last_backup_of_an_entry_is_its_newest_attempt_of_any_source() {
        let s = State::in_memory();
        assert_eq!(s.last_snapshot_of_entry("mem").unwrap(), None);
        s.insert_snapshot(&row("/m/a.db", 1_000, Status::Ok))
            .unwrap();
        let newest = s
            .insert_snapshot(&row("/m/b.db", 3_000, Status::Failed))
            .unwrap();
        s.insert_snapshot(&row("/m/a.db", 2_000, Status::Ok))
            .unwrap();
        let last = s.last_snapshot_of_entry("mem").unwrap().unwrap();
        assert_eq!((last.id, last.status), (newest, Status::Failed));
        assert_eq!(s.last_snapshot_of_entry("other").unwrap(), None);
        let good = s.last_good_snapshot_of_entry("mem").unwrap().unwrap();
        assert_eq!((good.created_ms, good.status), (2_000, Status::Ok));
        assert_eq!(s.last_good_snapshot_of_entry("other").unwrap(), None);
    }
}
