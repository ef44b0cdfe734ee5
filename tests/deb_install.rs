//! The Debian package end to end on this machine: `scripts/deb.sh` packages the binary under
//! test, the package's contents and control data are checked, `dpkg -i` installs it, and an
//! admin's first steps work from outside the repository, as root with HOME unset (as the
//! system unit runs): set `metadata.owner` in the installed /etc/clw-fortress/fortress.yaml to
//! a real user with an OpenClaw home, then `validate` and `doctor` pass. `dpkg --purge` leaves
//! the machine as it was, also when an assertion fails (a guard).
//!
//! dpkg's database is global: everything is one test function, so the target never races
//! itself. It needs root (CI runs as root), dpkg, binutils (strip, objdump: the linker's
//! package), man-db and systemd-analyze (scripts/test.sh installs the last two); a missing one
//! fails the test, it never skips.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const PACKAGE: &str = "clw-fortress";
/// The user whose OpenClaw home the installed manifest protects in this test.
const OWNER: &str = "clw-deb-t";
/// What the shipped /etc/clw-fortress/fortress.yaml says until the admin sets the owner.
const PLACEHOLDER: &str = "owner: OPENCLAW_USER";
const CONFFILE: &str = "/etc/clw-fortress/fortress.yaml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    let out = run("dpkg-query", &["-W", "-f=${Status}", PACKAGE]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("installed")
}

/// Purges the package when dropped (after a failed assertion too); a purge of a package that is
/// not installed is a no-op for dpkg.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let out = run("dpkg", &["--purge", PACKAGE]);
        if !out.status.success() {
            eprintln!("cleanup: dpkg --purge {PACKAGE}: {}", describe(&out));
        }
    }
}

/// The installed binary as the system unit runs it: root, no HOME, from a directory that is
/// not the repository and holds no fortress.yaml.
fn installed_bin(cwd: &Path, args: &[&str]) -> Output {
    Command::new("/usr/bin/clw-fortress")
        .current_dir(cwd)
        .env_remove("HOME")
        .env_remove("CLW_FORTRESS_FILE")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run /usr/bin/clw-fortress")
}

fn own(path: &Path, uid: u32, gid: u32, mode: u32) {
    chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The test user (created once, idempotently) with a fresh OpenClaw home as `openclaw
/// onboard` and the user's own `clw-fortress openclaw harden` leave it: ~/.openclaw with its
/// workspace and config, the secrets moved to ~/.config/openclaw-secrets (0700/0600).
fn owner_with_openclaw_home() -> (u32, PathBuf) {
    if nix::unistd::User::from_name(OWNER).unwrap().is_none() {
        let out = run(
            "useradd",
            &["--create-home", "--user-group", "--shell", "/bin/sh", OWNER],
        );
        assert!(
            out.status.success() || nix::unistd::User::from_name(OWNER).unwrap().is_some(),
            "useradd: {}",
            describe(&out)
        );
    }
    let u = nix::unistd::User::from_name(OWNER).unwrap().unwrap();
    let (uid, gid, home) = (u.uid.as_raw(), u.gid.as_raw(), u.dir);
    let oc = home.join(".openclaw");
    let secrets_dir = home.join(".config/openclaw-secrets");
    for d in [&oc, &secrets_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
    for d in OPENCLAW_DIRS {
        std::fs::create_dir_all(oc.join(d)).unwrap();
        own(&oc.join(d), uid, gid, 0o700);
    }
    own(&oc, uid, gid, 0o700);
    std::fs::write(oc.join("openclaw.json"), "{}\n").unwrap();
    own(&oc.join("openclaw.json"), uid, gid, 0o600);
    std::fs::create_dir_all(&secrets_dir).unwrap();
    own(&home.join(".config"), uid, gid, 0o700);
    own(&secrets_dir, uid, gid, 0o700);
    let secrets = secrets_dir.join("secrets.env");
    std::fs::write(&secrets, "ANTHROPIC_API_KEY=sk-deb-install-test\n").unwrap();
    own(&secrets, uid, gid, 0o600);
    (uid, home)
}

/// The unit files of the repository in `dir` (`*.service`, `*.timer`), by name.
fn units_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut units: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service") || n.ends_with(".timer"))
        .collect();
    units.sort();
    units
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{} is not gzip text: {e}", path.display()));
    text
}

/// `systemd-analyze verify` of the installed units: success and not one diagnostic line (an
/// unknown key is only a warning to systemd, and would be ignored at run time).
fn verify_units(user: bool, paths: &[PathBuf]) {
    if paths.is_empty() {
        return;
    }
    let mut cmd = Command::new("systemd-analyze");
    // A user manager needs a runtime directory, which root outside a login session has not.
    let runtime = tempfile::tempdir().unwrap();
    if user {
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        cmd.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    let out = cmd
        .args(["verify", "--man=no"])
        .args(paths)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {paths:?}:\n{text}"
    );
}

#[test]
fn the_deb_installs_validates_a_users_openclaw_home_as_root_and_purges_clean() {
    assert!(
        nix::unistd::getuid().is_root(),
        "this test installs a Debian package with dpkg and creates a user: run it as root \
         (CI does); it does not skip"
    );
    require_engine();
    for tool in ["dpkg", "dpkg-deb", "strip", "objdump", "man"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is missing: scripts/test.sh installs what this test needs"
        );
    }
    // A leftover of an interrupted run (its guard never ran) is removed first; a config file
    // nobody's package owns is someone's, and is left alone.
    if installed() {
        eprintln!("purging a {PACKAGE} package left installed by an earlier run");
        ok("dpkg", &["--purge", PACKAGE]);
    }
    assert!(
        !Path::new(CONFFILE).exists(),
        "{CONFFILE} exists and belongs to no package: move it away before running this test"
    );

    // Build from the debug binary under test.
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("out");
    let build = Command::new(repo().join("scripts/deb.sh"))
        .current_dir(repo())
        .args(["--binary", env!("CARGO_BIN_EXE_clw-fortress"), "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "scripts/deb.sh: {}",
        describe(&build)
    );
    let deb = PathBuf::from(String::from_utf8_lossy(&build.stdout).trim());
    let arch = ok("dpkg", &["--print-architecture"]);
    assert_eq!(
        deb,
        out_dir.join(format!(
            "{PACKAGE}_{}_{}.deb",
            env!("CARGO_PKG_VERSION"),
            arch.trim()
        ))
    );
    let deb_s = deb.to_str().unwrap();

    // Control data.
    let field = |f: &str| ok("dpkg-deb", &["-f", deb_s, f]).trim().to_string();
    assert_eq!(field("Package"), PACKAGE);
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert!(
        field("Depends").starts_with("libc6 (>= 2."),
        "{}",
        field("Depends")
    );
    let control = work.path().join("control");
    ok("dpkg-deb", &["-e", deb_s, control.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        format!("{CONFFILE}\n")
    );
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(control.join(script)).unwrap();
        for verb in ["enable", "start", "restart"] {
            assert!(
                !text.contains(&format!("systemctl {verb}")),
                "{script} runs systemctl {verb}:\n{text}"
            );
        }
        assert!(
            !text.contains("systemctl daemon-reload") || text.contains("/run/systemd/system"),
            "{script} reloads systemd without checking that it runs:\n{text}"
        );
    }

    // Contents.
    let listing = ok("dpkg-deb", &["-c", deb_s]);
    let files: BTreeSet<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    let mut want: Vec<String> = [
        "/usr/bin/clw-fortress",
        CONFFILE,
        "/usr/share/clw-fortress/binds/openclaw.yaml",
        "/usr/share/clw-fortress/manifests/openclaw.yaml",
        "/usr/share/doc/clw-fortress/README.md",
        "/usr/share/doc/clw-fortress/copyright",
        "/usr/share/doc/clw-fortress/docs/reference/manifest.md",
        "/usr/share/doc/clw-fortress/docs/reference/cli.md",
        "/usr/share/bash-completion/completions/clw-fortress",
        "/usr/share/zsh/vendor-completions/_clw-fortress",
        "/usr/share/fish/vendor_completions.d/clw-fortress.fish",
        "/usr/share/man/man1/clw-fortress.1.gz",
        "/usr/share/man/man1/clw-fortress-apply.1.gz",
        "/usr/share/man/man1/clw-fortress-doctor.1.gz",
        "/usr/share/man/man1/clw-fortress-seccomp-generate.1.gz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let system_units = units_in(&repo().join("systemd"));
    let user_units = units_in(&repo().join("systemd/user"));
    assert!(system_units.contains(&"clw-fortress.service".to_string()));
    want.extend(
        system_units
            .iter()
            .map(|u| format!("/lib/systemd/system/{u}")),
    );
    want.extend(
        user_units
            .iter()
            .map(|u| format!("/usr/lib/systemd/user/{u}")),
    );
    for d in ["binds", "manifests"] {
        for e in std::fs::read_dir(repo().join(d)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            want.push(format!("/usr/share/clw-fortress/{d}/{name}"));
        }
    }
    let missing: Vec<&String> = want.iter().filter(|w| !files.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "missing from the package: {missing:?}\n{listing}"
    );
    assert!(
        !files.iter().any(|f| f.starts_with("/usr/local")),
        "the package installs under /usr/local:\n{listing}"
    );

    // Man pages and completions, from the package itself (a host may exclude /usr/share/man
    // from installation with a dpkg path-exclude).
    let extracted = work.path().join("extracted");
    ok("dpkg-deb", &["-x", deb_s, extracted.to_str().unwrap()]);
    let man1 = extracted.join("usr/share/man/man1");
    let pages: Vec<PathBuf> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(pages.len() >= 20, "{} man pages", pages.len());
    for page in &pages {
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".1.gz");
        assert!(name.ends_with(".1.gz"), "{name}");
        let text = gunzip(page);
        assert!(text.contains(&format!(".TH {stem} 1 ")), "{name}:\n{text}");
        // How lintian checks a page: rendered with warnings on, nothing may be said.
        let out = Command::new("man")
            .env("LC_ALL", "C.UTF-8")
            .env("MANROFFSEQ", "")
            .env("MANWIDTH", "80")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
            .arg(page)
            .output()
            .expect("man (Debian's man-db package; scripts/test.sh installs it)");
        assert!(
            out.status.success() && out.stderr.is_empty() && !out.stdout.is_empty(),
            "man -l {name}: {}",
            describe(&out)
        );
    }
    let bash_completion = extracted.join("usr/share/bash-completion/completions/clw-fortress");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p clw-fortress",
            bash_completion.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("clw-fortress"),
        "the bash completion does not register: {}",
        describe(&out)
    );
    for f in [
        "usr/share/zsh/vendor-completions/_clw-fortress",
        "usr/share/fish/vendor_completions.d/clw-fortress.fish",
    ] {
        let text = std::fs::read_to_string(extracted.join(f)).unwrap();
        assert!(text.contains("clw-fortress"), "{f} is empty or foreign");
    }

    // Install.
    let _purge = Purge;
    ok("dpkg", &["-i", deb_s]);
    assert!(installed());
    let cwd = tempfile::tempdir().unwrap();
    let version = installed_bin(cwd.path(), &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("clw-fortress {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(ok("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE]).contains(CONFFILE));

    // The installed units run the installed binary and pass systemd's own check.
    let unit_paths = |dir: &str, names: &[String]| -> Vec<PathBuf> {
        names.iter().map(|u| Path::new(dir).join(u)).collect()
    };
    let system = unit_paths("/lib/systemd/system", &system_units);
    let user = unit_paths("/usr/lib/systemd/user", &user_units);
    for p in system.iter().chain(&user) {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(!text.contains("/usr/local/bin"), "{}:\n{text}", p.display());
        for exec in text.lines().filter(|l| l.starts_with("ExecStart=")) {
            assert!(
                exec.starts_with("ExecStart=/usr/bin/clw-fortress "),
                "{}: {exec}",
                p.display()
            );
        }
    }
    verify_units(false, &system);
    verify_units(true, &user);

    // The shipped default names no owner yet: refused, with the field to set first.
    let placeholder = installed_bin(cwd.path(), &["validate"]);
    assert_eq!(
        placeholder.status.code(),
        Some(2),
        "{}",
        describe(&placeholder)
    );
    let said = String::from_utf8_lossy(&placeholder.stderr);
    assert!(
        said.contains("metadata.owner") && said.contains("OPENCLAW_USER"),
        "{}",
        describe(&placeholder)
    );

    // The admin sets the owner, as the comment at the top of the file says.
    let (uid, home) = owner_with_openclaw_home();
    let text = std::fs::read_to_string(CONFFILE).unwrap();
    assert_eq!(text.matches(PLACEHOLDER).count(), 1, "{text}");
    assert!(!text.contains("/root"), "{text}");
    std::fs::write(
        CONFFILE,
        text.replace(PLACEHOLDER, &format!("owner: {OWNER}")),
    )
    .unwrap();

    // validate: with -f, and by the default path (no fortress.yaml in the working directory).
    for args in [
        &["-o", "json", "-f", CONFFILE, "validate"][..],
        &["-o", "json", "validate"][..],
    ] {
        let out = installed_bin(cwd.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["file"], CONFFILE);
        assert_eq!(v["owner"]["name"], OWNER);
        assert_eq!(v["owner"]["uid"], uid);
        assert_eq!(v["owner"]["home"], home.display().to_string());
    }

    // doctor: the engine (this run's, from DOCKER_HOST), the owner's secrets and backup
    // destination, the manifest; no check fails. Units are skipped without a running systemd
    // and, with one, installed-but-not-enabled is a warning, not a failure.
    let doctor = installed_bin(cwd.path(), &["-f", CONFFILE, "doctor", "--fix-hints"]);
    let report = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert_eq!(doctor.status.code(), Some(0), "{}", describe(&doctor));
    let outcome = |id: &str| {
        report
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                let label = words.next()?;
                (words.next()? == id).then(|| label.to_string())
            })
            .unwrap_or_else(|| panic!("doctor reports no {id}:\n{report}"))
    };
    for id in [
        "manifest.valid",
        "engine.reachable",
        "secrets.file",
        "backup.dest",
    ] {
        assert_eq!(outcome(id), "PASS", "{id}:\n{report}");
    }
    assert_ne!(outcome("systemd.units"), "FAIL", "{report}");
    // As root, doctor also ran its access checks restricted like the installed units (which
    // load this manifest): the agent can read the owner's secrets and write the backups there.
    assert_eq!(outcome("unit.access"), "PASS", "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("doctor: ") && l.contains(" 0 failed")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{}/.config/openclaw-secrets/secrets.env",
            home.display()
        )),
        "doctor checked another secrets file:\n{report}"
    );

    // Removal keeps the admin's configuration; purge removes it and everything else.
    ok("dpkg", &["-r", PACKAGE]);
    assert!(!Path::new("/usr/bin/clw-fortress").exists());
    assert!(
        std::fs::read_to_string(CONFFILE)
            .unwrap()
            .contains(&format!("owner: {OWNER}")),
        "dpkg -r lost the edited configuration"
    );
    ok("dpkg", &["--purge", PACKAGE]);
    assert!(!installed());
    for gone in [
        "/etc/clw-fortress",
        "/usr/share/clw-fortress",
        "/usr/share/doc/clw-fortress",
        "/lib/systemd/system/clw-fortress.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} survived the purge");
    }
    let _ = std::fs::remove_dir_all(home.join(".openclaw"));
    let _ = std::fs::remove_dir_all(home.join(".config/openclaw-secrets"));
}
