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
    /// A match whose path goes through a symlink, refused (`refuse_symlinks`): it is reported
    /// under the path the pattern matched, not where the link leads.
    Symlinked { path: PathBuf },
}

/// Expands every pattern; a file matched by several patterns appears once, in the position of
/// its first match.
///
/// `refuse_symlinks` (a run as root): a match whose real path is not the path matched (a
/// symlink in it, or a `..`) is refused rather than resolved. Under a user's home every
/// component is that user's to swap for a link, and root must not read (or, for WAL, create
/// a `-shm` beside) a database the user pointed it at; the real path is what the catalogue
/// records, so declaring it loses nothing.
pub fn expand(patterns: &[String], refuse_symlinks: bool) -> Vec<Matched> {
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
            let declared = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            if refuse_symlinks && declared != real {
                if seen.insert(declared.clone()) {
                    out.push(Matched::Symlinked { path: declared });
                }
                continue;
            }
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
        let got = expand(
            &[
                format!("{r}/memory/*.sqlite*"),
                format!("{r}/matrix/**/*.db*"),
                format!("{r}/memory/main.sqlite"),
                format!("{r}/nowhere/*.db"),
                format!("{r}/memory/[.db"),
            ],
            false,
        );
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

    #[test]
    fn a_match_through_a_symlink_is_refused_when_asked_and_resolved_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("elsewhere")).unwrap();
        std::fs::write(root.join("elsewhere/other.sqlite"), b"x").unwrap();
        std::fs::create_dir(root.join("memory")).unwrap();
        // A link at the file, and a link at a directory above it.
        std::os::unix::fs::symlink(
            root.join("elsewhere/other.sqlite"),
            root.join("memory/main.sqlite"),
        )
        .unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("linked")).unwrap();
        let patterns = [
            format!("{}/memory/main.sqlite", root.display()),
            format!("{}/linked/*.sqlite", root.display()),
        ];
        assert_eq!(
            expand(&patterns, true),
            [
                Matched::Symlinked {
                    path: root.join("memory/main.sqlite")
                },
                Matched::Symlinked {
                    path: root.join("linked/other.sqlite")
                },
            ]
        );
        assert_eq!(
            expand(&patterns, false),
            [Matched::File(root.join("elsewhere/other.sqlite"))]
        );
    }
}
