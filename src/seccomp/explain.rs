//! Human summaries of a profile: what it denies, why, and how it differs from the engine
//! default. Pure text; no validation (callers validate first).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::model::{Action, Arch, Arg, Op, Profile, Rule};
use super::policy;
use super::validate::{allowed_unconditionally, denied_unconditionally, Target};

/// Syscall names of x86_64 the profile does not allow unconditionally: denied outright, or
/// allowed only with argument filters, capabilities, a minimum kernel or on other arches.
pub fn denied_names(profile: &Profile) -> BTreeSet<String> {
    let target = Target::X86_64;
    let denied = denied_unconditionally(profile, target);
    if profile.default_action.lets_through() {
        return denied.into_iter().map(str::to_string).collect();
    }
    let allowed = allowed_unconditionally(profile, target);
    target
        .names()
        .into_iter()
        .filter(|n| !allowed.contains(n) || denied.contains(n))
        .map(str::to_string)
        .collect()
}

/// A readable summary for `clw-fortress seccomp explain`.
pub fn explain(profile: &Profile) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "default action: {} for every call no rule matches",
        action_text(profile.default_action, profile.default_errno_ret)
    );
    let arches: Vec<String> = profile
        .arch_map
        .iter()
        .flatten()
        .map(|m| arch_token(m.architecture))
        .chain(
            profile
                .architectures
                .iter()
                .flatten()
                .map(|a| arch_token(*a)),
        )
        .collect();
    let _ = writeln!(
        out,
        "architectures: {}",
        if arches.is_empty() {
            "native".to_string()
        } else {
            arches.join(", ")
        }
    );
    let allowed = allowed_unconditionally(profile, Target::X86_64);
    let _ = writeln!(
        out,
        "allowed unconditionally on x86_64: {} calls",
        allowed.len()
    );

    let _ = writeln!(out, "\ndenied explicitly:");
    let mut any = false;
    for rule in profile.syscalls.iter().filter(|r| !r.action.lets_through()) {
        any = true;
        let _ = writeln!(
            out,
            "  - {} -> {}{}\n      {}",
            names(rule),
            action_text(rule.action, rule.errno_ret),
            conditions(rule),
            rule.comment.as_deref().unwrap_or("(no comment)")
        );
    }
    if !any {
        let _ = writeln!(out, "  (none: only the default action denies)");
    }

    let _ = writeln!(out, "\nallowed with conditions:");
    for rule in profile
        .syscalls
        .iter()
        .filter(|r| r.action.lets_through() && !conditions(r).is_empty())
    {
        let _ = writeln!(
            out,
            "  - {}{}\n      {}",
            names(rule),
            conditions(rule),
            rule.comment.as_deref().unwrap_or("(no comment)")
        );
    }

    let engine_profile = policy::permissive();
    let engine = denied_names(&engine_profile);
    let here = denied_names(profile);
    let tightened: Vec<&str> = here.difference(&engine).map(String::as_str).collect();
    let loosened: Vec<&str> = engine.difference(&here).map(String::as_str).collect();
    let _ = writeln!(out, "\ncompared with the engine default (x86_64):");
    let _ = writeln!(
        out,
        "  no longer allowed unconditionally ({}): {}",
        tightened.len(),
        list_or_none(&tightened)
    );
    let _ = writeln!(
        out,
        "  newly allowed unconditionally ({}): {}",
        loosened.len(),
        list_or_none(&loosened)
    );
    let engine_any = allowed_under_some_condition(&engine_profile);
    let here_any = allowed_under_some_condition(profile);
    let gone: Vec<&str> = engine_any.difference(&here_any).copied().collect();
    let _ = writeln!(
        out,
        "  no longer allowed under any condition, added capabilities included ({}): {}",
        gone.len(),
        list_or_none(&gone)
    );
    out
}

/// Names some rule lets through, with whatever conditions.
fn allowed_under_some_condition(profile: &Profile) -> BTreeSet<&str> {
    profile
        .syscalls
        .iter()
        .filter(|r| r.action.lets_through())
        .flat_map(Rule::all_names)
        .collect()
}

/// The libseccomp token (`SCMP_ARCH_X86_64`), as the profile spells it.
fn arch_token(arch: Arch) -> String {
    serde_json::to_value(arch)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn names(rule: &Rule) -> String {
    rule.all_names().collect::<Vec<_>>().join(", ")
}

fn action_text(action: Action, errno: Option<u32>) -> String {
    match (action, errno) {
        (Action::Errno, Some(38)) => "ENOSYS".to_string(),
        (Action::Errno, Some(1) | None) => "EPERM".to_string(),
        (Action::Errno, Some(n)) => format!("errno {n}"),
        (Action::Allow, _) => "allow".to_string(),
        (a, _) => a.as_str().to_string(),
    }
}

fn conditions(rule: &Rule) -> String {
    let mut parts = Vec::new();
    if !rule.args().is_empty() {
        let args: Vec<String> = rule.args().iter().map(arg_text).collect();
        parts.push(format!("when {}", args.join(" and ")));
    }
    if let Some(inc) = &rule.includes {
        if !inc.caps().is_empty() {
            parts.push(format!("with {}", inc.caps().join(", ")));
        }
        if !inc.arches().is_empty() {
            parts.push(format!("on {}", inc.arches().join(", ")));
        }
        if let Some(k) = &inc.min_kernel {
            parts.push(format!("on kernel >= {k}"));
        }
    }
    if let Some(exc) = &rule.excludes {
        if !exc.caps().is_empty() {
            parts.push(format!("without {}", exc.caps().join(", ")));
        }
        if !exc.arches().is_empty() {
            parts.push(format!("except on {}", exc.arches().join(", ")));
        }
        if let Some(k) = &exc.min_kernel {
            parts.push(format!("on kernel < {k}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

fn arg_text(a: &Arg) -> String {
    let i = a.index;
    match a.op {
        Op::MaskedEq => format!("arg{i} & {:#x} == {:#x}", a.value, a.value_two.unwrap_or(0)),
        op => {
            let sym = match op {
                Op::Ne => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Eq => "==",
                Op::Ge => ">=",
                Op::Gt => ">",
                Op::MaskedEq => unreachable!(),
            };
            format!("arg{i} {sym} {}", a.value)
        }
    }
}
