//! Which files a backup entry covers: its `sources` globs matched against the filesystem, and
//! the stable directory name (slug) each source's snapshots live under.
//!
//! It only reads directory listings; it never opens a database. `*` stays inside one path
//! component and `**` crosses directories (the `glob` crate's rules).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// SQLite's companion files. A glob like `memory/*` matches them too, but they are part of
/// their database, not databases of their own: snapshotting the database covers them.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// One glob's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    /// A regular file, symlinks resolved.
    File(PathBuf),
    /// The pattern is not a valid glob.
    BadPattern { pattern: String, reason: String },
    /// The pattern matched no database file.
    Nothing { pattern: String },
}

/// Expands every pattern; a file matched by several patterns appears once, in the position of
/// its first match.
pub fn expand(patterns: &[String]) -> Vec<Matched> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pattern in patterns {
        let paths = match glob::glob_with(pattern, options) {
            Ok(p) => p,
            Err(e) => {
                out.push(Matched::BadPattern {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let mut any = false;
        // Unreadable directories under `**` are skipped, like `find` does, rather than
        // failing the whole pattern.
        for path in paths.flatten() {
            if is_sidecar(&path) {
                continue;
            }
            let Ok(real) = std::fs::canonicalize(&path) else {
                continue;
            };
            if !real.is_file() {
                continue;
            }
            any = true;
            if seen.insert(real.clone()) {
                out.push(Matched::File(real));
            }
        }
        if !any {
            out.push(Matched::Nothing {
                pattern: pattern.clone(),
            });
        }
    }
    out
}

fn is_sidecar(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy());
    name.is_some_and(|n| SIDECARS.iter().any(|s| n.ends_with(s)))
}

/// The directory name of a source's snapshots: its file name (made filesystem-safe) plus a
/// short hash of its full path, so `a/main.sqlite` and `b/main.sqlite` never share a folder
/// and the name stays readable.
pub fn slug(source: &Path) -> String {
    let name: String = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let name = name.trim_start_matches('.');
    let hash = hex::encode(Sha256::digest(source.as_os_str().as_encoded_bytes()));
    if name.is_empty() {
        format!("db-{}", &hash[..8])
    } else {
        format!("{name}-{}", &hash[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_readable_safe_and_distinct_per_path() {
        let a = slug(Path::new("/home/a/.openclaw/memory/main.sqlite"));
        let b = slug(Path::new("/home/a/.openclaw/matrix/main.sqlite"));
        assert!(a.starts_with("main.sqlite-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, slug(Path::new("/home/a/.openclaw/memory/main.sqlite")));
        let odd = slug(Path::new("/x/we ird/..hidden db*.db"));
        assert!(odd.starts_with("hidden_db_.db-"), "{odd}");
        assert!(!odd.contains('/'));
    }

    #[test]
    fn globs_match_files_recursively_skip_sidecars_and_report_empty_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::create_dir_all(root.join("matrix/a/b")).unwrap();
        for f in [
            "memory/main.sqlite",
            "memory/main.sqlite-wal",
            "memory/main.sqlite-shm",
            "memory/notes.txt",
            "matrix/top.db",
            "matrix/a/b/deep.db",
            "matrix/a/b/deep.db-journal",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::fs::create_dir(root.join("memory/dir.sqlite")).unwrap();
        let r = root.display();
        let got = expand(&[
            format!("{r}/memory/*.sqlite*"),
            format!("{r}/matrix/**/*.db*"),
            format!("{r}/memory/main.sqlite"),
            format!("{r}/nowhere/*.db"),
            format!("{r}/memory/[.db"),
        ]);
        let real = std::fs::canonicalize(root).unwrap();
        assert_eq!(
            got[..4],
            [
                Matched::File(real.join("memory/main.sqlite")),
                Matched::File(real.join("matrix/a/b/deep.db")),
                Matched::File(real.join("matrix/top.db")),
                Matched::Nothing {
                    pattern: format!("{r}/nowhere/*.db")
                },
            ]
        );
        assert!(
            matches!(&got[4], Matched::BadPattern { pattern, reason }
                if pattern.ends_with("[.db") && !reason.is_empty()),
            "{:?}",
            got[4]
        );
        assert_eq!(got.len(), 5);
    }
}
