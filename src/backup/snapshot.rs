//! Taking one snapshot of one live sqlite database, and the file-system discipline around it:
//! private directories, temporary files next to their final name, fsync, atomic rename.
//!
//! It copies through SQLite's online backup API only, never with a plain file copy (a copy of
//! a database being written is torn: half old pages, half new, or missing its WAL). It must not
//! leave a partial file behind on any failure, and never touches an earlier snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

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
    /// `chown` of what this run just created (never of something it did not create).
    fn apply(self, path: &Path) -> Result<(), BackupError> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).map_err(|source| {
            BackupError::Io {
                op: "give the owner",
                path: path.to_path_buf(),
                source,
            }
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

/// Snapshots `source` into `dir` (which must exist, private), named after `created`.
///
/// `progress(copied_pages, total_pages)` is called after every step.
/// `owner`: who the snapshot file belongs to (`None`: the running user).
pub fn take(
    source: &Path,
    dir: &Path,
    created: DateTime<Utc>,
    busy_timeout: Duration,
    owner: Option<FileOwner>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Taken, BackupError> {
    sweep_stale_temps(dir);
    let temp = TempFile::create(dir, "sqlite", owner)?;

    copy_online(source, temp.path(), busy_timeout, progress)?;
    let page_count = check_snapshot(temp.path())?;
    let (sha256, size_bytes) = hash_and_sync(temp.path())?;

    let name = format!(
        "{}-{}.sqlite",
        created.format("%Y%m%dT%H%M%S%.3fZ"),
        &sha256[..12]
    );
    let path = temp.persist(dir, &name)?;
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
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), BackupError> {
    let src = open_source(source, busy_timeout)?;
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
pub fn open_source(source: &Path, busy_timeout: Duration) -> Result<Connection, BackupError> {
    let read_err = |e: rusqlite::Error| source_error(source, busy_timeout, e);
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(read_err)?;
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

/// sha256 and size of a file, and its data on disk (fsync) before anyone renames it.
fn hash_and_sync(path: &Path) -> Result<(String, u64), BackupError> {
    let io = |op| {
        move |source| BackupError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut f = File::open(path).map_err(io("open"))?;
    let (sha, size) = sha256_reader(&mut f).map_err(io("read"))?;
    f.sync_all().map_err(io("fsync"))?;
    Ok((sha, size))
}

pub fn sha256_reader(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
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

/// Creates `dir` and missing parents with mode 0700 (each one created given to `owner`, when
/// there is one); an existing directory that group or others can use is tightened to 0700
/// (with a warning), since snapshots hold the agent's memory. Only when that chmod fails is it
/// refused. Directories that existed keep their owner.
pub fn ensure_private_dir(dir: &Path, owner: Option<FileOwner>) -> Result<(), BackupError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
                    BackupError::DestInsecure {
                        path: dir.to_path_buf(),
                        mode,
                        source,
                    }
                })?;
                tracing::warn!(
                    dir = %dir.display(),
                    "backup directory was mode {mode:04o}; tightened to 0700"
                );
            }
            Ok(())
        }
        Ok(_) => Err(BackupError::Io {
            op: "use as a directory",
            path: dir.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dirs(dir, owner),
        Err(source) => Err(BackupError::Io {
            op: "inspect",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Creates the missing directories down to `dir`, outermost first, each 0700 and given to
/// `owner`: one at a time, so each directory this run created (and only those) is chowned.
fn create_private_dirs(dir: &Path, owner: Option<FileOwner>) -> Result<(), BackupError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| {
            !p.as_os_str().is_empty()
                && matches!(fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        })
        .collect();
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {
                if let Some(o) = owner {
                    o.apply(d)?;
                }
            }
            // A concurrent run created it a moment ago: it is not ours to chown.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(source) => {
                return Err(BackupError::Io {
                    op: "create directory",
                    path: d.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// fsync of a directory, so a rename or unlink in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| BackupError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// A file being written under a temporary name in its final directory; removed with its
/// sqlite companions on drop unless persisted.
pub struct TempFile {
    path: Option<PathBuf>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempFile {
    /// `<dir>/.clw-tmp-<pid>-<n>.<ext>`, created empty with mode 0600 (never existing before:
    /// `O_EXCL`), so no other user can open it between creation and rename.
    /// Given to `owner` when there is one (before anything is written into it).
    pub fn create(
        dir: &Path,
        ext: &str,
        owner: Option<FileOwner>,
    ) -> Result<TempFile, BackupError> {
        let name = format!(
            "{TEMP_PREFIX}{}-{}.{ext}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| BackupError::Io {
                op: "create temporary file",
                path: path.clone(),
                source,
            })?;
        // Exactly 0600 whatever the umask.
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let temp = TempFile { path: Some(path) };
        if let Some(o) = owner {
            o.apply(temp.path())?;
        }
        Ok(temp)
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("not yet persisted")
    }

    pub fn file(&self) -> Result<File, BackupError> {
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path())
            .map_err(|source| BackupError::Io {
                op: "open temporary file",
                path: self.path().to_path_buf(),
                source,
            })
    }

    /// Renames to `dir/name` without replacing an existing file (a second snapshot in the same
    /// millisecond with the same content gets a `-1` suffix), then fsyncs the directory.
    pub fn persist(mut self, dir: &Path, name: &str) -> Result<PathBuf, BackupError> {
        let from = self.path().to_path_buf();
        let mut attempt = 0;
        let target = loop {
            let candidate = if attempt == 0 {
                dir.join(name)
            } else {
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                dir.join(format!("{stem}-{attempt}.{ext}"))
            };
            match rename_noreplace(&from, &candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(source) => {
                    return Err(BackupError::Io {
                        op: "rename into place",
                        path: candidate,
                        source,
                    })
                }
            }
        };
        self.path = None;
        sync_dir(dir)?;
        Ok(target)
    }

    /// Renames over `target` (replacing it), then fsyncs the directory.
    pub fn replace(mut self, target: &Path) -> Result<(), BackupError> {
        let from = self.path().to_path_buf();
        fs::rename(&from, target).map_err(|source| BackupError::Io {
            op: "rename into place",
            path: target.to_path_buf(),
            source,
        })?;
        self.path = None;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            remove_with_sidecars(&p);
        }
    }
}

fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(std::io::Error::from)
}

/// Removes a database file and the journal/WAL/shm files SQLite may have created beside it.
pub fn remove_with_sidecars(path: &Path) {
    let _ = fs::remove_file(path);
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        let _ = fs::remove_file(PathBuf::from(s));
    }
}

/// Removes temporary files of runs that died (their pid no longer exists). A temp file of a
/// live run (a daemon and a CLI run at once) is left alone.
pub fn sweep_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        let alive = pid.is_some_and(|pid| {
            pid == std::process::id() as i32
                || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    != Err(nix::errno::Errno::ESRCH)
        });
        if !alive {
            tracing::info!(file = %e.path().display(), "removing a temporary file left by a run that died");
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Writes `data` from `reader` into a new 0600 temp file in `dir`, fsyncs it and returns it
/// with the sha256 of what was written.
pub fn write_temp_copy(
    dir: &Path,
    reader: &mut impl Read,
) -> Result<(TempFile, String), BackupError> {
    let temp = TempFile::create(dir, "sqlite", None)?;
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| BackupError::Io {
            op,
            path: p,
            source,
        }
    };
    let mut out = temp.file()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(io("read", dir))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io("write", temp.path()))?;
    }
    out.sync_all().map_err(io("fsync", temp.path()))?;
    Ok((temp, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ensure_private_dir(&out, None).unwrap();
        let mut calls = 0;
        let t = take(
            &src,
            &out,
            Utc::now(),
            Duration::from_secs(5),
            None,
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
        ensure_private_dir(&out, None).unwrap();
        let mut seen = Vec::new();
        let mut writes_during = Vec::new();
        let t = take(
            &src,
            &out,
            Utc::now(),
            Duration::from_secs(10),
            None,
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
        ensure_private_dir(&out, None).unwrap();
        let err = take(
            &src,
            &out,
            Utc::now(),
            Duration::from_secs(1),
            None,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(err, BackupError::ReadSource { .. }), "{err:?}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
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
        ensure_private_dir(&out, None).unwrap();
        let err = take(
            &src,
            &out,
            Utc::now(),
            Duration::from_millis(200),
            None,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(err, BackupError::SourceLocked { .. }), "{err:?}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
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
        ensure_private_dir(&out, Some(owner)).unwrap();
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
            &out,
            Utc::now(),
            Duration::from_secs(5),
            Some(owner),
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
        sweep_stale_temps(dir.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }
}
