//! Where the host's kernel interfaces are: `/proc`, `/sys`, `/run`, `/etc`. Every reader of
//! host state (doctor checks, limit diagnostics) takes a [`HostPaths`] instead of a literal
//! path, so tests can point it at a fixture tree in a temporary directory.
//!
//! This module only knows where things are; it must not read or decide anything.

use std::path::{Path, PathBuf};

/// The roots of the host interfaces the product reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// Usually `/proc`.
    pub proc: PathBuf,
    /// Usually `/sys`.
    pub sys: PathBuf,
    /// Usually `/run` (`/run/systemd/system` exists when systemd is PID 1).
    pub run: PathBuf,
    /// Usually `/etc` (unit files under `/etc/systemd/system`).
    pub etc: PathBuf,
    /// Usually `/usr/lib` (packaged unit files under `/usr/lib/systemd/system`).
    pub usr_lib: PathBuf,
    /// Usually `/dev` (the kernel log at `/dev/kmsg`).
    pub dev: PathBuf,
}

impl HostPaths {
    /// The paths of the machine this process runs on.
    pub fn real() -> HostPaths {
        HostPaths::under(Path::new("/"))
    }

    /// Every root below `root` (`<root>/proc`, `<root>/sys`, ...): a fixture tree.
    pub fn under(root: &Path) -> HostPaths {
        HostPaths {
            proc: root.join("proc"),
            sys: root.join("sys"),
            run: root.join("run"),
            etc: root.join("etc"),
            usr_lib: root.join("usr/lib"),
            dev: root.join("dev"),
        }
    }

    /// `<sys>/fs/cgroup`.
    pub fn cgroup_root(&self) -> PathBuf {
        self.sys.join("fs/cgroup")
    }

    /// `<dev>/kmsg`: the kernel log, one record per read.
    pub fn kmsg(&self) -> PathBuf {
        self.dev.join("kmsg")
    }

    /// `<proc>/sys/<dotted.name>` for a sysctl such as `kernel.seccomp.actions_avail`.
    pub fn sysctl(&self, dotted: &str) -> PathBuf {
        self.proc.join("sys").join(dotted.replace('.', "/"))
    }
}

/// The trimmed content of a small text file, `None` when it cannot be read.
pub fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names_map_to_proc_sys_paths() {
        let h = HostPaths::under(Path::new("/x"));
        assert_eq!(
            h.sysctl("kernel.apparmor_restrict_unprivileged_userns"),
            PathBuf::from("/x/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        );
        assert_eq!(h.cgroup_root(), PathBuf::from("/x/sys/fs/cgroup"));
        assert_eq!(HostPaths::real().proc, PathBuf::from("/proc"));
    }
}
