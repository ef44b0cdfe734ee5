//! Generated seccomp profiles on a real engine (seccomp.md): every policy is accepted and
//! loaded into the kernel, an ordinary workload runs under `default` and `strict`, the calls
//! `default` denies fail with EPERM *because of the filter* (the same command succeeds, or
//! fails differently, under `permissive` with the same capabilities), `strict` denies more
//! than `default` on the engine too, a profile denying `execve` never reaches the engine, and
//! a policy change recreates the sandbox.
//!
//! Two kinds of probe run inside the sandboxes:
//!
//! - busybox applets of the fixture image (`unshare`, `nsenter`, `mount`, `chroot`, `mknod`,
//!   ...). Each case names the syscall it makes.
//! - tiny static x86_64 programs written by [`syscall_probe`]: one raw syscall with fixed
//!   arguments, exiting with the errno it got (0 on success). They reach the calls no busybox
//!   applet makes (`ptrace`, `io_uring_setup`, `personality`, `clone3`, `socket` families),
//!   and they report the errno itself rather than an applet's wording of it.
//!
//! Separating the filter from the capability drop: a capless uid 1000 gets EPERM from the
//! kernel for most administrative calls whatever the filter says, and the engine default
//! (`permissive`) itself lets `unshare`, `mount`, `setns` through only with CAP_SYS_ADMIN (on
//! this engine `unshare -U` fails under `permissive` too for a capless process, although user
//! namespaces need no capability: the engine's filter is what stops it). So the namespace and
//! mount cases run as root *with* CAP_SYS_ADMIN (and CAP_SYS_CHROOT, which `setns` into a mount
//! namespace also needs) added: `permissive` lets them succeed, `default` answers EPERM. The calls the engine default allows without any capability
//! (`ptrace`, `io_uring_setup`, ...) are probed as the capless sandbox user.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// `errno` values the probes exit with.
const EPERM: i32 = 1;
const ENOSYS: i32 = 38;

/// One sandbox of a test manifest: a name suffix and extra YAML lines (4-space indented).
struct Sbx {
    suffix: &'static str,
    extra: &'static [&'static str],
}

impl Sbx {
    const fn new(suffix: &'static str, extra: &'static [&'static str]) -> Self {
        Sbx { suffix, extra }
    }
}

/// Sandboxes that hold added capabilities run as root: the engine gives a non-root container
/// user only the bounding set of its added capabilities (and `docker exec -u 0` inherits
/// that), so nothing would be effective.
const ROOT_USER: &str = "user: \"0:0\"";
const ALLOW_ROOT: &str = "allowRoot: true";

fn sandbox_name(fx: &Fixture, suffix: &str) -> String {
    format!("{}-{suffix}", fx.name())
}

/// The fixture's manifest with its sandboxes replaced by `sandboxes` (all with the test bind
/// set, so `/agent-workspace` is the fixture's workspace directory).
fn write_sandboxes(fx: &Fixture, sandboxes: &[Sbx]) {
    let base = fx.default_manifest();
    let head = &base[..base.find("sandboxes:\n").expect("a sandboxes section")];
    let mut yaml = format!("{head}sandboxes:\n");
    for s in sandboxes {
        yaml.push_str(&format!(
            "  - name: {}\n    bindSets: [test]\n    command: [sleep, \"3600\"]\n",
            sandbox_name(fx, s.suffix)
        ));
        for line in s.extra {
            yaml.push_str(&format!("    {line}\n"));
        }
    }
    // Root without DAC_OVERRIDE (every sandbox drops ALL) writes only what its mode bits let
    // it, and validation refuses an rw bind its user cannot write: these sandboxes' rw binds
    // are left open to all, which changes nothing the seccomp tests look at.
    if sandboxes.iter().any(|s| s.extra.contains(&ROOT_USER)) {
        for d in ["workspace", "memory"] {
            let p = fx.openclaw_dir().join(d);
            if p.is_dir() {
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                    .unwrap();
            }
        }
    }
    fx.write_manifest(&yaml);
}

fn apply_ok(fx: &Fixture) {
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply failed: {}", describe(&out));
}

/// `docker exec [-u user] <name> sh -c <script>`: exit status and stdout+stderr.
fn sh(name: &str, user: Option<&str>, script: &str) -> (i32, String) {
    let mut args = vec!["exec"];
    if let Some(u) = user {
        args.extend(["-u", u]);
    }
    args.extend([name, "sh", "-c", script]);
    let out = docker(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

// ---------------------------------------------------------------------------------------------
// Raw syscall probes.

/// An argument of a probe: a number, or the address of a zeroed, writable 2 KiB scratch area
/// (for calls that take a pointer; an empty string or an all-zero struct).
#[derive(Clone, Copy)]
enum A {
    N(i64),
    Buf,
}

/// Load address of the probe and of its scratch area (inside the same RWX page).
const BASE: u64 = 0x40_0000;
const SCRATCH: u64 = BASE + 0x800;

/// A static x86_64 ELF executable that makes syscall `nr` with `args` and exits with the
/// errno it returned (0 when the call succeeded, whatever it returned). No libc, no loader:
/// 120 bytes of headers and the code
///
/// ```text
/// mov rax, nr; mov rdi, a0; mov rsi, a1; mov rdx, a2; mov r10, a3; mov r8, a4; mov r9, a5
/// syscall
/// neg rax; jns 1f; xor eax, eax     ; -errno -> errno; a success value -> 0
/// 1: mov rdi, rax; mov eax, 231     ; exit_group(errno)
/// syscall
/// ```
fn syscall_probe(nr: u64, args: &[A]) -> Vec<u8> {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the syscall probes are x86_64 machine code"
    );
    assert!(args.len() <= 6);
    const MOV_IMM64: [[u8; 2]; 6] = [
        [0x48, 0xbf], // rdi
        [0x48, 0xbe], // rsi
        [0x48, 0xba], // rdx
        [0x49, 0xba], // r10
        [0x49, 0xb8], // r8
        [0x49, 0xb9], // r9
    ];
    let mut code = vec![0x48, 0xb8];
    code.extend(nr.to_le_bytes());
    for (i, prefix) in MOV_IMM64.iter().enumerate() {
        let v = match args.get(i).copied().unwrap_or(A::N(0)) {
            A::N(n) => n as u64,
            A::Buf => SCRATCH,
        };
        code.extend(prefix);
        code.extend(v.to_le_bytes());
    }
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0x48, 0xf7, 0xd8]); // neg rax
    code.extend([0x79, 0x02]); // jns +2
    code.extend([0x31, 0xc0]); // xor eax, eax
    code.extend([0x48, 0x89, 0xc7]); // mov rdi, rax
    code.extend([0xb8, 0xe7, 0x00, 0x00, 0x00]); // mov eax, 231
    code.extend([0x0f, 0x05]); // syscall

    let entry = BASE + 64 + 56;
    let mut elf = Vec::new();
    // ELF header: 64-bit, little endian, version 1, System V; ET_EXEC, EM_X86_64.
    elf.extend(b"\x7fELF\x02\x01\x01\x00");
    elf.extend([0u8; 8]);
    elf.extend(2u16.to_le_bytes()); // e_type
    elf.extend(0x3eu16.to_le_bytes()); // e_machine
    elf.extend(1u32.to_le_bytes()); // e_version
    elf.extend(entry.to_le_bytes()); // e_entry
    elf.extend(64u64.to_le_bytes()); // e_phoff
    elf.extend(0u64.to_le_bytes()); // e_shoff
    elf.extend(0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend(v.to_le_bytes());
    }
    // One PT_LOAD, read/write/execute, a whole page so the scratch area exists (zeroed).
    let filesz = (entry - BASE) + code.len() as u64;
    elf.extend(1u32.to_le_bytes()); // p_type
    elf.extend(7u32.to_le_bytes()); // p_flags
    elf.extend(0u64.to_le_bytes()); // p_offset
    elf.extend(BASE.to_le_bytes()); // p_vaddr
    elf.extend(BASE.to_le_bytes()); // p_paddr
    elf.extend(filesz.to_le_bytes()); // p_filesz
    elf.extend(0x1000u64.to_le_bytes()); // p_memsz
    elf.extend(0x1000u64.to_le_bytes()); // p_align
    elf.extend(code);
    elf
}

/// A probe: file name, syscall number (x86_64), arguments, and what it exercises.
struct Probe {
    name: &'static str,
    nr: u64,
    args: &'static [A],
}

const AT_FDCWD: i64 = -100;

const PROBES: &[Probe] = &[
    // ptrace(PTRACE_TRACEME): needs no capability.
    Probe {
        name: "ptrace",
        nr: 101,
        args: &[A::N(0)],
    },
    // process_vm_readv(0, NULL, 0, NULL, 0, 0): zero iovecs, so the kernel answers 0 at once.
    Probe {
        name: "process_vm_readv",
        nr: 310,
        args: &[A::N(0), A::N(0), A::N(0), A::N(0), A::N(0), A::N(0)],
    },
    // io_uring_setup(1, &params): a ring, no capability needed.
    Probe {
        name: "io_uring_setup",
        nr: 425,
        args: &[A::N(1), A::Buf],
    },
    // name_to_handle_at(AT_FDCWD, "", ...): reaches the kernel only if allowed (then ENOENT).
    Probe {
        name: "name_to_handle_at",
        nr: 303,
        args: &[A::N(AT_FDCWD), A::Buf, A::Buf, A::Buf, A::N(0)],
    },
    // personality(UNAME26): allowed by the engine default, not by `default`.
    Probe {
        name: "personality_uname26",
        nr: 135,
        args: &[A::N(0x0002_0000)],
    },
    // personality(PER_LINUX): allowed by every policy.
    Probe {
        name: "personality_linux",
        nr: 135,
        args: &[A::N(0)],
    },
    // clone3(&args, size): ENOSYS under every policy, so libc falls back to clone.
    Probe {
        name: "clone3",
        nr: 435,
        args: &[A::Buf, A::N(88)],
    },
    // clone(CLONE_NEWUSER | SIGCHLD): a new user namespace through clone, denied by the flags
    // filter (a success would fork; the child would also exit with 0).
    Probe {
        name: "clone_newuser",
        nr: 56,
        args: &[A::N(0x1000_0000 | 17), A::N(0), A::N(0), A::N(0), A::N(0)],
    },
    // unshare(CLONE_NEWUSER), the raw call behind `unshare -U`.
    Probe {
        name: "unshare_user",
        nr: 272,
        args: &[A::N(0x1000_0000)],
    },
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0).
    Probe {
        name: "keyctl",
        nr: 250,
        args: &[A::N(0), A::N(-3), A::N(0)],
    },
    // userfaultfd(0).
    Probe {
        name: "userfaultfd",
        nr: 323,
        args: &[A::N(0)],
    },
    // socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT): no capability needed; `strict`
    // allows netlink only for NETLINK_ROUTE.
    Probe {
        name: "socket_netlink_uevent",
        nr: 41,
        args: &[A::N(16), A::N(3), A::N(15)],
    },
    // socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE): allowed by every policy.
    Probe {
        name: "socket_netlink_route",
        nr: 41,
        args: &[A::N(16), A::N(3), A::N(0)],
    },
    // socket(AF_INET, SOCK_STREAM, 0): allowed by every policy.
    Probe {
        name: "socket_inet",
        nr: 41,
        args: &[A::N(2), A::N(1), A::N(0)],
    },
    // setuid(0): as root, the kernel allows it; `strict` denies switching to uid 0.
    Probe {
        name: "setuid_root",
        nr: 105,
        args: &[A::N(0)],
    },
    // fchmodat2(AT_FDCWD, "", 0644, AT_SYMLINK_NOFOLLOW): newer than every call the profile
    // names, so runc answers ENOSYS (not the default action) and glibc >= 2.39 falls back
    // to its older path instead of failing `lchmod`.
    Probe {
        name: "fchmodat2",
        nr: 452,
        args: &[A::N(AT_FDCWD), A::Buf, A::N(0o644), A::N(0x100)],
    },
    // getpid: the control; must succeed everywhere.
    Probe {
        name: "getpid",
        nr: 39,
        args: &[],
    },
];

/// Writes every probe into the fixture's workspace (`/agent-workspace/probes/<name>`).
fn install_probes(fx: &Fixture) {
    let dir = fx.openclaw_dir().join("workspace/probes");
    std::fs::create_dir_all(&dir).unwrap();
    for p in PROBES {
        let file = dir.join(p.name);
        std::fs::write(&file, syscall_probe(p.nr, p.args)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Runs probe `name` in a sandbox; returns the errno it exited with.
fn probe(sandbox: &str, user: Option<&str>, name: &str) -> i32 {
    assert!(PROBES.iter().any(|p| p.name == name), "no probe {name}");
    let mut args = vec!["exec"];
    if let Some(u) = user {
        args.extend(["-u", u]);
    }
    let path = format!("/agent-workspace/probes/{name}");
    args.extend([sandbox, path.as_str()]);
    let out = docker(&args);
    let code = out.status.code().unwrap_or(-1);
    // 126/127 would be docker exec failing to start the probe, not an errno.
    assert!(
        !(126..=127).contains(&code) && code >= 0,
        "probe {name} did not run in {sandbox}: {}",
        describe(&out)
    );
    code
}

#[test]
fn the_syscall_probe_reports_success_and_errno_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, nr: u64, args: &[A]| {
        let file = dir.path().join(name);
        std::fs::write(&file, syscall_probe(nr, args)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::process::Command::new(&file)
            .status()
            .unwrap()
            .code()
            .unwrap()
    };
    assert_eq!(run("getpid", 39, &[]), 0);
    // close(-1) -> EBADF (9); kill(1, 0) from a test is fine either way, so use close.
    assert_eq!(run("close", 3, &[A::N(-1)]), 9);
    // open("" in the scratch area) -> ENOENT (2): the scratch pointer is valid memory.
    assert_eq!(run("open", 2, &[A::Buf, A::N(0)]), 2);
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_policy_is_accepted_by_the_engine_and_loaded_into_the_kernel() {
    require_engine();
    let fx = Fixture::new("sc-accept");
    write_sandboxes(
        &fx,
        &[
            Sbx::new("permissive", &["seccomp: {policy: permissive}"]),
            Sbx::new("default", &["seccomp: {policy: default}"]),
            Sbx::new("strict", &["seccomp: {policy: strict}"]),
        ],
    );
    apply_ok(&fx);
    for policy in ["permissive", "default", "strict"] {
        let name = sandbox_name(&fx, policy);
        let c = inspect(&name);
        assert_eq!(c["State"]["Running"], true, "{name} is not running");
        let status = docker_ok(&["exec", &name, "cat", "/proc/self/status"]);
        assert!(status.contains("Seccomp:\t2"), "{policy}: {status}");

        // What the engine holds is exactly what `seccomp generate` prints.
        let sec: Vec<String> =
            serde_json::from_value(c["HostConfig"]["SecurityOpt"].clone()).unwrap();
        let value = sec
            .iter()
            .find_map(|s| s.strip_prefix("seccomp="))
            .expect("a seccomp profile");
        // Docker holds the profile inline; Podman the path of the file clw-fortress wrote,
        // because its compat API reads `seccomp=` as a path (measured on 4.3.1).
        let held = match engine_flavor() {
            Flavor::Docker => value.to_string(),
            Flavor::Podman => std::fs::read_to_string(value)
                .unwrap_or_else(|e| panic!("{policy}: read the profile at {value}: {e}")),
        };
        let generated = bin()
            .args(["seccomp", "generate", "--policy", policy])
            .output()
            .unwrap();
        assert!(generated.status.success(), "{}", describe(&generated));
        let a: serde_json::Value = serde_json::from_str(&held).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&generated.stdout).unwrap();
        assert_eq!(a, b, "{policy}: the engine holds another profile");
    }
}

/// An ordinary tool run: a shell, file tools, sleep, a loopback HTTP round trip, writes in
/// the rw bind and in /tmp, a fifo, process listing and the interface list (netlink route).
const WORKLOAD: &str = r#"set -e
ls / >/dev/null
cat /etc/passwd >/dev/null
sleep 0.1
echo written > /agent-workspace/out.txt
echo scratch > /tmp/t && cat /tmp/t >/dev/null
mkfifo /tmp/fifo && rm /tmp/fifo
ps >/dev/null
ip link >/dev/null
mkdir -p /tmp/www && echo payload-42 > /tmp/www/x
httpd -p 127.0.0.1:8080 -h /tmp/www
i=0
until wget -q -O- http://127.0.0.1:8080/x; do
  i=$((i+1)); [ $i -lt 50 ] || exit 9; sleep 0.1
done
"#;

#[test]
fn an_ordinary_workload_runs_under_default_and_strict() {
    require_engine();
    let fx = Fixture::new("sc-work");
    write_sandboxes(
        &fx,
        &[
            Sbx::new("default", &["seccomp: {policy: default}"]),
            Sbx::new("strict", &["seccomp: {policy: strict}"]),
        ],
    );
    apply_ok(&fx);
    for policy in ["default", "strict"] {
        let name = sandbox_name(&fx, policy);
        let (code, out) = sh(&name, None, WORKLOAD);
        assert_eq!(code, 0, "{policy}: the workload failed:\n{out}");
        assert!(out.contains("payload-42"), "{policy}: {out}");
        let written = fx.openclaw_dir().join("workspace/out.txt");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "written\n");
        std::fs::remove_file(written).unwrap();
    }
}

/// What the engine default (`permissive`) does with a case, for root holding CAP_SYS_ADMIN
/// and CAP_SYS_CHROOT.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UnderPermissive {
    /// Succeeds: the denial under `default` is the filter's, not the capabilities'.
    Succeeds,
    /// EPERM as well: the engine default denies it without a capability the sandbox lacks
    /// (CAP_SYS_MODULE, ...) or always (pivot_root); `default` keeps it denied whatever is
    /// added.
    AlsoDenied,
    /// Not run: it would succeed and unmount the sandbox's /tmp under the later cases.
    NotRun,
}

/// A busybox command and the denied syscall it makes.
struct Case {
    cmd: &'static str,
    syscall: &'static str,
    permissive: UnderPermissive,
}

const fn case(cmd: &'static str, syscall: &'static str, permissive: UnderPermissive) -> Case {
    Case {
        cmd,
        syscall,
        permissive,
    }
}

use UnderPermissive::{AlsoDenied, NotRun, Succeeds};

const NAMESPACE_AND_MOUNT: &[Case] = &[
    case("unshare -U true", "unshare(CLONE_NEWUSER)", Succeeds),
    case("unshare -n true", "unshare(CLONE_NEWNET)", Succeeds),
    case("unshare -m true", "unshare(CLONE_NEWNS)", Succeeds),
    case("unshare -p -f true", "unshare(CLONE_NEWPID)", Succeeds),
    case("unshare -u true", "unshare(CLONE_NEWUTS)", Succeeds),
    case("unshare -i true", "unshare(CLONE_NEWIPC)", Succeeds),
    case("nsenter -t 1 -n true", "setns(CLONE_NEWNET)", Succeeds),
    case("nsenter -t 1 -m true", "setns(CLONE_NEWNS)", Succeeds),
    // busybox mount words EPERM (and only EPERM) as "permission denied (are you root?)".
    case(
        "mkdir -p /tmp/x && mount -t tmpfs none /tmp/x && umount /tmp/x",
        "mount, umount2",
        Succeeds,
    ),
    case("umount /tmp", "umount2", NotRun),
    case("pivot_root /tmp /tmp/x", "pivot_root", AlsoDenied),
    case("swapoff /tmp/none", "swapoff", AlsoDenied),
    case(
        "echo x > /tmp/m.ko && insmod /tmp/m.ko",
        "finit_module or init_module",
        AlsoDenied,
    ),
    case("rmmod nomod", "delete_module", AlsoDenied),
    case("reboot -f", "reboot", AlsoDenied),
];

fn says_eperm(out: &str) -> bool {
    out.contains("Operation not permitted") || out.contains("permission denied (are you root?)")
}

#[test]
fn default_denies_namespace_mount_and_admin_calls_with_eperm_even_with_cap_sys_admin() {
    require_engine();
    let fx = Fixture::new("sc-ns");
    write_sandboxes(
        &fx,
        &[
            Sbx::new(
                "perm-admin",
                &[
                    "seccomp: {policy: permissive}",
                    "capAdd: [SYS_ADMIN, SYS_CHROOT]",
                    ROOT_USER,
                    ALLOW_ROOT,
                ],
            ),
            Sbx::new(
                "def-admin",
                &[
                    "seccomp: {policy: default}",
                    "capAdd: [SYS_ADMIN, SYS_CHROOT]",
                    ROOT_USER,
                    ALLOW_ROOT,
                ],
            ),
            Sbx::new("default", &["seccomp: {policy: default}"]),
        ],
    );
    apply_ok(&fx);
    let (perm, def_admin, def) = (
        sandbox_name(&fx, "perm-admin"),
        sandbox_name(&fx, "def-admin"),
        sandbox_name(&fx, "default"),
    );
    let mut failures = Vec::new();
    for case in NAMESPACE_AND_MOUNT {
        if case.permissive != NotRun {
            let (code, out) = sh(&perm, None, case.cmd);
            let (ok, want) = match case.permissive {
                Succeeds => (code == 0, "succeed"),
                _ => (code != 0 && says_eperm(&out), "fail with EPERM"),
            };
            if !ok {
                failures.push(format!(
                    "permissive+SYS_ADMIN as root: `{}` ({}) should {want}: [{code}] {out}",
                    case.cmd, case.syscall
                ));
            }
        }
        for (who, name, user) in [
            ("default+SYS_ADMIN as root", &def_admin, None),
            ("default as uid 1000", &def, None),
        ] {
            let (code, out) = sh(name, user, case.cmd);
            if code == 0 || !says_eperm(&out) {
                failures.push(format!(
                    "{who}: `{}` ({}) should fail with EPERM: [{code}] {out}",
                    case.cmd, case.syscall
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn default_denies_with_eperm_what_the_engine_default_allows_without_any_capability() {
    require_engine();
    let fx = Fixture::new("sc-raw");
    install_probes(&fx);
    write_sandboxes(
        &fx,
        &[
            Sbx::new("permissive", &["seccomp: {policy: permissive}"]),
            Sbx::new("default", &["seccomp: {policy: default}"]),
        ],
    );
    apply_ok(&fx);
    let (perm, def) = (
        sandbox_name(&fx, "permissive"),
        sandbox_name(&fx, "default"),
    );
    // All as the capless sandbox user (uid 1000).
    let mut failures = Vec::new();
    for name in [
        "ptrace",
        "process_vm_readv",
        "io_uring_setup",
        "name_to_handle_at",
        "personality_uname26",
    ] {
        let (p, d) = (probe(&perm, None, name), probe(&def, None, name));
        if p == EPERM || d != EPERM {
            failures.push(format!(
                "{name}: permissive errno {p} (must reach the kernel, not EPERM), \
                 default errno {d} (must be EPERM)"
            ));
        }
    }
    // Denied under both: the engine default already refuses these to a capless process.
    for name in ["unshare_user", "clone_newuser", "keyctl", "userfaultfd"] {
        let (p, d) = (probe(&perm, None, name), probe(&def, None, name));
        if p != EPERM || d != EPERM {
            failures.push(format!(
                "{name}: permissive errno {p}, default errno {d}, both must be EPERM"
            ));
        }
    }
    // clone3 answers ENOSYS (libc falls back to clone), so does a call newer than the
    // profile; the controls succeed.
    for (name, want) in [
        ("clone3", ENOSYS),
        ("fchmodat2", ENOSYS),
        ("personality_linux", 0),
        ("getpid", 0),
        ("socket_inet", 0),
    ] {
        let (p, d) = (probe(&perm, None, name), probe(&def, None, name));
        if p != want || d != want {
            failures.push(format!(
                "{name}: permissive errno {p}, default errno {d}, want {want}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn strict_denies_on_the_engine_what_default_allows() {
    require_engine();
    let fx = Fixture::new("sc-strict");
    install_probes(&fx);
    const CAPS: &str = "capAdd: [SYS_CHROOT, MKNOD]";
    write_sandboxes(
        &fx,
        &[
            Sbx::new(
                "default",
                &["seccomp: {policy: default}", CAPS, ROOT_USER, ALLOW_ROOT],
            ),
            Sbx::new(
                "strict",
                &["seccomp: {policy: strict}", CAPS, ROOT_USER, ALLOW_ROOT],
            ),
        ],
    );
    apply_ok(&fx);
    let (def, strict) = (sandbox_name(&fx, "default"), sandbox_name(&fx, "strict"));
    let mut failures = Vec::new();

    // As root with CAP_SYS_CHROOT and CAP_MKNOD: chroot and a device node work under
    // `default`, and are EPERM under `strict`; a fifo works under both.
    for (cmd, syscall) in [
        ("chroot / true", "chroot"),
        ("mknod /tmp/null c 1 3 && rm /tmp/null", "mknodat(S_IFCHR)"),
    ] {
        let (code, out) = sh(&def, Some("0"), cmd);
        if code != 0 {
            failures.push(format!(
                "default: `{cmd}` ({syscall}) should succeed: [{code}] {out}"
            ));
        }
        let (code, out) = sh(&strict, Some("0"), cmd);
        if code == 0 || !says_eperm(&out) {
            failures.push(format!(
                "strict: `{cmd}` ({syscall}) should be EPERM: [{code}] {out}"
            ));
        }
    }
    for name in [&def, &strict] {
        let (code, out) = sh(name, None, "mknod /tmp/fifo p && rm /tmp/fifo");
        if code != 0 {
            failures.push(format!(
                "{name}: a fifo (mknodat S_IFIFO) should work: [{code}] {out}"
            ));
        }
    }
    // Raw: setuid(0) as root; a netlink socket other than NETLINK_ROUTE as uid 1000.
    for (name, user, d_want, s_want) in [
        ("setuid_root", Some("0"), 0, EPERM),
        ("socket_netlink_uevent", None, 0, EPERM),
        ("socket_netlink_route", None, 0, 0),
        ("socket_inet", None, 0, 0),
    ] {
        let (d, s) = (probe(&def, user, name), probe(&strict, user, name));
        if d != d_want || s != s_want {
            failures.push(format!(
                "{name}: default errno {d} (want {d_want}), strict errno {s} (want {s_want})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A copy of the generated `default` profile with `execve` removed from every rule, so the
/// default action (EPERM) denies it.
fn profile_without_execve(dir: &Path) -> std::path::PathBuf {
    let out = bin().args(["seccomp", "generate"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mut p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for rule in p["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "execve");
        }
    }
    let file = dir.join("no-execve.json");
    std::fs::write(&file, serde_json::to_string_pretty(&p).unwrap()).unwrap();
    file
}

#[test]
fn a_profile_denying_execve_is_rejected_before_the_engine_is_contacted() {
    require_engine();
    let fx = Fixture::new("sc-execve");
    let engine = CountingSocket::new(fx.dir());
    let file = profile_without_execve(fx.dir());
    let file_yaml = serde_json::to_string(file.to_str().unwrap()).unwrap();
    let variants = [
        (
            "manifest deny",
            "{policy: default, deny: [execve]}".to_string(),
            None,
        ),
        (
            "profile file",
            format!("{{profile: {file_yaml}}}"),
            Some(&file),
        ),
    ];
    for (label, seccomp, named_file) in variants {
        let text = fx.default_manifest().replace(
            "  seccomp:\n    policy: default\n",
            &format!("  seccomp: {seccomp}\n"),
        );
        assert_ne!(
            text,
            fx.default_manifest(),
            "the manifest edit did not apply"
        );
        fx.write_manifest(&text);
        for cmd in ["validate", "plan", "apply"] {
            let out = fx.run(&["--engine", &engine.url, cmd]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{label} / {cmd}: {}",
                describe(&out)
            );
            assert!(
                err.contains("error[clw-seccomp-invalid]"),
                "{label} / {cmd}: {err}"
            );
            assert!(err.contains("`execve`"), "{label} / {cmd}: {err}");
            assert!(
                err.contains("nothing could start"),
                "{label} / {cmd}: {err}"
            );
            if let Some(f) = named_file {
                assert!(err.contains(f.to_str().unwrap()), "{label} / {cmd}: {err}");
            }
        }
    }
    assert_eq!(engine.connections(), 0, "the engine was contacted");
    assert!(!fx.state_path().exists(), "the state database was created");
    assert!(
        containers_with_label(&format!("clw-fortress.fortress={}", fx.name())).is_empty(),
        "a container was created"
    );
}

#[test]
fn changing_the_policy_from_default_to_strict_makes_plan_recreate() {
    require_engine();
    let fx = Fixture::new("sc-plan");
    apply_ok(&fx);
    let plan = |fx: &Fixture| {
        let out = fx.run(&["-o", "json", "plan"]);
        assert!(out.status.success(), "{}", describe(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(plan(&fx)["actions"], serde_json::json!([]));
    let text = fx
        .manifest_text()
        .replace("    policy: default\n", "    policy: strict\n");
    fx.write_manifest(&text);
    let p = plan(&fx);
    assert_eq!(p["actions"][0]["action"], "recreate", "{p}");
    assert_eq!(p["actions"][0]["sandbox"], fx.sandbox().as_str(), "{p}");
    // And apply converges to the strict profile.
    apply_ok(&fx);
    assert_eq!(plan(&fx)["actions"], serde_json::json!([]));
    let (code, out) = sh(&fx.sandbox(), None, "cat /proc/self/status");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn strict_with_a_root_user_and_no_new_privileges_off_is_refused_before_the_engine() {
    require_engine();
    // Why: on the real engine such a container cannot start at all.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("strict.json");
    let out = bin()
        .args(["seccomp", "generate", "--policy", "strict", "--out"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mut guard = ContainerGuard::new();
    let name = guard.track(&unique("clw-sc-rootstrict"));
    let opt = format!("seccomp={}", profile.display());
    // Through `run_cmd`: on Podman the docker CLI would inline the file, which Podman's compat
    // API refuses for another reason. Both engines fail here with runc's "unable to setup user"
    // (measured: Docker exits 125, Podman 126).
    let run = run_cmd(&[
        "--name",
        &name,
        "--label",
        TEST_LABEL,
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        &opt,
        "-u",
        "0:0",
        FIXTURE_IMAGE,
        "true",
    ]);
    assert!(!run.status.success(), "{}", describe(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("unable to setup user"),
        "{}",
        describe(&run)
    );

    // So clw-fortress refuses the manifest, without contacting the engine.
    let fx = Fixture::new("sc-rootnnp");
    let engine = CountingSocket::new(fx.dir());
    write_sandboxes(
        &fx,
        &[Sbx::new(
            "root",
            &[
                "seccomp: {policy: strict}",
                ROOT_USER,
                ALLOW_ROOT,
                "noNewPrivileges: false",
            ],
        )],
    );
    for cmd in ["validate", "plan", "apply"] {
        let out = fx.run(&["--engine", &engine.url, cmd]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", describe(&out));
        assert!(err.contains("error[clw-seccomp-invalid]"), "{cmd}: {err}");
        assert!(err.contains(&sandbox_name(&fx, "root")), "{cmd}: {err}");
        assert!(err.contains("noNewPrivileges"), "{cmd}: {err}");
    }
    assert_eq!(engine.connections(), 0, "the engine was contacted");
}
