//! No secret value in any output at any log level: every command that reads the manifest (and so
//! the secrets file) runs through the real binary against a real engine with `RUST_LOG=trace`
//! and `-vvv`, and neither its stdout nor its stderr holds a secret value, plain or base64. The
//! exec that injects a secret also runs with the HTTP stack's own targets asked for at trace.
//! Afterwards no table or column of the state database holds one either.

mod common;

use std::process::Output;

use common::*;
use sha2::{Digest, Sha256};

/// Standard base64 with padding; enough for a test to look for an encoded secret.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a secret looks like wherever it could be written: the value itself, and its base64
/// whatever the offset it was encoded at (the groups that depend on the value alone, for each
/// of the three alignments), also as the `KEY=value` an engine's `Env` holds.
fn needles(key: &str, value: &str) -> Vec<String> {
    let mut all = vec![value.to_string()];
    for plain in [value.to_string(), format!("{key}={value}")] {
        let bytes = plain.as_bytes();
        for skip in 0..3 {
            let aligned = &bytes[skip..];
            let whole = aligned.len() / 3 * 3;
            all.push(base64(&aligned[..whole]));
        }
    }
    all
}

/// The needles found in `text`, named by key (never printing the value itself).
fn leaks(text: &str, secrets: &[(String, Vec<String>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (key, needles) in secrets {
        for (i, n) in needles.iter().enumerate() {
            if text.contains(n.as_str()) {
                found.push(format!(
                    "{key} ({})",
                    if i == 0 { "plain" } else { "base64" }
                ));
            }
        }
    }
    found
}

fn both(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every table and column of the database, as text (blobs lossily), one line per row.
fn dump_database(path: &std::path::Path) -> String {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the state database");
    let mut tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.sort();
    assert!(!tables.is_empty(), "the state database has no tables");
    let mut dump = String::new();
    for table in tables {
        let mut stmt = db
            .prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
            .unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            dump.push_str(&table);
            for c in 0..columns {
                use rusqlite::types::ValueRef;
                let cell = match row.get_ref(c).unwrap() {
                    ValueRef::Null => String::new(),
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into(),
                };
                dump.push('|');
                dump.push_str(&cell);
            }
            dump.push('\n');
        }
    }
    dump
}

#[test]
fn no_secret_value_reaches_any_output_at_trace_level_nor_the_state_database() {
    require_engine();
    let fx = Fixture::new("nolog");
    // A liveness exec and an exec health probe, so `heal` execs into the sandbox as well.
    let sbx = fx.sandbox();
    let manifest = fx.default_manifest().replace(
        "    command: [sleep, \"3600\"]\n",
        &format!(
            "    command: [sleep, \"3600\"]\n    liveness: {{every: 1m, exec: [\"true\"], timeout: 5s, failures: 3}}\n\
             health:\n  - name: sbx-exec\n    exec: {{container: {sbx}, command: [\"true\"]}}\n    every: 1m\n    failures: 3\n    restart: {{container: {sbx}}}\n"
        ),
    );
    assert!(manifest.contains("liveness"), "the manifest edit applied");
    fx.write_manifest(&manifest);

    let secrets: Vec<(String, Vec<String>)> = fx
        .secrets()
        .iter()
        .map(|(k, v)| (k.clone(), needles(k, v)))
        .collect();
    let secret = fx.secret_value("ANTHROPIC_API_KEY");
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));

    // The exec proves the secret really went through: its digest, never the value, is printed.
    let exec = [
        "exec",
        sbx.as_str(),
        "--",
        "sh",
        "-c",
        "printf %s \"$ANTHROPIC_API_KEY\" | sha256sum",
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["validate"],
        vec!["plan"],
        vec!["apply"],
        exec.to_vec(),
        vec!["verify"],
        vec!["enforce"],
        vec!["status"],
        vec!["heal"],
        vec!["doctor"],
    ];
    // (RUST_LOG, what it is) for the runs of each command; `None` leaves the level to `-vvv`.
    let dependencies = "trace,bollard=trace,hyper=trace,hyper_util=trace,hyperlocal=trace,\
                        h2=trace,reqwest=trace,rustls=trace,mio=trace,tokio=trace";
    let mut failures = Vec::new();
    for args in &commands {
        let mut envs: Vec<Option<&str>> = vec![Some("trace")];
        if args[0] == "exec" {
            envs.extend([None, Some(dependencies)]);
        }
        for env in envs {
            let mut cmd = fx.command(&[]);
            cmd.arg("-vvv").args(args);
            match env {
                Some(filter) => cmd.env("RUST_LOG", filter),
                None => cmd.env_remove("RUST_LOG"),
            };
            let out = cmd.output().expect("run the clw-fortress binary");
            let text = both(&out);
            let what = format!("`{}` with RUST_LOG={env:?}", args.join(" "));
            // Every command ran (0, or 1 for checks that found something), none stopped at
            // its input (2) or the engine (3).
            let code = out.status.code();
            let ran = match args[0] {
                "verify" | "heal" | "doctor" => matches!(code, Some(0 | 1)),
                _ => code == Some(0),
            };
            assert!(ran, "{what}: {}", describe(&out));
            if args[0] == "exec" {
                assert!(
                    String::from_utf8_lossy(&out.stdout).contains(&digest),
                    "{what}: the secret was not injected: {}",
                    describe(&out)
                );
                // Not vacuous: this run did log at debug level and below.
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("DEBUG") || stderr.contains("TRACE"),
                    "{what}: nothing was logged at debug level: {}",
                    describe(&out)
                );
            }
            let found = leaks(&text, &secrets);
            if !found.is_empty() {
                // The output is not printed: it holds the secret.
                failures.push(format!(
                    "{what} (exit {:?}, {} bytes of output) printed {}",
                    out.status.code(),
                    text.len(),
                    found.join(", ")
                ));
            }
        }
    }

    let dump = dump_database(&fx.state_path());
    assert!(
        dump.contains("cli:exec"),
        "the exec audit row is in the dump (the dump reads what it should)"
    );
    let found = leaks(&dump, &secrets);
    if !found.is_empty() {
        failures.push(format!("the state database holds {}", found.join(", ")));
    }
    // The raw files too, for anything a query does not show (free pages, the write-ahead log).
    for suffix in ["", "-wal", "-journal"] {
        let path = format!("{}{suffix}", fx.state_path().display());
        if let Ok(bytes) = std::fs::read(&path) {
            let found = leaks(&String::from_utf8_lossy(&bytes), &secrets);
            if !found.is_empty() {
                failures.push(format!("state file {path} holds {}", found.join(", ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_needles_cover_every_base64_alignment() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"M"), "TQ==");
    let value = "sk-ant-test-0123456789abcdef";
    let n = needles("K", value);
    for prefix in ["", "x", "xy", "xyz"] {
        let encoded = base64(format!("{prefix}{value}tail").as_bytes());
        assert!(
            n[1..]
                .iter()
                .any(|needle| encoded.contains(needle.as_str())),
            "prefix {prefix:?}"
        );
    }
}
