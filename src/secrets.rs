//! The secrets file: its safety checks (manifest.md rule 5) and its `KEY=VALUE` parser.
//! Values are held as `SecretString` and never printed, logged or stored.
//!
//! Nothing here may put a secret value into an error, a `Debug` string or a log line: errors
//! name the file and a line number, never the line.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Coded, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read secrets file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets file {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("secrets file {path} is owned by uid {owner}, not by the running user (uid {uid})")]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("secrets file {path} has mode {mode:04o}; it must be 0600 or stricter")]
    FileTooOpen { path: PathBuf, mode: u32 },
    #[error("secrets directory {dir} has mode {mode:04o}; it must be 0700 or stricter")]
    DirTooOpen { dir: PathBuf, mode: u32 },
    /// Not a regular file of bounded size, or not text. Its messages name the path and an
    /// offset or a size, never content.
    #[error("cannot read secrets file: {}", crate::report::chain(.0))]
    Input(crate::input::InputError),
    #[error("secrets file {path} line {line} is not KEY=VALUE")]
    Malformed { path: PathBuf, line: usize },
}

impl Coded for SecretsError {
    fn code(&self) -> ErrorCode {
        match self {
            // A missing or unparsable file is a configuration mistake, not an exposure.
            SecretsError::Missing { .. }
            | SecretsError::Read { .. }
            | SecretsError::Malformed { .. } => ErrorCode::ConfigInvalid,
            SecretsError::Input(e) => e.code(),
            SecretsError::NotAFile { .. }
            | SecretsError::WrongOwner { .. }
            | SecretsError::FileTooOpen { .. }
            | SecretsError::DirTooOpen { .. } => ErrorCode::SecretsInsecure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SecretsError::FileTooOpen { path, .. } => Some(format!("chmod 600 {}", path.display())),
            SecretsError::DirTooOpen { dir, .. } => Some(format!("chmod 700 {}", dir.display())),
            SecretsError::WrongOwner { path, uid, .. } => {
                Some(format!("chown {uid} {}", path.display()))
            }
            SecretsError::Malformed { path, line } => Some(format!(
                "fix line {line} of {}: KEY=VALUE, `export KEY=VALUE` or a `#` comment",
                path.display()
            )),
            SecretsError::Input(e) => e.hint(),
            _ => None,
        }
    }
}

/// Secret values by name. `Debug` prints the names only.
#[derive(Default)]
pub struct SecretMap(BTreeMap<String, SecretString>);

impl SecretMap {
    /// A map of values found elsewhere (the OpenClaw inventory).
    pub fn from_map(map: BTreeMap<String, SecretString>) -> SecretMap {
        SecretMap(map)
    }

    /// This map with `other`'s entries added; a key already present keeps its value.
    pub fn merged(mut self, other: SecretMap) -> SecretMap {
        for (k, v) in other.0 {
            self.0.entry(k).or_insert(v);
        }
        self
    }

    /// The secret names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every `(name, value)` pair with the value exposed. This is the only place values leave
    /// the map in bulk: callers use them for comparison (is a plain `env` value a secret?) or
    /// to inject them into one exec, and must not print or store them.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose_secret()))
    }
}

impl fmt::Debug for SecretMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMap")
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Rule 5: the file is a regular file owned by `uid`, with no group or other permission bits,
/// in a directory with no group or other permission bits. Symlinks are followed: the checks
/// apply to the file that would really be read and to its real directory.
pub fn check_file(path: &Path, uid: u32) -> Result<(), SecretsError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SecretsError::Missing {
            path: path.to_path_buf(),
        },
        _ => SecretsError::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if !meta.is_file() {
        return Err(SecretsError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.uid() != uid {
        return Err(SecretsError::WrongOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::FileTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let real = std::fs::canonicalize(path).map_err(|source| SecretsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = real.parent().unwrap_or(Path::new("/"));
    let dir_meta = std::fs::metadata(dir).map_err(|source| SecretsError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let dir_mode = dir_meta.mode() & 0o7777;
    if dir_mode & 0o077 != 0 {
        return Err(SecretsError::DirTooOpen {
            dir: dir.to_path_buf(),
            mode: dir_mode,
        });
    }
    Ok(())
}

/// Checks the file (rule 5) and only then reads and parses it.
pub fn read(path: &Path, uid: u32) -> Result<SecretMap, SecretsError> {
    check_file(path, uid)?;
    let text = crate::input::read_to_string(path).map_err(SecretsError::Input)?;
    let parsed = parse(&text).map_err(|line| SecretsError::Malformed {
        path: path.to_path_buf(),
        line,
    });
    // `text` holds every value in the clear; do not let it outlive the parse longer than
    // needed (it is dropped here, the values live on only inside `SecretString`s).
    drop(text);
    parsed
}

/// Parses `KEY=VALUE` lines; on failure returns the 1-based number of the first bad line.
///
/// There is no `$VAR` substitution and no escape processing: API keys and passwords may contain
/// `$` or `\`, and the file is also read by systemd's `EnvironmentFile=`, which does not
/// substitute either. Quotes are stripped only when they enclose the whole value.
fn parse(text: &str) -> Result<SecretMap, usize> {
    let mut map = BTreeMap::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, value) = line.split_once('=').ok_or(line_no)?;
        let key = key.trim_end();
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(line_no);
        }
        let value = value.trim_start();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &value[1..];
                let inner = inner.strip_suffix(q).ok_or(line_no)?;
                if inner.contains(q) {
                    return Err(line_no);
                }
                inner
            }
            _ => value.trim_end(),
        };
        map.insert(key.to_string(), SecretString::from(value.to_string()));
    }
    Ok(SecretMap(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn values(map: &SecretMap) -> Vec<(String, String)> {
        map.values()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_parser_handles_comments_export_and_quotes() {
        let text = "# api keys\n\
                    \n\
                    ANTHROPIC_API_KEY=sk-ant-123\n\
                    export OPENAI_API_KEY = \"sk openai\"\n\
                    SINGLE='a \"b\" c'\n\
                    DOLLAR=pa$$w${ord}\n\
                    EMPTY=\n";
        let map = parse(text).unwrap();
        let want = [
            ("ANTHROPIC_API_KEY", "sk-ant-123"),
            ("DOLLAR", "pa$$w${ord}"),
            ("EMPTY", ""),
            ("OPENAI_API_KEY", "sk openai"),
            ("SINGLE", "a \"b\" c"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(values(&map), want);
    }

    #[test]
    fn malformed_lines_report_their_number_only() {
        let cases = [
            ("OK=1\nno equals sign here\n", 2),
            ("1BAD=x\n", 1),
            ("A=1\n\n# c\nB=\"unterminated\n", 4),
            ("=value\n", 1),
            ("A='x'y'\n", 1),
        ];
        for (text, line) in cases {
            assert_eq!(parse(text).map(|_| ()), Err(line), "{text:?}");
        }
    }

    #[test]
    fn debug_output_shows_names_but_never_values() {
        let map = parse("TOKEN=hunter2-very-secret\n").unwrap();
        let debug = format!("{map:?}");
        assert!(debug.contains("TOKEN"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    fn fixture(file_mode: u32, dir_mode: u32) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("secrets.env");
        std::fs::write(&file, "KEY=super-secret-value\nbroken line\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(file_mode)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        (tmp, file)
    }

    #[test]
    fn open_modes_are_insecure_and_hint_at_chmod() {
        let uid = nix::unistd::getuid().as_raw();
        let (_tmp, file) = fixture(0o644, 0o700);
        let err = check_file(&file, uid).unwrap_err();
        assert!(matches!(err, SecretsError::FileTooOpen { mode: 0o644, .. }));
        assert_eq!(err.code(), ErrorCode::SecretsInsecure);
        assert_eq!(err.hint(), Some(format!("chmod 600 {}", file.display())));

        let (_tmp, file) = fixture(0o600, 0o750);
        let err = check_file(&file, uid).unwrap_err();
        assert!(matches!(err, SecretsError::DirTooOpen { mode: 0o750, .. }));
        assert!(err.hint().unwrap().starts_with("chmod 700 "));

        let (_tmp, file) = fixture(0o400, 0o500);
        assert!(check_file(&file, uid).is_ok());
    }

    #[test]
    fn a_file_owned_by_someone_else_is_insecure() {
        let uid = nix::unistd::getuid().as_raw();
        let (_tmp, file) = fixture(0o600, 0o700);
        let err = check_file(&file, uid.wrapping_add(1)).unwrap_err();
        assert!(matches!(err, SecretsError::WrongOwner { .. }));
        assert_eq!(err.code(), ErrorCode::SecretsInsecure);
    }

    #[test]
    fn a_malformed_file_error_names_the_line_but_not_its_content() {
        let uid = nix::unistd::getuid().as_raw();
        let (_tmp, file) = fixture(0o600, 0o700);
        let err = read(&file, uid).unwrap_err();
        let shown = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
        assert!(shown.contains("line 2"), "{shown}");
        assert!(!shown.contains("broken"), "{shown}");
        assert!(!shown.contains("super-secret"), "{shown}");
    }
}
