//! The `net.none` probe: with `network: none` only the loopback interface exists, and in any
//! network the cloud metadata address (169.254.169.254:80) does not answer.

use super::super::{Expect, Outcome, ProbeResult};
use super::{list, r, Facts};

/// `net.none`.
pub(super) fn none(expect: &Expect, facts: &Facts) -> ProbeResult {
    let mut bad = Vec::new();
    if expect.network_none {
        let others: Vec<String> = facts
            .ifaces
            .iter()
            .filter(|i| *i != "lo")
            .cloned()
            .collect();
        if !others.is_empty() {
            bad.push(format!("interfaces besides lo: {}", list(&others)));
        }
    }
    if facts.metadata_open == Some(true) {
        bad.push("169.254.169.254:80 is reachable".into());
    }
    if !bad.is_empty() {
        r("net.none", Outcome::Fail, bad.join("; "))
    } else if facts.metadata_open.is_none() || facts.ifaces.is_empty() {
        r(
            "net.none",
            Outcome::Inconclusive,
            "`nc` missing or /proc/net/dev unreadable",
        )
    } else if expect.network_none {
        r(
            "net.none",
            Outcome::Pass,
            "only lo; 169.254.169.254:80 unreachable",
        )
    } else {
        r(
            "net.none",
            Outcome::Pass,
            "169.254.169.254:80 unreachable (network is not none)",
        )
    }
}

/// What the egress probes try, derived from the sandbox's allow-list (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressExpect {
    /// `host:port` asked through the proxy that must be let through (exact names and single
    /// addresses of the list; a name's port is its entry's, else 443).
    pub allowed: Vec<(String, u16)>,
    /// Asked through the proxy, must be refused: a name on no list, the metadata address, a
    /// private address (each left out where the list allows it).
    pub refused: Vec<(String, u16)>,
    /// Opened directly, without the proxy, must fail: the addresses of the allowed
    /// destinations that are known without asking DNS (pinned names, listed addresses).
    pub direct: Vec<(String, u16)>,
    /// Entries that cannot be probed as written (wildcards, networks).
    pub not_probed: Vec<String>,
}

/// A name that no allow-list can hold: `.invalid` is reserved (RFC 2606), and a wildcard of a
/// single label (`*.invalid`) is refused as too broad.
pub const NOT_ALLOWED_NAME: &str = "clw-verify-not-allowed.invalid";
/// An address of a private range that stands for "the host's network".
pub const PRIVATE_PROBE: &str = "10.255.255.254";
/// The cloud metadata address.
pub const METADATA: &str = "169.254.169.254";

/// The most destinations asked per kind in one run.
pub const MAX_EGRESS_ASKS: usize = 8;

/// The probe plan for `policy`.
pub fn egress_expect(policy: &crate::egress::EgressPolicy) -> EgressExpect {
    use crate::egress::policy::DestPattern;
    use crate::egress::{decide, Decision, Dest};
    let mut e = EgressExpect::default();
    for entry in &policy.allow {
        let port = entry.port.unwrap_or(443);
        match &entry.dest {
            DestPattern::Name(n) => {
                e.allowed.push((n.clone(), port));
                if let Some(ip) = policy.pinned(n) {
                    e.direct.push((ip.to_string(), port));
                }
            }
            DestPattern::Net { addr, prefix }
                if *prefix == if addr.is_ipv4() { 32 } else { 128 } =>
            {
                e.allowed.push((addr.to_string(), port));
                e.direct.push((addr.to_string(), port));
            }
            _ => e.not_probed.push(entry.to_string()),
        }
    }
    for (host, port) in [(NOT_ALLOWED_NAME, 443), (METADATA, 80), (PRIVATE_PROBE, 80)] {
        let Some(dest) = Dest::parse(host) else {
            continue;
        };
        if matches!(decide(policy, &dest, port, &[]), Decision::Deny { .. }) {
            e.refused.push((host.to_string(), port));
        }
    }
    e.allowed.truncate(MAX_EGRESS_ASKS);
    e.direct.sort();
    e.direct.dedup();
    e.direct.truncate(MAX_EGRESS_ASKS);
    e
}

/// `host:port` as a CONNECT authority (brackets around an IPv6 address).
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One answer of the proxy as the script saw it: the status line, or empty for none.
fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// `net.egress-allowed`: every probeable allowed destination answers through the proxy.
pub(super) fn egress_allowed(want: &EgressExpect, facts: &Facts) -> ProbeResult {
    let id = "net.egress-allowed";
    if !facts.egress_done {
        return r(
            id,
            Outcome::Inconclusive,
            "`nc` missing: the proxy was not asked",
        );
    }
    if want.allowed.is_empty() {
        return r(
            id,
            Outcome::Inconclusive,
            format!(
                "no entry can be probed as written (wildcards and networks: {})",
                list(&want.not_probed)
            ),
        );
    }
    let mut bad = Vec::new();
    let mut ok = 0;
    for (host, port) in &want.allowed {
        let auth = authority(host, *port);
        match facts
            .egress
            .iter()
            .find(|a| a.kind == "allowed" && a.authority == auth)
        {
            Some(a) if status_code(&a.line) == Some(200) => ok += 1,
            Some(a) if a.line.is_empty() => bad.push(format!(
                "{auth}: no answer from the proxy at 127.0.0.1:{} (is the agent running?)",
                crate::egress::netns::PROXY_PORT
            )),
            Some(a) => bad.push(format!("{auth}: {}", a.line)),
            None => bad.push(format!("{auth}: not asked")),
        }
    }
    let skipped = if want.not_probed.is_empty() {
        String::new()
    } else {
        format!("; not probed as written: {}", list(&want.not_probed))
    };
    if bad.is_empty() {
        r(
            id,
            Outcome::Pass,
            format!("{ok} destination(s) answer through the proxy{skipped}"),
        )
    } else {
        r(id, Outcome::Fail, format!("{}{skipped}", bad.join("; ")))
    }
}

/// `net.egress-denied`: what the list does not allow is refused by the proxy, and nothing is
/// reachable without it.
pub(super) fn egress_denied(want: &EgressExpect, facts: &Facts) -> ProbeResult {
    let id = "net.egress-denied";
    if !facts.egress_done {
        return r(id, Outcome::Inconclusive, "`nc` missing: nothing was tried");
    }
    let mut bad = Vec::new();
    let mut refused = 0;
    for (host, port) in &want.refused {
        let auth = authority(host, *port);
        match facts
            .egress
            .iter()
            .find(|a| a.kind == "refused" && a.authority == auth)
        {
            // 403: the proxy's refusal; no answer: nothing listens, nothing goes out.
            Some(a) if status_code(&a.line) == Some(403) || a.line.is_empty() => refused += 1,
            Some(a) => bad.push(format!("{auth} through the proxy: {}", a.line)),
            None => bad.push(format!("{auth}: not asked")),
        }
    }
    let mut closed = 0;
    let mut direct: Vec<(String, u16)> = want.direct.clone();
    direct.push((METADATA.to_string(), 80));
    for (host, port) in &direct {
        match facts
            .direct
            .iter()
            .find(|d| d.host == *host && d.port == port.to_string())
        {
            Some(d) if !d.open => closed += 1,
            Some(_) => bad.push(format!(
                "{} opens without the proxy",
                authority(host, *port)
            )),
            None => bad.push(format!("{}: not tried", authority(host, *port))),
        }
    }
    if bad.is_empty() {
        r(
            id,
            Outcome::Pass,
            format!(
                "{refused} destination(s) refused through the proxy ({}); {closed} address(es) unreachable without it",
                want.refused
                    .iter()
                    .map(|(h, p)| authority(h, *p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        r(id, Outcome::Fail, bad.join("; "))
    }
}
