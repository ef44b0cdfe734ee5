//! The engine-side half of `verify`: checks over what the engine says it was asked for
//! (`docker inspect`), pure over the engine adapter's [`Container`] view.
//!
//! These complement the in-sandbox probes (which prove what a process can do); they must not
//! talk to the engine themselves.

use std::path::{Path, PathBuf};

use crate::engine::security::{seccomp_drift, SecurityView};
use crate::engine::Container;

use super::{Expect, Outcome, ProbeResult};
use crate::engine::socket::ENGINE_SOCKET_NAMES;

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

/// Every engine-side check, in a stable order, over the engine's view of the container (its
/// security view holds a profile kept by path already read).
pub fn check(c: &Container, expect: &Expect, s: &Sensitive) -> Vec<ProbeResult> {
    let view = &c.security;
    let sec = &c.security_opt;
    let mut out = Vec::new();

    out.push(if view.privileged {
        r("config.not-privileged", Outcome::Fail, "Privileged: true")
    } else {
        r("config.not-privileged", Outcome::Pass, "not privileged")
    });

    let mut bad = Vec::new();
    let host_network = (view.network_mode == "host").then_some("network");
    for ns in host_network
        .into_iter()
        .chain(view.host_namespaces.iter().map(String::as_str))
    {
        bad.push(format!("{ns} namespace is the host's"));
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

    let aa = c.apparmor_profile.as_str();
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

    let bad: Vec<String> = c
        .mounts
        .iter()
        .filter_map(|m| {
            sensitive_reason(&m.source, m.is_bind(), s)
                .map(|why| format!("{} -> {} ({why})", m.source, m.destination))
        })
        .collect();
    out.push(pass_or_fail(
        "config.no-sensitive-mounts",
        bad,
        "no engine socket, secrets or sensitive host path among the mounts",
    ));

    let mut bad = Vec::new();
    let res = &c.resources;
    if res.memory.unwrap_or(0) <= 0 {
        bad.push("no memory limit".to_string());
    }
    if res.nano_cpus.unwrap_or(0) <= 0 && c.cpu_quota.unwrap_or(0) <= 0 {
        bad.push("no cpu limit".to_string());
    }
    if res.pids_limit.unwrap_or(0) <= 0 {
        bad.push("no pids limit".to_string());
    }
    out.push(pass_or_fail(
        "config.limits-set",
        bad,
        "memory, cpu and pids limits set",
    ));

    out.push(match (expect.read_only_root, view.readonly_rootfs) {
        (false, _) => r(
            "config.readonly-root",
            Outcome::Pass,
            "not required (readOnlyRoot: false)",
        ),
        (true, true) => r("config.readonly-root", Outcome::Pass, "ReadonlyRootfs"),
        (true, _) => r(
            "config.readonly-root",
            Outcome::Fail,
            "the root filesystem is writable",
        ),
    });

    out.push(match (expect.no_new_privileges, view.no_new_privileges) {
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
    let added: Vec<&str> = view
        .cap_add
        .iter()
        .filter(|c| !allowed.contains(c))
        .map(String::as_str)
        .collect();
    let mut bad = Vec::new();
    if !added.is_empty() {
        bad.push(format!("added beyond capAdd: {}", added.join(",")));
    }
    if expect.cap_drop_all && !view.cap_drop.contains("ALL") {
        bad.push("CapDrop lacks ALL".into());
    }
    out.push(pass_or_fail(
        "config.caps",
        bad,
        "no capabilities beyond capAdd; ALL dropped",
    ));

    let mut bad = Vec::new();
    if !c.devices.is_empty() {
        bad.push(format!("devices: {}", c.devices.join(",")));
    }
    if c.device_requests > 0 {
        bad.push("device requests (GPUs)".into());
    }
    if c.device_cgroup_rules > 0 {
        bad.push("device cgroup rules".into());
    }
    out.push(pass_or_fail("config.no-devices", bad, "no host devices"));

    let bad: Vec<String> = c
        .mounts
        .iter()
        .filter(|m| m.propagation == "shared" || m.propagation == "rshared")
        .map(|m| format!("{} is {}", m.destination, m.propagation))
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
    use crate::engine::{Mount, Resources};

    fn good() -> Container {
        Container {
            security: SecurityView {
                network_mode: "none".into(),
                readonly_rootfs: true,
                no_new_privileges: true,
                seccomp: Some("{}".into()),
                cap_drop: ["ALL".to_string()].into(),
                ..Default::default()
            },
            security_opt: vec!["no-new-privileges:true".into(), "seccomp={}".into()],
            resources: Resources {
                memory: Some(64 << 20),
                nano_cpus: Some(500_000_000),
                pids_limit: Some(64),
                ..Default::default()
            },
            mounts: vec![Mount {
                kind: "bind".into(),
                source: "/home/u/.openclaw/workspace".into(),
                destination: "/agent-workspace".into(),
                read_only: false,
                propagation: String::new(),
            }],
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

    fn failing(c: &Container) -> Vec<String> {
        check(c, &expect(), &sensitive())
            .into_iter()
            .filter(|p| p.outcome != Outcome::Pass)
            .map(|p| p.probe)
            .collect()
    }

    fn bind(source: &str, destination: &str) -> Mount {
        Mount {
            source: source.into(),
            destination: destination.into(),
            read_only: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_hardened_container_passes_every_engine_check() {
        assert_eq!(failing(&good()), Vec::<String>::new());
    }

    #[test]
    fn each_weakness_fails_exactly_its_check() {
        type Weaken = fn(&mut Container);
        let cases: Vec<(&str, Weaken)> = vec![
            ("config.not-privileged", |c| c.security.privileged = true),
            ("config.namespaces", |c| {
                c.security.host_namespaces = vec!["pid".into()]
            }),
            ("config.namespaces", |c| {
                c.security.network_mode = "host".into()
            }),
            ("config.seccomp-confined", |c| {
                c.security.seccomp = Some("unconfined".into())
            }),
            ("config.apparmor", |c| {
                c.apparmor_profile = "unconfined".into()
            }),
            ("config.apparmor", |c| {
                c.security_opt.push("apparmor:unconfined".into())
            }),
            ("config.no-sensitive-mounts", |c| {
                c.mounts.push(bind("/var/run/docker.sock", "/run/d.sock"))
            }),
            ("config.no-sensitive-mounts", |c| {
                c.mounts.push(bind("/home/u/.config", "/cfg"))
            }),
            ("config.no-sensitive-mounts", |c| {
                c.mounts.push(bind("/home/u/.openclaw/credentials/x", "/x"))
            }),
            ("config.limits-set", |c| c.resources.pids_limit = None),
            ("config.readonly-root", |c| {
                c.security.readonly_rootfs = false
            }),
            ("config.no-new-privileges", |c| {
                c.security.no_new_privileges = false
            }),
            ("config.caps", |c| {
                c.security.cap_add = ["SYS_ADMIN".to_string()].into()
            }),
            ("config.caps", |c| c.security.cap_drop.clear()),
            ("config.no-devices", |c| c.devices = vec!["/dev/kvm".into()]),
            ("config.no-devices", |c| c.device_requests = 1),
            ("config.propagation", |c| {
                c.mounts[0].propagation = "rshared".into()
            }),
        ];
        for (probe, weaken) in cases {
            let mut c = good();
            weaken(&mut c);
            assert_eq!(failing(&c), vec![probe.to_string()], "{probe}");
        }
    }

    #[test]
    fn a_cpu_quota_is_a_cpu_limit() {
        let mut c = good();
        c.resources.nano_cpus = None;
        assert_eq!(failing(&c), ["config.limits-set"]);
        c.cpu_quota = Some(50_000);
        assert_eq!(failing(&c), Vec::<String>::new());
    }

    #[test]
    fn declared_capabilities_are_not_a_failure() {
        let mut c = good();
        c.security.cap_add = ["NET_BIND_SERVICE".to_string()].into();
        let mut e = expect();
        e.cap_add = vec!["CAP_NET_BIND_SERVICE".into()];
        assert!(check(&c, &e, &sensitive())
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

    fn seccomp_result(c: &Container, e: &Expect) -> ProbeResult {
        check(c, e, &sensitive())
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
        c.security.seccomp = Some(pretty);
        assert_eq!(seccomp_result(&c, &e).outcome, Outcome::Pass);

        let weak = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare","mount","umount2","setns"],"action":"SCMP_ACT_ERRNO"}]}"#;
        c.security.seccomp = Some(weak.into());
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
        c.security.seccomp = None;
        let r = seccomp_result(&c, &e);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(r.detail.contains("engine default"), "{}", r.detail);

        // A profile held by path that cannot be read says nothing: inconclusive.
        c.security.seccomp_unreadable = Some("/var/lib/x/seccomp.json: denied".into());
        assert_eq!(seccomp_result(&c, &e).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn an_adopted_container_fails_only_when_unconfined() {
        let mut c = good();
        assert_eq!(seccomp_result(&c, &expect()).outcome, Outcome::Pass);
        c.security.seccomp = None;
        assert_eq!(seccomp_result(&c, &expect()).outcome, Outcome::Pass);
        c.security.seccomp = Some("unconfined".into());
        assert_eq!(seccomp_result(&c, &expect()).outcome, Outcome::Fail);
    }
}
