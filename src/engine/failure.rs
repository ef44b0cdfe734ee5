//! Why a sandbox could not be created or started (`clw-sandbox-failure`): a pure mapping from
//! the engine's error message to a likely cause and one line of repair guidance.
//!
//! The engines give causes only as text (runc, crun, libseccomp and dockerd wrap each other's
//! messages), so this matches on stable fragments of those messages. It must not decide what
//! to do about a failure; it only names it.

use serde::Serialize;

/// A likely cause of a create/start failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCause {
    ImageMissing,
    SeccompUnsupported,
    SeccompRejected,
    NamespacesDenied,
    CgroupControllerMissing,
    UserMissing,
    CommandMissing,
    InitMissing,
}

/// Fragments (lowercase) that identify each cause, checked in this order: the more specific
/// seccomp-unsupported before the generic seccomp rejection, namespaces before cgroups.
const RULES: [(FailureCause, &[&str]); 8] = [
    (
        FailureCause::ImageMissing,
        &[
            "no such image",
            "image not known",
            "pull access denied",
            "manifest unknown",
            "repository does not exist",
        ],
    ),
    (
        FailureCause::SeccompUnsupported,
        &[
            "seccomp is not enabled in your kernel",
            "seccomp not supported",
            "kernel does not support seccomp",
            "seccomp filtering not supported",
        ],
    ),
    (
        FailureCause::SeccompRejected,
        &[
            "for seccomp",
            "seccomp filter",
            "seccomp profile",
            "decoding seccomp",
            "libseccomp",
        ],
    ),
    (
        FailureCause::NamespacesDenied,
        &[
            "unshare: operation not permitted",
            "clone: operation not permitted",
            "fork/exec /proc/self/exe: operation not permitted",
            "user namespaces are not enabled",
            "max_user_namespaces",
            "newuidmap",
            "cannot set up namespace",
            "failed to start the child",
        ],
    ),
    (
        FailureCause::CgroupControllerMissing,
        &[
            "cgroup mountpoint does not exist",
            "no cgroup mount found",
            "cgroup not supported",
            "cgroup controller",
            "pids.max: no such file",
            "memory.limit_in_bytes: no such file",
            "memory.max: no such file",
            "your kernel does not support",
        ],
    ),
    // Before the generic "command not found": Docker names the missing init like a command.
    (
        FailureCause::InitMissing,
        &[
            "\"docker-init\": executable file not found",
            "container-init binary not found",
        ],
    ),
    (
        FailureCause::UserMissing,
        &["unable to find user", "no matching entries in passwd"],
    ),
    (
        FailureCause::CommandMissing,
        &["executable file not found", "exec: \""],
    ),
];

impl FailureCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::ImageMissing => "image-missing",
            FailureCause::SeccompUnsupported => "seccomp-unsupported",
            FailureCause::SeccompRejected => "seccomp-rejected",
            FailureCause::NamespacesDenied => "namespaces-denied",
            FailureCause::CgroupControllerMissing => "cgroup-controller-missing",
            FailureCause::UserMissing => "user-missing",
            FailureCause::CommandMissing => "command-missing",
            FailureCause::InitMissing => "init-missing",
        }
    }

    /// One line of guidance for people.
    pub fn hint(self) -> &'static str {
        match self {
            FailureCause::ImageMissing => {
                "the image is not on this host; build or load it locally (`docker build`, `docker load -i`) and check the image name and tag (no registry is contacted)"
            }
            FailureCause::SeccompUnsupported => {
                "the kernel cannot filter syscalls (no CONFIG_SECCOMP_FILTER); use a kernel with seccomp filtering, never `seccomp=unconfined`; `clw-fortress doctor` checks it"
            }
            FailureCause::SeccompRejected => {
                "the engine or kernel rejected the seccomp profile; run `clw-fortress seccomp check` on it and `clw-fortress doctor` (kernel.seccomp lists the actions this kernel supports)"
            }
            FailureCause::NamespacesDenied => {
                "namespace creation was denied by host policy; run `clw-fortress doctor` (userns.unprivileged, apparmor.userns-restriction) for the scoped fix"
            }
            FailureCause::CgroupControllerMissing => {
                "a cgroup controller needed for the declared limits is missing or not delegated; run `clw-fortress doctor` (cgroup.*)"
            }
            FailureCause::UserMissing => {
                "the image has no such user; use a numeric `user: \"1000:1000\"` or add the user to the image"
            }
            FailureCause::CommandMissing => {
                "the command does not exist in the image; check `command` and the image's PATH"
            }
            FailureCause::InitMissing => {
                "the engine's init for `init: true` is not installed on the engine host: Docker's `docker-init` (Debian: tini, with docker.io), Podman's catatonit (`apt install catatonit`); or set `init: false`"
            }
        }
    }
}

/// The likely cause of a create/start failure from the engine's message, if recognised.
pub fn classify(message: &str) -> Option<FailureCause> {
    let m = message.to_ascii_lowercase();
    RULES
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| m.contains(n)))
        .map(|(cause, _)| *cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_engine_messages_map_to_their_cause() {
        use FailureCause::*;
        for (message, cause) in [
            // Docker 20.10, measured by `clw-fortress` tests and by hand on this project's
            // engine (POST /containers/create, /start).
            ("No such image: clw-no-such-image:nope", Some(ImageMissing)),
            (
                "failed to create shim task: OCI runtime create failed: runc create failed: string SCMP_ACT_BOGUS is not a valid action for seccomp: unknown",
                Some(SeccompRejected),
            ),
            (
                "failed to create shim task: OCI runtime create failed: runc create failed: string SCMP_ARCH_BOGUS is not a valid arch for seccomp: unknown",
                Some(SeccompRejected),
            ),
            (
                "unable to find user nosuchuser: no matching entries in passwd file",
                Some(UserMissing),
            ),
            (
                "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/nonexistent\": stat /nonexistent: no such file or directory: unknown",
                Some(CommandMissing),
            ),
            // Measured with the engine's init binary moved away (`init: true`).
            (
                "exec: \"docker-init\": executable file not found in $PATH",
                Some(InitMissing),
            ),
            // Podman 4.3 (environment.md measurements).
            ("clw-no-such-image: image not known", Some(ImageMissing)),
            (
                "container-init binary not found on the host: stat /usr/libexec/podman/catatonit: no such file or directory",
                Some(InitMissing),
            ),
            (
                "opening seccomp profile failed: open {\"defaultAction\": no such file or directory",
                Some(SeccompRejected),
            ),
            // Documented by the engines' sources and issue reports.
            (
                "Error response from daemon: seccomp is not enabled in your kernel, cannot run a custom seccomp profile",
                Some(SeccompUnsupported),
            ),
            (
                "OCI runtime create failed: container_linux.go:380: starting container process caused: error loading seccomp filter into kernel: loading seccomp filter: invalid argument: unknown",
                Some(SeccompRejected),
            ),
            (
                "[rootlesskit:parent] error: failed to start the child: fork/exec /proc/self/exe: operation not permitted",
                Some(NamespacesDenied),
            ),
            (
                "OCI runtime create failed: runc create failed: unable to start container process: unshare: operation not permitted",
                Some(NamespacesDenied),
            ),
            (
                "cannot clone: Operation not permitted\nError: cannot re-exec process: newuidmap",
                Some(NamespacesDenied),
            ),
            (
                "OCI runtime create failed: container_linux.go:349: starting container process caused \"process_linux.go:297: applying cgroup configuration for process caused \\\"cgroups: cgroup mountpoint does not exist: unknown\\\"\"",
                Some(CgroupControllerMissing),
            ),
            (
                "crun: the requested cgroup controller `pids` is not available",
                Some(CgroupControllerMissing),
            ),
            (
                "OCI runtime create failed: open /sys/fs/cgroup/pids/docker/x/pids.max: no such file or directory",
                Some(CgroupControllerMissing),
            ),
            ("Conflict. The container name \"/x\" is already in use", None),
        ] {
            assert_eq!(classify(message), cause, "{message}");
        }
    }

    #[test]
    fn every_cause_has_a_hint_naming_a_next_step() {
        for (cause, _) in RULES {
            assert!(!cause.hint().is_empty());
            assert!(!cause.as_str().is_empty());
        }
    }
}
