//! `openclaw harden`: what the community hardening guide does by hand to an OpenClaw install,
//! planned in full before anything moves, then done all or nothing, and reversible (`--undo`).
//!
//! Owns the OpenClaw state directory layout, the secrets move, the systemd drop-in, the patch
//! of `openclaw.json` and the fortress manifest written for the host. Planning only reads
//! (preconditions, current contents) and decides every change as a list of [`Step`]s; the
//! decisions about the config live in the pure `config` module. The executor in `steps` is the
//! only writer. Nothing here talks to an engine, and no secret value is ever printed: steps
//! describe paths, diffs mask credential-like values.
//!
//! Host facts (home, uid, environment) are parameters, so tests run on a tempdir home.

mod backup;
pub mod config;
mod fortress_yaml;
pub mod inventory;
pub mod steps;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Coded, ErrorCode};
use crate::manifest::{self, LoadContext, ManifestError, SeccompPolicy};
use crate::seccomp::{self, SeccompError};

pub use fortress_yaml::ManifestOptions;
pub use steps::Step;

/// The systemd user unit the gateway runs as.
pub const GATEWAY_UNIT: &str = "openclaw-gateway.service";

/// OpenClaw's own command that removes its sandboxes so they are created again with the
/// current config (measured on 2026.9.6: it never re-applies config to a running container).
pub const RECREATE_SANDBOXES: &str = "openclaw sandbox recreate --all --force";

#[derive(Debug, thiserror::Error)]
pub enum OpenclawError {
    #[error("state directory {path}: {why}")]
    StateDir { path: PathBuf, why: String },
    #[error("state directory {path} is owned by uid {owner}, not by the running user (uid {uid})")]
    NotOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid JSON5: {message}", file.display())]
    ConfigParse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {field}: {message}", file.display())]
    ConfigShape {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error("{}: bind {bind:?} would expose {what}", file.display())]
    BindExposes {
        file: PathBuf,
        bind: String,
        what: String,
    },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("refusing to overwrite {existing}: it differs from {source_file}")]
    Conflict {
        existing: PathBuf,
        source_file: PathBuf,
    },
    #[error("refusing to overwrite {path}: it exists with other content")]
    Occupied { path: PathBuf },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("bind set: {0}")]
    BindSet(#[source] ManifestError),
    #[error("seccomp profile: {0}")]
    Seccomp(#[source] SeccompError),
    #[error("{step} failed{}", rollback_text(rollback))]
    Failed {
        step: String,
        #[source]
        source: std::io::Error,
        /// Rollback steps that failed in turn; empty when the original files are back.
        rollback: Vec<String>,
    },
}

fn rollback_text(rollback: &[String]) -> String {
    if rollback.is_empty() {
        "; every completed step was undone".into()
    } else {
        format!(
            "; rolling back also failed: {} (fix by hand)",
            rollback.join("; ")
        )
    }
}

impl Coded for OpenclawError {
    fn code(&self) -> ErrorCode {
        match self {
            OpenclawError::StateDir { .. }
            | OpenclawError::NotOwner { .. }
            | OpenclawError::Read { .. }
            | OpenclawError::ConfigParse { .. }
            | OpenclawError::ConfigShape { .. }
            | OpenclawError::Conflict { .. }
            | OpenclawError::Occupied { .. } => ErrorCode::ConfigInvalid,
            OpenclawError::BindExposes { .. } => ErrorCode::BindForbidden,
            OpenclawError::NotRegular { .. } => ErrorCode::SecretsInsecure,
            OpenclawError::BindSet(e) => e.code(),
            OpenclawError::Input(e) => e.code(),
            OpenclawError::Seccomp(e) => e.code(),
            OpenclawError::Failed { .. } => ErrorCode::PermissionDenied,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            OpenclawError::NotOwner { .. } => {
                Some("run as the user who owns the OpenClaw state directory".into())
            }
            OpenclawError::ConfigParse { .. } => Some(
                "fix the file by hand first (OpenClaw reads it as JSON5 too, and would refuse \
                 it); the file was not changed"
                    .into(),
            ),
            OpenclawError::Conflict { .. } => {
                Some("merge the two files by hand and remove one of them, then run it again".into())
            }
            OpenclawError::Occupied { path } => {
                Some(format!("move {} aside, then run it again", path.display()))
            }
            OpenclawError::NotRegular { path } => Some(format!(
                "replace {} by the regular file it points to",
                path.display()
            )),
            OpenclawError::BindExposes { .. } => Some(
                "remove that bind from agents.defaults.sandbox.docker.binds; the bind set \
                 replaces it"
                    .into(),
            ),
            OpenclawError::BindSet(e) => e.hint(),
            _ => None,
        }
    }
}

/// The host and the settings `harden` works with.
#[derive(Debug, Clone)]
pub struct HardenOptions {
    /// The user's home (`~`).
    pub home: PathBuf,
    /// The running user; the state directory must be theirs.
    pub uid: u32,
    /// `${VAR}` expansion in the bind set and the engine sockets it must not expose.
    pub env: BTreeMap<String, String>,
    /// `~/.openclaw`.
    pub state_dir: PathBuf,
    /// `~/.config/openclaw-secrets`.
    pub secrets_dir: PathBuf,
    /// The BindSet file; its sources resolve against `state_dir`.
    pub bind_set: PathBuf,
    /// Limits written into `openclaw.json` (and into the manifest).
    pub limits: Limits,
    /// Write a fortress manifest for this host too.
    pub manifest: Option<ManifestOptions>,
}

/// The sandbox limits `harden` sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes.
    pub memory: i64,
    pub cpus: f64,
    pub pids: i64,
}

impl Limits {
    /// The manifest's built-in defaults (8Gi, 4 CPUs but no more than the host has, 512).
    pub fn builtin(host_cpus: usize) -> Limits {
        let b = crate::manifest::builtin_limits(host_cpus);
        Limits {
            memory: b.memory.unwrap_or_default(),
            cpus: b.cpus.unwrap_or_default(),
            pids: b.pids.unwrap_or_default(),
        }
    }
}

/// The paths `harden` touches, derived from the options.
#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    /// A `secrets.env` of the community guide's layout, inside the state directory.
    pub secrets_src: PathBuf,
    pub secrets_dir: PathBuf,
    pub secrets_dst: PathBuf,
    /// OpenClaw's own env file, `~/.openclaw/.env`.
    pub env_src: PathBuf,
    /// Where `.env` moves: the gateway's unit reads it through the drop-in.
    pub env_dst: PathBuf,
    /// The credentials of `openclaw.json`, served back by a `file` secrets provider.
    pub secrets_json: PathBuf,
    pub dropin_dir: PathBuf,
    pub dropin: PathBuf,
    pub config: PathBuf,
    /// harden's own copy of every file it changes, as it was before the first harden
    /// (never OpenClaw's rotating `openclaw.json.bak`). Inside the secrets directory: the
    /// copies hold plaintext credentials.
    pub pre_harden: PathBuf,
    pub index: PathBuf,
    pub profile_dir: PathBuf,
    pub profile: PathBuf,
}

impl Paths {
    fn new(state_dir: &Path, secrets_dir: &Path, home: &Path) -> Paths {
        let dropin_dir = home.join(".config/systemd/user/openclaw-gateway.service.d");
        let pre_harden = secrets_dir.join("pre-harden");
        Paths {
            state_dir: state_dir.to_path_buf(),
            secrets_src: state_dir.join("secrets.env"),
            secrets_dir: secrets_dir.to_path_buf(),
            secrets_dst: secrets_dir.join("secrets.env"),
            env_src: state_dir.join(".env"),
            env_dst: secrets_dir.join("openclaw.env"),
            secrets_json: secrets_dir.join("openclaw-secrets.json"),
            dropin: dropin_dir.join("secrets.conf"),
            dropin_dir,
            config: state_dir.join("openclaw.json"),
            index: pre_harden.join("index.json"),
            pre_harden,
            profile_dir: state_dir.join("seccomp"),
            profile: state_dir.join("seccomp/clw-default.json"),
        }
    }
}

/// Every change a run would make, decided before any is made.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Decisions worth telling (kept values, why a flag was set).
    pub notes: Vec<String>,
    /// The unified diff of `openclaw.json`, when it changes (credential values masked).
    pub diff: Option<String>,
    /// What the user must do afterwards (reload the unit).
    pub next: Vec<String>,
}

impl Plan {
    /// True when the host is already in the planned state.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Performs a plan, all or nothing.
pub fn execute(plan: &Plan) -> Result<(), OpenclawError> {
    steps::execute(&plan.steps).map_err(|f| OpenclawError::Failed {
        step: f.step,
        source: f.error,
        rollback: f
            .rollback
            .into_iter()
            .map(|(s, e)| format!("{s}: {e}"))
            .collect(),
    })
}

/// The drop-in that hands the gateway its env files from their new place (`-`: a file that
/// is absent is skipped, as OpenClaw skips a missing `.env`).
pub fn dropin_content(p: &Paths, home: &Path) -> String {
    let unit_path = |path: &Path| match path.strip_prefix(home) {
        Ok(rel) => format!("%h/{}", rel.display()),
        Err(_) => path.display().to_string(),
    };
    format!(
        "[Service]\nEnvironmentFile=-{}\nEnvironmentFile=-{}\n",
        unit_path(&p.secrets_dst),
        unit_path(&p.env_dst)
    )
}

/// The generated `default` seccomp profile, as written next to the state.
pub fn profile_content() -> Result<String, OpenclawError> {
    let profile =
        seccomp::generate(SeccompPolicy::Default, &[], &[]).map_err(OpenclawError::Seccomp)?;
    let mut text = profile.to_pretty_json();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// A file's bytes through the crate's bounded reader (regular files of at most 4 MiB, never
/// blocking on a FIFO), or `None` when it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, OpenclawError> {
    match crate::input::read_capped(path, crate::input::MAX_INPUT_BYTES) {
        Ok(b) => Ok(Some(b)),
        Err(crate::input::InputError::Open { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound
                // A file where a directory should be is "absent" here; creating it will fail
                // loudly.
                || source.raw_os_error() == Some(nix::libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(OpenclawError::Input(e)),
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600)
}

/// A regular file (not a symlink), or nothing; anything else is refused.
fn regular_file(path: &Path) -> Result<Option<(Vec<u8>, u32)>, OpenclawError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(read(path)?.map(|b| (b, mode_of(path)))),
        Ok(_) => Err(OpenclawError::NotRegular {
            path: path.to_path_buf(),
        }),
        Err(_) => Ok(None),
    }
}

/// `CreateDir` steps for `dir` and its missing ancestors, outermost first.
fn create_dirs(dir: &Path, mode: u32, parents_mode: u32, steps: &mut Vec<Step>) {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        cursor = d.parent();
    }
    for d in missing.into_iter().rev() {
        let mode = if d == dir { mode } else { parents_mode };
        if !steps
            .iter()
            .any(|s| matches!(s, Step::CreateDir { path, .. } if *path == d))
        {
            steps.push(Step::CreateDir { path: d, mode });
        }
    }
}

/// The state directory, checked (exists, a directory, ours) and symlink-resolved.
fn check_state_dir(dir: &Path, uid: u32) -> Result<PathBuf, OpenclawError> {
    let bad = |why: &str| OpenclawError::StateDir {
        path: dir.to_path_buf(),
        why: why.to_string(),
    };
    let meta = fs::metadata(dir).map_err(|e| bad(&e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad("not a directory"));
    }
    if meta.uid() != uid {
        return Err(OpenclawError::NotOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    fs::canonicalize(dir).map_err(|e| bad(&e.to_string()))
}

/// Plans `harden`: checks every precondition, then decides every step. Changes nothing.
pub fn plan_harden(opts: &HardenOptions) -> Result<Plan, OpenclawError> {
    let state = check_state_dir(&opts.state_dir, opts.uid)?;
    let p = Paths::new(&state, &opts.secrets_dir, &opts.home);
    let mut plan = Plan::default();
    let mut steps = Vec::new();

    // The config must parse before anything else is decided: a broken file is never touched.
    let original = read(&p.config)?.ok_or_else(|| OpenclawError::Read {
        path: p.config.clone(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let original_text = String::from_utf8(original.clone()).map_err(|_| {
        config_parse_utf8(&p.config, &original).unwrap_or(OpenclawError::ConfigShape {
            file: p.config.clone(),
            field: String::new(),
            message: "not UTF-8".into(),
        })
    })?;
    let current = config::parse(&original_text, &p.config)?;

    // 1. The env files, out of the state directory.
    move_env_file(&p.secrets_src, &p.secrets_dst, &mut plan, &mut steps)?;
    move_env_file(&p.env_src, &p.env_dst, &mut plan, &mut steps)?;

    // 2. The systemd drop-in that hands them back to the gateway.
    let dropin = dropin_content(&p, &opts.home);
    match read(&p.dropin)? {
        Some(existing) if existing == dropin.as_bytes() => {}
        previous => {
            create_dirs(&p.dropin_dir, 0o755, 0o755, &mut steps);
            steps.push(Step::Write {
                path: p.dropin.clone(),
                content: dropin.into_bytes(),
                mode: 0o644,
                previous: previous.map(|b| (b, mode_of(&p.dropin))),
            });
        }
    }

    // 3. The config: credentials referenced, every sandbox section hardened.
    let mut exposing = inventory::secret_paths(&state);
    exposing.push(p.secrets_dir.clone());
    let settings = config::Settings {
        home: opts.home.clone(),
        state_dir: state.clone(),
        exposing,
        memory: opts.limits.memory,
        cpus: opts.limits.cpus,
        pids: opts.limits.pids,
        seccomp_profile: p.profile.clone(),
        secrets_json: p.secrets_json.clone(),
        workspace_roots: vec![state.join("workspace"), state.join("sandboxes")],
    };
    if opts.uid == 0 {
        plan.notes.push(
            "running as root: a gateway run as root gives its sandboxes the workspace owner's \
             uid, root; run the gateway as a user, or set agents.defaults.sandbox.docker.user"
                .into(),
        );
    }
    let store_before = match regular_file(&p.secrets_json)? {
        Some((bytes, _)) => Some(serde_json::from_slice::<serde_json::Value>(&bytes).map_err(
            |e| OpenclawError::ConfigParse {
                file: p.secrets_json.clone(),
                line: e.line(),
                column: e.column(),
                message: "not JSON".into(),
            },
        )?),
        None => None,
    };
    let empty = serde_json::json!({});
    let hardened = config::harden(
        &current,
        store_before.as_ref().unwrap_or(&empty),
        &settings,
        &p.config,
    )?;
    plan.notes.extend(hardened.notes);
    if let Some(store) = &hardened.store {
        let mut content = config::render(store, "  ").into_bytes();
        if store_before.as_ref() == Some(store) {
            content.clear();
        }
        if !content.is_empty() {
            steps.push(Step::Write {
                path: p.secrets_json.clone(),
                content,
                mode: 0o600,
                previous: regular_file(&p.secrets_json)?,
            });
        }
    }
    if serde_json::to_string(&hardened.value).is_ok_and(|t| {
        t.contains(&serde_json::to_string(&p.profile.display().to_string()).unwrap_or_default())
    }) {
        let profile = profile_content()?;
        let existing = read(&p.profile)?;
        if existing.as_deref() != Some(profile.as_bytes()) {
            create_dirs(&p.profile_dir, 0o755, 0o755, &mut steps);
            steps.push(Step::Write {
                path: p.profile.clone(),
                content: profile.into_bytes(),
                mode: 0o644,
                previous: existing.map(|e| (e, mode_of(&p.profile))),
            });
        }
    }
    if hardened.value != current {
        if !config::is_plain_json(&original_text) {
            plan.notes.push(format!(
                "{} is JSON5 (comments or trailing commas): it is rewritten as plain JSON and \
                 its comments are gone from it; the original stays in {}",
                p.config.display(),
                p.pre_harden.display()
            ));
        }
        let new_text = config::render(&hardened.value, &config::indent_of(&original_text));
        plan.diff = Some(config::diff(&original_text, &new_text, "openclaw.json"));
        let mode = mode_of(&p.config);
        steps.push(Step::Write {
            path: p.config.clone(),
            content: new_text.into_bytes(),
            mode,
            previous: Some((original, mode)),
        });
    }

    // 4. The fortress manifest for this host.
    if let Some(m) = &opts.manifest {
        let ctx = LoadContext {
            home: opts.home.clone(),
            env: opts.env.clone(),
            uid: opts.uid,
            host_cpus: 1,
        };
        let set = manifest::load_bind_set(&opts.bind_set, Some(&state), Some(&p.secrets_dst), &ctx)
            .map_err(OpenclawError::BindSet)?;
        for b in set.binds.iter().filter(|b| b.create) {
            if fs::symlink_metadata(&b.source).is_err() {
                plan.notes.push(format!(
                    "{} does not exist: created (0700) for the bind set",
                    b.source.display()
                ));
            }
            create_dirs(&b.source, 0o700, 0o700, &mut steps);
        }
        let image = current
            .pointer("/agents/defaults/sandbox/docker/image")
            .and_then(|v| v.as_str());
        let files = fortress_yaml::render(m, opts, &state, &p, &set, image)?;
        for (path, content) in files {
            let existing = read(&path)?;
            if existing.as_deref() != Some(content.as_bytes()) {
                if let Some(dir) = path.parent() {
                    create_dirs(dir, 0o755, 0o755, &mut steps);
                }
                steps.push(Step::Write {
                    previous: existing.map(|e| (e, mode_of(&path))),
                    path,
                    content: content.into_bytes(),
                    mode: 0o644,
                });
            }
        }
    }

    if steps.is_empty() {
        return Ok(plan);
    }
    if steps.iter().any(|s| match s {
        Step::Write { path, .. } => *path == p.dropin || *path == p.config,
        Step::Move { .. } | Step::Remove { .. } => true,
        _ => false,
    }) {
        plan.next.push(format!(
            "systemctl --user daemon-reload && systemctl --user restart {GATEWAY_UNIT}"
        ));
    }
    if steps
        .iter()
        .any(|s| matches!(s, Step::Write { path, .. } if *path == p.config))
    {
        // OpenClaw keeps a running sandbox whose mounts changed (and refuses to reuse it):
        // until it is recreated, the old one keeps what harden just took away.
        plan.next.push(RECREATE_SANDBOXES.into());
    }
    // 5. The pre-harden copy of what changes, first; its index last.
    let mut all = Vec::new();
    secrets_dir_steps(&p, &mut all);
    // A directory the secrets directory's steps create (`~/.config`) is not created twice.
    steps.retain(|s| match s {
        Step::CreateDir { path, .. } => !all
            .iter()
            .any(|a| matches!(a, Step::CreateDir { path: q, .. } if q == path)),
        _ => true,
    });
    backup::steps(&p, &steps, &mut all)?;
    plan.steps = all;
    Ok(plan)
}

/// Moves an env file out of the state directory, or notes that there is none. A different
/// file already at the destination is never overwritten.
fn move_env_file(
    src: &Path,
    dst: &Path,
    plan: &mut Plan,
    steps: &mut Vec<Step>,
) -> Result<(), OpenclawError> {
    match (regular_file(src)?, regular_file(dst)?) {
        (Some((a, _)), Some((b, _))) if a != b => Err(OpenclawError::Conflict {
            existing: dst.to_path_buf(),
            source_file: src.to_path_buf(),
        }),
        (Some((content, mode)), Some(_)) => {
            plan.notes.push(format!(
                "{} is already at {}; removing the identical copy",
                src.display(),
                dst.display()
            ));
            steps.push(Step::Remove {
                path: src.to_path_buf(),
                content,
                mode,
            });
            Ok(())
        }
        (Some((_, mode)), None) => {
            steps.push(Step::Move {
                from: src.to_path_buf(),
                to: dst.to_path_buf(),
                mode: 0o600,
                mode_before: mode,
            });
            Ok(())
        }
        (None, Some((_, mode))) if mode & 0o077 != 0 => {
            steps.push(Step::Chmod {
                path: dst.to_path_buf(),
                mode: 0o600,
                mode_before: mode,
            });
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A UTF-8 error as a parse error at the first bad byte.
fn config_parse_utf8(file: &Path, bytes: &[u8]) -> Option<OpenclawError> {
    let valid = std::str::from_utf8(bytes).err()?.valid_up_to();
    let before = &bytes[..valid];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = valid
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    Some(OpenclawError::ConfigParse {
        file: file.to_path_buf(),
        line,
        column,
        message: "invalid UTF-8".into(),
    })
}

/// The secrets directory: created 0700 (its missing parents 0700 too), or narrowed to 0700.
fn secrets_dir_steps(p: &Paths, steps: &mut Vec<Step>) {
    match fs::symlink_metadata(&p.secrets_dir) {
        Err(_) => create_dirs(&p.secrets_dir, 0o700, 0o700, steps),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            // Re-create is not possible with content inside; a chmod is a rewrite of the mode.
            steps.push(Step::Chmod {
                path: p.secrets_dir.clone(),
                mode: 0o700,
                mode_before: m.permissions().mode() & 0o7777,
            });
        }
        Ok(_) => {}
    }
}

/// Plans `--undo`: every file harden changed back to its pre-harden bytes and mode (from
/// harden's own copy), every file it created removed while it still holds what harden wrote,
/// the copy itself removed. The seccomp profile stays while the restored config still names
/// it. Without harden's copy nothing is restored (OpenClaw's own `openclaw.json.bak` rotates
/// on every write and is not a pre-harden copy). Changes nothing.
pub fn plan_undo(opts: &HardenOptions) -> Result<Plan, OpenclawError> {
    let state = check_state_dir(&opts.state_dir, opts.uid)?;
    let p = Paths::new(&state, &opts.secrets_dir, &opts.home);
    let mut plan = Plan::default();
    let Some(index) = backup::read_index(&p)? else {
        plan.notes.push(format!(
            "no pre-harden copy at {}: nothing to undo",
            p.pre_harden.display()
        ));
        return Ok(plan);
    };
    let mut removed: Vec<PathBuf> = Vec::new();
    let mut restored_config: Option<Vec<u8>> = None;
    for entry in &index.restore {
        let content =
            read(&p.pre_harden.join(&entry.backup))?.ok_or_else(|| OpenclawError::Read {
                path: p.pre_harden.join(&entry.backup),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        if entry.path == p.config {
            restored_config = Some(content.clone());
        }
        let current = read(&entry.path)?;
        if current.as_deref() == Some(&content[..]) {
            continue;
        }
        if entry.path == p.config {
            let old = String::from_utf8_lossy(current.as_deref().unwrap_or_default());
            let new = String::from_utf8_lossy(&content);
            plan.diff = Some(config::diff(&old, &new, "openclaw.json"));
        }
        plan.steps.push(Step::Write {
            path: entry.path.clone(),
            content,
            mode: entry.mode,
            previous: current.map(|c| (c, mode_of(&entry.path))),
        });
    }
    let config_after = match restored_config {
        Some(c) => Some(c),
        None => read(&p.config)?,
    };
    let profile_named = config_after
        .is_some_and(|c| String::from_utf8_lossy(&c).contains(&p.profile.display().to_string()));
    for entry in &index.created {
        let Some(current) = read(&entry.path)? else {
            continue;
        };
        if index.restore.iter().any(|r| r.path == entry.path) {
            continue;
        }
        if entry.path == p.profile && profile_named {
            plan.notes.push(format!(
                "kept {}: the restored openclaw.json still names it",
                p.profile.display()
            ));
            continue;
        }
        if backup::sha256(&current) != entry.sha256 {
            plan.notes.push(format!(
                "kept {}: it changed since harden wrote it",
                entry.path.display()
            ));
            continue;
        }
        plan.steps.push(Step::Remove {
            path: entry.path.clone(),
            mode: mode_of(&entry.path),
            content: current,
        });
        removed.push(entry.path.clone());
    }
    // The copy goes last: until then a failure rolls back to a host that still has it.
    for entry in &index.restore {
        let path = p.pre_harden.join(&entry.backup);
        if let Some(content) = read(&path)? {
            plan.steps.push(Step::Remove {
                mode: mode_of(&path),
                path: path.clone(),
                content,
            });
            removed.push(path);
        }
    }
    if let Some(content) = read(&p.index)? {
        plan.steps.push(Step::Remove {
            path: p.index.clone(),
            mode: mode_of(&p.index),
            content,
        });
        removed.push(p.index.clone());
    }
    remove_dir_if_emptied(&p.pre_harden, &removed, &mut plan.steps);
    removed.push(p.pre_harden.clone());
    for dir in [&p.dropin_dir, &p.profile_dir, &p.secrets_dir] {
        remove_dir_if_emptied(dir, &removed, &mut plan.steps);
    }
    if !plan.is_empty() {
        plan.next.push(format!(
            "systemctl --user daemon-reload && systemctl --user restart {GATEWAY_UNIT}"
        ));
        plan.next.push(RECREATE_SANDBOXES.into());
    }
    Ok(plan)
}

/// A `RemoveDir` step when `dir` holds nothing but `removed`.
fn remove_dir_if_emptied(dir: &Path, removed: &[PathBuf], steps: &mut Vec<Step>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let left = entries
        .flatten()
        .filter(|e| !removed.contains(&e.path()))
        .count();
    if left == 0 {
        steps.push(Step::RemoveDir {
            path: dir.to_path_buf(),
            mode: mode_of(dir),
        });
    }
}

#[cfg(test)]
mod tests;
