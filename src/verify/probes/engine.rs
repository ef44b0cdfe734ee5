//! The `engine.no-socket` probe: no container engine is reachable from inside, whether by a
//! socket file named like an engine's, a socket bound in from the host, a mount of an engine's
//! directory, an abstract unix socket named like one, or any unix socket or TCP endpoint that
//! answers the engine API when asked (`verify::endpoint`).

use std::collections::BTreeSet;

use super::super::endpoint::Answer;
use super::super::{Outcome, ProbeResult};
use super::{list, r, Context, Facts, ENGINE_SOCKET_NAMES, MAX_TCP_ASKS};

/// `engine.no-socket`.
pub(super) fn no_socket(ctx: &Context, facts: &Facts) -> ProbeResult {
    let engine_name = |p: &str| {
        let base = p.rsplit('/').next().unwrap_or(p);
        ENGINE_SOCKET_NAMES.contains(&base)
    };
    let mut bad: Vec<String> = facts
        .found_names
        .iter()
        .chain(facts.found_sockets.iter())
        .filter(|p| engine_name(p))
        .map(|p| format!("{p} (by name)"))
        .collect();
    let mount_points: BTreeSet<&str> = facts
        .mounts
        .iter()
        .map(|m| m.mount_point.as_str())
        .collect();
    bad.extend(
        facts
            .found_sockets
            .iter()
            .filter(|p| mount_points.contains(p.as_str()) && !engine_name(p))
            .map(|p| format!("{p} (a socket bound in)")),
    );
    bad.extend(
        facts
            .mounts
            .iter()
            .filter(|m| engine_name(&m.root) || engine_name(&m.mount_point))
            .map(|m| format!("{} (bound from {})", m.mount_point, m.root)),
    );
    // Abstract sockets are reachable from any process of the network namespace, without
    // a file (containerd-shim, CVE-2020-15257): one named like an engine's fails as such.
    bad.extend(
        unix_listeners(facts)
            .into_iter()
            .filter(|p| p.starts_with('@') && engine_word(p))
            .map(|p| format!("{p} (abstract socket)")),
    );
    // Whatever its name: a unix socket that answers the engine API (asked from the host).
    let mut unasked = Vec::new();
    for (path, answer) in &ctx.sockets {
        match answer {
            Answer::Engine => bad.push(format!("{path} (unix socket answering the engine API)")),
            Answer::NotEngine => {}
            Answer::Unasked(why) => unasked.push(format!("{path}: {why}")),
        }
    }
    // And a TCP endpoint that does (asked from inside).
    bad.extend(
        facts
            .tcp_asks
            .iter()
            .filter(|(_, _, reply)| super::super::endpoint::answers_engine_api(reply))
            .map(|(host, port, _)| format!("{host}:{port} (TCP, answering the engine API)")),
    );
    bad.sort();
    bad.dedup();
    let tcp = facts.tcp_asks.len();
    if !bad.is_empty() {
        r("engine.no-socket", Outcome::Fail, list(&bad))
    } else if !facts.find_done {
        r(
            "engine.no-socket",
            Outcome::Inconclusive,
            "`find` is missing; sockets were not searched by name or type",
        )
    } else if !facts.asks_done || facts.asks_cut {
        r(
            "engine.no-socket",
            Outcome::Inconclusive,
            if facts.asks_cut {
                format!("more than {MAX_TCP_ASKS} TCP endpoints; the rest were not asked")
            } else {
                "`nc` or `od` is missing; TCP endpoints were not asked".to_string()
            },
        )
    } else if !unasked.is_empty() {
        r(
            "engine.no-socket",
            Outcome::Inconclusive,
            format!("unix sockets that could not be asked: {}", list(&unasked)),
        )
    } else {
        r(
            "engine.no-socket",
            Outcome::Pass,
            format!(
                "no engine socket by name, type, mount or abstract address; {} unix socket(s) \
                 and {tcp} TCP endpoint(s) asked, none answers the engine API",
                ctx.sockets.len()
            ),
        )
    }
}

/// Whether a socket name mentions an engine (Docker, containerd, Podman, CRI-O, BuildKit).
fn engine_word(name: &str) -> bool {
    [
        "docker",
        "containerd",
        "podman",
        "crio",
        "libpod",
        "buildkit",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// The listening unix sockets of the sandbox's network namespace (`/proc/net/unix` lines with
/// `__SO_ACCEPTCON`), by path or `@abstract` name.
pub fn unix_listeners(facts: &Facts) -> Vec<String> {
    let mut out: Vec<String> = facts
        .unix
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (flags & 0x0001_0000 != 0).then(|| f.get(7).map(|p| p.to_string()))?
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every unix socket the host should ask: the socket files found in the sandbox's
/// filesystem, and the abstract listeners of its network namespace. A listener's path in
/// `/proc/net/unix` is not asked by itself: it names a file in the namespace of whoever bound
/// it (with the host's network, any host process), reachable from the sandbox only if `find`
/// saw it there.
pub fn sockets_to_ask(facts: &Facts) -> Vec<String> {
    let mut out: Vec<String> = facts.found_sockets.clone();
    out.extend(
        unix_listeners(facts)
            .into_iter()
            .filter(|p| p.starts_with('@')),
    );
    out.sort();
    out.dedup();
    out
}
