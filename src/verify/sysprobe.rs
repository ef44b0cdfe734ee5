//! The syscall probe behind `seccomp.denied`: a sample of the calls a sandbox's seccomp policy
//! denies, a tiny static x86_64 program that tries each of them inside the sandbox, and the
//! decision over what it saw.
//!
//! The program depends on nothing in the image. It is built here, as bytes (an ELF header and
//! about thirty hand-encoded instructions that walk a table of calls), streamed into the
//! sandbox through the probe exec's stdin and run once. It never lets a sampled call reach the
//! kernel: before the first one it stacks a seccomp filter of its own that answers every
//! sampled call with `SECCOMP_RET_TRACE`. The kernel runs all stacked filters and keeps the
//! most restrictive answer, and an `ERRNO` of the sandbox's policy outranks `TRACE`; with no
//! tracer attached, `TRACE` skips the call and returns `ENOSYS`. So a call comes back with the
//! policy's errno when the sandbox denies it and with `ENOSYS` when the sandbox would have let
//! it through, and nothing (no reboot, no mount, no module load) ever happens either way. Calls
//! the policy itself answers with `ENOSYS` (`clone3`, and calls newer than any the profile
//! names, which runc answers `ENOSYS`) cannot be told apart from that and are left out.
//!
//! Pure: building the program, choosing the sample from a profile and deciding are all
//! without I/O; placing and running the program is the probe script's job.

use std::str::FromStr;

use crate::seccomp::{Action, Op, Profile, Rule};

use super::{Outcome, ProbeResult};

const ENOSYS: u32 = 38;

/// One call the probe can try: what the report calls it, the syscall, its arguments. The
/// arguments matter only to argument-filtered rules (`clone` flags, `personality` values);
/// the call itself never runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub label: &'static str,
    pub name: &'static str,
    pub args: [u64; 6],
}

const fn call(name: &'static str) -> Call {
    Call {
        label: name,
        name,
        args: [0; 6],
    }
}

const fn with_arg0(label: &'static str, name: &'static str, a0: u64) -> Call {
    Call {
        label,
        name,
        args: [a0, 0, 0, 0, 0, 0],
    }
}

const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const SIGCHLD: u64 = 17;
const ADDR_NO_RANDOMIZE: u64 = 0x0004_0000;
const READ_IMPLIES_EXEC: u64 = 0x0040_0000;

/// Every call the probe knows, by the groups of seccomp.md's `default` policy. Which of them a
/// run tries depends on the sandbox's profile ([`sample`]).
pub const CALLS: &[Call] = &[
    // The kernel keyring.
    call("keyctl"),
    call("add_key"),
    call("request_key"),
    // eBPF and perf.
    call("bpf"),
    call("perf_event_open"),
    // Reaching into other processes.
    call("ptrace"),
    call("process_vm_readv"),
    call("process_vm_writev"),
    call("kcmp"),
    call("pidfd_getfd"),
    call("process_madvise"),
    // I/O the filter never sees, and stalling the kernel on a fault.
    call("io_uring_setup"),
    call("io_uring_enter"),
    call("io_uring_register"),
    call("userfaultfd"),
    // The mount table.
    call("mount"),
    call("umount2"),
    call("pivot_root"),
    call("fsopen"),
    call("fsconfig"),
    call("fsmount"),
    call("fspick"),
    call("move_mount"),
    call("open_tree"),
    call("mount_setattr"),
    // Namespaces.
    with_arg0("unshare(CLONE_NEWUSER)", "unshare", CLONE_NEWUSER),
    call("setns"),
    with_arg0("clone(CLONE_NEWUSER)", "clone", CLONE_NEWUSER | SIGCHLD),
    with_arg0("clone(CLONE_NEWNS)", "clone", CLONE_NEWNS | SIGCHLD),
    // Execution domains that weaken the process.
    with_arg0(
        "personality(ADDR_NO_RANDOMIZE)",
        "personality",
        ADDR_NO_RANDOMIZE,
    ),
    with_arg0(
        "personality(READ_IMPLIES_EXEC)",
        "personality",
        READ_IMPLIES_EXEC,
    ),
    // Host administration.
    call("acct"),
    call("quotactl"),
    call("swapon"),
    call("swapoff"),
    call("reboot"),
    call("kexec_load"),
    call("kexec_file_load"),
    call("init_module"),
    call("finit_module"),
    call("delete_module"),
    call("lookup_dcookie"),
    call("vhangup"),
    // File handles (the "shocker" escape).
    call("name_to_handle_at"),
    call("open_by_handle_at"),
];

/// One sampled call and the errno the sandbox's profile answers it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    pub label: String,
    /// The x86_64 syscall number.
    pub nr: u32,
    pub args: [u64; 6],
    pub errno: u32,
}

/// What a profile does with one call made by a process holding `caps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied {
        errno: u32,
    },
    /// Refused in a way the probe cannot observe as such (`ENOSYS`, a kill, a trap).
    Unobservable(String),
}

fn x86_64_nr(name: &str) -> Option<u32> {
    syscalls::x86_64::Sysno::from_str(name)
        .ok()
        .map(|s| s.id() as u32)
}

fn is_x86_64(arch: &str) -> bool {
    matches!(arch, "amd64" | "x86_64")
}

/// Whether the engine puts `rule` into the filter of an x86_64 container holding `caps`
/// (`includes`/`excludes`; a minimum kernel counts as met: the probe's host is what it is).
fn rule_applies(rule: &Rule, caps: &[String]) -> bool {
    let has = |c: &String| caps.contains(&crate::spec::capability(c));
    if let Some(inc) = &rule.includes {
        if !inc.caps().iter().all(has) {
            return false;
        }
        if !inc.arches().is_empty() && !inc.arches().iter().any(|a| is_x86_64(a)) {
            return false;
        }
    }
    if let Some(exc) = &rule.excludes {
        if exc.caps().iter().any(has) || exc.arches().iter().any(|a| is_x86_64(a)) {
            return false;
        }
    }
    true
}

fn arg_holds(op: Op, value: u64, value_two: Option<u64>, arg: u64) -> bool {
    match op {
        Op::Ne => arg != value,
        Op::Lt => arg < value,
        Op::Le => arg <= value,
        Op::Eq => arg == value,
        Op::Ge => arg >= value,
        Op::Gt => arg > value,
        Op::MaskedEq => arg & value == value_two.unwrap_or(0),
    }
}

fn refusal(action: Action, errno: Option<u32>) -> Verdict {
    match action {
        Action::Errno => Verdict::Denied {
            errno: errno.unwrap_or(1),
        },
        other => Verdict::Unobservable(format!("the profile answers it with {}", other.as_str())),
    }
}

/// What `profile` does with `call` for a process holding `caps` (capability names with or
/// without `CAP_`): a refusing rule that matches wins, then an allowing one, then the default
/// action. runc answers calls newer than every call the profile names with `ENOSYS` (so libc
/// can fall back), whatever the default action.
pub fn verdict(profile: &Profile, call: &Call, caps: &[String]) -> Verdict {
    let caps: Vec<String> = caps.iter().map(|c| crate::spec::capability(c)).collect();
    let mut allowed = false;
    let mut refused = None;
    for rule in &profile.syscalls {
        if !rule.all_names().any(|n| n == call.name) || !rule_applies(rule, &caps) {
            continue;
        }
        let matches = rule.args().iter().all(|a| {
            a.index < 6 && arg_holds(a.op, a.value, a.value_two, call.args[a.index as usize])
        });
        if !matches {
            continue;
        }
        if rule.action.lets_through() {
            allowed = true;
        } else if refused.is_none() {
            refused = Some(refusal(rule.action, rule.errno_ret));
        }
    }
    if let Some(v) = refused {
        return v;
    }
    if allowed {
        return Verdict::Allowed;
    }
    let newest = profile
        .syscalls
        .iter()
        .flat_map(Rule::all_names)
        .filter_map(x86_64_nr)
        .max();
    if profile.default_action != Action::Allow
        && x86_64_nr(call.name).zip(newest).is_some_and(|(n, m)| n > m)
    {
        return Verdict::Unobservable(
            "it is newer than every call the profile names, which runc answers with ENOSYS".into(),
        );
    }
    if profile.default_action.lets_through() {
        Verdict::Allowed
    } else {
        refusal(profile.default_action, profile.default_errno_ret)
    }
}

/// The calls of [`CALLS`] that `profile` denies observably, and the labels of those it
/// refuses in a way the probe cannot tell from its own `ENOSYS` (with the reason).
pub fn sample(profile: &Profile, caps: &[String]) -> (Vec<Sampled>, Vec<String>) {
    let mut out = Vec::new();
    let mut unobservable = Vec::new();
    for c in CALLS {
        let Some(nr) = x86_64_nr(c.name) else {
            continue;
        };
        match verdict(profile, c, caps) {
            Verdict::Denied { errno } if errno != ENOSYS => out.push(Sampled {
                label: c.label.to_string(),
                nr,
                args: c.args,
                errno,
            }),
            Verdict::Denied { .. } => {
                unobservable.push(format!("{} (the profile answers it with ENOSYS)", c.label))
            }
            Verdict::Unobservable(why) => unobservable.push(format!("{} ({why})", c.label)),
            Verdict::Allowed => {}
        }
    }
    (out, unobservable)
}

// The program.

/// Where the program's two segments are mapped (a fixed-address `ET_EXEC`: no loader, no
/// relocation; absolute addresses in the table are final).
const CODE_BASE: u64 = 0x40_0000;
const DATA_BASE: u64 = 0x60_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

const PR_SET_SECCOMP: u64 = 22;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const SECCOMP_MODE_FILTER: u64 = 2;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const NR_PRCTL: u64 = 157;

/// Table entries before the sample: `prctl(PR_SET_NO_NEW_PRIVS)` (needed to install a filter
/// without privileges) and `prctl(PR_SET_SECCOMP)` installing the probe's own filter. Both must
/// return 0, or the program stops before the first sampled call.
pub const SETUP_CALLS: usize = 2;

/// The code: for each 64-byte table entry `{nr, a0..a5, must_succeed}`, make the call, store
/// and write(1) its 8-byte result, stop early when a must-succeed entry failed; then
/// `exit_group(0)`. The two `lea` displacements and the count are patched in by [`program`].
const CODE: [u8; 110] = [
    0x48, 0x8d, 0x1d, 0, 0, 0, 0, // 0: lea rbx, [rip+table]
    0x4c, 0x8d, 0x2d, 0, 0, 0, 0, // 7: lea r13, [rip+results]
    0x41, 0xbc, 0, 0, 0, 0, // 14: mov r12d, count
    0x48, 0x8b, 0x03, // 20 (loop): mov rax, [rbx]
    0x48, 0x8b, 0x7b, 0x08, // mov rdi, [rbx+8]
    0x48, 0x8b, 0x73, 0x10, // mov rsi, [rbx+16]
    0x48, 0x8b, 0x53, 0x18, // mov rdx, [rbx+24]
    0x4c, 0x8b, 0x53, 0x20, // mov r10, [rbx+32]
    0x4c, 0x8b, 0x43, 0x28, // mov r8, [rbx+40]
    0x4c, 0x8b, 0x4b, 0x30, // mov r9, [rbx+48]
    0x0f, 0x05, // 47: syscall
    0x49, 0x89, 0x45, 0x00, // 49: mov [r13], rax
    0x49, 0x89, 0xc6, // 53: mov r14, rax
    0xb8, 0x01, 0, 0, 0, // 56: mov eax, 1 (write)
    0xbf, 0x01, 0, 0, 0, // 61: mov edi, 1
    0x4c, 0x89, 0xee, // 66: mov rsi, r13
    0xba, 0x08, 0, 0, 0, // 69: mov edx, 8
    0x0f, 0x05, // 74: syscall
    0x48, 0x83, 0x7b, 0x38, 0x00, // 76: cmp qword [rbx+56], 0
    0x74, 0x05, // 81: je next (88)
    0x4d, 0x85, 0xf6, // 83: test r14, r14
    0x75, 0x0d, // 86: jne done (101)
    0x48, 0x83, 0xc3, 0x40, // 88 (next): add rbx, 64
    0x49, 0x83, 0xc5, 0x08, // 92: add r13, 8
    0x41, 0xff, 0xcc, // 96: dec r12d
    0x75, 0xaf, // 99: jnz loop (20 - 101)
    0xb8, 0xe7, 0, 0, 0, // 101 (done): mov eax, 231 (exit_group)
    0x31, 0xff, // 106: xor edi, edi
    0x0f, 0x05, // 108: syscall
];

/// A classic BPF instruction (`struct sock_filter`).
fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..2].copy_from_slice(&code.to_le_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..].copy_from_slice(&k.to_le_bytes());
    b
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// The probe's own filter: `TRACE` for every sampled syscall number, `ALLOW` for the rest
/// (`write` and `exit_group` among them) and for any other architecture.
fn filter(nrs: &[u32]) -> Vec<[u8; 8]> {
    let mut nrs: Vec<u32> = nrs.to_vec();
    nrs.sort_unstable();
    nrs.dedup();
    let k = nrs.len();
    assert!(k < 255, "a jump offset is one byte");
    let mut f = vec![
        bpf(BPF_LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        bpf(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        bpf(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        bpf(BPF_LD_W_ABS, 0, 0, 0), // seccomp_data.nr
    ];
    for (i, nr) in nrs.iter().enumerate() {
        f.push(bpf(BPF_JEQ_K, (k - i) as u8, 0, *nr));
    }
    f.push(bpf(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW));
    f.push(bpf(BPF_RET_K, 0, 0, SECCOMP_RET_TRACE));
    f
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn program_header(b: &mut Vec<u8>, flags: u32, offset: u64, vaddr: u64, size: u64) {
    put_u32(b, 1); // PT_LOAD
    put_u32(b, flags);
    put_u64(b, offset);
    put_u64(b, vaddr);
    put_u64(b, vaddr);
    put_u64(b, size);
    put_u64(b, size);
    put_u64(b, 0x1000);
}

/// The static x86_64 ELF executable that tries `sample`. It writes one little-endian `i64`
/// per table entry it ran (the [`SETUP_CALLS`] first), each the raw return value (`-errno` on
/// failure).
pub fn program(sample: &[Sampled]) -> Vec<u8> {
    let code_off = EHDR + 2 * PHDR;
    let data_off = (code_off + CODE.len()).next_multiple_of(16);
    let data_vaddr = DATA_BASE + data_off as u64;

    // Data: sock_fprog, the filter, the table, the results.
    let nrs: Vec<u32> = sample.iter().map(|s| s.nr).collect();
    let f = filter(&nrs);
    let fprog_at = data_vaddr;
    let filter_at = fprog_at + 16;
    let table_at = filter_at + 8 * f.len() as u64;
    let mut entries: Vec<(u64, [u64; 6], bool)> = vec![
        (NR_PRCTL, [PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0], true),
        (
            NR_PRCTL,
            [PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog_at, 0, 0, 0],
            true,
        ),
    ];
    entries.extend(sample.iter().map(|s| (u64::from(s.nr), s.args, false)));
    let results_at = table_at + 64 * entries.len() as u64;

    let mut data = Vec::new();
    put_u16(&mut data, f.len() as u16);
    data.extend_from_slice(&[0; 6]);
    put_u64(&mut data, filter_at);
    for ins in &f {
        data.extend_from_slice(ins);
    }
    for (nr, args, must) in &entries {
        put_u64(&mut data, *nr);
        for a in args {
            put_u64(&mut data, *a);
        }
        put_u64(&mut data, u64::from(*must));
    }
    data.extend(std::iter::repeat_n(0u8, 8 * entries.len()));

    let mut code = CODE.to_vec();
    let code_vaddr = CODE_BASE + code_off as u64;
    let rel = |next: usize, target: u64| -> [u8; 4] {
        let disp = target as i64 - (code_vaddr + next as u64) as i64;
        (disp as i32).to_le_bytes()
    };
    code[3..7].copy_from_slice(&rel(7, table_at));
    code[10..14].copy_from_slice(&rel(14, results_at));
    code[16..20].copy_from_slice(&(entries.len() as u32).to_le_bytes());

    let mut b = Vec::with_capacity(data_off + data.len());
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    b.extend_from_slice(&[0; 8]);
    put_u16(&mut b, 2); // ET_EXEC
    put_u16(&mut b, 0x3e); // EM_X86_64
    put_u32(&mut b, 1);
    put_u64(&mut b, code_vaddr); // e_entry
    put_u64(&mut b, EHDR as u64); // e_phoff
    put_u64(&mut b, 0); // e_shoff
    put_u32(&mut b, 0);
    put_u16(&mut b, EHDR as u16);
    put_u16(&mut b, PHDR as u16);
    put_u16(&mut b, 2);
    put_u16(&mut b, 64);
    put_u16(&mut b, 0);
    put_u16(&mut b, 0);
    let code_end = (code_off + code.len()) as u64;
    program_header(&mut b, 4 | 1, 0, CODE_BASE, code_end);
    program_header(
        &mut b,
        4 | 2,
        data_off as u64,
        data_vaddr,
        data.len() as u64,
    );
    b.extend_from_slice(&code);
    b.resize(data_off, 0);
    b.extend_from_slice(&data);
    b
}

/// The program's output as return values, one per table entry that ran.
pub fn results(out: &[u8]) -> Vec<i64> {
    out.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// How the probe script placed and ran the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// It ran in `dir`, exited `status` and printed `out`.
    Ran {
        dir: String,
        status: String,
        out: Vec<u8>,
    },
    /// It could not be placed or run anywhere: why, per place tried.
    NotRun(String),
}

fn errno_name(e: i64) -> String {
    let n = syscalls::Errno::new(e as i32);
    n.name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("errno {e}"))
}

/// `seccomp.denied` from the sample and the run. `unobservable` are the calls left out.
pub fn decide(sample: &[Sampled], unobservable: &[String], run: Option<&Run>) -> ProbeResult {
    let r = |o, d: String| ProbeResult::new("seccomp.denied", o, d);
    let left_out = if unobservable.is_empty() {
        String::new()
    } else {
        format!("; not observable: {}", unobservable.join(", "))
    };
    if sample.is_empty() {
        return r(
            Outcome::Inconclusive,
            format!("the policy denies none of the calls the probe can try{left_out}"),
        );
    }
    let (dir, status, out) = match run {
        None => {
            return r(
                Outcome::Inconclusive,
                "the syscall probe was not run (no probe for this architecture)".into(),
            )
        }
        Some(Run::NotRun(why)) => {
            return r(
                Outcome::Inconclusive,
                format!(
                    "the syscall probe could not be placed or run: {why}; it runs from an rw \
                     bind the sandbox's user can write or an exec-mounted tmpfs, so declare one \
                     to make this probe conclusive"
                ),
            )
        }
        Some(Run::Ran { dir, status, out }) => (dir, status, out),
    };
    let got = results(out);
    if let Some((i, v)) = got
        .iter()
        .take(SETUP_CALLS)
        .enumerate()
        .find(|(_, v)| **v != 0)
    {
        let what = ["prctl(PR_SET_NO_NEW_PRIVS)", "prctl(PR_SET_SECCOMP)"][i];
        return r(
            Outcome::Inconclusive,
            format!(
                "the syscall probe could not set up its own filter: {what} failed with {}",
                errno_name(-v)
            ),
        );
    }
    let mut through = Vec::new();
    let mut other = Vec::new();
    let mut refused = Vec::new();
    for (s, v) in sample.iter().zip(got.iter().skip(SETUP_CALLS)) {
        if *v == -i64::from(s.errno) {
            refused.push(s.label.clone());
        } else if *v == -i64::from(ENOSYS) {
            through.push(s.label.clone());
        } else {
            other.push(format!(
                "{} ({}, the policy answers {})",
                s.label,
                if *v < 0 {
                    errno_name(-v)
                } else {
                    format!("returned {v}")
                },
                errno_name(i64::from(s.errno))
            ));
        }
    }
    let ran = got.len().saturating_sub(SETUP_CALLS);
    if !through.is_empty() || !other.is_empty() {
        let mut parts = Vec::new();
        if !through.is_empty() {
            parts.push(format!(
                "denied by the policy but let through: {}",
                through.join(", ")
            ));
        }
        if !other.is_empty() {
            parts.push(format!(
                "refused otherwise than the policy says: {}",
                other.join(", ")
            ));
        }
        return r(Outcome::Fail, parts.join("; "));
    }
    if ran < sample.len() {
        return r(
            Outcome::Inconclusive,
            format!(
                "the syscall probe stopped (exit {status}) after {ran} of {} calls, all refused",
                sample.len()
            ),
        );
    }
    r(
        Outcome::Pass,
        format!(
            "{} calls refused as the policy says (probe run from {dir}): {}{left_out}",
            refused.len(),
            refused.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SeccompPolicy;

    fn profile(p: SeccompPolicy) -> Profile {
        crate::seccomp::generate(p, &[], &[]).unwrap()
    }

    fn labels(s: &[Sampled]) -> Vec<&str> {
        s.iter().map(|s| s.label.as_str()).collect()
    }

    #[test]
    fn the_default_policy_samples_every_group_and_leaves_out_nothing_it_can_observe() {
        let (s, unobservable) = sample(&profile(SeccompPolicy::Default), &[]);
        assert!(s.len() >= 20, "{:?}", labels(&s));
        for want in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "userfaultfd",
            "io_uring_setup",
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "open_tree",
            "move_mount",
            "unshare(CLONE_NEWUSER)",
            "setns",
            "clone(CLONE_NEWUSER)",
            "personality(ADDR_NO_RANDOMIZE)",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "acct",
            "swapon",
            "reboot",
            "name_to_handle_at",
            "open_by_handle_at",
            "kcmp",
        ] {
            assert!(labels(&s).contains(&want), "{want} in {:?}", labels(&s));
        }
        assert!(s.iter().all(|s| s.errno == 1), "EPERM everywhere");
        assert_eq!(unobservable, Vec::<String>::new());
    }

    #[test]
    fn argument_filters_and_capabilities_decide_what_is_sampled() {
        let engine = profile(SeccompPolicy::Permissive);
        let (s, _) = sample(&engine, &[]);
        let l = labels(&s);
        // The engine default lets ptrace through on any supported kernel and clone without
        // namespace flags, but not clone with them, and refuses mount without CAP_SYS_ADMIN.
        assert!(!l.contains(&"ptrace"), "{l:?}");
        assert!(l.contains(&"clone(CLONE_NEWUSER)"), "{l:?}");
        assert!(l.contains(&"mount"), "{l:?}");
        assert!(l.contains(&"personality(ADDR_NO_RANDOMIZE)"), "{l:?}");
        let (s, _) = sample(&engine, &["CAP_SYS_ADMIN".into()]);
        assert!(!labels(&s).contains(&"mount"));
    }

    #[test]
    fn a_profile_allowing_everything_but_four_calls_samples_those_four() {
        let p = Profile::from_json(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare","mount","umount2","setns"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let (s, unobservable) = sample(&p, &[]);
        assert_eq!(
            labels(&s),
            ["mount", "umount2", "unshare(CLONE_NEWUSER)", "setns"]
        );
        assert!(unobservable.is_empty());
    }

    #[test]
    fn enosys_answers_and_calls_newer_than_the_profile_are_left_out() {
        let p = Profile::from_json(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","keyctl"],"action":"SCMP_ACT_ALLOW"},{"names":["bpf"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        )
        .unwrap();
        let (s, unobservable) = sample(&p, &[]);
        let l = labels(&s);
        assert!(!l.contains(&"keyctl") && !l.contains(&"bpf"), "{l:?}");
        // keyctl (250) is the newest named call: io_uring_setup (425) is answered ENOSYS.
        assert!(l.contains(&"acct"), "{l:?}");
        assert!(!l.contains(&"io_uring_setup"), "{l:?}");
        assert!(unobservable.iter().any(|u| u.starts_with("bpf (")));
        assert!(unobservable
            .iter()
            .any(|u| u.starts_with("io_uring_setup (") && u.contains("runc")));
    }

    fn sampled(labels: &[&str]) -> Vec<Sampled> {
        labels
            .iter()
            .map(|l| Sampled {
                label: l.to_string(),
                nr: x86_64_nr(l).unwrap(),
                args: [0; 6],
                errno: 1,
            })
            .collect()
    }

    fn out(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn ran(values: &[i64]) -> Run {
        Run::Ran {
            dir: "/tmp".into(),
            status: "0".into(),
            out: out(values),
        }
    }

    #[test]
    fn the_decision_names_each_call_let_through_and_never_passes_what_did_not_run() {
        let s = sampled(&["keyctl", "bpf", "ptrace"]);
        let d = decide(&s, &[], Some(&ran(&[0, 0, -1, -1, -1])));
        assert_eq!(d.outcome, Outcome::Pass, "{d:?}");
        let d = decide(&s, &[], Some(&ran(&[0, 0, -1, -38, -38])));
        assert_eq!(d.outcome, Outcome::Fail);
        assert!(
            d.detail.contains("let through: bpf, ptrace"),
            "{}",
            d.detail
        );
        let d = decide(&s, &[], Some(&ran(&[0, 0, -13, -1, -1])));
        assert_eq!(d.outcome, Outcome::Fail);
        assert!(d.detail.contains("keyctl (EACCES"), "{}", d.detail);
        // Stopped early: inconclusive, never pass.
        let d = decide(&s, &[], Some(&ran(&[0, 0, -1])));
        assert_eq!(d.outcome, Outcome::Inconclusive);
        // Its own filter could not be installed: nothing was tried.
        let d = decide(&s, &[], Some(&ran(&[0, -1])));
        assert_eq!(d.outcome, Outcome::Inconclusive);
        assert!(d.detail.contains("PR_SET_SECCOMP"), "{}", d.detail);
        let d = decide(&s, &[], Some(&Run::NotRun("/tmp: noexec".into())));
        assert_eq!(d.outcome, Outcome::Inconclusive);
        assert!(d.detail.contains("/tmp: noexec"));
        assert_eq!(decide(&s, &[], None).outcome, Outcome::Inconclusive);
        assert_eq!(decide(&[], &[], None).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn every_sampled_call_is_trapped_by_the_programs_own_filter() {
        let (s, _) = sample(&profile(SeccompPolicy::Default), &[]);
        let f = filter(&s.iter().map(|s| s.nr).collect::<Vec<_>>());
        let trapped: Vec<u32> = f
            .iter()
            .filter(|i| u16::from_le_bytes([i[0], i[1]]) == BPF_JEQ_K)
            .map(|i| u32::from_le_bytes([i[4], i[5], i[6], i[7]]))
            .collect();
        for c in &s {
            assert!(trapped.contains(&c.nr), "{}", c.label);
        }
        // Each comparison jumps exactly to the final TRACE.
        let last = f.len() - 1;
        for (at, i) in f.iter().enumerate().skip(4).take(f.len() - 6) {
            assert_eq!(at + 1 + i[2] as usize, last);
        }
    }

    /// Runs the program on the build host. Safe by construction: every sampled call is
    /// trapped by the program's own filter and never reaches the kernel, so each comes back
    /// `ENOSYS` (or `EPERM` when the test itself runs under a filter that denies it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_program_runs_and_every_sampled_call_is_skipped_by_its_own_filter() {
        use std::os::unix::fs::PermissionsExt;
        let (s, _) = sample(&profile(SeccompPolicy::Default), &[]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        std::fs::write(&path, program(&s)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Another test thread forking while the file is open for writing makes exec fail
        // with ETXTBSY for a moment.
        let output = (0..50)
            .find_map(|_| match std::process::Command::new(&path).output() {
                Ok(o) => Some(o),
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                Err(e) => panic!("{e}"),
            })
            .expect("the program ran");
        assert!(output.status.success(), "{output:?}");
        let got = results(&output.stdout);
        assert_eq!(got.len(), SETUP_CALLS + s.len(), "{got:?}");
        assert_eq!(&got[..SETUP_CALLS], &[0, 0]);
        for (c, v) in s.iter().zip(&got[SETUP_CALLS..]) {
            assert!(*v == -38 || *v == -1, "{}: {v}", c.label);
        }
    }
}
