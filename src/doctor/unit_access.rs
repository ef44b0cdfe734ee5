//! `unit.access`: whether the agent can do its file work under the systemd unit that runs it,
//! asked of the unit itself rather than of doctor's own privileges.
//!
//! Doctor run as root from a shell holds every capability and sees a writable file system; the
//! agent under `clw-fortress.service` holds only the unit's `CapabilityBoundingSet=` and sees
//! `ProtectSystem=strict` with its `ReadWritePaths=`. So the access checks (`secrets.file`,
//! `backup.dest`, `backup.sources`) are run a second time, by `clw-fortress doctor
//! --access-only` in a child process restricted like the unit: a private mount namespace
//! (`unshare --mount`) in which every mount but /proc, /sys, /dev and the unit's
//! `ReadWritePaths=` is remounted read-only (`ProtectSystem=`), the homes handled as
//! `ProtectHome=` says, fresh tmpfs on /tmp and /var/tmp (`PrivateTmp=`), then `setpriv` with the
//! unit's bounding set, no inheritable or ambient capabilities, and `--no-new-privs`
//! (`NoNewPrivileges=`). The unit is read from where systemd reads it (the unit file, then its
//! drop-ins), so a drop-in that narrows or widens it is seen.
//!
//! Why a child and not `ExecStartPre=clw-fortress doctor --access` in the unit: that would tell
//! only at the agent's start, in the journal, and a failing backup destination would keep the
//! agent (and its limits) from starting; the child tells the operator now, on any host, with or
//! without systemd running. What it does not reproduce, since none of it decides a file access:
//! `SystemCallFilter=` (tests/systemd_units.rs checks that the units let chown through), the
//! address-family, IP and device policies and the `Protect{Kernel*,Clock,Hostname}` mounts.
//!
//! The parsing and the script are pure (tested on text); only [`check`] runs anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Check, Outcome};
use crate::error::ErrorCode;
use crate::host::HostPaths;

/// The units that run the agent's file work (backups, verify), by name.
pub const UNITS: [&str; 2] = ["clw-fortress.service", "clw-fortress-maintenance.service"];

/// The file-system and privilege lines of a unit (after its drop-ins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitSandbox {
    /// `CapabilityBoundingSet=` (`CAP_*` names); `None`: not set, every capability.
    pub caps: Option<Vec<String>>,
    pub no_new_privs: bool,
    /// `no`, `yes`, `full` or `strict`.
    pub protect_system: String,
    /// `no`, `yes`, `read-only` or `tmpfs`.
    pub protect_home: String,
    /// `(path, may be missing)`: `-/home` is `("/home", true)`.
    pub read_write: Vec<(PathBuf, bool)>,
    pub read_only: Vec<(PathBuf, bool)>,
    pub private_tmp: bool,
    /// `User=`, when the unit does not run as root.
    pub user: Option<String>,
    /// The manifests its `ExecStart=` lines load (`-f`/`--file`; without one, the default
    /// `/etc/clw-fortress/fortress.yaml`).
    pub manifests: Vec<PathBuf>,
}

fn yes(v: &str) -> bool {
    matches!(v, "yes" | "true" | "on" | "1")
}

fn paths(v: &str) -> impl Iterator<Item = (PathBuf, bool)> + '_ {
    v.split_whitespace().map(|p| {
        // `+` (outside the root directory) and `-` (may be missing) prefixes, in any order.
        let optional = p.trim_start_matches('+').starts_with('-');
        let p = p.trim_start_matches(['-', '+']);
        (PathBuf::from(p), optional)
    })
}

impl UnitSandbox {
    /// Reads a unit's `[Service]` lines, the unit file first and then each drop-in, as systemd
    /// merges them: a list setting grows with each line, an empty assignment empties it.
    pub fn parse(texts: &[String]) -> UnitSandbox {
        let mut u = UnitSandbox {
            protect_system: "no".into(),
            protect_home: "no".into(),
            ..UnitSandbox::default()
        };
        for text in texts {
            let mut section = String::new();
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    section = line.to_string();
                    continue;
                }
                if line.starts_with('#') || line.starts_with(';') || section != "[Service]" {
                    continue;
                }
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let v = v.trim();
                match k.trim() {
                    "CapabilityBoundingSet" if v.is_empty() => u.caps = None,
                    "CapabilityBoundingSet" => {
                        let names = v.split_whitespace().map(|c| c.to_ascii_uppercase());
                        u.caps.get_or_insert_with(Vec::new).extend(names);
                    }
                    "NoNewPrivileges" => u.no_new_privs = yes(v),
                    "ProtectSystem" => {
                        u.protect_system = if yes(v) { "yes".into() } else { v.to_string() }
                    }
                    "ProtectHome" => {
                        u.protect_home = if yes(v) { "yes".into() } else { v.to_string() }
                    }
                    "PrivateTmp" => u.private_tmp = yes(v),
                    "ReadWritePaths" if v.is_empty() => u.read_write.clear(),
                    "ReadWritePaths" => u.read_write.extend(paths(v)),
                    "ReadOnlyPaths" if v.is_empty() => u.read_only.clear(),
                    "ReadOnlyPaths" => u.read_only.extend(paths(v)),
                    "User" => u.user = (!v.is_empty() && v != "root" && v != "0").then(|| v.into()),
                    "ExecStart" if v.is_empty() => u.manifests.clear(),
                    "ExecStart" => u.manifests.push(exec_manifest(v)),
                    _ => {}
                }
            }
        }
        u
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let list = |p: &[(PathBuf, bool)]| {
            p.iter()
                .map(|(p, o)| format!("{}{}", if *o { "-" } else { "" }, p.display()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "CapabilityBoundingSet={} NoNewPrivileges={} ProtectSystem={} ProtectHome={} ReadWritePaths={} PrivateTmp={}",
            self.caps
                .as_ref()
                .map(|c| c.join(" "))
                .unwrap_or_else(|| "(all)".into()),
            if self.no_new_privs { "yes" } else { "no" },
            self.protect_system,
            self.protect_home,
            list(&self.read_write),
            if self.private_tmp { "yes" } else { "no" },
        )
    }

    /// Whether writes below `mount_point` stay as they are (not made read-only by
    /// `ProtectSystem=`): the API file systems, the private /tmp and the `ReadWritePaths=`.
    fn left_writable(&self, mount_point: &Path) -> bool {
        let api = ["/proc", "/sys", "/dev"].iter().map(Path::new);
        let tmp = ["/tmp", "/var/tmp"]
            .iter()
            .map(Path::new)
            .filter(|_| self.private_tmp);
        api.chain(tmp)
            .chain(self.read_write.iter().map(|(p, _)| p.as_path()))
            .any(|base| mount_point.starts_with(base))
    }

    /// Whether `ProtectSystem=` makes `mount_point` read-only.
    fn protected(&self, mount_point: &Path) -> bool {
        let under = |bases: &[&str]| bases.iter().any(|b| mount_point.starts_with(b));
        match self.protect_system.as_str() {
            "strict" => true,
            "full" => under(&["/usr", "/boot", "/efi", "/etc"]),
            "yes" => under(&["/usr", "/boot", "/efi"]),
            _ => false,
        }
    }

    /// The `sh` script that builds the unit's view of the file system in a fresh mount
    /// namespace (run it under `unshare --mount --propagation private`), then execs `"$@"`
    /// with the unit's privileges. `mountinfo` is `/proc/self/mountinfo` as read before: the
    /// namespace starts as a copy of it. A mount the engine removed in between is no longer a
    /// mount point in the copy (`mountpoint -q`) and is passed over; one it added in between
    /// (a container's root, a network namespace) stays as it was.
    pub fn script(&self, mountinfo: &str) -> String {
        let mut s = String::from("set -eu\n");
        if self.private_tmp {
            for d in ["/tmp", "/var/tmp"] {
                s.push_str(&format!(
                    "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {d}\n"
                ));
            }
        }
        // Each writable path becomes a mount of its own first, so the read-only remounts
        // below (one per mount, not recursive) leave it alone.
        for (p, optional) in &self.read_write {
            let p = quote(&p.to_string_lossy());
            s.push_str(&format!("if [ -e {p} ]; then mount --rbind {p} {p}; "));
            if *optional {
                s.push_str("fi\n");
            } else {
                s.push_str(&format!(
                    "else echo 'ReadWritePaths: '{p}' does not exist' >&2; exit 97; fi\n"
                ));
            }
        }
        let mut ro: Vec<PathBuf> = mount_points(mountinfo)
            .into_iter()
            .filter(|p| self.protected(p) && !self.left_writable(p))
            .collect();
        let homes = ["/home", "/root", "/run/user"].map(PathBuf::from);
        let mut binds = Vec::new();
        if self.protect_home == "read-only" {
            binds.extend(homes.iter().filter(|h| !self.left_writable(h)).cloned());
        }
        binds.extend(
            self.read_only
                .iter()
                .map(|(p, _)| p.clone())
                .filter(|p| !self.left_writable(p)),
        );
        for p in &binds {
            let q = quote(&p.to_string_lossy());
            s.push_str(&format!("[ ! -e {q} ] || mount --rbind {q} {q}\n"));
        }
        ro.extend(binds);
        ro.sort();
        ro.dedup();
        for p in &ro {
            let q = quote(&p.to_string_lossy());
            s.push_str(&format!(
                "[ ! -e {q} ] || mount -o remount,bind,ro {q} 2>/dev/null || ! mountpoint -q {q} || {{ echo 'cannot make '{q}' read-only' >&2; exit 98; }}\n"
            ));
        }
        if matches!(self.protect_home.as_str(), "yes" | "tmpfs") {
            for h in homes.iter().filter(|h| !self.left_writable(h)) {
                let q = quote(&h.to_string_lossy());
                s.push_str(&format!(
                    "[ ! -d {q} ] || mount -t tmpfs -o ro,mode=0755 tmpfs {q}\n"
                ));
            }
        }
        let bounding = match &self.caps {
            None => "+all".to_string(),
            Some(caps) => std::iter::once("-all".to_string())
                .chain(
                    caps.iter()
                        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase())),
                )
                .collect::<Vec<_>>()
                .join(","),
        };
        s.push_str(&format!(
            "exec setpriv --bounding-set={bounding} --inh-caps=-all --ambient-caps=-all{} -- \"$@\"\n",
            if self.no_new_privs {
                " --no-new-privs"
            } else {
                ""
            }
        ));
        s
    }
}

/// The manifest an `ExecStart=` command line of clw-fortress loads.
fn exec_manifest(command: &str) -> PathBuf {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .iter()
        .enumerate()
        .find_map(|(i, w)| match *w {
            "-f" | "--file" => words.get(i + 1).map(PathBuf::from),
            w => w
                .strip_prefix("--file=")
                .or_else(|| w.strip_prefix("-f").filter(|r| !r.is_empty()))
                .map(PathBuf::from),
        })
        .unwrap_or_else(|| PathBuf::from("/etc/clw-fortress/fortress.yaml"))
}

/// A single-quoted `sh` word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The mount points of a mountinfo text, unescaped, without `nsfs` entries (namespace
/// handles, which are not files anyone writes and cannot be remounted).
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            let point = fields.get(4)?;
            (*fstype != "nsfs").then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// Mountinfo escapes space, tab, newline and backslash as three octal digits.
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|o| {
            std::str::from_utf8(o)
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The installed units among [`UNITS`], each with its drop-ins, where systemd looks for
/// them (`/etc` overrides the package's `/usr/lib`; Debian's `/lib` is `/usr/lib`).
pub fn installed(paths: &HostPaths) -> Vec<PathBuf> {
    let dirs = [
        paths.etc.join("systemd/system"),
        paths.run.join("systemd/system"),
        paths.usr_lib.join("systemd/system"),
    ];
    UNITS
        .iter()
        .filter_map(|u| dirs.iter().map(|d| d.join(u)).find(|p| p.is_file()))
        .collect()
}

/// The unit file's text followed by its drop-ins (`<dir>/<unit>.d/*.conf` in every unit
/// directory, ordered by file name; one in `/etc` replaces a namesake in `/usr/lib`).
pub fn texts(unit: &Path, paths: &HostPaths) -> std::io::Result<Vec<String>> {
    let mut texts = vec![std::fs::read_to_string(unit)?];
    let Some(name) = unit.file_name() else {
        return Ok(texts);
    };
    let mut dirs: Vec<PathBuf> = [
        paths.etc.join("systemd/system"),
        paths.run.join("systemd/system"),
        paths.usr_lib.join("systemd/system"),
    ]
    .to_vec();
    if let Some(d) = unit.parent() {
        if !dirs.iter().any(|x| x == d) {
            dirs.insert(0, d.to_path_buf());
        }
    }
    let mut dropins: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
    for d in dirs {
        let mut dir = d.join(name).into_os_string();
        dir.push(".d");
        let Ok(entries) = std::fs::read_dir(PathBuf::from(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let f = e.file_name();
            if Path::new(&f).extension().is_some_and(|x| x == "conf") {
                dropins.entry(f).or_insert_with(|| e.path());
            }
        }
    }
    for p in dropins.values() {
        texts.push(std::fs::read_to_string(p)?);
    }
    Ok(texts)
}

/// What [`check`] needs to start the child.
pub struct Child<'a> {
    /// This program.
    pub exe: PathBuf,
    pub manifest: &'a Path,
    /// `--state`, when given.
    pub state: Option<&'a Path>,
}

/// The access checks' ids, as `doctor --access-only` reports them.
pub const ACCESS_CHECKS: [&str; 3] = ["secrets.file", "backup.dest", "backup.sources"];

/// `unit.access`: the access checks run under each unit in `units` (explicit `--unit` files,
/// else the installed ones). `euid`: doctor's own; only root has more than a unit grants.
pub fn check(
    units: &[PathBuf],
    explicit: bool,
    euid: u32,
    paths: &HostPaths,
    child: &Child,
) -> Check {
    const ID: &str = "unit.access";
    if units.is_empty() {
        return Check::skip(
            ID,
            "no clw-fortress unit is installed (clw-fortress.service, clw-fortress-maintenance.service): nothing runs the agent under a unit's restrictions; `doctor --unit <file>` checks against one",
        );
    }
    if euid != 0 {
        return Check::skip(
            ID,
            format!(
                "doctor runs as uid {euid}, the system units as root: run doctor as root to check the agent's access under them (a user unit restricts no file access: the checks above are its)"
            ),
        );
    }
    let mountinfo = std::fs::read_to_string(paths.proc.join("self/mountinfo")).unwrap_or_default();
    let mut evidence = Vec::new();
    let mut failures = Vec::new();
    let mut code = None;
    let mut inconclusive = Vec::new();
    let mut unrelated = Vec::new();
    let mut checked = Vec::new();
    for unit in units {
        let name = unit.display().to_string();
        let sandbox = match texts(unit, paths) {
            Ok(t) => UnitSandbox::parse(&t),
            Err(e) => {
                inconclusive.push(format!("{name}: cannot read it: {e}"));
                continue;
            }
        };
        if !explicit && !runs(&sandbox, child.manifest) {
            unrelated.push(format!(
                "{name} runs {}",
                sandbox
                    .manifests
                    .iter()
                    .map(|m| m.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        checked.push(name.clone());
        evidence.push(format!("{name}: {}", sandbox.describe()));
        if let Some(user) = &sandbox.user {
            inconclusive.push(format!(
                "{name} runs as User={user}: run `doctor` as that user instead"
            ));
            continue;
        }
        match run_child(&sandbox, &mountinfo, child) {
            Ok(results) => {
                for r in results {
                    evidence.push(format!(
                        "{name}: {} {}: {}",
                        r.outcome.label(),
                        r.id,
                        r.summary
                    ));
                    if r.outcome == Outcome::Fail {
                        code = code.or(r.code);
                        failures.push(format!("{}: {}", r.id, r.summary));
                    }
                }
            }
            Err(why) => inconclusive.push(format!("{name}: {why}")),
        }
    }
    if checked.is_empty() && !unrelated.is_empty() {
        return Check::skip(
            ID,
            format!(
                "the installed units load another manifest than {} ({}): check that one, or pass --unit",
                child.manifest.display(),
                unrelated.join("; ")
            ),
        );
    }
    let names = checked.join(", ");
    let scope = if explicit { "given" } else { "installed" };
    if !failures.is_empty() {
        return Check::fail(
            ID,
            code.unwrap_or(ErrorCode::PermissionDenied),
            format!("under its unit the agent could not: {}", failures.join("; ")),
            "give the unit what the agent needs (the shipped systemd/clw-fortress.service: ReadWritePaths=/var/lib/clw-fortress -/home, CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER ...), e.g. with a drop-in, or move the destinations and databases where it may write; then `systemctl daemon-reload`",
        )
        .with_evidence(evidence);
    }
    if !inconclusive.is_empty() {
        return Check::warn(
            ID,
            format!(
                "could not check under the {scope} unit(s): {}",
                inconclusive.join("; ")
            ),
            "run doctor as root on a host with util-linux's unshare and setpriv",
        )
        .with_evidence(evidence);
    }
    Check::pass(
        ID,
        format!("under the {scope} unit(s) {names}: the secrets file reads, every backup destination takes a file and every source database opens"),
    )
    .with_evidence(evidence)
}

/// Whether the unit's agent loads `manifest` (compared as real paths).
fn runs(sandbox: &UnitSandbox, manifest: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let want = real(manifest);
    sandbox.manifests.iter().any(|m| real(m) == want)
}

/// One access check as the child reported it.
struct ChildCheck {
    id: String,
    outcome: Outcome,
    summary: String,
    code: Option<ErrorCode>,
}

fn run_child(
    sandbox: &UnitSandbox,
    mountinfo: &str,
    child: &Child,
) -> Result<Vec<ChildCheck>, String> {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(sandbox.script(mountinfo))
        .arg("sh")
        .arg(&child.exe)
        .arg("-f")
        .arg(child.manifest);
    if let Some(s) = child.state {
        cmd.arg("--state").arg(s);
    }
    // As systemd starts it: no HOME (`metadata.owner` decides `~`).
    cmd.args(["-o", "json", "doctor", "--access-only"])
        .env_remove("HOME")
        .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "the restricted run reported nothing ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let checks = report["checks"]
        .as_array()
        .ok_or("the restricted run's report has no checks")?;
    Ok(checks
        .iter()
        .map(|c| ChildCheck {
            id: c["id"].as_str().unwrap_or("?").to_string(),
            outcome: match c["outcome"].as_str() {
                Some("pass") => Outcome::Pass,
                Some("warn") => Outcome::Warn,
                Some("skip") => Outcome::Skip,
                _ => Outcome::Fail,
            },
            summary: c["summary"].as_str().unwrap_or("").to_string(),
            code: c["code"]
                .as_str()
                .and_then(|s| ErrorCode::ALL.into_iter().find(|e| e.as_str() == s)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw - proc proc rw
24 22 0:6 / /sys rw - sysfs sysfs rw
25 22 0:7 / /dev rw - devtmpfs udev rw
26 22 8:2 / /home rw - ext4 /dev/sda2 rw
27 22 8:3 / /var/lib rw - ext4 /dev/sda3 rw
28 22 0:4 net:[4026532] /run/netns/x rw - nsfs nsfs rw
29 22 8:4 / /mnt/with\\040space rw - ext4 /dev/sda4 rw
";

    fn unit(lines: &str) -> UnitSandbox {
        UnitSandbox::parse(&[format!("[Unit]\nDescription=x\n[Service]\n{lines}")])
    }

    #[test]
    fn the_shipped_units_parse_into_their_sandbox() {
        let agent =
            UnitSandbox::parse(&[include_str!("../../systemd/clw-fortress.service").into()]);
        assert_eq!(agent.protect_system, "strict");
        assert!(agent.no_new_privs && agent.private_tmp);
        assert_eq!(
            agent.read_write,
            vec![
                (PathBuf::from("/var/lib/clw-fortress"), false),
                (PathBuf::from("/home"), true)
            ]
        );
        assert!(agent
            .caps
            .as_ref()
            .unwrap()
            .contains(&"CAP_DAC_OVERRIDE".into()));
        assert_eq!(agent.user, None);
        assert_eq!(
            agent.manifests,
            vec![PathBuf::from("/etc/clw-fortress/fortress.yaml")]
        );
        for (line, want) in [
            ("/usr/bin/clw-fortress --file=/a.yaml backup run", "/a.yaml"),
            ("/usr/bin/clw-fortress -v -f/b.yaml daemon", "/b.yaml"),
            (
                "/usr/bin/clw-fortress verify",
                "/etc/clw-fortress/fortress.yaml",
            ),
        ] {
            assert_eq!(exec_manifest(line), PathBuf::from(want), "{line}");
        }
    }

    #[test]
    fn drop_ins_add_to_lists_and_an_empty_assignment_resets_them() {
        let u = UnitSandbox::parse(&[
            "[Service]\nCapabilityBoundingSet=CAP_CHOWN\nReadWritePaths=/a -/b\nProtectHome=true\n"
                .into(),
            "[Service]\nReadWritePaths=\nReadWritePaths=/c\nCapabilityBoundingSet=cap_fowner\n"
                .into(),
            "[Unit]\nReadWritePaths=/ignored\n".into(),
        ]);
        assert_eq!(u.read_write, vec![(PathBuf::from("/c"), false)]);
        assert_eq!(
            u.caps,
            Some(vec!["CAP_CHOWN".to_string(), "CAP_FOWNER".to_string()])
        );
        assert_eq!(u.protect_home, "yes");
        assert_eq!(unit("CapabilityBoundingSet=\n").caps, None);
    }

    #[test]
    fn strict_remounts_every_mount_but_the_api_ones_and_the_writable_paths() {
        let s = unit("ProtectSystem=strict\nReadWritePaths=/var/lib/clw-fortress -/home\nNoNewPrivileges=yes\nCapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_CHOWN\nPrivateTmp=yes\n")
            .script(MOUNTINFO);
        for ro in ["'/'", "'/var/lib'", "'/mnt/with space'"] {
            assert!(
                s.contains(&format!("mount -o remount,bind,ro {ro} ")),
                "{ro}:\n{s}"
            );
        }
        for rw in ["/proc", "/sys", "/dev", "/home", "/run/netns/x"] {
            assert!(
                !s.contains(&format!("remount,bind,ro '{rw}'")),
                "{rw}:\n{s}"
            );
        }
        assert!(s.contains("mount --rbind '/var/lib/clw-fortress' '/var/lib/clw-fortress'"));
        // `-/home` may be missing; the other may not.
        assert!(s.contains("if [ -e '/home' ]; then mount --rbind '/home' '/home'; fi"));
        assert!(s.contains("exit 97"));
        assert!(s.contains("mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp"));
        assert!(s.ends_with(
            "exec setpriv --bounding-set=-all,+dac_override,+chown --inh-caps=-all --ambient-caps=-all --no-new-privs -- \"$@\"\n"
        ));
        // The writable binds come before the read-only remounts.
        assert!(s.find("--rbind '/var/lib/clw-fortress'") < s.find("remount,bind,ro '/'"));
    }

    #[test]
    fn read_only_homes_are_bound_then_remounted_and_yes_hides_them() {
        let s = unit("ProtectSystem=full\nProtectHome=read-only\n").script(MOUNTINFO);
        assert!(s.contains("mount --rbind '/home' '/home'"), "{s}");
        assert!(s.contains("remount,bind,ro '/home'"), "{s}");
        assert!(
            !s.contains("remount,bind,ro '/' "),
            "full leaves / writable:\n{s}"
        );
        assert!(s.contains("--bounding-set=+all"), "{s}");
        assert!(!s.contains("--no-new-privs"), "{s}");
        let hidden = unit("ProtectHome=yes\n").script(MOUNTINFO);
        assert!(
            hidden.contains("mount -t tmpfs -o ro,mode=0755 tmpfs '/root'"),
            "{hidden}"
        );
    }

    #[test]
    fn without_a_unit_or_as_another_user_the_check_is_skipped_with_its_reason() {
        let paths = HostPaths::real();
        let child = Child {
            exe: "/nonexistent".into(),
            manifest: Path::new("/nonexistent.yaml"),
            state: None,
        };
        let c = check(&[], false, 0, &paths, &child);
        assert_eq!(c.outcome, Outcome::Skip);
        assert!(c.summary.contains("--unit"), "{c:?}");
        let c = check(&["/x.service".into()], true, 1000, &paths, &child);
        assert_eq!(c.outcome, Outcome::Skip);
        assert!(c.summary.contains("as root"), "{c:?}");
        // An installed unit that runs another manifest says nothing of this one.
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("clw-fortress.service");
        std::fs::write(
            &unit,
            "[Service]\nExecStart=/usr/bin/clw-fortress -f /etc/clw-fortress/fortress.yaml daemon\n",
        )
        .unwrap();
        let c = check(&[unit], false, 0, &paths, &child);
        assert_eq!(c.outcome, Outcome::Skip, "{c:?}");
        assert!(c.summary.contains("another manifest"), "{c:?}");
    }

    #[test]
    fn installed_units_are_found_where_systemd_looks_with_etc_first() {
        let d = tempfile::tempdir().unwrap();
        let paths = HostPaths::under(d.path());
        assert!(installed(&paths).is_empty());
        for dir in ["usr/lib/systemd/system", "etc/systemd/system"] {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
        }
        std::fs::write(
            d.path().join("usr/lib/systemd/system/clw-fortress.service"),
            "",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/systemd/system/clw-fortress.service"), "").unwrap();
        std::fs::write(
            d.path()
                .join("usr/lib/systemd/system/clw-fortress-maintenance.service"),
            "",
        )
        .unwrap();
        assert_eq!(
            installed(&paths),
            vec![
                d.path().join("etc/systemd/system/clw-fortress.service"),
                d.path()
                    .join("usr/lib/systemd/system/clw-fortress-maintenance.service"),
            ]
        );
        let dropins = d.path().join("etc/systemd/system/clw-fortress.service.d");
        std::fs::create_dir_all(&dropins).unwrap();
        std::fs::write(
            dropins.join("10-x.conf"),
            "[Service]\nReadWritePaths=/srv\n",
        )
        .unwrap();
        std::fs::write(dropins.join("README"), "not a drop-in").unwrap();
        let t = texts(
            &d.path().join("etc/systemd/system/clw-fortress.service"),
            &paths,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            UnitSandbox::parse(&t).read_write,
            vec![(PathBuf::from("/srv"), false)]
        );
    }
}
