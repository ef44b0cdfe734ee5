//! Validation every profile passes before an engine sees it (seccomp.md "Validation").
//!
//! Owns the rules a profile must satisfy: known names, the start-critical set, no
//! contradictions, not unconfined. Pure: no files, no engine. Returns every problem at once.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::model::{Action, Arch, Profile, Rule};
use super::SeccompError;

/// A 64-bit ABI whose syscall table we hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    X86_64,
    Aarch64,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::X86_64, Target::Aarch64];

    /// Whether `name` is a syscall of this ABI.
    pub fn has(self, name: &str) -> bool {
        match self {
            Target::X86_64 => syscalls::x86_64::Sysno::from_str(name).is_ok(),
            Target::Aarch64 => syscalls::aarch64::Sysno::from_str(name).is_ok(),
        }
    }

    /// Every syscall name of this ABI.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Target::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| s.name()).collect(),
            Target::Aarch64 => syscalls::aarch64::Sysno::iter().map(|s| s.name()).collect(),
        }
    }

    /// The Go architecture names `includes.arches`/`excludes.arches` use for this ABI.
    fn go_names(self) -> &'static [&'static str] {
        match self {
            Target::X86_64 => &["amd64", "x86_64"],
            Target::Aarch64 => &["arm64", "aarch64"],
        }
    }

    fn arch(self) -> Arch {
        match self {
            Target::X86_64 => Arch::X86_64,
            Target::Aarch64 => Arch::Aarch64,
        }
    }
}

/// Whether a syscall name exists on x86_64 or aarch64.
pub fn is_known(name: &str) -> bool {
    Target::ALL.iter().any(|t| t.has(name))
}

/// The most rules a profile may hold, and the most syscall names over all its rules. The
/// engine's default profile has 26 rules naming 349 syscalls, and x86_64 and aarch64 together
/// have fewer than 500; a profile past either limit is refused before anything else is
/// checked, so a file of a million names costs one count.
pub const MAX_RULES: usize = 4096;
pub const MAX_NAMES: usize = 4096;

/// Unknown names reported one by one, each with its nearest known name; past these they are
/// only counted (a suggestion compares against every known name).
pub const MAX_UNKNOWN_LISTED: usize = 20;

/// Every known name of both ABIs, sorted, computed once.
fn known_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&str> = Target::ALL.iter().flat_map(|t| t.names()).collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}

/// The nearest known name, if one is close enough to be a typo.
pub fn suggest(name: &str) -> Option<String> {
    known_names()
        .iter()
        .copied()
        .map(|n| (strsim::damerau_levenshtein(name, n), n))
        .filter(|(d, _)| *d <= 2.max(name.len() / 3))
        .min()
        .map(|(_, n)| n.to_string())
}

/// The oldest host kernel assumed: 5.10, the oldest upstream long-term kernel still
/// maintained. An `includes.minKernel` at or below it counts as always met (the engine
/// default's `ptrace` group asks for 4.8); a newer or unparsable one is a condition.
pub const ASSUMED_KERNEL: (u32, u32) = (5, 10);

fn kernel_at_most_assumed(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) <= ASSUMED_KERNEL,
        (Some(Ok(major)), None) => (major, 0) <= ASSUMED_KERNEL,
        _ => false,
    }
}

/// Whether the rule applies on `target` whatever the capabilities and arguments, on any
/// kernel from [`ASSUMED_KERNEL`].
pub fn applies_unconditionally(rule: &Rule, target: Target) -> bool {
    if !rule.args().is_empty() {
        return false;
    }
    if let Some(inc) = &rule.includes {
        if !inc.caps().is_empty()
            || inc
                .min_kernel
                .as_deref()
                .is_some_and(|k| !kernel_at_most_assumed(k))
        {
            return false;
        }
        if !inc.arches().is_empty()
            && !inc
                .arches()
                .iter()
                .any(|a| target.go_names().contains(&a.as_str()))
        {
            return false;
        }
    }
    if let Some(exc) = &rule.excludes {
        if !exc.caps().is_empty() || exc.min_kernel.is_some() {
            return false;
        }
        if exc
            .arches()
            .iter()
            .any(|a| target.go_names().contains(&a.as_str()))
        {
            return false;
        }
    }
    true
}

/// Names some rule lets through unconditionally on `target`.
pub fn allowed_unconditionally(profile: &Profile, target: Target) -> BTreeSet<&str> {
    unconditional(profile, target, true)
}

/// Names some rule refuses (errno, kill, trap, trace, notify) unconditionally on `target`.
pub fn denied_unconditionally(profile: &Profile, target: Target) -> BTreeSet<&str> {
    unconditional(profile, target, false)
}

fn unconditional(profile: &Profile, target: Target, through: bool) -> BTreeSet<&str> {
    profile
        .syscalls
        .iter()
        .filter(|r| r.action.lets_through() == through && applies_unconditionally(r, target))
        .flat_map(Rule::all_names)
        .collect()
}

/// A call every container makes after the seccomp filter is loaded.
#[derive(Debug, Clone, Copy)]
pub struct Critical {
    pub name: &'static str,
    /// Why every container needs it, as the error sentence says it.
    pub why: &'static str,
    /// The one ABI that has or needs it, if not all.
    pub only: Option<Target>,
}

/// Calls every container makes after the filter is loaded, so a profile must allow each one
/// unconditionally. runc loads the filter in `runc init` (libcontainer/standard_init_linux.go):
/// with `no_new_privileges` as late as possible, right before `execve`; without it *before*
/// `finalizeNamespace`, which drops capabilities and switches user. After loading, runc (a Go
/// program) still runs its runtime (futexes, signal masks and handlers, `sigaltstack` on each new
/// thread, `mmap`/`munmap`), opens the exec fifo with `openat`, writes to it, checks
/// `getppid`/`getpid`, lists and closes its fds (`getdents64`, `close`) and calls `execve`. Then
/// the dynamic loader and libc of the container's first process map libraries (`openat`,
/// `fstat`/`newfstatat`, `read`, `mmap`, `mprotect`, `munmap`, `close`), set up TLS and the thread
/// (`arch_prctl` on x86_64, `set_tid_address`), grow the heap (`brk`) and finally exit. Calls that
/// only some images make (`rseq`, `set_robust_list`, `prlimit64`, `getrandom`) are not in the set:
/// libc tolerates their failure. `setresuid`/`setresgid`/`setgroups` are not in it either: runc
/// calls them after the filter only without `no_new_privileges`, and `strict` allows them with
/// argument filters (never to uid 0).
pub const START_CRITICAL: &[Critical] = &[
    Critical {
        name: "execve",
        why: "the container's first process is started with execve after the filter is loaded, so \
            nothing could start",
        only: None,
    },
    Critical {
        name: "exit",
        why: "threads end with exit; the runtime's own threads and every threaded program need it",
        only: None,
    },
    Critical {
        name: "exit_group",
        why: "every process ends with exit_group; without it no process can terminate cleanly",
        only: None,
    },
    Critical {
        name: "rt_sigreturn",
        why: "returning from any signal handler uses rt_sigreturn; the first handled signal would \
            crash the process",
        only: None,
    },
    Critical {
        name: "rt_sigaction",
        why: "runc's Go runtime and every libc install signal handlers after the filter is loaded",
        only: None,
    },
    Critical {
        name: "rt_sigprocmask",
        why:
            "runc's Go runtime and libc block and unblock signals on every thread, also after the \
            filter is loaded",
        only: None,
    },
    Critical {
        name: "sigaltstack",
        why: "runc's Go runtime gives every thread an alternate signal stack, also after the \
            filter is loaded",
        only: None,
    },
    Critical {
        name: "futex",
        why:
            "runc's Go runtime and every threaded program synchronise with futex; runc would hang \
            before execve",
        only: None,
    },
    Critical {
        name: "brk",
        why: "libc's allocator and the dynamic loader grow the heap with brk at startup",
        only: None,
    },
    Critical {
        name: "mmap",
        why: "the dynamic loader maps every shared library with mmap, and runc's Go runtime \
            allocates with it",
        only: None,
    },
    Critical {
        name: "munmap",
        why: "the dynamic loader and runc's Go runtime release mappings with munmap",
        only: None,
    },
    Critical {
        name: "mprotect",
        why: "the dynamic loader makes relocated segments read-only (RELRO) with mprotect",
        only: None,
    },
    Critical {
        name: "read",
        why: "the dynamic loader reads ELF headers and runc reads its sync pipe; nothing works \
            without read",
        only: None,
    },
    Critical {
        name: "write",
        why:
            "runc writes to the exec fifo after the filter is loaded to signal the start; nothing \
            can print without write",
        only: None,
    },
    Critical {
        name: "close",
        why: "runc closes its private descriptors before execve so they cannot leak into the \
            container",
        only: None,
    },
    Critical {
        name: "getdents64",
        why: "runc lists /proc/self/fd with getdents64 to close its private descriptors before \
            execve",
        only: None,
    },
    Critical {
        name: "openat",
        why: "runc opens the exec fifo and the dynamic loader opens shared libraries with openat",
        only: None,
    },
    Critical {
        name: "fstat",
        why: "the dynamic loader and libc stat opened files (older glibc and musl use fstat)",
        only: None,
    },
    Critical {
        name: "newfstatat",
        why: "the dynamic loader and glibc from 2.33 stat opened files with newfstatat",
        only: None,
    },
    Critical {
        name: "arch_prctl",
        why: "libc sets up thread-local storage with arch_prctl on x86_64 before main",
        only: Some(Target::X86_64),
    },
    Critical {
        name: "set_tid_address",
        why: "libc initialises the main thread with set_tid_address at startup",
        only: None,
    },
    Critical {
        name: "getpid",
        why: "runc records the container's pid with getpid after the filter is loaded",
        only: None,
    },
    Critical {
        name: "getppid",
        why: "runc checks with getppid that its parent is still alive after the filter is loaded",
        only: None,
    },
    Critical {
        name: "prctl",
        why: "runc sets the parent-death signal and keep-caps with prctl after the filter is \
            loaded",
        only: None,
    },
    Critical {
        name: "capget",
        why: "runc reads the capability sets to drop them after the filter is loaded without \
            no_new_privileges",
        only: None,
    },
    Critical {
        name: "capset",
        why: "runc drops capabilities with capset after the filter is loaded without \
            no_new_privileges",
        only: None,
    },
];

/// The architectures a profile targets that we can check; both when it names none (native).
fn targets(profile: &Profile) -> Vec<Target> {
    let mut arches: Vec<Arch> = profile.architectures.clone().unwrap_or_default();
    for m in profile.arch_map.iter().flatten() {
        arches.push(m.architecture);
        arches.extend(m.sub_architectures.iter().flatten().copied());
    }
    if arches.is_empty() {
        return Target::ALL.to_vec();
    }
    Target::ALL
        .into_iter()
        .filter(|t| arches.contains(&t.arch()))
        .collect()
}

/// Checks `profile`; returns its warnings, or every problem found.
pub fn validate(profile: &Profile) -> Result<Vec<String>, SeccompError> {
    let rules = profile.syscalls.len();
    let names: usize = profile.syscalls.iter().map(|r| r.all_names().count()).sum();
    if rules > MAX_RULES {
        return Err(SeccompError::TooMany {
            what: "rules",
            count: rules,
            max: MAX_RULES,
        });
    }
    if names > MAX_NAMES {
        return Err(SeccompError::TooMany {
            what: "syscall names",
            count: names,
            max: MAX_NAMES,
        });
    }

    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let refusing = profile.syscalls.iter().any(|r| !r.action.lets_through());
    if profile.default_action.lets_through() && !refusing {
        errors.push(SeccompError::Unconfined {
            default_action: profile.default_action.as_str(),
        });
    }
    if profile.default_action.is_kill() {
        warnings.push(format!(
            "the default action {} kills the process on any unlisted call, which makes failures \
             opaque; SCMP_ACT_ERRNO with EPERM is what programs expect",
            profile.default_action.as_str()
        ));
    }

    let mut unknown = BTreeSet::new();
    for (i, rule) in profile.syscalls.iter().enumerate() {
        if rule.is_empty() {
            errors.push(SeccompError::EmptyRule { index: i });
        }
        for name in rule.all_names() {
            if !is_known(name) && unknown.insert(name) && unknown.len() <= MAX_UNKNOWN_LISTED {
                errors.push(SeccompError::UnknownSyscall {
                    name: name.to_string(),
                    suggestion: suggest(name),
                });
            }
        }
        for arg in rule.args() {
            if arg.index > 5 {
                errors.push(SeccompError::ArgIndex {
                    rule: i,
                    index: arg.index,
                });
            }
        }
        let same_as_default = rule.action == profile.default_action
            && (rule.action != Action::Errno
                || rule.errno_ret.unwrap_or(libc_eperm()) == default_errno(profile));
        // A commented rule that repeats the default is a deliberate, documented deny (the
        // generated policies use those for `explain`); only an uncommented one is a likely slip.
        if same_as_default && rule.comment.is_none() {
            warnings.push(format!(
                "rule #{i} ({}) has the default action {}, so the runtime ignores it; remove it \
                 or add a comment saying why it is there",
                join_names(rule),
                rule.action.as_str()
            ));
        }
        if rule.action.is_kill() {
            warnings.push(format!(
                "rule #{i} ({}) kills the process; libraries that probe a call then die instead \
                 of seeing an error, use SCMP_ACT_ERRNO",
                join_names(rule)
            ));
        }
    }

    if unknown.len() > MAX_UNKNOWN_LISTED {
        errors.push(SeccompError::MoreUnknown {
            count: unknown.len() - MAX_UNKNOWN_LISTED,
        });
    }

    let mut contradictions = BTreeSet::new();
    for target in Target::ALL {
        let allowed = allowed_unconditionally(profile, target);
        let denied = denied_unconditionally(profile, target);
        for name in allowed.intersection(&denied) {
            if contradictions.insert(*name) {
                errors.push(SeccompError::Contradiction {
                    name: name.to_string(),
                });
            }
        }
    }

    for target in targets(profile) {
        let allowed = allowed_unconditionally(profile, target);
        let denied = denied_unconditionally(profile, target);
        for Critical { name, why, only } in START_CRITICAL {
            if only.is_some_and(|t| t != target) || !target.has(name) {
                continue;
            }
            let refused = denied.contains(name)
                || (!profile.default_action.lets_through() && !allowed.contains(name));
            let already = errors
                .iter()
                .any(|e| matches!(e, SeccompError::StartCritical { name: n, .. } if n == name));
            if refused && !already {
                errors.push(SeccompError::StartCritical {
                    name: name.to_string(),
                    why,
                });
            }
        }
    }

    match errors.len() {
        0 => Ok(warnings),
        1 => Err(errors.remove(0)),
        _ => Err(SeccompError::Several(errors)),
    }
}

fn libc_eperm() -> u32 {
    super::baseline::EPERM
}

/// runc answers `EPERM` for an errno action without a number.
fn default_errno(profile: &Profile) -> u32 {
    profile.default_errno_ret.unwrap_or(libc_eperm())
}

fn join_names(rule: &Rule) -> String {
    let names: Vec<&str> = rule.all_names().collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::baseline::engine_default;
    use super::super::model::{Arg, Op};
    use super::*;

    fn minimal(extra: Vec<Rule>) -> Profile {
        let mut names: Vec<&str> = START_CRITICAL.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let mut p = engine_default();
        p.syscalls = vec![Rule::allow(&names, "start-critical")];
        p.syscalls.extend(extra);
        p
    }

    #[test]
    fn a_min_kernel_up_to_the_assumed_one_is_no_condition() {
        let rule = Rule::allow(&["ptrace"], "k").if_min_kernel("4.8");
        assert!(applies_unconditionally(&rule, Target::X86_64));
        let rule = Rule::allow(&["ptrace"], "k").if_min_kernel("6.1");
        assert!(!applies_unconditionally(&rule, Target::X86_64));
        let rule = Rule::allow(&["ptrace"], "k").if_min_kernel("four");
        assert!(!applies_unconditionally(&rule, Target::X86_64));
    }

    #[test]
    fn every_start_critical_name_exists_on_some_target() {
        for c in START_CRITICAL {
            assert!(is_known(c.name), "{}", c.name);
        }
    }

    #[test]
    fn the_engine_default_validates_without_warnings() {
        assert_eq!(validate(&engine_default()).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn the_start_critical_set_alone_validates() {
        validate(&minimal(vec![])).unwrap();
    }

    #[test]
    fn misspelt_execve_suggests_execve() {
        let p = minimal(vec![Rule::allow(&["exceve"], "typo")]);
        let err = validate(&p).unwrap_err();
        assert!(matches!(
            &err,
            SeccompError::UnknownSyscall { name, suggestion: Some(s) } if name == "exceve" && s == "execve"
        ));
        assert!(err.to_string().contains("did you mean `execve`"), "{err}");
    }

    #[test]
    fn unknown_names_past_the_listed_ones_are_counted_not_listed() {
        let names: Vec<String> = (0..500).map(|i| format!("no_such_call_{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let err = validate(&minimal(vec![Rule::allow(&names, "many")])).unwrap_err();
        let SeccompError::Several(all) = &err else {
            panic!("{err}")
        };
        let listed = all
            .iter()
            .filter(|e| matches!(e, SeccompError::UnknownSyscall { .. }))
            .count();
        assert_eq!(listed, MAX_UNKNOWN_LISTED);
        assert!(all.iter().any(|e| matches!(
            e,
            SeccompError::MoreUnknown { count } if *count == 500 - MAX_UNKNOWN_LISTED
        )));
        assert!(
            err.to_string()
                .contains("and 480 more unknown syscall names"),
            "{err}"
        );
    }

    #[test]
    fn a_profile_past_the_name_or_rule_limit_is_refused_before_anything_else() {
        let names = vec!["read"; MAX_NAMES + 1];
        let err = validate(&minimal(vec![Rule::allow(&names, "many")])).unwrap_err();
        assert!(
            matches!(err, SeccompError::TooMany { what: "syscall names", count, max: MAX_NAMES } if count > MAX_NAMES),
            "{err}"
        );
        let rules = vec![Rule::allow(&["read"], "again"); MAX_RULES];
        let err = validate(&minimal(rules)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the profile has {} rules, more than the {MAX_RULES} accepted",
                MAX_RULES + 1
            )
        );
    }

    #[test]
    fn a_name_far_from_any_syscall_gets_no_suggestion() {
        assert_eq!(suggest("completely_made_up_call"), None);
    }

    #[test]
    fn denying_execve_explicitly_is_rejected_with_the_reason() {
        let p = minimal(vec![Rule::errno(&["execve"], 1, "no")]);
        let err = validate(&p).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`execve`"), "{text}");
        assert!(text.contains("nothing could start"), "{text}");
    }

    #[test]
    fn not_allowing_exit_group_under_a_denying_default_is_rejected() {
        let mut p = minimal(vec![]);
        p.syscalls[0].remove_name("exit_group");
        let err = validate(&p).unwrap_err();
        assert!(
            matches!(&err, SeccompError::StartCritical { name, .. } if name == "exit_group"),
            "{err}"
        );
    }

    #[test]
    fn a_start_critical_call_allowed_only_with_arguments_is_rejected() {
        let mut p = minimal(vec![
            Rule::allow(&["mmap"], "only some").with_args(&[Arg::new(2, Op::Ne, 7)])
        ]);
        p.syscalls[0].remove_name("mmap");
        let err = validate(&p).unwrap_err();
        assert!(err.to_string().contains("`mmap`"), "{err}");
    }

    #[test]
    fn arch_prctl_is_required_only_on_x86_64() {
        let mut p = minimal(vec![]);
        p.syscalls[0].remove_name("arch_prctl");
        p.arch_map = None;
        p.architectures = Some(vec![Arch::Aarch64]);
        validate(&p).unwrap();
        p.architectures = Some(vec![Arch::X86_64]);
        assert!(validate(&p).unwrap_err().to_string().contains("arch_prctl"));
    }

    #[test]
    fn allowing_and_denying_one_name_unconditionally_is_a_contradiction() {
        let p = minimal(vec![
            Rule::allow(&["chroot"], "yes"),
            Rule::errno(&["chroot"], 1, "no"),
        ]);
        let err = validate(&p).unwrap_err();
        assert!(
            matches!(&err, SeccompError::Contradiction { name } if name == "chroot"),
            "{err}"
        );
    }

    #[test]
    fn an_allow_everything_profile_is_rejected_as_unconfined() {
        let p = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        assert!(matches!(
            validate(&p).unwrap_err(),
            SeccompError::Unconfined { .. }
        ));
    }

    #[test]
    fn an_allow_default_with_denials_is_accepted() {
        let p = Profile::from_json(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        validate(&p).unwrap();
    }

    #[test]
    fn an_uncommented_rule_equal_to_the_default_is_a_warning() {
        let mut rule = Rule::errno(&["acct"], 1, "");
        rule.comment = None;
        let warnings = validate(&minimal(vec![rule])).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("acct"));
    }

    #[test]
    fn several_problems_are_reported_together() {
        let p = minimal(vec![
            Rule::allow(&["exceve", "fnord_call"], "typos"),
            Rule::errno(&["write"], 1, "no"),
        ]);
        let text = validate(&p).unwrap_err().to_string();
        assert!(text.contains("exceve") && text.contains("fnord_call") && text.contains("`write`"));
    }
}
