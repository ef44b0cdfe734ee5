//! `egress serve` end to end through the real binary: two tiny upstream servers on loopback,
//! the proxy on loopback, and requests that must pass or be refused. No engine is involved.
//!
//! Only loopback addresses are ever connected to: the names are pinned to 127.0.0.1 in the
//! manifest, and the metadata case is refused before any connection (the address comes from
//! the hidden `--resolve`, which stands in for a DNS answer).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clw_fortress::state::{EgressDecision, State};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream on 127.0.0.1: answers a `GET` with `hello from <name>`, and upper-cases
/// anything else back until the peer closes. It accepts for at most 60 s, then stops by itself.
fn upstream(name: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    count.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || serve_one(name, stream));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, accepted)
}

fn serve_one(name: &str, mut s: TcpStream) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        if seen.starts_with(b"GET ") {
            if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let body = format!("hello from {name}");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                return;
            }
            continue;
        }
        if s.write_all(&seen.to_ascii_uppercase()).is_err() {
            return;
        }
        seen.clear();
    }
}

/// The proxy process; killed when the test ends, pass or fail.
struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(manifest: &std::path::Path, home: &std::path::Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clw-fortress"))
        .args(["-f", manifest.to_str().unwrap(), "egress", "serve"])
        .args(["--sandbox", "sbx", "--listen", "127.0.0.1:0"])
        .args(["--resolve", "metadata.test=169.254.169.254"])
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Served { child, port }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Sends `request` and reads until the proxy closes the connection.
fn exchange(port: u16, request: &str) -> String {
    let mut s = connect(port);
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "eof in the head: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

#[test]
fn the_proxy_carries_allowed_traffic_and_refuses_the_rest_with_the_rule_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let (p1, _) = upstream("allowed");
    let (p2, denied_hits) = upstream("denied");
    let state_path = tmp.path().join("state.db");
    let manifest = tmp.path().join("fortress.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: clw-fortress/v1
kind: Fortress
metadata: {{name: egress-test}}
state: {{path: {}}}
defaults: {{image: img}}
sandboxes:
  - name: sbx
    egress:
      allow: ['allowed.test:{p1}', 'metadata.test:80']
      hosts: {{allowed.test: 127.0.0.1, denied.test: 127.0.0.1}}
",
            state_path.display()
        ),
    )
    .unwrap();
    let proxy = serve(&manifest, tmp.path());

    // Plain HTTP to an allowed name: forwarded, answered by the upstream.
    let got = exchange(
        proxy.port,
        &format!(
            "GET http://allowed.test:{p1}/hello HTTP/1.1\r\nhost: allowed.test:{p1}\r\n\
             connection: close\r\n\r\n"
        ),
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("hello from allowed"), "{got}");

    // CONNECT to an allowed name: a tunnel carrying bytes both ways.
    let mut s = connect(proxy.port);
    write!(
        s,
        "CONNECT allowed.test:{p1} HTTP/1.1\r\nhost: allowed.test:{p1}\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for word in ["ping\n", "second round trip\n"] {
        s.write_all(word.as_bytes()).unwrap();
        let mut back = vec![0u8; word.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, word.to_ascii_uppercase().as_bytes());
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // A name with no allow entry (though pinned): 403 naming the fortress, sandbox and rule.
    let got = exchange(
        proxy.port,
        &format!("GET http://denied.test:{p2}/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    );
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    for want in [
        "fortress: egress-test".to_string(),
        "sandbox: sbx".to_string(),
        format!("destination: denied.test:{p2}"),
        format!("egress.allow: [\"denied.test:{p2}\"]"),
    ] {
        assert!(got.contains(&want), "{want} missing in {got}");
    }

    // The allowed upstream by address: addresses match address entries only.
    let got = exchange(
        proxy.port,
        &format!(
            "CONNECT 127.0.0.1:{p1} HTTP/1.1\r\nhost: 127.0.0.1:{p1}\r\nconnection: close\r\n\r\n"
        ),
    );
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(
        got.contains(&format!("egress.allow: [\"127.0.0.1:{p1}\"]")),
        "{got}"
    );

    // An allowed name whose (unpinned) answer is the metadata address: refused, not connected.
    let got = exchange(
        proxy.port,
        "GET http://metadata.test/latest/meta-data HTTP/1.1\r\nhost: metadata.test\r\n\
         connection: close\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(got.contains("169.254.169.254, a link-local"), "{got}");
    assert!(
        got.contains("egress.allow: [\"169.254.169.254:80\"]"),
        "{got}"
    );

    // An origin-form request is not a proxy request.
    let got = exchange(
        proxy.port,
        "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");

    assert_eq!(
        denied_hits.load(Ordering::SeqCst),
        0,
        "a refused upstream was reached"
    );

    // One row per connection in the state database; the allowed rows land when each
    // connection ends, so wait a little for them.
    let state = State::open(&state_path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = state.egress_events(Some("sbx"), 100).unwrap();
        if rows.len() >= 5 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut denied: Vec<(String, u16, String, String)> = rows
        .iter()
        .filter(|r| r.decision == EgressDecision::Denied)
        .map(|r| {
            (
                r.host.clone(),
                r.port,
                r.reason.clone(),
                r.rule_needed.clone(),
            )
        })
        .collect();
    denied.sort();
    assert_eq!(
        denied,
        [
            (
                "127.0.0.1".to_string(),
                p1,
                "not-allowed".to_string(),
                format!("127.0.0.1:{p1}")
            ),
            (
                "denied.test".to_string(),
                p2,
                "not-allowed".to_string(),
                format!("denied.test:{p2}")
            ),
            (
                "metadata.test".to_string(),
                80,
                "internal-address".to_string(),
                "169.254.169.254:80".to_string()
            ),
        ]
    );
    let allowed: Vec<_> = rows
        .iter()
        .filter(|r| r.decision == EgressDecision::Allowed)
        .collect();
    assert_eq!(allowed.len(), 2, "{rows:#?}");
    assert!(allowed
        .iter()
        .all(|r| r.host == "allowed.test" && r.port == p1 && r.bytes > 0));
}
