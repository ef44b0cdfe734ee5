//! Fortress and BindSet manifests: parse (raw serde structs), then validate into the typed
//! [`Fortress`] of `types`. Validation needs no engine and changes nothing on the host.
//!
//! Host facts (home, environment, uid, CPU count) come in through [`LoadContext`] so every rule
//! is unit-tested on fixtures.

mod bounds;
mod expand;
mod raw;
pub mod types;
pub mod units;
mod validate;

pub use types::*;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Coded, ErrorCode};

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "clw-fortress/v1";

/// Host paths whose bind would hand the sandbox the host (rule 3). Everything beneath them is
/// forbidden as well: `/proc/1/root`, `/var/lib/docker/overlay2/...` and `/run/user/<uid>/...`
/// (where the Podman socket lives) are no safer than their parents; so is every directory
/// above them (a bind of `/var` exposes `/var/lib/docker`). `/` is forbidden on its own.
/// `validate` refuses such binds and `verify` flags them on running containers.
pub const HOST_SYSTEM_PATHS: &[&str] = &[
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containers",
    "/var/lib/containerd",
];

/// The host system path that a bind of `p` (absolute) would expose: `p` itself, one beneath
/// it, or one above it; `/` exposes everything.
pub fn exposed_system_path(p: &Path) -> Option<&'static str> {
    if p == Path::new("/") {
        return Some("/");
    }
    HOST_SYSTEM_PATHS.iter().copied().find(|dir| {
        let d = Path::new(dir);
        p.starts_with(d) || d.starts_with(p)
    })
}

/// Host facts the manifest depends on.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// `~` expands to this.
    pub home: PathBuf,
    /// `${VAR}` expands from this.
    pub env: BTreeMap<String, String>,
    /// The running user (owner check of the secrets file; root's default state path).
    pub uid: u32,
    /// For the "cpus above the host's count" warning.
    pub host_cpus: usize,
}

impl LoadContext {
    pub fn from_process() -> Self {
        LoadContext {
            // Without a home directory `~` cannot mean anything safe; `/` makes every `~` path
            // land on a forbidden or nonexistent source, which validation then reports.
            home: dirs::home_dir().unwrap_or_else(|| PathBuf::from("/")),
            env: std::env::vars().collect(),
            uid: nix::unistd::getuid().as_raw(),
            host_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// One problem found in a manifest or bind set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    pub code: ErrorCode,
    pub file: PathBuf,
    /// Field path, e.g. `sandboxes[0].binds[1].source`.
    pub field: String,
    /// The offending value as written (never a secret value).
    pub value: String,
    pub message: String,
    /// 1-based line and column, where the parser gives one.
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for Problem {
    /// `file:line:col: field = value: message [code]`, omitting what is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
            if !self.value.is_empty() {
                write!(f, " = {:?}", self.value)?;
            }
        }
        write!(f, ": {} [{}]", self.message, self.code)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{} problem(s) in {}", problems.len(), file.display())]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl Coded for ManifestError {
    fn code(&self) -> ErrorCode {
        match self {
            ManifestError::Read { .. } => ErrorCode::ConfigInvalid,
            ManifestError::Input(e) => e.code(),
            ManifestError::Invalid { problems, .. } => problems
                .first()
                .map(|p| p.code)
                .unwrap_or(ErrorCode::ConfigInvalid),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ManifestError::Input(e) => e.hint(),
            _ => None,
        }
    }
}

/// Loads, expands and validates a Fortress manifest and the bind sets it names.
pub fn load(path: &Path, ctx: &LoadContext) -> Result<Fortress, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::canonicalize(path).map_err(read_err)?;
    let text = crate::input::read_to_string(&file)?;
    let invalid = |problems| ManifestError::Invalid {
        file: file.clone(),
        problems,
    };
    let raw = parse_document::<raw::RawFortress>(&text, &file, "Fortress").map_err(invalid)?;
    validate::fortress(raw, &file, ctx).map_err(invalid)
}

/// Loads and validates one BindSet file on its own (no fortress): `root`, when given, replaces
/// the file's `root:`; binds exposing a denied path, a host system path, an engine socket or
/// `secrets_file` are problems.
pub fn load_bind_set(
    path: &Path,
    root: Option<&Path>,
    secrets_file: Option<&Path>,
    ctx: &LoadContext,
) -> Result<BindSet, ManifestError> {
    let file = std::fs::canonicalize(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    validate::bind_set_alone(&file, root, secrets_file, ctx).map_err(|problems| {
        ManifestError::Invalid {
            file: file.clone(),
            problems,
        }
    })
}

/// Parses one YAML document of the expected `kind`; parse errors become [`Problem`]s with the
/// parser's line:column and, where its message carries one, the field path.
pub(crate) fn parse_document<T: DeserializeOwned>(
    text: &str,
    file: &Path,
    kind: &str,
) -> Result<T, Vec<Problem>> {
    if let Err(out) = bounds::check(text, bounds::MAX_DEPTH, bounds::MAX_VALUES) {
        let message = match out {
            bounds::OutOfBounds::TooDeep { .. } => format!(
                "nested more than {} levels deep; a {kind} needs far fewer",
                bounds::MAX_DEPTH
            ),
            bounds::OutOfBounds::TooMany { .. } => format!(
                "more than {} values in one document; a {kind} needs far fewer",
                bounds::MAX_VALUES
            ),
        };
        return Err(vec![Problem {
            code: ErrorCode::ConfigInvalid,
            file: file.to_path_buf(),
            field: String::new(),
            value: String::new(),
            message,
            location: Some(out.location()),
        }]);
    }
    // The header first: a file of the wrong kind would otherwise surface as a confusing
    // "unknown field" about its first kind-specific key.
    let header: raw::RawHeader =
        serde_norway::from_str(text).map_err(|e| vec![yaml_problem(&e, file)])?;
    let mut problems = Vec::new();
    let mut header_problem = |field: &str, value: Option<String>, want: &str| {
        problems.push(Problem {
            code: ErrorCode::ConfigInvalid,
            file: file.to_path_buf(),
            field: field.to_string(),
            value: value.clone().unwrap_or_default(),
            message: match value {
                Some(_) => format!("must be `{want}`"),
                None => format!("missing; write `{field}: {want}`"),
            },
            location: None,
        })
    };
    if header.api_version.as_deref() != Some(API_VERSION) {
        header_problem("apiVersion", header.api_version.clone(), API_VERSION);
    }
    if header.kind.as_deref() != Some(kind) {
        header_problem("kind", header.kind.clone(), kind);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_norway::from_str(text).map_err(|e| vec![yaml_problem(&e, file)])
}

/// Turns a serde_norway error into a problem. Its messages read
/// `<path>: <message> at line L column C`, where `<path>` is absent at the root.
fn yaml_problem(err: &serde_norway::Error, file: &Path) -> Problem {
    let location = err.location().map(|l| (l.line(), l.column()));
    let mut text = err.to_string();
    if location.is_some() {
        if let Some(at) = text.find(" at line ") {
            text.truncate(at);
        }
    }
    let (mut field, message) = match text.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
            (path.to_string(), rest.to_string())
        }
        _ => (String::new(), text.clone()),
    };
    let mut value = String::new();
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        value = name.to_string();
        field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
    }
    Problem {
        code: ErrorCode::ConfigInvalid,
        file: file.to_path_buf(),
        field,
        value,
        message,
        location,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod system_path_tests {
    use super::*;

    #[test]
    fn a_system_path_is_exposed_by_itself_what_is_beneath_and_what_is_above() {
        for (p, want) in [
            ("/", Some("/")),
            ("/etc", Some("/etc")),
            ("/etc/ssl", Some("/etc")),
            ("/var", Some("/var/run")),
            ("/var/lib/docker/volumes/x", Some("/var/lib/docker")),
            ("/home/u/.openclaw/workspace", None),
            ("/tmp/x", None),
            ("/var/tmp", None),
        ] {
            assert_eq!(exposed_system_path(Path::new(p)), want, "{p}");
        }
    }
}
