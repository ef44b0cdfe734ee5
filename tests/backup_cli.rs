//! `backup run|list|verify|restore` through the real binary, on real sqlite files.
//!
//! Backups involve no container engine, so these tests do not call `require_engine()`: an
//! engine outage must not fail a capability that never talks to one. Everything lives in a
//! temporary directory per test; the tiny-filesystem test mounts (and unmounts in a guard) a
//! 64 KiB tmpfs, which needs root, as the test machines run.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use common::{bin, describe};

/// A throwaway fortress with one backup entry: `<tmp>/fortress.yaml`, sources under
/// `<tmp>/src`, snapshots under `dest`, the state database at `<tmp>/state.db`.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("clw-backup-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        let env = Env { dir };
        env.manifest(&env.path().join("dest"), "{last: 7, daily: 7, weekly: 4}");
        env
    }

    /// The default source glob: every `*.sqlite` directly in `src/`.
    fn sources(&self) -> Vec<String> {
        vec![format!("{}/src/*.sqlite", self.path().display())]
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn src(&self, name: &str) -> PathBuf {
        self.path().join("src").join(name)
    }

    /// Rewrites the manifest with this destination and retention, and the default sources.
    fn manifest(&self, dest: &Path, keep: &str) {
        self.manifest_with(&self.sources(), dest, keep)
    }

    fn manifest_with(&self, sources: &[String], dest: &Path, keep: &str) {
        let p = self.path().display();
        let sources = sources
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        fs::write(
            self.path().join("fortress.yaml"),
            format!(
                r#"apiVersion: clw-fortress/v1
kind: Fortress
metadata: {{name: backup-test}}
state: {{path: "{p}/state.db"}}
backups:
  - name: memory
    sources: [{sources}]
    dest: "{dest}"
    keep: {keep}
"#,
                dest = dest.display()
            ),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.arg("-f")
            .arg(self.path().join("fortress.yaml"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run clw-fortress")
    }

    /// `backup run -o json`, expecting the given exit status.
    fn backup_run(&self, status: i32) -> Value {
        let out = self.run(&["backup", "run", "-o", "json"]);
        assert_eq!(out.status.code(), Some(status), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).expect("backup run prints JSON")
    }

    /// Every catalogue row, deleted ones too.
    fn catalogue(&self) -> Vec<Value> {
        let out = self.run(&["backup", "list", "--all", "-o", "json"]);
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }
}

/// Creates a database with `rows` rows of `payload` bytes each (ids 1..=rows).
fn seed(path: &Path, journal_mode: &str, rows: i64, payload: i64) {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", journal_mode).unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        .unwrap();
    c.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO t SELECT x, randomblob(?2) FROM n",
        [rows, payload],
    )
    .unwrap();
}

/// `(count, min id, max id)` of table `t`.
fn id_range(path: &Path) -> (i64, i64, i64) {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row(
        "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM t",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn integrity(path: &Path) -> String {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

const ROWS_PER_COMMIT: i64 = 3;

/// Another thread of the agent: commits `ROWS_PER_COMMIT` rows with the next ids per
/// transaction, back to back, until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    last_id: Arc<AtomicI64>,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl Writer {
    fn start(path: &Path, after_id: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let last_id = Arc::new(AtomicI64::new(after_id));
        let (s, l, path) = (stop.clone(), last_id.clone(), path.to_path_buf());
        let handle = std::thread::spawn(move || -> Result<(), String> {
            let mut c = Connection::open(&path).map_err(|e| e.to_string())?;
            // In rollback-journal mode the snapshot's read lock holds commits back for the
            // copy's duration: wait for it, as the agent's own busy timeout would.
            c.busy_timeout(Duration::from_secs(120))
                .map_err(|e| e.to_string())?;
            let mut next = after_id + 1;
            while !s.load(Ordering::SeqCst) {
                let tx = c.transaction().map_err(|e| e.to_string())?;
                for id in next..next + ROWS_PER_COMMIT {
                    tx.execute(
                        "INSERT INTO t (id, payload) VALUES (?1, randomblob(64))",
                        [id],
                    )
                    .map_err(|e| format!("insert {id}: {e}"))?;
                }
                tx.commit().map_err(|e| format!("commit: {e}"))?;
                next += ROWS_PER_COMMIT;
                l.store(next - 1, Ordering::SeqCst);
            }
            Ok(())
        });
        Writer {
            stop,
            last_id,
            handle: Some(handle),
        }
    }

    fn last_id(&self) -> i64 {
        self.last_id.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` more rows are committed (generous bound, not a timing check).
    fn wait_for_rows(&self, n: i64) {
        let target = self.last_id() + n;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.last_id() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer stopped committing"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        let r = self.handle.take().unwrap().join().expect("writer thread");
        r.expect("the writer never fails while a backup runs");
        self.last_id()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Snapshots a database while another thread keeps committing, and checks the snapshot holds
/// exactly a prefix of whole transactions.
fn snapshot_under_writes(journal_mode: &str) {
    let env = Env::new();
    let db = env.src("agent.sqlite");
    // ~16 MiB: one row per page, so the copy spans several backup steps.
    const SEED: i64 = 4000;
    seed(&db, journal_mode, SEED, 3000);
    let writer = Writer::start(&db, SEED);
    writer.wait_for_rows(30);
    let before = writer.last_id();

    let report = env.backup_run(0);

    // The writer was running all along: it committed after the run as well.
    writer.wait_for_rows(30);
    let after_run = writer.last_id();
    let last = writer.stop();
    assert!(after_run > before);

    let snaps = report["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{report:#}");
    assert_eq!(snaps[0]["status"], "ok");
    assert_eq!(snaps[0]["integrity"], "ok");
    let path = PathBuf::from(snaps[0]["path"].as_str().unwrap());
    assert_eq!(integrity(&path), "ok");
    let (count, min, max) = id_range(&path);
    assert_eq!(min, 1);
    assert_eq!(
        count, max,
        "ids 1..={max} must be contiguous, found {count} rows"
    );
    assert!(
        max >= before,
        "the snapshot lost committed rows: {max} < {before}"
    );
    assert!(max <= last);
    assert_eq!(
        (max - SEED) % ROWS_PER_COMMIT,
        0,
        "the snapshot holds part of a transaction"
    );
    // The snapshot is one rollback-journal file, nothing beside it.
    assert_eq!(files_under(path.parent().unwrap()), vec![path.clone()]);
    // The source was not changed by the backup: every row the writer committed is there.
    assert_eq!(id_range(&db), (last, 1, last));
}

#[test]
fn a_wal_database_written_by_another_thread_snapshots_to_a_consistent_prefix() {
    snapshot_under_writes("WAL");
}

#[test]
fn a_rollback_journal_database_written_by_another_thread_snapshots_to_a_consistent_prefix() {
    snapshot_under_writes("DELETE");
}

/// A tmpfs of a given size, unmounted when dropped (also when the test panics).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            describe(&out)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_full_destination_leaves_no_partial_file_and_keeps_the_earlier_snapshot() {
    let env = Env::new();
    let mnt = env.path().join("tiny");
    let _tmpfs = Tmpfs::mount(&mnt, "64k");
    let dest = mnt.join("backups");
    env.manifest(&dest, "{last: 7, daily: 7, weekly: 4}");
    let big = env.src("big.sqlite");
    let small = env.src("small.sqlite");
    seed(&big, "WAL", 2, 100);
    seed(&small, "WAL", 2, 100);

    let first = env.backup_run(0);
    let first_ok: Vec<&Value> = first["snapshots"].as_array().unwrap().iter().collect();
    assert_eq!(first_ok.len(), 2);
    let earlier_big = first_ok
        .iter()
        .find(|s| s["source"].as_str().unwrap().ends_with("big.sqlite"))
        .unwrap();
    let earlier_path = PathBuf::from(earlier_big["path"].as_str().unwrap());
    let earlier_bytes = fs::read(&earlier_path).unwrap();

    // Now 300 KiB: it cannot fit into 64 KiB.
    let c = Connection::open(&big).unwrap();
    c.execute(
        "WITH RECURSIVE n(x) AS (SELECT 3 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
         INSERT INTO t SELECT x, randomblob(3000) FROM n",
        [],
    )
    .unwrap();
    drop(c);

    let out = env.run(&["backup", "run"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[clw-backup-failed]"), "{text}");
    assert!(text.contains("big.sqlite"), "{text}");
    assert!(text.contains("full"), "names the cause: {text}");
    assert!(
        text.contains("1 ok, 1 failed"),
        "the other source still ran: {text}"
    );

    // Only the two first snapshots and the small one's second: no temp, no journal.
    let files = files_under(&dest);
    assert_eq!(files.len(), 3, "{files:#?}");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            name.ends_with(".sqlite") && !name.starts_with('.'),
            "{name}"
        );
    }
    assert_eq!(fs::read(&earlier_path).unwrap(), earlier_bytes);
    let id = earlier_big["id"].to_string();
    let out = env.run(&["backup", "verify", &id]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity ok"));
    // -q: the exit status says it; nothing is printed.
    let quiet = env.run(&["-q", "backup", "verify", &id]);
    assert!(quiet.status.success(), "{}", describe(&quiet));
    assert!(quiet.stdout.is_empty(), "{}", describe(&quiet));

    let failed: Vec<Value> = env
        .catalogue()
        .into_iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error_code"], "clw-backup-failed");
    assert!(failed[0]["path"].is_null());
}

/// Writes garbage over every page of a database from page `from` (1-based) on.
fn corrupt_pages(path: &Path, from: u64) {
    let mut bytes = fs::read(path).unwrap();
    let start = ((from - 1) * 4096) as usize;
    assert!(bytes.len() > start, "the database is too small to corrupt");
    for (i, b) in bytes[start..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_source_is_reported_and_skipped_while_the_others_are_snapshotted() {
    let env = Env::new();
    let good = env.src("good.sqlite");
    let bad = env.src("bad.sqlite");
    seed(&good, "DELETE", 50, 1000);
    seed(&bad, "DELETE", 50, 1000);
    // Leaf pages of `t`; the header and the schema stay readable, so the copy itself works
    // and the integrity check is what catches it.
    corrupt_pages(&bad, 3);

    let report = env.backup_run(4);
    let snaps = report["snapshots"].as_array().unwrap();
    let by = |name: &str| {
        snaps
            .iter()
            .find(|s| s["source"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {report:#}"))
    };
    assert_eq!(by("good.sqlite")["status"], "ok");
    let b = by("bad.sqlite");
    assert_eq!(b["status"], "failed");
    assert_eq!(b["error_code"], "clw-backup-failed");
    let error = b["error"].as_str().unwrap();
    assert!(error.contains("integrity check"), "{error}");
    assert_ne!(b["integrity"], "ok");
    // Nothing of the bad one survives, the good one is whole.
    let files = files_under(&env.path().join("dest"));
    assert_eq!(files.len(), 1, "{files:#?}");
    assert!(files[0].to_string_lossy().contains("good.sqlite"));
    assert_eq!(integrity(&files[0]), "ok");
}

#[test]
fn restore_round_trips_the_content_and_refuses_to_overwrite_without_force() {
    let env = Env::new();
    let db = env.src("agent.sqlite");
    seed(&db, "WAL", 200, 500);
    let report = env.backup_run(0);
    let id = report["snapshots"][0]["id"].to_string();

    let target = env.path().join("restored/agent.sqlite");
    let out = env.run(&["backup", "restore", &id, "--to", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(mode(&target), 0o600);
    assert_eq!(mode(target.parent().unwrap()), 0o700);
    assert_eq!(integrity(&target), "ok");
    let rows = |p: &Path| -> Vec<(i64, Vec<u8>)> {
        let c = Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut s = c.prepare("SELECT id, payload FROM t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(rows(&target), rows(&db));

    // Change the restored copy, then try again without --force: refused, copy untouched.
    Connection::open(&target)
        .unwrap()
        .execute("DELETE FROM t WHERE id > 100", [])
        .unwrap();
    let out = env.run(&["backup", "restore", &id, "--to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[clw-config-invalid]") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(rows(&target).len(), 100);

    let out = env.run(&[
        "backup",
        "restore",
        &id,
        "--to",
        target.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rows(&target), rows(&db));
    assert_eq!(mode(&target), 0o600);

    // A directory target takes the source's file name; no temp file is left anywhere.
    let dir = env.path().join("into");
    fs::create_dir(&dir).unwrap();
    let out = env.run(&["backup", "restore", &id, "--to", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(files_under(&dir), vec![dir.join("agent.sqlite")]);
    assert_eq!(files_under(target.parent().unwrap()), vec![target.clone()]);
}

#[test]
fn verify_finds_a_changed_snapshot_and_restore_refuses_it() {
    let env = Env::new();
    seed(&env.src("a.sqlite"), "WAL", 20, 100);
    let report = env.backup_run(0);
    let row = &report["snapshots"][0];
    let id = row["id"].to_string();
    let path = PathBuf::from(row["path"].as_str().unwrap());

    let out = env.run(&["backup", "verify", &id]);
    assert!(out.status.success(), "{}", describe(&out));

    // One flipped byte in a row's payload: still a readable database, but not the snapshot.
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let out = env.run(&["backup", "verify", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[clw-backup-failed]") && err.contains("checksum"),
        "{err}"
    );

    let target = env.path().join("r.sqlite");
    let out = env.run(&["backup", "restore", &id, "--to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!target.exists());

    let out = env.run(&["backup", "verify", "999"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn snapshots_are_0600_in_0700_directories_and_a_loose_destination_is_tightened() {
    let env = Env::new();
    let dest = env.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
    let p = env.path().display();
    env.manifest_with(
        &[format!("{p}/src/*.sqlite"), format!("{p}/src/**/*.db")],
        &dest,
        "{last: 7, daily: 7, weekly: 4}",
    );
    fs::create_dir_all(env.src("matrix/room")).unwrap();
    seed(&env.src("main.sqlite"), "WAL", 5, 10);
    seed(&env.src("matrix/room/store.db"), "DELETE", 5, 10);

    let report = env.backup_run(0);
    assert_eq!(
        report["snapshots"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(mode(&dest.join("memory")), 0o700);
    let files = files_under(&dest);
    assert_eq!(files.len(), 2, "`*` and `**` both matched: {files:#?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
        assert_eq!(mode(f.parent().unwrap()), 0o700, "{}", f.display());
    }
}

#[test]
fn list_shows_the_catalogue_as_a_table_and_retention_prunes_beyond_last() {
    let env = Env::new();
    env.manifest(&env.path().join("dest"), "{last: 2, daily: 0, weekly: 0}");
    seed(&env.src("a.sqlite"), "WAL", 3, 10);
    for _ in 0..3 {
        env.backup_run(0);
    }
    let rows = env.catalogue();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["deleted_ms"].is_i64(), "the oldest was pruned");
    assert!(!Path::new(rows[0]["path"].as_str().unwrap()).exists());
    assert!(rows[1]["deleted_ms"].is_null() && rows[2]["deleted_ms"].is_null());

    let out = env.run(&["backup", "list"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SHA256"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "header and the two kept snapshots: {text}");
    assert!(
        lines[1].contains(" ok ") && lines[1].contains("a.sqlite"),
        "{text}"
    );
}
