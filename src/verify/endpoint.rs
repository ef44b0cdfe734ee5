//! Engine endpoints reachable from a sandbox, whatever they are called: which reply to
//! `GET /_ping` is a container engine's, and asking the unix sockets a sandbox can reach from
//! the host side.
//!
//! A socket is asked where the sandbox would find it: on a bind mount, through the mount's
//! source on the host; anywhere else in the sandbox's filesystem, through the container's root
//! (`/proc/<pid>/root`, trusted only when that pid's cgroup names the container); in the
//! abstract namespace, from a short-lived thread that joins the sandbox's network namespace.
//! Paths are resolved with `RESOLVE_IN_ROOT`, so a symbolic link the sandbox planted cannot
//! point the host at one of its own sockets. TCP listeners are asked from inside by the probe
//! script (they live in the sandbox's network namespace); only the decision is here.
//!
//! It sends one `GET /_ping` per socket and reads at most [`MAX_REPLY`] bytes, each bounded
//! by [`TIMEOUT`]; it never sends anything else.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::engine::Mount;

/// The request every engine API answers (Docker, Podman's compat and libpod APIs).
pub const PING: &[u8] = b"GET /_ping HTTP/1.0\r\nHost: localhost\r\n\r\n";

/// How long a socket may take to accept, and then to answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The most of a reply that is read.
pub const MAX_REPLY: usize = 1024;

/// Ports the engines listen on when configured for TCP (plain and TLS), asked on the
/// sandbox's loopback and its default gateway in addition to every listener it has.
pub const ENGINE_PORTS: [u16; 2] = [2375, 2376];

/// Whether `reply` is an engine's answer to [`PING`]: an HTTP response carrying one of the
/// engines' API headers (`Api-Version`, `Docker-Experimental`, `Libpod-Api-Version`), or a
/// `200` whose body is `OK`.
pub fn answers_engine_api(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    if !text.starts_with("HTTP/") {
        return false;
    }
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let header = head.lines().skip(1).any(|l| {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            name.as_str(),
            "api-version" | "docker-experimental" | "libpod-api-version"
        )
    });
    let ok = head
        .lines()
        .next()
        .and_then(|s| s.split_whitespace().nth(1))
        == Some("200");
    header || (ok && body.trim() == "OK")
}

/// Where the host asks a socket the sandbox sees at an absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The directory that stands for the path's root: a bind mount's host source, or the
    /// container's root.
    pub root: PathBuf,
    /// The path below `root`.
    pub rel: PathBuf,
    /// How it is reached, for reports (`bind /h/ws`, `the container's root`).
    pub via: String,
}

fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Where to ask the socket at `path` (inside the sandbox): through the deepest bind mount
/// holding it, else through `container_root` when there is one.
pub fn place(path: &str, mounts: &[Mount], container_root: Option<&Path>) -> Option<Place> {
    let p = Path::new(path);
    let bind = mounts
        .iter()
        .filter(|m| m.is_bind() && !m.source.is_empty() && !m.destination.is_empty())
        .map(|m| (m.destination.as_str(), m.source.as_str()))
        .filter(|(dst, _)| p.starts_with(dst))
        .max_by_key(|(dst, _)| Path::new(dst).components().count());
    if let Some((dst, src)) = bind {
        let rel = relative(p.strip_prefix(dst).ok()?)?;
        let src = Path::new(src);
        // A socket bound in as a file: ask it through its own directory.
        if rel.as_os_str().is_empty() {
            return Some(Place {
                root: src.parent()?.to_path_buf(),
                rel: PathBuf::from(src.file_name()?),
                via: format!("bind {}", src.display()),
            });
        }
        return Some(Place {
            root: src.to_path_buf(),
            rel,
            via: format!("bind {}", src.display()),
        });
    }
    container_root.map(|root| Place {
        root: root.to_path_buf(),
        rel: relative(p).unwrap_or_default(),
        via: "the container's root".into(),
    })
}

/// What asking one socket gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An engine API answered.
    Engine,
    /// Something else answered, or nothing listens there.
    NotEngine,
    /// The socket could not be asked: why.
    Unasked(String),
}

fn ask(stream: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(PING)?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY as u64)
        .read_to_end(&mut reply)
        .or_else(|e| {
            // A server that answers and keeps the connection open ends the read by timeout.
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                Ok(0)
            } else {
                Err(e)
            }
        })?;
    Ok(reply)
}

fn judge(reply: std::io::Result<Vec<u8>>) -> Answer {
    match reply {
        Ok(r) if answers_engine_api(&r) => Answer::Engine,
        _ => Answer::NotEngine,
    }
}

/// Asks the socket at `place` from this host. Blocking, bounded by [`TIMEOUT`] per step.
pub fn ask_path(place: &Place) -> Answer {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let name = match place.rel.file_name() {
        Some(n) => n.to_owned(),
        None => return Answer::Unasked("not a socket path".into()),
    };
    let parent = place.rel.parent().unwrap_or(Path::new(""));
    let root = match std::fs::File::open(&place.root) {
        Ok(f) => f,
        Err(e) => return Answer::Unasked(format!("{} cannot be opened ({e})", place.via)),
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = match openat2(&root, parent, how) {
        Ok(d) => d,
        Err(e) => return Answer::Unasked(format!("its directory cannot be opened ({e})")),
    };
    // connect(2) takes a path of at most 107 bytes; the directory's fd keeps it short.
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(&name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {}
        Ok(_) => return Answer::NotEngine,
        Err(e) => return Answer::Unasked(format!("it is gone ({e})")),
    }
    match UnixStream::connect(&path) {
        Ok(mut s) => judge(ask(&mut s)),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENAMETOOLONG) => {
            Answer::Unasked("its name is too long to connect to".into())
        }
        Err(_) => Answer::NotEngine,
    }
}

/// Asks the abstract socket `name` (without its leading `@`) in the network namespace of
/// process `pid`, from a thread of its own that joins that namespace and ends with it.
pub fn ask_abstract(proc_root: &Path, pid: i64, name: &[u8]) -> Answer {
    use std::os::linux::net::SocketAddrExt;
    let ns = proc_root.join(pid.to_string()).join("ns/net");
    let name = name.to_vec();
    let worker = std::thread::spawn(move || -> Answer {
        let f = match std::fs::File::open(&ns) {
            Ok(f) => f,
            Err(e) => {
                return Answer::Unasked(format!("its network namespace cannot be opened ({e})"))
            }
        };
        if let Err(e) = nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET) {
            return Answer::Unasked(format!("its network namespace cannot be joined ({e})"));
        }
        let addr = match std::os::unix::net::SocketAddr::from_abstract_name(&name) {
            Ok(a) => a,
            Err(e) => return Answer::Unasked(e.to_string()),
        };
        match UnixStream::connect_addr(&addr) {
            Ok(mut s) => judge(ask(&mut s)),
            Err(_) => Answer::NotEngine,
        }
    });
    worker
        .join()
        .unwrap_or_else(|_| Answer::Unasked("the asking thread failed".into()))
}

/// The process whose root and network namespace stand for the container's, when this host's
/// `/proc` shows it: `pid` (the engine's `State.Pid`) only when its cgroup names the
/// container `id` (a remote engine's pid is some other process here).
pub fn container_pid(proc_root: &Path, pid: i64, id: &str) -> Option<i64> {
    if pid <= 0 {
        return None;
    }
    let cgroup = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    crate::limits::names_container(&cgroup, id).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_replies_are_told_from_other_http_servers() {
        let docker = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\n\r\nOK";
        let podman = b"HTTP/1.1 200 OK\r\nLibpod-Api-Version: 4.3.1\r\nContent-Length: 2\r\n\r\nOK";
        let canned = b"HTTP/1.1 200 OK\r\napi-version: 1.41\r\n\r\n";
        let ok_body = b"HTTP/1.0 200 OK\r\nContent-type: text/plain\r\n\r\nOK\n";
        for r in [&docker[..], podman, canned, ok_body] {
            assert!(answers_engine_api(r), "{}", String::from_utf8_lossy(r));
        }
        let web = b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\nOK";
        let html = b"HTTP/1.1 200 OK\r\n\r\n<html>hello</html>";
        for r in [&web[..], html, b"", b"SSH-2.0-OpenSSH_9.2\r\n", b"OK"] {
            assert!(!answers_engine_api(r), "{}", String::from_utf8_lossy(r));
        }
    }

    fn bind(src: &str, dst: &str) -> Mount {
        Mount {
            kind: "bind".into(),
            source: src.into(),
            destination: dst.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_socket_is_asked_through_the_deepest_bind_holding_it_else_the_container_root() {
        let mounts = vec![bind("/h/ws", "/ws"), bind("/h/cache", "/ws/cache")];
        let root = Path::new("/proc/42/root");
        let p = place("/ws/cache/a/agent.sock", &mounts, Some(root)).unwrap();
        assert_eq!(
            (p.root.as_path(), p.rel.as_path()),
            (Path::new("/h/cache"), Path::new("a/agent.sock"))
        );
        let p = place("/tmp/x.sock", &mounts, Some(root)).unwrap();
        assert_eq!(
            (p.root.as_path(), p.rel.as_path()),
            (root, Path::new("tmp/x.sock"))
        );
        assert_eq!(place("/tmp/x.sock", &mounts, None), None);
        // A socket bound in as the mount itself.
        let p = place(
            "/run/d.sock",
            &[bind("/var/run/docker.sock", "/run/d.sock")],
            None,
        )
        .unwrap();
        assert_eq!(
            (p.root.as_path(), p.rel.as_path()),
            (Path::new("/var/run"), Path::new("docker.sock"))
        );
    }

    #[test]
    fn a_socket_answering_like_an_engine_is_recognised_and_a_silent_one_is_not() {
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let engine = UnixListener::bind(dir.path().join("e.sock")).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = engine.accept() {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\n\r\nOK");
            }
        });
        let other = UnixListener::bind(dir.path().join("o.sock")).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = other.accept() {
                let _ = s.write_all(b"hello\n");
            }
        });
        let at = |name: &str| Place {
            root: dir.path().to_path_buf(),
            rel: PathBuf::from(name),
            via: "test".into(),
        };
        assert_eq!(ask_path(&at("e.sock")), Answer::Engine);
        assert_eq!(ask_path(&at("o.sock")), Answer::NotEngine);
        assert!(matches!(ask_path(&at("none.sock")), Answer::Unasked(_)));
    }
}
