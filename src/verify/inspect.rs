//! The engine-side half of `verify`: checks over what the engine says it was asked for
//! (`docker inspect`), pure over [`ContainerInspectResponse`].
//!
//! These complement the in-sandbox probes (which prove what a process can do); they must not
//! talk to the engine themselves.

use std::path::{Path, PathBuf};

use bollard::models::{ContainerInspectResponse, MountPoint};

use crate::engine::security::{seccomp_drift, SecurityView};

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

/// `config.seccomp-confined`: the profile in force (`view`, read from what the engine holds)
/// is the one clw-fortress generated for the sandbox, compared by JSON content
/// (`engine::security::seccomp_drift`, the comparison `plan` uses). Nothing was generated for
/// an adopted container: there only an unconfined one fails.
fn seccomp_confined(expect: &Expect, view: &SecurityView) -> ProbeResult {
    let probe = "config.seccomp-confined";
    if view
        .seccomp
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("unconfined"))
    {
        return r(
            probe,
            Outcome::Fail,
            "seccomp=unconfined: no syscall filter",
        );
    }
    if let Some(e) = &view.seccomp_unreadable {
        return r(
            probe,
            Outcome::Inconclusive,
            format!("the seccomp profile in force cannot be read ({e})"),
        );
    }
    let adopted = expect.binds.is_none();
    match (&expect.seccomp_profile, adopted) {
        (_, true) => r(
            probe,
            Outcome::Pass,
            if view.seccomp.is_some() {
                "a custom seccomp profile (adopted: nothing generated to compare with)"
            } else {
                "the engine's default seccomp profile"
            },
        ),
        (None, false) => r(
            probe,
            Outcome::Inconclusive,
            "the sandbox's own profile could not be generated to compare with",
        ),
        (Some(want), false) => match seccomp_drift(Some(want), view) {
            None => r(
                probe,
                Outcome::Pass,
                "the profile in force is the generated one (compared by content)",
            ),
            Some(d) => r(
                probe,
                Outcome::Fail,
                format!("{d}{}", profile_diff(want, view.seccomp.as_deref())),
            ),
        },
    }
}

/// What differs between the generated profile and the one in force, for the report: the
/// default action, and how many x86_64 calls each allows that the other does not (a few
/// named).
fn profile_diff(want: &str, seen: Option<&str>) -> String {
    use crate::seccomp::{denied_names, Profile};
    let Some(seen) = seen else {
        return String::new();
    };
    let (want, seen) = match (Profile::from_json(want), Profile::from_json(seen)) {
        (Ok(w), Ok(s)) => (w, s),
        (_, Err(e)) => return format!(" (not readable as a profile: {e})"),
        (Err(_), _) => return String::new(),
    };
    let (wd, sd) = (denied_names(&want), denied_names(&seen));
    let now_allowed: Vec<&String> = wd.difference(&sd).collect();
    let now_denied: Vec<&String> = sd.difference(&wd).collect();
    let few = |v: &[&String]| {
        let mut s = v
            .iter()
            .take(8)
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if v.len() > 8 {
            s.push_str(", ...");
        }
        s
    };
    let mut parts = Vec::new();
    if want.default_action != seen.default_action {
        parts.push(format!(
            "defaultAction {} -> {}",
            want.default_action.as_str(),
            seen.default_action.as_str()
        ));
    }
    if !now_allowed.is_empty() {
        parts.push(format!(
            "{} call(s) allowed that the generated profile denies ({})",
            now_allowed.len(),
            few(&now_allowed)
        ));
    }
    if !now_denied.is_empty() {
        parts.push(format!(
            "{} call(s) denied that it allows ({})",
            now_denied.len(),
            few(&now_denied)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// Every engine-side check, in a stable order. `view` is the engine's security view of the
/// container, with a profile held by path already read.
pub fn check(
    c: &ContainerInspectResponse,
    expect: &Expect,
    s: &Sensitive,
    view: &SecurityView,
) -> Vec<ProbeResult> {
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
    out.push(seccomp_confined(expect, view));

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

    let norm = |c: &String| crate::spec::capability(c);
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

    fn view(c: &ContainerInspectResponse) -> SecurityView {
        SecurityView::from_inspect(c, |p| Err(std::io::Error::other(format!("no file {p}"))))
    }

    fn failing(c: &ContainerInspectResponse) -> Vec<String> {
        check(c, &expect(), &sensitive(), &view(c))
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
        assert!(check(&c, &e, &sensitive(), &view(&c))
            .iter()
            .all(|p| p.outcome == Outcome::Pass));
    }

    fn sandbox_expect(profile: &str) -> Expect {
        Expect {
            binds: Some(Vec::new()),
            seccomp_profile: Some(profile.into()),
            ..expect()
        }
    }

    fn seccomp_result(c: &ContainerInspectResponse, e: &Expect) -> ProbeResult {
        check(c, e, &sensitive(), &view(c))
            .into_iter()
            .find(|p| p.probe == "config.seccomp-confined")
            .unwrap()
    }

    #[test]
    fn a_sandboxs_profile_in_force_must_equal_the_generated_one_by_content() {
        let generated = crate::seccomp::generate(crate::manifest::SeccompPolicy::Default, &[], &[])
            .unwrap()
            .to_compact_json();
        let e = sandbox_expect(&generated);
        let mut c = good();
        // The same content, formatted differently, is the same profile.
        let pretty = crate::seccomp::Profile::from_json(&generated)
            .unwrap()
            .to_pretty_json();
        c.host_config.as_mut().unwrap().security_opt = Some(vec![
            "no-new-privileges:true".into(),
            format!("seccomp={pretty}"),
        ]);
        assert_eq!(seccomp_result(&c, &e).outcome, Outcome::Pass);

        let weak = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare","mount","umount2","setns"],"action":"SCMP_ACT_ERRNO"}]}"#;
        c.host_config.as_mut().unwrap().security_opt = Some(vec![
            "no-new-privileges:true".into(),
            format!("seccomp={weak}"),
        ]);
        let r = seccomp_result(&c, &e);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(
            r.detail
                .contains("defaultAction SCMP_ACT_ERRNO -> SCMP_ACT_ALLOW"),
            "{}",
            r.detail
        );
        assert!(
            r.detail
                .contains("allowed that the generated profile denies"),
            "{}",
            r.detail
        );
        assert!(
            r.detail.contains("keyctl") || r.detail.contains("..."),
            "{}",
            r.detail
        );

        // The engine default is not the generated profile either.
        c.host_config.as_mut().unwrap().security_opt = Some(vec!["no-new-privileges:true".into()]);
        let r = seccomp_result(&c, &e);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(r.detail.contains("engine default"), "{}", r.detail);

        // A profile held by path that cannot be read says nothing: inconclusive.
        c.host_config.as_mut().unwrap().security_opt =
            Some(vec!["seccomp=/var/lib/x/seccomp.json".into()]);
        assert_eq!(seccomp_result(&c, &e).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn an_adopted_container_fails_only_when_unconfined() {
        let mut c = good();
        assert_eq!(seccomp_result(&c, &expect()).outcome, Outcome::Pass);
        c.host_config.as_mut().unwrap().security_opt = Some(vec![]);
        assert_eq!(seccomp_result(&c, &expect()).outcome, Outcome::Pass);
        c.host_config.as_mut().unwrap().security_opt = Some(vec!["seccomp=unconfined".into()]);
        assert_eq!(seccomp_result(&c, &expect()).outcome, Outcome::Fail);
    }
}
