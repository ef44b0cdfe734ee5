//! The security-relevant configuration of a container as the engine reports it, turned into
//! the crate's own view once, and the comparison with what clw-fortress asked for.
//!
//! Labels say what a container claims; this says what it is. `plan` compares the two so that a
//! container recreated with the right labels but added capabilities, devices, host namespaces,
//! another network, extra mounts, emptied masked paths or a weaker seccomp profile is drift,
//! never `= ok`. The comparison is pure; only reading a profile file (Podman keeps a path) is
//! I/O, done by the caller through [`SecurityView::from_inspect`]'s reader.

use std::collections::BTreeSet;

use bollard::models::ContainerInspectResponse;

use super::CreateRequest;

/// What the engine says a container runs with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecurityView {
    pub privileged: bool,
    /// Capability names, upper case, without `CAP_`.
    pub cap_add: BTreeSet<String>,
    pub cap_drop: BTreeSet<String>,
    pub devices: usize,
    /// Namespaces shared with the host (`pid`, `ipc`, `uts`, `userns`).
    pub host_namespaces: Vec<String>,
    pub network_mode: String,
    pub user: String,
    pub readonly_rootfs: bool,
    /// How many paths the engine masks and makes read-only; `None` when the engine does not
    /// report them (Podman 4.3's compat inspect leaves both out; the in-sandbox probes see it).
    pub masked_paths: Option<usize>,
    pub readonly_paths: Option<usize>,
    /// Bind and volume mounts: `(source, target, read_only)`; the engine's init is left out.
    pub mounts: BTreeSet<(String, String, bool)>,
    pub no_new_privileges: bool,
    /// The seccomp profile in force: `None` = the engine's default (no `seccomp=` option),
    /// `Some("unconfined")`, or the profile's JSON text.
    pub seccomp: Option<String>,
    /// The profile could not be read (Podman path): the view cannot say what is in force.
    pub seccomp_unreadable: Option<String>,
}

use crate::spec::capability;

/// Paths of the engines' init binaries, bind-mounted by the engine itself for `init: true`.
pub const INIT_PATHS: &[&str] = &[
    "/sbin/docker-init",
    "/dev/init",
    "/run/podman-init",
    "/usr/libexec/podman/catatonit",
];

impl SecurityView {
    /// The view of an inspected container. `read_profile` reads a profile the engine holds by
    /// path (Podman), bounded; a read error is kept as `seccomp_unreadable`.
    pub fn from_inspect(
        i: &ContainerInspectResponse,
        read_profile: impl Fn(&str) -> std::io::Result<String>,
    ) -> SecurityView {
        let hc = i.host_config.clone().unwrap_or_default();
        let caps = |v: Option<Vec<String>>| -> BTreeSet<String> {
            v.unwrap_or_default()
                .iter()
                .map(|c| capability(c))
                .collect()
        };
        let mut host_namespaces = Vec::new();
        for (ns, mode) in [
            ("pid", hc.pid_mode.clone()),
            ("ipc", hc.ipc_mode.clone()),
            ("uts", hc.uts_mode.clone()),
            ("userns", hc.userns_mode.clone()),
            // Not `cgroupns`: `host` is the engines' default on cgroup v1 hosts (Docker 20.10
            // reports it for every container there), and clw-fortress does not ask otherwise.
        ] {
            if mode.as_deref() == Some("host") {
                host_namespaces.push(ns.to_string());
            }
        }
        let security_opt = hc.security_opt.clone().unwrap_or_default();
        let no_new_privileges = security_opt.iter().any(|o| {
            matches!(
                o.as_str(),
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
            )
        });
        let mut seccomp = None;
        let mut seccomp_unreadable = None;
        for o in &security_opt {
            let Some(v) = o
                .strip_prefix("seccomp=")
                .or_else(|| o.strip_prefix("seccomp:"))
            else {
                continue;
            };
            let v = v.trim();
            if v.eq_ignore_ascii_case("unconfined") || v.starts_with('{') {
                seccomp = Some(v.to_string());
            } else {
                match read_profile(v) {
                    Ok(text) => seccomp = Some(text),
                    Err(e) => seccomp_unreadable = Some(format!("{v}: {e}")),
                }
            }
        }
        let mounts = i
            .mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() != Some("tmpfs"))
            .filter_map(|m| {
                let target = m.destination?;
                if INIT_PATHS.contains(&target.as_str()) {
                    return None;
                }
                Some((m.source.unwrap_or_default(), target, m.rw != Some(true)))
            })
            .collect();
        SecurityView {
            privileged: hc.privileged == Some(true),
            cap_add: caps(hc.cap_add),
            cap_drop: caps(hc.cap_drop),
            devices: hc.devices.map(|d| d.len()).unwrap_or(0),
            host_namespaces,
            network_mode: hc.network_mode.unwrap_or_default(),
            user: i
                .config
                .as_ref()
                .and_then(|c| c.user.clone())
                .unwrap_or_default(),
            readonly_rootfs: hc.readonly_rootfs == Some(true),
            masked_paths: hc.masked_paths.map(|p| p.len()),
            readonly_paths: hc.readonly_paths.map(|p| p.len()),
            mounts,
            no_new_privileges,
            seccomp,
            seccomp_unreadable,
        }
    }
}

/// The most a profile file may hold: the generated ones are a few tens of KiB.
const MAX_PROFILE_BYTES: u64 = 4 << 20;

/// Reads a seccomp profile the engine holds by path (Podman), bounded, regular files only.
pub fn read_profile(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_PROFILE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Every way `seen` differs from what `want` asked for, one phrase each; empty when the
/// container runs as requested. Profiles are compared by JSON content, not by text.
pub fn drift(want: &CreateRequest, seen: &SecurityView) -> Vec<String> {
    let mut out = Vec::new();
    if seen.privileged {
        out.push("privileged".to_string());
    }
    let want_add: BTreeSet<String> = want.cap_add.iter().map(|c| capability(c)).collect();
    if seen.cap_add != want_add {
        out.push(format!(
            "added capabilities {:?} (declared {:?})",
            seen.cap_add, want_add
        ));
    }
    let want_drop: BTreeSet<String> = want.cap_drop.iter().map(|c| capability(c)).collect();
    if !want_drop.is_subset(&seen.cap_drop) {
        out.push(format!(
            "dropped capabilities {:?} (declared {:?})",
            seen.cap_drop, want_drop
        ));
    }
    if seen.devices > 0 {
        out.push(format!("{} device(s) added", seen.devices));
    }
    if !seen.host_namespaces.is_empty() {
        out.push(format!("host namespaces {:?}", seen.host_namespaces));
    }
    if seen.network_mode != want.network_mode {
        out.push(format!(
            "network {:?} (declared {:?})",
            seen.network_mode, want.network_mode
        ));
    }
    if seen.user != want.user {
        out.push(format!("user {:?} (declared {:?})", seen.user, want.user));
    }
    if seen.readonly_rootfs != want.read_only_root {
        out.push(format!("read-only root {}", seen.readonly_rootfs));
    }
    if seen.masked_paths == Some(0) || seen.readonly_paths == Some(0) {
        out.push("the engine's masked or read-only /proc paths are emptied".to_string());
    }
    let want_mounts: BTreeSet<(String, String, bool)> = want
        .binds
        .iter()
        .map(|b| (b.source.clone(), b.target.clone(), b.read_only))
        .collect();
    if seen.mounts != want_mounts {
        let extra: Vec<_> = seen.mounts.difference(&want_mounts).collect();
        let missing: Vec<_> = want_mounts.difference(&seen.mounts).collect();
        out.push(format!(
            "mounts differ (extra {extra:?}, missing {missing:?})"
        ));
    }
    if seen.no_new_privileges != want.no_new_privileges {
        out.push(format!("no-new-privileges {}", seen.no_new_privileges));
    }
    out.extend(seccomp_drift(want.seccomp_profile.as_deref(), seen));
    out
}

/// How the seccomp profile in force differs from `want` (the generated profile's JSON, or
/// `None` for the engine default), compared by JSON content; `None` when it does not.
pub fn seccomp_drift(want: Option<&str>, seen: &SecurityView) -> Option<String> {
    if let Some(e) = &seen.seccomp_unreadable {
        return Some(format!("the seccomp profile in force cannot be read ({e})"));
    }
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
    let same = match (want, &seen.seccomp) {
        (None, None) => true,
        (Some(w), Some(s)) => parse(w).is_some() && parse(w) == parse(s),
        _ => false,
    };
    (!same).then(|| match &seen.seccomp {
        None => "no seccomp profile of ours (the engine default)".to_string(),
        Some(s) if s.eq_ignore_ascii_case("unconfined") => "seccomp unconfined".to_string(),
        Some(_) => "the seccomp profile in force differs from the generated one".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BindMount;

    fn want() -> CreateRequest {
        CreateRequest {
            user: "1000:1000".into(),
            binds: vec![BindMount {
                source: "/h/ws".into(),
                target: "/ws".into(),
                read_only: false,
            }],
            read_only_root: true,
            cap_drop: vec!["ALL".into()],
            no_new_privileges: true,
            seccomp_profile: Some(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#.into()),
            network_mode: "none".into(),
            ..Default::default()
        }
    }

    fn seen() -> SecurityView {
        SecurityView {
            cap_drop: ["ALL".to_string()].into(),
            network_mode: "none".into(),
            user: "1000:1000".into(),
            readonly_rootfs: true,
            masked_paths: Some(10),
            readonly_paths: Some(5),
            mounts: [("/h/ws".to_string(), "/ws".to_string(), false)].into(),
            no_new_privileges: true,
            seccomp: Some("{ \"defaultAction\": \"SCMP_ACT_ERRNO\" }".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_as_requested_has_no_drift() {
        assert_eq!(drift(&want(), &seen()), Vec::<String>::new());
    }

    #[test]
    fn each_weakening_is_drift() {
        type Weaken = fn(&mut SecurityView);
        let cases: Vec<(&str, Weaken)> = vec![
            ("privileged", |s| s.privileged = true),
            ("added capabilities", |s| {
                s.cap_add.insert("SYS_ADMIN".into());
            }),
            ("dropped capabilities", |s| s.cap_drop.clear()),
            ("device", |s| s.devices = 1),
            ("host namespaces", |s| s.host_namespaces.push("pid".into())),
            ("network", |s| s.network_mode = "bridge".into()),
            ("user", |s| s.user = "0".into()),
            ("read-only root", |s| s.readonly_rootfs = false),
            ("masked", |s| s.masked_paths = Some(0)),
            ("mounts differ", |s| {
                s.mounts
                    .insert(("/var/run/docker.sock".into(), "/x".into(), false));
            }),
            ("no-new-privileges", |s| s.no_new_privileges = false),
            ("seccomp unconfined", |s| {
                s.seccomp = Some("unconfined".into())
            }),
            ("differs from the generated", |s| {
                s.seccomp = Some(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#.into())
            }),
            ("engine default", |s| s.seccomp = None),
            ("cannot be read", |s| {
                s.seccomp_unreadable = Some("p: gone".into())
            }),
        ];
        for (want_phrase, weaken) in cases {
            let mut s = seen();
            weaken(&mut s);
            let d = drift(&want(), &s);
            assert!(
                d.len() == 1 && d[0].contains(want_phrase),
                "{want_phrase}: {d:?}"
            );
        }
    }
}
