//! Bind sources are pinned: what validation checked is what the engine mounts.
//!
//! Validation resolves each bind source to its real path, but the engine resolves that path
//! again at create and at every start; a directory swapped for a symlink in between (by a
//! process that can write its parent) would mount whatever the symlink points to. So, right
//! before create, each source must still be its own real path (no symlink anywhere on it) and
//! its device and inode are taken; right after start, the object mounted at each target inside
//! the container (seen from the host through `/proc/<pid>/root`) must be that same device and
//! inode. A container whose mount differs is stopped, removed and reported as an isolation
//! breach, never left running.
//!
//! The comparison is pure over what the caller reads; the host's `/proc` comes in as a
//! parameter so tests can use a tempdir. [`recheck_started`] is the one re-check after a start,
//! whoever started the container: a heal restart, or a `start` the daemon sees (a plain
//! `docker start` included).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::engine::{BindMount, Engine, EngineResult};

/// One bind source as it was when pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub source: PathBuf,
    pub target: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

/// Pins every source: it must exist, be its own real path, and is identified by device and
/// inode. Returns what moved since validation, one sentence per source.
pub fn pin(binds: &[BindMount]) -> Result<Vec<Pinned>, Vec<String>> {
    let mut pinned = Vec::new();
    let mut problems = Vec::new();
    for b in binds {
        let source = PathBuf::from(&b.source);
        match std::fs::canonicalize(&source) {
            Ok(real) if real == source => match std::fs::metadata(&source) {
                Ok(m) => pinned.push(Pinned {
                    target: PathBuf::from(&b.target),
                    source,
                    dev: m.dev(),
                    ino: m.ino(),
                }),
                Err(e) => problems.push(format!("{}: {e}", source.display())),
            },
            Ok(real) => problems.push(format!(
                "{} now resolves to {}: something on the path was replaced by a symlink since \
                 validation",
                source.display(),
                real.display()
            )),
            Err(e) => problems.push(format!("{}: {e}", source.display())),
        }
    }
    if problems.is_empty() {
        Ok(pinned)
    } else {
        Err(problems)
    }
}

/// What a started container really mounted, compared with the pins: one sentence per bind
/// whose mounted object is not the pinned one. `proc` is the host's `/proc`; a target that
/// cannot be looked at from the host (no permission to see the container's root) is reported
/// in the second list, not as a breach.
pub fn check_mounted(proc: &Path, pid: i64, pins: &[Pinned]) -> (Vec<String>, Vec<String>) {
    let root = proc.join(pid.to_string()).join("root");
    let mut breaches = Vec::new();
    let mut unknown = Vec::new();
    for p in pins {
        let inside = root.join(p.target.strip_prefix("/").unwrap_or(&p.target));
        match std::fs::metadata(&inside) {
            Ok(m) if (m.dev(), m.ino()) == (p.dev, p.ino) => {}
            Ok(m) => breaches.push(format!(
                "{} is mounted at {} as device {} inode {}, but {} was checked as device {} \
                 inode {}",
                p.source.display(),
                p.target.display(),
                m.dev(),
                m.ino(),
                p.source.display(),
                p.dev,
                p.ino
            )),
            Err(e) => unknown.push(format!("{}: {e}", p.target.display())),
        }
    }
    (breaches, unknown)
}

/// After a restart: every bind mount of the container (`mounts` as the engine lists them,
/// crate::engine::security::SecurityView) must still be its own real path on the host, and the
/// object mounted must be that path's. One sentence per bind that is not.
pub fn check_restarted(
    proc: &Path,
    pid: i64,
    mounts: &std::collections::BTreeSet<(String, String, bool)>,
) -> Vec<String> {
    let binds: Vec<BindMount> = mounts
        .iter()
        .map(|(source, target, read_only)| BindMount {
            source: source.clone(),
            target: target.clone(),
            read_only: *read_only,
        })
        .collect();
    let pins = match pin(&binds) {
        Ok(p) => p,
        Err(problems) => return problems,
    };
    if pid <= 0 {
        return Vec::new();
    }
    check_mounted(proc, pid, &pins).0
}

/// What the re-check of a started container found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// No such container (any more).
    Gone,
    /// Not running: nothing is mounted now; its next start is checked again.
    NotRunning,
    /// Every bind mount is the pinned object.
    Pinned,
    /// One sentence per bind whose source is not what the container was created with.
    Breached(Vec<String>),
}

/// Inspects `container` and, when it runs, re-checks every bind mount it has
/// ([`check_restarted`] over the engine's mount list, `proc` being the host's `/proc`). The
/// caller decides what to do about a breach (stop it, and report `clw-isolation-breach`).
pub async fn recheck_started<E: Engine>(
    engine: &E,
    container: &str,
    proc: &Path,
) -> EngineResult<Recheck> {
    let Some(c) = engine.inspect(container).await? else {
        return Ok(Recheck::Gone);
    };
    if !c.is_running() {
        return Ok(Recheck::NotRunning);
    }
    let breaches = check_restarted(proc, c.state.pid.unwrap_or(0), &c.security.mounts);
    Ok(if breaches.is_empty() {
        Recheck::Pinned
    } else {
        Recheck::Breached(breaches)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &Path, target: &str) -> BindMount {
        BindMount {
            source: source.display().to_string(),
            target: target.into(),
            read_only: true,
        }
    }

    #[test]
    fn a_source_replaced_by_a_symlink_after_validation_is_not_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(d.join("ws")).unwrap();
        std::fs::create_dir(d.join("secrets")).unwrap();
        assert!(pin(&[bind(&d.join("ws"), "/ws")]).is_ok());
        std::fs::remove_dir(d.join("ws")).unwrap();
        std::os::unix::fs::symlink(d.join("secrets"), d.join("ws")).unwrap();
        let problems = pin(&[bind(&d.join("ws"), "/ws")]).unwrap_err();
        assert!(
            problems[0].contains("replaced by a symlink"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_mounted_object_must_be_the_pinned_one() {
        // A fake /proc whose <pid>/root is the host root: each target is then its own source.
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        let proc = d.join("proc");
        std::fs::create_dir_all(proc.join("7")).unwrap();
        std::os::unix::fs::symlink("/", proc.join("7/root")).unwrap();
        std::fs::create_dir(d.join("a")).unwrap();
        std::fs::create_dir(d.join("b")).unwrap();
        let a = d.join("a").display().to_string();
        let pins = pin(&[bind(&d.join("a"), &a)]).unwrap();
        assert_eq!(check_mounted(&proc, 7, &pins), (vec![], vec![]));
        // The engine mounted something else at that target.
        std::fs::rename(d.join("a"), d.join("a-old")).unwrap();
        std::fs::rename(d.join("b"), d.join("a")).unwrap();
        let (breaches, unknown) = check_mounted(&proc, 7, &pins);
        assert_eq!(breaches.len(), 1, "{breaches:?}");
        assert!(unknown.is_empty());
        // Nothing visible there: unknown, not a breach.
        let (breaches, unknown) = check_mounted(&proc, 8, &pins);
        assert!(breaches.is_empty() && unknown.len() == 1);
    }
}
