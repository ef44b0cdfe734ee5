//! `doctor`, `status` and limit diagnostics against a real engine: doctor passes on this host
//! and fails on an adopted container running unconfined with an engine socket mounted; a sandbox driven past its memory and pids
//! limits is reported as `clw-sandbox-limit-exceeded` with usage and limit, by the library's
//! `diagnose` and by `status`; a sandbox heal restarted and then quarantined, and the last
//! backup, are shown by `status`; a missing image is classified from the engine's own message;
//! a connection asks `/version` once (a recording proxy counts the requests) and a declared
//! `engine.flavor` the engine contradicts stops the command with `clw-config-invalid`.

mod common;

use clw_fortress::engine::failure::{self, FailureCause};
use clw_fortress::engine::{CreateRequest, DockerEngine, Engine, EngineError};
use clw_fortress::host::HostPaths;
use clw_fortress::limits::{self, CgroupUsage, Resource};

use common::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn apply_ok(fx: &Fixture) {
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply failed: {}", describe(&out));
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("a checks array")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

async fn engine() -> DockerEngine {
    DockerEngine::connect(&engine_socket(), std::env::temp_dir())
        .await
        .expect("connect to the test engine")
}

const MEMORY_HOG: [&str; 2] = [
    "awk",
    // Linear growth (an array of 1000-byte strings), so the limit is reached in well under a
    // second; concatenating one growing string would copy quadratically and take minutes.
    r#"BEGIN{while(1) a[i++]=sprintf("%1000s","")}"#,
];

/// Forks 100 background sleeps in a sandbox limited to 64 pids: the shell's fork is refused
/// (`can't fork: Resource temporarily unavailable`) before the loop ends.
const FORK_LOOP: &str = "i=0; while [ $i -lt 100 ]; do sleep 2 & i=$((i+1)); done; wait";

#[test]
fn doctor_passes_on_this_machine_with_every_check_reported() {
    require_engine();
    let fx = Fixture::new("doctor-ok");
    apply_ok(&fx);
    let out = fx.run(&["doctor", "--fix-hints"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 failed"), "{text}");

    let out = fx.run(&["-o", "json", "doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = json(&out);
    for id in [
        "manifest.valid",
        "engine.reachable",
        "engine.version",
        "engine.rootless",
        "kernel.seccomp",
        "cgroup.version",
        "cgroup.memory",
        "cgroup.cpu",
        "cgroup.pids",
        "userns.unprivileged",
        "netns.unprivileged",
        "apparmor.userns-restriction",
        "secrets.file",
        "state.integrity",
        "backup.dest",
        "systemd.units",
        "containers.no-engine-socket",
        "containers.not-privileged",
        "containers.confined",
    ] {
        let c = check(&r, id);
        assert_ne!(c["outcome"], "fail", "{c:#}");
        if c["outcome"] == "skip" {
            assert!(
                !c["summary"].as_str().unwrap_or("").is_empty(),
                "a skip names its reason: {c:#}"
            );
        }
    }
    // The facts of this host and this fixture, not merely "not failed".
    for id in [
        "kernel.seccomp",
        "cgroup.memory",
        "cgroup.pids",
        "secrets.file",
        "state.integrity",
    ] {
        assert_eq!(check(&r, id)["outcome"], "pass", "{:#}", check(&r, id));
    }
    let sandbox_checked = check(&r, "containers.confined")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        sandbox_checked.contains("1 managed or adopted container(s) checked"),
        "{sandbox_checked}"
    );
}

#[test]
fn doctor_fails_on_an_adopted_container_with_an_engine_socket_and_no_seccomp() {
    require_engine();
    let fx = Fixture::new("doctor-bad");
    // A stand-in socket: detection goes by the mount, and the test must not hand a real
    // engine socket to a container. (`--privileged` cannot be tested for real here: this
    // host's runc refuses it, "unable to apply caps: operation not permitted"; the unit tests
    // cover it.)
    let fake_socket = fx.dir().join("docker.sock");
    std::fs::write(&fake_socket, "").unwrap();
    let mut guard = ContainerGuard::new();
    let name = guard.track(&unique("clwt-unconf"));
    let label = format!("clw-test-adopt={}", fx.name());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        TEST_LABEL,
        "--label",
        &label,
        "--network",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        "-v",
        &format!("{}:/var/run/docker.sock:ro", fake_socket.display()),
        FIXTURE_IMAGE,
        "sleep",
        "600",
    ]);
    let manifest = fx.default_manifest().replace(
        "sandboxes:\n",
        &format!(
            "adopt:\n  - selector: {{label: {label}}}\n    limits: {{memory: 64Mi, pids: 64}}\nsandboxes:\n"
        ),
    );
    fx.write_manifest(&manifest);
    let out = fx.run(&["-o", "json", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let r = json(&out);
    let c = check(&r, "containers.confined");
    assert_eq!(c["outcome"], "fail", "{c:#}");
    assert_eq!(c["code"], "clw-isolation-breach");
    assert!(c["summary"].as_str().unwrap().contains(&name), "{c:#}");
    assert!(
        c["hint"].as_str().unwrap().contains("seccomp profile"),
        "{c:#}"
    );
    let c = check(&r, "containers.no-engine-socket");
    assert_eq!(c["outcome"], "fail", "{c:#}");
    assert!(c["summary"].as_str().unwrap().contains(&name), "{c:#}");
    assert!(
        c["hint"]
            .as_str()
            .unwrap()
            .contains("remove the socket mount"),
        "{c:#}"
    );
    assert_eq!(check(&r, "containers.not-privileged")["outcome"], "pass");

    let out = fx.run(&["doctor", "--fix-hints"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL  containers.confined"), "{text}");
    assert!(
        text.contains("hint: recreate with a seccomp profile"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_past_its_memory_and_pids_limits_is_diagnosed_and_shown_by_status() {
    require_engine();
    let fx = Fixture::new("limits");
    apply_ok(&fx);
    let sbx = fx.sandbox();

    // Nothing happened yet: no limit events.
    let e = engine().await;
    assert_eq!(limits::diagnose(&e, &sbx).await, vec![]);

    // Both readers see the same limits: from inside (one exec) and from the host cgroup fs.
    let i = inspect(&sbx);
    let id = i["Id"].as_str().unwrap();
    let pid = i["State"]["Pid"].as_i64().unwrap();
    let inside = CgroupUsage::parse(&limits::read_inside(&e, id).await.expect("read inside"));
    let host = CgroupUsage::parse(
        &limits::read_host_of(&HostPaths::real(), pid, id).expect("read on the host"),
    );
    assert_eq!(inside.memory_limit, Some(64 << 20), "{inside:?}");
    assert_eq!(inside.pids_limit, Some(64), "{inside:?}");
    assert_eq!(host.memory_limit, inside.memory_limit, "{host:?}");
    assert_eq!(host.pids_limit, inside.pids_limit, "{host:?}");

    let hog = docker(&["exec", "-u", "1000", &sbx, MEMORY_HOG[0], MEMORY_HOG[1]]);
    assert_eq!(
        hog.status.code(),
        Some(137),
        "OOM-killed: {}",
        describe(&hog)
    );
    let forks = docker(&["exec", "-u", "1000", &sbx, "sh", "-c", FORK_LOOP]);
    let stderr = String::from_utf8_lossy(&forks.stderr);
    assert!(stderr.contains("can't fork"), "{}", describe(&forks));
    // The sandbox itself survives both.
    assert_eq!(inspect(&sbx)["State"]["Running"], true);

    // The refused forks leave sleeps for a moment; wait until an exec can fork again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let events = loop {
        let ev = limits::diagnose(&e, &sbx).await;
        if ev.len() >= 2 || std::time::Instant::now() > deadline {
            break ev;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let mem = events
        .iter()
        .find(|ev| ev.resource == Resource::Memory)
        .unwrap_or_else(|| panic!("no memory event in {events:?}"));
    assert_eq!(mem.limit, Some(64 << 20), "{mem:?}");
    assert!(
        mem.usage.is_some_and(|u| u > 60 << 20),
        "the peak reached the limit: {mem:?}"
    );
    assert!(mem.count >= 1, "{mem:?}");
    assert!(mem.message.contains("memory limit 64Mi"), "{}", mem.message);
    let pids = events
        .iter()
        .find(|ev| ev.resource == Resource::Pids)
        .unwrap_or_else(|| panic!("no pids event in {events:?}"));
    assert_eq!(pids.limit, Some(64), "{pids:?}");
    assert!(pids.usage.is_some_and(|u| u >= 60), "{pids:?}");
    assert!(pids.count >= 1, "{pids:?}");

    // status shows both, with usage and limit, and records them once.
    let out = fx.run(&["-o", "json", "status"]);
    assert!(out.status.success(), "{}", describe(&out));
    let r = json(&out);
    let t = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == sbx.as_str())
        .unwrap_or_else(|| panic!("no target {sbx}: {r:#}"))
        .clone();
    assert_eq!(t["kind"], "sandbox");
    assert_eq!(t["state"], "running");
    // The engine is local: the counters come from the host's cgroup files, without an exec
    // (an exec into this pids-exhausted sandbox would fail on Podman and count as refused forks).
    assert_eq!(t["usage_source"], "host", "{t:#}");
    assert_eq!(t["memory"]["limit"], 64 << 20);
    assert_eq!(t["pids"]["limit"], 64);
    assert!(t["uptime_s"].as_i64().is_some(), "{t:#}");
    assert_eq!(t["restart_count"], 0);
    for resource in ["memory", "pids"] {
        let found = t["limits_exceeded"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ev| ev["resource"] == resource)
            .unwrap_or_else(|| panic!("{resource} not in limits_exceeded: {t:#}"));
        assert_eq!(found["code"], "clw-sandbox-limit-exceeded");
        assert!(found["usage"].as_i64().is_some(), "{found:#}");
        assert!(found["limit"].as_i64().is_some(), "{found:#}");
        let recorded: Vec<_> = t["limit_events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ev| ev["resource"] == resource)
            .collect();
        assert_eq!(recorded.len(), 1, "recorded once: {t:#}");
    }
    // The audit log's rows for the sandbox come along.
    assert!(
        t["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "create"),
        "{t:#}"
    );

    // A second status records nothing new: the counters did not move.
    let again = json(&fx.run(&["-o", "json", "status"]));
    let n = again["targets"][0]["limit_events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, 2, "{again:#}");

    let text = fx.run(&["status"]);
    assert!(text.status.success(), "{}", describe(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("error[clw-sandbox-limit-exceeded]"), "{text}");
    assert!(text.contains("/64Mi"), "{text}");
}

/// One `heal -o json` pass (exit 0 or 1); returns the report.
fn heal_pass(fx: &Fixture) -> serde_json::Value {
    let out = fx.run(&["-o", "json", "heal"]);
    let code = out.status.code();
    assert!(code == Some(0) || code == Some(1), "{}", describe(&out));
    json(&out)
}

/// The decision heal took for sandbox `name` in one pass.
fn sandbox_action(report: &serde_json::Value, name: &str) -> String {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "sandbox" && t["name"] == name)
        .unwrap_or_else(|| panic!("no sandbox {name}: {report:#}"))["decision"]["action"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

#[test]
fn status_shows_heals_restarts_the_quarantine_and_the_last_backup() {
    require_engine();
    let fx = Fixture::new("status-heal");
    let sbx = fx.sandbox();
    let db_dir = fx.dir().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    rusqlite::Connection::open(db_dir.join("agent.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x');")
        .unwrap();
    // The liveness check fails (no /tmp/alive); the health check that restarts the sandbox
    // gives it a 1s backoff and quarantine after one restart.
    let manifest = fx.default_manifest().replace(
        "    command: [sleep, \"3600\"]\n",
        "    command: [sleep, \"3600\"]\n    liveness: {every: 1m, exec: [test, -e, /tmp/alive], timeout: 5s, failures: 1}\n",
    );
    fx.write_manifest(&format!(
        "{manifest}health:\n  - name: {sbx}-up\n    exec: {{container: {sbx}, command: [\"true\"]}}\n    every: 1m\n    failures: 5\n    restart: {{container: {sbx}}}\n    backoff: {{initial: 1s, max: 1s}}\n    quarantine: {{restarts: 1, within: 10m}}\nbackups:\n  - name: memory\n    sources: [\"{db}/*.sqlite\"]\n    dest: \"{dest}\"\n    keep: {{last: 3, daily: 1, weekly: 1}}\n",
        db = db_dir.display(),
        dest = fx.dir().join("backups").display(),
    ));
    apply_ok(&fx);

    // Before anything happened: no restarts, no quarantine, no backup yet.
    let r = json(&fx.run(&["-o", "json", "status"]));
    assert_eq!(r["targets"][0]["restarts"], 0, "{r:#}");
    assert_eq!(
        r["targets"][0]["quarantined_since_ms"],
        serde_json::Value::Null
    );
    assert_eq!(r["last_backup"], serde_json::Value::Null, "{r:#}");

    assert_eq!(sandbox_action(&heal_pass(&fx), &sbx), "restart");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(sandbox_action(&heal_pass(&fx), &sbx), "quarantine");
    let out = fx.run(&["backup", "run"]);
    assert!(out.status.success(), "{}", describe(&out));

    let r = json(&fx.run(&["-o", "json", "status"]));
    let t = &r["targets"][0];
    assert_eq!(t["name"], sbx.as_str(), "{r:#}");
    assert_eq!(t["restarts"], 1, "{t:#}");
    let since = t["quarantined_since_ms"].as_i64().expect("quarantined");
    assert!(since <= r["at_ms"].as_i64().unwrap(), "{r:#}");
    assert_eq!(r["last_backup"]["entry"], "memory", "{r:#}");
    assert_eq!(r["last_backup"]["status"], "ok", "{r:#}");
    assert_eq!(r["backups"][0]["last"]["status"], "ok", "{r:#}");

    let out = fx.run(&["status"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with(&format!("{sbx} ")))
        .unwrap_or_else(|| panic!("no row for {sbx}: {text}"))
        .split_whitespace()
        .collect();
    // TARGET KIND STATE UPTIME RESTARTS ... QUARANTINE ("since <age>")
    assert!(row[4].starts_with('1'), "{text}");
    assert_eq!(row[row.len() - 2], "since", "{text}");
    assert!(text.contains("last backup: memory ok "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_classified_from_the_engines_own_message() {
    require_engine();
    let e = engine().await;
    let name = unique("clwt-noimage");
    let _guard = {
        let mut g = ContainerGuard::new();
        g.track(&name);
        g
    };
    let err = e
        .create(&CreateRequest {
            name: name.clone(),
            image: "clw-no-such-image:nope".into(),
            network_mode: "none".into(),
            ..Default::default()
        })
        .await
        .expect_err("the image does not exist");
    let EngineError::Refused { message, .. } = &err else {
        panic!("expected a refusal, got {err:?}");
    };
    assert_eq!(
        failure::classify(message),
        Some(FailureCause::ImageMissing),
        "{message}"
    );
    use clw_fortress::error::Coded;
    assert_eq!(err.code().as_str(), "clw-sandbox-failure");
    assert!(err.hint().unwrap().contains("build or load it locally"));

    // Through apply: the failure report carries the classified hint.
    let fx = Fixture::new("noimage");
    let manifest = fx.default_manifest().replace(
        "image: clw-fixture:busybox",
        "image: clw-no-such-image:nope",
    );
    fx.write_manifest(&manifest);
    let out = fx.run(&["apply"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // Docker says "No such image", Podman "no such image: ...: image not known".
    assert!(text.to_lowercase().contains("no such image"), "{text}");
    assert!(
        text.contains("hint: the image is not on this host"),
        "{text}"
    );
}

/// A unix socket in front of the engine that forwards both ways and records the path of every
/// request it passes on.
struct RecordingProxy {
    url: String,
    paths: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn new(dir: &std::path::Path) -> RecordingProxy {
        use std::io::{Read, Write};
        use std::os::unix::net::{UnixListener, UnixStream};
        let socket = engine_socket();
        let upstream = socket
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("the proxy forwards to a unix socket, not {socket}"))
            .to_string();
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = paths.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut server = UnixStream::connect(&upstream).expect("reach the engine");
                let (mut from_server, mut to_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Request lines: `GET /v1.41/version HTTP/1.1`.
                        for line in String::from_utf8_lossy(&buf[..n]).lines() {
                            let mut words = line.split(' ');
                            if let (Some(method), Some(path), Some(proto)) =
                                (words.next(), words.next(), words.next())
                            {
                                if proto.starts_with("HTTP/1")
                                    && method.chars().all(|c| c.is_ascii_uppercase())
                                {
                                    recorded.lock().unwrap().push(path.to_string());
                                }
                            }
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        RecordingProxy {
            url: format!("unix://{}", path.display()),
            paths,
        }
    }

    /// How many requests asked for `endpoint` (`/version`, `/info`), whatever the API prefix.
    fn count(&self, endpoint: &str) -> usize {
        self.paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.split('?').next().unwrap_or("").ends_with(endpoint))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_asks_the_engine_for_its_version_once() {
    require_engine();
    let dir = tempfile::tempdir().unwrap();
    let proxy = RecordingProxy::new(dir.path());
    let e = DockerEngine::connect(&proxy.url, dir.path().join("profiles"))
        .await
        .expect("connect through the proxy");
    let info = e.info().await.expect("info");
    assert!(!info.version.is_empty(), "{info:?}");
    assert_eq!(proxy.count("/version"), 1, "{:?}", proxy.paths);
    assert_eq!(proxy.count("/info"), 1, "{:?}", proxy.paths);

    // A whole command connects once, so it asks once too.
    let fx = Fixture::new("version-once");
    apply_ok(&fx);
    let proxy = RecordingProxy::new(fx.dir());
    let out = fx.run(&["--engine", &proxy.url, "status"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(proxy.count("/version"), 1, "{:?}", proxy.paths);
}

#[test]
fn a_declared_flavor_the_engine_contradicts_is_a_config_error() {
    require_engine();
    let fx = Fixture::new("flavor");
    let (right, wrong) = match engine_flavor() {
        Flavor::Docker => ("docker", "podman"),
        Flavor::Podman => ("podman", "docker"),
    };
    let with_flavor = |f: &str| {
        let m = fx.default_manifest();
        assert!(m.contains("engine:\n"));
        m.replace("engine:\n", &format!("engine:\n  flavor: {f}\n"))
    };
    fx.write_manifest(&with_flavor(wrong));
    let out = fx.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[clw-config-invalid]"), "{err}");
    assert!(
        err.contains(&format!("engine.flavor is {wrong} but the engine at")),
        "{err}"
    );
    assert!(err.contains(&format!("is {right}")), "{err}");
    assert!(
        err.contains(&format!("set engine.flavor to {right} (or auto)")),
        "{err}"
    );

    // The matching flavor and `auto` both connect.
    for f in [right, "auto"] {
        fx.write_manifest(&with_flavor(f));
        let out = fx.run(&["status"]);
        assert!(out.status.success(), "{f}: {}", describe(&out));
    }
}
