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
