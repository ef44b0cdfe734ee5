//! The validation rules of manifest.md: raw structs in, a typed [`Fortress`] or every problem
//! out. Reads the filesystem (bind sources, bind sets, the secrets file) but never writes.
//!
//! Rules are checked on real (symlink-resolved) paths as well as on the paths as written, so a
//! symlink in a workspace pointing at a denied directory is caught, and so is `/var/run`
//! written for `/run`.
//!
//! This file holds the walk over a whole manifest (`fortress`) and what every topic shares
//! (the `Report` that collects problems, "did you mean"); each topic's rules live in their
//! own file: `binds` (rules 1 to 4), `settings` and `sandbox` (rules 7 to 9, the layers of
//! defaults), `secrets` (rules 5 and 6), `health` and `operations` (adopt rules, schedules,
//! backups, metrics).

mod binds;
mod health;
mod operations;
mod sandbox;
mod secrets;
mod settings;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use self::binds::{
    check_forbidden, check_nested_under_rw, forbidden_list, load_bind_set, own_files,
    scan_bound_trees, LoadedBindSet, Resolved,
};
use super::expand::{expand, expand_file_path};
use super::raw::*;
use super::*;

pub(super) use self::binds::bind_set_alone;

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
    /// Problems with what is on the host now rather than with the manifest (an `rw` bind its
    /// user cannot write): refused by the commands that mount (`validate`, `plan`, `apply`),
    /// not by those that act on what runs, so `verify` and the agent still see the sandbox.
    mount_problems: Vec<Problem>,
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

    /// A [`Report::invalid`] that only the commands that mount refuse (see `mount_problems`).
    fn mount_invalid(
        &mut self,
        file: &Path,
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        let problem = Problem {
            code: ErrorCode::ConfigInvalid,
            file: file.to_path_buf(),
            field: field.into(),
            value: value.into(),
            message: message.into(),
            location: None,
        };
        if !self.mount_problems.contains(&problem) {
            self.mount_problems.push(problem);
        }
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

/// Builds the validated fortress, or returns every problem found.
pub(super) fn fortress(
    raw: RawFortress,
    file: &Path,
    ctx: &LoadContext,
) -> Result<Fortress, Vec<Problem>> {
    let mut r = Report::default();
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();

    check_metadata_name(&mut r, file, &raw.metadata.name);
    // `metadata.owner`: `~` is the owner's home from here on, whoever runs this (a root agent
    // under the system unit has no useful HOME of its own).
    let owner = raw
        .metadata
        .owner
        .as_deref()
        .and_then(|o| resolve_owner(&mut r, file, o));
    let owner_ctx;
    let ctx = match &owner {
        Some(o) => {
            owner_ctx = LoadContext {
                home: o.home.clone(),
                ..ctx.clone()
            };
            &owner_ctx
        }
        None => ctx,
    };

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
    forbidden.extend(own_files(
        file,
        &bind_sets,
        &state_path,
        &raw.backups,
        &dir,
        ctx,
    ));
    for loaded in &bind_sets {
        for b in &loaded.binds {
            check_forbidden(&mut r, b, &forbidden);
        }
    }

    // Sandboxes.
    let default_user = owner.as_ref().map(|o| format!("{}:{}", o.uid, o.gid));
    let builtin = settings::builtin_settings(ctx, default_user);
    let defaults = raw
        .defaults
        .as_ref()
        .map(|d| settings::partial_settings(&mut r, file, &dir, "defaults", d, ctx))
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
        let sandbox = sandbox::sandbox(
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
        // The owner's file is theirs to own; otherwise the running user's (root included).
        let sec_ctx = LoadContext {
            uid: crate::manifest::secrets_uid(path, owner.as_ref(), ctx.uid),
            ..ctx.clone()
        };
        secrets::read_secrets(&mut r, file, raw_value, path, &all_binds, &sec_ctx)
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
        secrets::check_secret_env(
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
        .filter_map(|(i, a)| operations::adopt(&mut r, file, i, a, ctx))
        .collect();
    let health = health::health_checks(&mut r, file, &raw.health);
    let backups = operations::backups(&mut r, file, &dir, &raw.backups, &all_binds, ctx);
    let schedules = operations::schedules(&mut r, file, raw.schedules.as_ref());
    let metrics = raw
        .metrics
        .as_ref()
        .and_then(|m| operations::metrics(&mut r, file, &m.listen));

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
        tree_problems: trees.problems.into_iter().chain(r.mount_problems).collect(),
        bind_sets: bind_sets.into_iter().map(|b| b.set).collect(),
        sandboxes: sandboxes.into_iter().flatten().collect(),
        adopt,
        health,
        backups,
        schedules,
        metrics,
        warnings: r.warnings,
        owner,
    })
}

/// `metadata.owner`: a user name or numeric uid from the user database, with a home.
fn resolve_owner(r: &mut Report, file: &Path, owner: &str) -> Option<crate::manifest::Owner> {
    use nix::unistd::{Uid, User};
    let found = match owner.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(owner),
    };
    match found {
        Ok(Some(u)) => Some(crate::manifest::Owner {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }),
        Ok(None) => {
            r.invalid(
                file,
                "metadata.owner",
                owner,
                "no such user in the user database (getent passwd)",
            );
            None
        }
        Err(e) => {
            r.invalid(
                file,
                "metadata.owner",
                owner,
                format!("cannot read the user database: {e}"),
            );
            None
        }
    }
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
