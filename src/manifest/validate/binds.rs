//! Binds and bind sets (manifest.md rules 1 to 4): each source expanded and resolved to its
//! real path, each target checked for shape, and every source held against what no sandbox may
//! see: the secrets file and its directory, deny lists, engine sockets, host system paths and
//! the fortress's own files. Both the real path and the path as written are checked, so a
//! symlink cannot smuggle a forbidden directory in. The trees under the sources are scanned
//! (bounded) for hard links to the secrets file and for unix sockets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::super::expand::{expand_file_path, expand_path, real_path};
use super::super::raw::{RawBackup, RawBind, RawBindSet, RawMode};
use super::super::{
    parse_document, Bind, BindSet, ErrorCode, LoadContext, Mode, Problem, HOST_SYSTEM_PATHS,
};
use super::{check_metadata_name, Report};

/// Where a value was written.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) file: PathBuf,
    /// Field path of the bind, e.g. `binds[3]` or `sandboxes[0].binds[1]`.
    pub(super) field: String,
}

/// A resolved bind with where it came from and its path as written (expanded).
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub(super) bind: Bind,
    pub(super) lexical: PathBuf,
    pub(super) raw_source: String,
    pub(super) origin: Origin,
    /// `allowSockets: true`: unix sockets in the tree are the user's decision.
    pub(super) allow_sockets: bool,
}

/// A bind set file with its binds resolved and its deny entries as `(as written, real)`.
pub(super) struct LoadedBindSet {
    pub(super) set: BindSet,
    pub(super) binds: Vec<Resolved>,
    pub(super) deny: Vec<(PathBuf, PathBuf)>,
}

/// A path no bind may be, be inside of (`beneath`), or contain (`parents`).
pub(super) struct Forbidden {
    /// The path as configured and its real path, where they differ.
    paths: Vec<PathBuf>,
    why: String,
    beneath: bool,
    parents: bool,
}

use crate::engine::socket::ENGINE_SOCKET_NAMES as SOCKET_NAMES;

const KNOWN_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// Container paths a target may not be or be under (rule 4).
const TARGET_FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev"];

/// Loads one bind set file: its binds resolved (rules 1, 2, 4) and its deny entries as
/// `(as written, real)` paths.
pub(super) fn load_bind_set(
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
pub(in crate::manifest) fn bind_set_alone(
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
pub(super) fn resolve_bind(
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
pub(super) fn check_target(
    r: &mut Report,
    file: &Path,
    field: &str,
    target: &str,
) -> Option<PathBuf> {
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
pub(super) fn check_nested_under_rw(r: &mut Report, binds: &[Resolved]) {
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
pub(super) fn scan_bound_trees(r: &mut Report, binds: &[Resolved], secrets_file: Option<&Path>) {
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

pub(super) fn forbidden_list(
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
    for dir in HOST_SYSTEM_PATHS {
        push(PathBuf::from(dir), "a host system path".into(), true, true);
    }
    push(PathBuf::from("/"), "the host root".into(), false, false);
    list
}

/// Rule 3 for one bind, on its real path and on its path as written.
pub(super) fn check_forbidden(r: &mut Report, b: &Resolved, forbidden: &[Forbidden]) {
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

/// clw-fortress's own files: what a sandbox could read (the state database holds audit and
/// records; backups hold database snapshots) or write to change what the fortress does (the
/// manifest, its bind sets, the generated profiles it hands the engine).
pub(super) fn own_files(
    manifest: &Path,
    bind_sets: &[LoadedBindSet],
    state_path: &Path,
    backups: &[RawBackup],
    dir: &Path,
    ctx: &LoadContext,
) -> Vec<Forbidden> {
    let mut own: Vec<(PathBuf, &str)> = vec![(manifest.to_path_buf(), "this manifest")];
    for loaded in bind_sets {
        own.push((loaded.set.file.clone(), "a bind set file of this manifest"));
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = state_path.as_os_str().to_os_string();
        p.push(suffix);
        own.push((PathBuf::from(p), "the state database"));
    }
    if let Some(dir) = state_path.parent() {
        own.push((dir.join("profiles"), "the generated seccomp profiles"));
    }
    for b in backups {
        if let Ok(dest) = expand_file_path(&b.dest, dir, ctx) {
            own.push((dest, "a backup destination"));
        }
    }
    own.into_iter()
        .map(|(path, why)| {
            let real = real_path(&path).0;
            let mut paths = vec![path];
            if real != paths[0] {
                paths.push(real);
            }
            Forbidden {
                paths,
                why: why.to_string(),
                beneath: true,
                parents: true,
            }
        })
        .collect()
}
