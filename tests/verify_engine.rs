//! `verify` against a real engine: a sandbox applied from the default fixture passes every
//! probe, and each deliberately weakened sandbox fails exactly the probes that must catch it,
//! without a secret value appearing in any output, report file or the state database.
//!
//! Weakened sandboxes that the manifest cannot express (validation forbids them) are started
//! with `docker run` as copies of the applied container, carrying the fortress's labels and
//! the declared sandbox name, so `verify` examines them as that sandbox.

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use common::*;

fn apply_ok(fx: &Fixture) {
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply failed: {}", describe(&out));
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// Runs `verify --format json`, also a text run writing its report with `--out`, asserts no
/// secret value leaked anywhere, and returns the JSON results.
fn verify(fx: &Fixture, extra: &[&str]) -> (Output, Vec<serde_json::Value>) {
    let mut args = vec!["verify", "--format", "json"];
    args.extend_from_slice(extra);
    let out = fx.run(&args);
    let report = fx.dir().join("report.txt");
    let mut text_args = vec!["verify", "--out", report.to_str().unwrap()];
    text_args.extend_from_slice(extra);
    let text = fx.run(&text_args);
    assert_eq!(
        text.status.code(),
        out.status.code(),
        "text and json runs agree: {}",
        describe(&text)
    );
    let written = std::fs::read(&report).expect("--out wrote the report");
    assert!(String::from_utf8_lossy(&text.stdout).contains("report written to"));
    let mut db = Vec::new();
    for suffix in ["", "-wal"] {
        let p = format!("{}{suffix}", fx.state_path().display());
        if let Ok(b) = std::fs::read(&p) {
            db.extend(b);
        }
    }
    assert!(!db.is_empty(), "the run was recorded in the state database");
    for (key, value) in fx.secrets() {
        for (what, bytes) in [
            ("json stdout", &out.stdout),
            ("json stderr", &out.stderr),
            ("text stdout", &text.stdout),
            ("text stderr", &text.stderr),
            ("--out file", &written),
            ("state database", &db),
        ] {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "the value of {key} leaked into the {what}"
            );
        }
    }
    let v = json(&out);
    assert_eq!(v["version"], 1, "the JSON report is versioned: {v}");
    if let Some(code) = v["summary"]["code"].as_str() {
        assert!(
            String::from_utf8_lossy(&text.stderr).contains(&format!("error[{code}]")),
            "{}",
            describe(&text)
        );
    }
    assert_eq!(v["fortress"], fx.name());
    let results = v["results"]
        .as_array()
        .expect("an array of results")
        .clone();
    let summary = &v["summary"];
    for (key, want) in
        ["pass", "fail", "inconclusive"]
            .iter()
            .zip(["passed", "failed", "inconclusive"])
    {
        assert_eq!(summary[want], outcomes_count(&results, key), "{summary}");
    }
    assert_eq!(summary["probes"], results.len());
    let verdict = if out.status.code() == Some(0) {
        "pass"
    } else {
        "fail"
    };
    assert_eq!(summary["verdict"], verdict, "{summary}");
    (out, results)
}

fn outcomes_count(results: &[serde_json::Value], want: &str) -> usize {
    results.iter().filter(|r| r["outcome"] == want).count()
}

fn outcomes(results: &[serde_json::Value], want: &str) -> BTreeSet<String> {
    results
        .iter()
        .filter(|r| r["outcome"] == want)
        .map(|r| r["probe"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

const ALL_PROBES: [&str; 31] = [
    "secrets.file-absent",
    "secrets.deny-absent",
    "secrets.env-clean",
    "secrets.content-scan",
    "fs.ro-binds",
    "fs.rw-binds",
    "fs.root-readonly",
    "fs.no-extra-mounts",
    "fs.masked-paths",
    "engine.no-socket",
    "proc.caps-empty",
    "proc.no-new-privs",
    "proc.seccomp-filter",
    "proc.non-root",
    "proc.pid-namespace",
    "seccomp.denied",
    "limits.memory",
    "limits.pids",
    "limits.cpu",
    "net.none",
    "config.not-privileged",
    "config.namespaces",
    "config.seccomp-confined",
    "config.apparmor",
    "config.no-sensitive-mounts",
    "config.limits-set",
    "config.readonly-root",
    "config.no-new-privileges",
    "config.caps",
    "config.no-devices",
    "config.propagation",
];

#[test]
fn a_sandbox_applied_from_the_default_fixture_passes_every_probe() {
    require_engine();
    let fx = Fixture::new("vgood");
    apply_ok(&fx);
    let (out, results) = verify(&fx, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["probe"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ALL_PROBES);
    for r in &results {
        assert_eq!(r["sandbox"], fx.sandbox().as_str());
        assert_eq!(r["outcome"], "pass", "{r}");
        assert!(!r["detail"].as_str().unwrap().is_empty(), "{r}");
    }
    // Probe files were removed again.
    let left: Vec<_> = std::fs::read_dir(fx.openclaw_dir().join("workspace"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The applied container as `docker run` argument groups, so a test can weaken one.
fn run_args(fx: &Fixture) -> Vec<Vec<String>> {
    let c = inspect(&fx.sandbox());
    let hc = &c["HostConfig"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut g: Vec<Vec<String>> = Vec::new();
    for (k, v) in c["Config"]["Labels"].as_object().unwrap() {
        g.push(vec!["--label".into(), format!("{k}={}", s(v))]);
    }
    g.push(vec!["--user".into(), s(&c["Config"]["User"])]);
    if hc["ReadonlyRootfs"] == true {
        g.push(vec!["--read-only".into()]);
    }
    for cap in hc["CapDrop"].as_array().into_iter().flatten() {
        g.push(vec!["--cap-drop".into(), s(cap)]);
    }
    for opt in hc["SecurityOpt"].as_array().unwrap() {
        let opt = s(opt);
        if let Some(value) = opt.strip_prefix("seccomp=") {
            // Docker holds the profile inline; Podman holds the path of the file the product
            // wrote (its compat API reads `seccomp=` as a path). Either way the copy gets the
            // same profile from a file of its own.
            let profile = match engine_flavor() {
                Flavor::Docker => value.to_string(),
                Flavor::Podman => std::fs::read_to_string(value)
                    .unwrap_or_else(|e| panic!("read the seccomp profile at {value}: {e}")),
            };
            let path = fx.dir().join("seccomp.json");
            std::fs::write(&path, profile).unwrap();
            g.push(vec![
                "--security-opt".into(),
                format!("seccomp={}", path.display()),
            ]);
        } else {
            g.push(vec!["--security-opt".into(), opt]);
        }
    }
    g.push(vec!["--network".into(), s(&hc["NetworkMode"])]);
    g.push(vec!["--memory".into(), hc["Memory"].to_string()]);
    g.push(vec!["--memory-swap".into(), hc["MemorySwap"].to_string()]);
    g.push(vec![
        "--cpus".into(),
        (hc["NanoCpus"].as_i64().unwrap() as f64 / 1e9).to_string(),
    ]);
    g.push(vec!["--pids-limit".into(), hc["PidsLimit"].to_string()]);
    for (mount, opts) in hc["Tmpfs"].as_object().unwrap() {
        g.push(vec!["--tmpfs".into(), format!("{mount}:{}", s(opts))]);
    }
    for m in c["Mounts"].as_array().unwrap() {
        let ro = if m["RW"] == false { ",readonly" } else { "" };
        g.push(vec![
            "--mount".into(),
            format!(
                "type=bind,src={},dst={},bind-propagation=rprivate{ro}",
                s(&m["Source"]),
                s(&m["Destination"])
            ),
        ]);
    }
    for e in c["Config"]["Env"].as_array().unwrap() {
        g.push(vec!["--env".into(), s(e)]);
    }
    g
}

/// Replaces the applied sandbox with a copy started by `docker run` from `groups`.
fn start_copy(fx: &Fixture, groups: Vec<Vec<String>>) {
    let c = inspect(&fx.sandbox());
    let image = c["Config"]["Image"].as_str().unwrap().to_string();
    let cmd: Vec<String> = serde_json::from_value(c["Config"]["Cmd"].clone()).unwrap();
    docker_ok(&["rm", "-f", &fx.sandbox()]);
    let name = fx.sandbox();
    let mut args: Vec<String> = vec!["-d".into(), "--name".into(), name];
    args.extend(groups.into_iter().flatten());
    args.push(image);
    args.extend(cmd);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&args);
}

/// Applies the fixture, replaces the sandbox with a weakened copy, verifies, and asserts
/// exactly `want` failed (and nothing was inconclusive).
fn weakened(
    prefix: &str,
    weaken: impl FnOnce(&Fixture, Vec<Vec<String>>) -> Vec<Vec<String>>,
    want: &[&str],
) {
    require_engine();
    let fx = Fixture::new(prefix);
    apply_ok(&fx);
    let groups = weaken(&fx, run_args(&fx));
    start_copy(&fx, groups);
    assert_failures(&fx, want);
}

fn assert_failures(fx: &Fixture, want: &[&str]) -> Vec<serde_json::Value> {
    let (out, results) = verify(fx, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(outcomes(&results, "fail"), set(want), "{results:#?}");
    assert_eq!(outcomes(&results, "inconclusive"), set(&[]), "{results:#?}");
    // The JSON report on standard output is the one document there, and names the code;
    // the text run prints the error on standard error.
    assert_eq!(
        json(&out)["summary"]["code"],
        "clw-isolation-breach",
        "{}",
        describe(&out)
    );
    results
}

fn detail_of(results: &[serde_json::Value], probe: &str) -> String {
    results
        .iter()
        .find(|r| r["probe"] == probe)
        .unwrap_or_else(|| panic!("no {probe} in {results:#?}"))["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

fn without(groups: Vec<Vec<String>>, drop: impl Fn(&[String]) -> bool) -> Vec<Vec<String>> {
    groups.into_iter().filter(|g| !drop(g)).collect()
}

fn flag(g: &[String], name: &str, value_has: &str) -> bool {
    g[0] == name && g.get(1).is_some_and(|v| v.contains(value_has))
}

#[test]
fn a_parent_bind_exposing_the_secrets_file_is_caught() {
    weakened(
        "vparent",
        |fx, mut g| {
            g.push(vec![
                "--mount".into(),
                format!(
                    "type=bind,src={},dst=/agent-config,readonly",
                    fx.home().join(".config").display()
                ),
            ]);
            g
        },
        &[
            "secrets.file-absent",
            "secrets.content-scan",
            "fs.no-extra-mounts",
            "config.no-sensitive-mounts",
        ],
    );
}

#[test]
fn a_hard_link_to_the_secrets_file_inside_a_rw_bind_is_caught() {
    require_engine();
    let fx = Fixture::new("vlink");
    apply_ok(&fx);
    std::fs::hard_link(
        fx.secrets_file(),
        fx.openclaw_dir().join("workspace/notes.txt"),
    )
    .unwrap();
    assert_failures(&fx, &["secrets.content-scan"]);
    let (_, results) = verify(&fx, &[]);
    let detail = results
        .iter()
        .find(|r| r["probe"] == "secrets.content-scan")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("ANTHROPIC_API_KEY"), "{detail}");
    assert!(detail.contains("/agent-workspace/notes.txt"), "{detail}");
}

#[test]
fn a_secret_copied_into_a_workspace_file_is_caught() {
    require_engine();
    let fx = Fixture::new("vcopy");
    apply_ok(&fx);
    let f = fx.openclaw_dir().join("workspace/debug.log");
    std::fs::write(&f, format!("token={}\n", fx.secret_value("BOT_TOKEN"))).unwrap();
    std::os::unix::fs::chown(&f, Some(SANDBOX_UID), Some(SANDBOX_UID)).unwrap();
    assert_failures(&fx, &["secrets.content-scan"]);
}

#[test]
fn a_secret_in_a_tmpfs_file_is_caught() {
    require_engine();
    let fx = Fixture::new("vtmpfs");
    apply_ok(&fx);
    let value = fx.secret_value("BOT_TOKEN");
    // Written from inside through stdin: the value never appears in a command line.
    let mut child = std::process::Command::new("docker")
        .args(["exec", "-i", &fx.sandbox(), "sh", "-c", "cat > /tmp/.cache"])
        .env("DOCKER_HOST", engine_socket())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_failures(&fx, &["secrets.content-scan"]);
}

/// Writes a file into the sandbox's workspace bind from the host, owned by the sandbox user.
fn workspace_file(fx: &Fixture, name: &str, bytes: &[u8]) {
    let f = fx.openclaw_dir().join("workspace").join(name);
    std::fs::write(&f, bytes).unwrap();
    std::os::unix::fs::chown(&f, Some(SANDBOX_UID), Some(SANDBOX_UID)).unwrap();
}

/// Writes a file inside the sandbox from stdin of an exec: neither the bytes nor a value
/// appear in a command line.
fn file_inside(fx: &Fixture, path: &str, bytes: &[u8]) {
    let mut child = std::process::Command::new("docker")
        .args([
            "exec",
            "-i",
            &fx.sandbox(),
            "sh",
            "-c",
            &format!("cat > {path}"),
        ])
        .env("DOCKER_HOST", engine_socket())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A log of repeated lines with `value` on one of them: compressible, so deflate codes the
/// value's bytes instead of storing them verbatim (a tiny input would be stored as it is,
/// and found raw even by a scan that opens nothing).
fn log_with(value: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..200 {
        text.extend_from_slice(format!("INFO request {i} ok\n").as_bytes());
        if i == 100 {
            text.extend_from_slice(b"DEBUG token=");
            text.extend_from_slice(value);
            text.push(b'\n');
        }
    }
    text
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Applies the fixture, lets `plant` leak the value of `key` (it gets the value), and asserts
/// that exactly `secrets.content-scan` fails, naming the key and `how` (the encoding and the
/// place), with the value in no output (`verify` checks that).
fn leak_is_caught(prefix: &str, key: &str, how: &str, plant: impl FnOnce(&Fixture, &[u8])) {
    require_engine();
    let fx = Fixture::new(prefix);
    apply_ok(&fx);
    plant(&fx, fx.secret_value(key).as_bytes());
    let results = assert_failures(&fx, &["secrets.content-scan"]);
    let detail = detail_of(&results, "secrets.content-scan");
    assert!(detail.contains(&format!("{key}: {how}")), "{detail}");
}

#[test]
fn a_base64_encoded_secret_is_caught() {
    use base64::Engine as _;
    leak_is_caught(
        "vb64",
        "BOT_TOKEN",
        "base64 in /agent-workspace/config.b64",
        |fx, v| {
            let text = format!(
                "blob: {}\n",
                base64::engine::general_purpose::STANDARD.encode(v)
            );
            workspace_file(fx, "config.b64", text.as_bytes());
        },
    );
}

#[test]
fn a_hex_encoded_secret_is_caught() {
    leak_is_caught(
        "vhex",
        "ANTHROPIC_API_KEY",
        "hex in /agent-workspace/dump.hex",
        |fx, v| workspace_file(fx, "dump.hex", hex::encode_upper(v).as_bytes()),
    );
}

#[test]
fn a_url_encoded_secret_is_caught() {
    leak_is_caught(
        "vurl",
        "BOT_TOKEN",
        "url-encoded in /agent-workspace/request.log",
        |fx, v| {
            let escaped: String = v.iter().map(|b| format!("%{b:02X}")).collect();
            let line = format!("GET /hook?token={escaped} HTTP/1.1\n");
            workspace_file(fx, "request.log", line.as_bytes());
        },
    );
}

#[test]
fn a_utf16_encoded_secret_is_caught() {
    leak_is_caught(
        "vutf16",
        "ANTHROPIC_API_KEY",
        "UTF-16LE in /agent-workspace/notes.txt",
        |fx, v| {
            let text = String::from_utf8(v.to_vec()).unwrap();
            let wide: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            workspace_file(fx, "notes.txt", &wide);
        },
    );
}

#[test]
fn a_secret_split_over_two_lines_is_caught() {
    leak_is_caught(
        "vsplit",
        "BOT_TOKEN",
        "split over lines in /agent-workspace/wrapped.txt",
        |fx, v| {
            let (a, b) = v.split_at(v.len() / 2);
            let mut text = b"token = ".to_vec();
            text.extend_from_slice(a);
            text.extend_from_slice(b"\r\n");
            text.extend_from_slice(b);
            workspace_file(fx, "wrapped.txt", &text);
        },
    );
}

#[test]
fn a_secret_in_a_gzip_file_is_caught() {
    leak_is_caught(
        "vgzip",
        "ANTHROPIC_API_KEY",
        "inside gzip /agent-workspace/session.log.gz",
        |fx, v| workspace_file(fx, "session.log.gz", &gzip(&log_with(v))),
    );
}

#[test]
fn a_secret_in_a_tar_gz_is_caught() {
    leak_is_caught(
        "vtgz",
        "BOT_TOKEN",
        "notes.txt inside tar inside gzip /agent-workspace/backup.tar.gz",
        |fx, v| {
            let notes = log_with(v);
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(notes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "notes.txt", &notes[..]).unwrap();
            workspace_file(fx, "backup.tar.gz", &gzip(&b.into_inner().unwrap()));
        },
    );
}

#[test]
fn a_secret_in_a_zip_in_a_tmpfs_is_caught() {
    leak_is_caught(
        "vzip",
        "ANTHROPIC_API_KEY",
        "doc.txt inside zip /tmp/export.zip",
        |fx, v| {
            use std::io::Write;
            let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            z.start_file("doc.txt", opts).unwrap();
            z.write_all(&log_with(v)).unwrap();
            file_inside(fx, "/tmp/export.zip", &z.finish().unwrap().into_inner());
        },
    );
}

#[test]
fn a_secret_used_as_a_file_name_is_caught_and_not_shown() {
    leak_is_caught(
        "vname",
        "BOT_TOKEN",
        "the file name /agent-workspace/[name withheld: holds a secret]",
        |fx, v| workspace_file(fx, std::str::from_utf8(v).unwrap(), b"innocent content"),
    );
}

#[test]
fn a_secret_passed_in_the_container_env_is_caught() {
    weakened(
        "venv",
        |fx, mut g| {
            g.push(vec![
                "--env".into(),
                format!("ANTHROPIC_API_KEY={}", fx.secret_value("ANTHROPIC_API_KEY")),
            ]);
            g
        },
        &["secrets.env-clean"],
    );
}

#[test]
fn the_engine_socket_bound_in_is_caught() {
    weakened(
        "vsock",
        |_, mut g| {
            g.push(vec![
                "--mount".into(),
                "type=bind,src=/var/run/docker.sock,dst=/run/docker.sock".into(),
            ]);
            g
        },
        &[
            "engine.no-socket",
            "fs.no-extra-mounts",
            "config.no-sensitive-mounts",
        ],
    );
}

#[test]
fn an_added_sys_admin_capability_is_caught() {
    weakened(
        "vcap",
        |_, mut g| {
            g.push(vec!["--cap-add".into(), "SYS_ADMIN".into()]);
            g
        },
        &["proc.caps-empty", "config.caps"],
    );
}

#[test]
fn seccomp_unconfined_is_caught() {
    weakened(
        "vseccomp",
        |_, g| {
            let mut g = without(g, |g| flag(g, "--security-opt", "seccomp="));
            g.push(vec!["--security-opt".into(), "seccomp=unconfined".into()]);
            g
        },
        &[
            "proc.seccomp-filter",
            "seccomp.denied",
            "config.seccomp-confined",
        ],
    );
}

#[test]
fn no_new_privileges_off_is_caught() {
    weakened(
        "vnnp",
        |_, g| without(g, |g| flag(g, "--security-opt", "no-new-privileges")),
        &["proc.no-new-privs", "config.no-new-privileges"],
    );
}

#[test]
fn a_writable_ro_declared_path_is_caught() {
    weakened(
        "vrw",
        |_, g| {
            g.into_iter()
                .map(|mut g| {
                    if flag(&g, "--mount", "/logs") {
                        g[1] = g[1].replace(",readonly", "");
                    }
                    g
                })
                .collect()
        },
        &["fs.ro-binds"],
    );
}

#[test]
fn no_pids_limit_is_caught() {
    weakened(
        "vpids",
        |_, g| {
            let mut g = without(g, |g| g[0] == "--pids-limit");
            // Podman applies containers.conf's default (`pids_limit = 2048`) when none is
            // given, so there "no limit" must be asked for; Docker leaves it unlimited.
            if engine_flavor() == Flavor::Podman {
                g.push(vec!["--pids-limit".into(), "-1".into()]);
            }
            g
        },
        &["limits.pids", "config.limits-set"],
    );
}

#[test]
fn host_network_is_caught() {
    weakened(
        "vnet",
        |_, g| {
            let mut g = without(g, |g| g[0] == "--network");
            g.push(vec!["--network".into(), "host".into()]);
            g
        },
        &["net.none", "config.namespaces"],
    );
}

#[test]
fn junit_output_is_valid_xml_with_one_suite_per_sandbox() {
    require_engine();
    let fx = Fixture::new("vjunit");
    apply_ok(&fx);
    // One failing probe: no pids limit in the live container.
    loosen_pids_limit(&fx.sandbox(), -1);
    let out = fx.run(&["verify", "--format", "junit"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.attribute("name"), Some(fx.sandbox().as_str()));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), ALL_PROBES.len());
    assert_eq!(suite.attribute("tests"), Some("31"));
    let failed: BTreeSet<String> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap().to_string())
        .collect();
    assert_eq!(failed, set(&["limits.pids", "config.limits-set"]));
    assert_eq!(suite.attribute("failures"), Some("2"));
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0_with_a_result_per_failed_probe() {
    require_engine();
    let fx = Fixture::new("vsarif");
    apply_ok(&fx);
    // One weakness: no pids limit in the live container.
    loosen_pids_limit(&fx.sandbox(), -1);
    let path = fx.dir().join("verify.sarif");
    let out = fx.run(&[
        "verify",
        "--format",
        "sarif",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = std::fs::read_to_string(&path).expect("--out wrote the SARIF log");
    let log: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // The SARIF 2.1.0 schema, vendored (see tests/fixtures/README.md).
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sarif-schema-2.1.0.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{text}");

    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "clw-fortress");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ALL_PROBES, "one rule per probe, in report order");
    for r in rules {
        assert!(
            r["help"]["text"]
                .as_str()
                .unwrap()
                .starts_with("Passes when"),
            "{r}"
        );
    }
    let limits = rules
        .iter()
        .find(|r| r["id"] == "config.limits-set")
        .unwrap();
    assert_eq!(
        limits["properties"]["cis"],
        serde_json::json!(["5.11", "5.12", "5.29"])
    );
    assert!(limits["properties"]["tags"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("CIS-Docker-Benchmark-5.29")));
    let results = run["results"].as_array().unwrap();
    let failed: BTreeSet<String> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed, set(&["limits.pids", "config.limits-set"]));
    for r in results {
        assert_eq!(r["level"], "error");
        let rule = &rules[r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], r["ruleId"]);
        let logical = &r["locations"][0]["logicalLocations"][0];
        assert_eq!(logical["name"], fx.sandbox().as_str());
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            format!("file://{}", fx.manifest_path().display())
        );
    }
    for (key, value) in fx.secrets() {
        assert!(
            !text.contains(value.as_str()),
            "the value of {key} is in the SARIF log"
        );
    }
}

#[test]
fn an_unknown_sandbox_is_invalid_input() {
    require_engine();
    let fx = Fixture::new("vunknown");
    let out = fx.run(&["verify", "--sandbox", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[clw-config-invalid]"));
}

#[test]
fn adopted_containers_are_verified_by_container_name_without_bind_probes() {
    require_engine();
    let fx = Fixture::new("vadopt");
    let label = format!("clw-test-adopt={}", fx.name());
    let yaml = fx.default_manifest().replace(
        "sandboxes:",
        &format!(
            "adopt:\n  - selector: {{label: {label}}}\n    limits: {{memory: 32Mi, cpus: 0.5, pids: 32}}\nsandboxes:"
        ),
    );
    fx.write_manifest(&yaml);
    apply_ok(&fx);
    let mut guard = ContainerGuard::new();
    let name = guard.track(&unique("vadopted"));
    // The adopted baseline is the default policy. Docker's default profile denies its sampled
    // syscalls; Podman's (containers/common's seccomp.json) allows `unshare`, measured on
    // 4.3.1, so there the container gets the fortress's own profile, read from the sandbox.
    let seccomp = match engine_flavor() {
        Flavor::Docker => None,
        Flavor::Podman => inspect(&fx.sandbox())["HostConfig"]["SecurityOpt"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.as_str()?.strip_prefix("seccomp="))
            .map(|p| format!("seccomp={p}"))
            .next(),
    };
    let mut args = vec![
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        "--label",
        TEST_LABEL,
        "--user",
        "1000:1000",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "none",
        "--memory",
        "32m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "32",
        // Somewhere writable and executable for the syscall probe: without one (Docker mounts
        // tmpfs `noexec` unless told otherwise) `seccomp.denied` is inconclusive.
        "--tmpfs",
        "/tmp:rw,exec,nosuid,nodev,size=16m,mode=1777",
    ];
    if let Some(opt) = &seccomp {
        args.extend(["--security-opt", opt.as_str()]);
    }
    args.extend([FIXTURE_IMAGE, "sleep", "3600"]);
    run_ok(&args);
    let (out, results) = verify(&fx, &["--adopted"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let adopted: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r["sandbox"] == name.as_str())
        .collect();
    let ids: BTreeSet<String> = adopted
        .iter()
        .map(|r| r["probe"].as_str().unwrap().to_string())
        .collect();
    let mut want = set(&ALL_PROBES);
    for p in ["fs.ro-binds", "fs.rw-binds", "fs.no-extra-mounts"] {
        want.remove(p);
    }
    assert_eq!(ids, want);
    assert!(results
        .iter()
        .any(|r| r["sandbox"] == fx.sandbox().as_str()));
}

#[test]
fn a_content_scan_cut_by_its_byte_bound_is_inconclusive_and_names_the_bound() {
    require_engine();
    let fx = Fixture::new("vbound");
    apply_ok(&fx);
    let (out, results) = verify(&fx, &["--scan-max-bytes", "100Ki"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let scan = results
        .iter()
        .find(|r| r["probe"] == "secrets.content-scan")
        .unwrap();
    assert_eq!(scan["outcome"], "inconclusive", "{scan}");
    assert!(
        scan["detail"]
            .as_str()
            .unwrap()
            .contains("102400 byte bound"),
        "{scan}"
    );
    assert_eq!(outcomes(&results, "fail"), set(&[]));
    // Accepted when inconclusive is allowed.
    let ok = fx.run(&[
        "verify",
        "--scan-max-bytes",
        "100Ki",
        "--allow-inconclusive",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", describe(&ok));
}

/// Runs `f` until it returns `Some`, for at most 20 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The pids of processes in the sandbox whose environ holds a variable named `key`, found
/// by name (no value on any command line).
fn pids_with_env(fx: &Fixture, key: &str) -> Vec<String> {
    let script = format!(
        "for d in /proc/[0-9]*; do grep -qs '{key}=' $d/environ && echo ${{d#/proc/}}; done; true"
    );
    docker_ok(&["exec", &fx.sandbox(), "sh", "-c", &script])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn exec_ends_what_its_command_left_running_so_no_process_keeps_the_secret() {
    require_engine();
    let fx = Fixture::new("vexecbg");
    apply_ok(&fx);
    let out = fx.run(&["exec", &fx.sandbox(), "--", "sh", "-c", "sleep 300 &"]);
    assert!(out.status.success(), "{}", describe(&out));
    // The background `sleep` inherited ANTHROPIC_API_KEY; the exec ended it on its way out.
    assert_eq!(
        pids_with_env(&fx, "ANTHROPIC_API_KEY"),
        Vec::<String>::new()
    );
    let (out, results) = verify(&fx, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(detail_of(&results, "secrets.env-clean").contains("environ and argv"));
}

#[test]
fn a_secret_in_the_environment_of_a_process_started_behind_the_fortress_is_caught() {
    require_engine();
    let fx = Fixture::new("vprocenv");
    apply_ok(&fx);
    // Under another name, through the engine directly: no `clw-fortress exec` to clean up.
    let env_file = fx.dir().join("copy.env");
    std::fs::write(
        &env_file,
        format!("COPY={}\n", fx.secret_value("ANTHROPIC_API_KEY")),
    )
    .unwrap();
    docker_ok(&[
        "exec",
        "-d",
        "--env-file",
        env_file.to_str().unwrap(),
        &fx.sandbox(),
        "sleep",
        "300",
    ]);
    let pid = eventually("the process with COPY", || {
        pids_with_env(&fx, "COPY").into_iter().next()
    });
    let results = assert_failures(&fx, &["secrets.env-clean"]);
    let detail = detail_of(&results, "secrets.env-clean");
    assert!(
        detail.contains(&format!("ANTHROPIC_API_KEY: the environ of pid {pid}")),
        "{detail}"
    );
}

#[test]
fn a_secret_in_the_arguments_of_a_process_is_caught() {
    require_engine();
    let fx = Fixture::new("vargv");
    apply_ok(&fx);
    let value = fx.secret_value("BOT_TOKEN");
    // The value reaches the argv of a shell inside, never a host command line.
    workspace_file(&fx, "v", value.as_bytes());
    docker_ok(&[
        "exec",
        "-d",
        &fx.sandbox(),
        "sh",
        "-c",
        "exec sh -c \"sleep 300; : $(cat /agent-workspace/v)\"",
    ]);
    let pid = eventually("a shell with the value in its argv", || {
        let script =
            "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline; echo \" ${d#/proc/}\"; done";
        let listing = docker_ok(&["exec", &fx.sandbox(), "sh", "-c", script]);
        listing
            .lines()
            .find(|l| l.contains(&value))
            .and_then(|l| l.split_whitespace().last().map(str::to_string))
    });
    std::fs::remove_file(fx.openclaw_dir().join("workspace/v")).unwrap();
    let results = assert_failures(&fx, &["secrets.env-clean"]);
    let detail = detail_of(&results, "secrets.env-clean");
    assert!(
        detail.contains(&format!("BOT_TOKEN: the argv of pid {pid}")),
        "{detail}"
    );
}

#[test]
fn a_deleted_file_held_open_on_a_tmpfs_is_caught() {
    require_engine();
    let fx = Fixture::new("vdeleted");
    apply_ok(&fx);
    file_inside(&fx, "/tmp/held", fx.secret_value("BOT_TOKEN").as_bytes());
    docker_ok(&[
        "exec",
        "-d",
        &fx.sandbox(),
        "sh",
        "-c",
        "exec 3</tmp/held; rm /tmp/held; exec sleep 300",
    ]);
    eventually("the file is deleted", || {
        let out = docker(&["exec", &fx.sandbox(), "test", "-e", "/tmp/held"]);
        (!out.status.success()).then_some(())
    });
    let results = assert_failures(&fx, &["secrets.content-scan"]);
    let detail = detail_of(&results, "secrets.content-scan");
    assert!(
        detail.contains("BOT_TOKEN: a deleted file held open by pid"),
        "{detail}"
    );
}

/// Accepts on a socket file and relays every connection to the engine's socket, as a
/// socat-style forwarder on the host would.
fn engine_forwarder(path: &std::path::Path) {
    use std::os::unix::net::{UnixListener, UnixStream};
    let listener = UnixListener::bind(path).unwrap();
    std::os::unix::fs::chown(path, Some(SANDBOX_UID), Some(SANDBOX_UID)).unwrap();
    let engine = engine_socket()
        .strip_prefix("unix://")
        .expect("a unix engine socket")
        .to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = UnixStream::connect(&engine) else {
                continue;
            };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c, mut u) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut u);
                let _ = u.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

#[test]
fn a_unix_socket_in_a_bind_forwarding_to_the_engine_is_caught_whatever_its_name() {
    require_engine();
    let fx = Fixture::new("vfwd");
    apply_ok(&fx);
    engine_forwarder(&fx.openclaw_dir().join("workspace/agent.sock"));
    let results = assert_failures(&fx, &["engine.no-socket"]);
    let detail = detail_of(&results, "engine.no-socket");
    assert!(
        detail.contains("/agent-workspace/agent.sock (unix socket answering the engine API)"),
        "{detail}"
    );
}

#[test]
fn a_tcp_endpoint_answering_the_engine_api_on_the_sandboxs_loopback_is_caught() {
    require_engine();
    let fx = Fixture::new("vtcp");
    apply_ok(&fx);
    // A canned engine reply from busybox `nc` (persistent listener, `-e` per connection) on
    // a port no engine uses: found as a listener, not by a well-known port.
    docker_ok(&[
        "exec",
        "-d",
        &fx.sandbox(),
        "nc",
        "-ll",
        "-p",
        "7777",
        "-e",
        "sh",
        "-c",
        "printf 'HTTP/1.1 200 OK\\r\\nApi-Version: 1.41\\r\\n\\r\\nOK'",
    ]);
    eventually("the listener", || {
        let tcp = docker_ok(&[
            "exec",
            &fx.sandbox(),
            "cat",
            "/proc/net/tcp6",
            "/proc/net/tcp",
        ]);
        tcp.contains(":1E61 ").then_some(())
    });
    let results = assert_failures(&fx, &["engine.no-socket"]);
    let detail = detail_of(&results, "engine.no-socket");
    assert!(
        detail.contains("127.0.0.1:7777 (TCP, answering the engine API)"),
        "{detail}"
    );
}

/// The issue's case: the profile in force replaced by "allow everything but unshare, mount,
/// umount2 and setns".
#[test]
fn a_seccomp_profile_weaker_than_the_generated_one_is_caught_in_force_and_by_content() {
    require_engine();
    let fx = Fixture::new("vsecweak");
    apply_ok(&fx);
    let weak = fx.dir().join("weak-seccomp.json");
    std::fs::write(
        &weak,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare","mount","umount2","setns"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let mut g = without(run_args(&fx), |g| flag(g, "--security-opt", "seccomp="));
    g.push(vec![
        "--security-opt".into(),
        format!("seccomp={}", weak.display()),
    ]);
    start_copy(&fx, g);
    let results = assert_failures(&fx, &["seccomp.denied", "config.seccomp-confined"]);
    let denied = detail_of(&results, "seccomp.denied");
    for call in [
        "keyctl",
        "bpf",
        "ptrace",
        "io_uring_setup",
        "init_module",
        "clone(CLONE_NEWUSER)",
    ] {
        assert!(denied.contains(call), "{call}: {denied}");
    }
    let let_through = denied.split("let through: ").nth(1).unwrap_or("");
    for still in ["mount", "unshare(CLONE_NEWUSER)", "setns"] {
        assert!(
            !let_through.split(", ").any(|c| c == still),
            "{still} is still denied: {denied}"
        );
    }
    let config = detail_of(&results, "config.seccomp-confined");
    assert!(
        config.contains("defaultAction SCMP_ACT_ERRNO -> SCMP_ACT_ALLOW"),
        "{config}"
    );
    assert!(
        config.contains("allowed that the generated profile denies"),
        "{config}"
    );
}

#[test]
fn unmasked_system_paths_are_caught() {
    weakened(
        "vmask",
        |_, mut g| {
            let opt = match engine_flavor() {
                Flavor::Docker => "systempaths=unconfined",
                Flavor::Podman => "unmask=ALL",
            };
            g.push(vec!["--security-opt".into(), opt.into()]);
            g
        },
        &["fs.masked-paths"],
    );
}

#[test]
fn a_sandbox_that_cannot_do_its_job_is_a_sandbox_failure_not_a_breach() {
    require_engine();
    let fx = Fixture::new("oper");
    apply_ok(&fx);
    // A declared rw bind its user can no longer write (changed after apply).
    let ws = fx.home().join(".openclaw/workspace");
    std::os::unix::fs::chown(&ws, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&ws, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (out, results) = verify(&fx, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        outcomes(&results, "fail"),
        set(&["fs.rw-binds"]),
        "{results:#?}"
    );
    assert_eq!(json(&out)["summary"]["code"], "clw-sandbox-failure");
    // And validation now refuses that bind, naming owner and mode.
    let v = fx.run(&["validate"]);
    assert_eq!(v.status.code(), Some(2), "{}", describe(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("owned by 0:0 with mode 0755"),
        "{}",
        describe(&v)
    );
    std::os::unix::fs::chown(&ws, Some(SANDBOX_UID), Some(SANDBOX_UID)).unwrap();

    // A sandbox stopped is down, not breached.
    docker_ok(&["stop", "-t", "1", &fx.sandbox()]);
    let (out, results) = verify(&fx, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        outcomes(&results, "fail"),
        set(&["sandbox.running"]),
        "{results:#?}"
    );
    assert_eq!(json(&out)["summary"]["code"], "clw-sandbox-failure");
}
