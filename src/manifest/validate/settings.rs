//! A settings block (`defaults` or a sandbox's own) typed field by field, `None` where it was
//! not written, so the layers (built-in, `defaults`, sandbox) can be merged afterwards; the
//! built-in defaults of manifest.md; and the rules on single values: network (rule 7), seccomp
//! (rule 7, and policy/profile exclusivity), limits with their minimums (rule 9), capabilities
//! (the dangerous ones are warned about) and egress (its grammar belongs to `egress::policy`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::super::expand::expand_file_path;
use super::super::raw::{RawEgress, RawLimits, RawSeccomp, RawSettings, Scalar};
use super::super::units::parse_size;
use super::super::{EgressPolicy, Limits, LoadContext, Network, SeccompPolicy, SeccompSource};
use super::binds::check_target;
use super::{valid_container_name, Report};

/// Capabilities that undo most of a sandbox's isolation; adding one is legal but warned about.
const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "SYS_RAWIO",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "BPF",
];

const MIN_MEMORY: i64 = 6 << 20;
const MIN_PIDS: i64 = 8;

/// A settings block with each field typed, `None` where it was not written.
#[derive(Debug, Clone, Default)]
pub(super) struct Partial {
    pub(super) image: Option<String>,
    /// The value and the field it was written in.
    pub(super) user: Option<(String, String)>,
    pub(super) network: Option<Network>,
    pub(super) read_only_root: Option<bool>,
    /// Mount point -> (bytes, field).
    pub(super) tmpfs: Option<BTreeMap<String, (i64, String)>>,
    pub(super) cap_drop: Option<Vec<String>>,
    pub(super) cap_add: Option<Vec<String>>,
    pub(super) no_new_privileges: Option<bool>,
    pub(super) init: Option<bool>,
    pub(super) seccomp: Option<SeccompSource>,
    pub(super) limits: PartialLimits,
    /// The policy (`None` when it had problems) and the field it was written in.
    pub(super) egress: Option<(Option<EgressPolicy>, String)>,
}

/// Each field: `None` not written, `Some(None)` written as `unlimited`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PartialLimits {
    memory: Option<Option<i64>>,
    memory_swap: Option<Option<i64>>,
    cpus: Option<Option<f64>>,
    pids: Option<Option<i64>>,
}

/// The built-in defaults (manifest.md), used where neither `defaults` nor a sandbox says.
pub(super) fn builtin_settings(ctx: &LoadContext, default_user: Option<String>) -> Partial {
    Partial {
        image: None,
        // The owner's uid:gid when `metadata.owner` names one, so the sandbox writes their
        // workspace; else 1000:1000, the first user on most hosts.
        user: Some((
            default_user.unwrap_or_else(|| "1000:1000".into()),
            "defaults.user".into(),
        )),
        network: Some(Network::None),
        read_only_root: Some(true),
        tmpfs: Some(BTreeMap::from([
            ("/tmp".into(), (64 << 20, "defaults.tmpfs./tmp".into())),
            ("/run".into(), (16 << 20, "defaults.tmpfs./run".into())),
        ])),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec![]),
        no_new_privileges: Some(true),
        init: Some(true),
        seccomp: Some(SeccompSource::Policy {
            policy: SeccompPolicy::Default,
            allow: vec![],
            deny: vec![],
        }),
        limits: {
            let b = crate::manifest::builtin_limits(ctx.host_cpus);
            PartialLimits {
                memory: Some(b.memory),
                // Unset: follows `memory` after the merge (no swap).
                memory_swap: None,
                cpus: Some(b.cpus),
                pids: Some(b.pids),
            }
        },
        egress: None,
    }
}

pub(super) fn partial_settings(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    prefix: &str,
    raw: &RawSettings,
    ctx: &LoadContext,
) -> Partial {
    let mut p = Partial::default();
    if let Some(image) = &raw.image {
        if image.trim().is_empty() {
            r.invalid(file, format!("{prefix}.image"), image, "the image is empty");
        } else {
            p.image = Some(image.clone());
        }
    }
    p.user = raw
        .user
        .as_ref()
        .map(|u| (u.0.clone(), format!("{prefix}.user")));
    if let Some(network) = &raw.network {
        p.network = parse_network(r, file, &format!("{prefix}.network"), network);
    }
    p.read_only_root = raw.read_only_root;
    if let Some(tmpfs) = &raw.tmpfs {
        let mut map = BTreeMap::new();
        for (mount, size) in tmpfs {
            let field = format!("{prefix}.tmpfs.{mount}");
            let target = check_target(r, file, &field, mount);
            let bytes = parse_size(&size.0)
                .map_err(|m| r.invalid(file, &field, &size.0, m))
                .ok();
            if let (Some(_), Some(bytes)) = (target, bytes) {
                map.insert(mount.clone(), (bytes, field));
            }
        }
        p.tmpfs = Some(map);
    }
    p.cap_drop = raw.cap_drop.as_ref().map(|c| normalise_caps(c));
    if let Some(add) = &raw.cap_add {
        let add = normalise_caps(add);
        for cap in &add {
            if DANGEROUS_CAPS.contains(&cap.as_str()) {
                r.warn(format!(
                    "{prefix}.capAdd adds {cap}, which undoes much of the sandbox's isolation"
                ));
            }
        }
        p.cap_add = Some(add);
    }
    p.no_new_privileges = raw.no_new_privileges;
    p.init = raw.init;
    if let Some(seccomp) = &raw.seccomp {
        p.seccomp = parse_seccomp(r, file, dir, &format!("{prefix}.seccomp"), &seccomp.0, ctx);
    }
    if let Some(limits) = &raw.limits {
        p.limits = parse_limits(r, file, &format!("{prefix}.limits"), limits, ctx);
    }
    if let Some(egress) = &raw.egress {
        let field = format!("{prefix}.egress");
        p.egress = Some((parse_egress(r, file, &field, egress), field));
    }
    p
}

/// `egress`: every allow entry and pinned host checked (egress::policy owns the grammar).
pub(super) fn parse_egress(
    r: &mut Report,
    file: &Path,
    field: &str,
    raw: &RawEgress,
) -> Option<EgressPolicy> {
    let mut ok = true;
    if raw.allow.is_empty() {
        r.invalid(
            file,
            format!("{field}.allow"),
            "",
            "egress.allow is empty: list the destinations the sandbox needs \
             (for no network at all, use `network: none` without egress)",
        );
        ok = false;
    }
    let mut allow = Vec::new();
    for (i, entry) in raw.allow.iter().enumerate() {
        match crate::egress::parse_allow_entry(entry) {
            Ok(e) => allow.push(e),
            Err(m) => {
                r.invalid(file, format!("{field}.allow[{i}]"), entry, m);
                ok = false;
            }
        }
    }
    let mut hosts = BTreeMap::new();
    for (name, addr) in &raw.hosts {
        let here = format!("{field}.hosts.{name}");
        let normal = crate::egress::policy::normalise_name(name)
            .map_err(|m| r.invalid(file, &here, name, format!("not a host name: {m}")))
            .ok();
        let ip = addr
            .0
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| {
                r.invalid(
                    file,
                    &here,
                    &addr.0,
                    "must be one IP address (10.0.0.7, fd00::7)",
                )
            })
            .ok();
        match (normal, ip) {
            (Some(n), Some(ip)) => {
                if hosts.insert(n, ip).is_some() {
                    r.invalid(file, &here, name, "this host name is pinned twice");
                    ok = false;
                }
            }
            _ => ok = false,
        }
    }
    ok.then_some(EgressPolicy { allow, hosts })
}

/// `CAP_NET_ADMIN` and `net_admin` both mean `NET_ADMIN`.
fn normalise_caps(caps: &[String]) -> Vec<String> {
    caps.iter().map(|c| crate::spec::capability(c)).collect()
}

/// Rule 7 for `network`.
fn parse_network(r: &mut Report, file: &Path, field: &str, value: &str) -> Option<Network> {
    match value {
        "none" => Some(Network::None),
        "bridge" => Some(Network::Bridge),
        "host" => {
            r.invalid(
                file,
                field,
                value,
                "network `host` shares the host's network stack and is rejected",
            );
            None
        }
        v if v.starts_with("container:") => {
            r.invalid(
                file,
                field,
                value,
                "network `container:*` joins another container's network namespace and is rejected",
            );
            None
        }
        v if v.is_empty() || !valid_container_name(v) => {
            r.invalid(
                file,
                field,
                value,
                "not a network name: use none, bridge or a named network",
            );
            None
        }
        v => Some(Network::Named(v.to_string())),
    }
}

/// Rule 7 for `seccomp`, and the policy/profile exclusivity.
fn parse_seccomp(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    field: &str,
    raw: &RawSeccomp,
    ctx: &LoadContext,
) -> Option<SeccompSource> {
    let unconfined = |s: &str| s.trim().eq_ignore_ascii_case("unconfined");
    let mut ok = true;
    if raw.policy.as_deref().is_some_and(unconfined) {
        r.invalid(
            file,
            format!("{field}.policy"),
            raw.policy.as_deref().unwrap_or_default(),
            "seccomp `unconfined` removes the syscall filter and is rejected",
        );
        ok = false;
    }
    if raw.profile.as_deref().is_some_and(unconfined) {
        r.invalid(
            file,
            format!("{field}.profile"),
            raw.profile.as_deref().unwrap_or_default(),
            "seccomp `unconfined` removes the syscall filter and is rejected",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    if let Some(profile) = &raw.profile {
        if raw.policy.is_some() || raw.allow.is_some() || raw.deny.is_some() {
            r.invalid(
                file,
                field,
                profile,
                "set either `profile` or `policy`/`allow`/`deny`, not both",
            );
            return None;
        }
        let path = expand_file_path(profile, dir, ctx)
            .map_err(|m| r.invalid(file, format!("{field}.profile"), profile, m))
            .ok()?;
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => None,
            Ok(_) => Some(format!("profile {} is not a regular file", path.display())),
            Err(_) => Some(format!("profile {} does not exist", path.display())),
        };
        if let Some(message) = problem {
            r.invalid(file, format!("{field}.profile"), profile, message);
            return None;
        }
        return Some(SeccompSource::Profile(path));
    }
    let policy = match raw.policy.as_deref().unwrap_or("default") {
        "strict" => SeccompPolicy::Strict,
        "default" => SeccompPolicy::Default,
        "permissive" => SeccompPolicy::Permissive,
        other => {
            r.invalid(
                file,
                format!("{field}.policy"),
                other,
                "unknown policy: use strict, default or permissive",
            );
            return None;
        }
    };
    Some(SeccompSource::Policy {
        policy,
        allow: raw.allow.clone().unwrap_or_default(),
        deny: raw.deny.clone().unwrap_or_default(),
    })
}

/// Rule 9, per written value.
pub(super) fn parse_limits(
    r: &mut Report,
    file: &Path,
    prefix: &str,
    raw: &RawLimits,
    ctx: &LoadContext,
) -> PartialLimits {
    let unlimited = |s: &Scalar| s.0.trim() == "unlimited";
    let size = |r: &mut Report, name: &str, v: &Scalar| -> Option<Option<i64>> {
        if unlimited(v) {
            return Some(None);
        }
        let field = format!("{prefix}.{name}");
        match parse_size(&v.0) {
            Err(m) => {
                r.invalid(file, field, &v.0, m);
                None
            }
            Ok(bytes) if bytes < MIN_MEMORY => {
                r.invalid(file, field, &v.0, "must be at least 6Mi");
                None
            }
            Ok(bytes) => Some(Some(bytes)),
        }
    };
    let memory = raw.memory.as_ref().and_then(|v| size(r, "memory", v));
    let memory_swap = raw
        .memory_swap
        .as_ref()
        .and_then(|v| size(r, "memorySwap", v));
    let cpus = raw.cpus.as_ref().and_then(|v| {
        if unlimited(v) {
            return Some(None);
        }
        let field = format!("{prefix}.cpus");
        match v.0.trim().parse::<f64>() {
            Ok(c) if c.is_finite() && c > 0.0 => {
                if c > ctx.host_cpus as f64 {
                    r.warn(format!(
                        "{field} is {c}, above the host's {} CPUs",
                        ctx.host_cpus
                    ));
                }
                Some(Some(c))
            }
            _ => {
                r.invalid(file, field, &v.0, "must be a number of CPUs above 0");
                None
            }
        }
    });
    let pids = raw.pids.as_ref().and_then(|v| {
        if unlimited(v) {
            return Some(None);
        }
        match v.0.trim().parse::<i64>() {
            Ok(n) if n >= MIN_PIDS => Some(Some(n)),
            _ => {
                r.invalid(
                    file,
                    format!("{prefix}.pids"),
                    &v.0,
                    "must be a whole number of at least 8",
                );
                None
            }
        }
    });
    PartialLimits {
        memory,
        memory_swap,
        cpus,
        pids,
    }
}

/// Typed limits from partial layers, lowest priority first; swap follows memory unless set.
pub(super) fn merge_limits(layers: &[&PartialLimits]) -> Limits {
    let mut out = PartialLimits::default();
    for l in layers {
        out.memory = l.memory.or(out.memory);
        out.memory_swap = l.memory_swap.or(out.memory_swap);
        out.cpus = l.cpus.or(out.cpus);
        out.pids = l.pids.or(out.pids);
    }
    let memory = out.memory.flatten();
    Limits {
        memory,
        memory_swap: out.memory_swap.unwrap_or(memory),
        cpus: out.cpus.flatten(),
        pids: out.pids.flatten(),
    }
}

/// The value of the highest-priority layer that sets it.
pub(super) fn pick<T>(layers: &[&Partial], f: impl Fn(&Partial) -> Option<T>) -> Option<T> {
    layers.iter().rev().find_map(|l| f(l))
}
