//! The engine's reference default profile (moby `profiles/seccomp/default.json`), rebuilt as data.
//!
//! Owns the group structure the policies start from: the unconditional allow list, the
//! argument-filtered groups (`socket` family, `personality` values, `clone` namespace flags),
//! the architecture groups and the capability-conditional groups. It must not decide what a
//! policy removes; `policy` does that.
//!
//! Deliberate difference from upstream: only the 64-bit ABIs of x86_64 and aarch64 are targeted
//! (the architectures the name tables cover). The 32-bit compat ABIs (`x86`, `x32`, `arm`) and
//! their private calls (`chown32`, `_llseek`, `socketcall`, `*_time64`, ...) are left out, as are
//! the ppc64le, s390x and riscv64 groups. A 32-bit binary's calls meet the runtime's
//! bad-architecture action instead of an allow list.

use super::model::{Action, Arch, ArchMap, Arg, Op, Profile, Rule};

/// `EPERM`: what every denied call answers, so callers see an ordinary permission error.
pub const EPERM: u32 = 1;
/// `ENOSYS`: "not implemented", which makes libc fall back (e.g. from `clone3` to `clone`).
pub const ENOSYS: u32 = 38;

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`: `clone` is allowed only when none of these bits is set.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `personality(2)` values that change nothing dangerous: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32|UNAME26`, and `0xffffffff` (query the current persona).
pub const PERSONALITY_VALUES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `AF_VSOCK`: the one socket family the engine default refuses (host/VM channel).
pub const AF_VSOCK: u64 = 40;

/// Calls an ordinary program may make with no capability: files, memory, signals, time,
/// processes without namespaces, sockets, IPC. Upstream's list minus 32-bit-only names.
const UNCONDITIONAL: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// The native architectures and the sub-architectures the filter covers with them.
pub fn arch_map() -> Vec<ArchMap> {
    [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .map(|architecture| ArchMap {
            architecture,
            sub_architectures: None,
        })
        .collect()
}

/// The engine default, group by group, each with the reason it exists.
pub fn engine_default() -> Profile {
    let mut rules = vec![
        Rule::allow(
            UNCONDITIONAL,
            "engine default: calls an ordinary unprivileged program makes (files, memory, \
             signals, time, sockets, IPC, processes without new namespaces)",
        ),
        Rule::allow(
            &["process_vm_readv", "process_vm_writev", "ptrace"],
            "engine default: ptrace and cross-process memory access, allowed on kernels from \
             4.8 where seccomp can no longer be bypassed through ptrace",
        )
        .if_min_kernel("4.8"),
        Rule::allow(
            &["socket"],
            "engine default: every socket family except AF_VSOCK (40), the host/VM channel",
        )
        .with_args(&[Arg::new(0, Op::Ne, AF_VSOCK)]),
    ];
    for value in PERSONALITY_VALUES {
        rules.push(
            Rule::allow(
                &["personality"],
                "engine default: personality only with a value that changes no security \
                 property (PER_LINUX, PER_LINUX32, UNAME26, or the query 0xffffffff); \
                 ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC stay denied",
            )
            .with_args(&[Arg::new(0, Op::Eq, value)]),
        );
    }
    rules.extend([
        Rule::allow(
            &["arch_prctl"],
            "engine default: x86_64 thread-local storage setup, needed by every libc",
        )
        .if_arches(&["amd64", "x32"]),
        Rule::allow(
            &["modify_ldt"],
            "engine default: x86 local descriptor table, used by some runtimes (Wine, old JITs)",
        )
        .if_arches(&["amd64", "x32", "x86"]),
        Rule::allow(
            &["open_by_handle_at"],
            "engine default: only with CAP_DAC_READ_SEARCH, which bypasses path permission \
             checks anyway",
        )
        .if_caps(&["CAP_DAC_READ_SEARCH"]),
        Rule::allow(
            &[
                "bpf",
                "clone",
                "clone3",
                "fanotify_init",
                "fsconfig",
                "fsmount",
                "fsopen",
                "fspick",
                "lookup_dcookie",
                "mount",
                "mount_setattr",
                "move_mount",
                "open_tree",
                "perf_event_open",
                "quotactl",
                "quotactl_fd",
                "setdomainname",
                "sethostname",
                "setns",
                "syslog",
                "umount2",
                "unshare",
            ],
            "engine default: administration calls, only with CAP_SYS_ADMIN",
        )
        .if_caps(&["CAP_SYS_ADMIN"]),
        Rule::allow(
            &["clone"],
            "engine default: clone only without CLONE_NEW* namespace flags (threads and \
             processes, no new namespaces)",
        )
        .with_args(&[Arg::masked_eq(0, CLONE_NAMESPACE_FLAGS, 0)])
        .unless_caps(&["CAP_SYS_ADMIN"]),
        Rule::errno(
            &["clone3"],
            ENOSYS,
            "engine default: clone3 passes its flags in memory where seccomp cannot see them; \
             ENOSYS makes libc fall back to clone, whose flags are filtered",
        )
        .unless_caps(&["CAP_SYS_ADMIN"]),
        Rule::allow(&["reboot"], "engine default: only with CAP_SYS_BOOT")
            .if_caps(&["CAP_SYS_BOOT"]),
        Rule::allow(&["chroot"], "engine default: only with CAP_SYS_CHROOT")
            .if_caps(&["CAP_SYS_CHROOT"]),
        Rule::allow(
            &["delete_module", "init_module", "finit_module"],
            "engine default: kernel modules, only with CAP_SYS_MODULE",
        )
        .if_caps(&["CAP_SYS_MODULE"]),
        Rule::allow(
            &["acct"],
            "engine default: process accounting, only with CAP_SYS_PACCT",
        )
        .if_caps(&["CAP_SYS_PACCT"]),
        Rule::allow(
            &[
                "kcmp",
                "pidfd_getfd",
                "process_madvise",
                "process_vm_readv",
                "process_vm_writev",
                "ptrace",
            ],
            "engine default: inspecting other processes, with CAP_SYS_PTRACE on any kernel",
        )
        .if_caps(&["CAP_SYS_PTRACE"]),
        Rule::allow(
            &["iopl", "ioperm"],
            "engine default: raw I/O ports, only with CAP_SYS_RAWIO",
        )
        .if_caps(&["CAP_SYS_RAWIO"]),
        Rule::allow(
            &["settimeofday", "clock_settime"],
            "engine default: setting the system clock, only with CAP_SYS_TIME",
        )
        .if_caps(&["CAP_SYS_TIME"]),
        Rule::allow(&["vhangup"], "engine default: only with CAP_SYS_TTY_CONFIG")
            .if_caps(&["CAP_SYS_TTY_CONFIG"]),
        Rule::allow(
            &[
                "get_mempolicy",
                "mbind",
                "set_mempolicy",
                "set_mempolicy_home_node",
            ],
            "engine default: NUMA memory policy, only with CAP_SYS_NICE",
        )
        .if_caps(&["CAP_SYS_NICE"]),
        Rule::allow(
            &["syslog"],
            "engine default: kernel log, only with CAP_SYSLOG",
        )
        .if_caps(&["CAP_SYSLOG"]),
        Rule::allow(&["bpf"], "engine default: only with CAP_BPF").if_caps(&["CAP_BPF"]),
        Rule::allow(
            &["perf_event_open"],
            "engine default: only with CAP_PERFMON",
        )
        .if_caps(&["CAP_PERFMON"]),
    ]);
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(EPERM),
        architectures: None,
        arch_map: Some(arch_map()),
        flags: None,
        listener_path: None,
        listener_metadata: None,
        syscalls: rules,
    }
}
