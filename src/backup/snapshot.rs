//! Taking one snapshot of one live sqlite database, and the file-system discipline around it:
//! private directories, temporary files next to their final name, fsync, atomic rename.
//!
//! It copies through SQLite's online backup API only, never with a plain file copy (a copy of
//! a database being written is torn: half old pages, half new, or missing its WAL). It must not
//! leave a partial file behind on any failure, and never touches an earlier snapshot.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::confine::{self, Dir, Missing};
use super::BackupError;

/// Pages copied per `sqlite3_backup_step` call: 1024 pages is 4 MiB at the default page size,
/// small enough for a lively progress bar, large enough that the per-call cost is noise.
pub const PAGES_PER_STEP: i32 = 1024;

/// The prefix of every temporary file this module writes; a crashed run leaves them behind
/// and the next run in the same directory sweeps them (see [`sweep_stale_temps`]).
const TEMP_PREFIX: &str = ".clw-tmp-";

/// Who the files and directories a backup creates belong to, when that is not the running
/// user: a root agent protecting a user's home (`metadata.owner`) leaves the snapshots in the
/// owner's destination owned by the owner, so the owner can read and restore them and a
/// directory it creates under `~/.local/share` does not lock the owner out of their own tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
}

impl FileOwner {
    /// `fchown` of what this run just created, through its descriptor (never by path, never
    /// of something it did not create).
    pub(crate) fn apply_fd(self, fd: BorrowedFd<'_>, path: &Path) -> Result<(), BackupError> {
        nix::unistd::fchown(
            fd,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .map_err(|e| BackupError::Io {
            op: "give the owner",
            path: path.to_path_buf(),
            source: e.into(),
        })
    }
}

/// A snapshot written, checked and renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub page_count: u64,
    pub sha256: String,
}

/// Where a run reads and writes, and as whom.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Who the snapshot file belongs to (`None`: the running user).
    pub owner: Option<FileOwner>,
    /// Whose file identity the source is opened with (see [`confine::AsOwner`]); `None`: this
    /// process's own.
    pub read_as: Option<FileOwner>,
    /// Refuse a source path that goes through a symlink (`SQLITE_OPEN_NOFOLLOW`).
    pub nofollow: bool,
    /// Where the private staging directory of SQLite's copy is made.
    pub staging: &'a Path,
}

impl<'a> Access<'a> {
    /// The running user's own access: no owner, symlinks followed, staging in the temp dir.
    pub fn own(staging: &'a Path) -> Self {
        Access {
            owner: None,
            read_as: None,
            nofollow: false,
            staging,
        }
    }
}

/// Snapshots `source` into `dir` (open, private), named after `created`.
///
/// SQLite writes the copy in a private staging directory (it can only be handed a path, and
/// resolves it again by name: see [`confine`]); the checked copy is then streamed, hashed,
/// into a file created through `dir`'s descriptor, fsynced and renamed in place through it.
/// That costs one more sequential write of the snapshot, for a copy no symlink can redirect.
///
/// `progress(copied_pages, total_pages)` is called after every step.
pub fn take(
    source: &Path,
    dir: &Dir,
    created: DateTime<Utc>,
    busy_timeout: Duration,
    access: Access<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Taken, BackupError> {
    sweep_stale_temps(dir);
    let staging = confine::Staging::new(access.staging)?;
    let staged = staging.path().join("copy.sqlite");
    copy_online(source, &staged, busy_timeout, access, progress)?;
    let page_count = check_snapshot(&staged)?;
    let mut input = File::open(&staged).map_err(|source| BackupError::Io {
        op: "read",
        path: staged.clone(),
        source,
    })?;
    let (temp, sha256, size_bytes) = write_temp_copy(dir, &mut input, access.owner)?;
    drop(staging);

    let name = format!(
        "{}-{}.sqlite",
        created.format("%Y%m%dT%H%M%S%.3fZ"),
        &sha256[..12]
    );
    let path = temp.persist(&name)?;
    Ok(Taken {
        path,
        size_bytes,
        page_count,
        sha256,
    })
}

/// The copy itself.
///
/// How it steps, and why: the source connection first opens a read transaction of its own
/// (`BEGIN` + a read) and holds it until the last page is copied. `sqlite3_backup_step` reuses
/// an open read transaction instead of opening one per call, so every step reads the same
/// snapshot of the database and the copy is consistent as of that moment.
///
/// - WAL mode: a read transaction does not block writers; the agent keeps committing into the
///   WAL while we copy (checkpoints cannot move past our read mark until we finish, so the WAL
///   may grow for the copy's duration). Without the held transaction, each step would open a
///   fresh read, notice the other connection's commits and restart the backup from page 1
///   (the documented behaviour for changes made through another connection), so on a busy
///   database a chunked backup with sleeps might never finish.
/// - Rollback-journal mode (`journal_mode=DELETE` and friends): the read transaction is a
///   SHARED lock, which stops writers from committing for the whole copy (they wait in their
///   busy handler). That is the price of a consistent snapshot without WAL; the copy runs at
///   disk speed and without sleeps to keep the window short.
///
/// Copying in chunks rather than `step(-1)` only buys a progress bar: with the read
/// transaction held, both read the same snapshot and hold the same locks.
fn copy_online(
    source: &Path,
    temp: &Path,
    busy_timeout: Duration,
    access: Access<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), BackupError> {
    let src = open_source(source, busy_timeout, access)?;
    let mut dst = Connection::open(temp).map_err(|e| write_error(temp, e))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(|e| write_error(temp, e))?;
        let started = Instant::now();
        loop {
            let step = backup.step(PAGES_PER_STEP).map_err(|e| match code_of(&e) {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    BackupError::SourceLocked {
                        path: source.to_path_buf(),
                        waited: busy_timeout,
                    }
                }
                Some(
                    rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen,
                ) => write_error(temp, e),
                _ => BackupError::Copy {
                    path: source.to_path_buf(),
                    source: e,
                },
            })?;
            let p = backup.progress();
            let total = p.pagecount.max(0) as u64;
            progress(total.saturating_sub(p.remaining.max(0) as u64), total);
            match step {
                StepResult::Done => break,
                StepResult::More => {}
                // Cannot happen while we hold the read transaction, but a lock is a lock:
                // wait for it like the busy handler would, then give up on this source.
                StepResult::Busy | StepResult::Locked | _ => {
                    if started.elapsed() >= busy_timeout {
                        return Err(BackupError::SourceLocked {
                            path: source.to_path_buf(),
                            waited: busy_timeout,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    // Releases the read mark / SHARED lock before the slower checks below.
    drop(src);
    // The copy carries the source's journal mode in its header; a WAL-mode snapshot would make
    // every later reader create -wal/-shm files next to it. A snapshot is one self-contained
    // file.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(|e| write_error(temp, e))?;
    dst.close().map_err(|(_, e)| write_error(temp, e))
}

/// Opens a source database the way a snapshot reads it, with its read transaction begun and
/// its first read done: read-only (a backup must never be able to change what it protects),
/// which for a WAL database still means opening (or creating) its `-shm` file read-write, as
/// every reader of a WAL database does. `doctor` calls this to know that a backup could read.
///
/// With `access.nofollow`, a path through a symlink is refused (`SQLITE_OPEN_NOFOLLOW`: SQLite
/// checks every component with `lstat` first). With `access.read_as`, and when this process
/// may switch its file identity (`CAP_SETUID`/`CAP_SETGID`), all of it (the database, its
/// `-wal`, its `-shm`) is opened with the owner's: whatever the path resolves to by the time
/// SQLite opens it, this process reads or creates nothing there the owner could not. Without
/// those capabilities (the shipped units do not grant them) a component swapped for a symlink
/// between SQLite's check and its `open` is not caught: see README's limits.
pub fn open_source(
    source: &Path,
    busy_timeout: Duration,
    access: Access<'_>,
) -> Result<Connection, BackupError> {
    let _identity = access.read_as.and_then(confine::AsOwner::try_enter);
    let read_err = |e: rusqlite::Error| source_error(source, busy_timeout, e);
    let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if access.nofollow {
        flags |= OpenFlags::SQLITE_OPEN_NOFOLLOW;
    }
    let src = Connection::open_with_flags(source, flags).map_err(|e| {
        if code_of(&e) == Some(rusqlite::ErrorCode::CannotOpen) && is_symlink_refusal(&e) {
            BackupError::Symlink {
                path: source.to_path_buf(),
            }
        } else {
            read_err(e)
        }
    })?;
    src.busy_timeout(busy_timeout).map_err(read_err)?;
    src.execute_batch("BEGIN DEFERRED").map_err(read_err)?;
    // The first read takes the snapshot (WAL read mark, or the SHARED lock) and fails early on
    // a file that is not a database.
    src.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(read_err)?;
    Ok(src)
}

/// `SQLITE_CANTOPEN_SYMLINK`: the path went through a symlink under `SQLITE_OPEN_NOFOLLOW`.
fn is_symlink_refusal(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == (14 | (6 << 8)))
}

/// `PRAGMA integrity_check` on the copy; returns its page count.
fn check_snapshot(temp: &Path) -> Result<u64, BackupError> {
    let conn = Connection::open_with_flags(temp, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| write_error(temp, e))?;
    integrity(&conn).map_err(|detail| BackupError::Integrity {
        path: temp.to_path_buf(),
        detail,
    })?;
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(|e| write_error(temp, e))?;
    Ok(pages as u64)
}

/// `Ok` for a database that passes `PRAGMA integrity_check`; else its first problems (an
/// unreadable database is reported the same way: it does not pass).
pub fn integrity(conn: &Connection) -> Result<(), String> {
    let lines: Result<Vec<String>, _> = conn
        .prepare("PRAGMA integrity_check(5)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect());
    match lines {
        Ok(l) if l.len() == 1 && l[0] == "ok" => Ok(()),
        Ok(l) => Err(l.join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

pub fn sha256_reader(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    copy_hashing(r, &mut std::io::sink())
}

/// Copies `r` into `w`, returning the sha256 and size of what went through.
pub fn copy_hashing(r: &mut impl Read, w: &mut impl Write) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    sha256_reader(&mut File::open(path)?)
}

fn code_of(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

fn source_error(source: &Path, waited: Duration, e: rusqlite::Error) -> BackupError {
    match code_of(&e) {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            BackupError::SourceLocked {
                path: source.to_path_buf(),
                waited,
            }
        }
        _ => BackupError::ReadSource {
            path: source.to_path_buf(),
            source: e,
        },
    }
}

fn write_error(temp: &Path, e: rusqlite::Error) -> BackupError {
    BackupError::WriteSnapshot {
        dir: temp.parent().unwrap_or(temp).to_path_buf(),
        source: e,
    }
}

/// Opens `dir` for a run, creating it and missing parents with mode 0700 (each one created
/// given to `owner`, when there is one; directories that existed keep their owner), without
/// following a symlink a user could have planted (see [`confine`]). An existing directory that
/// group or others can use is tightened to 0700 (with a warning), since snapshots hold the
/// agent's memory; only when that chmod fails is it refused.
pub fn ensure_private_dir(dir: &Path, owner: Option<FileOwner>) -> Result<Dir, BackupError> {
    let d = Dir::open(dir, Missing::Create(owner), confine::strict())?;
    d.make_private()?;
    Ok(d)
}

/// The subdirectory `name` of `parent`, as [`ensure_private_dir`] would open it.
pub fn ensure_private_child(
    parent: &Dir,
    name: &str,
    owner: Option<FileOwner>,
) -> Result<Dir, BackupError> {
    let d = parent.child(OsStr::new(name), Missing::Create(owner))?;
    d.make_private()?;
    Ok(d)
}

/// A file being written under a temporary name in its final directory, created and renamed
/// through that directory's descriptor; removed with its sqlite companions on drop unless
/// persisted.
pub struct TempFile<'d> {
    dir: &'d Dir,
    name: Option<String>,
    file: File,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl<'d> TempFile<'d> {
    /// `.clw-tmp-<pid>-<n>.<ext>` in `dir`, created empty with mode 0600 (never existing
    /// before, never through a symlink: see [`Dir::create_file`]), so no other user can open
    /// it between creation and rename. Given to `owner` when there is one (before anything is
    /// written into it).
    pub fn create(
        dir: &'d Dir,
        ext: &str,
        owner: Option<FileOwner>,
    ) -> Result<TempFile<'d>, BackupError> {
        let name = format!(
            "{TEMP_PREFIX}{}-{}.{ext}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let file = dir.create_file(&name, owner)?;
        Ok(TempFile {
            dir,
            name: Some(name),
            file,
        })
    }

    fn name(&self) -> &str {
        self.name.as_deref().expect("not yet persisted")
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join(self.name())
    }

    /// The descriptor it was created with (never reopened by path).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Renames to `name` in its directory without replacing an existing entry (a second
    /// snapshot in the same millisecond with the same content gets a `-1` suffix), then
    /// fsyncs the directory.
    pub fn persist(mut self, name: &str) -> Result<PathBuf, BackupError> {
        let from = self.name().to_owned();
        let mut attempt = 0;
        let target = loop {
            let candidate = if attempt == 0 {
                name.to_owned()
            } else {
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                format!("{stem}-{attempt}.{ext}")
            };
            match self
                .dir
                .rename(OsStr::new(&from), OsStr::new(&candidate), false)
            {
                Ok(()) => break candidate,
                Err(nix::errno::Errno::EEXIST) if attempt < 100 => attempt += 1,
                Err(e) => {
                    return Err(BackupError::Io {
                        op: "rename into place",
                        path: self.dir.path().join(candidate),
                        source: e.into(),
                    })
                }
            }
        };
        self.name = None;
        self.dir.sync()?;
        Ok(self.dir.path().join(target))
    }

    /// Renames over `target` in its directory (replacing the entry itself, a symlink
    /// included, never what it points to), then fsyncs the directory.
    pub fn replace(mut self, target: &OsStr) -> Result<(), BackupError> {
        let from = self.name().to_owned();
        self.dir
            .rename(OsStr::new(&from), target, true)
            .map_err(|e| BackupError::Io {
                op: "rename into place",
                path: self.dir.path().join(target),
                source: e.into(),
            })?;
        self.name = None;
        self.dir.sync()
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            remove_with_sidecars(self.dir, OsStr::new(&name));
        }
    }
}

/// Removes a database file and the journal/WAL/shm files SQLite may have created beside it,
/// through its directory's descriptor.
pub fn remove_with_sidecars(dir: &Dir, name: &OsStr) {
    let _ = dir.unlink(name);
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut s = name.to_owned();
        s.push(suffix);
        let _ = dir.unlink(&s);
    }
}

/// Removes temporary files of runs that died (their pid no longer exists). A temp file of a
/// live run (a daemon and a CLI run at once) is left alone.
pub fn sweep_stale_temps(dir: &Dir) {
    for name in dir.names() {
        let text = name.to_string_lossy();
        let Some(rest) = text.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        let alive = pid.is_some_and(|pid| {
            pid == std::process::id() as i32
                || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    != Err(nix::errno::Errno::ESRCH)
        });
        if !alive {
            tracing::info!(file = %dir.path().join(&name).display(), "removing a temporary file left by a run that died");
            let _ = dir.unlink(&name);
        }
    }
}

/// Copies `reader` into a new 0600 temp file in `dir` (given to `owner`), fsyncs it and returns
/// it with the sha256 and size of what was written.
pub fn write_temp_copy<'d>(
    dir: &'d Dir,
    reader: &mut impl Read,
    owner: Option<FileOwner>,
) -> Result<(TempFile<'d>, String, u64), BackupError> {
    let temp = TempFile::create(dir, "sqlite", owner)?;
    let mut out = temp.file();
    let (sha, size) = copy_hashing(reader, &mut out)
        .and_then(|r| out.sync_all().map(|()| r))
        .map_err(|source| BackupError::Io {
            op: if source.kind() == std::io::ErrorKind::StorageFull {
                "write (the destination is full)"
            } else {
                "write"
            },
            path: temp.path(),
            source,
        })?;
    Ok((temp, sha, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// Staging directories left in `parent` (there must be none after a run).
    fn staged_leftovers(parent: &Path) -> usize {
        fs::read_dir(parent)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".clw-stage-"))
            .count()
    }

    fn db(path: &Path, mode: &str, rows: i64) {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", mode).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        for i in 1..=rows {
            c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [i])
                .unwrap();
        }
    }

    #[test]
    fn a_wal_source_becomes_one_self_contained_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.db");
        db(&src, "WAL", 50);
        let out = dir.path().join("out");
        let out_dir = ensure_private_dir(&out, None).unwrap();
        let mut calls = 0;
        let t = take(
            &src,
            &out_dir,
            Utc::now(),
            Duration::from_secs(5),
            Access::own(dir.path()),
            &mut |_, _| calls += 1,
        )
        .unwrap();
        assert!(calls >= 1);
        let files: Vec<_> = fs::read_dir(&out).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "only the snapshot, no temp or sidecar");
        let header = fs::read(&t.path).unwrap();
        // Bytes 18/19 are 1 for rollback-journal databases, 2 for WAL.
        assert_eq!((header[18], header[19]), (1, 1));
        assert_eq!(
            sha256_file(&t.path).unwrap(),
            (t.sha256.clone(), t.size_bytes)
        );
        let mode = fs::metadata(&t.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let c = Connection::open(&t.path).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
    }

    #[test]
    fn a_chunked_copy_of_a_busy_wal_database_never_restarts() {
        // Without the held read transaction every step after another connection's commit
        // starts over from page 1 (the copied count drops back); with it, it only grows.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("busy.db");
        let c = Connection::open(&src).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3500)
             INSERT INTO t SELECT x, randomblob(3000) FROM n;",
        )
        .unwrap();
        drop(c);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writes = std::sync::Arc::new(AtomicU64::new(0));
        let (s, w, p) = (stop.clone(), writes.clone(), src.clone());
        let writer = std::thread::spawn(move || {
            let c = Connection::open(p).unwrap();
            c.busy_timeout(Duration::from_secs(30)).unwrap();
            while !s.load(Ordering::SeqCst) {
                c.execute("INSERT INTO t (v) VALUES (randomblob(100))", [])
                    .unwrap();
                w.fetch_add(1, Ordering::SeqCst);
            }
        });
        while writes.load(Ordering::SeqCst) < 10 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let out = dir.path().join("out");
        let out_dir = ensure_private_dir(&out, None).unwrap();
        let mut seen = Vec::new();
        let mut writes_during = Vec::new();
        let t = take(
            &src,
            &out_dir,
            Utc::now(),
            Duration::from_secs(10),
            Access::own(dir.path()),
            &mut |done, total| {
                seen.push((done, total));
                // 3500 pages take 4 steps; a copy that keeps restarting never ends.
                assert!(seen.len() < 100, "the copy keeps restarting: {seen:?}");
                writes_during.push(writes.load(Ordering::SeqCst));
                // Give the writer time to commit between steps, as a busy agent would.
                std::thread::sleep(Duration::from_millis(20));
            },
        )
        .unwrap();
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(seen.len() >= 3, "the copy spans several steps: {seen:?}");
        assert!(
            writes_during.first() < writes_during.last(),
            "the writer committed between steps: {writes_during:?}"
        );
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 == w[1].1),
            "progress went backwards (a restart): {seen:?}"
        );
        let c = Connection::open(&t.path).unwrap();
        assert_eq!(integrity(&c), Ok(()));
    }

    #[test]
    fn a_file_that_is_not_a_database_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("notes.db");
        fs::write(&src, vec![b'z'; 8192]).unwrap();
        let out = dir.path().join("out");
        let out_dir = ensure_private_dir(&out, None).unwrap();
        let err = take(
            &src,
            &out_dir,
            Utc::now(),
            Duration::from_secs(1),
            Access::own(dir.path()),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(err, BackupError::ReadSource { .. }), "{err:?}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
        assert_eq!(staged_leftovers(dir.path()), 0);
    }

    #[test]
    fn a_source_locked_beyond_the_timeout_fails_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.db");
        db(&src, "DELETE", 3);
        let holder = Connection::open(&src).unwrap();
        // EXCLUSIVE keeps readers out in rollback-journal mode.
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let out = dir.path().join("out");
        let out_dir = ensure_private_dir(&out, None).unwrap();
        let err = take(
            &src,
            &out_dir,
            Utc::now(),
            Duration::from_millis(200),
            Access::own(dir.path()),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(err, BackupError::SourceLocked { .. }), "{err:?}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
        assert_eq!(staged_leftovers(dir.path()), 0);
    }

    #[test]
    fn directories_are_created_private_and_loose_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b");
        ensure_private_dir(&fresh, None).unwrap();
        for d in [dir.path().join("a"), fresh.clone()] {
            assert_eq!(fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let loose = dir.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&loose, None).unwrap();
        assert_eq!(
            fs::metadata(&loose).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn what_a_run_creates_is_given_to_the_owner_and_what_existed_is_not() {
        use std::os::unix::fs::MetadataExt;
        // As root (CI) another user's ids; otherwise our own, which chown accepts too.
        let owner = if nix::unistd::geteuid().is_root() {
            FileOwner {
                uid: 4242,
                gid: 4243,
            }
        } else {
            FileOwner {
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let before = fs::metadata(dir.path()).unwrap().uid();
        let out = dir.path().join("a/b");
        let out_dir = ensure_private_dir(&out, Some(owner)).unwrap();
        for d in [dir.path().join("a"), out.clone()] {
            let m = fs::metadata(&d).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (owner.uid, owner.gid),
                "{}",
                d.display()
            );
            assert_eq!(m.permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(fs::metadata(dir.path()).unwrap().uid(), before);
        let src = dir.path().join("src.db");
        db(&src, "WAL", 3);
        let t = take(
            &src,
            &out_dir,
            Utc::now(),
            Duration::from_secs(5),
            Access {
                owner: Some(owner),
                ..Access::own(dir.path())
            },
            &mut |_, _| {},
        )
        .unwrap();
        let m = fs::metadata(&t.path).unwrap();
        assert_eq!((m.uid(), m.gid()), (owner.uid, owner.gid));
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn temps_of_dead_runs_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22 on Linux: this pid cannot exist.
        let dead = dir.path().join(format!("{TEMP_PREFIX}99999999-0.sqlite"));
        let live = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}-7.sqlite", std::process::id()));
        let other = dir.path().join("keep.sqlite");
        for p in [&dead, &live, &other] {
            fs::write(p, b"x").unwrap();
        }
        sweep_stale_temps(&Dir::open(dir.path(), Missing::Fail, true).unwrap());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }
}
