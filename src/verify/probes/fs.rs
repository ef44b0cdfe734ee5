//! The `fs.*` probes: each declared bind mounted with its declared mode (a write into it fails
//! with EROFS exactly when it should), the root filesystem read-only, no mount that is neither
//! declared nor standard, and the engine's masked and read-only paths in place.

use std::collections::BTreeSet;

use super::super::{BindExpect, Expect, Outcome, ProbeResult};
use super::{list, r, Facts, MountLine, WriteResult, ENGINE_INITS};

/// The filesystem probes in catalogue order; the bind probes only where binds are declared
/// (`expect.binds` is `None` for adopted containers).
pub(super) fn probes(expect: &Expect, facts: &Facts) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    if let Some(binds) = &expect.binds {
        out.extend(bind_modes(binds, facts));
    }
    out.push(root_readonly(expect, facts));
    if let Some(binds) = &expect.binds {
        out.push(no_extra_mounts(expect, binds, facts));
    }
    out.push(masked_paths(facts));
    out
}

/// `fs.ro-binds` and `fs.rw-binds`: each declared target is mounted, and a write into it fails
/// on a read-only mount (read-only) or succeeds (writable) as declared.
fn bind_modes(binds: &[BindExpect], facts: &Facts) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    let mounted = |t: &str| facts.mounts.iter().rev().find(|m| m.mount_point == t);
    for (probe, want_ro) in [("fs.ro-binds", true), ("fs.rw-binds", false)] {
        let targets: Vec<&String> = binds
            .iter()
            .filter(|b| b.read_only == want_ro)
            .map(|b| &b.target)
            .collect();
        let mut bad = Vec::new();
        for t in &targets {
            let w = facts
                .writes
                .iter()
                .find(|(k, p, _)| k == if want_ro { "ro" } else { "rw" } && p == *t);
            let m = mounted(t);
            let problem = match (w.map(|w| &w.2), m) {
                (None, _) => Some(format!("{t}: not probed")),
                (Some(WriteResult::Missing), _) | (_, None) => Some(format!("{t}: not mounted")),
                (Some(WriteResult::Ok), _) if want_ro => Some(format!("{t}: writable")),
                // Read-only is what mountinfo says plus a failed write: a write refused for
                // another reason (EACCES for the sandbox's uid) on an `ro` mount is still
                // read-only; on a mount that is not, it is writable for someone else.
                (Some(WriteResult::Err(_)), Some(m)) if want_ro && m.read_only => None,
                (Some(WriteResult::Err(e)), Some(_)) if want_ro => Some(format!(
                    "{t}: mounted read-write; the write failed only ({e})"
                )),
                (Some(WriteResult::Err(e)), _) => Some(format!("{t}: write failed ({e})")),
                (Some(WriteResult::Ok), Some(m)) if m.read_only => {
                    Some(format!("{t}: mounted read-only"))
                }
                (Some(WriteResult::Ok), Some(_)) => None,
            };
            bad.extend(problem);
        }
        let what = if want_ro { "read-only" } else { "writable" };
        out.push(if targets.is_empty() {
            r(probe, Outcome::Pass, format!("no {what} binds declared"))
        } else if bad.is_empty() {
            r(
                probe,
                Outcome::Pass,
                format!("{} bind(s) {what} as declared", targets.len()),
            )
        } else if bad.iter().all(|b| b.ends_with("not probed")) {
            r(probe, Outcome::Inconclusive, list(&bad))
        } else {
            r(probe, Outcome::Fail, list(&bad))
        });
    }
    out
}

/// `fs.root-readonly`: `/` is mounted read-only and writes to `/` and `/etc` fail with EROFS.
fn root_readonly(expect: &Expect, facts: &Facts) -> ProbeResult {
    if !expect.read_only_root {
        r(
            "fs.root-readonly",
            Outcome::Pass,
            "not required (readOnlyRoot: false)",
        )
    } else {
        let root_ro = facts
            .mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == "/")
            .map(|m| m.read_only);
        let writes: Vec<&(String, String, WriteResult)> =
            facts.writes.iter().filter(|w| w.0 == "root").collect();
        let writable: Vec<String> = writes
            .iter()
            .filter(|w| {
                !matches!(&w.2, WriteResult::Err(e) if e.contains("Read-only"))
                    && !matches!(w.2, WriteResult::Missing)
            })
            .map(|w| w.1.clone())
            .collect();
        if writes.is_empty() || root_ro.is_none() {
            r(
                "fs.root-readonly",
                Outcome::Inconclusive,
                "the write probe did not run",
            )
        } else if root_ro == Some(false) || !writable.is_empty() {
            r(
                "fs.root-readonly",
                Outcome::Fail,
                format!(
                    "root filesystem is not read-only{}",
                    if writable.is_empty() {
                        String::new()
                    } else {
                        format!(" (no EROFS writing to {})", writable.join(", "))
                    }
                ),
            )
        } else {
            r(
                "fs.root-readonly",
                Outcome::Pass,
                "writes to / and /etc fail with EROFS",
            )
        }
    }
}

/// `fs.no-extra-mounts`: every mount is declared (a bind or a tmpfs) or standard.
fn no_extra_mounts(expect: &Expect, binds: &[BindExpect], facts: &Facts) -> ProbeResult {
    let declared: BTreeSet<&str> = binds
        .iter()
        .map(|b| b.target.as_str())
        .chain(expect.tmpfs.iter().map(String::as_str))
        .collect();
    let extra: Vec<String> = facts
        .mounts
        .iter()
        .filter(|m| {
            !standard_mount(&m.mount_point)
                && !declared.contains(m.mount_point.as_str())
                && !shadow_tmpfs(m)
                && !engine_init_mount(m)
                && !podman_user_files(m)
        })
        .map(|m| format!("{} ({} {})", m.mount_point, m.fstype, m.root))
        .collect();
    if facts.mounts.is_empty() {
        r(
            "fs.no-extra-mounts",
            Outcome::Inconclusive,
            "/proc/self/mountinfo could not be read",
        )
    } else if extra.is_empty() {
        r(
            "fs.no-extra-mounts",
            Outcome::Pass,
            format!("{} mounts, all declared or standard", facts.mounts.len()),
        )
    } else {
        r(
            "fs.no-extra-mounts",
            Outcome::Fail,
            format!("undeclared mounts: {}", list(&extra)),
        )
    }
}

/// Mount points every container has (rootfs, proc, sys, dev, cgroup, the engine's
/// hostname/hosts/resolv.conf binds) and the engine's masks under `/proc` and `/sys`.
fn standard_mount(mp: &str) -> bool {
    const EXACT: [&str; 7] = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
    ];
    EXACT.contains(&mp)
        || ["/proc/", "/sys/", "/dev/"]
            .iter()
            .any(|p| mp.starts_with(p))
}

/// The read-only tmpfs the engine adapter puts over Podman's automatic writable `/tmp`,
/// `/var/tmp` and `/run` (`engine::podman::SHADOW_TMPFS`): created empty and read-only, it
/// exposes nothing and accepts no writes, so it is not an extra mount. A writable tmpfs there
/// still is.
fn shadow_tmpfs(m: &MountLine) -> bool {
    m.fstype == "tmpfs"
        && m.read_only
        && crate::engine::podman::AUTO_TMPFS.contains(&m.mount_point.as_str())
}

/// Podman's generated `/etc/passwd` and `/etc/group` for a uid the image does not know (a
/// sandbox running as `metadata.owner`'s uid, say): read-only copies of the image's files plus
/// one line, from the container's own `userdata` directory (measured on 4.3:
/// `.../overlay-containers/<id>/userdata/passwd`). The same file bound from anywhere else, or
/// writable, is still an extra mount.
fn podman_user_files(m: &MountLine) -> bool {
    let Some(file) = ["/etc/passwd", "/etc/group"]
        .into_iter()
        .find(|f| m.mount_point == *f)
    else {
        return false;
    };
    let name = &file["/etc/".len()..];
    let Some(dir) = m.root.strip_suffix(&format!("/userdata/{name}")) else {
        return false;
    };
    let id = dir.rsplit('/').next().unwrap_or_default();
    m.read_only
        && dir.ends_with(&format!("/overlay-containers/{id}"))
        && id.len() == 64
        && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn engine_init_mount(m: &MountLine) -> bool {
    m.read_only && ENGINE_INITS.contains(&m.mount_point.as_str())
}

/// `fs.masked-paths`: the engine's masked paths hide what they hide, its read-only paths are
/// mounted read-only (and a write-open fails).
fn masked_paths(facts: &Facts) -> ProbeResult {
    let probe = "fs.masked-paths";
    if facts.masked.is_empty() || facts.mounts.is_empty() {
        return r(
            probe,
            Outcome::Inconclusive,
            "the masked paths were not examined (the script was cut short?)",
        );
    }
    let mut bad = Vec::new();
    for (p, seen) in &facts.masked {
        match seen.as_str() {
            "absent" | "null" | "empty" | "unreadable" => {}
            "listed" => bad.push(format!("{p} lists its content")),
            _ => bad.push(format!("{p} is readable")),
        }
    }
    // The mount a path is on: the deepest mount point above it (the last one mounted there).
    let covering = |p: &str| {
        facts
            .mounts
            .iter()
            .filter(|m| {
                m.mount_point == "/"
                    || p == m.mount_point
                    || p.starts_with(&format!("{}/", m.mount_point))
            })
            .max_by_key(|m| m.mount_point.len())
    };
    for (p, state, err) in &facts.readonly {
        if state == "absent" {
            continue;
        }
        if state == "ok" {
            bad.push(format!("{p} opens for writing"));
            continue;
        }
        match covering(p) {
            Some(m) if m.read_only => {}
            Some(m) => bad.push(format!(
                "{p} is on a writable mount ({}){}",
                m.mount_point,
                if state == "err" && !err.is_empty() {
                    format!(", its write failed only with: {err}")
                } else {
                    String::new()
                }
            )),
            None => bad.push(format!("{p} is on no mount seen")),
        }
    }
    if bad.is_empty() {
        r(
            probe,
            Outcome::Pass,
            format!(
                "{} masked paths hidden, {} read-only paths read-only",
                facts.masked.len(),
                facts.readonly.len()
            ),
        )
    } else {
        r(probe, Outcome::Fail, list(&bad))
    }
}
