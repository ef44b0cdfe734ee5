//! Checks of the product's own files: the manifest, the secrets file, the state database, the
//! backup destinations and source databases.
//!
//! The access checks try what the agent will do rather than judge mode bits (which say nothing
//! of capabilities, read-only mounts or a unit's sandbox): `secrets.file` reads the file,
//! `backup.dest` creates and removes an empty file where a backup would write, and
//! `backup.sources` opens each database the way a snapshot does (read-only, which for a WAL
//! database creates its `-wal`/`-shm` beside it if no writer has: the one trace they leave).
//! They are also what `doctor --access-only` runs under a unit's restrictions (`unit_access`).

use std::path::Path;

use super::Check;
use crate::error::{Coded, ErrorCode};
use crate::manifest::{Fortress, ManifestError};
use crate::state::State;

pub fn manifest_valid(path: &Path, m: Result<&Fortress, &ManifestError>) -> Check {
    const ID: &str = "manifest.valid";
    match m {
        Ok(f) => Check::pass(
            ID,
            format!(
                "{} is valid: fortress {}, {} sandbox(es), {} adopt selector(s)",
                f.file.display(),
                f.name,
                f.sandboxes.len(),
                f.adopt.len()
            ),
        )
        .with_evidence(f.warnings.clone()),
        Err(e) => {
            let mut evidence = Vec::new();
            if let ManifestError::Invalid { problems, .. } = e {
                evidence = problems
                    .iter()
                    .map(|p| {
                        format!(
                            "[{}] {}: {} = {:?}: {}",
                            p.code,
                            p.file.display(),
                            p.field,
                            p.value,
                            p.message
                        )
                    })
                    .collect();
            }
            Check::fail(
                ID,
                e.code(),
                format!("{}: {}", path.display(), crate::report::chain(e)),
                e.hint().unwrap_or_else(|| {
                    "run `clw-fortress validate` for every problem with its field".into()
                }),
            )
            .with_evidence(evidence)
        }
    }
}

pub fn secrets_file(f: Option<&Fortress>, uid: u32) -> Check {
    const ID: &str = "secrets.file";
    let Some(f) = f else {
        return Check::skip(ID, "no valid manifest: the secrets file is unknown");
    };
    let Some(path) = &f.secrets_file else {
        return Check::skip(ID, "the manifest declares no secrets file");
    };
    let evidence = vec![describe_modes(path)];
    let uid = f.secrets_uid(uid);
    // Read it as `exec` and `verify` do (the values are dropped at once).
    match crate::secrets::check_file(path, uid).and_then(|()| crate::secrets::read(path, uid)) {
        Ok(values) => Check::pass(
            ID,
            format!(
                "{} reads ({} value(s)): a 0600-or-stricter file owned by uid {uid} in a 0700-or-stricter directory",
                path.display(),
                values.len()
            ),
        )
        .with_evidence(evidence),
        Err(e) => Check::fail(
            ID,
            e.code(),
            e.to_string(),
            e.hint()
                .unwrap_or_else(|| format!("create {} with mode 0600", path.display())),
        )
        .with_evidence(evidence),
    }
}

fn describe_modes(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => format!(
            "{} uid {} mode {:04o}",
            p.display(),
            m.uid(),
            m.mode() & 0o7777
        ),
        Err(e) => format!("{}: {e}", p.display()),
    };
    match path.parent() {
        Some(dir) => format!("{}; {}", one(path), one(dir)),
        None => one(path),
    }
}

pub fn state_integrity(f: Option<&Fortress>) -> Check {
    const ID: &str = "state.integrity";
    let Some(f) = f else {
        return Check::skip(ID, "no valid manifest: the state database is unknown");
    };
    let path = &f.state_path;
    if !path.exists() {
        // Opening would create it; doctor changes nothing.
        return Check::skip(
            ID,
            format!(
                "{} does not exist yet (the first apply creates it)",
                path.display()
            ),
        );
    }
    let result = State::open(path).and_then(|s| {
        s.check_integrity()?;
        s.schema_version()
    });
    match result {
        Ok(v) => Check::pass(
            ID,
            format!("{} passes PRAGMA integrity_check", path.display()),
        )
        .with_evidence(vec![format!("schema version {v}")]),
        Err(e) => Check::fail(
            ID,
            ErrorCode::StateCorrupt,
            crate::report::chain(&e),
            // The file exists, so "cannot open" means damaged or unreadable, not misplaced.
            format!(
                "check that {p} is readable by this user; if it is damaged, move {p} aside and a fresh one is created (the history in it is lost)",
                p = path.display()
            ),
        ),
    }
}

/// Every backup destination is a writable directory (or can be created) with at least
/// `min_free` bytes free.
pub fn backup_dest(f: Option<&Fortress>, min_free: u64) -> Check {
    const ID: &str = "backup.dest";
    let Some(f) = f else {
        return Check::skip(ID, "no valid manifest: the backup destinations are unknown");
    };
    if f.backups.is_empty() {
        return Check::skip(ID, "the manifest declares no backups");
    }
    let mut evidence = Vec::new();
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    for b in &f.backups {
        let dest = &b.dest;
        // A missing destination is created by the first backup: judge its nearest existing
        // ancestor.
        let existing = dest
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        if !existing.is_dir() {
            problems.push(format!(
                "{}: {} is not a directory",
                b.name,
                existing.display()
            ));
            hints.push(format!(
                "point backups[{}].dest at a directory, not {}",
                b.name,
                existing.display()
            ));
            continue;
        }
        if let Err(e) = try_write(existing) {
            problems.push(format!(
                "{}: cannot create a file in {} ({e})",
                b.name,
                existing.display()
            ));
            hints.push(format!(
                "make {} writable by the agent (as root under its unit: `ReadWritePaths=` and CAP_DAC_OVERRIDE), or choose another dest",
                existing.display()
            ));
            continue;
        }
        match nix::sys::statvfs::statvfs(existing) {
            Ok(s) => {
                // The field types differ between targets (u32 on some 32-bit libcs).
                #[allow(clippy::unnecessary_cast)]
                let free = s.blocks_available() as u64 * s.fragment_size() as u64;
                evidence.push(format!(
                    "{}: {} ({}), {} MiB free",
                    b.name,
                    dest.display(),
                    if dest.exists() {
                        "exists".to_string()
                    } else {
                        format!("created under {}", existing.display())
                    },
                    free >> 20
                ));
                if free < min_free {
                    problems.push(format!(
                        "{}: only {} MiB free at {} (need {} MiB)",
                        b.name,
                        free >> 20,
                        existing.display(),
                        min_free >> 20
                    ));
                    hints.push(format!(
                        "free space on the filesystem of {} or lower keep.* for {}",
                        existing.display(),
                        b.name
                    ));
                }
            }
            Err(e) => {
                problems.push(format!("{}: statvfs {}: {e}", b.name, existing.display()));
                hints.push("check the destination's filesystem".into());
            }
        }
    }
    if problems.is_empty() {
        Check::pass(
            ID,
            format!(
                "{} destination(s) writable with at least {} MiB free",
                f.backups.len(),
                min_free >> 20
            ),
        )
        .with_evidence(evidence)
    } else {
        Check::fail(
            ID,
            ErrorCode::BackupFailed,
            problems.join("; "),
            hints.join("; "),
        )
        .with_evidence(evidence)
    }
}

/// Creates and removes an empty file in `dir`, as a backup's temporary file would be: through
/// the directory's descriptor, refusing a symlink a user planted on the way as a backup does.
fn try_write(dir: &Path) -> Result<(), String> {
    use crate::backup::confine::{self, Dir, Missing};
    let name = format!(".clw-doctor-{}", std::process::id());
    let d =
        Dir::open(dir, Missing::Fail, confine::strict()).map_err(|e| crate::report::chain(&e))?;
    drop(
        d.create_file(&name, None)
            .map_err(|e| crate::report::chain(&e))?,
    );
    d.unlink(std::ffi::OsStr::new(&name))
        .map_err(|e| crate::report::chain(&e))
}

/// `backup.sources`: every database the backups cover opens the way a snapshot reads it.
pub fn backup_sources(f: Option<&Fortress>) -> Check {
    const ID: &str = "backup.sources";
    let Some(f) = f else {
        return Check::skip(ID, "no valid manifest: the backup sources are unknown");
    };
    if f.backups.is_empty() {
        return Check::skip(ID, "the manifest declares no backups");
    }
    let mut opened = Vec::new();
    let mut failed = Vec::new();
    let mut unmatched = Vec::new();
    for b in &f.backups {
        let strict = crate::backup::confine::strict();
        let staging = std::env::temp_dir();
        let access = crate::backup::snapshot::Access {
            owner: None,
            read_as: crate::backup::file_owner(f).filter(|_| strict),
            nofollow: strict,
            staging: &staging,
        };
        for m in crate::backup::sources::expand(&b.sources, strict) {
            match m {
                crate::backup::sources::Matched::Symlinked { path } => failed.push(format!(
                    "{}: {}",
                    b.name,
                    crate::report::chain(&crate::backup::BackupError::Symlink { path })
                )),
                crate::backup::sources::Matched::File(path) => {
                    match crate::backup::snapshot::open_source(
                        &path,
                        std::time::Duration::from_secs(2),
                        access,
                    ) {
                        Ok(_) => opened.push(format!("{}: {} opens", b.name, path.display())),
                        Err(e) => failed.push(format!("{}: {}", b.name, crate::report::chain(&e))),
                    }
                }
                crate::backup::sources::Matched::Nothing { pattern } => {
                    unmatched.push(format!("{}: {pattern} matches no file", b.name))
                }
                crate::backup::sources::Matched::BadPattern { pattern, reason } => {
                    failed.push(format!("{}: {pattern}: {reason}", b.name))
                }
            }
        }
    }
    let evidence: Vec<String> = opened.iter().chain(&unmatched).cloned().collect();
    if !failed.is_empty() {
        return Check::fail(
            ID,
            ErrorCode::BackupFailed,
            failed.join("; "),
            "the agent must read each database and, for a WAL database, write its -shm beside it: as root under its unit that takes write access to the directory (`ReadWritePaths=`) and CAP_DAC_OVERRIDE, and CAP_CHOWN so SQLite gives the -shm it creates to the database's owner",
        )
        .with_evidence(evidence);
    }
    if !unmatched.is_empty() {
        return Check::warn(
            ID,
            format!(
                "{} database(s) open; {}",
                opened.len(),
                unmatched.join("; ")
            ),
            "a backup of a glob that matches nothing fails: fix the glob, or ignore this until the application has created its database",
        )
        .with_evidence(evidence);
    }
    Check::pass(
        ID,
        format!("{} database(s) open as a backup reads them", opened.len()),
    )
    .with_evidence(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Outcome;
    use crate::manifest::{Backup, Keep};
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn fortress(dir: &Path) -> Fortress {
        Fortress {
            file: dir.join("fortress.yaml"),
            state_path: dir.join("state.db"),
            ..Fortress::for_tests()
        }
    }

    fn backup(dest: PathBuf) -> Backup {
        Backup {
            name: "daily".into(),
            sources: vec![],
            dest,
            schedule: None,
            keep: Keep {
                last: 1,
                daily: 1,
                weekly: 1,
            },
        }
    }

    #[test]
    fn a_world_readable_secrets_file_fails_with_the_chmod_hint() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("s");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = dir.join("secrets.env");
        std::fs::write(&file, "K=v\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = fortress(d.path());
        f.secrets_file = Some(file.clone());
        let uid = nix::unistd::getuid().as_raw();
        let c = secrets_file(Some(&f), uid);
        assert_eq!((c.id, c.outcome), ("secrets.file", Outcome::Fail));
        assert_eq!(c.code, Some(ErrorCode::SecretsInsecure));
        assert_eq!(c.hint, Some(format!("chmod 600 {}", file.display())));
        assert!(c.evidence[0].contains("mode 0644"), "{:?}", c.evidence);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(secrets_file(Some(&f), uid).outcome, Outcome::Pass);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = secrets_file(Some(&f), uid);
        assert_eq!(c.hint, Some(format!("chmod 700 {}", dir.display())));
    }

    #[test]
    fn a_corrupt_state_database_fails_state_integrity() {
        let d = tempfile::tempdir().unwrap();
        let f = fortress(d.path());
        assert_eq!(state_integrity(Some(&f)).outcome, Outcome::Skip);
        std::fs::write(
            &f.state_path,
            b"this is not a sqlite database, not at all....",
        )
        .unwrap();
        let c = state_integrity(Some(&f));
        assert_eq!((c.id, c.outcome), ("state.integrity", Outcome::Fail));
        assert_eq!(c.code, Some(ErrorCode::StateCorrupt));
        assert!(c.hint.as_deref().unwrap().contains("move"), "{c:?}");
    }

    #[test]
    fn a_healthy_state_database_passes() {
        let d = tempfile::tempdir().unwrap();
        let f = fortress(d.path());
        drop(State::open(&f.state_path).unwrap());
        assert_eq!(state_integrity(Some(&f)).outcome, Outcome::Pass);
    }

    #[test]
    fn a_backup_dest_under_a_regular_file_fails() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("file"), "").unwrap();
        let mut f = fortress(d.path());
        f.backups = vec![backup(d.path().join("file/backups"))];
        let c = backup_dest(Some(&f), 0);
        assert_eq!((c.id, c.outcome), ("backup.dest", Outcome::Fail));
        assert!(
            c.hint.as_deref().unwrap().contains("at a directory"),
            "{c:?}"
        );
    }

    #[test]
    fn a_backup_dest_without_enough_free_space_fails() {
        let d = tempfile::tempdir().unwrap();
        let mut f = fortress(d.path());
        f.backups = vec![backup(d.path().join("backups"))];
        assert_eq!(backup_dest(Some(&f), 1).outcome, Outcome::Pass);
        let c = backup_dest(Some(&f), u64::MAX);
        assert_eq!((c.id, c.outcome), ("backup.dest", Outcome::Fail));
        assert!(c.hint.as_deref().unwrap().contains("free space"), "{c:?}");
    }

    #[test]
    fn an_invalid_manifest_fails_manifest_valid_with_the_validate_hint() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("fortress.yaml");
        std::fs::write(&path, "apiVersion: nope\n").unwrap();
        let err = crate::manifest::load(&path, &crate::manifest::LoadContext::from_process())
            .unwrap_err();
        let c = manifest_valid(&path, Err(&err));
        assert_eq!((c.id, c.outcome), ("manifest.valid", Outcome::Fail));
        assert_eq!(c.code, Some(ErrorCode::ConfigInvalid));
        assert!(c.hint.is_some());
    }

    #[test]
    fn backup_sources_open_wal_databases_and_name_what_does_not_open() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("a.sqlite");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
            .unwrap();
        drop(c);
        std::fs::write(d.path().join("b.sqlite"), vec![b'z'; 4096]).unwrap();
        let mut f = fortress(d.path());
        let mut b = backup(d.path().join("dest"));
        b.sources = vec![format!("{}/a.sqlite", d.path().display())];
        f.backups = vec![b.clone()];
        let c = backup_sources(Some(&f));
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        b.sources
            .push(format!("{}/nothing/*.db", d.path().display()));
        f.backups = vec![b.clone()];
        assert_eq!(backup_sources(Some(&f)).outcome, Outcome::Warn);
        b.sources.push(format!("{}/b.sqlite", d.path().display()));
        f.backups = vec![b];
        let c = backup_sources(Some(&f));
        assert_eq!(
            (c.outcome, c.code),
            (Outcome::Fail, Some(ErrorCode::BackupFailed))
        );
        assert!(c.summary.contains("b.sqlite"), "{c:?}");
    }

    #[test]
    fn a_backup_dest_is_judged_by_writing_in_it_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut f = fortress(d.path());
        f.backups = vec![backup(d.path().join("new/backups"))];
        assert_eq!(backup_dest(Some(&f), 0).outcome, Outcome::Pass);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn checks_needing_the_manifest_skip_without_one() {
        for c in [
            secrets_file(None, 0),
            state_integrity(None),
            backup_dest(None, 0),
            backup_sources(None),
        ] {
            assert_eq!(c.outcome, Outcome::Skip, "{c:?}");
        }
    }
}
