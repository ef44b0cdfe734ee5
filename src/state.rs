//! The state database: an embedded sqlite file with versioned migrations, holding the audit
//! log of every action taken (and, as other capabilities land, their own tables).
//!
//! It must never hold a secret value: callers pass names and outcomes, never environment
//! values or file contents.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::Serialize;

use crate::error::{Coded, ErrorCode};

/// Schema migrations, oldest first. Append only: a released migration never changes.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE audit (
            id       INTEGER PRIMARY KEY,
            ts_ms    INTEGER NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            target   TEXT NOT NULL,
            outcome  TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_target ON audit(target, ts_ms);",
        ),
        // verify: one row per sandbox per run (counts and failed probe ids, never details).
        M::up(
            "CREATE TABLE verify_run (
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
        CREATE INDEX verify_run_sandbox ON verify_run(sandbox, id);",
        ),
        // heal: failure counters, backoff and quarantine per target, the restart log, and the
        // containers stopped on purpose (so a deliberate stop is not healed as a crash).
        M::up(
            "CREATE TABLE health_target (
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
        );",
        ),
        // enforce: every limits update of an owned or adopted container (crate::enforce).
        M::up(
            "CREATE TABLE enforcement (
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
        CREATE INDEX enforcement_name ON enforcement(name, ts_ms);",
        ),
        // Limit diagnostics (limits.rs): one row per limit a sandbox ran into.
        M::up(
            "CREATE TABLE limit_event (
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
        CREATE INDEX limit_event_target ON limit_event(target, ts_ms);",
        ),
        // backup: the snapshot catalogue (one row per attempt; `path` is NULL for a failed
        // one, `deleted_ms` is set when retention removed the file).
        M::up(
            "CREATE TABLE backup_snapshot (
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
        CREATE INDEX backup_snapshot_source ON backup_snapshot(source, created_ms);",
        ),
        // ownership: the id of every container this fortress created. Labels can be forged by
        // anyone with engine access; this record cannot (crate::ownership).
        M::up(
            "CREATE TABLE created_container (
            container_id TEXT PRIMARY KEY,
            fortress     TEXT NOT NULL,
            sandbox      TEXT NOT NULL,
            created_ms   INTEGER NOT NULL
        );",
        ),
        // egress: one row per connection the proxy refused or carried (crate::egress). Names
        // and ports only, never a header, a path or a body.
        M::up(
            "CREATE TABLE egress_event (
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
        CREATE INDEX egress_event_sandbox ON egress_event(sandbox, ts_ms);",
        ),
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the state database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot migrate the state database {path}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("the state database {path} failed its integrity check: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("state database query failed: {op}")]
    Query {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl Coded for StateError {
    fn code(&self) -> ErrorCode {
        match self {
            StateError::CreateDir { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ErrorCode::PermissionDenied
            }
            StateError::CreateDir { .. } | StateError::Open { .. } => ErrorCode::PermissionDenied,
            StateError::Migrate { .. } | StateError::Corrupt { .. } | StateError::Query { .. } => {
                ErrorCode::StateCorrupt
            }
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StateError::CreateDir { path, .. } | StateError::Open { path, .. } => Some(format!(
                "pass --state <path> or set state.path to a file this user may write (tried {})",
                path.display()
            )),
            StateError::Corrupt { path, .. } | StateError::Migrate { path, .. } => Some(format!(
                "move {} aside; clw-fortress creates a fresh one (the audit history in it is lost)",
                path.display()
            )),
            _ => None,
        }
    }
}

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

/// The database handle. The connection sits behind a lock so that `&State` can be shared
/// across the daemon's tasks and held across awaits (a bare `rusqlite::Connection` is `Send`
/// but not `Sync`). The lock is reentrant: a helper that holds the connection may call another
/// `State` helper on the same thread without deadlocking. Statements are short, so contention
/// is not a concern.
pub struct State {
    conn: ReentrantMutex<Connection>,
    path: PathBuf,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl State {
    /// Opens (creating on first use, directory mode 0700) and migrates the database.
    pub fn open(path: &Path) -> Result<State, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| StateError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        let mut conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        // The daemon and a timer-mode command may write at once; wait rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| StateError::Query {
                op: "set busy timeout",
                source,
            })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|source| StateError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|source| StateError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        restrict_mode(path);
        Ok(State {
            conn: ReentrantMutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> State {
        let mut conn = Connection::open_in_memory().expect("in-memory sqlite");
        migrations().to_latest(&mut conn).expect("migrations apply");
        State {
            conn: ReentrantMutex::new(conn),
            path: PathBuf::from(":memory:"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, locked for as long as the guard lives (reentrant on one thread). The
    /// guard is not `Send`, so it cannot be held across an await.
    pub fn connection(&self) -> ReentrantMutexGuard<'_, Connection> {
        self.conn.lock()
    }

    /// `PRAGMA integrity_check`.
    pub fn check_integrity(&self) -> Result<(), StateError> {
        let result: String = self
            .connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|source| StateError::Query {
                op: "integrity check",
                source,
            })?;
        if result == "ok" {
            Ok(())
        } else {
            Err(StateError::Corrupt {
                path: self.path.clone(),
                detail: result,
            })
        }
    }

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
            .map_err(|source| StateError::Query {
                op: "insert created_container",
                source,
            })?;
        Ok(())
    }

    /// The sandbox this fortress created container `id` for, if it did.
    pub fn created_sandbox(&self, fortress: &str, id: &str) -> Result<Option<String>, StateError> {
        use rusqlite::OptionalExtension;
        self.connection()
            .query_row(
                "SELECT sandbox FROM created_container WHERE container_id = ?1 AND fortress = ?2",
                params![id, fortress],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| StateError::Query {
                op: "select created_container",
                source,
            })
    }

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
        .map_err(|source| StateError::Query {
            op: "insert audit",
            source,
        })?;
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
            .map_err(|source| StateError::Query {
                op: "select audit",
                source,
            })?;
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
            .map_err(|source| StateError::Query {
                op: "select audit",
                source,
            })?;
        Ok(rows)
    }

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
            .map_err(|source| StateError::Query {
                op: "insert egress_event",
                source,
            })?;
        Ok(())
    }

    /// The newest `limit` egress rows, newest first; only `sandbox`'s when given.
    pub fn egress_events(
        &self,
        sandbox: Option<&str>,
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
                 FROM egress_event WHERE (?1 IS NULL OR sandbox = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![sandbox, limit as i64], |r| {
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
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err)?;
        Ok(rows)
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StateError> {
        self.connection()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|source| StateError::Query {
                op: "read user_version",
                source,
            })
    }
}

/// The database can hold container names and paths an attacker would like to map; keep it
/// private to the user (best effort: the directory is 0700 anyway).
fn restrict_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many migrations there are: a fresh database is at the newest.
    fn migrations_len() -> i64 {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut conn).unwrap();
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn database_is_created_on_first_use_with_private_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.db");
        let s = State::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), migrations_len());
        s.check_integrity().unwrap();
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(s);
        // Reopening an existing database migrates nothing and keeps the rows.
        let s = State::open(&path).unwrap();
        s.audit("test", "create", "sbx", "ok", "").unwrap();
        let s = State::open(&path).unwrap();
        assert_eq!(s.recent_audit(None, 10).unwrap().len(), 1);
    }

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
