//! Backups: consistent online snapshots of the agent's sqlite databases (`backups:` in the
//! manifest), their catalogue in the state database, retention, verify and restore.
//!
//! It owns the snapshot files under each entry's `dest` and what goes into the
//! `backup_snapshot` table (its SQL is in `state::backup`). It
//! must not write to a source database (sources are opened read-only), must not copy a live
//! database with a plain file copy, must not leave a partial snapshot behind, and never
//! deletes a snapshot except through retention after a successful run. No container engine is
//! involved. Snapshot paths and sizes may be logged; database contents never are.
//!
//! Layout: `<dest>/<entry>/<source-slug>/<UTC timestamp>-<sha256 prefix>.sqlite`, directories
//! 0700, files 0600.
//!
//! Entry points: [`run`] (blocking; the CLI), [`run_scheduled`] (async; the daemon),
//! [`verify`], [`restore`], [`list`], [`last_backup`] (for `status`).

pub mod confine;
pub mod retention;
pub mod snapshot;
pub mod sources;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{exit, Coded, ErrorCode};
use crate::manifest::Backup;
use crate::report::chain;
use crate::state::{State, StateError};

use crate::state::backup::NewSnapshot;
pub use crate::state::backup::{Snapshot, Status};
pub use retention::{retain, SnapshotMeta};
pub use snapshot::FileOwner;

/// Who the files a backup creates belong to: the fortress's owner (`metadata.owner`) when this
/// process runs as root, so a root agent's snapshots in a user's destination are the user's;
/// otherwise the running user, as always.
pub fn file_owner(fortress: &crate::manifest::Fortress) -> Option<FileOwner> {
    let owner = fortress.owner.as_ref()?;
    nix::unistd::geteuid().is_root().then_some(FileOwner {
        uid: owner.uid,
        gid: owner.gid,
    })
}

/// How long a source may stay locked before its snapshot counts as failed. A rollback-journal
/// writer holds its lock only for a commit; ten seconds means something is wrong.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the source glob {pattern} matched no database file")]
    NoMatch { pattern: String },
    #[error("the source glob {pattern} is invalid: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{path}: the database stayed locked for {}", humantime::format_duration(*waited))]
    SourceLocked { path: PathBuf, waited: Duration },
    #[error("cannot read the source database {path}")]
    ReadSource {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot copy {path}")]
    Copy {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot write the snapshot in {dir}")]
    WriteSnapshot {
        dir: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} failed its integrity check: {detail}")]
    Integrity { path: PathBuf, detail: String },
    #[error("{path} does not match its checksum: expected sha256 {expected}, found {actual}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the backup directory {path} is accessible to other users (mode {mode:04o}) and cannot be made private")]
    DestInsecure {
        path: PathBuf,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing {path}: it is a symbolic link in a directory another user controls; a backup run as root does not follow it")]
    Symlink { path: PathBuf },
    #[error("no snapshot with id {id}")]
    UnknownId { id: i64 },
    #[error("snapshot {id} is {what}; it cannot be verified or restored")]
    Unusable { id: i64, what: &'static str },
    #[error("{path} exists; not overwriting it")]
    TargetExists { path: PathBuf },
    #[error("no backup named {name} in the manifest")]
    UnknownEntry { name: String, known: Vec<String> },
    #[error("the backup task stopped before it finished")]
    Interrupted,
    #[error(transparent)]
    State(#[from] StateError),
}

impl Coded for BackupError {
    fn code(&self) -> ErrorCode {
        match self {
            BackupError::UnknownId { .. }
            | BackupError::TargetExists { .. }
            | BackupError::UnknownEntry { .. } => ErrorCode::ConfigInvalid,
            BackupError::State(e) => e.code(),
            _ => ErrorCode::BackupFailed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BackupError::TargetExists { .. } => {
                Some("pass --force to replace it (stop the agent first), or restore to another path".into())
            }
            BackupError::UnknownId { .. } => Some("`clw-fortress backup list` shows the ids".into()),
            BackupError::UnknownEntry { known, .. } => Some(if known.is_empty() {
                "the manifest declares no backups".into()
            } else {
                format!("declared backups: {}", known.join(", "))
            }),
            BackupError::Checksum { .. } | BackupError::Integrity { .. } => Some(
                "restore from another snapshot that verifies; check the disk (dmesg, smartctl)"
                    .into(),
            ),
            BackupError::SourceLocked { .. } => Some(
                "a writer held the database locked; run the backup again or switch the database to WAL mode"
                    .into(),
            ),
            BackupError::NoMatch { .. } => {
                Some("fix the sources glob or remove it from the backup entry".into())
            }
            BackupError::Symlink { .. } => Some(
                "declare the real path (no symlink below the user's home) or remove the link; nothing was written through it"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// How a run behaves; the defaults suit the daemon (no progress bar).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only the entry with this name (`backup run --name`).
    pub only: Option<String>,
    pub busy_timeout: Duration,
    /// Draw a progress bar on stderr for long snapshots (the CLI on a terminal only).
    pub progress: bool,
    /// Who ran it, for the audit log: `cli:backup`, `daemon:backup`.
    pub actor: String,
    /// Who the directories and snapshots it creates belong to (see [`file_owner`]); also whose
    /// file identity the sources are read with under a root agent.
    pub owner: Option<FileOwner>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            only: None,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            progress: false,
            actor: "daemon:backup".into(),
            owner: None,
        }
    }
}

/// A snapshot retention removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruned {
    pub id: i64,
    pub entry: String,
    pub path: Option<PathBuf>,
}

/// What one run did: the catalogue rows it wrote (good and failed) and what retention removed.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RunReport {
    pub snapshots: Vec<Snapshot>,
    pub pruned: Vec<Pruned>,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.snapshots
            .iter()
            .filter(|s| s.status == Status::Failed)
            .count()
    }

    pub fn succeeded(&self) -> usize {
        self.snapshots.len() - self.failed()
    }

    /// 0 when every source was snapshotted, 4 (partial) when some failed and others were
    /// done, `clw-backup-failed`'s status (1) when none could be.
    pub fn exit_status(&self) -> u8 {
        exit::of_operations(
            self.succeeded(),
            (self.failed() > 0).then_some(ErrorCode::BackupFailed),
        )
    }
}

/// Runs the backup entries (all, or `opts.only`): snapshots every source, records every
/// attempt in the catalogue, then applies retention to each source that succeeded.
///
/// A failing source never stops the others; only a broken state database aborts the run.
/// Blocking (file and sqlite I/O): call it from a blocking thread, or use [`run_scheduled`].
pub fn run(backups: &[Backup], state: &State, opts: &RunOptions) -> Result<RunReport, BackupError> {
    let selected: Vec<&Backup> = match &opts.only {
        None => backups.iter().collect(),
        Some(name) => {
            let found: Vec<_> = backups.iter().filter(|b| &b.name == name).collect();
            if found.is_empty() {
                return Err(BackupError::UnknownEntry {
                    name: name.clone(),
                    known: backups.iter().map(|b| b.name.clone()).collect(),
                });
            }
            found
        }
    };
    let mut report = RunReport::default();
    for entry in selected {
        run_entry(entry, state, opts, &mut report)?;
    }
    Ok(report)
}

/// The daemon's entry point: [`run`] on a blocking thread with its own state connection
/// (sqlite connections are not shared across threads), without a progress bar. The daemon
/// schedules it from each entry's `schedule`; `opts.only` names the entry that fired.
pub async fn run_scheduled(
    backups: Vec<Backup>,
    state_path: PathBuf,
    opts: RunOptions,
) -> Result<RunReport, BackupError> {
    let opts = RunOptions {
        progress: false,
        ..opts
    };
    tokio::task::spawn_blocking(move || {
        let state = State::open(&state_path)?;
        run(&backups, &state, &opts)
    })
    .await
    .unwrap_or_else(|e| match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Err(BackupError::Interrupted),
    })
}

fn run_entry(
    entry: &Backup,
    state: &State,
    opts: &RunOptions,
    report: &mut RunReport,
) -> Result<(), BackupError> {
    let strict = confine::strict();
    let staging = staging_root(state);
    let dirs = snapshot::ensure_private_dir(&entry.dest, opts.owner)
        .and_then(|dest| snapshot::ensure_private_child(&dest, &entry.name, opts.owner));
    for matched in sources::expand(&entry.sources, strict) {
        let started = Instant::now();
        let created = Utc::now();
        let (source, result) = match matched {
            sources::Matched::File(path) => {
                let result = match &dirs {
                    Ok(entry_dir) => {
                        snapshot_one(&path, entry_dir, created, opts, strict, &staging)
                    }
                    Err(e) => Err(clone_setup_error(e)),
                };
                (path.to_string_lossy().into_owned(), result)
            }
            sources::Matched::Symlinked { path } => (
                path.to_string_lossy().into_owned(),
                Err(BackupError::Symlink { path }),
            ),
            sources::Matched::Nothing { pattern } => {
                (pattern.clone(), Err(BackupError::NoMatch { pattern }))
            }
            sources::Matched::BadPattern { pattern, reason } => (
                pattern.clone(),
                Err(BackupError::BadPattern { pattern, reason }),
            ),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let row = match &result {
            Ok(t) => {
                tracing::info!(
                    backup = %entry.name, source = %source, snapshot = %t.path.display(),
                    bytes = t.size_bytes, ms = duration_ms, "snapshot taken"
                );
                NewSnapshot {
                    entry: &entry.name,
                    source: &source,
                    path: Some(&t.path),
                    size_bytes: Some(t.size_bytes),
                    page_count: Some(t.page_count),
                    sha256: Some(&t.sha256),
                    duration_ms,
                    integrity: "ok",
                    created_ms: created.timestamp_millis(),
                    status: Status::Ok,
                    error_code: None,
                    error: None,
                }
            }
            Err(e) => {
                tracing::warn!(backup = %entry.name, source = %source, "snapshot failed: {}", chain(e));
                NewSnapshot {
                    entry: &entry.name,
                    source: &source,
                    path: None,
                    size_bytes: None,
                    page_count: None,
                    sha256: None,
                    duration_ms,
                    integrity: match e {
                        BackupError::Integrity { detail, .. } => detail.as_str(),
                        _ => "not checked",
                    },
                    created_ms: created.timestamp_millis(),
                    status: Status::Failed,
                    error_code: Some(ErrorCode::BackupFailed),
                    error: None,
                }
            }
        };
        let message = result.as_ref().err().map(chain);
        let id = state.insert_snapshot(&NewSnapshot {
            error: message.as_deref(),
            ..row
        })?;
        let detail = match &result {
            Ok(t) => format!("{} ({} bytes)", t.path.display(), t.size_bytes),
            Err(_) => message.clone().unwrap_or_default(),
        };
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        state.audit(&opts.actor, "backup", &source, outcome, &detail)?;
        if let Some(row) = state.snapshot(id)? {
            report.snapshots.push(row);
        }
        if result.is_ok() {
            report
                .pruned
                .extend(apply_retention(state, entry, &source, Utc::now())?);
        }
    }
    Ok(())
}

/// The entry's directory could not be prepared: every source of the entry fails with it.
fn clone_setup_error(e: &BackupError) -> BackupError {
    match e {
        BackupError::DestInsecure { path, mode, source } => BackupError::DestInsecure {
            path: path.clone(),
            mode: *mode,
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        BackupError::Symlink { path } => BackupError::Symlink { path: path.clone() },
        BackupError::Io { op, path, source } => BackupError::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => BackupError::Io {
            op: "prepare",
            path: PathBuf::new(),
            source: std::io::Error::other(chain(other)),
        },
    }
}

fn snapshot_one(
    source: &Path,
    entry_dir: &confine::Dir,
    created: DateTime<Utc>,
    opts: &RunOptions,
    strict: bool,
    staging: &Path,
) -> Result<snapshot::Taken, BackupError> {
    let dir = snapshot::ensure_private_child(entry_dir, &sources::slug(source), opts.owner)?;
    let access = snapshot::Access {
        owner: opts.owner,
        read_as: opts.owner.filter(|_| strict),
        nofollow: strict,
        staging,
    };
    let mut bar = Progress::new(opts.progress, source);
    let taken = snapshot::take(
        source,
        &dir,
        created,
        opts.busy_timeout,
        access,
        &mut |done, total| bar.update(done, total),
    );
    bar.finish();
    taken
}

/// Deletes the snapshots of one source that the entry's `keep` no longer covers: the file
/// first (then the directory fsync), then the catalogue mark, so a crash in between leaves a
/// row pointing at a missing file rather than an uncatalogued file.
pub fn apply_retention(
    state: &State,
    entry: &Backup,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Pruned>, BackupError> {
    let good = state.good_snapshots(&entry.name, source)?;
    let metas: Vec<SnapshotMeta> = good
        .iter()
        .filter_map(|s| {
            DateTime::from_timestamp_millis(s.created_ms)
                .map(|created| SnapshotMeta { id: s.id, created })
        })
        .collect();
    let kept = retain(&metas, &entry.keep, now);
    let mut pruned = Vec::new();
    for s in good.iter().filter(|s| !kept.contains(&s.id)) {
        if let Some(path) = &s.path {
            // Through the directory's descriptor, opened without following a symlink a user
            // could have put in its path: `unlinkat` removes the entry itself, whatever it is.
            let removed = confine::split(path).and_then(|(dir, name)| {
                match confine::Dir::open(dir, confine::Missing::Fail, confine::strict()) {
                    Ok(d) => d.unlink(name).and_then(|()| d.sync()),
                    Err(BackupError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            });
            if let Err(e) = removed {
                tracing::warn!(snapshot = %path.display(), "retention cannot delete: {}", chain(&e));
                continue;
            }
        }
        state.mark_snapshot_deleted(s.id, Utc::now().timestamp_millis())?;
        tracing::info!(backup = %entry.name, id = s.id, "snapshot pruned by retention");
        pruned.push(Pruned {
            id: s.id,
            entry: entry.name.clone(),
            path: s.path.clone(),
        });
    }
    Ok(pruned)
}

/// The catalogue, oldest first (see [`State::snapshots`]).
pub fn list(
    state: &State,
    entry: Option<&str>,
    include_deleted: bool,
) -> Result<Vec<Snapshot>, BackupError> {
    Ok(state.snapshots(entry, include_deleted)?)
}

/// The newest snapshot attempt of a source database, good or failed (for `status`). The path
/// is compared after resolving symlinks, as the catalogue stores it.
pub fn last_backup(state: &State, source: &Path) -> Result<Option<Snapshot>, BackupError> {
    let real = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    Ok(state.last_snapshot_of_source(&real.to_string_lossy())?)
}

/// Where SQLite's private staging directories are made (see [`confine`]): beside the state
/// database (root's own under a root agent, and no other user can rename entries there), else
/// (an in-memory state) the system's temporary directory.
fn staging_root(state: &State) -> PathBuf {
    state
        .path()
        .parent()
        .filter(|d| d.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// Re-checks a good snapshot: its file's sha256 against the catalogue, then
/// `PRAGMA integrity_check`. Returns the row when both hold.
///
/// The file is read once, through a descriptor opened without following a symlink a user
/// could have planted in its path, into a private staging copy that is hashed on the way and
/// then checked by SQLite (which can only be given a path, see [`confine`]).
pub fn verify(state: &State, id: i64) -> Result<Snapshot, BackupError> {
    let row = usable(state, id)?;
    let path = row.path.clone().ok_or(BackupError::Unusable {
        id,
        what: "a failed attempt",
    })?;
    let read_err = |source| BackupError::Io {
        op: "read snapshot",
        path: path.clone(),
        source,
    };
    let (dir, name) = confine::split(&path)?;
    let mut input =
        confine::Dir::open(dir, confine::Missing::Fail, confine::strict())?.open_file(name)?;
    let staging = confine::Staging::new(&staging_root(state))?;
    let staged = staging.path().join("verify.sqlite");
    let mut copy = std::fs::File::create(&staged).map_err(|source| BackupError::Io {
        op: "create",
        path: staged.clone(),
        source,
    })?;
    let (actual, _) = snapshot::copy_hashing(&mut input, &mut copy).map_err(read_err)?;
    drop(copy);
    let expected = row.sha256.clone().unwrap_or_default();
    if actual != expected {
        return Err(BackupError::Checksum {
            path,
            expected,
            actual,
        });
    }
    let conn = rusqlite::Connection::open_with_flags(
        &staged,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| BackupError::Integrity {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    snapshot::integrity(&conn).map_err(|detail| BackupError::Integrity {
        path: path.clone(),
        detail,
    })?;
    Ok(row)
}

fn usable(state: &State, id: i64) -> Result<Snapshot, BackupError> {
    let row = state.snapshot(id)?.ok_or(BackupError::UnknownId { id })?;
    if row.status == Status::Failed {
        return Err(BackupError::Unusable {
            id,
            what: "a failed attempt",
        });
    }
    if row.deleted_ms.is_some() {
        return Err(BackupError::Unusable {
            id,
            what: "deleted by retention",
        });
    }
    Ok(row)
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restored {
    pub id: i64,
    pub source: String,
    pub to: PathBuf,
    pub sha256: String,
}

/// Restores snapshot `id` to `to` (a file path, or an existing directory: then the source's
/// file name inside it). Verifies first; refuses to replace an existing file, or leftover
/// `-wal`/`-journal` files that SQLite would replay onto the restored copy, unless `force`
/// (which removes those leftovers). Atomic: a 0600 temp file in the target directory, fsync,
/// rename, directory fsync. The restored file is in rollback-journal mode; an application that
/// wants WAL switches it back on open.
pub fn restore(
    state: &State,
    id: i64,
    to: &Path,
    force: bool,
    actor: &str,
) -> Result<Restored, BackupError> {
    let row = verify(state, id)?;
    let snapshot_path = row.path.clone().expect("verified rows have a path");
    let strict = confine::strict();
    // `to` is an existing directory (then the source's file name inside it) or a file path.
    // Neither `to` nor a directory above it is followed when it is a symlink a user could
    // have planted; everything below goes through the target directory's descriptor.
    let (dir, name) = match confine::Dir::open(to, confine::Missing::Fail, strict) {
        Ok(d) => {
            let name = Path::new(&row.source)
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_else(|| "restored.sqlite".into());
            (d, name)
        }
        Err(e @ BackupError::Symlink { .. }) => return Err(e),
        Err(_) => {
            let (parent, name) = confine::split(to)?;
            let d = confine::Dir::open(parent, confine::Missing::Create(None), strict)?;
            (d, name.to_owned())
        }
    };
    let target = dir.path().join(&name);
    if strict && dir.is_symlink(&name)? {
        return Err(BackupError::Symlink { path: target });
    }
    let sidecars: Vec<std::ffi::OsString> = ["-wal", "-journal", "-shm"]
        .iter()
        .map(|s| {
            let mut p = name.clone();
            p.push(s);
            p
        })
        .collect();
    for n in std::iter::once(&name).chain(&sidecars[..2]) {
        if !force && dir.lstat(n)?.is_some() {
            return Err(BackupError::TargetExists {
                path: dir.path().join(n),
            });
        }
    }
    let (snap_dir, snap_name) = confine::split(&snapshot_path)?;
    let mut input =
        confine::Dir::open(snap_dir, confine::Missing::Fail, strict)?.open_file(snap_name)?;
    let (temp, sha, _) = snapshot::write_temp_copy(&dir, &mut input, None)?;
    // The file could have changed between verify and this copy: check what was written.
    let expected = row.sha256.clone().unwrap_or_default();
    if sha != expected {
        return Err(BackupError::Checksum {
            path: snapshot_path,
            expected,
            actual: sha,
        });
    }
    // Leftovers of the database being replaced belong to it, not to the restored copy.
    for s in &sidecars {
        let _ = dir.unlink(s);
    }
    temp.replace(&name)?;
    state.audit(
        actor,
        "backup-restore",
        &row.source,
        "ok",
        &format!("snapshot {id} -> {}", target.display()),
    )?;
    Ok(Restored {
        id,
        source: row.source,
        to: target,
        sha256: expected,
    })
}

/// A terminal progress bar for one snapshot, drawn only when asked for and only for copies
/// big enough to be worth watching.
struct Progress {
    enabled: bool,
    label: String,
    bar: Option<indicatif::ProgressBar>,
}

/// Below this many pages (64 MiB at 4 KiB pages) a snapshot takes well under a second.
const PROGRESS_MIN_PAGES: u64 = 16 * 1024;

impl Progress {
    fn new(enabled: bool, source: &Path) -> Self {
        Progress {
            enabled,
            label: source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bar: None,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.enabled || total < PROGRESS_MIN_PAGES {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} pages {elapsed}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            b.set_message(self.label.clone());
            b
        });
        bar.set_length(total);
        bar.set_position(done);
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Keep;

    fn entry(dir: &Path, sources: Vec<String>, keep: Keep) -> Backup {
        Backup {
            name: "mem".into(),
            sources,
            dest: dir.join("dest"),
            schedule: None,
            keep,
        }
    }

    fn make_db(path: &Path, rows: i64) {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);")
            .unwrap();
        for i in 1..=rows {
            c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
    }

    #[test]
    fn a_run_records_good_and_failed_sources_and_retention_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        make_db(&dir.path().join("a.db"), 5);
        let e = entry(
            dir.path(),
            vec![
                format!("{}/*.db", dir.path().display()),
                format!("{}/missing/*.db", dir.path().display()),
            ],
            Keep {
                last: 1,
                daily: 0,
                weekly: 0,
            },
        );
        let state = State::in_memory();
        let opts = RunOptions::default();
        let first = run(std::slice::from_ref(&e), &state, &opts).unwrap();
        assert_eq!((first.succeeded(), first.failed()), (1, 1));
        assert_eq!(first.exit_status(), 4);
        let failed = first
            .snapshots
            .iter()
            .find(|s| s.status == Status::Failed)
            .unwrap();
        assert_eq!(failed.error_code, Some(ErrorCode::BackupFailed));
        assert!(failed
            .error
            .as_deref()
            .unwrap()
            .contains("matched no database file"));

        let second = run(std::slice::from_ref(&e), &state, &opts).unwrap();
        let old = first
            .snapshots
            .iter()
            .find(|s| s.status == Status::Ok)
            .unwrap();
        assert_eq!(second.pruned.len(), 1);
        assert_eq!(second.pruned[0].id, old.id);
        assert!(!old.path.as_ref().unwrap().exists());
        let new = second
            .snapshots
            .iter()
            .find(|s| s.status == Status::Ok)
            .unwrap();
        assert_eq!(verify(&state, new.id).unwrap().id, new.id);
        assert!(matches!(
            verify(&state, old.id),
            Err(BackupError::Unusable { .. })
        ));
        let real = std::fs::canonicalize(dir.path().join("a.db")).unwrap();
        assert_eq!(last_backup(&state, &real).unwrap().unwrap().id, new.id);
    }

    #[test]
    fn an_unknown_entry_name_is_bad_input() {
        let state = State::in_memory();
        let opts = RunOptions {
            only: Some("nope".into()),
            ..RunOptions::default()
        };
        let err = run(&[], &state, &opts).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConfigInvalid);
    }

    #[tokio::test]
    async fn the_scheduled_entry_point_opens_its_own_state_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        make_db(&dir.path().join("a.db"), 3);
        let e = entry(
            dir.path(),
            vec![format!("{}/a.db", dir.path().display())],
            Keep {
                last: 7,
                daily: 7,
                weekly: 4,
            },
        );
        let state_path = dir.path().join("state/state.db");
        let r = run_scheduled(vec![e], state_path.clone(), RunOptions::default())
            .await
            .unwrap();
        assert_eq!(r.exit_status(), 0);
        let state = State::open(&state_path).unwrap();
        assert_eq!(list(&state, None, false).unwrap().len(), 1);
    }
}
