//! Snapshot time and throughput of a ~100 MiB database while another thread keeps committing,
//! in WAL and in rollback-journal mode, through the same `backup::run` the CLI and the daemon
//! use. Prints figures; asserts nothing about time.
//!
//! `cargo bench --bench backup_snapshot` (release build). Figures are written down in the
//! README's backup section.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clw_fortress::backup::{self, RunOptions};
use clw_fortress::manifest::{Backup, Keep};
use clw_fortress::state::State;
use rusqlite::Connection;

const ROWS: i64 = 25_600; // one 3,900-byte row per 4 KiB page: ~100 MiB

fn seed(path: &Path, mode: &str) {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", mode).unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        .unwrap();
    c.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO t SELECT x, randomblob(3900) FROM n",
        [ROWS],
    )
    .unwrap();
}

fn bench(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("agent.sqlite");
    seed(&src, mode);
    let size = std::fs::metadata(&src).unwrap().len();

    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let worst_us = Arc::new(AtomicU64::new(0));
    let (s, c, w, p) = (stop.clone(), commits.clone(), worst_us.clone(), src.clone());
    let writer = std::thread::spawn(move || {
        let conn = Connection::open(p).unwrap();
        conn.busy_timeout(Duration::from_secs(120)).unwrap();
        let mut id = ROWS;
        while !s.load(Ordering::SeqCst) {
            id += 1;
            let t = Instant::now();
            conn.execute(
                "INSERT INTO t (id, payload) VALUES (?1, randomblob(200))",
                [id],
            )
            .unwrap();
            w.fetch_max(t.elapsed().as_micros() as u64, Ordering::SeqCst);
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    worst_us.store(0, Ordering::SeqCst);
    let before = commits.load(Ordering::SeqCst);

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
    let started = Instant::now();
    let report = backup::run(&[entry], &state, &RunOptions::default()).unwrap();
    let wall = started.elapsed();
    let during = commits.load(Ordering::SeqCst) - before;
    let worst = worst_us.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let snap = &report.snapshots[0];
    assert_eq!(report.failed(), 0, "{report:?}");
    let mib = size as f64 / (1 << 20) as f64;
    println!(
        "{mode:>6}: source {mib:.1} MiB; snapshot {} ms in the catalogue ({} ms wall incl. \
         integrity check, sha256, fsync), {:.0} MiB/s; writer: {during} commits during the \
         run, slowest commit {:.1} ms",
        snap.duration_ms,
        wall.as_millis(),
        mib / wall.as_secs_f64(),
        worst as f64 / 1000.0
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("backup_snapshot: run with `cargo bench --bench backup_snapshot`");
        return;
    }
    bench("WAL");
    bench("DELETE");
}
