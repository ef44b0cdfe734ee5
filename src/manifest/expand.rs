//! `~` and `${VAR}` expansion of manifest strings, against a [`LoadContext`] (never the
//! process environment directly, so tests stay hermetic).
//!
//! Only the braced form `${VAR}` expands; a bare `$` is literal, so a path or URL that
//! happens to contain `$` is not silently rewritten. An unset variable is an error rather than
//! an empty string: `${UNSET}/x` must not quietly become `/x`.

use std::path::{Component, Path, PathBuf};

use super::LoadContext;

/// Expands a leading `~` (alone or followed by `/`) and every `${VAR}`.
pub fn expand(input: &str, ctx: &LoadContext) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let rest = if input == "~" || input.starts_with("~/") {
        out.push_str(&ctx.home.to_string_lossy());
        &input[1..]
    } else {
        input
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '$' && rest[i + 1..].starts_with('{') {
            let body = &rest[i + 2..];
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{input}`"))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a variable name"));
            }
            let value = ctx
                .env
                .get(name)
                .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(value);
            // Skip `{`, the name and `}`.
            for _ in 0..end + 2 {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Expands a path and makes it absolute against `base`; rejects `..` components (rule 1)
/// and drops `.` and repeated separators.
pub fn expand_path(input: &str, base: &Path, ctx: &LoadContext) -> Result<PathBuf, String> {
    if input.trim().is_empty() {
        return Err("the path is empty".to_string());
    }
    let expanded = expand(input, ctx)?;
    let joined = base.join(&expanded);
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                return Err(format!(
                    "`{expanded}` contains `..`: write the path without parent components"
                ))
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if !out.is_absolute() {
        return Err(format!("`{expanded}` does not expand to an absolute path"));
    }
    Ok(out)
}

/// Expands a path to a file the manifest refers to (a bind set, a profile, the state
/// database), where `..` is ordinary (`bindSets: [../binds/openclaw.yaml]`) and is folded
/// lexically. Bind sources never come through here: they must not contain `..` at all.
pub fn expand_file_path(input: &str, base: &Path, ctx: &LoadContext) -> Result<PathBuf, String> {
    if input.trim().is_empty() {
        return Err("the path is empty".to_string());
    }
    let expanded = expand(input, ctx)?;
    let mut out = PathBuf::new();
    for component in base.join(&expanded).components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if !out.is_absolute() {
        return Err(format!("`{expanded}` does not expand to an absolute path"));
    }
    Ok(out)
}

/// The real path: symlinks resolved. A path that does not exist yet resolves through its
/// nearest existing ancestor with the missing tail appended, so a `create: true` source is
/// checked where it will really be created. The flag says whether the path itself exists.
pub fn real_path(path: &Path) -> (PathBuf, bool) {
    if let Ok(real) = std::fs::canonicalize(path) {
        return (real, true);
    }
    let mut tail = Vec::new();
    let mut cursor = path;
    while let Some(parent) = cursor.parent() {
        if let Some(name) = cursor.file_name() {
            tail.push(name.to_owned());
        }
        if let Ok(mut real) = std::fs::canonicalize(parent) {
            for name in tail.iter().rev() {
                real.push(name);
            }
            return (real, false);
        }
        cursor = parent;
    }
    (path.to_path_buf(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx() -> LoadContext {
        LoadContext {
            home: PathBuf::from("/home/alice"),
            env: BTreeMap::from([("DATA".to_string(), "/srv/data".to_string())]),
            uid: 1000,
            host_cpus: 4,
        }
    }

    #[test]
    fn tilde_and_braced_variables_expand() {
        let cases = [
            ("~", "/home/alice"),
            ("~/.openclaw", "/home/alice/.openclaw"),
            ("${DATA}/x", "/srv/data/x"),
            ("a$b", "a$b"),
            ("~user/x", "~user/x"),
            ("/p/~", "/p/~"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &ctx()).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn unset_or_malformed_variables_are_errors() {
        for bad in ["${NOPE}/x", "${DATA", "${}", "${A-B}"] {
            assert!(expand(bad, &ctx()).is_err(), "{bad}");
        }
    }

    #[test]
    fn parent_components_are_refused_and_relative_paths_join_the_base() {
        let base = Path::new("/base");
        assert_eq!(
            expand_path("a/./b//c", base, &ctx()),
            Ok(PathBuf::from("/base/a/b/c"))
        );
        assert_eq!(expand_path("/abs", base, &ctx()), Ok(PathBuf::from("/abs")));
        assert!(expand_path("~/x/../../etc", base, &ctx()).is_err());
        assert!(expand_path("", base, &ctx()).is_err());
        assert_eq!(
            expand_file_path("../binds/x.yaml", Path::new("/repo/manifests"), &ctx()),
            Ok(PathBuf::from("/repo/binds/x.yaml"))
        );
    }

    #[test]
    fn a_missing_path_resolves_through_its_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real_dir.join("real")).unwrap();
        std::os::unix::fs::symlink(real_dir.join("real"), real_dir.join("link")).unwrap();
        let (real, exists) = real_path(&dir.path().join("link/new/leaf"));
        assert_eq!(real, real_dir.join("real/new/leaf"));
        assert!(!exists);
        let (real, exists) = real_path(&dir.path().join("link"));
        assert_eq!(real, real_dir.join("real"));
        assert!(exists);
    }
}
