//! The snapshot catalogue: rows of the `backup_snapshot` table in the state database, one per
//! snapshot attempt, good or failed.
//!
//! It owns the SQL and nothing else: no file is read or written here. Rows hold paths, sizes
//! and checksums of snapshots, never database contents.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::BackupError;
use crate::state::State;

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
    pub error_code: Option<String>,
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
    pub error_code: Option<&'a str>,
    pub error: Option<&'a str>,
}

const COLUMNS: &str = "id, entry, source, path, size_bytes, page_count, sha256, duration_ms,
    integrity, created_ms, status, error_code, error, deleted_ms";

fn query_err(op: &'static str) -> impl FnOnce(rusqlite::Error) -> BackupError {
    move |source| BackupError::Catalogue { op, source }
}

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
        error_code: r.get(11)?,
        error: r.get(12)?,
        deleted_ms: r.get(13)?,
    })
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

pub fn insert(state: &State, s: &NewSnapshot<'_>) -> Result<i64, BackupError> {
    let conn = state.connection();
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
            s.error_code,
            s.error,
        ],
    )
    .map_err(query_err("insert snapshot"))?;
    Ok(conn.last_insert_rowid())
}

pub fn get(state: &State, id: i64) -> Result<Option<Snapshot>, BackupError> {
    state
        .connection()
        .query_row(
            &format!("SELECT {COLUMNS} FROM backup_snapshot WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()
        .map_err(query_err("select snapshot"))
}

/// Rows oldest first; deleted ones only with `include_deleted`; one entry's with `entry`.
pub fn list(
    state: &State,
    entry: Option<&str>,
    include_deleted: bool,
) -> Result<Vec<Snapshot>, BackupError> {
    let conn = state.connection();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM backup_snapshot
             WHERE (?1 IS NULL OR entry = ?1) AND (?2 OR deleted_ms IS NULL)
             ORDER BY id"
        ))
        .map_err(query_err("select snapshots"))?;
    stmt.query_map(params![entry, include_deleted], from_row)
        .and_then(|rows| rows.collect())
        .map_err(query_err("select snapshots"))
}

/// The good, not deleted snapshots of one source of one entry: what retention chooses from.
pub fn good(state: &State, entry: &str, source: &str) -> Result<Vec<Snapshot>, BackupError> {
    let conn = state.connection();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM backup_snapshot
             WHERE entry = ?1 AND source = ?2 AND status = 'ok' AND deleted_ms IS NULL
             ORDER BY id"
        ))
        .map_err(query_err("select good snapshots"))?;
    stmt.query_map(params![entry, source], from_row)
        .and_then(|rows| rows.collect())
        .map_err(query_err("select good snapshots"))
}

pub fn mark_deleted(state: &State, id: i64, at_ms: i64) -> Result<(), BackupError> {
    state
        .connection()
        .execute(
            "UPDATE backup_snapshot SET deleted_ms = ?2 WHERE id = ?1",
            params![id, at_ms],
        )
        .map_err(query_err("mark snapshot deleted"))?;
    Ok(())
}

/// The newest attempt (good or failed, not deleted) for a source, whatever entry took it.
pub fn last(state: &State, source: &str) -> Result<Option<Snapshot>, BackupError> {
    state
        .connection()
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
        .map_err(query_err("select last snapshot"))
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
            error_code: (status == Status::Failed).then_some("clw-backup-failed"),
            error: (status == Status::Failed).then_some("database is locked"),
        }
    }

    #[test]
    fn rows_round_trip_and_deleted_ones_leave_the_default_list() {
        let s = State::in_memory();
        let a = insert(&s, &row("/m/a.db", 1_000, Status::Ok)).unwrap();
        let b = insert(&s, &row("/m/a.db", 2_000, Status::Failed)).unwrap();
        let c = insert(&s, &row("/m/b.db", 3_000, Status::Ok)).unwrap();
        let got = get(&s, a).unwrap().unwrap();
        assert_eq!(got.path.as_deref(), Some(Path::new("/b/x.sqlite")));
        assert_eq!(got.created, "1970-01-01T00:00:01Z");
        assert_eq!(get(&s, b).unwrap().unwrap().status, Status::Failed);
        assert_eq!(get(&s, 99).unwrap(), None);

        mark_deleted(&s, a, 5_000).unwrap();
        let ids = |v: Vec<Snapshot>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(list(&s, None, false).unwrap()), [b, c]);
        assert_eq!(ids(list(&s, None, true).unwrap()), [a, b, c]);
        assert_eq!(
            ids(list(&s, Some("other"), true).unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(ids(good(&s, "mem", "/m/a.db").unwrap()), Vec::<i64>::new());
        assert_eq!(ids(good(&s, "mem", "/m/b.db").unwrap()), [c]);
    }

    #[test]
    fn the_last_backup_of_a_source_is_its_newest_attempt_failed_or_not() {
        let s = State::in_memory();
        insert(&s, &row("/m/a.db", 1_000, Status::Ok)).unwrap();
        let failed = insert(&s, &row("/m/a.db", 2_000, Status::Failed)).unwrap();
        insert(&s, &row("/m/b.db", 3_000, Status::Ok)).unwrap();
        assert_eq!(last(&s, "/m/a.db").unwrap().unwrap().id, failed);
        assert_eq!(last(&s, "/m/none.db").unwrap(), None);
    }
}
