//! The egress allow-list on a real engine, end to end: a sandbox declaring
//! `egress.allow: [allowed.test:8080]` fetches from that test server through the agent's proxy
//! on its loopback, cannot fetch from a second test server (by name or address), cannot open a
//! TCP connection to either address directly, and `verify` reports `net.egress-allowed` and
//! `net.egress-denied` passing. Killed, the agent leaves nothing reachable (fail closed);
//! restarted, it allows and denies the same as before. A weakened copy of the sandbox on a
//! bridge network fails `net.egress-denied`.
//!
//! The upstream servers are containers of this test on the engine's default network (busybox
//! `httpd`), pinned with `egress.hosts`: no public address is ever asked.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Generous: the machine is shared; nothing here asserts how fast, only that it happens.
const DEADLINE: Duration = Duration::from_secs(60);

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("gave up waiting for {what} after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A test HTTP server: busybox httpd serving `body` on port 8080.
struct Upstream {
    ip: String,
    body: String,
}

fn upstream(guard: &mut ContainerGuard, what: &str) -> Upstream {
    let name = guard.track(&unique(&format!("clwt-up-{what}")));
    let body = format!("{what}-{}", unique("body"));
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        TEST_LABEL,
        FIXTURE_IMAGE,
        "sh",
        "-c",
        &format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"),
    ]);
    let ip = docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]);
    assert!(!ip.is_empty(), "the upstream {name} has no address");
    // Up when it answers, asked from a throwaway container on the same network.
    poll(&format!("upstream {what} at {ip}:8080"), || {
        let out = docker(&[
            "run",
            "--rm",
            "--label",
            TEST_LABEL,
            FIXTURE_IMAGE,
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080"),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .contains(&body)
            .then_some(())
    });
    Upstream { ip, body }
}

/// The agent (`clw-fortress -v daemon`), killed with SIGKILL when dropped.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn spawn(fx: &Fixture) -> Agent {
        let log = fx.dir().join(format!("agent-{}.log", unique("a")));
        let child = fx
            .command(&["-v", "daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the agent log"))
            .spawn()
            .expect("spawn the agent");
        Agent {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `n` times.
    fn wait_log(&self, needle: &str, n: usize) {
        poll(&format!("{needle:?} x{n} in the agent log"), || {
            (self.log().matches(needle).count() >= n).then_some(())
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

const LISTENING: &str = "egress proxy listening inside the sandbox";

/// The fixture's manifest with an allow-list for `allowed.test:8080`; both test servers are
/// pinned, only the first is allowed.
fn egress_manifest(fx: &Fixture, allowed: &Upstream, other: &Upstream) -> String {
    format!(
        "{}    egress:\n      allow: [\"allowed.test:8080\"]\n      hosts: {{allowed.test: {}, other.test: {}}}\n",
        fx.default_manifest(),
        allowed.ip,
        other.ip
    )
}

/// Runs `sh -c script` in the sandbox (no secrets needed) and returns stdout and stderr.
fn in_sandbox(name: &str, script: &str) -> String {
    let out = docker(&["exec", name, "sh", "-c", script]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A plain-HTTP request for `http://host:8080/` through the proxy.
fn via_proxy(name: &str, host: &str) -> String {
    in_sandbox(
        name,
        &format!(
            "printf 'GET http://{host}:8080/ HTTP/1.1\\r\\nHost: {host}:8080\\r\\nConnection: close\\r\\n\\r\\n' \
             | nc -w 5 127.0.0.1 3128"
        ),
    )
}

/// A CONNECT tunnel to `host:8080` through the proxy, with a GET inside it.
fn tunnel(name: &str, host: &str) -> String {
    in_sandbox(
        name,
        &format!(
            "printf 'CONNECT {host}:8080 HTTP/1.1\\r\\nHost: {host}:8080\\r\\n\\r\\nGET / HTTP/1.0\\r\\n\\r\\n' \
             | nc -w 5 127.0.0.1 3128"
        ),
    )
}

/// Whether a TCP connection to `ip:8080` opens from inside, without the proxy.
fn direct_opens(name: &str, ip: &str) -> bool {
    let out = docker(&["exec", name, "nc", "-w", "3", ip, "8080"]);
    out.status.success()
}

/// `verify -o json` for the fixture: each probe id with its outcome.
fn verify_outcomes(fx: &Fixture) -> Vec<(String, String, String)> {
    let out = fx.run(&["-o", "json", "verify", "--allow-inconclusive"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify -o json is not JSON ({e}):\n{}", describe(&out)));
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|p| {
            (
                p["probe"].as_str().unwrap_or_default().to_string(),
                p["outcome"].as_str().unwrap_or_default().to_string(),
                p["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn outcome(results: &[(String, String, String)], probe: &str) -> (String, String) {
    results
        .iter()
        .find(|(p, _, _)| p == probe)
        .map(|(_, o, d)| (o.clone(), d.clone()))
        .unwrap_or_else(|| panic!("no {probe} in {results:#?}"))
}

/// What the sandbox can reach while the agent serves it: the allowed server by name (plain
/// HTTP and CONNECT), nothing else by name or address, nothing directly.
fn assert_allowed_and_denied(fx: &Fixture, allowed: &Upstream, other: &Upstream) {
    let sbx = fx.sandbox();
    let got = via_proxy(&sbx, "allowed.test");
    assert!(
        got.contains(&allowed.body),
        "plain HTTP to the allowed server:\n{got}"
    );
    let got = tunnel(&sbx, "allowed.test");
    assert!(
        got.contains(&allowed.body),
        "CONNECT to the allowed server:\n{got}"
    );

    let got = via_proxy(&sbx, "other.test");
    assert!(
        got.contains("403") && !got.contains(&other.body),
        "the second server by name:\n{got}"
    );
    assert!(
        got.contains(fx.name()) && got.contains("other.test:8080"),
        "the denial names the fortress and the rule it would need:\n{got}"
    );
    let got = tunnel(&sbx, &other.ip);
    assert!(
        got.contains("403") && !got.contains(&other.body),
        "the second server by address:\n{got}"
    );
    let got = tunnel(&sbx, &allowed.ip);
    assert!(
        got.contains("403") && !got.contains(&allowed.body),
        "the allowed server's address is not its name:\n{got}"
    );
    assert!(!direct_opens(&sbx, &allowed.ip), "direct to {}", allowed.ip);
    assert!(!direct_opens(&sbx, &other.ip), "direct to {}", other.ip);
}

#[test]
fn a_sandbox_reaches_exactly_its_allowed_host_through_the_agent_and_verify_proves_it() {
    require_engine();
    let mut guard = ContainerGuard::new();
    let allowed = upstream(&mut guard, "allowed");
    let other = upstream(&mut guard, "other");
    let fx = Fixture::new("egress");
    fx.write_manifest(&egress_manifest(&fx, &allowed, &other));
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply:\n{}", describe(&out));
    let sbx = fx.sandbox();

    // The sandbox has no network of its own: without the agent nothing answers.
    assert!(
        !in_sandbox(&sbx, "nc -w 3 127.0.0.1 3128 </dev/null && echo OPEN").contains("OPEN"),
        "something listens on the proxy port before the agent runs"
    );

    let mut agent = Agent::spawn(&fx);
    agent.wait_log(LISTENING, 1);
    assert_allowed_and_denied(&fx, &allowed, &other);

    // Each denial is an audit row; status shows the last ones.
    let status = fx.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("egress denied") && text.contains("other.test:8080"),
        "status:\n{}",
        describe(&status)
    );

    let results = verify_outcomes(&fx);
    assert_eq!(
        outcome(&results, "net.egress-allowed").0,
        "pass",
        "{results:#?}"
    );
    assert_eq!(
        outcome(&results, "net.egress-denied").0,
        "pass",
        "{results:#?}"
    );

    // Fail closed: with the agent gone, nothing is reachable, allowed or not.
    agent.kill();
    let got = via_proxy(&sbx, "allowed.test");
    assert!(
        !got.contains(&allowed.body),
        "reachable with the agent down:\n{got}"
    );
    assert!(!direct_opens(&sbx, &allowed.ip));
    let results = verify_outcomes(&fx);
    let (o, d) = outcome(&results, "net.egress-allowed");
    assert_eq!(o, "fail", "{d}");
    assert!(d.contains("is the agent running"), "{d}");
    assert_eq!(outcome(&results, "net.egress-denied").0, "pass");

    // Restarted, the agent allows and denies exactly as before.
    let agent = Agent::spawn(&fx);
    agent.wait_log(LISTENING, 1);
    assert_allowed_and_denied(&fx, &allowed, &other);

    // A sandbox restart is a new network namespace: it gets a listener of its own.
    docker_ok(&["restart", "-t", "1", &sbx]);
    agent.wait_log(LISTENING, 2);
    let got = poll("the allowed server after a sandbox restart", || {
        let got = via_proxy(&sbx, "allowed.test");
        got.contains(&allowed.body).then_some(got)
    });
    assert!(got.contains(&allowed.body));
    drop(agent);
}

#[test]
fn a_weakened_copy_on_a_bridge_network_fails_net_egress_denied() {
    require_engine();
    let mut guard = ContainerGuard::new();
    let allowed = upstream(&mut guard, "allowed");
    let other = upstream(&mut guard, "other");
    let fx = Fixture::new("egress-weak");
    // The copy: the same sandbox created with a bridge network and no allow-list (validation
    // refuses the two together, so it is made from a manifest without egress) ...
    fx.write_manifest(&format!("{}    network: bridge\n", fx.default_manifest()));
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply:\n{}", describe(&out));
    // ... and verified against the manifest that declares the allow-list.
    fx.write_manifest(&egress_manifest(&fx, &allowed, &other));
    let agent = Agent::spawn(&fx);
    agent.wait_log(LISTENING, 1);

    let results = verify_outcomes(&fx);
    let (o, d) = outcome(&results, "net.egress-denied");
    assert_eq!(o, "fail", "{results:#?}");
    assert!(
        d.contains(&format!("{}:8080 opens without the proxy", allowed.ip)),
        "{d}"
    );
    drop(agent);
}

#[test]
fn an_adopted_container_under_an_egress_rule_is_detached_and_reaches_only_its_allowed_host() {
    require_engine();
    let mut guard = ContainerGuard::new();
    let allowed = upstream(&mut guard, "allowed");
    let other = upstream(&mut guard, "other");
    let fx = Fixture::new("egress-adopt");
    let label = unique("clwt-egress-gw");
    fx.write_manifest(&format!(
        "{}adopt:\n  - selector: {{label: \"{label}=1\"}}\n    limits: {{memory: 64Mi, cpus: 0.5, pids: 64}}\n    egress:\n      allow: [\"allowed.test:8080\"]\n      hosts: {{allowed.test: {}, other.test: {}}}\n",
        fx.default_manifest(),
        allowed.ip,
        other.ip
    ));
    let agent = Agent::spawn(&fx);
    agent.wait_log("limits sweep:", 1);

    // The gateway's container, as another program creates it: on the default network.
    let name = guard.track(&unique("clwt-egress-gw"));
    let id = docker_ok(&[
        "create",
        "--name",
        &name,
        "--label",
        &format!("{label}=1"),
        "--label",
        TEST_LABEL,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--user",
        "1000:1000",
        FIXTURE_IMAGE,
        "sleep",
        "3600",
    ]);
    docker_ok(&["start", &id]);
    agent.wait_log(LISTENING, 1);

    let ifaces = in_sandbox(&name, "cat /proc/net/dev");
    assert!(
        !ifaces.contains("eth0"),
        "the adopted container kept its network:\n{ifaces}"
    );
    let got = tunnel(&name, "allowed.test");
    assert!(
        got.contains(&allowed.body),
        "CONNECT to the allowed server:\n{got}"
    );
    let got = tunnel(&name, "other.test");
    assert!(got.contains("403") && !got.contains(&other.body), "{got}");
    assert!(!direct_opens(&name, &allowed.ip));
    assert!(!direct_opens(&name, &other.ip));

    let out = fx.run(&["-o", "json", "verify", "--adopted", "--allow-inconclusive"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify -o json is not JSON ({e}):\n{}", describe(&out)));
    let probes: Vec<(String, String)> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|p| p["sandbox"] == name.as_str())
        .map(|p| {
            (
                p["probe"].as_str().unwrap_or_default().to_string(),
                p["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for probe in ["net.egress-allowed", "net.egress-denied"] {
        assert!(
            probes.contains(&(probe.to_string(), "pass".to_string())),
            "{probe} in {probes:#?}\n{}",
            describe(&out)
        );
    }
    drop(agent);
}
