//! The state database: an embedded sqlite file with versioned migrations. This module is the
//! only one that speaks SQL: each table group has a file here holding the migration that creates
//! it, its typed rows and the statements that read and write them (`audit`, `verify`, `health`,
//! `enforcement`, `limits`, `backup`, `ownership`). Capabilities call those functions; none
//! holds the connection.
//!
//! It must never hold a secret value: callers pass names and outcomes, never environment
//! values or file contents. It decides nothing: rules (what counts as a restart, when to
//! quarantine, what retention keeps) stay with their capability.

mod audit;
pub mod backup;
mod broker;
pub mod egress;
pub mod enforcement;
pub mod health;
pub mod limits;
mod ownership;
pub mod verify;

pub use audit::AuditEntry;
pub use egress::{EgressDecision, EgressEvent};

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};
use rusqlite::{Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};

use crate::error::{Coded, ErrorCode};

/// Schema migrations, oldest first. Append only: a released migration never changes, and the
/// order is the schema version (`PRAGMA user_version`). Each one lives beside the statements
/// that use its tables.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(audit::MIGRATION),
        M::up(verify::MIGRATION),
        M::up(health::MIGRATION),
        M::up(enforcement::MIGRATION),
        M::up(limits::MIGRATION),
        M::up(backup::MIGRATION),
        M::up(ownership::MIGRATION),
        M::up(egress::MIGRATION),
        M::up(broker::MIGRATION),
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot draw random bytes from the kernel")]
    Random {
        #[source]
        source: std::io::Error,
    },
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
            StateError::Random { .. } => ErrorCode::SandboxFailure,
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

/// Maps a failed statement to [`StateError::Query`] naming the operation.
fn q(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
    move |source| StateError::Query { op, source }
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
    /// guard is not `Send`, so it cannot be held across an await. Private to this module:
    /// SQL stays here.
    fn connection(&self) -> ReentrantMutexGuard<'_, Connection> {
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
}
