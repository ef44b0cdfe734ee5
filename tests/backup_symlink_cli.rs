//! A backup run as root for a user (`metadata.owner`) into that user's home, where the user
//! controls every path component: symlinks the user plants in the destination, above it, at
//! a name the run will use, in place of a source or of a restore target are refused, and the
//! directory they point at is left exactly as it was (no new file, no ownership change).
//!
//! Through the real binary, as root (as the test machines run), with a real user made by
//! `useradd`. No container engine is involved. The race (a component swapped after it was
//! checked) is closed by design rather than tested end to end here: after the walk, every
//! operation goes through a directory descriptor, which a later swap of the path does not
//! change (`backup::confine`'s unit tests swap a directory after it was opened and show the
//! rename and unlink still land in it), and SQLite only opens paths in a root-private staging
//! directory, or a source with the owner's own file identity.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use rusqlite::Connection;
use serde_json::Value;

use common::{bin, describe, system_user};

const OWNER: &str = "clw-bsafe-t";

/// The user whose home the backups go to, created once (idempotent).
fn owner() -> (u32, u32, PathBuf) {
    static ONCE: std::sync::OnceLock<(u32, u32, PathBuf)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| system_user(OWNER, "these tests reproduce a root agent"))
        .clone()
}

/// A directory in the owner's home (the user's tree), the owner's WAL database in it, a
/// root-owned directory elsewhere the user would like root to write into (the victim), and
/// a fortress whose manifest and state are root's. Removed when dropped.
struct Scene {
    uid: u32,
    gid: u32,
    user: PathBuf,
    victim: tempfile::TempDir,
    root: tempfile::TempDir,
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.user);
    }
}

impl Scene {
    fn new(tag: &str) -> Scene {
        let (uid, gid, home) = owner();
        let user = home.join(format!("clw-bsafe-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&user);
        fs::create_dir_all(user.join("src")).unwrap();
        let victim = tempfile::Builder::new()
            .prefix("clw-victim-")
            .tempdir()
            .unwrap();
        fs::write(victim.path().join("keep.txt"), b"root's").unwrap();
        let scene = Scene {
            uid,
            gid,
            user,
            victim,
            root: tempfile::Builder::new()
                .prefix("clw-bsafe-")
                .tempdir()
                .unwrap(),
        };
        let c = Connection::open(scene.src()).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        drop(c);
        scene.give_to_owner(&scene.user);
        scene
    }

    fn src(&self) -> PathBuf {
        self.user.join("src/main.sqlite")
    }

    /// chown -R to the owner (never following links), as if the user had made it all.
    fn give_to_owner(&self, p: &Path) {
        std::os::unix::fs::lchown(p, Some(self.uid), Some(self.gid)).unwrap();
        if p.symlink_metadata().unwrap().is_dir() {
            for e in fs::read_dir(p).unwrap().flatten() {
                self.give_to_owner(&e.path());
            }
        }
    }

    fn manifest(&self, dest: &Path) -> PathBuf {
        let path = self.root.path().join("fortress.yaml");
        fs::write(
            &path,
            format!(
                r#"apiVersion: clw-fortress/v1
kind: Fortress
metadata: {{name: bsafe, owner: {OWNER}}}
state: {{path: "{state}/state.db"}}
backups:
  - name: memory
    sources: ["{src}"]
    dest: "{dest}"
    keep: {{last: 7}}
"#,
                state = self.root.path().display(),
                src = self.src().display(),
                dest = dest.display(),
            ),
        )
        .unwrap();
        path
    }

    fn run(&self, dest: &Path, args: &[&str]) -> Output {
        bin()
            .env_remove("HOME")
            .arg("-f")
            .arg(self.manifest(dest))
            .args(args)
            .output()
            .unwrap()
    }

    /// `backup run -o json`, expecting `status`.
    fn backup(&self, dest: &Path, status: i32) -> Value {
        let out = self.run(dest, &["backup", "run", "-o", "json"]);
        assert_eq!(out.status.code(), Some(status), "{}", describe(&out));
        serde_json::from_slice(&out.stdout).expect("backup run prints JSON")
    }

    /// Every entry under the victim with its owner and mode: what must not change.
    fn victim_state(&self) -> Vec<(PathBuf, u32, u32, u32)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32, u32, u32)>) {
            let m = dir.symlink_metadata().unwrap();
            out.push((dir.to_path_buf(), m.uid(), m.gid(), m.mode()));
            if m.is_dir() {
                let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.victim.path(), &mut out);
        out
    }

    /// A refused run: exit 1, one failed row whose error names `link` as a symlink, and the
    /// victim exactly as before.
    fn assert_refused(&self, dest: &Path, link: &Path) {
        let before = self.victim_state();
        let r = self.backup(dest, 1);
        let rows = r["snapshots"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{r}");
        assert_eq!(rows[0]["status"], "failed", "{r}");
        let error = rows[0]["error"].as_str().unwrap();
        assert!(
            error.contains(&link.display().to_string()) && error.contains("symbolic link"),
            "the error names the link: {error}"
        );
        assert_eq!(self.victim_state(), before, "the victim directory changed");
    }
}

#[test]
fn a_destination_that_is_a_symlink_is_refused_and_its_target_untouched() {
    let s = Scene::new("dest");
    let dest = s.user.join("dest");
    symlink(s.victim.path(), &dest).unwrap();
    s.give_to_owner(&dest);
    s.assert_refused(&dest, &dest);
}

#[test]
fn a_symlinked_directory_above_the_destination_is_refused_and_its_target_untouched() {
    let s = Scene::new("parent");
    let link = s.user.join(".local");
    symlink(s.victim.path(), &link).unwrap();
    s.give_to_owner(&link);
    let dest = link.join("share/clw-fortress/backups");
    s.assert_refused(&dest, &link);
    assert!(!s.victim.path().join("share").exists());
}

#[test]
fn symlinks_planted_at_the_names_a_run_will_use_are_refused() {
    let s = Scene::new("planted");
    let dest = s.user.join("backups");
    // The entry's directory, then (once that is real) the source's directory inside it: both
    // names are known in advance.
    fs::create_dir(&dest).unwrap();
    let entry = dest.join("memory");
    symlink(s.victim.path(), &entry).unwrap();
    s.give_to_owner(&dest);
    s.assert_refused(&dest, &entry);

    fs::remove_file(&entry).unwrap();
    fs::create_dir(&entry).unwrap();
    s.give_to_owner(&entry);
    // The slug directory the first good run creates: learn its name, then replace it.
    let good = s.backup(&dest, 0);
    let snap = PathBuf::from(good["snapshots"][0]["path"].as_str().unwrap());
    let slug_dir = snap.parent().unwrap().to_path_buf();
    fs::remove_dir_all(&slug_dir).unwrap();
    symlink(s.victim.path(), &slug_dir).unwrap();
    s.give_to_owner(&slug_dir);
    s.assert_refused(&dest, &slug_dir);
}

#[test]
fn a_source_that_is_a_symlink_is_refused_and_not_read() {
    let s = Scene::new("source");
    // Root's own database elsewhere, which the user cannot read.
    let secret = s.victim.path().join("root.sqlite");
    Connection::open(&secret)
        .unwrap()
        .execute_batch("CREATE TABLE secret (x); INSERT INTO secret VALUES ('root only');")
        .unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(s.src()).unwrap();
    symlink(&secret, s.src()).unwrap();
    s.give_to_owner(&s.src());
    let dest = s.user.join("backups");
    let before = s.victim_state();
    let r = s.backup(&dest, 1);
    let error = r["snapshots"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&s.src().display().to_string()) && error.contains("symbolic link"),
        "{error}"
    );
    assert_eq!(s.victim_state(), before);
    // Nothing was snapshotted: no file under the destination.
    let files: Vec<_> = walkdir(&dest).into_iter().filter(|p| p.is_file()).collect();
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn a_normal_backup_belongs_to_the_owner_and_a_restore_target_symlink_is_refused() {
    let s = Scene::new("normal");
    let dest = s.user.join(".local/share/clw-fortress/backups");
    let r = s.backup(&dest, 0);
    let snap = PathBuf::from(r["snapshots"][0]["path"].as_str().unwrap());
    assert!(snap.starts_with(&dest), "{}", snap.display());
    // Everything the run created in the home is the owner's, and private.
    for p in walkdir(&s.user.join(".local")) {
        let m = p.symlink_metadata().unwrap();
        assert_eq!((m.uid(), m.gid()), (s.uid, s.gid), "{}", p.display());
        let expected = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(m.mode() & 0o777, expected, "{}", p.display());
    }
    // No staging or temporary file is left anywhere.
    let leftovers: Vec<_> = walkdir(s.root.path())
        .into_iter()
        .chain(walkdir(&dest))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(".clw-stage-") || n.starts_with(".clw-tmp-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A restore whose target the user replaced with a symlink to root's file, even forced.
    let id = r["snapshots"][0]["id"].as_i64().unwrap().to_string();
    let target = s.user.join("restored.sqlite");
    let root_file = s.victim.path().join("keep.txt");
    symlink(&root_file, &target).unwrap();
    s.give_to_owner(&target);
    let before = s.victim_state();
    let out = bin()
        .env_remove("HOME")
        .arg("-f")
        .arg(s.root.path().join("fortress.yaml"))
        .args(["backup", "restore", &id, "--force", "--to"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clw-backup-failed") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert_eq!(s.victim_state(), before);
    assert_eq!(fs::read(&root_file).unwrap(), b"root's");
    // A restore to a plain path in the home still works.
    let plain = s.user.join("plain.sqlite");
    let out = bin()
        .env_remove("HOME")
        .arg("-f")
        .arg(s.root.path().join("fortress.yaml"))
        .args(["backup", "restore", &id, "--to"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let n: i64 = Connection::open(&plain)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

/// Every path under `dir` (none when it does not exist), never following links.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.symlink_metadata().unwrap().is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}
