//! The file operations a harden or undo plan is made of, and the executor that performs them
//! all or none: every completed step is journalled with what undoes it, and a failure undoes
//! the journal in reverse.
//!
//! Owns only these few filesystem primitives. It must not decide what to change (the planner
//! does) and must never print file contents: the secrets file is one of them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One change to the filesystem. `Debug` prints [`Step::describe`]: contents are never shown
/// (the secrets files and the pre-harden copies are among them).
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// Create one directory (its parent exists by then) with `mode`.
    CreateDir { path: PathBuf, mode: u32 },
    /// Remove an empty directory; undone by creating it again with `mode`.
    RemoveDir { path: PathBuf, mode: u32 },
    /// Move a file, then give it `mode`. `mode_before` is restored when undone.
    Move {
        from: PathBuf,
        to: PathBuf,
        mode: u32,
        mode_before: u32,
    },
    /// Write `content` through a temporary in the same directory and a rename. `previous`
    /// (content and mode) is what the file held before, restored when undone.
    Write {
        path: PathBuf,
        content: Vec<u8>,
        mode: u32,
        previous: Option<(Vec<u8>, u32)>,
    },
    /// Change a file's or directory's mode; `mode_before` is restored when undone.
    Chmod {
        path: PathBuf,
        mode: u32,
        mode_before: u32,
    },
    /// Remove a file whose `content` and `mode` are known, so it can be put back.
    Remove {
        path: PathBuf,
        content: Vec<u8>,
        mode: u32,
    },
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Step {
    /// One line for the user; never the content.
    pub fn describe(&self) -> String {
        match self {
            Step::CreateDir { path, mode } => format!("create {} ({mode:04o})", path.display()),
            Step::RemoveDir { path, .. } => format!("remove empty {}", path.display()),
            Step::Move { from, to, mode, .. } => {
                format!("move {} -> {} ({mode:04o})", from.display(), to.display())
            }
            Step::Write {
                path,
                mode,
                previous,
                ..
            } => {
                let verb = if previous.is_some() {
                    "rewrite"
                } else {
                    "write"
                };
                format!("{verb} {} ({mode:04o})", path.display())
            }
            Step::Remove { path, .. } => format!("remove {}", path.display()),
            Step::Chmod { path, mode, .. } => format!("chmod {mode:04o} {}", path.display()),
        }
    }

    /// The step that reverses this one once it has completed.
    fn inverse(&self) -> Step {
        match self.clone() {
            Step::CreateDir { path, mode } => Step::RemoveDir { path, mode },
            Step::RemoveDir { path, mode } => Step::CreateDir { path, mode },
            Step::Move {
                from,
                to,
                mode,
                mode_before,
            } => Step::Move {
                from: to,
                to: from,
                mode: mode_before,
                mode_before: mode,
            },
            Step::Write {
                path,
                content,
                mode,
                previous: Some((old, old_mode)),
            } => Step::Write {
                path,
                content: old,
                mode: old_mode,
                previous: Some((content, mode)),
            },
            Step::Write {
                path,
                content,
                mode,
                previous: None,
            } => Step::Remove {
                path,
                content,
                mode,
            },
            Step::Remove {
                path,
                content,
                mode,
            } => Step::Write {
                path,
                content,
                mode,
                previous: None,
            },
            Step::Chmod {
                path,
                mode,
                mode_before,
            } => Step::Chmod {
                path,
                mode: mode_before,
                mode_before: mode,
            },
        }
    }

    fn run(&self) -> std::io::Result<()> {
        match self {
            Step::CreateDir { path, mode } => {
                fs::DirBuilder::new().mode(*mode).create(path)?;
                // The umask may have narrowed the mode; say it exactly.
                fs::set_permissions(path, fs::Permissions::from_mode(*mode))?;
                sync_parent(path)
            }
            Step::RemoveDir { path, .. } => {
                fs::remove_dir(path)?;
                sync_parent(path)
            }
            Step::Move { from, to, mode, .. } => move_file(from, to, *mode),
            Step::Write {
                path,
                content,
                mode,
                previous,
            } => {
                if previous.is_none() && fs::symlink_metadata(path).is_ok() {
                    // Planned as new: something appeared since; do not clobber it.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} appeared after planning", path.display()),
                    ));
                }
                write_atomic(path, content, *mode)
            }
            Step::Remove { path, .. } => {
                fs::remove_file(path)?;
                sync_parent(path)
            }
            Step::Chmod { path, mode, .. } => {
                fs::set_permissions(path, fs::Permissions::from_mode(*mode))
            }
        }
    }
}

/// A step that failed, and what rolling back the completed ones did.
#[derive(Debug)]
pub struct Failure {
    pub step: String,
    pub error: std::io::Error,
    /// Rollback steps that failed in turn (empty when everything was put back).
    pub rollback: Vec<(String, std::io::Error)>,
}

/// Runs `steps` in order; on the first failure undoes the completed ones in reverse.
pub fn execute(steps: &[Step]) -> Result<(), Failure> {
    let mut journal: Vec<Step> = Vec::new();
    for step in steps {
        if let Err(error) = step.run() {
            let mut rollback = Vec::new();
            for done in journal.iter().rev() {
                let undo = done.inverse();
                if let Err(e) = undo.run() {
                    rollback.push((undo.describe(), e));
                }
            }
            return Err(Failure {
                step: step.describe(),
                error,
                rollback,
            });
        }
        journal.push(step.clone());
    }
    Ok(())
}

/// fsync of a path's directory, so a rename or unlink survives a crash.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// A temporary name beside `path` that no other run uses.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.clw-tmp-{}", std::process::id()))
}

/// Writes `content` to a temporary in the same directory, fsyncs, sets `mode`, renames.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Moves a file: a rename on the same filesystem; otherwise copy to a temporary beside the
/// target, fsync, rename, and only then remove the source, so a crash leaves at least one
/// complete copy. Refuses to replace an existing target.
pub fn move_file(from: &Path, to: &Path, mode: u32) -> std::io::Result<()> {
    if fs::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", to.display()),
        ));
    }
    let same_fs = match (fs::metadata(from), to.parent().map(fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() == b.dev(),
        _ => false,
    };
    if same_fs {
        fs::rename(from, to)?;
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
        sync_parent(to)?;
        return sync_parent(from);
    }
    copy_then_remove(from, to, mode)
}

/// The cross-filesystem half of [`move_file`].
pub(super) fn copy_then_remove(from: &Path, to: &Path, mode: u32) -> std::io::Result<()> {
    let content = fs::read(from)?;
    write_atomic(to, &content, mode)?;
    if let Err(e) = fs::remove_file(from) {
        // Leave the source as the one copy rather than two.
        let _ = fs::remove_file(to);
        return Err(e);
    }
    sync_parent(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_failing_step_undoes_the_completed_ones_in_reverse() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("src"), b"data").unwrap();
        fs::set_permissions(d.join("src"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(d.join("blocker"), b"a file where a directory must go").unwrap();
        let steps = vec![
            Step::CreateDir {
                path: d.join("new"),
                mode: 0o700,
            },
            Step::Move {
                from: d.join("src"),
                to: d.join("new/dst"),
                mode: 0o600,
                mode_before: 0o644,
            },
            Step::Write {
                path: d.join("w"),
                content: b"w".to_vec(),
                mode: 0o644,
                previous: None,
            },
            Step::CreateDir {
                path: d.join("blocker/sub"),
                mode: 0o700,
            },
        ];
        let failure = execute(&steps).unwrap_err();
        assert!(failure.step.contains("blocker/sub"), "{}", failure.step);
        assert!(failure.rollback.is_empty(), "{:?}", failure.rollback);
        assert_eq!(fs::read(d.join("src")).unwrap(), b"data");
        assert_eq!(mode(&d.join("src")), 0o644);
        assert!(!d.join("new").exists());
        assert!(!d.join("w").exists());
    }

    #[test]
    fn the_copy_path_leaves_one_complete_file_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a"), b"secret-ish").unwrap();
        copy_then_remove(&d.join("a"), &d.join("b"), 0o600).unwrap();
        assert!(!d.join("a").exists());
        assert_eq!(fs::read(d.join("b")).unwrap(), b"secret-ish");
        assert_eq!(mode(&d.join("b")), 0o600);
    }

    #[test]
    fn a_move_never_replaces_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a"), b"1").unwrap();
        fs::write(d.join("b"), b"2").unwrap();
        assert!(move_file(&d.join("a"), &d.join("b"), 0o600).is_err());
        assert_eq!(fs::read(d.join("b")).unwrap(), b"2");
        assert_eq!(fs::read(d.join("a")).unwrap(), b"1");
    }

    #[test]
    fn every_step_has_an_inverse_that_restores_it() {
        let s = Step::Write {
            path: "/x".into(),
            content: b"new".to_vec(),
            mode: 0o600,
            previous: Some((b"old".to_vec(), 0o644)),
        };
        assert_eq!(s.inverse().inverse(), s);
        let m = Step::Move {
            from: "/a".into(),
            to: "/b".into(),
            mode: 0o600,
            mode_before: 0o644,
        };
        assert_eq!(m.inverse().inverse(), m);
    }
}
