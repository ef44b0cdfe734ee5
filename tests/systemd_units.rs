//! The systemd units in `systemd/` pass `systemd-analyze verify` (with the binary path pointed
//! at the one under test, since verify checks that ExecStart exists), the user unit in
//! `systemd/user/` passes `systemd-analyze verify --user`, and the units keep the settings their
//! behaviour depends on.
//!
//! `systemd-analyze verify --user` needs no running user manager, only an `$XDG_RUNTIME_DIR`
//! to set up the user manager it simulates (without one it stops with "Failed to lookup
//! RuntimeDirectory path"): a private temporary one is passed.
//!
//! `systemd-analyze` must be installed (scripts/test.sh installs Debian's systemd package); a
//! missing one fails the test, it does not skip it.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 7] = [
    "clw-fortress.service",
    "clw-fortress-enforce.service",
    "clw-fortress-enforce.timer",
    "clw-fortress-heal.service",
    "clw-fortress-heal.timer",
    "clw-fortress-maintenance.service",
    "clw-fortress-maintenance.timer",
];

const USER_UNITS: [&str; 1] = ["clw-fortress.service"];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

fn user_units_dir() -> PathBuf {
    units_dir().join("user")
}

/// Copies the units into a temporary directory with the installed binary path replaced.
fn staged(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    staged_from(&units_dir(), &UNITS, edit)
}

fn staged_from(
    from: &Path,
    units: &[&str],
    edit: impl Fn(&str, String) -> String,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for &u in units {
        let text = std::fs::read_to_string(from.join(u))
            .unwrap_or_else(|e| panic!("read systemd/{u}: {e}"));
        let text = text.replace(
            "/usr/local/bin/clw-fortress",
            env!("CARGO_BIN_EXE_clw-fortress"),
        );
        std::fs::write(dir.path().join(u), edit(u, text)).unwrap();
    }
    dir
}

/// `systemd-analyze verify` on every unit: its exit status and every diagnostic line. No line
/// is excused: a key this systemd does not know (Debian 12 ships 252) would be ignored by it.
fn verify(dir: &Path) -> (bool, Vec<String>) {
    verify_as(dir, &UNITS, false)
}

/// `user`: as a user manager would load them (`--user`).
fn verify_as(dir: &Path, units: &[&str], user: bool) -> (bool, Vec<String>) {
    let runtime = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg("--man=no");
    if user {
        cmd.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    let out = cmd
        .args(units.iter().map(|u| dir.join(u)))
        .output()
        .expect("run systemd-analyze verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    (out.status.success(), problems)
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let dir = staged(|_, t| t);
    let (ok, problems) = verify(dir.path());
    assert!(ok && problems.is_empty(), "verify: ok={ok}\n{problems:#?}");
}

#[test]
fn the_user_unit_passes_systemd_analyze_verify_as_a_user_unit() {
    let dir = staged_from(&user_units_dir(), &USER_UNITS, |_, t| t);
    let (ok, problems) = verify_as(dir.path(), &USER_UNITS, true);
    assert!(
        ok && problems.is_empty(),
        "verify --user: ok={ok}\n{problems:#?}"
    );
    // The same check catches a misspelt key in user mode too.
    let dir = staged_from(&user_units_dir(), &USER_UNITS, |_, t| {
        t.replace("NoNewPrivileges=", "NoNewPrivilege=")
    });
    let (_, problems) = verify_as(dir.path(), &USER_UNITS, true);
    assert!(
        problems.iter().any(|p| p.contains("NoNewPrivilege")),
        "{problems:#?}"
    );
}

/// Keys a user manager cannot honour without privileges are not in the user unit: mount
/// namespace sandboxing would silently need unprivileged user namespaces (implicit
/// PrivateUsers=), capability sets have nothing to drop, and the cgroup BPF ones cannot be
/// attached. `systemd-analyze verify --user` accepts all of them, so this list is the check.
#[test]
fn the_user_unit_uses_no_key_that_needs_privileges_or_user_namespaces() {
    let kv = key_values_in(&user_units_dir(), "clw-fortress.service");
    const SYSTEM_ONLY: [&str; 24] = [
        "User",
        "Group",
        "DynamicUser",
        "CapabilityBoundingSet",
        "AmbientCapabilities",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateUsers",
        "PrivateNetwork",
        "ReadWritePaths",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "ProtectProc",
        "IPAddressDeny",
        "IPAddressAllow",
        "DevicePolicy",
    ];
    let used: Vec<&str> = kv
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| SYSTEM_ONLY.contains(k) || *k == "StateDirectory")
        .collect();
    assert!(used.is_empty(), "{used:?}");
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the user unit lacks {k}="))
    };
    assert_eq!(get("Type"), "notify");
    assert_eq!(
        get("ExecStart"),
        "/usr/local/bin/clw-fortress -v -f %h/.config/clw-fortress/fortress.yaml daemon"
    );
    assert_eq!(get("NoNewPrivileges"), "yes");
    assert_eq!(get("WantedBy"), "default.target");
    // Ordered after the rootless Podman socket, never pulling it in (see the unit).
    assert_eq!(get("After"), "podman.socket");
    assert!(!kv.iter().any(|(k, _)| k == "Wants" || k == "Requires"));
}

#[test]
fn the_check_catches_a_misspelt_key() {
    let dir = staged(|u, t| {
        if u == "clw-fortress.service" {
            t.replace("WatchdogSec=", "WatchdogSecs=")
        } else {
            t
        }
    });
    let (_, problems) = verify(dir.path());
    assert!(
        problems.iter().any(|p| p.contains("WatchdogSecs")),
        "{problems:#?}"
    );
}

fn key_values(unit: &str) -> Vec<(String, String)> {
    key_values_in(&units_dir(), unit)
}

fn key_values_in(dir: &Path, unit: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join(unit))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_agent_unit_is_notify_typed_watched_restarted_with_backoff_and_sandboxed() {
    let kv = key_values("clw-fortress.service");
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("clw-fortress.service lacks {k}="))
    };
    assert_eq!(get("Type"), "notify");
    assert!(get("ExecStart").ends_with(" daemon"));
    assert_eq!(get("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(get("Restart"), "on-failure");
    assert!(!get("WatchdogSec").is_empty());
    assert_eq!(get("RestartSec"), "5s");
    for k in ["RestartSteps", "RestartMaxDelaySec"] {
        assert!(
            !kv.iter().any(|(key, _)| key == k),
            "{k} is unknown to systemd 252"
        );
    }
    assert_eq!(get("ProtectSystem"), "strict");
    // The agent runs the backups, whose destinations usually live in homes (as the
    // maintenance unit does); the rest of the system stays read-only. ProtectSystem=strict
    // makes /home read-only too: only ReadWritePaths opens it (tests/unit_restrictions_engine.rs
    // runs backups under exactly these lines).
    assert_eq!(get("ProtectHome"), "no");
    assert_eq!(get("NoNewPrivileges"), "yes");
    assert_eq!(get("PrivateTmp"), "yes");
    assert_eq!(get("StateDirectory"), "clw-fortress");
    assert_eq!(get("ReadWritePaths"), "/var/lib/clw-fortress -/home");
    assert_eq!(get("RestrictAddressFamilies"), "AF_UNIX AF_INET AF_INET6");
    // The kernel log is readable (OOM evidence on Podman), and nothing else of /dev.
    assert_eq!(get("DevicePolicy"), "closed");
    assert_eq!(get("DeviceAllow"), "/dev/kmsg r");
    assert_eq!(get("ProtectKernelLogs"), "no");
    assert_eq!(
        get("CapabilityBoundingSet"),
        "CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER CAP_SYSLOG CAP_SYS_ADMIN \
         CAP_SYS_PTRACE"
    );
    // Egress: the agent enters sandboxes' network namespaces (and only those) and connects
    // upstream wherever an allow-list says.
    assert_eq!(get("RestrictNamespaces"), "net");
    assert!(
        !kv.iter().any(|(k, _)| k == "IPAddressDeny"),
        "IPAddressDeny would cut the egress proxy's upstream connections"
    );
}

#[test]
fn the_agent_unit_lets_setns_through_for_the_egress_listeners() {
    let allowed = allowed_syscalls("clw-fortress.service");
    assert!(allowed.contains("setns"), "the agent unit refuses setns");
    for call in ["mount", "pivot_root", "init_module"] {
        assert!(!allowed.contains(call), "the agent unit allows {call}");
    }
}

/// The system calls a unit's `SystemCallFilter=` lines allow, as systemd reads them: the first
/// line decides allow- or deny-list, each later line adds to the list (same kind) or takes
/// away from it (the other kind). Groups are expanded by `systemd-analyze syscall-filter`.
fn allowed_syscalls(unit: &str) -> std::collections::BTreeSet<String> {
    use std::collections::BTreeSet;
    fn expand_group(group: &str) -> BTreeSet<String> {
        let out = Command::new("systemd-analyze")
            .args(["syscall-filter", group])
            .output()
            .expect("run systemd-analyze syscall-filter");
        assert!(out.status.success(), "{group}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .flat_map(|l| {
                if l.starts_with('@') {
                    expand_group(l).into_iter().collect::<Vec<_>>()
                } else {
                    vec![l.to_string()]
                }
            })
            .collect()
    }
    let lines: Vec<String> = key_values(unit)
        .into_iter()
        .filter(|(k, _)| k == "SystemCallFilter")
        .map(|(_, v)| v)
        .collect();
    assert!(
        !lines.is_empty() && !lines[0].starts_with('~'),
        "{unit}: expected an allow-list first: {lines:?}"
    );
    let mut allowed = BTreeSet::new();
    for line in &lines {
        let (remove, list) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, line.as_str()),
        };
        for item in list.split_whitespace() {
            let names = if item.starts_with('@') {
                expand_group(item)
            } else {
                BTreeSet::from([item.to_string()])
            };
            for n in names {
                if remove {
                    allowed.remove(&n);
                } else {
                    allowed.insert(n);
                }
            }
        }
    }
    allowed
}

/// The units that run backups as root chown what they create to the owner (and SQLite chowns
/// a -shm it creates to the database's owner): their system call filter must let chown
/// through, which `~@privileged` alone would not (a seccomp EPERM is silent in SQLite and
/// leaves a root-owned -shm that stops the user's gateway). The other units need none.
#[test]
fn the_units_that_write_backups_let_chown_through_their_system_call_filter() {
    for unit in ["clw-fortress.service", "clw-fortress-maintenance.service"] {
        let allowed = allowed_syscalls(unit);
        for call in ["fchown", "fchownat", "chown", "lchown", "openat", "rename"] {
            assert!(allowed.contains(call), "{unit} refuses {call}");
        }
        for call in ["mount", "setuid", "init_module", "reboot"] {
            assert!(!allowed.contains(call), "{unit} allows {call}");
        }
    }
    let enforce = allowed_syscalls("clw-fortress-enforce.service");
    assert!(
        !enforce.contains("fchown"),
        "the enforce run writes no user files"
    );
}

#[test]
fn the_timers_fire_every_five_minutes_every_three_minutes_and_daily() {
    for (timer, calendar) in [
        ("clw-fortress-enforce.timer", "*:0/5"),
        ("clw-fortress-heal.timer", "*:0/3"),
        ("clw-fortress-maintenance.timer", "*-*-* 03:30:00"),
    ] {
        let kv = key_values(timer);
        assert!(
            kv.contains(&("OnCalendar".to_string(), calendar.to_string())),
            "{timer}: {kv:?}"
        );
    }
    let maint = key_values("clw-fortress-maintenance.service");
    let execs: Vec<&str> = maint
        .iter()
        .filter(|(k, _)| k == "ExecStart")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(execs[0].ends_with("backup run"), "{execs:?}");
    assert!(execs[1].ends_with(" verify"), "{execs:?}");
}
