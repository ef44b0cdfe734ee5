//! Seccomp profiles: the typed Docker/OCI profile model, the generated policies, and the
//! validation every profile passes before an engine sees it.
//!
//! Owns profile content only. It must not talk to an engine or decide how a profile is
//! delivered (inline for Docker, a path for Podman): that is the engine adapter's job.

mod baseline;
mod explain;
pub mod model;
mod policy;
pub mod validate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Coded, ErrorCode};
use crate::manifest::{Sandbox, SeccompPolicy, SeccompSource};

pub use explain::{denied_names, explain};
pub use model::{Action, Arch, ArchMap, Arg, Filter, Flag, Op, Profile, Rule};
pub use validate::{validate, Critical, START_CRITICAL};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The file could not be taken as input at all (missing, not a regular file, too large,
    /// not text): a configuration mistake, before any profile content is looked at. The whole
    /// cause is in the message, which per-sandbox reports print alone.
    #[error("cannot read seccomp profile: {}", crate::report::chain(.0))]
    Input(crate::input::InputError),
    #[error("cannot write seccomp profile {file}")]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp profile {file} does not parse: {message}")]
    Parse { file: PathBuf, message: String },
    /// A validation problem of a profile file. Not a `#[source]`: the message already holds
    /// it, and a cause line would repeat it.
    #[error("seccomp profile {file}: {problem}")]
    InFile {
        file: PathBuf,
        problem: Box<SeccompError>,
    },
    #[error("unknown syscall `{name}`{}", suggestion.as_ref().map(|s| format!(", did you mean `{s}`?")).unwrap_or_default())]
    UnknownSyscall {
        name: String,
        suggestion: Option<String>,
    },
    #[error("and {count} more unknown syscall names")]
    MoreUnknown { count: usize },
    #[error("the profile has {count} {what}, more than the {max} accepted")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("the profile denies `{name}`: {why}")]
    StartCritical { name: String, why: &'static str },
    #[error(
        "policy `strict` denies switching to uid/gid 0, which the runtime does after loading \
         the filter to start user `{user}` when noNewPrivileges is off, so the sandbox could \
         not start"
    )]
    RootWithoutNoNewPrivileges { user: String },
    #[error("`{name}` is both allowed and denied unconditionally")]
    Contradiction { name: String },
    #[error(
        "the profile is unconfined: default action {default_action} and no rule denies anything"
    )]
    Unconfined { default_action: &'static str },
    #[error("rule #{index} names no syscall")]
    EmptyRule { index: usize },
    #[error("rule #{rule} compares argument {index}, but syscalls have arguments 0 to 5")]
    ArgIndex { rule: usize, index: u32 },
    #[error("{} problems: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<SeccompError>),
}

impl Coded for SeccompError {
    fn code(&self) -> ErrorCode {
        match self {
            SeccompError::Input(e) => e.code(),
            SeccompError::InFile { problem, .. } => problem.code(),
            // The profile is fine; the file system refused it (as `man --out` reports it).
            SeccompError::Write { .. } => ErrorCode::PermissionDenied,
            _ => ErrorCode::SeccompInvalid,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SeccompError::Input(e) => e
                .hint()
                .or_else(|| Some("check the `seccomp.profile` path and its permissions".into())),
            SeccompError::Write { .. } => {
                Some("check that the directory exists and is writable".into())
            }
            SeccompError::Parse { .. } => Some(
                "the file must be a Docker/OCI seccomp profile (defaultAction, syscalls[]); \
                 actions are SCMP_ACT_*, operators SCMP_CMP_*, architectures SCMP_ARCH_*"
                    .into(),
            ),
            SeccompError::InFile { problem, .. } => problem.hint(),
            SeccompError::UnknownSyscall {
                suggestion: Some(s),
                ..
            } => Some(format!("use `{s}`")),
            SeccompError::UnknownSyscall { .. } => Some(
                "names must be syscalls of x86_64 or aarch64; see syscalls(2) for the spelling"
                    .into(),
            ),
            SeccompError::MoreUnknown { .. } => Some(
                "names must be syscalls of x86_64 or aarch64; see syscalls(2) for the spelling"
                    .into(),
            ),
            SeccompError::TooMany { .. } => Some(
                "a profile names each syscall once or a few times; start from \
                 `clw-fortress seccomp generate`"
                    .into(),
            ),
            SeccompError::StartCritical { name, .. } => Some(format!(
                "remove `{name}` from `seccomp.deny` or the profile's denials and allow it \
                 without conditions"
            )),
            SeccompError::RootWithoutNoNewPrivileges { .. } => Some(
                "keep `noNewPrivileges: true` (the runtime then loads the filter after switching \
                 user), run as a non-root user and group, or use policy `default`"
                    .into(),
            ),
            SeccompError::Contradiction { name } => Some(format!(
                "keep `{name}` in either the allow or the deny side, not both"
            )),
            SeccompError::Unconfined { .. } => Some(
                "use `seccomp.policy: permissive` for the engine's default instead of turning \
                 seccomp off"
                    .into(),
            ),
            SeccompError::EmptyRule { .. } => Some("give the rule `names` or remove it".into()),
            SeccompError::ArgIndex { .. } => Some("argument indexes run from 0 to 5".into()),
            SeccompError::Several(errors) => errors.first().and_then(Coded::hint),
        }
    }
}

impl SeccompError {
    /// Each problem on its own, for reports that list them one per line.
    pub fn problems(&self) -> Vec<String> {
        match self {
            SeccompError::Several(all) => all.iter().map(ToString::to_string).collect(),
            SeccompError::InFile { problem, .. } => problem.problems(),
            e => vec![e.to_string()],
        }
    }

    /// The profile file the error is about, if any.
    pub fn file(&self) -> Option<&Path> {
        match self {
            SeccompError::Input(e) => Some(e.path()),
            SeccompError::Write { file, .. }
            | SeccompError::Parse { file, .. }
            | SeccompError::InFile { file, .. } => Some(file),
            _ => None,
        }
    }
}

/// The profile of `policy` with the manifest's overrides, validated.
pub fn generate(
    policy: SeccompPolicy,
    allow: &[String],
    deny: &[String],
) -> Result<Profile, SeccompError> {
    if let Some(name) = allow.iter().find(|n| deny.contains(n)) {
        return Err(SeccompError::Contradiction { name: name.clone() });
    }
    let profile = policy::build(policy, allow, deny);
    validate(&profile)?;
    Ok(profile)
}

/// Reads, parses and validates a profile file; every error names the file.
pub fn load_file(path: &Path) -> Result<Profile, SeccompError> {
    let text = crate::input::read_to_string(path).map_err(SeccompError::Input)?;
    let profile = Profile::from_json(&text).map_err(|e| SeccompError::Parse {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    validate(&profile).map_err(|e| SeccompError::InFile {
        file: path.to_path_buf(),
        problem: Box::new(e),
    })?;
    Ok(profile)
}

/// Validates a profile; returns its warnings.
pub fn check(profile: &Profile) -> Result<Vec<String>, SeccompError> {
    validate(profile)
}

/// The effective profile of a sandbox as compact JSON, validated.
pub fn effective_profile_json(source: &SeccompSource) -> Result<String, SeccompError> {
    let profile = match source {
        SeccompSource::Policy {
            policy,
            allow,
            deny,
        } => generate(*policy, allow, deny)?,
        SeccompSource::Profile(path) => load_file(path)?,
    };
    Ok(profile.to_compact_json())
}

/// The effective profile of one sandbox as compact JSON, validated, and checked against how
/// the runtime starts the sandbox's process.
pub fn sandbox_profile_json(sandbox: &Sandbox) -> Result<String, SeccompError> {
    if let Some(e) = start_problem(&sandbox.seccomp, &sandbox.user, sandbox.no_new_privileges) {
        return Err(e);
    }
    effective_profile_json(&sandbox.seccomp)
}

/// Without `no_new_privileges`, runc loads the filter *before* it switches to the container's
/// user (it must, to keep the filter from being installed by an unprivileged process without
/// NNP), so the `setresuid`/`setresgid` to the configured ids meet `strict`'s "never to 0"
/// rules and the container fails with "unable to setup user: operation not permitted"
/// (measured on Docker 20.10 / runc 1.1 with `-u 0` and `-u 1000:0`). With NNP the filter comes
/// last and root sandboxes start. A manifest that allows any setuid-family call itself has
/// taken that decision and is left alone.
fn start_problem(
    source: &SeccompSource,
    user: &str,
    no_new_privileges: bool,
) -> Option<SeccompError> {
    let SeccompSource::Policy {
        policy: SeccompPolicy::Strict,
        allow,
        ..
    } = source
    else {
        return None;
    };
    let overridden = policy::SETID_CALLS
        .iter()
        .any(|(name, _)| allow.iter().any(|a| a == name));
    let zero = |id: &str| matches!(id.trim(), "0" | "root");
    let mut ids = user.split(':');
    let root = ids.next().is_some_and(zero) || ids.next().is_some_and(zero);
    (root && !no_new_privileges && !overridden).then(|| SeccompError::RootWithoutNoNewPrivileges {
        user: user.to_string(),
    })
}

/// Names of x86_64 syscalls a policy denies; see [`denied_names`].
pub fn policy_denied_names(policy: SeccompPolicy) -> Result<BTreeSet<String>, SeccompError> {
    Ok(denied_names(&generate(policy, &[], &[])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn denied(policy: SeccompPolicy) -> BTreeSet<String> {
        policy_denied_names(policy).unwrap()
    }

    #[test]
    fn every_policy_generates_a_valid_profile_without_warnings() {
        for policy in [
            SeccompPolicy::Permissive,
            SeccompPolicy::Default,
            SeccompPolicy::Strict,
        ] {
            let p = generate(policy, &[], &[]).unwrap();
            assert_eq!(check(&p).unwrap(), Vec::<String>::new(), "{policy:?}");
        }
    }

    #[test]
    fn strict_denies_strictly_more_than_default_which_denies_strictly_more_than_permissive() {
        let (p, d, s) = (
            denied(SeccompPolicy::Permissive),
            denied(SeccompPolicy::Default),
            denied(SeccompPolicy::Strict),
        );
        assert!(
            p.is_subset(&d) && p.len() < d.len(),
            "{:?}",
            p.difference(&d)
        );
        assert!(
            d.is_subset(&s) && d.len() < s.len(),
            "{:?}",
            d.difference(&s)
        );
    }

    #[test]
    fn default_denies_the_listed_calls_even_with_added_capabilities() {
        let p = generate(SeccompPolicy::Default, &[], &[]).unwrap();
        for name in [
            "io_uring_setup",
            "userfaultfd",
            "keyctl",
            "bpf",
            "perf_event_open",
            "ptrace",
            "process_vm_readv",
            "kcmp",
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "open_tree",
            "unshare",
            "setns",
            "acct",
            "quotactl",
            "swapon",
            "reboot",
            "kexec_load",
            "init_module",
            "lookup_dcookie",
            "name_to_handle_at",
            "open_by_handle_at",
            "vhangup",
        ] {
            assert!(
                !p.syscalls
                    .iter()
                    .any(|r| r.action.lets_through() && r.all_names().any(|n| n == name)),
                "{name} is allowed by some group"
            );
            assert!(
                p.syscalls
                    .iter()
                    .any(|r| r.action == Action::Errno && r.all_names().any(|n| n == name)),
                "{name} has no explicit deny group"
            );
        }
    }

    #[test]
    fn default_allows_clone_only_without_namespace_flags_and_clone3_answers_enosys() {
        let p = generate(SeccompPolicy::Default, &[], &[]).unwrap();
        let clone: Vec<&Rule> = p
            .syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == "clone"))
            .collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args()[0].op, Op::MaskedEq);
        assert_eq!(clone[0].args()[0].value, 0x7E02_0000);
        assert!(clone[0].includes.is_none() && clone[0].excludes.is_none());
        let clone3: Vec<&Rule> = p
            .syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == "clone3"))
            .collect();
        assert_eq!(clone3.len(), 1);
        assert_eq!(
            (clone3[0].action, clone3[0].errno_ret),
            (Action::Errno, Some(38))
        );
        assert!(clone3[0].excludes.is_none());
    }

    #[test]
    fn strict_filters_socket_families_mknod_types_and_setuid_to_root() {
        let p = generate(SeccompPolicy::Strict, &[], &[]).unwrap();
        let socket_families: BTreeSet<u64> = p
            .syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == "socket"))
            .map(|r| {
                assert_eq!(r.args()[0].op, Op::Eq);
                r.args()[0].value
            })
            .collect();
        assert_eq!(socket_families, BTreeSet::from([1, 2, 10, 16]));
        for r in p
            .syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == "setresuid"))
        {
            assert_eq!(r.args().len(), 3);
            assert!(r.args().iter().all(|a| a.op == Op::Ne && a.value == 0));
        }
        for r in p
            .syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == "mknodat"))
        {
            assert_eq!(r.args()[0].index, 2);
            assert_eq!(r.args()[0].value, 0o170000);
        }
        assert!(denied_names(&p).contains("chroot"));
    }

    #[test]
    fn no_generated_rule_kills_and_every_rule_has_a_comment() {
        for policy in [
            SeccompPolicy::Permissive,
            SeccompPolicy::Default,
            SeccompPolicy::Strict,
        ] {
            let p = generate(policy, &names(&["chroot"]), &names(&["flock"])).unwrap();
            assert!(!p.default_action.is_kill());
            for r in &p.syscalls {
                assert!(!r.action.is_kill());
                assert!(r.comment.as_deref().is_some_and(|c| !c.is_empty()));
                if r.action == Action::Errno {
                    assert!(matches!(r.errno_ret, Some(1) | Some(38)));
                }
            }
        }
    }

    #[test]
    fn denying_execve_via_overrides_is_rejected_naming_execve() {
        let err = generate(SeccompPolicy::Default, &[], &names(&["execve"])).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SeccompError::StartCritical { .. }), "{text}");
        assert!(text.contains("`execve`"), "{text}");
        assert!(text.contains("execve after the filter is loaded"), "{text}");
        assert_eq!(err.code(), ErrorCode::SeccompInvalid);
        assert!(err.hint().unwrap().contains("seccomp.deny"));
    }

    #[test]
    fn strict_refuses_a_root_user_or_group_without_no_new_privileges() {
        let strict = |allow: &[&str]| SeccompSource::Policy {
            policy: SeccompPolicy::Strict,
            allow: names(allow),
            deny: vec![],
        };
        let default = SeccompSource::Policy {
            policy: SeccompPolicy::Default,
            allow: vec![],
            deny: vec![],
        };
        // (source, user, no_new_privileges, refused)
        let cases = [
            (strict(&[]), "0", false, true),
            (strict(&[]), "root", false, true),
            (strict(&[]), "0:0", false, true),
            (strict(&[]), "1000:0", false, true),
            (strict(&[]), "1000:root", false, true),
            (strict(&[]), "0", true, false),
            (strict(&[]), "1000:1000", false, false),
            (strict(&[]), "1000", false, false),
            (strict(&[]), "sandbox", false, false),
            (strict(&["setresuid", "setresgid"]), "0", false, false),
            (default.clone(), "0", false, false),
            (
                SeccompSource::Profile(PathBuf::from("/p.json")),
                "0",
                false,
                false,
            ),
        ];
        for (source, user, nnp, refused) in cases {
            let got = start_problem(&source, user, nnp);
            assert_eq!(got.is_some(), refused, "{source:?} {user} nnp={nnp}");
            if let Some(e) = got {
                assert_eq!(e.code(), ErrorCode::SeccompInvalid);
                assert!(e.to_string().contains(&format!("`{user}`")), "{e}");
                assert!(e.hint().unwrap().contains("noNewPrivileges"));
            }
        }
    }

    #[test]
    fn unknown_override_name_suggests_the_nearest_syscall() {
        let err = generate(SeccompPolicy::Strict, &names(&["exceve"]), &[]).unwrap_err();
        assert!(err.to_string().contains("did you mean `execve`"), "{err}");
    }

    #[test]
    fn override_allow_brings_back_a_denied_call_without_contradiction() {
        let p = generate(SeccompPolicy::Default, &names(&["ptrace"]), &[]).unwrap();
        assert!(!denied_names(&p).contains("ptrace"));
        let last = p.syscalls.last().unwrap();
        assert_eq!(
            last.comment.as_deref(),
            Some("allowed by manifest override")
        );
    }

    #[test]
    fn override_deny_removes_a_call_from_every_group() {
        let p = generate(SeccompPolicy::Permissive, &[], &names(&["flock", "clone"])).unwrap();
        assert!(denied_names(&p).contains("flock"));
        assert!(!p
            .syscalls
            .iter()
            .any(|r| r.action.lets_through() && r.all_names().any(|n| n == "clone")));
    }

    #[test]
    fn a_name_in_both_override_lists_is_a_contradiction() {
        let err = generate(
            SeccompPolicy::Default,
            &names(&["flock"]),
            &names(&["flock"]),
        )
        .unwrap_err();
        assert!(matches!(err, SeccompError::Contradiction { name } if name == "flock"));
    }

    #[test]
    fn load_file_names_the_file_in_parse_and_validation_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
        let err = load_file(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.json") && err.contains("SCMP_ACT_NOPE"),
            "{err}"
        );

        let open = dir.path().join("open.json");
        std::fs::write(&open, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let err = load_file(&open).unwrap_err().to_string();
        assert!(
            err.contains("open.json") && err.contains("unconfined"),
            "{err}"
        );

        let missing = dir.path().join("missing.json");
        assert!(load_file(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.json"));
    }

    #[test]
    fn several_problems_of_a_file_are_listed_one_by_one_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("two.json");
        std::fs::write(
            &file,
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["ptrase", "execve"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let err = load_file(&file).unwrap_err();
        assert_eq!(err.file(), Some(file.as_path()));
        let problems = err.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("did you mean `ptrace`"),
            "{problems:?}"
        );
        assert!(problems[1].contains("`execve`"), "{problems:?}");
        // No cause line repeating the message.
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn a_generated_profile_written_to_a_file_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strict.json");
        let p = generate(SeccompPolicy::Strict, &[], &[]).unwrap();
        std::fs::write(&file, p.to_pretty_json()).unwrap();
        assert_eq!(load_file(&file).unwrap(), p);
        let json = effective_profile_json(&SeccompSource::Profile(file)).unwrap();
        assert_eq!(json, p.to_compact_json());
    }

    #[test]
    fn effective_json_of_a_policy_is_compact_and_parses() {
        let json = effective_profile_json(&SeccompSource::Policy {
            policy: SeccompPolicy::Default,
            allow: vec![],
            deny: vec![],
        })
        .unwrap();
        assert!(!json.contains('\n'));
        assert_eq!(
            Profile::from_json(&json).unwrap(),
            generate(SeccompPolicy::Default, &[], &[]).unwrap()
        );
    }

    #[test]
    fn explain_names_the_denials_their_reasons_and_the_difference_from_the_engine() {
        let text = explain(&generate(SeccompPolicy::Default, &[], &[]).unwrap());
        assert!(text.contains("default action: EPERM"), "{text}");
        assert!(text.contains("io_uring_setup"), "{text}");
        assert!(text.contains("shocker"), "{text}");
        assert!(text.contains("compared with the engine default"), "{text}");
        assert!(text.contains("no longer allowed unconditionally"), "{text}");
        let engine = explain(&generate(SeccompPolicy::Permissive, &[], &[]).unwrap());
        assert!(
            engine.contains("no longer allowed unconditionally (0): none"),
            "{engine}"
        );
    }
}
