//! The systemd units in `systemd/` pass `systemd-analyze verify` (with the binary path pointed
//! at the one under test, since verify checks that ExecStart exists), and the agent's unit
//! keeps the settings its behaviour depends on.
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

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// Copies the units into a temporary directory with the installed binary path replaced.
fn staged(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for u in UNITS {
        let text = std::fs::read_to_string(units_dir().join(u))
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
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(UNITS.iter().map(|u| dir.join(u)))
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
    std::fs::read_to_string(units_dir().join(unit))
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
    // maintenance unit does); the rest of the system stays read-only.
    assert_eq!(get("ProtectHome"), "no");
    assert_eq!(get("NoNewPrivileges"), "yes");
    assert_eq!(get("PrivateTmp"), "yes");
    assert_eq!(get("StateDirectory"), "clw-fortress");
    assert_eq!(get("ReadWritePaths"), "/var/lib/clw-fortress");
    assert_eq!(get("RestrictAddressFamilies"), "AF_UNIX AF_INET AF_INET6");
    // The kernel log is readable (OOM evidence on Podman), and nothing else of /dev.
    assert_eq!(get("DevicePolicy"), "closed");
    assert_eq!(get("DeviceAllow"), "/dev/kmsg r");
    assert_eq!(get("ProtectKernelLogs"), "no");
    assert_eq!(
        get("CapabilityBoundingSet"),
        "CAP_DAC_READ_SEARCH CAP_SYSLOG"
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
