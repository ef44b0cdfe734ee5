//! `openclaw harden`: argument parsing and output for the OpenClaw hardening in
//! [`crate::openclaw`]. Host facts (home, uid, environment, CPU count) are read here, once.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{Cli, CmdResult, Output};
use crate::error::ErrorCode;
use crate::manifest::units::parse_size;
use crate::openclaw::{self, HardenOptions, Limits, ManifestOptions, Plan};
use crate::report::ErrorReport;

#[derive(Debug, Subcommand)]
pub enum OpenclawCommand {
    /// Move the secrets out of the state directory, narrow the sandbox binds and limits in
    /// openclaw.json (keeping its own pre-harden copy in the secrets directory), all or
    /// nothing; --undo reverses it.
    Harden(HardenArgs),
}

#[derive(Debug, Args)]
pub struct HardenArgs {
    /// The OpenClaw state directory.
    #[arg(long, default_value = "~/.openclaw")]
    state_dir: String,
    /// Where the secrets move to (created 0700): openclaw-secrets.json (the credentials of
    /// openclaw.json, behind a `file` secrets provider), OpenClaw's .env and a legacy
    /// secrets.env.
    #[arg(long, default_value = "~/.config/openclaw-secrets")]
    secrets_dir: String,
    /// Print every move and the diff of openclaw.json; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Reverse a previous harden: secrets back, drop-in and profile removed, openclaw.json
    /// restored byte for byte from harden's own pre-harden copy (never OpenClaw's .bak
    /// files).
    #[arg(long, conflicts_with = "write_manifest")]
    undo: bool,
    /// Also write a fortress manifest for this host to FILE.
    #[arg(long, value_name = "FILE")]
    write_manifest: Option<PathBuf>,
    /// The bind set (default: binds/openclaw.yaml, then /etc/clw-fortress/binds/openclaw.yaml,
    /// then ~/.config/clw-fortress/binds/openclaw.yaml, written from the copy built into the
    /// binary when missing).
    #[arg(long, value_name = "FILE")]
    bind_set: Option<PathBuf>,
    /// metadata.name of the written manifest.
    #[arg(long, default_value = "openclaw")]
    name: String,
    /// Sandbox image of the written manifest (default: the one openclaw.json names).
    #[arg(long)]
    image: Option<String>,
    /// Memory limit (Ki/Mi/Gi or bytes); default 8Gi.
    #[arg(long)]
    memory: Option<String>,
    /// CPU limit; default 4 (at most the host's count).
    #[arg(long)]
    cpus: Option<f64>,
    /// Process limit; default 512.
    #[arg(long)]
    pids: Option<i64>,
}

fn expand(path: &str, home: &Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if path == "~" => home.to_path_buf(),
        None => PathBuf::from(path),
    }
}

fn bad(message: String) -> ErrorReport {
    ErrorReport::new(ErrorCode::ConfigInvalid, message)
}

/// The shipped bind set, built in: `openclaw harden` works from any directory without the
/// repository or a package's `/etc/clw-fortress`.
const BUILTIN_BIND_SET: &str = include_str!("../../binds/openclaw.yaml");

/// The bind set to use when none is given: the working directory's, the system's, else the
/// user's (written from [`BUILTIN_BIND_SET`] when missing, never overwritten; the manifest
/// harden writes refers to it). A dry run writes the built-in copy to a file of its own that
/// [`Embedded`] removes afterwards.
fn default_bind_set(
    home: &std::path::Path,
    dry_run: bool,
) -> Result<(PathBuf, Option<Embedded>), ErrorReport> {
    let local = PathBuf::from("binds/openclaw.yaml");
    let system = PathBuf::from("/etc/clw-fortress/binds/openclaw.yaml");
    let user = home.join(".config/clw-fortress/binds/openclaw.yaml");
    for p in [&local, &system, &user] {
        if p.exists() {
            return Ok((p.clone(), None));
        }
    }
    let write = |path: &std::path::Path| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, BUILTIN_BIND_SET)
    };
    let io = |p: &std::path::Path, e: std::io::Error| {
        ErrorReport::new(
            ErrorCode::PermissionDenied,
            format!("cannot write the built-in bind set to {}: {e}", p.display()),
        )
    };
    if dry_run {
        let tmp = std::env::temp_dir().join(format!(
            "clw-fortress-binds-{}-{}.yaml",
            std::process::id(),
            crate::verify::random_nonce()
        ));
        write(&tmp).map_err(|e| io(&tmp, e))?;
        return Ok((tmp.clone(), Some(Embedded(tmp))));
    }
    write(&user).map_err(|e| io(&user, e))?;
    Ok((user, None))
}

/// A temporary copy of the built-in bind set, removed when dropped.
struct Embedded(PathBuf);

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn options(cli: &Cli, a: &HardenArgs) -> Result<(HardenOptions, Option<Embedded>), ErrorReport> {
    let home = dirs::home_dir().ok_or_else(|| bad("no home directory".into()))?;
    let host_cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut limits = Limits::builtin(host_cpus);
    if let Some(m) = &a.memory {
        limits.memory = parse_size(m).map_err(|e| bad(format!("--memory {m:?}: {e}")))?;
    }
    if let Some(c) = a.cpus {
        if !(c.is_finite() && c > 0.0) {
            return Err(bad(format!("--cpus {c}: must be above 0")));
        }
        limits.cpus = c;
    }
    if let Some(p) = a.pids {
        if p < 8 {
            return Err(bad(format!("--pids {p}: must be at least 8")));
        }
        limits.pids = p;
    }
    if limits.memory < 6 << 20 {
        return Err(bad("--memory: must be at least 6Mi".into()));
    }
    let manifest = a.write_manifest.as_ref().map(|path| {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        ManifestOptions {
            path,
            name: a.name.clone(),
            image: a.image.clone(),
            socket: cli.engine.clone(),
        }
    });
    let (bind_set, embedded) = match &a.bind_set {
        Some(p) => (p.clone(), None),
        None => default_bind_set(&home, a.dry_run || a.undo)?,
    };
    let opts = HardenOptions {
        state_dir: expand(&a.state_dir, &home),
        secrets_dir: std::path::absolute(expand(&a.secrets_dir, &home))
            .unwrap_or_else(|_| expand(&a.secrets_dir, &home)),
        home,
        uid: nix::unistd::getuid().as_raw(),
        env: std::env::vars().collect(),
        bind_set,
        limits,
        manifest,
    };
    Ok((opts, embedded))
}

pub fn run(cli: &Cli, command: &OpenclawCommand) -> CmdResult {
    let OpenclawCommand::Harden(a) = command;
    let (opts, _embedded) = options(cli, a)?;
    let plan = if a.undo {
        openclaw::plan_undo(&opts)
    } else {
        openclaw::plan_harden(&opts)
    }
    .map_err(|e| match &e {
        // Every problem of the bind set is listed, as `validate` lists a manifest's.
        openclaw::OpenclawError::BindSet(m) => {
            let mut r = super::manifest_report(m);
            r.message = format!("bind set: {}", r.message);
            r
        }
        _ => super::report_of(&e),
    })?;
    if !a.dry_run && !plan.is_empty() {
        openclaw::execute(&plan).map_err(|e| super::report_of(&e))?;
    }
    print(cli, a, &plan);
    Ok(0)
}

fn print(cli: &Cli, a: &HardenArgs, plan: &Plan) {
    let steps: Vec<String> = plan.steps.iter().map(|s| s.describe()).collect();
    let what = if a.undo { "undo" } else { "harden" };
    match cli.output {
        Output::Json => super::print_json(&serde_json::json!({
            "command": what,
            "dryRun": a.dry_run,
            "changed": !a.dry_run && !plan.is_empty(),
            "steps": steps,
            "notes": plan.notes,
            "diff": plan.diff,
            "next": plan.next,
        })),
        Output::Text => {
            if plan.is_empty() {
                if a.undo {
                    println!("nothing to undo");
                } else {
                    println!("already hardened: nothing to change");
                }
            } else {
                let verb = if a.dry_run { "would" } else { "did" };
                println!("{what}: {verb}:");
                for s in &steps {
                    println!("  {s}");
                }
            }
            if !cli.quiet {
                for n in &plan.notes {
                    println!("note: {n}");
                }
            }
            if a.dry_run {
                if let Some(d) = &plan.diff {
                    print!("{d}");
                }
                if !plan.is_empty() {
                    println!("dry run: nothing was changed");
                }
            } else {
                for n in &plan.next {
                    println!("next: {n}");
                }
            }
        }
    }
}
