//! Secret brokering on a real engine, end to end. A sandbox declares `ANTHROPIC_API_KEY`
//! brokered for `api.test:<port>` in a header and the body; two upstreams run in this test
//! process on the host's loopback (the agent's upstream connections leave from the host),
//! pinned with `egress.hosts`: `api.test`, HTTPS with a certificate of a test CA of its own
//! (trusted by the agent through `CLW_FORTRESS_BROKER_TRUST`, not the system store), and
//! `other.test`, plain HTTP.
//!
//! Proven: `exec` gets a sentinel of the key's shape, never the key (every process's
//! environment, and verify's secret probes, which do find the plain `BOT_TOKEN` there); a
//! request through the agent's proxy to `api.test`, verified by the client against the CA
//! bundle mounted in the sandbox, arrives upstream with the real key in the declared header
//! (and in a small declared body); the sentinel sent to `other.test` (raw or base64) or to
//! `api.test` in an undeclared place is refused with 403, never reaches the upstream, and is
//! audited as `clw-isolation-breach` with the sandbox and destination. An agent that does not
//! trust the test CA sends nothing to that upstream; the next `apply` draws new sentinels.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

const DEADLINE: Duration = Duration::from_secs(60);
const LISTENING: &str = "egress proxy listening inside the sandbox";
const UPSTREAM_BODY: &str = "upstream-ok";

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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA and a server configuration for `api.test` signed by it: the CA's PEM and the
/// configuration.
fn test_ca() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "clw-fortress test upstream CA");
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(p, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["api.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (ca_cert.pem(), cfg)
}

/// Reads a request head (up to the blank line).
fn read_head<R: Read>(r: &mut R) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match r.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads a request: its head and, after it, a body of its `content-length`.
fn read_request<R: Read>(r: &mut R) -> String {
    let head = read_head(r);
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// An upstream on the host's loopback that records every request head it gets and answers
/// [`UPSTREAM_BODY`]; TLS when `tls` is given.
struct Upstream {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

fn upstream(tls: Option<rustls::ServerConfig>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let recorded = heads.clone();
    let tls = tls.map(Arc::new);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let recorded = recorded.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{UPSTREAM_BODY}",
                    UPSTREAM_BODY.len()
                );
                match tls {
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg).unwrap();
                        let mut s = rustls::StreamOwned::new(conn, stream);
                        let head = read_request(&mut s);
                        recorded.lock().unwrap().push(head);
                        let _ = s.write_all(answer.as_bytes());
                        let _ = s.flush();
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    None => {
                        let mut s = stream;
                        let head = read_request(&mut s);
                        recorded.lock().unwrap().push(head);
                        let _ = s.write_all(answer.as_bytes());
                    }
                }
            });
        }
    });
    Upstream { port, heads }
}

impl Upstream {
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The agent, with the test CA trusted for upstream connections; killed when dropped.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn spawn(fx: &Fixture, trust: Option<&std::path::Path>) -> Agent {
        let log = fx.dir().join(format!("agent-{}.log", unique("a")));
        let mut cmd = fx.command(&["-v", "daemon"]);
        cmd.env_remove("CLW_FORTRESS_BROKER_TRUST");
        if let Some(t) = trust {
            cmd.env("CLW_FORTRESS_BROKER_TRUST", t);
        }
        let child = cmd
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
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTPS exchange through the sandbox's proxy listener, from a thread that joined the
/// sandbox's network namespace (the listener exists only there): CONNECT to `target`, then TLS
/// verified against `roots_pem` (the bundle the sandbox has), then `request`. Returns what
/// came back (the CONNECT answer when it was not 200).
fn https_via_proxy(pid: i64, target: &str, request: String, roots_pem: Vec<u8>) -> String {
    let target = target.to_string();
    std::thread::spawn(move || {
        let ns = File::open(format!("/proc/{pid}/ns/net")).expect("the sandbox's netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut s = TcpStream::connect("127.0.0.1:3128").expect("the proxy listener");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
        let head = read_head(&mut s);
        if !head.starts_with("HTTP/1.1 200") {
            let mut rest = String::new();
            let _ = s.read_to_string(&mut rest);
            return head + &rest;
        }
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) =
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&roots_pem).flatten());
        assert!(added > 0, "no certificate in the sandbox's bundle");
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let host = target.split(':').next().unwrap().to_string();
        let conn =
            rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from(host).unwrap())
                .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        if let Err(e) = tls.write_all(request.as_bytes()) {
            return format!("TLS failed: {e}");
        }
        let mut out = Vec::new();
        let r = tls.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        match r {
            Err(e) if text.is_empty() => format!("TLS failed: {e}"),
            _ => text,
        }
    })
    .join()
    .expect("the client thread")
}

fn brokered_manifest(fx: &Fixture, api: &Upstream, other: &Upstream) -> String {
    let base = fx.default_manifest().replace(
        "    secretEnv: [ANTHROPIC_API_KEY]\n",
        &format!(
            "    secretEnv:\n      - BOT_TOKEN\n      - name: ANTHROPIC_API_KEY\n        broker: {{hosts: [\"api.test:{}\"], in: [header, body]}}\n",
            api.port
        ),
    );
    format!(
        "{base}    egress:\n      allow: [\"api.test:{}\", \"other.test:{}\"]\n      hosts: {{api.test: 127.0.0.1, other.test: 127.0.0.1}}\n",
        api.port, other.port
    )
}

/// Every process's environment in the sandbox, read as the sandbox's user (root there has
/// no capability to read another user's).
fn all_environ(sbx: &str) -> String {
    let out = docker(&[
        "exec",
        sbx,
        "sh",
        "-c",
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn breach_audit(fx: &Fixture) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(fx.state_path()).expect("the state database");
    let mut stmt = db
        .prepare("SELECT target, detail FROM audit WHERE action = 'clw-isolation-breach'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_brokered_key_reaches_only_its_host_and_the_sandbox_holds_only_a_sentinel() {
    require_engine();
    let (ca_pem, server_cfg) = test_ca();
    let api = upstream(Some(server_cfg));
    let other = upstream(None);
    let fx = Fixture::new("broker");
    let trust = fx.dir().join("test-upstream-ca.pem");
    std::fs::write(&trust, &ca_pem).unwrap();
    fx.write_manifest(&brokered_manifest(&fx, &api, &other));
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply:\n{}", describe(&out));
    let sbx = fx.sandbox();
    let real = fx.secret_value("ANTHROPIC_API_KEY");

    // The CA key stays in the state directory, private; the sandbox has the bundle only.
    let ca_dir = fx.dir().join("broker-ca");
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(ca_dir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca.key"), 0o600);
    let bundle = docker(&["exec", &sbx, "cat", "/etc/clw-fortress/ca-bundle.crt"]);
    assert!(bundle.status.success(), "{}", describe(&bundle));
    let ca_crt = std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap();
    assert!(String::from_utf8_lossy(&bundle.stdout).contains(ca_crt.trim()));
    let env = docker_ok(&["exec", &sbx, "env"]);
    for k in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "CURL_CA_BUNDLE",
    ] {
        assert!(
            env.contains(&format!("{k}=/etc/clw-fortress/ca-bundle.crt")),
            "{k} in:\n{env}"
        );
    }
    assert!(!docker(&[
        "exec",
        &sbx,
        "sh",
        "-c",
        "echo x >> /etc/clw-fortress/ca-bundle.crt"
    ])
    .status
    .success());

    // exec: the sentinel, of the key's shape, stable between execs; the plain one unchanged.
    let printed = fx.run(&[
        "exec",
        &sbx,
        "sh",
        "-c",
        "echo \"$ANTHROPIC_API_KEY $BOT_TOKEN\"",
    ]);
    assert!(printed.status.success(), "{}", describe(&printed));
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    let mut words = printed.split_whitespace();
    let sentinel = words.next().unwrap().to_string();
    assert_eq!(words.next(), Some(fx.secret_value("BOT_TOKEN").as_str()));
    assert_ne!(sentinel, real);
    assert_eq!(sentinel.len(), real.len());
    assert!(sentinel.starts_with("sk-ant-"), "{sentinel}");
    let again = fx.run(&["exec", &sbx, "sh", "-c", "echo $ANTHROPIC_API_KEY"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), sentinel);

    let agent = Agent::spawn(&fx, Some(&trust));
    poll("the proxy listener", || {
        agent.log().contains(LISTENING).then_some(())
    });
    let pid: i64 = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &sbx])
        .parse()
        .unwrap();
    let target = format!("api.test:{}", api.port);

    // The bound host, the declared place: the real key arrives upstream, the sentinel does not.
    let got = https_via_proxy(
        pid,
        &target,
        format!(
            "GET /v1/messages HTTP/1.1\r\nHost: {target}\r\nx-api-key: {sentinel}\r\nConnection: close\r\n\r\n"
        ),
        bundle.stdout.clone(),
    );
    assert!(
        got.contains(UPSTREAM_BODY),
        "brokered request:\n{got}\n{}",
        agent.log()
    );
    let heads = api.heads();
    assert_eq!(heads.len(), 1, "{heads:#?}");
    assert!(
        heads[0].contains(&format!("x-api-key: {real}")),
        "upstream got:\n{}",
        heads[0].replace(&real, "<REAL>")
    );
    assert!(!heads[0].contains(&sentinel));

    // A declared body (small, with its length): the value goes in, the length follows.
    let body = format!("{{\"key\":\"{sentinel}\"}}");
    let got = https_via_proxy(
        pid,
        &target,
        format!(
            "POST /v1/complete HTTP/1.1\r\nHost: {target}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        bundle.stdout.clone(),
    );
    assert!(got.contains(UPSTREAM_BODY), "brokered body:\n{got}");
    let posted = api.heads().pop().unwrap();
    assert!(
        posted.ends_with(&format!("{{\"key\":\"{real}\"}}")),
        "upstream got:\n{}",
        posted.replace(&real, "<REAL>")
    );
    assert!(!posted.contains(&sentinel));
    let seen = api.heads().len();

    // The bound host, an undeclared place (the query): refused inside the tunnel.
    let got = https_via_proxy(
        pid,
        &target,
        format!(
            "GET /v1/messages?key={sentinel} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        ),
        bundle.stdout.clone(),
    );
    assert!(
        got.contains("403") && got.contains("clw-isolation-breach"),
        "{got}"
    );
    assert_eq!(
        api.heads().len(),
        seen,
        "the refused request reached the upstream"
    );

    // Another allowed host, plain HTTP, from inside the sandbox: refused, raw and in base64.
    for (what, value) in [
        ("raw", "$ANTHROPIC_API_KEY"),
        ("base64", "$(printf %s \"$ANTHROPIC_API_KEY\" | base64)"),
    ] {
        let script = format!(
            "printf 'GET http://other.test:{p}/ HTTP/1.1\\r\\nHost: other.test:{p}\\r\\nAuthorization: Bearer %s\\r\\nConnection: close\\r\\n\\r\\n' \"{value}\" | nc -w 5 127.0.0.1 3128",
            p = other.port
        );
        let out = fx.run(&["exec", &sbx, "sh", "-c", &script]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("403") && text.contains("clw-isolation-breach"),
            "{what} to other.test:\n{}",
            describe(&out)
        );
    }
    assert!(other.heads().is_empty(), "{:#?}", other.heads());
    // Without the sentinel the same host is reachable: the refusal was the sentinel's.
    let out = fx.run(&[
        "exec",
        &sbx,
        "sh",
        "-c",
        &format!(
            "printf 'GET http://other.test:{p}/ HTTP/1.1\\r\\nHost: other.test:{p}\\r\\nConnection: close\\r\\n\\r\\n' | nc -w 5 127.0.0.1 3128",
            p = other.port
        ),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(UPSTREAM_BODY),
        "{}",
        describe(&out)
    );

    // Audited with the sandbox and the destination; logged without any value.
    let audit = breach_audit(&fx);
    let other_dest = format!("destination=other.test:{}", other.port);
    assert_eq!(
        audit
            .iter()
            .filter(|(t, d)| t == &sbx && d.contains(&other_dest))
            .count(),
        2,
        "{audit:#?}"
    );
    assert!(audit.iter().any(|(t, d)| t == &sbx
        && d.contains(&format!("destination={target}"))
        && d.contains("place=query")));
    let log = agent.log();
    assert!(log.contains("clw-isolation-breach"), "{log}");
    assert!(
        !log.contains(&real) && !log.contains(&sentinel),
        "a value in the log"
    );

    // While an exec runs, every process's environment holds the sentinel, none the key; and
    // verify's secret probes (environment of every process, content scan) pass.
    let mut long = fx
        .command(&["exec", &sbx, "sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let environ = poll("the running exec's environment", || {
        let e = all_environ(&sbx);
        e.contains(&sentinel).then_some(e)
    });
    assert!(
        !environ.contains(&real),
        "the real key is in a process environment"
    );
    let out = fx.run(&["-o", "json", "verify", "--allow-inconclusive"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify -o json is not JSON ({e}):\n{}", describe(&out)));
    let result = |probe: &str| {
        doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == probe && r["sandbox"] == sbx.as_str())
            .unwrap_or_else(|| panic!("no {probe}:\n{}", describe(&out)))
            .clone()
    };
    // The probe sees the running exec: it finds the plain BOT_TOKEN there (that is what a
    // plain secretEnv entry is), and not the brokered key.
    let env_clean = result("secrets.env-clean");
    let detail = env_clean["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("BOT_TOKEN"), "{env_clean:#}");
    assert!(!detail.contains("ANTHROPIC_API_KEY"), "{env_clean:#}");
    assert_eq!(result("secrets.content-scan")["outcome"], "pass");
    // The CA bundle is a declared read-only bind, not an extra mount.
    for probe in ["fs.ro-binds", "fs.no-extra-mounts"] {
        assert_eq!(result(probe)["outcome"], "pass", "{:#}", result(probe));
    }
    let _ = long.kill();
    let _ = long.wait();

    // Upstream verification is real: an agent that does not trust the test CA refuses to send
    // the key to a host whose certificate it cannot verify (nothing reaches the upstream but
    // a failed handshake).
    drop(agent);
    let untrusting = Agent::spawn(&fx, None);
    poll("the proxy listener of the second agent", || {
        untrusting.log().contains(LISTENING).then_some(())
    });
    let before = api.heads().len();
    let got = https_via_proxy(
        pid,
        &target,
        format!(
            "GET /v1/messages HTTP/1.1\r\nHost: {target}\r\nx-api-key: {sentinel}\r\nConnection: close\r\n\r\n"
        ),
        bundle.stdout.clone(),
    );
    assert!(
        got.contains("502") && got.contains("TLS handshake failed"),
        "{got}"
    );
    assert!(
        api.heads()[before..]
            .iter()
            .all(|h| !h.contains("x-api-key")),
        "a request reached an unverified upstream"
    );
    drop(untrusting);

    // The next apply draws new sentinels.
    let out = fx.run(&["apply"]);
    assert!(out.status.success(), "apply:\n{}", describe(&out));
    let rotated = fx.run(&["exec", &sbx, "sh", "-c", "echo $ANTHROPIC_API_KEY"]);
    let rotated = String::from_utf8_lossy(&rotated.stdout).trim().to_string();
    assert_eq!(rotated.len(), real.len());
    assert_ne!(rotated, sentinel);
    assert_ne!(rotated, real);
}
