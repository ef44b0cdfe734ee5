//! `backup run|list|verify|restore`: sqlite snapshots. No engine is contacted.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;

use super::{Cli, CmdResult, Output};
use crate::backup::{self, RunOptions, RunReport, Snapshot, Status};
use crate::error::{exit, ErrorCode};
use crate::report::ErrorReport;
use crate::state::State;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Snapshot every source of every backup entry (or of one), then apply retention.
    Run {
        /// Only the backup entry with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// The snapshot catalogue, oldest first.
    List {
        /// Only the backup entry with this name.
        #[arg(long)]
        name: Option<String>,
        /// Include snapshots retention has deleted.
        #[arg(long)]
        all: bool,
    },
    /// Re-check a snapshot's checksum and integrity; exit 1 on corruption.
    Verify { id: i64 },
    /// Verify a snapshot, then restore it atomically (mode 0600).
    Restore {
        id: i64,
        /// Target file, or an existing directory (the source's file name inside it).
        #[arg(long)]
        to: PathBuf,
        /// Replace an existing file (and its leftover -wal/-journal files).
        #[arg(long)]
        force: bool,
    },
}

fn report(e: &backup::BackupError) -> ErrorReport {
    super::report_of(e)
}

/// The state database: `--state` alone is enough for list/verify/restore (so a snapshot can be
/// restored while the manifest is broken); otherwise the manifest's `state.path`.
fn state_only(cli: &Cli) -> Result<State, ErrorReport> {
    match &cli.state {
        Some(p) => State::open(p).map_err(|e| super::report_of(&e)),
        None => {
            let f = cli.load()?;
            cli.open_state(&f)
        }
    }
}

pub fn run(cli: &Cli, cmd: &BackupCommand) -> CmdResult {
    match cmd {
        BackupCommand::Run { name } => run_backups(cli, name.clone()),
        BackupCommand::List { name, all } => list(cli, name.as_deref(), *all),
        BackupCommand::Verify { id } => verify(cli, *id),
        BackupCommand::Restore { id, to, force } => restore(cli, *id, to, *force),
    }
}

fn run_backups(cli: &Cli, only: Option<String>) -> CmdResult {
    let fortress = cli.load()?;
    let state = cli.open_state(&fortress)?;
    if fortress.backups.is_empty() && only.is_none() {
        if cli.output == Output::Json {
            super::print_json(&RunReport::default());
        } else if !cli.quiet {
            println!("no backups declared in {}", fortress.file.display());
        }
        return Ok(exit::OK);
    }
    let opts = RunOptions {
        only,
        progress: cli.output == Output::Text && !cli.quiet && std::io::stderr().is_terminal(),
        actor: "cli:backup".into(),
        owner: backup::file_owner(&fortress),
        ..RunOptions::default()
    };
    let r = backup::run(&fortress.backups, &state, &opts).map_err(|e| report(&e))?;
    match cli.output {
        Output::Json => super::print_json(&r),
        Output::Text if !cli.quiet => print!("{}", render_run(&r)),
        Output::Text => {}
    }
    Ok(r.exit_status())
}

fn render_run(r: &RunReport) -> String {
    let mut out = String::new();
    for s in &r.snapshots {
        match s.status {
            Status::Ok => out.push_str(&format!(
                "  ok      [{}] {}: {} -> {} ({}, {} pages, {} ms)\n",
                s.id,
                s.entry,
                s.source,
                s.path.as_deref().map(super::display).unwrap_or_default(),
                size(s.size_bytes.unwrap_or(0)),
                s.page_count.unwrap_or(0),
                s.duration_ms
            )),
            Status::Failed => {
                out.push_str(&format!("  failed  [{}] {}: {}\n", s.id, s.entry, s.source));
                out.push_str(
                    &ErrorReport::new(
                        s.error_code.unwrap_or(ErrorCode::BackupFailed),
                        s.error.as_deref().unwrap_or(""),
                    )
                    .render_indented("    "),
                );
            }
        }
    }
    for p in &r.pruned {
        out.push_str(&format!(
            "  pruned  [{}] {}: {}\n",
            p.id,
            p.entry,
            p.path.as_deref().map(super::display).unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "backup: {} ok, {} failed, {} pruned\n",
        r.succeeded(),
        r.failed(),
        r.pruned.len()
    ));
    if r.failed() > 0 {
        out.push_str(
            "hint: `clw-fortress explain clw-backup-failed`; earlier snapshots are untouched\n",
        );
    }
    out
}

fn list(cli: &Cli, name: Option<&str>, all: bool) -> CmdResult {
    let state = state_only(cli)?;
    let rows = backup::list(&state, name, all).map_err(|e| report(&e))?;
    match cli.output {
        Output::Json => super::print_json(&rows),
        Output::Text => print!("{}", render_list(&rows)),
    }
    Ok(exit::OK)
}

fn render_list(rows: &[Snapshot]) -> String {
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|s| {
            [
                s.id.to_string(),
                s.entry.clone(),
                match (s.status, s.deleted_ms) {
                    (_, Some(_)) => "deleted".into(),
                    (st, None) => st.as_str().into(),
                },
                s.created.clone(),
                s.size_bytes.map(size).unwrap_or_else(|| "-".into()),
                s.page_count
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.sha256
                    .as_deref()
                    .map(|h| h[..12.min(h.len())].to_string())
                    .unwrap_or_else(|| "-".into()),
                s.source.clone(),
            ]
        })
        .collect();
    let header = [
        "ID", "BACKUP", "STATUS", "CREATED", "SIZE", "PAGES", "SHA256", "SOURCE",
    ];
    let mut widths = header.map(str::len);
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(&header);
    for (r, s) in table.iter().zip(rows) {
        out.push_str(&line(&r.each_ref().map(String::as_str)));
        if let Some(e) = &s.error {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    if rows.is_empty() {
        out.push_str("(no snapshots)\n");
    }
    out
}

fn verify(cli: &Cli, id: i64) -> CmdResult {
    let state = state_only(cli)?;
    let row = backup::verify(&state, id).map_err(|e| report(&e))?;
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "ok": true,
            "snapshot": row,
        })),
        Output::Text if cli.quiet => {}
        Output::Text => println!(
            "ok: snapshot {} ({}): sha256 matches, integrity ok",
            row.id,
            row.path.as_deref().map(super::display).unwrap_or_default()
        ),
    }
    Ok(exit::OK)
}

fn restore(cli: &Cli, id: i64, to: &std::path::Path, force: bool) -> CmdResult {
    let state = state_only(cli)?;
    let r = backup::restore(&state, id, to, force, "cli:backup").map_err(|e| report(&e))?;
    match cli.output {
        Output::Json => super::print_json(&r),
        Output::Text if cli.quiet => {}
        Output::Text => println!(
            "restored snapshot {} of {} to {} (verified: sha256 and integrity ok)",
            r.id,
            r.source,
            r.to.display()
        ),
    }
    Ok(exit::OK)
}

fn size(v: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (u, n) in UNITS {
        if v >= n {
            return format!("{:.1} {u}", v as f64 / n as f64);
        }
    }
    format!("{v} B")
}
