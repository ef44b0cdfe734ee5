//! Host checks: seccomp filtering, cgroup controllers, unprivileged user and network
//! namespaces, the AppArmor user-namespace restriction, systemd units. Reads only through
//! [`HostPaths`] and the injected runner.

use std::path::Path;

use super::{Check, HostEnv, Outcome};
use crate::engine::EngineInfo;
use crate::error::ErrorCode;
use crate::host::{read_trimmed, HostPaths};

/// The seccomp actions every generated profile relies on.
const NEEDED_ACTIONS: [&str; 2] = ["allow", "errno"];

pub fn kernel_seccomp(paths: &HostPaths, info: Option<&EngineInfo>) -> Check {
    const ID: &str = "kernel.seccomp";
    let file = paths.sysctl("kernel.seccomp.actions_avail");
    let mut evidence = Vec::new();
    let actions = read_trimmed(&file);
    evidence.push(format!(
        "{}: {}",
        file.display(),
        actions.as_deref().unwrap_or("absent")
    ));
    if let Some(i) = info {
        evidence.push(format!("engine SecurityOptions: {:?}", i.security_options));
    }
    let Some(actions) = actions else {
        return Check::fail(
            ID,
            ErrorCode::EngineUnsupported,
            "the kernel has no seccomp filtering (no CONFIG_SECCOMP_FILTER): sandboxes cannot be confined",
            "use a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y (every mainstream distribution kernel is); never run sandboxes with seccomp=unconfined",
        )
        .with_evidence(evidence);
    };
    let avail: Vec<&str> = actions.split_whitespace().collect();
    let missing: Vec<&str> = NEEDED_ACTIONS
        .into_iter()
        .filter(|a| !avail.contains(a))
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            ID,
            ErrorCode::EngineUnsupported,
            format!("the kernel lacks the seccomp actions {missing:?}"),
            "upgrade the kernel; the generated profiles need SCMP_ACT_ERRNO and SCMP_ACT_ALLOW",
        )
        .with_evidence(evidence);
    }
    if let Some(i) = info {
        if !i
            .security_options
            .iter()
            .any(|o| o.contains("name=seccomp"))
        {
            return Check::fail(
                ID,
                ErrorCode::EngineUnsupported,
                "the engine reports no seccomp support (no name=seccomp in SecurityOptions)",
                "install an engine built with libseccomp (distribution docker.io / podman packages are); `docker info` must list seccomp under Security Options",
            )
            .with_evidence(evidence);
        }
    }
    Check::pass(
        ID,
        format!(
            "seccomp filtering available (actions: {actions}){}",
            if info.is_some() {
                "; the engine applies profiles"
            } else {
                ""
            }
        ),
    )
    .with_evidence(evidence)
}

/// The cgroup layout this host shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    V1,
    V2,
    None,
}

fn host_layout(root: &Path) -> Layout {
    if root.join("cgroup.controllers").exists() {
        Layout::V2
    } else if ["memory", "pids", "cpu"]
        .iter()
        .any(|c| root.join(c).join("cgroup.procs").exists())
    {
        Layout::V1
    } else {
        Layout::None
    }
}

/// `/proc/cgroups`: controller -> enabled.
fn proc_cgroups(paths: &HostPaths) -> Vec<(String, bool)> {
    read_trimmed(&paths.proc.join("cgroups"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[0].to_string(), f[3] == "1"))
        })
        .collect()
}

/// `cgroup.version`, then `cgroup.memory`, `cgroup.cpu`, `cgroup.pids`. A limit the kernel
/// cannot enforce is a failure: the sandbox would run without it.
pub fn cgroup_checks(paths: &HostPaths, info: Option<&EngineInfo>) -> Vec<Check> {
    let root = paths.cgroup_root();
    let host = host_layout(&root);
    let engine = info.map(|i| i.cgroup_version.as_str());
    let mut evidence = vec![format!(
        "{}: {}",
        root.join("cgroup.controllers").display(),
        read_trimmed(&root.join("cgroup.controllers")).unwrap_or_else(|| "absent".into())
    )];
    if host == Layout::V1 {
        let unified = root.join("unified/cgroup.controllers");
        evidence.push(format!(
            "v1 hierarchies: {}{}",
            ["memory", "cpu", "pids"]
                .iter()
                .filter(|c| root.join(c).join("cgroup.procs").exists())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
            if unified.exists() {
                " (hybrid: a v2 tree at unified/)"
            } else {
                ""
            }
        ));
    }
    if let Some(e) = engine {
        evidence.push(format!("engine CgroupVersion: {e}"));
    }
    let layout = match engine {
        Some("2") => Layout::V2,
        Some("1") => Layout::V1,
        _ => host,
    };
    let version = match (layout, host, engine) {
        (Layout::None, _, _) => Check::fail(
            "cgroup.version",
            ErrorCode::EngineUnsupported,
            format!(
                "no cgroup filesystem at {}: no limit can be enforced",
                root.display()
            ),
            "mount the cgroup filesystem (systemd does so at boot); containers need cgroups for every limit",
        ),
        (l, h, Some(e)) if h != Layout::None && l != h => Check::warn(
            "cgroup.version",
            format!("the engine reports cgroup v{e} but this host shows {h:?}: is the engine on another host?"),
            "run doctor on the engine's host; the controller checks below read this host",
        ),
        (l, _, _) => Check::pass(
            "cgroup.version",
            format!(
                "cgroup {}{}",
                if l == Layout::V2 { "v2" } else { "v1" },
                engine.map(|e| format!(", engine agrees (v{e})")).unwrap_or_default()
            ),
        ),
    }
    .with_evidence(evidence);

    let enabled = proc_cgroups(paths);
    let rootless = info.is_some_and(|i| i.rootless);
    let mut out = vec![version];
    for (id, ctrl, what) in [
        ("cgroup.memory", "memory", "memory limits"),
        ("cgroup.cpu", "cpu", "cpu limits"),
        ("cgroup.pids", "pids", "pids limits"),
    ] {
        out.push(controller(
            paths, layout, rootless, &enabled, id, ctrl, what,
        ));
    }
    out
}

fn controller(
    paths: &HostPaths,
    layout: Layout,
    rootless: bool,
    enabled: &[(String, bool)],
    id: &'static str,
    ctrl: &str,
    what: &str,
) -> Check {
    let root = paths.cgroup_root();
    let mut evidence = Vec::new();
    if let Some((_, on)) = enabled.iter().find(|(n, _)| n == ctrl) {
        evidence.push(format!("/proc/cgroups {ctrl} enabled={}", u8::from(*on)));
        if !on {
            return Check::fail(
                id,
                ErrorCode::EngineUnsupported,
                format!("the {ctrl} controller is disabled in the kernel: {what} cannot be enforced"),
                format!("remove cgroup_disable={ctrl} from the kernel command line (or add cgroup_enable={ctrl}) and reboot"),
            )
            .with_evidence(evidence);
        }
    }
    let present = match layout {
        Layout::V1 => {
            let dir = root.join(ctrl);
            let ok = dir.join("cgroup.procs").exists();
            evidence.push(format!(
                "{}: {}",
                dir.display(),
                if ok { "mounted" } else { "absent" }
            ));
            ok
        }
        Layout::V2 => {
            let file = root.join("cgroup.controllers");
            let text = read_trimmed(&file).unwrap_or_default();
            evidence.push(format!("{}: {text}", file.display()));
            text.split_whitespace().any(|c| c == ctrl)
        }
        Layout::None => false,
    };
    if !present {
        return Check::fail(
            id,
            ErrorCode::EngineUnsupported,
            format!("the {ctrl} cgroup controller is not available: {what} cannot be enforced"),
            match layout {
                Layout::V1 => format!("mount the {ctrl} hierarchy (`mount -t cgroup -o {ctrl} cgroup {}`) or boot with the controller enabled", root.join(ctrl).display()),
                _ => format!("enable the {ctrl} controller (kernel command line cgroup_enable={ctrl}); on cgroup v2 it must be listed in cgroup.controllers"),
            },
        )
        .with_evidence(evidence);
    }
    if rootless && layout == Layout::V2 {
        let uid = nix::unistd::getuid().as_raw();
        let file = root.join(format!(
            "user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
        ));
        let text = read_trimmed(&file).unwrap_or_default();
        evidence.push(format!("{}: {text}", file.display()));
        if !text.split_whitespace().any(|c| c == ctrl) {
            return Check::fail(
                id,
                ErrorCode::EngineUnsupported,
                format!("the {ctrl} controller is not delegated to the rootless engine's user: {what} cannot be enforced"),
                "delegate the controllers: a drop-in for user@.service with `[Service]` `Delegate=cpu cpuset io memory pids`, then `systemctl daemon-reload` and log in again",
            )
            .with_evidence(evidence);
        }
    }
    Check::pass(
        id,
        format!("{what} can be enforced ({ctrl} controller available)"),
    )
    .with_evidence(evidence)
}

/// Runs `unshare <args> true` as an unprivileged user: as this user, or as `nobody` through
/// `setpriv` when running as root (root may always create namespaces, which says nothing about
/// what a rootless engine or a runtime inside a sandbox may do).
fn probe(host: &HostEnv<'_>, args: &[&str]) -> (Option<i32>, String) {
    let mut unshare: Vec<&str> = args.to_vec();
    unshare.push("true");
    if host.uid == 0 {
        let mut full = vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "unshare",
        ];
        full.extend(unshare);
        let status = (host.run)("setpriv", &full);
        (status, format!("setpriv {}", full.join(" ")))
    } else {
        let status = (host.run)("unshare", &unshare);
        (status, format!("unshare {}", unshare.join(" ")))
    }
}

fn status_text(s: Option<i32>) -> String {
    match s {
        Some(c) => format!("exit {c}"),
        None => "could not run".into(),
    }
}

const APPARMOR_HINT: &str = "first choice, scoped: allow user namespaces for the one binary that needs them, e.g. /etc/apparmor.d/rootlesskit:
  abi <abi/4.0>,
  include <tunables/global>
  profile rootlesskit /usr/bin/rootlesskit flags=(unconfined) { userns, }
then `apparmor_parser -r /etc/apparmor.d/rootlesskit` (same shape for /usr/bin/podman, or the runtime inside the sandbox);
last resort: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (persist in /etc/sysctl.d/); trade-off: it re-opens unprivileged user namespaces to every process on the host, the entry point of many kernel privilege escalations the restriction closes";

/// `userns.unprivileged`, `netns.unprivileged`, `apparmor.userns-restriction`. A rootful
/// engine does not need unprivileged namespaces, so there a denial is a warning (runtimes
/// inside the sandbox, e.g. bubblewrap, cannot nest); for a rootless engine it is a failure.
pub fn namespace_checks(host: &HostEnv<'_>, rootless: Option<bool>) -> Vec<Check> {
    let p = &host.paths;
    let max_file = p.sysctl("user.max_user_namespaces");
    let clone_file = p.sysctl("kernel.unprivileged_userns_clone");
    let aa_file = p.sysctl("kernel.apparmor_restrict_unprivileged_userns");
    let max = read_trimmed(&max_file);
    let clone = read_trimmed(&clone_file);
    let aa = read_trimmed(&aa_file);
    let (userns_status, userns_cmd) = probe(host, &["-U"]);
    let (netns_status, netns_cmd) = probe(host, &["-U", "-r", "-n"]);
    let shown = |f: &Path, v: &Option<String>| {
        format!("{}: {}", f.display(), v.as_deref().unwrap_or("absent"))
    };
    let evidence = vec![
        shown(&max_file, &max),
        shown(&clone_file, &clone),
        shown(&aa_file, &aa),
        format!("{userns_cmd}: {}", status_text(userns_status)),
    ];
    let severe = rootless == Some(true);
    let denied = |id: &'static str, summary: String, hint: String| {
        if severe {
            Check::fail(
                id,
                ErrorCode::SandboxFailure,
                format!("{summary}; the rootless engine cannot start sandboxes"),
                hint,
            )
        } else {
            Check::warn(
                id,
                format!("{summary}; a rootful engine does not need it, but rootless engines and runtimes inside a sandbox do"),
                hint,
            )
        }
    };
    let aa_on = aa.as_deref() == Some("1");

    let userns = if max.as_deref() == Some("0") {
        denied(
            "userns.unprivileged",
            "user namespaces are disabled (user.max_user_namespaces = 0)".into(),
            "sysctl -w user.max_user_namespaces=15000 (persist in /etc/sysctl.d/)".into(),
        )
    } else if clone.as_deref() == Some("0") {
        denied(
            "userns.unprivileged",
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)".into(),
            "sysctl -w kernel.unprivileged_userns_clone=1 (persist in /etc/sysctl.d/)".into(),
        )
    } else {
        match userns_status {
            Some(0) => Check::pass(
                "userns.unprivileged",
                "an unprivileged user can create a user namespace",
            ),
            Some(_) if aa_on => denied(
                "userns.unprivileged",
                "an unprivileged user cannot create a user namespace: AppArmor restricts it".into(),
                "see apparmor.userns-restriction for the scoped fix".into(),
            ),
            Some(_) => denied(
                "userns.unprivileged",
                "an unprivileged user cannot create a user namespace".into(),
                "check the sysctls above, seccomp or LSM policy of this host, and (nested) the parent container's capabilities".into(),
            ),
            None => Check::skip(
                "userns.unprivileged",
                format!("cannot probe: `{userns_cmd}` could not run (unshare/setpriv missing); the sysctls allow it"),
            ),
        }
    }
    .with_evidence(evidence.clone());

    let netns_evidence = vec![format!("{netns_cmd}: {}", status_text(netns_status))];
    let netns = match (userns.outcome, netns_status) {
        (Outcome::Pass, Some(0)) => Check::pass(
            "netns.unprivileged",
            "an unprivileged user can create a network namespace (inside its user namespace)",
        ),
        (Outcome::Pass, Some(_)) => denied(
            "netns.unprivileged",
            "an unprivileged user cannot create a network namespace".into(),
            "check the host's LSM policy (AppArmor/SELinux) for network namespace creation".into(),
        ),
        (Outcome::Pass | Outcome::Skip, None) => Check::skip(
            "netns.unprivileged",
            format!("cannot probe: `{netns_cmd}` could not run"),
        ),
        _ => denied(
            "netns.unprivileged",
            "an unprivileged user cannot create a network namespace: it needs a user namespace"
                .into(),
            "fix userns.unprivileged first".into(),
        ),
    }
    .with_evidence(netns_evidence);

    let aa_evidence = vec![
        shown(&aa_file, &aa),
        format!("{userns_cmd}: {}", status_text(userns_status)),
    ];
    let apparmor = match (aa.as_deref(), userns_status) {
        (None, _) => Check::pass(
            "apparmor.userns-restriction",
            "this kernel has no AppArmor user-namespace restriction (sysctl absent)",
        ),
        (Some("0"), _) => Check::pass(
            "apparmor.userns-restriction",
            "AppArmor does not restrict unprivileged user namespaces",
        ),
        (Some(_), Some(0)) => Check::pass(
            "apparmor.userns-restriction",
            "AppArmor restricts unprivileged user namespaces, yet the probe could create one",
        ),
        (Some(v), _) => denied(
            "apparmor.userns-restriction",
            format!("kernel.apparmor_restrict_unprivileged_userns = {v}: unprivileged user namespaces are denied unless a profile grants `userns,`"),
            APPARMOR_HINT.into(),
        ),
    }
    .with_evidence(aa_evidence);
    vec![userns, netns, apparmor]
}

/// The unit files of this product installed on the host.
fn installed_units(paths: &HostPaths) -> Vec<String> {
    let mut units = Vec::new();
    for dir in [
        paths.etc.join("systemd/system"),
        paths.usr_lib.join("systemd/system"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("clw-fortress")
                && (name.ends_with(".service") || name.ends_with(".timer"))
                && !name.contains('@')
                && !units.contains(&name)
            {
                units.push(name);
            }
        }
    }
    units.sort();
    units
}

/// `systemd.units`: the enabled units of this product are active, when systemd runs this host;
/// skipped otherwise. A unit that is installed but not enabled is not judged: a package installs
/// every unit (the agent and the timers are alternatives, and a timer's oneshot service is
/// inactive between runs), and the admin enables the ones in use.
pub fn systemd_units(host: &HostEnv<'_>) -> Check {
    const ID: &str = "systemd.units";
    let marker = host.paths.run.join("systemd/system");
    if !marker.is_dir() {
        return Check::skip(
            ID,
            format!(
                "systemd is not running this host ({} is absent): no units to check",
                marker.display()
            ),
        );
    }
    let units = installed_units(&host.paths);
    if units.is_empty() {
        return Check::warn(
            ID,
            "no clw-fortress units are installed: nothing enforces, heals or backs up on its own",
            "install the units from systemd/ (e.g. clw-fortress.service) and `systemctl enable --now clw-fortress.service`",
        );
    }
    let mut evidence = Vec::new();
    let mut enabled = Vec::new();
    for u in &units {
        let s = (host.run)("systemctl", &["is-enabled", "--quiet", u]);
        evidence.push(format!("systemctl is-enabled {u}: {}", status_text(s)));
        if s == Some(0) {
            enabled.push(u.clone());
        }
    }
    if enabled.is_empty() {
        return Check::warn(
            ID,
            format!(
                "installed but none enabled ({}): nothing enforces, heals or backs up on its own",
                units.join(", ")
            ),
            "set metadata.owner in /etc/clw-fortress/fortress.yaml, `clw-fortress validate`, then `systemctl enable --now clw-fortress.service` (or the timers instead of the agent)",
        )
        .with_evidence(evidence);
    }
    let mut inactive = Vec::new();
    for u in &enabled {
        let s = (host.run)("systemctl", &["is-active", "--quiet", u]);
        evidence.push(format!("systemctl is-active {u}: {}", status_text(s)));
        if s != Some(0) {
            inactive.push(u.clone());
        }
    }
    if inactive.is_empty() {
        Check::pass(ID, format!("active: {}", enabled.join(", "))).with_evidence(evidence)
    } else {
        Check {
            outcome: Outcome::Fail,
            hint: Some(format!(
                "systemctl start {}; then `journalctl -u {}` if it does not stay up",
                inactive.join(" "),
                inactive[0]
            )),
            ..Check::pass(
                ID,
                format!("enabled but not active: {}", inactive.join(", ")),
            )
        }
        .with_evidence(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Flavor;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn info(cgroup: &str, rootless: bool, sec: &[&str]) -> EngineInfo {
        EngineInfo {
            flavor: Flavor::Docker,
            version: "20.10.24".into(),
            api_version: "1.41".into(),
            kernel: "6.1".into(),
            rootless,
            security_options: sec.iter().map(|s| s.to_string()).collect(),
            cgroup_version: cgroup.into(),
            ncpu: 2,
        }
    }

    /// A v1 host like the project's test machine.
    fn v1_host() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "proc/sys/kernel/seccomp/actions_avail",
            "kill_process kill_thread trap errno user_notif trace log allow\n",
        );
        for c in ["memory", "cpu", "pids"] {
            write(d.path(), &format!("sys/fs/cgroup/{c}/cgroup.procs"), "");
        }
        write(
            d.path(),
            "proc/cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t10\t1\nmemory\t4\t10\t1\npids\t8\t10\t1\n",
        );
        d
    }

    fn v2_host(controllers: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sys/fs/cgroup/cgroup.controllers", controllers);
        d
    }

    fn by_id<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks.iter().find(|c| c.id == id).expect(id)
    }

    #[test]
    fn seccomp_passes_with_kernel_filtering_and_an_engine_that_applies_it() {
        let d = v1_host();
        let c = kernel_seccomp(
            &HostPaths::under(d.path()),
            Some(&info("1", false, &["name=seccomp,profile=default"])),
        );
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
    }

    #[test]
    fn seccomp_fails_without_kernel_filtering() {
        let d = tempfile::tempdir().unwrap();
        let c = kernel_seccomp(&HostPaths::under(d.path()), None);
        assert_eq!((c.id, c.outcome), ("kernel.seccomp", Outcome::Fail));
        assert_eq!(c.code, Some(ErrorCode::EngineUnsupported));
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("CONFIG_SECCOMP_FILTER=y"));
    }

    #[test]
    fn seccomp_fails_when_the_kernel_lacks_the_errno_action() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "proc/sys/kernel/seccomp/actions_avail",
            "kill allow\n",
        );
        let c = kernel_seccomp(&HostPaths::under(d.path()), None);
        assert_eq!((c.id, c.outcome), ("kernel.seccomp", Outcome::Fail));
        assert!(c.hint.as_deref().unwrap().contains("SCMP_ACT_ERRNO"));
    }

    #[test]
    fn seccomp_fails_when_the_engine_reports_no_seccomp() {
        let d = v1_host();
        let c = kernel_seccomp(
            &HostPaths::under(d.path()),
            Some(&info("1", false, &["name=apparmor"])),
        );
        assert_eq!((c.id, c.outcome), ("kernel.seccomp", Outcome::Fail));
        assert!(c.hint.as_deref().unwrap().contains("libseccomp"));
    }

    #[test]
    fn every_controller_passes_on_a_complete_v1_host() {
        let d = v1_host();
        let checks = cgroup_checks(&HostPaths::under(d.path()), Some(&info("1", false, &[])));
        for c in &checks {
            assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        }
        assert_eq!(checks.len(), 4);
    }

    #[test]
    fn a_missing_v1_pids_hierarchy_fails_cgroup_pids() {
        let d = v1_host();
        fs::remove_dir_all(d.path().join("sys/fs/cgroup/pids")).unwrap();
        let checks = cgroup_checks(&HostPaths::under(d.path()), Some(&info("1", false, &[])));
        let c = by_id(&checks, "cgroup.pids");
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(c.code, Some(ErrorCode::EngineUnsupported));
        assert!(
            c.summary.contains("pids limits cannot be enforced"),
            "{}",
            c.summary
        );
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("mount -t cgroup -o pids"));
        assert_eq!(by_id(&checks, "cgroup.memory").outcome, Outcome::Pass);
    }

    #[test]
    fn a_memory_controller_disabled_on_the_kernel_command_line_fails_cgroup_memory() {
        let d = v1_host();
        write(
            d.path(),
            "proc/cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t10\t1\nmemory\t0\t1\t0\npids\t8\t10\t1\n",
        );
        let checks = cgroup_checks(&HostPaths::under(d.path()), None);
        let c = by_id(&checks, "cgroup.memory");
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.hint.as_deref().unwrap().contains("cgroup_enable=memory"));
    }

    #[test]
    fn a_v2_host_without_the_cpu_controller_fails_cgroup_cpu() {
        let d = v2_host("cpuset io memory pids\n");
        let checks = cgroup_checks(&HostPaths::under(d.path()), Some(&info("2", false, &[])));
        assert_eq!(by_id(&checks, "cgroup.version").outcome, Outcome::Pass);
        let c = by_id(&checks, "cgroup.cpu");
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.hint.as_deref().unwrap().contains("cgroup.controllers"));
        assert_eq!(by_id(&checks, "cgroup.pids").outcome, Outcome::Pass);
    }

    #[test]
    fn a_rootless_engine_without_delegated_controllers_fails() {
        let d = v2_host("cpu memory pids\n");
        let checks = cgroup_checks(&HostPaths::under(d.path()), Some(&info("2", true, &[])));
        let c = by_id(&checks, "cgroup.memory");
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("Delegate=cpu cpuset io memory pids"));
    }

    #[test]
    fn no_cgroup_filesystem_fails_cgroup_version() {
        let d = tempfile::tempdir().unwrap();
        let checks = cgroup_checks(&HostPaths::under(d.path()), None);
        let c = by_id(&checks, "cgroup.version");
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("mount the cgroup filesystem"));
    }

    #[test]
    fn an_engine_on_another_cgroup_version_than_this_host_warns() {
        let d = v1_host();
        let checks = cgroup_checks(&HostPaths::under(d.path()), Some(&info("2", false, &[])));
        let c = by_id(&checks, "cgroup.version");
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c.hint.as_deref().unwrap().contains("engine's host"));
    }

    fn env<'a>(d: &Path, uid: u32, run: super::super::Runner<'a>) -> HostEnv<'a> {
        HostEnv {
            paths: HostPaths::under(d),
            uid,
            run,
        }
    }

    #[test]
    fn namespaces_pass_when_the_unprivileged_probe_succeeds_and_root_drops_to_nobody() {
        let d = tempfile::tempdir().unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let run = |p: &str, a: &[&str]| {
            seen.lock().unwrap().push(format!("{p} {}", a.join(" ")));
            Some(0)
        };
        let checks = namespace_checks(&env(d.path(), 0, &run), Some(false));
        for c in &checks {
            assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        }
        let seen = seen.into_inner().unwrap();
        assert!(seen[0].starts_with("setpriv --reuid=65534"), "{seen:?}");
        assert!(seen[0].ends_with("unshare -U true"), "{seen:?}");
    }

    #[test]
    fn userns_disabled_by_sysctl_fails_for_a_rootless_engine() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "proc/sys/kernel/unprivileged_userns_clone", "0\n");
        let run = |_: &str, _: &[&str]| Some(1);
        let checks = namespace_checks(&env(d.path(), 1000, &run), Some(true));
        let c = by_id(&checks, "userns.unprivileged");
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(c.code, Some(ErrorCode::SandboxFailure));
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("kernel.unprivileged_userns_clone=1"));
        assert_eq!(by_id(&checks, "netns.unprivileged").outcome, Outcome::Fail);
    }

    #[test]
    fn zero_max_user_namespaces_warns_for_a_rootful_engine() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "proc/sys/user/max_user_namespaces", "0\n");
        let run = |_: &str, _: &[&str]| Some(1);
        let checks = namespace_checks(&env(d.path(), 1000, &run), Some(false));
        let c = by_id(&checks, "userns.unprivileged");
        assert_eq!(c.outcome, Outcome::Warn);
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("user.max_user_namespaces=15000"));
    }

    #[test]
    fn apparmor_restriction_fails_with_the_scoped_profile_first_and_the_sysctl_last() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1\n",
        );
        let run = |_: &str, _: &[&str]| Some(1);
        let checks = namespace_checks(&env(d.path(), 1000, &run), Some(true));
        let c = by_id(&checks, "apparmor.userns-restriction");
        assert_eq!(c.outcome, Outcome::Fail);
        let hint = c.hint.as_deref().unwrap();
        let scoped = hint.find("userns, }").expect("a scoped profile");
        let sysctl = hint
            .find("kernel.apparmor_restrict_unprivileged_userns=0")
            .expect("the sysctl");
        assert!(scoped < sysctl, "scoped fix first: {hint}");
        assert!(hint.contains("trade-off"), "{hint}");
        assert!(by_id(&checks, "userns.unprivileged")
            .summary
            .contains("AppArmor"));
    }

    #[test]
    fn apparmor_restriction_passes_when_a_profile_already_grants_userns() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1\n",
        );
        let run = |_: &str, _: &[&str]| Some(0);
        let checks = namespace_checks(&env(d.path(), 1000, &run), Some(true));
        assert_eq!(
            by_id(&checks, "apparmor.userns-restriction").outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn a_probe_that_cannot_run_is_skipped_with_its_reason() {
        let d = tempfile::tempdir().unwrap();
        let run = |_: &str, _: &[&str]| None;
        let checks = namespace_checks(&env(d.path(), 0, &run), Some(false));
        let c = by_id(&checks, "userns.unprivileged");
        assert_eq!(c.outcome, Outcome::Skip);
        assert!(c.summary.contains("could not run"), "{}", c.summary);
    }

    #[test]
    fn systemd_units_are_skipped_without_systemd() {
        let d = tempfile::tempdir().unwrap();
        let run = |_: &str, _: &[&str]| Some(0);
        let c = systemd_units(&env(d.path(), 0, &run));
        assert_eq!(c.outcome, Outcome::Skip);
        assert!(
            c.summary.contains("systemd is not running"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn an_installed_unit_that_is_not_active_fails() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("run/systemd/system")).unwrap();
        write(
            d.path(),
            "etc/systemd/system/clw-fortress.service",
            "[Unit]\n",
        );
        write(
            d.path(),
            "usr/lib/systemd/system/clw-fortress-verify.timer",
            "[Unit]\n",
        );
        // Both enabled; the agent is not running.
        let run = |_: &str, a: &[&str]| {
            Some(if a[0] == "is-active" && a[2] == "clw-fortress.service" {
                3
            } else {
                0
            })
        };
        let c = systemd_units(&env(d.path(), 0, &run));
        assert_eq!((c.id, c.outcome), ("systemd.units", Outcome::Fail));
        assert!(c.summary.contains("clw-fortress.service"), "{}", c.summary);
        assert!(!c.summary.contains("verify.timer"), "{}", c.summary);
        assert!(c
            .hint
            .as_deref()
            .unwrap()
            .contains("systemctl start clw-fortress.service"));
    }

    /// What a package leaves: every unit installed, none enabled (the agent and the timers are
    /// alternatives, a timer's service is inactive between runs). Not a failure.
    #[test]
    fn installed_units_that_are_not_enabled_warn_and_only_enabled_ones_are_judged() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("run/systemd/system")).unwrap();
        for u in [
            "clw-fortress.service",
            "clw-fortress-enforce.service",
            "clw-fortress-enforce.timer",
        ] {
            write(d.path(), &format!("usr/lib/systemd/system/{u}"), "[Unit]\n");
        }
        let none_enabled = |_: &str, _: &[&str]| Some(1);
        let c = systemd_units(&env(d.path(), 0, &none_enabled));
        assert_eq!(c.outcome, Outcome::Warn, "{c:?}");
        assert!(c.summary.contains("none enabled"), "{}", c.summary);

        // The timer is enabled and waiting; its oneshot service and the agent are not enabled.
        let timer_mode = |_: &str, a: &[&str]| {
            Some(match (a[0], a[2]) {
                (_, "clw-fortress-enforce.timer") => 0,
                ("is-enabled", _) => 1,
                _ => 3,
            })
        };
        let c = systemd_units(&env(d.path(), 0, &timer_mode));
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        assert_eq!(c.summary, "active: clw-fortress-enforce.timer");
    }

    #[test]
    fn systemd_without_our_units_warns() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("run/systemd/system")).unwrap();
        let run = |_: &str, _: &[&str]| Some(0);
        let c = systemd_units(&env(d.path(), 0, &run));
        assert_eq!(c.outcome, Outcome::Warn);
    }
}
