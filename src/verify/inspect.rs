//! The engine-side half of `verify`: checks over what the engine says it was asked for
//! (`docker inspect`), pure over [`ContainerInspectResponse`].
//!
//! These complement the in-sandbox probes (which prove what a process can do); they must not
//! talk to the engine themselves.

use std::path::{Path, PathBuf};

use bollard::models::{ContainerInspectResponse, MountPoint};

use super::probes::ENGINE_SOCKET_NAMES;
use super::{Expect, Outcome, ProbeResult};

fn r(probe: &str, outcome: Outcome, detail: impl Into<String>) -> ProbeResult {
    ProbeResult::new(probe, outcome, detail)
}

fn pass_or_fail(probe: &str, bad: Vec<String>, ok: &str) -> ProbeResult {
    if bad.is_empty() {
        r(probe, Outcome::Pass, ok)
    } else {
        r(probe, Outcome::Fail, bad.join("; "))
    }
}

/// The mounts the engine holds for the container.
pub fn mounts(c: &ContainerInspectResponse) -> Vec<MountPoint> {
    c.mounts.clone().unwrap_or_default()
}

/// What makes a host path sensitive for this fortress.
#[derive(Debug, Clone, Default)]
pub struct Sensitive {
    pub secrets_file: Option<PathBuf>,
    pub deny: Vec<PathBuf>,
}

fn sensitive_reason(source: &str, bind: bool, s: &Sensitive) -> Option<String> {
    let p = Path::new(source);
    let base = p.file_name().and_then(|b| b.to_str()).unwrap_or("");
    if ENGINE_SOCKET_NAMES.contains(&base) {
        return Some(format!("{source} is an engine socket"));
    }
    // Volumes live beneath the engine's own storage by design; only a bind hands over a path.
    if let Some(dir) = crate::manifest::exposed_system_path(p).filter(|_| bind) {
        return Some(format!("{source} exposes the host system path {dir}"));
    }
    if let Some(f) = &s.secrets_file {
        if f.starts_with(p) {
            return Some(format!("{source} exposes the secrets file"));
        }
    }
    for d in &s.deny {
        if d.starts_with(p) || p.starts_with(d) {
            return Some(format!("{source} exposes the denied path {}", d.display()));
        }
    }
    None
}

/// Every engine-side check, in a stable order.
pub fn check(c: &ContainerInspectResponse, expect: &Expect, s: &Sensitive) -> Vec<ProbeResult> {
    let hc = c.host_config.clone().unwrap_or_default();
    let sec = hc.security_opt.clone().unwrap_or_default();
    let mut out = Vec::new();

    out.push(if hc.privileged == Some(true) {
        r("config.not-privileged", Outcome::Fail, "Privileged: true")
    } else {
        r("config.not-privileged", Outcome::Pass, "not privileged")
    });

    let mut bad = Vec::new();
    let modes = [
        ("network", hc.network_mode.clone()),
        ("pid", hc.pid_mode.clone()),
        ("ipc", hc.ipc_mode.clone()),
        ("uts", hc.uts_mode.clone()),
        ("userns", hc.userns_mode.clone()),
    ];
    for (ns, mode) in &modes {
        if mode.as_deref() == Some("host") {
            bad.push(format!("{ns} namespace is the host's"));
        }
    }
    out.push(pass_or_fail(
        "config.namespaces",
        bad,
        "no host network, pid, ipc, uts or userns namespace",
    ));

    let unconfined = |kind: &str| {
        sec.iter().any(|o| {
            let o = o.replace(':', "=");
            o == format!("{kind}=unconfined")
        })
    };
    out.push(if unconfined("seccomp") {
        r(
            "config.seccomp-confined",
            Outcome::Fail,
            "seccomp=unconfined: no syscall filter",
        )
    } else if sec.iter().any(|o| o.starts_with("seccomp")) {
        r(
            "config.seccomp-confined",
            Outcome::Pass,
            "a custom seccomp profile",
        )
    } else {
        r(
            "config.seccomp-confined",
            Outcome::Pass,
            "the engine's default seccomp profile",
        )
    });

    let aa = c.app_armor_profile.clone().unwrap_or_default();
    out.push(if unconfined("apparmor") || aa == "unconfined" {
        r("config.apparmor", Outcome::Fail, "AppArmor unconfined")
    } else if aa.is_empty() {
        r(
            "config.apparmor",
            Outcome::Pass,
            "no AppArmor profile requested as unconfined (AppArmor is not active on this host)",
        )
    } else {
        r("config.apparmor", Outcome::Pass, format!("profile {aa}"))
    });

    let bad: Vec<String> = mounts(c)
        .iter()
        .filter_map(|m| {
            let src = m.source.clone().unwrap_or_default();
            let bind = m.typ.as_deref().is_none_or(|t| t == "bind");
            sensitive_reason(&src, bind, s).map(|why| {
                format!(
                    "{} -> {} ({why})",
                    src,
                    m.destination.clone().unwrap_or_default()
                )
            })
        })
        .collect();
    out.push(pass_or_fail(
        "config.no-sensitive-mounts",
        bad,
        "no engine socket, secrets or sensitive host path among the mounts",
    ));

    let mut bad = Vec::new();
    if hc.memory.unwrap_or(0) <= 0 {
        bad.push("no memory limit".to_string());
    }
    if hc.nano_cpus.unwrap_or(0) <= 0 && hc.cpu_quota.unwrap_or(0) <= 0 {
        bad.push("no cpu limit".to_string());
    }
    if hc.pids_limit.unwrap_or(0) <= 0 {
        bad.push("no pids limit".to_string());
    }
    out.push(pass_or_fail(
        "config.limits-set",
        bad,
        "memory, cpu and pids limits set",
    ));

    out.push(match (expect.read_only_root, hc.readonly_rootfs) {
        (false, _) => r(
            "config.readonly-root",
            Outcome::Pass,
            "not required (readOnlyRoot: false)",
        ),
        (true, Some(true)) => r("config.readonly-root", Outcome::Pass, "ReadonlyRootfs"),
        (true, _) => r(
            "config.readonly-root",
            Outcome::Fail,
            "the root filesystem is writable",
        ),
    });

    let nnp = sec.iter().any(|o| {
        let o = o.replace(':', "=");
        o == "no-new-privileges" || o == "no-new-privileges=true"
    });
    out.push(match (expect.no_new_privileges, nnp) {
        (false, _) => r(
            "config.no-new-privileges",
            Outcome::Pass,
            "not required (noNewPrivileges: false)",
        ),
        (true, true) => r(
            "config.no-new-privileges",
            Outcome::Pass,
            "no-new-privileges set",
        ),
        (true, false) => r(
            "config.no-new-privileges",
            Outcome::Fail,
            "no-new-privileges is not set",
        ),
    });

    let norm = |c: &String| {
        let c = c.trim().to_ascii_uppercase();
        c.strip_prefix("CAP_").map(str::to_string).unwrap_or(c)
    };
    let allowed: Vec<String> = expect.cap_add.iter().map(norm).collect();
    let added: Vec<String> = hc
        .cap_add
        .clone()
        .unwrap_or_default()
        .iter()
        .map(norm)
        .filter(|c| !allowed.contains(c))
        .collect();
    let dropped: Vec<String> = hc
        .cap_drop
        .clone()
        .unwrap_or_default()
        .iter()
        .map(norm)
        .collect();
    let mut bad = Vec::new();
    if !added.is_empty() {
        bad.push(format!("added beyond capAdd: {}", added.join(",")));
    }
    if expect.cap_drop_all && !dropped.iter().any(|c| c == "ALL") {
        bad.push("CapDrop lacks ALL".into());
    }
    out.push(pass_or_fail(
        "config.caps",
        bad,
        "no capabilities beyond capAdd; ALL dropped",
    ));

    let mut bad = Vec::new();
    let devices = hc.devices.clone().unwrap_or_default();
    if !devices.is_empty() {
        bad.push(format!(
            "devices: {}",
            devices
                .iter()
                .map(|d| d.path_on_host.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if !hc.device_requests.clone().unwrap_or_default().is_empty() {
        bad.push("device requests (GPUs)".into());
    }
    if !hc
        .device_cgroup_rules
        .clone()
        .unwrap_or_default()
        .is_empty()
    {
        bad.push("device cgroup rules".into());
    }
    out.push(pass_or_fail("config.no-devices", bad, "no host devices"));

    let bad: Vec<String> = mounts(c)
        .iter()
        .filter(|m| {
            let p = m
                .propagation
                .clone()
                .map(|p| p.to_string())
                .unwrap_or_default();
            p == "shared" || p == "rshared"
        })
        .map(|m| {
            format!(
                "{} is {}",
                m.destination.clone().unwrap_or_default(),
                m.propagation
                    .clone()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    out.push(pass_or_fail(
        "config.propagation",
        bad,
        "no mount with shared propagation",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::HostConfig;

    fn good() -> ContainerInspectResponse {
        ContainerInspectResponse {
            host_config: Some(HostConfig {
                privileged: Some(false),
                network_mode: Some("none".into()),
                ipc_mode: Some("private".into()),
                readonly_rootfs: Some(true),
                security_opt: Some(vec!["no-new-privileges:true".into(), "seccomp={}".into()]),
                cap_drop: Some(vec!["ALL".into()]),
                memory: Some(64 << 20),
                nano_cpus: Some(500_000_000),
                pids_limit: Some(64),
                ..Default::default()
            }),
            mounts: Some(vec![MountPoint {
                typ: Some("bind".into()),
                source: Some("/home/u/.openclaw/workspace".into()),
                destination: Some("/agent-workspace".into()),
                rw: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn expect() -> Expect {
        Expect {
            read_only_root: true,
            no_new_privileges: true,
            cap_drop_all: true,
            ..Default::default()
        }
    }

    fn sensitive() -> Sensitive {
        Sensitive {
            secrets_file: Some("/home/u/.config/openclaw-secrets/secrets.env".into()),
            deny: vec!["/home/u/.openclaw/credentials".into()],
        }
    }

    fn failing(c: &ContainerInspectResponse) -> Vec<String> {
        check(c, &expect(), &sensitive())
            .into_iter()
            .filter(|p| p.outcome != Outcome::Pass)
            .map(|p| p.probe)
            .collect()
    }

    #[test]
    fn a_hardened_container_passes_every_engine_check() {
        assert_eq!(failing(&good()), Vec::<String>::new());
    }

    #[test]
    fn each_weakness_fails_exactly_its_check() {
        type Weaken = fn(&mut ContainerInspectResponse);
        let cases: Vec<(&str, Weaken)> = vec![
            ("config.not-privileged", |c| {
                c.host_config.as_mut().unwrap().privileged = Some(true)
            }),
            ("config.namespaces", |c| {
                c.host_config.as_mut().unwrap().pid_mode = Some("host".into())
            }),
            ("config.seccomp-confined", |c| {
                c.host_config.as_mut().unwrap().security_opt = Some(vec![
                    "no-new-privileges:true".into(),
                    "seccomp=unconfined".into(),
                ])
            }),
            ("config.apparmor", |c| {
                c.app_armor_profile = Some("unconfined".into())
            }),
            ("config.no-sensitive-mounts", |c| {
                c.mounts.as_mut().unwrap().push(MountPoint {
                    source: Some("/var/run/docker.sock".into()),
                    destination: Some("/run/d.sock".into()),
                    ..Default::default()
                })
            }),
            ("config.no-sensitive-mounts", |c| {
                c.mounts.as_mut().unwrap().push(MountPoint {
                    source: Some("/home/u/.config".into()),
                    destination: Some("/cfg".into()),
                    ..Default::default()
                })
            }),
            ("config.no-sensitive-mounts", |c| {
                c.mounts.as_mut().unwrap().push(MountPoint {
                    source: Some("/home/u/.openclaw/credentials/x".into()),
                    destination: Some("/x".into()),
                    ..Default::default()
                })
            }),
            ("config.limits-set", |c| {
                c.host_config.as_mut().unwrap().pids_limit = None
            }),
            ("config.readonly-root", |c| {
                c.host_config.as_mut().unwrap().readonly_rootfs = Some(false)
            }),
            ("config.no-new-privileges", |c| {
                c.host_config.as_mut().unwrap().security_opt = Some(vec!["seccomp={}".into()])
            }),
            ("config.caps", |c| {
                c.host_config.as_mut().unwrap().cap_add = Some(vec!["SYS_ADMIN".into()])
            }),
            ("config.no-devices", |c| {
                c.host_config.as_mut().unwrap().devices =
                    Some(vec![bollard::models::DeviceMapping {
                        path_on_host: Some("/dev/kvm".into()),
                        ..Default::default()
                    }])
            }),
            ("config.propagation", |c| {
                c.mounts.as_mut().unwrap()[0].propagation = Some("rshared".into())
            }),
        ];
        for (probe, weaken) in cases {
            let mut c = good();
            weaken(&mut c);
            assert_eq!(failing(&c), vec![probe.to_string()], "{probe}");
        }
    }

    #[test]
    fn declared_capabilities_are_not_a_failure() {
        let mut c = good();
        c.host_config.as_mut().unwrap().cap_add = Some(vec!["CAP_NET_BIND_SERVICE".into()]);
        let mut e = expect();
        e.cap_add = vec!["NET_BIND_SERVICE".into()];
        assert!(check(&c, &e, &sensitive())
            .iter()
            .all(|p| p.outcome == Outcome::Pass));
    }
}
