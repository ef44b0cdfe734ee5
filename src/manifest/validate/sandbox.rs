//! One sandbox: its settings layered over `defaults` and the built-in defaults, its binds
//! (the named bind sets' and its own, each checked against the forbidden list), one mount table
//! without duplicate targets (rule 4), no root user without `allowRoot` (rule 8), swap not
//! below memory, and no egress allow-list beside a network (`bridge` or a named one would bypass
//! the egress proxy).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::super::raw::{RawSandbox, RawSecretEnv};
use super::super::{LoadContext, Mode, Network, Sandbox};
use super::binds::{check_forbidden, resolve_bind, Forbidden, LoadedBindSet, Resolved};
use super::health::liveness;
use super::settings::{merge_limits, partial_settings, pick, Partial};
use super::{suggest, valid_container_name, Report};
use crate::broker::{self, Broker, Place};
use crate::egress::EgressPolicy;

/// `0`, `0:*`, `root`, `root:*`.
fn is_root(user: &str) -> bool {
    let uid = user.split(':').next().unwrap_or("").trim();
    uid == "0" || uid == "root"
}

/// Why `user` (`uid[:gid]`, numeric) cannot write the directory or file at `source`, if it
/// cannot; `None` when it can or this cannot be told (a user name, a missing source).
fn rw_unwritable(
    source: &Path,
    user: &str,
    (cap_drop, cap_add): &(Vec<String>, Vec<String>),
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = uid.trim().parse().ok()?;
    let gid: Option<u32> = gid.trim().parse().ok();
    let meta = std::fs::metadata(source).ok()?;
    let has = |cap: &str, list: &[String]| {
        list.iter()
            .any(|c| crate::spec::capability(c) == cap || crate::spec::capability(c) == "ALL")
    };
    // DAC_OVERRIDE lets a process write past the mode bits; engines keep it for root unless
    // dropped, and grant it to any uid that adds it.
    let dac_override = has("DAC_OVERRIDE", cap_add) || (uid == 0 && !has("DAC_OVERRIDE", cap_drop));
    if writable(meta.uid(), meta.gid(), meta.mode(), uid, gid, dac_override) {
        return None;
    }
    Some(format!(
        "owned by {}:{} with mode {:04o}",
        meta.uid(),
        meta.gid(),
        meta.mode() & 0o7777
    ))
}

/// The mode bits' answer (no ACLs) to "may `uid`/`gid` write it?"
fn writable(
    owner: u32,
    group: u32,
    mode: u32,
    uid: u32,
    gid: Option<u32>,
    dac_override: bool,
) -> bool {
    if dac_override {
        return true;
    }
    if owner == uid {
        mode & 0o200 != 0
    } else if gid == Some(group) {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}

#[allow(clippy::too_many_arguments)] // the loader's shared state, passed down once
pub(super) fn sandbox(
    r: &mut Report,
    file: &Path,
    dir: &Path,
    prefix: &str,
    raw: &RawSandbox,
    inherited: [&Partial; 2],
    (bind_sets, all_sets_loaded): (&[LoadedBindSet], bool),
    forbidden: &[Forbidden],
    all_binds: &mut Vec<Resolved>,
    ctx: &LoadContext,
) -> Option<Sandbox> {
    if !valid_container_name(&raw.name) {
        r.invalid(
            file,
            format!("{prefix}.name"),
            &raw.name,
            "not a valid container name: [a-zA-Z0-9][a-zA-Z0-9_.-]*",
        );
    }
    let own = partial_settings(r, file, dir, prefix, &raw.settings(), ctx);
    let layers = [inherited[0], inherited[1], &own];

    let image = layers.iter().rev().find_map(|l| l.image.clone());
    if image.is_none() {
        r.invalid(
            file,
            format!("{prefix}.image"),
            "",
            "no image: set defaults.image or an image on the sandbox",
        );
    }
    let (user, user_field) = layers
        .iter()
        .rev()
        .find_map(|l| l.user.clone())
        .unwrap_or_default();
    if is_root(&user) && !raw.allow_root {
        r.invalid(
            file,
            &user_field,
            &user,
            format!(
                "sandbox `{}` would run as root; set `allowRoot: true` on the sandbox if it must",
                raw.name
            ),
        );
    }
    let tmpfs = layers
        .iter()
        .rev()
        .find_map(|l| l.tmpfs.clone())
        .unwrap_or_default();
    let limits = merge_limits(&[&inherited[0].limits, &inherited[1].limits, &own.limits]);
    if let (Some(memory), Some(swap)) = (limits.memory, limits.memory_swap) {
        if swap < memory {
            r.invalid(
                file,
                format!("{prefix}.limits.memorySwap"),
                swap.to_string(),
                format!("memorySwap ({swap} bytes) is below memory ({memory} bytes)"),
            );
        }
    }

    // Binds: every named bind set's, then the sandbox's own.
    let mut binds: Vec<Resolved> = Vec::new();
    for (j, name) in raw.bind_sets.iter().enumerate() {
        match bind_sets.iter().find(|b| &b.set.name == name) {
            Some(loaded) => binds.extend(loaded.binds.iter().cloned()),
            None if !all_sets_loaded => {}
            None => {
                let hint = if r.may_suggest() {
                    let known: Vec<&str> = bind_sets.iter().map(|b| b.set.name.as_str()).collect();
                    suggest(name, &known)
                } else {
                    String::new()
                };
                r.invalid(
                    file,
                    format!("{prefix}.bindSets[{j}]"),
                    name,
                    format!("no loaded bind set is named `{name}`{hint}"),
                );
            }
        }
    }
    for (j, b) in raw.binds.iter().enumerate() {
        if let Some(resolved) = resolve_bind(r, file, &format!("{prefix}.binds[{j}]"), dir, b, ctx)
        {
            check_forbidden(r, &resolved, forbidden);
            all_binds.push(resolved.clone());
            binds.push(resolved);
        }
    }

    // Rule 4 (uniqueness): binds and tmpfs mounts share the sandbox's mount table.
    let mut seen: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (mount, (_, field)) in &tmpfs {
        seen.insert(PathBuf::from(mount), field.clone());
    }
    for b in &binds {
        let here = format!("{}.target", b.origin.field);
        if let Some(earlier) = seen.get(&b.bind.target) {
            r.invalid(
                &b.origin.file,
                &here,
                b.bind.target.display().to_string(),
                format!(
                    "target {} is already mounted by {earlier} in sandbox `{}`",
                    b.bind.target.display(),
                    raw.name
                ),
            );
        } else {
            seen.insert(b.bind.target.clone(), here);
        }
    }

    // An `rw` bind the sandbox's user cannot write is a sandbox that cannot do its job, found
    // now rather than as a failing probe later.
    let caps = (
        pick(&layers, |l| l.cap_drop.clone()).unwrap_or_default(),
        pick(&layers, |l| l.cap_add.clone()).unwrap_or_default(),
    );
    for b in binds
        .iter()
        .filter(|b| b.bind.mode == Mode::Rw && !b.bind.create)
    {
        if let Some(why) = rw_unwritable(&b.bind.source, &user, &caps) {
            r.mount_invalid(
                &b.origin.file,
                format!("{}.mode", b.origin.field),
                "rw",
                format!(
                    "sandbox `{}` runs as {user}, which cannot write {}: {why}; chown it to the \
                     sandbox's user, make it writable for its group, or mount it ro \
                     (POSIX ACLs are not read)",
                    raw.name,
                    b.bind.source.display()
                ),
            );
        }
    }

    let liveness = raw
        .liveness
        .as_ref()
        .and_then(|l| liveness(r, file, &format!("{prefix}.liveness"), l));

    // The sandbox's own egress block replaces the defaults' as a whole: an allow-list that
    // grows by inheritance is hard to read off the sandbox.
    let egress = layers.iter().rev().find_map(|l| l.egress.clone());
    if let Some((_, field)) = &egress {
        let network = pick(&layers, |l| l.network.clone());
        if let Some(net @ (Network::Bridge | Network::Named(_))) = &network {
            let shown = match net {
                Network::Named(n) => n.clone(),
                _ => "bridge".to_string(),
            };
            r.invalid(
                file,
                field,
                format!("network: {shown}"),
                format!(
                    "sandbox `{}` has an egress allow-list and `network: {shown}`; with egress the \
                     sandbox keeps no network of its own and reaches out only through the \
                     fortress's proxy on its loopback, and a network would bypass the proxy: \
                     remove `network` (or the egress block)",
                    raw.name
                ),
            );
        }
    }

    let policy = egress.as_ref().and_then(|(p, _)| p.as_ref());
    let broker = brokers(r, file, prefix, raw, egress.is_some(), policy);

    Some(Sandbox {
        name: raw.name.clone(),
        image: image?,
        user,
        allow_root: raw.allow_root,
        network: pick(&layers, |l| l.network.clone())?,
        read_only_root: pick(&layers, |l| l.read_only_root)?,
        tmpfs: tmpfs.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        cap_drop: pick(&layers, |l| l.cap_drop.clone())?,
        cap_add: pick(&layers, |l| l.cap_add.clone())?,
        no_new_privileges: pick(&layers, |l| l.no_new_privileges)?,
        init: pick(&layers, |l| l.init)?,
        seccomp: pick(&layers, |l| l.seccomp.clone())?,
        limits,
        binds: binds.into_iter().map(|b| b.bind).collect(),
        bind_sets: raw.bind_sets.clone(),
        env: raw
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
        secret_env: raw.secret_names(),
        broker,
        command: raw.command.clone(),
        liveness,
        egress: egress.and_then(|(policy, _)| policy),
    })
}

/// The `broker` blocks of `secretEnv`: exact `host:port` entries on the sandbox's effective
/// egress allow-list, and a non-empty `in` of `header`, `query`, `body`. `has_egress`: the
/// sandbox has an egress block (whose own problems are reported elsewhere; `policy` is `None`
/// then).
fn brokers(
    r: &mut Report,
    file: &Path,
    prefix: &str,
    raw: &RawSandbox,
    has_egress: bool,
    policy: Option<&EgressPolicy>,
) -> BTreeMap<String, Broker> {
    let mut out = BTreeMap::new();
    for (j, entry) in raw.secret_env.iter().enumerate() {
        let RawSecretEnv::Brokered(b) = entry else {
            continue;
        };
        let field = format!("{prefix}.secretEnv[{j}].broker");
        if !has_egress {
            r.invalid(
                file,
                &field,
                &b.name,
                format!(
                    "secret `{}` is brokered but sandbox `{}` has no egress allow-list: the \
                     broker is the egress proxy; add `egress.allow` with the brokered hosts",
                    b.name, raw.name
                ),
            );
        }
        if b.broker.hosts.is_empty() {
            r.invalid(
                file,
                format!("{field}.hosts"),
                "[]",
                "list the `host:port` destinations the secret is for",
            );
        }
        let mut hosts = Vec::new();
        for (k, h) in b.broker.hosts.iter().enumerate() {
            let here = format!("{field}.hosts[{k}]");
            match broker::parse_host(h) {
                Err(m) => r.invalid(file, &here, h, m),
                Ok((dest, port)) => {
                    if let Some(p) = policy {
                        if !broker::on_allow_list(p, &dest, port) {
                            r.invalid(
                                file,
                                &here,
                                h,
                                format!(
                                    "{} is not on sandbox `{}`'s egress.allow; add it there \
                                     (`egress.allow: [\"{}\"]`)",
                                    dest.rule(port),
                                    raw.name,
                                    dest.rule(port)
                                ),
                            );
                        }
                    }
                    hosts.push((dest, port));
                }
            }
        }
        if b.broker.places.is_empty() {
            r.invalid(
                file,
                format!("{field}.in"),
                "[]",
                "say where the value goes: one or more of header, query, body",
            );
        }
        let mut places = BTreeSet::new();
        for (k, p) in b.broker.places.iter().enumerate() {
            match Place::parse(p) {
                Some(place) => {
                    places.insert(place);
                }
                None => r.invalid(
                    file,
                    format!("{field}.in[{k}]"),
                    p,
                    "expected header, query or body",
                ),
            }
        }
        out.insert(b.name.clone(), Broker { hosts, places });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::writable;

    #[test]
    fn the_mode_bits_decide_who_may_write() {
        // (owner, group, mode, uid, gid, dac_override) -> may write
        let cases = [
            (1000, 1000, 0o700, 1000, Some(1000), false, true),
            (0, 0, 0o755, 1000, Some(1000), false, false),
            (0, 1000, 0o775, 1000, Some(1000), false, true),
            (0, 1000, 0o775, 1000, None, false, false),
            (0, 0, 0o777, 1000, Some(1000), false, true),
            (1000, 1000, 0o500, 1000, Some(1000), false, false),
            (0, 0, 0o755, 1000, Some(1000), true, true),
            // Root without DAC_OVERRIDE (capDrop: ALL) is held to the mode bits too.
            (1000, 1000, 0o755, 0, Some(0), false, false),
        ];
        for (owner, group, mode, uid, gid, dac, want) in cases {
            assert_eq!(
                writable(owner, group, mode, uid, gid, dac),
                want,
                "{owner}:{group} {mode:o} as {uid}:{gid:?} dac={dac}"
            );
        }
    }
}
