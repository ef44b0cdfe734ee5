//! Snapshot time and throughput of a database (~100 MiB, `CLW_BENCH_DB_MIB` to change) while
//! another thread keeps committing, in WAL and in rollback-journal mode (`CLW_BENCH_MODES`, comma
//! separated), through the same `backup::run` the CLI and the daemon use; side by side with the
//! `sqlite3` shell's `.backup` (when the shell is installed) and a raw copy of the files (the
//! throughput ceiling, not a consistent backup). The writer's commit latencies are recorded for
//! each. Prints figures and, with `CLW_BENCH_OUT=<file>`, writes them as JSON; asserts nothing
//! about time.
//!
//! `cargo bench --bench backup_snapshot` (release build); `make bench` runs it for
//! docs/BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clw_fortress::backup::{self, RunOptions};
use clw_fortress::manifest::{Backup, Keep};
use clw_fortress::state::State;
use rusqlite::Connection;

/// One 3,900-byte row per 4 KiB page: 256 rows per MiB.
fn rows() -> i64 {
    let mib: i64 = std::env::var("CLW_BENCH_DB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    mib * 256
}

/// The longest a baseline may run: the `sqlite3` shell's `.backup` restarts whenever another
/// connection writes, so under a continuous writer it may never finish.
const BASELINE_TIMEOUT: Duration = Duration::from_secs(120);

fn seed(path: &Path, mode: &str) {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", mode).unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        .unwrap();
    c.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO t SELECT x, randomblob(3900) FROM n",
        [rows()],
    )
    .unwrap();
}

/// Commits one small row every millisecond on its own connection until stopped; records each
/// commit's latency while `recording` is set.
struct Writer {
    stop: Arc<AtomicBool>,
    recording: Arc<AtomicBool>,
    latencies_us: Arc<Mutex<Vec<u64>>>,
    commits: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let recording = Arc::new(AtomicBool::new(false));
        let latencies_us = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicU64::new(0));
        let (s, r, l, c, p) = (
            stop.clone(),
            recording.clone(),
            latencies_us.clone(),
            commits.clone(),
            path.to_path_buf(),
        );
        let handle = std::thread::spawn(move || {
            let conn = Connection::open(p).unwrap();
            conn.busy_timeout(Duration::from_secs(120)).unwrap();
            let mut id: i64 = conn
                .query_row("SELECT max(id) FROM t", [], |r| r.get(0))
                .unwrap();
            while !s.load(Ordering::SeqCst) {
                id += 1;
                let t = Instant::now();
                conn.execute(
                    "INSERT INTO t (id, payload) VALUES (?1, randomblob(200))",
                    [id],
                )
                .unwrap();
                let us = t.elapsed().as_micros() as u64;
                if r.load(Ordering::SeqCst) {
                    l.lock().unwrap().push(us);
                    c.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        Writer {
            stop,
            recording,
            latencies_us,
            commits,
            handle: Some(handle),
        }
    }

    /// Runs `f` while recording; returns its result, the commits and their latencies (µs).
    fn during<T>(&self, f: impl FnOnce() -> T) -> (T, u64, Vec<u64>) {
        self.latencies_us.lock().unwrap().clear();
        self.commits.store(0, Ordering::SeqCst);
        self.recording.store(true, Ordering::SeqCst);
        let out = f();
        self.recording.store(false, Ordering::SeqCst);
        let mut l = std::mem::take(&mut *self.latencies_us.lock().unwrap());
        l.sort_unstable();
        (out, self.commits.load(Ordering::SeqCst), l)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Nearest-rank percentile of sorted values, in milliseconds.
fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let k = ((p / 100.0 * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    sorted_us[k] as f64 / 1000.0
}

/// One method's figures as a JSON object.
fn figure(
    method: &str,
    wall: Duration,
    finished: bool,
    mib: f64,
    commits: u64,
    lat: &[u64],
) -> serde_json::Value {
    println!(
        "  {method:<22} {:>8.2} s {:>7.0} MiB/s  finished: {finished:<5}  writer: {commits} \
         commits, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wall.as_secs_f64(),
        mib / wall.as_secs_f64(),
        pct_ms(lat, 50.0),
        pct_ms(lat, 99.0),
        pct_ms(lat, 100.0),
    );
    serde_json::json!({
        "method": method,
        "wall_s": wall.as_secs_f64(),
        "finished": finished,
        "mib_per_s": mib / wall.as_secs_f64(),
        "commits": commits,
        "commit_p50_ms": pct_ms(lat, 50.0),
        "commit_p99_ms": pct_ms(lat, 99.0),
        "commit_max_ms": pct_ms(lat, 100.0),
    })
}

/// Runs a baseline command to completion or [`BASELINE_TIMEOUT`]; returns whether it finished.
fn run_bounded(cmd: &mut Command) -> bool {
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let end = Instant::now() + BASELINE_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bench(mode: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("agent.sqlite");
    let seeded = Instant::now();
    seed(&src, mode);
    let size = std::fs::metadata(&src).unwrap().len();
    let mib = size as f64 / (1 << 20) as f64;
    println!(
        "{mode}: source {mib:.1} MiB (seeded in {:.1} s)",
        seeded.elapsed().as_secs_f64()
    );
    let writer = Writer::start(&src);
    let mut figures = Vec::new();

    let entry = Backup {
        name: "bench".into(),
        sources: vec![src.to_string_lossy().into_owned()],
        dest: dir.path().join("dest"),
        schedule: None,
        keep: Keep {
            last: 7,
            daily: 7,
            weekly: 4,
        },
    };
    let state = State::in_memory();
    let ((report, wall), commits, lat) = writer.during(|| {
        let started = Instant::now();
        let report = backup::run(&[entry], &state, &RunOptions::default()).unwrap();
        (report, started.elapsed())
    });
    assert_eq!(report.failed(), 0, "{report:?}");
    let snap = &report.snapshots[0];
    let mut f = figure("clw-fortress backup", wall, true, mib, commits, &lat);
    f["catalogue_duration_ms"] = serde_json::json!(snap.duration_ms);
    figures.push(f);

    let shell = Command::new("sqlite3").arg("--version").output().is_ok();
    if shell {
        let dest = dir.path().join("shell-backup.sqlite");
        let ((finished, wall), commits, lat) = writer.during(|| {
            let started = Instant::now();
            let ok = run_bounded(
                Command::new("sqlite3")
                    .arg(&src)
                    .arg(format!(".backup '{}'", dest.display())),
            );
            (ok, started.elapsed())
        });
        figures.push(figure(
            "sqlite3 .backup",
            wall,
            finished,
            mib,
            commits,
            &lat,
        ));
    } else {
        println!("  sqlite3 shell not installed: its baseline is skipped");
    }

    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let ((finished, wall), commits, lat) = writer.during(|| {
        let started = Instant::now();
        let mut cmd = Command::new("cp");
        cmd.arg(&src);
        let wal = src.with_extension("sqlite-wal");
        if wal.exists() {
            cmd.arg(wal);
        }
        let ok = run_bounded(cmd.arg(&copy));
        (ok, started.elapsed())
    });
    figures.push(figure(
        "raw cp (inconsistent)",
        wall,
        finished,
        mib,
        commits,
        &lat,
    ));
    drop(writer);
    serde_json::json!({"mode": mode, "size_mib": mib, "figures": figures})
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("backup_snapshot: run with `cargo bench --bench backup_snapshot`");
        return;
    }
    let modes = std::env::var("CLW_BENCH_MODES").unwrap_or_else(|_| "WAL,DELETE".into());
    let all: Vec<serde_json::Value> = modes
        .split(',')
        .filter(|m| !m.is_empty())
        .map(bench)
        .collect();
    if let Ok(out) = std::env::var("CLW_BENCH_OUT") {
        let text = serde_json::to_string_pretty(&all).unwrap();
        std::fs::write(&out, text + "\n").unwrap();
    }
}
