//! The system units' restrictions, reproduced around the real binary on a real engine: a root
//! agent protecting a user's OpenClaw home (`metadata.owner`, `HOME` unset, as systemd starts
//! it) must be able to `enforce`, `backup run` and `verify` under exactly the capability
//! bounding set, no-new-privileges and file-system view its unit gives it, and `doctor`, run as
//! root from a shell, must tell whether it could.
//!
//! The restrictions are read from the unit files themselves (`systemd/clw-fortress.service`),
//! so the test follows the unit: `CapabilityBoundingSet=` (setpriv `--bounding-set`, ambient
//! and inheritable sets cleared), `NoNewPrivileges=` (`--no-new-privs`), `ProtectSystem=strict`
//! (every mount but /proc, /sys and /dev remounted read-only in a private mount namespace),
//! `ReadWritePaths=` (bound onto themselves first and left writable; a `-` path may be missing),
//! `ProtectHome=` and `PrivateTmp=` (fresh tmpfs on /tmp and /var/tmp). Not reproduced: the
//! seccomp filter (`SystemCallFilter=`, checked by tests/systemd_units.rs), the address family,
//! IP and device policies, and the Protect{Kernel*,Clock,Hostname,ControlGroups} mounts, none
//! of which decide a file access. systemd is not needed: util-linux's `unshare` and `setpriv`.
//!
//! The same run with the unit's old lines (only `CAP_DAC_READ_SEARCH`, /home read-only) fails
//! the backup, so the reproduction has teeth. Runs as root (CI does), on Docker and Podman.

mod common;

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const OWNER: &str = "clw-unit-t";

/// The unit's own sandbox lines.
#[derive(Debug, Clone)]
struct Restrictions {
    caps: Vec<String>,
    no_new_privs: bool,
    protect_system: String,
    protect_home: String,
    /// `(path, optional)`.
    read_write: Vec<(String, bool)>,
    private_tmp: bool,
}

impl Restrictions {
    fn of_unit(text: &str) -> Restrictions {
        let mut r = Restrictions {
            caps: Vec::new(),
            no_new_privs: false,
            protect_system: "no".into(),
            protect_home: "no".into(),
            read_write: Vec::new(),
            private_tmp: false,
        };
        let mut caps_seen = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "CapabilityBoundingSet" => {
                    caps_seen = true;
                    r.caps.extend(v.split_whitespace().map(str::to_string));
                }
                "NoNewPrivileges" => r.no_new_privs = v == "yes" || v == "true",
                "ProtectSystem" => r.protect_system = v.to_string(),
                "ProtectHome" => r.protect_home = v.to_string(),
                "PrivateTmp" => r.private_tmp = v == "yes" || v == "true",
                "ReadWritePaths" => {
                    r.read_write
                        .extend(v.split_whitespace().map(|p| match p.strip_prefix('-') {
                            Some(p) => (p.to_string(), true),
                            None => (p.to_string(), false),
                        }))
                }
                _ => {}
            }
        }
        assert!(caps_seen, "the unit sets no CapabilityBoundingSet");
        assert_eq!(
            r.protect_system, "strict",
            "the reproduction covers ProtectSystem=strict only"
        );
        r
    }

    fn writable(&self, mount_point: &str) -> bool {
        let under = |base: &str, p: &str| {
            p == base || p.starts_with(&format!("{}/", base.trim_end_matches('/')))
        };
        ["/proc", "/sys", "/dev"]
            .iter()
            .any(|api| under(api, mount_point))
            || (self.private_tmp && (under("/tmp", mount_point) || under("/var/tmp", mount_point)))
            || self.read_write.iter().any(|(p, _)| under(p, mount_point))
    }

    /// The shell script that builds the unit's view of the file system in a fresh mount
    /// namespace, then execs `"$@"` with the unit's privileges.
    fn script(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut s = String::from("set -eu\n");
        if self.private_tmp {
            for d in ["/tmp", "/var/tmp"] {
                s.push_str(&format!(
                    "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {d}\n"
                ));
            }
        }
        for (p, optional) in &self.read_write {
            s.push_str(&format!(
                "if [ -e {p} ]; then mount --rbind {p} {p}; elif [ {opt} = 0 ]; then echo 'ReadWritePaths {p} is missing' >&2; exit 97; fi\n",
                p = q(p),
                opt = u8::from(*optional)
            ));
        }
        // Every mount of this namespace, as the test process sees them (the namespace starts as
        // a copy; one the engine unmounted in between is passed over when it is no longer a
        // mount point); `nsfs` entries are namespace handles, not files anyone writes.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut points: Vec<String> = mountinfo
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split(' ').collect();
                let sep = fields.iter().position(|f| *f == "-")?;
                (fields.get(sep + 1) != Some(&"nsfs")).then(|| unescape(fields[4]))
            })
            .filter(|p| !self.writable(p))
            .collect();
        points.sort();
        points.dedup();
        for p in &points {
            s.push_str(&format!(
                "[ ! -e {p} ] || mount -o remount,bind,ro {p} 2>/dev/null || ! mountpoint -q {p} || {{ echo 'cannot make {p} read-only' >&2; exit 98; }}\n",
                p = q(p)
            ));
        }
        let homes = ["/home", "/root", "/run/user"];
        match self.protect_home.as_str() {
            // ProtectSystem=strict has made them read-only already, unless ReadWritePaths
            // opened one.
            "no" | "read-only" => {}
            other => {
                // yes / tmpfs: an empty, read-only directory in their place.
                for h in homes {
                    if !self.writable(h) {
                        s.push_str(&format!(
                            "[ ! -d {h} ] || mount -t tmpfs -o ro,mode=0755 {other} {h}\n"
                        ));
                    }
                }
            }
        }
        let bounding: Vec<String> = self
            .caps
            .iter()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
            .collect();
        s.push_str(&format!(
            "exec setpriv --bounding-set=-all{}{} --inh-caps=-all --ambient-caps=-all {} -- \"$@\"\n",
            if bounding.is_empty() { "" } else { "," },
            bounding.join(","),
            if self.no_new_privs { "--no-new-privs" } else { "" }
        ));
        s
    }
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(name),
    )
    .unwrap()
}

/// The agent's unit as it was before it could write users' homes: only reading users' files,
/// and the homes read-only.
fn old_unit_text() -> String {
    let new = unit_text("clw-fortress.service");
    let old: String = new
        .lines()
        .map(|l| {
            if l.starts_with("CapabilityBoundingSet=") {
                "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYSLOG".to_string()
            } else if l.starts_with("ReadWritePaths=") {
                "ReadWritePaths=/var/lib/clw-fortress".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(old, new, "the unit no longer has the lines this test edits");
    old
}

/// The user the fortress protects, created once (idempotent; tests run as root). One thread
/// creates it while the others wait: a home made by a test before `useradd` finished would
/// leave `useradd` half done.
fn owner() -> (u32, u32, PathBuf) {
    static ONCE: std::sync::OnceLock<(u32, u32, PathBuf)> = std::sync::OnceLock::new();
    ONCE.get_or_init(create_owner).clone()
}

fn create_owner() -> (u32, u32, PathBuf) {
    system_user(OWNER, "these tests reproduce a root unit")
}

/// A user's OpenClaw-like home with a WAL database (the gateway stopped: no -wal or -shm
/// beside it), a secrets file, and a fortress for it whose manifest and state live where the
/// unit can write (`/var/lib/clw-fortress/<name>/`). Removed when dropped.
struct Scenario {
    _containers: LabelGuard,
    uid: u32,
    gid: u32,
    oc: PathBuf,
    secrets_dir: PathBuf,
    dest_root: PathBuf,
    work: PathBuf,
}

impl Scenario {
    fn new(prefix: &str) -> Scenario {
        let (uid, gid, home) = owner();
        let name = unique(&format!("clwt-{prefix}"));
        let own = |p: &Path, mode: u32| {
            chown(p, Some(uid), Some(gid)).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        own(&home, 0o700);
        let oc = home.join(format!(".openclaw-{name}"));
        for d in ["", "workspace", "state"] {
            std::fs::create_dir_all(oc.join(d)).unwrap();
            own(&oc.join(d), 0o700);
        }
        // The sandbox runs as the fixture image's own user (1000), not as the owner's uid (the
        // default): Podman bind-mounts a generated /etc/passwd and /etc/group into a container
        // whose uid the image does not know, which verify's fs.no-extra-mounts reports. Its
        // workspace is that user's, as on a host where the owner is 1000.
        chown(oc.join("workspace"), Some(SANDBOX_UID), Some(SANDBOX_UID)).unwrap();
        let db = oc.join("state/openclaw.sqlite");
        {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE memory (id INTEGER PRIMARY KEY, note TEXT);
                 INSERT INTO memory (note) VALUES ('remember the milk'), ('and the eggs');",
            )
            .unwrap();
        }
        assert!(
            !oc.join("state/openclaw.sqlite-shm").exists(),
            "the last connection's close removes -shm"
        );
        own(&db, 0o600);
        let config = home.join(".config");
        std::fs::create_dir_all(&config).unwrap();
        own(&config, 0o700);
        let secrets_dir = config.join(format!("secrets-{name}"));
        std::fs::create_dir_all(&secrets_dir).unwrap();
        own(&secrets_dir, 0o700);
        let secrets = secrets_dir.join("secrets.env");
        std::fs::write(&secrets, format!("ANTHROPIC_API_KEY=sk-unit-{name}\n")).unwrap();
        own(&secrets, 0o600);
        // Nothing of the destination exists yet: the first backup creates it.
        let dest_root = home.join(format!(".local-{name}"));

        let work = Path::new("/var/lib/clw-fortress").join(&name);
        std::fs::create_dir_all(&work).unwrap();
        std::fs::set_permissions(
            "/var/lib/clw-fortress",
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let manifest = format!(
            "apiVersion: clw-fortress/v1\nkind: Fortress\n\
             metadata: {{name: {name}, owner: {OWNER}}}\n\
             engine: {{socket: \"{socket}\"}}\n\
             state: {{path: {state}}}\n\
             secrets: {{file: ~/.config/secrets-{name}/secrets.env}}\n\
             defaults:\n  image: {FIXTURE_IMAGE}\n  user: \"{SANDBOX_UID}:{SANDBOX_UID}\"\n  \
             limits: {{memory: 64Mi, memorySwap: 64Mi, cpus: 0.5, pids: 64}}\n\
             sandboxes:\n  - name: {name}-main\n    secretEnv: [ANTHROPIC_API_KEY]\n    \
             command: [sleep, \"3600\"]\n    \
             binds:\n      - {{source: ~/.openclaw-{name}/workspace, target: /agent-workspace, mode: rw}}\n\
             backups:\n  - name: memory\n    \
             sources: [\"~/.openclaw-{name}/state/*.sqlite\"]\n    \
             dest: ~/.local-{name}/share/clw-fortress/backups\n    \
             keep: {{last: 3, daily: 1, weekly: 1}}\n",
            socket = engine_socket(),
            state = work.join("state.db").display(),
        );
        std::fs::write(work.join("fortress.yaml"), manifest).unwrap();
        Scenario {
            _containers: LabelGuard(name),
            uid,
            gid,
            oc,
            secrets_dir,
            dest_root,
            work,
        }
    }

    fn manifest(&self) -> PathBuf {
        self.work.join("fortress.yaml")
    }

    /// The binary as an operator runs it: root, full privileges, HOME unset.
    fn run(&self, args: &[&str]) -> Output {
        bin()
            .env_remove("HOME")
            .arg("-f")
            .arg(self.manifest())
            .args(args)
            .output()
            .unwrap()
    }

    /// The binary as the unit runs it.
    fn run_as_unit(&self, unit: &str, args: &[&str]) -> Output {
        let r = Restrictions::of_unit(unit);
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r.script())
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_clw-fortress"))
            .arg("-f")
            .arg(self.manifest())
            .args(args)
            .env_remove("HOME")
            .env("NO_COLOR", "1")
            .output()
            .expect("run unshare (util-linux)")
    }

    /// Every file and directory under `root` that does not belong to the owner.
    fn not_owned(&self, root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            if (m.uid(), m.gid()) != (self.uid, self.gid) {
                out.push(format!("{} ({}:{})", p.display(), m.uid(), m.gid()));
            }
            if m.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
        out
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for d in [&self.oc, &self.secrets_dir, &self.dest_root, &self.work] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn the_agent_enforces_backs_up_and_verifies_a_users_home_under_its_units_restrictions() {
    require_engine();
    let s = Scenario::new("unit");
    let applied = s.run(&["apply"]);
    assert_eq!(applied.status.code(), Some(0), "{}", describe(&applied));

    let unit = unit_text("clw-fortress.service");
    // The reproduction is in force: the sandboxed process cannot write outside its paths,
    // has only the unit's capabilities and no new privileges.
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(Restrictions::of_unit(&unit).script())
        .args([
            "sh",
            "sh",
            "-c",
            "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; touch /etc/clw-unit-probe",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(text.contains("NoNewPrivs:\t1"), "{}", describe(&probe));
    // DAC_OVERRIDE 1, DAC_READ_SEARCH 2, CHOWN 0, FOWNER 3, SYS_PTRACE 19 and SYS_ADMIN 21
    // (egress), SYSLOG 34.
    assert!(
        text.contains("CapBnd:\t000000040028000f"),
        "{}",
        describe(&probe)
    );
    assert!(
        String::from_utf8_lossy(&probe.stderr).contains("Read-only file system"),
        "{}",
        describe(&probe)
    );

    let enforce = s.run_as_unit(&unit, &["enforce"]);
    assert_eq!(enforce.status.code(), Some(0), "{}", describe(&enforce));

    let backup = s.run_as_unit(&unit, &["-o", "json", "backup", "run"]);
    assert_eq!(backup.status.code(), Some(0), "{}", describe(&backup));
    let report: serde_json::Value = serde_json::from_slice(&backup.stdout).unwrap();
    let snap = &report["snapshots"][0];
    assert_eq!(snap["status"], "ok", "{report:#}");
    let path = PathBuf::from(snap["path"].as_str().unwrap());
    assert!(path.starts_with(&s.dest_root), "{}", path.display());
    // Everything the backup created in the home is the owner's (the destination's parents,
    // the snapshot), and nothing the source's read left beside the database is root's.
    assert_eq!(s.not_owned(&s.dest_root), Vec::<String>::new());
    assert_eq!(s.not_owned(&s.oc.join("state")), Vec::<String>::new());
    let id = snap["id"].to_string();
    let checked = s.run_as_unit(&unit, &["backup", "verify", &id]);
    assert_eq!(checked.status.code(), Some(0), "{}", describe(&checked));

    let verify = s.run_as_unit(&unit, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));

    // The maintenance unit (timer mode) runs the same backup and verify.
    let maintenance = unit_text("clw-fortress-maintenance.service");
    let again = s.run_as_unit(&maintenance, &["backup", "run"]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    let verify = s.run_as_unit(&maintenance, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    assert_eq!(s.not_owned(&s.dest_root), Vec::<String>::new());
}

#[test]
fn the_old_restrictions_fail_the_backup_of_a_users_home() {
    require_engine();
    let s = Scenario::new("unitold");
    let old = old_unit_text();
    // Reading still works under the old lines: limits are enforced.
    let applied = s.run(&["apply"]);
    assert_eq!(applied.status.code(), Some(0), "{}", describe(&applied));
    let enforce = s.run_as_unit(&old, &["enforce"]);
    assert_eq!(enforce.status.code(), Some(0), "{}", describe(&enforce));

    let backup = s.run_as_unit(&old, &["backup", "run"]);
    assert_ne!(backup.status.code(), Some(0), "{}", describe(&backup));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&backup.stdout),
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(text.contains("clw-backup-failed"), "{}", describe(&backup));
    assert!(
        text.contains("Read-only file system") || text.contains("readonly database"),
        "{}",
        describe(&backup)
    );
    assert!(!s.dest_root.exists(), "nothing was written into the home");
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// `doctor` run as root from a shell holds every capability, so its own access checks pass
/// whatever the unit allows; `unit.access` re-runs them restricted like the unit and tells the
/// truth about it: it fails under the old lines and passes under the shipped ones.
#[test]
fn doctor_as_root_tells_what_the_agent_can_reach_under_its_unit() {
    require_engine();
    let s = Scenario::new("unitdoc");
    let units = tempfile::tempdir().unwrap();
    let old = units.path().join("old/clw-fortress.service");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, old_unit_text()).unwrap();
    let new = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/clw-fortress.service");

    let doctor = |unit: &Path| {
        let out = s.run(&["-o", "json", "doctor", "--unit", unit.to_str().unwrap()]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
        (out, report)
    };

    let (out, r) = doctor(&old);
    // Root in a shell may do all of it...
    for id in ["secrets.file", "backup.dest", "backup.sources"] {
        assert_eq!(check(&r, id)["outcome"], "pass", "{:#}", check(&r, id));
    }
    // ...the agent under the old unit may not: it cannot write the destination.
    let c = check(&r, "unit.access");
    assert_eq!(c["outcome"], "fail", "{c:#}");
    assert_eq!(c["code"], "clw-backup-failed", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(summary.contains("backup.dest"), "{c:#}");
    assert!(
        summary.contains("Read-only file system") || summary.contains("Permission denied"),
        "{c:#}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!s.dest_root.exists(), "doctor wrote nothing that stays");

    let (_, r) = doctor(&new);
    let c = check(&r, "unit.access");
    assert_eq!(c["outcome"], "pass", "{c:#}");
    assert!(
        c["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("PASS backup.sources")),
        "{c:#}"
    );
    assert!(!s.dest_root.exists(), "doctor wrote nothing that stays");
    // The database's companions, if any were left, are the owner's.
    assert_eq!(s.not_owned(&s.oc.join("state")), Vec::<String>::new());

    // The hidden restricted run on its own: the old unit fails the destination.
    let child = s.run_as_unit(&old_unit_text(), &["-o", "json", "doctor", "--access-only"]);
    assert_eq!(child.status.code(), Some(1), "{}", describe(&child));
    let r: serde_json::Value = serde_json::from_slice(&child.stdout).unwrap();
    assert_eq!(check(&r, "backup.dest")["outcome"], "fail", "{r:#}");
    assert_eq!(check(&r, "secrets.file")["outcome"], "pass", "{r:#}");
}

/// Removes a directory when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills and reaps a process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn poll_until<T>(what: &dyn Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "gave up waiting for {}",
            what()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Egress needs the agent to enter the sandbox's network namespace (setns, CAP_SYS_ADMIN): the
/// agent under the unit's capability bounding set, no-new-privileges and read-only system
/// still opens the listener, and the sandbox reaches its allowed host through it.
#[test]
fn the_agent_serves_a_sandboxs_egress_listener_under_its_units_restrictions() {
    require_engine();
    let unit = unit_text("clw-fortress.service");
    let mut guard = ContainerGuard::new();
    let upstream = guard.track(&unique("clwt-unit-up"));
    let body = unique("egress-under-unit");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &upstream,
        "--label",
        TEST_LABEL,
        FIXTURE_IMAGE,
        "sh",
        "-c",
        &format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"),
    ]);
    let ip = docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &upstream]);

    // The unit's PrivateTmp hides /tmp: manifest and state live where the unit may write.
    let name = unique("clwt-unit-eg");
    let dir = PathBuf::from("/var/lib/clw-fortress").join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = RemoveDir(dir.clone());
    let sandbox = guard.track(&format!("{name}-main"));
    let manifest = dir.join("fortress.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: clw-fortress/v1\nkind: Fortress\nmetadata: {{name: {name}}}\n\
             engine: {{socket: \"{socket}\"}}\nstate: {{path: {state}}}\n\
             defaults:\n  image: {FIXTURE_IMAGE}\n  limits: {{memory: 64Mi, cpus: 0.5, pids: 64}}\n\
             sandboxes:\n  - name: {sandbox}\n    command: [sleep, \"3600\"]\n    egress:\n      \
             allow: [\"allowed.test:8080\"]\n      hosts: {{allowed.test: {ip}}}\n",
            socket = engine_socket(),
            state = dir.join("state.db").display(),
        ),
    )
    .unwrap();
    let applied = bin()
        .arg("-f")
        .arg(&manifest)
        .arg("apply")
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", describe(&applied));

    let log = dir.join("agent.log");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(Restrictions::of_unit(&unit).script())
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_clw-fortress"))
        .arg("-f")
        .arg(&manifest)
        .args(["-v", "daemon"])
        .env_remove("HOME")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run unshare (util-linux)");
    let mut agent = KillOnDrop(child);
    let agent_log = || {
        format!(
            "the egress listener of the agent under the unit; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    poll_until(&agent_log, || {
        if let Ok(Some(status)) = agent.0.try_wait() {
            panic!(
                "the agent exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("egress proxy listening inside the sandbox")
            .then_some(())
    });
    let fetched = poll_until(&|| "the allowed host through the proxy".to_string(), || {
        let out = docker(&[
            "exec",
            &sandbox,
            "sh",
            "-c",
            "printf 'CONNECT allowed.test:8080 HTTP/1.1\\r\\nHost: allowed.test:8080\\r\\n\\r\\nGET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 3128",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains(&body).then_some(text)
    });
    assert!(fetched.contains(&body));
    drop(agent);
}
