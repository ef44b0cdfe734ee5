//! The generated policies (`permissive`, `default`, `strict`) and the manifest overrides.
//!
//! Owns *what* each policy removes from the engine default and why. Pure: builds a
//! [`Profile`] value; validation and delivery are elsewhere.

use super::baseline::{engine_default, CLONE_NAMESPACE_FLAGS, ENOSYS, EPERM};
use super::model::{Action, Arg, Op, Profile, Rule};
use crate::manifest::SeccompPolicy;

/// What `default` removes from the engine default, by theme. Each is removed from *every*
/// group, capability-conditional ones included, so `cap_add` cannot bring it back; then it is
/// listed again in an explicit deny group carrying the reason.
const DEFAULT_DENIED: &[(&[&str], &str)] = &[
    (
        &["io_uring_enter", "io_uring_register", "io_uring_setup"],
        "io_uring performs I/O that seccomp never sees and has been a steady source of kernel \
         privilege escalations",
    ),
    (
        &["userfaultfd"],
        "userfaultfd lets a process stall the kernel on a page fault, the usual way exploits \
         win kernel races",
    ),
    (
        &["keyctl", "add_key", "request_key"],
        "the kernel keyring is not namespaced; keys could leak between containers and the host",
    ),
    (
        &["bpf", "perf_event_open"],
        "eBPF and perf expose kernel internals and large attack surface; a tool sandbox needs \
         neither",
    ),
    (
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
        ],
        "reading or steering other processes (debugging, memory access, fd theft) is how one \
         tool run would attack another",
    ),
    (
        &[
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
        ],
        "changing the mount table is the first step of most container escapes",
    ),
    (
        &["unshare", "setns"],
        "new or foreign namespaces of any kind widen the kernel attack surface (user \
         namespaces especially)",
    ),
    (
        &[
            "acct",
            "quotactl",
            "quotactl_fd",
            "swapon",
            "swapoff",
            "reboot",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "lookup_dcookie",
            "vhangup",
        ],
        "host administration (accounting, quotas, swap, reboot, kexec, kernel modules, \
         terminals) is never a sandbox's business",
    ),
    (
        &["name_to_handle_at", "open_by_handle_at"],
        "file handles open files by inode, bypassing the mount namespace (the 'shocker' escape)",
    ),
];

/// `personality` values `default` keeps: `PER_LINUX`, `PER_LINUX32` and the query. The
/// engine's `UNAME26` variants only fake an old kernel version; no tool needs that.
const DEFAULT_PERSONALITY: [u64; 3] = [0x0, 0x8, 0xffff_ffff];

/// Socket families `strict` allows: `AF_UNIX`, `AF_INET`, `AF_INET6`.
const STRICT_FAMILIES: [(u64, &str); 3] = [(1, "AF_UNIX"), (2, "AF_INET"), (10, "AF_INET6")];
const AF_NETLINK: u64 = 16;
const NETLINK_ROUTE: u64 = 0;

/// `S_IFMT`, and the file types `strict` lets `mknod` create (0 means a regular file).
const S_IFMT: u64 = 0o170000;
const MKNOD_TYPES: [(u64, &str); 3] = [
    (0, "a regular file (type bits 0)"),
    (0o100000, "a regular file (S_IFREG)"),
    (0o010000, "a fifo (S_IFIFO)"),
];

/// The uid/gid-setting calls and how many id arguments each takes.
pub const SETID_CALLS: [(&str, u32); 8] = [
    ("setuid", 1),
    ("setgid", 1),
    ("setfsuid", 1),
    ("setfsgid", 1),
    ("setreuid", 2),
    ("setregid", 2),
    ("setresuid", 3),
    ("setresgid", 3),
];

/// The profile of `policy` with the manifest's overrides applied (not yet validated).
pub fn build(policy: SeccompPolicy, allow: &[String], deny: &[String]) -> Profile {
    let mut p = match policy {
        SeccompPolicy::Permissive => permissive(),
        SeccompPolicy::Default => default(),
        SeccompPolicy::Strict => strict(),
    };
    apply_overrides(&mut p, allow, deny);
    p
}

/// The engine default.
pub fn permissive() -> Profile {
    engine_default()
}

/// The engine default minus what a tool sandbox does not need and attackers do.
pub fn default() -> Profile {
    let mut p = engine_default();
    for (names, _) in DEFAULT_DENIED {
        for name in *names {
            remove_everywhere(&mut p, name);
        }
    }
    // No capability brings back clone with namespace flags or clone3: drop the CAP_SYS_ADMIN
    // exception from both rules (the admin group lost clone/clone3 above).
    remove_from_allow_groups(&mut p, "clone");
    remove_from_allow_groups(&mut p, "clone3");
    p.syscalls
        .retain(|r| !r.names.iter().any(|n| n == "clone3"));
    p.syscalls.push(
        Rule::allow(
            &["clone"],
            "clone only without CLONE_NEW* namespace flags (threads and processes, never new \
             namespaces), whatever the capabilities",
        )
        .with_args(&[Arg::masked_eq(0, CLONE_NAMESPACE_FLAGS, 0)]),
    );
    p.syscalls.push(Rule::errno(
        &["clone3"],
        ENOSYS,
        "clone3 passes its flags in memory where seccomp cannot see them; ENOSYS makes libc \
         fall back to clone, whose flags are filtered, whatever the capabilities",
    ));
    p.syscalls
        .retain(|r| !r.names.iter().any(|n| n == "personality"));
    for value in DEFAULT_PERSONALITY {
        p.syscalls.push(
            Rule::allow(
                &["personality"],
                "personality only as PER_LINUX, PER_LINUX32 or the query 0xffffffff; \
                 ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC weaken the process, UNAME26 only \
                 fakes an old kernel version and no tool needs it",
            )
            .with_args(&[Arg::new(0, Op::Eq, value)]),
        );
    }
    for (names, why) in DEFAULT_DENIED {
        p.syscalls
            .push(Rule::errno(names, EPERM, &format!("denied: {why}")));
    }
    p
}

/// `default` minus `chroot`, device nodes, exotic socket families and switching to uid/gid 0.
pub fn strict() -> Profile {
    let mut p = default();
    remove_everywhere(&mut p, "chroot");
    for name in ["mknod", "mknodat", "socket"]
        .into_iter()
        .chain(SETID_CALLS.iter().map(|(n, _)| *n))
    {
        remove_from_allow_groups(&mut p, name);
    }

    for (family, label) in STRICT_FAMILIES {
        p.syscalls.push(
            Rule::allow(
                &["socket"],
                &format!(
                    "socket of family {label} ({family}) only; other families (packet, \
                     bluetooth, vsock, ...) are kernel attack surface no tool needs"
                ),
            )
            .with_args(&[Arg::new(0, Op::Eq, family)]),
        );
    }
    p.syscalls.push(
        Rule::allow(
            &["socket"],
            "socket of family AF_NETLINK (16) only with protocol NETLINK_ROUTE (0), which \
             resolvers and `ip` use to list interfaces",
        )
        .with_args(&[
            Arg::new(0, Op::Eq, AF_NETLINK),
            Arg::new(2, Op::Eq, NETLINK_ROUTE),
        ]),
    );

    // The file type sits in the S_IFMT bits of the mode; the masked comparison reads only
    // those bits, which survive the kernel's truncation of the mode to 16 bits.
    for (name, mode_index) in [("mknod", 1), ("mknodat", 2)] {
        for (file_type, label) in MKNOD_TYPES {
            p.syscalls.push(
                Rule::allow(
                    &[name],
                    &format!(
                        "{name} only creating {label}; device nodes would reach host \
                         hardware through CAP_MKNOD, which engines grant by default"
                    ),
                )
                .with_args(&[Arg::masked_eq(mode_index, S_IFMT, file_type)]),
            );
        }
    }

    // Each id argument must differ from 0 (all conditions of one rule must hold). The
    // comparison reads the whole 64-bit register while the kernel reads 32 bits, so a caller
    // holding CAP_SETUID could still pass 0 with high bits set: this is defence in depth
    // behind the capability drop, not a replacement for it. runc itself calls setresuid and
    // setresgid after the filter when `no_new_privileges` is off, so a root sandbox under
    // `strict` needs `no_new_privileges`.
    for (name, ids) in SETID_CALLS {
        let args: Vec<Arg> = (0..ids).map(|i| Arg::new(i, Op::Ne, 0)).collect();
        p.syscalls.push(
            Rule::allow(
                &[name],
                &format!(
                    "{name} only to a non-zero id: a sandbox never becomes root (uid/gid 0) \
                     after it starts"
                ),
            )
            .with_args(&args),
        );
    }

    p.syscalls.push(Rule::errno(
        &["chroot"],
        EPERM,
        "denied: chroot is the classic way to confuse path-based checks and, with an open \
         directory fd, to escape a root; tools have no use for it",
    ));
    p
}

/// Applies the manifest's `allow` and `deny` lists.
pub fn apply_overrides(p: &mut Profile, allow: &[String], deny: &[String]) {
    if !allow.is_empty() {
        for name in allow {
            // An explicit deny would contradict the override; the override wins.
            remove_from_deny_groups(p, name);
        }
        let names: Vec<&str> = allow.iter().map(String::as_str).collect();
        p.syscalls
            .push(Rule::allow(&names, "allowed by manifest override"));
    }
    if !deny.is_empty() {
        for name in deny {
            remove_everywhere(p, name);
        }
        let names: Vec<&str> = deny.iter().map(String::as_str).collect();
        p.syscalls
            .push(Rule::errno(&names, EPERM, "denied by manifest override"));
    }
}

/// Removes `name` from every rule, whatever its action or conditions; drops emptied rules.
fn remove_everywhere(p: &mut Profile, name: &str) {
    remove_where(p, name, |_| true);
}

fn remove_from_allow_groups(p: &mut Profile, name: &str) {
    remove_where(p, name, |r| r.action == Action::Allow);
}

fn remove_from_deny_groups(p: &mut Profile, name: &str) {
    remove_where(p, name, |r| !r.action.lets_through());
}

fn remove_where(p: &mut Profile, name: &str, which: impl Fn(&Rule) -> bool) {
    for rule in p.syscalls.iter_mut().filter(|r| which(r)) {
        rule.remove_name(name);
    }
    p.syscalls.retain(|r| !r.is_empty());
}
