//! Where a sandbox's egress proxy listens: on the loopback interface *inside* the sandbox's own
//! network namespace, on a socket the agent opens there and serves from the host.
//!
//! Why not an internal engine network with the proxy on its gateway (measured on Docker 20.10
//! and Podman 4.3): Docker's `--internal` bridge keeps a host address (the gateway), and a
//! container on it reaches every service of the host on every host address through the
//! `INPUT` chain, which Docker leaves open (the OpenClaw gateway, databases, a TCP engine
//! socket); closing that takes firewall rules per bridge. Podman's internal networks have no
//! gateway at all, so a host proxy has no address there. A sandbox with `egress` therefore
//! keeps `network: none` (no interface but `lo`, no route anywhere), and the agent enters its
//! network namespace once, binds `127.0.0.1:PROXY_PORT` there and leaves: the socket stays in
//! the sandbox's namespace, the connections the proxy makes upstream leave from the host's.
//! The one way out is that listener; while the agent is down nothing listens and nothing is
//! reachable (fail closed), and the same works on both engines without a firewall.
//!
//! It needs what `setns(CLONE_NEWNET)` needs: `CAP_SYS_ADMIN`, `CAP_SYS_PTRACE` (opening
//! `/proc/<pid>/ns/net` of another user's process is a ptrace access check) and the sandbox's
//! host pid (rootful engines; a rootless engine's namespaces belong to the user's namespace).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use nix::sched::{setns, CloneFlags};

/// The port the proxy listens on inside every sandbox with `egress` (on its own loopback, so
/// it never collides with anything of the host's).
pub const PROXY_PORT: u16 = 3128;

/// The proxy's address as the sandbox sees it.
pub fn proxy_url() -> String {
    format!("http://127.0.0.1:{PROXY_PORT}")
}

/// The environment a sandbox with `egress` is created with, for the tools that honour it
/// (curl, pip, npm, git, Node's undici with `NODE_USE_ENV_PROXY`). A tool that ignores it has
/// no route anyway. Both spellings: curl reads only the lower-case `http_proxy`.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = proxy_url();
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    vec![
        ("HTTP_PROXY".into(), url.clone()),
        ("HTTPS_PROXY".into(), url.clone()),
        ("http_proxy".into(), url.clone()),
        ("https_proxy".into(), url),
        ("NO_PROXY".into(), no_proxy.clone()),
        ("no_proxy".into(), no_proxy),
    ]
}

/// Binds `127.0.0.1:PROXY_PORT` in the network namespace of host process `pid`.
///
/// A thread of its own enters the namespace, binds and ends, so no other thread of the agent
/// ever runs in the sandbox's namespace. The namespace file is opened first and the bind made
/// through it, so a pid reused meanwhile can only make the bind land in the wrong namespace if
/// the caller's view of `pid` was already stale: the caller checks the container again after.
pub fn listen_in(pid: i64) -> std::io::Result<TcpListener> {
    if pid <= 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("no process to enter (pid {pid})"),
        ));
    }
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::Builder::new()
        .name("clw-egress-netns".into())
        .spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, PROXY_PORT)))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })?
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_points_every_spelling_at_the_loopback_proxy() {
        let env = proxy_env();
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            assert!(
                env.iter()
                    .any(|(n, v)| n == k && v == "http://127.0.0.1:3128"),
                "{k}"
            );
        }
        assert!(env.iter().any(|(n, _)| n == "NO_PROXY"));
    }

    #[test]
    fn a_pid_that_is_no_process_is_refused() {
        assert!(listen_in(0).is_err());
        assert!(listen_in(1).is_err());
        assert!(listen_in(i64::from(i32::MAX)).is_err());
    }
}
