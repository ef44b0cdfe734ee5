//! File operations in directories another user may control, for a backup run as root.
//!
//! A root agent backing up a user's databases into that user's home works in a tree where
//! every component below the home is the user's: the user can swap any of them for a symlink
//! at any moment, and a path-based `create`, `chown` or `rename` done by root would then land
//! wherever the link points (another user's home, the state directory, `/etc`). So:
//!
//! - [`Dir::open`] walks a directory path one component at a time with `openat`, and once the
//!   walk is below a directory that is not root's own (owned by root and writable by nobody
//!   else), it opens each component with `O_NOFOLLOW`: a symlink there is refused
//!   ([`BackupError::Symlink`]), never followed. Missing components are made with `mkdirat`
//!   and then opened with `O_NOFOLLOW` too, so a directory swapped in between is refused;
//!   only what this walk created is `fchown`ed, through its descriptor.
//! - Everything after that goes through the directory's descriptor: the temporary file
//!   (`openat` with `O_CREAT|O_EXCL|O_NOFOLLOW`, `fchown`/`fchmod` on its descriptor), the
//!   rename into place (`renameat2` from and to the same descriptor), `fsync`, retention's
//!   deletes (`unlinkat`, which removes a link itself, never its target) and the sweep of dead
//!   temporary files. Once a descriptor is open, renaming or replacing the path it was opened
//!   by changes nothing for it: that is what closes the race between a check and the use.
//! - SQLite cannot be given a descriptor: its unix VFS resolves every symlink of the path it is
//!   handed, `/proc/self/fd/N` included, back into a textual path before `open` (and with
//!   `SQLITE_OPEN_NOFOLLOW` it refuses such a path outright). So SQLite never opens a path in
//!   the user's tree as root: the snapshot is written in a private staging directory
//!   ([`Staging`]) and copied into the descriptor-created file. A source must be opened by
//!   SQLite where it is: a path through a symlink is refused (`SQLITE_OPEN_NOFOLLOW`, and
//!   `sources::expand` refuses a match whose real path differs), and when the process may
//!   (`CAP_SETUID`/`CAP_SETGID`), it is opened with the owner's filesystem identity
//!   ([`AsOwner`]), so whatever its path resolves to by the time SQLite opens it, root reads
//!   (and, for WAL, writes `-shm`) nothing the owner could not.
//!
//! Without root (`strict == false`) the user's own symlinks are followed as before: they are
//! the user's choice, and nothing is done with more rights than the user has.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::snapshot::FileOwner;
use super::BackupError;

/// Whether symlinks below a directory root does not own alone are refused: when this process
/// runs as root (a user's symlink could then send root's writes anywhere).
pub fn strict() -> bool {
    nix::unistd::geteuid().is_root()
}

/// An open directory, and the path it was reached by (for messages and catalogue rows only:
/// nothing is ever opened by that path again).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Every component down to here is root's alone: nobody else can swap any of them.
    trusted: bool,
    strict: bool,
}

/// What [`Dir::open`] does with a missing component.
#[derive(Debug, Clone, Copy)]
pub enum Missing {
    /// Fail with `NotFound`.
    Fail,
    /// Create it 0700, given to the owner (when there is one).
    Create(Option<FileOwner>),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> BackupError {
    let path = path.to_path_buf();
    move |e| BackupError::Io {
        op,
        path,
        source: std::io::Error::from(e),
    }
}

fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

/// Root's alone: owned by root and writable by nobody else.
fn root_only(st: &FileStat) -> bool {
    st.st_uid == 0 && st.st_mode & 0o022 == 0
}

/// How the walk opens each component: `O_PATH` needs only search permission, as a path lookup
/// does (a parent mode 0711 stays passable); the directory the caller gets is reopened
/// readable from it ([`Dir::reopen`]).
const WALK_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

impl Dir {
    /// Opens `path` (made absolute against the working directory) component by component,
    /// creating what is missing when asked. With `strict`, a symlink below the last
    /// directory that is root's alone is refused.
    pub fn open(path: &Path, missing: Missing, strict: bool) -> Result<Dir, BackupError> {
        let abs = std::path::absolute(path).map_err(|source| BackupError::Io {
            op: "resolve",
            path: path.to_path_buf(),
            source,
        })?;
        let root = nix::fcntl::open("/", WALK_FLAGS, Mode::empty()).map_err(io("open", &abs))?;
        let st = nix::sys::stat::fstat(&root).map_err(io("inspect", Path::new("/")))?;
        let mut dir = Dir {
            fd: root,
            path: PathBuf::from("/"),
            trusted: root_only(&st),
            strict,
        };
        for c in abs.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => dir = dir.step(name, missing)?,
                Component::ParentDir if !strict || dir.trusted => {
                    dir = dir.step(OsStr::new(".."), Missing::Fail)?
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(BackupError::Io {
                        op: "walk (a `..` component in a directory a user controls)",
                        path: abs.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                    })
                }
            }
        }
        dir.reopen()
    }

    /// The directory `name` inside this one (see [`Dir::open`]).
    pub fn child(&self, name: &OsStr, missing: Missing) -> Result<Dir, BackupError> {
        self.step(name, missing)?.reopen()
    }

    /// The same directory, opened readable (for `fchmod`, `fsync`, listing) from the walk's
    /// `O_PATH` descriptor: `.` names the directory itself, whatever its path has become.
    fn reopen(self) -> Result<Dir, BackupError> {
        let fd = nix::fcntl::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(io("open directory", &self.path))?;
        Ok(Dir { fd, ..self })
    }

    /// One component of the walk.
    fn step(&self, name: &OsStr, missing: Missing) -> Result<Dir, BackupError> {
        let path = self.path.join(name);
        let follow = !self.strict || self.trusted;
        let flags = if follow {
            WALK_FLAGS
        } else {
            WALK_FLAGS | OFlag::O_NOFOLLOW
        };
        let fd = match nix::fcntl::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => match missing {
                Missing::Fail => return Err(io("open directory", &path)(Errno::ENOENT)),
                Missing::Create(owner) => self.create_child(name, &path, owner)?,
            },
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                return Err(self.refusal(name, &path, "open directory", e))
            }
            Err(e) => return Err(io("open directory", &path)(e)),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(io("inspect", &path))?;
        Ok(Dir {
            fd,
            trusted: self.trusted && root_only(&st),
            path,
            strict: self.strict,
        })
    }

    /// `mkdirat` then an `O_NOFOLLOW` open: what is opened is what was just made, or the walk
    /// stops. Only a directory this call made is chmod-ed and given to the owner.
    fn create_child(
        &self,
        name: &OsStr,
        path: &Path,
        owner: Option<FileOwner>,
    ) -> Result<OwnedFd, BackupError> {
        let made = match nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => true,
            // A concurrent run made it a moment ago: not ours to chown.
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(io("create directory", path)(e)),
        };
        let fd = nix::fcntl::openat(&self.fd, name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(|e| self.refusal(name, path, "open directory", e))?;
        if made {
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700))
                .map_err(io("chmod 0700", path))?;
            if let Some(o) = owner {
                o.apply_fd(fd.as_fd(), path)?;
            }
        }
        Ok(fd)
    }

    /// The error for an `openat` that failed on `name`: a symlink found there is named as such.
    fn refusal(&self, name: &OsStr, path: &Path, op: &'static str, e: Errno) -> BackupError {
        match self.lstat(name) {
            Ok(Some(st)) if is_symlink(&st) => BackupError::Symlink {
                path: path.to_path_buf(),
            },
            _ => io(op, path)(e),
        }
    }

    /// `lstat` of an entry; `None` when there is none.
    pub fn lstat(&self, name: &OsStr) -> Result<Option<FileStat>, BackupError> {
        match nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(io("inspect", &self.path.join(name))(e)),
        }
    }

    /// Whether `name` is a symlink (and not anything else, or nothing).
    pub fn is_symlink(&self, name: &OsStr) -> Result<bool, BackupError> {
        Ok(self.lstat(name)?.is_some_and(|st| is_symlink(&st)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Tightens a directory group or others can use to 0700 (snapshots hold the agent's
    /// memory), through its descriptor; refused only when that fails.
    pub fn make_private(&self) -> Result<(), BackupError> {
        let st = nix::sys::stat::fstat(&self.fd).map_err(io("inspect", &self.path))?;
        let mode = st.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            nix::sys::stat::fchmod(&self.fd, Mode::from_bits_truncate(0o700)).map_err(|e| {
                BackupError::DestInsecure {
                    path: self.path.clone(),
                    mode,
                    source: std::io::Error::from(e),
                }
            })?;
            tracing::warn!(
                dir = %self.path.display(),
                "backup directory was mode {mode:04o}; tightened to 0700"
            );
        }
        Ok(())
    }

    /// A new file `name` (`O_CREAT|O_EXCL|O_NOFOLLOW`: never an existing file, never through a
    /// link), exactly 0600 whatever the umask, given to `owner` before anything is written.
    pub fn create_file(&self, name: &str, owner: Option<FileOwner>) -> Result<File, BackupError> {
        let path = self.path.join(name);
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.refusal(OsStr::new(name), &path, "create temporary file", e))?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
            .map_err(io("chmod 0600", &path))?;
        if let Some(o) = owner {
            o.apply_fd(fd.as_fd(), &path)?;
        }
        Ok(File::from(fd))
    }

    /// Opens an existing regular file for reading, refusing a symlink in its place.
    pub fn open_file(&self, name: &OsStr) -> Result<File, BackupError> {
        let path = self.path.join(name);
        let flags = if self.strict {
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW
        } else {
            OFlag::O_RDONLY | OFlag::O_CLOEXEC
        };
        nix::fcntl::openat(&self.fd, name, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| self.refusal(name, &path, "open", e))
    }

    /// `renameat2` within this directory; `replace == false` never replaces an existing entry
    /// (`RENAME_NOREPLACE`). A rename moves the entry itself, symlink or not.
    pub fn rename(&self, from: &OsStr, to: &OsStr, replace: bool) -> Result<(), Errno> {
        let flags = if replace {
            nix::fcntl::RenameFlags::empty()
        } else {
            nix::fcntl::RenameFlags::RENAME_NOREPLACE
        };
        nix::fcntl::renameat2(&self.fd, from, &self.fd, to, flags)
    }

    /// `unlinkat`: removes the entry (a symlink itself, never its target); a missing entry is
    /// not an error.
    pub fn unlink(&self, name: &OsStr) -> Result<(), BackupError> {
        match nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(io("delete", &self.path.join(name))(e)),
        }
    }

    /// fsync of the directory, so a rename or unlink in it survives a crash.
    pub fn sync(&self) -> Result<(), BackupError> {
        nix::unistd::fsync(&self.fd).map_err(io("fsync directory", &self.path))
    }

    /// The names in this directory, read through its descriptor (`/proc/self/fd/N` is the
    /// directory itself, whatever its path has become since it was opened).
    pub fn names(&self) -> Vec<std::ffi::OsString> {
        let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
        else {
            return Vec::new();
        };
        entries.flatten().map(|e| e.file_name()).collect()
    }
}

/// Splits a file path into its directory (opened with [`Dir::open`]) and its name.
pub fn split(path: &Path) -> Result<(&Path, &OsStr), BackupError> {
    let name = path
        .file_name()
        .filter(|n| n.as_bytes() != b"..")
        .ok_or_else(|| BackupError::Io {
            op: "use as a file name",
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    Ok((dir, name))
}

/// A private directory for SQLite's own files (see the module comment), removed with its
/// content on drop. Made with `mkdtemp` (an unpredictable name, created or failed, 0700) in
/// `parent`, which must be a directory other users cannot rename entries of. Staging
/// directories of runs that died (their pid is in the name) are removed first.
pub struct Staging {
    path: PathBuf,
}

const STAGE_PREFIX: &str = ".clw-stage-";

impl Staging {
    pub fn new(parent: &Path) -> Result<Staging, BackupError> {
        if !parent.exists() {
            std::fs::create_dir_all(parent).map_err(|source| BackupError::Io {
                op: "create directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        sweep_stale_staging(parent);
        let template = parent.join(format!("{STAGE_PREFIX}{}-XXXXXX", std::process::id()));
        let path =
            nix::unistd::mkdtemp(&template).map_err(io("create staging directory", parent))?;
        Ok(Staging { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes the staging directories in `parent` whose process no longer exists.
fn sweep_stale_staging(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name
            .to_string_lossy()
            .strip_prefix(STAGE_PREFIX)
            .map(str::to_owned)
        else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        let dead = pid.is_some_and(|pid| {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH)
        });
        if dead && e.file_type().is_ok_and(|t| t.is_dir()) {
            tracing::info!(dir = %e.path().display(), "removing a staging directory left by a run that died");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// This thread's filesystem identity switched to a user's (`setfsuid`/`setfsgid`, no
/// supplementary groups) until dropped: what it opens by path, it opens with that user's
/// rights. Both calls are per-thread on Linux, and a non-root fsuid also drops the
/// file-related capabilities (`CAP_DAC_OVERRIDE`, `CAP_CHOWN`, `CAP_FOWNER`, ...) from the
/// thread's effective set; going back to fsuid 0 raises them again from the permitted set.
pub struct AsOwner {
    groups: Vec<Gid>,
    uid: Uid,
    gid: Gid,
}

/// `setgroups` as the raw system call: the libc wrapper changes every thread of the process
/// (the daemon's other threads must keep theirs); the kernel call changes this one only.
fn set_thread_groups(groups: &[Gid]) -> Result<(), Errno> {
    let raw: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
    // SAFETY: a length and a pointer to that many gid_t, valid for the call.
    unsafe { syscalls::syscall!(syscalls::Sysno::setgroups, raw.len(), raw.as_ptr()) }
        .map(drop)
        .map_err(|e| Errno::from_raw(e.into_raw()))
}

impl AsOwner {
    /// [`AsOwner::enter`] when this process may change its file identity; `None` (and a debug
    /// line) when it may not: the caller then relies on its other checks.
    pub fn try_enter(owner: FileOwner) -> Option<AsOwner> {
        match AsOwner::enter(owner) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::debug!(
                    "reading sources with this process's own identity: {}",
                    crate::report::chain(&e)
                );
                None
            }
        }
    }

    pub fn enter(owner: FileOwner) -> Result<AsOwner, BackupError> {
        let fail = |e: Errno| BackupError::Io {
            op: "take on the owner's file identity",
            path: PathBuf::new(),
            source: std::io::Error::from(e),
        };
        let groups = nix::unistd::getgroups().map_err(fail)?;
        set_thread_groups(&[]).map_err(fail)?;
        let gid = nix::unistd::setfsgid(Gid::from_raw(owner.gid));
        let uid = nix::unistd::setfsuid(Uid::from_raw(owner.uid));
        let guard = AsOwner { groups, uid, gid };
        // setfsuid reports no error: an invalid id returns the current one unchanged.
        if nix::unistd::setfsuid(Uid::from_raw(u32::MAX)).as_raw() != owner.uid
            || nix::unistd::setfsgid(Gid::from_raw(u32::MAX)).as_raw() != owner.gid
        {
            return Err(fail(Errno::EPERM));
        }
        Ok(guard)
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        nix::unistd::setfsuid(self.uid);
        nix::unistd::setfsgid(self.gid);
        let _ = set_thread_groups(&self.groups);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_strict_walk_refuses_a_symlinked_component_and_a_loose_one_follows_it() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let through = t.path().join("link/sub");
        let err = Dir::open(&through, Missing::Create(None), true).unwrap_err();
        assert!(
            matches!(&err, BackupError::Symlink { path } if path == &t.path().join("link")),
            "{err:?}"
        );
        assert!(!t.path().join("real/sub").exists());
        let d = Dir::open(&through, Missing::Create(None), false).unwrap();
        assert!(t.path().join("real/sub").is_dir());
        assert_eq!(d.path(), through);
    }

    #[test]
    fn a_planted_symlink_at_the_temporary_name_is_refused_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        symlink(&victim, t.path().join("tmp.sqlite")).unwrap();
        let d = Dir::open(t.path(), Missing::Fail, true).unwrap();
        let err = d.create_file("tmp.sqlite", None).unwrap_err();
        assert!(matches!(err, BackupError::Symlink { .. }), "{err:?}");
        assert!(!victim.exists());
    }

    #[test]
    fn a_rename_and_an_unlink_act_on_the_directory_opened_not_on_its_path_now() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        let d = Dir::open(&t.path().join("a"), Missing::Fail, true).unwrap();
        drop(d.create_file("x", None).unwrap());
        // The directory is moved away and a symlink put in its place after it was opened.
        std::fs::rename(t.path().join("a"), t.path().join("moved")).unwrap();
        std::fs::create_dir(t.path().join("elsewhere")).unwrap();
        symlink(t.path().join("elsewhere"), t.path().join("a")).unwrap();
        d.rename(OsStr::new("x"), OsStr::new("y"), false).unwrap();
        assert!(t.path().join("moved/y").exists());
        d.unlink(OsStr::new("y")).unwrap();
        assert!(!t.path().join("moved/y").exists());
        assert_eq!(
            std::fs::read_dir(t.path().join("elsewhere"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_dotdot_in_a_strict_walk_below_a_user_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        assert!(Dir::open(&t.path().join("a/../a"), Missing::Fail, true).is_err());
        assert!(Dir::open(&t.path().join("a/../a"), Missing::Fail, false).is_ok());
    }

    #[test]
    fn with_the_owners_file_identity_a_root_only_file_cannot_be_read_and_afterwards_it_can() {
        if !nix::unistd::geteuid().is_root() {
            // Without CAP_SETGID/CAP_SETUID the switch is refused as a whole, and the thread
            // keeps its own identity (the CLI tests run as root, where it succeeds).
            assert!(AsOwner::try_enter(FileOwner {
                uid: 4242,
                gid: 4243
            })
            .is_none());
            assert_eq!(
                nix::unistd::setfsuid(Uid::from_raw(u32::MAX)),
                nix::unistd::geteuid()
            );
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let secret = t.path().join("secret");
        std::fs::write(&secret, b"root only").unwrap();
        // Readable by root's group: the thread's supplementary groups must be gone too.
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(
            t.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        // Another thread, started before (a thread inherits the identity of the one that
        // creates it), keeps root's identity meanwhile.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let other = secret.clone();
        let root_thread = std::thread::spawn(move || {
            wait.recv().unwrap();
            std::fs::read(other).is_ok()
        });
        let guard = AsOwner::enter(FileOwner {
            uid: 4242,
            gid: 4243,
        })
        .unwrap();
        let denied = std::fs::read(&secret).unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        go.send(()).unwrap();
        assert!(root_thread.join().unwrap());
        drop(guard);
        assert_eq!(std::fs::read(&secret).unwrap(), b"root only");
    }

    #[test]
    fn staging_of_a_dead_run_is_swept_and_the_own_one_removed_on_drop() {
        let t = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22 on Linux: this pid cannot exist.
        let dead = t.path().join(format!("{STAGE_PREFIX}99999999-abcdef"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("copy.sqlite"), b"x").unwrap();
        let s = Staging::new(t.path()).unwrap();
        assert!(!dead.exists());
        let mode = std::fs::metadata(s.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        let own = s.path().to_path_buf();
        drop(s);
        assert!(!own.exists());
    }
}
