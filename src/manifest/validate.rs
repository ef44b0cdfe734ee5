//! The validation rules of manifest.md: raw structs in, a typed [`Fortress`] or every problem
//! out. Reads the filesystem (bind sources, bind sets, the secrets file) but never writes.
//!
//! Rules are checked on real (symlink-resolved) paths as well as on the paths as written, so a
//! symlink in a workspace pointing at a denied directory is caught, and so is `/var/run`
//! written for `/run`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::expand::{expand, expand_file_path, expand_path, real_path};
use super::raw::*;
use super::units::{parse_duration, parse_size};
use super::*;
use crate::secrets::{self, SecretMap};

/// "Did you mean" suggestions made per manifest: each compares a name with every known one,
/// so past these a problem is reported without one.
const MAX_SUGGESTIONS: usize = 20;

/// The most known names a suggestion is looked for among (a secrets file may hold a hundred
/// thousand keys; a real one holds a few dozen).
const MAX_SUGGESTION_CANDIDATES: usize = 1000;

/// Collects problems and warnings; nothing stops at the first problem. Each is kept once, in
/// the order found (the sets make that linear, whatever the number of problems).
#[derive(Default)]
struct Report {
    problems: Vec<Problem>,
    seen: HashSet<Problem>,
    warnings: Vec<String>,
    warned: HashSet<String>,
    suggestions: usize,
    /// `file:field` of binds already refused elsewhere (their trees need no scan).
    refused: HashSet<String>,
}

impl Report {
    /// Whether one more "did you mean" may be computed.
    fn may_suggest(&mut self) -> bool {
        self.suggestions += 1;
        self.suggestions <= MAX_SUGGESTIONS
    }

    fn push(&mut self, problem: Problem) {
        if self.seen.insert(problem.clone()) {
            self.problems.push(problem);
        }
    }

    fn add(
        &mut self,
        code: ErrorCode,
        file: &Path,
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        let problem = Problem {
            code,
            file: file.to_path_buf(),
            field: field.into(),
            value: value.into(),
            message: message.into(),
            location: None,
        };
        // A bind set used by several sandboxes would otherwise report its problems once each.
        self.push(problem);
    }

    fn invalid(
        &mut self,
        file: &Path,
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.add(ErrorCode::ConfigInvalid, file, field, value, message);
    }

    /// Whether `field` of `file` already has a problem: a bind refused for what it is needs
    /// no further look at what it holds.
    fn has_problem(&self, file: &Path, field: &str) -> bool {
        self.problems
            .iter()
            .any(|p| p.file == file && p.field == field)
            || self.refused.contains(&format!(
                "{}:{}",
                file.display(),
                field.trim_end_matches(".source")
            ))
    }

    fn warn(&mut self, warning: String) {
        if self.warned.insert(warning.clone()) {
            self.warnings.push(warning);
        }
    }
}

/// Where a value was written.
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    /// Field path of the bind, e.g. `binds[3]` or `sandboxes[0].binds[1]`.
    field: String,
}

/// A resolved bind with where it came from and its path as written (expanded).
#[derive(Debug, Clone)]
struct Resolved {
    bind: Bind,
    lexical: PathBuf,
    raw_source: String,
    origin: Origin,
    /// `allowSockets: true`: unix sockets in the tree are the user's decision.
    allow_sockets: bool,
}

/// A bind set file with its binds resolved and its deny entries as `(as written, real)`.
struct LoadedBindSet {
    set: BindSet,
    binds: Vec<Resolved>,
    deny: Vec<(PathBuf, PathBuf)>,
}

/// A path no bind may be, be inside of (`beneath`), or contain (`parents`).
struct Forbidden {
    /// The path as configured and its real path, where they differ.
    paths: Vec<PathBuf>,
    why: String,
    beneath: bool,
    parents: bool,
}

const SOCKET_NAMES: &[&str] = &["docker.sock", "podman.sock", "containerd.sock"];

const KNOWN_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// Container paths a target may not be or be under (rule 4).
const TARGET_FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev"];

/// Capabilities that undo most of a sandbox's isolation; adding one is legal but warned about.
const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "SYS_RAWIO",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "BPF",
];

const MIN_MEMORY: i64 = 6 << 20;
const MIN_PIDS: i64 = 8;

/// Builds the validated fortress, or returns every problem found.
pub(super) fn fortress(
    raw: RawFortress,
    file: &Path,
    ctx: &LoadContext,
) -> Result<Fortress, Vec<Problem>> {
    let mut r = Report::default();
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();

    check_metadata_name(&mut r, file, &raw.metadata.name);

    let engine = engine_settings(&mut r, file, raw.engine.as_ref(), ctx);
    let state_path = state_path(&mut r, file, &dir, raw.state.as_ref(), ctx);

    // The secrets file, as written and real (rule 3 forbids it and its directory).
    let secrets_file = raw.secrets.as_ref().and_then(|s| {
        expand_file_path(&s.file, &dir, ctx)
            .map_err(|m| r.invalid(file, "secrets.file", &s.file, m))
            .ok()
    });

    // The OpenClaw home: its secret-bearing files join the forbidden sources (rule 3).
    let openclaw_state_dir = raw.openclaw.as_ref().and_then(|o| {
        expand_file_path(&o.state_dir, &dir, ctx)
            .map_err(|m| r.invalid(file, "openclaw.stateDir", &o.state_dir, m))
            .ok()
    });

    // Bind sets (rules 1, 2, 4 for their own binds).
    let mut bind_sets: Vec<LoadedBindSet> = Vec::new();
    for (i, path) in raw.bind_sets.iter().enumerate() {
        if let Some(loaded) = load_bind_set(&mut r, file, &dir, i, path, None, ctx) {
            if let Some(earlier) = bind_sets.iter().find(|b| b.set.name == loaded.set.name) {
                r.invalid(
                    &loaded.set.file,
                    "metadata.name",
                    &loaded.set.name,
                    format!(
                        "bind set name is already used by {}",
                        earlier.set.file.display()
                    ),
                );
                continue;
            }
            bind_sets.push(loaded);
        }
    }

    // Rule 3: what no bind may expose.
    let deny: Vec<(PathBuf, PathBuf)> = bind_sets
        .iter()
        .flat_map(|b| b.deny.iter().cloned())
        .collect();
    let mut deny = deny;
    if let Some(home) = &openclaw_state_dir {
        deny.extend(
            crate::openclaw::inventory::secret_paths(home)
                .into_iter()
                .map(|p| (p.clone(), p)),
        );
    }
    let mut forbidden = forbidden_list(
        ctx,
        secrets_file.as_deref(),
        &deny,
        engine.socket.as_deref(),
    );
    // clw-fortress's own files: what a sandbox could read (the state database holds audit and
    // records; backups hold database snapshots) or write to change what the fortress does
    // (the manifest, its bind sets, the generated profiles it hands the engine).
    let mut own: Vec<(PathBuf, &str)> = vec![(file.to_path_buf(), "this manifest")];
    for loaded in &bind_sets {
        own.push((loaded.set.file.clone(), "a bind set file of this manifest"));
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = state_path.clone().into_os_string();
        p.push(suffix);
        own.push((PathBuf::from(p), "the state database"));
    }
    if let Some(dir) = state_path.parent() {
        own.push((dir.join("profiles"), "the generated seccomp profiles"));
    }
    for b in &raw.backups {
        if let Ok(dest) = expand_file_path(&b.dest, &dir, ctx) {
            own.push((dest, "a backup destination"));
        }
    }
    for (path, why) in own {
        let real = real_path(&path).0;
        let mut paths = vec![path];
        if real != paths[0] {
            paths.push(real);
        }
        forbidden.push(Forbidden {
            paths,
            why: why.to_string(),
            beneath: true,
            parents: true,
        });
    }
    for loaded in &bind_sets {
        for b in &loaded.binds {
            check_forbidden(&mut r, b, &forbidden);
        }
    }

    // Sandboxes.
    let builtin = builtin_settings(ctx);
    let defaults = raw
        .defaults
        .as_ref()
        .map(|d| partial_settings(&mut r, file, &dir, "defaults", d, ctx))
        .unwrap_or_default();
    let mut sandboxes = Vec::new();
    let mut all_binds: Vec<Resolved> = bind_sets
        .iter()
        .flat_map(|b| b.binds.iter().cloned())
        .collect();
    // When a bind set file failed to load, "no bind set named x" would only repeat its problem.
    let all_sets_loaded = bind_sets.len() == raw.bind_sets.len();
    let mut names = BTreeSet::new();
    for (i, s) in raw.sandboxes.iter().enumerate() {
        let prefix = format!("sandboxes[{i}]");
        let sandbox = sandbox(
            &mut r,
            file,
            &dir,
            &prefix,
            s,
            [&builtin, &defaults],
            (&bind_sets, all_sets_loaded),
            &forbidden,
            &mut all_binds,
            ctx,
        );
        if !names.insert(s.name.clone()) {
            r.invalid(
                file,
                format!("{prefix}.name"),
                &s.name,
                "sandbox names must be unique",
            );
        }
        sandboxes.push(sandbox);
    }

    // A source under a path a sandbox can write is the sandbox's to redirect: it can swap a
    // directory there for a symlink, and the engine resolves the source again at every start.
    check_nested_under_rw(&mut r, &all_binds);
    // What a bound tree holds: hard links to the secrets file, unix sockets (bounded scan).
    // Kept apart: it refuses mounting (validate, plan, apply), but must not stop verify or
    // the agent from acting on a sandbox whose tree something planted a link into.
    let mut trees = Report::default();
    for b in &all_binds {
        if r.has_problem(&b.origin.file, &format!("{}.source", b.origin.field)) {
            trees
                .refused
                .insert(format!("{}:{}", b.origin.file.display(), b.origin.field));
        }
    }
    scan_bound_trees(&mut trees, &all_binds, secrets_file.as_deref());
    for w in std::mem::take(&mut trees.warnings) {
        r.warn(w);
    }

    // Rules 5 and 6: the secrets file is only read when it is safe to read.
    let secrets = secrets_file.as_ref().and_then(|path| {
        let raw_value = raw.secrets.as_ref().map(|s| s.file.as_str()).unwrap_or("");
        read_secrets(&mut r, file, raw_value, path, &all_binds, ctx)
    });
    // Every secret value once, to look each plain env value up in. An empty value matches too
    // easily to mean anything.
    let secret_values: Option<HashSet<&str>> = secrets.as_ref().map(|m| {
        m.values()
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
            .collect()
    });
    let secrets_and_values = secrets.as_ref().zip(secret_values.as_ref());
    for (i, s) in raw.sandboxes.iter().enumerate() {
        check_secret_env(
            &mut r,
            file,
            i,
            s,
            secrets_file.is_some(),
            secrets_and_values,
        );
    }

    let adopt = raw
        .adopt
        .iter()
        .enumerate()
        .filter_map(|(i, a)| adopt(&mut r, file, i, a, ctx))
        .collect();
    let health = health_checks(&mut r, file, &raw.health);
    let backups = backups(&mut r, file, &dir, &raw.backups, &all_binds, ctx);
    let schedules = Schedules {
        limits: raw
            .schedules
            .as_ref()
            .and_then(|s| s.limits.as_deref())
            .and_then(|c| check_cron(&mut r, file, "schedules.limits", c)),
        verify: raw
            .schedules
            .as_ref()
            .and_then(|s| s.verify.as_deref())
            .and_then(|c| check_cron(&mut r, file, "schedules.verify", c)),
    };
    let metrics = raw
        .metrics
        .as_ref()
        .and_then(|m| metrics(&mut r, file, &m.listen));

    if !r.problems.is_empty() {
        return Err(r.problems);
    }
    Ok(Fortress {
        file: file.to_path_buf(),
        name: raw.metadata.name,
        engine,
        state_path,
        secrets_file,
        openclaw_state_dir,
        tree_problems: trees.problems,
        bind_sets: bind_sets.into_iter().map(|b| b.set).collect(),
        sandboxes: sandboxes.into_iter().flatten().collect(),
        adopt,
        health,
        backups,
        schedules,
        metrics,
        warnings: r.warnings,
    })
}

/// Rule 10: `metadata.name` is `[a-z0-9-]{1,40}`.
fn check_metadata_name(r: &mut Report, file: &Path, name: &str) {
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        r.invalid(
            file,
            "metadata.name",
            name,
            "must be 1 to 40 characters of a-z, 0-9 and -",
        );
    }
}

/// A valid container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_container_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn engine_settings(
    r: &mut Report,
    file: &Path,
    raw: Option<&RawEngine>,
    ctx: &LoadContext,
) -> EngineSettings {
    let Some(raw) = raw else {
        return EngineSettings::default();
    };
    let socket = raw.socket.as_ref().and_then(|s| {
        expand(s, ctx)
            .map_err(|m| r.invalid(file, "engine.socket", s, m))
            .ok()
    });
    let flavor = match raw.flavor {
        None | Some(RawFlavor::Auto) => FlavorSetting::Auto,
        Some(RawFlavor::Docker) => FlavorSetting::Docker,
        Some(RawFlavor::Podman) => FlavorSetting::Podman,
    };
    EngineSettings { socket, flavor }
}

fn state_path(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    raw: Option<&RawState>,
    ctx: &LoadContext,
) -> PathBuf {
    let default = if ctx.uid == 0 {
        PathBuf::from("/var/lib/clw-fortress/state.db")
    } else {
        ctx.home.join(".local/state/clw-fortress/state.db")
    };
    match raw.and_then(|s| s.path.as_ref()) {
        None => default,
        Some(p) => expand_file_path(p, dir, ctx)
            .map_err(|m| r.invalid(file, "state.path", p, m))
            .unwrap_or(default),
    }
}

/// Loads one bind set file: its binds resolved (rules 1, 2, 4) and its deny entries as
/// `(as written, real)` paths.
fn load_bind_set(
    r: &mut Report,
    manifest: &Path,
    dir: &Path,
    index: usize,
    path: &str,
    root_override: Option<&Path>,
    ctx: &LoadContext,
) -> Option<LoadedBindSet> {
    let field = format!("bindSets[{index}]");
    let file = expand_file_path(path, dir, ctx)
        .map_err(|m| r.invalid(manifest, &field, path, m))
        .ok()?;
    let text = crate::input::read_to_string(&file)
        .map_err(|e| {
            r.invalid(
                manifest,
                &field,
                path,
                format!("cannot read bind set: {}", crate::report::chain(&e)),
            )
        })
        .ok()?;
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    let raw: RawBindSet = match parse_document(&text, &file, "BindSet") {
        Ok(raw) => raw,
        Err(problems) => {
            for p in problems {
                r.push(p);
            }
            return None;
        }
    };
    check_metadata_name(r, &file, &raw.metadata.name);
    let set_dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let root_lexical = match (root_override, &raw.root) {
        (Some(root), _) => root.to_path_buf(),
        (None, None) => set_dir.clone(),
        (None, Some(root)) => expand_file_path(root, &set_dir, ctx)
            .map_err(|m| r.invalid(&file, "root", root, m))
            .ok()?,
    };
    let binds: Vec<Resolved> = raw
        .binds
        .iter()
        .enumerate()
        .filter_map(|(i, b)| resolve_bind(r, &file, &format!("binds[{i}]"), &root_lexical, b, ctx))
        .collect();
    let deny: Vec<(PathBuf, PathBuf)> = raw
        .deny
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let lexical = expand_path(d, &root_lexical, ctx)
                .map_err(|m| r.invalid(&file, format!("deny[{i}]"), d, m))
                .ok()?;
            let real = real_path(&lexical).0;
            Some((lexical, real))
        })
        .collect();
    let set = BindSet {
        file: file.clone(),
        name: raw.metadata.name,
        root: real_path(&root_lexical).0,
        binds: binds.iter().map(|b| b.bind.clone()).collect(),
        deny: deny.iter().map(|(_, real)| real.clone()).collect(),
    };
    Some(LoadedBindSet { set, binds, deny })
}

/// One bind set on its own, for commands that use a bind set without a fortress
/// (`openclaw harden`): `root` replaces the file's `root:` when given, and rule 3 is checked
/// against the set's own deny list, the host system paths, the engine sockets and, when given,
/// the secrets file.
pub(super) fn bind_set_alone(
    path: &Path,
    root: Option<&Path>,
    secrets_file: Option<&Path>,
    ctx: &LoadContext,
) -> Result<BindSet, Vec<Problem>> {
    let mut r = Report::default();
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let shown = path.to_string_lossy();
    let loaded = load_bind_set(&mut r, path, &dir, 0, &shown, root, ctx);
    if let Some(loaded) = &loaded {
        let forbidden = forbidden_list(ctx, secrets_file, &loaded.deny, None);
        for b in &loaded.binds {
            check_forbidden(&mut r, b, &forbidden);
        }
    }
    match loaded {
        Some(loaded) if r.problems.is_empty() => Ok(loaded.set),
        _ => Err(r.problems),
    }
}

/// Rules 1, 2 and the shape half of rule 4 for one bind.
fn resolve_bind(
    r: &mut Report,
    file: &Path,
    field: &str,
    base: &Path,
    raw: &RawBind,
    ctx: &LoadContext,
) -> Option<Resolved> {
    let lexical = expand_path(&raw.source, base, ctx)
        .map_err(|m| r.invalid(file, format!("{field}.source"), &raw.source, m))
        .ok()?;
    let (real, exists) = real_path(&lexical);
    if !exists && !raw.create {
        r.invalid(
            file,
            format!("{field}.source"),
            &raw.source,
            format!(
                "{} does not exist (set `create: true` to have it created)",
                lexical.display()
            ),
        );
    }
    let target = match &raw.target {
        Some(t) => check_target(r, file, &format!("{field}.target"), t)?,
        None => real.clone(),
    };
    Some(Resolved {
        bind: Bind {
            source: real,
            target,
            mode: match raw.mode {
                RawMode::Ro => Mode::Ro,
                RawMode::Rw => Mode::Rw,
            },
            create: raw.create,
        },
        lexical,
        raw_source: raw.source.clone(),
        allow_sockets: raw.allow_sockets,
        origin: Origin {
            file: file.to_path_buf(),
            field: field.to_string(),
        },
    })
}

/// Rule 4 (shape): a target is absolute, has no `..`, is not `/`, not under /proc, /sys, /dev.
fn check_target(r: &mut Report, file: &Path, field: &str, target: &str) -> Option<PathBuf> {
    let path = Path::new(target);
    let message = if !path.is_absolute() {
        Some("a target must be an absolute path".to_string())
    } else if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        Some("a target must not contain `..`".to_string())
    } else if path == Path::new("/") {
        Some("a target cannot be `/`".to_string())
    } else {
        TARGET_FORBIDDEN
            .iter()
            .find(|f| path.starts_with(f))
            .map(|f| format!("a target cannot be under {f}"))
    };
    match message {
        Some(m) => {
            r.invalid(file, field, target, m);
            None
        }
        None => Some(path.components().collect()),
    }
}

/// Refuses every bind whose source lies strictly under the source of an `rw` bind (of any
/// sandbox), naming both.
fn check_nested_under_rw(r: &mut Report, binds: &[Resolved]) {
    let mut reported = HashSet::new();
    let refused = |r: &Report, b: &Resolved| {
        r.has_problem(&b.origin.file, &format!("{}.source", b.origin.field))
    };
    let ok: Vec<&Resolved> = binds.iter().filter(|b| !refused(r, b)).collect();
    for inner in ok.iter().copied() {
        for outer in ok.iter().filter(|b| b.bind.mode == Mode::Rw) {
            let (i, o) = (&inner.bind.source, &outer.bind.source);
            if i != o
                && i.starts_with(o)
                && reported.insert((i.clone(), inner.origin.field.clone()))
            {
                r.add(
                    ErrorCode::BindForbidden,
                    &inner.origin.file,
                    format!("{}.source", inner.origin.field),
                    &inner.raw_source,
                    format!(
                        "{} lies under {}, which {} mounts read-write: the sandbox could \
                         replace it with a symlink and the engine would mount what it points to",
                        i.display(),
                        o.display(),
                        outer.origin.field
                    ),
                );
            }
        }
    }
}

/// The most entries one bind source's tree is scanned for; a larger tree is named in a
/// warning (what lies beyond was not checked).
const TREE_SCAN_LIMIT: usize = 50_000;

/// Scans each bind source's tree (symlinks not followed) for hard links to the secrets file
/// (same device and inode: a copy of the file under another name) and for unix sockets (a
/// socket can forward to the engine whatever its name), unless the bind allows sockets.
fn scan_bound_trees(r: &mut Report, binds: &[Resolved], secrets_file: Option<&Path>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let secret = secrets_file
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| (m.dev(), m.ino()));
    let mut scanned = HashSet::new();
    for b in binds {
        if !scanned.insert((b.bind.source.clone(), b.allow_sockets)) {
            continue;
        }
        let field = format!("{}.source", b.origin.field);
        if r.has_problem(&b.origin.file, &field) {
            continue;
        }
        let mut stack = vec![b.bind.source.clone()];
        let mut seen = 0usize;
        'walk: while let Some(p) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            seen += 1;
            if seen > TREE_SCAN_LIMIT {
                r.warn(format!(
                    "{}: {} has more than {TREE_SCAN_LIMIT} entries; hard links to the secrets \
                     file and sockets beyond them were not looked for",
                    b.origin.file.display(),
                    b.bind.source.display()
                ));
                break 'walk;
            }
            let t = meta.file_type();
            if t.is_file() && Some((meta.dev(), meta.ino())) == secret {
                r.add(
                    ErrorCode::BindForbidden,
                    &b.origin.file,
                    &field,
                    &b.raw_source,
                    format!("{} is a hard link to the secrets file", p.display()),
                );
            } else if t.is_socket() && !b.allow_sockets {
                r.add(
                    ErrorCode::BindForbidden,
                    &b.origin.file,
                    &field,
                    &b.raw_source,
                    format!(
                        "{} is a unix socket (it could forward to the engine); set \
                         `allowSockets: true` on the bind if the sandbox needs it",
                        p.display()
                    ),
                );
            } else if t.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&p) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
    }
}

fn forbidden_list(
    ctx: &LoadContext,
    secrets_file: Option<&Path>,
    deny: &[(PathBuf, PathBuf)],
    engine_socket: Option<&str>,
) -> Vec<Forbidden> {
    let mut list = Vec::new();
    let mut push = |path: PathBuf, why: String, beneath: bool, parents: bool| {
        let real = real_path(&path).0;
        let mut paths = vec![path];
        if real != paths[0] {
            paths.push(real);
        }
        list.push(Forbidden {
            paths,
            why,
            beneath,
            parents,
        });
    };
    // Most specific first, so the message names the denied path rather than a system dir.
    for (lexical, _) in deny {
        push(lexical.clone(), "a denied path".into(), true, true);
    }
    if let Some(secrets) = secrets_file {
        push(secrets.to_path_buf(), "the secrets file".into(), true, true);
        // The directory as written and, when the file is a symlink, the real file's directory.
        let real = real_path(secrets).0;
        let mut dirs: Vec<&Path> = secrets.parent().into_iter().collect();
        if let Some(real_dir) = real.parent().filter(|d| Some(*d) != secrets.parent()) {
            dirs.push(real_dir);
        }
        for dir in dirs {
            push(
                dir.to_path_buf(),
                "the secrets file's directory".into(),
                true,
                true,
            );
        }
    }
    let mut sockets: Vec<PathBuf> = KNOWN_SOCKETS.iter().map(PathBuf::from).collect();
    if let Some(runtime) = ctx.env.get("XDG_RUNTIME_DIR") {
        sockets.push(Path::new(runtime).join("podman/podman.sock"));
        sockets.push(Path::new(runtime).join("docker.sock"));
    }
    for url in [
        ctx.env.get("DOCKER_HOST").map(String::as_str),
        engine_socket,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(path) = url.strip_prefix("unix://") {
            sockets.push(PathBuf::from(path));
        }
    }
    for socket in sockets {
        push(socket, "an engine socket".into(), true, true);
    }
    for dir in super::HOST_SYSTEM_PATHS {
        push(PathBuf::from(dir), "a host system path".into(), true, true);
    }
    push(PathBuf::from("/"), "the host root".into(), false, false);
    list
}

/// Rule 3 for one bind, on its real path and on its path as written.
fn check_forbidden(r: &mut Report, b: &Resolved, forbidden: &[Forbidden]) {
    let field = format!("{}.source", b.origin.field);
    let mut candidates = vec![&b.bind.source];
    if b.lexical != b.bind.source {
        candidates.push(&b.lexical);
    }
    let shown = |p: &Path| {
        if p == b.lexical {
            p.display().to_string()
        } else {
            format!("{} (really {})", b.lexical.display(), p.display())
        }
    };
    for f in forbidden {
        for p in &candidates {
            for fp in &f.paths {
                let message = if *p == fp {
                    format!("{} is {}", shown(p), f.why)
                } else if f.beneath && p.starts_with(fp) {
                    format!("{} is inside {} ({})", shown(p), fp.display(), f.why)
                } else if f.parents && fp.starts_with(p) {
                    format!(
                        "{} contains {} ({}); a parent bind would expose it",
                        shown(p),
                        fp.display(),
                        f.why
                    )
                } else {
                    continue;
                };
                r.add(
                    ErrorCode::BindForbidden,
                    &b.origin.file,
                    field,
                    &b.raw_source,
                    message,
                );
                return;
            }
        }
    }
    for p in &candidates {
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            if SOCKET_NAMES.contains(&name) {
                r.add(
                    ErrorCode::BindForbidden,
                    &b.origin.file,
                    field,
                    &b.raw_source,
                    format!("{} is an engine socket", shown(p)),
                );
                return;
            }
        }
    }
}

/// A settings block with each field typed, `None` where it was not written.
#[derive(Debug, Clone, Default)]
struct Partial {
    image: Option<String>,
    /// The value and the field it was written in.
    user: Option<(String, String)>,
    network: Option<Network>,
    read_only_root: Option<bool>,
    /// Mount point -> (bytes, field).
    tmpfs: Option<BTreeMap<String, (i64, String)>>,
    cap_drop: Option<Vec<String>>,
    cap_add: Option<Vec<String>>,
    no_new_privileges: Option<bool>,
    init: Option<bool>,
    seccomp: Option<SeccompSource>,
    limits: PartialLimits,
    /// The policy (`None` when it had problems) and the field it was written in.
    egress: Option<(Option<EgressPolicy>, String)>,
}

/// Each field: `None` not written, `Some(None)` written as `unlimited`.
#[derive(Debug, Clone, Copy, Default)]
struct PartialLimits {
    memory: Option<Option<i64>>,
    memory_swap: Option<Option<i64>>,
    cpus: Option<Option<f64>>,
    pids: Option<Option<i64>>,
}

/// The built-in defaults (manifest.md), used where neither `defaults` nor a sandbox says.
fn builtin_settings(ctx: &LoadContext) -> Partial {
    Partial {
        image: None,
        user: Some(("1000:1000".into(), "defaults.user".into())),
        network: Some(Network::None),
        read_only_root: Some(true),
        tmpfs: Some(BTreeMap::from([
            ("/tmp".into(), (64 << 20, "defaults.tmpfs./tmp".into())),
            ("/run".into(), (16 << 20, "defaults.tmpfs./run".into())),
        ])),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec![]),
        no_new_privileges: Some(true),
        init: Some(true),
        seccomp: Some(SeccompSource::Policy {
            policy: SeccompPolicy::Default,
            allow: vec![],
            deny: vec![],
        }),
        limits: PartialLimits {
            memory: Some(Some(8 << 30)),
            // Unset: follows `memory` after the merge (no swap).
            memory_swap: None,
            // 4 CPUs, but never more than the host has: a default should not itself trigger
            // the "cpus above the host's count" warning on a small machine.
            cpus: Some(Some(ctx.host_cpus.clamp(1, 4) as f64)),
            pids: Some(Some(512)),
        },
        egress: None,
    }
}

fn partial_settings(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    prefix: &str,
    raw: &RawSettings,
    ctx: &LoadContext,
) -> Partial {
    let mut p = Partial::default();
    if let Some(image) = &raw.image {
        if image.trim().is_empty() {
            r.invalid(file, format!("{prefix}.image"), image, "the image is empty");
        } else {
            p.image = Some(image.clone());
        }
    }
    p.user = raw
        .user
        .as_ref()
        .map(|u| (u.0.clone(), format!("{prefix}.user")));
    if let Some(network) = &raw.network {
        p.network = parse_network(r, file, &format!("{prefix}.network"), network);
    }
    p.read_only_root = raw.read_only_root;
    if let Some(tmpfs) = &raw.tmpfs {
        let mut map = BTreeMap::new();
        for (mount, size) in tmpfs {
            let field = format!("{prefix}.tmpfs.{mount}");
            let target = check_target(r, file, &field, mount);
            let bytes = parse_size(&size.0)
                .map_err(|m| r.invalid(file, &field, &size.0, m))
                .ok();
            if let (Some(_), Some(bytes)) = (target, bytes) {
                map.insert(mount.clone(), (bytes, field));
            }
        }
        p.tmpfs = Some(map);
    }
    p.cap_drop = raw.cap_drop.as_ref().map(|c| normalise_caps(c));
    if let Some(add) = &raw.cap_add {
        let add = normalise_caps(add);
        for cap in &add {
            if DANGEROUS_CAPS.contains(&cap.as_str()) {
                r.warn(format!(
                    "{prefix}.capAdd adds {cap}, which undoes much of the sandbox's isolation"
                ));
            }
        }
        p.cap_add = Some(add);
    }
    p.no_new_privileges = raw.no_new_privileges;
    p.init = raw.init;
    if let Some(seccomp) = &raw.seccomp {
        p.seccomp = parse_seccomp(r, file, dir, &format!("{prefix}.seccomp"), &seccomp.0, ctx);
    }
    if let Some(limits) = &raw.limits {
        p.limits = parse_limits(r, file, &format!("{prefix}.limits"), limits, ctx);
    }
    if let Some(egress) = &raw.egress {
        let field = format!("{prefix}.egress");
        p.egress = Some((parse_egress(r, file, &field, egress), field));
    }
    p
}

/// `egress`: every allow entry and pinned host checked (egress::policy owns the grammar).
fn parse_egress(r: &mut Report, file: &Path, field: &str, raw: &RawEgress) -> Option<EgressPolicy> {
    let mut ok = true;
    if raw.allow.is_empty() {
        r.invalid(
            file,
            format!("{field}.allow"),
            "",
            "egress.allow is empty: list the destinations the sandbox needs \
             (for no network at all, use `network: none` without egress)",
        );
        ok = false;
    }
    let mut allow = Vec::new();
    for (i, entry) in raw.allow.iter().enumerate() {
        match crate::egress::parse_allow_entry(entry) {
            Ok(e) => allow.push(e),
            Err(m) => {
                r.invalid(file, format!("{field}.allow[{i}]"), entry, m);
                ok = false;
            }
        }
    }
    let mut hosts = BTreeMap::new();
    for (name, addr) in &raw.hosts {
        let here = format!("{field}.hosts.{name}");
        let normal = crate::egress::policy::normalise_name(name)
            .map_err(|m| r.invalid(file, &here, name, format!("not a host name: {m}")))
            .ok();
        let ip = addr
            .0
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| {
                r.invalid(
                    file,
                    &here,
                    &addr.0,
                    "must be one IP address (10.0.0.7, fd00::7)",
                )
            })
            .ok();
        match (normal, ip) {
            (Some(n), Some(ip)) => {
                if hosts.insert(n, ip).is_some() {
                    r.invalid(file, &here, name, "this host name is pinned twice");
                    ok = false;
                }
            }
            _ => ok = false,
        }
    }
    ok.then_some(EgressPolicy { allow, hosts })
}

/// `CAP_NET_ADMIN` and `net_admin` both mean `NET_ADMIN`.
fn normalise_caps(caps: &[String]) -> Vec<String> {
    caps.iter().map(|c| crate::spec::capability(c)).collect()
}

/// Rule 7 for `network`.
fn parse_network(r: &mut Report, file: &Path, field: &str, value: &str) -> Option<Network> {
    match value {
        "none" => Some(Network::None),
        "bridge" => Some(Network::Bridge),
        "host" => {
            r.invalid(
                file,
                field,
                value,
                "network `host` shares the host's network stack and is rejected",
            );
            None
        }
        v if v.starts_with("container:") => {
            r.invalid(
                file,
                field,
                value,
                "network `container:*` joins another container's network namespace and is rejected",
            );
            None
        }
        v if v.is_empty() || !valid_container_name(v) => {
            r.invalid(
                file,
                field,
                value,
                "not a network name: use none, bridge or a named network",
            );
            None
        }
        v => Some(Network::Named(v.to_string())),
    }
}

/// Rule 7 for `seccomp`, and the policy/profile exclusivity.
fn parse_seccomp(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    field: &str,
    raw: &RawSeccomp,
    ctx: &LoadContext,
) -> Option<SeccompSource> {
    let unconfined = |s: &str| s.trim().eq_ignore_ascii_case("unconfined");
    let mut ok = true;
    if raw.policy.as_deref().is_some_and(unconfined) {
        r.invalid(
            file,
            format!("{field}.policy"),
            raw.policy.as_deref().unwrap_or_default(),
            "seccomp `unconfined` removes the syscall filter and is rejected",
        );
        ok = false;
    }
    if raw.profile.as_deref().is_some_and(unconfined) {
        r.invalid(
            file,
            format!("{field}.profile"),
            raw.profile.as_deref().unwrap_or_default(),
            "seccomp `unconfined` removes the syscall filter and is rejected",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    if let Some(profile) = &raw.profile {
        if raw.policy.is_some() || raw.allow.is_some() || raw.deny.is_some() {
            r.invalid(
                file,
                field,
                profile,
                "set either `profile` or `policy`/`allow`/`deny`, not both",
            );
            return None;
        }
        let path = expand_file_path(profile, dir, ctx)
            .map_err(|m| r.invalid(file, format!("{field}.profile"), profile, m))
            .ok()?;
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => None,
            Ok(_) => Some(format!("profile {} is not a regular file", path.display())),
            Err(_) => Some(format!("profile {} does not exist", path.display())),
        };
        if let Some(message) = problem {
            r.invalid(file, format!("{field}.profile"), profile, message);
            return None;
        }
        return Some(SeccompSource::Profile(path));
    }
    let policy = match raw.policy.as_deref().unwrap_or("default") {
        "strict" => SeccompPolicy::Strict,
        "default" => SeccompPolicy::Default,
        "permissive" => SeccompPolicy::Permissive,
        other => {
            r.invalid(
                file,
                format!("{field}.policy"),
                other,
                "unknown policy: use strict, default or permissive",
            );
            return None;
        }
    };
    Some(SeccompSource::Policy {
        policy,
        allow: raw.allow.clone().unwrap_or_default(),
        deny: raw.deny.clone().unwrap_or_default(),
    })
}

/// Rule 9, per written value.
fn parse_limits(
    r: &mut Report,
    file: &Path,
    prefix: &str,
    raw: &RawLimits,
    ctx: &LoadContext,
) -> PartialLimits {
    let unlimited = |s: &Scalar| s.0.trim() == "unlimited";
    let size = |r: &mut Report, name: &str, v: &Scalar| -> Option<Option<i64>> {
        if unlimited(v) {
            return Some(None);
        }
        let field = format!("{prefix}.{name}");
        match parse_size(&v.0) {
            Err(m) => {
                r.invalid(file, field, &v.0, m);
                None
            }
            Ok(bytes) if bytes < MIN_MEMORY => {
                r.invalid(file, field, &v.0, "must be at least 6Mi");
                None
            }
            Ok(bytes) => Some(Some(bytes)),
        }
    };
    let memory = raw.memory.as_ref().and_then(|v| size(r, "memory", v));
    let memory_swap = raw
        .memory_swap
        .as_ref()
        .and_then(|v| size(r, "memorySwap", v));
    let cpus = raw.cpus.as_ref().and_then(|v| {
        if unlimited(v) {
            return Some(None);
        }
        let field = format!("{prefix}.cpus");
        match v.0.trim().parse::<f64>() {
            Ok(c) if c.is_finite() && c > 0.0 => {
                if c > ctx.host_cpus as f64 {
                    r.warn(format!(
                        "{field} is {c}, above the host's {} CPUs",
                        ctx.host_cpus
                    ));
                }
                Some(Some(c))
            }
            _ => {
                r.invalid(file, field, &v.0, "must be a number of CPUs above 0");
                None
            }
        }
    });
    let pids = raw.pids.as_ref().and_then(|v| {
        if unlimited(v) {
            return Some(None);
        }
        match v.0.trim().parse::<i64>() {
            Ok(n) if n >= MIN_PIDS => Some(Some(n)),
            _ => {
                r.invalid(
                    file,
                    format!("{prefix}.pids"),
                    &v.0,
                    "must be a whole number of at least 8",
                );
                None
            }
        }
    });
    PartialLimits {
        memory,
        memory_swap,
        cpus,
        pids,
    }
}

/// Typed limits from partial layers, lowest priority first; swap follows memory unless set.
fn merge_limits(layers: &[&PartialLimits]) -> Limits {
    let mut out = PartialLimits::default();
    for l in layers {
        out.memory = l.memory.or(out.memory);
        out.memory_swap = l.memory_swap.or(out.memory_swap);
        out.cpus = l.cpus.or(out.cpus);
        out.pids = l.pids.or(out.pids);
    }
    let memory = out.memory.flatten();
    Limits {
        memory,
        memory_swap: out.memory_swap.unwrap_or(memory),
        cpus: out.cpus.flatten(),
        pids: out.pids.flatten(),
    }
}

/// The value of the highest-priority layer that sets it.
fn pick<T>(layers: &[&Partial], f: impl Fn(&Partial) -> Option<T>) -> Option<T> {
    layers.iter().rev().find_map(|l| f(l))
}

/// `0`, `0:*`, `root`, `root:*`.
fn is_root(user: &str) -> bool {
    let uid = user.split(':').next().unwrap_or("").trim();
    uid == "0" || uid == "root"
}

#[allow(clippy::too_many_arguments)]
fn sandbox(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    prefix: &str,
    raw: &RawSandbox,
    inherited: [&Partial; 2],
    (bind_sets, all_sets_loaded): (&[LoadedBindSet], bool),
    forbidden: &[Forbidden],
    all_binds: &mut Vec<Resolved>,
    ctx: &LoadContext,
) -> Option<Sandbox> {
    if !valid_container_name(&raw.name) {
        r.invalid(
            file,
            format!("{prefix}.name"),
            &raw.name,
            "not a valid container name: [a-zA-Z0-9][a-zA-Z0-9_.-]*",
        );
    }
    let own = partial_settings(r, file, dir, prefix, &raw.settings(), ctx);
    let layers = [inherited[0], inherited[1], &own];

    let image = layers.iter().rev().find_map(|l| l.image.clone());
    if image.is_none() {
        r.invalid(
            file,
            format!("{prefix}.image"),
            "",
            "no image: set defaults.image or an image on the sandbox",
        );
    }
    let (user, user_field) = layers
        .iter()
        .rev()
        .find_map(|l| l.user.clone())
        .unwrap_or_default();
    if is_root(&user) && !raw.allow_root {
        r.invalid(
            file,
            &user_field,
            &user,
            format!(
                "sandbox `{}` would run as root; set `allowRoot: true` on the sandbox if it must",
                raw.name
            ),
        );
    }
    let tmpfs = layers
        .iter()
        .rev()
        .find_map(|l| l.tmpfs.clone())
        .unwrap_or_default();
    let limits = merge_limits(&[&inherited[0].limits, &inherited[1].limits, &own.limits]);
    if let (Some(memory), Some(swap)) = (limits.memory, limits.memory_swap) {
        if swap < memory {
            r.invalid(
                file,
                format!("{prefix}.limits.memorySwap"),
                swap.to_string(),
                format!("memorySwap ({swap} bytes) is below memory ({memory} bytes)"),
            );
        }
    }

    // Binds: every named bind set's, then the sandbox's own.
    let mut binds: Vec<Resolved> = Vec::new();
    for (j, name) in raw.bind_sets.iter().enumerate() {
        match bind_sets.iter().find(|b| &b.set.name == name) {
            Some(loaded) => binds.extend(loaded.binds.iter().cloned()),
            None if !all_sets_loaded => {}
            None => {
                let hint = if r.may_suggest() {
                    let known: Vec<&str> = bind_sets.iter().map(|b| b.set.name.as_str()).collect();
                    suggest(name, &known)
                } else {
                    String::new()
                };
                r.invalid(
                    file,
                    format!("{prefix}.bindSets[{j}]"),
                    name,
                    format!("no loaded bind set is named `{name}`{hint}"),
                );
            }
        }
    }
    for (j, b) in raw.binds.iter().enumerate() {
        if let Some(resolved) = resolve_bind(r, file, &format!("{prefix}.binds[{j}]"), dir, b, ctx)
        {
            check_forbidden(r, &resolved, forbidden);
            all_binds.push(resolved.clone());
            binds.push(resolved);
        }
    }

    // Rule 4 (uniqueness): binds and tmpfs mounts share the sandbox's mount table.
    let mut seen: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (mount, (_, field)) in &tmpfs {
        seen.insert(PathBuf::from(mount), field.clone());
    }
    for b in &binds {
        let here = format!("{}.target", b.origin.field);
        if let Some(earlier) = seen.get(&b.bind.target) {
            r.invalid(
                &b.origin.file,
                &here,
                b.bind.target.display().to_string(),
                format!(
                    "target {} is already mounted by {earlier} in sandbox `{}`",
                    b.bind.target.display(),
                    raw.name
                ),
            );
        } else {
            seen.insert(b.bind.target.clone(), here);
        }
    }

    let liveness = raw
        .liveness
        .as_ref()
        .and_then(|l| liveness(r, file, &format!("{prefix}.liveness"), l));

    // The sandbox's own egress block replaces the defaults' as a whole: an allow-list that
    // grows by inheritance is hard to read off the sandbox.
    let egress = layers.iter().rev().find_map(|l| l.egress.clone());
    if let Some((_, field)) = &egress {
        if pick(&layers, |l| l.network.clone()) == Some(Network::Bridge) {
            r.invalid(
                file,
                field,
                "network: bridge",
                format!(
                    "sandbox `{}` has an egress allow-list and `network: bridge`; egress puts the \
                     sandbox on the fortress's internal network, and bridge would bypass the \
                     proxy: remove `network` (or the egress block)",
                    raw.name
                ),
            );
        }
    }

    Some(Sandbox {
        name: raw.name.clone(),
        image: image?,
        user,
        allow_root: raw.allow_root,
        network: pick(&layers, |l| l.network.clone())?,
        read_only_root: pick(&layers, |l| l.read_only_root)?,
        tmpfs: tmpfs.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        cap_drop: pick(&layers, |l| l.cap_drop.clone())?,
        cap_add: pick(&layers, |l| l.cap_add.clone())?,
        no_new_privileges: pick(&layers, |l| l.no_new_privileges)?,
        init: pick(&layers, |l| l.init)?,
        seccomp: pick(&layers, |l| l.seccomp.clone())?,
        limits,
        binds: binds.into_iter().map(|b| b.bind).collect(),
        bind_sets: raw.bind_sets.clone(),
        env: raw
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
        secret_env: raw.secret_env.clone(),
        command: raw.command.clone(),
        liveness,
        egress: egress.and_then(|(policy, _)| policy),
    })
}

/// ` (did you mean `x`?)` when a known name is close.
fn suggest(name: &str, known: &[&str]) -> String {
    if known.len() > MAX_SUGGESTION_CANDIDATES {
        return String::new();
    }
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn duration(
    r: &mut Report,
    file: &Path,
    field: &str,
    raw: Option<&Scalar>,
    default: Duration,
) -> Option<Duration> {
    match raw {
        None => Some(default),
        Some(v) => match parse_duration(&v.0) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                r.invalid(file, field, &v.0, "must be above zero");
                None
            }
            Err(m) => {
                r.invalid(file, field, &v.0, m);
                None
            }
        },
    }
}

fn at_least_one(r: &mut Report, file: &Path, field: &str, value: Option<u32>, default: u32) -> u32 {
    let n = value.unwrap_or(default);
    if n == 0 {
        r.invalid(file, field, "0", "must be at least 1");
    }
    n
}

fn liveness(r: &mut Report, file: &Path, prefix: &str, raw: &RawLiveness) -> Option<Liveness> {
    let every = duration(
        r,
        file,
        &format!("{prefix}.every"),
        Some(&raw.every),
        Duration::ZERO,
    );
    let timeout = duration(
        r,
        file,
        &format!("{prefix}.timeout"),
        raw.timeout.as_ref(),
        Duration::from_secs(10),
    );
    if raw.exec.is_empty() {
        r.invalid(
            file,
            format!("{prefix}.exec"),
            "",
            "the probe command is empty",
        );
    }
    let failures = at_least_one(r, file, &format!("{prefix}.failures"), raw.failures, 3);
    Some(Liveness {
        every: every?,
        exec: raw.exec.clone(),
        timeout: timeout?,
        failures,
    })
}

/// Rule 5: checks (ownership, modes, outside every bind) and only then reads.
fn read_secrets(
    r: &mut Report,
    file: &Path,
    raw_value: &str,
    path: &Path,
    binds: &[Resolved],
    ctx: &LoadContext,
) -> Option<SecretMap> {
    let real = real_path(path).0;
    let mut safe = true;
    for b in binds {
        if real.starts_with(&b.bind.source) || path.starts_with(&b.lexical) {
            r.add(
                ErrorCode::SecretsInsecure,
                file,
                "secrets.file",
                raw_value,
                format!(
                    "the secrets file is inside bind source {} ({}{} in {}); the sandbox could read it",
                    b.bind.source.display(),
                    b.origin.field,
                    ".source",
                    b.origin.file.display()
                ),
            );
            safe = false;
        }
    }
    if let Err(e) = secrets::check_file(path, ctx.uid) {
        report_secrets_error(r, file, raw_value, &e);
        safe = false;
    }
    if !safe {
        return None;
    }
    secrets::read(path, ctx.uid)
        .map_err(|e| report_secrets_error(r, file, raw_value, &e))
        .ok()
}

fn report_secrets_error(r: &mut Report, file: &Path, raw_value: &str, e: &secrets::SecretsError) {
    let e_text = crate::report::chain(e);
    let message = match e.hint() {
        Some(hint) => format!("{e_text} (fix: {hint})"),
        None => e_text,
    };
    r.add(e.code(), file, "secrets.file", raw_value, message);
}

/// Rule 6: `secretEnv` names exist; no plain `env` value is a secret value.
fn check_secret_env(
    r: &mut Report,
    file: &Path,
    index: usize,
    raw: &RawSandbox,
    declared: bool,
    secrets: Option<(&SecretMap, &HashSet<&str>)>,
) {
    let prefix = format!("sandboxes[{index}]");
    if !raw.secret_env.is_empty() && !declared {
        r.invalid(
            file,
            format!("{prefix}.secretEnv"),
            raw.secret_env.join(","),
            "secretEnv needs a secrets file: set secrets.file",
        );
    }
    for (j, name) in raw.secret_env.iter().enumerate() {
        if raw.env.contains_key(name) {
            r.invalid(
                file,
                format!("{prefix}.env.{name}"),
                name,
                "a name cannot be both a plain env and a secretEnv entry",
            );
        }
        if let Some((map, _)) = secrets {
            if !map.contains(name) {
                let hint = if r.may_suggest() {
                    let keys: Vec<&str> = map.keys().collect();
                    suggest(name, &keys)
                } else {
                    String::new()
                };
                r.invalid(
                    file,
                    format!("{prefix}.secretEnv[{j}]"),
                    name,
                    format!("not in the secrets file{hint}"),
                );
            }
        }
    }
    if let Some((_, values)) = secrets {
        for (key, value) in &raw.env {
            if values.contains(value.0.as_str()) {
                r.add(
                    ErrorCode::SecretsInsecure,
                    file,
                    format!("{prefix}.env.{key}"),
                    "(redacted)",
                    format!(
                        "the value of env `{key}` is a secret from the secrets file; \
                         list its name under secretEnv instead"
                    ),
                );
            }
        }
    }
}

fn adopt(
    r: &mut Report,
    file: &Path,
    i: usize,
    raw: &RawAdopt,
    ctx: &LoadContext,
) -> Option<Adopt> {
    let prefix = format!("adopt[{i}]");
    let selector = match (&raw.selector.label, &raw.selector.name_prefix) {
        (Some(label), None) => {
            let (key, value) = match label.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                None => (label.trim(), None),
            };
            if key.is_empty() {
                r.invalid(
                    file,
                    format!("{prefix}.selector.label"),
                    label,
                    "a label selector is `key=value` or `key`",
                );
                None
            } else {
                Some(Selector::Label {
                    key: key.to_string(),
                    value,
                })
            }
        }
        (None, Some(name)) if !name.is_empty() => Some(Selector::NamePrefix(name.clone())),
        (None, Some(name)) => {
            r.invalid(
                file,
                format!("{prefix}.selector.namePrefix"),
                name,
                "the name prefix is empty",
            );
            None
        }
        _ => {
            r.invalid(
                file,
                format!("{prefix}.selector"),
                "",
                "a selector has exactly one of `label` and `namePrefix`",
            );
            None
        }
    };
    let limits = raw
        .limits
        .as_ref()
        .map(|l| parse_limits(r, file, &format!("{prefix}.limits"), l, ctx))
        .unwrap_or_default();
    let egress = raw
        .egress
        .as_ref()
        .map(|e| parse_egress(r, file, &format!("{prefix}.egress"), e));
    Some(Adopt {
        selector: selector?,
        limits: merge_limits(&[&limits]),
        egress: egress.flatten(),
    })
}

/// A cron expression in the `cron` crate's grammar (6 or 7 fields with seconds, or `@daily`).
fn check_cron(r: &mut Report, file: &Path, field: &str, expr: &str) -> Option<String> {
    let trimmed = expr.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() == 5 {
        r.invalid(
            file,
            field,
            expr,
            format!(
                "cron takes 6 fields, seconds first; for this 5-field expression write `0 {trimmed}`"
            ),
        );
        return None;
    }
    match cron::Schedule::from_str(trimmed) {
        Ok(_) => Some(trimmed.to_string()),
        Err(e) => {
            r.invalid(file, field, expr, format!("not a cron expression: {e}"));
            None
        }
    }
}

/// The host part of an `http(s)://` URL, without brackets or port.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn health_checks(r: &mut Report, file: &Path, raw: &[RawHealth]) -> Vec<HealthCheck> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let prefix = format!("health[{i}]");
        if h.name.trim().is_empty() || !names.insert(h.name.clone()) {
            r.invalid(
                file,
                format!("{prefix}.name"),
                &h.name,
                "health check names must be non-empty and unique",
            );
        }
        let probe = match (&h.http, &h.exec) {
            (Some(http), None) => {
                let host = url_host(&http.url);
                if host.is_none_or(str::is_empty) {
                    r.invalid(
                        file,
                        format!("{prefix}.http.url"),
                        &http.url,
                        "must be an http:// or https:// URL with a host",
                    );
                }
                if http.insecure_tls && !host.is_some_and(is_loopback) {
                    r.invalid(
                        file,
                        format!("{prefix}.http.insecureTls"),
                        "true",
                        "insecureTls is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost)",
                    );
                }
                duration(
                    r,
                    file,
                    &format!("{prefix}.http.timeout"),
                    http.timeout.as_ref(),
                    Duration::from_secs(5),
                )
                .map(|timeout| Probe::Http {
                    url: http.url.clone(),
                    insecure_tls: http.insecure_tls,
                    timeout,
                })
            }
            (None, Some(exec)) => {
                if exec.container.trim().is_empty() || exec.command.is_empty() {
                    r.invalid(
                        file,
                        format!("{prefix}.exec"),
                        &exec.container,
                        "an exec probe needs a container and a command",
                    );
                }
                duration(
                    r,
                    file,
                    &format!("{prefix}.exec.timeout"),
                    exec.timeout.as_ref(),
                    Duration::from_secs(10),
                )
                .map(|timeout| Probe::Exec {
                    container: exec.container.clone(),
                    command: exec.command.clone(),
                    timeout,
                })
            }
            _ => {
                r.invalid(
                    file,
                    &prefix,
                    &h.name,
                    "a health check has exactly one of `http` and `exec`",
                );
                None
            }
        };
        let schedule = match (&h.every, &h.cron) {
            (Some(every), None) => duration(
                r,
                file,
                &format!("{prefix}.every"),
                Some(every),
                Duration::ZERO,
            )
            .map(Schedule::Every),
            (None, Some(expr)) => {
                check_cron(r, file, &format!("{prefix}.cron"), expr).map(Schedule::Cron)
            }
            _ => {
                r.invalid(
                    file,
                    &prefix,
                    &h.name,
                    "a health check has exactly one of `every` and `cron`",
                );
                None
            }
        };
        let failures = at_least_one(r, file, &format!("{prefix}.failures"), h.failures, 3);
        let restart = h.restart.as_ref().and_then(|rs| {
            match (&rs.systemd_unit, &rs.container) {
                (Some(unit), None) => Some(RestartTarget::SystemdUnit {
                    unit: unit.clone(),
                    user: rs.user_unit.unwrap_or(false),
                }),
                (None, Some(c)) if rs.user_unit.is_none() => Some(RestartTarget::Container(c.clone())),
                _ => {
                    r.invalid(
                        file,
                        format!("{prefix}.restart"),
                        "",
                        "restart has exactly one of `systemdUnit` (with optional `userUnit`) and `container`",
                    );
                    None
                }
            }
        });
        let backoff = h.backoff.as_ref();
        let initial = duration(
            r,
            file,
            &format!("{prefix}.backoff.initial"),
            backoff.and_then(|b| b.initial.as_ref()),
            Duration::from_secs(10),
        );
        let max = duration(
            r,
            file,
            &format!("{prefix}.backoff.max"),
            backoff.and_then(|b| b.max.as_ref()),
            Duration::from_secs(300),
        );
        if let (Some(i), Some(m)) = (initial, max) {
            if i > m {
                r.invalid(
                    file,
                    format!("{prefix}.backoff"),
                    "",
                    "backoff.initial is above backoff.max",
                );
            }
        }
        let quarantine = h.quarantine.as_ref();
        let restarts = at_least_one(
            r,
            file,
            &format!("{prefix}.quarantine.restarts"),
            quarantine.and_then(|q| q.restarts),
            5,
        );
        let within = duration(
            r,
            file,
            &format!("{prefix}.quarantine.within"),
            quarantine.and_then(|q| q.within.as_ref()),
            Duration::from_secs(30 * 60),
        );
        if let (Some(probe), Some(schedule), Some(initial), Some(max), Some(within)) =
            (probe, schedule, initial, max, within)
        {
            out.push(HealthCheck {
                name: h.name.clone(),
                probe,
                schedule,
                failures,
                restart,
                backoff_initial: initial,
                backoff_max: max,
                quarantine_restarts: restarts,
                quarantine_within: within,
            });
        }
    }
    out
}

fn backups(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    raw: &[RawBackup],
    binds: &[Resolved],
    ctx: &LoadContext,
) -> Vec<Backup> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let prefix = format!("backups[{i}]");
        let mut ok = true;
        if b.name.trim().is_empty() || !names.insert(b.name.clone()) {
            r.invalid(
                file,
                format!("{prefix}.name"),
                &b.name,
                "backup names must be non-empty and unique",
            );
            ok = false;
        }
        if b.sources.is_empty() {
            r.invalid(file, format!("{prefix}.sources"), "", "no sources");
            ok = false;
        }
        let mut sources = Vec::new();
        for (j, s) in b.sources.iter().enumerate() {
            match expand(s, ctx) {
                Ok(e) => sources.push(dir.join(e).to_string_lossy().into_owned()),
                Err(m) => {
                    r.invalid(file, format!("{prefix}.sources[{j}]"), s, m);
                    ok = false;
                }
            }
        }
        let dest = expand_file_path(&b.dest, dir, ctx)
            .map_err(|m| r.invalid(file, format!("{prefix}.dest"), &b.dest, m))
            .ok();
        if let Some(dest) = &dest {
            // Snapshots hold exactly what the deny list keeps out of sandboxes (the matrix
            // store, memory databases): a destination inside a bind would hand them back.
            let real = real_path(dest).0;
            if let Some(bind) = binds.iter().find(|bd| real.starts_with(&bd.bind.source)) {
                r.invalid(
                    file,
                    format!("{prefix}.dest"),
                    &b.dest,
                    format!(
                        "the backup destination is inside bind source {}; sandboxes could read the snapshots",
                        bind.bind.source.display()
                    ),
                );
                ok = false;
            }
        }
        let schedule = match &b.schedule {
            None => None,
            Some(expr) => {
                let checked = check_cron(r, file, &format!("{prefix}.schedule"), expr);
                ok &= checked.is_some();
                checked
            }
        };
        let keep = b.keep.as_ref();
        let keep = Keep {
            last: keep.and_then(|k| k.last).unwrap_or(7),
            daily: keep.and_then(|k| k.daily).unwrap_or(7),
            weekly: keep.and_then(|k| k.weekly).unwrap_or(4),
        };
        if let (true, Some(dest)) = (ok, dest) {
            out.push(Backup {
                name: b.name.clone(),
                sources,
                dest,
                schedule,
                keep,
            });
        }
    }
    out
}

fn metrics(r: &mut Report, file: &Path, listen: &str) -> Option<Metrics> {
    match listen.parse::<SocketAddr>() {
        Ok(addr) => {
            if !addr.ip().is_loopback() {
                r.warn(format!(
                    "metrics.listen {addr} is not a loopback address; the endpoint is reachable from the network"
                ));
            }
            Some(Metrics { listen: addr })
        }
        Err(_) => {
            r.invalid(
                file,
                "metrics.listen",
                listen,
                "must be an IP address and port, e.g. 127.0.0.1:9477",
            );
            None
        }
    }
}
