//! Engine checks (version, rootless mode) and the containers checks: no managed or adopted
//! container may have the engine socket mounted, run privileged or run seccomp=unconfined.

use super::Check;
use crate::engine::{Container, EngineInfo, Flavor};
use crate::error::ErrorCode;
use crate::status::TargetKind;

/// The oldest engines the product is built and tested against.
const MIN_DOCKER: (u32, u32) = (20, 10);
const MIN_DOCKER_API: (u32, u32) = (1, 41);
const MIN_PODMAN: (u32, u32) = (4, 0);

fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim_start_matches('v').split(['.', '-', '+']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub fn engine_version(i: &EngineInfo) -> Check {
    const ID: &str = "engine.version";
    let evidence = vec![format!(
        "{} version {} API {}",
        i.flavor.as_str(),
        i.version,
        i.api_version
    )];
    let (min, what) = match i.flavor {
        Flavor::Docker => (MIN_DOCKER, "Docker 20.10"),
        Flavor::Podman => (MIN_PODMAN, "Podman 4.0"),
    };
    let Some(v) = major_minor(&i.version) else {
        return Check::warn(
            ID,
            format!("cannot read the engine version {:?}", i.version),
            format!("the product is tested against {what} and later"),
        )
        .with_evidence(evidence);
    };
    let api_ok = i.flavor == Flavor::Podman
        || major_minor(&i.api_version).is_none_or(|a| a >= MIN_DOCKER_API);
    if v < min || !api_ok {
        return Check::fail(
            ID,
            ErrorCode::EngineUnsupported,
            format!(
                "{} {} (API {}) is older than {what} (API 1.41)",
                i.flavor.as_str(),
                i.version,
                i.api_version
            ),
            format!("upgrade the engine to {what} or later"),
        )
        .with_evidence(evidence);
    }
    Check::pass(
        ID,
        format!(
            "{} {} (API {}) is supported",
            i.flavor.as_str(),
            i.version,
            i.api_version
        ),
    )
    .with_evidence(evidence)
}

pub fn engine_rootless(i: &EngineInfo) -> Check {
    const ID: &str = "engine.rootless";
    let evidence = vec![format!(
        "SecurityOptions {:?}, CgroupVersion {}",
        i.security_options, i.cgroup_version
    )];
    if !i.rootless {
        return Check::pass(ID, "the engine runs rootful").with_evidence(evidence);
    }
    if i.cgroup_version == "1" {
        return Check::fail(
            ID,
            ErrorCode::EngineUnsupported,
            "the engine runs rootless on cgroup v1: it cannot apply memory, cpu or pids limits",
            "boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and delegate the controllers, or run the engine rootful",
        )
        .with_evidence(evidence);
    }
    Check::pass(
        ID,
        "the engine runs rootless on cgroup v2 (limits need delegated controllers: see cgroup.*)",
    )
    .with_evidence(evidence)
}

/// One managed sandbox or adopted container, inspected.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub name: String,
    pub kind: TargetKind,
    pub inspect: Container,
}

/// True when `path` is an engine's API socket (Docker, Podman, containerd) or `socket`.
fn is_engine_socket(path: &str, socket: &str) -> bool {
    let own = socket.strip_prefix("unix://").unwrap_or(socket);
    let name = path.rsplit('/').next().unwrap_or(path);
    path == own || crate::engine::socket::ENGINE_SOCKET_NAMES.contains(&name)
}

fn describe(c: &Inspected) -> String {
    let kind = match c.kind {
        TargetKind::Sandbox => "sandbox",
        TargetKind::Adopted => "adopted",
    };
    format!("{} ({kind})", c.name)
}

/// `containers.no-engine-socket`, `containers.not-privileged`, `containers.confined`.
pub fn container_checks(containers: &[Inspected], socket: &str) -> Vec<Check> {
    let mut socket_hits = Vec::new();
    let mut privileged = Vec::new();
    let mut unconfined = Vec::new();
    for c in containers {
        for m in &c.inspect.mounts {
            for p in [m.source.as_str(), m.destination.as_str()] {
                if !p.is_empty() && is_engine_socket(p, socket) {
                    socket_hits.push(format!("{}: {p}", describe(c)));
                    break;
                }
            }
        }
        let view = &c.inspect.security;
        if view.privileged {
            privileged.push(describe(c));
        }
        if view
            .seccomp
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("unconfined"))
        {
            unconfined.push(describe(c));
        }
    }
    let names = |v: &[String]| v.join(", ");
    let n = containers.len();
    let scope = format!("{n} managed or adopted container(s) checked");
    let mut out = Vec::new();
    out.push(if socket_hits.is_empty() {
        Check::pass("containers.no-engine-socket", format!("no engine socket mounted; {scope}"))
    } else {
        Check::fail(
            "containers.no-engine-socket",
            ErrorCode::IsolationBreach,
            format!("the engine socket is mounted into {}: whoever runs there controls the host", names(&socket_hits)),
            "remove the socket mount (it is root on the host); recreate the container without it, e.g. drop the `-v /var/run/docker.sock:...` from its definition",
        )
        .with_evidence(socket_hits.clone())
    });
    out.push(if privileged.is_empty() {
        Check::pass(
            "containers.not-privileged",
            format!("none privileged; {scope}"),
        )
    } else {
        Check::fail(
            "containers.not-privileged",
            ErrorCode::IsolationBreach,
            format!("privileged: {}", names(&privileged)),
            "recreate without --privileged; grant the one capability or device it needs instead",
        )
        .with_evidence(privileged.clone())
    });
    out.push(if unconfined.is_empty() {
        Check::pass("containers.confined", format!("every one runs a seccomp profile; {scope}"))
    } else {
        Check::fail(
            "containers.confined",
            ErrorCode::IsolationBreach,
            format!("running seccomp=unconfined: {}", names(&unconfined)),
            "recreate with a seccomp profile (`clw-fortress seccomp generate --policy default`, or the engine default by dropping seccomp=unconfined)",
        )
        .with_evidence(unconfined.clone())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Outcome;
    use crate::engine::security::SecurityView;
    use crate::engine::Mount;

    fn info(flavor: Flavor, version: &str, api: &str, rootless: bool, cg: &str) -> EngineInfo {
        EngineInfo {
            flavor,
            version: version.into(),
            api_version: api.into(),
            kernel: "6.1".into(),
            rootless,
            security_options: vec![],
            cgroup_version: cg.into(),
            ncpu: 2,
        }
    }

    #[test]
    fn engine_versions_below_the_supported_floor_fail() {
        for (flavor, v, api, outcome) in [
            (Flavor::Docker, "20.10.24+dfsg1", "1.41", Outcome::Pass),
            (Flavor::Docker, "26.1.0", "1.45", Outcome::Pass),
            (Flavor::Docker, "19.03.15", "1.40", Outcome::Fail),
            (Flavor::Podman, "4.3.1", "1.41", Outcome::Pass),
            (Flavor::Podman, "3.4.4", "1.40", Outcome::Fail),
            (Flavor::Docker, "dev", "1.41", Outcome::Warn),
        ] {
            let c = engine_version(&info(flavor, v, api, false, "2"));
            assert_eq!(c.outcome, outcome, "{v}");
            if outcome == Outcome::Fail {
                assert_eq!(c.id, "engine.version");
                assert!(c.hint.as_deref().unwrap().starts_with("upgrade the engine"));
            }
        }
    }

    #[test]
    fn a_rootless_engine_on_cgroup_v1_fails() {
        let c = engine_rootless(&info(Flavor::Podman, "4.3.1", "1.41", true, "1"));
        assert_eq!((c.id, c.outcome), ("engine.rootless", Outcome::Fail));
        assert!(c.hint.as_deref().unwrap().contains("cgroup v2"));
        let ok = engine_rootless(&info(Flavor::Podman, "4.3.1", "1.41", true, "2"));
        assert_eq!(ok.outcome, Outcome::Pass);
    }

    fn container(name: &str, security: SecurityView, mounts: Vec<(&str, &str)>) -> Inspected {
        Inspected {
            name: name.into(),
            kind: TargetKind::Adopted,
            inspect: Container {
                security,
                mounts: mounts
                    .into_iter()
                    .map(|(s, d)| Mount {
                        source: s.into(),
                        destination: d.into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    fn by_id<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn clean_containers_pass_all_three() {
        let c = container("ok", SecurityView::default(), vec![("/h/ws", "/workspace")]);
        for check in container_checks(&[c], "unix:///var/run/docker.sock") {
            assert_eq!(check.outcome, Outcome::Pass, "{check:?}");
        }
    }

    #[test]
    fn a_mounted_engine_socket_fails_no_engine_socket() {
        let c = container(
            "gw",
            SecurityView::default(),
            vec![("/run/podman/podman.sock", "/var/run/docker.sock")],
        );
        let checks = container_checks(&[c], "unix:///var/run/docker.sock");
        let c = by_id(&checks, "containers.no-engine-socket");
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(c.code, Some(ErrorCode::IsolationBreach));
        assert!(c.summary.contains("gw (adopted)"), "{}", c.summary);
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("remove the socket mount"));
    }

    #[test]
    fn the_configured_socket_counts_whatever_its_name() {
        let c = container("x", SecurityView::default(), vec![("/srv/engine.sk", "/e")]);
        let checks = container_checks(&[c], "unix:///srv/engine.sk");
        assert_eq!(
            by_id(&checks, "containers.no-engine-socket").outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn a_privileged_container_fails_not_privileged() {
        let view = SecurityView {
            privileged: true,
            ..Default::default()
        };
        let checks = container_checks(&[container("p", view, vec![])], "unix:///x");
        let c = by_id(&checks, "containers.not-privileged");
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.hint.as_deref().unwrap().contains("--privileged"));
    }

    #[test]
    fn seccomp_unconfined_fails_confined() {
        let view = SecurityView {
            seccomp: Some("unconfined".into()),
            ..Default::default()
        };
        let checks = container_checks(&[container("u", view, vec![])], "unix:///x");
        let c = by_id(&checks, "containers.confined");
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.hint.as_deref().unwrap().contains("seccomp profile"));
    }
}
