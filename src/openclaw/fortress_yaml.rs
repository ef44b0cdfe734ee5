//! `--write-manifest`: a Fortress manifest for this host, in the shape of
//! `manifests/openclaw.yaml`, pointing at this state directory, these secrets and the bind set
//! that was used. Pure text rendering; the planner decides whether to write it.

use std::path::{Path, PathBuf};

use super::{HardenOptions, OpenclawError, Paths};
use crate::manifest::{BindSet, LoadContext};

/// What the written manifest says beyond what `harden` already knows.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestOptions {
    /// Where to write it.
    pub path: PathBuf,
    /// `metadata.name`; the fortress's own sandbox is `<name>-sbx-main`.
    pub name: String,
    /// The sandbox image; default: `agents.defaults.sandbox.docker.image`, else OpenClaw's.
    pub image: Option<String>,
    /// `engine.socket`, written only when given (otherwise the usual resolution applies).
    pub socket: Option<String>,
}

/// OpenClaw's default sandbox image.
pub const OPENCLAW_IMAGE: &str = "openclaw-sandbox:bookworm-slim";

/// A YAML double-quoted scalar (a JSON string is one).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// `~/…` when under `home`, else absolute, quoted.
fn path_value(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rel) if rel.as_os_str().is_empty() => quote("~"),
        Ok(rel) => quote(&format!("~/{}", rel.display())),
        Err(_) => quote(&path.display().to_string()),
    }
}

/// The text of a value [`quote`]d by [`path_value`].
fn unquote(quoted: &str) -> String {
    serde_json::from_str(quoted).unwrap_or_else(|_| quoted.to_string())
}

/// Sizes in the manifest's units (`8Gi`, `64Mi`), else bytes.
fn size(bytes: i64) -> String {
    for (shift, unit) in [(30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The files to write: the manifest and, when the bind set's own `root:` does not resolve to
/// this state directory, a copy of the bind set beside the manifest with `root:` rewritten.
pub(super) fn render(
    m: &ManifestOptions,
    opts: &HardenOptions,
    state: &Path,
    paths: &Paths,
    set: &BindSet,
    default_image: Option<&str>,
) -> Result<Vec<(PathBuf, String)>, OpenclawError> {
    let valid_name = (1..=40).contains(&m.name.len())
        && m.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        return Err(OpenclawError::ConfigShape {
            file: m.path.clone(),
            field: "metadata.name".into(),
            message: format!("{:?}: use 1 to 40 characters of a-z, 0-9 and -", m.name),
        });
    }
    let mut files = Vec::new();
    let manifest_dir = m.path.parent().unwrap_or(Path::new("/"));

    let ctx = LoadContext {
        home: opts.home.clone(),
        env: opts.env.clone(),
        uid: opts.uid,
        host_cpus: 1,
    };
    let own_root = crate::manifest::load_bind_set(&set.file, None, None, &ctx)
        .ok()
        .map(|s| s.root);
    let bind_set_file = if own_root.as_deref() == Some(state) {
        set.file.clone()
    } else {
        let stem = m
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "fortress".into());
        let copy = manifest_dir.join(format!("{stem}.binds.yaml"));
        let text = std::fs::read_to_string(&set.file).map_err(|source| OpenclawError::Read {
            path: set.file.clone(),
            source,
        })?;
        files.push((copy.clone(), with_root(&text, state, &set.file)));
        copy
    };

    let l = opts.limits;
    let cpus = if l.cpus.fract() == 0.0 {
        format!("{}", l.cpus as i64)
    } else {
        format!("{}", l.cpus)
    };
    let image = m
        .image
        .as_deref()
        .or(default_image)
        .unwrap_or(OPENCLAW_IMAGE);
    let engine = match &m.socket {
        Some(s) => format!("engine:\n  socket: {}\n", quote(s)),
        None => String::new(),
    };
    let secrets_file = if paths.secrets_src.exists() || paths.secrets_dst.exists() {
        Some(&paths.secrets_dst)
    } else if paths.env_src.exists() || paths.env_dst.exists() {
        Some(&paths.env_dst)
    } else {
        None
    };
    let secrets = match secrets_file {
        Some(f) => format!(
            "secrets:\n  # Moved out of the state directory by `openclaw harden`: directory 0700, \
             file 0600.\n  file: {}\n",
            path_value(f, &opts.home)
        ),
        None => String::new(),
    };
    let state_value = path_value(state, &opts.home);
    let memory = size(l.memory);
    let text = format!(
        r#"# The fortress of the OpenClaw install at {state}, written by
# `clw-fortress openclaw harden --write-manifest`.
#   clw-fortress -f {file} validate
#   clw-fortress -f {file} apply
apiVersion: clw-fortress/v1
kind: Fortress
metadata:
  name: {name}
{engine}{secrets}openclaw:
  # Every secret of this OpenClaw home is searched for by `verify`; none of its
  # secret-bearing files may be mounted.
  stateDir: {state_value}
bindSets: [{bind_set}]
defaults:
  image: {image}
  user: "1000:1000"
  network: none
  readOnlyRoot: true
  capDrop: [ALL]
  capAdd: []
  noNewPrivileges: true
  seccomp:
    policy: default
  limits: {{memory: {memory}, memorySwap: {memory}, cpus: {cpus}, pids: {pids}}}
sandboxes:
  - name: {name}-sbx-main
    bindSets: [{set_name}]
    command: [sleep, infinity]
adopt:
  # The gateway's own per-session sandboxes: it recreates them at will, so their limits are
  # re-applied on every create/start event.
  - selector: {{label: openclaw.sandbox=1}}
    limits: {{memory: {memory}, cpus: {cpus}, pids: {pids}}}
health:
  - name: gateway
    # OpenClaw 2026.9 serves /health over plain HTTP on loopback.
    http: {{url: "http://127.0.0.1:18789/health", timeout: 3s}}
    every: 3m
    failures: 3
    restart: {{systemdUnit: openclaw-gateway.service, userUnit: true}}
    backoff: {{initial: 10s, max: 5m}}
    quarantine: {{restarts: 5, within: 30m}}
backups:
  # The gateway's and each agent's SQLite databases (WAL), as OpenClaw 2026.9 lays them out.
  - name: openclaw-state
    sources: [{db_state}, {db_agents}]
    dest: "~/.local/share/clw-fortress/backups"
    schedule: "0 0 3 * * *"
    keep: {{last: 7, daily: 7, weekly: 4}}
"#,
        state = state.display(),
        file = m.path.display(),
        name = m.name,
        bind_set = quote(&bind_set_file.display().to_string()),
        image = quote(image),
        pids = l.pids,
        set_name = set.name,
        db_state = quote(&format!("{}/state/openclaw.sqlite", unquote(&state_value))),
        db_agents = quote(&format!(
            "{}/agents/*/agent/openclaw-agent.sqlite",
            unquote(&state_value)
        )),
    );
    files.push((m.path.clone(), text));
    Ok(files)
}

/// The bind set text with its top-level `root:` pointing at `state`.
fn with_root(text: &str, state: &Path, original: &Path) -> String {
    let root = format!(
        "root: {}   # this host's state directory",
        quote(&state.display().to_string())
    );
    let mut out = format!(
        "# Copy of {} for this host, written by `clw-fortress openclaw harden`.\n",
        original.display()
    );
    let mut replaced = false;
    for line in text.lines() {
        if line.starts_with("root:") {
            out.push_str(&root);
            replaced = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !replaced {
        out.push_str(&root);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_home_are_written_with_a_tilde() {
        let home = Path::new("/home/a");
        assert_eq!(
            path_value(Path::new("/home/a/.config/s.env"), home),
            "\"~/.config/s.env\""
        );
        assert_eq!(path_value(Path::new("/srv/s.env"), home), "\"/srv/s.env\"");
    }

    #[test]
    fn sizes_use_the_manifest_units() {
        assert_eq!(size(8 << 30), "8Gi");
        assert_eq!(size(64 << 20), "64Mi");
        assert_eq!(size(1000), "1000");
    }

    #[test]
    fn the_bind_set_copy_points_its_root_at_the_state_directory() {
        let text = "kind: BindSet\nroot: ~/.openclaw   # x\nbinds: []\n";
        let out = with_root(text, Path::new("/srv/oc"), Path::new("/b.yaml"));
        assert!(out.contains("\nroot: \"/srv/oc\""), "{out}");
        assert!(!out.contains("~/.openclaw"), "{out}");
        let out = with_root(
            "kind: BindSet\n",
            Path::new("/srv/oc"),
            Path::new("/b.yaml"),
        );
        assert!(out.ends_with("root: \"/srv/oc\"   # this host's state directory\n"));
    }
}
